"""Evaluation of grounding models with the field's metrics (``gro-fast eval``).

- ``metrics``: gIoU, cIoU, REC Acc@0.5 (strict and any-box), counting accuracy / MAE /
  RMSE as pure functions, and :class:`EvalProtocol` (how peers' conventions are reproduced);
- ``segmenters``: answer objects -> mask (``Sam2Segmenter``, ``BoxSegmenter``);
- ``scoring``: one parsed answer against its ground truth (IoUs from ``gro_fast.ops``);
- ``runner``: batched greedy generation, scoring, resumable per-sample output;
- ``report``: JSON / JSONL / Markdown / PNG outputs; ``cli``: the command.

``metrics`` loads eagerly (numpy only); the rest loads on first use, so the metrics can be
used without importing torch or transformers.
"""
from __future__ import annotations

import importlib

from .metrics import PRESETS, EvalProtocol, count_metrics, rec_accuracy, sample_ious, segmentation_metrics

_LAZY = {
    "EvalConfig": "runner", "evaluate": "runner", "score_sample": "runner",
    "Segmenter": "segmenters", "BoxSegmenter": "segmenters", "Sam2Segmenter": "segmenters",
    "Sam2PilImageProcessor": "sam2_processing",
}

__all__ = ["PRESETS", "EvalProtocol", "count_metrics", "rec_accuracy", "sample_ious",
           "segmentation_metrics", *_LAZY]


def __getattr__(name):
    if name in _LAZY:
        return getattr(importlib.import_module(f".{_LAZY[name]}", __name__), name)
    raise AttributeError(f"module 'gro_fast.eval' has no attribute {name!r}")
