"""fp32 torch reference of GRO's policy loss.

This is the definition the Triton kernels (``triton.py`` here, and the fused LM-head
kernels in ``ops/fused_linear``) are tested against, and the CPU path of the public
functions. It materialises [B, T, V] fp32 tensors, so it is for correctness, not speed.
The token log-probs come from the token log-prob op's reference
(``ops/token_logprobs/reference.py``); the options from ``options.PolicyLossOptions``.

Per token (docs/method.md), with the improvement dphi of each sequence:
  logp  = logit_target / temperature - logsumexp(logits / temperature)
  ratio = exp(logp - old)                       (old = logp.detach() when not given)
  A_hat = (1 + improvement) * advantage         (improvement None = plain GRPO)
  loss  = -min(ratio * A_hat, clip(ratio, 1 - eps_low, 1 + eps_high) * A_hat)
          + beta * (exp(ref - logp) - (ref - logp) - 1)          (k3 KL estimator)
The scalar loss is sum(loss * weights) with per-token weights from
``aggregation_weights`` (computed outside any kernel, so kernels stay narrow).
"""
from __future__ import annotations

from dataclasses import dataclass, field

import torch

from ..token_logprobs.reference import reference_token_logprobs
from .options import PolicyLossOptions


@dataclass
class PolicyLossOutput:
    """Result of ``gro_policy_loss`` / ``fused_linear_gro_policy_loss``.

    loss: scalar, differentiable w.r.t. the logits (or hidden / weight / bias).
    logprobs: fp32 [B, T] log-probs of the targets under the current policy (detached).
    stats: detached scalars: ``kl`` (masked mean k3 KL, 0 when beta == 0 and no ref),
      ``clip_frac_low`` / ``clip_frac_high`` (share of completion tokens whose ratio was
      clipped at 1 - eps_low with A_hat < 0 / at 1 + eps_high with A_hat > 0),
      ``ratio_mean`` (masked mean ratio), and ``entropy`` (masked mean) when asked.
    """

    loss: torch.Tensor
    logprobs: torch.Tensor
    stats: dict[str, torch.Tensor] = field(default_factory=dict)


def aggregation_weights(mask: torch.Tensor, options: PolicyLossOptions) -> torch.Tensor:
    """fp32 [B, T] weights w such that loss = sum(per_token_loss * w), by ``loss_agg``.

    token-mean: 1 / (number of completion tokens in the batch).
    seq-mean-token-mean: 1 / (B_nonempty * tokens of that sequence); empty rows weigh 0
      and do not count in B (so a fully masked row changes nothing).
    seq-mean-token-sum-norm: 1 / (B * max_length) (Dr. GRPO); max_length defaults to T.
    """
    m = mask.to(torch.float32)
    if options.loss_agg == "token-mean":
        return m / m.sum().clamp_min(1.0)
    if options.loss_agg == "seq-mean-token-mean":
        per_seq = m.sum(dim=-1, keepdim=True)
        nonempty = (per_seq > 0).sum().clamp_min(1).to(torch.float32)
        return m / per_seq.clamp_min(1.0) / nonempty
    length = m.shape[-1] if options.max_length is None else options.max_length
    return m / float(m.shape[0] * length)


def per_token_policy_loss(logp: torch.Tensor, old_logprobs: torch.Tensor | None,
                          ref_logprobs: torch.Tensor | None, a_hat: torch.Tensor,
                          options: PolicyLossOptions):
    """The per-token loss [B, T] and its pieces, from fp32 log-probs.

    ``a_hat`` is the shaped advantage [B]. Returns (loss, ratio, kl, clipped_low,
    clipped_high); kl is zeros when beta == 0 or ref is None.
    """
    old = logp.detach() if old_logprobs is None else old_logprobs.float()
    ratio = torch.exp(logp - old)
    adv = a_hat.float().unsqueeze(-1)
    eps_low, eps_high, beta = options.eps_low, options.eps_high, options.beta
    clipped = ratio.clamp(1.0 - eps_low, 1.0 + eps_high)
    loss = -torch.minimum(ratio * adv, clipped * adv)
    if beta != 0.0 and ref_logprobs is not None:
        delta = ref_logprobs.float() - logp
        kl = torch.exp(delta) - delta - 1.0
        loss = loss + beta * kl
    else:
        kl = torch.zeros_like(logp)
    clipped_low = (ratio < 1.0 - eps_low) & (adv < 0)
    clipped_high = (ratio > 1.0 + eps_high) & (adv > 0)
    return loss, ratio, kl, clipped_low, clipped_high


