"""VisionReasoner rewards: hand-worked values, a brute-force check of the Hungarian
accuracy, permutation invariance and the batched form."""
import itertools
import json
import random

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gro_fast.rewards import (accuracy_reward, accuracy_rewards, format_reward,
                              non_repeat_reward, object_format_reward, vision_reasoner_reward)
from gro_fast.ops import box_iou
import torch

A = {"bbox_2d": [0, 0, 99, 99], "point_2d": [50, 50]}
B = {"bbox_2d": [200, 200, 299, 299], "point_2d": [250, 250]}
C = {"bbox_2d": [500, 500, 550, 550], "point_2d": [525, 525]}


def answer(objs, think="I look at the image"):
    return f"<think>{think}</think><answer>{json.dumps(objs)}</answer>"


def test_format_rewards():
    assert format_reward(answer([A])) == 1.0
    assert format_reward("<answer>[]</answer>") == 0.0
    assert object_format_reward(answer([A, B])) == 2.0
    half = answer([{"bbox_2d": [1, 2, 3, 4]}, {"bbox_2d": [1, 2, 3, 4], "point_2d": [1, 2]}])
    assert object_format_reward(half) == pytest.approx(1.5)
    assert object_format_reward(answer([{"bbox_2d": [1, 2, 3], "point_2d": ["1", 2]}])) == 0.0
    assert object_format_reward(answer([])) == 0.0
    assert object_format_reward("<think>a</think><answer>[oops</answer>") == 0.0


@pytest.mark.parametrize("pred, gt, expected", [
    pytest.param([A], [A], 3.0, id="one-exact"),
    pytest.param([A], [A, B], 1.5, id="one-missing"),
    pytest.param([A, B, C], [A, B], 2.0, id="one-extra"),
    pytest.param([B, A], [A, B], 3.0, id="many-permuted"),
    pytest.param([C], [A], 0.0, id="one-wrong"),
    # IoU 8000/12000 hit, L1 = 10 px is not < 10, point hit: 2
    pytest.param([{"bbox_2d": [20, 0, 119, 99], "point_2d": [50, 50]}], [A], 2.0, id="l1-border"),
    # point 5 px away but outside its own box (x = 100 > x2 = 99): 2
    pytest.param([{"bbox_2d": [0, 0, 99, 99], "point_2d": [100, 50]}],
                 [{"bbox_2d": [0, 0, 99, 99], "point_2d": [95, 50]}], 2.0, id="point-outside"),
    # on the border counts as inside: 3
    pytest.param([{"bbox_2d": [0, 0, 99, 99], "point_2d": [99, 50]}],
                 [{"bbox_2d": [0, 0, 99, 99], "point_2d": [95, 50]}], 3.0, id="point-border"),
    # inclusive IoU = 15/25 = 0.6 > 0.5 (continuous IoU would be 8/16 = 0.5, no hit);
    # L1 = 0.5 px hit; points 1 px apart, inside: 3
    pytest.param([{"bbox_2d": [0, 0, 2, 4], "point_2d": [1, 2]}],
                 [{"bbox_2d": [0, 0, 4, 4], "point_2d": [2, 2]}], 3.0, id="inclusive-iou"),
    pytest.param([A, {"bbox_2d": [1, 1, 5, 5]}], [A], 0.0, id="object-missing-point"),
])
def test_accuracy_hand_examples(pred, gt, expected):
    assert accuracy_reward(answer(pred), gt) == pytest.approx(expected)
    assert accuracy_reward(answer(pred), json.dumps(gt)) == pytest.approx(expected)


def test_accuracy_thresholds_are_configurable():
    shifted = answer([{"bbox_2d": [20, 0, 119, 99], "point_2d": [50, 50]}])
    assert accuracy_reward(shifted, [A], l1_threshold=10.5) == 3.0
    assert accuracy_reward(shifted, [A], iou_threshold=0.7, l1_threshold=10.5) == 2.0
    assert accuracy_reward(shifted, [A], point_threshold=0.0) == 1.0


def test_accuracy_truncates_each_side_to_120():
    many = [A] * 130
    assert accuracy_reward(answer(many), many) == 3.0
    assert accuracy_reward(answer([A] * 120), many) == 3.0


def test_non_repeat():
    assert non_repeat_reward("a. b. c.") == 1.0
    assert non_repeat_reward("a. b. a. c") == 1.0          # one repeat is tolerated
    assert non_repeat_reward("a. b. a. b.") == 0.0
    assert non_repeat_reward("a.. .  a .a") == 0.0         # empty pieces dropped, stripped
    assert non_repeat_reward("") == 1.0


def test_vision_reasoner_total():
    assert vision_reasoner_reward(answer([A]), [A]) == 7.0
    text = answer([{"bbox_2d": [20, 0, 119, 99], "point_2d": [50, 50]}], think="start. x. x. x. end")
    assert vision_reasoner_reward(text, [A]) == 1.0 + 2.0 + 2.0 + 0.0


