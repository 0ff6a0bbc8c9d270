"""One ablation run: the shared warm start of a seed, or one arm's RL from it.

``ArmTrainer`` is the ordinary ``Trainer`` with three additions the ablation needs: held-out
scoring on both synthetic splits (hard and easy) at evenly spaced generated-token marks,
the warm start's scores reused as every arm's "before RL" (greedy decoding of the same
weights gives the same answers), and a per-step record of the zero-signal fractions and of
dphi on all-fail groups. ``warm_start`` trains and scores a seed's warm start once. The
arms, budgets and files are ``ablation.py``'s; nothing here knows which arm it runs.
"""
from __future__ import annotations

import copy
import math
import os
import time

from .config import Config
from .heldout import evaluate_heldout, image_reliance
from .prompts import heldout_samples
from .scoring import BY_KIND
from .trainer import Trainer

SPLITS = ("hard", "easy")
"""The synthetic task's difficulties scored as held-out splits."""

SIGNALS = ("zero_variance_frac", "all_fail_frac", "fell_back_frac", "dphi_mean",
           "reward_mean", "accuracy_mean", "response_length")
"""Per-step metrics kept in a run's record (means over its steps go to the report)."""


def split_samples(config: Config, eval_size: int, seed: int, processor) -> dict[str, list]:
    """``eval_size`` held-out prompts of each synthetic split ("hard", "easy"), built with
    data seed ``seed`` (the recipe's: the same prompts for every arm and seed)."""
    out = {}
    for split in SPLITS:
        data = copy.deepcopy(config.data)
        data.difficulty, data.seed = split, seed
        out[split] = heldout_samples(data, eval_size, processor)
    return out


class ArmTrainer(Trainer):
    """A ``Trainer`` that scores both held-out splits (see the module docstring)."""

    closing_note = None

    def __init__(self, config: Config, *, eval_size: int, heldout_seed: int, evals: int = 0,
                 before: dict | None = None, **kwargs):
        super().__init__(config, **kwargs)
        self.eval_size, self.heldout_seed = eval_size, heldout_seed
        budget = config.trainer.max_generated_tokens
        self.marks = [budget * k / (evals + 1) for k in range(1, evals + 1)] if budget else []
        self.before = before
        self.curve: list[dict] = []
        self.steps: list[dict] = []
        self.all_fail_improvement: list[float] = []
        self.splits: dict[str, list] = {}
        self.clock = time.perf_counter()
        self.eval_seconds = 0.0

    def setup(self) -> None:
        super().setup()
        self.splits = split_samples(self.config, self.eval_size, self.heldout_seed,
                                    self.processor)

    def evaluate(self, stage: str) -> dict:
        """Both splits' held-out scores, as {"hard/acc_at_0.5": ..., "easy/...": ...}."""
        if stage == "before" and self.before is not None:
            result = self.before
        else:
            start = time.perf_counter()
            result = {}
            for split, samples in self.splits.items():
                scores = evaluate_heldout(
                    self.engine, self.policy, samples, template=self.config.data.template or None,
                    max_new_tokens=self.config.evaluation.max_new_tokens, world=self.world,
                    device=self.device)
                result.update({f"{split}/{k}": v for k, v in scores.items()})
            self.eval_seconds += time.perf_counter() - start
            self.clock += time.perf_counter() - start  # wall time counts training only
            self.log(f"held-out [{stage}] " + "  ".join(
                f"{k}={v:.3f}" for k, v in result.items() if k.endswith(("acc_at_0.5", "mean_iou"))))
        self.heldout_results[stage] = result
        self.curve.append({"stage": stage, "step": self.step, "tokens": self.generated_tokens,
                           "wall_s": self.wall_s(), **result})
        return result

    def wall_s(self) -> float:
        """Seconds of RL so far, held-out scoring excluded."""
        return time.perf_counter() - self.clock

    def train_step(self, step: int) -> dict:
        metrics = super().train_step(step)
        self.steps.append({"step": step, "tokens": self.generated_tokens,
                           **{k: metrics[k] for k in SIGNALS if k in metrics},
                           **{k: v for k, v in metrics.items()
                              if "/" in k and k.split("/")[0] in ("groups", *BY_KIND)}})
        self.all_fail_improvement.extend(self.last_scored.all_fail_improvement)
        self._update_bar(step)
        while self.marks and self.generated_tokens >= self.marks[0] and not self.budget_spent():
            self.marks.pop(0)
            self.evaluate(f"step_{step}")
        return metrics

    def _update_bar(self, step: int) -> None:
        """The progress bar's total, estimated from the tokens spent per step so far."""
        bar = self.logger.bar if self.logger is not None else None
        budget = self.config.trainer.max_generated_tokens
        if bar is None or not budget or self.generated_tokens <= 0:
            return
        per_step = self.generated_tokens / step
        bar.total = min(self.config.trainer.steps,
                        step + max(0, math.ceil((budget - self.generated_tokens) / per_step)))

    def record(self) -> dict:
        """What the ablation keeps of this run (JSON-ready)."""
        return {"curve": self.curve, "steps": self.steps, "all_fail_dphi": self.all_fail_improvement,
                "before": self.heldout_results.get("before", {}),
                "after": self.heldout_results.get("after", {}),
                "num_steps": self.step, "generated_tokens": self.generated_tokens,
                "wall_s": self.wall_s()}


def warm_start(config: Config, eval_size: int, heldout_seed: int) -> dict:
    """Trains the seed's warm start, writes it to ``<output_dir>/final`` and returns its
    held-out scores on both splits (scored once, after it), its loss / time stats and its
    wall time (held-out scoring excluded)."""
    start = time.perf_counter()
    trainer = ArmTrainer(config, eval_size=eval_size, heldout_seed=heldout_seed, before={})
    trainer.setup()
    if not trainer.warm_start():
        raise RuntimeError(f"the warm start in {config.trainer.output_dir} was stopped")
    trainer._write_final(merge_lora=False)
    seconds = time.perf_counter() - start - trainer.eval_seconds
    scores = trainer.heldout_results["after_sft"]
    reliance = {split: image_reliance(trainer.policy, trainer.processor, samples,
                                      template=config.data.template or None,
                                      world=trainer.world, device=trainer.device,
                                      micro_batch_size=config.trainer.micro_batch_size)
                for split, samples in trainer.splits.items() if len(samples) >= 2}
    trainer.log("image reliance after the warm start (answer NLL with the next prompt's "
                "image minus with its own, nats): " + "  ".join(
                    f"{split} {r['image_nll_gain']:+.3f}" for split, r in reliance.items()))
    trainer.close()
    return {"heldout": scores, "image_reliance": reliance, "sft": trainer.sft_stats,
            "wall_s": seconds, "model": os.path.join(config.trainer.output_dir, "final")}
