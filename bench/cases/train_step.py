"""One training step of ``gro_fast.train`` and its split: rollout / scoring / log-probs / update.

Rows (one per configuration; ``ms`` is the median step time over the timed steps):
- CPU (``--quick``): the tiny Qwen2.5-VL on the synthetic task, 4 prompts x G = 4,
  32-token completions, GRO and GRPO (``num_iterations`` 2, so the stored old log-probs
  are computed and timed too).
- GPU: a Qwen2.5-VL-3B-shaped model with random weights (``random:qwen2.5-vl-3b``),
  8 prompts x G = 8, 256-token completions (a random model never stops early, so every
  completion is 256 tokens), GRO with ``loss_impl`` logits and fused_linear (the peer is
  the same step with the other loss), gradient checkpointing on. ``--check``: fused_linear
  only (the recipes' loss), one timed step.
Each row reports the mean seconds of each part, generated tokens per second and, on GPU,
peak memory. The first step is a warm-up and is not timed.
"""
from __future__ import annotations

import statistics
import tempfile

import torch

from bench.registry import case
from gro_fast.train.config import load_config
from gro_fast.train.trainer import Trainer

PARTS = ("rollout_s", "scoring_s", "logprobs_s", "update_s")

CPU_SHAPE = ["model.path=tiny", "data.image_size=112", "data.prompts_per_step=4",
             "rollout.num_samples=4", "rollout.max_new_tokens=32", "trainer.micro_batch_size=16",
             "trainer.num_iterations=2"]
GPU_SHAPE = ["model.path=random:qwen2.5-vl-3b", "model.gradient_checkpointing=true",
             "data.image_size=448", "data.prompts_per_step=8", "rollout.num_samples=8",
             "rollout.max_new_tokens=256", "trainer.micro_batch_size=8", "optimizer.lr=1e-6",
             "trainer.num_iterations=1"]
COMMON = ["evaluation.size=0", "warm_start.steps=0", "logging.progress=false",
          "logging.tensorboard=false", "logging.plots=false", "schedule.warmup_steps=0"]


def _measure(overrides: list[str], device: torch.device, steps: int) -> dict:
    with tempfile.TemporaryDirectory() as out:
        config = load_config(None, COMMON + overrides + [
            f"trainer.output_dir={out}", f"trainer.steps={steps + 1}",
            f"trainer.device={device.type}"])
        trainer = Trainer(config)
        trainer.setup()
        trainer._build_optimizer()
        rows = []
        for step in range(1, steps + 2):
            if device.type == "cuda":
                torch.cuda.reset_peak_memory_stats(device)
            metrics = trainer.train_step(step)
            if step > 1:
                rows.append(metrics)
        peak = torch.cuda.max_memory_allocated(device) / 2**30 if device.type == "cuda" else None
    result = {"ms": statistics.median(r["step_s"] for r in rows) * 1e3}
    for part in PARTS:
        result[part.replace("_s", "_ms")] = statistics.mean(r[part] for r in rows) * 1e3
    result["tokens_per_s"] = statistics.mean(r["tokens_per_s"] for r in rows)
    result["generated_tokens"] = statistics.mean(r["generated_tokens"] for r in rows)
    if peak is not None:
        result["peak_gib"] = peak
    return result


@case("train_step", group="train")
def train_step(ctx) -> list[dict]:
    from gro_fast.ops._dispatch import force_backend
    rows = []
    if ctx.is_cuda and ctx.check:  # scripts/gpu_check.sh: the recipes' loss, one timed step
        runs = [("3b/gro/fused_linear", GPU_SHAPE + ["trainer.loss_impl=fused_linear"])]
        steps = 1
    elif ctx.is_cuda and not ctx.quick:
        runs = [("3b/gro/logits", GPU_SHAPE + ["trainer.loss_impl=logits"]),
                ("3b/gro/fused_linear", GPU_SHAPE + ["trainer.loss_impl=fused_linear"])]
        steps = 3
    else:
        runs = [("tiny/gro", CPU_SHAPE + ["algorithm.name=gro"]),
                ("tiny/grpo", CPU_SHAPE + ["algorithm.name=grpo"])]
        steps = 2
    backend = "auto" if ctx.is_cuda else "reference"
    for name, overrides in runs:
        try:
            with force_backend(backend):
                measured = _measure(overrides, ctx.device, steps)
        except (ImportError, torch.cuda.OutOfMemoryError) as exc:
            rows.append({"impl": name, "skipped": f"{type(exc).__name__}: {exc}"[:200]})
            continue
        rows.append({"impl": name, **measured, "steps_timed": steps})
    base = next((r["ms"] for r in rows if "ms" in r), None)
    for row in rows:
        if "ms" in row and base:
            row["vs_first"] = base / row["ms"]
    return rows
