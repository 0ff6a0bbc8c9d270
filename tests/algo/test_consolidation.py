"""Alignment cost Phi and improvement dphi: hand-worked values and invariants."""
import json
import random

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from gro_fast.algo import alignment_cost, alignment_costs, improvement
from gro_fast.rewards import ParsedObject, parse_response

A = {"bbox_2d": [0, 0, 99, 99], "point_2d": [50, 50]}
B = {"bbox_2d": [100, 100, 199, 199], "point_2d": [150, 150]}
C = {"bbox_2d": [150, 0, 199, 49], "point_2d": [175, 25]}
SIZE = (200, 200)


def answer(objs):
    return f"<think>t</think><answer>{json.dumps(objs)}</answer>"


SHIFTED = {"bbox_2d": [10, 0, 109, 99], "point_2d": [60, 50]}
# 1 - IoU = 1 - 9000 / 11000; box L1 = (10 + 10) / 200 / 4; point L1 = 10 / 200 / 2
E_SHIFTED = (2 / 11 + 0.025 + 0.025) / 3


@pytest.mark.parametrize("pred, gt, expected", [
    pytest.param([A], [A], 0.0, id="one-exact"),
    pytest.param([SHIFTED], [A], E_SHIFTED, id="one-shifted"),
    pytest.param([], [A, B], 1.0, id="empty-answer"),
    pytest.param([A], [A, B], 0.5, id="one-missing"),
    pytest.param([A, B, C], [A, B], 1 / 3, id="one-extra"),
    pytest.param([B, SHIFTED], [A, B], E_SHIFTED / 2, id="many-permuted"),
    pytest.param([{"bbox_2d": [0, 0, 99, 99]}], [A], 1 / 3, id="missing-point"),
    pytest.param([{"point_2d": [50, 50]}], [A], 2 / 3, id="missing-box"),
    # point 950 px off in a 200 px image: the point term clamps at 1
    pytest.param([{"bbox_2d": [0, 0, 99, 99], "point_2d": [1000, 50]}], [A], 1 / 3, id="clamp"),
])
def test_phi_hand_examples(pred, gt, expected):
    assert alignment_cost(answer(pred), gt, SIZE) == pytest.approx(expected)
    assert alignment_cost(pred, gt, SIZE) == pytest.approx(expected)  # solution-format objects


def test_phi_extra_penalty_option_and_edge_cases():
    assert alignment_cost([A, B, C], [A, B], SIZE, penalize_extra=False) == 0.0
    assert alignment_cost([A, C], [A], SIZE, penalize_extra=False) == 0.0
    assert alignment_cost("<answer>[{'bbox_2d': 1}]</answer>", [A], SIZE) == 1.0
    assert alignment_cost("no answer at all", [A], SIZE) == 1.0
    assert alignment_cost([], [], SIZE) == 0.0
    assert alignment_cost([A], [], SIZE) == 1.0
    assert alignment_cost([A], [], SIZE, penalize_extra=False) == 0.0
    parsed = parse_response(answer([SHIFTED]))
    assert alignment_cost(parsed.objects, [A], SIZE) == pytest.approx(E_SHIFTED)
    assert alignment_cost([ParsedObject((0, 0, 99, 99), None)], [A], SIZE) == pytest.approx(1 / 3)
    with pytest.raises(ValueError, match="image_sizes"):
        alignment_cost([A], [A], (0, 100))
    with pytest.raises(TypeError, match="pred_objects"):
        alignment_cost(3, [A], SIZE)


def test_batched_phi_equals_single_calls():
    rng = random.Random(1)
    objs = [A, B, C, SHIFTED]
    preds = [[rng.choice(objs) for _ in range(rng.randint(0, 4))] for _ in range(10)]
    gts = [[rng.choice(objs) for _ in range(rng.randint(1, 3))] for _ in range(10)]
    sizes = [(rng.randint(150, 400), rng.randint(150, 400)) for _ in range(10)]
    batched = alignment_costs(preds, gts, sizes)
    single = [alignment_cost(p, g, s) for p, g, s in zip(preds, gts, sizes)]
    assert batched.tolist() == pytest.approx(single)


OBJ = st.builds(lambda x, y, w, h, px, py: {"bbox_2d": [x, y, x + w, y + h], "point_2d": [px, py]},
                st.floats(-50, 300), st.floats(-50, 300), st.floats(0, 200), st.floats(0, 200),
                st.floats(-100, 400), st.floats(-100, 400))


@settings(max_examples=60, deadline=None)
@given(st.lists(OBJ, max_size=5), st.lists(OBJ, min_size=1, max_size=5),
       st.tuples(st.integers(1, 500), st.integers(1, 500)), st.randoms(use_true_random=False),
       st.booleans())
def test_phi_in_unit_interval_and_order_free(pred, gt, size, rnd, penalize):
    phi = alignment_cost(pred, gt, size, penalize_extra=penalize)
    assert 0.0 <= phi <= 1.0
    pred2, gt2 = pred[:], gt[:]
    rnd.shuffle(pred2)
    rnd.shuffle(gt2)
    assert alignment_cost(pred2, gt2, size, penalize_extra=penalize) == pytest.approx(phi, abs=1e-12)
    assert alignment_cost(gt, gt, size) == pytest.approx(0.0, abs=1e-12)


def test_improvement_hand_examples_and_types():
    assert improvement(0.5, 0.25) == pytest.approx(0.5)
    assert improvement(0.5, 0.6) == 0.0            # worse: no credit
    assert improvement(0.0, 0.3) == 0.0            # nothing to improve
    assert improvement(0.4, 0.0) == 1.0
    phi1 = np.array([0.5, 0.0])
    phi2 = np.array([[0.25, 0.5], [0.0, 1.0]])
    out = improvement(phi1, phi2)                  # [P] against [P, G]: per row
    assert isinstance(out, np.ndarray) and out.tolist() == [[0.5, 0.0], [0.0, 0.0]]
    t = improvement(torch.tensor([0.8, 0.8], dtype=torch.float32), torch.tensor([[0.2, 0.8], [0.4, 1.0]]))
    assert t.dtype == torch.float32 and torch.allclose(t, torch.tensor([[0.75, 0.0], [0.5, 0.0]]))
    with pytest.raises(ValueError, match="phi_revised"):
        improvement(0.5, float("nan"))
    with pytest.raises(ValueError, match="phi_initial"):
        improvement(1.5, 0.5)


@settings(max_examples=100, deadline=None)
@given(st.floats(0, 1), st.floats(0, 1))
def test_improvement_in_unit_interval(phi1, phi2):
    d = improvement(phi1, phi2)
    assert 0.0 <= d <= 1.0
    assert (d > 0) == (phi2 < phi1)
