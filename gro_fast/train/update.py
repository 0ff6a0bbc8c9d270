"""The policy update: clipped GRO / GRPO loss over micro-batches, AdamW, clipping, schedule.

``policy_update`` makes ``num_iterations`` passes over a scored rollout batch. Each pass
cuts the batch into optimizer steps of ``grad_accumulation`` micro-batches; each
micro-batch's loss is ``gro_policy_loss`` (or ``fused_linear_gro_policy_loss``) on its
completion tokens only, scaled so the accumulated gradient equals the full-batch loss's
(also across data-parallel ranks, see ``sequences.aggregation_count``). A step whose loss
or gradient norm is not finite is skipped with a warning: gradients are dropped and the
weights, optimizer state and schedule stay as they were. The optimizer and schedule are
built here too (``build_optimizer``).
"""
from __future__ import annotations

import math
import warnings

import torch
from torch import nn

from .distributed import World, all_reduce_sum, any_rank, set_gradient_sync
from .logprobs import autocast_context, completion_outputs, output_weight
from .sequences import (SequenceBatch, aggregation_count, build_model_batch,
                        optimizer_groups)


def build_optimizer(model: nn.Module, lr: float, weight_decay: float) -> torch.optim.AdamW:
    params = [p for p in model.parameters() if p.requires_grad]
    if not params:
        raise ValueError("the model has no trainable parameters")
    return torch.optim.AdamW(params, lr=lr, weight_decay=weight_decay, betas=(0.9, 0.99),
                             eps=1e-8)


def lr_lambda(step: int, *, warmup: int, total: int, cosine: bool, min_ratio: float) -> float:
    """Linear warmup to 1, then cosine decay to ``min_ratio`` at ``total`` (or constant)."""
    if warmup > 0 and step < warmup:
        return (step + 1) / (warmup + 1)
    if not cosine or total <= warmup:
        return 1.0
    progress = min(1.0, (step - warmup) / max(1, total - warmup))
    return min_ratio + (1.0 - min_ratio) * 0.5 * (1.0 + math.cos(math.pi * progress))


def build_scheduler(optimizer, *, warmup: int, total: int, cosine: bool, min_ratio: float):
    return torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda s: lr_lambda(s, warmup=warmup, total=total, cosine=cosine,
                                       min_ratio=min_ratio))


def _loss(model, mb, batch: SequenceBatch, rows, algo, *, temperature: float,
          fused_linear: bool, max_length: int):
    """PolicyLossOutput of one micro-batch."""
    from gro_fast.ops import gro_policy_loss
    T = mb.targets.shape[1]
    pick = torch.tensor(rows)
    device = mb.targets.device

    def per_token(x):
        return None if x is None else x[pick, :T].to(device)

    options = dict(
        improvement=None if batch.shaping is None else batch.shaping[pick].to(device),
        old_logprobs=per_token(batch.old_logprobs),
        ref_logprobs=per_token(batch.ref_logprobs) if algo.beta > 0 else None,
        eps_low=algo.eps_low, eps_high=algo.eps_high, beta=algo.beta,
        temperature=temperature, loss_agg=algo.loss_agg, max_length=max_length)
    advantages = batch.advantages[pick].to(device)
    outputs = completion_outputs(model, mb, fused_linear=fused_linear)
    if fused_linear:
        from gro_fast.ops import fused_linear_gro_policy_loss
        weight, bias = output_weight(model)
        return fused_linear_gro_policy_loss(outputs, weight, mb.targets, mb.mask, advantages,
                                            bias=bias, **options)
    return gro_policy_loss(outputs, mb.targets, mb.mask, advantages, **options)


