"""Shared-prefix decode attention. Public: ``shared_prefix_attention``.

The G samples of a group attend to one prefix KV (stored once) and to their own suffix
KV; see reference.py for the definition and shapes. CUDA tensors (and CPU tensors under
``TRITON_INTERPRET=1``) run the Triton kernels; other CPU tensors the factorised fp32 torch
path (cascade.py), and ``GRO_FAST_KERNELS=reference`` the reference itself.
"""
from __future__ import annotations

import torch

from .._dispatch import reference_requested, use_triton
from .cascade import cascade_shared_prefix_attention
from .reference import merge_attention_states, reference_shared_prefix_attention

__all__ = ["shared_prefix_attention", "reference_shared_prefix_attention", "merge_attention_states"]

_FLOAT_DTYPES = (torch.float32, torch.bfloat16, torch.float16)


def _check_shapes(q, prefix_k, prefix_v, prefix_lens, suffix_k, suffix_v, suffix_lens):
    if q.dim() != 4:
        raise ValueError(f"q must be [P, G, Hq, D], got shape {tuple(q.shape)}")
    P, G, Hq, D = q.shape
    if prefix_k.dim() != 4 or prefix_k.shape[0] != P or prefix_k.shape[3] != D:
        raise ValueError(f"prefix_k must be [P={P}, Hkv, Lp, D={D}], got {tuple(prefix_k.shape)}")
    if prefix_v.shape != prefix_k.shape:
        raise ValueError(f"prefix_v shape {tuple(prefix_v.shape)} != prefix_k shape {tuple(prefix_k.shape)}")
    Hkv = prefix_k.shape[1]
    if Hkv == 0 or Hq % Hkv:
        raise ValueError(f"query heads ({Hq}) must be a multiple of prefix_k's kv heads ({Hkv})")
    if suffix_k.dim() != 5 or tuple(suffix_k.shape[:3]) != (P, G, Hkv) or suffix_k.shape[4] != D:
        raise ValueError(f"suffix_k must be [P={P}, G={G}, Hkv={Hkv}, Ls, D={D}], got {tuple(suffix_k.shape)}")
    if suffix_v.shape != suffix_k.shape:
        raise ValueError(f"suffix_v shape {tuple(suffix_v.shape)} != suffix_k shape {tuple(suffix_k.shape)}")
    if tuple(prefix_lens.shape) != (P,):
        raise ValueError(f"prefix_lens must be [P={P}], got {tuple(prefix_lens.shape)}")
    if tuple(suffix_lens.shape) != (P, G):
        raise ValueError(f"suffix_lens must be [P={P}, G={G}], got {tuple(suffix_lens.shape)}")


def _check_types(q, tensors: dict, lens: dict):
    if q.dtype not in _FLOAT_DTYPES:
        raise TypeError(f"q must be float32, bfloat16 or float16, got {q.dtype}")
    for name, t in {**tensors, **lens}.items():
        if t.device != q.device:
            raise ValueError(f"{name} is on {t.device} but q is on {q.device}")
    for name, t in tensors.items():
        if t.dtype != q.dtype:
            raise TypeError(f"{name} dtype {t.dtype} != q dtype {q.dtype}")
    for name, t in lens.items():
        if t.dtype not in (torch.int32, torch.int64):
            raise TypeError(f"{name} must be an int32/int64 tensor, got {t.dtype}")


def _check_lengths(prefix_lens, suffix_lens, max_prefix: int, max_suffix: int):
    # Values are checked on CPU only: on a GPU this would synchronise every decode step.
    if prefix_lens.is_cuda:
        return
    if ((prefix_lens < 0) | (prefix_lens > max_prefix)).any():
        raise ValueError(f"prefix_lens must lie in [0, {max_prefix}], got {prefix_lens.tolist()}")
    if ((suffix_lens < 0) | (suffix_lens > max_suffix)).any():
        raise ValueError(f"suffix_lens must lie in [0, {max_suffix}], got {suffix_lens.tolist()}")


def shared_prefix_attention(q, prefix_k, prefix_v, prefix_lens, suffix_k, suffix_v, suffix_lens,
                            *, scale=None, return_lse=False):
    """Decode attention of q [P, G, Hq, D] over a shared prefix and per-sample suffixes.

    prefix_k/v [P, Hkv, Lp, D] with lengths prefix_lens [P]; suffix_k/v [P, G, Hkv, Ls, D]
    with lengths suffix_lens [P, G] (the current token's own key included). Returns
    [P, G, Hq, D] in q.dtype, plus the fp32 lse [P, G, Hq] with ``return_lse``. Equal to
    ordinary attention over the prefix expanded to G copies and concatenated with each
    suffix; a query without any valid key gets zeros.
    """
    _check_shapes(q, prefix_k, prefix_v, prefix_lens, suffix_k, suffix_v, suffix_lens)
    _check_types(q, {"prefix_k": prefix_k, "prefix_v": prefix_v, "suffix_k": suffix_k,
                     "suffix_v": suffix_v}, {"prefix_lens": prefix_lens, "suffix_lens": suffix_lens})
    _check_lengths(prefix_lens, suffix_lens, prefix_k.shape[2], suffix_k.shape[3])
    args = (q, prefix_k, prefix_v, prefix_lens, suffix_k, suffix_v, suffix_lens)
    if q.numel() and use_triton(q):
        from .triton import triton_shared_prefix_attention
        return triton_shared_prefix_attention(*args, scale=scale, return_lse=return_lse)
    if reference_requested():
        return reference_shared_prefix_attention(*args, scale=scale, return_lse=return_lse)
    return cascade_shared_prefix_attention(*args, scale=scale, return_lse=return_lse)
