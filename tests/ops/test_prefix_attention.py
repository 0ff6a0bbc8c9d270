"""Shared-prefix decode attention: Triton kernel (interpreter on CPU) vs the reference,
the reference vs ordinary attention over the expanded cache, and argument checks."""
import json
import math

import pytest
import torch
import torch.nn.functional as F

from gro_fast.ops._dispatch import force_backend, triton_available
from gro_fast.ops.prefix_attention import (merge_attention_states, reference_shared_prefix_attention,
                                           shared_prefix_attention)
from gro_fast.ops.prefix_attention.cascade import cascade_shared_prefix_attention
from tests.helpers import assert_rel_close, compile_for_sm90, i32_products_of

DEVICE = "cuda" if torch.cuda.is_available() else "cpu"
needs_triton = pytest.mark.skipif(not triton_available(), reason="triton not installed")


def make_inputs(P, G, Hq, Hkv, D, Lp, Ls, dtype=torch.float32, seed=0, prefix_lens=None,
                suffix_lens=None):
    gen = torch.Generator().manual_seed(seed)
    rand = lambda *s: torch.randn(*s, generator=gen).to(DEVICE, dtype)  # noqa: E731
    if prefix_lens is None:
        prefix_lens = torch.randint(1, Lp + 1, (P,), generator=gen)
    if suffix_lens is None:
        suffix_lens = torch.randint(1, Ls + 1, (P, G), generator=gen)
    return (rand(P, G, Hq, D), rand(P, Hkv, Lp, D), rand(P, Hkv, Lp, D),
            torch.as_tensor(prefix_lens).to(DEVICE), rand(P, G, Hkv, Ls, D), rand(P, G, Hkv, Ls, D),
            torch.as_tensor(suffix_lens).to(DEVICE))


def sdpa_over_expanded_cache(q, pk, pv, plens, sk, sv, slens):
    """Ordinary attention, one sample at a time, over prefix[:len] ++ own suffix[:len]."""
    P, G, Hq, D = q.shape
    rep = Hq // pk.shape[1]
    out = torch.zeros(P, G, Hq, D, dtype=torch.float32, device=q.device)
    for p in range(P):
        for g in range(G):
            k = torch.cat([pk[p, :, :plens[p]], sk[p, g, :, :slens[p, g]]], dim=1).float()
            v = torch.cat([pv[p, :, :plens[p]], sv[p, g, :, :slens[p, g]]], dim=1).float()
            k, v = k.repeat_interleave(rep, 0), v.repeat_interleave(rep, 0)
            out[p, g] = F.scaled_dot_product_attention(q[p, g].float().unsqueeze(1), k, v).squeeze(1)
    return out


SHAPES = [
    pytest.param(dict(P=1, G=1, Hq=1, Hkv=1, D=16, Lp=1, Ls=1), id="P1-G1-L1"),
    pytest.param(dict(P=2, G=3, Hq=4, Hkv=2, D=24, Lp=37, Ls=9), id="gqa2-D24-oddL"),
    pytest.param(dict(P=3, G=4, Hq=6, Hkv=1, D=32, Lp=20, Ls=17), id="mqa-G4"),
    # Several prefix splits, some of them past a group's prefix length (empty).
    pytest.param(dict(P=3, G=2, Hq=2, Hkv=1, D=16, Lp=100, Ls=5), id="long-prefix-splits"),
]


@pytest.mark.parametrize("shape", SHAPES)
def test_reference_equals_attention_over_expanded_cache(shape):
    args = make_inputs(**shape)
    assert_rel_close(reference_shared_prefix_attention(*args), sdpa_over_expanded_cache(*args),
                     1e-5, "reference")


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16], ids=["fp32", "bf16"])
@pytest.mark.parametrize("shape", SHAPES)
def test_cascade_cpu_path_matches_reference(shape, dtype):
    args = make_inputs(**shape, dtype=dtype, seed=2)
    out, lse = cascade_shared_prefix_attention(*args, return_lse=True)
    ref, ref_lse = reference_shared_prefix_attention(*args, return_lse=True)
    assert out.dtype == dtype
    assert_rel_close(out, ref, 1e-5 if dtype == torch.float32 else 1e-2, "out")
    assert_rel_close(lse, ref_lse, 1e-5, "lse")


