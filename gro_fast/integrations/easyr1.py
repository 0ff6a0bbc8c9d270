"""GRO in EasyR1 (contract of hiyouga/EasyR1 at commit b44b311, July 2026; EasyR1 is not
on PyPI): the batch reward function and the ``gro`` advantage estimator.

Reward function (``worker.reward.reward_function=<this file>:compute_score``; EasyR1 loads
the file by path and reads its ``REWARD_TYPE = "batch"``): ``compute_score(reward_inputs,
image_size=(840, 840), **gro_options)`` takes EasyR1's ``RewardInput`` dicts
(``response``, ``response_length``, ``ground_truth``) of the whole batch and returns one
``RewardScore`` dict per row: ``overall`` (trained on) plus ``format``, ``accuracy`` and
the other terms (logged as ``reward/<key>``).

- A plain ``ground_truth`` (a solution JSON string, one box, a VLM-R1 answer) scores
  VisionReasoner's total (0..7) as ``overall``: a Seg-Zero / VisionReasoner GRPO run.
- A GRO row's ``ground_truth`` is a JSON object ``{"solution": ..., "gro_group": id,
  "gro_role": "initial" | "response", "image_size": [w, h] (optional), "fell_back":
  bool (optional, initial row)}``: the rollout that samples o1 and its G revisions writes
  it (EasyR1 has no revision turn of its own). Rows of one ``gro_group`` (the same prompt
  id) must come as ``[o1, s_1, ..., s_G]``; each group is scored with
  ``gro_fast.algo.gro_rewards_and_advantages``, and ``overall`` is A_hat (0 for o1); see
  ``gro_fast.integrations.groups`` for why the trained score is the shaped advantage.
  ``gro_options`` (``worker.reward.reward_function_kwargs``) are ``GROConfig`` fields.

``register()`` adds ``gro`` to EasyR1's ``verl.trainer.core_algos`` registry
(``register_adv_estimator``); ``algorithm.adv_estimator=gro`` then trains on each row's
score. It must run in EasyR1's ``Runner`` actor: start EasyR1 with
``python -m gro_fast.integrations.easyr1 config=...`` (same arguments as
``python -m verl.trainer.main``), which starts Ray with ``register`` as the worker setup
hook and then runs EasyR1's main.
"""
from __future__ import annotations

import json
from collections import OrderedDict

# Absolute imports: EasyR1 loads this file by its path.
from gro_fast.algo import GROConfig
from gro_fast.integrations.columns import ground_truth_objects
from gro_fast.integrations.groups import (ROLES, gro_outcome_advantage, score_groups,
                                          vision_reasoner_terms)

REWARD_NAME = "gro_fast"
REWARD_TYPE = "batch"
ESTIMATOR = "gro"
DEFAULT_IMAGE_SIZE = (840, 840)
"""Seg-Zero / VisionReasoner's fixed model-input size, used when a GRO row names none."""
RUNTIME_ENV_VARS = {"TOKENIZERS_PARALLELISM": "true", "NCCL_DEBUG": "WARN",
                    "VLLM_LOGGING_LEVEL": "WARN", "TORCH_NCCL_AVOID_RECORD_STREAMS": "1",
                    "PYTORCH_CUDA_ALLOC_CONF": "expandable_segments:False",
                    "CUDA_DEVICE_MAX_CONNECTIONS": "1", "VLLM_ALLREDUCE_USE_SYMM_MEM": "0"}
"""The environment EasyR1's main gives Ray (kept when the launcher starts Ray first)."""


def _gro_tag(ground_truth):
    """The GRO tag dict of a row's ground truth, or None for a plain ground truth."""
    if isinstance(ground_truth, str) and ground_truth.lstrip().startswith("{"):
        try:
            value = json.loads(ground_truth)
        except json.JSONDecodeError:
            return None
        ground_truth = value
    if isinstance(ground_truth, dict) and "gro_group" in ground_truth:
        role = ground_truth.get("gro_role")
        if role not in ROLES:
            raise ValueError(f"gro_role must be one of {ROLES}, got {role!r}")
        return ground_truth
    return None


