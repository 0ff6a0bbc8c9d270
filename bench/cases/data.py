"""Data pipeline throughput: the synthetic task, the JSONL reader, and mask decoding.

Rows (all CPU work whatever the device):
- ``synthetic/<difficulty>``: ms to build one 112 x 112 synthetic sample (layout, masks,
  pixels, boxes, points);
- ``reader/load`` and ``reader/sample``: ms per record to load a VisionReasoner JSONL file
  (fields checked, image headers read) and to build one sample from a 640 x 480 JPEG (decode
  + bicubic resize to 840 x 840, Seg-Zero's input);
- ``mask/rle`` vs peer ``mask/pycocotools``: ms to decode one compressed RLE evaluation mask
  through ``gro_fast.data.masks.decode_mask`` (checks included) and with pycocotools alone.
"""
from __future__ import annotations

import json
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

from bench.registry import case, time_ms
from gro_fast.data import ResizeConfig, SyntheticGroundingTask, load_grounding_dataset
from gro_fast.data.masks import decode_mask


def _synthetic_rows(ctx) -> list[dict]:
    n = 50 if ctx.quick else 500
    rows = []
    for difficulty in ("easy", "hard"):
        task = SyntheticGroundingTask(difficulty=difficulty, length=n)
        start = time.perf_counter()
        for i in range(n):
            task[i]
        ms = (time.perf_counter() - start) * 1e3 / n
        rows.append({"impl": f"synthetic/{difficulty}", "ms": ms, "samples": n})
    return rows


def _write_rows(folder: Path, n: int, size: tuple) -> Path:
    rng = np.random.default_rng(0)
    pixels = rng.integers(0, 255, size=(size[1], size[0], 3), dtype=np.uint8)
    Image.fromarray(pixels).save(folder / "img.jpg", quality=90)
    solution = json.dumps([{"bbox_2d": [10, 20, 200, 220], "point_2d": [100, 120]}])
    with open(folder / "rows.jsonl", "w") as fh:
        for i in range(n):
            fh.write(json.dumps({"id": i, "problem": "the thing", "solution": solution,
                                 "image": "img.jpg", "img_width": size[0],
                                 "img_height": size[1]})
                     + "\n")
    return folder / "rows.jsonl"


def _reader_rows(ctx) -> list[dict]:
    n, size = (64 if ctx.quick else 1000), (640, 480)  # a COCO-sized JPEG
    with tempfile.TemporaryDirectory() as tmp:
        path = _write_rows(Path(tmp), n, size)
        start = time.perf_counter()
        ds = load_grounding_dataset(path, resize=ResizeConfig.fixed(840, 840))
        load_ms = (time.perf_counter() - start) * 1e3 / n
        sample_ms = time_ms(lambda: ds[0], ctx.device, repeats=10 if ctx.quick else 50)
    image = f"{size[0]}x{size[1]}"
    return [{"impl": "reader/load", "ms": load_ms, "records": n, "image": image},
            {"impl": "reader/sample", "ms": sample_ms, "image": image, "input": "840x840"}]


def _mask_rows(ctx) -> list[dict]:
    from pycocotools import mask as mask_utils

    h, w = (240, 320) if ctx.quick else (480, 640)
    yy, xx = np.mgrid[:h, :w]
    mask = ((yy - h / 2) ** 2 + (xx - w / 3) ** 2) < (min(h, w) / 3) ** 2
    rle = mask_utils.encode(np.asfortranarray(mask.astype(np.uint8)))
    as_json = {"size": rle["size"], "counts": rle["counts"].decode()}
    ours = time_ms(lambda: decode_mask(as_json, h, w), ctx.device, repeats=20)
    peer = time_ms(lambda: mask_utils.decode(rle), ctx.device, repeats=20)
    return [{"impl": "mask/rle", "ms": ours, "shape": f"{h}x{w}", "vs_peer": ours / peer},
            {"impl": "mask/pycocotools", "ms": peer, "shape": f"{h}x{w}"}]


@case("data_pipeline", group="data", devices=("cpu", "cuda"))
def data_pipeline(ctx) -> list[dict]:
    return _synthetic_rows(ctx) + _reader_rows(ctx) + _mask_rows(ctx)
