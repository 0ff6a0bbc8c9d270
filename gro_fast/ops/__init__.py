"""Fast ops: IoU (boxes, masks, RLE, polygons) and fused policy-loss kernels.

Every op lives in its own folder with an fp32 torch reference (``reference.py``) beside
its fast path; an op built on another imports that op's reference, never re-defines it.
``_dispatch`` picks the implementation per tensor device (Triton, ``gro_fast._C`` or the
reference); ``_checks`` holds the argument checks the LM ops share.
"""
from .box_iou import box_iou
from .mask_iou import mask_iou, mask_iou_batched
from .rle import rle_area, rle_decode, rle_encode, rle_iou
from .polygon import polygon_iou, polygons_to_mask
from ._dispatch import force_backend, triton_mode
from .prefix_attention import shared_prefix_attention
from .policy_loss import PolicyLossOptions, PolicyLossOutput, gro_policy_loss
from .token_logprobs import token_logprobs
from .fused_linear import fused_linear_gro_policy_loss, fused_linear_token_logprobs

__all__ = ["box_iou", "mask_iou", "mask_iou_batched", "rle_encode", "rle_decode", "rle_area",
           "rle_iou", "polygons_to_mask", "polygon_iou", "force_backend", "triton_mode", "shared_prefix_attention",
           "token_logprobs", "gro_policy_loss", "PolicyLossOptions", "PolicyLossOutput",
           "fused_linear_gro_policy_loss", "fused_linear_token_logprobs"]
