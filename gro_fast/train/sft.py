"""Supervised warm start: teach the policy the answer format before RL (``gro-fast sft``).

Each example is a grounding prompt with its ideal response (``gro_fast.data``'s
``synthetic_answer`` for the synthetic task, or the ground truth written in the answer
format for a dataset): prefix = the chat up to the assistant turn, completion = the
response and the end-of-turn token. A configurable fraction of examples are GRO revision
turns (a flawed first attempt, the revision query, then the ideal answer), so a model
that has never seen a revision turn learns what one asks for. The loss is the mean negative log-likelihood of the
completion tokens only (``token_logprobs``), optimised with AdamW and a warmup / cosine
schedule. It reuses the RL step's padding and forward (``sequences``, ``logprobs``);
it knows nothing about rewards.
"""
from __future__ import annotations

import json
import math
import random
import time
from typing import Callable, Iterator

import torch
from torch import nn

from .distributed import World, all_reduce_mean, all_reduce_sum, set_gradient_sync
from .logprobs import autocast_context, completion_outputs
from .sequences import Sequence, SequenceBatch, build_model_batch, micro_batches
from .update import build_optimizer, build_scheduler


def encode_prompt(processor, messages: list[dict]) -> tuple[list[int], dict]:
    """(prefix token ids, vision inputs) of a chat that ends before the assistant turn."""
    text = processor.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    images = [part["image"] for m in messages if isinstance(m.get("content"), list)
              for part in m["content"] if isinstance(part, dict) and part.get("type") == "image"]
    enc = processor(text=[text], images=images or None, return_tensors="pt")
    vision = {k: enc[k] for k in ("pixel_values", "image_grid_thw") if k in enc}
    return enc["input_ids"][0].tolist(), vision


def answer_text(sample) -> str:
    """The ideal response of a sample: ``synthetic_answer`` for the synthetic task, else
    a short think + the ground-truth objects in the answer format."""
    from gro_fast.data import synthetic_answer
    try:
        return synthetic_answer(sample)
    except (TypeError, ValueError, KeyError, AttributeError):
        objects = [{k: [round(v) for v in o[k]] for k in ("bbox_2d", "point_2d") if k in o}
                   for o in sample.objects]
        return f"<think>{sample.query}</think><answer>{json.dumps(objects)}</answer>"


