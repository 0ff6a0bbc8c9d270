"""Dense-mask IoU. Public: ``mask_iou`` (pairwise) and ``mask_iou_batched`` (RL scoring).

Masks are bit-packed into uint64 words and counted with popcount by ``gro_fast._C``
(C++/OpenMP on CPU tensors, CUDA kernels on CUDA tensors); without the extension the
torch reference (reference.py) runs. This module checks arguments; COCO RLE input is
``gro_fast.ops.rle``.
"""
from __future__ import annotations

import torch

from .._dispatch import native_op
from .reference import MaskIoU, reference_mask_iou, reference_mask_iou_batched

__all__ = ["MaskIoU", "mask_iou", "mask_iou_batched", "reference_mask_iou", "reference_mask_iou_batched"]


def _check_masks(masks, name: str, dims: int, layout: str) -> torch.Tensor:
    if not isinstance(masks, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(masks).__name__}")
    if masks.dtype not in (torch.bool, torch.uint8):
        raise TypeError(f"{name} must be a bool or uint8 tensor, got {masks.dtype}")
    if masks.dim() != dims:
        raise ValueError(f"{name} must have shape {layout}, got {tuple(masks.shape)}")
    return masks.contiguous()


def _check_same(a: torch.Tensor, b: torch.Tensor, names: str) -> None:
    if a.shape[-2:] != b.shape[-2:]:
        raise ValueError(f"{names} must have the same H and W, got {tuple(a.shape)} and {tuple(b.shape)}")
    if a.device != b.device:
        raise ValueError(f"{names} must be on one device, got {a.device} and {b.device}")


def mask_iou(masks1: torch.Tensor, masks2: torch.Tensor) -> torch.Tensor:
    """[N, H, W] x [M, H, W] bool/uint8 masks -> float32 [N, M] IoU (0 for empty unions)."""
    masks1 = _check_masks(masks1, "masks1", 3, "[N, H, W]")
    masks2 = _check_masks(masks2, "masks2", 3, "[M, H, W]")
    _check_same(masks1, masks2, "masks1 and masks2")
    op = native_op(masks1.device, "mask_iou")
    if op is None:
        return reference_mask_iou(masks1, masks2)
    return op(masks1, masks2)


def mask_iou_batched(pred: torch.Tensor, gt: torch.Tensor) -> MaskIoU:
    """G candidate masks per prompt against that prompt's ground truth:
    pred [B, G, H, W], gt [B, H, W] -> MaskIoU(iou float32 [B, G], intersection int64,
    union int64). An empty prediction scores IoU 0 with union = |gt|."""
    pred = _check_masks(pred, "pred", 4, "[B, G, H, W]")
    gt = _check_masks(gt, "gt", 3, "[B, H, W]")
    _check_same(pred, gt, "pred and gt")
    if pred.shape[0] != gt.shape[0]:
        raise ValueError(f"pred and gt must have the same batch size B, got {pred.shape[0]} and {gt.shape[0]}")
    op = native_op(pred.device, "mask_iou_batched")
    if op is None:
        return reference_mask_iou_batched(pred, gt)
    return MaskIoU(*op(pred, gt))
