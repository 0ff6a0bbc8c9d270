"""Triton forward kernel of GRO's clipped policy loss over logits [B, T, V].

One program per token row reads the row once (online max / sum-exp, and sum p * logit for
the entropy when asked, via ``row_target_logprob``), gathers the target logit and computes, per
token: logp, ratio, the clipped surrogate with the shaped advantage, the k3 KL term, the
weighted loss and the weighted gradient w.r.t. logp. Only fp32 per-token scalars leave the
kernel. The backward pass is the token log-prob backward kernel
(``ops/token_logprobs/triton.py``) driven by that per-token gradient.

Not here: loss aggregation weights and the shaped advantage (computed in torch by
``reference.aggregation_weights`` / ``reference.shaped_advantage``), statistics (from the
per-token outputs), argument checks and dispatch (``__init__.py``).
"""
from __future__ import annotations

import torch
import triton
import triton.language as tl

from .._dispatch import on_tensor_device
from ..token_logprobs.triton import launch_config, row_target_logprob
from .options import PolicyLossOptions

# Planes of the fp32 [5, B, T] per-token output. LSE and ENTROPY are adjacent so that
# out[LSE:ENTROPY + 1] is the (lse, entropy) pair the shared backward kernel reads.
LOGP, LSE, ENTROPY, LOSS, DLOGP = range(5)
# Planes of the fp32 [3, B, T] per-token input.
WEIGHT, OLD, REF = range(3)


@triton.jit
def _gro_policy_loss_fwd_kernel(
    logits_ptr, stride_lb, stride_lt, targets_ptr, token_in_ptr, a_hat_ptr, out_ptr,
    N, T, V, inv_temp, eps_low, eps_high, beta,
    HAS_OLD: tl.constexpr, HAS_REF: tl.constexpr, WITH_ENTROPY: tl.constexpr,
    BLOCK_V: tl.constexpr,
):
    """Per token row: logp, lse, entropy, weight * loss, weight * dloss/dlogp."""
    row = tl.program_id(0).to(tl.int64)
    b = row // T
    logp, lse, entropy = row_target_logprob(logits_ptr, stride_lb, stride_lt, targets_ptr, row, T, V,
                                            inv_temp, WITH_ENTROPY, BLOCK_V)

    a_hat = tl.load(a_hat_ptr + b)
    ratio = 1.0  # old = logp.detach(): the ratio is 1 and its gradient is logp's
    if HAS_OLD:
        ratio = tl.exp(logp - tl.load(token_in_ptr + N + row))
    clipped = tl.minimum(tl.maximum(ratio, 1.0 - eps_low), 1.0 + eps_high)
    loss = -tl.minimum(ratio * a_hat, clipped * a_hat)
    # The clipped term wins (and passes no gradient) once the ratio has left the trust
    # region in the direction the advantage pushes it.
    beyond = ((a_hat > 0.0) & (ratio > 1.0 + eps_high)) | ((a_hat < 0.0) & (ratio < 1.0 - eps_low))
    dlogp = tl.where(beyond, 0.0, -a_hat * ratio)
    if HAS_REF:
        delta = tl.load(token_in_ptr + 2 * N + row) - logp
        expd = tl.exp(delta)
        loss += beta * (expd - delta - 1.0)
        dlogp += beta * (1.0 - expd)

    weight = tl.load(token_in_ptr + row)
    keep = weight != 0.0  # masked tokens contribute nothing, even with a -inf logp
    tl.store(out_ptr + row, logp)
    tl.store(out_ptr + N + row, lse)
    if WITH_ENTROPY:
        tl.store(out_ptr + 2 * N + row, entropy)
    tl.store(out_ptr + 3 * N + row, tl.where(keep, loss * weight, 0.0))
    tl.store(out_ptr + 4 * N + row, tl.where(keep, dlogp * weight, 0.0))


@on_tensor_device
def gro_policy_loss_forward(logits: torch.Tensor, targets: torch.Tensor,
                            token_inputs: torch.Tensor, a_hat: torch.Tensor,
                            options: PolicyLossOptions, *, has_old: bool, has_ref: bool,
                            with_entropy: bool) -> torch.Tensor:
    """Launch the forward kernel; returns fp32 [5, B, T] planes (LOGP ... DLOGP).

    logits [B, T, V] with a contiguous last dim; targets int64 [B, T], token_inputs fp32
    [3, B, T] (WEIGHT, OLD, REF) and a_hat fp32 [B] (the shaped advantage), all contiguous.
    Of ``options`` the kernel reads the temperature, clip range and beta (the aggregation
    is in the WEIGHT plane). The ENTROPY plane is left unwritten unless ``with_entropy``.
    """
    B, T, V = logits.shape
    out = torch.empty((5, B, T), dtype=torch.float32, device=logits.device)
    block, warps = launch_config(V)
    _gro_policy_loss_fwd_kernel[(B * T,)](
        logits, logits.stride(0), logits.stride(1), targets, token_inputs, a_hat, out,
        B * T, T, V, 1.0 / options.temperature, options.eps_low, options.eps_high, options.beta,
        HAS_OLD=has_old, HAS_REF=has_ref, WITH_ENTROPY=with_entropy, BLOCK_V=block,
        num_warps=warps)
    return out
