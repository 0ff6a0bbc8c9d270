"""Non-finite values from outside: custom rewards that return NaN / inf / None / strings,
rewards whose advantages overflow, inf logits in RL and in the warm start. Each is a clear
error naming the reward, or a skipped update with the weights untouched; never NaN weights."""
import math
import os
import warnings

import numpy as np
import pytest
import torch

from gro_fast.train.config import load_config
from gro_fast.train.distributed import World
from gro_fast.rewards import RewardError, reward_matrix, reward_value
from gro_fast.train.update import build_optimizer, build_scheduler, policy_update

from .runs import RECIPE

CPU = torch.device("cpu")
BAD = [float("nan"), float("inf"), -float("inf"), None, "0.5", "abc", b"1", [1.0], {"r": 1},
       object(), np.float64("nan"), torch.tensor(float("inf")), torch.tensor([1.0, 2.0]),
       np.array(["x"]), complex(1, 0)]


@pytest.mark.parametrize("value", BAD, ids=lambda v: type(v).__name__ + ":" + repr(v)[:12])
def test_a_reward_that_is_not_a_finite_number_is_named(value):
    with pytest.raises(RewardError, match=r"algorithm.reward 'my.py:fn' returned .* prompt 1, "
                                          r"sample 2.*finite number"):
        reward_matrix(lambda text, gt: value if text == "bad" else 0.5, "my.py:fn",
                      [["a", "b", "c"], ["a", "b", "bad"]], [[], []])


@pytest.mark.parametrize("value", [1, 0.25, True, np.float32(0.5), np.int64(3),
                                   torch.tensor(0.75), np.array([2.0])])
def test_finite_numbers_of_any_kind_are_accepted(value):
    assert reward_value(value, "r", "x") == float(np.asarray(value).reshape(()).item()
                                                  if not isinstance(value, torch.Tensor)
                                                  else value.item())


def test_a_reward_that_raises_is_named():
    def broken(text, gt):
        raise KeyError("bbox")
    with pytest.raises(RewardError, match=r"'broken.py:f' raised KeyError.*prompt 0, sample 0"):
        reward_matrix(broken, "broken.py:f", [["a"]], [[]])


def _reward_file(tmp_path, body):
    path = tmp_path / "reward.py"
    path.write_text(f"def fn(response, ground_truth=None, **_):\n    {body}\n")
    return f"{path}:fn"


@pytest.mark.parametrize("body,message", [
    ("return float('nan')", "returned nan"),
    ("return None", "returned NoneType"),
    ("n = globals().setdefault('n', [0])\n    n[0] += 1\n    return 1.7e308 if n[0] % 3 else -1e308",
     "rewards overflow"),
])
def test_training_with_a_bad_reward_stops_with_its_name(tmp_path, capsys, body, message):
    from gro_fast.train.cli import train_main
    spec = _reward_file(tmp_path, body)
    args = RECIPE + [f"trainer.output_dir={tmp_path / 'run'}", f"algorithm.reward={spec}",
                     "warm_start.steps=0", "trainer.steps=1", "rollout.max_new_tokens=4"]
    os.environ["GRO_FAST_KERNELS"] = "reference"
    try:
        assert train_main(args) == 2
    finally:
        del os.environ["GRO_FAST_KERNELS"]
    err = capsys.readouterr().err
    assert "reward error" in err and spec in err and message in err, err


@pytest.fixture
def tiny(reference_kernels):
    from gro_fast.models import tiny_qwen2_5_vl
    return tiny_qwen2_5_vl(seed=0)


def _batch(model, processor, advantages):
    from gro_fast.data import SyntheticGroundingTask, build_messages
    from gro_fast.train.sequences import Sequence, SequenceBatch
    from gro_fast.train.sft import encode_prompt
    sample = SyntheticGroundingTask(seed=0, image_size=56, length=1)[0]
    prefix, vision = encode_prompt(processor, build_messages(sample, "Find {query}."))
    seqs = [Sequence(prefix_ids=prefix, completion_ids=[5 + i, 7, 9], vision=vision, group=0)
            for i in range(len(advantages))]
    return SequenceBatch(seqs, pad_id=processor.tokenizer.pad_token_id,
                         image_token_id=model.config.image_token_id,
                         advantages=torch.tensor(advantages, dtype=torch.float32))


def _inf_logits(model):
    return model.lm_head.register_forward_hook(
        lambda module, args, out: out.masked_fill(torch.ones_like(out, dtype=torch.bool)
                                                  .tril_(0)[..., :1].expand_as(out),
                                                  float("inf")))


@pytest.mark.parametrize("case", ["inf_logits", "inf_advantage", "huge_advantage"])
def test_non_finite_rl_update_is_skipped_with_weights_untouched(tiny, case):
    model, processor = tiny
    advantages = {"inf_advantage": [float("inf"), -1.0], "huge_advantage": [3e38, -3e38]}.get(
        case, [1.0, -1.0])
    batch = _batch(model, processor, advantages)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    config = load_config(None, ["trainer.micro_batch_size=2"])
    optimizer = build_optimizer(model, 1e-2, 0.0)
    scheduler = build_scheduler(optimizer, warmup=0, total=4, cosine=True, min_ratio=0.1)
    hook = _inf_logits(model) if case == "inf_logits" else None
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            stats = policy_update(model, optimizer, scheduler, batch, config.algorithm,
                                  config.trainer, max_grad_norm=1.0, temperature=1.0, max_length=4, world=World(),
                                  device=CPU)
    finally:
        if hook is not None:
            hook.remove()
    assert stats["skipped_updates"] == 1 and stats["optimizer_steps"] == 0, stats
    assert any("non-finite" in str(w.message) for w in caught)
    for key, value in model.state_dict().items():
        assert torch.equal(value, before[key]), key


def test_non_finite_warm_start_step_is_skipped_with_weights_untouched(tiny):
    from gro_fast.data import SyntheticGroundingTask
    from gro_fast.train.sft import WarmStart
    model, processor = tiny
    before = {k: v.clone() for k, v in model.state_dict().items()}
    warm = WarmStart(model, processor, steps=2, lr=1e-2, batch_size=2, micro_batch_size=2,
                     template="Find {query}.", world=World(), device=CPU, log=lambda s: None)
    hook = _inf_logits(model)
    try:
        with pytest.warns(RuntimeWarning, match="warm-start step 1: non-finite"):
            warm.run(iter(SyntheticGroundingTask(seed=0, image_size=56, length=8)))
    finally:
        hook.remove()
    assert warm.step == 2 and all(not math.isfinite(v) for v in warm.history)
    assert warm.scheduler.last_epoch == 0 and not warm.optimizer.state
    for key, value in model.state_dict().items():
        assert torch.equal(value, before[key]), key