def flawed_answer(sample, rng: random.Random) -> str:
    """A well-formed but wrong first attempt: the ideal objects shifted and resized, or
    with an extra object (what a revision example starts from)."""
    width, height = sample.input_size
    objects = []
    for o in sample.objects:
        dx, dy = rng.randint(-width // 4, width // 4), rng.randint(-height // 4, height // 4)
        x1, y1, x2, y2 = o["bbox_2d"]
        box = [min(max(0, round(v + d)), lim) for v, d, lim in
               ((x1, dx, width - 1), (y1, dy, height - 1), (x2, dx, width - 1),
                (y2, dy, height - 1))]
        objects.append({"bbox_2d": box, "point_2d": [(box[0] + box[2]) // 2,
                                                     (box[1] + box[3]) // 2]})
    if rng.random() < 0.3:
        objects.append(dict(objects[0]))
    return f"<think>Looking for {sample.query}.</think><answer>{json.dumps(objects)}</answer>"


def revision_messages(sample, template: str | None, revision_template: str | None,
                      rng: random.Random) -> list[dict]:
    """[user: x, q] [assistant: flawed o1] [user: U(q, o1)]: a GRO revision turn to learn."""
    from gro_fast.algo import revision_query
    from gro_fast.data import build_messages
    messages = build_messages(sample, template=template)
    query = "".join(p.get("text", "") for p in messages[-1]["content"] if p.get("type") == "text")
    initial = flawed_answer(sample, rng)
    return messages + [
        {"role": "assistant", "content": [{"type": "text", "text": initial}]},
        {"role": "user", "content": [{"type": "text", "text": revision_query(
            query, initial, revision_template or None)}]}]


def sft_sequence(processor, sample, template: str | None, *, revision: bool = False,
                 revision_template: str | None = None, rng: random.Random | None = None
                 ) -> Sequence:
    """One warm-start example: the prompt (or, with ``revision``, a revision turn after a
    flawed first attempt) followed by the ideal response."""
    from gro_fast.data import build_messages
    messages = revision_messages(sample, template, revision_template, rng or random.Random(0)) \
        if revision else build_messages(sample, template=template)
    prefix, vision = encode_prompt(processor, messages)
    tokenizer = getattr(processor, "tokenizer", processor)
    completion = tokenizer(answer_text(sample), add_special_tokens=False)["input_ids"]
    end = tokenizer.convert_tokens_to_ids("<|im_end|>")
    return Sequence(prefix_ids=prefix, completion_ids=list(completion) + [end], vision=vision,
                    group=0, role="sft")


def supervised_warm_start(model: nn.Module, processor, samples: Iterator, *, steps: int,
                          lr: float, batch_size: int, micro_batch_size: int, template: str | None,
                          world: World, device: torch.device, revision_fraction: float = 0.0,
                          revision_template: str | None = None, seed: int = 0,
                          log: Callable[[str], None] = print) -> dict:
    """Runs ``steps`` NLL steps on ``batch_size`` examples per step (split over ranks); a
    ``revision_fraction`` of the examples are revision turns (see ``revision_messages``).
    Returns {"sft_loss_first", "sft_loss_last", "sft_seconds"}."""
    rng = random.Random(seed * 7919 + world.rank)
    if steps <= 0:
        return {}
    optimizer = build_optimizer(model, lr, 0.0)
    scheduler = build_scheduler(optimizer, warmup=max(1, steps // 20), total=steps, cosine=True,
                                min_ratio=0.1)
    pad = processor.tokenizer.pad_token_id
    image_token = getattr(getattr(model, "config", None), "image_token_id", None)
    local = max(1, batch_size // world.size)
    history, start = [], time.perf_counter()
    model.train()
    for step in range(steps):
        seqs = [sft_sequence(processor, next(samples), template,
                             revision=rng.random() < revision_fraction,
                             revision_template=revision_template, rng=rng)
                for _ in range(local)]
        batch = SequenceBatch(seqs, pad_id=pad, image_token_id=image_token)
        loss = _nll_step(model, batch, micro_batch_size, world, device)
        torch.nn.utils.clip_grad_norm_([p for p in model.parameters() if p.requires_grad], 1.0)
        optimizer.step()
        scheduler.step()
        optimizer.zero_grad(set_to_none=True)
        loss = all_reduce_mean({"loss": loss}, world)["loss"]
        history.append(loss)
        if step == 0 or (step + 1) % max(1, steps // 5) == 0:
            log(f"sft step {step + 1}/{steps}: loss {loss:.4f}")
    return {"sft_loss_first": history[0], "sft_loss_last": history[-1],
            "sft_seconds": time.perf_counter() - start}


def _nll_step(model, batch: SequenceBatch, micro_batch_size: int, world: World,
              device: torch.device) -> float:
    """Backward of the token-mean NLL of the batch's completions (over all ranks)."""
    from gro_fast.ops.token_logprobs import token_logprobs
    chunks = micro_batches(len(batch), micro_batch_size)
    total = float(all_reduce_sum(batch.num_completion_tokens(), world).item())
    value = 0.0
    for k, rows in enumerate(chunks):
        mb = build_model_batch(batch, rows, device)
        set_gradient_sync(model, k == len(chunks) - 1)
        with autocast_context(device, True):
            logits = completion_outputs(model, mb)
        logp = token_logprobs(logits, mb.targets)
        nll = -(logp * mb.mask).sum() * (world.size / total)
        nll.backward()
        value += float(nll.detach())
    if not math.isfinite(value):
        raise FloatingPointError("supervised warm start: non-finite loss")
    return value  # world * (this rank's share); the mean over ranks is the global NLL