def _brute_force_accuracy(pred, gt):
    """Spec transcription with an exhaustive search over matchings (small M, N)."""
    p_boxes = torch.tensor([o["bbox_2d"] for o in pred], dtype=torch.float64)
    g_boxes = torch.tensor([o["bbox_2d"] for o in gt], dtype=torch.float64)
    iou = box_iou(p_boxes, g_boxes, inclusive=True)
    cost = np.zeros((len(pred), len(gt)))
    for m, p in enumerate(pred):
        for n, g in enumerate(gt):
            l1 = np.mean(np.abs(np.subtract(p["bbox_2d"], g["bbox_2d"])))
            dist = np.hypot(*np.subtract(p["point_2d"], g["point_2d"]))
            x1, y1, x2, y2 = p["bbox_2d"]
            inside = x1 <= p["point_2d"][0] <= x2 and y1 <= p["point_2d"][1] <= y2
            cost[m, n] = 3 - (float(iou[m, n]) > 0.5) - (l1 < 10) - (dist < 30 and inside)
    k = min(len(pred), len(gt))
    if len(pred) <= len(gt):
        best = min(sum(cost[m, n] for m, n in zip(range(k), ns))
                   for ns in itertools.permutations(range(len(gt)), k))
    else:
        best = min(sum(cost[m, n] for m, n in zip(ms, range(k)))
                   for ms in itertools.permutations(range(len(pred)), k))
    return (3 * k - best) / max(len(pred), len(gt))


OBJ = st.builds(lambda x, y, w, h, px, py: {"bbox_2d": [x, y, x + w, y + h],
                                             "point_2d": [x + px, y + py]},
                st.integers(0, 60), st.integers(0, 60), st.integers(0, 40), st.integers(0, 40),
                st.integers(-10, 50), st.integers(-10, 50))


@settings(max_examples=60, deadline=None)
@given(st.lists(OBJ, min_size=1, max_size=4), st.lists(OBJ, min_size=1, max_size=4),
       st.randoms(use_true_random=False))
def test_accuracy_matches_brute_force_and_ignores_order(pred, gt, rnd):
    expected = _brute_force_accuracy(pred, gt)
    assert accuracy_reward(answer(pred), gt) == pytest.approx(expected)
    pred2, gt2 = pred[:], gt[:]
    rnd.shuffle(pred2)
    rnd.shuffle(gt2)
    assert accuracy_reward(answer(pred2), gt2) == pytest.approx(expected)
    assert 0.0 <= expected <= 3.0


def test_batched_accuracy_equals_single_calls():
    rng = random.Random(0)
    texts, gts = [], []
    for _ in range(12):
        gt = [rng.choice([A, B, C]) for _ in range(rng.randint(1, 4))]
        pred = [rng.choice([A, B, C]) for _ in range(rng.randint(0, 4))]
        texts.append(answer(pred) if rng.random() > 0.2 else "<answer>[{</answer>")
        gts.append(gt)
    batched = accuracy_rewards(texts, gts)
    assert batched.tolist() == [accuracy_reward(t, g) for t, g in zip(texts, gts)]
    with pytest.raises(ValueError, match="same length"):
        accuracy_rewards(texts, gts[:-1])
    with pytest.raises(ValueError, match=r"gt_objects\[0\]"):
        accuracy_rewards(texts[:1], [[{"point_2d": [1, 2]}]])


def test_batched_pair_iou_is_exactly_box_iou():
    """The scorer's paired IoU (rewards/matching.py) must equal gro_fast.ops.box_iou with
    the inclusive-pixel convention, bit for bit: integer, fractional, degenerate, touching
    and large boxes."""
    import numpy as np
    import torch

    from gro_fast.ops import box_iou
    from gro_fast.rewards.matching import pair_geometry, stack_objects
    from gro_fast.rewards.parsing import parse_response

    rng = np.random.default_rng(0)
    corners = np.concatenate([rng.integers(0, 60, (400, 2)), rng.uniform(-5, 900, (400, 2)),
                              rng.uniform(-1e6, 1e6, (200, 2))])
    sizes = np.concatenate([rng.integers(-3, 40, (400, 2)), rng.uniform(-2, 300, (400, 2)),
                            rng.uniform(0, 1e5, (200, 2))])
    boxes = np.concatenate([corners, corners + sizes], 1)
    boxes[::7, 2] = boxes[::7, 0]            # zero-width boxes
    half = len(boxes) // 2

    def response(b):
        objs = ", ".join('{"bbox_2d": [%r, %r, %r, %r], "point_2d": [0, 0]}' % tuple(map(float, r))
                         for r in [b])
        return parse_response(f"<think>.</think><answer>[{objs}]</answer>")

    pred = stack_objects([response(b) for b in boxes[:half]])
    gt = stack_objects([response(b) for b in boxes[half:]])
    ours = pair_geometry(pred, gt).iou
    expected = box_iou(torch.tensor(boxes[:half], dtype=torch.float32)[:, None],
                       torch.tensor(boxes[half:], dtype=torch.float32)[:, None], inclusive=True)
    assert np.array_equal(ours.astype(np.float32), expected.reshape(-1).numpy())
