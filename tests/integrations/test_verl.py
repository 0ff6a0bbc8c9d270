"""veRL (the real verl 0.9 package): the custom reward function loaded by veRL's own loader,
and the ``gro`` estimator registered in veRL's registry and called by veRL's own
``compute_advantage`` on rewards laid out by veRL's own ``assemble_rm_scores``."""
import importlib.util
import json
import random
import types
import warnings

import numpy as np
import pytest
import torch

from gro_fast.algo import GROConfig, gro_rewards_and_advantages
from gro_fast.rewards import vision_reasoner_reward

from .helpers import GT
from .helpers import answer as _answer

# Decided without importing veRL (it takes seconds): the imports wait for the tests.
if importlib.util.find_spec("verl") is None:
    pytest.skip("veRL is not installed (scripts/setup_env.sh installs it)", allow_module_level=True)


@pytest.fixture(scope="module")
def verl():
    """veRL's modules these tests call; skipped where they do not import on this machine."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        core_algos = pytest.importorskip("verl.trainer.ppo.core_algos",
                                         reason="the installed 'verl' is not veRL")
        ray_trainer = pytest.importorskip("verl.trainer.ppo.ray_trainer",
                                          reason="veRL's trainer module does not import here")
        reward_base = pytest.importorskip("verl.experimental.reward_loop.reward_manager.base")
        reward = pytest.importorskip("verl.trainer.ppo.reward")
    from omegaconf import OmegaConf
    from verl import DataProto
    from gro_fast.integrations import verl as adapter
    adapter.register()
    return types.SimpleNamespace(core_algos=core_algos, ray_trainer=ray_trainer,
                                 reward_base=reward_base, reward=reward, OmegaConf=OmegaConf,
                                 DataProto=DataProto, adapter=adapter)


SIZE = (112, 112)
VERL_FILE = importlib.util.find_spec("gro_fast.integrations.verl").origin


def answer(shift: int, objects=GT) -> str:
    return _answer(objects, shift)


GROUPS = [  # (initial response, G = 4 responses)
    (answer(12), [answer(0), answer(4), "no answer", answer(20)]),
    ("no answer", [answer(3), answer(30), answer(0), "bad"]),            # falls back to GRPO
    (answer(6, GT[:1]), [answer(6), answer(1, GT[:1]), answer(9), answer(2)]),
]


def _batch(verl, rows: list[dict], uids: list[str], lengths: list[int]):
    """A veRL batch whose rm_scores veRL itself assembles from the rows' scores."""
    B, P, T = len(rows), 3, max(lengths) + 2
    response_mask = torch.zeros(B, T, dtype=torch.long)
    for i, n in enumerate(lengths):
        response_mask[i, :n] = 1
    data = verl.DataProto.from_dict(
        tensors={"prompts": torch.ones(B, P, dtype=torch.long),
                 "responses": torch.ones(B, T, dtype=torch.long),
                 "attention_mask": torch.cat([torch.ones(B, P, dtype=torch.long),
                                              response_mask], dim=1),
                 "response_mask": response_mask},
        non_tensors={"uid": np.array(uids, dtype=object)})
    scores = [r["score"] for r in rows]
    data.batch["token_level_rewards"] = \
        verl.reward_base.RewardManagerBase.assemble_rm_scores(data, scores)
    return data


def _interleaved(adapter):
    """Rows of all groups, groups interleaved, each group's own order kept ([o1, s_1..s_G])."""
    rows, uids, where = [], [], []
    scored = [adapter.gro_group_scores(o1, samples, json.dumps(GT), SIZE)
              for o1, samples in GROUPS]
    queues = [list(enumerate(group)) for group in scored]
    rng = random.Random(0)
    while any(queues):
        g = rng.choice([k for k, q in enumerate(queues) if q])
        i, row = queues[g].pop(0)
        rows.append(row)
        uids.append(f"uid-{g}")
        where.append((g, i))
    return rows, uids, where


def test_gro_is_registered_in_verls_registry(verl):
    verl.adapter.register()  # idempotent (the fixture registered it already)
    assert verl.core_algos.get_adv_estimator_fn("gro") is verl.adapter.gro_advantage


def test_verls_compute_advantage_trains_on_gro_shaped_advantages(verl):
    rows, uids, where = _interleaved(verl.adapter)
    lengths = [3 + (7 * k) % 5 for k in range(len(rows))]
    data = verl.ray_trainer.compute_advantage(_batch(verl, rows, uids, lengths),
                                              adv_estimator="gro",
                                              config=verl.OmegaConf.create({}))
    advantages = data.batch["advantages"]
    expected = gro_rewards_and_advantages([o1 for o1, _ in GROUPS], [s for _, s in GROUPS],
                                          [GT] * len(GROUPS), [SIZE] * len(GROUPS), GROConfig())
    assert expected.fell_back.tolist() == [False, True, False]
    assert (expected.improvement > 0).any()
    for row, ((g, i), n) in enumerate(zip(where, lengths)):
        want = 0.0 if i == 0 else float(expected.shaped_advantages[g, i - 1])
        torch.testing.assert_close(advantages[row, :n], torch.full((n,), want), rtol=0, atol=0)
        assert advantages[row, n:].abs().sum() == 0


def test_plain_rewards_with_the_gro_estimator_are_refused(verl):
    _, uids, where = _interleaved(verl.adapter)
    texts = [[o1, *samples] for o1, samples in GROUPS]
    plain = [verl.adapter.compute_score("refcocog", texts[g][i], json.dumps(GT))
             for g, i in where]
    with pytest.raises(ValueError, match="non-zero score"):
        verl.ray_trainer.compute_advantage(_batch(verl, plain, uids, [3] * len(plain)),
                                           adv_estimator="gro", config=verl.OmegaConf.create({}))
    with pytest.raises(ValueError, match="same 1 \\+ G >= 2 rows"):
        verl.adapter.gro_advantage(torch.zeros(3, 2), torch.ones(3, 2), np.array(["a", "a", "b"]))


@pytest.mark.parametrize("path", ["pkg://gro_fast.integrations.verl", VERL_FILE])
def test_verls_loader_finds_the_reward_function(verl, path):
    config = verl.OmegaConf.create({"reward": {"custom_reward_function": {
        "path": path, "name": "compute_score", "reward_kwargs": {}}}})
    compute_score = verl.reward.get_custom_reward_fn(config)
    for text in (answer(0), answer(5), answer(40), "no answer", answer(0, GT[:1])):
        result = compute_score(data_source="refcocog", solution_str=text,
                               ground_truth=json.dumps(GT), extra_info={"index": 0})
        assert result["score"] == pytest.approx(vision_reasoner_reward(text, GT))
        assert result["score"] == pytest.approx(sum(result[k] for k in (
            "think_format", "object_format", "accuracy", "non_repeat")))
