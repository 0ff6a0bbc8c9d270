"""The revision turn U(q, o1) and the well-formedness test that decides whether a prompt is
revised at all.

``revision_query(query, initial_response, template)`` fills the template with the query and
the initial response's reasoning and objects. It shows the model only its own attempt: no
ground truth and no external feedback goes in. ``is_well_formed`` is GRO's step 2: the
format reward at its maximum (think/answer format 1 and object format 2, i.e. a non-empty
answer list whose every object has a 4-number box and a 2-number point); otherwise the
prompt falls back to GRPO. Building the conversation and sampling are the rollout
engine's job.
"""
from __future__ import annotations

import json
import re

from gro_fast.rewards.parsing import ParsedResponse
from gro_fast.rewards.vision_reasoner import as_parsed

from .config import DEFAULT_REVISION_TEMPLATE, check_revision_template

_PLACEHOLDER = re.compile(r"\{\{|\}\}|\{(query|think|objects|answer|response)\}")


def is_well_formed(response) -> bool:
    """True when the format reward is at its maximum: ``format_ok`` and every object of a
    non-empty answer list has a valid ``bbox_2d`` and ``point_2d``."""
    parsed = as_parsed(response)
    return parsed.format_ok and parsed.complete


def _number(v: float):
    return int(v) if float(v).is_integer() and abs(v) < 2**53 else v


def objects_json(parsed: ParsedResponse) -> str:
    """The parsed objects in the answer format (integral coordinates written as integers)."""
    out = []
    for obj in parsed.objects:
        item = {}
        if obj.bbox is not None:
            item["bbox_2d"] = [_number(v) for v in obj.bbox]
        if obj.point is not None:
            item["point_2d"] = [_number(v) for v in obj.point]
        out.append(item)
    return json.dumps(out)


def revision_query(query: str, initial_response, template: str | None = None) -> str:
    """The revision user turn q2 = U(q, o1) (``template`` defaults to GROConfig's)."""
    if not isinstance(query, str):
        raise TypeError(f"query must be a string, got {type(query).__name__}")
    template = DEFAULT_REVISION_TEMPLATE if template is None else template
    check_revision_template(template)
    parsed = as_parsed(initial_response)
    values = {"query": query, "think": (parsed.think or "").strip(),
              "answer": parsed.answer or "", "response": parsed.text,
              "objects": objects_json(parsed)}

    def fill(match: re.Match) -> str:
        token = match.group(0)
        if token in ("{{", "}}"):
            return token[0]
        return values[match.group(1)]

    return _PLACEHOLDER.sub(fill, template)

