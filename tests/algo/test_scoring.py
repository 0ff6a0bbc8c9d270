"""gro_rewards_and_advantages end to end, the revision query, well-formedness and GROConfig."""
import json
import math
import random

import pytest
import torch

from gro_fast.algo import (DETAILED_REVISION_TEMPLATE, GROConfig, alignment_cost, batch_statistics,
                           group_advantages, gro_rewards_and_advantages,
                           is_well_formed, revision_query)
from gro_fast.rewards import accuracy_reward, vision_reasoner_reward

A = {"bbox_2d": [0, 0, 99, 99], "point_2d": [50, 50]}
B = {"bbox_2d": [120, 120, 179, 179], "point_2d": [150, 150]}
SHIFTED = {"bbox_2d": [20, 0, 119, 99], "point_2d": [50, 50]}   # accuracy 2 against A
SIZE = (100, 100)


def answer(objs, think="I check the image"):
    return f"<think>{think}</think><answer>{json.dumps(objs)}</answer>"


def test_hand_worked_prompt():
    # o1 = SHIFTED (Phi1 > 0); revision 1 exact (Phi 0, dphi 1), revision 2 = o1 (dphi 0)
    s = gro_rewards_and_advantages([answer([SHIFTED])], [[answer([A]), answer([SHIFTED])]],
                                   [[A]], [SIZE])
    phi1 = (1 - 8000 / 12000 + 40 / 100 / 4 + 0.0) / 3
    assert s.initial_alignment_cost.tolist() == pytest.approx([phi1])
    assert s.alignment_cost[0].tolist() == pytest.approx([0.0, phi1])
    assert s.improvement.tolist() == [[1.0, 0.0]]
    assert s.accuracy.tolist() == [[3.0, 2.0]]
    assert s.rewards.tolist() == [[7.0 + 5.0, 6.0]]                 # VisionReasoner total + 5 dphi
    half = 1 / math.sqrt(2)                                         # (12 - 9) / std(12, 6)
    assert s.advantages.tolist()[0] == pytest.approx([half, -half], rel=1e-5)
    assert s.shaped_advantages.tolist()[0] == pytest.approx([2 * half, -half], rel=1e-5)
    assert not s.fell_back.item()
    assert s.stats["improved_fraction"] == 0.5 and s.stats["mean_dphi"] == 0.5


def test_malformed_initial_response_falls_back_to_grpo():
    group = [answer([A]), answer([SHIFTED]), "<answer>[</answer>"]
    initials = ["<think>no answer</think>", answer([SHIFTED]), answer([{"bbox_2d": [0, 0, 9, 9]}])]
    s = gro_rewards_and_advantages(initials, [group] * 3, [[A]] * 3, [SIZE] * 3,
                                   fell_back=[False, True, False])
    assert s.fell_back.tolist() == [True, True, True]   # malformed, flagged, missing point
    assert s.improvement.abs().sum() == 0
    expected = torch.tensor([[vision_reasoner_reward(t, [A]) for t in group]] * 3)
    assert torch.equal(s.rewards, expected)
    assert s.stats["fallback_fraction"] == 1.0 and s.stats["mean_dphi"] == 0.0


