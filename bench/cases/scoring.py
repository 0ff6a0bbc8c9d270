"""GRO scoring end to end: raw rollout text -> rewards, dphi, A and A_hat.

Shape: 64 prompts x (1 initial response + 8 revisions), 1-20 ground-truth objects per
prompt, predictions with jitter, missing and extra objects, a few malformed initial
responses (GRPO fallback) and unparseable revisions. Rows:
- ``gro_fast``: ``gro_rewards_and_advantages`` (batched geometry, one matching per row);
- ``per_response``: the same scores from the single-response functions called one by one
  (``accuracy_reward``, ``alignment_cost``), the straightforward way, as the peer;
- ``parse_only``: the text parsing share of the batched time.
The batched scorer is timed with the default torch threads and with one thread (wall
median, plus ``cpu_ms_min``, the least CPU time of the calling thread for a call).
Scoring is CPU work whatever the device; the target is under 20 ms.
"""
from __future__ import annotations

import json
import random
import time

import torch

from bench.registry import case, time_ms
from gro_fast.algo import GROConfig, alignment_cost, gro_rewards_and_advantages, improvement
from gro_fast.algo.advantages import group_advantages, shaped_advantages
from gro_fast.rewards import parse_response
from gro_fast.rewards.vision_reasoner import (accuracy_reward, format_reward, non_repeat_reward,
                                              object_format_reward)

PROMPTS, REVISIONS, MAX_OBJECTS, SIZE = 64, 8, 20, (840, 840)


def _object(rng: random.Random) -> dict:
    x1, y1 = rng.randint(0, 700), rng.randint(0, 700)
    x2, y2 = x1 + rng.randint(10, 139), y1 + rng.randint(10, 139)
    return {"bbox_2d": [x1, y1, x2, y2], "point_2d": [(x1 + x2) // 2, (y1 + y2) // 2]}


def _jitter(obj: dict, rng: random.Random, px: int) -> dict:
    return {"bbox_2d": [v + rng.randint(-px, px) for v in obj["bbox_2d"]],
            "point_2d": [v + rng.randint(-px // 2, px // 2) for v in obj["point_2d"]]}


def _response(gt: list, rng: random.Random, malformed: float) -> str:
    if rng.random() < malformed:
        return rng.choice(["<think>unsure</think>", "<answer>[{'bbox_2d': [1, 2]}]</answer>",
                           "<think>a</think><answer>[{\"bbox_2d\": [1, 2, 3, 4]}]</answer>"])
    keep = [_jitter(o, rng, rng.choice([2, 8, 40])) for o in gt if rng.random() < 0.85]
    keep += [_object(rng) for _ in range(rng.randint(0, 2))]
    keep = keep[:MAX_OBJECTS]
    think = "The query asks for the marked objects. I check each region in turn."
    return f"<think>{think}</think>\n<answer>{json.dumps(keep)}</answer>"


def make_batch(seed: int = 0, prompts: int = PROMPTS, revisions: int = REVISIONS):
    """(initial_responses, samples, ground_truths, image_sizes) of a synthetic batch."""
    rng = random.Random(seed)
    gts = [[_object(rng) for _ in range(rng.randint(1, MAX_OBJECTS))] for _ in range(prompts)]
    initial = [_response(gt, rng, 0.1) for gt in gts]
    samples = [[_response(gt, rng, 0.05) for _ in range(revisions)] for gt in gts]
    return initial, samples, gts, [SIZE] * prompts


def per_response_scores(initial, samples, gts, sizes, cfg: GROConfig) -> torch.Tensor:
    """A_hat from the single-response functions, one call per response (the peer)."""
    rewards, dphis = [], []
    for o1, group, gt, size in zip(initial, samples, gts, sizes):
        first = parse_response(o1)
        well_formed = format_reward(first) == 1.0 and object_format_reward(first) == 2.0
        phi1 = alignment_cost(first, gt, size)
        row_r, row_d = [], []
        for text in group:
            parsed = parse_response(text)
            d = improvement(phi1, alignment_cost(parsed, gt, size)) if well_formed else 0.0
            base = (format_reward(parsed) + object_format_reward(parsed)
                    + accuracy_reward(parsed, gt) + non_repeat_reward(parsed))
            row_r.append(base + cfg.omega * d)
            row_d.append(d)
        rewards.append(row_r)
        dphis.append(row_d)
    adv = group_advantages(torch.tensor(rewards, dtype=torch.float64), eps=cfg.eps)
    return shaped_advantages(adv, torch.tensor(dphis, dtype=torch.float64))


def _cpu_ms(fn, repeats: int = 20) -> float:
    """Least CPU time of the calling thread for one call, with one torch thread: what the
    scorer costs with a core to itself, even on a shared machine where wall time is not."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        fn()
        samples = []
        for _ in range(repeats):
            start = time.thread_time()
            fn()
            samples.append((time.thread_time() - start) * 1e3)
    finally:
        torch.set_num_threads(threads)
    return min(samples)


@case("gro_scoring_64x9", "scoring")
def gro_scoring(ctx) -> list[dict]:
    cfg = GROConfig()
    batch = make_batch()
    texts = batch[0] + [t for s in batch[1] for t in s]
    n_objects = sum(len(g) for g in batch[2])
    ours = gro_rewards_and_advantages(*batch, config=cfg)
    peer = per_response_scores(*batch, cfg)
    max_diff = float((ours.shaped_advantages.double() - peer).abs().max())
    t_ours = time_ms(lambda: gro_rewards_and_advantages(*batch, config=cfg), ctx.device,
                     warmup=3, repeats=20, min_seconds=1.0)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # these tensors are small: one thread avoids pool overhead
    try:
        t_one = time_ms(lambda: gro_rewards_and_advantages(*batch, config=cfg), ctx.device,
                        warmup=3, repeats=20, min_seconds=1.0)
    finally:
        torch.set_num_threads(threads)
    t_cpu = _cpu_ms(lambda: gro_rewards_and_advantages(*batch, config=cfg))
    t_parse = time_ms(lambda: [parse_response(t) for t in texts], ctx.device, warmup=2,
                      repeats=20, min_seconds=0.5)
    t_peer = time_ms(lambda: per_response_scores(*batch, cfg), ctx.device, warmup=1, repeats=3)
    shape = f"P={PROMPTS} G={REVISIONS} gt_objects={n_objects}"
    common = {"shape": shape, "target_ms": 20.0, "max_abs_diff_vs_per_response": max_diff}
    return [
        {"impl": "gro_fast", "threads": threads, "ms": t_ours, **common,
         "us_per_response": 1e3 * t_ours / len(texts), "speedup_vs_per_response": t_peer / t_ours},
        {"impl": "gro_fast", "threads": 1, "ms": t_one, "cpu_ms_min": t_cpu, **common,
         "us_per_response": 1e3 * t_one / len(texts), "speedup_vs_per_response": t_peer / t_one},
        {"impl": "parse_only", "threads": 1, "shape": shape, "ms": t_parse},
        {"impl": "per_response", "threads": threads, "shape": shape, "ms": t_peer},
    ]
