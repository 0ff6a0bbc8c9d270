"""gro_policy_loss (fused Triton kernels; the interpreter on CPU) against the fp32 reference."""
import dataclasses

import pytest
import torch

from gro_fast.ops import PolicyLossOptions, PolicyLossOutput, force_backend, gro_policy_loss
from gro_fast.ops.policy_loss import LOSS_AGGREGATIONS, reference_gro_policy_loss
from gro_fast.ops.token_logprobs.reference import reference_token_logprobs
from tests.helpers import assert_rel_close, compile_for_sm90

GRAD_TOL = {torch.float32: 1e-5, torch.bfloat16: 1e-2, torch.float16: 2e-3}
STAT_NAMES = ("kl", "clip_frac_low", "clip_frac_high", "ratio_mean")

# numpy inside the Triton interpreter warns on 0 * inf before a tl.where discards it.
INTERPRETER_INF_WARNINGS = pytest.mark.filterwarnings("ignore:.*encountered in:RuntimeWarning")

def make_batch(B=3, T=5, V=77, dtype=torch.float32, *, improvement="random", old=True, ref=True,
               seed=0, temperature=1.0):
    """Logits, targets, a mask with one fully masked row, and old / ref log-probs that put
    some ratios outside the clip range on both sides."""
    g = torch.Generator().manual_seed(seed)
    logits = (torch.randn(B, T, V, generator=g) * 3).to(dtype)
    targets = torch.randint(0, V, (B, T), generator=g)
    mask = torch.rand(B, T, generator=g) > 0.25
    if B > 1:
        mask[1] = False
    mask[0, 0] = True
    mask[-1, T // 2] = True
    advantages = torch.randn(B, generator=g)
    advantages[0] = advantages[0].abs() + 0.1  # both signs among the unmasked rows
    advantages[-1] = -advantages[-1].abs() - 0.1 if B > 2 else advantages[-1]
    batch = dict(logits=logits, targets=targets, mask=mask, advantages=advantages)
    return batch, policy_inputs(batch, improvement, old, ref, g, temperature)


def policy_inputs(batch, improvement, old, ref, g, temperature=1.0):
    """The improvement dphi [B] and old / ref log-probs near the current ones; the old log-probs are
    offset by -0.6, +0.6, 0 in turn so ratios leave the clip range on both sides."""
    B, T = batch["targets"].shape
    logp = reference_token_logprobs(batch["logits"].double(), batch["targets"],
                                    temperature=temperature).float()
    options = {}
    if improvement == "random":
        options["improvement"] = torch.rand(B, generator=g)
    elif improvement == "zeros":
        options["improvement"] = torch.zeros(B)
    if old:
        offsets = torch.tensor([-0.6, 0.6, 0.0]).repeat(T)[:T]
        options["old_logprobs"] = logp + offsets + 0.1 * torch.randn(B, T, generator=g)
    if ref:
        options["ref_logprobs"] = logp + 0.3 * torch.randn(B, T, generator=g)
    return options


def run(fn, batch, dtype=None, **options):
    """Loss output and dlogits of ``fn`` on a fresh copy of the logits."""
    logits = batch["logits"].detach().clone()
    if dtype is not None:
        logits = logits.to(dtype)
    logits.requires_grad_()
    out = fn(logits, batch["targets"], batch["mask"], batch["advantages"], **options)
    out.loss.backward()
    return out, logits.grad


def check_against_reference(batch, options, ref_dtype=torch.float32, tol=1e-5):
    dtype = batch["logits"].dtype
    out, grad = run(gro_policy_loss, batch, **options)
    ref, grad_ref = run(reference_gro_policy_loss, batch, dtype=ref_dtype, **options)
    assert isinstance(out, PolicyLossOutput) and out.loss.dim() == 0
    assert_rel_close(out.loss, ref.loss, tol, "loss")
    assert_rel_close(out.logprobs, ref.logprobs, tol, "logprobs")
    assert set(out.stats) == set(ref.stats)
    for name in ref.stats:
        assert_rel_close(out.stats[name], ref.stats[name], tol, name)
    assert grad.dtype == dtype
    assert_rel_close(grad.float(), grad_ref, max(tol, GRAD_TOL[dtype]), "dlogits")
    return ref


@pytest.mark.parametrize("dtype", [pytest.param(torch.float32, id="fp32"),
                                   pytest.param(torch.bfloat16, id="bf16")])
@pytest.mark.parametrize("loss_agg", [pytest.param(a, id=a) for a in LOSS_AGGREGATIONS])
def test_matches_reference(nan_poison, dtype, loss_agg):
    batch, options = make_batch(dtype=dtype, temperature=0.9)
    ref = check_against_reference(batch, dict(options, beta=0.05, loss_agg=loss_agg,
                                               temperature=0.9, return_entropy=True))
    # The batch exercises both clip sides and the KL term, so the stats test something.
    assert ref.stats["clip_frac_low"] > 0 and ref.stats["clip_frac_high"] > 0
    assert ref.stats["kl"] > 0


@pytest.mark.parametrize("beta", [pytest.param(0.0, id="beta0"), pytest.param(0.1, id="beta0.1")])
@pytest.mark.parametrize("improvement", ["none", "zeros", "random"])
@pytest.mark.parametrize("old", [pytest.param(False, id="old-none"),
                                 pytest.param(True, id="old-given")])
def test_variants(nan_poison, beta, improvement, old):
    batch, options = make_batch(improvement=improvement, old=old, ref=beta > 0, seed=2)
    check_against_reference(batch, dict(options, beta=beta, eps_high=0.28, max_length=7,
                                        loss_agg="seq-mean-token-sum-norm"))


@pytest.mark.parametrize("B,T,V", [
    pytest.param(1, 1, 5, id="T1-V5"),
    pytest.param(2, 1, 32, id="T1-V-one-block"),
    pytest.param(2, 3, 33, id="V-block-plus-1"),
    pytest.param(3, 2, 200, id="V-many-blocks"),
])
def test_odd_sizes(nan_poison, B, T, V):
    batch, options = make_batch(B, T, V, seed=3)
    check_against_reference(batch, dict(options, beta=0.02, return_entropy=True))


def test_strided_logits(nan_poison):
    """Logits sliced from [B, T+1, V] (strided in T) and with a strided vocabulary."""
    batch, options = make_batch(2, 4, 40, seed=4)
    padded = torch.cat([batch["logits"], torch.randn(2, 1, 40)], dim=1)
    sliced = dict(batch, logits=padded[:, :-1])
    assert not sliced["logits"].is_contiguous()
    check_against_reference(sliced, dict(options, beta=0.1))
    vocab_strided = padded[:, :-1].transpose(0, 2).contiguous().transpose(0, 2)
    check_against_reference(dict(batch, logits=vocab_strided), dict(options, beta=0.1))


@INTERPRETER_INF_WARNINGS
def test_extreme_logits_and_zero_advantages(nan_poison):
    batch, options = make_batch(2, 3, 50, seed=5)
    logits = batch["logits"]
    logits[0, 0, :20] = 1e4
    logits[0, 1] = -1e4
    logits[1, 0, 1::2] = float("-inf")
    batch["targets"][1, 0] = 4  # a finite entry
    batch["mask"][1] = True
    options = policy_inputs(batch, "random", True, True, torch.Generator().manual_seed(0), 2.0)
    # At |logits / T| = 5e3 fp32 resolves only ~5e-4, so the yardstick is float64 (the fp32
    # reference is no closer to it than the kernel).
    check_against_reference(batch, dict(options, beta=0.1, temperature=2.0),
                            ref_dtype=torch.float64, tol=2e-3)

    zero = dict(batch, advantages=torch.zeros(2))
    out, grad = run(gro_policy_loss, zero, **dict(options, beta=0.0))
    assert out.loss.item() == 0.0 and torch.count_nonzero(grad) == 0


@INTERPRETER_INF_WARNINGS
def test_masked_tokens_contribute_nothing(nan_poison):
    """A masked token whose target logit is -inf (logp = -inf) leaves loss and grads finite
    and equal to the same batch with a finite logit there."""
    batch, options = make_batch(seed=14)
    masked = (~batch["mask"]).nonzero()[0].tolist()
    finite, _ = run(gro_policy_loss, batch, **dict(options, beta=0.1))
    batch["logits"][masked[0], masked[1], batch["targets"][masked[0], masked[1]]] = float("-inf")
    out, grad = run(gro_policy_loss, batch, **dict(options, beta=0.1))
    assert out.logprobs[masked[0], masked[1]] == float("-inf")
    assert torch.equal(out.loss, finite.loss)
    assert torch.isfinite(grad).all()


def test_fully_masked_batch(nan_poison):
    batch, options = make_batch(2, 3, 40, seed=6)
    batch["mask"] = torch.zeros(2, 3, dtype=torch.bool)
    for loss_agg in LOSS_AGGREGATIONS:
        out, grad = run(gro_policy_loss, batch, **dict(options, beta=0.1, loss_agg=loss_agg))
        assert out.loss.item() == 0.0 and torch.count_nonzero(grad) == 0
        assert torch.isfinite(out.logprobs).all()


def test_improvement_none_equals_zeros(nan_poison):
    batch, options = make_batch(improvement="none", seed=7)
    grpo, grad_grpo = run(gro_policy_loss, batch, **options)
    zeros, grad_zeros = run(gro_policy_loss, batch, **dict(options, improvement=torch.zeros(3)))
    assert torch.equal(grpo.loss, zeros.loss)
    assert torch.equal(grad_grpo, grad_zeros)


def test_gro_is_grpo_with_shaped_advantage(nan_poison):
    """GRO(A, dphi) is GRPO with advantages (1 + dphi) * A; with dphi = 0 it is GRPO."""
    batch, options = make_batch(improvement="random", seed=8)
    improvement = options.pop("improvement")
    gro, grad_gro = run(gro_policy_loss, batch, improvement=improvement, **options)
    scaled = dict(batch, advantages=(1 + improvement) * batch["advantages"])
    grpo, grad_grpo = run(gro_policy_loss, scaled, **options)
    assert_rel_close(gro.loss, grpo.loss, 1e-6, "loss")
    assert_rel_close(grad_gro, grad_grpo, 1e-6, "dlogits")
    plain, _ = run(gro_policy_loss, batch, **options)
    assert not torch.allclose(plain.loss, gro.loss), "the improvement had no effect"


def test_inplace_backward(nan_poison):
    batch, options = make_batch(dtype=torch.bfloat16, seed=9)
    _, expected = run(gro_policy_loss, batch, **options)
    source = batch["logits"].clone().requires_grad_()
    produced = source * 1.0  # logits produced by an op, as from an LM head
    out = gro_policy_loss(produced, batch["targets"], batch["mask"], batch["advantages"],
                          inplace_backward=True, **options)
    out.loss.backward()
    assert torch.equal(produced.detach(), expected), "logits buffer not overwritten"
    assert torch.equal(source.grad, expected)


def test_cpu_reference_dispatch():
    batch, options = make_batch(seed=10)
    with force_backend("reference"):
        out, grad = run(gro_policy_loss, batch, **options)
    ref, grad_ref = run(reference_gro_policy_loss, batch, **options)
    assert torch.equal(out.loss, ref.loss) and torch.equal(grad, grad_ref)


@pytest.mark.parametrize("loss_agg", [pytest.param(a, id=a) for a in LOSS_AGGREGATIONS])
def test_reference_gradcheck(loss_agg):
    batch, options = make_batch(2, 3, 4, improvement="random", seed=11)
    logits = batch["logits"].double().requires_grad_()

    def loss(x):
        return reference_gro_policy_loss(x, batch["targets"], batch["mask"], batch["advantages"],
                                         beta=0.1, loss_agg=loss_agg, **options).loss

    assert torch.autograd.gradcheck(loss, (logits,), eps=1e-6, atol=1e-5)


BAD_INPUTS = [
    pytest.param("logits", lambda b: b["logits"][0], ValueError, id="logits-2d"),
    pytest.param("targets", lambda b: b["targets"] + 100, ValueError, id="targets-out-of-range"),
    pytest.param("targets", lambda b: b["targets"].float(), TypeError, id="targets-float"),
    pytest.param("mask", lambda b: b["mask"][:, :2], ValueError, id="mask-shape"),
    pytest.param("advantages", lambda b: b["advantages"][:2], ValueError, id="advantages-shape"),
    pytest.param("advantages", lambda b: b["advantages"].long(), TypeError, id="advantages-int"),
    pytest.param("improvement", lambda b: torch.zeros(2), ValueError, id="improvement-shape"),
    pytest.param("old_logprobs", lambda b: torch.zeros(3, 4), ValueError, id="old-shape"),
    pytest.param("eps_low", lambda b: 1.0, ValueError, id="eps-low-1"),
    pytest.param("eps_high", lambda b: -0.1, ValueError, id="eps-high-negative"),
    pytest.param("beta", lambda b: -1.0, ValueError, id="beta-negative"),
    pytest.param("temperature", lambda b: 0.0, ValueError, id="temperature-zero"),
    pytest.param("loss_agg", lambda b: "sum", ValueError, id="loss-agg-unknown"),
    pytest.param("max_length", lambda b: 0, ValueError, id="max-length-zero"),
    pytest.param("ref_logprobs", lambda b: None, ValueError, id="beta-without-ref"),
]


@pytest.mark.parametrize("name,bad,error", BAD_INPUTS)
def test_bad_inputs_raise(name, bad, error):
    batch, options = make_batch(seed=12)
    arguments = dict(batch, **options, beta=0.1)
    arguments[name] = bad(arguments)
    match = "ref_logprobs" if name == "ref_logprobs" else name
    with pytest.raises(error, match=match):
        gro_policy_loss(**arguments)


def test_options_are_checked_once_and_kept_as_floats():
    """Ints become floats (a kernel would specialise on an int); the object is immutable."""
    options = PolicyLossOptions(eps_low=0, eps_high=1, beta=0, temperature=2, max_length=9)
    for name in ("eps_low", "eps_high", "beta", "temperature"):
        assert type(getattr(options, name)) is float, name
    assert options.max_length == 9
    with pytest.raises(dataclasses.FrozenInstanceError):
        options.beta = 0.1
    with pytest.raises(TypeError, match="beta"):
        PolicyLossOptions(beta="0.1")
    with pytest.raises(ValueError, match="max_length"):
        PolicyLossOptions(max_length=2.5)


@pytest.mark.gpu
def test_qwen_vocab_on_gpu():
    batch, options = make_batch(2, 64, 151_936, torch.bfloat16, seed=13)
    cuda = {k: v.cuda() for k, v in batch.items()}
    check_against_reference(cuda, {k: v.cuda() for k, v in options.items()})


# The logits-level kernels compiled for sm_90 (H100) with the GPU block size and bf16
# logits, without a GPU (see tests.helpers.compile_for_sm90).
_COMPILE_SM90 = r"""
import triton
from triton.backends.compiler import GPUTarget
from triton.compiler import ASTSource
from gro_fast.ops.policy_loss import triton as PL
from gro_fast.ops.token_logprobs import triton as TL
block, warps = TL.launch_config(151936)
flags = dict(HAS_OLD=True, HAS_REF=True, WITH_ENTROPY=True, ENTROPY_GRAD=True, BLOCK_V=block)
for fn in (PL._gro_policy_loss_fwd_kernel, TL._token_logprobs_fwd_kernel, TL._token_logprobs_bwd_kernel):
    sig, given = {}, {}
    for i, name in enumerate(fn.arg_names):
        if name in flags:
            sig[name], given[(i,)] = "constexpr", flags[name]
        elif name in ("logits_ptr", "dlogits_ptr"):
            sig[name] = "*bf16"
        elif name == "targets_ptr":
            sig[name] = "*i64"
        elif name.endswith("_ptr"):
            sig[name] = "*fp32"
        else:
            sig[name] = "fp32" if name in ("inv_temp", "eps_low", "eps_high", "beta") else "i32"
    triton.compile(ASTSource(fn=fn, signature=sig, constexprs=given),
                   target=GPUTarget("cuda", 90, 32), options=dict(num_warps=warps))
print("compiled")
"""


def test_kernels_compile_for_sm90():
    compile_for_sm90(_COMPILE_SM90)
