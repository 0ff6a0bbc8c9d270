// Pairwise box IoU / GIoU of one box pair, shared by the CPU (csrc/box_iou.cpp) and the
// CUDA kernel (kernels/box_iou.cu), so both follow one convention (see
// gro_fast/ops/box_iou/reference.py). Plain C++ with no torch headers.
//
// Boxes are xyxy floats; the arithmetic runs in double so that any finite float input
// (even 3e38) gives a finite result. Degenerate boxes have zero area and never intersect;
// a zero union gives IoU 0 and a zero enclosing box gives penalty 0, never NaN.
#pragma once

#ifdef __CUDACC__
#define GRO_HD __host__ __device__ __forceinline__
#else
#define GRO_HD inline
#endif

namespace gro_fast {

GRO_HD double box_extent(double lo, double hi, double pad) {
  double e = hi - lo + pad;
  return e > 0.0 ? e : 0.0;
}

GRO_HD double box_min(double a, double b) { return a < b ? a : b; }
GRO_HD double box_max(double a, double b) { return a > b ? a : b; }

// a, b: 4 floats each (x1, y1, x2, y2). giou: generalised IoU; inclusive: +1 pixel
// widths (pixel-inclusive convention).
GRO_HD float box_pair_iou(const float* a, const float* b, bool giou, bool inclusive) {
  const double pad = inclusive ? 1.0 : 0.0;
  const double area1 = box_extent(a[0], a[2], pad) * box_extent(a[1], a[3], pad);
  const double area2 = box_extent(b[0], b[2], pad) * box_extent(b[1], b[3], pad);
  const double iw = box_extent(box_max(a[0], b[0]), box_min(a[2], b[2]), pad);
  const double ih = box_extent(box_max(a[1], b[1]), box_min(a[3], b[3]), pad);
  const double inter = (area1 > 0.0 && area2 > 0.0) ? iw * ih : 0.0;
  const double uni = area1 + area2 - inter;
  const double iou = uni > 0.0 ? inter / uni : 0.0;
  if (!giou) return static_cast<float>(iou);
  const double cw = box_extent(box_min(a[0], b[0]), box_max(a[2], b[2]), pad);
  const double ch = box_extent(box_min(a[1], b[1]), box_max(a[3], b[3]), pad);
  const double hull = cw * ch;
  const double penalty = hull > 0.0 ? (hull - uni) / hull : 0.0;
  return static_cast<float>(iou - penalty);
}

}  // namespace gro_fast
