"""Weights & Biases mirror of a run (``logging.wandb: true``), beside metrics.jsonl and
TensorBoard.

``WandbRun`` logs what ``MetricsLogger`` logs (every finite scalar of each logged step,
at that step), the PNG plots ``plots.py`` draws (``plots/<name>`` images) and the held-out
results (the table ``heldout`` with one row per stage, plus ``heldout/<stage>/<metric>`` in
the summary). The run lives in ``<output_dir>/wandb``; its id is kept in
``<output_dir>/wandb-run-id`` so ``--resume`` continues the same W&B run. The project is
``WANDB_PROJECT`` (default ``gro_fast``); ``WANDB_MODE=offline`` needs no network (sync
later with ``wandb sync``). Without wandb installed, ``open_wandb`` warns and returns None.
This module reads nothing back and computes nothing.
"""
from __future__ import annotations

import math
import os
import warnings

RUN_ID_FILE = "wandb-run-id"
DEFAULT_PROJECT = "gro_fast"


def open_wandb(output_dir: str, config: dict | None, *, resume: bool):
    """A ``WandbRun`` for ``output_dir``, or None (with a warning) when wandb is missing."""
    try:
        import wandb
    except ImportError:
        warnings.warn("logging.wandb is true but wandb is not installed (pip install wandb); "
                      "logging to metrics.jsonl and TensorBoard only", stacklevel=2)
        return None
    return WandbRun(wandb, output_dir, config, resume=resume)


class WandbRun:
    """One W&B run for one training run (rank 0 only; see the module docstring)."""

    def __init__(self, wandb, output_dir: str, config: dict | None, *, resume: bool):
        self.wandb = wandb
        os.makedirs(output_dir, exist_ok=True)
        id_path = os.path.join(output_dir, RUN_ID_FILE)
        run_id = None
        if resume and os.path.isfile(id_path):
            with open(id_path) as f:
                run_id = f.read().strip() or None
        self.run = wandb.init(project=os.environ.get("WANDB_PROJECT", DEFAULT_PROJECT),
                              name=os.path.basename(os.path.abspath(output_dir)), id=run_id,
                              resume="allow" if run_id else None, dir=output_dir, config=config or {},
                              reinit="create_new")
        with open(id_path, "w") as f:
            f.write(self.run.id)

    def log(self, step: int, values: dict) -> None:
        scalars = {k: v for k, v in values.items()
                   if isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)}
        if scalars:
            self.run.log(scalars, step=step)

    def log_plots(self, paths: list[str], step: int) -> None:
        images = {f"plots/{os.path.splitext(os.path.basename(p))[0]}": self.wandb.Image(p)
                  for p in paths}
        if images:
            self.run.log(images, step=step)

    def log_heldout(self, results: dict[str, dict], step: int) -> None:
        """The held-out table (stage x metric) and its values in the run summary."""
        if not results:
            return
        metrics = sorted({m for values in results.values() for m in values})
        table = self.wandb.Table(columns=["stage", *metrics],
                                 data=[[stage, *(values.get(m) for m in metrics)]
                                       for stage, values in results.items()])
        self.run.log({"heldout": table}, step=step)
        for stage, values in results.items():
            for metric, value in values.items():
                self.run.summary[f"heldout/{stage}/{metric}"] = value

    def finish(self) -> None:
        self.run.finish()
