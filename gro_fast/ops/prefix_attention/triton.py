"""Triton kernels for shared-prefix (cascade) decode attention.

Two passes, Hydragen-style:
1. ``_prefix_kernel``: per (group, kv head, prefix split), the decode queries of ALL G
   samples and all query heads sharing that kv head form one [G * rep, D] matrix, attended
   to a slice of the group's single prefix KV with ``tl.dot`` (a real matrix product
   instead of G matrix-vector products, and the prefix is read once per group, not G
   times). The prefix is split into slices (flash-decoding style) so that a few groups
   still fill the GPU. Each split writes its normalised partial output and log-sum-exp.
2. ``_suffix_merge_kernel``: per (sample, kv head), merges the prefix splits by their
   log-sum-exps, then continues the online softmax over the sample's own suffix KV,
   which merges the parts exactly as ``merge_attention_states`` does.

Positions beyond a length are masked; all accumulation is fp32. Masked scores use a
finite floor (-1e30) for the running max so that empty parts never produce NaN. Every
element offset is computed in int64 (index.to(int64) * stride): a [P, G, Hkv, Ls, D] suffix
buffer passes 2**31 elements at realistic batch sizes.
"""
from __future__ import annotations

import math

import torch
import triton
import triton.language as tl

from .._dispatch import interpreter_enabled, on_tensor_device
from .._triton_common import dot, dot_upcast

_NEG_FLOOR = tl.constexpr(-1.0e30)


@triton.jit
def _attend(q, base_k, base_v, begin, end, sk_l, sk_d, sv_l, sv_d, d, d_ok, scale, m_i, l_i, acc,
            BLOCK_N: tl.constexpr, UPCAST: tl.constexpr):
    """Online-softmax attention of q [rows, D] over keys [begin, end) of one KV sequence,
    continuing the running state (max m_i, sum l_i, unnormalised acc)."""
    for start in range(begin, end, BLOCK_N):
        cols = start + tl.arange(0, BLOCK_N)
        col_ok = cols < end
        cols = cols.to(tl.int64)
        k = tl.load(base_k + cols[None, :] * sk_l + d[:, None] * sk_d,
                    mask=col_ok[None, :] & d_ok[:, None], other=0.0)
        s = dot(q, k, UPCAST) * scale
        s = tl.where(col_ok[None, :], s, float("-inf"))
        m_new = tl.maximum(m_i, tl.max(s, 1))
        alpha = tl.exp(m_i - m_new)
        probs = tl.exp(s - m_new[:, None])
        l_i = l_i * alpha + tl.sum(probs, 1)
        v = tl.load(base_v + cols[:, None] * sv_l + d[None, :] * sv_d,
                    mask=col_ok[:, None] & d_ok[None, :], other=0.0)
        acc = acc * alpha[:, None] + dot(probs.to(v.dtype), v, UPCAST)
        m_i = m_new
    return m_i, l_i, acc


@triton.jit
def _prefix_kernel(Q, K, V, LENS, O, LSE,
                   sq_p, sq_g, sq_h, sq_d, sk_p, sk_h, sk_l, sk_d, sv_p, sv_h, sv_l, sv_d,
                   P, G, HQ, REP, D, scale, SPLIT_LEN, NUM_SPLITS,
                   BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_D: tl.constexpr,
                   UPCAST: tl.constexpr):
    p = tl.program_id(0)
    kvh = tl.program_id(1) // NUM_SPLITS
    split = tl.program_id(1) % NUM_SPLITS
    rows = tl.program_id(2) * BLOCK_M + tl.arange(0, BLOCK_M)
    row_ok = rows < G * REP
    g = rows // REP
    h = kvh * REP + rows % REP
    d = tl.arange(0, BLOCK_D)
    d_ok = d < D
    p64, g64, h64, d64 = p.to(tl.int64), g.to(tl.int64), h.to(tl.int64), d.to(tl.int64)
    q = tl.load(Q + p64 * sq_p + g64[:, None] * sq_g + h64[:, None] * sq_h + d64[None, :] * sq_d,
                mask=row_ok[:, None] & d_ok[None, :], other=0.0)
    begin = split * SPLIT_LEN
    length = tl.minimum(tl.load(LENS + p).to(tl.int32), begin + SPLIT_LEN)
    m_i = tl.full([BLOCK_M], _NEG_FLOOR, tl.float32)
    l_i = tl.zeros([BLOCK_M], tl.float32)
    acc = tl.zeros([BLOCK_M, BLOCK_D], tl.float32)
    kvh64 = kvh.to(tl.int64)
    m_i, l_i, acc = _attend(q, K + p64 * sk_p + kvh64 * sk_h, V + p64 * sv_p + kvh64 * sv_h, begin, length,
                            sk_l, sk_d, sv_l, sv_d, d64, d_ok, scale, m_i, l_i, acc, BLOCK_N, UPCAST)
    has_keys = l_i > 0
    denom = tl.where(has_keys, l_i, 1.0)
    out_rows = (((split * P + p) * G + g) * HQ + h).to(tl.int64)
    tl.store(O + out_rows[:, None] * D + d64[None, :], acc / denom[:, None],
             mask=row_ok[:, None] & d_ok[None, :])
    tl.store(LSE + out_rows, tl.where(has_keys, m_i + tl.log(denom), float("-inf")), mask=row_ok)


