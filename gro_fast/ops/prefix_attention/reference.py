"""fp32 torch reference of shared-prefix (cascade) decode attention.

During GRO's revision decoding, the G samples of a group share one prefix (image, query,
initial response, revision turn) and each has its own suffix (the tokens it sampled so
far, the current one included). The prefix KV is stored once per group, [P, Hkv, Lp, D];
the suffix KV per sample, [P, G, Hkv, Ls, D]. Attention of each sample's decode query
over "prefix + own suffix" equals ordinary attention over the expanded cache; the fast
path computes the two parts separately and merges them with their log-sum-exp.

This module is the definition (the expanded-cache computation) and the merge rule; it
is what the Triton kernel is tested against and the CPU path.
"""
from __future__ import annotations

import math

import torch


def _length_mask(lengths: torch.Tensor, size: int) -> torch.Tensor:
    return torch.arange(size, device=lengths.device) < lengths.unsqueeze(-1)


def reference_shared_prefix_attention(q, prefix_k, prefix_v, prefix_lens, suffix_k, suffix_v,
                                      suffix_lens, *, scale=None, return_lse=False):
    """Attention of q [P, G, Hq, D] over the group's prefix and each sample's suffix.

    prefix_k/v: [P, Hkv, Lp, D], valid positions ``< prefix_lens[p]``;
    suffix_k/v: [P, G, Hkv, Ls, D], valid positions ``< suffix_lens[p, g]``.
    Hq must be a multiple of Hkv (grouped-query attention). Returns [P, G, Hq, D] in
    q.dtype (and the fp32 log-sum-exp [P, G, Hq] of the scaled scores when asked).
    A query with no valid key at all gets zeros and lse = -inf.
    """
    P, G, Hq, D = q.shape
    Hkv, Lp = prefix_k.shape[1], prefix_k.shape[2]
    rep = Hq // Hkv
    scale = 1.0 / math.sqrt(D) if scale is None else scale
    expand = lambda t: t.float().unsqueeze(1).expand(P, G, Hkv, Lp, D)  # noqa: E731
    keys = torch.cat([expand(prefix_k), suffix_k.float()], dim=3)      # [P, G, Hkv, L, D]
    values = torch.cat([expand(prefix_v), suffix_v.float()], dim=3)
    valid = torch.cat([
        _length_mask(prefix_lens, Lp).unsqueeze(1).expand(P, G, Lp),
        _length_mask(suffix_lens, suffix_k.shape[3]),
    ], dim=-1)                                                           # [P, G, L]
    keys = keys.repeat_interleave(rep, dim=2)                            # [P, G, Hq, L, D]
    values = values.repeat_interleave(rep, dim=2)
    scores = torch.einsum("pghd,pghld->pghl", q.float(), keys) * scale
    scores = scores.masked_fill(~valid.unsqueeze(2), float("-inf"))
    lse = torch.logsumexp(scores, dim=-1)
    probs = torch.where(valid.unsqueeze(2), torch.exp(scores - lse.unsqueeze(-1).clamp_min(-1e30)),
                        torch.zeros_like(scores))
    out = torch.einsum("pghl,pghld->pghd", probs, values).to(q.dtype)
    return (out, lse) if return_lse else out


def merge_attention_states(out_a, lse_a, out_b, lse_b):
    """Merge two partial attentions over disjoint key sets by their log-sum-exps.

    out_*: [..., D] (normalised within their own keys), lse_*: [...]; a part with no keys
    has lse = -inf and contributes nothing. Returns (out fp32, lse fp32).
    """
    lse_a, lse_b = lse_a.float(), lse_b.float()
    lse = torch.logaddexp(lse_a, lse_b)
    finite = torch.isfinite(lse)
    safe = torch.where(finite, lse, torch.zeros_like(lse))
    w_a = torch.where(finite, torch.exp(lse_a - safe), torch.zeros_like(lse))
    w_b = torch.where(finite, torch.exp(lse_b - safe), torch.zeros_like(lse))
    out = w_a.unsqueeze(-1) * out_a.float() + w_b.unsqueeze(-1) * out_b.float()
    return out, lse
