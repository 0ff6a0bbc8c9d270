"""The evaluation loop: batched greedy generation, parsing, scoring, resumable outputs.

For each batch of samples not yet in ``samples.jsonl``:
  ``generate``  one greedy answer per sample through ``gro_fast.generation.RolloutEngine``;
  ``score``     parse it (``gro_fast.rewards.parse_response``), map its objects from
                model-input to original pixels (``GroundingSample.to_original``), and score
                against the ground truth at the original size (segmenter + mask IoU for
                "seg", box IoU for "rec", object count for "count");
  ``append``    write the batch's records to ``samples.jsonl`` (the resume point).
Then all records of the requested samples are aggregated under the protocol and written
as ``report.json`` / ``report.md`` / ``predictions.png`` (see ``report.py``).

Generation time and the rest (parsing, segmentation, IoU, I/O) are timed apart; their
ratio is the overhead the benchmark tracks. This module does not load models or data
(``cli.py`` does) and computes no metric itself (``metrics.py``).
"""
from __future__ import annotations

import heapq
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from . import report as reports
from .metrics import EvalProtocol
from .scoring import (answer_objects, failure_reason, ground_truth_count, score_rec,
                      score_segmentation)
from .segmenters import BoxSegmenter, Segmenter

EVAL_TASKS = ("seg", "rec", "count")


@dataclass
class EvalConfig:
    """What to evaluate and how."""

    task: str = "seg"
    """``"seg"`` (gIoU / cIoU), ``"rec"`` (Acc@0.5) or ``"count"`` (accuracy, MAE, RMSE)."""
    protocol: EvalProtocol = field(default_factory=EvalProtocol)
    """Scoring conventions (see ``metrics.EvalProtocol``)."""
    batch_size: int = 8
    """Prompts generated together."""
    max_new_tokens: int = 512
    """Generation budget per answer (reasoning plus answer)."""
    limit: int | None = None
    """Evaluate only the first ``limit`` samples."""
    resume: bool = True
    """Keep finished samples of ``samples.jsonl`` and do only the rest."""
    grid_samples: int = 8
    """Predictions drawn in ``predictions.png`` (the worst-scored of this run); 0: no grid."""
    template: str | None = None
    """Prompt template for ``gro_fast.data.build_messages`` (None: its default)."""

    def __post_init__(self):
        if self.task not in EVAL_TASKS:
            raise ValueError(f"task must be one of {EVAL_TASKS}, got {self.task!r}")
        for name in ("batch_size", "max_new_tokens"):
            if not isinstance(getattr(self, name), int) or getattr(self, name) < 1:
                raise ValueError(f"{name} must be a positive int, got {getattr(self, name)!r}")
        if self.limit is not None and (not isinstance(self.limit, int) or self.limit < 1):
            raise ValueError(f"limit must be a positive int or None, got {self.limit!r}")
        if not isinstance(self.protocol, EvalProtocol):
            raise TypeError(f"protocol must be an EvalProtocol, got {type(self.protocol).__name__}")


def sample_keys(ids) -> list[str]:
    """Resume keys: the sample id, with ``#k`` added to its k-th repeat (k >= 1)."""
    seen: Counter = Counter()
    keys = []
    for sid in ids:
        k = seen[sid]
        seen[sid] += 1
        keys.append(sid if k == 0 else f"{sid}#{k}")
    return keys


def _with_ids(samples, count: int):
    """(samples, ids of the first ``count``) without reading images where possible: a
    ``GroundingDataset`` knows its records' ids; other sequences are built once here."""
    records = getattr(samples, "records", None)
    if records is not None:
        return samples, [str(r.id) for r in records[:count]]
    samples = samples if isinstance(samples, list) else [samples[i] for i in range(count)]
    return samples, [s.id for s in samples[:count]]


def generate_answers(engine, samples, config: EvalConfig) -> list[str]:
    """One greedy answer per sample, generated as one batch (queries rewritten as the
    protocol says); the sizes the engine fed must be the samples' frame."""
    from dataclasses import replace

    from gro_fast.data import build_messages
    from gro_fast.data.frame import check_fed_sizes
    from gro_fast.data.prompts import normalize_query
    rule = config.protocol.query_normalization
    conversations = [build_messages(replace(s, query=normalize_query(s.query, rule)),
                                    template=config.template) for s in samples]
    groups = engine.generate(conversations, num_samples=1, max_new_tokens=config.max_new_tokens,
                             temperature=0.0)
    check_fed_sizes(samples, [group.image_sizes for group in groups], where="eval")
    return [group.samples[0].text for group in groups]


