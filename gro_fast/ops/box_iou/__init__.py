"""Pairwise box IoU / GIoU. Public: ``box_iou``. (CPU C++ and CUDA paths: see ``gro_fast._C``.)"""
from .reference import reference_box_iou


def box_iou(boxes1, boxes2, *, kind: str = "iou", inclusive: bool = False):
    """[..., N, 4] x [..., M, 4] -> fp32 [..., N, M]; see reference.py for conventions."""
    return reference_box_iou(boxes1, boxes2, kind=kind, inclusive=inclusive)
