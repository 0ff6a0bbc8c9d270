// Host code of COCO run-length encoding (RLE), following pycocotools.mask semantics:
// masks are scanned in column-major (Fortran) order, counts alternate background /
// foreground runs starting with background, and the compressed string stores each count
// (minus the count two places back, from the fourth on) in 5-bit groups, one ASCII
// character (48 + 6 bits) per group, bit 0x20 meaning "more groups follow" and bit 0x10
// of the last group being the sign.
//
// Parsed RLEs travel as (counts int64 [total], offsets int64 [N+1], sizes int64 [N,2]);
// every op validates them and names the index of a malformed one (ValueError).
#include <algorithm>
#include <new>
#include <string>
#include <vector>

#include "checks.h"
#include "layout.h"
#include "registry.h"

namespace gro_fast {
namespace {

// One count per value; appends the compressed characters of counts to out.
std::string counts_to_string(const std::vector<int64_t>& counts) {
  std::string out;
  out.reserve(counts.size() * 2);
  for (size_t i = 0; i < counts.size(); ++i) {
    int64_t x = counts[i];
    if (i > 2) x -= counts[i - 2];
    bool more = true;
    while (more) {
      char c = static_cast<char>(x & 0x1f);
      x >>= 5;  // arithmetic shift: keeps the sign
      more = (c & 0x10) ? x != -1 : x != 0;
      if (more) c |= 0x20;
      out.push_back(static_cast<char>(c + 48));
    }
  }
  return out;
}

// Column-major runs of one row-major mask [h, w] (nonzero = foreground).
std::vector<int64_t> mask_counts(const uint8_t* mask, int64_t h, int64_t w) {
  std::vector<int64_t> counts;
  bool previous = false;
  int64_t run = 0;
  for (int64_t x = 0; x < w; ++x) {
    for (int64_t y = 0; y < h; ++y) {
      const bool value = mask[y * w + x] != 0;
      if (value != previous) {
        counts.push_back(run);
        run = 0;
        previous = value;
      }
      ++run;
    }
  }
  counts.push_back(run);
  return counts;
}

pybind11::list rle_encode_cpu(const torch::Tensor& masks) {
  GRO_CHECK_CPU(masks);
  GRO_CHECK_TYPE(masks.scalar_type() == torch::kUInt8 || masks.scalar_type() == torch::kBool,
                 "masks must be a uint8 or bool tensor, got ", masks.scalar_type());
  GRO_CHECK_DIM(masks, 3);
  GRO_CHECK_CONTIGUOUS(masks);
  const int64_t n = masks.size(0), h = masks.size(1), w = masks.size(2);
  const uint8_t* data = static_cast<const uint8_t*>(masks.data_ptr());
  std::vector<std::string> strings(static_cast<size_t>(n));
  {
    pybind11::gil_scoped_release release;
#pragma omp parallel for schedule(dynamic, 1) if (n > 1)
    for (int64_t i = 0; i < n; ++i) strings[i] = counts_to_string(mask_counts(data + i * h * w, h, w));
  }
  pybind11::list out;
  for (const auto& s : strings) out.append(pybind11::bytes(s));
  return out;
}

// Decodes one compressed string; returns an error message or "" on success.
std::string parse_one(const std::string& s, std::vector<int64_t>& counts) {
  size_t p = 0;
  while (p < s.size()) {
    int64_t x = 0;
    int k = 0;
    bool more = true;
    while (more) {
      if (p >= s.size()) return "the string ends inside a count";
      const int c = static_cast<unsigned char>(s[p]) - 48;
      if (c < 0 || c > 63) return concat_message("invalid character ", static_cast<int>(s[p]), " at position ", p);
      if (k >= 12) return concat_message("a count at position ", p, " is too long");
      x |= static_cast<int64_t>(c & 0x1f) << (5 * k);
      more = (c & 0x20) != 0;
      ++p;
      ++k;
      if (!more && (c & 0x10)) x |= static_cast<int64_t>(-1) * (static_cast<int64_t>(1) << (5 * k));
    }
    if (counts.size() > 2 && __builtin_add_overflow(x, counts[counts.size() - 2], &x))
      return concat_message("count ", counts.size(), " overflows a 64-bit integer");
    counts.push_back(x);
  }
  return "";
}

std::vector<torch::Tensor> rle_parse_cpu(const std::vector<std::string>& strings, const std::string& name) {
  const int64_t n = static_cast<int64_t>(strings.size());
  std::vector<std::vector<int64_t>> parsed(strings.size());
  std::vector<std::string> errors(strings.size());
  {
    pybind11::gil_scoped_release release;
#pragma omp parallel for schedule(dynamic, 64) if (n > 2048)
    for (int64_t i = 0; i < n; ++i) errors[i] = parse_one(strings[i], parsed[i]);
  }
  for (int64_t i = 0; i < n; ++i)
    GRO_CHECK_VALUE(errors[i].empty(), name, "[", i, "]: malformed RLE counts: ", errors[i]);
  auto offsets = torch::empty({n + 1}, torch::kInt64);
  int64_t* off = offsets.data_ptr<int64_t>();
  off[0] = 0;
  for (int64_t i = 0; i < n; ++i) off[i + 1] = off[i] + static_cast<int64_t>(parsed[i].size());
  auto counts = torch::empty({off[n]}, torch::kInt64);
  int64_t* c = counts.data_ptr<int64_t>();
  for (int64_t i = 0; i < n; ++i) std::copy(parsed[i].begin(), parsed[i].end(), c + off[i]);
  return {counts, offsets};
}

// Checks one set of parsed RLEs: non-negative counts summing to h * w.
void validate(const torch::Tensor& counts, const torch::Tensor& offsets, const torch::Tensor& sizes,
              const std::string& name) {
  GRO_CHECK_CPU(counts);
  GRO_CHECK_DTYPE(counts, torch::kInt64);
  GRO_CHECK_DTYPE(offsets, torch::kInt64);
  GRO_CHECK_DTYPE(sizes, torch::kInt64);
  GRO_CHECK_CONTIGUOUS(counts);
  GRO_CHECK_CONTIGUOUS(offsets);
  GRO_CHECK_CONTIGUOUS(sizes);
  const int64_t n = sizes.size(0);
  GRO_CHECK_VALUE(sizes.dim() == 2 && sizes.size(1) == 2 && offsets.dim() == 1 && offsets.size(0) == n + 1,
                  name, ": sizes must be [N, 2] and offsets [N + 1]");
  const int64_t* c = counts.data_ptr<int64_t>();
  const int64_t* off = offsets.data_ptr<int64_t>();
  const int64_t* sz = sizes.data_ptr<int64_t>();
  GRO_CHECK_VALUE(off[0] == 0 && off[n] == counts.numel(), name, ": offsets do not cover counts");
  for (int64_t i = 0; i < n; ++i) {
    GRO_CHECK_VALUE(off[i + 1] >= off[i], name, "[", i, "]: negative number of counts");
    GRO_CHECK_VALUE(sz[2 * i] >= 0 && sz[2 * i + 1] >= 0 && sz[2 * i] <= kMaxMaskSide &&
                        sz[2 * i + 1] <= kMaxMaskSide,
                    name, "[", i, "]: size must be [h, w] with 0 <= h, w < 2^31");
    const int64_t pixels = sz[2 * i] * sz[2 * i + 1];
    int64_t total = 0;
    for (int64_t k = off[i]; k < off[i + 1]; ++k) {
      GRO_CHECK_VALUE(c[k] >= 0, name, "[", i, "]: negative run length ", c[k], " at run ", k - off[i]);
      GRO_CHECK_VALUE(c[k] <= pixels - total, name, "[", i, "]: counts exceed h * w = ", pixels);
      total += c[k];
    }
    GRO_CHECK_VALUE(total == pixels, name, "[", i, "]: counts sum to ", total, ", expected h * w = ", pixels);
  }
}

// Decodes into row-major masks [N, H, W] (through a column-major buffer per mask).
torch::Tensor rle_decode_cpu(const torch::Tensor& counts, const torch::Tensor& offsets, const torch::Tensor& sizes,
                             const std::string& name) {
  validate(counts, offsets, sizes, name);
  const int64_t n = sizes.size(0);
  const int64_t* sz = sizes.data_ptr<int64_t>();
  for (int64_t i = 1; i < n; ++i)
    GRO_CHECK_VALUE(sz[2 * i] == sz[0] && sz[2 * i + 1] == sz[1], name, "[", i, "]: size [", sz[2 * i], ", ",
                    sz[2 * i + 1], "] differs from ", name, "[0] size [", sz[0], ", ", sz[1],
                    "]; decode masks of one size together");
  const int64_t h = n ? sz[0] : 0, w = n ? sz[1] : 0;
  GRO_CHECK_VALUE(h * w <= kMaxMaskPixels, name, "[0]: a ", h, " x ", w, " mask has more than 2^31 pixels; "
                  "decoding it is refused (rle_area and rle_iou work on the runs)");
  auto out = torch::empty({n, h, w}, torch::kUInt8);
  uint8_t* o = out.data_ptr<uint8_t>();
  const int64_t* c = counts.data_ptr<int64_t>();
  const int64_t* off = offsets.data_ptr<int64_t>();
  bool out_of_memory = false;
  {
    pybind11::gil_scoped_release release;
#pragma omp parallel if (n > 1)
    {
      std::vector<uint8_t> column_major;
      try {  // an exception must not leave an OpenMP region
        column_major.resize(static_cast<size_t>(h * w));
      } catch (const std::bad_alloc&) {
#pragma omp atomic write
        out_of_memory = true;
      }
#pragma omp for schedule(dynamic, 1)
      for (int64_t i = 0; i < n; ++i) {
        if (column_major.size() != static_cast<size_t>(h * w)) continue;
        uint8_t value = 0;
        int64_t pos = 0;
        for (int64_t k = off[i]; k < off[i + 1]; ++k, value ^= 1) {
          std::fill(column_major.begin() + pos, column_major.begin() + pos + c[k], value);
          pos += c[k];
        }
        column_major_to_rows(column_major.data(), h, w, o + i * h * w);
      }
    }
  }
  if (out_of_memory) throw std::bad_alloc();
  return out;
}

torch::Tensor rle_area_cpu(const torch::Tensor& counts, const torch::Tensor& offsets, const torch::Tensor& sizes,
                           const std::string& name) {
  validate(counts, offsets, sizes, name);
  const int64_t n = sizes.size(0);
  auto area = torch::empty({n}, torch::kInt64);
  const int64_t* c = counts.data_ptr<int64_t>();
  const int64_t* off = offsets.data_ptr<int64_t>();
  int64_t* a = area.data_ptr<int64_t>();
  std::fill(a, a + n, int64_t{0});
  for (int64_t i = 0; i < n; ++i)
    for (int64_t k = off[i] + 1; k < off[i + 1]; k += 2) a[i] += c[k];
  return area;
}

// Foreground runs of parsed RLEs as absolute [start, end) intervals, with their areas and
// pixel bounding boxes (x0, x1, y0, y1 inclusive; empty masks get x0 > x1).
struct RleRuns {
  std::vector<int64_t> start, end, first, area, box;
};

RleRuns rle_runs(const torch::Tensor& counts, const torch::Tensor& offsets, const torch::Tensor& sizes) {
  const int64_t n = sizes.size(0);
  const int64_t* c = counts.data_ptr<int64_t>();
  const int64_t* off = offsets.data_ptr<int64_t>();
  const int64_t* sz = sizes.data_ptr<int64_t>();
  RleRuns r;
  r.first.assign(n + 1, 0);
  for (int64_t i = 0; i < n; ++i) r.first[i + 1] = r.first[i] + (off[i + 1] - off[i]) / 2;
  r.start.resize(r.first[n]);
  r.end.resize(r.first[n]);
  r.area.assign(n, 0);
  r.box.assign(4 * n, 0);
  for (int64_t i = 0; i < n; ++i) {
    const int64_t h = std::max<int64_t>(sz[2 * i], 1);
    int64_t pos = 0, slot = r.first[i];
    int64_t x0 = INT64_MAX, x1 = -1, y0 = INT64_MAX, y1 = -1;
    for (int64_t k = off[i]; k < off[i + 1]; ++k) {
      const int64_t len = c[k];
      if ((k - off[i]) % 2 == 1) {
        r.start[slot] = pos;
        r.end[slot++] = pos + len;
        if (len > 0) {
          r.area[i] += len;
          const int64_t xs = pos / h, xe = (pos + len - 1) / h;
          x0 = std::min(x0, xs);
          x1 = std::max(x1, xe);
          y0 = std::min(y0, xs == xe ? pos % h : 0);
          y1 = std::max(y1, xs == xe ? (pos + len - 1) % h : h - 1);
        }
      }
      pos += len;
    }
    r.box[4 * i] = x0, r.box[4 * i + 1] = x1, r.box[4 * i + 2] = y0, r.box[4 * i + 3] = y1;
  }
  return r;
}

int64_t runs_intersection(const RleRuns& a, int64_t i, const RleRuns& b, int64_t j) {
  int64_t p = a.first[i], q = b.first[j];
  const int64_t pe = a.first[i + 1], qe = b.first[j + 1];
  if (p == pe || q == qe) return 0;
  // Skip the runs that end before the other mask's first run starts.
  const int64_t from = std::max(a.start[p], b.start[q]);
  p = std::upper_bound(a.end.begin() + p, a.end.begin() + pe, from) - a.end.begin();
  q = std::upper_bound(b.end.begin() + q, b.end.begin() + qe, from) - b.end.begin();
  int64_t inter = 0;
  while (p < pe && q < qe) {
    const int64_t lo = std::max(a.start[p], b.start[q]), hi = std::min(a.end[p], b.end[q]);
    if (hi > lo) inter += hi - lo;
    if (a.end[p] < b.end[q]) ++p; else ++q;
  }
  return inter;
}

bool boxes_overlap(const RleRuns& a, int64_t i, const RleRuns& b, int64_t j) {
  const int64_t* p = &a.box[4 * i];
  const int64_t* q = &b.box[4 * j];
  return p[0] <= p[1] && q[0] <= q[1] && std::max(p[0], q[0]) <= std::min(p[1], q[1]) &&
         std::max(p[2], q[2]) <= std::min(p[3], q[3]);
}

torch::Tensor rle_iou_cpu(const torch::Tensor& counts1, const torch::Tensor& offsets1, const torch::Tensor& sizes1,
                          const torch::Tensor& counts2, const torch::Tensor& offsets2, const torch::Tensor& sizes2,
                          const torch::Tensor& iscrowd) {
  validate(counts1, offsets1, sizes1, "rles1");
  validate(counts2, offsets2, sizes2, "rles2");
  const int64_t n = sizes1.size(0), m = sizes2.size(0);
  GRO_CHECK_DTYPE(iscrowd, torch::kUInt8);
  GRO_CHECK_VALUE(iscrowd.dim() == 1 && iscrowd.size(0) == m, "iscrowd must have one entry per rles2 item (", m,
                  "), got shape ", iscrowd.sizes());
  const int64_t* s1 = sizes1.data_ptr<int64_t>();
  const int64_t* s2 = sizes2.data_ptr<int64_t>();
  for (int64_t i = 0; i < n; ++i)
    GRO_CHECK_VALUE(s1[2 * i] == s1[0] && s1[2 * i + 1] == s1[1], "rles1[", i, "]: size differs from rles1[0]");
  for (int64_t j = 0; j < m; ++j)
    GRO_CHECK_VALUE(n == 0 || (s2[2 * j] == s1[0] && s2[2 * j + 1] == s1[1]), "rles2[", j, "]: size [", s2[2 * j],
                    ", ", s2[2 * j + 1], "] differs from the size of rles1 [", s1[0], ", ", s1[1], "]");
  auto iou = torch::empty({n, m}, torch::kFloat64);  // every element is written below
  if (n == 0 || m == 0) return iou;
  const RleRuns a = rle_runs(counts1, offsets1, sizes1), b = rle_runs(counts2, offsets2, sizes2);
  const uint8_t* crowd = iscrowd.data_ptr<uint8_t>();
  double* o = iou.data_ptr<double>();
  pybind11::gil_scoped_release release;
#pragma omp parallel for collapse(2) schedule(dynamic, 64) if (n * m > 256)
  for (int64_t i = 0; i < n; ++i) {
    for (int64_t j = 0; j < m; ++j) {
      o[i * m + j] = 0.0;
      if (!boxes_overlap(a, i, b, j)) continue;
      const int64_t inter = runs_intersection(a, i, b, j);
      if (inter == 0) continue;
      const int64_t uni = crowd[j] ? a.area[i] : a.area[i] + b.area[j] - inter;
      o[i * m + j] = static_cast<double>(inter) / static_cast<double>(uni);
    }
  }
  return iou;
}

}  // namespace
}  // namespace gro_fast

GRO_FAST_BINDINGS(rle) {
  using pybind11::arg;
  m.def("rle_encode_cpu", &gro_fast::rle_encode_cpu, "masks [N,H,W] -> list of compressed COCO RLE counts (bytes)",
        arg("masks"));
  m.def("rle_parse_cpu", &gro_fast::rle_parse_cpu, "compressed counts strings -> (counts int64, offsets int64)",
        arg("strings"), arg("name"));
  m.def("rle_decode_cpu", &gro_fast::rle_decode_cpu, "parsed RLEs -> uint8 [N, H, W] masks",
        arg("counts"), arg("offsets"), arg("sizes"), arg("name"));
  m.def("rle_area_cpu", &gro_fast::rle_area_cpu, "parsed RLEs -> int64 areas [N]", arg("counts"), arg("offsets"),
        arg("sizes"), arg("name"));
  m.def("rle_iou_cpu", &gro_fast::rle_iou_cpu, "pairwise IoU of parsed RLEs -> float64 [N, M] (pycocotools iscrowd)",
        arg("counts1"), arg("offsets1"), arg("sizes1"), arg("counts2"), arg("offsets2"), arg("sizes2"),
        arg("iscrowd"));
}
