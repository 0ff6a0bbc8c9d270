"""From raw rollout text to GRO's rewards and advantages for a whole batch.

``gro_rewards_and_advantages`` takes, per prompt, the initial response o1, its G samples
(revisions o2_i, or plain GRPO samples of q when the prompt fell back), the ground truth
and the model-input image size, and returns ``GROScores``:

    r_i = R_format + R_acc + omega * dphi_i     dphi_i: the improvement of o2_i over o1
    A = group_advantages(r),  A_hat = (1 + dphi) * A

R_format + R_acc is the sum of ``GROConfig.reward_terms`` (VisionReasoner's), or a custom
reward (a registered name or a callable ``fn(text, ground_truth)``). A prompt whose o1 is
not well formed (``revision.is_well_formed``), or that the rollout engine marks
``fell_back``, is scored as GRPO: dphi = 0, r = R_format + R_acc; GRPO is every prompt
fallen back. o1's own reward and advantage (against its samples' R_format + R_acc) are
scored too, for ``train_initial``. ``row_signals`` puts the advantage A and the
improvement of each trained row in row order: every row the trainer trains gets its
signal here. Parsing is per text; the pair terms of the batch are computed in a few
batched geometry chunks and reduced to the two flat cost vectors; the Hungarian matchings
are the only per-response Python loop.
"""
from __future__ import annotations

from dataclasses import dataclass, field, fields, replace
from typing import Callable, Sequence

import numpy as np
import torch

from gro_fast.rewards.matching import (ObjectLists, PairLayout, matched_costs,
                                       pair_geometry_chunks, pair_layout, stack_objects)
from gro_fast.rewards.parsing import ParsedResponse, parse_objects
from gro_fast.rewards.vision_reasoner import (accuracy_costs, accuracy_from_matching, as_parsed,
                                              non_repeat_reward)

from .advantages import group_advantages, shaped_advantages
from .config import GROConfig
from .consolidation import alignment_pair_costs, image_size_array, improvement, phi_from_matching
from .revision import is_well_formed


@dataclass
class GROScores:
    """GRO scores of P prompts x G samples (float32 tensors unless stated)."""

    rewards: torch.Tensor           # [P, G] R_format + R_acc + omega * dphi
    improvement: torch.Tensor       # [P, G] dphi over o1, 0 for fallen-back prompts
    advantages: torch.Tensor        # [P, G] A (group-relative)
    shaped_advantages: torch.Tensor  # [P, G] A_hat = (1 + dphi) * A (statistics, peers'
    #                                  trainers; gro_fast's loss forms it from A and dphi)
    initial_alignment_cost: torch.Tensor  # [P] Phi(o1)
    alignment_cost: torch.Tensor    # [P, G] Phi of each sample
    fell_back: torch.Tensor         # [P] bool, scored as GRPO
    accuracy: torch.Tensor          # [P, G] VisionReasoner accuracy reward (0..3)
    base_rewards: torch.Tensor      # [P, G] R_format + R_acc
    initial_rewards: torch.Tensor   # [P] R_format + R_acc of o1 (a custom reward: only
    #                                 where o1 is trained, 0 elsewhere)
    initial_advantages: torch.Tensor  # [P] o1's reward against its samples' base rewards
    post_scale: bool = True         # whether the loss scales A by (1 + dphi)
    stats: dict = field(default_factory=dict)  # batch statistics (floats), see batch_statistics


def _check_inputs(initial_responses, samples, ground_truths, image_sizes, fell_back) -> tuple:
    n_prompts = len(initial_responses)
    if n_prompts == 0:
        raise ValueError("initial_responses is empty")
    for name, seq in (("samples", samples), ("ground_truths", ground_truths),
                      ("image_sizes", image_sizes), ("fell_back", fell_back)):
        if seq is not None and len(seq) != n_prompts:
            raise ValueError(f"{name} has {len(seq)} entries for {n_prompts} prompts")
    group = len(samples[0]) if isinstance(samples[0], (list, tuple)) else -1
    for p, s in enumerate(samples):
        if not isinstance(s, (list, tuple)) or len(s) != group or group < 1:
            raise ValueError(f"samples[{p}] must be a list of G >= 1 responses, the same G "
                             f"for every prompt (samples[0] has {group})")
    return n_prompts, group


