"""Fused LM head + GRO loss vs the fp32 reference on materialised logits.

Every case builds logits = hidden @ weight.T + bias in fp32 from the same values, runs
``reference_gro_policy_loss`` on them, and checks the fused loss, log-probs, stats and the
gradients of hidden, weight and bias. Both paths run: the chunked torch path
(``reference`` backend) and the Triton kernels (the interpreter on CPU, the GPU when one
is present). Inputs hold bf16-representable values, so the fp32-on-CUDA rule (bf16
products, fp32 sums) changes no forward value; gradient tolerances follow the dtype the op
multiplies in (``matmul_dtype``).
"""
from __future__ import annotations

import pytest
import torch

from gro_fast.ops import fused_linear_gro_policy_loss, fused_linear_token_logprobs
from gro_fast.ops._dispatch import force_backend
from gro_fast.ops.fused_linear import matmul_dtype
from gro_fast.ops.fused_linear import reference as chunked
from gro_fast.ops.policy_loss import reference_gro_policy_loss
from gro_fast.ops.token_logprobs.reference import reference_token_logprobs
from tests.helpers import assert_rel_close, compile_for_sm90, rel_error

DEVICE = "cuda" if torch.cuda.is_available() else "cpu"
BACKENDS = [pytest.param("reference", id="chunked"), pytest.param("triton", id="triton")]
DTYPES = [pytest.param(torch.float32, id="fp32"), pytest.param(torch.bfloat16, id="bf16")]
# Gradient tolerances: bf16 rounds dlogits before the gradient GEMMs and the outputs.
GRAD_TOL = {torch.float32: 2e-5, torch.bfloat16: 3e-2, torch.float16: 5e-3}


def make_inputs(B, T, H, V, dtype, *, bias=True, seed=0):
    """Hidden states, LM head and loss inputs with logits of order one."""
    g = torch.Generator().manual_seed(seed)
    hidden = torch.randn(B, T, H, generator=g).bfloat16().float()
    weight = (torch.randn(V, H, generator=g) * (2.0 / H ** 0.5)).bfloat16().float()
    b = torch.randn(V, generator=g) * 0.5 if bias else None
    mask = torch.rand(B, T, generator=g) > 0.25
    mask[0, 0] = True
    data = dict(hidden=hidden.to(dtype), weight=weight.to(dtype),
                bias=None if b is None else b.to(dtype),
                targets=torch.randint(0, V, (B, T), generator=g), mask=mask,
                advantages=torch.randn(B, generator=g),
                improvement=torch.rand(B, generator=g), noise=torch.randn(2, B, T, generator=g))
    return {k: v.to(DEVICE) if isinstance(v, torch.Tensor) else v for k, v in data.items()}


def loss_options(variant, data):
    """Loss keyword arguments of a named variant (old/ref near the current log-probs)."""
    with torch.no_grad():
        logits = data["hidden"].float() @ data["weight"].float().T
        logp = reference_token_logprobs(logits, data["targets"])
    old, ref = logp + 0.3 * data["noise"][0], logp + 0.5 * data["noise"][1]
    T = data["targets"].shape[1]
    return {
        "grpo": {},
        "gro-old": dict(improvement=data["improvement"], old_logprobs=old, eps_high=0.28),
        "kl-ref": dict(old_logprobs=old, ref_logprobs=ref, beta=0.04),
        "temp-seq-mean": dict(temperature=0.7, loss_agg="seq-mean-token-mean",
                              improvement=data["improvement"], old_logprobs=old,
                              return_entropy=True),
        "dr-grpo": dict(loss_agg="seq-mean-token-sum-norm", max_length=T + 3,
                        old_logprobs=old, ref_logprobs=ref, beta=0.1),
    }[variant]


def grad_tol(dtype, backend) -> float:
    """Gradient tolerance for inputs of ``dtype``: that of the dtype they are multiplied in."""
    with force_backend(backend):
        return GRAD_TOL[matmul_dtype(dtype, torch.device(DEVICE))]


def leaves(data, dtype=None):
    out = [data["hidden"], data["weight"], data["bias"]]
    return [None if t is None else t.detach().to(dtype or t.dtype).clone().requires_grad_()
            for t in out]


