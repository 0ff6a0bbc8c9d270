"""Pairwise box IoU / GIoU. Public: ``box_iou``.

CPU tensors run the C++ loop of ``gro_fast._C`` (OpenMP), CUDA tensors its CUDA kernel,
and without the extension the fp32 torch reference (reference.py, which also states the
conventions). This module checks arguments and broadcasts leading batch dimensions; it
does not parse or match boxes (that is ``gro_fast.rewards``).
"""
from __future__ import annotations

import torch

from .._dispatch import check_values, native_op
from .reference import reference_box_iou

__all__ = ["box_iou", "reference_box_iou"]


def _check_boxes(boxes, name: str) -> None:
    if not isinstance(boxes, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(boxes).__name__}")
    if boxes.dtype == torch.bool or boxes.is_complex():
        raise TypeError(f"{name} must have a real numeric dtype, got {boxes.dtype}")
    if boxes.dim() < 2 or boxes.shape[-1] != 4:
        raise ValueError(f"{name} must have shape [..., N, 4], got {tuple(boxes.shape)}")
    if boxes.is_floating_point() and boxes.numel():
        check_values(torch.isfinite(boxes).all(), f"{name} contains non-finite coordinates")


def box_iou(boxes1: torch.Tensor, boxes2: torch.Tensor, *, kind: str = "iou",
            inclusive: bool = False) -> torch.Tensor:
    """[..., N, 4] x [..., M, 4] xyxy boxes -> fp32 [..., N, M] IoU (``kind="iou"``) or
    GIoU (``kind="giou"``); ``inclusive=True`` uses pixel-inclusive widths (x2 - x1 + 1).
    Leading dimensions broadcast. Degenerate boxes have zero area; no result is NaN."""
    _check_boxes(boxes1, "boxes1")
    _check_boxes(boxes2, "boxes2")
    if kind not in ("iou", "giou"):
        raise ValueError(f"kind must be 'iou' or 'giou', got {kind!r}")
    if boxes1.device != boxes2.device:
        raise ValueError(f"boxes1 and boxes2 must be on one device, got {boxes1.device} and {boxes2.device}")
    try:
        batch = torch.broadcast_shapes(boxes1.shape[:-2], boxes2.shape[:-2])
    except RuntimeError as exc:
        raise ValueError(f"leading dimensions of boxes1 {tuple(boxes1.shape)} and boxes2 "
                         f"{tuple(boxes2.shape)} do not broadcast") from exc
    op = native_op(boxes1.device, "box_iou")
    if op is None:
        return reference_box_iou(boxes1, boxes2, kind=kind, inclusive=inclusive)
    n, m, size = boxes1.shape[-2], boxes2.shape[-2], batch.numel()
    b1 = boxes1.float().expand(*batch, n, 4).reshape(size, n, 4).contiguous()
    b2 = boxes2.float().expand(*batch, m, 4).reshape(size, m, 4).contiguous()
    return op(b1, b2, kind == "giou", bool(inclusive)).reshape(*batch, n, m)