def _random_batch(seed, prompts=6, group=4):
    rng = random.Random(seed)
    pool = [A, B, SHIFTED, {"bbox_2d": [5, 5, 90, 95], "point_2d": [40, 60]}]
    gts = [[rng.choice(pool) for _ in range(rng.randint(1, 3))] for _ in range(prompts)]
    def response():
        if rng.random() < 0.15:
            return rng.choice(["", "<answer>[{]</answer>", "<think>a</think><answer>[]</answer>"])
        return answer([rng.choice(pool) for _ in range(rng.randint(0, 3))])
    initial = [response() for _ in gts]
    samples = [[response() for _ in range(group)] for _ in gts]
    return initial, samples, gts, [(rng.randint(100, 300), rng.randint(100, 300)) for _ in gts]


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_batch_agrees_with_single_response_functions(seed):
    initial, samples, gts, sizes = _random_batch(seed)
    s = gro_rewards_and_advantages(initial, samples, gts, sizes)
    for p in range(len(initial)):
        assert s.fell_back[p].item() == (not is_well_formed(initial[p]))
        phi1 = alignment_cost(initial[p], gts[p], sizes[p])
        assert s.initial_alignment_cost[p].item() == pytest.approx(phi1, abs=1e-6)
        for i, text in enumerate(samples[p]):
            phi2 = alignment_cost(text, gts[p], sizes[p])
            dphi = 0.0 if s.fell_back[p] or phi1 == 0 else max(0.0, (phi1 - phi2) / phi1)
            assert s.improvement[p, i].item() == pytest.approx(dphi, abs=1e-6)
            assert s.accuracy[p, i].item() == pytest.approx(accuracy_reward(text, gts[p]), rel=1e-6)
            assert s.rewards[p, i].item() == pytest.approx(
                vision_reasoner_reward(text, gts[p]) + 5.0 * dphi, abs=1e-5)
    assert torch.equal(s.shaped_advantages.sign(), s.advantages.sign())


def test_omega_zero_without_improvement_is_exactly_grpo():
    initial, samples, gts, sizes = _random_batch(3)
    cfg = GROConfig(omega=0.0)
    s = gro_rewards_and_advantages(initial, samples, gts, sizes, config=cfg,
                                   fell_back=[True] * len(initial))
    base = torch.tensor([[vision_reasoner_reward(t, g) for t in group]
                         for group, g in zip(samples, gts)], dtype=torch.float64)
    assert torch.equal(s.advantages, group_advantages(base).float())
    assert torch.equal(s.shaped_advantages, s.advantages)


def test_reward_terms_scale_and_post_scaling_are_configurable():
    initial, samples, gts, sizes = _random_batch(4)
    acc_only = gro_rewards_and_advantages(initial, samples, gts, sizes,
                                          config=GROConfig(reward_terms=("accuracy",), omega=0.0))
    assert torch.equal(acc_only.rewards, acc_only.accuracy)
    plain = gro_rewards_and_advantages(initial, samples, gts, sizes,
                                       config=GROConfig(post_scale=False, advantage_scale="none"))
    assert torch.equal(plain.shaped_advantages, plain.advantages)
    assert torch.allclose(plain.advantages, plain.rewards - plain.rewards.mean(1, keepdim=True))


def test_statistics():
    fail = answer([B])
    s = gro_rewards_and_advantages([answer([SHIFTED]), answer([SHIFTED])],
                                   [[fail, fail], [answer([A]), fail]], [[A], [A]], [SIZE] * 2)
    st = s.stats
    assert st["all_fail_fraction"] == 0.5                  # prompt 0: both revisions miss
    assert st["zero_variance_fraction"] == 0.5
    assert st["fallback_fraction"] == 0.0
    assert st["improved_fraction"] == 0.25
    assert st["mean_accuracy"] == pytest.approx(0.75)
    assert all(isinstance(v, float) for v in st.values())


@pytest.mark.parametrize("seed", [5, 6])
def test_statistics_of_some_groups_are_those_of_their_own_batch(seed):
    """``batch_statistics(..., groups=mask)``: a mixed task's per-kind statistics are the
    statistics of the batch of those prompts alone (groups are scored independently)."""
    initial, samples, gts, sizes = _random_batch(seed)
    cfg = GROConfig()
    full = gro_rewards_and_advantages(initial, samples, gts, sizes, config=cfg)
    keep = [p % 3 != 1 for p in range(len(initial))]
    own = gro_rewards_and_advantages(*([x for x, k in zip(seq, keep) if k]
                                       for seq in (initial, samples, gts, sizes)), config=cfg)
    some = batch_statistics(full, full.base_rewards, cfg, groups=torch.tensor(keep))
    assert some == pytest.approx(own.stats)
    assert batch_statistics(full, full.base_rewards, cfg) == pytest.approx(full.stats)
    with pytest.raises(ValueError, match="groups"):
        batch_statistics(full, full.base_rewards, cfg, groups=torch.tensor(keep[:-1]))


