// Column-major (COCO RLE order) to row-major conversion of byte masks, shared by the RLE
// decoder and the polygon rasteriser. Blocked so both sides stay in cache.
#pragma once

#include <algorithm>
#include <cstdint>

namespace gro_fast {

// src: column-major [w][h]; dst: row-major [h][w].
inline void column_major_to_rows(const uint8_t* src, int64_t h, int64_t w, uint8_t* dst) {
  constexpr int64_t kBlock = 64;
  for (int64_t x0 = 0; x0 < w; x0 += kBlock) {
    const int64_t x1 = std::min(x0 + kBlock, w);
    for (int64_t y0 = 0; y0 < h; y0 += kBlock) {
      const int64_t y1 = std::min(y0 + kBlock, h);
      for (int64_t x = x0; x < x1; ++x)
        for (int64_t y = y0; y < y1; ++y) dst[y * w + x] = src[x * h + y];
    }
  }
}

}  // namespace gro_fast
