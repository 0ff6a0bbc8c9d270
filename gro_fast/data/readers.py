"""Readers for the training data users already have.

Formats (``load_grounding_dataset(format=...)``):

* ``"visionreasoner"``: Seg-Zero / VisionReasoner rows
  ``{id, problem, solution, image, img_height, img_width}``. ``solution`` is a JSON string
  (or list) of ``{"bbox_2d": [x1, y1, x2, y2], "point_2d": [x, y]}`` in pixels of the
  STORED image (Seg-Zero stores images pre-resized to 840 x 840); ``img_width`` /
  ``img_height`` give the original size (default: the stored size). A missing
  ``point_2d`` becomes the box centre.
* ``"vlmr1_rec"``: VLM-R1 REC JSONL ``{"id", "image": path or [path], "conversations":
  [{"from": "human", "value": "<image>..."}, {"from": "gpt", "value": "[x1, y1, x2, y2]"}]}``
  with boxes in original-image pixels. The query is the human turn without ``<image>`` and
  without VLM-R1's instruction "Please provide the bounding box coordinate of the region
  this sentence describes:". The point of each object is DERIVED as the box centre (VLM-R1
  has no points).
* ``"count"``: counting rows ``{id?, image, query | problem | question | text, count?,
  points?, solution?, img_width?, img_height?}``: ``points`` ``[[x, y], ...]`` become
  point-only objects ``{"point_2d": [x, y]}``; ``solution`` objects are read as in
  VisionReasoner rows; ``count`` defaults to the number of points / objects and must match
  it when both are given. Coordinates are in pixels of the stored image.
* ``"auto"``: picked from the first record's keys.

Aliases: ``seg_zero`` = ``visionreasoner``, ``vlm_r1`` = ``vlmr1_rec``, ``counting`` =
``count``.

Every reader returns a :class:`GroundingDataset`; coordinates come out in model-input pixels
per ``resize``. Evaluation rows are read by ``eval_rows.load_eval_rows``.
"""
from __future__ import annotations

import re

from .dataset import GroundingDataset, ParseContext, ParsedRecord, load_entries
from .fields import (boxes_from_answer_text, declared_size, parse_solution,
                     record_id, require, check_point)
from .images import image_ref
from .resize import ResizeConfig
from .sample import TASKS, FieldProblem

FORMATS = ("auto", "visionreasoner", "vlmr1_rec", "count")
FORMAT_ALIASES = {"seg_zero": "visionreasoner", "vlm_r1": "vlmr1_rec", "counting": "count"}
DEFAULT_TASK = {"visionreasoner": "seg", "vlmr1_rec": "rec", "count": "count"}
_VLMR1_INSTRUCTION = re.compile(
    r"^\s*please provide the bounding box coordinates? of the region this sentence "
    r"describes\s*:\s*", re.IGNORECASE)
_QUERY_KEYS = ("query", "problem", "question", "text")


def _image(record, ctx: ParseContext):
    ref = image_ref(require(record, "image"), base_dir=ctx.base_dir, image_root=ctx.image_root)
    return ref, ref.size()


def parse_visionreasoner(record, ctx: ParseContext) -> ParsedRecord:
    query = require(record, "problem", str, type_name="a string")
    require(record, "solution")
    original = declared_size(record)
    ref, stored = _image(record, ctx)
    objects = parse_solution(record, stored)
    return ParsedRecord(
        id=record_id(record, ctx.fallback_id), query=query, image=ref, stored_size=stored,
        objects=objects, objects_frame=stored, original_size=original or stored,
        task=ctx.options["task"], count=len(objects), location=ctx.location)


def _turn(conversations, role: str) -> tuple[int, str]:
    for k, turn in enumerate(conversations):
        if isinstance(turn, dict) and turn.get("from") == role:
            value = turn.get("value")
            if not isinstance(value, str):
                raise FieldProblem(f"conversations[{k}].value", "expected a string",
                                   "wrong_type")
            return k, value
    raise FieldProblem("conversations", f"no turn from {role!r}", "missing_field")


def vlmr1_query(text: str) -> str:
    """The referring expression inside a VLM-R1 human turn."""
    text = text.replace("<image>", " ").strip()
    return _VLMR1_INSTRUCTION.sub("", text).strip()