def test_cascade_empty_prefix_and_suffix_rows():
    args = make_inputs(2, 2, 2, 1, 16, Lp=5, Ls=4, prefix_lens=[0, 5], suffix_lens=[[3, 0], [0, 4]])
    out, lse = cascade_shared_prefix_attention(*args, return_lse=True)
    ref, ref_lse = reference_shared_prefix_attention(*args, return_lse=True)
    assert torch.equal(out[0, 1], torch.zeros_like(out[0, 1])) and torch.isinf(lse[0, 1]).all()
    assert_rel_close(out, ref, 1e-5, "out")


# fp32 on a GPU runs tl.dot in TF32.
FP32_TOL = 5e-3 if DEVICE == "cuda" else 2e-5


@needs_triton
@pytest.mark.parametrize("dtype,tol", [pytest.param(torch.float32, FP32_TOL, id="fp32"),
                                       pytest.param(torch.bfloat16, 2e-2, id="bf16")])
@pytest.mark.parametrize("shape", SHAPES)
def test_kernel_matches_reference(shape, dtype, tol, nan_poison):
    args = make_inputs(**shape, dtype=dtype, seed=1)
    with force_backend("triton"):
        out, lse = shared_prefix_attention(*args, return_lse=True)
    ref, ref_lse = reference_shared_prefix_attention(*args, return_lse=True)
    assert out.dtype == dtype
    assert_rel_close(out, ref, tol, "out")
    assert_rel_close(lse, ref_lse, tol, "lse")


@needs_triton
def test_kernel_empty_prefix_and_empty_suffix_rows():
    # Group 0 has no prefix at all; group 1 has a prefix, and one sample no suffix yet.
    args = make_inputs(2, 2, 2, 1, 16, Lp=5, Ls=4, prefix_lens=[0, 5], suffix_lens=[[3, 1], [0, 4]])
    with force_backend("triton"):
        out = shared_prefix_attention(*args)
    ref = reference_shared_prefix_attention(*args)
    assert torch.isfinite(out).all()
    assert_rel_close(out, ref, FP32_TOL, "out")


def test_query_without_keys_gets_zeros_not_nan():
    args = make_inputs(1, 2, 2, 2, 16, Lp=3, Ls=3, prefix_lens=[0], suffix_lens=[[0, 2]])
    out, lse = reference_shared_prefix_attention(*args, return_lse=True)
    assert torch.equal(out[0, 0], torch.zeros_like(out[0, 0]))
    assert torch.isinf(lse[0, 0]).all() and torch.isfinite(out).all()


def test_merge_attention_states_matches_joint_softmax():
    gen = torch.Generator().manual_seed(3)
    scores, values = torch.randn(5, 12, generator=gen), torch.randn(12, 8, generator=gen)
    parts = []
    for sl in (slice(0, 7), slice(7, 12)):
        lse = torch.logsumexp(scores[:, sl], -1)
        parts += [torch.softmax(scores[:, sl], -1) @ values[sl], lse]
    out, lse = merge_attention_states(*parts)
    assert_rel_close(out, torch.softmax(scores, -1) @ values, 1e-6, "merged")
    assert_rel_close(lse, torch.logsumexp(scores, -1), 1e-6, "lse")


def test_scale_argument_is_used():
    args = make_inputs(1, 2, 2, 1, 16, Lp=6, Ls=2)
    a = reference_shared_prefix_attention(*args, scale=1.0 / math.sqrt(16))
    b = reference_shared_prefix_attention(*args, scale=0.5)
    assert not torch.allclose(a, b)


