"""EasyR1, contract-tested: EasyR1 is not on PyPI (and its package is also named ``verl``,
so it cannot sit beside veRL), so these tests stand in for it with the contract read from
hiyouga/EasyR1 at commit b44b311 (July 2026):

- the reward function file is loaded by path, ``REWARD_TYPE`` read from it ("batch"), and
  the function called with ``list[RewardInput]`` (``response``, ``response_length``,
  ``ground_truth``) plus ``worker.reward.reward_function_kwargs``; it returns one
  ``RewardScore`` dict per row whose ``overall`` is written at the row's last response
  token of ``token_level_rewards``; every key is averaged into the metrics;
- ``verl.trainer.core_algos.register_adv_estimator(name)`` is a decorator storing the
  function in ``ADV_ESTIMATOR_MAP``; the trainer calls it as ``fn(token_level_rewards=,
  response_mask=, index=<uid array>, gamma=, lam=)``.
The stand-ins below implement that contract in a few lines (no EasyR1 code).
"""
import importlib.util
import json
import sys
import types

import numpy as np
import pytest
import torch

from gro_fast.algo import GROConfig, gro_rewards_and_advantages
from gro_fast.rewards import vision_reasoner_reward

from .helpers import GT
from .helpers import answer as _answer



def answer(shift: int, objects=GT) -> str:
    return _answer(objects, shift)


EASYR1_FILE = importlib.util.find_spec("gro_fast.integrations.easyr1").origin
G, SIZE = 3, (112, 112)
GROUPS = [(answer(10), [answer(0), answer(7), "nothing"]),
          ("nothing", [answer(2), "bad", answer(0)]),
          (answer(4, GT[:1]), [answer(4), answer(0), answer(1, GT[:1])])]


@pytest.fixture
def easyr1_registry(monkeypatch):
    """``verl.trainer.core_algos`` as EasyR1 defines it (registry contract only)."""
    core_algos = types.ModuleType("verl.trainer.core_algos")
    core_algos.ADV_ESTIMATOR_MAP = {}

    def register_adv_estimator(name):
        def decorator(fn):
            core_algos.ADV_ESTIMATOR_MAP[getattr(name, "value", name)] = fn
            return fn
        return decorator

    core_algos.register_adv_estimator = register_adv_estimator
    trainer = types.ModuleType("verl.trainer")
    trainer.core_algos = core_algos
    verl = types.ModuleType("verl")
    verl.trainer = trainer
    for name, module in (("verl", verl), ("verl.trainer", trainer),
                         ("verl.trainer.core_algos", core_algos)):
        monkeypatch.setitem(sys.modules, name, module)
    return core_algos.ADV_ESTIMATOR_MAP


def _load_reward_file():
    """As EasyR1's AutoRewardManager does: import the file by path, read REWARD_TYPE."""
    spec = importlib.util.spec_from_file_location("custom_reward_fn", EASYR1_FILE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert getattr(module, "REWARD_TYPE", "batch") == "batch"
    return module.compute_score


def _gro_inputs():
    inputs = []
    for g, (o1, samples) in enumerate(GROUPS):
        for i, text in enumerate([o1, *samples]):
            gt = {"solution": json.dumps(GT), "gro_group": f"prompt-{g}",
                  "gro_role": "initial" if i == 0 else "response", "image_size": list(SIZE)}
            inputs.append({"response": text, "response_length": 4 + i, "ground_truth": json.dumps(gt)})
    return inputs


def _token_level_rewards(scores, lengths, width=12):
    rewards = torch.zeros(len(scores), width)
    mask = torch.zeros(len(scores), width)
    for i, (score, n) in enumerate(zip(scores, lengths)):
        rewards[i, n - 1] = score["overall"]
        mask[i, :n] = 1
    return rewards, mask


def test_batch_reward_and_gro_estimator_give_gro_shaped_advantages(easyr1_registry):
    from gro_fast.integrations import easyr1
    easyr1.register()
    estimator = easyr1_registry["gro"]
    inputs = _gro_inputs()
    scores = _load_reward_file()(inputs, omega=5.0)
    rewards, mask = _token_level_rewards(scores, [x["response_length"] for x in inputs])
    index = np.array([json.loads(x["ground_truth"])["gro_group"] for x in inputs], dtype=object)
    advantages, returns = estimator(token_level_rewards=rewards, response_mask=mask, index=index,
                                    gamma=1.0, lam=1.0)
    expected = gro_rewards_and_advantages([o for o, _ in GROUPS], [s for _, s in GROUPS],
                                          [GT] * 3, [SIZE] * 3, GROConfig(omega=5.0))
    assert expected.fell_back.tolist() == [False, True, False] and (expected.improvement > 0).any()
    per_row = advantages[torch.arange(len(inputs)), 0]
    want = torch.cat([torch.cat([torch.zeros(1), expected.shaped_advantages[g]]) for g in range(3)])
    torch.testing.assert_close(per_row, want, rtol=0, atol=0)
    assert torch.equal(advantages, returns) and (advantages[mask == 0] == 0).all()
    for row, x in zip(scores, inputs):
        assert row["vision_reasoner"] == pytest.approx(vision_reasoner_reward(x["response"], GT))
        assert set(row) == set(scores[0])  # EasyR1 averages every key over the batch


def test_plain_ground_truth_scores_vision_reasoners_total():
    compute_score = _load_reward_file()
    texts = [answer(0), answer(6), "no", answer(0, GT[:1])]
    inputs = [{"response": t, "response_length": 5, "ground_truth": json.dumps(GT)} for t in texts]
    inputs.append({"response": answer(0, GT[:1]), "response_length": 5,
                   "ground_truth": "[10, 12, 50, 60]"})  # one box, as VLM-R1 REC rows give
    scores = compute_score(inputs)
    for row, x in zip(scores[:4], inputs):
        assert row["overall"] == pytest.approx(vision_reasoner_reward(x["response"], GT))
        assert row["format"] == 1.0 or x["response"] == "no"
    assert scores[4]["overall"] == pytest.approx(7.0)


def test_gro_layout_errors_are_named():
    compute_score = _load_reward_file()
    inputs = _gro_inputs()
    inputs[0], inputs[1] = inputs[1], inputs[0]  # a response before its initial response
    with pytest.raises(ValueError, match="prompt-0.*rows must be \\[initial, response x G\\]"):
        compute_score(inputs)
    bad = json.dumps({"solution": json.dumps(GT), "gro_group": 1, "gro_role": "revised"})
    with pytest.raises(ValueError, match="gro_role must be one of"):
        compute_score([{"response": "x", "response_length": 1, "ground_truth": bad}])


def test_launcher_registers_in_every_ray_worker(monkeypatch, easyr1_registry):
    from gro_fast.integrations import easyr1
    calls = {}
    ray = types.ModuleType("ray")
    ray.is_initialized = lambda: False
    ray.init = lambda **kwargs: calls.setdefault("init", kwargs)
    main = types.ModuleType("verl.trainer.main")
    main.main = lambda: calls.setdefault("main", True)
    monkeypatch.setitem(sys.modules, "ray", ray)
    monkeypatch.setitem(sys.modules, "verl.trainer.main", main)
    easyr1.main()
    hook = calls["init"]["runtime_env"]["worker_process_setup_hook"]
    module, _, name = hook.rpartition(".")
    assert getattr(importlib.import_module(module), name) is easyr1.register
    assert calls["main"] and "gro" in easyr1_registry
