"""Parsing and checking the fields of one record (ids, sizes, solutions, boxes, points).

Every function raises :class:`FieldProblem` naming the field and a reason key; the reader
that called it adds the file and record. Objects come out as
``{"bbox_2d": [x1, y1, x2, y2], "point_2d": [x, y]}`` with float coordinates in the frame
whose size is passed in. How a record WRITES its coordinates is a :class:`BoxConvention`:
``[x1, y1, x2, y2]`` or COCO's ``[x, y, w, h]``, in pixels or normalised to 0-1000
(InternVL); boxes are converted once, here. Nothing here reads images.
"""
from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass
from numbers import Real

from .sample import FieldProblem

EDGE_TOLERANCE = 1.0
"""Pixels a coordinate may overshoot the image edge before the record is refused."""
_BOX_IN_TEXT = re.compile(r"\[\s*(-?[\d.]+)\s*,\s*(-?[\d.]+)\s*,\s*(-?[\d.]+)\s*,\s*(-?[\d.]+)\s*\]")
_ANSWER_TAG = re.compile(r"<answer>(.*?)</answer>", re.DOTALL)
BBOX_FORMATS = ("xyxy", "xywh")
UNITS = ("pixels", "norm1000")
COORDS = ("auto",) + UNITS
NORM = 1000.0


@dataclass(frozen=True)
class BoxConvention:
    """How a record writes boxes and points (``coords: auto`` is resolved by the reader)."""

    bbox_format: str = "xyxy"
    """``"xyxy"`` ``[x1, y1, x2, y2]`` or ``"xywh"`` (COCO) ``[x, y, w, h]``."""
    units: str = "pixels"
    """``"pixels"`` of the frame named, or ``"norm1000"``: 0-1000 of its width / height."""

    def __post_init__(self):
        if self.bbox_format not in BBOX_FORMATS:
            raise ValueError(f"bbox_format must be one of {BBOX_FORMATS}, got {self.bbox_format!r}")
        if self.units not in UNITS:
            raise ValueError(f"coords must be one of {COORDS}, got {self.units!r}")

    @classmethod
    def from_options(cls, options: dict, internvl_form: bool = False) -> "BoxConvention":
        """The convention a reader's ``bbox_format`` / ``coords`` options give a record;
        ``coords="auto"`` is norm1000 for InternVL's ``<box>`` form, pixels otherwise."""
        coords = options.get("coords", "auto")
        units = ("norm1000" if internvl_form else "pixels") if coords == "auto" else coords
        return cls(options.get("bbox_format", "xyxy"), units)

    def to_pixels(self, coords: list[float], size) -> list[float]:
        if self.units == "pixels":
            return coords
        w, h = size
        return [c * (w if k % 2 == 0 else h) / NORM for k, c in enumerate(coords)]


PIXELS_XYXY = BoxConvention()


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


def _inside(coords, size, field: str, what: str, value,
            conv: BoxConvention = PIXELS_XYXY) -> list[float]:
    """Coordinates (x, y, x, y, ...) checked against [0, W] x [0, H]; an overshoot of at
    most EDGE_TOLERANCE px (float rounding of x + w in COCO boxes) is clamped."""
    w, h = size
    limits = [w if k % 2 == 0 else h for k in range(len(coords))]
    if any(c < -EDGE_TOLERANCE or c > lim + EDGE_TOLERANCE for c, lim in zip(coords, limits)):
        hint = ""
        if conv.units == "pixels" and all(0 <= c <= NORM for c in coords):
            hint = ("; if the coordinates are normalised to 0-1000 (InternVL), read them with "
                    "coords='norm1000' (data.coords: norm1000)")
        raise FieldProblem(field, f"{what} {value!r} lies outside the {w}x{h} image{hint}",
                           "box_outside_image")
    return [min(max(c, 0.0), float(lim)) for c, lim in zip(coords, limits)]


def check_box(box, size, field: str, what: str = "bbox_2d",
              conv: BoxConvention = PIXELS_XYXY) -> list[float]:
    """A box written as ``conv`` says, returned as ``[x1, y1, x2, y2]`` pixels of ``size``
    with x1 <= x2, y1 <= y2, inside [0, W] x [0, H]."""
    coords = _numbers(box, 4, field, what)
    if conv.bbox_format == "xywh":
        if coords[2] < 0 or coords[3] < 0:
            raise FieldProblem(field, f"{what} {box!r} (x, y, w, h) has a negative width or "
                               "height", "bad_box")
        coords = [coords[0], coords[1], coords[0] + coords[2], coords[1] + coords[3]]
    coords = conv.to_pixels(coords, size)
    if coords[0] > coords[2] or coords[1] > coords[3]:
        hint = ""
        if conv.bbox_format == "xyxy":
            hint = ("; if the boxes are COCO [x, y, w, h], read them with bbox_format='xywh' "
                    "(data.bbox_format: xywh, gro-fast eval --bbox-format xywh)")
        raise FieldProblem(field, f"{what} {box!r} has x1 > x2 or y1 > y2{hint}", "bad_box")
    return _inside(coords, size, field, what, box, conv)


