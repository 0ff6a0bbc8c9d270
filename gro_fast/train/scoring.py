"""Scoring step: rewards, consolidation and advantages of a rollout, as per-row signals.

Calls ``gro_fast.algo.gro_rewards_and_advantages`` (VisionReasoner's R_format + R_acc,
GRO's improvement dphi, group-normalised advantages). GRPO is the same scorer with every
prompt marked as fallen back (dphi = 0). The result is put on the training rows: the
advantage A of each row and, when ``post_scale`` is on, its shaping dphi (the loss forms
A_hat = (1 + dphi) * A). With ``train_initial`` an initial response gets the advantage
of its own reward against the mean / std of its revisions' format + accuracy rewards
(ours: the paper does not say whether o1 is trained). No model runs here.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import torch

from .rollout import Rollout
from .sequences import SequenceBatch


@dataclass
class Scored:
    batch: SequenceBatch
    metrics: dict
    all_fail_dphi: list[float] = field(default_factory=list)
    """dphi of every revision of the GRO groups (not fallen back) whose revisions all fail:
    the signal GRPO lacks there (empty for GRPO, whose dphi is 0 by construction)."""


def gro_config(algorithm):
    """The ``GROConfig`` that the trainer's ``AlgorithmConfig`` describes."""
    from gro_fast.algo import DEFAULT_REVISION_TEMPLATE, GROConfig
    return GROConfig(omega=algorithm.omega, penalize_extra=algorithm.penalize_extra,
                     eps=algorithm.eps, advantage_scale=algorithm.advantage_scale,
                     post_scale=algorithm.post_scale,
                     revision_template=algorithm.revision_template or DEFAULT_REVISION_TEMPLATE,
                     train_initial=algorithm.train_initial)


def score_rollout(rollout: Rollout, algorithm, *, pad_id: int, image_token_id: int) -> Scored:
    """Rewards and advantages of every row of ``rollout`` plus the step's metrics."""
    from gro_fast.algo import gro_rewards_and_advantages
    texts = [[s.text for s in g.samples] for g in rollout.groups]
    gro = algorithm.name == "gro"
    if not gro and algorithm.reward != "vision_reasoner":
        return _score_custom_reward(rollout, texts, algorithm, pad_id, image_token_id)
    initial = [g.initial.text if gro and getattr(g, "initial", None) is not None else t[0]
               for g, t in zip(rollout.groups, texts)]
    fell_back = rollout.fell_back if gro else [True] * len(texts)
    cfg = gro_config(algorithm)
    scores = gro_rewards_and_advantages(
        initial, texts, [p.objects for p in rollout.prompts],
        [tuple(p.input_size) for p in rollout.prompts], cfg, fell_back)
    advantages, shaping = _row_signals(rollout, scores, algorithm, initial)
    batch = SequenceBatch(rollout.sequences, pad_id=pad_id, image_token_id=image_token_id,
                          advantages=advantages,
                          shaping=shaping if (gro and algorithm.post_scale) else None)
    return Scored(batch=batch, metrics=_metrics(scores, rollout),
                  all_fail_dphi=_all_fail_dphi(scores, cfg) if gro else [])


def _all_fail_dphi(scores, cfg) -> list[float]:
    """dphi of the revisions of all-fail GRO groups (``batch_statistics``'s definition)."""
    fail = (scores.accuracy < cfg.success_accuracy).all(1) & ~scores.fell_back.bool()
    return [float(v) for v in scores.dphi[fail].flatten()]


