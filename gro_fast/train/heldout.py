"""Held-out scoring during training: greedy answers on held-out prompts, a few numbers.

Before training, after the warm start, every ``evaluation.every`` steps and at the end, the
trainer asks the policy for one greedy (temperature 0) answer per held-out prompt and
reports (means over prompts):
  acc_at_0.5   the first predicted box has IoU > 0.5 with a target (REC Acc@0.5)
  mean_iou     IoU of the first predicted box with its best target (0 when none)
  accuracy     VisionReasoner's matched accuracy reward / 3 (boxes, L1 and points; handles
               several targets and penalises extra objects)
  format       the think / answer format is respected
  count_exact  the number of predicted objects equals the number of targets
Prompts are split over data-parallel ranks and the means are combined. Full evaluation
protocols (gIoU, cIoU, counting MAE) live in ``gro_fast.eval``.
"""
from __future__ import annotations

import torch

from .distributed import World, all_reduce_sum
from .rollout import sampling_mode

METRICS = ("acc_at_0.5", "mean_iou", "accuracy", "format", "count_exact")


def score_answer(text: str, objects: list[dict]) -> dict[str, float]:
    """The held-out metrics of one answer against its ground-truth objects."""
    from gro_fast.rewards import (accuracy_reward, count_reward, format_reward,
                                  rec_accuracy_reward, rec_iou_reward)
    return {"acc_at_0.5": rec_accuracy_reward(text, objects, mode="first"),
            "mean_iou": rec_iou_reward(text, objects, mode="first"),
            "accuracy": accuracy_reward(text, objects) / 3.0,
            "format": format_reward(text),
            "count_exact": count_reward(text, objects)}


def evaluate_heldout(engine, model, samples: list, *, template: str | None,
                     max_new_tokens: int, world: World, device: torch.device) -> dict[str, float]:
    """Mean held-out metrics over ``samples`` (this rank scores samples[rank::size])."""
    from gro_fast.data import build_messages
    local = samples[world.rank::world.size]
    sums = {k: 0.0 for k in METRICS}
    if local:
        conversations = [build_messages(s, template=template) for s in local]
        with sampling_mode(model, device):
            groups = engine.generate(conversations, num_samples=1,
                                     max_new_tokens=max_new_tokens, temperature=0.0,
                                     top_p=1.0, top_k=0, seed=0)
        for sample, group in zip(local, groups):
            for key, value in score_answer(group.samples[0].text, sample.objects).items():
                sums[key] += value
    count = float(all_reduce_sum(len(local), world).item())
    return {k: float(all_reduce_sum(v, world).item()) / max(count, 1.0) for k, v in sums.items()}


@torch.no_grad()
def image_reliance(model, processor, samples: list, *, template: str | None, world: World,
                   device: torch.device, micro_batch_size: int = 16) -> dict[str, float]:
    """How much the policy's answers depend on the image: the mean negative log-likelihood
    (nats per answer) of each held-out prompt's ideal answer (``sft.answer_text``) with its
    own image, and with the image of the next prompt in ``samples`` (same query, wrong
    picture). ``image_nll_gain`` is the difference: about 0 means the model answers
    without looking, and RL has no localisation to sharpen. Needs two or more samples."""
    if len(samples) < 2:
        raise ValueError(f"samples: image reliance needs two or more prompts, got {len(samples)}")
    from dataclasses import replace

    from .sft import answer_nll
    sums = {"answer_nll": 0.0, "answer_nll_other_image": 0.0}
    # Every rank scores the same number of prompts (its share, topped up with repeats that
    # are not counted), so sharded models run the same forwards on every rank.
    per_rank = -(-len(samples) // world.size)
    local = list(range(world.rank, len(samples), world.size))
    counted = torch.zeros(per_rank)
    counted[:len(local)] = 1.0
    local += [local[0] if local else 0] * (per_rank - len(local))
    own = [samples[i] for i in local]
    other = [replace(samples[i], image=samples[(i + 1) % len(samples)].image) for i in local]
    for key, batch in (("answer_nll", own), ("answer_nll_other_image", other)):
        nll = answer_nll(model, processor, batch, template=template, device=device,
                         micro_batch_size=micro_batch_size)
        sums[key] = float((nll * counted).sum())
    out = {k: float(all_reduce_sum(v, world).item()) / len(samples) for k, v in sums.items()}
    out["image_nll_gain"] = out["answer_nll_other_image"] - out["answer_nll"]
    return out