@triton.jit
def _suffix_merge_kernel(Q, K, V, LENS, O_PRE, LSE_PRE, O, LSE,
                         sq_p, sq_g, sq_h, sq_d, sk_p, sk_g, sk_h, sk_l, sk_d,
                         sv_p, sv_g, sv_h, sv_l, sv_d, so_p, so_g, so_h, so_d,
                         P, G, HQ, REP, D, scale, NUM_SPLITS,
                         BLOCK_R: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_D: tl.constexpr,
                         UPCAST: tl.constexpr):
    sample = tl.program_id(0)
    kvh = tl.program_id(1)
    r = tl.arange(0, BLOCK_R)
    row_ok = r < REP
    h = kvh * REP + r
    d = tl.arange(0, BLOCK_D)
    d_ok = d < D
    p, g, kvh = (sample // G).to(tl.int64), (sample % G).to(tl.int64), kvh.to(tl.int64)
    h, d = h.to(tl.int64), d.to(tl.int64)
    io_mask = row_ok[:, None] & d_ok[None, :]
    q = tl.load(Q + p * sq_p + g * sq_g + h[:, None] * sq_h + d[None, :] * sq_d, mask=io_mask, other=0.0)
    pre_rows = sample.to(tl.int64) * HQ + h
    m_i = tl.full([BLOCK_R], _NEG_FLOOR, tl.float32)
    l_i = tl.zeros([BLOCK_R], tl.float32)
    acc = tl.zeros([BLOCK_R, BLOCK_D], tl.float32)
    plane = (P * G * HQ).to(tl.int64)  # partial rows of one split
    for split in range(0, NUM_SPLITS):  # merge the prefix splits (lse -inf: no keys)
        split_rows = split * plane + pre_rows
        lse_s = tl.load(LSE_PRE + split_rows, mask=row_ok, other=float("-inf"))
        out_s = tl.load(O_PRE + split_rows[:, None] * D + d[None, :], mask=io_mask, other=0.0)
        m_new = tl.maximum(m_i, lse_s)
        alpha = tl.exp(m_i - m_new)
        weight = tl.exp(lse_s - m_new)
        acc = acc * alpha[:, None] + out_s * weight[:, None]
        l_i = l_i * alpha + weight
        m_i = m_new
    length = tl.load(LENS + sample).to(tl.int32)
    base_k = K + p * sk_p + g * sk_g + kvh * sk_h
    base_v = V + p * sv_p + g * sv_g + kvh * sv_h
    m_i, l_i, acc = _attend(q, base_k, base_v, 0, length, sk_l, sk_d, sv_l, sv_d, d, d_ok, scale,
                            m_i, l_i, acc, BLOCK_N, UPCAST)
    has_keys = l_i > 0
    denom = tl.where(has_keys, l_i, 1.0)
    out = acc / denom[:, None]
    tl.store(O + p * so_p + g * so_g + h[:, None] * so_h + d[None, :] * so_d,
             out.to(O.dtype.element_ty), mask=io_mask)
    tl.store(LSE + pre_rows, tl.where(has_keys, m_i + tl.log(denom), float("-inf")), mask=row_ok)


SM90_SHARED_BYTES = 232448
"""Shared memory one program may use on sm_90 (H100 / H200): 227 KB."""


def launch_config(head_dim: int, dtype: torch.dtype, rows: int, interpreter: bool) -> dict:
    """Tiles and launch options of both kernels for ``rows`` = G * rep decode queries per
    (group, kv head). fp32 tiles hold twice the bytes of bf16 ones: with Triton's default
    3 pipeline stages the prefix kernel needs 262 KB of shared memory at head_dim 256 (over
    sm_90's 227 KB), so fp32 gets 2 stages (196 KB; 160 KB at head_dim 128)."""
    block_d = max(16, triton.next_power_of_2(head_dim))
    block_n = 16 if interpreter else (64 if block_d <= 128 else 32)
    return dict(BLOCK_M=min(64, max(16, triton.next_power_of_2(rows))), BLOCK_N=block_n,
                BLOCK_D=block_d, num_warps=4, num_stages=2 if dtype == torch.float32 else 3)


def _prefix_splits(max_prefix: int, programs: int, block_n: int, device: torch.device,
                   interpreter: bool):
    """(keys per split, number of splits): enough programs to fill the device, each split
    at least 4 key blocks long. Depends on shapes only (CUDA-graph safe, no sync)."""
    min_len = 2 * block_n if interpreter else 4 * block_n
    if interpreter:  # as many splits as the length allows, so tests cover the merge
        wanted = programs * max_prefix
    elif device.type != "cuda":
        wanted = 1
    else:
        wanted = 2 * torch.cuda.get_device_properties(device).multi_processor_count
    splits = max(1, min(triton.cdiv(wanted, max(programs, 1)), triton.cdiv(max_prefix, min_len)))
    split_len = triton.cdiv(triton.cdiv(max(max_prefix, 1), splits), block_n) * block_n
    return split_len, triton.cdiv(max(max_prefix, 1), split_len)


@on_tensor_device
def triton_shared_prefix_attention(q, prefix_k, prefix_v, prefix_lens, suffix_k, suffix_v,
                                   suffix_lens, *, scale=None, return_lse=False):
    """Launcher; arguments as ``reference_shared_prefix_attention`` (already validated)."""
    P, G, Hq, D = q.shape
    Hkv = prefix_k.shape[1]
    rep = Hq // Hkv
    scale = 1.0 / math.sqrt(D) if scale is None else float(scale)
    interpreter = interpreter_enabled()
    cfg = launch_config(D, q.dtype, G * rep, interpreter)
    tiles = dict(BLOCK_N=cfg["BLOCK_N"], BLOCK_D=cfg["BLOCK_D"], UPCAST=dot_upcast(),
                 num_warps=cfg["num_warps"], num_stages=cfg["num_stages"])
    m_blocks = triton.cdiv(G * rep, cfg["BLOCK_M"])
    split_len, splits = _prefix_splits(prefix_k.shape[2], P * Hkv * m_blocks, cfg["BLOCK_N"],
                                       q.device, interpreter)
    o_pre = torch.empty((splits, P, G, Hq, D), device=q.device, dtype=torch.float32)
    lse_pre = torch.empty((splits, P, G, Hq), device=q.device, dtype=torch.float32)
    _prefix_kernel[(P, Hkv * splits, m_blocks)](
        q, prefix_k, prefix_v, prefix_lens.contiguous(), o_pre, lse_pre,
        *q.stride(), *prefix_k.stride(), *prefix_v.stride(),
        P, G, Hq, rep, D, scale, split_len, splits, BLOCK_M=cfg["BLOCK_M"], **tiles)
    out = torch.empty_like(q)
    lse = torch.empty((P, G, Hq), device=q.device, dtype=torch.float32)
    block_r = max(16, triton.next_power_of_2(rep))
    _suffix_merge_kernel[(P * G, Hkv)](
        q, suffix_k, suffix_v, suffix_lens.contiguous(), o_pre, lse_pre, out, lse,
        *q.stride(), *suffix_k.stride(), *suffix_v.stride(), *out.stride(),
        P, G, Hq, rep, D, scale, splits, BLOCK_R=block_r, **tiles)
    return (out, lse) if return_lse else out
