"""VisionReasoner's grounding rewards, the R_format and R_acc of GRO
(Liu et al., "From Failure to Feedback: Group Revision Unlocks Hard Cases in Object-Level
Grounding", arXiv 2605.15951).

- ``format_reward``: 1 when the text fully matches ``<think>.*?</think>\\s*<answer>.*?</answer>``.
- ``object_format_reward``: per answer object +1 for a ``bbox_2d`` of 4 numbers and +1 for
  a ``point_2d`` of 2 numbers, divided by the number of objects: 0..2 (0 when the answer
  does not parse or is empty).
- ``accuracy_reward``: 0..3, Hungarian matching of M predictions to N ground-truth objects
  on cost 3 - [IoU > 0.5] - [box L1 < 10 px] - [point distance < 30 px and point inside its
  own box]; reward = (3 * min(M, N) - matched cost) / max(M, N). An unparseable answer, an
  empty list or an object missing ``bbox_2d`` / ``point_2d`` gives 0.
- ``non_repeat_reward``: 0 once two "."-separated pieces repeat an earlier piece, else 1.
- ``vision_reasoner_reward``: their sum, 0..7.

Every function takes the response text or an already ``ParsedResponse``; ground truth is
the solution format (list of ``{"bbox_2d", "point_2d"}`` dicts or its JSON string).
``accuracy_rewards`` scores a whole batch with one batched geometry pass; the single
response ``accuracy_reward`` is that function on a batch of one.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np

from .matching import PairGeometry, matched_costs, pair_geometry, stack_objects
from .parsing import ParsedResponse, as_text, parse_objects, parse_response

ACCURACY_MAX = 3.0


def as_parsed(response) -> ParsedResponse:
    """A ``ParsedResponse`` as is, anything else through ``parse_response``."""
    return response if isinstance(response, ParsedResponse) else parse_response(response)


def format_reward(text) -> float:
    """Think/answer format: 1.0 or 0.0."""
    return 1.0 if as_parsed(text).format_ok else 0.0


def object_format_reward(text) -> float:
    """Object format, 0..2 (each object: bbox_2d +1, point_2d +1; mean over objects)."""
    return as_parsed(text).object_format


def non_repeat_reward(text) -> float:
    """1.0 unless two "."-separated pieces (stripped, non-empty) repeat an earlier one."""
    text = text.text if isinstance(text, ParsedResponse) else as_text(text)[0]
    pieces = [p for p in map(str.strip, text.split(".")) if p]
    # Every piece beyond the first of its kind is one repeat.
    return 0.0 if len(pieces) - len(set(pieces)) >= 2 else 1.0


def accuracy_costs(geom: PairGeometry, *, iou_threshold: float = 0.5,
                   l1_threshold: float = 10.0, point_threshold: float = 30.0) -> np.ndarray:
    """Flat [K] pair cost 3 - (IoU hit + box-L1 hit + point hit), float64."""
    hits = ((geom.iou > iou_threshold).astype(np.float64) + (geom.box_l1 < l1_threshold)
            + ((geom.point_dist < point_threshold) & geom.point_in_box))
    return ACCURACY_MAX - hits


def accuracy_from_matching(matched: np.ndarray, rows: np.ndarray,
                           complete: np.ndarray) -> np.ndarray:
    """[B] VisionReasoner accuracy from each row's matched cost, (M, N) and completeness:
    (3 * min(M, N) - matched) / max(M, N); 0 unless complete and N > 0."""
    m, n = rows[:, 0], rows[:, 1]
    ok = complete & (n > 0) & (m > 0)
    score = (ACCURACY_MAX * np.minimum(m, n) - matched) / np.maximum(np.maximum(m, n), 1)
    return np.where(ok, score, 0.0)


def accuracy_rewards(responses: Sequence, gt_objects: Sequence, *, iou_threshold: float = 0.5,
                     l1_threshold: float = 10.0, point_threshold: float = 30.0) -> np.ndarray:
    """Accuracy of B responses against their B ground truths: float64 [B]."""
    if len(responses) != len(gt_objects):
        raise ValueError(f"responses ({len(responses)}) and gt_objects ({len(gt_objects)}) "
                         f"must have the same length")
    parsed = [as_parsed(r) for r in responses]
    gts = [parse_objects(g, name=f"gt_objects[{i}]") for i, g in enumerate(gt_objects)]
    geom = pair_geometry(stack_objects(parsed), stack_objects(gts))
    cost = accuracy_costs(geom, iou_threshold=iou_threshold, l1_threshold=l1_threshold,
                          point_threshold=point_threshold)
    complete = np.array([p.complete for p in parsed], dtype=bool)
    return accuracy_from_matching(matched_costs(cost, geom, complete), geom.rows, complete)


def accuracy_reward(text, gt_objects, *, iou_threshold: float = 0.5, l1_threshold: float = 10.0,
                    point_threshold: float = 30.0) -> float:
    """VisionReasoner accuracy, 0..3 (see the module docstring)."""
    return float(accuracy_rewards([text], [gt_objects], iou_threshold=iou_threshold,
                                  l1_threshold=l1_threshold, point_threshold=point_threshold)[0])


def vision_reasoner_reward(text, gt_objects, **thresholds) -> float:
    """Think format + object format + accuracy + non-repeat, 0..7."""
    parsed = as_parsed(text)
    return (format_reward(parsed) + object_format_reward(parsed)
            + accuracy_reward(parsed, gt_objects, **thresholds) + non_repeat_reward(parsed))


__all__ = ["ACCURACY_MAX", "accuracy_costs", "accuracy_from_matching",
           "accuracy_reward", "accuracy_rewards", "as_parsed", "format_reward",
           "non_repeat_reward", "object_format_reward", "vision_reasoner_reward"]
