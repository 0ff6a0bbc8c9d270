"""Triton kernels for token log-probs over logits [B, T, V], forward and backward.

Forward: one program per token row reads the row once, with an online max / sum-exp over
vocabulary blocks (and, when asked, the online sum p * logit for the entropy), then gathers
the target logit. It writes fp32 per-token scalars only: logp, lse, entropy.
Backward: recomputes softmax from the logits and the saved lse and writes dlogits in the
logits' dtype, optionally into the logits buffer itself.

The row helpers (``row_logsumexp``) and the backward kernel are shared with the fused
policy loss (``ops/policy_loss/triton.py``). This module does no argument checking and no
dispatch: that is ``ops/token_logprobs/__init__.py``.
"""
from __future__ import annotations

import torch
import triton
import triton.language as tl

from .._dispatch import interpreter_enabled, on_tensor_device

def launch_config(vocab: int) -> tuple[int, int]:
    """(BLOCK_V, num_warps) for a vocabulary of ``vocab``.

    On a GPU a 4096-wide block with 8 warps gives 16 elements per thread (two 16-byte
    loads of bf16) and several resident rows per SM on H100 / H200 (a starting point,
    not yet tuned on a device). Under the interpreter small blocks keep tests fast and
    exercise the multi-block path.
    """
    if interpreter_enabled():
        return min(32, triton.next_power_of_2(vocab)), 1
    block = min(4096, triton.next_power_of_2(vocab))
    return block, (8 if block >= 2048 else 4 if block >= 512 else 1)


@triton.jit
def row_logsumexp(row_ptr, V, inv_temp, WITH_ENTROPY: tl.constexpr, BLOCK_V: tl.constexpr):
    """(m, log d, entropy) of softmax(row * inv_temp), reading the row once: lse = m + log d.

    Keeps m (running max), d = sum exp(s - m) and w = sum exp(s - m) * (s - m); when the
    max moves from m to m', d and w are rescaled by exp(m - m') and w gains (m - m') * d.
    Entropy = log d - w / d (0 when not asked). Callers form logp as (s_target - m) - log d,
    which keeps full precision when the logits are large.
    """
    # A large finite stand-in for -inf as the running max keeps exp(m - m_new) at 0
    # (not NaN) while every logit seen so far is -inf.
    m = -1.0e30
    d = 0.0
    w = 0.0
    for start in range(0, V, BLOCK_V):
        cols = start + tl.arange(0, BLOCK_V)
        s = tl.load(row_ptr + cols, mask=cols < V, other=float("-inf")).to(tl.float32) * inv_temp
        m_new = tl.maximum(m, tl.max(s, axis=0))
        alpha = tl.exp(m - m_new)
        e = tl.exp(s - m_new)
        if WITH_ENTROPY:
            shifted = e * tl.where(e > 0.0, s - m_new, 0.0)
            w = alpha * (w + (m - m_new) * d) + tl.sum(shifted, axis=0)
        d = d * alpha + tl.sum(e, axis=0)
        m = m_new
    log_d = tl.log(d)
    entropy = log_d - w / d
    return m, log_d, entropy


