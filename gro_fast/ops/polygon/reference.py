"""numpy references of the polygon ops (the fallback and the tests' yardstick).

- ``reference_polygons_to_mask``: pycocotools' polygon rasterisation (frPyObjects +
  merge + decode): vertices are scaled by 5 and rounded with (int)(5 v + 0.5), edges are
  walked on that grid along their major axis, every step that changes the grid column on
  a pixel-centre column toggles the pixel column at ceil of the downsampled y (clamped to
  [0, h]), toggles switch pixels in column-major order, and polygons are OR-ed.
  Coordinates beyond 4 * max(h, w) + 1024 are first clipped to a rectangle one image size
  around the image (pycocotools' int arithmetic overflows there).
- ``reference_polygon_iou``: exact area IoU of simple polygons by vertical slabs: between
  consecutive x of vertices and edge crossings no edges cross, so the length of the
  cross-section of P ∩ Q is linear in x and its midpoint value integrates exactly. (The
  compiled path uses a different method, a boundary integral; the two check each other.)
Polygons are float64 arrays [K, 2]; argument checks live in __init__.py.
"""
from __future__ import annotations

import numpy as np
import torch


def _clip(poly: np.ndarray, axis: int, bound: float, keep_below: bool) -> np.ndarray:
    out = []
    for a, b in zip(poly, np.roll(poly, -1, axis=0)):
        ia = a[axis] <= bound if keep_below else a[axis] >= bound
        ib = b[axis] <= bound if keep_below else b[axis] >= bound
        if ia:
            out.append(a)
        if ia != ib:
            t = (bound - a[axis]) / (b[axis] - a[axis])
            c = a + t * (b - a)
            c[axis] = bound
            out.append(c)
    return np.array(out, dtype=np.float64).reshape(-1, 2)


def _bounded(poly: np.ndarray, h: int, w: int) -> np.ndarray:
    size = float(max(h, w))
    if np.abs(poly).max(initial=0.0) <= 4 * size + 1024:
        return poly
    margin = size + 16
    for axis, bound, below in ((0, -margin, False), (0, w + margin, True), (1, -margin, False),
                               (1, h + margin, True)):
        poly = _clip(poly, axis, bound, below) if len(poly) else poly
    return poly


def walk_steps(poly: np.ndarray, h: int, w: int) -> int:
    """Grid steps rasterising ``poly`` takes (its edges walked on the 5x grid)."""
    poly = _bounded(poly, h, w)
    if len(poly) == 0:
        return 0
    g = np.floor(5.0 * poly + 0.5)
    d = np.abs(np.roll(g, -1, axis=0) - g).max(axis=1)
    return int(d.sum()) + len(poly)


def _walk_edge(xs: int, ys: int, xe: int, ye: int):
    dx, dy = abs(xe - xs), abs(ye - ys)
    if dx == 0 and dy == 0:
        return np.array([xs]), np.array([ys])
    flip = (dx >= dy and xs > xe) or (dx < dy and ys > ye)
    if flip:
        xs, xe, ys, ye = xe, xs, ye, ys
    major = dx if dx >= dy else dy
    t = np.arange(major + 1, dtype=np.int64)
    if flip:
        t = major - t
    if dx >= dy:
        s = (ye - ys) / dx
        return t + xs, (ys + s * t + 0.5).astype(np.int64)
    s = (xe - xs) / dy
    return (xs + s * t + 0.5).astype(np.int64), t + ys


def _toggles(poly: np.ndarray, h: int, w: int) -> np.ndarray:
    poly = _bounded(poly, h, w)
    if len(poly) == 0:
        return np.zeros(0, dtype=np.int64)
    gx = (5.0 * poly[:, 0] + 0.5).astype(np.int64)
    gy = (5.0 * poly[:, 1] + 0.5).astype(np.int64)
    k = len(poly)
    walks = [_walk_edge(int(gx[j]), int(gy[j]), int(gx[(j + 1) % k]), int(gy[(j + 1) % k])) for j in range(k)]
    u = np.concatenate([a for a, _ in walks])
    v = np.concatenate([b for _, b in walks])
    step = np.flatnonzero(u[1:] != u[:-1]) + 1
    uj, up, vj, vp = u[step], u[step - 1], v[step], v[step - 1]
    xd = (np.where(uj < up, uj, uj - 1) + 0.5) / 5.0 - 0.5
    keep = (np.floor(xd) == xd) & (xd >= 0) & (xd <= w - 1)
    yd = (np.minimum(vj, vp) + 0.5) / 5.0 - 0.5
    yd = np.ceil(np.clip(yd, 0, h))
    return np.sort(xd[keep].astype(np.int64) * h + yd[keep].astype(np.int64))