def _optimizer_step(model, optimizer, scheduler, max_grad_norm: float, loss_finite: bool,
                    world: World) -> tuple[float, bool]:
    """Clips and steps; returns (grad_norm, stepped). Non-finite -> no step at all."""
    params = [p for p in model.parameters() if p.requires_grad]
    norm = torch.nn.utils.clip_grad_norm_(params, max_grad_norm if max_grad_norm > 0 else
                                          float("inf"), foreach=None)
    if hasattr(norm, "full_tensor"):
        norm = norm.full_tensor()
    grad_norm = float(norm)
    finite = math.isfinite(grad_norm) and not any_rank(not loss_finite, world)
    if not finite:
        warnings.warn(f"non-finite loss or gradient (grad norm {grad_norm}); update skipped, "
                      "weights unchanged", RuntimeWarning, stacklevel=2)
        optimizer.zero_grad(set_to_none=True)
        return grad_norm, False
    optimizer.step()
    scheduler.step()
    optimizer.zero_grad(set_to_none=True)
    return grad_norm, True


def accumulate_gradients(model: nn.Module, batch: SequenceBatch, group: list[list[int]], algo,
                         *, temperature: float, fused_linear: bool, max_length: int,
                         world: World, device: torch.device) -> dict:
    """Forward + backward of the micro-batches ``group`` (lists of rows), each loss scaled
    so the summed gradient is that of the loss over the whole group on all ranks."""
    counts = [aggregation_count(batch_mask(batch, rows), algo.loss_agg) for rows in group]
    total = float(all_reduce_sum(sum(counts), world).item())
    sums = {"loss": 0.0, "kl": 0.0, "clip_frac": 0.0, "ratio_mean": 0.0, "finite": True}
    for k, (rows, count) in enumerate(zip(group, counts)):
        mb = build_model_batch(batch, rows, device)
        set_gradient_sync(model, k == len(group) - 1)
        with autocast_context(device, True):
            out = _loss(model, mb, batch, rows, algo, temperature=temperature,
                        fused_linear=fused_linear, max_length=max_length)
        scale = world.size * count / total if total > 0 else 0.0
        (out.loss * scale).backward()
        loss = float(out.loss.detach())
        sums["finite"] &= math.isfinite(loss)
        sums["loss"] += loss * scale
        sums["kl"] += float(out.stats["kl"]) / len(group)
        sums["ratio_mean"] += float(out.stats["ratio_mean"]) / len(group)
        sums["clip_frac"] += float(out.stats["clip_frac_low"] + out.stats["clip_frac_high"]) \
            / len(group)
    return sums


def policy_update(model: nn.Module, optimizer, scheduler, batch: SequenceBatch, algo, trainer,
                  *, temperature: float, max_length: int, world: World,
                  device: torch.device) -> dict:
    """All passes over ``batch``; returns mean loss / KL / clip / grad-norm statistics."""
    steps = []
    model.train()
    for _ in range(trainer.num_iterations):
        for group in optimizer_groups(len(batch), trainer.micro_batch_size,
                                      trainer.grad_accumulation):
            sums = accumulate_gradients(model, batch, group, algo, temperature=temperature,
                                        fused_linear=trainer.loss_impl == "fused_linear",
                                        max_length=max_length, world=world, device=device)
            grad_norm, stepped = _optimizer_step(model, optimizer, scheduler,
                                                 trainer.max_grad_norm, sums["finite"], world)
            steps.append({**sums, "grad_norm": grad_norm, "stepped": stepped})
    done = [s for s in steps if s["stepped"]]
    mean = lambda key, rows: sum(r[key] for r in rows) / max(1, len(rows))  # noqa: E731
    return {"loss": mean("loss", steps), "kl": mean("kl", steps),
            "clip_frac": mean("clip_frac", steps), "ratio_mean": mean("ratio_mean", steps),
            "grad_norm": mean("grad_norm", done) if done else float("nan"),
            "skipped_updates": len(steps) - len(done), "optimizer_steps": len(done),
            "lr": optimizer.param_groups[0]["lr"]}


def batch_mask(batch: SequenceBatch, rows: list[int]) -> torch.Tensor:
    """[len(rows), T_rows] completion mask of the given rows."""
    lengths = [len(batch.sequences[i].completion_ids) for i in rows]
    T = max(max(lengths), 1)
    return torch.arange(T).unsqueeze(0) < torch.tensor(lengths).unsqueeze(1)
