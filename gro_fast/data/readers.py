"""Readers for the training data users already have.

Formats (``load_grounding_dataset(format=...)``); each is written as its authors' public
scripts write it (see docs/data.md for the scripts and tests/data/peers for examples):

* ``"visionreasoner"``: Seg-Zero / VisionReasoner rows
  ``{id, problem, solution, image, img_height, img_width}``. ``solution`` is a JSON string
  (or list) of ``{"bbox_2d": [x1, y1, x2, y2], "point_2d": [x, y]}`` in pixels of the
  STORED image (Seg-Zero stores images pre-resized to 840 x 840); ``img_width`` /
  ``img_height`` give the original size (default: the stored size). A missing
  ``point_2d`` becomes the box centre.
* ``"vlmr1_rec"``: VLM-R1 REC JSONL ``{"id", "image": path or [path], "conversations":
  [{"from": "human", "value": "<image>..."}, {"from": "gpt", "value": "[x1, y1, x2, y2]"}]}``
  with boxes in original-image pixels; the answer may be wrapped in ``<answer>`` tags.
  The query is the human turn without ``<image>``, ``<ref>`` tags and VLM-R1's
  instruction "Please provide the bounding box coordinate of the region this sentence
  describes:". The point of each object is DERIVED as the box centre (VLM-R1 has none).
* ``"vlmr1_rec_json"``: VLM-R1's evaluation (and older training) rows,
  ``rec_jsons_processed/*.json``: ``{image, problem, solution: [x1, y1, x2, y2],
  normal_caption}``, the box in original-image pixels, the query ``problem``.
* ``"internvl"``: InternVL grounding rows, conversations as VLM-R1's whose answer is
  ``<ref>query</ref><box>[[x1, y1, x2, y2], ...]</box>`` with coordinates normalised to
  0-1000 of the image's width / height (``coords: auto`` reads them so); the query is the
  text inside ``<ref>``.
* ``"count"``: counting rows ``{id?, image, query | problem | question | text, count?,
  points?, solution?, img_width?, img_height?}``: ``points`` ``[[x, y], ...]`` become
  point-only objects ``{"point_2d": [x, y]}``; ``solution`` objects are read as in
  VisionReasoner rows; ``count`` defaults to the number of points / objects and must match
  it when both are given. Coordinates are in pixels of the stored image.
* ``"auto"``: picked from the keys of the first record whose format can be told (a record
  whose format cannot be told is an error naming its line, or skipped and counted).

Aliases: ``seg_zero`` = ``visionreasoner``, ``vlm_r1`` = ``vlmr1_rec``,
``rec_jsons_processed`` = ``vlmr1_rec_json``, ``counting`` = ``count``.

Boxes are read as ``bbox_format`` says (``xyxy``, or COCO's ``xywh``) in ``coords`` units
(``pixels``, ``norm1000``, or ``auto``: norm1000 for the InternVL form, pixels otherwise).
A declared size that is the stored image's with height and width swapped is refused.
Every reader returns a :class:`GroundingDataset`; coordinates come out in model-input pixels
per ``resize``. Evaluation rows are read by ``eval_rows.load_eval_rows``.
"""
from __future__ import annotations

import json
import re

from .dataset import GroundingDataset, ParseContext, ParsedRecord, load_entries
from .fields import (BBOX_FORMATS, COORDS, BoxConvention, boxes_from_answer_text,
                     check_declared_size, check_point, declared_size, one_box, parse_boxes,
                     parse_solution, record_id, require, solution_box)
from .images import image_ref
from .resize import ResizeConfig
from .sample import TASKS, FieldProblem

FORMATS = ("auto", "visionreasoner", "vlmr1_rec", "vlmr1_rec_json", "internvl", "count")
FORMAT_ALIASES = {"seg_zero": "visionreasoner", "vlm_r1": "vlmr1_rec",
                  "rec_jsons_processed": "vlmr1_rec_json", "counting": "count"}
DEFAULT_TASK = {"visionreasoner": "seg", "vlmr1_rec": "rec", "vlmr1_rec_json": "rec",
                "internvl": "rec", "count": "count"}
_VLMR1_INSTRUCTION = re.compile(
    r"^\s*please provide the bounding box coordinates? of the region this sentence "
    r"describes\s*:\s*", re.IGNORECASE)