def _row_terms(pred: ObjectLists, rows: Sequence[ParsedResponse]) -> tuple[np.ndarray, ...]:
    """Per row: think format (0/1), object format (0..2), complete (all objects whole)."""
    row_of = np.repeat(np.arange(len(rows)), pred.counts)
    n_box = np.bincount(row_of, weights=pred.box_valid, minlength=len(rows))
    n_point = np.bincount(row_of, weights=pred.point_valid, minlength=len(rows))
    counts = pred.counts
    parsed = np.fromiter((r.parsed for r in rows), dtype=bool, count=len(rows)) & (counts > 0)
    object_format = np.where(parsed, (n_box + n_point) / np.maximum(counts, 1), 0.0)
    complete = parsed & (n_box == counts) & (n_point == counts)
    think = np.fromiter((r.format_ok for r in rows), dtype=np.float64, count=len(rows))
    return think, object_format, complete


def _first_occurrence(rows: Sequence[ParsedResponse], gt_rows: np.ndarray) -> np.ndarray:
    """Index of the first row with the same parsed response and ground truth: a response
    repeated within a prompt (common once a policy is sure) is matched once."""
    seen: dict = {}
    return np.fromiter((seen.setdefault((id(r), g), b)
                        for b, (r, g) in enumerate(zip(rows, gt_rows.tolist()))),
                       dtype=np.int64, count=len(rows))


def _pair_costs(pred: ObjectLists, gt: ObjectLists, gt_rows: np.ndarray, sizes: np.ndarray,
                cfg: GROConfig) -> tuple[PairLayout, np.ndarray, np.ndarray]:
    """Layout and flat [K] accuracy and alignment pair costs, built chunk by chunk."""
    layout = pair_layout(pred, gt, gt_rows)
    acc_cost, phi_cost = np.empty(layout.num_pairs), np.empty(layout.num_pairs)
    for pairs, geom in pair_geometry_chunks(pred, gt, gt_rows, sizes[gt_rows]):
        acc_cost[pairs] = accuracy_costs(geom, iou_threshold=cfg.iou_threshold,
                                         l1_threshold=cfg.l1_threshold,
                                         point_threshold=cfg.point_threshold)
        phi_cost[pairs] = alignment_pair_costs(geom)
    return layout, acc_cost, phi_cost


def _match_rows(geom: PairLayout, acc_cost: np.ndarray, phi_cost: np.ndarray,
                rows: Sequence[ParsedResponse], gt_rows: np.ndarray, complete: np.ndarray,
                penalize_extra: bool) -> tuple[np.ndarray, np.ndarray]:
    """Hungarian matchings of every row: accuracy and Phi."""
    first = _first_occurrence(rows, gt_rows)
    unique = first == np.arange(len(rows))
    parsed = np.fromiter((r.parsed for r in rows), dtype=bool, count=len(rows))
    scored = complete
    phi = phi_from_matching(matched_costs(phi_cost, geom, unique & parsed), geom.rows, parsed,
                            penalize_extra)
    accuracy = accuracy_from_matching(matched_costs(acc_cost, geom, unique & scored), geom.rows,
                                      scored)
    return accuracy[first], phi[first]


def _score_batch(initial, revisions, gts, sizes, cfg: GROConfig):
    """[o1 of every prompt; every sample] -> per-row arrays (pair costs, matchings)."""
    n_prompts = len(initial)
    group = len(revisions) // n_prompts
    rows = list(initial) + list(revisions)
    gt_rows = np.concatenate([np.arange(n_prompts), np.repeat(np.arange(n_prompts), group)])
    pred = stack_objects(rows)
    geom, acc_cost, phi_cost = _pair_costs(pred, stack_objects(gts), gt_rows, sizes, cfg)
    think, object_format, complete = _row_terms(pred, rows)
    accuracy, phi = _match_rows(geom, acc_cost, phi_cost, rows, gt_rows, complete,
                                cfg.penalize_extra)
    return think, object_format, accuracy, phi


