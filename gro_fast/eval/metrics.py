"""The field's grounding metrics as pure functions on per-sample arrays, and the protocol.

Each function takes one entry per sample (numpy arrays or lists) and returns plain floats:

- segmentation: :func:`segmentation_metrics` -> gIoU (mean of per-sample mask IoU) and cIoU
  (sum of intersections / sum of unions);
- REC: :func:`rec_accuracy` -> Acc@0.5, strict (the first predicted box) and any-box;
- counting: :func:`count_metrics` -> exact-match accuracy, MAE, RMSE.

How a peer's number is reproduced is an :class:`EvalProtocol`; gro_fast's defaults never
drop a sample. This module computes no IoU itself: per-sample intersections, unions and
box IoUs come from ``gro_fast.ops`` (see ``scoring.py``); nothing here reads files or models.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from gro_fast.data.prompts import QUERY_NORMALIZATIONS

FAILURE_RULES = ("zero", "skip")
EMPTY_TARGET_RULES = ("zero", "lisa")
BOX_CONVENTIONS = ("continuous", "inclusive")


@dataclass(frozen=True)
class EvalProtocol:
    """How samples are scored and aggregated. Every choice is written into the report."""

    failures: str = "zero"
    """What a failed prediction (no answer, unparseable answer, empty list, no usable box)
    counts as. ``"zero"`` (default, gro_fast): it stays in every denominator, with mask
    IoU 0 and union = |ground truth| (so it adds |gt| to cIoU's denominator), REC miss, and
    a predicted count of 0. ``"skip"``: it is removed from every metric, as evaluation
    scripts that drop samples whose output cannot be parsed do; numbers are then over the
    parsed subset only and ``n_scored`` in the report says how large it is."""
    empty_target: str = "zero"
    """A sample whose union is 0 (empty ground-truth mask and empty prediction).
    ``"zero"`` (default): IoU 0; it adds 0 to both cIoU sums. ``"lisa"``: LISA's rule
    (its ``validate``: ``acc_iou = I / (U + eps); acc_iou[U == 0] += 1``), i.e. IoU 1 for
    gIoU, still 0 to both cIoU sums. With a non-empty prediction the union is > 0 and
    both rules give IoU 0. LISA's eps (1e-5 on the union) is not reproduced: it changes
    IoUs by less than 1e-5 / union."""
    rec_threshold: float = 0.5
    """A REC hit needs box IoU strictly greater than this (VisionReasoner's ``> 0.5``)."""
    box_convention: str = "continuous"
    """Box IoU for REC: ``"continuous"`` areas (x2 - x1) * (y2 - y1) (torchvision,
    COCO-style), or ``"inclusive"`` pixel areas (x2 - x1 + 1) * (y2 - y1 + 1) as
    VisionReasoner's accuracy reward computes it."""
    query_normalization: str = "none"
    """How each query is rewritten before it is asked: ``"none"`` (as the row has it) or
    ``"vision_reasoner"`` (lower-cased, ``.``, ``"``, ``?``, ``!`` stripped from both ends,
    as VisionReasoner's evaluation scripts do; see ``gro_fast.data.normalize_query``).
    It changes what the model is asked, so a finished run is not re-aggregated under
    another value."""

    def __post_init__(self):
        _check_choice("failures", self.failures, FAILURE_RULES)
        _check_choice("empty_target", self.empty_target, EMPTY_TARGET_RULES)
        _check_choice("box_convention", self.box_convention, BOX_CONVENTIONS)
        _check_choice("query_normalization", self.query_normalization, QUERY_NORMALIZATIONS)
        if not 0.0 <= float(self.rec_threshold) < 1.0:
            raise ValueError(f"rec_threshold must lie in [0, 1), got {self.rec_threshold!r}")

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def parse(cls, spec: str | None) -> "EvalProtocol":
        """``"failures=skip,empty_target=lisa"`` (or a preset name) -> protocol."""
        if not spec or spec == "gro_fast":
            return cls()
        if spec in PRESETS:
            return cls(**PRESETS[spec])
        fields = {}
        for item in spec.split(","):
            key, sep, value = item.partition("=")
            key, value = key.strip(), value.strip()
            if not sep or key not in cls.__dataclass_fields__:
                raise ValueError(f"protocol: expected a preset {sorted(PRESETS)} or "
                                 f"key=value pairs with keys {list(cls.__dataclass_fields__)}, "
                                 f"got {item!r}")
            fields[key] = float(value) if key == "rec_threshold" else value
        return cls(**fields)


PRESETS = {
    "gro_fast": {},
    "lisa": {"empty_target": "lisa"},
    "skip_failures": {"failures": "skip"},
    "vision_reasoner": {"box_convention": "inclusive", "query_normalization": "vision_reasoner"},
}
"""Named protocols accepted by ``--protocol`` besides ``key=value`` lists."""


def _check_choice(name: str, value, choices) -> None:
    if value not in choices:
        raise ValueError(f"{name} must be one of {choices}, got {value!r}")


def _as_1d(name: str, values, dtype) -> np.ndarray:
    arr = np.asarray(values, dtype=dtype)
    if arr.ndim != 1:
        raise ValueError(f"{name} must be one value per sample (1-D), got shape {arr.shape}")
    return arr


def _scored(failed, n: int, protocol: EvalProtocol) -> np.ndarray:
    """Which samples enter the metrics under ``protocol.failures``."""
    failed = np.zeros(n, bool) if failed is None else _as_1d("failed", failed, bool)
    if failed.shape[0] != n:
        raise ValueError(f"failed has {failed.shape[0]} entries for {n} samples")
    return ~failed if protocol.failures == "skip" else np.ones(n, bool)


def sample_ious(intersection, union, protocol: EvalProtocol = EvalProtocol()) -> np.ndarray:
    """Per-sample mask IoU = I / U, with the protocol's value where U == 0."""
    inter = _as_1d("intersection", intersection, np.float64)
    uni = _as_1d("union", union, np.float64)
    if inter.shape != uni.shape:
        raise ValueError(f"intersection {inter.shape} and union {uni.shape} differ in length")
    if (inter < 0).any() or (inter > uni).any():
        raise ValueError("need 0 <= intersection <= union for every sample")
    empty_value = 1.0 if protocol.empty_target == "lisa" else 0.0
    safe = np.where(uni > 0, uni, 1.0)
    return np.where(uni > 0, inter / safe, empty_value)


def segmentation_metrics(intersection, union, failed=None,
                         protocol: EvalProtocol = EvalProtocol()) -> dict:
    """gIoU and cIoU over samples (fractions in [0, 1]).

    ``intersection`` / ``union`` are per-sample pixel counts of predicted vs ground-truth
    mask at original size; a failed prediction is an empty mask, so its entry is
    (0, |gt|) already. ``failed`` marks them for ``protocol.failures == "skip"``.
    """
    ious = sample_ious(intersection, union, protocol)
    keep = _scored(failed, ious.shape[0], protocol)
    inter = np.asarray(intersection, np.float64)[keep]
    uni = np.asarray(union, np.float64)[keep]
    n = int(keep.sum())
    return {
        "gIoU": float(ious[keep].mean()) if n else 0.0,
        "cIoU": float(inter.sum() / uni.sum()) if uni.sum() > 0 else 0.0,
        "n_scored": n,
    }


def rec_accuracy(first_iou, best_iou, failed=None,
                 protocol: EvalProtocol = EvalProtocol()) -> dict:
    """REC Acc@threshold: ``acc`` (strict: the first predicted box) and ``acc_any``.

    ``first_iou``: per sample, the IoU of the FIRST predicted box with the target (the
    best over targets when a row has several); ``best_iou``: the best IoU of ANY predicted
    box, VisionReasoner's hit rule, which rewards answering with extra boxes. A failed
    prediction has both 0.
    """
    first = _as_1d("first_iou", first_iou, np.float64)
    best = _as_1d("best_iou", best_iou, np.float64)
    if first.shape != best.shape:
        raise ValueError(f"first_iou {first.shape} and best_iou {best.shape} differ in length")
    if (first > best + 1e-12).any():
        raise ValueError("first_iou cannot exceed best_iou (the first box is one of all)")
    keep = _scored(failed, first.shape[0], protocol)
    n = int(keep.sum())
    threshold = float(protocol.rec_threshold)
    return {
        "acc": float((first[keep] > threshold).mean()) if n else 0.0,
        "acc_any": float((best[keep] > threshold).mean()) if n else 0.0,
        "n_scored": n,
    }


def count_metrics(pred_count, gt_count, failed=None,
                  protocol: EvalProtocol = EvalProtocol()) -> dict:
    """Counting: exact-match accuracy, MAE and RMSE of predicted vs true counts.

    The predicted count is the number of parsed answer objects; a failed prediction
    (unreadable answer) is given a count of 0 by the caller.
    """
    pred = _as_1d("pred_count", pred_count, np.float64)
    gt = _as_1d("gt_count", gt_count, np.float64)
    if pred.shape != gt.shape:
        raise ValueError(f"pred_count {pred.shape} and gt_count {gt.shape} differ in length")
    if (pred < 0).any() or (gt < 0).any():
        raise ValueError("counts must be >= 0")
    keep = _scored(failed, pred.shape[0], protocol)
    err = pred[keep] - gt[keep]
    n = int(keep.sum())
    return {
        "accuracy": float((err == 0).mean()) if n else 0.0,
        "mae": float(np.abs(err).mean()) if n else 0.0,
        "rmse": float(np.sqrt((err ** 2).mean())) if n else 0.0,
        "n_scored": n,
    }
