"""Scoring one sample: a parsed answer against its ground truth, in original pixels.

- :func:`answer_objects` reads the usable objects of a ``ParsedResponse`` (those with a
  box) and names why an answer is unusable (the failure reasons counted in reports);
- :func:`score_segmentation` -> (intersection, union) of predicted vs ground-truth mask,
  :func:`score_rec` -> (first-box IoU, best-box IoU), :func:`score_count` -> counts.

Every IoU comes from ``gro_fast.ops`` (``mask_iou_batched``, ``box_iou``). Aggregation
over samples lives in ``metrics.py``; generation and segmentation in ``runner.py``.
"""
from __future__ import annotations

import numpy as np
import torch

FAILURE_REASONS = ("no_answer", "unparseable_answer", "empty_answer", "no_valid_box")
"""Why a prediction failed: no ``<answer>`` block; the answer is not a JSON list;
an empty list; no object with a readable ``bbox_2d`` (for REC / segmentation)."""


def failure_reason(parsed, *, need_box: bool = True) -> str | None:
    """The failure reason of a ``ParsedResponse``, or None when it can be scored.

    Counting needs no box: any parsed list (even empty: a count of 0) is scorable.
    """
    if parsed.answer is None:
        return "no_answer"
    if not parsed.parsed:
        return "unparseable_answer"
    if not need_box:
        return None
    if parsed.num_objects == 0:
        return "empty_answer"
    if not bool(np.any(parsed.box_valid)):
        return "no_valid_box"
    return None


def answer_objects(parsed) -> list[dict]:
    """Objects with a readable box, ``{"bbox_2d": [...], "point_2d": [...] or absent}``,
    in the coordinates the model wrote (model-input pixels)."""
    objects = []
    for obj in parsed.objects:
        if obj.bbox is None:
            continue
        item = {"bbox_2d": [float(v) for v in obj.bbox]}
        if obj.point is not None:
            item["point_2d"] = [float(v) for v in obj.point]
        objects.append(item)
    return objects


def score_segmentation(pred_mask: np.ndarray, gt_mask: np.ndarray) -> tuple[int, int]:
    """(|pred AND gt|, |pred OR gt|) of two bool [H, W] masks, via ``ops.mask_iou_batched``."""
    from gro_fast import ops
    pred_mask, gt_mask = np.asarray(pred_mask), np.asarray(gt_mask)
    if pred_mask.shape != gt_mask.shape or pred_mask.ndim != 2:
        raise ValueError(f"pred_mask {pred_mask.shape} and gt_mask {gt_mask.shape} must be the "
                         "same [H, W] (both at the original image size)")
    pred = torch.from_numpy(pred_mask.astype(np.bool_, copy=False))[None, None]  # [1, 1, H, W]
    gt = torch.from_numpy(gt_mask.astype(np.bool_, copy=False))[None]  # [1, H, W]
    _, intersection, union = ops.mask_iou_batched(pred, gt)
    return int(intersection.reshape(-1)[0].item()), int(union.reshape(-1)[0].item())


def score_rec(pred_boxes, gt_boxes, *, inclusive: bool = False) -> tuple[float, float]:
    """(IoU of the first predicted box, best IoU of any predicted box) with the targets.

    Boxes are [x1, y1, x2, y2] in the same (original) pixels; with several targets each
    predicted box takes its best target. No prediction gives (0, 0).
    """
    from gro_fast import ops
    pred = torch.as_tensor(np.asarray(pred_boxes, dtype=np.float32).reshape(-1, 4))
    gt = torch.as_tensor(np.asarray(gt_boxes, dtype=np.float32).reshape(-1, 4))
    if gt.shape[0] == 0:
        raise ValueError("a REC sample needs at least one ground-truth box")
    if pred.shape[0] == 0:
        return 0.0, 0.0
    iou = ops.box_iou(pred, gt, inclusive=inclusive).amax(dim=1)  # [P]
    return float(iou[0]), float(iou.max())


def ground_truth_count(sample) -> int:
    """The sample's count, or its number of ground-truth objects when no count is given."""
    if sample.count is not None:
        return int(sample.count)
    if not sample.objects:
        raise ValueError(f"sample {sample.id!r} ({sample.source}) has neither a count nor "
                         "ground-truth boxes; task 'count' needs rows with a 'count'")
    return len(sample.objects)