def reference_run(data, options):
    hidden, weight, bias = leaves(data, torch.float32)
    logits = hidden @ weight.T + (0.0 if bias is None else bias)
    out = reference_gro_policy_loss(logits, data["targets"], data["mask"], data["advantages"],
                                    **options)
    out.loss.backward()
    return out, [None if t is None else t.grad for t in (hidden, weight, bias)]


def fused_run(data, options, backend, **kwargs):
    hidden, weight, bias = leaves(data)
    with force_backend(backend):
        out = fused_linear_gro_policy_loss(hidden, weight, data["targets"], data["mask"],
                                           data["advantages"], bias=bias, **options, **kwargs)
    out.loss.backward()
    return out, [None if t is None else t.grad for t in (hidden, weight, bias)]


def check_against_reference(data, options, backend, dtype, **kwargs):
    expected, expected_grads = reference_run(data, options)
    actual, grads = fused_run(data, options, backend, **kwargs)
    assert_rel_close(actual.loss, expected.loss, 1e-5, "loss")
    assert_rel_close(actual.logprobs, expected.logprobs, 1e-5, "logprobs")
    assert actual.logprobs.dtype == torch.float32 and actual.logprobs.grad_fn is None
    assert sorted(actual.stats) == sorted(expected.stats)
    for key, value in expected.stats.items():
        assert torch.allclose(actual.stats[key], value, rtol=1e-5, atol=1e-6), key
    for name, grad, ref in zip(("grad_hidden", "grad_weight", "grad_bias"), grads,
                               expected_grads):
        if ref is None:
            assert grad is None
            continue
        assert grad.dtype == dtype, name
        assert_rel_close(grad, ref, grad_tol(dtype, backend), name)
    return grads


@pytest.fixture
def small_chunks(monkeypatch):
    """The chunked path holds 5 tokens' logits at a time, so chunking is exercised."""
    monkeypatch.setattr(chunked, "CHUNK_ELEMENTS", 5 * 97)


SHAPES = [pytest.param((2, 5, 37, 97), id="B2-T5-H37-V97"),
          pytest.param((3, 1, 16, 33), id="B3-T1-H16-V33"),
          pytest.param((1, 24, 40, 64), id="B1-T24-H40-V64")]


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", SHAPES)
def test_matches_reference_on_shapes(shape, dtype, backend, small_chunks):
    data = make_inputs(*shape, dtype)
    check_against_reference(data, loss_options("gro-old", data), backend, dtype)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("variant", ["grpo", "kl-ref", "temp-seq-mean", "dr-grpo"])
def test_matches_reference_on_variants(variant, backend, small_chunks):
    data = make_inputs(2, 7, 24, 50, torch.float32, seed=1)
    check_against_reference(data, loss_options(variant, data), backend, torch.float32)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("dtype", [pytest.param(torch.bfloat16, id="bf16"),
                                   pytest.param(torch.float16, id="fp16")])
def test_half_kl_and_entropy_without_bias(dtype, backend):
    data = make_inputs(2, 6, 33, 71, dtype, bias=False, seed=2)
    options = dict(loss_options("kl-ref", data), temperature=1.3, return_entropy=True)
    check_against_reference(data, options, backend, dtype)


@pytest.mark.parametrize("backend", BACKENDS)
def test_masked_rows_get_exactly_zero_gradient(backend):
    data = make_inputs(3, 6, 20, 45, torch.float32, seed=3)
    data["mask"][1] = False
    grads = check_against_reference(data, loss_options("gro-old", data), backend,
                                    torch.float32, deterministic=True)
    assert torch.count_nonzero(grads[0][1]) == 0
    assert torch.count_nonzero(grads[0][0]) > 0


