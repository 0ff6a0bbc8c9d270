"""Loads the compiled extension ``gro_fast._C`` once.

When it is missing or fails to load, ``import gro_fast`` still works: ``extension()``
returns None, every op falls back to its fp32 torch reference, and one warning says so.
"""
from __future__ import annotations

import importlib
import warnings
from functools import lru_cache

import torch  # noqa: F401  (loads libc10 / libtorch before the extension)

_LOAD_ERROR: str | None = None


@lru_cache(maxsize=1)
def extension():
    """The ``gro_fast._C`` module, or None (with a single warning) if it cannot load."""
    global _LOAD_ERROR
    try:
        return importlib.import_module("gro_fast._C")
    except Exception as exc:  # ImportError, undefined symbols, ABI mismatch
        _LOAD_ERROR = f"{type(exc).__name__}: {exc}"
        warnings.warn(
            "gro_fast._C is not available; ops fall back to the torch reference "
            f"(slower). Reason: {_LOAD_ERROR}. Rebuild with "
            "`pip install --no-build-isolation -e .`",
            RuntimeWarning, stacklevel=2,
        )
        return None


def load_error() -> str | None:
    """Why the extension did not load (None when it loaded or was not tried)."""
    extension()
    return _LOAD_ERROR


def has_op(name: str) -> bool:
    """True when ``gro_fast._C`` exports ``name`` (e.g. ``"box_iou_cpu"``)."""
    ext = extension()
    return ext is not None and hasattr(ext, name)


def has_cuda_kernels() -> bool:
    ext = extension()
    return bool(ext is not None and getattr(ext, "with_cuda", False))
