"""Where a run's numbers go: a JSONL file per run, TensorBoard, W&B, a progress bar, a summary.

``MetricsLogger`` writes one JSON object per logged step to ``<output_dir>/metrics.jsonl``
(on resume, lines past the resumed step are dropped so the file matches the run),
mirrors scalars to TensorBoard when it is installed and, with ``logging.wandb``, the same
scalars, the plots and the held-out table to Weights & Biases (``wandb_log.py``), and
drives a tqdm bar whose postfix shows the key numbers. Only rank 0 writes. Plots are
drawn by ``plots.py`` from the JSONL.
"""
from __future__ import annotations

import json
import math
import os
import time

PROGRESS_KEYS = (("reward", "reward_mean"), ("acc", "accuracy_mean"), ("dphi", "dphi_mean"),
                 ("loss", "loss"), ("tok/s", "tokens_per_s"))


BAR_POSITION: int | None = None
"""Terminal line of this process's progress bar (set by parallel workers, e.g.
``gro-fast ablation --jobs 2``, so their bars stack instead of overwriting each other)."""
BAR_LABEL = ""
"""A prefix for the bar's label naming the job (e.g. "gro seed 1")."""


def read_metrics(path: str) -> list[dict]:
    """The rows of a metrics file; a last line cut short by a crash is dropped."""
    if not os.path.isfile(path):
        return []
    with open(path, encoding="utf-8", errors="replace") as f:
        lines = [line for line in f if line.strip()]
    rows = []
    for i, line in enumerate(lines):
        try:
            rows.append(json.loads(line))
        except ValueError:
            if i < len(lines) - 1:
                raise ValueError(f"{path}:{i + 1}: not a JSON line") from None
    return rows


def _finite_or_none(value):
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


class MetricsLogger:
    """JSONL + TensorBoard + progress bar for one run (a no-op object off rank 0)."""

    def __init__(self, output_dir: str, *, total_steps: int, start_step: int = 0,
                 enabled: bool = True, progress: bool = True, tensorboard: bool = True,
                 wandb: bool = False, run_config: dict | None = None,
                 filename: str = "metrics.jsonl", desc: str = "train"):
        """``wandb``: also log to Weights & Biases (``run_config`` is the run's config);
        a run started at ``start_step`` > 0 continues the W&B run of ``output_dir``.
        ``filename`` / ``desc``: the log file and progress-bar label (the warm start has its own)."""
        self.enabled = enabled
        self.path = os.path.join(output_dir, filename)
        self.writer = None
        self.wandb = None
        self.bar = None
        self.last_step = start_step
        if not enabled:
            return
        os.makedirs(output_dir, exist_ok=True)
        self._truncate(start_step)
        if tensorboard:
            self.writer = _tensorboard_writer(os.path.join(output_dir, "tensorboard"))
        if wandb:
            from .wandb_log import open_wandb
            self.wandb = open_wandb(output_dir, run_config, resume=start_step > 0)
        if progress:
            from tqdm.auto import tqdm
            self.bar = tqdm(total=total_steps, initial=start_step, unit="step",
                            desc=f"{BAR_LABEL} {desc}".strip(), dynamic_ncols=True,
                            position=BAR_POSITION, leave=BAR_POSITION is None)

    def _truncate(self, start_step: int) -> None:
        kept = [row for row in read_metrics(self.path) if row.get("step", 0) <= start_step] \
            if start_step > 0 else []  # a fresh run starts a fresh log
        with open(self.path, "w") as f:
            for row in kept:
                f.write(json.dumps(row) + "\n")

    def log(self, step: int, values: dict) -> None:
        if not self.enabled:
            return
        row = {"step": step, "time": time.time(),
               **{k: _finite_or_none(v) for k, v in values.items()}}
        with open(self.path, "a") as f:
            f.write(json.dumps(row) + "\n")
        self.last_step = max(self.last_step, step)
        if self.writer is not None:
            for key, value in values.items():
                if isinstance(value, (int, float)) and math.isfinite(value):
                    self.writer.add_scalar(key, value, step)
        if self.wandb is not None:
            self.wandb.log(step, values)
        if self.bar is not None:
            self.bar.update(step - self.bar.n)
            self.bar.set_postfix({name: f"{values[key]:.3g}" for name, key in PROGRESS_KEYS
                                  if isinstance(values.get(key), (int, float))}, refresh=True)

    def log_plots(self, paths: list[str]) -> None:
        """The run's PNG plots, to W&B (the files themselves are already on disk)."""
        if self.enabled and self.wandb is not None:
            self.wandb.log_plots(paths, self.last_step)

    def log_heldout(self, results: dict[str, dict]) -> None:
        """The held-out results by stage, as a W&B table (printed by ``heldout_table``)."""
        if self.enabled and self.wandb is not None:
            self.wandb.log_heldout(results, self.last_step)

    def write(self, text: str) -> None:
        """Prints a line without breaking the progress bar."""
        if not self.enabled:
            return
        if self.bar is not None:
            self.bar.write(text)
        else:
            print(text, flush=True)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None
        if self.writer is not None:
            self.writer.close()
            self.writer = None
        if self.wandb is not None:
            self.wandb.finish()
            self.wandb = None


def _tensorboard_writer(path: str):
    try:
        from torch.utils.tensorboard import SummaryWriter
    except Exception:  # tensorboard is optional
        return None
    return SummaryWriter(path)


SUMMARY_KEYS = ("reward_mean", "accuracy_mean", "dphi_mean", "all_fail_frac", "fell_back_frac",
                "kl", "clip_frac", "grad_norm", "tokens_per_s", "step_s")


def summary_table(rows: list[dict]) -> str:
    """A short text table: first, last and mean of the key metrics over the run."""
    if not rows:
        return "(no metrics logged)"
    lines = [f"{'metric':<16}{'first':>10}{'last':>10}{'mean':>10}"]
    for key in SUMMARY_KEYS:
        values = [r[key] for r in rows if isinstance(r.get(key), (int, float))]
        if values:
            lines.append(f"{key:<16}{values[0]:>10.4g}{values[-1]:>10.4g}"
                         f"{sum(values) / len(values):>10.4g}")
    skipped = sum(int(r.get("skipped_updates", 0) or 0) for r in rows)
    lines.append(f"steps logged: {len(rows)}; skipped (non-finite) updates: {skipped}")
    return "\n".join(lines)


def heldout_table(results: dict[str, dict]) -> str:
    """Before/after table of held-out scores: {stage: {metric: value}} (metrics may carry a
    split prefix, "hard/acc_at_0.5")."""
    stages = list(results)
    present = {k for s in stages for k in results[s]}
    metrics = [k for name in ("acc_at_0.5", "mean_iou", "accuracy", "format", "count_exact")
               for k in sorted(present) if k == name or k.endswith("/" + name)]
    width = max(12, *(len(s) + 2 for s in stages))
    lines = ["held-out" + " " * 8 + "".join(f"{s:>{width}}" for s in stages)]
    for metric in metrics:
        cells = "".join(f"{results[s].get(metric, float('nan')):>{width}.3f}" for s in stages)
        lines.append(f"{metric:<16}{cells}")
    return "\n".join(lines)
