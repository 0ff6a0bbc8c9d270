"""Scoring step: lays a rollout's rows out for ``gro_fast.algo`` and its signals on them.

Every trained row's advantage A and improvement dphi come from ``gro_fast.algo``
(``gro_rewards_and_advantages`` then ``row_signals``): GRO revisions, GRPO samples (every
prompt scored as fallen back), initial responses when ``train_initial`` is on, and custom
rewards (``algorithm.reward``) alike. This module only gathers the rollout's texts and
ground truth, puts the signals on a ``SequenceBatch`` and computes the step's metrics.
No model runs here.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import torch

from gro_fast.algo import (all_fail_improvements, batch_statistics, gro_rewards_and_advantages,
                           row_signals)

from .rollout import Rollout
from .sequences import SequenceBatch


BY_KIND = {"all_fail_frac": "all_fail_fraction", "zero_variance_frac": "zero_variance_fraction",
           "improved_frac": "improved_fraction"}
"""The step metrics also logged per kind of scene (``<metric>/<kind>``, with ``groups/<kind>``),
and the ``gro_fast.algo.batch_statistics`` key each one reads."""


@dataclass
class Scored:
    batch: SequenceBatch
    metrics: dict
    all_fail_improvement: list[float] = field(default_factory=list)
    """Improvement of every revision of the revised groups whose revisions all fail: the
    signal GRPO lacks there (empty for GRPO, whose improvement is 0 by construction)."""


def score_rollout(rollout: Rollout, algorithm, *, pad_id: int, image_token_id: int) -> Scored:
    """Rewards and advantages of every row of ``rollout`` plus the step's metrics;
    ``algorithm`` is the recipe's algorithm section (a ``GROConfig`` with ``reward``)."""
    groups = rollout.groups
    texts = [[s.text for s in g.samples] for g in groups]
    # A GRPO group has no initial response; its first sample stands in (dphi is 0 anyway).
    initial = [g.initial.text if g.initial is not None else t[0] for g, t in zip(groups, texts)]
    scores = gro_rewards_and_advantages(
        initial, texts, [p.objects for p in rollout.prompts],
        [tuple(p.input_size) for p in rollout.prompts], algorithm,
        [g.fell_back for g in groups], reward=algorithm.reward)
    advantages, improvement = row_signals(scores, [seq.group for seq in rollout.sequences],
                                          [seq.role == "initial" for seq in rollout.sequences])
    batch = SequenceBatch(rollout.sequences, pad_id=pad_id, image_token_id=image_token_id,
                          advantages=advantages, improvement=improvement)
    return Scored(batch=batch, metrics=_metrics(scores, rollout, algorithm),
                  all_fail_improvement=all_fail_improvements(scores, algorithm))


def _metrics(scores, rollout: Rollout, algorithm) -> dict:
    s = scores.stats
    lengths = [len(seq.completion_ids) for seq in rollout.sequences]
    return {**_by_difficulty(scores, rollout, algorithm),
        "reward_mean": float(scores.rewards.mean()),
        "reward_std": float(scores.rewards.std()) if scores.rewards.numel() > 1 else 0.0,
        "accuracy_mean": float(scores.accuracy.mean()) / 3.0,
        "dphi_mean": s["mean_dphi"],
        "improved_frac": s["improved_fraction"],
        "all_fail_frac": s["all_fail_fraction"],
        "zero_variance_frac": s["zero_variance_fraction"],
        "fell_back_frac": s["fallback_fraction"],
        "response_length": sum(lengths) / max(1, len(lengths)),
    }


def _by_difficulty(scores, rollout: Rollout, algorithm) -> dict:
    """Per kind of scene K among this step's prompts (the synthetic task's "easy", "hard",
    "single"; a ``mixed`` task draws two): ``groups/K`` (its number of groups) and each
    ``BY_KIND`` metric over those groups. Nothing for dataset rows, which have no kind."""
    kinds = [getattr(p, "difficulty", "") for p in rollout.prompts]
    present = sorted(set(kinds) - {""})
    out = {}
    for kind in present:
        keep = torch.tensor([k == kind for k in kinds])
        s = batch_statistics(scores, scores.base_rewards, algorithm, groups=keep)
        out[f"groups/{kind}"] = int(keep.sum())
        out.update({f"{metric}/{kind}": s[key] for metric, key in BY_KIND.items()})
    return out
