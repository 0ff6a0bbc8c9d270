// CUDA kernel for pairwise box IoU / GIoU: one thread per output element; each block
// stages its 32 rows of boxes1 and 32 columns of boxes2 in shared memory.
#include "box_iou.h"
#include "box_math.h"

namespace {

constexpr int kTile = 32;

__global__ void box_iou_kernel(const float* __restrict__ boxes1, const float* __restrict__ boxes2,
                               float* __restrict__ out, int64_t n, int64_t m, bool giou,
                               bool inclusive) {
  __shared__ float rows[kTile][4];
  __shared__ float cols[kTile][4];
  const int64_t batch = blockIdx.z;
  const int64_t row0 = static_cast<int64_t>(blockIdx.y) * kTile;
  const int64_t col0 = static_cast<int64_t>(blockIdx.x) * kTile;
  const int tx = threadIdx.x, ty = threadIdx.y;  // blockDim = (32, 8)
  for (int k = ty * kTile + tx; k < kTile * 4; k += kTile * blockDim.y) {
    const int box = k / 4, coord = k % 4;
    rows[box][coord] = row0 + box < n ? boxes1[(batch * n + row0 + box) * 4 + coord] : 0.f;
    cols[box][coord] = col0 + box < m ? boxes2[(batch * m + col0 + box) * 4 + coord] : 0.f;
  }
  __syncthreads();
  const int64_t col = col0 + tx;
  if (col >= m) return;
  for (int r = ty; r < kTile; r += blockDim.y) {
    const int64_t row = row0 + r;
    if (row >= n) break;
    out[(batch * n + row) * m + col] = gro_fast::box_pair_iou(rows[r], cols[tx], giou, inclusive);
  }
}

}  // namespace

extern "C" int gro_box_iou_launch(const float* boxes1, const float* boxes2, float* out,
                                  int64_t batch, int64_t n, int64_t m, int giou, int inclusive,
                                  cudaStream_t stream) {
  if (batch == 0 || n == 0 || m == 0) return 0;
  if ((n + kTile - 1) / kTile > 65535 || (m + kTile - 1) / kTile > 2147483647LL) return cudaErrorInvalidValue;
  const dim3 block(kTile, 8);
  const int64_t max_z = 65535;  // grid.z limit: long batches go in slices
  for (int64_t b0 = 0; b0 < batch; b0 += max_z) {
    const int64_t slice = batch - b0 < max_z ? batch - b0 : max_z;
    const dim3 grid(static_cast<unsigned>((m + kTile - 1) / kTile), static_cast<unsigned>((n + kTile - 1) / kTile),
                    static_cast<unsigned>(slice));
    box_iou_kernel<<<grid, block, 0, stream>>>(boxes1 + b0 * n * 4, boxes2 + b0 * m * 4, out + b0 * n * m, n, m,
                                               giou != 0, inclusive != 0);
    const cudaError_t err = cudaGetLastError();
    if (err != cudaSuccess) return static_cast<int>(err);
  }
  return 0;
}