def _base_reward(cfg: GROConfig, think, object_format, accuracy, responses) -> np.ndarray:
    """R_format + R_acc of each response from the configured VisionReasoner terms."""
    total = np.zeros(len(accuracy))
    if "think_format" in cfg.reward_terms:
        total += think
    if "object_format" in cfg.reward_terms:
        total += object_format
    if "accuracy" in cfg.reward_terms:
        total += accuracy
    if "non_repeat" in cfg.reward_terms:
        total += np.fromiter((non_repeat_reward(r) for r in responses), dtype=np.float64,
                             count=len(responses))
    return total


RewardSpec = str | Callable | None
"""A custom R_format + R_acc: a registered name / ``"file.py:function"``, a callable
``fn(text, ground_truth) -> float``, or None (``GROConfig.reward_terms``)."""


def _custom_reward(reward: RewardSpec) -> tuple[Callable, str] | None:
    """(function, name) of a custom reward, None for VisionReasoner's terms."""
    if reward is None or reward == "vision_reasoner":
        return None
    if isinstance(reward, str):
        from gro_fast.rewards import get_reward
        return get_reward(reward), reward
    if not callable(reward):
        raise TypeError(f"reward must be a reward name, a callable or None, got "
                        f"{type(reward).__name__}")
    return reward, getattr(reward, "__name__", "reward")


def _base_rewards(cfg, custom, terms, initial, revisions, ground_truths, n_prompts, revised):
    """(o1's [P], samples' [P * G]) R_format + R_acc, float64 numpy. A custom reward is
    called on o1 only when o1 is trained (``train_initial``, prompts ``revised``); o1's
    reward is 0 elsewhere."""
    if custom is None:
        think, object_format, accuracy = terms
        base = _base_reward(cfg, think, object_format, accuracy, initial + revisions)
        return base[:n_prompts], base[n_prompts:]
    from gro_fast.rewards import reward_matrix
    fn, name = custom
    group = len(revisions) // n_prompts
    texts = [[r.text for r in revisions[p * group:(p + 1) * group]] for p in range(n_prompts)]
    base = reward_matrix(fn, name, texts, ground_truths).numpy().reshape(-1)
    first = np.zeros(n_prompts)
    if cfg.train_initial:
        trained = [p for p in range(n_prompts) if revised[p]]
        values = reward_matrix(fn, name, [[initial[p].text] for p in trained],
                               [ground_truths[p] for p in trained], label="initial response")
        first[trained] = values.numpy().reshape(-1)
    return first, base


def _parse_once(text, cache: dict) -> ParsedResponse:
    if not isinstance(text, str):
        return as_parsed(text)
    found = cache.get(text)
    if found is None:
        found = cache[text] = as_parsed(text)
    return found


