// Host code of the exact area IoU of simple (possibly non-convex) polygons, computed
// without rasterising.
//
// The area of P ∩ Q is the boundary integral (1/2) ∮ (x dy - y dx) over the boundary of
// P ∩ Q, which consists of the parts of P's edges inside Q and the parts of Q's edges
// inside P (both oriented counter-clockwise). Each edge is split at its intersections
// with the other polygon; each piece is kept when its midpoint lies inside the other
// polygon. Pieces shared by both boundaries (collinear overlaps) count once when both
// run the same way and not at all when they run opposite ways. Coordinates are shifted
// next to the overlap before the integral, to keep the sums well conditioned.
// Self-intersecting polygons are outside the contract (the result is then unspecified).
#include <algorithm>
#include <cmath>
#include <new>
#include <vector>

#include "checks.h"
#include "registry.h"

namespace gro_fast {
namespace {

struct P2 {
  double x, y;
};

inline double cross(P2 a, P2 b) { return a.x * b.y - a.y * b.x; }
inline double dot(P2 a, P2 b) { return a.x * b.x + a.y * b.y; }
inline P2 sub(P2 a, P2 b) { return {a.x - b.x, a.y - b.y}; }

struct PolyInfo {
  const double* xy;
  int64_t n;
  bool ccw;
  double area, x0, y0, x1, y1;
};

PolyInfo describe(const double* xy, int64_t n) {
  PolyInfo p{xy, n, true, 0, xy[0], xy[1], xy[0], xy[1]};
  double twice = 0;
  for (int64_t i = 0; i < n; ++i) {
    const int64_t j = (i + 1) % n;
    twice += (xy[2 * i] - xy[0]) * (xy[2 * j + 1] - xy[1]) - (xy[2 * j] - xy[0]) * (xy[2 * i + 1] - xy[1]);
    p.x0 = std::min(p.x0, xy[2 * i]), p.x1 = std::max(p.x1, xy[2 * i]);
    p.y0 = std::min(p.y0, xy[2 * i + 1]), p.y1 = std::max(p.y1, xy[2 * i + 1]);
  }
  p.ccw = twice >= 0;
  p.area = std::fabs(twice) / 2;
  return p;
}

// Vertices of p, counter-clockwise, shifted by -origin.
void local_ccw(const PolyInfo& p, P2 origin, std::vector<P2>& out) {
  out.resize(static_cast<size_t>(p.n));
  for (int64_t i = 0; i < p.n; ++i) {
    const int64_t k = p.ccw ? i : p.n - 1 - i;
    out[i] = {p.xy[2 * k] - origin.x, p.xy[2 * k + 1] - origin.y};
  }
}

bool inside(P2 pt, const std::vector<P2>& poly) {
  bool in = false;
  const size_t n = poly.size();
  for (size_t i = 0, j = n - 1; i < n; j = i++) {
    const P2 a = poly[i], b = poly[j];
    if ((a.y > pt.y) != (b.y > pt.y) && pt.x < (b.x - a.x) * (pt.y - a.y) / (b.y - a.y) + a.x) in = !in;
  }
  return in;
}

// Horizontal slabs of a polygon's edges for point-in-polygon tests: only the edges whose
// y-range holds the point can cross its horizontal ray, and they all sit in its slab.
struct SlabIndex {
  const std::vector<P2>* poly = nullptr;  // the polygon indexed (null: not built)
  double y0 = 0, y1 = 0, height = 1;
  int64_t slabs = 0;
  std::vector<int64_t> start;
  std::vector<size_t> items;
};

int64_t slab_of(const SlabIndex& x, double y) {
  const double c = std::floor((y - x.y0) / x.height);
  return c < 0 ? 0 : c >= static_cast<double>(x.slabs) ? x.slabs - 1 : static_cast<int64_t>(c);
}

void build_slabs(const std::vector<P2>& poly, SlabIndex& x) {
  const size_t n = poly.size();
  x.poly = &poly;
  x.y0 = x.y1 = poly[0].y;
  for (const P2& p : poly) x.y0 = std::min(x.y0, p.y), x.y1 = std::max(x.y1, p.y);
  x.slabs = std::clamp<int64_t>(static_cast<int64_t>(n / 4), 1, 65536);
  x.height = std::max((x.y1 - x.y0) / static_cast<double>(x.slabs), 1e-300);
  x.start.assign(static_cast<size_t>(x.slabs + 1), 0);
  for (int pass = 0; pass < 2; ++pass) {
    std::vector<int64_t> fill(x.start.begin(), x.start.end() - 1);
    if (pass == 1) x.items.resize(static_cast<size_t>(x.start.back()));
    for (size_t k = 0; k < n; ++k) {
      const P2 q0 = poly[k], q1 = poly[(k + 1) % n];
      const int64_t s0 = slab_of(x, std::min(q0.y, q1.y)), s1 = slab_of(x, std::max(q0.y, q1.y));
      for (int64_t c = s0; c <= s1; ++c) {
        if (pass == 0) ++x.start[c + 1]; else x.items[fill[c]++] = k;
      }
    }
    if (pass == 0)
      for (size_t c = 1; c < x.start.size(); ++c) x.start[c] += x.start[c - 1];
  }
}

// inside(), through the slab index of poly (built on first use): the same crossings.
bool inside_indexed(P2 pt, const std::vector<P2>& poly, SlabIndex& x) {
  if (poly.size() < 64) return inside(pt, poly);
  if (x.poly != &poly) build_slabs(poly, x);
  if (pt.y < x.y0 || pt.y > x.y1) return false;
  bool in = false;
  const int64_t c = slab_of(x, pt.y);
  const size_t n = poly.size();
  for (int64_t t = x.start[c]; t < x.start[c + 1]; ++t) {
    const size_t k = x.items[t];
    const P2 a = poly[(k + 1) % n], b = poly[k];
    if ((a.y > pt.y) != (b.y > pt.y) && pt.x < (b.x - a.x) * (pt.y - a.y) / (b.y - a.y) + a.x) in = !in;
  }
  return in;
}

struct Overlap {
  double lo, hi;
  bool same_direction;
};

// A point where an edge meets the other polygon's boundary; `proper` when two edges
// cross transversally away from both edges' end points (the inside status flips there).
struct Cut {
  double t;
  bool proper;
  bool operator<(const Cut& o) const { return t < o.t; }
};

// A uniform grid over the overlap box holding the edges of the other polygon, so that an
// edge is tested against the few edges near it, not all of them (two 100,000-vertex
// polygons would otherwise take minutes). Small polygons skip it.
struct EdgeGrid {
  double x0 = 0, y0 = 0, cw = 1, ch = 1;
  int64_t gx = 0, gy = 0;
  std::vector<int64_t> start;  // CSR: items of cell c are items[start[c] .. start[c + 1])
  std::vector<size_t> items;
  std::vector<uint32_t> stamp;
  uint32_t epoch = 0;
};

struct Scratch {
  std::vector<P2> a, b;
  SlabIndex slabs;
  std::vector<size_t> near;  // edges of the other polygon that meet the overlap box
  std::vector<size_t> candidates;
  std::vector<Cut> cuts;
  std::vector<Overlap> overlaps;
  EdgeGrid grid;
  bool use_grid = false;
};

constexpr size_t kGridFrom = 64;  // edges near the overlap box before the grid pays off

int64_t cell_of(double v, double origin, double width, int64_t cells) {
  const double c = std::floor((v - origin) / width);
  return c < 0 ? 0 : c >= static_cast<double>(cells) ? cells - 1 : static_cast<int64_t>(c);
}

// Fills s.grid with the edges s.near of poly over box (x0, x1, y0, y1), expanded by tol.
void build_grid(const std::vector<P2>& poly, const double box[4], double tol, Scratch& s) {
  EdgeGrid& g = s.grid;
  const size_t n = poly.size();
  const int64_t side = std::min<int64_t>(1024, static_cast<int64_t>(std::ceil(std::sqrt(s.near.size()))));
  g.gx = g.gy = std::max<int64_t>(1, side);
  g.x0 = box[0] - tol, g.y0 = box[2] - tol;
  g.cw = std::max((box[1] - box[0] + 2 * tol) / static_cast<double>(g.gx), 1e-300);
  g.ch = std::max((box[3] - box[2] + 2 * tol) / static_cast<double>(g.gy), 1e-300);
  g.start.assign(static_cast<size_t>(g.gx * g.gy + 1), 0);
  auto span = [&](size_t k, int64_t r[4]) {
    const P2 q0 = poly[k], q1 = poly[(k + 1) % n];
    r[0] = cell_of(std::min(q0.x, q1.x) - tol, g.x0, g.cw, g.gx);
    r[1] = cell_of(std::max(q0.x, q1.x) + tol, g.x0, g.cw, g.gx);
    r[2] = cell_of(std::min(q0.y, q1.y) - tol, g.y0, g.ch, g.gy);
    r[3] = cell_of(std::max(q0.y, q1.y) + tol, g.y0, g.ch, g.gy);
  };
  int64_t r[4];
  for (size_t k : s.near) {
    span(k, r);
    for (int64_t cy = r[2]; cy <= r[3]; ++cy)
      for (int64_t cx = r[0]; cx <= r[1]; ++cx) ++g.start[cy * g.gx + cx + 1];
  }
  for (size_t c = 1; c < g.start.size(); ++c) g.start[c] += g.start[c - 1];
  g.items.resize(static_cast<size_t>(g.start.back()));
  std::vector<int64_t> fill(g.start.begin(), g.start.end() - 1);
  for (size_t k : s.near) {
    span(k, r);
    for (int64_t cy = r[2]; cy <= r[3]; ++cy)
      for (int64_t cx = r[0]; cx <= r[1]; ++cx) g.items[fill[cy * g.gx + cx]++] = k;
  }
  g.stamp.assign(n, 0);
  g.epoch = 0;
}

// The edges to test against the box (ex0, ex1, ey0, ey1), in increasing index order.
const std::vector<size_t>& candidates(double ex0, double ex1, double ey0, double ey1, Scratch& s) {
  if (!s.use_grid) return s.near;
  EdgeGrid& g = s.grid;
  if (++g.epoch == 0) std::fill(g.stamp.begin(), g.stamp.end(), 0), g.epoch = 1;
  s.candidates.clear();
  const int64_t cx0 = cell_of(ex0, g.x0, g.cw, g.gx), cx1 = cell_of(ex1, g.x0, g.cw, g.gx);
  const int64_t cy0 = cell_of(ey0, g.y0, g.ch, g.gy), cy1 = cell_of(ey1, g.y0, g.ch, g.gy);
  for (int64_t cy = cy0; cy <= cy1; ++cy)
    for (int64_t cx = cx0; cx <= cx1; ++cx)
      for (int64_t t = g.start[cy * g.gx + cx]; t < g.start[cy * g.gx + cx + 1]; ++t) {
        const size_t k = g.items[t];
        if (g.stamp[k] != g.epoch) g.stamp[k] = g.epoch, s.candidates.push_back(k);
      }
  std::sort(s.candidates.begin(), s.candidates.end());
  return s.candidates;
}

constexpr double kEndEps = 1e-9;  // parameter distance that counts as "at an end point"

// Splits edge p0 -> p0 + d at its intersections with the edges s.near of poly (into
// s.cuts, sorted) and records collinear overlaps (into s.overlaps).
void split_edge(P2 p0, P2 d, const std::vector<P2>& poly, double tol, Scratch& s) {
  s.cuts.clear();
  s.overlaps.clear();
  const double dd = dot(d, d);
  const double ex0 = std::min(p0.x, p0.x + d.x) - tol, ex1 = std::max(p0.x, p0.x + d.x) + tol;
  const double ey0 = std::min(p0.y, p0.y + d.y) - tol, ey1 = std::max(p0.y, p0.y + d.y) + tol;
  const size_t n = poly.size();
  for (size_t k : candidates(ex0, ex1, ey0, ey1, s)) {
    const P2 q0 = poly[k], q1 = poly[(k + 1) % n];
    if (std::max(q0.x, q1.x) < ex0 || std::min(q0.x, q1.x) > ex1 || std::max(q0.y, q1.y) < ey0 ||
        std::min(q0.y, q1.y) > ey1)
      continue;
    const P2 g = sub(q1, q0), w = sub(q0, p0);
    const double gg = dot(g, g);
    if (gg == 0) continue;
    const double den = cross(d, g);
    if (den * den > 1e-24 * dd * gg) {
      const double t = cross(w, g) / den, u = cross(w, d) / den;
      const double eps = 1e-12;
      if (t >= -eps && t <= 1 + eps && u >= -eps && u <= 1 + eps) {
        const bool proper = t > kEndEps && t < 1 - kEndEps && u > kEndEps && u < 1 - kEndEps;
        s.cuts.push_back({std::clamp(t, 0.0, 1.0), proper});
      }
      continue;
    }
    const double off_line = cross(d, w);
    if (off_line * off_line > tol * tol * dd) continue;  // parallel, not collinear
    const double t0 = dot(w, d) / dd, t1 = dot(sub(q1, p0), d) / dd;
    const double lo = std::max(0.0, std::min(t0, t1)), hi = std::min(1.0, std::max(t0, t1));
    if (hi < lo) continue;
    s.cuts.push_back({lo, false});
    s.cuts.push_back({hi, false});
    if (hi > lo) s.overlaps.push_back({lo, hi, dot(d, g) > 0});
  }
  std::sort(s.cuts.begin(), s.cuts.end());
}

// Whether the boundary point just before the current position is inside the other
// polygon, when known without a point-in-polygon test.
struct Walk {
  bool known = false;
  bool inside = false;
};

// Twice the integral over the pieces of edge p0 -> p0 + d that lie inside b (plus shared
// pieces running the same way when count_shared). The inside status is carried along the
// boundary and flipped at proper crossings; it is recomputed with a point-in-polygon
// test only after degenerate events (touching, collinear overlaps).
double edge_part(P2 p0, P2 d, const std::vector<P2>& b, double tol, bool count_shared, Scratch& s, Walk& walk) {
  split_edge(p0, d, b, tol, s);
  size_t k = 0;
  while (k < s.cuts.size() && s.cuts[k].t <= kEndEps) ++k;
  bool known = walk.known && k == 0;
  bool in = walk.inside;
  double twice = 0, ta = 0;
  while (true) {
    double tb = 1;
    size_t events = 0;
    bool all_proper = true;
    if (k < s.cuts.size() && s.cuts[k].t < 1 - kEndEps) {
      tb = s.cuts[k].t;
      for (; k < s.cuts.size() && s.cuts[k].t - tb <= kEndEps; ++k, ++events) all_proper &= s.cuts[k].proper;
    }
    const bool at_end = events == 0;
    if (tb - ta > 1e-15) {
      const double tm = 0.5 * (ta + tb);
      const Overlap* shared = nullptr;
      for (const Overlap& o : s.overlaps)
        if (tm >= o.lo && tm <= o.hi) shared = &o;
      bool keep;
      if (shared) {
        keep = count_shared && shared->same_direction;
        known = false;
      } else {
        if (!known) in = inside_indexed({p0.x + tm * d.x, p0.y + tm * d.y}, b, s.slabs), known = true;
        keep = in;
      }
      if (keep) twice += cross({p0.x + ta * d.x, p0.y + ta * d.y}, {p0.x + tb * d.x, p0.y + tb * d.y});
    }
    if (at_end) {
      walk.known = known && k == s.cuts.size();  // nothing touches the end vertex
      walk.inside = in;
      return twice;
    }
    if (events == 1 && all_proper) in = !in; else known = false;
    ta = tb;
  }
}

// Twice the integral over the boundary pieces of polygon a inside polygon b.
double boundary_part(const std::vector<P2>& a, const std::vector<P2>& b, double tol, bool count_shared,
                     const double box[4], Scratch& s) {
  s.near.clear();
  const size_t nb = b.size();
  for (size_t k = 0; k < nb; ++k) {
    const P2 q0 = b[k], q1 = b[(k + 1) % nb];
    if (std::max(q0.x, q1.x) >= box[0] - tol && std::min(q0.x, q1.x) <= box[1] + tol &&
        std::max(q0.y, q1.y) >= box[2] - tol && std::min(q0.y, q1.y) <= box[3] + tol)
      s.near.push_back(k);
  }
  s.slabs.poly = nullptr;  // b changed: the slab index is rebuilt on first use
  s.use_grid = s.near.size() >= kGridFrom;
  if (s.use_grid) build_grid(b, box, tol, s);
  double twice = 0;
  Walk walk;
  const size_t n = a.size();
  for (size_t i = 0; i < n; ++i) {
    const P2 p0 = a[i], p1 = a[(i + 1) % n], d = sub(p1, p0);
    if (d.x == 0 && d.y == 0) continue;
    if (std::max(p0.x, p1.x) < box[0] - tol || std::min(p0.x, p1.x) > box[1] + tol ||
        std::max(p0.y, p1.y) < box[2] - tol || std::min(p0.y, p1.y) > box[3] + tol) {
      walk = {true, false};  // outside the overlap box, hence outside b
      continue;
    }
    twice += edge_part(p0, d, b, tol, count_shared, s, walk);
  }
  return twice;
}

double pair_iou(const PolyInfo& p, const PolyInfo& q, Scratch& s) {
  const double ox0 = std::max(p.x0, q.x0), ox1 = std::min(p.x1, q.x1);
  const double oy0 = std::max(p.y0, q.y0), oy1 = std::min(p.y1, q.y1);
  if (ox1 <= ox0 || oy1 <= oy0 || p.area <= 0 || q.area <= 0) return 0.0;
  const P2 origin{0.5 * (ox0 + ox1), 0.5 * (oy0 + oy1)};
  local_ccw(p, origin, s.a);
  local_ccw(q, origin, s.b);
  const double scale = std::max({p.x1 - p.x0, p.y1 - p.y0, q.x1 - q.x0, q.y1 - q.y0});
  const double tol = 1e-12 * scale;
  const double box[4] = {ox0 - origin.x, ox1 - origin.x, oy0 - origin.y, oy1 - origin.y};
  const double twice = boundary_part(s.a, s.b, tol, true, box, s) + boundary_part(s.b, s.a, tol, false, box, s);
  const double inter = std::clamp(0.5 * twice, 0.0, std::min(p.area, q.area));
  const double uni = p.area + q.area - inter;
  return uni > 0 ? inter / uni : 0.0;
}

std::vector<PolyInfo> describe_all(const torch::Tensor& coords, const torch::Tensor& offsets, const char* name) {
  GRO_CHECK_VALUE(coords.dim() == 2 && coords.size(1) == 2, name, ": coords must have shape [K, 2]");
  GRO_CHECK_VALUE(offsets.dim() == 1 && offsets.size(0) >= 1, name, ": offsets must have shape [N + 1]");
  const int64_t n = offsets.size(0) - 1;
  const int64_t* off = offsets.data_ptr<int64_t>();
  GRO_CHECK_VALUE(off[0] == 0 && off[n] == coords.size(0), name, ": offsets must start at 0 and end at K");
  std::vector<PolyInfo> out;
  out.reserve(static_cast<size_t>(n));
  const double* xy = coords.data_ptr<double>();
  for (int64_t i = 0; i < n; ++i) {
    GRO_CHECK_VALUE(off[i + 1] - off[i] >= 3, name, "[", i, "] must have at least 3 points");
    out.push_back(describe(xy + 2 * off[i], off[i + 1] - off[i]));
  }
  return out;
}

torch::Tensor polygon_iou_cpu(const torch::Tensor& coords1, const torch::Tensor& offsets1,
                              const torch::Tensor& coords2, const torch::Tensor& offsets2) {
  for (const auto* t : {&coords1, &coords2}) {
    GRO_CHECK_CPU((*t));
    GRO_CHECK_DTYPE((*t), torch::kFloat64);
    GRO_CHECK_CONTIGUOUS((*t));
  }
  GRO_CHECK_DTYPE(offsets1, torch::kInt64);
  GRO_CHECK_DTYPE(offsets2, torch::kInt64);
  const auto polys1 = describe_all(coords1, offsets1, "polys1");
  const auto polys2 = describe_all(coords2, offsets2, "polys2");
  const int64_t n = static_cast<int64_t>(polys1.size()), m = static_cast<int64_t>(polys2.size());
  auto iou = torch::empty({n, m}, torch::kFloat64);  // every element is written
  double* out = iou.data_ptr<double>();
  bool out_of_memory = false;
  {
    pybind11::gil_scoped_release release;
#pragma omp parallel
    {
      Scratch scratch;
#pragma omp for collapse(2) schedule(dynamic, 64)
      for (int64_t i = 0; i < n; ++i)
        for (int64_t j = 0; j < m; ++j) {
          try {  // an exception must not leave an OpenMP region
            out[i * m + j] = pair_iou(polys1[i], polys2[j], scratch);
          } catch (const std::bad_alloc&) {
#pragma omp atomic write
            out_of_memory = true;
          }
        }
    }
  }
  if (out_of_memory) throw std::bad_alloc();
  return iou;
}

}  // namespace
}  // namespace gro_fast

GRO_FAST_BINDINGS(polygon_iou) {
  m.def("polygon_iou_cpu", &gro_fast::polygon_iou_cpu,
        "exact pairwise area IoU of simple polygons (coords [K,2] float64, offsets [N+1]) -> float64 [N, M]",
        pybind11::arg("coords1"), pybind11::arg("offsets1"), pybind11::arg("coords2"), pybind11::arg("offsets2"));
}
