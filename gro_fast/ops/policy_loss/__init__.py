"""GRO's clipped policy loss over logits: public ``gro_policy_loss``.

Checks the arguments, computes the shaped advantage and the loss-aggregation weights in
torch (``reference.py``), then runs the fused Triton kernel (``triton.py``) on CUDA
tensors, or the fp32 reference on CPU tensors unless the Triton interpreter is on
(``ops/_dispatch.py``). Statistics come from the per-token outputs; nothing makes a
second pass over the logits. The LM-head-fused variant lives elsewhere
(``ops/fused_linear``) and reuses this folder's reference.
"""
from __future__ import annotations

import torch

from .._dispatch import use_triton
from ..token_logprobs.checks import (check_logits_targets, check_loss_agg, check_per_sequence,
                                     check_per_token, check_scalar, check_temperature)
from .reference import (PolicyLossOutput, aggregation_weights, masked_mean,
                        per_token_policy_loss, reference_gro_policy_loss, shaped_advantage)


class GROPolicyLossFunction(torch.autograd.Function):
    """Autograd wrapper: forward kernel, then the shared log-prob backward kernel."""

    @staticmethod
    def forward(ctx, logits, targets, token_inputs, a_hat, config, inplace_backward):
        from ..token_logprobs.triton import rows_view
        from .triton import LOSS, gro_policy_loss_forward
        rows = rows_view(logits)
        out = gro_policy_loss_forward(rows, targets, token_inputs, a_hat, **config)
        # Saved besides the logits: fp32 per-token planes (lse for the softmax, the
        # weighted dloss/dlogp); nothing of size [B, T, V].
        ctx.save_for_backward(rows, targets, out)
        ctx.temperature = config["temperature"]
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
        return dlogits, None, None, None, None, None


def gro_policy_loss(logits, targets, mask, advantages, *, shaping=None, old_logprobs=None,
                    ref_logprobs=None, eps_low=0.2, eps_high=0.2, beta=0.0, temperature=1.0,
                    loss_agg="token-mean", max_length=None, return_entropy=False,
                    inplace_backward=False) -> PolicyLossOutput:
    """GRO / GRPO clipped surrogate + beta * k3 KL, aggregated by ``loss_agg``.

    logits [B, T, V] (fp32, bf16 or fp16; logits[:, t] scores targets[:, t]), targets
    integer [B, T], mask [B, T] (completion tokens), advantages [B] (group-normalised),
    shaping [B] (GRO's improvement dphi >= 0; None = plain GRPO), old / ref log-probs
    [B, T] (old None: ratio 1 with logp's gradient; ref required when beta > 0).
    Returns ``PolicyLossOutput``: ``loss`` (fp32 scalar, differentiable w.r.t. logits),
    ``logprobs`` [B, T] and ``stats`` (kl, clip_frac_low, clip_frac_high, ratio_mean,
    entropy when ``return_entropy``). ``inplace_backward=True`` writes dlogits into the
    logits buffer during backward (the logits are overwritten; Triton path only).
    """
    B, T, _ = _check_arguments(logits, targets, mask, advantages, shaping, old_logprobs,
                               ref_logprobs, loss_agg, max_length)
    eps_low = check_scalar("eps_low", eps_low, low=0.0, high=1.0)
    eps_high = check_scalar("eps_high", eps_high, low=0.0)
    beta = check_scalar("beta", beta, low=0.0)
    temperature = check_temperature(temperature)
    if beta > 0.0 and ref_logprobs is None:
        raise ValueError("ref_logprobs is required when beta > 0")
    options = dict(shaping=shaping, old_logprobs=old_logprobs, ref_logprobs=ref_logprobs,
                   eps_low=eps_low, eps_high=eps_high, beta=beta, temperature=temperature,
                   loss_agg=loss_agg, max_length=max_length, return_entropy=return_entropy)
    if logits.dtype == torch.float64 or B * T == 0 or not use_triton(logits):
        return reference_gro_policy_loss(logits, targets, mask, advantages, **options)
    return _triton_policy_loss(logits, targets, mask, advantages, options, inplace_backward)


def _triton_policy_loss(logits, targets, mask, advantages, options, inplace_backward):
    from .triton import ENTROPY, LOGP
    a_hat = shaped_advantage(advantages.detach(), _detached(options["shaping"])).contiguous()
    old, ref = _detached(options["old_logprobs"]), _detached(options["ref_logprobs"])
    weights = aggregation_weights(mask, options["loss_agg"], options["max_length"])
    zeros = torch.zeros_like(weights)
    token_inputs = torch.stack([weights, zeros if old is None else old.float(),
                                zeros if ref is None else ref.float()])
    config = dict(temperature=options["temperature"], eps_low=options["eps_low"],
                  eps_high=options["eps_high"], beta=options["beta"], has_old=old is not None,
                  has_ref=ref is not None and options["beta"] != 0.0,
                  with_entropy=bool(options["return_entropy"]))
    loss, out = GROPolicyLossFunction.apply(logits, targets.to(torch.int64).contiguous(),
                                            token_inputs, a_hat, config, bool(inplace_backward))
    logp = out[LOGP].clone()
    entropy = out[ENTROPY] if options["return_entropy"] else None
    stats = _stats(logp, entropy, mask, a_hat, old, ref, options)
    return PolicyLossOutput(loss=loss, logprobs=logp, stats=stats)


def _stats(logp, entropy, mask, a_hat, old, ref, options) -> dict[str, torch.Tensor]:
    """The reference's statistics, from per-token fp32 outputs ([B, T] work only)."""
    with torch.no_grad():
        _, ratio, kl, c_low, c_high = per_token_policy_loss(
            logp, old, ref, a_hat, options["eps_low"], options["eps_high"], options["beta"])
        stats = {"kl": masked_mean(kl, mask), "clip_frac_low": masked_mean(c_low, mask),
                 "clip_frac_high": masked_mean(c_high, mask),
                 "ratio_mean": masked_mean(ratio, mask)}
        if entropy is not None:
            stats["entropy"] = masked_mean(entropy, mask)
    return stats


def _detached(tensor):
    return None if tensor is None else tensor.detach()


def _check_arguments(logits, targets, mask, advantages, shaping, old_logprobs, ref_logprobs,
                     loss_agg, max_length):
    B, T, V = check_logits_targets(logits, targets)
    device = logits.device
    check_per_token("mask", mask, B, T, device, floating=False)
    check_per_sequence("advantages", advantages, B, device)
    if shaping is not None:
        check_per_sequence("shaping", shaping, B, device)
    for name, value in (("old_logprobs", old_logprobs), ("ref_logprobs", ref_logprobs)):
        if value is not None:
            check_per_token(name, value, B, T, device)
    check_loss_agg(loss_agg, max_length)
    return B, T, V


__all__ = ["gro_policy_loss", "PolicyLossOutput", "GROPolicyLossFunction",
           "reference_gro_policy_loss"]
