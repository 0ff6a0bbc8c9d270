"""Chooses the implementation of a fast op for given tensors.

Rules (the same for every op):
- CUDA tensors run the Triton / CUDA kernels.
- CPU tensors run the fp32 torch reference or the C++ path, except that with
  ``TRITON_INTERPRET=1`` set before Triton is imported, Triton kernels run on CPU tensors
  (that is how the tests exercise kernels without a GPU).
- ``GRO_FAST_KERNELS=reference`` forces the reference everywhere, ``=triton`` demands
  Triton (an error when it cannot run); ``auto`` (default) follows the rules above.
  ``force_backend(...)`` does the same for a block of code.
- The IoU ops run the C++ functions of ``gro_fast._C`` instead (``native_op``): CPU
  tensors ``<name>_cpu``, CUDA tensors ``<name>_cuda`` when the extension was built with
  CUDA kernels (else the reference, with one warning per process), the reference without
  the extension or when it is requested. They have no Triton kernels, so a request for
  Triton follows the ``auto`` rules.

Also here, the rule for checks of argument VALUES (target ids in range, finite boxes):
``check_values``. A check that reads a CUDA tensor's values on the host would synchronise
with the GPU at every call, so on CUDA they run as device-side assertions by default.
"""
from __future__ import annotations

import contextlib
import functools
import os
import warnings
from functools import lru_cache

import torch

from .. import _ext

_FORCED: list[str] = []
_CHOICES = ("auto", "reference", "triton")
_VALUE_CHECKS = ("async", "sync", "off")


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


def cuda_device(device: torch.device | str):
    """``torch.cuda.device(device)`` for a CUDA device (its kernels, streams and graphs run
    there, not on the current device), else a no-op context."""
    device = torch.device(device)
    return torch.cuda.device(device) if device.type == "cuda" else contextlib.nullcontext()


def on_tensor_device(launcher):
    """Decorator of kernel launchers: the launch runs with the CUDA device of the first
    tensor argument (or tensor in a tuple / list argument) current. Triton launches on the
    current device, not the tensor's, so without this a tensor on ``cuda:1`` (``gro-fast
    eval --device cuda:1``) would be read by a kernel running on ``cuda:0``."""
    @functools.wraps(launcher)
    def guarded(*args, **kwargs):
        flat = (x for a in (*args, *kwargs.values()) for x in (a if isinstance(a, (tuple, list)) else (a,)))
        tensor = next((x for x in flat if isinstance(x, torch.Tensor)), None)
        with cuda_device(tensor.device) if tensor is not None else contextlib.nullcontext():
            return launcher(*args, **kwargs)
    return guarded


def reference_requested() -> bool:
    """Whether ``GRO_FAST_KERNELS`` / ``force_backend`` asks for the fp32 torch reference."""
    return _requested() == "reference"


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


def native_op(device: torch.device | str, name: str):
    """The compiled ``gro_fast._C`` function ``name`` for ``device``, or None (use the
    torch reference); see the module docstring."""
    device = torch.device(device)
    if reference_requested():
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


def value_checks(device: torch.device) -> str:
    """How ``check_values`` runs on ``device``: "sync" on CPU (free there); on CUDA
    ``GRO_FAST_VALUE_CHECKS``: "async" (default), "sync" or "off"."""
    if device.type != "cuda":
        return "sync"
    mode = os.environ.get("GRO_FAST_VALUE_CHECKS", "async").strip().lower() or "async"
    if mode not in _VALUE_CHECKS:
        raise ValueError(f"GRO_FAST_VALUE_CHECKS must be one of {_VALUE_CHECKS}, got {mode!r}")
    return mode


def check_values(ok: torch.Tensor, message: str, details=None) -> None:
    """``ValueError(message: details())`` unless the one-element bool tensor ``ok`` is true.

    "sync": checked now (on CUDA one host synchronisation). "async": a device-side assertion
    (``torch._assert_async``) queued on the tensor's stream, no synchronisation; a failure
    surfaces as a CUDA device-side assert at the next synchronisation (rerun with
    ``GRO_FAST_VALUE_CHECKS=sync`` for the message). "off": not checked.
    """
    mode = value_checks(ok.device)
    if mode == "async":
        torch._assert_async(ok, f"gro_fast: {message}")
    elif mode == "sync" and not bool(ok):
        raise ValueError(message + (f": {details()}" if details is not None else ""))
