"""The dataset a reader returns, and the load loop shared by every reader.

:func:`load_entries` walks the records of a file, hands each to a format parser that turns
it into a :class:`ParsedRecord` (cheap fields checked, image size read from its header),
and either raises a :class:`DataError` naming file, record and field or, with
``on_error="skip"``, skips the record and counts it by reason. :class:`GroundingDataset`
decodes and resizes the image, maps the objects into model-input pixels and decodes the
mask only when a sample is read, so large datasets load quickly and stay small in memory.
Record formats live in ``readers`` and ``eval_rows``.
"""
from __future__ import annotations

import logging
from bisect import bisect_right
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from itertools import accumulate
from pathlib import Path
from typing import Any, Callable

from .images import ImageRef
from .masks import decode_mask
from .resize import ResizeConfig
from .sample import DataError, FieldProblem, GroundingSample, _scale_objects
from .sources import LazyColumn, Location, read_records

logger = logging.getLogger(__name__)
ON_ERROR = ("raise", "skip")


@dataclass
class ParsedRecord:
    """A checked record, before its image is decoded."""

    id: str
    query: str
    image: ImageRef
    stored_size: tuple
    """(w, h) of the image as stored (read from its header)."""
    objects: list
    objects_frame: tuple
    """(w, h) of the pixel frame the objects are given in."""
    original_size: tuple
    task: str
    count: int | None = None
    mask: Any = None
    """The raw mask value (or a LazyColumn), decoded on access at ``original_size``."""
    location: Location | None = None


@dataclass
class ParseContext:
    """What a format parser needs besides the record."""

    location: Location
    base_dir: Path
    image_root: Path | None
    fallback_id: str
    options: dict = field(default_factory=dict)


class GroundingDataset(Sequence):
    """A sequence of :class:`GroundingSample`; ``skipped`` counts skipped records by reason."""

    def __init__(self, records: list[ParsedRecord], *, resize: ResizeConfig, name: str,
                 base_dir: Path, image_root: Path | None, skipped: Counter | None = None):
        self.records, self.resize, self.name = records, resize, name
        self.base_dir, self.image_root = base_dir, image_root
        self.skipped: Counter = skipped if skipped is not None else Counter()

    def __len__(self) -> int:
        return len(self.records)

    def __repr__(self) -> str:
        return (f"GroundingDataset({self.name!r}, {len(self)} samples, "
                f"skipped={dict(self.skipped)})")

    def __getitem__(self, i):
        if isinstance(i, slice):
            return [self[k] for k in range(*i.indices(len(self)))]
        rec = self.records[i]
        try:
            return self._build(rec)
        except FieldProblem as exc:
            raise DataError(rec.location.file, exc.detail, field=exc.field, reason=exc.reason,
                            **rec.location.kwargs()) from exc

    def _build(self, rec: ParsedRecord) -> GroundingSample:
        image = rec.image.load()
        if image.size != tuple(rec.stored_size):
            raise FieldProblem("image", f"image is now {image.size}, its header said "
                               f"{rec.stored_size}", "bad_image")
        image = self.resize.apply(image)
        fw, fh = rec.objects_frame
        objects = _scale_objects(rec.objects, image.width / fw, image.height / fh)
        mask = None
        if rec.mask is not None:
            value = rec.mask.get() if isinstance(rec.mask, LazyColumn) else rec.mask
            ow, oh = rec.original_size
            mask = decode_mask(value, oh, ow, base_dir=self.base_dir, image_root=self.image_root)
        return GroundingSample(
            id=rec.id, image=image, query=rec.query, objects=objects, count=rec.count,
            mask=mask, original_size=tuple(rec.original_size), input_size=image.size,
            task=rec.task, source=_source(rec.location))