def shaped_advantage(advantages: torch.Tensor, improvement: torch.Tensor | None,
                     dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """A_hat = (1 + improvement) * A in ``dtype``; improvement None means plain GRPO
    (A_hat = A). The one definition of GRO's post-scaling (``gro_fast.algo``'s
    ``shaped_advantages`` calls it in float64)."""
    advantages = advantages.to(dtype)
    if improvement is None:
        return advantages
    return (1.0 + improvement.to(dtype)) * advantages


def masked_mean(values: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    m = mask.to(torch.float32)
    return (values.float() * m).sum() / m.sum().clamp_min(1.0)


def loss_stats(pieces, mask: torch.Tensor, entropy: torch.Tensor | None) -> dict[str, torch.Tensor]:
    """``PolicyLossOutput.stats`` from ``per_token_policy_loss``'s (loss, ratio, kl,
    clipped_low, clipped_high) and the per-token entropy (None: not asked)."""
    _, ratio, kl, clipped_low, clipped_high = pieces
    with torch.no_grad():
        stats = {"kl": masked_mean(kl, mask), "clip_frac_low": masked_mean(clipped_low, mask),
                 "clip_frac_high": masked_mean(clipped_high, mask),
                 "ratio_mean": masked_mean(ratio, mask)}
        if entropy is not None:
            stats["entropy"] = masked_mean(entropy, mask)
    return stats


def reference_gro_policy_loss(logits, targets, mask, advantages, *, improvement=None,
                              old_logprobs=None, ref_logprobs=None, eps_low=0.2, eps_high=0.2,
                              beta=0.0, temperature=1.0, loss_agg="token-mean", max_length=None,
                              return_entropy=False) -> PolicyLossOutput:
    """The whole loss in fp32 torch, differentiable w.r.t. ``logits`` (arguments as
    ``gro_policy_loss``'s)."""
    options = PolicyLossOptions(eps_low=eps_low, eps_high=eps_high, beta=beta,
                                temperature=temperature, loss_agg=loss_agg, max_length=max_length)
    return loss_from_logits(logits, targets, mask, advantages, improvement, old_logprobs,
                            ref_logprobs, options, return_entropy=return_entropy)


def loss_from_logits(logits, targets, mask, advantages, improvement, old_logprobs, ref_logprobs,
                     options: PolicyLossOptions, *, return_entropy=False) -> PolicyLossOutput:
    """``reference_gro_policy_loss`` with its options built (the dispatch's CPU path)."""
    temperature = options.temperature
    if return_entropy:
        logp, entropy = reference_token_logprobs(logits, targets, temperature=temperature,
                                                 return_entropy=True)
    else:
        logp, entropy = reference_token_logprobs(logits, targets, temperature=temperature), None
    return loss_from_logprobs(logp, mask, advantages, improvement, old_logprobs, ref_logprobs,
                              options, entropy=entropy)


def loss_from_logprobs(logp, mask, advantages, improvement, old_logprobs, ref_logprobs,
                       options: PolicyLossOptions, *, entropy=None) -> PolicyLossOutput:
    """Everything after the log-probs: the per-token loss, aggregation and stats
    (``options.temperature`` is already in ``logp``)."""
    a_hat = shaped_advantage(advantages, improvement)
    pieces = per_token_policy_loss(logp, old_logprobs, ref_logprobs, a_hat, options)
    loss = (pieces[0] * aggregation_weights(mask, options)).sum()
    return PolicyLossOutput(loss=loss, logprobs=logp.detach(),
                            stats=loss_stats(pieces, mask, entropy))