@pytest.mark.parametrize("mutate,match", [
    pytest.param(lambda a: (a[0][..., :8],) + a[1:], "prefix_k must be", id="head-dim"),
    pytest.param(lambda a: a[:1] + (a[1].repeat(1, 3, 1, 1), a[2].repeat(1, 3, 1, 1)) + a[3:], "multiple",
                 id="gqa"),
    pytest.param(lambda a: a[:3] + (a[3].float(),) + a[4:], "prefix_lens must be an int", id="len-dtype"),
    pytest.param(lambda a: a[:3] + (a[3] + 100,) + a[4:], "prefix_lens must lie", id="len-range",
                 marks=pytest.mark.skipif(DEVICE == "cuda", reason="lengths are checked on CPU tensors only: "
                                          "a decode step (CUDA graph) must not synchronise")),
    pytest.param(lambda a: a[:6] + (a[6][:, :1],), "suffix_lens must be", id="suffix-lens-shape"),
    pytest.param(lambda a: a[:4] + (a[4].double(),) + a[5:], "suffix_k dtype", id="dtype-mismatch"),
])
def test_bad_arguments_are_named(mutate, match):
    args = mutate(make_inputs(2, 2, 2, 1, 16, Lp=4, Ls=3))
    with pytest.raises((ValueError, TypeError), match=match):
        shared_prefix_attention(*args)


# Compiles both kernels for sm_90 (H100 / H200) with the launcher's own tiles and options,
# without a GPU: catches what the interpreter accepts but the compiler rejects, shared
# memory over sm_90's limit, and 32-bit offset arithmetic. A child process, because the
# kernels of this process were decorated for the interpreter.
_COMPILE_SM90 = r"""
import json, os
os.environ.pop("TRITON_INTERPRET", None)
os.environ.setdefault("TRITON_DEFAULT_FP_FUSION", "1")
import torch, triton
from triton.backends.compiler import GPUTarget
from triton.compiler import ASTSource
from gro_fast.ops.prefix_attention import triton as K
DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16}
report = []
for name, head_dim in (("fp32", 256), ("bf16", 256), ("bf16", 128)):
    cfg = K.launch_config(head_dim, DTYPES[name], rows=64, interpreter=False)
    consts = dict(cfg, BLOCK_R=16, UPCAST=False)
    for fn in (K._prefix_kernel, K._suffix_merge_kernel):
        sig, given = {}, {}
        for i, arg in enumerate(fn.arg_names):
            if arg in consts:
                sig[arg], given[(i,)] = "constexpr", consts[arg]
            elif arg in ("Q", "K", "V") or (arg == "O" and fn is K._suffix_merge_kernel):
                sig[arg] = "*" + name
            elif arg == "LENS":
                sig[arg] = "*i64"
            elif arg in ("O", "O_PRE", "LSE_PRE", "LSE"):
                sig[arg] = "*fp32"
            else:
                sig[arg] = "fp32" if arg == "scale" else "i32"
        compiled = triton.compile(ASTSource(fn=fn, signature=sig, constexprs=given),
                                  target=GPUTarget("cuda", 90, 32),
                                  options=dict(num_warps=cfg["num_warps"], num_stages=cfg["num_stages"]))
        strides = [a for a in fn.arg_names if a[:1] == "s" and "_" in a]
        report.append(dict(kernel=fn.__name__, dtype=name, head_dim=head_dim, strides=strides,
                           shared=compiled.metadata.shared, ttir=compiled.asm["ttir"]))
print("compiled")
print(json.dumps(report))
"""


@pytest.fixture(scope="module")
def sm90_builds():
    return json.loads(compile_for_sm90(_COMPILE_SM90).split("compiled", 1)[1])


def test_kernels_fit_sm90_shared_memory(sm90_builds):
    from gro_fast.ops.prefix_attention.triton import SM90_SHARED_BYTES
    for build in sm90_builds:
        assert build["shared"] <= SM90_SHARED_BYTES, {k: build[k] for k in ("kernel", "dtype", "head_dim", "shared")}


def test_offsets_are_computed_in_int64(sm90_builds):
    """Every ``index * stride`` (and ``row * D``) of both kernels is a 64-bit product."""
    for build in sm90_builds:
        assert build["strides"], build["kernel"]
        assert i32_products_of(build["ttir"], build["strides"] + ["D"]) == [], build["kernel"]
