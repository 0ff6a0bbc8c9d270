"""Next-token sampling: greedy, temperature, top-k, top-p, behaviour log-probs."""
import pytest
import torch

from gro_fast.generation import SamplingParams, sample_next, truncate_logits


def _logits(B=4, V=50, seed=0):
    return torch.randn(B, V, generator=torch.Generator().manual_seed(seed)) * 3


def test_greedy_is_argmax_with_untempered_logprob():
    logits = _logits()
    tokens, logp = sample_next(logits, SamplingParams(temperature=0), None)
    assert torch.equal(tokens, logits.argmax(-1))
    torch.testing.assert_close(logp, torch.log_softmax(logits, -1).gather(-1, tokens[:, None])[:, 0])


@pytest.mark.parametrize("params", [pytest.param(SamplingParams(top_k=1), id="top_k=1"),
                                    pytest.param(SamplingParams(top_p=1e-6), id="top_p~0")])
def test_degenerate_truncation_is_greedy(params):
    logits = _logits()
    tokens, _ = sample_next(logits, params, torch.Generator().manual_seed(0))
    assert torch.equal(tokens, logits.argmax(-1))


def test_logprob_is_tempered_and_untruncated():
    logits = _logits()
    params = SamplingParams(temperature=0.5, top_k=5, top_p=0.8)
    tokens, logp = sample_next(logits, params, torch.Generator().manual_seed(1))
    torch.testing.assert_close(logp, torch.log_softmax(logits / 0.5, -1).gather(-1, tokens[:, None])[:, 0])


def test_truncation_keeps_the_right_sets():
    logits = torch.log(torch.tensor([[0.5, 0.3, 0.15, 0.05]]))
    kept = lambda out: torch.isfinite(out)[0].tolist()  # noqa: E731
    assert kept(truncate_logits(logits, 2, 1.0)) == [True, True, False, False]
    assert kept(truncate_logits(logits, 0, 0.8)) == [True, True, False, False]
    assert kept(truncate_logits(logits, 0, 0.81)) == [True, True, True, False]
    assert kept(truncate_logits(logits, 0, 0.5)) == [True, False, False, False]


def test_sampling_follows_the_distribution():
    probs = torch.tensor([0.6, 0.3, 0.1])
    logits = torch.log(probs).expand(20000, 3)
    tokens, _ = sample_next(logits, SamplingParams(), torch.Generator().manual_seed(0))
    freq = torch.bincount(tokens, minlength=3).float() / tokens.numel()
    torch.testing.assert_close(freq, probs, atol=0.02, rtol=0)


@pytest.mark.parametrize("kwargs", [dict(temperature=-0.1), dict(top_p=0.0), dict(top_p=1.5),
                                    dict(top_k=-1), dict(top_k=2.5)])
def test_bad_params_raise(kwargs):
    with pytest.raises(ValueError, match=next(iter(kwargs))):
        SamplingParams(**kwargs)


@pytest.mark.parametrize("params", [pytest.param(SamplingParams(temperature=0), id="greedy"),
                                    pytest.param(SamplingParams(temperature=1.0), id="sampled")])
def test_suppressed_tokens_are_never_drawn(params):
    logits = torch.zeros(500, 6)
    logits[:, 2] = 10.0  # the favourite, suppressed
    suppress = torch.tensor([2, 4])
    tokens, logp = sample_next(logits, params, torch.Generator().manual_seed(0), suppress)
    assert not torch.isin(tokens, suppress).any()
    torch.testing.assert_close(logp, torch.log_softmax(logits, -1).gather(-1, tokens[:, None])[:, 0])
