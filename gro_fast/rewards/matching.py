"""Batched pair geometry and Hungarian matching shared by the accuracy reward and GRO's
alignment cost.

The objects of B responses are concatenated without padding (``ObjectLists``). Every
pair (prediction m, ground-truth object n) of every row is laid out in one flat vector of
K = sum_b M_b * N_b pairs, row b's pairs being the row-major [M_b, N_b] block at
``offsets[b]``. ``pair_geometry`` computes all pair terms of the batch in a handful of
array ops (box IoU by the formula of ``gro_fast.ops.box_iou``, inclusive-pixel convention,
box L1, point distance, point-in-own-box, image-normalised L1), with no padding to the
largest row. The terms are float64 numpy arrays: single-threaded elementwise math, which
for these sizes (~1e5 pairs) beats a thread pool and does not stall on a busy machine.
``pair_geometry_chunks`` yields the same terms for runs of rows, so that a caller reducing
them to costs keeps only the [K] costs (``pair_layout`` gives their flat layout). Cost
vectors are matched row by row with ``scipy.optimize.linear_sum_assignment``, the only
per-row Python step. This module
knows no reward values; ``vision_reasoner.py`` and ``gro_fast.algo`` do.
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from itertools import chain
from typing import Sequence

import numpy as np
from scipy.optimize import linear_sum_assignment

from .parsing import ParsedResponse

CHUNK_PAIRS = 4096
"""Pairs per chunk of ``pair_geometry_chunks``: float64 temporaries of 32 KiB."""


@dataclass
class ObjectLists:
    """The objects of B responses, concatenated in row order: row b owns
    ``coords[starts[b]:][:counts[b]]``, with ``starts`` the running sum of ``counts``."""

    coords: np.ndarray       # [T, 6] float64 (x1, y1, x2, y2, px, py); missing fields hold 0
    box_valid: np.ndarray    # [T] bool
    point_valid: np.ndarray  # [T] bool
    counts: np.ndarray       # [B] int64
    starts: np.ndarray       # [B] int64

    @cached_property
    def coord_rows(self) -> np.ndarray:
        """[6, T] float64, one contiguous row per coordinate (x1, y1, x2, y2, px, py)."""
        return np.ascontiguousarray(self.coords.T)

    @cached_property
    def box_rows(self) -> np.ndarray:
        """[5, T] float64: the boxes rounded to float32 (the precision box IoU reads) and
        their inclusive-pixel areas."""
        boxes = self.coord_rows[:4].astype(np.float32).astype(np.float64)
        width, height = _extent(boxes[:2], boxes[2:])
        return np.vstack((boxes, width * height))

    @cached_property
    def flags(self) -> np.ndarray:
        """[3, T] bool: point inside its own box (edges included), box valid, point valid."""
        x1, y1, x2, y2, px, py = self.coords.T
        inside = (px >= x1) & (px <= x2) & (py >= y1) & (py <= y2)
        return np.vstack((inside, self.box_valid, self.point_valid))


def stack_objects(responses: Sequence[ParsedResponse]) -> ObjectLists:
    """Concatenate the objects of B parsed responses (one array build for the batch)."""
    counts = np.fromiter((r.num_objects for r in responses), dtype=np.int64, count=len(responses))
    size = sum(len(r.coords) for r in responses)
    flat = np.fromiter(chain.from_iterable(r.coords for r in responses), dtype=np.float64,
                       count=size)
    coords = flat.reshape(-1, 6)
    missing = np.isnan(coords)
    coords[missing] = 0.0
    return ObjectLists(coords, ~missing[:, :4].any(1), ~missing[:, 4:].any(1), counts,
                       np.cumsum(counts) - counts)


@dataclass
class PairLayout:
    """Where each row's [M_b, N_b] block of pairs lies in a flat [K] pair vector."""

    rows: np.ndarray     # [B, 2] int64 (M_b, N_b)
    offsets: np.ndarray  # [B] int64, start of row b's block

    @property
    def num_pairs(self) -> int:
        return int(self.offsets[-1] + self.rows[-1].prod()) if len(self.offsets) else 0


