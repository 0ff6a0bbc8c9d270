"""Batched pair geometry and Hungarian matching shared by the accuracy reward and GRO's
alignment cost.

The objects of B responses are concatenated without padding (``ObjectLists``). Every
pair (prediction m, ground-truth object n) of every row is laid out in one flat vector of
K = sum_b M_b * N_b pairs, row b's pairs being the row-major [M_b, N_b] block at
``offsets[b]``. ``pair_geometry`` computes all pair terms of the batch in a handful of
array ops (box IoU through ``gro_fast.ops.box_iou`` with the inclusive-pixel convention,
box L1, point distance, point-in-own-box, image-normalised L1), with no padding to the
largest row. The terms are float64 numpy arrays: single-threaded elementwise math, which
for these sizes (~1e5 pairs) beats a thread pool and does not stall on a busy machine.
Cost vectors built from it are matched row by row with
``scipy.optimize.linear_sum_assignment``, the only per-row Python step. This module
knows no reward values; ``vision_reasoner.py`` and ``gro_fast.algo`` do.
"""
from __future__ import annotations

from dataclasses import dataclass
from itertools import chain
from typing import Sequence

import numpy as np
import torch
from scipy.optimize import linear_sum_assignment

from gro_fast.ops import box_iou

from .parsing import ParsedResponse


@dataclass
class ObjectLists:
    """The objects of B responses, concatenated: row b owns ``coords[starts[b]:][:counts[b]]``."""

    coords: np.ndarray       # [T, 6] float64 (x1, y1, x2, y2, px, py); missing fields hold 0
    box_valid: np.ndarray    # [T] bool
    point_valid: np.ndarray  # [T] bool
    counts: np.ndarray       # [B] int64
    starts: np.ndarray       # [B] int64


def stack_objects(responses: Sequence[ParsedResponse]) -> ObjectLists:
    """Concatenate the objects of B parsed responses (one array build for the batch)."""
    counts = np.fromiter((r.num_objects for r in responses), dtype=np.int64, count=len(responses))
    flat = np.array(list(chain.from_iterable(r.coords for r in responses)), dtype=np.float64)
    coords = flat.reshape(-1, 6)
    missing = np.isnan(coords)
    coords[missing] = 0.0
    return ObjectLists(coords, ~missing[:, :4].any(1), ~missing[:, 4:].any(1), counts,
                       np.cumsum(counts) - counts)


@dataclass
class PairGeometry:
    """Pair terms of B rows, flat over K pairs (float64 numpy arrays unless stated)."""

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


def _pair_index(pred: ObjectLists, gt: ObjectLists, gt_rows: np.ndarray):
    """Flat (prediction, ground truth) object indices of every pair; pairs per row."""
    m, n = pred.counts, gt.counts[gt_rows]
    sizes = m * n
    offsets = np.cumsum(sizes) - sizes
    local = np.arange(int(sizes.sum()), dtype=np.int64) - np.repeat(offsets, sizes)
    i, j = np.divmod(local, np.repeat(np.maximum(n, 1), sizes))
    pi = np.repeat(pred.starts, sizes) + i
    gi = np.repeat(gt.starts[gt_rows], sizes) + j
    return pi, gi, sizes, np.stack([m, n], 1), offsets


def _inclusive_iou(p: np.ndarray, g: np.ndarray) -> np.ndarray:
    """[K] IoU of paired boxes through ``gro_fast.ops.box_iou`` (one [K, 1] x [K, 1] call;
    box_iou computes in fp32, so the boxes go in as contiguous fp32)."""
    p_boxes = torch.from_numpy(p[:, :4].astype(np.float32))[:, None, :]
    g_boxes = torch.from_numpy(g[:, :4].astype(np.float32))[:, None, :]
    return box_iou(p_boxes, g_boxes, inclusive=True).reshape(-1).numpy().astype(np.float64)


def pair_geometry(pred: ObjectLists, gt: ObjectLists, gt_rows: np.ndarray | None = None,
                  image_sizes: np.ndarray | None = None) -> PairGeometry:
    """All pair terms of the batch. Prediction row b is compared with ground-truth list
    ``gt_rows[b]`` (default b); ``image_sizes`` [B, 2] (width, height per prediction row)
    adds the normalised L1 terms of the alignment cost. Few [K]-sized temporaries are made:
    at ~1e5 pairs, memory traffic is most of the cost."""
    gt_rows = np.arange(len(pred.counts)) if gt_rows is None else np.asarray(gt_rows)
    pi, gi, sizes, rows, offsets = _pair_index(pred, gt, gt_rows)
    p, g = np.take(pred.coords, pi, axis=0), np.take(gt.coords, gi, axis=0)  # [K, 6] each
    iou = _inclusive_iou(p, g)
    diff = np.abs(np.subtract(p, g, out=p), out=p)
    dx = diff[:, 0] + diff[:, 2]            # |x1 - x1'| + |x2 - x2'|
    dy = diff[:, 1] + diff[:, 3]
    c = pred.coords
    inside = (c[:, 4] >= c[:, 0]) & (c[:, 4] <= c[:, 2]) & (c[:, 5] >= c[:, 1]) & (c[:, 5] <= c[:, 3])
    geom = PairGeometry(iou, (dx + dy) * 0.25, np.hypot(diff[:, 4], diff[:, 5]),
                        np.take(inside, pi), np.take(pred.box_valid, pi),
                        np.take(pred.point_valid, pi), rows, offsets)
    if image_sizes is not None:
        inv = 1.0 / np.asarray(image_sizes, dtype=np.float64).reshape(-1, 2)
        inv_w, inv_h = np.repeat(inv[:, 0], sizes), np.repeat(inv[:, 1], sizes)
        box = (dx * inv_w + dy * inv_h) * 0.25
        point = (diff[:, 4] * inv_w + diff[:, 5] * inv_h) * 0.5
        geom.box_l1_norm, geom.point_l1_norm = np.minimum(box, 1.0), np.minimum(point, 1.0)
    return geom


def matched_costs(cost: np.ndarray, geom: PairGeometry, active: np.ndarray) -> np.ndarray:
    """Minimum-cost matching of every ``active`` row's [M_b, N_b] block of the flat [K]
    ``cost``: float64 [B] total cost of its min(M_b, N_b) pairs (0 elsewhere).

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
    rows_idx, cols_idx = [], []
    for b in solve.tolist():
        mb, nb, start = int(m[b]), int(n[b]), int(geom.offsets[b])
        r, c = linear_sum_assignment(cost[start:start + mb * nb].reshape(mb, nb))
        rows_idx.append(r)
        cols_idx.append(c)
    pairs = np.minimum(m, n)[solve]  # an assignment of a block has min(M, N) pairs
    flat = (np.repeat(geom.offsets[solve], pairs) + np.concatenate(rows_idx)
            * np.repeat(n[solve], pairs) + np.concatenate(cols_idx))
    total += np.bincount(np.repeat(solve, pairs), weights=cost[flat], minlength=len(m))
    return total