_REF = re.compile(r"<ref>(.*?)</ref>", re.DOTALL)
_BOX_TAG = re.compile(r"<box>(.*?)</box>", re.DOTALL)
_QUERY_KEYS = ("query", "problem", "question", "text")


def _image(record, ctx: ParseContext):
    ref = image_ref(require(record, "image"), base_dir=ctx.base_dir, image_root=ctx.image_root)
    return ref, ref.size()


def _original(record, stored) -> tuple:
    declared = declared_size(record)
    check_declared_size(declared, stored)
    return declared or stored


def convention(ctx: ParseContext, internvl_form: bool = False) -> BoxConvention:
    return BoxConvention.from_options(ctx.options, internvl_form)


def parse_visionreasoner(record, ctx: ParseContext) -> ParsedRecord:
    query = require(record, "problem", str, type_name="a string")
    require(record, "solution")
    ref, stored = _image(record, ctx)
    original = _original(record, stored)
    objects = parse_solution(record, stored, conv=convention(ctx))
    return ParsedRecord(
        id=record_id(record, ctx.fallback_id), query=query, image=ref, stored_size=stored,
        objects=objects, objects_frame=stored, original_size=original,
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
    """The referring expression inside a VLM-R1 / InternVL human turn: the text inside
    ``<ref>`` when there is one, else the turn without ``<image>`` and the instruction."""
    ref = _REF.search(text)
    if ref is not None:
        return ref.group(1).strip()
    text = text.replace("<image>", " ").strip()
    return _VLMR1_INSTRUCTION.sub("", text).strip()


def internvl_boxes(answer: str, size, field: str, conv: BoxConvention) -> list[dict]:
    """The boxes of an InternVL answer ``<ref>...</ref><box>[[x1, y1, x2, y2], ...]</box>``
    (every ``<box>`` of the answer)."""
    boxes = []
    for match in _BOX_TAG.finditer(answer):
        try:
            value = json.loads(match.group(1))
        except json.JSONDecodeError as exc:
            raise FieldProblem(field, f"malformed <box> {match.group(1)!r:.60} ({exc.msg})",
                               "bad_solution") from None
        boxes += value if value and isinstance(value[0], list) else [value]
    if not boxes:
        raise FieldProblem(field, f"no <box>[[x1, y1, x2, y2]]</box> in the answer "
                           f"{answer!r:.80}", "bad_solution")
    return parse_boxes(boxes, size, field, conv)


def _conversation(record, ctx: ParseContext, internvl: bool) -> ParsedRecord:
    conversations = require(record, "conversations", list, type_name="a list of turns")
    h, human = _turn(conversations, "human")
    k, answer = _turn(conversations, "gpt")
    query = vlmr1_query(human)
    if not query:
        raise FieldProblem(f"conversations[{h}].value", "empty query", "missing_field")
    ref, stored = _image(record, ctx)
    field, conv = f"conversations[{k}].value", convention(ctx, internvl_form=internvl)
    objects = (internvl_boxes(answer, stored, field, conv) if internvl
               else boxes_from_answer_text(answer, stored, field, conv))
    return ParsedRecord(
        id=record_id(record, ctx.fallback_id), query=query, image=ref, stored_size=stored,
        objects=objects, objects_frame=stored, original_size=stored,
        task=ctx.options["task"], count=len(objects), location=ctx.location)


def parse_vlmr1_rec(record, ctx: ParseContext) -> ParsedRecord:
    return _conversation(record, ctx, internvl=False)


def parse_internvl(record, ctx: ParseContext) -> ParsedRecord:
    return _conversation(record, ctx, internvl=True)


def parse_vlmr1_rec_json(record, ctx: ParseContext) -> ParsedRecord:
    query = require(record, "problem", str, type_name="a string").strip()
    if not query:
        raise FieldProblem("problem", "empty query", "missing_field")
    ref, stored = _image(record, ctx)
    objects = parse_boxes(solution_box(record), stored, "solution", convention(ctx))
    return ParsedRecord(
        id=record_id(record, ctx.fallback_id), query=query, image=ref, stored_size=stored,
        objects=objects, objects_frame=stored, original_size=_original(record, stored),
        task=ctx.options["task"], count=len(objects), location=ctx.location)


def _count_query(record) -> str:
    for key in _QUERY_KEYS:
        if record.get(key) is not None:
            return require(record, key, str, type_name="a string")
    raise FieldProblem("query", f"missing (looked for {', '.join(_QUERY_KEYS)})",
                       "missing_field")


def _count_objects(record, stored, conv: BoxConvention) -> list[dict]:
    if record.get("points") is not None:
        points = require(record, "points", list, type_name="a list of [x, y]")
        return [{"point_2d": check_point(p, stored, "points", f"point {k}", conv)}
                for k, p in enumerate(points)]
    if record.get("solution") is not None:
        return parse_solution(record, stored, conv=conv)
    return []


def parse_count(record, ctx: ParseContext) -> ParsedRecord:
    query = _count_query(record)
    ref, stored = _image(record, ctx)
    original = _original(record, stored)
    objects = _count_objects(record, stored, convention(ctx))
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
        objects=objects, objects_frame=stored, original_size=original,
        task=ctx.options["task"], count=count, location=ctx.location)


