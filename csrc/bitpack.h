// Bit-packing of dense masks for the CPU mask IoU (csrc/mask_iou.cpp).
//
// A mask [H, W] of bytes (nonzero = foreground) becomes H rows of ceil(W / 64) uint64
// words, bit k of word c holding pixel 64 * c + k. For pairwise IoU only the words of a
// mask's bounding rectangle (rows x word columns) are kept, contiguously, so that many
// masks fit in cache. Packing uses AVX2 or SSE2 byte compares and counting uses the
// popcnt instruction, each chosen at run time with portable fallbacks.
#pragma once

#include <cstdint>
#include <vector>

namespace gro_fast {

inline int64_t words_per_row(int64_t width) { return (width + 63) / 64; }

// The packed words of a mask's bounding rectangle: rows [row_begin, row_end), word
// columns [col_begin, col_end), row-major; an empty mask has no rows.
struct PackedRect {
  int64_t row_begin = 0, row_end = 0, col_begin = 0, col_end = 0, area = 0;
  std::vector<uint64_t> words;
  int64_t cols() const { return col_end - col_begin; }
};

// Packs one row of `width` bytes into words_per_row(width) words.
void pack_row(const uint8_t* row, int64_t width, uint64_t* words);

// Packs mask [height, width] and keeps its bounding rectangle; `scratch` is reused.
PackedRect pack_rect(const uint8_t* mask, int64_t height, int64_t width, std::vector<uint64_t>& scratch);

// Foreground pixels common to two packed masks of the same shape.
int64_t rect_intersection(const PackedRect& a, const PackedRect& b);

// Adds popcount(row & other) to *both (when other is not null) and popcount(row) to
// *ones, over n words.
void count_row(const uint64_t* row, const uint64_t* other, int64_t n, int64_t* both, int64_t* ones);

}  // namespace gro_fast