class ConcatGroundingDataset(Sequence):
    """Several datasets read as one (VLM-R1 recipes train on several files, each with its
    own image folder): samples in order, ``records`` and ``skipped`` combined."""

    def __init__(self, parts: list):
        if not parts:
            raise ValueError("ConcatGroundingDataset needs at least one dataset")
        self.parts = list(parts)
        self.records = [r for part in self.parts for r in part.records]
        self.name = " + ".join(part.name for part in self.parts)
        self.skipped: Counter = sum((Counter(part.skipped) for part in self.parts), Counter())
        self._starts = list(accumulate([0] + [len(part) for part in self.parts[:-1]]))

    def __len__(self) -> int:
        return len(self.records)

    def __repr__(self) -> str:
        return (f"ConcatGroundingDataset({self.name!r}, {len(self)} samples, "
                f"skipped={dict(self.skipped)})")

    def __getitem__(self, i):
        if isinstance(i, slice):
            return [self[k] for k in range(*i.indices(len(self)))]
        if not -len(self) <= i < len(self):
            raise IndexError(f"index {i} out of range for {len(self)} samples")
        i %= len(self)
        part = bisect_right(self._starts, i) - 1
        return self.parts[part][i - self._starts[part]]


def concat_datasets(parts: list):
    """One dataset of ``parts`` (the part itself when there is one)."""
    return parts[0] if len(parts) == 1 else ConcatGroundingDataset(parts)


def _source(loc: Location) -> str:
    return f"{loc.file}:{loc.line}" if loc.line is not None else f"{loc.file}[{loc.index}]"


def _check_on_error(on_error: str) -> None:
    if on_error not in ON_ERROR:
        raise ValueError(f"on_error must be one of {ON_ERROR}, got {on_error!r}")


def load_entries(path, parse: Callable[[dict, ParseContext], ParsedRecord], *,
                 resize: ResizeConfig | None, image_root, on_error: str,
                 split: str | None = None, options: dict | None = None,
                 detect: Callable[[dict, Location], Callable] | None = None
                 ) -> GroundingDataset:
    """Parse every record at ``path`` with ``parse`` (or, when ``detect`` is given, with the
    parser it picks from the first record that is a dict)."""
    _check_on_error(on_error)
    resize = ResizeConfig() if resize is None else resize
    if not isinstance(resize, ResizeConfig):
        raise TypeError(f"resize must be a ResizeConfig, got {type(resize).__name__}")
    path = Path(path)
    base_dir = path if path.is_dir() else path.parent
    image_root = None if image_root is None else Path(image_root)
    parsed, skipped, seen = [], Counter(), 0
    for loc, record in read_records(path, split=split):
        seen += 1
        ctx = ParseContext(loc, base_dir, image_root, _fallback_id(path, loc), options or {})
        try:
            if isinstance(record, FieldProblem):
                raise record
            if not isinstance(record, dict):
                raise FieldProblem(None, f"record must be a JSON object, got "
                                   f"{type(record).__name__}", "wrong_type")
            if detect is not None:
                parse, detect = detect(record, loc), None
            parsed.append(_checked_size(parse(record, ctx), resize))
        except FieldProblem as exc:
            if on_error == "raise":
                raise DataError(loc.file, exc.detail, field=exc.field, reason=exc.reason,
                                **loc.kwargs()) from None
            skipped[exc.reason] += 1
    if seen == 0:
        raise DataError(path, "no records", reason="empty")
    if skipped:
        hint = ""
        if skipped.get("bad_box") and (options or {}).get("bbox_format", "xyxy") == "xyxy":
            hint = (" (boxes with x1 > x2 or y1 > y2 may be COCO [x, y, w, h]: try "
                    "bbox_format xywh)")
        logger.warning("%s: skipped %d bad records %s%s", path, sum(skipped.values()),
                       dict(skipped), hint)
    return GroundingDataset(parsed, resize=resize, name=str(path), base_dir=base_dir,
                            image_root=image_root, skipped=skipped)


def _checked_size(rec: ParsedRecord, resize: ResizeConfig) -> ParsedRecord:
    """Refuse at load time an image the resize rule cannot take (aspect ratio > 200)."""
    try:
        resize.target_size(*rec.stored_size)
    except ValueError as exc:
        raise FieldProblem("image", str(exc), "bad_image") from None
    return rec


def _fallback_id(path: Path, loc: Location) -> str:
    return f"{path.stem}:{loc.line}" if loc.line is not None else f"{path.stem}:{loc.index}"