def check_point(point, size, field: str, what: str = "point_2d",
                conv: BoxConvention = PIXELS_XYXY) -> list[float]:
    """A point ``[x, y]`` (in ``conv``'s units) inside [0, W] x [0, H]."""
    coords = conv.to_pixels(_numbers(point, 2, field, what), size)
    return _inside(coords, size, field, what, point, conv)


def check_declared_size(declared, stored) -> None:
    """Refuse a declared (img_width, img_height) that is the stored image's size with
    height and width swapped: the image would be stretched into the wrong frame."""
    if declared is None or declared[0] == declared[1]:
        return
    if tuple(declared) == (stored[1], stored[0]):
        raise FieldProblem(
            "img_width", f"img_width x img_height = {declared[0]}x{declared[1]} is the stored "
            f"image's {stored[0]}x{stored[1]} with height and width swapped; fix the row (or "
            "drop both fields to use the stored size)", "swapped_size")


def box_centre(box) -> list[float]:
    return [(box[0] + box[2]) / 2.0, (box[1] + box[3]) / 2.0]


def parse_objects(value, size, field: str, conv: BoxConvention = PIXELS_XYXY) -> list[dict]:
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
        box = check_box(obj["bbox_2d"], size, field, f"object {k} bbox_2d", conv)
        point = obj.get("point_2d")
        point = box_centre(box) if point is None else \
            check_point(point, size, field, f"object {k} point_2d", conv)
        objects.append({"bbox_2d": box, "point_2d": point})
    return objects


def parse_solution(record, size, field: str = "solution",
                   conv: BoxConvention = PIXELS_XYXY) -> list[dict]:
    """Seg-Zero / VisionReasoner ``solution``: a JSON string (or list) of objects."""
    value = require(record, field, (str, list, dict), type_name="a JSON string of objects")
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except json.JSONDecodeError as exc:
            raise FieldProblem(field, f"malformed JSON ({exc.msg}: char {exc.pos})",
                               "bad_solution") from exc
        except RecursionError:
            raise FieldProblem(field, "malformed JSON (nested too deeply)",
                               "bad_solution") from None
    return parse_objects(value, size, field, conv)


def one_box(value) -> list | None:
    """``value`` when it is one box written as a list of 4 numbers (or that list's JSON
    text, as VLM-R1's ``solution`` may be), else None."""
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except json.JSONDecodeError:
            return None
    if (isinstance(value, (list, tuple)) and len(value) == 4
            and all(isinstance(c, Real) and not isinstance(c, bool) for c in value)):
        return list(value)
    return None


def solution_box(record, field: str = "solution") -> list:
    """VLM-R1's ``solution``: one box ``[x1, y1, x2, y2]`` (a list, or its JSON text)."""
    value = require(record, field, (list, str), type_name="a box [x1, y1, x2, y2]")
    box = one_box(value)
    if box is None:
        raise FieldProblem(field, f"expected one box [x1, y1, x2, y2], got {value!r:.60}",
                           "bad_solution")
    return box


def parse_boxes(value, size, field: str, conv: BoxConvention = PIXELS_XYXY) -> list[dict]:
    """One box or a list of boxes, written as ``conv`` says, as objects whose point is the
    box centre."""
    if not isinstance(value, (list, tuple)) or not value:
        raise FieldProblem(field, f"expected a box or a list of boxes, got {value!r:.80}",
                           "wrong_type")
    boxes = value if isinstance(value[0], (list, tuple)) else [value]
    objects = []
    for box in boxes:
        box = check_box(box, size, field, "bbox", conv)
        objects.append({"bbox_2d": box, "point_2d": box_centre(box)})
    return objects


def answer_body(text: str) -> str:
    """The text inside ``<answer>...</answer>`` when the tags are there (VLM-R1 writes
    either form), else the text itself."""
    match = _ANSWER_TAG.search(text)
    return (match.group(1) if match else text).strip()


def boxes_from_answer_text(text: str, size, field: str,
                           conv: BoxConvention = PIXELS_XYXY) -> list[dict]:
    """Boxes from a VLM-R1 answer, with or without ``<answer>`` tags: JSON (a box, boxes, or
    objects) or a ``[x1, y1, x2, y2]`` found in free text. Points are box centres."""
    text = answer_body(text)
    try:
        value = json.loads(text)
    except (json.JSONDecodeError, RecursionError):
        value = None
    if isinstance(value, dict) or (isinstance(value, list) and value
                                   and isinstance(value[0], dict)):
        return parse_objects(value, size, field, conv)
    if isinstance(value, list) and value:
        return parse_boxes(value, size, field, conv)
    match = _BOX_IN_TEXT.search(text)
    if match is None:
        raise FieldProblem(field, f"no [x1, y1, x2, y2] box in the answer {text!r:.80}",
                           "bad_solution")
    try:
        box = [float(g) for g in match.groups()]
    except ValueError as exc:
        raise FieldProblem(field, f"malformed box in the answer {text!r:.80}",
                           "bad_solution") from exc
    return parse_boxes(box, size, field, conv)