PARSERS = {"visionreasoner": parse_visionreasoner, "vlmr1_rec": parse_vlmr1_rec,
           "vlmr1_rec_json": parse_vlmr1_rec_json, "internvl": parse_internvl,
           "count": parse_count}


def _gpt_text(record) -> str:
    turns = record.get("conversations")
    if isinstance(turns, list):
        for turn in turns:
            if isinstance(turn, dict) and turn.get("from") == "gpt" \
                    and isinstance(turn.get("value"), str):
                return turn["value"]
    return ""


def detect_format(record: dict) -> str:
    """The training-row format a record looks like (see module docstring); raises
    FieldProblem when it cannot be told."""
    if "conversations" in record:
        return "internvl" if "<box>" in _gpt_text(record) else "vlmr1_rec"
    if "solution" in record and "problem" in record:
        return "vlmr1_rec_json" if one_box(record["solution"]) else "visionreasoner"
    if "count" in record or "points" in record:
        return "count"
    if "mask" in record and "text" in record:
        raise FieldProblem(None, "this looks like an evaluation row (image, text, mask); "
                           "read evaluation rows with load_eval_rows / gro-fast eval",
                           "unknown_format")
    raise FieldProblem(None, f"cannot tell the data format from the keys {sorted(record)}; "
                       f"pass format= one of {FORMATS[1:]}", "unknown_format")


def load_grounding_dataset(path, *, format: str = "auto", image_root=None,
                           resize: ResizeConfig | None = None, on_error: str = "raise",
                           task: str | None = None, split: str | None = None,
                           bbox_format: str = "xyxy", coords: str = "auto"
                           ) -> GroundingDataset:
    """Read training rows at ``path`` (JSON, JSONL or a ``datasets`` save_to_disk folder).

    ``format``: one of ``FORMATS``. ``image_root``: folder that relative image paths are
    under (default: the data file's folder). ``resize``: the model-input size rule (default
    ``ResizeConfig()``, Qwen2.5-VL's processor limits). ``on_error``: ``"raise"`` a
    :class:`DataError` on the first bad record, or ``"skip"`` it and count it in
    ``dataset.skipped``. ``task``: the samples' task (default per format: visionreasoner
    "seg", count "count", the others "rec"). ``split``: a split of a DatasetDict folder.
    ``bbox_format``: ``"xyxy"`` or COCO's ``"xywh"``. ``coords``: ``"auto"``, ``"pixels"``
    or ``"norm1000"`` (see the module docstring).
    """
    format = FORMAT_ALIASES.get(format, format)
    if format not in FORMATS:
        raise ValueError(f"format must be one of {FORMATS} (or an alias in "
                         f"{sorted(FORMAT_ALIASES)}), got {format!r}")
    if task is not None and task not in TASKS:
        raise ValueError(f"task must be one of {TASKS}, got {task!r}")
    if bbox_format not in BBOX_FORMATS:
        raise ValueError(f"bbox_format must be one of {BBOX_FORMATS}, got {bbox_format!r}")
    if coords not in COORDS:
        raise ValueError(f"coords must be one of {COORDS}, got {coords!r}")
    options = {"task": task, "bbox_format": bbox_format, "coords": coords}

    def pick(record, loc):
        name = format if format != "auto" else detect_format(record)
        options["task"] = task or DEFAULT_TASK[name]
        return PARSERS[name]

    return load_entries(path, None, resize=resize, image_root=image_root, on_error=on_error,
                        split=split, options=options, detect=pick)


__all__ = ["FORMATS", "load_grounding_dataset", "detect_format", "vlmr1_query",
           "GroundingDataset"]
