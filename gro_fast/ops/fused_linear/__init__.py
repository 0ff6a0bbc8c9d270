"""Fused LM head + GRO policy loss: the loss from last hidden states, never the logits.

Public: ``fused_linear_gro_policy_loss`` and ``fused_linear_token_logprobs``. Both take
hidden states [B, T, H], the LM-head weight [V, H] (and optional bias [V]) and compute
the target log-probs under softmax((hidden @ weight.T + bias) / temperature) without a
[B, T, V] tensor: the Triton kernels (``triton.py``) on CUDA tensors or under
``TRITON_INTERPRET=1``, else the chunked fp32 torch path (``reference.py``); the choice
follows ``ops._dispatch``. The GRO loss, its options, ``loss_agg`` and the stats are then
those of ``gro_policy_loss``, composed from the [B, T] log-probs by
``policy_loss.reference.loss_from_logprobs``; only the log-probs carry gradients back
to hidden, weight and bias. This module checks arguments and leaves the math to those.

Precision (``matmul_dtype``; accumulation is fp32 in every case, and the gradients come
back in the inputs' own dtypes, accumulated in fp32):
- under autocast for the inputs' device type, hidden and weight are multiplied in the
  autocast dtype, whatever their own dtypes (as the unfused LM head would be: a trainer's
  fp32 master weight and fp32 final hidden states are multiplied in bf16);
- otherwise hidden and weight must share a dtype; bf16 / fp16 are multiplied as they are,
  and fp32 on CUDA is multiplied in bf16 too (tensor cores; fp32 products are FMA loops that
  spill registers on sm_90, many times slower);
- fp32 on CPU is multiplied in fp32 (exact products; the reference path and the Triton
  interpreter). ``GRO_FAST_KERNELS=reference`` gives exact fp32 products everywhere outside
  autocast. The bias is added in fp32.
"""
from __future__ import annotations

import torch

from .._dispatch import reference_requested, use_triton
from ..policy_loss.reference import PolicyLossOutput, loss_from_logprobs
from ..token_logprobs.checks import (check_loss_agg, check_scalar, check_targets_range,
                                     check_temperature)
from .reference import chunked_linear_logprobs

_FLOATS = (torch.float32, torch.bfloat16, torch.float16)


def matmul_dtype(dtype: torch.dtype, device: torch.device | str) -> torch.dtype:
    """The dtype hidden and weight (of ``dtype``, on ``device``) are multiplied in: the
    module docstring's rule."""
    device_type = torch.device(device).type
    if torch.is_autocast_enabled(device_type):
        return torch.get_autocast_dtype(device_type)
    if dtype == torch.float32 and device_type == "cuda" and not reference_requested():
        return torch.bfloat16
    return dtype


def _check_linear(hidden, weight, bias, targets, temperature) -> float:
    """Shapes, dtypes, devices and target range of the LM-head inputs; the temperature."""
    for name, t in (("hidden", hidden), ("weight", weight), ("targets", targets)):
        if not isinstance(t, torch.Tensor):
            raise TypeError(f"{name} must be a torch.Tensor, got {type(t).__name__}")
    if hidden.dim() != 3 or hidden.dtype not in _FLOATS:
        raise ValueError(f"hidden must be a float32/bfloat16/float16 [B, T, H] tensor, got "
                         f"{hidden.dtype} {tuple(hidden.shape)}")
    if hidden.shape[0] * hidden.shape[1] == 0 or hidden.shape[2] == 0:
        raise ValueError(f"hidden must hold at least one token and one feature, got "
                         f"{tuple(hidden.shape)}")
    if weight.dim() != 2 or weight.shape[1] != hidden.shape[2] or weight.shape[0] == 0:
        raise ValueError(f"weight must be [V, H={hidden.shape[2]}], got {tuple(weight.shape)}")
    mixed_ok = torch.is_autocast_enabled(hidden.device.type)  # all cast to the autocast dtype
    if (weight.dtype != hidden.dtype and not (mixed_ok and weight.dtype in _FLOATS)) \
            or weight.device != hidden.device:
        raise ValueError(f"weight must match hidden's dtype and device ({hidden.dtype}, "
                         f"{hidden.device}), got {weight.dtype} on {weight.device}")
    if bias is not None:
        if not isinstance(bias, torch.Tensor) or bias.shape != (weight.shape[0],):
            raise ValueError(f"bias must be a [V={weight.shape[0]}] tensor or None")
        if (bias.dtype != hidden.dtype and not (mixed_ok and bias.dtype in _FLOATS)) \
                or bias.device != hidden.device:
            raise ValueError(f"bias must match hidden's dtype and device, got {bias.dtype} "
                             f"on {bias.device}")
    if (targets.shape != hidden.shape[:2] or targets.is_floating_point() or targets.is_complex()
            or targets.dtype == torch.bool):
        raise ValueError(f"targets must be an integer [B, T] = {tuple(hidden.shape[:2])} "
                         f"tensor, got {targets.dtype} {tuple(targets.shape)}")
    if targets.device != hidden.device:
        raise ValueError(f"targets must be on {hidden.device}, got {targets.device}")
    check_targets_range(targets, weight.shape[0])
    return check_temperature(temperature)


