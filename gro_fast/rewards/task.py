"""Task rewards beyond VisionReasoner's: REC box IoU, counting, mask IoU.

- ``rec_iou_reward`` (continuous, 0..1) and ``rec_accuracy_reward`` (1 when IoU > threshold):
  the first predicted box against the target (``mode="first"``, the strict protocol) or the
  best predicted box (``mode="any"``, VisionReasoner's evaluation, which rewards extra
  boxes). IoU uses the inclusive-pixel convention by default, as the accuracy reward does.
- ``count_reward`` (1 on an exact count) and ``graded_count_reward``
  (max(0, 1 - |pred - gt| / max(gt, 1))): the count is the number of parsed objects; an
  answer that does not parse scores 0.
- ``mask_iou_reward``: IoU of the OR of predicted masks with the OR of ground-truth masks,
  for users who bring masks (e.g. from a promptable segmenter); uses
  ``gro_fast.ops.mask_iou`` when it is importable, a small torch computation otherwise.

Predictions are response texts (or ``ParsedResponse``); targets are a box (4 numbers) or
the solution format. This module does not run any segmenter.
"""
from __future__ import annotations

import numpy as np
import torch

from gro_fast.ops import box_iou

from .parsing import parse_objects
from .vision_reasoner import as_parsed


def _target_boxes(gt) -> torch.Tensor:
    """A box (4 numbers) or solution-format objects -> [N, 4] float64."""
    if isinstance(gt, (list, tuple, np.ndarray, torch.Tensor)) and len(gt) == 4 \
            and all(np.isscalar(v) or (isinstance(v, torch.Tensor) and v.ndim == 0) for v in gt):
        gt = [{"bbox_2d": [float(v) for v in gt]}]
    boxes = parse_objects(gt, name="gt").boxes
    if len(boxes) == 0:
        raise ValueError("gt has no box")
    return torch.from_numpy(np.ascontiguousarray(boxes))


def rec_iou_reward(text, gt, *, mode: str = "first", inclusive: bool = True) -> float:
    """Box IoU of the prediction with the target, 0..1 (0 when no box was read)."""
    if mode not in ("first", "any"):
        raise ValueError(f"mode must be 'first' or 'any', got {mode!r}")
    parsed = as_parsed(text)
    target = _target_boxes(gt)
    if not parsed.parsed or parsed.num_objects == 0:
        return 0.0
    boxes, valid = parsed.boxes, parsed.box_valid
    if mode == "first":
        boxes, valid = boxes[:1], valid[:1]
    if not valid.any():
        return 0.0
    iou = box_iou(torch.from_numpy(np.ascontiguousarray(boxes[valid])), target,
                  inclusive=inclusive)
    return float(iou.max())


def rec_accuracy_reward(text, gt, *, iou_threshold: float = 0.5, mode: str = "first",
                        inclusive: bool = True) -> float:
    """1.0 when the box IoU exceeds ``iou_threshold`` (Acc@0.5), else 0.0."""
    return 1.0 if rec_iou_reward(text, gt, mode=mode, inclusive=inclusive) > iou_threshold else 0.0


def _counts(text, gt) -> tuple[int | None, int]:
    if isinstance(gt, (bool, np.bool_)) or not isinstance(gt, (int, np.integer, list, tuple, str)):
        raise ValueError(f"gt must be a count (int) or solution-format objects, got {gt!r}")
    target = int(gt) if isinstance(gt, (int, np.integer)) else parse_objects(gt, name="gt").num_objects
    if target < 0:
        raise ValueError(f"gt count must be >= 0, got {target}")
    parsed = as_parsed(text)
    return (parsed.num_objects if parsed.parsed else None), target


def count_reward(text, gt) -> float:
    """1.0 when the number of parsed objects equals the target count, else 0.0."""
    predicted, target = _counts(text, gt)
    return 1.0 if predicted == target else 0.0


def graded_count_reward(text, gt) -> float:
    """max(0, 1 - |predicted - target| / max(target, 1)); 0 when the answer does not parse."""
    predicted, target = _counts(text, gt)
    if predicted is None:
        return 0.0
    return max(0.0, 1.0 - abs(predicted - target) / max(target, 1))


def _union_mask(masks, name: str) -> torch.Tensor:
    t = torch.as_tensor(np.asarray(masks) if not isinstance(masks, torch.Tensor) else masks)
    if t.ndim not in (2, 3) or t.numel() == 0:
        raise ValueError(f"{name} must be a non-empty [H, W] or [K, H, W] mask, "
                         f"got shape {tuple(t.shape)}")
    t = t != 0
    return t.any(0) if t.ndim == 3 else t


def _mask_iou(a: torch.Tensor, b: torch.Tensor) -> float:
    try:
        from gro_fast.ops import mask_iou
    except ImportError:
        inter = (a & b).sum().item()
        return inter / (a | b).sum().item()
    return float(mask_iou(a.unsqueeze(0), b.unsqueeze(0)).reshape(-1)[0])


def mask_iou_reward(pred_masks, gt_masks) -> float:
    """IoU of OR(pred_masks) with OR(gt_masks), 0..1; both empty counts as a match (1.0)."""
    pred, gt = _union_mask(pred_masks, "pred_masks"), _union_mask(gt_masks, "gt_masks")
    gt = gt.to(pred.device)
    if pred.shape != gt.shape:
        raise ValueError(f"pred_masks {tuple(pred.shape)} and gt_masks {tuple(gt.shape)} "
                         f"must have the same H, W")
    if not (pred.any() or gt.any()):
        return 1.0
    return _mask_iou(pred, gt)