def gro_rewards_and_advantages(initial_responses: Sequence, samples: Sequence[Sequence],
                               ground_truths: Sequence, image_sizes: Sequence,
                               config: GROConfig | None = None,
                               fell_back: Sequence[bool] | None = None, *,
                               reward: RewardSpec = None) -> GROScores:
    """Score a GRO batch end to end (see the module docstring).

    ``initial_responses``: P texts (or ``ParsedResponse``); ``samples``: P lists of G texts;
    ``ground_truths``: P solution-format object lists (or JSON strings); ``image_sizes``:
    P (width, height) of the model input; ``fell_back``: P flags from the rollout engine
    (a prompt also falls back when its o1 is not well formed); ``reward``: a custom
    R_format + R_acc (``RewardSpec``; errors are ``gro_fast.rewards.RewardError``).
    """
    cfg = config if config is not None else GROConfig()
    if not isinstance(cfg, GROConfig):
        raise TypeError(f"config must be a GROConfig, got {type(cfg).__name__}")
    n_prompts, group = _check_inputs(initial_responses, samples, ground_truths, image_sizes,
                                     fell_back)
    parsed: dict[str, ParsedResponse] = {}  # identical texts are parsed (and matched) once
    initial = [_parse_once(t, parsed) for t in initial_responses]
    revisions = [_parse_once(t, parsed) for s in samples for t in s]
    gts = [parse_objects(g, name=f"ground_truths[{p}]") for p, g in enumerate(ground_truths)]
    sizes = image_size_array(image_sizes)
    think, object_format, accuracy, phi = _score_batch(initial, revisions, gts, sizes, cfg)
    well_formed = torch.tensor([is_well_formed(r) for r in initial], dtype=torch.bool)
    flags = torch.tensor([bool(f) for f in fell_back]) if fell_back is not None else \
        torch.zeros(n_prompts, dtype=torch.bool)
    fallback = ~well_formed | flags
    custom = _custom_reward(reward)
    first_base, base = _base_rewards(cfg, custom, (think, object_format, accuracy), initial,
                                     revisions, list(ground_truths), n_prompts,
                                     (~fallback).tolist())

    phi_initial = torch.from_numpy(phi[:n_prompts])
    phi_revised = torch.from_numpy(phi[n_prompts:]).view(n_prompts, group)
    dphi = improvement(phi_initial, phi_revised) * (~fallback).unsqueeze(1)
    base = torch.from_numpy(base).view(n_prompts, group)
    rewards = base + cfg.omega * dphi
    try:
        adv = group_advantages(rewards, eps=cfg.eps, scale=cfg.advantage_scale)
    except ValueError as exc:
        if custom is None:
            raise
        from gro_fast.rewards import RewardError
        raise RewardError(f"algorithm.reward {custom[1]!r}: {exc}") from exc
    shaped = shaped_advantages(adv, dphi) if cfg.post_scale else adv.clone()
    first_base = torch.from_numpy(first_base)
    acc = torch.from_numpy(accuracy[n_prompts:]).view(n_prompts, group)
    scores = GROScores(rewards.float(), dphi.float(), adv.float(), shaped.float(),
                       phi_initial.float(), phi_revised.float(), fallback, acc.float(),
                       base.float(), first_base.float(),
                       initial_advantages(first_base, base, cfg).float(), cfg.post_scale)
    scores.stats = batch_statistics(scores, base, cfg)
    return scores


def initial_advantages(initial_rewards: torch.Tensor, base_rewards: torch.Tensor,
                       cfg: GROConfig) -> torch.Tensor:
    """[P] advantage of each o1 (*ours*): its R_format + R_acc minus its samples' mean,
    divided as ``advantage_scale`` says, float64. With "group" the std is that of o1's and
    its samples' rewards together, so an o1 that differs from G equal samples gets a
    bounded advantage (the samples' own std is 0 there); 0 when all are equal."""
    r = base_rewards.double()
    first = initial_rewards.double()
    centred = first - r.mean(dim=1)
    if cfg.advantage_scale == "none":
        return centred
    if cfg.advantage_scale == "group":
        std = torch.cat([first.unsqueeze(1), r], dim=1).std(dim=1)
    else:
        std = (r.std() if r.numel() > 1 else torch.zeros((), dtype=r.dtype)).expand(r.shape[0])
    denom = std + cfg.eps
    safe = torch.where(denom > 0, denom, torch.ones_like(denom))
    return torch.where((denom > 0) & (centred != 0), centred / safe, torch.zeros_like(centred))


