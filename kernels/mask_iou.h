// C launch API of the CUDA dense-mask IoU kernels (no torch headers; bound in
// csrc/mask_iou.cpp). Masks are bytes (nonzero = foreground) packed into uint64 words,
// row by row: words_per_row = ceil(width / 64); bit k of word c holds pixel 64 * c + k.
#pragma once

#include <cuda_runtime.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

// masks [count, height, width] bytes -> words [count, height, words_per_row].
int gro_mask_pack_launch(const uint8_t* masks, uint64_t* words, int64_t count, int64_t height,
                         int64_t width, int64_t words_per_row, cudaStream_t stream);

// area[i] = popcount of mask i (words [count, k]).
int gro_mask_area_launch(const uint64_t* words, int64_t count, int64_t k, int64_t* area,
                         cudaStream_t stream);

// inter[i, j] = popcount(words1[i] & words2[j]) for words1 [n, k], words2 [m, k].
int gro_mask_pair_inter_launch(const uint64_t* words1, const uint64_t* words2, int64_t n,
                               int64_t m, int64_t k, int64_t* inter, cudaStream_t stream);

// For pred [batch, g, k] and gt [batch, k]: inter[b, j] = popcount(pred[b, j] & gt[b]),
// pred_area[b, j] = popcount(pred[b, j]).
int gro_mask_batched_counts_launch(const uint64_t* pred, const uint64_t* gt, int64_t batch,
                                   int64_t g, int64_t k, int64_t* inter, int64_t* pred_area,
                                   cudaStream_t stream);

#ifdef __cplusplus
}
#endif
