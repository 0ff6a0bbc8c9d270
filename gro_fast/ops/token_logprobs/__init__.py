"""Token log-probs of targets under logits [B, T, V]: public ``token_logprobs``.

Used for the current policy (with autograd) and for old-policy / reference-policy
log-probs (without: nothing is saved then). CUDA tensors run the Triton kernels of
``triton.py``; CPU tensors run the fp32 reference unless the Triton interpreter is on
(``ops/_dispatch.py``). float64 logits and empty batches always take the reference.
The GRO loss itself is ``ops/policy_loss``.
"""
from __future__ import annotations

import torch

from .._checks import check_logits_targets, check_temperature
from .._dispatch import use_triton
from .reference import reference_token_logprobs


class TokenLogprobsFunction(torch.autograd.Function):
    """Autograd wrapper of the Triton forward / backward launchers."""

    @staticmethod
    def forward(ctx, logits, targets, temperature, with_entropy, inplace_backward):
        from .triton import rows_view, token_logprobs_forward
        rows = rows_view(logits)
        out = token_logprobs_forward(rows, targets, temperature, with_entropy)
        # Only fp32 per-token scalars are saved besides the logits: lse and entropy.
        ctx.save_for_backward(rows, targets, out[1:])
        ctx.config = (temperature, with_entropy, inplace_backward)
        ctx.set_materialize_grads(False)
        logp = out[0].clone()
        if with_entropy:
            entropy = out[2].clone()
            return logp, entropy
        return logp

    @staticmethod
    def backward(ctx, grad_logp, grad_entropy=None):
        from .triton import token_logprobs_backward
        rows, targets, saved = ctx.saved_tensors
        temperature, with_entropy, inplace_backward = ctx.config
        entropy_grad = with_entropy and grad_entropy is not None
        if grad_logp is None and not entropy_grad:
            return None, None, None, None, None
        grads = torch.zeros_like(saved)
        if grad_logp is not None:
            grads[0] = grad_logp
        if entropy_grad:
            grads[1] = grad_entropy
        dlogits = token_logprobs_backward(rows, targets, saved, grads, temperature,
                                          entropy_grad, inplace_backward)
        return dlogits, None, None, None, None


def token_logprobs(logits: torch.Tensor, targets: torch.Tensor, *, temperature: float = 1.0,
                   return_entropy: bool = False, inplace_backward: bool = False):
    """fp32 log-probs [B, T] of ``targets`` under softmax(logits / temperature).

    logits [B, T, V] (fp32, bf16 or fp16; any strides in B and T), targets integer [B, T]
    in [0, V); logits[:, t] scores targets[:, t]. With ``return_entropy`` also returns the
    fp32 entropy [B, T] of the tempered distribution (differentiable too). Differentiable
    w.r.t. ``logits`` when they require grad; under ``torch.no_grad()`` nothing is kept
    for backward. ``inplace_backward=True`` writes the gradient into the logits buffer
    (the logits are overwritten during backward; use it only when nothing else needs
    them afterwards).
    """
    B, T, _ = check_logits_targets(logits, targets)
    temperature = check_temperature(temperature)
    if logits.dtype == torch.float64 or B * T == 0 or not use_triton(logits):
        return reference_token_logprobs(logits, targets, temperature=temperature,
                                        return_entropy=return_entropy)
    targets = targets.to(torch.int64).contiguous()
    if torch.is_grad_enabled() and logits.requires_grad:
        return TokenLogprobsFunction.apply(logits, targets, temperature, bool(return_entropy),
                                           bool(inplace_backward))
    from .triton import rows_view, token_logprobs_forward
    out = token_logprobs_forward(rows_view(logits), targets, temperature, bool(return_entropy))
    return (out[0], out[2]) if return_entropy else out[0]


__all__ = ["token_logprobs", "reference_token_logprobs", "TokenLogprobsFunction"]