def _original_image(sample, stored=None):
    """The sample's image at its original size: ``stored`` (the image as read from disk,
    when the data source can give it) or else the model-input copy, resized if needed."""
    from PIL import Image
    image = stored if stored is not None else sample.image
    if tuple(image.size) == tuple(sample.original_size):
        return image
    return image.resize(tuple(sample.original_size), Image.Resampling.BILINEAR)


def segmenter_image(samples, index: int, sample, segmenter: Segmenter):
    """What the segmenter sees. A pixel-based segmenter (SAM2) gets the image re-read from
    the dataset record when possible, since the model-input copy may be downscaled; the
    box segmenter only needs the size."""
    from PIL import Image
    if not segmenter.needs_pixels:
        return Image.new("1", tuple(sample.original_size))
    records = getattr(samples, "records", None)
    ref = getattr(records[index], "image", None) if records is not None else None
    stored = ref.load() if hasattr(ref, "load") else None
    return _original_image(sample, stored)


def _boxes(objects) -> list:
    return [o["bbox_2d"] for o in objects if "bbox_2d" in o]


def score_sample(sample, key: str, text: str, config: EvalConfig, segmenter: Segmenter | None,
                 image=None) -> tuple[dict, np.ndarray | None]:
    """One sample's record for ``samples.jsonl`` (and its predicted mask for "seg").

    ``image``: what the segmenter sees, at the original size (default: the model-input
    image resized back)."""
    from gro_fast.rewards import parse_response
    parsed = parse_response(text)
    failure = failure_reason(parsed, need_box=config.task != "count")
    objects = sample.to_original(answer_objects(parsed)) if failure is None else []
    record = {"id": key, "source": sample.source, "query": sample.query, "prediction": text,
              "format_ok": bool(parsed.format_ok), "failure": failure, "objects": objects}
    pred_mask = None
    if config.task == "seg":
        if sample.mask is None:
            raise ValueError(f"sample {sample.id!r} ({sample.source}) has no ground-truth mask; "
                             "task 'seg' needs rows with a 'mask'")
        width, height = sample.original_size
        if tuple(sample.mask.shape) != (height, width):
            raise ValueError(f"sample {sample.id!r} ({sample.source}): mask shape {sample.mask.shape} "
                             f"is not the original size (H, W) = {(height, width)}")
        image = image if image is not None else _original_image(sample)
        pred_mask = segmenter.segment(image, objects)
        inter, union = score_segmentation(pred_mask, sample.mask)
        record.update(intersection=inter, union=union, gt_area=int(sample.mask.sum()),
                      iou=inter / union if union else 0.0)
    elif config.task == "rec":
        gt_boxes = _boxes(sample.to_original())
        if not gt_boxes:
            raise ValueError(f"sample {sample.id!r} ({sample.source}) has no ground-truth box; "
                             "task 'rec' needs rows with a 'bbox'")
        first, best = score_rec(_boxes(objects), gt_boxes,
                                inclusive=config.protocol.box_convention == "inclusive")
        record.update(first_iou=first, best_iou=best, gt_boxes=gt_boxes)
    else:
        record.update(pred_count=int(parsed.num_objects) if failure is None else 0,
                      gt_count=ground_truth_count(sample))
    return record, pred_mask


def _badness(record: dict, task: str) -> float:
    """Higher for worse predictions: picks what the grid shows."""
    if task == "seg":
        return 1.0 - record["iou"]
    if task == "rec":
        return 1.0 - record["first_iou"]
    return abs(record["pred_count"] - record["gt_count"])


class _Grid:
    """Keeps the worst-scored predictions of this run for ``predictions.png``."""

    def __init__(self, size: int, task: str):
        self.size, self.task, self.heap, self.order = size, task, [], 0

    def offer(self, sample, record: dict, pred_mask) -> None:
        if self.size <= 0:
            return
        entry = (_badness(record, self.task), -self.order, sample, record, pred_mask)
        self.order += 1
        if len(self.heap) < self.size:
            heapq.heappush(self.heap, entry)
        elif entry[:2] > self.heap[0][:2]:
            heapq.heapreplace(self.heap, entry)

    def panels(self) -> list[dict]:
        panels = []
        for _, _, sample, record, pred_mask in sorted(self.heap, key=lambda e: (-e[0], -e[1])):
            panels.append({"image": _original_image(sample), "gt_mask": sample.mask,
                           "pred_mask": pred_mask, "gt_boxes": _boxes(sample.to_original()),
                           "pred_boxes": _boxes(record["objects"]),
                           "title": _panel_title(record, self.task)})
        return panels


