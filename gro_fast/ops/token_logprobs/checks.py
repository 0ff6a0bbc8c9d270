"""Argument checks shared by the token log-prob and policy-loss entry points.

Each check raises ``TypeError`` / ``ValueError`` naming the offending argument, so bad
input never reaches a kernel (where it would crash, hang or produce silent NaN). Nothing
here computes anything. Checks of values (target ids) go through ``_dispatch.check_values``:
on CUDA tensors a device-side assertion, with no host synchronisation, by default.
"""
from __future__ import annotations

import math
import numbers

import torch

from .._dispatch import check_values

LOGITS_DTYPES = (torch.float32, torch.bfloat16, torch.float16, torch.float64)


def check_logits_targets(logits, targets) -> tuple[int, int, int]:
    """logits [B, T, V] floating, targets integer [B, T] in [0, V) on the same device."""
    if not isinstance(logits, torch.Tensor):
        raise TypeError(f"logits must be a torch.Tensor, got {type(logits).__name__}")
    if logits.dtype not in LOGITS_DTYPES:
        raise TypeError(f"logits must be float32, bfloat16, float16 or float64, got {logits.dtype}")
    if logits.dim() != 3:
        raise ValueError(f"logits must be [B, T, V], got shape {tuple(logits.shape)}")
    B, T, V = logits.shape
    if V < 1:
        raise ValueError("logits must have a vocabulary dimension V >= 1")
    if not isinstance(targets, torch.Tensor):
        raise TypeError(f"targets must be a torch.Tensor, got {type(targets).__name__}")
    if targets.dtype.is_floating_point or targets.dtype.is_complex or targets.dtype == torch.bool:
        raise TypeError(f"targets must be an integer tensor, got {targets.dtype}")
    if tuple(targets.shape) != (B, T):
        raise ValueError(f"targets must be [B, T] = {(B, T)}, got {tuple(targets.shape)}")
    check_device("targets", targets, logits.device)
    check_targets_range(targets, V)
    return B, T, V


def check_targets_range(targets: torch.Tensor, V: int) -> None:
    """Target ids in [0, V), by ``_dispatch.check_values`` (no host sync on CUDA)."""
    if targets.numel():
        low, high = torch.aminmax(targets)
        check_values((low >= 0) & (high < V), f"targets must lie in [0, V) = [0, {V})",
                     lambda: f"got values in [{int(low)}, {int(high)}]")


def check_device(name: str, tensor: torch.Tensor, device: torch.device) -> None:
    if tensor.device != device:
        raise ValueError(f"{name} is on {tensor.device} but logits are on {device}")


def check_per_token(name: str, tensor, B: int, T: int, device, floating: bool = True) -> None:
    """A [B, T] tensor (``floating``: of a floating dtype) on ``device``."""
    if not isinstance(tensor, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(tensor).__name__}")
    if floating and not tensor.dtype.is_floating_point:
        raise TypeError(f"{name} must be a floating tensor, got {tensor.dtype}")
    if tuple(tensor.shape) != (B, T):
        raise ValueError(f"{name} must be [B, T] = {(B, T)}, got {tuple(tensor.shape)}")
    check_device(name, tensor, device)


def check_per_sequence(name: str, tensor, B: int, device) -> None:
    """A floating [B] tensor on ``device``."""
    if not isinstance(tensor, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(tensor).__name__}")
    if not tensor.dtype.is_floating_point:
        raise TypeError(f"{name} must be a floating tensor, got {tensor.dtype}")
    if tuple(tensor.shape) != (B,):
        raise ValueError(f"{name} must be [B] = ({B},), got {tuple(tensor.shape)}")
    check_device(name, tensor, device)


def check_scalar(name: str, value, *, low: float, high: float = math.inf,
                 low_open: bool = False, high_open: bool = True) -> float:
    """A finite real ``value`` in the interval low..high (open or closed ends)."""
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


def check_loss_agg(loss_agg, max_length) -> None:
    """``loss_agg`` one of the policy loss's aggregations; ``max_length`` None or > 0."""
    from ..policy_loss.reference import LOSS_AGGREGATIONS

    if loss_agg not in LOSS_AGGREGATIONS:
        raise ValueError(f"loss_agg must be one of {LOSS_AGGREGATIONS}, got {loss_agg!r}")
    if max_length is not None and (isinstance(max_length, bool)
                                   or not isinstance(max_length, numbers.Integral)
                                   or max_length <= 0):
        raise ValueError(f"max_length must be a positive integer or None, got {max_length!r}")
