"""Supervised warm start: teach the policy the answer format before RL (``gro-fast sft``).

Each example is a grounding prompt with its ideal response (``gro_fast.data``'s
``synthetic_answer`` for the synthetic task, or the ground truth written in the answer
format for a dataset): prefix = the chat up to the assistant turn, completion = the
response and the end-of-turn token. A configurable fraction of examples are GRO revision
turns (a flawed first attempt, the revision query, then the ideal answer), so a model
that has never seen a revision turn learns what one asks for; with ``plain_steps`` they
begin only after that many plain steps. The loss is the mean
negative log-likelihood of the completion tokens only (``token_logprobs``), optimised with
AdamW and a warmup / cosine schedule; a step whose loss or gradient is not finite is
skipped with a warning, as in RL. ``WarmStart`` can be checkpointed and resumed. It reuses
the RL step's padding and forward (``sequences``, ``logprobs``); it knows nothing about
rewards.
"""
from __future__ import annotations

import json
import math
import random
import time
import warnings
from typing import Callable, Iterator

import torch
from torch import nn

from .distributed import World, all_reduce_mean, all_reduce_sum, any_rank, set_gradient_sync
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


def flawed_answer(sample, rng: random.Random, *, near: bool = False) -> str:
    """A well-formed but wrong first attempt: the ideal objects shifted (by up to a quarter
    of the image), sometimes with an extra object (what a revision example starts from).
    ``near``: a nearly right attempt instead, every object shifted by at most 1/16 of the
    image and none added (a revision should keep it, not move away from it)."""
    width, height = sample.input_size
    reach_x, reach_y = (width // 16, height // 16) if near else (width // 4, height // 4)
    objects = []
    for o in sample.objects:
        dx, dy = rng.randint(-reach_x, reach_x), rng.randint(-reach_y, reach_y)
        x1, y1, x2, y2 = o["bbox_2d"]
        box = [min(max(0, round(v + d)), lim) for v, d, lim in
               ((x1, dx, width - 1), (y1, dy, height - 1), (x2, dx, width - 1),
                (y2, dy, height - 1))]
        objects.append({"bbox_2d": box, "point_2d": [(box[0] + box[2]) // 2,
                                                     (box[1] + box[3]) // 2]})
    if not near and rng.random() < 0.3:
        objects.append(dict(objects[0]))
    return f"<think>Looking for {sample.query}.</think><answer>{json.dumps(objects)}</answer>"


def revision_messages(sample, template: str | None, revision_template: str | None,
                      rng: random.Random, keep: float = 0.0) -> list[dict]:
    """[user: x, q] [assistant: flawed o1] [user: U(q, o1)]: a GRO revision turn to learn.
    With probability ``keep`` the first attempt is nearly right (``flawed_answer(near=True)``);
    ``keep`` 0 draws nothing extra from ``rng``, so earlier runs' examples are unchanged."""
    from gro_fast.algo import revision_query
    from gro_fast.data import build_messages
    messages = build_messages(sample, template=template)
    query = "".join(p.get("text", "") for p in messages[-1]["content"] if p.get("type") == "text")
    initial = flawed_answer(sample, rng, near=keep > 0 and rng.random() < keep)
    return messages + [
        {"role": "assistant", "content": [{"type": "text", "text": initial}]},
        {"role": "user", "content": [{"type": "text", "text": revision_query(
            query, initial, revision_template or None)}]}]


def sft_sequence(processor, sample, template: str | None, *, revision: bool = False,
                 revision_template: str | None = None, rng: random.Random | None = None,
                 revision_keep: float = 0.0) -> Sequence:
    """One warm-start example: the prompt (or, with ``revision``, a revision turn after a
    flawed or, with probability ``revision_keep``, nearly right first attempt) followed by
    the ideal response."""
    from gro_fast.data import build_messages
    messages = revision_messages(sample, template, revision_template, rng or random.Random(0),
                                 revision_keep) \
        if revision else build_messages(sample, template=template)
    prefix, vision = encode_prompt(processor, messages)
    tokenizer = getattr(processor, "tokenizer", processor)
    completion = tokenizer(answer_text(sample), add_special_tokens=False)["input_ids"]
    end = tokenizer.convert_tokens_to_ids("<|im_end|>")
    return Sequence(prefix_ids=prefix, completion_ids=list(completion) + [end], vision=vision,
                    group=0, role="sft")


def answer_nll(model: nn.Module, processor, samples: list, *, template: str | None,
               device: torch.device, micro_batch_size: int = 16) -> torch.Tensor:
    """fp32 [len(samples)]: each sample's ideal answer's negative log-likelihood (nats,
    summed over its tokens, end-of-turn included) under ``model``, teacher-forced."""
    from .logprobs import sequence_logprobs
    image_token = getattr(getattr(model, "config", None), "image_token_id", None)
    batch = SequenceBatch([sft_sequence(processor, s, template) for s in samples],
                          pad_id=processor.tokenizer.pad_token_id, image_token_id=image_token)
    return -sequence_logprobs(model, batch, micro_batch_size=micro_batch_size, temperature=1.0,
                              device=device).sum(1)


class WarmStart:
    """The warm start as a resumable loop: ``run`` continues from ``step`` (0, or what
    ``load_state_dict`` restored) and calls ``after_step(self)`` after every step (the
    trainer checkpoints and polls SIGINT / SIGTERM there; a true return stops the loop).
    ``optimizer`` / ``scheduler`` are checkpointed by the caller, ``state_dict`` holds the
    rest (step, losses, the example RNG)."""

    def __init__(self, model: nn.Module, processor, *, steps: int, lr: float, batch_size: int,
                 micro_batch_size: int, template: str | None, world: World,
                 device: torch.device, revision_fraction: float = 0.0,
                 plain_steps: int = 0, revision_template: str | None = None,
                 revision_keep: float = 0.0, seed: int = 0,
                 log: Callable[[str], None] = print):
        self.model, self.processor, self.steps = model, processor, steps
        self.template, self.revision_template = template, revision_template
        self.revision_fraction, self.plain_steps = revision_fraction, plain_steps
        self.revision_keep = revision_keep
        self.world, self.device = world, device
        self.micro_batch_size, self.log = micro_batch_size, log
        self.local = max(1, batch_size // world.size)
        self.rng = random.Random(seed * 7919 + world.rank)
        self.optimizer = build_optimizer(model, lr, 0.0)
        self.scheduler = build_scheduler(self.optimizer, warmup=max(1, steps // 20),
                                         total=steps, cosine=True, min_ratio=0.1)
        self.step, self.history, self.seconds = 0, [], 0.0

    def state_dict(self) -> dict:
        return {"step": self.step, "history": list(self.history), "seconds": self.seconds}

    def local_state(self) -> dict:
        """This rank's own state: the RNG that picks revision examples and flaws."""
        return {"sft_rng": self.rng.getstate()}

    def load_state_dict(self, state: dict, local: dict | None) -> None:
        self.step, self.history = int(state["step"]), list(state["history"])
        self.seconds = float(state.get("seconds", 0.0))
        if local and "sft_rng" in local:
            self.rng.setstate(local["sft_rng"])

    def stats(self) -> dict:
        if not self.history:
            return {}
        return {"sft_loss_first": self.history[0], "sft_loss_last": self.history[-1],
                "sft_seconds": self.seconds}

    def run(self, samples: Iterator, after_step: Callable[["WarmStart"], bool] | None = None
            ) -> dict | None:
        """Steps until ``steps``; the stats, or None when ``after_step`` stopped the loop."""
        pad = self.processor.tokenizer.pad_token_id
        image_token = getattr(getattr(self.model, "config", None), "image_token_id", None)
        self.model.train()
        while self.step < self.steps:
            start = time.perf_counter()
            plain = self.step < self.plain_steps
            seqs = [sft_sequence(self.processor, next(samples), self.template,
                                 revision=not plain and self.rng.random() < self.revision_fraction,
                                 revision_template=self.revision_template, rng=self.rng,
                                 revision_keep=self.revision_keep)
                    for _ in range(self.local)]
            batch = SequenceBatch(seqs, pad_id=pad, image_token_id=image_token)
            loss = _nll_step(self.model, batch, self.micro_batch_size, self.world, self.device)
            norm = torch.nn.utils.clip_grad_norm_([p for p in self.model.parameters()
                                                   if p.requires_grad], 1.0)
            norm = float(norm.full_tensor() if hasattr(norm, "full_tensor") else norm)
            if any_rank(not (math.isfinite(loss) and math.isfinite(norm)), self.world):
                warnings.warn(f"warm-start step {self.step + 1}: non-finite loss or gradient "
                              f"(loss {loss}, grad norm {norm}); update skipped, weights "
                              "unchanged", RuntimeWarning, stacklevel=2)
            else:
                self.optimizer.step()
                self.scheduler.step()
            self.optimizer.zero_grad(set_to_none=True)
            self.history.append(all_reduce_mean({"loss": loss}, self.world)["loss"])
            self.step += 1
            self.seconds += time.perf_counter() - start
            if self.step == 1 or self.step % max(1, self.steps // 5) == 0:
                self.log(f"sft step {self.step}/{self.steps}: loss {self.history[-1]:.4f}")
            if after_step is not None and after_step(self):
                return None
        return self.stats()


def supervised_warm_start(model: nn.Module, processor, samples: Iterator, *, steps: int,
                          **options) -> dict:
    """Runs ``steps`` NLL steps without checkpoints (see ``WarmStart`` for the options);
    returns {"sft_loss_first", "sft_loss_last", "sft_seconds"}."""
    if steps <= 0:
        return {}
    return WarmStart(model, processor, steps=steps, **options).run(samples)


def _nll_step(model, batch: SequenceBatch, micro_batch_size: int, world: World,
              device: torch.device) -> float:
    """Backward of the token-mean NLL of the batch's completions (over all ranks)."""
    from gro_fast.ops.token_logprobs import token_logprobs
    chunks = micro_batches(len(batch), micro_batch_size,
                           lengths=[len(s.prefix_ids) for s in batch.sequences])
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
    return value  # world * (this rank's share); the mean over ranks is the global NLL
