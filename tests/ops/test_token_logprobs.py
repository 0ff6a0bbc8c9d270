"""token_logprobs (Triton kernels; the interpreter on CPU) against the fp32 reference."""
import pytest
import torch

from gro_fast.ops import token_logprobs
from gro_fast.ops.token_logprobs import TokenLogprobsFunction, reference_token_logprobs
from tests.helpers import assert_rel_close

GRAD_TOL = {torch.float32: 1e-5, torch.bfloat16: 1e-2, torch.float16: 2e-3}

# numpy inside the Triton interpreter warns on 0 * inf before a tl.where discards it.
INTERPRETER_INF_WARNINGS = pytest.mark.filterwarnings("ignore:.*encountered in:RuntimeWarning")

def make_logits(B, T, V, dtype, scale=3.0, seed=0):
    g = torch.Generator().manual_seed(seed)
    logits = (torch.randn(B, T, V, generator=g) * scale).to(dtype)
    targets = torch.randint(0, V, (B, T), generator=g)
    return logits, targets


def check_against_reference(logits, targets, temperature=1.0, seed=1, ref_dtype=torch.float32,
                            tol=1e-5):
    """Forward (logp, entropy) and dlogits for random upstream grads of both outputs."""
    g = torch.Generator().manual_seed(seed)
    B, T, _ = logits.shape
    g_logp, g_ent = torch.randn(B, T, generator=g), torch.randn(B, T, generator=g)

    x = logits.detach().clone().requires_grad_()
    logp, entropy = token_logprobs(x, targets, temperature=temperature, return_entropy=True)
    (logp * g_logp + entropy * g_ent).sum().backward()

    x_ref = logits.detach().to(ref_dtype).requires_grad_()
    logp_ref, entropy_ref = reference_token_logprobs(x_ref, targets, temperature=temperature,
                                                     return_entropy=True)
    (logp_ref * g_logp + entropy_ref * g_ent).sum().backward()

    assert logp.dtype == torch.float32 and entropy.dtype == torch.float32
    assert_rel_close(logp, logp_ref, tol, "logp")
    assert_rel_close(entropy, entropy_ref, tol, "entropy")
    assert x.grad.dtype == logits.dtype
    assert_rel_close(x.grad.float(), x_ref.grad, max(tol, GRAD_TOL[logits.dtype]), "dlogits")


@pytest.mark.parametrize("dtype", [
    pytest.param(torch.float32, id="fp32"),
    pytest.param(torch.bfloat16, id="bf16"),
    pytest.param(torch.float16, id="fp16"),
])
@pytest.mark.parametrize("temperature", [pytest.param(1.0, id="T1"), pytest.param(0.7, id="T0.7")])
def test_matches_reference(nan_poison, dtype, temperature):
    logits, targets = make_logits(2, 5, 77, dtype)
    check_against_reference(logits, targets, temperature)


@pytest.mark.parametrize("B,T,V", [
    pytest.param(1, 1, 5, id="T1-V5"),
    pytest.param(2, 3, 32, id="V-one-block"),
    pytest.param(2, 2, 33, id="V-block-plus-1"),
    pytest.param(1, 3, 257, id="V-many-blocks"),
])
def test_odd_sizes(nan_poison, B, T, V):
    logits, targets = make_logits(B, T, V, torch.float32)
    check_against_reference(logits, targets)


def test_strided_logits(nan_poison):
    """A [B, T+1, V] slice (strided in T) and a non-contiguous V both work."""
    full, _ = make_logits(2, 5, 40, torch.float32)
    _, targets = make_logits(2, 4, 40, torch.float32, seed=3)
    check_against_reference(full[:, :-1], targets)
    transposed = full[:, :-1].transpose(1, 2).contiguous().transpose(1, 2)
    check_against_reference(transposed, targets)
    vocab_strided = full[:, :-1].transpose(0, 2).contiguous().transpose(0, 2)
    assert vocab_strided.stride(-1) != 1
    check_against_reference(vocab_strided, targets)


