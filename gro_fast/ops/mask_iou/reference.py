"""fp32 torch reference of dense-mask IoU (the fallback and the tests' yardstick).

Masks are bool or uint8 tensors, nonzero = foreground. IoU = |A ∩ B| / |A ∪ B|; an empty
union (both masks empty) gives IoU 0, never NaN. Counts are exact: the pairwise product
runs in float32 while H * W < 2**24 (exact integer sums) and in float64 beyond.
"""
from __future__ import annotations

from typing import NamedTuple

import torch


class MaskIoU(NamedTuple):
    """Per-candidate scores of ``mask_iou_batched``: IoU (float32) and the int64 pixel
    counts that cIoU sums (intersection, union)."""

    iou: torch.Tensor
    intersection: torch.Tensor
    union: torch.Tensor


def iou_from_counts(inter: torch.Tensor, union: torch.Tensor) -> torch.Tensor:
    """float32 inter / union, 0 where the union is empty."""
    ratio = inter.double() / union.clamp_min(1).double()
    return torch.where(union > 0, ratio, torch.zeros_like(ratio)).float()


def reference_mask_iou(masks1: torch.Tensor, masks2: torch.Tensor) -> torch.Tensor:
    """[N, H, W] x [M, H, W] -> float32 [N, M] IoU."""
    n, m = masks1.shape[0], masks2.shape[0]
    pixels = masks1.shape[1] * masks1.shape[2]
    dtype = torch.float32 if pixels < 2**24 else torch.float64
    a = (masks1 != 0).reshape(n, pixels).to(dtype)   # (-1 is ambiguous when n = 0)
    b = (masks2 != 0).reshape(m, pixels).to(dtype)
    inter = (a @ b.T).round().long()
    area1 = (masks1 != 0).reshape(n, pixels).sum(1)
    area2 = (masks2 != 0).reshape(m, pixels).sum(1)
    return iou_from_counts(inter, area1[:, None] + area2[None, :] - inter)


def reference_mask_iou_batched(pred: torch.Tensor, gt: torch.Tensor) -> MaskIoU:
    """pred [B, G, H, W] vs gt [B, H, W] -> MaskIoU of [B, G] tensors."""
    p = pred != 0
    g = (gt != 0).unsqueeze(1)
    inter = (p & g).sum((-2, -1))
    union = (p | g).sum((-2, -1))
    return MaskIoU(iou_from_counts(inter, union), inter, union)
