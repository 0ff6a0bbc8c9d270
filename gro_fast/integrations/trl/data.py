"""gro_fast grounding samples as a TRL dataset.

``grounding_rows(samples)`` turns any sequence of ``gro_fast.data.GroundingSample``
(``load_grounding_dataset`` of VisionReasoner / VLM-R1 / counting files, or the synthetic
task) into a ``datasets.Dataset`` with the columns ``GRPOTrainer`` and gro_fast's reward
functions read: ``prompt`` (one user turn; TRL puts the image before the text), ``image``
(already resized to the model-input size, so the processor does not resize it again and
the answer's pixels are the ground truth's), ``solution`` (JSON objects in those pixels),
``count``, ``task``, ``id`` and ``img_width`` / ``img_height`` (the original size).
"""
from __future__ import annotations

import json

from gro_fast.data import format_prompt


def grounding_row(sample, template: str | None = None) -> dict:
    """One TRL row for ``sample`` (see the module docstring)."""
    width, height = sample.original_size
    return {"prompt": [{"role": "user", "content": format_prompt(sample, template)}],
            "image": sample.image, "solution": json.dumps(sample.objects),
            "count": int(sample.count if sample.count is not None else len(sample.objects)),
            "task": sample.task, "id": str(sample.id),
            "img_width": int(width), "img_height": int(height)}


def grounding_rows(samples, template: str | None = None):
    """``datasets.Dataset`` of :func:`grounding_row` for each sample."""
    import datasets
    return datasets.Dataset.from_list([grounding_row(s, template) for s in samples])
