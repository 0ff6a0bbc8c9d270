"""fp32 torch reference of token log-probs (and entropy): ``reference_token_logprobs``.

The definition the token log-prob kernels (``triton.py`` here, the fused LM-head kernels
of ``ops/fused_linear``) are tested against and the CPU path of ``token_logprobs``. GRO's
policy loss (``ops/policy_loss/reference.py``) and the chunked LM-head path build on it.
It materialises [B, T, V] tensors in fp32, so it is for correctness, not speed.
"""
from __future__ import annotations

import torch


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


__all__ = ["reference_token_logprobs"]
