// Host code of pairwise box IoU / GIoU: argument checks, the OpenMP CPU loop and the
// binding of the CUDA launcher (kernels/box_iou.cu). Broadcasting of leading batch
// dimensions is done in Python (gro_fast/ops/box_iou/__init__.py); here boxes are
// float32 [batch, n, 4] and [batch, m, 4].
#include "box_math.h"
#include "checks.h"
#include "registry.h"

#ifdef GRO_FAST_WITH_CUDA
#include <c10/cuda/CUDAStream.h>
#include <c10/cuda/CUDAGuard.h>

#include "box_iou.h"
#endif

namespace gro_fast {
namespace {

void check_boxes(const torch::Tensor& boxes1, const torch::Tensor& boxes2) {
  GRO_CHECK_DTYPE(boxes1, torch::kFloat32);
  GRO_CHECK_DTYPE(boxes2, torch::kFloat32);
  GRO_CHECK_DIM(boxes1, 3);
  GRO_CHECK_DIM(boxes2, 3);
  GRO_CHECK_VALUE(boxes1.size(2) == 4, "boxes1 must have shape [batch, n, 4], got ", boxes1.sizes());
  GRO_CHECK_VALUE(boxes2.size(2) == 4, "boxes2 must have shape [batch, m, 4], got ", boxes2.sizes());
  GRO_CHECK_VALUE(boxes1.size(0) == boxes2.size(0), "boxes1 and boxes2 must have the same batch size, got ",
                  boxes1.size(0), " and ", boxes2.size(0));
  GRO_CHECK_CONTIGUOUS(boxes1);
  GRO_CHECK_CONTIGUOUS(boxes2);
}

torch::Tensor box_iou_cpu(const torch::Tensor& boxes1, const torch::Tensor& boxes2, bool giou,
                          bool inclusive) {
  GRO_CHECK_CPU(boxes1);
  GRO_CHECK_CPU(boxes2);
  check_boxes(boxes1, boxes2);
  const int64_t batch = boxes1.size(0), n = boxes1.size(1), m = boxes2.size(1);
  auto out = torch::empty({batch, n, m}, boxes1.options());
  const float* b1 = boxes1.data_ptr<float>();
  const float* b2 = boxes2.data_ptr<float>();
  float* o = out.data_ptr<float>();
#pragma omp parallel for schedule(static) if (batch * n * m > 4096)
  for (int64_t row = 0; row < batch * n; ++row) {
    const float* a = b1 + row * 4;
    const float* bb = b2 + (row / (n > 0 ? n : 1)) * m * 4;
    for (int64_t j = 0; j < m; ++j) o[row * m + j] = box_pair_iou(a, bb + j * 4, giou, inclusive);
  }
  return out;
}

#ifdef GRO_FAST_WITH_CUDA
torch::Tensor box_iou_cuda(const torch::Tensor& boxes1, const torch::Tensor& boxes2, bool giou,
                           bool inclusive) {
  GRO_CHECK_CUDA(boxes1);
  GRO_CHECK_CUDA(boxes2);
  GRO_CHECK_VALUE(boxes1.device() == boxes2.device(), "boxes1 and boxes2 must be on the same device, got ",
                  boxes1.device(), " and ", boxes2.device());
  check_boxes(boxes1, boxes2);
  const c10::cuda::CUDAGuard guard(boxes1.device());
  const int64_t batch = boxes1.size(0), n = boxes1.size(1), m = boxes2.size(1);
  auto out = torch::empty({batch, n, m}, boxes1.options());
  const int err = gro_box_iou_launch(boxes1.data_ptr<float>(), boxes2.data_ptr<float>(),
                                     out.data_ptr<float>(), batch, n, m, giou, inclusive,
                                     c10::cuda::getCurrentCUDAStream());
  TORCH_CHECK(err == 0, "box_iou CUDA kernel failed: ", cudaGetErrorString(static_cast<cudaError_t>(err)));
  return out;
}
#endif

}  // namespace
}  // namespace gro_fast

GRO_FAST_BINDINGS(box_iou) {
  m.def("box_iou_cpu", &gro_fast::box_iou_cpu, "pairwise box IoU/GIoU, float32 [B,N,4] x [B,M,4] -> [B,N,M]",
        pybind11::arg("boxes1"), pybind11::arg("boxes2"), pybind11::arg("giou"), pybind11::arg("inclusive"));
#ifdef GRO_FAST_WITH_CUDA
  m.def("box_iou_cuda", &gro_fast::box_iou_cuda, "CUDA pairwise box IoU/GIoU",
        pybind11::arg("boxes1"), pybind11::arg("boxes2"), pybind11::arg("giou"), pybind11::arg("inclusive"));
#endif
}
