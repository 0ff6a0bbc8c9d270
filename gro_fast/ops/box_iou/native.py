"""Chooses the ``gro_fast._C`` function of an IoU op for a device, or None for the reference.

CUDA tensors use ``<name>_cuda`` when the extension was built with CUDA kernels; CPU
tensors use ``<name>_cpu``; ``GRO_FAST_KERNELS=reference`` (or ``force_backend``) selects
the reference everywhere. The IoU ops have no Triton kernels, so a request for Triton
follows the ``auto`` rules.
"""
from __future__ import annotations

import torch

from ... import _ext
from .. import _dispatch


def native_op(device: torch.device | str, name: str):
    """The compiled ``name`` function for ``device`` or None (use the torch reference)."""
    device = torch.device(device)
    if _dispatch._requested() == "reference":
        return None
    if device.type == "cuda":
        if _ext.has_cuda_kernels() and _ext.has_op(f"{name}_cuda"):
            return getattr(_ext.extension(), f"{name}_cuda")
        return None
    if device.type == "cpu" and _ext.has_op(f"{name}_cpu"):
        return getattr(_ext.extension(), f"{name}_cpu")
    return None
