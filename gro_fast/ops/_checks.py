"""Argument checks shared by the entry points of the LM ops: token log-probs, the policy
loss over logits and the fused LM-head loss.

Each check raises ``TypeError`` (not a tensor, wrong dtype) or ``ValueError`` (shape,
device, range) naming the offending argument, so bad input never reaches a kernel (where it
would crash, hang or produce silent NaN). Nothing here computes anything. Checks of values
(target ids) go through ``_dispatch.check_values``: on CUDA tensors a device-side
assertion, with no host synchronisation, by default. The loss's scalar options are checked
once, by ``policy_loss.options.PolicyLossOptions`` (with ``check_scalar`` from here); the
IoU and attention ops check their own domain layouts (boxes, masks, RLE, polygons, KV
caches) beside their public functions.
"""
from __future__ import annotations

import math
import numbers

import torch

from ._dispatch import check_values

LOGITS_DTYPES = (torch.float32, torch.bfloat16, torch.float16, torch.float64)
HIDDEN_DTYPES = (torch.float32, torch.bfloat16, torch.float16)


def check_is_tensor(name: str, value) -> None:
    if not isinstance(value, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(value).__name__}")


def check_device(name: str, tensor: torch.Tensor, device: torch.device, anchor: str) -> None:
    """``tensor`` on ``device``, the device of the argument ``anchor``."""
    if tensor.device != device:
        raise ValueError(f"{name} is on {tensor.device} but {anchor} is on {device}")


def check_tensor(name: str, value, shape: tuple, dims: str, device: torch.device, anchor: str,
                 *, floating: bool = True) -> None:
    """A tensor of ``shape`` (spelt ``dims`` in messages, e.g. "[B, T]") on ``anchor``'s
    ``device``; with ``floating``, of a floating dtype."""
    check_is_tensor(name, value)
    if floating and not value.dtype.is_floating_point:
        raise TypeError(f"{name} must be a floating tensor, got {value.dtype}")
    if tuple(value.shape) != tuple(shape):
        raise ValueError(f"{name} must be {dims} = {tuple(shape)}, got {tuple(value.shape)}")
    check_device(name, value, device, anchor)


def check_targets(targets, B: int, T: int, V: int, device: torch.device, anchor: str) -> None:
    """Integer targets [B, T] in [0, V) on ``device``."""
    check_is_tensor("targets", targets)
    if targets.dtype.is_floating_point or targets.dtype.is_complex or targets.dtype == torch.bool:
        raise TypeError(f"targets must be an integer tensor, got {targets.dtype}")
    check_tensor("targets", targets, (B, T), "[B, T]", device, anchor, floating=False)
    check_targets_range(targets, V)


def check_targets_range(targets: torch.Tensor, V: int) -> None:
    """Target ids in [0, V), by ``_dispatch.check_values`` (no host sync on CUDA)."""
    if targets.numel():
        low, high = torch.aminmax(targets)
        check_values((low >= 0) & (high < V), f"targets must lie in [0, V) = [0, {V})",
                     lambda: f"got values in [{int(low)}, {int(high)}]")


def check_logits_targets(logits, targets) -> tuple[int, int, int]:
    """logits [B, T, V] floating, targets integer [B, T] in [0, V) on the same device."""
    check_is_tensor("logits", logits)
    if logits.dtype not in LOGITS_DTYPES:
        raise TypeError(f"logits must be float32, bfloat16, float16 or float64, got {logits.dtype}")
    if logits.dim() != 3:
        raise ValueError(f"logits must be [B, T, V], got shape {tuple(logits.shape)}")
    B, T, V = logits.shape
    if V < 1:
        raise ValueError("logits must have a vocabulary dimension V >= 1")
    check_targets(targets, B, T, V, logits.device, "logits")
    return B, T, V


