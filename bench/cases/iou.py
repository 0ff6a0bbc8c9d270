"""IoU benchmark cases (group "iou"): dense masks, COCO RLE, polygons, batched RL scoring.

Peers measured in the same run: pycocotools.mask (encode + iou, and iou on RLE),
shapely 2 vectorised, and the naive torch references in gro_fast. Shapes are the
project's targets: 200 x 200 masks of 480 x 640, 1,000 x 1,000 polygons of 16-64
vertices, 64 prompts x 8 candidates. With ``--quick`` the slow peers (shapely, torch)
run on a slice and are compared per pair; the gro_fast ops still run the full shapes.
``--tiny``: 16 x 16 dense masks, 4 prompts x 4 candidates (a smoke run).
Object-like data: random ellipse masks and random star-shaped (non-convex) polygons.
"""
from __future__ import annotations

import os

import numpy as np
import torch

from bench.registry import Context, case, time_ms
from gro_fast import _ext
from gro_fast.ops import mask_iou, mask_iou_batched, polygon_iou, rle_encode, rle_iou
from gro_fast.ops.mask_iou import reference_mask_iou, reference_mask_iou_batched

H, W = 480, 640


def _threads() -> dict:
    ext = _ext.extension()
    omp = int(ext.openmp_max_threads()) if ext is not None else 1
    return {"omp_threads": omp, "torch_threads": torch.get_num_threads(),
            "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY", "default")}


def ellipse_masks(n: int, seed: int) -> torch.Tensor:
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:H, 0:W]
    out = np.zeros((n, H, W), dtype=np.uint8)
    for i in range(n):
        cy, cx = rng.uniform(0, H), rng.uniform(0, W)
        ry, rx = rng.uniform(10, H / 3), rng.uniform(10, W / 3)
        out[i] = ((yy - cy) / ry) ** 2 + ((xx - cx) / rx) ** 2 <= 1
    return torch.from_numpy(out)


def star_polygons(n: int, seed: int) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    polys = []
    for _ in range(n):
        k = int(rng.integers(16, 65))
        angles = np.sort(rng.uniform(0, 2 * np.pi, k))
        r = rng.uniform(0.3, 1.0, k) * rng.uniform(20, 150)
        c = rng.uniform(0, [W, H])
        polys.append(np.stack([c[0] + r * np.cos(angles), c[1] + r * np.sin(angles)], 1))
    return polys


def _coco():
    try:
        from pycocotools import mask as coco_mask
        return coco_mask, None
    except ImportError as exc:
        return None, f"pycocotools not importable: {exc}"


def _row(impl: str, shape: str, ms: float | None, **extra) -> dict:
    row = {"impl": impl, "shape": shape}
    if ms is not None:
        row["ms"] = ms
    row.update(extra)
    return row


def _ratios(rows: list[dict], ours: str, per_pair: bool = False) -> None:
    """Adds speedup_vs_<peer> to our row(s) from the peers' rows in the same list."""
    key = "us_per_pair" if per_pair else "ms"
    mine = [r for r in rows if r["impl"].startswith(ours) and key in r]
    for r in mine:
        for peer in rows:
            if peer["impl"].startswith("gro_fast") or key not in peer:
                continue
            r[f"speedup_vs_{peer['impl']}"] = round(peer[key] / r[key], 2)


@case("mask_iou_dense", "iou")
def mask_iou_dense(ctx: Context) -> list[dict]:
    n = 16 if ctx.tiny else 200
    m1, m2 = ellipse_masks(n, 0), ellipse_masks(n, 1)
    shape = f"{n}x{n} masks {H}x{W}"
    a, b = m1.to(ctx.device), m2.to(ctx.device)
    rows = [_row(f"gro_fast.mask_iou[{ctx.device.type}]", shape, time_ms(lambda: mask_iou(a, b), ctx.device,
                                                                          warmup=1, repeats=5), **_threads())]
    coco, why = _coco()
    if coco is None:
        rows.append(_row("pycocotools_encode_iou", shape, None, skipped=why))
    else:
        f1 = np.asfortranarray(m1.numpy().transpose(1, 2, 0))
        f2 = np.asfortranarray(m2.numpy().transpose(1, 2, 0))

        def coco_run():
            return coco.iou(coco.encode(f1), coco.encode(f2), [0] * n)
        rows.append(_row("pycocotools_encode_iou", shape, time_ms(coco_run, torch.device("cpu"), warmup=1, repeats=3)))
    rows.append(_row("torch_reference", shape, time_ms(lambda: reference_mask_iou(a, b), ctx.device,
                                                       warmup=1, repeats=2)))
    _ratios(rows, "gro_fast")
    return rows