def test_bad_batch_inputs_are_named():
    ok = ([answer([A])], [[answer([A])]], [[A]], [SIZE])
    with pytest.raises(ValueError, match="samples"):
        gro_rewards_and_advantages(ok[0], [[answer([A])], []], ok[2], ok[3])
    with pytest.raises(ValueError, match=r"samples\[0\]"):
        gro_rewards_and_advantages(ok[0], [[]], ok[2], ok[3])
    with pytest.raises(ValueError, match=r"ground_truths\[0\]"):
        gro_rewards_and_advantages(ok[0], ok[1], [[{"point_2d": [1, 1]}]], ok[3])
    with pytest.raises(ValueError, match="image_sizes"):
        gro_rewards_and_advantages(ok[0], ok[1], ok[2], [(0, 5)])
    with pytest.raises(ValueError, match="fell_back"):
        gro_rewards_and_advantages(*ok, fell_back=[True, False])
    with pytest.raises(TypeError, match="config"):
        gro_rewards_and_advantages(*ok, config={"omega": 5})


def test_revision_query_shows_the_attempt_and_no_ground_truth():
    o1 = answer([SHIFTED], think="The dog is on the left")
    short = revision_query("the dog", o1)   # the default template shows the objects only
    assert "the dog" in short and '"bbox_2d": [20, 0, 119, 99]' in short
    assert "The dog is on the left" not in short and "{" + "objects}" not in short
    q2 = revision_query("the dog", o1, template=DETAILED_REVISION_TEMPLATE)
    assert "the dog" in q2 and "The dog is on the left" in q2
    assert '"bbox_2d": [20, 0, 119, 99]' in q2 and "discard" in q2
    assert "{query}" not in q2 and '{"bbox_2d": [x1, y1, x2, y2]' in q2
    custom = revision_query("q {objects}", o1, template="Q={query} O={objects} {{kept}} {other}")
    assert custom.startswith("Q=q {objects} O=[{") and custom.endswith("{kept} {other}")
    with pytest.raises(ValueError, match="template"):
        revision_query("q", o1, template="only {query}")
    with pytest.raises(TypeError, match="query"):
        revision_query(None, o1)


def test_is_well_formed_is_the_maximal_format_reward():
    assert is_well_formed(answer([A, B]))
    assert not is_well_formed(answer([]))
    assert not is_well_formed(answer([A, {"bbox_2d": [1, 2, 3, 4]}]))
    assert not is_well_formed("<answer>" + json.dumps([A]) + "</answer>")
    assert not is_well_formed(None)


def test_config_validation():
    assert GROConfig().omega == 5.0 and GROConfig().penalize_extra and not GROConfig().train_initial
    for kwargs, match in [({"omega": -1.0}, "omega"), ({"advantage_scale": "x"}, "advantage_scale"),
                          ({"reward_terms": ("format",)}, "reward_terms"),
                          ({"iou_threshold": 2.0}, "iou_threshold"), ({"eps": float("nan")}, "eps")]:
        with pytest.raises(ValueError, match=match):
            GROConfig(**kwargs)


def test_repeated_texts_are_scored_per_prompt():
    same = answer([A])
    s = gro_rewards_and_advantages([answer([SHIFTED]), same], [[same, same, answer([B])]] * 2,
                                   [[A], [B]], [SIZE, (200, 200)])
    assert s.accuracy.tolist() == [[3.0, 3.0, 0.0], [0.0, 0.0, 3.0]]
    assert s.alignment_cost[1, 0].item() == pytest.approx(alignment_cost(same, [B], (200, 200)))
    assert s.initial_alignment_cost[1].item() == s.alignment_cost[1, 0].item()   # o1 repeated as a sample
