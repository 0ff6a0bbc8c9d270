"""Fused LM head + GRO policy loss: the loss from last hidden states, never the logits.

Public: ``fused_linear_gro_policy_loss`` and ``fused_linear_token_logprobs``. Both take
hidden states [B, T, H], the LM-head weight [V, H] (and optional bias [V]) and compute
the target log-probs under softmax((hidden @ weight.T + bias) / temperature) without a
[B, T, V] tensor: the Triton kernels (``triton.py``) on CUDA tensors or under
``TRITON_INTERPRET=1``, else the chunked fp32 torch path (``reference.py``); the choice
follows ``ops._dispatch``. The GRO loss, its options, ``loss_agg`` and the stats are then
those of ``gro_policy_loss``, composed from the [B, T] log-probs by
``policy_loss.reference.loss_from_logprobs``; only the log-probs carry gradients back
to hidden, weight and bias. This module checks arguments (``ops/_checks.py``; the loss
options once, as a ``PolicyLossOptions``) and leaves the math to those.

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

from .._checks import check_lm_head, check_loss_inputs, check_temperature
from .._dispatch import reference_requested, use_triton
from ..policy_loss.options import PolicyLossOptions
from ..policy_loss.reference import PolicyLossOutput, loss_from_logprobs
from .reference import chunked_linear_logprobs


def matmul_dtype(dtype: torch.dtype, device: torch.device | str) -> torch.dtype:
    """The dtype hidden and weight (of ``dtype``, on ``device``) are multiplied in: the
    module docstring's rule."""
    device_type = torch.device(device).type
    if torch.is_autocast_enabled(device_type):
        return torch.get_autocast_dtype(device_type)
    if dtype == torch.float32 and device_type == "cuda" and not reference_requested():
        return torch.bfloat16
    return dtype


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
    B, T, _ = check_lm_head(hidden, weight, bias, targets)
    temperature = check_temperature(temperature)
    logp, entropy = _linear_logprobs(hidden, weight, bias, targets, temperature,
                                     bool(return_entropy), bool(deterministic))
    return (logp.view(B, T), entropy.view(B, T)) if return_entropy else logp.view(B, T)


def fused_linear_gro_policy_loss(hidden, weight, targets, mask, advantages, *, bias=None,
                                 improvement=None, old_logprobs=None, ref_logprobs=None,
                                 eps_low=0.2, eps_high=0.2, beta=0.0, temperature=1.0,
                                 loss_agg="token-mean", max_length=None,
                                 return_entropy=False, deterministic=False
                                 ) -> PolicyLossOutput:
    """GRO clipped-surrogate loss (+ beta * k3 KL) from hidden states and the LM head.

    Same arguments and output as ``gro_policy_loss`` with the logits replaced by hidden
    [B, T, H], weight [V, H] and bias [V]: mask [B, T], advantages and the improvement
    dphi [B], old/ref log-probs [B, T]. ``loss`` is differentiable w.r.t. hidden, weight
    and bias.
    """
    B, T, _ = check_lm_head(hidden, weight, bias, targets)
    options = PolicyLossOptions(eps_low=eps_low, eps_high=eps_high, beta=beta,
                                temperature=temperature, loss_agg=loss_agg, max_length=max_length)
    check_loss_inputs(hidden, "hidden", mask, advantages, improvement, old_logprobs,
                      ref_logprobs, options.beta)
    logp, entropy = _linear_logprobs(hidden, weight, bias, targets, options.temperature,
                                     bool(return_entropy), bool(deterministic))
    entropy = entropy.view(B, T) if return_entropy else None
    # The sequence-level inputs are data: no gradient flows into them (as gro_policy_loss).
    detached = [None if t is None else t.detach()
                for t in (advantages, improvement, old_logprobs, ref_logprobs)]
    return loss_from_logprobs(logp.view(B, T), mask, *detached, options, entropy=entropy)


__all__ = ["fused_linear_gro_policy_loss", "fused_linear_token_logprobs"]
