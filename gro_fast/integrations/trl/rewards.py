"""gro_fast's grounding rewards with TRL's reward-function signature.

TRL calls ``fn(prompts=..., completions=..., completion_ids=..., **columns)`` with one
list entry per completion and expects a list of floats back. Each function here reads the
completion text (plain or conversational; under ``GROTrainer``, the revision alone, from
the rollout's ``gro_completion`` column), the ground truth from the dataset columns
(``gro_fast.integrations.columns``: ``solution``, ``conversations``, ``bbox``, ``points``,
``count``, ``mask``) and calls ``gro_fast.rewards``:

- VisionReasoner's terms: ``think_format_reward`` (0/1), ``object_format_reward`` (0..2),
  ``accuracy_reward`` (0..3), ``non_repeat_reward`` (0/1) and their sum
  ``vision_reasoner_reward`` (0..7); ``VISION_REASONER_REWARDS`` is the four terms, the
  list to hand ``GRPOTrainer(reward_funcs=...)`` to train on VisionReasoner's total with
  each term logged;
- ``rec_iou_reward`` / ``rec_accuracy_reward`` (Acc@0.5, first box), ``count_reward``
  (exact count), ``make_mask_iou_reward(segmenter)`` (mask IoU through a segmenter).

Nothing is scored here that ``gro_fast.rewards`` does not define. This module does not
import trl (the signature is plain Python).
"""
from __future__ import annotations

import functools
from collections.abc import Mapping, Sequence

import numpy as np

from gro_fast import rewards as R

from ..columns import image_size, row_count, row_objects, rows_from_columns


def completion_text(completion) -> str:
    """The text of a TRL completion: a string, or the assistant messages' text of a
    conversational completion ``[{"role": "assistant", "content": str | [blocks]}]``."""
    if isinstance(completion, str):
        return completion
    if isinstance(completion, Sequence):
        parts = []
        for message in completion:
            content = message.get("content") if isinstance(message, Mapping) else message
            if isinstance(content, str):
                parts.append(content)
            elif isinstance(content, Sequence):
                parts.extend(b.get("text", "") for b in content
                             if isinstance(b, Mapping) and b.get("type", "text") == "text")
        return "".join(parts)
    raise TypeError(f"completion must be a string or a list of messages, got "
                    f"{type(completion).__name__}")


def _texts(completions, columns=None) -> list[str]:
    """The texts to score: ``gro_completion`` (the revision alone, set by GROTrainer's
    rollout, whose completions also hold the masked initial turn) or the completions."""
    revisions = (columns or {}).get("gro_completion")
    if isinstance(revisions, list) and len(revisions) == len(completions):
        return [str(t) for t in revisions]
    return [completion_text(c) for c in completions]


def _rows(completions, columns) -> list[dict]:
    return rows_from_columns(len(completions), columns)


def think_format_reward(completions, **columns) -> list[float]:
    """VisionReasoner's think/answer format, 0 or 1."""
    return [R.format_reward(t) for t in _texts(completions, columns)]


def object_format_reward(completions, **columns) -> list[float]:
    """VisionReasoner's object format, 0..2."""
    return [R.object_format_reward(t) for t in _texts(completions, columns)]


def non_repeat_reward(completions, **columns) -> list[float]:
    """VisionReasoner's non-repeat reward, 0 or 1."""
    return [R.non_repeat_reward(t) for t in _texts(completions, columns)]


def accuracy_reward(completions, **columns) -> list[float]:
    """VisionReasoner's accuracy, 0..3 (Hungarian matching against the ground truth)."""
    gts = [row_objects(row) for row in _rows(completions, columns)]
    return [float(v) for v in R.accuracy_rewards(_texts(completions, columns), gts)]


def vision_reasoner_reward(completions, **columns) -> list[float]:
    """VisionReasoner's total, 0..7 (the four terms summed)."""
    terms = [think_format_reward(completions, **columns),
             object_format_reward(completions, **columns),
             accuracy_reward(completions, **columns), non_repeat_reward(completions, **columns)]
    return [float(sum(values)) for values in zip(*terms)]


def rec_iou_reward(completions, **columns) -> list[float]:
    """IoU of the first predicted box with the target box(es), 0..1 (inclusive pixels)."""
    return [R.rec_iou_reward(t, row_objects(row))
            for t, row in zip(_texts(completions, columns), _rows(completions, columns))]


def rec_accuracy_reward(completions, **columns) -> list[float]:
    """REC Acc@0.5 of the first predicted box, 0 or 1."""
    return [R.rec_accuracy_reward(t, row_objects(row))
            for t, row in zip(_texts(completions, columns), _rows(completions, columns))]


def count_reward(completions, **columns) -> list[float]:
    """1 when the number of answer objects equals the target count, else 0."""
    return [R.count_reward(t, row_count(row))
            for t, row in zip(_texts(completions, columns), _rows(completions, columns))]


def make_mask_iou_reward(segmenter=None, *, mask_column: str = "mask"):
    """A TRL reward: IoU of the answer's mask with the ``mask`` column (COCO RLE,
    polygons or a dense array at the ORIGINAL size ``img_width`` x ``img_height``).

    The answer's objects (model-input pixels of the ``image`` column) are mapped to the
    original size and turned into a mask by ``segmenter`` (a ``gro_fast.eval`` segmenter;
    default ``BoxSegmenter``, each box filled: a lower bound of what SAM2 gives).
    """
    from gro_fast.data.masks import decode_mask
    from gro_fast.data.sample import FieldProblem
    from gro_fast.eval.scoring import answer_objects
    from gro_fast.eval.segmenters import BoxSegmenter
    segmenter = segmenter or BoxSegmenter()

    def mask_iou_reward(completions, **columns) -> list[float]:
        scores = []
        for text, row in zip(_texts(completions, columns), _rows(completions, columns)):
            (iw, ih), (ow, oh) = image_size(row), (int(row["img_width"]), int(row["img_height"]))
            try:
                gt = decode_mask(row[mask_column], oh, ow)
            except FieldProblem as exc:
                raise ValueError(f"column {mask_column!r}: {exc.detail}") from None
            objects = [{k: [v * (ow / iw if j % 2 == 0 else oh / ih) for j, v in enumerate(c)]
                        for k, c in o.items()} for o in answer_objects(R.parse_response(text))]
            if segmenter.needs_pixels:  # the segmenter sees the image at the mask's size
                image = row.get("image")
                image = (image[0] if isinstance(image, (list, tuple)) else image).resize((ow, oh))
            else:
                image = np.zeros((oh, ow), dtype=np.uint8)
            scores.append(R.mask_iou_reward(segmenter.segment(image, objects), gt))
        return scores

    return mask_iou_reward


@functools.lru_cache(maxsize=1)
def _box_mask_iou_reward():
    return make_mask_iou_reward()


def mask_iou_reward(completions, **columns) -> list[float]:
    """``make_mask_iou_reward()``'s reward: the box segmenter (each box filled)."""
    return _box_mask_iou_reward()(completions, **columns)

VISION_REASONER_REWARDS = [think_format_reward, object_format_reward, accuracy_reward,
                           non_repeat_reward]
"""VisionReasoner's four terms; TRL sums them (weights 1), i.e. VisionReasoner's total."""
