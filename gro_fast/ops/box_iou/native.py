"""Chooses the ``gro_fast._C`` function of an IoU op for a device, or None for the reference.

CUDA tensors use ``<name>_cuda`` when the extension was built with CUDA kernels (else the
reference, with one warning per process); CPU
tensors use ``<name>_cpu``; ``GRO_FAST_KERNELS=reference`` (or ``force_backend``) selects
the reference everywhere. The IoU ops have no Triton kernels, so a request for Triton
follows the ``auto`` rules.
"""
from __future__ import annotations

import warnings
from functools import lru_cache

import torch

from ... import _ext
from .. import _dispatch


def native_op(device: torch.device | str, name: str):
    """The compiled ``name`` function for ``device`` or None (use the torch reference)."""
    device = torch.device(device)
    if _dispatch.reference_requested():
        return None
    if device.type == "cuda":
        if _ext.has_cuda_kernels() and _ext.has_op(f"{name}_cuda"):
            return getattr(_ext.extension(), f"{name}_cuda")
        if _ext.extension() is not None:  # a missing extension has warned already
            _warn_no_cuda_kernels()
        return None
    if device.type == "cpu" and _ext.has_op(f"{name}_cpu"):
        return getattr(_ext.extension(), f"{name}_cpu")
    return None


@lru_cache(maxsize=1)
def _warn_no_cuda_kernels() -> None:
    """Once per process: CUDA tensors are about to take the torch reference."""
    warnings.warn("gro_fast._C was built without CUDA kernels: the IoU ops run their torch "
                  "reference on CUDA tensors (much slower). Rebuild on a machine with the CUDA "
                  "toolkit: GRO_FAST_BUILD_CUDA=1 pip install --no-build-isolation -e .",
                  RuntimeWarning, stacklevel=3)
