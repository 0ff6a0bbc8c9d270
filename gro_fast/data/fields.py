"""Parsing and checking the fields of one record (ids, sizes, solutions, boxes, points).

Every function raises :class:`FieldProblem` naming the field and a reason key; the reader
that called it adds the file and record. Objects come out as
``{"bbox_2d": [x1, y1, x2, y2], "point_2d": [x, y]}`` with float coordinates in the frame
whose size is passed in. Nothing here reads images.
"""
from __future__ import annotations

import json
import math
import re
from numbers import Real

from .sample import FieldProblem

EDGE_TOLERANCE = 1.0
"""Pixels a coordinate may overshoot the image edge before the record is refused."""
_BOX_IN_TEXT = re.compile(r"\[\s*(-?[\d.]+)\s*,\s*(-?[\d.]+)\s*,\s*(-?[\d.]+)\s*,\s*(-?[\d.]+)\s*\]")


def require(record, name: str, types=None, *, type_name: str | None = None):
    """``record[name]``, checked present (not None) and, if given, of ``types``."""
    if not isinstance(record, dict):
        raise FieldProblem(None, f"record must be a JSON object, got {type(record).__name__}",
                           "wrong_type")
    if name not in record or record[name] is None:
        raise FieldProblem(name, "missing", "missing_field")
    value = record[name]
    if types is not None and (not isinstance(value, types) or isinstance(value, bool)):
        raise FieldProblem(name, f"expected {type_name or types}, got "
                           f"{type(value).__name__} {value!r:.60}", "wrong_type")
    return value


def positive_int(record, name: str) -> int:
    """A positive integer field below 2^31 (integral floats such as 480.0 are accepted)."""
    value = require(record, name, Real, type_name="a positive integer")
    if not (0 < value < 2**31) or value != int(value):   # also false for NaN
        raise FieldProblem(name, f"expected a positive integer below 2^31, got {value!r:.40}",
                           "wrong_type")
    return int(value)


def declared_size(record) -> tuple[int, int] | None:
    """(img_width, img_height) when the record declares them (both or neither)."""
    has_w, has_h = record.get("img_width") is not None, record.get("img_height") is not None
    if not has_w and not has_h:
        return None
    return positive_int(record, "img_width"), positive_int(record, "img_height")


def record_id(record, fallback: str) -> str:
    value = record.get("id")
    return fallback if value is None else str(value)


def _numbers(value, n: int, field: str, what: str) -> list[float]:
    if (not isinstance(value, (list, tuple)) or len(value) != n
            or not all(isinstance(c, Real) and not isinstance(c, bool) for c in value)):
        raise FieldProblem(field, f"{what} must be a list of {n} numbers, got {value!r:.80}",
                           "wrong_type")
    try:
        coords = [float(c) for c in value]
    except OverflowError:   # an int beyond float64
        coords = [math.inf]
    if not all(math.isfinite(c) for c in coords):
        raise FieldProblem(field, f"{what} has a non-finite coordinate: {value!r}", "wrong_type")
    return coords


def _inside(coords, size, field: str, what: str, value) -> list[float]:
    """Coordinates (x, y, x, y, ...) checked against [0, W] x [0, H]; an overshoot of at
    most EDGE_TOLERANCE px (float rounding of x + w in COCO boxes) is clamped."""
    w, h = size
    limits = [w if k % 2 == 0 else h for k in range(len(coords))]
    if any(c < -EDGE_TOLERANCE or c > lim + EDGE_TOLERANCE for c, lim in zip(coords, limits)):
        raise FieldProblem(field, f"{what} {value!r} lies outside the {w}x{h} image",
                           "box_outside_image")
    return [min(max(c, 0.0), float(lim)) for c, lim in zip(coords, limits)]


