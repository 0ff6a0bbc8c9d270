"""The prompt messages built from a grounding sample (the initial question of a rollout).

:func:`build_messages` returns Hugging Face chat messages, one user turn holding the image
and the prompt text, ready for ``processor.apply_chat_template``. The text comes from a
template in VisionReasoner's style: find the objects matching the query, think in
``<think></think>``, answer in ``<answer></answer>`` with a JSON list of
``{"bbox_2d": [x1, y1, x2, y2], "point_2d": [x, y]}`` in pixels of the image shown.

Templates use the placeholders ``{query}`` (required), ``{width}`` and ``{height}`` (the
model-input size); they are replaced literally, so JSON braces in a template need no
escaping. The revision turn of GRO is written by ``gro_fast.algo`` / the trainer, not here.
"""
from __future__ import annotations

import json
import os
import re

from .sample import GroundingSample

DEFAULT_TEMPLATE = (
    'Find every object matching "{query}". Think in <think></think>, then answer in '
    '<answer></answer> with a JSON list [{"bbox_2d": [x1, y1, x2, y2], "point_2d": [x, y]}] '
    "in pixels of this image."
)
"""Short on purpose: the tiny model has a short context."""

PROMPT_FILE = "gro_fast_prompt.json"
"""Written beside a trained model: the template it was trained with (see save_template)."""

PLACEHOLDERS = ("{query}", "{width}", "{height}")
_PLACEHOLDER = re.compile(r"\{(query|width|height)\}")


QUERY_NORMALIZATIONS = ("none", "vision_reasoner")
"""How a query is rewritten before it goes into the prompt: ``"none"`` (as written) or
``"vision_reasoner"`` (lower-cased, and ``.``, ``"``, ``?``, ``!`` stripped from both
ends, as VisionReasoner's evaluation scripts ask their model)."""


def normalize_query(query: str, rule: str = "none") -> str:
    """``query`` under one of :data:`QUERY_NORMALIZATIONS`."""
    if rule == "none":
        return query
    if rule == "vision_reasoner":
        return query.lower().strip('."?!')
    raise ValueError(f"query normalization must be one of {QUERY_NORMALIZATIONS}, got {rule!r}")


def check_template(template: str) -> str:
    """Raise ValueError unless ``template`` is a string containing ``{query}``."""
    if not isinstance(template, str):
        raise TypeError(f"template must be a string, got {type(template).__name__}")
    if "{query}" not in template:
        raise ValueError(f"template must contain the placeholder {{query}}; got {template!r:.80}")
    return template


def format_prompt(sample: GroundingSample, template: str | None = None) -> str:
    """The prompt text for ``sample`` (``template`` defaults to :data:`DEFAULT_TEMPLATE`)."""
    template = check_template(DEFAULT_TEMPLATE if template is None else template)
    width, height = sample.input_size
    values = {"query": sample.query.strip(), "width": str(width), "height": str(height)}
    return _PLACEHOLDER.sub(lambda m: values[m.group(1)], template)


def build_messages(sample: GroundingSample, template: str | None = None) -> list[dict]:
    """``[{"role": "user", "content": [{"type": "image", "image": sample.image},
    {"type": "text", "text": prompt}]}]`` for ``sample``."""
    return [{"role": "user", "content": [
        {"type": "image", "image": sample.image},
        {"type": "text", "text": format_prompt(sample, template)},
    ]}]


def save_template(model_dir: str, template: str | None) -> None:
    """Record in ``model_dir`` the prompt template a model was trained with, so that
    evaluation asks it the same way (``None`` records the default template)."""
    template = check_template(DEFAULT_TEMPLATE if template is None else template)
    with open(os.path.join(model_dir, PROMPT_FILE), "w") as f:
        json.dump({"template": template}, f, indent=1)


def load_template(model_dir: str) -> str | None:
    """The template recorded by :func:`save_template` in ``model_dir``, or None."""
    path = os.path.join(model_dir, PROMPT_FILE)
    if not os.path.isfile(path):
        return None
    try:
        with open(path) as f:
            return check_template(json.load(f)["template"])
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ValueError(f"{path}: not a valid prompt record ({exc})") from exc
