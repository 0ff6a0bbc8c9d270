"""Reader for evaluation rows (ReasonSeg, RefCOCO segmentation / REC, counting).

A row is ``{image, text, mask | count | bbox, img_height?, img_width?, id?}`` (the columns
of VisionReasoner's evaluation sets, read by its evaluation_segmentation.py /
evaluation_count.py), or VLM-R1's REC evaluation row ``{image, problem, solution,
normal_caption}`` (its ``rec_jsons_processed/*.json``, read by test_rec_r1.py):

* ``image``: any form ``images.image_ref`` accepts; it is taken to show the whole original
  image (possibly stored resized); ``img_width`` / ``img_height`` give the original size
  (default: the stored image's size);
* ``mask``: the ground-truth mask at the ORIGINAL size, as COCO RLE (compressed or not),
  COCO polygons, a dense [H, W] array or a mask image (see ``masks``);
* ``count``: the ground-truth number of objects (counting benchmarks);
* ``bbox``: optional ground-truth box(es) in original pixels, ``[x1, y1, x2, y2]`` (or
  ``[x, y, w, h]`` with ``bbox_format="xywh"``, COCO's convention; or 0-1000 normalised
  with ``coords="norm1000"``); they become objects (point = box centre) in model-input
  pixels. VLM-R1's ``solution`` box is read the same way;
* ``text`` (or VLM-R1's ``problem``): the query.

Declared sizes that are the stored image's with height and width swapped are refused.

The sample's ``task`` is "seg" with a mask (override with ``task="reasoning_seg"`` for
ReasonSeg), else "count" with a count, else "rec". ``id`` defaults to ``image_id`` +
``ann_id`` when the row has them (as VisionReasoner's evaluation sets do). Metrics are left
to ``gro_fast.eval``.
"""
from __future__ import annotations

from .dataset import GroundingDataset, ParseContext, ParsedRecord, load_entries
from .fields import (BBOX_FORMATS, COORDS, BoxConvention, check_declared_size, declared_size,
                     one_box, parse_boxes, require, solution_box)
from .images import image_ref
from .masks import check_mask
from .resize import ResizeConfig
from .sample import TASKS, FieldProblem
from .sources import LazyColumn

_QUERY_KEYS = ("text", "problem")


def _eval_id(record, fallback: str) -> str:
    if record.get("id") is not None:
        return str(record["id"])
    if record.get("image_id") is not None and record.get("ann_id") is not None:
        return f"{record['image_id']}_{record['ann_id']}"
    return fallback


def _count(record) -> int | None:
    if record.get("count") is None:
        return None
    count = require(record, "count", int, type_name="a non-negative integer")
    if count < 0:
        raise FieldProblem("count", f"must be >= 0, got {count}", "wrong_type")
    return count


def _mask(record, original, ctx: ParseContext):
    value = record.get("mask")
    if value is None:
        return None
    if not isinstance(value, LazyColumn):
        ow, oh = original
        check_mask(value, oh, ow, base_dir=ctx.base_dir, image_root=ctx.image_root)
    return value


def _query(record) -> str:
    for key in _QUERY_KEYS:
        if record.get(key) is not None:
            return require(record, key, str, type_name="a string")
    raise FieldProblem("text", "missing (the query: 'text', or VLM-R1's 'problem')",
                       "missing_field")


def _box_field(record) -> str | None:
    if record.get("bbox") is not None:
        return "bbox"
    if record.get("solution") is not None and one_box(record["solution"]) is not None:
        return "solution"  # VLM-R1's one box
    return None


def _boxes(record, field: str, original, ctx: ParseContext) -> list[dict]:
    value = solution_box(record, field) if field == "solution" else record[field]
    if not isinstance(value, list):
        raise FieldProblem(field, f"expected a box or a list of boxes, got "
                           f"{type(value).__name__}", "wrong_type")
    return parse_boxes(value, original, field, BoxConvention.from_options(ctx.options))


def parse_eval_row(record, ctx: ParseContext) -> ParsedRecord:
    query = _query(record)
    box_field = _box_field(record)
    has = {"mask": record.get("mask") is not None, "count": record.get("count") is not None,
           "bbox": box_field is not None}
    if not any(has.values()):
        raise FieldProblem("mask", "missing: a row needs one of mask, count or bbox",
                           "missing_field")
    declared = declared_size(record)
    ref = image_ref(require(record, "image"), base_dir=ctx.base_dir, image_root=ctx.image_root)
    stored = ref.size()
    check_declared_size(declared, stored)
    original = declared or stored
    count = _count(record)
    objects = _boxes(record, box_field, original, ctx) if box_field else []
    mask = _mask(record, original, ctx)
    task = ctx.options["task"] or ("seg" if has["mask"] else "count" if has["count"] else "rec")
    return ParsedRecord(
        id=_eval_id(record, ctx.fallback_id), query=query, image=ref, stored_size=stored,
        objects=objects, objects_frame=original, original_size=original, task=task,
        count=count, mask=mask, location=ctx.location)


def load_eval_rows(path, *, image_root=None, resize: ResizeConfig | None = None,
                   on_error: str = "raise", task: str | None = None,
                   bbox_format: str = "xyxy", split: str | None = None,
                   coords: str = "auto") -> GroundingDataset:
    """Read evaluation rows at ``path`` (JSON, JSONL or a ``datasets`` save_to_disk folder).

    Samples carry ``mask`` (np.bool_ [H, W] at the original size) and/or ``count`` and
    ``objects`` from ``bbox``. Mask forms are checked at load time for JSON files; for
    ``datasets`` folders masks are read and checked when a sample is accessed (a bad one
    raises :class:`DataError` then). ``coords``: units of ``bbox`` (``auto`` = pixels).
    Other arguments as in ``load_grounding_dataset``.
    """
    if bbox_format not in BBOX_FORMATS:
        raise ValueError(f"bbox_format must be one of {BBOX_FORMATS}, got {bbox_format!r}")
    if coords not in COORDS:
        raise ValueError(f"coords must be one of {COORDS}, got {coords!r}")
    if task is not None and task not in TASKS:
        raise ValueError(f"task must be one of {TASKS}, got {task!r}")
    return load_entries(path, parse_eval_row, resize=resize, image_root=image_root,
                        on_error=on_error, split=split,
                        options={"task": task, "bbox_format": bbox_format, "coords": coords})
