"""group_advantages and shaped_advantages: hand-worked values, scales, types, invariants."""
import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from gro_fast.algo import group_advantages, shaped_advantages


def test_group_scale_uses_the_unbiased_std():
    a = group_advantages(torch.tensor([[1.0, 2.0, 3.0]]), eps=0.0)   # mean 2, std 1
    assert a.tolist() == [[-1.0, 0.0, 1.0]]
    a = group_advantages(np.array([[1.0, 3.0]]), eps=1e-6)            # std sqrt(2)
    assert a == pytest.approx(np.array([[-1.0, 1.0]]) / (math.sqrt(2) + 1e-6))


def test_batch_and_none_scales():
    r = torch.tensor([[1.0, 3.0], [2.0, 2.0]], dtype=torch.float64)
    batch = group_advantages(r, eps=0.0, scale="batch")               # std of 1, 3, 2, 2
    assert torch.allclose(batch, torch.tensor([[-1.0, 1.0], [0.0, 0.0]], dtype=torch.float64)
                          / math.sqrt(2 / 3))
    assert group_advantages(r, scale="none").tolist() == [[-1.0, 1.0], [0.0, 0.0]]


def test_flat_groups_and_single_samples_give_zero_not_nan():
    assert group_advantages(torch.full((2, 4), 3.0), eps=0.0).abs().sum() == 0
    assert group_advantages(torch.full((1, 6), 8.42971414, dtype=torch.float64)).abs().sum() == 0
    assert group_advantages(torch.tensor([[1.0], [5.0]])).tolist() == [[0.0], [0.0]]
    assert group_advantages(torch.tensor([[1.0], [5.0]]), scale="batch").tolist() == [[0.0], [0.0]]


def test_types_and_dtypes_follow_the_input():
    assert group_advantages(torch.ones(2, 3, dtype=torch.bfloat16)).dtype == torch.bfloat16
    assert group_advantages(torch.ones(2, 3, dtype=torch.int64)).dtype == torch.float32
    assert group_advantages(np.ones((2, 3), dtype=np.float32)).dtype == np.float32
    assert group_advantages([[1, 2], [3, 5]]).dtype == np.float32
    out = shaped_advantages(np.array([[1.0, -2.0]]), np.array([[0.5, 1.0]]))
    assert isinstance(out, np.ndarray) and out.tolist() == [[1.5, -4.0]]
    out = shaped_advantages(torch.tensor([[1.0, -2.0]]), torch.tensor([0.5, 0.0]))
    assert out.tolist() == [[1.5, -2.0]]


def test_bad_inputs_are_named():
    with pytest.raises(ValueError, match="2-D"):
        group_advantages(torch.ones(3))
    with pytest.raises(ValueError, match="finite"):
        group_advantages(torch.tensor([[1.0, float("nan")]]))
    with pytest.raises(ValueError, match="scale"):
        group_advantages(torch.ones(2, 2), scale="global")
    with pytest.raises(ValueError, match="eps"):
        group_advantages(torch.ones(2, 2), eps=-1.0)
    with pytest.raises(TypeError, match="rewards"):
        group_advantages([["a", "b"]])
    with pytest.raises(ValueError, match="dphi"):
        shaped_advantages(torch.ones(2, 2), torch.full((2, 2), -0.5))
    with pytest.raises(ValueError, match="broadcast"):
        shaped_advantages(torch.ones(2, 2), torch.zeros(3))


REWARDS = arrays(np.float64, st.tuples(st.integers(1, 5), st.integers(1, 8)),
                 elements=st.floats(-10, 10, allow_nan=False))


@settings(max_examples=80, deadline=None)
@given(REWARDS, st.sampled_from(["group", "batch", "none"]), st.data())
def test_shaped_advantage_keeps_signs_and_zero_improvement_is_grpo(rewards, scale, data):
    dphi = data.draw(arrays(np.float64, rewards.shape, elements=st.floats(0, 1)))
    a = group_advantages(rewards, scale=scale)
    shaped = shaped_advantages(a, dphi)
    assert np.array_equal(np.sign(shaped), np.sign(a))
    assert np.all(np.abs(shaped) >= np.abs(a))
    assert np.array_equal(shaped_advantages(a, np.zeros_like(dphi)), a)
    assert np.allclose(a.mean(axis=1), 0.0, atol=1e-9)
    flat = rewards.max(axis=1) == rewards.min(axis=1)
    assert np.all(a[flat] == 0.0)
