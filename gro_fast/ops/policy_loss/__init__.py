"""GRO's clipped policy loss over logits: public ``gro_policy_loss``.

Checks the arguments (``ops/_checks.py``; the six scalar options once, as a
``PolicyLossOptions``), computes the shaped advantage and the loss-aggregation weights in
torch (``reference.py``), then runs the fused Triton kernel (``triton.py``) on CUDA
tensors, or the fp32 reference on CPU tensors unless the Triton interpreter is on
(``ops/_dispatch.py``). Statistics come from the per-token outputs; nothing makes a
second pass over the logits. The LM-head-fused variant lives elsewhere
(``ops/fused_linear``) and reuses this folder's options and reference.
"""
from __future__ import annotations

import torch

from .._checks import check_logits_targets, check_loss_inputs
from .._dispatch import use_triton
from .options import LOSS_AGGREGATIONS, LossAggregation, PolicyLossOptions
from .reference import (PolicyLossOutput, aggregation_weights, loss_from_logits, loss_stats,
                        per_token_policy_loss, reference_gro_policy_loss, shaped_advantage)


class GROPolicyLossFunction(torch.autograd.Function):
    """Autograd wrapper: forward kernel, then the shared log-prob backward kernel.

    ``flags`` are the kernel's variants: has_old, has_ref and with_entropy."""

    @staticmethod
    def forward(ctx, logits, targets, token_inputs, a_hat, options, flags, inplace_backward):
        from ..token_logprobs.triton import rows_view
        from .triton import LOSS, gro_policy_loss_forward
        rows = rows_view(logits)
        out = gro_policy_loss_forward(rows, targets, token_inputs, a_hat, options, **flags)
        # Saved besides the logits: fp32 per-token planes (lse for the softmax, the
        # weighted dloss/dlogp); nothing of size [B, T, V].
        ctx.save_for_backward(rows, targets, out)
        ctx.temperature = options.temperature
        ctx.inplace_backward = inplace_backward
        ctx.mark_non_differentiable(out)
        return out[LOSS].sum(), out

    @staticmethod
    def backward(ctx, grad_loss, _grad_out):
        from ..token_logprobs.triton import token_logprobs_backward
        from .triton import DLOGP, ENTROPY, LSE
        rows, targets, out = ctx.saved_tensors
        g = (out[DLOGP] * grad_loss).contiguous()
        dlogits = token_logprobs_backward(rows, targets, out[LSE:ENTROPY + 1], g,
                                          ctx.temperature, False, ctx.inplace_backward)
        return dlogits, None, None, None, None, None, None


def gro_policy_loss(logits, targets, mask, advantages, *, improvement=None, old_logprobs=None,
                    ref_logprobs=None, eps_low=0.2, eps_high=0.2, beta=0.0, temperature=1.0,
                    loss_agg="token-mean", max_length=None, return_entropy=False,
                    inplace_backward=False) -> PolicyLossOutput:
    """GRO / GRPO clipped surrogate + beta * k3 KL, aggregated by ``loss_agg``.

    logits [B, T, V] (fp32, bf16 or fp16; logits[:, t] scores targets[:, t]), targets
    integer [B, T], mask [B, T] (completion tokens), advantages [B] (group-normalised),
    improvement [B] (GRO's improvement dphi >= 0, the loss uses A_hat = (1 + dphi) * A;
    None = plain GRPO), old / ref log-probs [B, T] (old None: ratio 1 with logp's gradient;
    ref required when beta > 0). eps_low ... max_length: see ``PolicyLossOptions``.
    Returns ``PolicyLossOutput``: ``loss`` (fp32 scalar, differentiable w.r.t. logits),
    ``logprobs`` [B, T] and ``stats`` (kl, clip_frac_low, clip_frac_high, ratio_mean,
    entropy when ``return_entropy``). ``inplace_backward=True`` writes dlogits into the
    logits buffer during backward (the logits are overwritten; Triton path only).
    """
    B, T, _ = check_logits_targets(logits, targets)
    options = PolicyLossOptions(eps_low=eps_low, eps_high=eps_high, beta=beta,
                                temperature=temperature, loss_agg=loss_agg, max_length=max_length)
    check_loss_inputs(logits, "logits", mask, advantages, improvement, old_logprobs,
                      ref_logprobs, options.beta)
    tensors = (mask, advantages, improvement, old_logprobs, ref_logprobs)
    if logits.dtype == torch.float64 or B * T == 0 or not use_triton(logits):
        return loss_from_logits(logits, targets, *tensors, options,
                                return_entropy=return_entropy)
    return _triton_policy_loss(logits, targets, *tensors, options, bool(return_entropy),
                               bool(inplace_backward))


def _triton_policy_loss(logits, targets, mask, advantages, improvement, old, ref, options,
                        return_entropy, inplace_backward):
    from .triton import ENTROPY, LOGP
    a_hat = shaped_advantage(advantages.detach(), _detached(improvement)).contiguous()
    old, ref = _detached(old), _detached(ref)
    weights = aggregation_weights(mask, options)
    zeros = torch.zeros_like(weights)
    token_inputs = torch.stack([weights, zeros if old is None else old.float(),
                                zeros if ref is None else ref.float()])
    flags = dict(has_old=old is not None, has_ref=ref is not None and options.beta != 0.0,
                 with_entropy=return_entropy)
    loss, out = GROPolicyLossFunction.apply(logits, targets.to(torch.int64).contiguous(),
                                            token_inputs, a_hat, options, flags, inplace_backward)
    logp = out[LOGP].clone()
    entropy = out[ENTROPY] if return_entropy else None
    # The reference's statistics, from the per-token fp32 outputs ([B, T] work only).
    with torch.no_grad():
        pieces = per_token_policy_loss(logp, old, ref, a_hat, options)
    return PolicyLossOutput(loss=loss, logprobs=logp, stats=loss_stats(pieces, mask, entropy))


def _detached(tensor):
    return None if tensor is None else tensor.detach()


__all__ = ["gro_policy_loss", "PolicyLossOutput", "PolicyLossOptions", "LOSS_AGGREGATIONS",
           "LossAggregation", "GROPolicyLossFunction", "reference_gro_policy_loss"]