def _panel_title(record: dict, task: str) -> str:
    if record["failure"]:
        return f"{record['id']} failed: {record['failure']}"
    if task == "seg":
        return f"{record['id']} IoU {record['iou']:.2f}"
    if task == "rec":
        return f"{record['id']} IoU {record['first_iou']:.2f}"
    return f"{record['id']} count {record['pred_count']} (gt {record['gt_count']})"


def evaluate(engine, samples, out_dir, config: EvalConfig, *, segmenter: Segmenter | None = None,
             identity: dict | None = None) -> dict:
    """Evaluate ``samples`` (a sequence of ``GroundingSample``) and write the outputs.

    ``engine``: anything with ``generate(conversations, num_samples, max_new_tokens,
    temperature)`` as ``RolloutEngine`` has. ``identity``: ``{"model": {...}, "data": {...}}``
    recorded in the report and checked on resume. Returns the report dict.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    if config.task == "seg" and segmenter is None:
        segmenter = BoxSegmenter()
    identity = dict(identity or {})
    n_rows = len(samples)
    count = n_rows if config.limit is None else min(n_rows, config.limit)
    samples, ids = _with_ids(samples, count)
    keys = sample_keys(ids)
    run = {"task": config.task, "segmenter": segmenter.describe() if segmenter else None, **identity}
    if config.protocol.query_normalization != "none":  # it changes the prompts themselves
        run["query_normalization"] = config.protocol.query_normalization
    samples_path = out_dir / reports.SAMPLES_FILE
    if not config.resume and samples_path.exists():
        samples_path.unlink()
    reports.check_run_identity(out_dir, run, resume=config.resume)
    done = {r["id"] for r in reports.read_sample_records(samples_path)}
    todo = [i for i in range(count) if keys[i] not in done]
    timing = _run_batches(engine, samples, keys, todo, out_dir, config, segmenter)
    wanted = set(keys)
    # One record per sample (the latest, should a file hold a sample twice).
    records = list({r["id"]: r for r in reports.read_sample_records(samples_path)
                    if r["id"] in wanted}.values())
    report = _build_report(records, run, config, n_rows, timing, len(todo))
    reports.write_report(out_dir, report)
    return report


def _run_batches(engine, samples, keys, todo, out_dir, config, segmenter) -> dict:
    """Generate, score and append each batch; returns where the time went (seconds)."""
    grid = _Grid(config.grid_samples, config.task)
    spent = Counter()
    start = time.perf_counter()
    for b in range(0, len(todo), config.batch_size):
        ids = todo[b:b + config.batch_size]
        t0 = time.perf_counter()
        batch = [samples[i] for i in ids]  # images are read and resized here
        t1 = time.perf_counter()
        texts = generate_answers(engine, batch, config)
        t2 = time.perf_counter()
        records = []
        for i, sample, text in zip(ids, batch, texts):
            image = segmenter_image(samples, i, sample, segmenter) if segmenter else None
            record, pred_mask = score_sample(sample, keys[i], text, config, segmenter, image)
            records.append(record)
            grid.offer(sample, record, pred_mask)
        t3 = time.perf_counter()
        reports.append_sample_records(Path(out_dir) / reports.SAMPLES_FILE, records)
        spent.update(data_s=t1 - t0, generation_s=t2 - t1, scoring_s=t3 - t2,
                     writing_s=time.perf_counter() - t3)
    if grid.heap:
        t0 = time.perf_counter()
        reports.write_grid(Path(out_dir) / reports.GRID_PNG, grid.panels())
        spent.update(grid_s=time.perf_counter() - t0)
    total = time.perf_counter() - start
    outside = total - spent["generation_s"]
    return {"samples": len(todo), "total_s": total,
            **{k: spent[k] for k in ("generation_s", "data_s", "scoring_s", "writing_s", "grid_s")},
            "outside_generation_s": outside,
            "outside_generation_share": outside / total if total > 0 else 0.0,
            "samples_per_s": len(todo) / total if total > 0 else 0.0}


def _build_report(records, run, config: EvalConfig, n_rows: int, timing: dict, n_new: int) -> dict:
    metrics = reports.aggregate(records, config.task, config.protocol)
    data = dict(run.get("data") or {})
    data.setdefault("name", "data")
    data.update(rows=n_rows, evaluated=len(records))
    return {
        "task": config.task,
        "metrics": metrics,
        "protocol": config.protocol.to_dict(),
        "failures": reports.failure_counts(records),
        "model": dict(run.get("model") or {"name": "model"}),
        "data": data,
        "segmenter": run["segmenter"] or {"name": "-"},
        "generation": {"decoding": "greedy", "max_new_tokens": config.max_new_tokens,
                       "batch_size": config.batch_size, "template": config.template},
        "resumed": {"previously_done": len(records) - n_new, "new": n_new},
        "timing": timing,
    }
