"""Shared-prefix decode attention in torch, factorised as the Triton kernels are: the CPU path.

The reference (reference.py) defines the op by expanding the prefix to G copies, which
costs G copies of the prefix KV per layer and step. Here, as in the Triton kernels, the
decode queries of all G samples and of all query heads that share a kv head form one
[G * rep, D] matrix attended to the group's single prefix with one matrix product; each
sample's own suffix is attended separately; the two parts are merged by their
log-sum-exps (``merge_attention_states``). fp32 throughout, so it equals the reference up
to rounding; it is what CPU tensors run outside the Triton interpreter.
"""
from __future__ import annotations

import math

import torch

from .reference import merge_attention_states


def _masked_attention(q, k, v, valid, scale):
    """q [..., M, D] over k, v [..., L, D] with valid [..., 1, L] -> (out fp32, lse fp32)."""
    scores = torch.matmul(q, k.transpose(-1, -2)) * scale
    scores = scores.masked_fill(~valid, float("-inf"))
    lse = torch.logsumexp(scores, dim=-1)
    probs = torch.exp(scores - lse.clamp_min(-1e30).unsqueeze(-1))  # no key: exp(-inf) = 0
    return torch.matmul(probs, v), lse


def cascade_shared_prefix_attention(q, prefix_k, prefix_v, prefix_lens, suffix_k, suffix_v,
                                    suffix_lens, *, scale=None, return_lse=False):
    """Arguments and result as ``reference_shared_prefix_attention``."""
    P, G, Hq, D = q.shape
    Hkv, Lp, Ls = prefix_k.shape[1], prefix_k.shape[2], suffix_k.shape[3]
    rep = Hq // Hkv
    scale = 1.0 / math.sqrt(D) if scale is None else scale
    q5 = q.float().view(P, G, Hkv, rep, D)
    # Prefix: [P, Hkv, G * rep, D] queries against the group's one prefix [P, Hkv, Lp, D].
    q_prefix = q5.permute(0, 2, 1, 3, 4).reshape(P, Hkv, G * rep, D)
    prefix_ok = (torch.arange(Lp, device=q.device) < prefix_lens[:, None])[:, None, None, :]
    out_p, lse_p = _masked_attention(q_prefix, prefix_k.float(), prefix_v.float(), prefix_ok, scale)
    out_p = out_p.view(P, Hkv, G, rep, D).permute(0, 2, 1, 3, 4)
    lse_p = lse_p.view(P, Hkv, G, rep).permute(0, 2, 1, 3)
    # Suffix: each sample's [rep, D] queries per kv head against its own [Ls, D] keys.
    suffix_ok = (torch.arange(Ls, device=q.device) < suffix_lens[..., None])[:, :, None, None, :]
    out_s, lse_s = _masked_attention(q5, suffix_k.float(), suffix_v.float(), suffix_ok, scale)
    out, lse = merge_attention_states(out_p, lse_p, out_s, lse_s)
    out = out.reshape(P, G, Hq, D).to(q.dtype)
    return (out, lse.reshape(P, G, Hq)) if return_lse else out