@case("mask_iou_rle", "iou")
def mask_iou_rle(ctx: Context) -> list[dict]:
    r1, r2 = rle_encode(ellipse_masks(200, 2)), rle_encode(ellipse_masks(200, 3))
    shape = f"200x200 RLE {H}x{W}"
    rows = [_row("gro_fast.rle_iou[cpu]", shape, time_ms(lambda: rle_iou(r1, r2), torch.device("cpu"),
                                                        warmup=1, repeats=7), **_threads())]
    coco, why = _coco()
    if coco is None:
        rows.append(_row("pycocotools_iou", shape, None, skipped=why))
    else:
        rows.append(_row("pycocotools_iou", shape, time_ms(lambda: coco.iou(r1, r2, [0] * 200),
                                                           torch.device("cpu"), warmup=1, repeats=7)))
    _ratios(rows, "gro_fast")
    return rows


@case("polygon_iou", "iou", devices=("cpu", "cuda"))
def polygon_iou_case(ctx: Context) -> list[dict]:
    p1, p2 = star_polygons(1000, 4), star_polygons(1000, 5)
    m_peer = 100 if ctx.quick else 1000
    rows = []
    ms = time_ms(lambda: polygon_iou(p1, p2), torch.device("cpu"), warmup=1, repeats=3)
    rows.append(_row("gro_fast.polygon_iou[cpu]", "1000x1000 polygons, 16-64 vertices", ms,
                     us_per_pair=ms * 1e3 / 1e6, **_threads()))
    try:
        import shapely
    except ImportError as exc:
        rows.append(_row("shapely_vectorised", "", None, skipped=f"shapely not importable: {exc}"))
    else:
        a = np.array([shapely.Polygon(p) for p in p1], dtype=object)[:, None]
        b = np.array([shapely.Polygon(q) for q in p2[:m_peer]], dtype=object)[None, :]

        def shapely_run():
            inter = shapely.area(shapely.intersection(a, b))
            union = shapely.area(a) + shapely.area(b) - inter
            return inter / np.where(union > 0, union, 1)
        ms = time_ms(shapely_run, torch.device("cpu"), warmup=0, repeats=1)
        rows.append(_row("shapely_vectorised", f"1000x{m_peer} polygons", ms, us_per_pair=ms * 1e3 / (1000 * m_peer),
                         overlapping_pairs=float((polygon_iou(p1, p2[:m_peer]) > 0).float().mean())))
    _ratios(rows, "gro_fast", per_pair=True)
    return rows


@case("mask_iou_batched", "iou")
def mask_iou_batched_case(ctx: Context) -> list[dict]:
    P, G = (4, 4) if ctx.tiny else (64, 8)
    pred = ellipse_masks(P * G, 6).reshape(P, G, H, W)
    gt = ellipse_masks(P, 7)
    shape = f"{P} prompts x {G} candidates, {H}x{W}"
    p, g = pred.to(ctx.device), gt.to(ctx.device)
    rows = [_row(f"gro_fast.mask_iou_batched[{ctx.device.type}]", shape,
                 time_ms(lambda: mask_iou_batched(p, g), ctx.device, warmup=1, repeats=5), **_threads())]
    rows.append(_row("torch_reference", shape, time_ms(lambda: reference_mask_iou_batched(p, g), ctx.device,
                                                       warmup=1, repeats=3)))
    coco, why = _coco()
    if coco is None:
        rows.append(_row("pycocotools_encode_iou", shape, None, skipped=why))
    else:
        fp = [np.asfortranarray(pred[b].numpy().transpose(1, 2, 0)) for b in range(P)]
        fg = [np.asfortranarray(gt[b:b + 1].numpy().transpose(1, 2, 0)) for b in range(P)]

        def coco_run():
            return [coco.iou(coco.encode(fp[b]), coco.encode(fg[b]), [0]) for b in range(P)]
        rows.append(_row("pycocotools_encode_iou", shape, time_ms(coco_run, torch.device("cpu"), warmup=1, repeats=3)))
    _ratios(rows, "gro_fast")
    return rows