@triton.jit
def row_target_logprob(logits_ptr, stride_lb, stride_lt, targets_ptr, row, T, V, inv_temp,
                       WITH_ENTROPY: tl.constexpr, BLOCK_V: tl.constexpr):
    """One token row (row = b * T + t): (log-prob of its target, lse, entropy)."""
    row_ptr = logits_ptr + (row // T) * stride_lb + (row % T) * stride_lt
    m, log_d, entropy = row_logsumexp(row_ptr, V, inv_temp, WITH_ENTROPY, BLOCK_V)
    target = tl.load(targets_ptr + row)
    logp = (tl.load(row_ptr + target).to(tl.float32) * inv_temp - m) - log_d
    return logp, m + log_d, entropy


@triton.jit
def _token_logprobs_fwd_kernel(
    logits_ptr, stride_lb, stride_lt, targets_ptr, out_ptr, N, T, V, inv_temp,
    WITH_ENTROPY: tl.constexpr, BLOCK_V: tl.constexpr,
):
    """One program per token row. out is fp32 [3, N]: logp, lse, entropy."""
    row = tl.program_id(0).to(tl.int64)
    logp, lse, entropy = row_target_logprob(logits_ptr, stride_lb, stride_lt, targets_ptr, row, T, V,
                                            inv_temp, WITH_ENTROPY, BLOCK_V)
    tl.store(out_ptr + row, logp)
    tl.store(out_ptr + N + row, lse)
    if WITH_ENTROPY:
        tl.store(out_ptr + 2 * N + row, entropy)


@triton.jit
def _token_logprobs_bwd_kernel(
    logits_ptr, stride_lb, stride_lt, dlogits_ptr, stride_db, stride_dt,
    targets_ptr, saved_ptr, grads_ptr, N, T, V, inv_temp,
    ENTROPY_GRAD: tl.constexpr, BLOCK_V: tl.constexpr,
):
    """dlogits of g_logp * logp (+ g_ent * entropy) for one token row.

    saved is fp32 [2, N] (lse, entropy), grads fp32 [2, N] (g_logp, g_ent). With s the
    tempered logits and p = softmax(s):
      d/ds = g_logp * (onehot - p) - g_ent * p * (s - lse + entropy),  d/dlogits = d/ds / T.
    A row with zero gradient is written as zeros without reading the logits.
    """
    row = tl.program_id(0).to(tl.int64)
    b = row // T
    t = row % T
    row_ptr = logits_ptr + b * stride_lb + t * stride_lt
    out_ptr = dlogits_ptr + b * stride_db + t * stride_dt
    target = tl.load(targets_ptr + row)
    lse = tl.load(saved_ptr + row)
    g = tl.load(grads_ptr + row)
    skip = g == 0.0
    entropy = 0.0
    g_ent = 0.0
    if ENTROPY_GRAD:
        entropy = tl.load(saved_ptr + N + row)
        g_ent = tl.load(grads_ptr + N + row)
        skip = skip & (g_ent == 0.0)
    if skip:
        for start in range(0, V, BLOCK_V):
            cols = start + tl.arange(0, BLOCK_V)
            zeros = tl.zeros([BLOCK_V], dtype=tl.float32)
            tl.store(out_ptr + cols, zeros.to(dlogits_ptr.dtype.element_ty), mask=cols < V)
    else:
        for start in range(0, V, BLOCK_V):
            cols = start + tl.arange(0, BLOCK_V)
            s = tl.load(row_ptr + cols, mask=cols < V, other=float("-inf")).to(tl.float32)
            s = s * inv_temp
            p = tl.exp(s - lse)
            ds = tl.where(cols == target, g, 0.0) - g * p
            if ENTROPY_GRAD:
                ds -= g_ent * p * tl.where(p > 0.0, s - lse + entropy, 0.0)
            tl.store(out_ptr + cols, (ds * inv_temp).to(dlogits_ptr.dtype.element_ty),
                     mask=cols < V)


def rows_view(logits: torch.Tensor) -> torch.Tensor:
    """``logits`` itself when its vocabulary dim is contiguous, else a contiguous copy."""
    return logits if logits.stride(-1) == 1 else logits.contiguous()


@on_tensor_device
def token_logprobs_forward(logits: torch.Tensor, targets: torch.Tensor, temperature: float,
                           with_entropy: bool) -> torch.Tensor:
    """Launch the forward kernel; returns fp32 [3, B, T] (logp, lse, entropy).

    ``logits`` must have a contiguous last dim (see ``rows_view``); ``targets`` is int64
    [B, T] contiguous. The entropy plane is left unwritten unless ``with_entropy``.
    """
    B, T, V = logits.shape
    out = torch.empty((3, B, T), dtype=torch.float32, device=logits.device)
    block, warps = launch_config(V)
    _token_logprobs_fwd_kernel[(B * T,)](
        logits, logits.stride(0), logits.stride(1), targets, out, B * T, T, V,
        1.0 / temperature, WITH_ENTROPY=with_entropy, BLOCK_V=block, num_warps=warps)
    return out


@on_tensor_device
def token_logprobs_backward(logits: torch.Tensor, targets: torch.Tensor, saved: torch.Tensor,
                            grads: torch.Tensor, temperature: float, entropy_grad: bool,
                            inplace: bool) -> torch.Tensor:
    """Launch the backward kernel; returns dlogits shaped like ``logits``.

    saved: fp32 [2, B, T] (lse, entropy); grads: fp32 [2, B, T] (g_logp, g_ent), both
    contiguous. With ``inplace`` the gradient overwrites ``logits`` and is returned.
    """
    B, T, V = logits.shape
    dlogits = logits if inplace else torch.empty_like(logits)
    if dlogits.stride(-1) != 1:
        dlogits = torch.empty(logits.shape, dtype=logits.dtype, device=logits.device)
    block, warps = launch_config(V)
    _token_logprobs_bwd_kernel[(B * T,)](
        logits, logits.stride(0), logits.stride(1), dlogits, dlogits.stride(0),
        dlogits.stride(1), targets, saved, grads, B * T, T, V, 1.0 / temperature,
        ENTROPY_GRAD=entropy_grad, BLOCK_V=block, num_warps=warps)
    return dlogits