@pytest.mark.parametrize("deterministic", [False, True], ids=["atomic", "deterministic"])
def test_triton_kernel_configurations(deterministic):
    """Vocabulary splits in the forward, several grad_weight slices in the backward, a
    partial last group of token tiles in the program order."""
    from gro_fast.ops.fused_linear.triton import KernelConfig, triton_linear_logprobs
    if DEVICE == "cpu" and not _interpreter():
        pytest.skip("Triton needs a GPU or TRITON_INTERPRET=1")
    data = make_inputs(1, 37, 40, 97, torch.bfloat16, seed=4)
    config = KernelConfig(block_n=16, block_v=16, block_k=16, num_warps=4, num_stages=1,
                          target_programs=64, min_splits=2, group_n=2, vocab_slice=32)
    hidden, weight, bias = leaves(data)
    targets, g = data["targets"].reshape(-1), data["noise"][0].reshape(-1)
    g[3] = 0.0
    logp, entropy = triton_linear_logprobs(hidden.view(37, 40), weight, bias, targets,
                                           temperature=0.9, with_entropy=True,
                                           deterministic=deterministic, config=config)
    logp.backward(g)
    ref = leaves(data, torch.float32)
    logits = ref[0].view(37, 40) @ ref[1].T + ref[2]
    ref_logp, ref_entropy = reference_token_logprobs(logits, targets, temperature=0.9,
                                                     return_entropy=True)
    ref_logp.backward(g)
    assert_rel_close(logp, ref_logp, 1e-5, "logp")
    assert_rel_close(entropy, ref_entropy, 1e-5, "entropy")
    for name, t, r in zip(("hidden", "weight", "bias"), (hidden, weight, bias), ref):
        assert_rel_close(t.grad, r.grad, GRAD_TOL[torch.bfloat16], f"grad_{name}")
    assert torch.count_nonzero(hidden.grad[0, 3]) == 0


def test_triton_writes_every_output(nan_poison):
    """Fresh buffers are NaN-filled: partials, log-probs, workspace must all be written."""
    if DEVICE == "cpu" and not _interpreter():
        pytest.skip("Triton needs a GPU or TRITON_INTERPRET=1")
    data = make_inputs(2, 9, 24, 70, torch.bfloat16, seed=5)
    check_against_reference(data, loss_options("temp-seq-mean", data), "triton",
                            torch.bfloat16)


def test_frozen_head_only_hidden_gets_gradient():
    data = make_inputs(2, 5, 24, 40, torch.float32, seed=6)
    hidden = data["hidden"].clone().requires_grad_()
    for backend in ("reference", "triton"):
        hidden.grad = None
        with force_backend(backend):
            out = fused_linear_gro_policy_loss(hidden, data["weight"], data["targets"],
                                               data["mask"], data["advantages"],
                                               bias=data["bias"])
        out.loss.backward()
        expected, grads = reference_run(data, {})
        assert_rel_close(out.loss, expected.loss, 1e-5, f"{backend} loss")
        assert_rel_close(hidden.grad, grads[0], grad_tol(torch.float32, backend), f"{backend} grad_hidden")


@pytest.mark.parametrize("backend", BACKENDS)
def test_token_logprobs_with_and_without_autograd(backend, small_chunks):
    data = make_inputs(2, 8, 16, 33, torch.float32, seed=7)
    logits = data["hidden"] @ data["weight"].T + data["bias"]
    ref_logp, ref_entropy = reference_token_logprobs(logits, data["targets"], temperature=0.8,
                                                     return_entropy=True)
    with force_backend(backend), torch.no_grad():
        logp, entropy = fused_linear_token_logprobs(
            data["hidden"], data["weight"], data["targets"], bias=data["bias"],
            temperature=0.8, return_entropy=True)
    assert logp.shape == (2, 8) and logp.grad_fn is None
    assert_rel_close(logp, ref_logp, 1e-5, "logp")
    assert_rel_close(entropy, ref_entropy, 1e-5, "entropy")
    hidden, weight, bias = leaves(data)
    with force_backend(backend):
        logp = fused_linear_token_logprobs(hidden, weight, data["targets"], bias=bias,
                                           temperature=0.8)
    logp.sum().backward()
    ref = leaves(data)
    reference_token_logprobs(ref[0] @ ref[1].T + ref[2], data["targets"],
                             temperature=0.8).sum().backward()
    for t, r in zip((hidden, weight, bias), ref):
        assert_rel_close(t.grad, r.grad, grad_tol(torch.float32, backend), "grad")


def test_deterministic_backward_repeats_bit_for_bit():
    data = make_inputs(2, 6, 24, 50, torch.float32, seed=8)
    options = loss_options("gro-old", data)
    first = fused_run(data, options, "triton", deterministic=True)[1]
    second = fused_run(data, options, "triton", deterministic=True)[1]
    for a, b in zip(first, second):
        assert torch.equal(a, b)


