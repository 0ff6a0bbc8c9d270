"""Chooses the implementation of a fast op for given tensors.

Rules (the same for every op):
- CUDA tensors run the Triton / CUDA kernels.
- CPU tensors run the fp32 torch reference or the C++ path, except that with
  ``TRITON_INTERPRET=1`` set before Triton is imported, Triton kernels run on CPU tensors
  (that is how the tests exercise kernels without a GPU).
- ``GRO_FAST_KERNELS=reference`` forces the reference everywhere, ``=triton`` demands
  Triton (an error when it cannot run); ``auto`` (default) follows the rules above.
  ``force_backend(...)`` does the same for a block of code.
"""
from __future__ import annotations

import contextlib
import os
from functools import lru_cache

import torch

_FORCED: list[str] = []
_CHOICES = ("auto", "reference", "triton")


def interpreter_enabled() -> bool:
    return os.environ.get("TRITON_INTERPRET", "0") not in ("", "0", "false", "False")


@lru_cache(maxsize=1)
def triton_available() -> bool:
    try:
        import triton  # noqa: F401
        import triton.language  # noqa: F401
        return True
    except Exception:
        return False


def triton_mode() -> str:
    """"gpu", "interpreter" or "unavailable" (as ``gro-fast doctor`` reports it)."""
    if not triton_available():
        return "unavailable"
    if interpreter_enabled():
        return "interpreter"
    return "gpu" if torch.cuda.is_available() else "unavailable"


def _requested() -> str:
    if _FORCED:
        return _FORCED[-1]
    value = os.environ.get("GRO_FAST_KERNELS", "auto").strip().lower() or "auto"
    if value not in _CHOICES:
        raise ValueError(f"GRO_FAST_KERNELS must be one of {_CHOICES}, got {value!r}")
    return value


@contextlib.contextmanager
def force_backend(name: str):
    """Within the block, ops use ``name`` ("auto", "reference" or "triton")."""
    if name not in _CHOICES:
        raise ValueError(f"backend must be one of {_CHOICES}, got {name!r}")
    _FORCED.append(name)
    try:
        yield
    finally:
        _FORCED.pop()


def use_triton(tensor: torch.Tensor) -> bool:
    """Whether a Triton kernel should handle ``tensor`` (see the module docstring)."""
    requested = _requested()
    if requested == "reference":
        return False
    can_run = triton_available() and (
        (tensor.is_cuda and not interpreter_enabled())
        or (tensor.device.type == "cpu" and interpreter_enabled())
    )
    if requested == "triton" and not can_run:
        raise RuntimeError(
            "GRO_FAST_KERNELS=triton but Triton cannot run on this "
            f"{tensor.device.type} tensor (Triton installed: {triton_available()}, "
            f"TRITON_INTERPRET={os.environ.get('TRITON_INTERPRET')!r})"
        )
    return can_run
