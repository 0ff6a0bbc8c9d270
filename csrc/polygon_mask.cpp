// Host code of polygon rasterisation with the pixel rule of pycocotools
// (frPyObjects + merge + decode on COCO polygon lists):
//   1. vertices are scaled by 5 and rounded ((int)(5 * v + 0.5));
//   2. every edge is walked one step at a time along its major axis on that 5x grid;
//   3. each step that changes the x grid column and lands on a pixel centre column
//      yields a toggle at (column, ceil of the downsampled y, clamped to [0, h]);
//   4. toggles sorted in column-major order switch pixels on and off (parity), and the
//      masks of an object's polygons are OR-ed.
// Polygons with coordinates far outside the image (beyond 4 * max(h, w) + 1024, where
// pycocotools' int arithmetic overflows) are first clipped to a rectangle one image size
// around the image; inside the image this can move boundary pixels of the clipped edges.
#include <algorithm>
#include <cmath>
#include <cstring>
#include <vector>

#include "checks.h"
#include "layout.h"
#include "registry.h"

namespace gro_fast {
namespace {

struct Pt {
  double x, y;
};

// Sutherland-Hodgman clipping of one polygon against x >= lo (axis 0) etc.
std::vector<Pt> clip_half_plane(const std::vector<Pt>& poly, int axis, double bound, bool keep_below) {
  std::vector<Pt> out;
  const size_t n = poly.size();
  auto coord = [axis](const Pt& p) { return axis == 0 ? p.x : p.y; };
  auto inside = [&](const Pt& p) { return keep_below ? coord(p) <= bound : coord(p) >= bound; };
  for (size_t i = 0; i < n; ++i) {
    const Pt& a = poly[i];
    const Pt& b = poly[(i + 1) % n];
    const bool ia = inside(a), ib = inside(b);
    if (ia) out.push_back(a);
    if (ia != ib) {
      const double t = (bound - coord(a)) / (coord(b) - coord(a));
      Pt c{a.x + t * (b.x - a.x), a.y + t * (b.y - a.y)};
      if (axis == 0) c.x = bound; else c.y = bound;
      out.push_back(c);
    }
  }
  return out;
}

std::vector<Pt> bounded_polygon(const double* xy, int64_t k, int64_t h, int64_t w) {
  std::vector<Pt> poly(static_cast<size_t>(k));
  double extreme = 0;
  for (int64_t j = 0; j < k; ++j) {
    poly[j] = {xy[2 * j], xy[2 * j + 1]};
    extreme = std::max({extreme, std::fabs(xy[2 * j]), std::fabs(xy[2 * j + 1])});
  }
  const double size = static_cast<double>(std::max(h, w));
  if (extreme <= 4 * size + 1024) return poly;
  const double margin = size + 16;
  poly = clip_half_plane(poly, 0, -margin, false);
  poly = clip_half_plane(poly, 0, static_cast<double>(w) + margin, true);
  poly = clip_half_plane(poly, 1, -margin, false);
  poly = clip_half_plane(poly, 1, static_cast<double>(h) + margin, true);
  return poly;
}

// Collects the column-major toggle positions of one polygon boundary.
class ToggleCollector {
 public:
  ToggleCollector(int64_t h, int64_t w, std::vector<int64_t>& out) : h_(h), w_(w), out_(out) {}

  void point(int64_t u, int64_t v) {
    if (have_ && u != pu_) pair(u, v);
    have_ = true;
    pu_ = u;
    pv_ = v;
  }

 private:
  void pair(int64_t u, int64_t v) {
    double xd = static_cast<double>(u < pu_ ? u : u - 1);
    xd = (xd + .5) / 5.0 - .5;
    if (std::floor(xd) != xd || xd < 0 || xd > static_cast<double>(w_ - 1)) return;
    double yd = static_cast<double>(v < pv_ ? v : pv_);
    yd = (yd + .5) / 5.0 - .5;
    if (yd < 0) yd = 0; else if (yd > static_cast<double>(h_)) yd = static_cast<double>(h_);
    yd = std::ceil(yd);
    out_.push_back(static_cast<int64_t>(xd) * h_ + static_cast<int64_t>(yd));
  }