@INTERPRETER_INF_WARNINGS
def test_extreme_and_infinite_logits(nan_poison):
    logits, targets = make_logits(2, 3, 50, torch.float32)
    logits[0, 0, :25] = 1e4
    logits[0, 1, :] = -1e4
    logits[1, 0, ::3] = float("-inf")
    targets[1, 0] = 1  # not an -inf entry
    logits[1, 1, 7] = 1e4
    # At |logits / T| = 2e4 fp32 itself resolves only ~2e-3, so the yardstick is float64
    # (the fp32 reference is no closer to it than the kernel).
    check_against_reference(logits, targets, temperature=0.5, ref_dtype=torch.float64, tol=2e-3)


def test_entropy_only_backward(nan_poison):
    logits, targets = make_logits(2, 3, 40, torch.float32)
    x = logits.clone().requires_grad_()
    _, entropy = token_logprobs(x, targets, return_entropy=True)
    entropy.sum().backward()
    x_ref = logits.clone().requires_grad_()
    reference_token_logprobs(x_ref, targets, return_entropy=True)[1].sum().backward()
    assert_rel_close(x.grad, x_ref.grad, 1e-5, "dlogits")


def test_no_grad_path_saves_nothing(monkeypatch):
    logits, targets = make_logits(2, 3, 40, torch.float32)
    logits.requires_grad_()

    def fail(*args):
        raise AssertionError("the autograd Function ran under no_grad")

    monkeypatch.setattr(TokenLogprobsFunction, "apply", fail)
    with torch.no_grad():
        logp, entropy = token_logprobs(logits, targets, return_entropy=True)
    assert logp.grad_fn is None and entropy.grad_fn is None
    expected = reference_token_logprobs(logits.detach(), targets, return_entropy=True)
    assert_rel_close(logp, expected[0], 1e-5, "logp")
    assert_rel_close(entropy, expected[1], 1e-5, "entropy")


def test_inplace_backward_overwrites_logits(nan_poison):
    """Logits produced by an op (as from an LM head) receive their own gradient in place."""
    logits, targets = make_logits(2, 3, 40, torch.bfloat16)
    expected = logits.clone().requires_grad_()
    token_logprobs(expected, targets).sum().backward()

    source = logits.clone().requires_grad_()
    produced = source * 1.0
    token_logprobs(produced, targets, inplace_backward=True).sum().backward()
    assert torch.equal(produced.detach(), expected.grad), "logits buffer not overwritten"
    assert torch.equal(source.grad, expected.grad)


def test_reference_gradcheck():
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(2, 2, 5, generator=g, dtype=torch.float64, requires_grad=True)
    targets = torch.randint(0, 5, (2, 2), generator=g)

    def both(x):
        return reference_token_logprobs(x, targets, temperature=0.8, return_entropy=True)

    assert torch.autograd.gradcheck(both, (logits,))


@pytest.mark.parametrize("change,error,name", [
    pytest.param({"logits": "2d"}, ValueError, "logits", id="logits-2d"),
    pytest.param({"logits": "int"}, TypeError, "logits", id="logits-int"),
    pytest.param({"targets": "float"}, TypeError, "targets", id="targets-float"),
    pytest.param({"targets": "shape"}, ValueError, "targets", id="targets-shape"),
    pytest.param({"targets": "high"}, ValueError, "targets", id="targets-out-of-range"),
    pytest.param({"targets": "negative"}, ValueError, "targets", id="targets-negative"),
    pytest.param({"temperature": 0.0}, ValueError, "temperature", id="temperature-zero"),
    pytest.param({"temperature": float("nan")}, ValueError, "temperature", id="temperature-nan"),
])
def test_bad_inputs_raise(change, error, name):
    logits, targets = make_logits(2, 3, 10, torch.float32)
    temperature = change.get("temperature", 1.0)
    logits = {"2d": logits[0], "int": logits.long()}.get(change.get("logits"), logits)
    targets = {"float": targets.float(), "shape": targets[:, :2], "high": targets + 10,
               "negative": targets - 10}.get(change.get("targets"), targets)
    with pytest.raises(error, match=name):
        token_logprobs(logits, targets, temperature=temperature)


@pytest.mark.gpu
def test_qwen_vocab_on_gpu():
    logits, targets = make_logits(2, 64, 151_936, torch.bfloat16)
    check_against_reference(logits.cuda(), targets.cuda(), temperature=0.9)
