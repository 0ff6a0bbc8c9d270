"""fp32 torch reference of GRO's policy loss and token log-probs.

This is the definition the Triton kernels (``triton.py`` here, and the fused LM-head
kernels in ``ops/fused_linear``) are tested against, and the CPU path of the public
functions. It materialises [B, T, V] fp32 tensors, so it is for correctness, not speed.

Per token (``../shared/GRO.md``):
  logp  = logit_target / temperature - logsumexp(logits / temperature)
  ratio = exp(logp - old)                       (old = logp.detach() when not given)
  A_hat = (1 + shaping) * advantage             (shaping None = plain GRPO)
  loss  = -min(ratio * A_hat, clip(ratio, 1 - eps_low, 1 + eps_high) * A_hat)
          + beta * (exp(ref - logp) - (ref - logp) - 1)          (k3 KL estimator)
The scalar loss is sum(loss * weights) with per-token weights from
``aggregation_weights`` (computed outside any kernel, so kernels stay narrow).
"""
from __future__ import annotations

from dataclasses import dataclass, field

import torch

LOSS_AGGREGATIONS = ("token-mean", "seq-mean-token-mean", "seq-mean-token-sum-norm")


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


def aggregation_weights(mask: torch.Tensor, loss_agg: str = "token-mean",
                        max_length: int | None = None) -> torch.Tensor:
    """fp32 [B, T] weights w such that loss = sum(per_token_loss * w).

    token-mean: 1 / (number of completion tokens in the batch).
    seq-mean-token-mean: 1 / (B_nonempty * tokens of that sequence); empty rows weigh 0
      and do not count in B (so a fully masked row changes nothing).
    seq-mean-token-sum-norm: 1 / (B * max_length) (Dr. GRPO); max_length defaults to T.
    """
    if loss_agg not in LOSS_AGGREGATIONS:
        raise ValueError(f"loss_agg must be one of {LOSS_AGGREGATIONS}, got {loss_agg!r}")
    m = mask.to(torch.float32)
    if loss_agg == "token-mean":
        return m / m.sum().clamp_min(1.0)
    if loss_agg == "seq-mean-token-mean":
        per_seq = m.sum(dim=-1, keepdim=True)
        nonempty = (per_seq > 0).sum().clamp_min(1).to(torch.float32)
        return m / per_seq.clamp_min(1.0) / nonempty
    length = m.shape[-1] if max_length is None else max_length
    if length <= 0:
        raise ValueError(f"max_length must be positive, got {max_length}")
    return m / float(m.shape[0] * length)


def reference_token_logprobs(logits: torch.Tensor, targets: torch.Tensor, *,
                             temperature: float = 1.0, return_entropy: bool = False):
    """fp32 log-probs [B, T] of ``targets`` under ``logits`` [B, T, V] / temperature.

    Differentiable w.r.t. ``logits``. With ``return_entropy`` also returns the entropy
    [B, T] of the tempered distribution.
    """
    # fp32 for fp32 / bf16 / fp16 logits; float64 stays float64 (gradcheck).
    scaled = logits.to(torch.promote_types(logits.dtype, torch.float32)) / temperature
    lse = torch.logsumexp(scaled, dim=-1)
    logp = scaled.gather(-1, targets.long().unsqueeze(-1)).squeeze(-1) - lse
    if not return_entropy:
        return logp
    log_probs = scaled - lse.unsqueeze(-1)
    probs = log_probs.exp()
    # 0 * log 0 = 0 for -inf logits.
    entropy = -(probs * torch.where(probs > 0, log_probs, torch.zeros_like(log_probs))).sum(-1)
    return logp, entropy


def per_token_policy_loss(logp: torch.Tensor, old_logprobs: torch.Tensor | None,
                          ref_logprobs: torch.Tensor | None, advantages_hat: torch.Tensor,
                          eps_low: float, eps_high: float, beta: float):
    """The per-token loss [B, T] and its pieces, from fp32 log-probs.

    ``advantages_hat`` is [B] (already shaped). Returns (loss, ratio, kl, clipped_low,
    clipped_high); kl is zeros when beta == 0 or ref is None.
    """
    old = logp.detach() if old_logprobs is None else old_logprobs.float()
    ratio = torch.exp(logp - old)
    adv = advantages_hat.float().unsqueeze(-1)
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


def shaped_advantage(advantages: torch.Tensor, shaping: torch.Tensor | None) -> torch.Tensor:
    """A_hat = (1 + shaping) * A; shaping None means plain GRPO (A_hat = A)."""
    advantages = advantages.float()
    if shaping is None:
        return advantages
    return (1.0 + shaping.float()) * advantages


def masked_mean(values: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    m = mask.to(torch.float32)
    return (values.float() * m).sum() / m.sum().clamp_min(1.0)


def reference_gro_policy_loss(logits, targets, mask, advantages, *, shaping=None,
                              old_logprobs=None, ref_logprobs=None, eps_low=0.2, eps_high=0.2,
                              beta=0.0, temperature=1.0, loss_agg="token-mean", max_length=None,
                              return_entropy=False) -> PolicyLossOutput:
    """The whole loss in fp32 torch, differentiable w.r.t. ``logits``."""
    if return_entropy:
        logp, entropy = reference_token_logprobs(logits, targets, temperature=temperature,
                                                 return_entropy=True)
    else:
        logp, entropy = reference_token_logprobs(logits, targets, temperature=temperature), None
    return loss_from_logprobs(logp, mask, advantages, shaping=shaping, old_logprobs=old_logprobs,
                              ref_logprobs=ref_logprobs, eps_low=eps_low, eps_high=eps_high,
                              beta=beta, loss_agg=loss_agg, max_length=max_length, entropy=entropy)


def loss_from_logprobs(logp, mask, advantages, *, shaping=None, old_logprobs=None,
                       ref_logprobs=None, eps_low=0.2, eps_high=0.2, beta=0.0,
                       loss_agg="token-mean", max_length=None, entropy=None) -> PolicyLossOutput:
    """Everything after the log-probs: the per-token loss, aggregation and stats."""
    a_hat = shaped_advantage(advantages, shaping)
    loss_tok, ratio, kl, c_low, c_high = per_token_policy_loss(
        logp, old_logprobs, ref_logprobs, a_hat, eps_low, eps_high, beta)
    weights = aggregation_weights(mask, loss_agg, max_length)
    loss = (loss_tok * weights).sum()
    with torch.no_grad():
        stats = {
            "kl": masked_mean(kl, mask),
            "clip_frac_low": masked_mean(c_low, mask),
            "clip_frac_high": masked_mean(c_high, mask),
            "ratio_mean": masked_mean(ratio, mask),
        }
        if entropy is not None:
            stats["entropy"] = masked_mean(entropy, mask)
    return PolicyLossOutput(loss=loss, logprobs=logp.detach(), stats=stats)
