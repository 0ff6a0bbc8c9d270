"""Shared-prefix decode attention vs attention over a G-times expanded cache.

The peer is what a framework without prefix sharing does at each decode step: the
prefix KV copied per sample (as ``generate(num_return_sequences=G)`` stores it) and one
SDPA call over [prefix ++ suffix]. Rows: the peer, the reference, and on CPU the factorised
torch path (``cascade_cpu``), on a GPU the Triton kernels. Bytes that must move for the shared kernel: the
prefix KV once per group plus every sample's suffix KV; achieved bandwidth is reported
against the device's peak when known.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from bench.registry import PEAK_TBPS, case, device_peak, time_ms
from gro_fast.ops._dispatch import force_backend, triton_available
from gro_fast.ops.prefix_attention import shared_prefix_attention


def _inputs(P, G, Hq, Hkv, D, Lp, Ls, dtype, device):
    g = torch.Generator(device="cpu").manual_seed(0)
    rnd = lambda *s: torch.randn(*s, generator=g).to(device, dtype)  # noqa: E731
    return (rnd(P, G, Hq, D), rnd(P, Hkv, Lp, D), rnd(P, Hkv, Lp, D),
            torch.full((P,), Lp, device=device), rnd(P, G, Hkv, Ls, D), rnd(P, G, Hkv, Ls, D),
            torch.full((P, G), Ls, device=device))


def _expanded_sdpa(q, pk, pv, sk, sv):
    P, G, Hq, D = q.shape
    rep = Hq // pk.shape[1]
    k = torch.cat([pk.unsqueeze(1).expand(-1, G, -1, -1, -1), sk], dim=3).flatten(0, 1)
    v = torch.cat([pv.unsqueeze(1).expand(-1, G, -1, -1, -1), sv], dim=3).flatten(0, 1)
    qq = q.flatten(0, 1).unsqueeze(2)                                    # [PG, Hq, 1, D]
    return F.scaled_dot_product_attention(qq, k.repeat_interleave(rep, 1), v.repeat_interleave(rep, 1))


@case("prefix_attention_decode", "rollout")
def prefix_attention_decode(ctx):
    if ctx.quick:
        shapes, dtype = [dict(P=2, G=4, Hq=4, Hkv=2, D=32, Lp=128, Ls=32)], torch.float32
    else:  # Qwen2.5-VL-3B heads: 16 query heads, 2 kv heads, head dim 128
        shapes = [dict(P=8, G=8, Hq=16, Hkv=2, D=128, Lp=Lp, Ls=256) for Lp in (1200, 4000)]
        dtype = torch.bfloat16
    rows = []
    for shape in shapes:
        args = _inputs(**shape, dtype=dtype, device=ctx.device)
        q, pk, pv, _, sk, sv, _ = args
        ms_peer = time_ms(lambda: _expanded_sdpa(q, pk, pv, sk, sv), ctx.device)
        with force_backend("reference"):
            ms_ref = time_ms(lambda: shared_prefix_attention(*args), ctx.device)
        label = "x".join(f"{k}{v}" for k, v in shape.items())
        rows.append(dict(shape=label, impl="expanded_cache_sdpa", ms=ms_peer))
        rows.append(dict(shape=label, impl="reference", ms=ms_ref))
        if not ctx.is_cuda:  # the CPU path: the factorised torch computation
            from gro_fast.ops.prefix_attention.cascade import cascade_shared_prefix_attention
            ms = time_ms(lambda: cascade_shared_prefix_attention(*args), ctx.device)
            rows.append(dict(shape=label, impl="cascade_cpu", ms=ms, speedup_vs_expanded=ms_peer / ms))
        if ctx.is_cuda and triton_available():
            with force_backend("triton"):
                ms = time_ms(lambda: shared_prefix_attention(*args), ctx.device, repeats=20)
            moved = (pk.numel() * 2 + sk.numel() * 2 + q.numel() * 2) * pk.element_size()
            tbps = moved / ms / 1e9
            peak = device_peak(ctx.device, PEAK_TBPS)
            rows.append(dict(shape=label, impl="triton", ms=ms, speedup_vs_expanded=ms_peer / ms,
                             tbps=tbps, frac_of_peak=(tbps / peak) if peak else None))
    return rows
