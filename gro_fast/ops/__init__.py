"""Fast ops: IoU (boxes, masks, RLE, polygons) and fused policy-loss kernels.

Every op lives in its own folder with an fp32 torch reference (``reference.py``) beside
its fast path; ``_dispatch`` picks the implementation per tensor device.
"""
from .box_iou import box_iou
from ._dispatch import force_backend, triton_mode

__all__ = ["box_iou", "force_backend", "triton_mode"]
