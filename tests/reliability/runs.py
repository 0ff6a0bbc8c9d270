"""Training runs in a subprocess, killed or not, and how to compare them.

A run is ``python -m gro_fast.train`` on the tiny model with a scripted-free GRPO recipe
(the toy reward of ``tests/train``), a 2-step warm start and 3 RL steps, a checkpoint
after every step of both phases. ``run(out, fault=..., kill_after=...)`` starts one:
``fault`` is a ``GRO_FAST_FAULT`` value (e.g. ``checkpoint.model:kill:3``), ``kill_after``
a delay in seconds (from the end of the run's set-up) after which the parent sends SIGKILL. ``same_run(a, b)`` checks that two
run folders logged the same metrics (1e-6) and ended with the same weights.
"""
from __future__ import annotations

import json
import math
import os
import signal
import subprocess
import sys
import tempfile
import time

TOY_REWARD = os.path.join(os.path.dirname(__file__), "..", "train", "toy_reward.py")
RECIPE = [
    "model.path=tiny", "evaluation.every=0", "data.image_size=56", "data.prompts_per_step=2", "evaluation.size=0",
    "data.template=Find {query}.", "rollout.num_samples=4", "rollout.max_new_tokens=12",
    "rollout.prompts_per_call=1", "warm_start.steps=2", "warm_start.batch_size=2",
    "warm_start.save_every=1", "trainer.steps=3", "checkpoint.save_every=1",
    "trainer.micro_batch_size=4", "optimizer.lr=1e-3", "schedule.warmup_steps=0",
    "algorithm.name=grpo", f"algorithm.reward={os.path.abspath(TOY_REWARD)}:shape_reward",
    "logging.progress=false", "logging.tensorboard=false", "logging.plots=false",
]
# The points a kill can be aimed at, with how many times a run of RECIPE reaches each
# (6 checkpoints: 2 warm-start, 3 RL, the final one again; 2 state files each).
KILL_POINTS = {
    "checkpoint.start": 6, "checkpoint.model": 6, "checkpoint.write": 12,
    "checkpoint.rng": 6, "checkpoint.trainer_state": 6, "checkpoint.manifest": 6,
    "checkpoint.rename": 6, "checkpoint.renamed": 6, "checkpoint.pruned": 6,
    "sft.step": 2, "train.step": 3,
}
KEYS = {"metrics.jsonl": ("reward_mean", "loss", "grad_norm", "ratio_mean", "lr", "kl"),
        "sft_metrics.jsonl": ("loss", "lr")}


def env() -> dict:
    out = {k: v for k, v in os.environ.items()
           if k not in ("TRITON_INTERPRET", "GRO_FAST_FAULT")}
    out.update(GRO_FAST_KERNELS="reference", OMP_NUM_THREADS="1", TOKENIZERS_PARALLELISM="false",
               HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1")
    return out


def run(out, *extra: str, resume: bool = False, fault: str | None = None,
        kill_after: float | None = None, timeout: float = 300) -> tuple[int, str, float]:
    """(exit code, combined output, seconds of training) of one run into ``out``; the exit
    code is -9 when killed. Training time counts from the moment the run has written its
    ``config.yaml`` (imports and set-up done); ``kill_after`` counts from there too."""
    cmd = [sys.executable, "-m", "gro_fast.train", *RECIPE, f"trainer.output_dir={out}",
           *extra] + (["--resume", "auto"] if resume else [])
    e = env()
    if fault:
        e["GRO_FAST_FAULT"] = fault
    config = os.path.join(str(out), "config.yaml")
    fresh = not os.path.exists(config)
    with tempfile.TemporaryFile("w+") as log:
        proc = subprocess.Popen(cmd, env=e, stdout=log, stderr=subprocess.STDOUT, text=True)
        started = None if fresh else time.monotonic()
        limit = time.monotonic() + timeout
        while proc.poll() is None and time.monotonic() < limit:
            if started is None and os.path.exists(config):
                started = time.monotonic()
            if kill_after is not None and started is not None \
                    and time.monotonic() - started >= kill_after:
                proc.send_signal(signal.SIGKILL)
                break
            time.sleep(0.005)
        if proc.poll() is None and kill_after is None:
            proc.kill()
        proc.wait()
        log.seek(0)
        text = log.read()
    return proc.returncode, text, time.monotonic() - (started or time.monotonic())


def rows(path) -> list[dict]:
    with open(path) as f:
        return [json.loads(line) for line in f if line.strip()]


def same_run(reference, other) -> list[str]:
    """Differences between two finished runs (empty when they match to 1e-6)."""
    from safetensors.torch import load_file
    problems = []
    for name, keys in KEYS.items():
        a, b = rows(os.path.join(reference, name)), rows(os.path.join(other, name))
        if [r["step"] for r in a] != [r["step"] for r in b]:
            problems.append(f"{name}: steps {[r['step'] for r in b]} != {[r['step'] for r in a]}")
            continue
        for ra, rb in zip(a, b):
            for key in keys:
                x, y = ra.get(key), rb.get(key)
                if x is None or y is None or not math.isclose(x, y, rel_tol=1e-6, abs_tol=1e-9):
                    problems.append(f"{name} step {ra['step']} {key}: {y} != {x}")
    wa = load_file(os.path.join(reference, "final", "model.safetensors"))
    wb = load_file(os.path.join(other, "final", "model.safetensors"))
    if wa.keys() != wb.keys():
        problems.append("final weights: different keys")
    else:
        for key in wa:
            diff = (wa[key].double() - wb[key].double()).abs().max().item() if wa[key].numel() else 0
            if diff > 1e-6:
                problems.append(f"final weight {key}: max diff {diff:.3g}")
    return problems


def newest_good_checkpoint(out) -> str | None:
    """What ``--resume auto`` must pick: the newest checkpoint that verifies."""
    from gro_fast.train.checkpoint import (CheckpointError, checkpoint_root, list_checkpoints,
                                           verify_checkpoint)
    for _, _, path in reversed(list_checkpoints(checkpoint_root(str(out)))):
        try:
            verify_checkpoint(path)
            return path
        except CheckpointError:
            continue
    return None


def resumed_from(text: str) -> str | None:
    """The checkpoint a resumed run says it started from (None: it started fresh)."""
    for line in text.splitlines():
        if line.startswith("resumed"):
            return line.split(" from ", 1)[1].split(" at step ")[0]
    return None
