"""GRO's scores for trainers that score one row per response (veRL, EasyR1).

Rollout arrangement: the rows of one prompt id are the initial response o1 followed by
its G samples, ``[o1, s_1, ..., s_G]``: the G revisions of o1, or, when o1 is not well
formed (GRO's step 2), G plain samples of the original prompt (GRPO's fallback).

Why the per-row score is A_hat. veRL 0.9 and EasyR1 call an advantage estimator with
one scalar per row (``token_level_rewards``, the reward function's score at the row's
last token), the row mask and the prompt ids; nothing else of the batch. GRO's shaped
advantage A_hat_i = (1 + dphi_i) (r_i - mean r) / (std r + eps) needs two numbers per
revision (its reward r_i and its improvement dphi_i, which needs o1's alignment cost
Phi(o1)), so no estimator can rebuild it from one scalar per row. The group is scored
where o1 and its samples are seen together (EasyR1's batch reward function; a veRL agent
loop, which samples the group), with ``gro_fast.algo.gro_rewards_and_advantages``: each
sample's score is its A_hat, o1's score is 0 (it is context, not trained), and the
reward, its VisionReasoner terms, dphi and Phi ride along as extra per-row values for
logging. The ``gro`` estimator (:func:`gro_outcome_advantage`) then checks the layout and
spreads each row's score over its response tokens, so the advantages trained on are
exactly ``gro_rewards_and_advantages``' ``shaped_advantages``.
"""
from __future__ import annotations

from collections import OrderedDict

import numpy as np
import torch

from gro_fast.algo import GROConfig, gro_rewards_and_advantages
from gro_fast.rewards import (accuracy_rewards, format_reward, non_repeat_reward,
                              object_format_reward, parse_response)

ROLES = ("initial", "response")
"""Row roles in a GRO group: the initial response o1, then G responses."""


def vision_reasoner_terms(responses, ground_truths) -> list[dict]:
    """VisionReasoner's terms and total per response (``gro_fast.rewards``' functions):
    ``think_format``, ``object_format``, ``accuracy``, ``non_repeat``, ``vision_reasoner``."""
    parsed = [parse_response(r) for r in responses]
    accuracy = accuracy_rewards(parsed, list(ground_truths))
    rows = []
    for p, acc in zip(parsed, accuracy):
        terms = {"think_format": format_reward(p), "object_format": object_format_reward(p),
                 "accuracy": float(acc), "non_repeat": non_repeat_reward(p)}
        terms["vision_reasoner"] = float(sum(terms.values()))
        rows.append(terms)
    return rows


def score_groups(initial_responses, samples, ground_truths, image_sizes,
                 config: GROConfig | None = None, fell_back=None) -> list[list[dict]]:
    """Per prompt, 1 + G row dicts for ``[o1, s_1, ..., s_G]`` (see the module docstring):
    ``score`` (A_hat; 0 for o1), ``gro_reward`` (r; o1: its VisionReasoner total),
    ``advantage`` (A before post-scaling), ``dphi``, ``phi``, ``fell_back``,
    ``initial`` (1 for o1) and the VisionReasoner terms."""
    config = config if config is not None else GROConfig()
    scores = gro_rewards_and_advantages(initial_responses, samples, ground_truths, image_sizes,
                                        config, fell_back=fell_back)
    out = []
    for p, (o1, group, gt) in enumerate(zip(initial_responses, samples, ground_truths)):
        terms = vision_reasoner_terms([o1, *group], [gt] * (1 + len(group)))
        fell = float(scores.fell_back[p])
        rows = [{**terms[0], "score": 0.0, "gro_reward": terms[0]["vision_reasoner"],
                 "advantage": 0.0, "dphi": 0.0, "phi": float(scores.initial_alignment_cost[p]),
                 "fell_back": fell, "initial": 1.0}]
        for i in range(len(group)):
            rows.append({**terms[1 + i], "score": float(scores.shaped_advantages[p, i]),
                         "gro_reward": float(scores.rewards[p, i]),
                         "advantage": float(scores.advantages[p, i]),
                         "dphi": float(scores.improvement[p, i]), "phi": float(scores.alignment_cost[p, i]),
                         "fell_back": fell, "initial": 0.0})
        out.append(rows)
    return out


def _groups(index) -> "OrderedDict[object, list[int]]":
    groups: OrderedDict = OrderedDict()
    for row, uid in enumerate(np.asarray(index, dtype=object).tolist()):
        groups.setdefault(uid, []).append(row)
    return groups


def gro_outcome_advantage(token_level_rewards: torch.Tensor, response_mask: torch.Tensor,
                          index, **_) -> tuple[torch.Tensor, torch.Tensor]:
    """The ``gro`` advantage estimator: rows grouped by ``index`` in the GRO layout, each
    row's score (the sum of its token-level rewards, A_hat from :func:`score_groups`)
    spread over its response tokens. Returns (advantages, returns), both [B, T].

    Raises ValueError when the layout is not GRO's: groups of unequal size or of one row,
    or a group whose first row (the initial response) has a non-zero score, which is what
    a plain reward function (not GRO's group scores) gives.
    """
    if token_level_rewards.shape != response_mask.shape:
        raise ValueError(f"token_level_rewards {tuple(token_level_rewards.shape)} and "
                         f"response_mask {tuple(response_mask.shape)} differ")
    scores = token_level_rewards.sum(dim=-1)
    groups = _groups(index)
    if len(groups) == 0 or len(np.asarray(index, dtype=object)) != scores.shape[0]:
        raise ValueError(f"index has {len(np.asarray(index, dtype=object))} entries for "
                         f"{scores.shape[0]} rows")
    sizes = {len(rows) for rows in groups.values()}
    if len(sizes) != 1 or min(sizes) < 2:
        raise ValueError(f"gro: every prompt id needs the same 1 + G >= 2 rows (initial response, "
                         f"then G responses); got group sizes {sorted(sizes)}")
    initial = torch.tensor([rows[0] for rows in groups.values()], device=scores.device)
    if bool((scores[initial] != 0).any()):
        raise ValueError("gro: the first row of a prompt id (the initial response) has a non-zero "
                         "score; the rewards must be GRO group scores (score = A_hat, 0 for the "
                         "initial response, see gro_fast.integrations.groups)")
    advantages = scores.unsqueeze(-1) * response_mask.to(scores.dtype)
    return advantages, advantages
