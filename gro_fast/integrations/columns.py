"""Ground truth from a dataset row, for reward functions that receive dataset columns.

TRL hands a reward function the dataset's columns; veRL and EasyR1 hand it a
``ground_truth`` value. Both are read here, with ``gro_fast.data``'s field parsers (the one
owner of each format's rules), into solution-format objects
``[{"bbox_2d": [x1, y1, x2, y2], "point_2d": [x, y]}]``:

==================  =================================================================
column              read as
==================  =================================================================
``solution``        Seg-Zero / VisionReasoner: JSON string or list of objects (a
                    missing point becomes the box centre), or a VLM-R1 answer text
                    holding a box ``[x1, y1, x2, y2]``
``conversations``   VLM-R1 REC: the box in the ``gpt`` turn (point = box centre)
``bbox``            evaluation rows: one box or a list of boxes
``points``          counting rows: ``[[x, y], ...]`` (point-only objects)
``count``           counting rows: the number of objects (``row_count``)
==================  =================================================================

Coordinates must be in pixels of the image AS THE MODEL SEES IT. ``image_size`` picks
that frame: the row's ``image`` (a PIL image, e.g. from ``gro_fast.integrations.trl.
grounding_rows``, which stores images already resized), else ``img_width`` /
``img_height``. Bad values raise ``ValueError`` naming the column.
"""
from __future__ import annotations

import json
import math
from collections.abc import Mapping

from gro_fast.data.fields import (boxes_from_answer_text, check_point, parse_boxes,
                                  parse_objects)
from gro_fast.data.sample import FieldProblem

OBJECT_COLUMNS = ("solution", "conversations", "bbox", "points")


def image_size(row: Mapping) -> tuple[int, int]:
    """(width, height) of the model-input frame of ``row`` (see the module docstring)."""
    image = row.get("image")
    if isinstance(image, (list, tuple)) and len(image) == 1:
        image = image[0]
    if hasattr(image, "size") and isinstance(getattr(image, "size"), tuple):
        return tuple(int(v) for v in image.size)
    width, height = row.get("img_width"), row.get("img_height")
    if width is None or height is None:
        raise ValueError("cannot tell the image size: the row has no PIL 'image' and no "
                         "'img_width' / 'img_height' columns")
    return int(width), int(height)


def _gpt_answer(conversations) -> tuple[str, str]:
    for k, turn in enumerate(conversations or []):
        if isinstance(turn, Mapping) and turn.get("from") in ("gpt", "assistant"):
            return f"conversations[{k}].value", str(turn.get("value", ""))
    raise FieldProblem("conversations", "no 'gpt' turn", "missing_field")


def _solution(value, size) -> list[dict]:
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except json.JSONDecodeError:
            return boxes_from_answer_text(value, size, "solution")
    if isinstance(value, (list, tuple)) and value and not isinstance(value[0], Mapping):
        return parse_boxes(list(value), size, "solution")
    return parse_objects(value, size, "solution")


def row_objects(row: Mapping, size: tuple[int, int] | None = None) -> list[dict]:
    """Solution-format ground-truth objects of ``row`` (first column found, in the order
    of the module table); ``size`` defaults to :func:`image_size`."""
    size = image_size(row) if size is None else size
    try:
        if row.get("solution") is not None:
            return _solution(row["solution"], size)
        if row.get("conversations") is not None:
            field, answer = _gpt_answer(row["conversations"])
            return boxes_from_answer_text(answer, size, field)
        if row.get("bbox") is not None:
            return parse_boxes(list(row["bbox"]), size, "bbox")
        if row.get("points") is not None:
            return [{"point_2d": check_point(p, size, "points", f"point {k}")}
                    for k, p in enumerate(row["points"])]
    except FieldProblem as exc:
        raise ValueError(f"column {exc.field!r}: {exc.detail}") from None
    raise ValueError(f"no ground-truth column: expected one of {OBJECT_COLUMNS}, "
                     f"got columns {sorted(row)}")


def ground_truth_objects(value, size: tuple[int, int] | None = None) -> list[dict]:
    """Objects from one ground-truth value (veRL's ``ground_truth``, EasyR1's
    ``ground_truth`` string): solution-format JSON / list, one box, or a VLM-R1 answer text.
    ``size`` (width, height) bounds-checks the coordinates; None checks nothing."""
    size = (math.inf, math.inf) if size is None else size
    return row_objects({"solution": value}, size)


def row_count(row: Mapping) -> int:
    """The target count: the ``count`` column, else the number of ground-truth objects."""
    count = row.get("count")
    if count is not None:
        if isinstance(count, bool) or int(count) != count or count < 0:
            raise ValueError(f"column 'count': expected an integer >= 0, got {count!r}")
        return int(count)
    return len(row_objects(row))


def rows_from_columns(n: int, columns: Mapping) -> list[dict]:
    """TRL passes each column as a list of n values: the n rows as dicts."""
    rows = [{} for _ in range(n)]
    for key, values in columns.items():
        if isinstance(values, list) and len(values) == n:
            for row, value in zip(rows, values):
                row[key] = value
    return rows