  int64_t h_, w_;
  std::vector<int64_t>& out_;
  bool have_ = false;
  int64_t pu_ = 0, pv_ = 0;
};

void walk_edge(int64_t xs, int64_t ys, int64_t xe, int64_t ye, ToggleCollector& collect) {
  const int64_t dx = std::llabs(xe - xs), dy = std::llabs(ye - ys);
  if (dx == 0 && dy == 0) return collect.point(xs, ys);
  const bool flip = (dx >= dy && xs > xe) || (dx < dy && ys > ye);
  if (flip) {
    std::swap(xs, xe);
    std::swap(ys, ye);
  }
  if (dx >= dy) {
    const double s = static_cast<double>(ye - ys) / static_cast<double>(dx);
    for (int64_t d = 0; d <= dx; ++d) {
      const int64_t t = flip ? dx - d : d;
      collect.point(t + xs, static_cast<int64_t>(static_cast<double>(ys) + s * static_cast<double>(t) + .5));
    }
  } else {
    const double s = static_cast<double>(xe - xs) / static_cast<double>(dy);
    for (int64_t d = 0; d <= dy; ++d) {
      const int64_t t = flip ? dy - d : d;
      collect.point(static_cast<int64_t>(static_cast<double>(xs) + s * static_cast<double>(t) + .5), t + ys);
    }
  }
}

std::vector<int64_t> polygon_toggles(const double* xy, int64_t k, int64_t h, int64_t w) {
  const std::vector<Pt> poly = bounded_polygon(xy, k, h, w);
  std::vector<int64_t> toggles;
  const size_t n = poly.size();
  if (n == 0) return toggles;
  std::vector<int64_t> gx(n), gy(n);
  for (size_t j = 0; j < n; ++j) {
    gx[j] = static_cast<int64_t>(5.0 * poly[j].x + .5);
    gy[j] = static_cast<int64_t>(5.0 * poly[j].y + .5);
  }
  ToggleCollector collect(h, w, toggles);
  for (size_t j = 0; j < n; ++j) walk_edge(gx[j], gy[j], gx[(j + 1) % n], gy[(j + 1) % n], collect);
  std::sort(toggles.begin(), toggles.end());
  return toggles;
}

// coords float64 [K, 2], offsets int64 [P + 1] -> uint8 [H, W] union mask.
torch::Tensor polygons_to_mask_cpu(const torch::Tensor& coords, const torch::Tensor& offsets, int64_t height,
                                   int64_t width) {
  GRO_CHECK_CPU(coords);
  GRO_CHECK_DTYPE(coords, torch::kFloat64);
  GRO_CHECK_DTYPE(offsets, torch::kInt64);
  GRO_CHECK_CONTIGUOUS(coords);
  GRO_CHECK_CONTIGUOUS(offsets);
  GRO_CHECK_VALUE(coords.dim() == 2 && coords.size(1) == 2, "coords must have shape [K, 2], got ", coords.sizes());
  GRO_CHECK_VALUE(offsets.dim() == 1 && offsets.size(0) >= 1, "offsets must have shape [P + 1]");
  GRO_CHECK_VALUE(height >= 0 && width >= 0 && height <= kMaxMaskSide && width <= kMaxMaskSide,
                  "height and width must be in [0, 2^31), got ", height, " and ", width);
  GRO_CHECK_VALUE(height * width <= kMaxMaskPixels, "height x width = ", height, " x ", width,
                  " is more than 2^31 pixels");
  const int64_t p = offsets.size(0) - 1;
  const int64_t* off = offsets.data_ptr<int64_t>();
  GRO_CHECK_VALUE(off[0] == 0 && off[p] == coords.size(0), "offsets must start at 0 and end at K");
  for (int64_t i = 0; i < p; ++i)
    GRO_CHECK_VALUE(off[i + 1] - off[i] >= 3, "polygons[", i, "] must have at least 3 points");
  std::vector<uint8_t> column_major(static_cast<size_t>(height * width), 0);
  uint8_t* mask = column_major.data();
  const double* xy = coords.data_ptr<double>();
  const int64_t total = height * width;
  for (int64_t i = 0; i < p; ++i) {
    const auto toggles = polygon_toggles(xy + 2 * off[i], off[i + 1] - off[i], height, width);
    for (size_t t = 0; t < toggles.size(); t += 2) {
      const int64_t s = std::min(toggles[t], total);
      const int64_t e = t + 1 < toggles.size() ? std::min(toggles[t + 1], total) : total;
      if (e > s) std::memset(mask + s, 1, static_cast<size_t>(e - s));
    }
  }
  auto out = torch::empty({height, width}, torch::kUInt8);
  column_major_to_rows(mask, height, width, out.data_ptr<uint8_t>());
  return out;
}

}  // namespace
}  // namespace gro_fast

GRO_FAST_BINDINGS(polygon_mask) {
  m.def("polygons_to_mask_cpu", &gro_fast::polygons_to_mask_cpu,
        "COCO polygons (coords [K,2], offsets [P+1]) -> union mask uint8 [H, W], pycocotools pixels",
        pybind11::arg("coords"), pybind11::arg("offsets"), pybind11::arg("height"), pybind11::arg("width"));
}
