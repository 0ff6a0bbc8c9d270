"""Evaluation outputs: per-sample JSONL (append-only, resumable), the aggregated report as
JSON and a Markdown table, and a PNG grid of a few predictions.

Files in the output folder:
- ``samples.jsonl``: one scored sample per line, appended as batches finish; a rerun
  skips the ids it already holds (a line cut short by a crash is ignored and redone);
- ``run.json``: what the samples belong to (model, data, task, segmenter); a rerun into the
  same folder must match it;
- ``report.json``, ``report.md``, ``predictions.png``.

:func:`aggregate` turns per-sample records into metrics with ``metrics.py`` under a
protocol, so a different ``--protocol`` can be applied to finished samples without
generating again. Nothing here generates, parses or segments.
"""
from __future__ import annotations

import hashlib
import json
import os
from collections import Counter
from functools import lru_cache
from pathlib import Path

import numpy as np

from .metrics import EvalProtocol, count_metrics, rec_accuracy, segmentation_metrics

SAMPLES_FILE, RUN_FILE = "samples.jsonl", "run.json"
REPORT_JSON, REPORT_MD, GRID_PNG = "report.json", "report.md", "predictions.png"


def read_sample_records(path) -> list[dict]:
    """Records of a ``samples.jsonl``; a final line cut short by a crash is dropped."""
    path = Path(path)
    if not path.exists():
        return []
    records = []
    with open(path, encoding="utf-8") as f:
        lines = f.read().split("\n")
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError:
            if number < len(lines):  # only the last line (no newline yet) may be torn
                raise ValueError(f"{path}:{number}: not a JSON record; delete the file to start over")
    return records


def append_sample_records(path, records: list[dict]) -> None:
    """Append records, one JSON line each, and flush them (the resume point; a process
    crash loses at most the batch being written)."""
    _drop_torn_tail(path)
    with open(path, "a", encoding="utf-8") as f:
        for record in records:
            f.write(json.dumps(record, separators=(",", ":")) + "\n")
        f.flush()


def _drop_torn_tail(path) -> None:
    """Cut a last line left without its newline by a crash (its sample is redone)."""
    if not os.path.exists(path) or os.path.getsize(path) == 0:
        return
    with open(path, "rb+") as f:
        f.seek(-1, os.SEEK_END)
        if f.read(1) == b"\n":
            return
        f.seek(0)
        data = f.read()
        f.truncate(data.rfind(b"\n") + 1)  # 0 when the torn line is the only one


def check_run_identity(out_dir, identity: dict, *, resume: bool) -> None:
    """Write ``run.json``, or check that a resumed folder belongs to the same run."""
    path = Path(out_dir) / RUN_FILE
    if resume and path.exists():
        previous = json.loads(path.read_text())
        changed = sorted(k for k in set(previous) | set(identity) if previous.get(k) != identity.get(k))
        if changed:
            raise ValueError(f"{out_dir} holds samples of a different run (differs in {changed}); "
                             "choose another --out or pass --no-resume to start over")
        return
    path.write_text(json.dumps(identity, indent=1))


