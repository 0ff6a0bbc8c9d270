"""Pure numpy/torch reference of COCO run-length encoding, with pycocotools.mask semantics.

- A mask [H, W] is read in column-major (Fortran) order; counts alternate background and
  foreground runs, starting with background (possibly 0).
- Compressed counts: each count (minus the count two places earlier, from the fourth
  count on) is written in 5-bit groups, low bits first, as characters 48 + group, with
  0x20 set on all but the last group and bit 0x10 of the last group carrying the sign.
- IoU of a detection d and a ground truth g: |d ∩ g| / |d ∪ g|, or |d ∩ g| / |d| when g
  is a crowd region; 0 when they do not intersect.

Parsed RLEs are (counts int64 [total], offsets int64 [N + 1], sizes int64 [N, 2]); every
function validates them and names the index of a malformed item. This module is the
fallback and the tests' yardstick; gro_fast._C implements the same functions.
"""
from __future__ import annotations

import numpy as np
import torch


def reference_counts_from_mask(mask: np.ndarray) -> list[int]:
    """Column-major runs of one [H, W] mask (nonzero = foreground)."""
    flat = (np.asarray(mask) != 0).T.reshape(-1).astype(np.int8)
    changes = np.flatnonzero(np.diff(flat)) + 1
    bounds = np.concatenate([[0], changes, [flat.size]])
    counts = np.diff(bounds).tolist()
    if flat.size and flat[0]:
        counts = [0] + counts
    return counts if counts else [0]


def reference_counts_to_string(counts) -> bytes:
    out = bytearray()
    for i, value in enumerate(counts):
        x = int(value) - (int(counts[i - 2]) if i > 2 else 0)
        more = True
        while more:
            c = x & 0x1F
            x >>= 5
            more = x != -1 if c & 0x10 else x != 0
            out.append((c | 0x20 if more else c) + 48)
    return bytes(out)


def reference_string_to_counts(s: bytes, where: str) -> list[int]:
    counts: list[int] = []
    p = 0
    while p < len(s):
        x, k, more = 0, 0, True
        while more:
            if p >= len(s):
                raise ValueError(f"{where}: malformed RLE counts: the string ends inside a count")
            c = s[p] - 48
            if not 0 <= c <= 63:
                raise ValueError(f"{where}: malformed RLE counts: invalid character {s[p]} at position {p}")
            if k >= 12:
                raise ValueError(f"{where}: malformed RLE counts: a count at position {p} is too long")
            x |= (c & 0x1F) << (5 * k)
            more = bool(c & 0x20)
            p += 1
            k += 1
            if not more and c & 0x10:
                x -= 1 << (5 * k)
        if len(counts) > 2:
            x += counts[-2]
        counts.append(x)
    return counts


def reference_rle_parse(strings: list[bytes], name: str) -> tuple[torch.Tensor, torch.Tensor]:
    parsed = [reference_string_to_counts(s, f"{name}[{i}]") for i, s in enumerate(strings)]
    offsets = torch.tensor([0] + [len(c) for c in parsed], dtype=torch.int64).cumsum(0)
    counts = torch.tensor([v for c in parsed for v in c], dtype=torch.int64)
    return counts, offsets


def split_counts(counts: torch.Tensor, offsets: torch.Tensor, sizes: torch.Tensor, name: str) -> list[np.ndarray]:
    """Per-item counts, validated: non-negative and summing to h * w."""
    items = []
    flat = counts.numpy()
    for i in range(sizes.shape[0]):
        c = flat[int(offsets[i]):int(offsets[i + 1])]
        h, w = int(sizes[i, 0]), int(sizes[i, 1])
        if (c < 0).any():
            raise ValueError(f"{name}[{i}]: negative run length in RLE counts")
        if int(c.sum()) != h * w:
            raise ValueError(f"{name}[{i}]: counts sum to {int(c.sum())}, expected h * w = {h * w}")
        items.append(c)
    return items


def reference_rle_encode(masks: torch.Tensor) -> list[dict]:
    n, h, w = masks.shape
    arr = masks.cpu().numpy()
    return [{"size": [h, w], "counts": reference_counts_to_string(reference_counts_from_mask(arr[i]))}
            for i in range(n)]


def reference_rle_decode(counts, offsets, sizes, name: str = "rles") -> torch.Tensor:
    items = split_counts(counts, offsets, sizes, name)
    n = len(items)
    h, w = (int(sizes[0, 0]), int(sizes[0, 1])) if n else (0, 0)
    out = np.zeros((n, w * h), dtype=np.uint8)
    for i, c in enumerate(items):
        if (int(sizes[i, 0]), int(sizes[i, 1])) != (h, w):
            raise ValueError(f"{name}[{i}]: size differs from {name}[0]; decode masks of one size together")
        values = np.arange(len(c)) % 2
        out[i] = np.repeat(values, c).astype(np.uint8)
    return torch.from_numpy(out.reshape(n, w, h).transpose(0, 2, 1).copy())


def reference_rle_area(counts, offsets, sizes, name: str = "rles") -> torch.Tensor:
    items = split_counts(counts, offsets, sizes, name)
    return torch.tensor([int(c[1::2].sum()) for c in items], dtype=torch.int64)


def reference_rle_iou(parsed1, parsed2, iscrowd: torch.Tensor) -> torch.Tensor:
    """float64 [N, M] IoU of parsed RLEs (rles1 = detections, rles2 = ground truth)."""
    sizes1, sizes2 = parsed1[2], parsed2[2]
    masks1 = reference_rle_decode(*parsed1, name="rles1").reshape(sizes1.shape[0], -1).double()
    if len(sizes2) and len(sizes1) and not bool((sizes2 == sizes1[0]).all()):
        j = int((sizes2 != sizes1[0]).any(1).nonzero()[0, 0])
        raise ValueError(f"rles2[{j}]: size {sizes2[j].tolist()} differs from the size of rles1 {sizes1[0].tolist()}")
    masks2 = reference_rle_decode(*parsed2, name="rles2").reshape(sizes2.shape[0], -1).double()
    inter = masks1 @ masks2.T
    area1, area2 = masks1.sum(1)[:, None], masks2.sum(1)[None, :]
    union = torch.where(iscrowd.bool()[None, :], area1.expand_as(inter), area1 + area2 - inter)
    return torch.where(inter > 0, inter / union.clamp_min(1), torch.zeros_like(inter))