def reference_polygons_to_mask(polygons: list[np.ndarray], height: int, width: int) -> torch.Tensor:
    """Union of the polygons' pycocotools masks: uint8 [height, width]."""
    total = height * width
    column_major = np.zeros(total, dtype=np.uint8)
    for poly in polygons:
        t = np.minimum(_toggles(poly, height, width), total)
        ends = np.append(t[1::2], total) if len(t) % 2 else t[1::2]
        for s, e in zip(t[0::2], ends):
            column_major[s:e] = 1
    return torch.from_numpy(column_major.reshape(width, height).T.copy())


def _area(poly: np.ndarray) -> float:
    x, y = poly[:, 0] - poly[0, 0], poly[:, 1] - poly[0, 1]
    return abs(float(np.dot(x, np.roll(y, -1)) - np.dot(np.roll(x, -1), y))) / 2


def _edges(poly: np.ndarray):
    return poly, np.roll(poly, -1, axis=0)


def _crossing_xs(p: np.ndarray, q: np.ndarray) -> np.ndarray:
    (a0, a1), (b0, b1) = _edges(p), _edges(q)
    d = (a1 - a0)[:, None, :]
    g = (b1 - b0)[None, :, :]
    w = b0[None, :, :] - a0[:, None, :]
    den = d[..., 0] * g[..., 1] - d[..., 1] * g[..., 0]
    with np.errstate(divide="ignore", invalid="ignore"):
        t = (w[..., 0] * g[..., 1] - w[..., 1] * g[..., 0]) / den
        u = (w[..., 0] * d[..., 1] - w[..., 1] * d[..., 0]) / den
    hit = (den != 0) & (t >= 0) & (t <= 1) & (u >= 0) & (u <= 1)
    return (a0[:, None, 0] + t * d[..., 0])[hit]


def _section(poly: np.ndarray, xm: float) -> np.ndarray:
    """Sorted y where the vertical line x = xm crosses the polygon's edges."""
    a0, a1 = _edges(poly)
    spans = (np.minimum(a0[:, 0], a1[:, 0]) < xm) & (np.maximum(a0[:, 0], a1[:, 0]) > xm)
    a0, a1 = a0[spans], a1[spans]
    return np.sort(a0[:, 1] + (xm - a0[:, 0]) * (a1[:, 1] - a0[:, 1]) / (a1[:, 0] - a0[:, 0]))


def _common_length(ya: np.ndarray, yb: np.ndarray) -> float:
    lo = np.maximum(ya[0::2][:, None], yb[0::2][None, :])
    hi = np.minimum(ya[1::2][:, None], yb[1::2][None, :])
    return float(np.clip(hi - lo, 0, None).sum())


def reference_intersection_area(p: np.ndarray, q: np.ndarray) -> float:
    lo = max(p[:, 0].min(), q[:, 0].min())
    hi = min(p[:, 0].max(), q[:, 0].max())
    if hi <= lo:
        return 0.0
    xs = np.concatenate([p[:, 0], q[:, 0], _crossing_xs(p, q)])
    xs = np.unique(np.clip(xs, lo, hi))
    area = 0.0
    for x0, x1 in zip(xs[:-1], xs[1:]):
        xm = 0.5 * (x0 + x1)
        area += (x1 - x0) * _common_length(_section(p, xm), _section(q, xm))
    return area


def reference_polygon_iou(polys1: list[np.ndarray], polys2: list[np.ndarray]) -> torch.Tensor:
    """float64 [N, M] area IoU of simple polygons (0 where the union is empty)."""
    out = torch.zeros(len(polys1), len(polys2), dtype=torch.float64)
    areas2 = [_area(q) for q in polys2]
    for i, p in enumerate(polys1):
        area1 = _area(p)
        for j, q in enumerate(polys2):
            inter = min(reference_intersection_area(p, q), area1, areas2[j])
            union = area1 + areas2[j] - inter
            out[i, j] = inter / union if union > 0 else 0.0
    return out