def check_lm_head(hidden, weight, bias, targets) -> tuple[int, int, int]:
    """hidden [B, T, H] with a token and a feature, weight [V, H] and bias [V] (or None) of
    hidden's dtype on its device, targets integer [B, T] in [0, V). Returns (B, T, V)."""
    check_is_tensor("hidden", hidden)
    if hidden.dtype not in HIDDEN_DTYPES:
        raise TypeError(f"hidden must be float32, bfloat16 or float16, got {hidden.dtype}")
    if hidden.dim() != 3 or hidden.shape[0] * hidden.shape[1] == 0 or hidden.shape[2] == 0:
        raise ValueError(f"hidden must be [B, T, H] with at least one token and one feature, "
                         f"got {tuple(hidden.shape)}")
    B, T, H = hidden.shape
    check_is_tensor("weight", weight)
    if weight.dim() != 2 or weight.shape[1] != H or weight.shape[0] == 0:
        raise ValueError(f"weight must be [V, H={H}] with V >= 1, got {tuple(weight.shape)}")
    V = weight.shape[0]
    _check_head_dtype("weight", weight, hidden)
    if bias is not None:
        check_tensor("bias", bias, (V,), "[V]", hidden.device, "hidden", floating=False)
        _check_head_dtype("bias", bias, hidden)
    check_targets(targets, B, T, V, hidden.device, "hidden")
    return B, T, V


def _check_head_dtype(name: str, tensor: torch.Tensor, hidden: torch.Tensor) -> None:
    # Under autocast every operand is cast to the autocast dtype, so any float dtype will do.
    mixed_ok = torch.is_autocast_enabled(hidden.device.type) and tensor.dtype in HIDDEN_DTYPES
    if tensor.dtype != hidden.dtype and not mixed_ok:
        raise TypeError(f"{name} must have hidden's dtype {hidden.dtype} (any float dtype "
                        f"under autocast), got {tensor.dtype}")
    check_device(name, tensor, hidden.device, "hidden")


def check_loss_inputs(like: torch.Tensor, anchor: str, mask, advantages, improvement,
                      old_logprobs, ref_logprobs, beta: float) -> None:
    """The tensors of the policy loss, against ``like`` [B, T, ...] (the argument
    ``anchor``): mask [B, T] (any dtype), advantages [B], the improvement dphi [B] or None,
    old / ref log-probs [B, T] or None (ref required when beta > 0), all on its device."""
    B, T = like.shape[:2]
    device = like.device
    check_tensor("mask", mask, (B, T), "[B, T]", device, anchor, floating=False)
    check_tensor("advantages", advantages, (B,), "[B]", device, anchor)
    if improvement is not None:
        check_tensor("improvement", improvement, (B,), "[B]", device, anchor)
    for name, value in (("old_logprobs", old_logprobs), ("ref_logprobs", ref_logprobs)):
        if value is not None:
            check_tensor(name, value, (B, T), "[B, T]", device, anchor)
    if beta > 0.0 and ref_logprobs is None:
        raise ValueError("ref_logprobs is required when beta > 0")


def check_scalar(name: str, value, *, low: float, high: float = math.inf,
                 low_open: bool = False, high_open: bool = True) -> float:
    """A finite real ``value`` in the interval low..high (open or closed ends), as a float."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a real number, got {type(value).__name__}")
    value = float(value)
    too_low = value <= low if low_open else value < low
    too_high = value >= high if high_open else value > high
    if not math.isfinite(value) or too_low or too_high:
        left, right = "(" if low_open else "[", ")" if high_open else "]"
        raise ValueError(f"{name} must be in {left}{low}, {high}{right}, got {value}")
    return value


def check_temperature(temperature) -> float:
    return check_scalar("temperature", temperature, low=0.0, low_open=True)


def check_max_length(max_length) -> None:
    """None or a positive integer."""
    if max_length is not None and (isinstance(max_length, bool)
                                   or not isinstance(max_length, numbers.Integral)
                                   or max_length <= 0):
        raise ValueError(f"max_length must be a positive integer or None, got {max_length!r}")
