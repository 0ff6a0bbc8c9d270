// CUDA kernels of dense-mask IoU: bit-packing with warp ballots, per-mask areas, tiled
// pairwise AND-popcount (like a small GEMM over words) and the batched RL-scoring counts.
#include "mask_iou.h"

namespace {

constexpr int kPackThreads = 256;  // pixels per block along a row (4 words)
constexpr int kTile = 16;          // pairwise tile: 16 x 16 outputs per block
constexpr int kChunk = 32;         // words staged per tile step
constexpr int kReduceThreads = 256;

__global__ void pack_kernel(const uint8_t* __restrict__ masks, uint32_t* __restrict__ halves,
                            int64_t rows, int64_t width, int64_t words_per_row) {
  const int64_t row = blockIdx.x;
  const int64_t x = static_cast<int64_t>(blockIdx.y) * kPackThreads + threadIdx.x;
  const bool on = x < width && masks[row * width + x] != 0;
  const unsigned bits = __ballot_sync(0xffffffffu, on);
  if ((threadIdx.x & 31) == 0) {
    const int64_t half = x / 32;  // which 32-bit half of the row's words
    if (half < 2 * words_per_row) halves[row * 2 * words_per_row + half] = bits;
  }
}

__device__ __forceinline__ long long block_sum(long long value, long long* shared) {
  for (int offset = 16; offset > 0; offset >>= 1) value += __shfl_down_sync(0xffffffffu, value, offset);
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  if (lane == 0) shared[warp] = value;
  __syncthreads();
  long long total = 0;
  if (threadIdx.x == 0)
    for (int w = 0; w < static_cast<int>(blockDim.x / 32); ++w) total += shared[w];
  __syncthreads();
  return total;
}

__global__ void area_kernel(const uint64_t* __restrict__ words, int64_t k, int64_t* __restrict__ area) {
  __shared__ long long partial[kReduceThreads / 32];
  const uint64_t* w = words + static_cast<int64_t>(blockIdx.x) * k;
  long long sum = 0;
  for (int64_t c = threadIdx.x; c < k; c += blockDim.x) sum += __popcll(w[c]);
  const long long total = block_sum(sum, partial);
  if (threadIdx.x == 0) area[blockIdx.x] = total;
}

__global__ void pair_inter_kernel(const uint64_t* __restrict__ words1, const uint64_t* __restrict__ words2,
                                  int64_t n, int64_t m, int64_t k, int64_t* __restrict__ inter) {
  __shared__ uint64_t a[kTile][kChunk + 1];
  __shared__ uint64_t b[kTile][kChunk + 1];
  const int64_t i = static_cast<int64_t>(blockIdx.y) * kTile + threadIdx.y;
  const int64_t j = static_cast<int64_t>(blockIdx.x) * kTile + threadIdx.x;
  const int tid = threadIdx.y * kTile + threadIdx.x;
  long long sum = 0;
  for (int64_t c0 = 0; c0 < k; c0 += kChunk) {
    for (int e = tid; e < kTile * kChunk; e += kTile * kTile) {
      const int r = e / kChunk, c = e % kChunk;
      const int64_t ia = static_cast<int64_t>(blockIdx.y) * kTile + r;
      const int64_t jb = static_cast<int64_t>(blockIdx.x) * kTile + r;
      a[r][c] = (ia < n && c0 + c < k) ? words1[ia * k + c0 + c] : 0ull;
      b[r][c] = (jb < m && c0 + c < k) ? words2[jb * k + c0 + c] : 0ull;
    }
    __syncthreads();
#pragma unroll 8
    for (int c = 0; c < kChunk; ++c) sum += __popcll(a[threadIdx.y][c] & b[threadIdx.x][c]);
    __syncthreads();
  }
  if (i < n && j < m) inter[i * m + j] = sum;
}

__global__ void batched_counts_kernel(const uint64_t* __restrict__ pred, const uint64_t* __restrict__ gt,
                                      int64_t g, int64_t k, int64_t* __restrict__ inter,
                                      int64_t* __restrict__ pred_area) {
  __shared__ long long partial[kReduceThreads / 32];
  const int64_t item = blockIdx.x;  // b * g + j
  const uint64_t* p = pred + item * k;
  const uint64_t* q = gt + (item / g) * k;
  long long both = 0, ones = 0;
  for (int64_t c = threadIdx.x; c < k; c += blockDim.x) {
    const uint64_t w = p[c];
    both += __popcll(w & q[c]);
    ones += __popcll(w);
  }
  const long long total_both = block_sum(both, partial);
  const long long total_ones = block_sum(ones, partial);
  if (threadIdx.x == 0) {
    inter[item] = total_both;
    pred_area[item] = total_ones;
  }
}

}  // namespace

extern "C" int gro_mask_pack_launch(const uint8_t* masks, uint64_t* words, int64_t count, int64_t height,
                                    int64_t width, int64_t words_per_row, cudaStream_t stream) {
  const int64_t rows = count * height;
  if (rows == 0 || words_per_row == 0) return 0;
  const int64_t chunks = (words_per_row * 64 + kPackThreads - 1) / kPackThreads;
  if (rows > 2147483647LL || chunks > 65535) return cudaErrorInvalidValue;
  const dim3 grid(static_cast<unsigned>(rows), static_cast<unsigned>(chunks));
  pack_kernel<<<grid, kPackThreads, 0, stream>>>(masks, reinterpret_cast<uint32_t*>(words), rows, width,
                                                 words_per_row);
  return static_cast<int>(cudaGetLastError());
}

extern "C" int gro_mask_area_launch(const uint64_t* words, int64_t count, int64_t k, int64_t* area,
                                    cudaStream_t stream) {
  if (count == 0) return 0;
  if (count > 2147483647LL) return cudaErrorInvalidValue;
  area_kernel<<<static_cast<unsigned>(count), kReduceThreads, 0, stream>>>(words, k, area);
  return static_cast<int>(cudaGetLastError());
}

extern "C" int gro_mask_pair_inter_launch(const uint64_t* words1, const uint64_t* words2, int64_t n,
                                          int64_t m, int64_t k, int64_t* inter, cudaStream_t stream) {
  if (n == 0 || m == 0) return 0;
  const int64_t gx = (m + kTile - 1) / kTile, gy = (n + kTile - 1) / kTile;
  if (gx > 2147483647LL || gy > 65535) return cudaErrorInvalidValue;
  const dim3 block(kTile, kTile);
  const dim3 grid(static_cast<unsigned>(gx), static_cast<unsigned>(gy));
  pair_inter_kernel<<<grid, block, 0, stream>>>(words1, words2, n, m, k, inter);
  return static_cast<int>(cudaGetLastError());
}

extern "C" int gro_mask_batched_counts_launch(const uint64_t* pred, const uint64_t* gt, int64_t batch,
                                              int64_t g, int64_t k, int64_t* inter, int64_t* pred_area,
                                              cudaStream_t stream) {
  const int64_t items = batch * g;
  if (items == 0) return 0;
  if (items > 2147483647LL) return cudaErrorInvalidValue;
  batched_counts_kernel<<<static_cast<unsigned>(items), kReduceThreads, 0, stream>>>(pred, gt, g, k, inter,
                                                                                      pred_area);
  return static_cast<int>(cudaGetLastError());
}
