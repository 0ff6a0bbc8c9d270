"""Triton kernels for the fused LM head + token log-probs: the logits are never stored.

Forward (``_forward_kernel``): each program takes a tile of BLOCK_N tokens and a span of
the vocabulary, computes logits tiles [BLOCK_N, BLOCK_V] with ``tl.dot`` over H in fp32,
and keeps an online log-sum-exp (running max m, sum of exp s, and for the entropy the sum
of exp * logit e) plus the target logit. The vocabulary is split across programs (into
more spans when there are few token tiles, so the GPU stays full); ``_combine_kernel``
merges the per-span partials into logp, lse and entropy. Only per-token scalars reach
global memory.

Backward recomputes each logits tile and forms, in registers,
  dlogits = g * (onehot(target) - softmax) / temperature      (g = dLoss/dlogp per token)
then accumulates grad_hidden += dlogits @ W and grad_weight += dlogits^T @ hidden in fp32:
- default: one kernel over (token tile, vocab tile) pairs adding both with atomics
  (forward + backward = 8 N H V flops);
- ``deterministic=True``: one kernel over (token tile, vocabulary span) pairs, each owning
  its rows of one span's partial grad_hidden (the spans are then summed in a fixed order),
  and one over vocab tiles owning rows of grad_weight (no atomics, one extra logits
  recompute).
grad_weight is accumulated in fp32 one vocabulary slice at a time, so the extra memory is
O(N + N*H + slice*H). grad_bias is the column sum of dlogits.

The kernels multiply hidden and weight in the dtype they receive (fp32 accumulation);
which dtype that is, and the dtypes of the returned gradients, is ``__init__.py``'s rule.

This module leaves argument checking and the GRO loss (composed from the log-probs by
``policy_loss.reference.loss_from_logprobs``) to ``__init__.py``.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import triton
import triton.language as tl

from .._dispatch import on_tensor_device
from .._triton_common import dot_upcast, mma


@dataclass(frozen=True)
class KernelConfig:
    """Tile sizes and launch shape of the fused kernels."""

    block_n: int = 128
    """Tokens per tile."""
    block_v: int = 128
    """Vocabulary entries per tile."""
    block_k: int = 64
    """Hidden features per ``tl.dot`` step in the forward..."""
    block_k_bwd: int = 32
    """...and in the backward, which holds dlogits and a gradient tile besides (64 spills
    registers on sm_90 with 128 x 128 tiles and 8 warps)."""
    num_warps: int = 8
    num_stages: int = 3
    target_programs: int = 264
    """The forward splits the vocabulary until about this many programs run..."""
    min_splits: int = 16
    """...and into at least this many spans, so that programs running together share
    both hidden and weight tiles in L2 (see ``group_n``)."""
    group_n: int = 8
    """Programs are ordered in groups of this many token tiles x all vocab tiles/spans:
    the ~132 resident programs then read group_n hidden tiles and ~132/group_n weight
    tiles, and in the backward each gradient row sees few concurrent atomics."""
    vocab_slice: int = 16384
    """Rows of grad_weight accumulated in fp32 per backward launch (memory bound)."""
    span_bytes: int = 1 << 28
    """Deterministic grad_hidden: the fp32 partial sums of all vocabulary spans take at
    most this much memory (so at N = 16k, H = 3,584 a single span writes grad_hidden)."""


def default_config(device: torch.device, hidden_size: int) -> KernelConfig:
    """H100-friendly tiles on CUDA; small tiles for the interpreter (CPU tensors)."""
    if device.type != "cuda":
        return KernelConfig(block_n=16, block_v=32, block_k=16, block_k_bwd=16, num_warps=1,
                            num_stages=1, target_programs=4, min_splits=1, group_n=2,
                            vocab_slice=64)
    sms = torch.cuda.get_device_properties(device).multi_processor_count
    # About 256 MiB of fp32 grad_weight rows per launch, a multiple of block_v.
    rows = max(128, ((1 << 26) // max(1, hidden_size)) // 128 * 128)
    return KernelConfig(target_programs=2 * sms, vocab_slice=rows)


def grad_hidden_spans(n_tokens: int, vocab: int, hidden_size: int, cfg: KernelConfig) -> int:
    """Vocabulary spans of the deterministic grad_hidden kernel: enough (token tile, span)
    programs to fill the device (a token tile alone gives 16 programs at N = 2,048), within
    ``cfg.span_bytes`` of fp32 partial sums and at most one span per vocab tile."""
    n_tiles = triton.cdiv(n_tokens, cfg.block_n)
    by_memory = max(1, cfg.span_bytes // max(1, 4 * n_tokens * hidden_size))
    return max(1, min(triton.cdiv(cfg.target_programs, n_tiles), triton.cdiv(vocab, cfg.block_v), by_memory))


@triton.jit
def _grouped_tile(pid, n_tiles, m_tiles, GROUP_N: tl.constexpr):
    """Program id -> (token tile, vocab tile): groups of GROUP_N token tiles x m_tiles."""
    per_group = GROUP_N * m_tiles
    first_n = (pid // per_group) * GROUP_N
    group_size = tl.minimum(n_tiles - first_n, GROUP_N)
    return first_n + (pid % per_group) % group_size, (pid % per_group) // group_size


@triton.jit
def _row_offsets(row0, stride, BLOCK_R: tl.constexpr):
    """64-bit element offsets [BLOCK_R, 1] of rows row0.. of a row-major matrix; loads add
    the column block (k0 + arange)[None, :] (this form keeps the GEMM tiles in registers
    without spills on sm_90, unlike 2-D offset or pointer tensors carried across loops)."""
    return ((row0 + tl.arange(0, BLOCK_R)).to(tl.int64) * stride)[:, None]


@triton.jit
def _logits_tile(h_ptr, w_ptr, b_ptr, n0, v0, N, V, H, stride_h, stride_w, inv_t,
                 HAS_BIAS: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_V: tl.constexpr,
                 BLOCK_K: tl.constexpr, PRECISION: tl.constexpr, UPCAST: tl.constexpr):
    """fp32 (hidden[n0:n0+BN] @ weight[v0:v0+BV].T + bias) / T; rows/cols past N, V are 0."""
    rk = tl.arange(0, BLOCK_K)
    row_ok = (tl.arange(0, BLOCK_N) < N - n0)[:, None]
    col_ok = (tl.arange(0, BLOCK_V) < V - v0)[:, None]
    h_rows = h_ptr + _row_offsets(n0, stride_h, BLOCK_N)
    w_rows = w_ptr + _row_offsets(v0, stride_w, BLOCK_V)
    acc = tl.zeros((BLOCK_N, BLOCK_V), dtype=tl.float32)
    for k0 in range(0, H, BLOCK_K):
        k_ok = (k0 + rk < H)[None, :]
        h = tl.load(h_rows + (k0 + rk)[None, :], mask=row_ok & k_ok, other=0.0)
        w = tl.load(w_rows + (k0 + rk)[None, :], mask=col_ok & k_ok, other=0.0)
        acc = mma(h, tl.trans(w), acc, PRECISION, UPCAST)
    if HAS_BIAS:
        rv = tl.arange(0, BLOCK_V)
        acc += tl.load(b_ptr + v0 + rv, mask=rv < V - v0, other=0.0).to(tl.float32)[None, :]
    return acc * inv_t


@triton.jit
def _forward_kernel(h_ptr, w_ptr, b_ptr, tgt_ptr, part_ptr, N, V, H, stride_h, stride_w,
                    inv_t, v_per_split, n_splits,
                    HAS_BIAS: tl.constexpr, WITH_ENTROPY: tl.constexpr,
                    BLOCK_N: tl.constexpr, BLOCK_V: tl.constexpr, BLOCK_K: tl.constexpr,
                    PRECISION: tl.constexpr, UPCAST: tl.constexpr, GROUP_N: tl.constexpr):
    """Partials (max, sumexp, sum exp*logit, target logit) of one token tile x vocab span."""
    pid_n, split = _grouped_tile(tl.program_id(0), (N + BLOCK_N - 1) // BLOCK_N, n_splits,
                                 GROUP_N)
    n0 = pid_n * BLOCK_N
    rn = tl.arange(0, BLOCK_N)
    rv = tl.arange(0, BLOCK_V)
    row_ok = rn < N - n0
    target = tl.load(tgt_ptr + n0 + rn, mask=row_ok, other=-1)
    m = tl.full((BLOCK_N,), float("-inf"), dtype=tl.float32)
    s = tl.zeros((BLOCK_N,), dtype=tl.float32)
    e = tl.zeros((BLOCK_N,), dtype=tl.float32)
    t = tl.zeros((BLOCK_N,), dtype=tl.float32)
    v_start = split * v_per_split
    v_end = tl.minimum(v_start + v_per_split, V)
    for v0 in range(v_start, v_end, BLOCK_V):
        col_ok = (rv < V - v0)[None, :]
        z = _logits_tile(h_ptr, w_ptr, b_ptr, n0, v0, N, V, H, stride_h, stride_w, inv_t,
                         HAS_BIAS, BLOCK_N, BLOCK_V, BLOCK_K, PRECISION, UPCAST)
        z = tl.where(col_ok, z, float("-inf"))
        m_new = tl.maximum(m, tl.max(z, axis=1))
        scale = tl.exp(m - m_new)
        p = tl.exp(z - m_new[:, None])
        s = s * scale + tl.sum(p, axis=1)
        if WITH_ENTROPY:
            e = e * scale + tl.sum(p * tl.where(col_ok, z, 0.0), axis=1)
        t += tl.sum(tl.where(rv[None, :] == (target - v0)[:, None], z, 0.0), axis=1)
        m = m_new
    out = part_ptr + split * N + n0 + rn
    stride_kind = n_splits * N
    tl.store(out, m, mask=row_ok)
    tl.store(out + stride_kind, s, mask=row_ok)
    tl.store(out + 2 * stride_kind, e, mask=row_ok)
    tl.store(out + 3 * stride_kind, t, mask=row_ok)


@triton.jit
def _combine_kernel(part_ptr, logp_ptr, lse_ptr, ent_ptr, N, n_splits,
                    WITH_ENTROPY: tl.constexpr, BLOCK_S: tl.constexpr, BLOCK: tl.constexpr):
    """Merge the vocabulary splits: logp = target - lse, entropy = lse - E/S."""
    offs = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)
    ok = offs < N
    sp = tl.arange(0, BLOCK_S)
    msk = (sp[:, None] < n_splits) & ok[None, :]
    idx = sp[:, None] * N + offs[None, :]
    stride_kind = n_splits * N
    m = tl.load(part_ptr + idx, mask=msk, other=float("-inf"))
    s = tl.load(part_ptr + stride_kind + idx, mask=msk, other=0.0)
    t = tl.load(part_ptr + 3 * stride_kind + idx, mask=msk, other=0.0)
    m_all = tl.where(ok, tl.max(m, axis=0), 0.0)  # rows past N stay finite
    w = tl.exp(tl.where(msk, m - m_all[None, :], float("-inf")))
    s_all = tl.where(ok, tl.sum(s * w, axis=0), 1.0)
    lse = m_all + tl.log(s_all)
    tl.store(logp_ptr + offs, tl.sum(t, axis=0) - lse, mask=ok)
    tl.store(lse_ptr + offs, lse, mask=ok)
    if WITH_ENTROPY:
        e = tl.load(part_ptr + 2 * stride_kind + idx, mask=msk, other=0.0)
        tl.store(ent_ptr + offs, lse - tl.sum(e * w, axis=0) / s_all, mask=ok)


@triton.jit
def _dlogits_tile(z, n0, v0, tgt_ptr, lse_ptr, g_ptr, N, v_limit, inv_t,
                  BLOCK_N: tl.constexpr, BLOCK_V: tl.constexpr):
    """g * (onehot - softmax) / T for a tile of scaled logits z; exactly 0 where g == 0
    and outside rows < N, columns < v_limit."""
    rn = tl.arange(0, BLOCK_N)
    rv = tl.arange(0, BLOCK_V)
    row_ok = rn < N - n0
    lse = tl.load(lse_ptr + n0 + rn, mask=row_ok, other=0.0)
    g = tl.load(g_ptr + n0 + rn, mask=row_ok, other=0.0)
    target = tl.load(tgt_ptr + n0 + rn, mask=row_ok, other=-1) - v0
    p = tl.exp(z - lse[:, None])
    onehot = tl.where(rv[None, :] == target[:, None], 1.0, 0.0)
    dz = (onehot - p) * (g * inv_t)[:, None]
    keep = (row_ok & (g != 0.0))[:, None] & (rv < v_limit - v0)[None, :]
    return tl.where(keep, dz, 0.0)


@triton.jit
def _accumulate(out_rows, out_ok, a, src_rows, src_ok, H, ATOMIC: tl.constexpr,
                BLOCK_R: tl.constexpr, BLOCK_K: tl.constexpr, PRECISION: tl.constexpr,
                UPCAST: tl.constexpr):
    """out[rows, :H] += a @ src[rows', :H] in fp32, one BLOCK_K column block at a time;
    with atomics (tiles of other programs add to the same rows) or read-modify-write."""
    rk = tl.arange(0, BLOCK_K)
    for k0 in range(0, H, BLOCK_K):
        k_ok = (k0 + rk < H)[None, :]
        src = tl.load(src_rows + (k0 + rk)[None, :], mask=src_ok & k_ok, other=0.0)
        out = out_rows + (k0 + rk)[None, :]
        if ATOMIC:
            part = mma(a, src, tl.zeros((BLOCK_R, BLOCK_K), dtype=tl.float32),
                        PRECISION, UPCAST)
            tl.atomic_add(out, part, mask=out_ok & k_ok, sem="relaxed")
        else:
            acc = tl.load(out, mask=out_ok & k_ok, other=0.0)
            tl.store(out, mma(a, src, acc, PRECISION, UPCAST), mask=out_ok & k_ok)


@triton.jit
def _backward_atomic_kernel(h_ptr, w_ptr, b_ptr, tgt_ptr, lse_ptr, g_ptr, gh_ptr, gw_ptr, gb_ptr,
                            N, V, H, stride_h, stride_w, inv_t, v_offset, v_limit,
                            HAS_BIAS: tl.constexpr, COMPUTE_GH: tl.constexpr,
                            COMPUTE_GW: tl.constexpr, COMPUTE_GB: tl.constexpr,
                            BLOCK_N: tl.constexpr, BLOCK_V: tl.constexpr,
                            BLOCK_K: tl.constexpr, PRECISION: tl.constexpr,
                            UPCAST: tl.constexpr, GROUP_N: tl.constexpr):
    """One (token tile, vocab tile): recompute, dlogits, atomically add both gradients.

    gw_ptr points at the fp32 rows of grad_weight for vocab entries v_offset..v_limit.
    """
    pid_n, pid_v = _grouped_tile(tl.program_id(0), (N + BLOCK_N - 1) // BLOCK_N,
                                 (v_limit - v_offset + BLOCK_V - 1) // BLOCK_V, GROUP_N)
    n0 = pid_n * BLOCK_N
    v0 = v_offset + pid_v * BLOCK_V
    z = _logits_tile(h_ptr, w_ptr, b_ptr, n0, v0, N, V, H, stride_h, stride_w, inv_t,
                     HAS_BIAS, BLOCK_N, BLOCK_V, BLOCK_K, PRECISION, UPCAST)
    dz = _dlogits_tile(z, n0, v0, tgt_ptr, lse_ptr, g_ptr, N, v_limit, inv_t, BLOCK_N, BLOCK_V)
    dz_in = dz.to(h_ptr.dtype.element_ty)
    row_ok = (tl.arange(0, BLOCK_N) < N - n0)[:, None]
    col_ok = (tl.arange(0, BLOCK_V) < v_limit - v0)[:, None]
    if COMPUTE_GH:  # grad_hidden[n0 tile] += dz @ W[v0 tile]
        _accumulate(gh_ptr + _row_offsets(n0, H, BLOCK_N), row_ok, dz_in,
                    w_ptr + _row_offsets(v0, stride_w, BLOCK_V), col_ok, H, True,
                    BLOCK_N, BLOCK_K, PRECISION, UPCAST)
    if COMPUTE_GW:  # grad_weight[v0 tile] += dz^T @ hidden[n0 tile]
        _accumulate(gw_ptr + _row_offsets(v0 - v_offset, H, BLOCK_V), col_ok,
                    tl.trans(dz_in), h_ptr + _row_offsets(n0, stride_h, BLOCK_N), row_ok, H,
                    True, BLOCK_V, BLOCK_K, PRECISION, UPCAST)
    if COMPUTE_GB:
        rv = tl.arange(0, BLOCK_V)
        tl.atomic_add(gb_ptr + v0 + rv, tl.sum(dz, axis=0), mask=rv < v_limit - v0,
                      sem="relaxed")


@triton.jit
def _grad_hidden_kernel(h_ptr, w_ptr, b_ptr, tgt_ptr, lse_ptr, g_ptr, gh_ptr,
                        N, V, H, stride_h, stride_w, inv_t, v_per_span,
                        HAS_BIAS: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_V: tl.constexpr,
                        BLOCK_K: tl.constexpr, PRECISION: tl.constexpr,
                        UPCAST: tl.constexpr):
    """Deterministic grad_hidden: the program owns a token tile of one vocabulary span's
    partial sum (gh_ptr [spans, N, H] fp32) and walks that span."""
    n0 = tl.program_id(0) * BLOCK_N
    span = tl.program_id(1)
    row_ok = (tl.arange(0, BLOCK_N) < N - n0)[:, None]
    out_rows = gh_ptr + span.to(tl.int64) * N * H + _row_offsets(n0, H, BLOCK_N)
    v_begin = span * v_per_span
    for v0 in range(v_begin, tl.minimum(v_begin + v_per_span, V), BLOCK_V):
        z = _logits_tile(h_ptr, w_ptr, b_ptr, n0, v0, N, V, H, stride_h, stride_w, inv_t,
                         HAS_BIAS, BLOCK_N, BLOCK_V, BLOCK_K, PRECISION, UPCAST)
        dz = _dlogits_tile(z, n0, v0, tgt_ptr, lse_ptr, g_ptr, N, V, inv_t, BLOCK_N, BLOCK_V)
        col_ok = (tl.arange(0, BLOCK_V) < V - v0)[:, None]
        _accumulate(out_rows, row_ok, dz.to(h_ptr.dtype.element_ty),
                    w_ptr + _row_offsets(v0, stride_w, BLOCK_V), col_ok, H, False,
                    BLOCK_N, BLOCK_K, PRECISION, UPCAST)


@triton.jit
def _grad_weight_kernel(h_ptr, w_ptr, b_ptr, tgt_ptr, lse_ptr, g_ptr, gw_ptr, gb_ptr,
                        N, V, H, stride_h, stride_w, inv_t, v_offset, v_limit,
                        HAS_BIAS: tl.constexpr, COMPUTE_GW: tl.constexpr,
                        COMPUTE_GB: tl.constexpr, BLOCK_N: tl.constexpr,
                        BLOCK_V: tl.constexpr, BLOCK_K: tl.constexpr, PRECISION: tl.constexpr,
                        UPCAST: tl.constexpr):
    """Deterministic grad_weight / grad_bias: the program owns a vocab tile, walks tokens."""
    v0 = v_offset + tl.program_id(0) * BLOCK_V
    rv = tl.arange(0, BLOCK_V)
    col_ok = (rv < v_limit - v0)[:, None]
    out_rows = gw_ptr + _row_offsets(v0 - v_offset, H, BLOCK_V)
    grad_b = tl.zeros((BLOCK_V,), dtype=tl.float32)
    for n0 in range(0, N, BLOCK_N):
        z = _logits_tile(h_ptr, w_ptr, b_ptr, n0, v0, N, V, H, stride_h, stride_w, inv_t,
                         HAS_BIAS, BLOCK_N, BLOCK_V, BLOCK_K, PRECISION, UPCAST)
        dz = _dlogits_tile(z, n0, v0, tgt_ptr, lse_ptr, g_ptr, N, v_limit, inv_t,
                           BLOCK_N, BLOCK_V)
        if COMPUTE_GB:
            grad_b += tl.sum(dz, axis=0)
        if COMPUTE_GW:
            row_ok = (tl.arange(0, BLOCK_N) < N - n0)[:, None]
            _accumulate(out_rows, col_ok, tl.trans(dz.to(h_ptr.dtype.element_ty)),
                        h_ptr + _row_offsets(n0, stride_h, BLOCK_N), row_ok, H, False,
                        BLOCK_V, BLOCK_K, PRECISION, UPCAST)
    if COMPUTE_GB:
        tl.store(gb_ptr + v0 + rv, grad_b, mask=rv < v_limit - v0)


def _common(hidden, weight, bias, targets, temperature, cfg, backward=False):
    """Positional head shared by every kernel, and the constexpr tile arguments."""
    n_tokens, hidden_size = hidden.shape
    head = (hidden, weight, hidden if bias is None else bias, targets)
    sizes = (n_tokens, weight.shape[0], hidden_size, hidden.stride(0), weight.stride(0),
             1.0 / temperature)
    tiles = dict(HAS_BIAS=bias is not None, BLOCK_N=cfg.block_n, BLOCK_V=cfg.block_v,
                 BLOCK_K=cfg.block_k_bwd if backward else cfg.block_k,
                 # fp32 operands (the interpreter, see __init__.py): exact fp32 products.
                 PRECISION="ieee" if hidden.dtype == torch.float32 else "tf32", UPCAST=dot_upcast(),
                 num_warps=cfg.num_warps, num_stages=cfg.num_stages)
    return head, sizes, tiles


@on_tensor_device
def forward_logprobs(hidden, weight, bias, targets, temperature, with_entropy, cfg):
    """(logp [N], lse [N], entropy [N] or empty), fp32, from contiguous [N, H] / [V, H]."""
    n_tokens, vocab = hidden.shape[0], weight.shape[0]
    head, sizes, tiles = _common(hidden, weight, bias, targets, temperature, cfg)
    n_tiles = triton.cdiv(n_tokens, cfg.block_n)
    vocab_tiles = triton.cdiv(vocab, cfg.block_v)
    splits = min(vocab_tiles, max(cfg.min_splits, triton.cdiv(cfg.target_programs, n_tiles)))
    v_per_split = triton.cdiv(vocab_tiles, splits) * cfg.block_v
    splits = triton.cdiv(vocab, v_per_split)
    part = torch.empty((4, splits, n_tokens), dtype=torch.float32, device=hidden.device)
    _forward_kernel[(n_tiles * splits,)](*head, part, *sizes, v_per_split, splits,
                                         WITH_ENTROPY=with_entropy, GROUP_N=cfg.group_n,
                                         **tiles)
    logp = torch.empty(n_tokens, dtype=torch.float32, device=hidden.device)
    lse = torch.empty_like(logp)
    entropy = torch.empty(n_tokens if with_entropy else 0, dtype=torch.float32,
                          device=hidden.device)
    block_s = triton.next_power_of_2(splits)
    block = max(16, min(1024, 4096 // block_s))
    _combine_kernel[(triton.cdiv(n_tokens, block),)](
        part, logp, lse, entropy if with_entropy else lse, n_tokens, splits,
        WITH_ENTROPY=with_entropy, BLOCK_S=block_s, BLOCK=block)
    return logp, lse, entropy


@on_tensor_device
def backward_grads(hidden, weight, bias, targets, lse, grad_logp, temperature, needs,
                   deterministic, cfg, grad_dtypes=None):
    """(grad_hidden, grad_weight, grad_bias), None where not needed, in ``grad_dtypes``
    (default: the inputs' dtypes; fp32 master weights multiplied in bf16 get fp32 ones,
    accumulated in fp32 and never rounded to bf16).

    ``needs``: ctx.needs_input_grad of (hidden, weight, bias). Unused pointer arguments
    of a kernel get ``lse`` as a placeholder (never read or written).
    """
    need_h, need_w, need_b = needs[0], needs[1], needs[2] and bias is not None
    dtype_h, dtype_w, dtype_b = grad_dtypes or (hidden.dtype, weight.dtype,
                                                None if bias is None else bias.dtype)
    n_tokens, hidden_size = hidden.shape
    vocab = weight.shape[0]
    head, sizes, tiles = _common(hidden, weight, bias, targets, temperature, cfg, backward=True)
    head = head + (lse, grad_logp)
    fp32 = dict(dtype=torch.float32, device=hidden.device)
    grad_h = torch.zeros((n_tokens, hidden_size), **fp32) if need_h else lse
    grad_b = torch.zeros(vocab, **fp32) if need_b else lse
    if deterministic and need_h:
        grad_h = _deterministic_grad_hidden(head, sizes, tiles, cfg)
    grad_w, work, slice_rows = _grad_weight_storage(weight, dtype_w, need_w, cfg)
    if need_w or need_b or (need_h and not deterministic):
        for v_offset in range(0, vocab, slice_rows):
            rows = min(slice_rows, vocab - v_offset)
            acc_w = (work[:rows].zero_() if work is not None
                     else grad_w[v_offset:] if grad_w is not None else lse)
            _backward_slice(head, sizes, tiles, grad_h, acc_w, grad_b, v_offset, rows,
                            (need_h and not deterministic, need_w, need_b), deterministic, cfg)
            if work is not None:
                grad_w[v_offset:v_offset + rows].copy_(work[:rows])
    return (grad_h.to(dtype_h) if need_h else None,
            grad_w.to(dtype_w) if need_w else None,
            grad_b.to(dtype_b) if need_b else None)


@on_tensor_device
def _deterministic_grad_hidden(head, sizes, tiles, cfg):
    """fp32 grad_hidden [N, H] without atomics: each (token tile, vocabulary span) program
    writes its span's partial sum, then the spans are added in span order."""
    n_tokens, vocab, hidden_size = sizes[:3]
    spans = grad_hidden_spans(n_tokens, vocab, hidden_size, cfg)
    v_per_span = triton.cdiv(triton.cdiv(vocab, cfg.block_v), spans) * cfg.block_v
    spans = triton.cdiv(vocab, v_per_span)
    partial = torch.zeros((spans, n_tokens, hidden_size), dtype=torch.float32,
                          device=head[0].device)
    _grad_hidden_kernel[(triton.cdiv(n_tokens, cfg.block_n), spans)](
        *head, partial, *sizes, v_per_span, **tiles)
    grad_h = partial[0]
    for span in range(1, spans):  # a fixed order: the same sum, bit for bit, every run
        grad_h += partial[span]
    return grad_h


def _grad_weight_storage(weight, grad_dtype, need_w, cfg):
    """(grad_weight, fp32 workspace or None, vocabulary rows per backward launch).

    An fp32 gradient is accumulated straight into, in one launch; a bf16/fp16 one
    ``cfg.vocab_slice`` rows at a time in an fp32 workspace that is then cast into the
    gradient, which bounds the extra memory.
    """
    vocab, hidden_size = weight.shape
    if not need_w:
        return None, None, vocab
    if grad_dtype == torch.float32:
        return torch.zeros(weight.shape, dtype=torch.float32, device=weight.device), None, vocab
    rows = min(vocab, max(cfg.block_v, cfg.vocab_slice // cfg.block_v * cfg.block_v))
    work = torch.empty((rows, hidden_size), dtype=torch.float32, device=weight.device)
    return torch.empty(weight.shape, dtype=grad_dtype, device=weight.device), work, rows


@on_tensor_device
def _backward_slice(head, sizes, tiles, grad_h, acc_w, grad_b, v_offset, rows, computes,
                    deterministic, cfg):
    """Launch the backward kernel(s) for vocabulary rows v_offset .. v_offset + rows."""
    compute_h, compute_w, compute_b = computes
    n_tokens = sizes[0]
    v_tiles = triton.cdiv(rows, cfg.block_v)
    if deterministic:
        _grad_weight_kernel[(v_tiles,)](*head, acc_w, grad_b, *sizes, v_offset,
                                        v_offset + rows, COMPUTE_GW=compute_w,
                                        COMPUTE_GB=compute_b, **tiles)
        return
    grid = (triton.cdiv(n_tokens, cfg.block_n) * v_tiles,)
    _backward_atomic_kernel[grid](*head, grad_h, acc_w, grad_b, *sizes, v_offset,
                                  v_offset + rows, COMPUTE_GH=compute_h, COMPUTE_GW=compute_w,
                                  COMPUTE_GB=compute_b, GROUP_N=cfg.group_n, **tiles)


class FusedLinearLogprobs(torch.autograd.Function):
    """(hidden [N, H], weight [V, H], bias | None, targets [N]) -> (logp [N], entropy).

    hidden and weight are multiplied in ``matmul_dtype``: cast on the way in (the inputs,
    not the casts, are saved, and cast again for the backward), gradients returned in the
    inputs' own dtypes."""

    @staticmethod
    def forward(ctx, hidden, weight, bias, targets, temperature, with_entropy, deterministic,
                cfg, matmul_dtype):
        logp, lse, entropy = forward_logprobs(hidden.to(matmul_dtype), weight.to(matmul_dtype),
                                              bias, targets, temperature, with_entropy, cfg)
        ctx.save_for_backward(hidden, weight, bias, targets, lse)
        ctx.temperature, ctx.deterministic, ctx.cfg = temperature, deterministic, cfg
        ctx.matmul_dtype = matmul_dtype
        ctx.mark_non_differentiable(entropy)
        return logp, entropy

    @staticmethod
    def backward(ctx, grad_logp, grad_entropy):
        hidden, weight, bias, targets, lse = ctx.saved_tensors
        dtypes = (hidden.dtype, weight.dtype, None if bias is None else bias.dtype)
        grads = backward_grads(hidden.to(ctx.matmul_dtype), weight.to(ctx.matmul_dtype), bias,
                               targets, lse, grad_logp.float().contiguous(), ctx.temperature,
                               ctx.needs_input_grad[:3], ctx.deterministic, ctx.cfg, dtypes)
        return (*grads, None, None, None, None, None, None)


def triton_linear_logprobs(hidden, weight, bias, targets, *, temperature=1.0,
                           with_entropy=False, deterministic=False, config=None,
                           matmul_dtype=None):
    """Flattened contiguous inputs -> (logp [N], entropy [N] or empty), fp32; hidden and
    weight multiplied in ``matmul_dtype`` (default: hidden's dtype)."""
    cfg = config or default_config(hidden.device, hidden.shape[1])
    matmul_dtype = matmul_dtype or hidden.dtype
    needs_grad = torch.is_grad_enabled() and any(
        t is not None and t.requires_grad for t in (hidden, weight, bias))
    if not needs_grad:
        logp, _, entropy = forward_logprobs(hidden.to(matmul_dtype), weight.to(matmul_dtype),
                                            bias, targets, float(temperature), bool(with_entropy),
                                            cfg)
        return logp, entropy
    return FusedLinearLogprobs.apply(hidden, weight, bias, targets, float(temperature),
                                     bool(with_entropy), bool(deterministic), cfg, matmul_dtype)