@dataclass
class PairGeometry:
    """Pair terms of B rows, flat over K pairs (float64 numpy arrays unless stated); its
    ``rows`` and ``offsets`` are those of ``PairLayout``."""

    iou: np.ndarray                # [K] inclusive-pixel box IoU
    box_l1: np.ndarray             # [K] mean |box coordinate difference|, pixels
    point_dist: np.ndarray         # [K] Euclidean point distance, pixels
    point_in_box: np.ndarray       # [K] bool, the prediction's point in its own box
    pred_box_valid: np.ndarray     # [K] bool
    pred_point_valid: np.ndarray   # [K] bool
    rows: np.ndarray               # [B, 2] int64 (M_b, N_b)
    offsets: np.ndarray            # [B] int64, start of row b's block
    box_l1_norm: np.ndarray | None = None    # [K] x/width, y/height, clamped at 1
    point_l1_norm: np.ndarray | None = None  # [K] same for points


def pair_layout(pred: ObjectLists, gt: ObjectLists,
                gt_rows: np.ndarray | None = None) -> PairLayout:
    """Block shapes and offsets of all pairs, without computing any pair term."""
    gt_rows = np.arange(len(pred.counts)) if gt_rows is None else np.asarray(gt_rows)
    m, n = pred.counts, gt.counts[gt_rows]
    sizes = m * n
    return PairLayout(np.stack([m, n], 1), np.cumsum(sizes) - sizes)


def _pair_index(pred: ObjectLists, gt: ObjectLists, rows: slice, gt_rows: np.ndarray):
    """Pairs of prediction rows ``rows``: the ground-truth object of every pair, how many
    pairs each prediction object of those rows is in, the rows' prediction objects (a
    slice: a run of rows owns a run of objects), pairs per row, (M, N) and offsets."""
    m, n = pred.counts[rows], gt.counts[gt_rows]
    sizes = m * n
    offsets = np.cumsum(sizes) - sizes
    gi = np.arange(int(sizes.sum()), dtype=np.int64) - np.repeat(offsets, sizes)
    gi %= np.repeat(np.maximum(n, 1), sizes)
    gi += np.repeat(gt.starts[gt_rows], sizes)
    first = int(pred.starts[rows][0]) if len(m) else 0
    objects = slice(first, first + int(m.sum()))
    return gi, np.repeat(n, m), objects, sizes, np.stack([m, n], 1), offsets