def _score_custom_reward(rollout: Rollout, texts, algorithm, pad_id: int,
                         image_token_id: int) -> Scored:
    """GRPO with a registered reward (``gro_fast.rewards.get_reward``): r = fn(text, objects),
    group-normalised advantages, no shaping."""
    from gro_fast.algo import group_advantages
    from gro_fast.rewards import get_reward
    rewards = reward_matrix(get_reward(algorithm.reward), algorithm.reward, texts,
                            [p.objects for p in rollout.prompts])
    try:
        adv = group_advantages(rewards, eps=algorithm.eps, scale=algorithm.advantage_scale)
    except ValueError as exc:
        raise RewardError(f"algorithm.reward {algorithm.reward!r}: {exc}") from exc
    adv = adv.float()
    G = rewards.shape[1]
    rows = [seq.group for seq in rollout.sequences]
    index = [0] * len(rollout.groups)
    advantages = []
    for p in rows:
        advantages.append(float(adv[p, index[p] % G]))
        index[p] += 1
    batch = SequenceBatch(rollout.sequences, pad_id=pad_id, image_token_id=image_token_id,
                          advantages=torch.tensor(advantages, dtype=torch.float32))
    lengths = [len(seq.completion_ids) for seq in rollout.sequences]
    flat = (rewards.max(1).values - rewards.min(1).values) <= 1e-9
    metrics = {"reward_mean": float(rewards.mean()), "reward_std": float(rewards.std()),
               "zero_variance_frac": float(flat.double().mean()), "fell_back_frac": 1.0,
               "response_length": sum(lengths) / max(1, len(lengths))}
    return Scored(batch=batch, metrics=metrics)


class RewardError(ValueError):
    """A custom reward returned something that is not a finite number, or raised."""


def reward_value(value, name: str, where: str) -> float:
    """``value`` as a float when it is a finite real number (a Python / numpy number or a
    one-element tensor / array); otherwise ``RewardError`` naming the reward, the sample and
    what it returned."""
    import numbers
    import numpy as np
    raw = value
    if isinstance(value, torch.Tensor) and value.numel() == 1:
        value = value.item()
    elif isinstance(value, np.ndarray) and value.size == 1:
        value = value.item()
    if isinstance(value, (str, bytes)) or not isinstance(value, numbers.Real):
        raise RewardError(f"algorithm.reward {name!r} returned {type(raw).__name__} "
                          f"{str(raw)[:60]!r} for {where}; a reward must be a finite number")
    value = float(value)
    if not np.isfinite(value):
        raise RewardError(f"algorithm.reward {name!r} returned {value} for {where}; a reward "
                          "must be a finite number")
    return value


def reward_matrix(fn, name: str, texts: list[list[str]], ground_truth: list) -> torch.Tensor:
    """float64 [P, G] rewards ``fn(text, ground_truth)``, each checked by ``reward_value``."""
    rows = []
    for p, (group, gt) in enumerate(zip(texts, ground_truth)):
        row = []
        for i, text in enumerate(group):
            where = f"prompt {p}, sample {i}"
            try:
                value = fn(text, gt)
            except Exception as exc:
                raise RewardError(f"algorithm.reward {name!r} raised {type(exc).__name__}: "
                                  f"{exc} for {where}") from exc
            row.append(reward_value(value, name, where))
        rows.append(row)
    return torch.tensor(rows, dtype=torch.float64)


def _row_signals(rollout: Rollout, scores, algorithm, initial_texts):
    """[N] advantages and [N] shaping in row order (G rows per prompt, then initials)."""
    G = scores.rewards.shape[1]
    advantages, shaping = [], []
    counters = [0] * len(rollout.groups)
    for seq in rollout.sequences:
        p = seq.group
        if seq.role == "initial":
            advantages.append(_initial_advantage(initial_texts[p], rollout.prompts[p],
                                                 scores, p, algorithm))
            shaping.append(0.0)
            continue
        i = counters[p]
        counters[p] += 1
        if i >= G:
            raise ValueError(f"prompt {p}: more rows than its {G} scored samples")
        advantages.append(float(scores.advantages[p, i]))
        shaping.append(float(scores.dphi[p, i]))
    return (torch.tensor(advantages, dtype=torch.float32),
            torch.tensor(shaping, dtype=torch.float32))


def _initial_advantage(text: str, prompt, scores, p: int, algorithm) -> float:
    from gro_fast.rewards import vision_reasoner_reward
    base = scores.rewards[p] - algorithm.omega * scores.dphi[p]
    reward = vision_reasoner_reward(text, prompt.objects)
    std = float(base.double().std()) if base.numel() > 1 else 0.0
    return (reward - float(base.mean())) / (std + algorithm.eps) if std + algorithm.eps > 0 \
        else 0.0


def _metrics(scores, rollout: Rollout) -> dict:
    s = scores.stats
    lengths = [len(seq.completion_ids) for seq in rollout.sequences]
    return {
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
