"""Polygon ops. Public: ``polygons_to_mask`` (COCO polygons -> pycocotools' pixels) and
``polygon_iou`` (exact area IoU of simple polygons, no rasterising).

A polygon is a flat coordinate list ``[x1, y1, x2, y2, ...]`` (COCO) or an array [K, 2],
with K >= 3 finite points. The work runs in ``gro_fast._C`` (C++/OpenMP) when built, else
in the numpy reference (reference.py, which also describes both algorithms).
"""
from __future__ import annotations

import numbers

import numpy as np
import torch

from .._dispatch import native_op
from ..rle import MAX_MASK_PIXELS
from .reference import reference_polygon_iou, reference_polygons_to_mask, walk_steps

__all__ = ["polygons_to_mask", "polygon_iou"]


# polygon_iou squares coordinate differences; beyond this they could overflow float64.
_IOU_COORD_LIMIT = 1e100
# Rasterising walks every edge on a 5x grid: about 2^28 steps (a second of CPU, a total
# edge length of 50 million pixels) is the most a polygon may take.
MAX_RASTER_STEPS = 2**28


def _as_polygon(poly, where: str, limit: float = np.inf) -> np.ndarray:
    if isinstance(poly, torch.Tensor):
        poly = poly.detach().cpu().numpy()
    try:
        array = np.asarray(poly, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{where}: a polygon must be a list of numbers or an array [K, 2]") from exc
    if array.ndim == 2 and array.shape[1] == 2:
        array = array.reshape(-1)
    if array.ndim != 1:
        raise ValueError(f"{where}: a polygon must be flat [x1, y1, ...] or [K, 2], got shape {array.shape}")
    if array.size % 2:
        raise ValueError(f"{where}: odd number of coordinates ({array.size})")
    if array.size < 6:
        raise ValueError(f"{where}: a polygon needs at least 3 points, got {array.size // 2}")
    if not np.isfinite(array).all():
        raise ValueError(f"{where}: non-finite coordinate")
    if np.abs(array).max() > limit:
        raise ValueError(f"{where}: coordinates beyond +-{limit:g} are not supported")
    return array.reshape(-1, 2)


def _polygon_list(polys, name: str, limit: float = np.inf) -> list[np.ndarray]:
    if isinstance(polys, (np.ndarray, torch.Tensor)) and np.ndim(polys) == 3:
        polys = list(polys)
    if not isinstance(polys, (list, tuple)):
        raise TypeError(f"{name} must be a list of polygons, got {type(polys).__name__}")
    return [_as_polygon(p, f"{name}[{i}]", limit) for i, p in enumerate(polys)]


def _pack(polys: list[np.ndarray]) -> tuple[torch.Tensor, torch.Tensor]:
    coords = np.concatenate(polys) if polys else np.zeros((0, 2))
    offsets = np.concatenate([[0], np.cumsum([len(p) for p in polys])]).astype(np.int64)
    return torch.from_numpy(np.ascontiguousarray(coords)), torch.from_numpy(offsets)


def polygons_to_mask(polygons, height: int, width: int) -> torch.Tensor:
    """One object's COCO polygons (a list of flat coordinate lists, or one flat list) ->
    uint8 [height, width] mask with exactly the pixels of pycocotools'
    ``decode(merge(frPyObjects(polygons, height, width)))``."""
    for value, arg in ((height, "height"), (width, "width")):
        if not isinstance(value, numbers.Integral) or isinstance(value, bool) or value < 0 \
                or value > 2**31 - 1:
            raise ValueError(f"{arg} must be an int in [0, 2^31), got {value!r}")
    if height * width > MAX_MASK_PIXELS:
        raise ValueError(f"height x width = {height} x {width} is more than 2^31 pixels")
    if isinstance(polygons, (list, tuple)) and polygons and isinstance(polygons[0], numbers.Number):
        polygons = [polygons]
    polys = _polygon_list(polygons, "polygons")
    for i, poly in enumerate(polys):
        if walk_steps(poly, int(height), int(width)) > MAX_RASTER_STEPS:
            raise ValueError(f"polygons[{i}]: its edges are too long to rasterise (more than "
                             f"2^28 steps of 1/5 pixel, coordinates up to "
                             f"{np.abs(poly).max():.3g})")
    op = native_op("cpu", "polygons_to_mask")
    if op is None:
        return reference_polygons_to_mask(polys, int(height), int(width))
    return op(*_pack(polys), int(height), int(width))


def polygon_iou(polys1, polys2) -> torch.Tensor:
    """Exact pairwise area IoU of simple (possibly non-convex) polygons: float64 [N, M].
    Either orientation is accepted; zero-area polygons give IoU 0; coordinates must lie
    within +-1e100."""
    p1 = _polygon_list(polys1, "polys1", _IOU_COORD_LIMIT)
    p2 = _polygon_list(polys2, "polys2", _IOU_COORD_LIMIT)
    op = native_op("cpu", "polygon_iou")
    if op is None:
        return reference_polygon_iou(p1, p2)
    return op(*_pack(p1), *_pack(p2))