def parse_vlmr1_rec(record, ctx: ParseContext) -> ParsedRecord:
    conversations = require(record, "conversations", list, type_name="a list of turns")
    h, human = _turn(conversations, "human")
    k, answer = _turn(conversations, "gpt")
    query = vlmr1_query(human)
    if not query:
        raise FieldProblem(f"conversations[{h}].value", "empty query", "missing_field")
    ref, stored = _image(record, ctx)
    objects = boxes_from_answer_text(answer, stored, f"conversations[{k}].value")
    return ParsedRecord(
        id=record_id(record, ctx.fallback_id), query=query, image=ref, stored_size=stored,
        objects=objects, objects_frame=stored, original_size=stored,
        task=ctx.options["task"], count=len(objects), location=ctx.location)


def _count_query(record) -> str:
    for key in _QUERY_KEYS:
        if record.get(key) is not None:
            return require(record, key, str, type_name="a string")
    raise FieldProblem("query", f"missing (looked for {', '.join(_QUERY_KEYS)})",
                       "missing_field")


def _count_objects(record, stored) -> list[dict]:
    if record.get("points") is not None:
        points = require(record, "points", list, type_name="a list of [x, y]")
        return [{"point_2d": check_point(p, stored, "points", f"point {k}")}
                for k, p in enumerate(points)]
    if record.get("solution") is not None:
        return parse_solution(record, stored)
    return []


def parse_count(record, ctx: ParseContext) -> ParsedRecord:
    query = _count_query(record)
    original = declared_size(record)
    ref, stored = _image(record, ctx)
    objects = _count_objects(record, stored)
    if record.get("count") is not None:
        count = require(record, "count", int, type_name="a non-negative integer")
        if count < 0:
            raise FieldProblem("count", f"must be >= 0, got {count}", "wrong_type")
        if objects and count != len(objects):
            raise FieldProblem("count", f"{count} does not match the {len(objects)} "
                               "points / objects given", "bad_record")
    elif objects:
        count = len(objects)
    else:
        raise FieldProblem("count", "missing (and no points or solution)", "missing_field")
    return ParsedRecord(
        id=record_id(record, ctx.fallback_id), query=query, image=ref, stored_size=stored,
        objects=objects, objects_frame=stored, original_size=original or stored,
        task=ctx.options["task"], count=count, location=ctx.location)


PARSERS = {"visionreasoner": parse_visionreasoner, "vlmr1_rec": parse_vlmr1_rec,
           "count": parse_count}


def detect_format(record: dict) -> str:
    """The training-row format a record looks like (see module docstring)."""
    if "conversations" in record:
        return "vlmr1_rec"
    if "solution" in record and "problem" in record:
        return "visionreasoner"
    if "count" in record or "points" in record:
        return "count"
    if "mask" in record and "text" in record:
        raise ValueError("these look like evaluation rows (image, text, mask); read them "
                         "with load_eval_rows")
    raise ValueError(f"cannot tell the data format from the keys {sorted(record)}; pass "
                     f"format= one of {FORMATS[1:]}")


def load_grounding_dataset(path, *, format: str = "auto", image_root=None,
                           resize: ResizeConfig | None = None, on_error: str = "raise",
                           task: str | None = None, split: str | None = None
                           ) -> GroundingDataset:
    """Read training rows at ``path`` (JSON, JSONL or a ``datasets`` save_to_disk folder).

    ``format``: one of ``FORMATS``. ``image_root``: folder that relative image paths are
    under (default: the data file's folder). ``resize``: the model-input size rule (default
    ``ResizeConfig()``, Qwen2.5-VL's processor limits). ``on_error``: ``"raise"`` a
    :class:`DataError` on the first bad record, or ``"skip"`` it and count it in
    ``dataset.skipped``. ``task``: the samples' task (default per format: visionreasoner
    "seg", vlmr1_rec "rec", count "count"). ``split``: a split of a DatasetDict folder.
    """
    format = FORMAT_ALIASES.get(format, format)
    if format not in FORMATS:
        raise ValueError(f"format must be one of {FORMATS} (or an alias in "
                         f"{sorted(FORMAT_ALIASES)}), got {format!r}")
    if task is not None and task not in TASKS:
        raise ValueError(f"task must be one of {TASKS}, got {task!r}")
    options = {"task": task}

    def pick(record, loc):
        name = format if format != "auto" else _detect_at(record, loc)
        options["task"] = task or DEFAULT_TASK[name]
        return PARSERS[name]

    return load_entries(path, None, resize=resize, image_root=image_root, on_error=on_error,
                        split=split, options=options, detect=pick)


def _detect_at(record, loc) -> str:
    try:
        return detect_format(record)
    except ValueError as exc:
        raise ValueError(f"{loc.file}: {exc}") from None


__all__ = ["FORMATS", "load_grounding_dataset", "detect_format", "vlmr1_query",
           "GroundingDataset"]