def _check_tensor(name, value, shape, device, floating) -> None:
    if not isinstance(value, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(value).__name__}")
    if floating and not value.dtype.is_floating_point:
        raise TypeError(f"{name} must be a floating tensor, got {value.dtype}")
    if tuple(value.shape) != tuple(shape):
        raise ValueError(f"{name} must have shape {tuple(shape)}, got {tuple(value.shape)}")
    if value.device != device:
        raise ValueError(f"{name} must be on {device} (hidden's device), got {value.device}")


def _check_loss(hidden, mask, advantages, shaping, old_logprobs, ref_logprobs,
                options) -> dict:
    """Shapes of the per-sequence / per-token inputs; returns the checked scalar options."""
    bt, b = tuple(hidden.shape[:2]), (hidden.shape[0],)
    for name, value, shape, floating in (
            ("mask", mask, bt, False), ("advantages", advantages, b, True),
            ("shaping", shaping, b, True), ("old_logprobs", old_logprobs, bt, True),
            ("ref_logprobs", ref_logprobs, bt, True)):
        if value is not None or name in ("mask", "advantages"):
            _check_tensor(name, value, shape, hidden.device, floating)
    checked = dict(eps_low=check_scalar("eps_low", options["eps_low"], low=0.0, high=1.0),
                   eps_high=check_scalar("eps_high", options["eps_high"], low=0.0),
                   beta=check_scalar("beta", options["beta"], low=0.0))
    if checked["beta"] > 0.0 and ref_logprobs is None:
        raise ValueError("ref_logprobs is required when beta > 0")
    loss_agg, max_length = options["loss_agg"], options["max_length"]
    check_loss_agg(loss_agg, max_length)
    return dict(checked, loss_agg=loss_agg, max_length=max_length)


def _linear_logprobs(hidden, weight, bias, targets, temperature, with_entropy, deterministic):
    """Dispatch: flattened [N] fp32 (logp, entropy-or-empty)."""
    flat_h = hidden.reshape(-1, hidden.shape[-1]).contiguous()
    flat_t = targets.reshape(-1).contiguous()
    compute = matmul_dtype(hidden.dtype, hidden.device)
    if use_triton(hidden):
        from .triton import triton_linear_logprobs
        bias = None if bias is None else bias.contiguous()
        return triton_linear_logprobs(flat_h, weight.contiguous(), bias, flat_t,
                                      temperature=temperature, with_entropy=with_entropy,
                                      deterministic=deterministic, matmul_dtype=compute)
    return chunked_linear_logprobs(flat_h, weight, bias, flat_t, temperature=temperature,
                                   with_entropy=with_entropy, matmul_dtype=compute)


def fused_linear_token_logprobs(hidden, weight, targets, *, bias=None, temperature=1.0,
                                return_entropy=False, deterministic=False):
    """fp32 log-probs [B, T] of ``targets`` under the LM head, without the logits.

    Differentiable w.r.t. hidden, weight and bias when they require grad (and grad mode is
    on); with ``return_entropy`` also returns the (detached) entropy [B, T]. Use it under
    ``torch.no_grad()`` for old and reference log-probs. ``deterministic`` avoids atomics
    in the Triton backward (same result bit for bit across runs, somewhat slower).
    """
    temperature = _check_linear(hidden, weight, bias, targets, temperature)
    logp, entropy = _linear_logprobs(hidden, weight, bias, targets, temperature,
                                     bool(return_entropy), bool(deterministic))
    logp = logp.view(hidden.shape[:2])
    return (logp, entropy.view(hidden.shape[:2])) if return_entropy else logp


def fused_linear_gro_policy_loss(hidden, weight, targets, mask, advantages, *, bias=None,
                                 shaping=None, old_logprobs=None, ref_logprobs=None,
                                 eps_low=0.2, eps_high=0.2, beta=0.0, temperature=1.0,
                                 loss_agg="token-mean", max_length=None,
                                 return_entropy=False, deterministic=False
                                 ) -> PolicyLossOutput:
    """GRO clipped-surrogate loss (+ beta * k3 KL) from hidden states and the LM head.

    Same arguments and output as ``gro_policy_loss`` with the logits replaced by hidden
    [B, T, H], weight [V, H] and bias [V]: mask [B, T], advantages and shaping [B],
    old/ref log-probs [B, T]. ``loss`` is differentiable w.r.t. hidden, weight and bias.
    """
    temperature = _check_linear(hidden, weight, bias, targets, temperature)
    options = _check_loss(hidden, mask, advantages, shaping, old_logprobs, ref_logprobs,
                          dict(eps_low=eps_low, eps_high=eps_high, beta=beta,
                               loss_agg=loss_agg, max_length=max_length))
    logp, entropy = _linear_logprobs(hidden, weight, bias, targets, temperature,
                                     bool(return_entropy), bool(deterministic))
    entropy = entropy.view(hidden.shape[:2]) if return_entropy else None
    # The sequence-level inputs are data: no gradient flows into them (as gro_policy_loss).
    detached = [None if t is None else t.detach()
                for t in (advantages, shaping, old_logprobs, ref_logprobs)]
    return loss_from_logprobs(logp.view(hidden.shape[:2]), mask, detached[0],
                              shaping=detached[1], old_logprobs=detached[2],
                              ref_logprobs=detached[3], entropy=entropy, **options)


__all__ = ["fused_linear_gro_policy_loss", "fused_linear_token_logprobs"]