def test_agrees_with_gro_policy_loss_on_logits():
    gro_policy_loss = pytest.importorskip("gro_fast.ops").__dict__.get("gro_policy_loss")
    if gro_policy_loss is None:
        pytest.skip("gro_policy_loss is not available")
    data = make_inputs(2, 6, 24, 50, torch.float32, seed=9)
    options = loss_options("kl-ref", data)
    hidden, weight, bias = leaves(data)
    logits = hidden @ weight.T + bias
    expected = gro_policy_loss(logits, data["targets"], data["mask"], data["advantages"],
                               **options)
    expected.loss.backward()
    actual, grads = fused_run(data, options, "auto")
    assert_rel_close(actual.loss, expected.loss, 1e-5, "loss")
    assert_rel_close(actual.logprobs, expected.logprobs, 1e-5, "logprobs")
    for grad, leaf in zip(grads, (hidden, weight, bias)):
        assert_rel_close(grad, leaf.grad, grad_tol(torch.float32, "auto"), "grad")


def test_matmul_dtype_rule():
    """The precision rule (module docstring of ops/fused_linear), decided on CPU for CUDA too."""
    assert matmul_dtype(torch.float32, "cpu") == torch.float32
    assert matmul_dtype(torch.bfloat16, "cpu") == torch.bfloat16
    assert matmul_dtype(torch.float32, "cuda") == torch.bfloat16      # tensor cores, not FMA
    assert matmul_dtype(torch.float16, "cuda") == torch.float16
    with torch.autocast("cpu", dtype=torch.bfloat16):
        assert matmul_dtype(torch.float32, "cpu") == torch.bfloat16
    with force_backend("reference"):
        assert matmul_dtype(torch.float32, "cuda") == torch.float32


@pytest.mark.parametrize("backend", BACKENDS)
def test_autocast_multiplies_in_bf16_and_returns_fp32_gradients(backend):
    """A trainer's fp32 final hidden states and fp32 master head weight under bf16 autocast:
    products of the bf16-rounded values, fp32 sums, fp32 gradients (as the unfused head)."""
    g = torch.Generator().manual_seed(11)
    hidden, weight = torch.randn(2, 6, 40, generator=g), torch.randn(70, 40, generator=g) * 0.3
    targets, mask = torch.randint(0, 70, (2, 6), generator=g), torch.ones(2, 6, dtype=torch.bool)
    advantages = torch.randn(2, generator=g)
    hidden, weight, targets, mask, advantages = (t.to(DEVICE) for t in (hidden, weight, targets, mask,
                                                                          advantages))
    bf16 = [t.bfloat16().float().requires_grad_() for t in (hidden, weight)]
    exact = [t.clone().requires_grad_() for t in (hidden, weight)]
    expected = {}
    for name, (h, w) in (("bf16", bf16), ("fp32", exact)):
        out = reference_gro_policy_loss(h @ w.T, targets, mask, advantages)
        out.loss.backward()
        expected[name] = out
    leaves_ = [t.clone().requires_grad_() for t in (hidden, weight)]
    with force_backend(backend), torch.autocast(DEVICE, dtype=torch.bfloat16):
        actual = fused_linear_gro_policy_loss(leaves_[0], leaves_[1], targets, mask, advantages)
    actual.loss.backward()
    assert_rel_close(actual.logprobs, expected["bf16"].logprobs, 1e-5, "logprobs vs bf16 operands")
    assert rel_error(actual.logprobs, expected["fp32"].logprobs) > 1e-4   # not fp32 products
    for leaf, ref in zip(leaves_, bf16):
        assert leaf.grad.dtype == torch.float32
        assert_rel_close(leaf.grad, ref.grad, GRAD_TOL[torch.bfloat16], "grad")


def test_autocast_accepts_mixed_input_dtypes():
    data = make_inputs(2, 3, 16, 33, torch.float32, seed=12)
    with torch.autocast(DEVICE, dtype=torch.bfloat16), force_backend("reference"):
        logp = fused_linear_token_logprobs(data["hidden"].bfloat16(), data["weight"], data["targets"],
                                           bias=data["bias"])
    logits = data["hidden"].bfloat16().float() @ data["weight"].T + data["bias"]
    assert_rel_close(logp, reference_token_logprobs(logits, data["targets"]), 1e-5, "logp")


