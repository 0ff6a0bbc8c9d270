"""The grounding sample every reader and the synthetic task produce, and the data error.

A :class:`GroundingSample` holds one prompt's image (already resized to the model-input
size), its query, the ground-truth objects in model-input pixels, and what evaluation needs
in original pixels (mask, original size). It maps boxes and points between the two frames.
It does not read files (see ``readers``) or build prompts (see ``prompts``).

Coordinate convention: boxes are ``[x1, y1, x2, y2]`` and points ``[x, y]`` in pixels of
the frame named; a frame change scales x by the width ratio and y by the height ratio,
which is how the model's processor resizes the image.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

TASKS = ("rec", "seg", "count", "reasoning_seg")


class DataError(ValueError):
    """A bad data record: names the file, the record (line or index) and the field.

    Attributes: ``file`` (str), ``line`` (1-based JSONL line or None), ``index`` (0-based
    record index of a JSON list or ``datasets`` folder, or None), ``field`` (the offending
    field or None for the whole record), ``reason`` (a short key used for skip counts,
    e.g. ``"missing_field"``, ``"bad_image"``, ``"box_outside_image"``).
    """

    def __init__(self, file, detail: str | None = None, *, line=None, index=None, field=None,
                 reason: str = "bad_record"):
        self.file, self.line, self.index, self.field = str(file), line, index, field
        self.reason, self.detail = reason, detail
        if detail is None:  # rebuilt from its message alone (e.g. by a data-loader worker)
            super().__init__(self.file)
            return
        where = record_location(self.file, line=line, index=index)
        what = f"field {field!r}: " if field is not None else ""
        super().__init__(f"{where}: {what}{detail}")

    def __reduce__(self):
        return (_rebuild_data_error, (self.file, self.detail, self.line, self.index,
                                      self.field, self.reason))


def _rebuild_data_error(file, detail, line, index, field, reason) -> DataError:
    return DataError(file, detail, line=line, index=index, field=field, reason=reason)


class FieldProblem(Exception):
    """Raised by field parsers; the reader adds the file and record and re-raises it as a
    :class:`DataError`."""

    def __init__(self, field, detail: str, reason: str):
        super().__init__(detail)
        self.field, self.detail, self.reason = field, detail, reason


def record_location(file, *, line=None, index=None) -> str:
    """``file:line`` for JSONL records, ``file[index]`` for list / datasets records."""
    if line is not None:
        return f"{file}:{line}"
    if index is not None:
        return f"{file}[{index}]"
    return str(file)


def _scale_objects(objects, sx: float, sy: float) -> list[dict]:
    out = []
    for obj in objects:
        new = dict(obj)
        if "bbox_2d" in obj:
            x1, y1, x2, y2 = obj["bbox_2d"]
            new["bbox_2d"] = [x1 * sx, y1 * sy, x2 * sx, y2 * sy]
        if "point_2d" in obj:
            x, y = obj["point_2d"]
            new["point_2d"] = [x * sx, y * sy]
        out.append(new)
    return out


@dataclass
class GroundingSample:
    """One grounding prompt with its ground truth."""

    id: str
    """Stable identifier (the record's ``id`` when it has one)."""
    image: Any
    """PIL.Image in RGB, already resized to :attr:`input_size` (what the model sees)."""
    query: str
    """The referring expression or question."""
    objects: list = field(default_factory=list)
    """Ground-truth objects ``[{"bbox_2d": [x1, y1, x2, y2], "point_2d": [x, y]}, ...]`` in
    MODEL-INPUT pixels (readers give floats, the synthetic task whole pixels). Counting rows
    with points only give ``{"point_2d": [x, y]}`` objects. Empty when only a mask or a
    count is known."""
    count: int | None = None
    """Number of target objects when known (counting rows, the synthetic task)."""
    mask: np.ndarray | None = None
    """Ground-truth mask, ``np.bool_`` of shape [H, W] at ORIGINAL size, or None."""
    original_size: tuple = (0, 0)
    """(width, height) of the original image: the frame of masks and of evaluation."""
    input_size: tuple = (0, 0)
    """(width, height) of :attr:`image` as the model sees it."""
    task: str = "rec"
    """One of ``"rec"``, ``"seg"``, ``"count"``, ``"reasoning_seg"``."""
    source: str = ""
    """Where the sample came from: ``file:line``, ``file[index]`` or
    ``synthetic:split:index``."""
    difficulty: str = ""
    """The synthetic task's kind of scene (``"easy"``, ``"hard"``, ``"single"``), so a
    mixed run can report its statistics by kind; empty for dataset rows."""

    def __post_init__(self):
        if self.task not in TASKS:
            raise ValueError(f"task must be one of {TASKS}, got {self.task!r}")

    def _ratios(self):
        (iw, ih), (ow, oh) = self.input_size, self.original_size
        if min(iw, ih, ow, oh) <= 0:
            raise ValueError(f"sample {self.id!r}: sizes must be positive, got "
                             f"input_size={self.input_size}, original_size={self.original_size}")
        return ow / iw, oh / ih

    def to_original(self, objects=None) -> list[dict]:
        """Map objects (default: the sample's own) from input to original pixels."""
        sx, sy = self._ratios()
        return _scale_objects(self.objects if objects is None else objects, sx, sy)

    def to_input(self, objects) -> list[dict]:
        """Map objects from original to input pixels (inverse of :meth:`to_original`)."""
        sx, sy = self._ratios()
        return _scale_objects(objects, 1.0 / sx, 1.0 / sy)
