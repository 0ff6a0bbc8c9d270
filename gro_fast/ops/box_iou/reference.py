"""fp32 torch reference of pairwise box IoU / GIoU.

Boxes are (x1, y1, x2, y2). Two conventions:
- continuous (default): area = (x2 - x1) * (y2 - y1);
- ``inclusive=True``: pixel-inclusive, area = (x2 - x1 + 1) * (y2 - y1 + 1) and
  intersection widths max(0, min(x2, x2') - max(x1, x1') + 1), as VisionReasoner's
  accuracy reward computes it (docs/method.md).
Degenerate boxes (x2 < x1 or y2 < y1) have zero width/height, hence zero area; the IoU
of two zero-area boxes is 0 (never NaN). GIoU of two zero-area boxes whose enclosing
box also has zero area is 0 as well.
Leading batch dimensions broadcast: [..., N, 4] x [..., M, 4] -> [..., N, M].
Intermediate areas are computed in float64 (any finite float32 input gives a finite
result) and the result is returned as float32, as the compiled paths do.
"""
from __future__ import annotations

import torch


def _extent(lo: torch.Tensor, hi: torch.Tensor, inclusive: bool) -> torch.Tensor:
    return (hi - lo + (1.0 if inclusive else 0.0)).clamp_min(0.0)


def reference_box_iou(boxes1: torch.Tensor, boxes2: torch.Tensor, *, kind: str = "iou",
                      inclusive: bool = False) -> torch.Tensor:
    """fp32 [..., N, M] IoU (``kind="iou"``) or generalised IoU (``kind="giou"``)."""
    if kind not in ("iou", "giou"):
        raise ValueError(f"kind must be 'iou' or 'giou', got {kind!r}")
    b1 = boxes1.float().double().unsqueeze(-2)  # [..., N, 1, 4]
    b2 = boxes2.float().double().unsqueeze(-3)  # [..., 1, M, 4]
    area1 = _extent(b1[..., 0], b1[..., 2], inclusive) * _extent(b1[..., 1], b1[..., 3], inclusive)
    area2 = _extent(b2[..., 0], b2[..., 2], inclusive) * _extent(b2[..., 1], b2[..., 3], inclusive)
    iw = _extent(torch.maximum(b1[..., 0], b2[..., 0]), torch.minimum(b1[..., 2], b2[..., 2]), inclusive)
    ih = _extent(torch.maximum(b1[..., 1], b2[..., 1]), torch.minimum(b1[..., 3], b2[..., 3]), inclusive)
    # A degenerate box contributes no area, so it cannot intersect either.
    inter = iw * ih * (area1 > 0) * (area2 > 0)
    union = area1 + area2 - inter
    iou = torch.where(union > 0, inter / union.clamp_min(1e-30), torch.zeros_like(union))
    if kind == "iou":
        return iou.float()
    cw = _extent(torch.minimum(b1[..., 0], b2[..., 0]), torch.maximum(b1[..., 2], b2[..., 2]), inclusive)
    ch = _extent(torch.minimum(b1[..., 1], b2[..., 1]), torch.maximum(b1[..., 3], b2[..., 3]), inclusive)
    hull = cw * ch
    penalty = torch.where(hull > 0, (hull - union) / hull.clamp_min(1e-30), torch.zeros_like(hull))
    return (iou - penalty).float()