def test_deterministic_grad_hidden_spans_fill_the_device():
    """N = 2,048 tokens are 16 token tiles: the vocabulary is split so that >= 132 programs
    (H200 SMs) run; at N = 16k one span (the partial sums stay within their budget)."""
    from gro_fast.ops.fused_linear.triton import KernelConfig, grad_hidden_spans
    cfg = KernelConfig(target_programs=2 * 132)
    spans = grad_hidden_spans(2048, 151_936, 3584, cfg)
    assert 16 * spans >= 132 and spans * 2048 * 3584 * 4 <= cfg.span_bytes
    assert grad_hidden_spans(16_384, 151_936, 3584, cfg) == 1
    assert grad_hidden_spans(4, 100, 8, KernelConfig(target_programs=264)) == 1   # one vocab tile


def test_deterministic_grad_hidden_over_several_spans_matches_and_repeats():
    from gro_fast.ops.fused_linear.triton import KernelConfig, grad_hidden_spans, triton_linear_logprobs
    if DEVICE == "cpu" and not _interpreter():
        pytest.skip("Triton needs a GPU or TRITON_INTERPRET=1")
    config = KernelConfig(block_n=16, block_v=16, block_k=16, num_warps=4, num_stages=1,
                          target_programs=8, min_splits=1, group_n=2, vocab_slice=64)
    assert grad_hidden_spans(20, 97, 24, config) == 4
    data = make_inputs(1, 20, 24, 97, torch.float32, seed=13)
    targets, g = data["targets"].reshape(-1), data["noise"][0].reshape(-1)
    runs = []
    for _ in range(2):
        hidden = data["hidden"].view(20, 24).clone().requires_grad_()
        logp, _ = triton_linear_logprobs(hidden, data["weight"], data["bias"], targets,
                                         deterministic=True, config=config)
        logp.backward(g)
        runs.append(hidden.grad)
    ref = data["hidden"].view(20, 24).clone().requires_grad_()
    reference_token_logprobs(ref @ data["weight"].T + data["bias"], targets).backward(g)
    assert_rel_close(runs[0], ref.grad, grad_tol(torch.float32, "triton"), "grad_hidden")
    assert torch.equal(runs[0], runs[1])


def _bad(**changes):
    return changes


BAD_INPUTS = [
    pytest.param(_bad(hidden="x"), TypeError, "hidden", id="hidden-not-tensor"),
    pytest.param(_bad(hidden=torch.zeros(2, 3)), ValueError, "hidden", id="hidden-2d"),
    pytest.param(_bad(hidden=torch.zeros(2, 3, 8, dtype=torch.int32)), TypeError, "hidden",
                 id="hidden-int"),
    pytest.param(_bad(weight=torch.zeros(11, 7)), ValueError, "weight", id="weight-H"),
    pytest.param(_bad(weight=torch.zeros(11, 8, dtype=torch.float64)), TypeError, "weight",
                 id="weight-dtype"),
    pytest.param(_bad(bias=torch.zeros(10)), ValueError, "bias", id="bias-shape"),
    pytest.param(_bad(bias=torch.zeros(11, dtype=torch.float64)), TypeError, "bias",
                 id="bias-dtype"),
    pytest.param(_bad(targets=torch.zeros(2, 3)), TypeError, "targets", id="targets-float"),
    pytest.param(_bad(targets=torch.full((2, 3), 11)), ValueError, "targets",
                 id="targets-range"),
    pytest.param(_bad(targets=torch.full((2, 3), -100)), ValueError, "targets",
                 id="targets-negative"),
    pytest.param(_bad(mask=torch.ones(2, 4)), ValueError, "mask", id="mask-shape"),
    pytest.param(_bad(advantages=torch.ones(3)), ValueError, "advantages", id="adv-shape"),
    pytest.param(_bad(improvement=torch.ones(2, 3)), ValueError, "improvement",
                 id="improvement-shape"),
    pytest.param(_bad(old_logprobs=torch.ones(2)), ValueError, "old_logprobs", id="old"),
    pytest.param(_bad(beta=0.1), ValueError, "ref_logprobs", id="beta-without-ref"),
    pytest.param(_bad(eps_low=-0.1), ValueError, "eps_low", id="eps-low"),
    pytest.param(_bad(temperature=0.0), ValueError, "temperature", id="temperature"),
    pytest.param(_bad(loss_agg="mean"), ValueError, "loss_agg", id="loss-agg"),
    pytest.param(_bad(max_length=0), ValueError, "max_length", id="max-length"),
]