def row_signals(scores: GROScores, row_groups: Sequence[int],
                row_is_initial: Sequence[bool]) -> tuple[torch.Tensor, torch.Tensor | None]:
    """The advantage A [N] and improvement dphi [N] of N trained rows, in row order.

    Row r belongs to prompt ``row_groups[r]``; the k-th non-initial row of a prompt is its
    sample k; an initial-response row gets ``initial_advantages`` and improvement 0. The
    improvement comes back None when no row is shaped (``post_scale`` off, or every prompt
    scored as GRPO): the loss then trains on A itself.
    """
    P, G = scores.rewards.shape
    advantages, dphi = [], []
    taken = [0] * P
    for r, (p, is_initial) in enumerate(zip(row_groups, row_is_initial)):
        if not 0 <= p < P:
            raise ValueError(f"row {r}: prompt {p} is not one of the {P} scored prompts")
        if is_initial:
            advantages.append(float(scores.initial_advantages[p]))
            dphi.append(0.0)
            continue
        k = taken[p]
        taken[p] += 1
        if k >= G:
            raise ValueError(f"prompt {p}: more rows than its {G} scored samples")
        advantages.append(float(scores.advantages[p, k]))
        dphi.append(float(scores.improvement[p, k]))
    shaped = scores.post_scale and not bool(scores.fell_back.all())
    return (torch.tensor(advantages, dtype=torch.float32),
            torch.tensor(dphi, dtype=torch.float32) if shaped else None)


def all_fail_improvements(scores: GROScores, cfg: GROConfig) -> list[float]:
    """Improvement of every sample of the revised prompts whose samples all fail (accuracy
    below ``success_accuracy``): the signal GRPO lacks there."""
    fail = (scores.accuracy < cfg.success_accuracy).all(1) & ~scores.fell_back.bool()
    return [float(v) for v in scores.improvement[fail].flatten()]


def batch_statistics(scores: GROScores, base_rewards: torch.Tensor, cfg: GROConfig,
                     groups: torch.Tensor | None = None) -> dict:
    """Floats a researcher watches per batch (fractions in [0, 1]); with ``groups`` (bool
    [P]), over those prompts' groups only (e.g. one difficulty of a mixed task)."""
    if groups is not None:
        groups = torch.as_tensor(groups, dtype=torch.bool)
        if groups.shape != scores.fell_back.shape:
            raise ValueError(f"groups must be a bool mask of the {scores.fell_back.numel()} "
                             f"prompts, got shape {tuple(groups.shape)}")
        scores = select_groups(scores, groups)
        base_rewards = base_rewards[groups]
    gro = ~scores.fell_back
    dphi_gro = scores.improvement[gro]
    r = scores.rewards.double()
    flat = (r.max(1).values - r.min(1).values) <= 1e-9
    base_flat = (base_rewards.max(1).values - base_rewards.min(1).values) <= 1e-9
    return {
        "all_fail_fraction": _mean((scores.accuracy < cfg.success_accuracy).all(1)),
        "zero_variance_fraction": _mean(flat),
        "zero_variance_fraction_without_dphi": _mean(base_flat),
        "fallback_fraction": _mean(scores.fell_back),
        "mean_dphi": _mean(dphi_gro),
        "improved_fraction": _mean(dphi_gro > 0),
        "mean_reward": _mean(scores.rewards),
        "mean_accuracy": _mean(scores.accuracy),
        "mean_phi_initial": _mean(scores.initial_alignment_cost[gro]),
        "mean_phi_revised": _mean(scores.alignment_cost[gro]),
        "mean_abs_shaped_advantage": _mean(scores.shaped_advantages.abs()),
    }


def select_groups(scores: GROScores, groups: torch.Tensor) -> GROScores:
    """The scores of the prompts ``groups`` (bool [P] or indices) selects; statistics are
    not recomputed."""
    picked = {f.name: getattr(scores, f.name)[groups]
              for f in fields(scores) if isinstance(getattr(scores, f.name), torch.Tensor)}
    return replace(scores, **picked, stats={})


def _mean(t: torch.Tensor) -> float:
    """Mean as a float; 0.0 for an empty selection (e.g. no prompt revised)."""
    return float(t.double().mean()) if t.numel() else 0.0
