"""Reading a grounding response: ``<think>...</think><answer>[objects]</answer>``.

``parse_response(text)`` never raises on a string (or bytes, or None): whatever it cannot
read is recorded in ``ParsedResponse.error`` and scores as VisionReasoner scores it (0).
Coordinates are kept exactly as written: pixels of the image *as the model saw it*
(after resizing); ``gro_fast.rewards.coords`` converts them. This module does not score
anything; the rewards live in ``vision_reasoner.py`` and ``task.py``.

Rules (those of VisionReasoner, the baseline GRO builds on):
- ``format_ok``: the whole text matches ``<think>.*?</think>\\s*<answer>.*?</answer>``
  (dot matches newline, full match). Checked without regex backtracking, so adversarial
  text cannot make it quadratic.
- ``answer``: the first ``<answer>`` up to the first ``</answer>`` after it, stripped of
  whitespace (``re.search(r"<answer>\\s*(.*?)\\s*</answer>")``); the think/answer format
  is not required to read it.
- The answer must be a strict-JSON list (single quotes, trailing commas, a bare dict do
  not parse). Its first ``MAX_OBJECTS`` (120) items are kept. An item's ``bbox_2d`` must
  be 4 numbers and its ``point_2d`` 2 numbers (JSON numbers, not strings or booleans,
  finite, ``|v| <= MAX_COORD``); otherwise that field is missing (``None``).
"""
from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from functools import cached_property
from typing import NamedTuple

import numpy as np

MAX_OBJECTS = 120
"""Each side is truncated to its first 120 objects, as VisionReasoner does."""
MAX_COORD = 1e6
"""Coordinates beyond this magnitude are unreadable (no image is a million pixels wide)."""

_WS = re.compile(r"\s*")
_THINK, _THINK_END, _ANSWER, _ANSWER_END = "<think>", "</think>", "<answer>", "</answer>"
_NUMBER_TYPES = {int, float}
_DECODER = json.JSONDecoder()
_NAN6 = (float("nan"),) * 6


class ParsedObject(NamedTuple):
    """One answer object: ``bbox`` (x1, y1, x2, y2) and ``point`` (x, y), or None if missing."""

    bbox: tuple | None
    point: tuple | None


@dataclass
class ParsedResponse:
    """A parsed response.

    ``text`` is the response as given (decoded). ``coords`` is the storage: a flat list
    of 6 numbers per object (x1, y1, x2, y2, px, py),
    NaN where a field is missing; ``objects`` (``ParsedObject`` list), ``boxes`` [M, 4] and
    ``points`` [M, 2] (float64 arrays) are views of it built on first use. ``parsed`` is
    True when the answer was a JSON list; ``num_items`` is that list's length before
    truncation to ``MAX_OBJECTS``; ``error`` is the first problem met, or None.
    """

    text: str = ""
    think: str | None = None
    answer: str | None = None
    format_ok: bool = False
    error: str | None = None
    coords: list = field(default_factory=list)
    parsed: bool = False
    num_items: int = 0

    @property
    def num_objects(self) -> int:
        """Objects kept (at most ``MAX_OBJECTS``); the count a counting task reads."""
        return len(self.coords) // 6

    @cached_property
    def objects(self) -> list[ParsedObject]:
        return [ParsedObject(tuple(b.tolist()) if bo else None, tuple(p.tolist()) if po else None)
                for b, p, bo, po in zip(self.boxes, self.points, self.box_valid, self.point_valid)]

    @cached_property
    def boxes(self) -> np.ndarray:
        return np.array(self.coords, dtype=np.float64).reshape(-1, 6)[:, :4]

    @cached_property
    def points(self) -> np.ndarray:
        return np.array(self.coords, dtype=np.float64).reshape(-1, 6)[:, 4:]

    @cached_property
    def box_valid(self) -> np.ndarray:
        return ~np.isnan(self.boxes).any(axis=1)

    @cached_property
    def point_valid(self) -> np.ndarray:
        return ~np.isnan(self.points).any(axis=1)

    @property
    def complete(self) -> bool:
        """A non-empty list whose every object has both a box and a point."""
        return self.parsed and self.num_objects > 0 and not any(v != v for v in self.coords)

    @property
    def object_format(self) -> float:
        """VisionReasoner's object format: (#valid boxes + #valid points) / #objects, 0..2."""
        if not self.parsed or self.num_objects == 0:
            return 0.0
        if self.complete:
            return 2.0
        return float(self.box_valid.sum() + self.point_valid.sum()) / self.num_objects


