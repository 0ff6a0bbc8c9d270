// Host code of dense-mask IoU: argument checks, the OpenMP CPU paths on bit-packed masks
// (csrc/bitpack.h) and the binding of the CUDA kernels (kernels/mask_iou.cu).
//
//   mask_iou_cpu(masks1 [N,H,W], masks2 [M,H,W]) -> iou float32 [N,M]
//   mask_iou_batched_cpu(pred [B,G,H,W], gt [B,H,W]) -> (iou [B,G], inter, union int64)
// Masks are uint8 or bool, nonzero = foreground. An empty union gives IoU 0.
#include <vector>

#include "bitpack.h"
#include "checks.h"
#include "registry.h"

#ifdef GRO_FAST_WITH_CUDA
#include <c10/cuda/CUDAStream.h>
#include <c10/cuda/CUDAGuard.h>

#include "mask_iou.h"
#endif

namespace gro_fast {
namespace {

void check_mask_dtype(const torch::Tensor& t, const char* name) {
  GRO_CHECK_TYPE(t.scalar_type() == torch::kUInt8 || t.scalar_type() == torch::kBool, name,
                 " must be a uint8 or bool tensor, got ", t.scalar_type());
  GRO_CHECK_VALUE(t.is_contiguous(), name, " must be contiguous");
}

void check_pair(const torch::Tensor& masks1, const torch::Tensor& masks2) {
  check_mask_dtype(masks1, "masks1");
  check_mask_dtype(masks2, "masks2");
  GRO_CHECK_DIM(masks1, 3);
  GRO_CHECK_DIM(masks2, 3);
  GRO_CHECK_VALUE(masks1.size(1) == masks2.size(1) && masks1.size(2) == masks2.size(2),
                  "masks1 and masks2 must have the same H and W, got ", masks1.sizes(), " and ", masks2.sizes());
}

void check_batched(const torch::Tensor& pred, const torch::Tensor& gt) {
  check_mask_dtype(pred, "pred");
  check_mask_dtype(gt, "gt");
  GRO_CHECK_DIM(pred, 4);
  GRO_CHECK_DIM(gt, 3);
  GRO_CHECK_VALUE(pred.size(0) == gt.size(0) && pred.size(2) == gt.size(1) && pred.size(3) == gt.size(2),
                  "pred [B,G,H,W] and gt [B,H,W] must agree in B, H and W, got ", pred.sizes(), " and ",
                  gt.sizes());
}

float iou_of(int64_t inter, int64_t uni) {
  return uni > 0 ? static_cast<float>(static_cast<double>(inter) / static_cast<double>(uni)) : 0.f;
}

// One parallel region (threads wake once): pack both sets, then count all pairs.
torch::Tensor mask_iou_cpu(const torch::Tensor& masks1, const torch::Tensor& masks2) {
  GRO_CHECK_CPU(masks1);
  GRO_CHECK_CPU(masks2);
  check_pair(masks1, masks2);
  const int64_t n = masks1.size(0), m = masks2.size(0), h = masks1.size(1), w = masks1.size(2);
  // torch::empty: every element is written below (and no torch parallel fill runs).
  auto iou = torch::empty({n, m}, torch::kFloat32);
  if (n == 0 || m == 0) return iou;
  const uint8_t* data1 = static_cast<const uint8_t*>(masks1.data_ptr());
  const uint8_t* data2 = static_cast<const uint8_t*>(masks2.data_ptr());
  float* out = iou.data_ptr<float>();
  pybind11::gil_scoped_release release;
  std::vector<PackedRect> rects1(static_cast<size_t>(n)), rects2(static_cast<size_t>(m));
#pragma omp parallel if (n + m > 2)
  {
    std::vector<uint64_t> scratch;
#pragma omp for schedule(dynamic, 1) nowait
    for (int64_t i = 0; i < n; ++i) rects1[i] = pack_rect(data1 + i * h * w, h, w, scratch);
#pragma omp for schedule(dynamic, 1)
    for (int64_t j = 0; j < m; ++j) rects2[j] = pack_rect(data2 + j * h * w, h, w, scratch);
#pragma omp for collapse(2) schedule(dynamic, 64)
    for (int64_t i = 0; i < n; ++i) {
      for (int64_t j = 0; j < m; ++j) {
        const int64_t inter = rect_intersection(rects1[i], rects2[j]);
        out[i * m + j] = iou_of(inter, rects1[i].area + rects2[j].area - inter);
      }
    }
  }
  return iou;
}

// Intersection and foreground counts of one candidate mask [h, w] against packed gt rows.
void score_candidate(const uint8_t* mask, int64_t h, int64_t w, const uint64_t* gt_words, const PackedRect& gt,
                     std::vector<uint64_t>& row, int64_t* both, int64_t* ones) {
  const int64_t wpr = words_per_row(w);
  for (int64_t r = 0; r < h; ++r) {
    pack_row(mask + r * w, w, row.data());
    const bool gt_row = r >= gt.row_begin && r < gt.row_end;
    count_row(row.data(), gt_row ? gt_words + r * wpr : nullptr, wpr, both, ones);
  }
}

std::vector<torch::Tensor> mask_iou_batched_cpu(const torch::Tensor& pred, const torch::Tensor& gt) {
  GRO_CHECK_CPU(pred);
  GRO_CHECK_CPU(gt);
  check_batched(pred, gt);
  const int64_t b = pred.size(0), g = pred.size(1), h = pred.size(2), w = pred.size(3);
  const int64_t wpr = words_per_row(w);
  auto inter = torch::empty({b, g}, torch::kInt64);
  auto uni = torch::empty({b, g}, torch::kInt64);
  auto iou = torch::empty({b, g}, torch::kFloat32);
  const uint8_t* p = static_cast<const uint8_t*>(pred.data_ptr());
  const uint8_t* q = static_cast<const uint8_t*>(gt.data_ptr());
  int64_t* inter_p = inter.data_ptr<int64_t>();
  int64_t* uni_p = uni.data_ptr<int64_t>();
  float* iou_p = iou.data_ptr<float>();
  pybind11::gil_scoped_release release;
  std::vector<uint64_t> gt_words(static_cast<size_t>(b * h * wpr));
  std::vector<PackedRect> gt_rects(static_cast<size_t>(b));
#pragma omp parallel if (b * g > 1)
  {
    std::vector<uint64_t> row(static_cast<size_t>(wpr > 0 ? wpr : 1)), scratch;
#pragma omp for schedule(dynamic, 1)
    for (int64_t bi = 0; bi < b; ++bi) {
      gt_rects[bi] = pack_rect(q + bi * h * w, h, w, scratch);
      std::copy(scratch.begin(), scratch.end(), gt_words.begin() + bi * h * wpr);
    }
#pragma omp for schedule(dynamic, 1)
    for (int64_t item = 0; item < b * g; ++item) {
      const int64_t bi = item / g;
      int64_t both = 0, ones = 0;
      score_candidate(p + item * h * w, h, w, gt_words.data() + bi * h * wpr, gt_rects[bi], row, &both, &ones);
      inter_p[item] = both;
      uni_p[item] = ones + gt_rects[bi].area - both;
      iou_p[item] = iou_of(both, uni_p[item]);
    }
  }
  return {iou, inter, uni};
}

#ifdef GRO_FAST_WITH_CUDA
void cuda_ok(int err, const char* what) {
  TORCH_CHECK(err == 0, what, " CUDA kernel failed: ", cudaGetErrorString(static_cast<cudaError_t>(err)));
}

// masks [count, H, W] on the GPU -> packed words [count, H * words_per_row].
torch::Tensor pack_cuda(const torch::Tensor& masks, int64_t count, int64_t h, int64_t w) {
  const int64_t wpr = words_per_row(w);
  auto words = torch::zeros({count, h * wpr}, masks.options().dtype(torch::kInt64));
  cuda_ok(gro_mask_pack_launch(static_cast<const uint8_t*>(masks.data_ptr()),
                               reinterpret_cast<uint64_t*>(words.data_ptr<int64_t>()), count, h, w, wpr,
                               c10::cuda::getCurrentCUDAStream()),
          "mask pack");
  return words;
}

torch::Tensor area_cuda(const torch::Tensor& words) {
  auto area = torch::empty({words.size(0)}, words.options());
  cuda_ok(gro_mask_area_launch(reinterpret_cast<const uint64_t*>(words.data_ptr<int64_t>()), words.size(0),
                               words.size(1), area.data_ptr<int64_t>(), c10::cuda::getCurrentCUDAStream()),
          "mask area");
  return area;
}

torch::Tensor iou_from_counts(const torch::Tensor& inter, const torch::Tensor& uni) {
  auto ratio = inter.to(torch::kFloat64) / uni.clamp_min(1).to(torch::kFloat64);
  return torch::where(uni > 0, ratio, torch::zeros_like(ratio)).to(torch::kFloat32);
}

torch::Tensor mask_iou_cuda(const torch::Tensor& masks1, const torch::Tensor& masks2) {
  GRO_CHECK_CUDA(masks1);
  GRO_CHECK_CUDA(masks2);
  check_pair(masks1, masks2);
  const c10::cuda::CUDAGuard guard(masks1.device());
  const int64_t n = masks1.size(0), m = masks2.size(0), h = masks1.size(1), w = masks1.size(2);
  auto words1 = pack_cuda(masks1, n, h, w), words2 = pack_cuda(masks2, m, h, w);
  auto inter = torch::empty({n, m}, words1.options());
  cuda_ok(gro_mask_pair_inter_launch(reinterpret_cast<const uint64_t*>(words1.data_ptr<int64_t>()),
                                     reinterpret_cast<const uint64_t*>(words2.data_ptr<int64_t>()), n, m,
                                     words1.size(1), inter.data_ptr<int64_t>(),
                                     c10::cuda::getCurrentCUDAStream()),
          "mask pairwise intersection");
  auto uni = area_cuda(words1).unsqueeze(1) + area_cuda(words2).unsqueeze(0) - inter;
  return iou_from_counts(inter, uni);
}

std::vector<torch::Tensor> mask_iou_batched_cuda(const torch::Tensor& pred, const torch::Tensor& gt) {
  GRO_CHECK_CUDA(pred);
  GRO_CHECK_CUDA(gt);
  check_batched(pred, gt);
  const c10::cuda::CUDAGuard guard(pred.device());
  const int64_t b = pred.size(0), g = pred.size(1), h = pred.size(2), w = pred.size(3);
  auto pred_words = pack_cuda(pred, b * g, h, w), gt_words = pack_cuda(gt, b, h, w);
  auto inter = torch::empty({b, g}, pred_words.options());
  auto pred_area = torch::empty({b, g}, pred_words.options());
  cuda_ok(gro_mask_batched_counts_launch(reinterpret_cast<const uint64_t*>(pred_words.data_ptr<int64_t>()),
                                         reinterpret_cast<const uint64_t*>(gt_words.data_ptr<int64_t>()), b, g,
                                         pred_words.size(1), inter.data_ptr<int64_t>(),
                                         pred_area.data_ptr<int64_t>(), c10::cuda::getCurrentCUDAStream()),
          "batched mask counts");
  auto uni = pred_area + area_cuda(gt_words).unsqueeze(1) - inter;
  return {iou_from_counts(inter, uni), inter, uni};
}
#endif

}  // namespace
}  // namespace gro_fast

GRO_FAST_BINDINGS(mask_iou) {
  using pybind11::arg;
  m.def("mask_iou_cpu", &gro_fast::mask_iou_cpu, "pairwise dense-mask IoU [N,H,W] x [M,H,W] -> float32 [N,M]",
        arg("masks1"), arg("masks2"));
  m.def("mask_iou_batched_cpu", &gro_fast::mask_iou_batched_cpu,
        "pred [B,G,H,W] vs gt [B,H,W] -> (iou [B,G], intersection, union)", arg("pred"), arg("gt"));
#ifdef GRO_FAST_WITH_CUDA
  m.def("mask_iou_cuda", &gro_fast::mask_iou_cuda, "CUDA pairwise dense-mask IoU", arg("masks1"), arg("masks2"));
  m.def("mask_iou_batched_cuda", &gro_fast::mask_iou_batched_cuda, "CUDA batched mask IoU", arg("pred"),
        arg("gt"));
#endif
}