def _easyr1_row(terms: dict, overall: float, extra: dict | None = None) -> dict:
    return {"overall": float(overall), "format": terms["think_format"],
            "accuracy": terms["accuracy"], "object_format": terms["object_format"],
            "non_repeat": terms["non_repeat"], "vision_reasoner": terms["vision_reasoner"],
            **(extra or {})}


def _gro_groups(reward_inputs, tags) -> "OrderedDict[object, list[int]]":
    groups: OrderedDict = OrderedDict()
    for row, tag in enumerate(tags):
        if tag is not None:
            groups.setdefault(tag["gro_group"], []).append(row)
    for key, rows in groups.items():
        roles = [tags[r]["gro_role"] for r in rows]
        if roles[0] != "initial" or "initial" in roles[1:] or len(rows) < 2:
            raise ValueError(f"gro_group {key!r}: rows must be [initial, response x G] with "
                             f"G >= 1, got roles {roles}")
    return groups


def _score_gro(reward_inputs, tags, groups, image_size, config) -> dict[int, dict]:
    out: dict[int, dict] = {}
    for rows in groups.values():
        head = tags[rows[0]]
        size = tuple(head.get("image_size") or image_size)
        gt = ground_truth_objects(head["solution"], size)
        scored = score_groups([reward_inputs[rows[0]]["response"]],
                              [[reward_inputs[r]["response"] for r in rows[1:]]], [gt], [size],
                              config, fell_back=[bool(head.get("fell_back", False))])[0]
        for row, values in zip(rows, scored):
            terms = {k: values[k] for k in ("think_format", "object_format", "accuracy",
                                            "non_repeat", "vision_reasoner")}
            extra = {k: values[k] for k in ("gro_reward", "advantage", "dphi", "phi",
                                            "fell_back", "initial")}
            out[row] = _easyr1_row(terms, values["score"], extra)
    return out


def compute_score(reward_inputs: list[dict], image_size=DEFAULT_IMAGE_SIZE,
                  **gro_options) -> list[dict]:
    """EasyR1 batch reward (see the module docstring)."""
    config = GROConfig(**gro_options)
    tags = [_gro_tag(item["ground_truth"]) for item in reward_inputs]
    groups = _gro_groups(reward_inputs, tags)
    scores = _score_gro(reward_inputs, tags, groups, image_size, config) if groups else {}
    plain = [r for r, tag in enumerate(tags) if tag is None]
    if plain:
        terms = vision_reasoner_terms(
            [reward_inputs[r]["response"] for r in plain],
            [ground_truth_objects(reward_inputs[r]["ground_truth"]) for r in plain])
        for r, t in zip(plain, terms):
            scores[r] = _easyr1_row(t, t["vision_reasoner"])
    keys = set().union(*(s.keys() for s in scores.values()))
    # EasyR1 averages every key over the batch: give rows missing a key a 0.
    return [{k: scores[r].get(k, 0.0) for k in sorted(keys)} for r in range(len(reward_inputs))]


def gro_advantage(token_level_rewards, response_mask, index, **kwargs):
    """EasyR1's estimator signature around :func:`gro_outcome_advantage`."""
    return gro_outcome_advantage(token_level_rewards, response_mask, index)


def register() -> None:
    """Register ``gro`` in EasyR1's advantage-estimator registry (idempotent)."""
    from verl.trainer import core_algos
    if not hasattr(core_algos, "register_adv_estimator"):
        raise ImportError("the installed 'verl' package is not EasyR1 (no "
                          "verl.trainer.core_algos.register_adv_estimator)")
    core_algos.register_adv_estimator(ESTIMATOR)(gro_advantage)


def main() -> None:
    """EasyR1's ``verl.trainer.main`` with ``gro`` registered in every Ray worker."""
    import ray
    from verl.trainer.main import main as easyr1_main
    register()
    if not ray.is_initialized():
        ray.init(runtime_env={"env_vars": RUNTIME_ENV_VARS,
                              "worker_process_setup_hook": "gro_fast.integrations.easyr1.register"})
    easyr1_main()


if __name__ == "__main__":
    main()