def think_answer_format_ok(text: str) -> bool:
    """True when ``text`` fully matches ``<think>.*?</think>\\s*<answer>.*?</answer>``."""
    if not (text.startswith(_THINK) and text.endswith(_ANSWER_END)):
        return False
    last_answer_end = len(text) - len(_ANSWER_END)  # where the final </answer> starts
    close = text.find(_THINK_END, len(_THINK))
    while close != -1:
        start = _WS.match(text, close + len(_THINK_END)).end()
        if start + len(_ANSWER) > last_answer_end:
            return False  # later </think> tags only leave less room
        if text.startswith(_ANSWER, start):
            return True
        close = text.find(_THINK_END, close + 1)
    return False


def _between(text: str, open_tag: str, close_tag: str) -> str | None:
    start = text.find(open_tag)
    if start == -1:
        return None
    end = text.find(close_tag, start + len(open_tag))
    if end == -1:
        return None
    return text[start + len(open_tag):end].strip()


def _coords(value, n: int) -> tuple | None:
    """``value`` as n floats, or None when it is not n finite, bounded JSON numbers."""
    if type(value) is not list or len(value) != n:
        return None
    if any(type(v) not in _NUMBER_TYPES for v in value):
        return None
    try:
        out = tuple(float(v) for v in value)
    except OverflowError:  # an integer beyond float range
        return None
    if not all(abs(v) <= MAX_COORD for v in out):  # also rejects NaN and inf
        return None
    return out


def _fast_coords(items: list) -> list | None:
    """All items well formed: their flat coordinates in one pass; otherwise None."""
    flat: list = []
    try:
        for item in items:
            # Unpacking checks the lengths; anything but numbers fails the type test below.
            x1, y1, x2, y2 = item["bbox_2d"]
            px, py = item["point_2d"]
            flat += (x1, y1, x2, y2, px, py)
    except (TypeError, KeyError, IndexError, ValueError):
        return None
    if not flat:
        return flat
    if not set(map(type, flat)) <= _NUMBER_TYPES:
        return None
    try:
        # The sum is NaN or inf when any value is (then s - s is NaN); otherwise the
        # min and max bound every value.
        total = sum(flat)
        if not (total - total == 0 and min(flat) >= -MAX_COORD and max(flat) <= MAX_COORD):
            return None
    except OverflowError:  # an integer beyond float range
        return None
    return flat


def _slow_coords(items: list) -> tuple[list, str | None]:
    """Item by item, NaN for unreadable fields, recording the first problem met."""
    flat: list = []
    error = None
    for i, item in enumerate(items):
        if not isinstance(item, dict):
            error = error or f"object {i} is not a JSON object"
            flat += _NAN6
            continue
        box, point = _coords(item.get("bbox_2d"), 4), _coords(item.get("point_2d"), 2)
        if box is None and error is None:
            error = f"object {i}: bbox_2d is not 4 finite numbers"
        if point is None and error is None:
            error = f"object {i}: point_2d is not 2 finite numbers"
        flat += box or _NAN6[:4]
        flat += point or _NAN6[:2]
    return flat, error


def read_objects(data, max_objects: int = MAX_OBJECTS):
    """A decoded JSON answer -> (flat coords, parsed, num_items, error)."""
    if not isinstance(data, list):
        return [], False, 0, f"answer is a JSON {type(data).__name__}, not a list"
    items = data[:max_objects]
    flat = _fast_coords(items)
    if flat is not None:
        return flat, True, len(data), None
    flat, error = _slow_coords(items)
    return flat, True, len(data), error


def as_text(text) -> tuple[str, str | None]:
    """(str, problem): bytes are decoded (invalid UTF-8 replaced), None is empty text."""
    if text is None:
        return "", "no text"
    if isinstance(text, (bytes, bytearray)):
        return bytes(text).decode("utf-8", errors="replace"), None
    if not isinstance(text, str):
        raise TypeError(f"text must be str, bytes or None, got {type(text).__name__}")
    return text, None


