"""REC, counting and mask rewards, and the reward registry."""
import builtins
import json

import numpy as np
import pytest
import torch

from gro_fast.rewards import (available_rewards, count_reward, get_reward, graded_count_reward,
                              mask_iou_reward, rec_accuracy_reward, rec_iou_reward,
                              register_reward)
from gro_fast.rewards import registry


def answer(boxes):
    return "<think>t</think><answer>" + json.dumps(
        [{"bbox_2d": b, "point_2d": [b[0], b[1]]} for b in boxes]) + "</answer>"


def test_rec_iou_first_and_any():
    text = answer([[100, 100, 199, 199], [0, 0, 9, 9]])
    assert rec_iou_reward(text, [0, 0, 9, 9]) == 0.0                 # strict: first box
    assert rec_iou_reward(text, [0, 0, 9, 9], mode="any") == 1.0      # VisionReasoner eval
    # inclusive: inter 5 x 10, union 150 -> 1/3; continuous: 4 x 9 / (81 + 81 - 36)
    assert rec_iou_reward(answer([[0, 0, 9, 9]]), [5, 0, 14, 9]) == pytest.approx(50 / 150)
    assert rec_iou_reward(answer([[0, 0, 9, 9]]), [5, 0, 14, 9], inclusive=False) == \
        pytest.approx(36 / 126)
    assert rec_iou_reward(answer([[0, 0, 9, 9]]), [{"bbox_2d": [0, 0, 9, 9]}]) == 1.0
    assert rec_iou_reward("<answer>[oops</answer>", np.array([0, 0, 9, 9])) == 0.0


def test_rec_accuracy_threshold_is_strict():
    half = answer([[0, 0, 9, 4]])                                      # IoU 50/100 = 0.5
    assert rec_iou_reward(half, [0, 0, 9, 9]) == pytest.approx(0.5)
    assert rec_accuracy_reward(half, [0, 0, 9, 9]) == 0.0
    assert rec_accuracy_reward(half, [0, 0, 9, 9], iou_threshold=0.4) == 1.0
    with pytest.raises(ValueError, match="mode"):
        rec_iou_reward(half, [0, 0, 9, 9], mode="best")


def test_count_rewards():
    three = answer([[0, 0, 1, 1]] * 3)
    assert count_reward(three, 3) == 1.0 and count_reward(three, 4) == 0.0
    assert count_reward(three, [{"bbox_2d": [0, 0, 1, 1]}] * 3) == 1.0
    assert graded_count_reward(three, 4) == pytest.approx(0.75)
    assert graded_count_reward(three, 0) == 0.0                        # |3 - 0| / max(0, 1)
    assert graded_count_reward(answer([]), 0) == 1.0
    assert count_reward("<answer>nope</answer>", 0) == 0.0             # unparseable never counts
    with pytest.raises(ValueError, match="gt"):
        count_reward(three, -1)
    with pytest.raises(ValueError, match="gt"):
        count_reward(three, 2.5)


def test_mask_iou_reward_with_and_without_the_op(monkeypatch):
    pred = np.zeros((2, 4, 4), dtype=bool)
    pred[0, :2, :2] = True
    pred[1, 2:, 2:] = True                  # OR of both: 8 pixels
    gt = torch.zeros(4, 4, dtype=torch.uint8)
    gt[:2, :] = 1                           # 8 pixels, 4 shared
    expected = 4 / 12
    assert mask_iou_reward(pred, gt) == pytest.approx(expected)
    real_import = builtins.__import__

    def no_mask_op(name, globals=None, locals=None, fromlist=(), level=0):
        if name == "gro_fast.ops" and fromlist and "mask_iou" in fromlist:
            raise ImportError("mask_iou unavailable")
        return real_import(name, globals, locals, fromlist, level)

    monkeypatch.setattr(builtins, "__import__", no_mask_op)
    assert mask_iou_reward(pred, gt) == pytest.approx(expected)
    assert mask_iou_reward(np.zeros((4, 4)), np.zeros((4, 4))) == 1.0
    with pytest.raises(ValueError, match="same H, W"):
        mask_iou_reward(np.zeros((4, 4)), np.zeros((5, 4)))
    with pytest.raises(ValueError, match="pred_masks"):
        mask_iou_reward(np.zeros(4), np.zeros((4, 4)))


def test_registry_builtins_and_user_rewards(tmp_path, monkeypatch):
    assert {"format", "accuracy", "vision_reasoner", "count", "mask_iou"} <= set(available_rewards())
    text = answer([[0, 0, 9, 9]])
    assert get_reward("format")(text, None) == 1.0
    assert get_reward("rec_iou")(text, [0, 0, 9, 9]) == 1.0
    monkeypatch.setattr(registry, "_REGISTRY", dict(registry._REGISTRY))
    register_reward("length", lambda response, ground_truth: float(len(response)))
    assert get_reward("length")("abc", None) == 3.0
    with pytest.raises(ValueError, match="already registered"):
        register_reward("length", len)
    with pytest.raises(TypeError, match="callable"):
        register_reward("x", 3)
    user = tmp_path / "my_reward.py"
    user.write_text("def score(response, ground_truth):\n    return 0.25 * len(ground_truth)\n")
    assert get_reward(f"{user}:score")("x", [1, 2]) == 0.5
    with pytest.raises(ValueError, match="no callable"):
        get_reward(f"{user}:missing")
    with pytest.raises(ValueError, match="does not exist"):
        get_reward(f"{tmp_path}/nope.py:score")
    with pytest.raises(ValueError, match="unknown reward 'nope'"):
        get_reward("nope")
