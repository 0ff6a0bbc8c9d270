"""Every trained row's signal from one place: o1's reward and advantage, custom rewards,
and ``row_signals``' layout (G sample rows per prompt, initial rows, post-scaling on or off)."""
import json

import pytest
import torch

from gro_fast.algo import GROConfig, group_advantages, gro_rewards_and_advantages, row_signals
from gro_fast.rewards import RewardError, accuracy_reward, vision_reasoner_reward

A = {"bbox_2d": [0, 0, 99, 99], "point_2d": [50, 50]}
SHIFTED = {"bbox_2d": [20, 0, 119, 99], "point_2d": [50, 50]}
NEAR = {"bbox_2d": [4, 0, 103, 99], "point_2d": [50, 50]}


def answer(objs, think="I look"):
    return f"<think>{think}</think><answer>{json.dumps(objs)}</answer>"


def _batch():
    """Prompt 0 revised (o1 shifted, one exact revision); prompt 1 falls back (bad o1)."""
    initial = [answer([SHIFTED]), "no answer"]
    samples = [[answer([A]), answer([SHIFTED]), answer([NEAR])],
               [answer([A]), "nothing", answer([SHIFTED])]]
    return initial, samples, [[A], [A]], [(100, 100), (100, 100)]


def test_initial_reward_and_advantage_follow_the_configured_terms():
    initial, samples, gts, sizes = _batch()
    full = gro_rewards_and_advantages(initial, samples, gts, sizes)
    assert full.initial_rewards[0].item() == pytest.approx(vision_reasoner_reward(initial[0], gts[0]))
    base = full.base_rewards[0].double()
    r1 = vision_reasoner_reward(initial[0], gts[0])
    want = (r1 - base.mean()) / (torch.cat([torch.tensor([r1]).double(), base]).std() + 1e-6)
    assert full.initial_advantages[0].item() == pytest.approx(float(want), rel=1e-5)
    acc = gro_rewards_and_advantages(initial, samples, gts, sizes,
                                     GROConfig(reward_terms=("accuracy",)))
    assert acc.initial_rewards[0].item() == pytest.approx(accuracy_reward(initial[0], gts[0]))
    assert acc.initial_rewards[0].item() != full.initial_rewards[0].item()
    flat = gro_rewards_and_advantages(initial, samples, gts, sizes,
                                      GROConfig(advantage_scale="none"))
    assert flat.initial_advantages[0].item() == pytest.approx(
        float(flat.initial_rewards[0] - flat.base_rewards[0].double().mean()), rel=1e-6)


def test_a_custom_reward_is_r_format_plus_r_acc_and_keeps_the_improvement():
    initial, samples, gts, sizes = _batch()
    length = lambda text, gt: len(text) / 100.0  # noqa: E731
    s = gro_rewards_and_advantages(initial, samples, gts, sizes, reward=length)
    want = torch.tensor([[len(t) / 100.0 for t in g] for g in samples])
    torch.testing.assert_close(s.base_rewards, want)
    assert s.improvement[0, 0] == 1.0 and not s.fell_back[0] and s.fell_back[1]
    torch.testing.assert_close(s.rewards, want + 5.0 * s.improvement)
    # GRPO with a custom reward: every prompt fell back, A = group_advantages(fn values).
    grpo = gro_rewards_and_advantages(initial, samples, gts, sizes, fell_back=[True, True],
                                      reward=length)
    assert grpo.improvement.abs().sum() == 0
    torch.testing.assert_close(grpo.advantages, group_advantages(want.double()).float())


def test_a_custom_reward_that_overflows_the_advantages_is_a_reward_error():
    initial, samples, gts, sizes = _batch()
    values = iter([1.7e308, -1.7e308] * 10)
    with pytest.raises(RewardError, match="'huge'.*overflow"):
        gro_rewards_and_advantages(initial, samples, gts, sizes, fell_back=[True, True],
                                   reward=_named("huge", lambda text, gt: next(values)))
    with pytest.raises(RewardError, match="'bad'.*returned str"):
        gro_rewards_and_advantages(initial, samples, gts, sizes,
                                   reward=_named("bad", lambda text, gt: "1"))


def _named(name, fn):
    fn.__name__ = name
    return fn


def test_row_signals_lay_the_scores_on_the_trained_rows():
    initial, samples, gts, sizes = _batch()
    s = gro_rewards_and_advantages(initial, samples, gts, sizes)
    groups = [0, 0, 0, 1, 1, 1, 0]
    is_initial = [False] * 6 + [True]
    adv, dphi = row_signals(s, groups, is_initial)
    torch.testing.assert_close(adv[:6], s.advantages.reshape(-1))
    assert adv[6].item() == pytest.approx(s.initial_advantages[0].item())
    torch.testing.assert_close(dphi, torch.cat([s.improvement.reshape(-1), torch.zeros(1)]))
    # Rows in any order: the k-th sample row of a prompt is its sample k.
    adv2, _ = row_signals(s, [1, 0, 1, 0, 1, 0], [False] * 6)
    torch.testing.assert_close(adv2, s.advantages[[1, 0]].t().reshape(-1))
    with pytest.raises(ValueError, match="more rows than its 3"):
        row_signals(s, [0, 0, 0, 0], [False] * 4)
    with pytest.raises(ValueError, match="prompt 5"):
        row_signals(s, [5], [False])


def test_no_post_scaling_without_post_scale_or_revisions():
    initial, samples, gts, sizes = _batch()
    off = gro_rewards_and_advantages(initial, samples, gts, sizes, GROConfig(post_scale=False))
    assert row_signals(off, [0, 1], [False, False])[1] is None
    grpo = gro_rewards_and_advantages(initial, samples, gts, sizes, fell_back=[True, True])
    assert row_signals(grpo, [0, 1], [False, False])[1] is None
    on = gro_rewards_and_advantages(initial, samples, gts, sizes)
    assert row_signals(on, [0, 1], [False, False])[1] is not None


def test_an_initial_response_above_equal_samples_gets_a_bounded_advantage():
    """G equal samples have std 0: o1's advantage is still finite and signed (the std
    includes o1), and exactly 0 when o1 equals them too."""
    worse = {"bbox_2d": [30, 0, 129, 99], "point_2d": [50, 50]}
    s = gro_rewards_and_advantages([answer([worse]), answer([A])], [[answer([A])] * 4] * 2,
                                   [[A], [A]], [(100, 100)] * 2)
    r1, base = s.initial_rewards[0].item(), s.base_rewards[0, 0].item()
    assert r1 < base and s.advantages.abs().sum() == 0
    values = torch.tensor([r1] + [base] * 4, dtype=torch.float64)
    assert s.initial_advantages[0].item() == pytest.approx(
        (r1 - base) / (values.std().item() + 1e-6), rel=1e-5)
    assert -3 < s.initial_advantages[0].item() < 0 and s.initial_advantages[1].item() == 0.0