def _extent(lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    """Inclusive-pixel extent hi - lo + 1, 0 when negative."""
    e = np.subtract(hi, lo)
    e += 1.0
    return np.maximum(e, 0.0, out=e)


def _inclusive_iou(p_boxes: np.ndarray, g_boxes: np.ndarray) -> np.ndarray:
    """[K] inclusive-pixel IoU of paired boxes (``ObjectLists.box_rows`` gathered per pair,
    [5, K]), bit for bit what ``gro_fast.ops.box_iou`` returns: its formula
    (kernels/box_math.h) in float64 on float32-rounded boxes, rounded to float32. Parsing
    bounded every coordinate, so box_iou's finiteness check is not repeated."""
    width, height = _extent(np.maximum(p_boxes[:2], g_boxes[:2]),
                            np.minimum(p_boxes[2:4], g_boxes[2:4]))
    inter = np.multiply(width, height, out=width)
    area_p, area_g = p_boxes[4], g_boxes[4]
    inter *= (area_p > 0.0) & (area_g > 0.0)  # a degenerate box intersects nothing
    union = area_p + area_g
    union -= inter
    iou = np.divide(inter, union, out=np.zeros_like(inter), where=union > 0.0)
    return iou.astype(np.float32).astype(np.float64)


def _geometry(pred: ObjectLists, gt: ObjectLists, rows: slice, gt_rows: np.ndarray,
              image_sizes: np.ndarray | None) -> PairGeometry:
    """Pair terms of prediction rows ``rows`` against their ground-truth lists ``gt_rows``."""
    gi, per_object, objects, sizes, shape, offsets = _pair_index(pred, gt, rows, gt_rows)
    # Both sides of every pair as contiguous [rows, K] blocks, one gather per side.
    iou = _inclusive_iou(np.repeat(pred.box_rows[:, objects], per_object, axis=1),
                         gt.box_rows.take(gi, axis=1))
    d = np.repeat(pred.coord_rows[:, objects], per_object, axis=1)
    np.subtract(d, gt.coord_rows.take(gi, axis=1), out=d)
    np.abs(d, out=d)
    in_box, box_valid, point_valid = np.repeat(pred.flags[:, objects], per_object, axis=1)
    dx = np.add(d[0], d[2], out=d[0])       # |x1 - x1'| + |x2 - x2'|
    dy = np.add(d[1], d[3], out=d[1])
    geom = PairGeometry(iou, (dx + dy) * 0.25, np.hypot(d[4], d[5]), in_box, box_valid,
                        point_valid, shape, offsets)
    if image_sizes is not None:
        inv = 1.0 / np.asarray(image_sizes, dtype=np.float64).reshape(-1, 2)
        inv_w, inv_h = np.repeat(inv[:, 0], sizes), np.repeat(inv[:, 1], sizes)
        box = (dx * inv_w + dy * inv_h) * 0.25
        point = (d[4] * inv_w + d[5] * inv_h) * 0.5
        geom.box_l1_norm, geom.point_l1_norm = np.minimum(box, 1.0), np.minimum(point, 1.0)
    return geom


def pair_geometry(pred: ObjectLists, gt: ObjectLists, gt_rows: np.ndarray | None = None,
                  image_sizes: np.ndarray | None = None) -> PairGeometry:
    """All pair terms of the batch. Prediction row b is compared with ground-truth list
    ``gt_rows[b]`` (default b); ``image_sizes`` [B, 2] (width, height per prediction row)
    adds the normalised L1 terms of the alignment cost."""
    gt_rows = np.arange(len(pred.counts)) if gt_rows is None else np.asarray(gt_rows)
    return _geometry(pred, gt, slice(None), gt_rows, image_sizes)


def pair_geometry_chunks(pred: ObjectLists, gt: ObjectLists, gt_rows: np.ndarray,
                         image_sizes: np.ndarray | None = None, max_pairs: int = CHUNK_PAIRS):
    """``pair_geometry`` over runs of consecutive rows of about ``max_pairs`` pairs each:
    yields (slice of the flat [K] pair vector, that run's ``PairGeometry``). Terms reduced
    chunk by chunk keep every temporary small: at ~1e5 pairs, fresh full-size arrays cost
    more in memory traffic and page faults than the arithmetic does."""
    gt_rows = np.asarray(gt_rows)
    layout = pair_layout(pred, gt, gt_rows)
    sizes = layout.rows[:, 0] * layout.rows[:, 1]
    if len(sizes) == 0:
        return
    bounds = np.flatnonzero(np.diff(layout.offsets // max_pairs)) + 1
    for lo, hi in zip([0, *bounds.tolist()], [*bounds.tolist(), len(sizes)]):
        first = int(layout.offsets[lo])
        sizes_here = None if image_sizes is None else image_sizes[lo:hi]
        geom = _geometry(pred, gt, slice(lo, hi), gt_rows[lo:hi], sizes_here)
        yield slice(first, first + int(sizes[lo:hi].sum())), geom


def matched_costs(cost: np.ndarray, geom: PairGeometry | PairLayout,
                  active: np.ndarray) -> np.ndarray:
    """Minimum-cost matching of every ``active`` row's [M_b, N_b] block of the flat [K]
    ``cost``: float64 [B] total cost of its min(M_b, N_b) pairs (0 elsewhere). Only the
    layout (``rows``, ``offsets``) of ``geom`` is read.

    A block with one row or column is its smallest entry (one ``minimum.reduceat`` for
    all of them); the others go through ``linear_sum_assignment`` one by one, and their
    matched entries are summed in one gather at the end.
    """
    m, n = geom.rows[:, 0], geom.rows[:, 1]
    total = np.zeros(len(m))
    nonempty = (m > 0) & (n > 0)
    line = active & nonempty & (np.minimum(m, n) == 1)
    if line.any():
        block_min = np.minimum.reduceat(cost, geom.offsets[nonempty])
        total[line] = block_min[np.cumsum(nonempty)[line] - 1]
    solve = np.flatnonzero(active & nonempty & ~line)
    if len(solve) == 0:
        return total
    matchings = [linear_sum_assignment(cost[start:start + mb * nb].reshape(mb, nb))
                 for mb, nb, start in zip(m[solve].tolist(), n[solve].tolist(),
                                          geom.offsets[solve].tolist())]
    rows_idx, cols_idx = zip(*matchings)
    pairs = np.minimum(m, n)[solve]  # an assignment of a block has min(M, N) pairs
    flat = (np.repeat(geom.offsets[solve], pairs) + np.concatenate(rows_idx)
            * np.repeat(n[solve], pairs) + np.concatenate(cols_idx))
    total += np.bincount(np.repeat(solve, pairs), weights=cost[flat], minlength=len(m))
    return total