@pytest.mark.parametrize("changes,error,name", BAD_INPUTS)
def test_bad_inputs_raise_naming_the_argument(changes, error, name):
    args = dict(hidden=torch.zeros(2, 3, 8), weight=torch.zeros(11, 8), targets=torch.zeros(
        2, 3, dtype=torch.long), mask=torch.ones(2, 3), advantages=torch.ones(2))
    args.update(changes)
    positional = [args.pop(k) for k in ("hidden", "weight", "targets", "mask", "advantages")]
    with pytest.raises(error, match=name):
        fused_linear_gro_policy_loss(*positional, **args)


def test_token_logprobs_bad_temperature():
    with pytest.raises(ValueError, match="temperature"):
        fused_linear_token_logprobs(torch.zeros(1, 2, 4), torch.zeros(5, 4),
                                    torch.zeros(1, 2, dtype=torch.long), temperature=-1.0)


# Compiles every kernel for sm_90 (H100) with the GPU tiles, without a GPU: catches what
# the interpreter accepts but the compiler does not. Runs in a child process because the
# kernels here were decorated for the interpreter.
_COMPILE_SM90 = r"""
import os, sys
os.environ.pop("TRITON_INTERPRET", None)
os.environ.setdefault("TRITON_DEFAULT_FP_FUSION", "1")
import torch, triton
from triton.backends.compiler import GPUTarget
from triton.compiler import ASTSource
from gro_fast.ops.fused_linear import triton as K
cfg = K.KernelConfig()
every = ((K._forward_kernel, False), (K._combine_kernel, False),
         (K._backward_atomic_kernel, True), (K._grad_hidden_kernel, True),
         (K._grad_weight_kernel, True))
for dtype, prec, kernels in (("bf16", "tf32", every), ("fp32", "ieee", every[::2])):
    for fn, bwd in kernels:
        consts = dict(HAS_BIAS=True, WITH_ENTROPY=True, COMPUTE_GH=True, COMPUTE_GW=True,
                      COMPUTE_GB=True, BLOCK_N=cfg.block_n, BLOCK_V=cfg.block_v,
                      BLOCK_K=cfg.block_k_bwd if bwd else cfg.block_k, PRECISION=prec,
                      UPCAST=False, GROUP_N=cfg.group_n, BLOCK_S=16, BLOCK=256)
        sig, given = {}, {}
        for i, name in enumerate(fn.arg_names):
            if name in consts:
                sig[name], given[(i,)] = "constexpr", consts[name]
            elif name.endswith("_ptr"):
                sig[name] = "*" + (dtype if name[0] in "hwb" and name[1] == "_" else
                                   "i64" if name == "tgt_ptr" else "fp32")
            else:
                sig[name] = "fp32" if name == "inv_t" else "i32"
        triton.compile(ASTSource(fn=fn, signature=sig, constexprs=given),
                       target=GPUTarget("cuda", 90, 32),
                       options=dict(num_warps=cfg.num_warps, num_stages=cfg.num_stages))
print("compiled")
"""


def test_kernels_compile_for_sm90():
    compile_for_sm90(_COMPILE_SM90)


@pytest.mark.gpu
def test_gpu_default_tiles_on_odd_shape():
    """GPU tiles (128 x 128 x 64) with every edge ragged, bf16, atomics and deterministic."""
    data = make_inputs(3, 211, 200, 1000, torch.bfloat16, seed=10)
    for deterministic in (False, True):
        check_against_reference(data, loss_options("kl-ref", data), "triton", torch.bfloat16,
                                deterministic=deterministic)


def _interpreter() -> bool:
    from gro_fast.ops._dispatch import interpreter_enabled
    return interpreter_enabled()