def content_hash(path) -> str:
    """sha256 of a file, or of a folder's files (relative names and bytes, sorted)."""
    digest = hashlib.sha256()
    path = Path(path)
    files = [path] if path.is_file() else sorted(p for p in path.rglob("*") if p.is_file())
    for file in files:
        if path.is_dir():
            digest.update(str(file.relative_to(path)).encode() + b"\0")
        with open(file, "rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                digest.update(block)
    return digest.hexdigest()


def aggregate(records: list[dict], task: str, protocol: EvalProtocol) -> dict:
    """Metrics of per-sample records (see ``runner.score_sample``) under ``protocol``."""
    failed = [r["failure"] is not None for r in records]
    if task == "seg":
        out = segmentation_metrics([r["intersection"] for r in records],
                                   [r["union"] for r in records], failed, protocol)
    elif task == "rec":
        out = rec_accuracy([r["first_iou"] for r in records], [r["best_iou"] for r in records],
                           failed, protocol)
    elif task == "count":
        out = count_metrics([r["pred_count"] for r in records], [r["gt_count"] for r in records],
                            failed, protocol)
    else:
        raise ValueError(f"task must be 'seg', 'rec' or 'count', got {task!r}")
    out["n_samples"] = len(records)
    return out


def failure_counts(records: list[dict]) -> dict:
    counts = Counter(r["failure"] for r in records if r["failure"] is not None)
    return dict(sorted(counts.items()))


_HEADLINE = {"seg": [("gIoU", "gIoU", 100), ("cIoU", "cIoU", 100)],
             "rec": [("Acc@0.5 (first box)", "acc", 100), ("Acc@0.5 (any box)", "acc_any", 100)],
             "count": [("accuracy", "accuracy", 100), ("MAE", "mae", 1), ("RMSE", "rmse", 1)]}


def markdown_table(report: dict) -> str:
    """A one-row Markdown table of the headline metrics plus the run's identity."""
    task, metrics = report["task"], report["metrics"]
    cols = _HEADLINE[task]
    head = ["model", "data", "segmenter"] + [name for name, _, _ in cols] + ["scored / samples", "failed"]
    row = [report["model"]["name"], report["data"]["name"],
           report.get("segmenter", {}).get("name", "-")]
    row += [f"{metrics[key] * scale:.2f}" for _, key, scale in cols]
    row += [f"{metrics['n_scored']} / {metrics['n_samples']}", str(sum(report["failures"].values()))]
    protocol = ", ".join(f"{k}={v}" for k, v in report["protocol"].items())
    return "\n".join(["| " + " | ".join(head) + " |", "|" + "---|" * len(head),
                      "| " + " | ".join(row) + " |", "", f"Protocol: {protocol}.", ""])


def write_report(out_dir, report: dict) -> None:
    out_dir = Path(out_dir)
    (out_dir / REPORT_JSON).write_text(json.dumps(report, indent=1))
    (out_dir / REPORT_MD).write_text(markdown_table(report))


PANEL = 224
"""Longest side of one drawn panel in ``predictions.png`` (pixels)."""


@lru_cache(maxsize=1)
def _font():
    from PIL import ImageFont
    return ImageFont.load_default()


def _draw_panel(image, mask, boxes, rgb, title: str):
    """The image scaled to fit PANEL, the mask tinted, the boxes outlined, a title above."""
    from PIL import Image, ImageDraw
    scale = PANEL / max(image.size)
    size = (max(1, round(image.width * scale)), max(1, round(image.height * scale)))
    canvas = image.convert("RGB").resize(size, Image.Resampling.BILINEAR)
    if mask is not None and np.any(mask):
        tint = Image.new("RGB", size, rgb)
        alpha = Image.fromarray(np.asarray(mask, np.uint8) * 110).resize(size, Image.Resampling.NEAREST)
        canvas = Image.composite(tint, canvas, alpha)
    draw = ImageDraw.Draw(canvas)
    for x1, y1, x2, y2 in np.asarray(boxes if boxes is not None else [], float).reshape(-1, 4):
        draw.rectangle([x1 * scale, y1 * scale, x2 * scale, y2 * scale], outline=rgb, width=2)
    framed = Image.new("RGB", (PANEL, size[1] + 14), "white")
    framed.paste(canvas, (0, 14))
    ImageDraw.Draw(framed).text((2, 1), title[:40], fill="black", font=_font())
    return framed


def write_grid(path, panels: list[dict]) -> None:
    """PNG grid, one row per sample: ground truth (green) | prediction (red).

    A panel: ``image`` (PIL, original frame), ``gt_mask`` / ``pred_mask`` (bool [H, W] or
    None), ``gt_boxes`` / ``pred_boxes`` ([N, 4] original pixels), ``title`` (str).
    """
    from PIL import Image
    rows = [(_draw_panel(p["image"], p.get("gt_mask"), p.get("gt_boxes"), (0, 200, 0), "ground truth"),
             _draw_panel(p["image"], p.get("pred_mask"), p.get("pred_boxes"), (220, 0, 0), p["title"]))
            for p in panels]
    grid = Image.new("RGB", (2 * PANEL + 4, max(1, sum(gt.height + 4 for gt, _ in rows))), "white")
    top = 0
    for gt, pred in rows:
        grid.paste(gt, (0, top))
        grid.paste(pred, (PANEL + 4, top))
        top += gt.height + 4
    grid.save(path, format="PNG", compress_level=1)  # fast; the file stays small