def check_box(box, size, field: str, what: str = "bbox_2d") -> list[float]:
    """A box ``[x1, y1, x2, y2]`` with x1 <= x2, y1 <= y2, inside [0, W] x [0, H]."""
    coords = _numbers(box, 4, field, what)
    if coords[0] > coords[2] or coords[1] > coords[3]:
        raise FieldProblem(field, f"{what} {box!r} has x1 > x2 or y1 > y2", "bad_box")
    return _inside(coords, size, field, what, box)


def check_point(point, size, field: str, what: str = "point_2d") -> list[float]:
    """A point ``[x, y]`` inside [0, W] x [0, H]."""
    return _inside(_numbers(point, 2, field, what), size, field, what, point)


def box_centre(box) -> list[float]:
    return [(box[0] + box[2]) / 2.0, (box[1] + box[3]) / 2.0]


def parse_objects(value, size, field: str) -> list[dict]:
    """A list of ``{"bbox_2d", "point_2d"}`` dicts; a missing point becomes the box centre."""
    if isinstance(value, dict):
        value = [value]
    if not isinstance(value, list):
        raise FieldProblem(field, f"expected a list of objects, got {type(value).__name__}",
                           "wrong_type")
    objects = []
    for k, obj in enumerate(value):
        if not isinstance(obj, dict) or "bbox_2d" not in obj:
            raise FieldProblem(field, f"object {k} needs a 'bbox_2d': {obj!r:.80}", "bad_solution")
        box = check_box(obj["bbox_2d"], size, field, f"object {k} bbox_2d")
        point = obj.get("point_2d")
        point = box_centre(box) if point is None else \
            check_point(point, size, field, f"object {k} point_2d")
        objects.append({"bbox_2d": box, "point_2d": point})
    return objects


def parse_solution(record, size, field: str = "solution") -> list[dict]:
    """Seg-Zero / VisionReasoner ``solution``: a JSON string (or list) of objects."""
    value = require(record, field, (str, list, dict), type_name="a JSON string of objects")
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except json.JSONDecodeError as exc:
            raise FieldProblem(field, f"malformed JSON ({exc.msg} at char {exc.pos})",
                               "bad_solution") from exc
        except RecursionError:
            raise FieldProblem(field, "malformed JSON (nested too deeply)",
                               "bad_solution") from None
    return parse_objects(value, size, field)


def parse_boxes(value, size, field: str, *, xywh: bool = False) -> list[dict]:
    """One box or a list of boxes (``[x1, y1, x2, y2]``, or ``[x, y, w, h]`` with ``xywh``)
    as objects whose point is the box centre."""
    boxes = value if value and isinstance(value[0], (list, tuple)) else [value]
    objects = []
    for box in boxes:
        if xywh:
            box = _numbers(box, 4, field, "bbox")
            box = [box[0], box[1], box[0] + box[2], box[1] + box[3]]
        box = check_box(box, size, field, "bbox")
        objects.append({"bbox_2d": box, "point_2d": box_centre(box)})
    return objects


def boxes_from_answer_text(text: str, size, field: str) -> list[dict]:
    """Boxes from a VLM-R1 answer: JSON (a box, boxes, or objects) or a ``[x1, y1, x2, y2]``
    found in free text. Points are box centres."""
    try:
        value = json.loads(text)
    except (json.JSONDecodeError, RecursionError):
        value = None
    if isinstance(value, dict) or (isinstance(value, list) and value
                                   and isinstance(value[0], dict)):
        return parse_objects(value, size, field)
    if isinstance(value, list) and value:
        return parse_boxes(value, size, field)
    match = _BOX_IN_TEXT.search(text)
    if match is None:
        raise FieldProblem(field, f"no [x1, y1, x2, y2] box in the answer {text!r:.80}",
                           "bad_solution")
    try:
        box = [float(g) for g in match.groups()]
    except ValueError as exc:
        raise FieldProblem(field, f"malformed box in the answer {text!r:.80}",
                           "bad_solution") from exc
    return parse_boxes(box, size, field)
