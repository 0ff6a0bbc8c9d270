// Packing and popcount counting for dense masks (declared in bitpack.h). The hot loops
// are compiled for AVX2 / popcnt and for the baseline, and the variant is chosen once at
// run time from the CPU's features.
#include "bitpack.h"

#include <algorithm>

#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>
#define GRO_X86 1
#define GRO_TARGET(x) __attribute__((target(x)))
#else
#define GRO_X86 0
#define GRO_TARGET(x)
#endif

namespace gro_fast {
namespace {

#if GRO_X86
const bool kHasPopcnt = __builtin_cpu_supports("popcnt");
const bool kHasAvx2 = __builtin_cpu_supports("avx2");
#else
const bool kHasPopcnt = false;
const bool kHasAvx2 = false;
#endif

uint64_t pack_tail(const uint8_t* p, int64_t count) {
  uint64_t bits = 0;
  for (int64_t k = 0; k < count; ++k) bits |= static_cast<uint64_t>(p[k] != 0) << k;
  return bits;
}

void pack_row_generic(const uint8_t* row, int64_t width, uint64_t* words) {
  const int64_t full = width / 64;
  for (int64_t c = 0; c < full; ++c) {
#if GRO_X86
    const __m128i zero = _mm_setzero_si128();
    uint64_t bits = 0;
    for (int k = 0; k < 4; ++k) {
      const __m128i v = _mm_loadu_si128(reinterpret_cast<const __m128i*>(row + 64 * c + 16 * k));
      const uint32_t is_zero = static_cast<uint32_t>(_mm_movemask_epi8(_mm_cmpeq_epi8(v, zero)));
      bits |= static_cast<uint64_t>(~is_zero & 0xFFFFu) << (16 * k);
    }
    words[c] = bits;
#else
    words[c] = pack_tail(row + 64 * c, 64);
#endif
  }
  if (width % 64) words[full] = pack_tail(row + 64 * full, width % 64);
}

#if GRO_X86
GRO_TARGET("avx2") void pack_row_avx2(const uint8_t* row, int64_t width, uint64_t* words) {
  const int64_t full = width / 64;
  const __m256i zero = _mm256_setzero_si256();
  for (int64_t c = 0; c < full; ++c) {
    const __m256i lo = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(row + 64 * c));
    const __m256i hi = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(row + 64 * c + 32));
    const uint32_t zlo = static_cast<uint32_t>(_mm256_movemask_epi8(_mm256_cmpeq_epi8(lo, zero)));
    const uint32_t zhi = static_cast<uint32_t>(_mm256_movemask_epi8(_mm256_cmpeq_epi8(hi, zero)));
    words[c] = ~((static_cast<uint64_t>(zhi) << 32) | zlo);
  }
  if (width % 64) words[full] = pack_tail(row + 64 * full, width % 64);
}
#endif

#define GRO_DEFINE_COUNTERS(SUFFIX, ATTR)                                                          \
  ATTR int64_t rect_and_##SUFFIX(const PackedRect& a, const PackedRect& b, int64_t r0, int64_t r1,  \
                                 int64_t c0, int64_t c1) {                                         \
    int64_t total = 0;                                                                           \
    const int64_t na = a.cols(), nb = b.cols();                                                  \
    const uint64_t* pa = a.words.data() + (r0 - a.row_begin) * na + (c0 - a.col_begin);           \
    const uint64_t* pb = b.words.data() + (r0 - b.row_begin) * nb + (c0 - b.col_begin);           \
    for (int64_t r = r0; r < r1; ++r, pa += na, pb += nb)                                        \
      for (int64_t c = 0; c < c1 - c0; ++c) total += __builtin_popcountll(pa[c] & pb[c]);        \
    return total;                                                                                \
  }                                                                                              \
  ATTR void row_count_##SUFFIX(const uint64_t* row, const uint64_t* other, int64_t n, int64_t* both, \
                               int64_t* ones) {                                                  \
    int64_t s_both = 0, s_ones = 0;                                                              \
    for (int64_t c = 0; c < n; ++c) s_ones += __builtin_popcountll(row[c]);                      \
    if (other)                                                                                   \
      for (int64_t c = 0; c < n; ++c) s_both += __builtin_popcountll(row[c] & other[c]);         \
    *both += s_both;                                                                             \
    *ones += s_ones;                                                                             \
  }

GRO_DEFINE_COUNTERS(generic, )
#if GRO_X86
GRO_DEFINE_COUNTERS(popcnt, GRO_TARGET("popcnt"))
#endif

}  // namespace

void pack_row(const uint8_t* row, int64_t width, uint64_t* words) {
#if GRO_X86
  if (kHasAvx2) return pack_row_avx2(row, width, words);
#endif
  pack_row_generic(row, width, words);
}

void count_row(const uint64_t* row, const uint64_t* other, int64_t n, int64_t* both, int64_t* ones) {
#if GRO_X86
  if (kHasPopcnt) return row_count_popcnt(row, other, n, both, ones);
#endif
  row_count_generic(row, other, n, both, ones);
}

PackedRect pack_rect(const uint8_t* mask, int64_t height, int64_t width, std::vector<uint64_t>& scratch) {
  const int64_t wpr = words_per_row(width);
  scratch.resize(static_cast<size_t>(height * wpr));
  PackedRect rect;
  int64_t r0 = height, r1 = 0, c0 = wpr, c1 = 0;
  for (int64_t r = 0; r < height; ++r) {
    uint64_t* row = scratch.data() + r * wpr;
    pack_row(mask + r * width, width, row);
    int64_t both = 0, ones = 0;
    count_row(row, nullptr, wpr, &both, &ones);
    if (ones == 0) continue;
    rect.area += ones;
    r0 = std::min(r0, r), r1 = r + 1;
    int64_t lo = 0, hi = wpr;
    while (row[lo] == 0) ++lo;
    while (row[hi - 1] == 0) --hi;
    c0 = std::min(c0, lo), c1 = std::max(c1, hi);
  }
  if (rect.area == 0) return rect;
  rect.row_begin = r0, rect.row_end = r1, rect.col_begin = c0, rect.col_end = c1;
  rect.words.resize(static_cast<size_t>((r1 - r0) * (c1 - c0)));
  for (int64_t r = r0; r < r1; ++r)
    std::copy(scratch.data() + r * wpr + c0, scratch.data() + r * wpr + c1, rect.words.data() + (r - r0) * (c1 - c0));
  return rect;
}

int64_t rect_intersection(const PackedRect& a, const PackedRect& b) {
  const int64_t r0 = std::max(a.row_begin, b.row_begin), r1 = std::min(a.row_end, b.row_end);
  const int64_t c0 = std::max(a.col_begin, b.col_begin), c1 = std::min(a.col_end, b.col_end);
  if (r0 >= r1 || c0 >= c1) return 0;
#if GRO_X86
  if (kHasPopcnt) return rect_and_popcnt(a, b, r0, r1, c0, c1);
#endif
  return rect_and_generic(a, b, r0, r1, c0, c1);
}

}  // namespace gro_fast
