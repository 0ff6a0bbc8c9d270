"""COCO run-length encoding (RLE) with pycocotools.mask semantics.

Public: ``rle_encode``, ``rle_decode``, ``rle_area``, ``rle_iou``. An RLE is a dict
``{"size": [h, w], "counts": ...}`` whose counts are the compressed string (str or bytes,
byte-identical to pycocotools.mask.encode) or an uncompressed list of run lengths.
The work runs in ``gro_fast._C`` (C++/OpenMP) when it is built, else in the numpy
reference (reference.py, which also states the format). Polygons are ``ops.polygon``.
"""
from __future__ import annotations

import numpy as np
import torch

from .._dispatch import native_op
from .reference import (reference_rle_area, reference_rle_decode, reference_rle_encode,
                        reference_rle_iou, reference_rle_parse)

__all__ = ["rle_encode", "rle_decode", "rle_area", "rle_iou"]

_MAX_SIDE = 2**31 - 1
# Decoding a mask larger than this is refused before allocating (a hostile 'size' must not
# exhaust memory); rle_area / rle_iou work on the runs and take any size. Same in csrc/.
MAX_MASK_PIXELS = 2**31


def _as_mask_tensor(masks, name: str) -> torch.Tensor:
    if isinstance(masks, np.ndarray):
        masks = torch.from_numpy(np.ascontiguousarray(masks))
    if not isinstance(masks, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor or numpy array, got {type(masks).__name__}")
    if masks.dtype not in (torch.bool, torch.uint8):
        raise TypeError(f"{name} must have dtype bool or uint8, got {masks.dtype}")
    if masks.dim() not in (2, 3):
        raise ValueError(f"{name} must have shape [N, H, W] or [H, W], got {tuple(masks.shape)}")
    return masks


def rle_encode(masks) -> list[dict] | dict:
    """[N, H, W] (or one [H, W]) bool/uint8 masks -> list of RLE dicts (or one dict) with
    bytes counts identical to pycocotools.mask.encode. Nonzero pixels are foreground."""
    masks = _as_mask_tensor(masks, "masks")
    single = masks.dim() == 2
    batch = (masks[None] if single else masks).cpu().contiguous()
    op = native_op("cpu", "rle_encode")
    if op is None:
        rles = reference_rle_encode(batch)
    else:
        h, w = batch.shape[1], batch.shape[2]
        rles = [{"size": [h, w], "counts": s} for s in op(batch)]
    return rles[0] if single else rles


def _check_item(rle, where: str):
    if not isinstance(rle, dict) or "size" not in rle or "counts" not in rle:
        raise TypeError(f"{where} must be a dict with 'size' and 'counts', got {type(rle).__name__}")
    size = rle["size"]
    if (not isinstance(size, (list, tuple, np.ndarray)) or len(size) != 2
            or not all(isinstance(v, (int, np.integer)) and 0 <= v <= _MAX_SIDE for v in size)):
        raise ValueError(f"{where}: 'size' must be [h, w] with non-negative ints, got {size!r}")
    counts = rle["counts"]
    if isinstance(counts, str):
        try:
            return size, counts.encode("ascii")
        except UnicodeEncodeError as exc:
            raise ValueError(f"{where}: malformed RLE counts: non-ASCII string") from exc
    if isinstance(counts, (bytes, bytearray)):
        return size, bytes(counts)
    if isinstance(counts, (list, tuple, np.ndarray)):
        array = np.asarray(counts)
        if array.ndim != 1 or (array.size and not np.issubdtype(array.dtype, np.integer)):
            raise ValueError(f"{where}: uncompressed 'counts' must be a flat list of ints")
        return size, array.astype(np.int64)
    raise TypeError(f"{where}: 'counts' must be str, bytes or a list of ints, got {type(counts).__name__}")


def _parse(rles, name: str):
    """List of RLE dicts -> (counts int64, offsets int64 [N+1], sizes int64 [N, 2])."""
    if not isinstance(rles, (list, tuple)):
        raise TypeError(f"{name} must be a list of RLE dicts, got {type(rles).__name__}")
    items = [_check_item(r, f"{name}[{i}]") for i, r in enumerate(rles)]
    sizes = torch.tensor([[int(s[0]), int(s[1])] for s, _ in items], dtype=torch.int64).reshape(-1, 2)
    strings = [c if isinstance(c, bytes) else b"" for _, c in items]
    op = native_op("cpu", "rle_parse")
    counts, offsets = reference_rle_parse(strings, name) if op is None else op(strings, name)
    if any(not isinstance(c, bytes) for _, c in items):
        parts = list(counts.split(offsets.diff().tolist()))
        for i, (_, c) in enumerate(items):
            if not isinstance(c, bytes):
                parts[i] = torch.from_numpy(c)
        counts = torch.cat(parts) if parts else counts
        offsets = torch.tensor([0] + [len(p) for p in parts], dtype=torch.int64).cumsum(0)
    return counts, offsets, sizes


def rle_decode(rles) -> torch.Tensor:
    """List of RLE dicts of one size -> uint8 [N, H, W] (one dict -> [H, W])."""
    single = isinstance(rles, dict)
    parsed = _parse([rles] if single else rles, "rles")
    for i, (h, w) in enumerate(parsed[2].tolist()):
        if h * w > MAX_MASK_PIXELS:
            raise ValueError(f"rles[{i}]: a {h} x {w} mask has more than 2^31 pixels; decoding "
                             "it is refused (rle_area and rle_iou work on the runs)")
    op = native_op("cpu", "rle_decode")
    if op is None:
        masks = reference_rle_decode(*parsed, name="rles")
    else:
        masks = op(*parsed, "rles")
    return masks[0] if single else masks


def rle_area(rles) -> torch.Tensor:
    """Foreground pixel counts: int64 [N] (one dict -> a 0-d tensor)."""
    single = isinstance(rles, dict)
    parsed = _parse([rles] if single else rles, "rles")
    op = native_op("cpu", "rle_area")
    area = reference_rle_area(*parsed, name="rles") if op is None else op(*parsed, "rles")
    return area[0] if single else area


def rle_iou(rles1, rles2, iscrowd=None) -> torch.Tensor:
    """Pairwise IoU, float64 [N, M], of detections rles1 against ground truths rles2,
    exactly as pycocotools.mask.iou(rles1, rles2, iscrowd): where iscrowd[j] is true the
    union is the detection's own area. All masks must share one size."""
    parsed1, parsed2 = _parse(rles1, "rles1"), _parse(rles2, "rles2")
    m = parsed2[2].shape[0]
    if iscrowd is None:
        crowd = torch.zeros(m, dtype=torch.uint8)
    else:
        crowd = torch.as_tensor(np.asarray(iscrowd)).reshape(-1)
        if crowd.numel() != m:
            raise ValueError(f"iscrowd must have one entry per rles2 item ({m}), got {crowd.numel()}")
        crowd = (crowd != 0).to(torch.uint8)
    op = native_op("cpu", "rle_iou")
    if op is None:
        return reference_rle_iou(parsed1, parsed2, crowd)
    return op(*parsed1, *parsed2, crowd)