def _load_json(answer: str):
    """``json.loads(answer)`` for a stripped answer, through the decoder directly (no
    whitespace to skip); a value followed by more text goes to ``json.loads``, which
    raises its usual error."""
    value, end = _DECODER.raw_decode(answer)
    if end != len(answer):
        return json.loads(answer)
    return value


def parse_response(text, *, max_objects: int = MAX_OBJECTS) -> ParsedResponse:
    """Parse one response; never raises for str, bytes or None (see the module docstring)."""
    text, error = as_text(text)
    out = ParsedResponse(text=text, format_ok=think_answer_format_ok(text),
                         think=_between(text, _THINK, _THINK_END),
                         answer=_between(text, _ANSWER, _ANSWER_END), error=error)
    if out.answer is None:
        out.error = out.error or "no <answer>...</answer>"
        return out
    try:
        data = _load_json(out.answer)
    except (ValueError, RecursionError, OverflowError) as exc:
        out.error = f"answer is not valid JSON ({type(exc).__name__})"
        return out
    out.coords, out.parsed, out.num_items, err = read_objects(data, max_objects)
    out.error = out.error or err
    if out.parsed and out.num_items == 0:
        out.error = out.error or "answer is an empty list"
    return out


def _gt_coords(value, n: int, what: str) -> list:
    """Ground-truth coordinates: any n real numbers (lists, tuples, arrays), finite."""
    try:
        out = [float(v) for v in value]
    except (TypeError, ValueError, OverflowError):
        raise ValueError(f"{what} must be {n} numbers, got {value!r}") from None
    if len(out) != n or not all(abs(v) <= MAX_COORD for v in out):
        raise ValueError(f"{what} must be {n} finite numbers, got {value!r}")
    return out


def _gt_item(item, i: int, name: str) -> list:
    if isinstance(item, ParsedObject):
        box, point = item.bbox, item.point
    elif isinstance(item, dict):
        box, point = item.get("bbox_2d"), item.get("point_2d")
    else:
        raise ValueError(f"{name}[{i}] must be a dict with bbox_2d (and point_2d), "
                         f"got {type(item).__name__}")
    if box is None:
        raise ValueError(f"{name}[{i}] has no bbox_2d")
    box = _gt_coords(box, 4, f"{name}[{i}].bbox_2d")
    if point is None:  # REC data has boxes only: the box centre stands in for the point
        return box + [(box[0] + box[2]) / 2, (box[1] + box[3]) / 2]
    return box + _gt_coords(point, 2, f"{name}[{i}].point_2d")


def parse_objects(solution, *, name: str = "gt_objects",
                  max_objects: int = MAX_OBJECTS) -> ParsedResponse:
    """Ground truth in the solution format -> ``ParsedResponse`` (strict, unlike answers).

    ``solution`` is a list of ``{"bbox_2d": [...], "point_2d": [...]}`` dicts, its JSON
    string, a list of ``ParsedObject`` or a ``ParsedResponse``. Every object needs a box;
    a missing point is replaced by the box centre. Bad input raises ``ValueError`` naming
    ``name``; only the first ``max_objects`` objects are kept.
    """
    if isinstance(solution, ParsedResponse):
        return solution
    if isinstance(solution, (str, bytes)):
        try:
            solution = json.loads(solution)
        except (ValueError, RecursionError) as exc:
            raise ValueError(f"{name} is not valid JSON: {exc}") from None
    if isinstance(solution, dict):
        solution = [solution]
    if not isinstance(solution, (list, tuple)):
        raise ValueError(f"{name} must be a list of objects or its JSON string, "
                         f"got {type(solution).__name__}")
    items = list(solution[:max_objects])
    coords = _fast_coords(items) if all(isinstance(i, dict) for i in items) else None
    if coords is None:  # a missing point, tuples, numpy numbers...: item by item
        coords = []
        for i, item in enumerate(items):
            coords += _gt_item(item, i, name)
    return ParsedResponse(format_ok=True, coords=coords, parsed=True, num_items=len(solution))
