"""The training run: set-up, then rollout -> score -> old/ref log-probs -> update -> log.

``Trainer(config).run()`` builds the policy, the rollout engine and the data; scores the
held-out split before anything; runs the supervised warm start (``sft.py``) when
configured; then GRO / GRPO steps, each a few calls into the step modules
(``rollout``, ``scoring``, ``logprobs``, ``update``); checkpoints on schedule, at the end
and on SIGINT / SIGTERM (``signals``); and finally scores the held-out split again,
writes the final model, plots and a summary. ``--resume`` restores the newest (or a
given) checkpoint and continues exactly. Everything heavy lives in the step modules.
"""
from __future__ import annotations

import os
import random
import time

import numpy as np
import torch

from . import checkpoint as ckpt
from .config import Config, ConfigError, save_config, to_dict
from .distributed import (World, all_reduce_mean, all_reduce_sum, any_rank, barrier,
                          close_world, init_world, shard_model)
from .heldout import evaluate_heldout
from .logprobs import sequence_logprobs
from ..data.prompts import save_template
from .metrics import MetricsLogger, heldout_table, read_metrics, summary_table
from .model_setup import load_policy
from .prompts import PromptStream, data_frame, heldout_samples, warm_start_data
from .rollout import collect_rollout
from .scoring import score_rollout
from .faults import fault_point
from .signals import StopFlag
from .update import build_optimizer, build_scheduler, policy_update


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


class Trainer:
    """One training run (see the module docstring)."""

    closing_note = ("one run of one algorithm and one seed: it shows how this run moved, "
                    "not whether RL helps or GRO beats GRPO; for GRO vs GRPO on equal token "
                    "budgets over several seeds: gro-fast ablation (docs/ablation.md)")

    def __init__(self, config: Config, *, resume: str | None = None, world: World | None = None,
                 print_fn=print, engine_factory=None):
        """``engine_factory(model, processor)`` replaces ``RolloutEngine`` (for experiments
        with other samplers); ``print_fn`` receives the run's text output."""
        self.config = config
        self.resume = resume
        self.world = world or init_world(config.trainer.device)
        self.device = self.world.device
        self.out = config.trainer.output_dir
        self._print = print_fn
        self.stop = StopFlag()
        self.engine_factory = engine_factory
        self.heldout_results: dict[str, dict] = {}
        self.step = 0
        self.generated_tokens = 0.0
        self.last_scored = None
        self.logger: MetricsLogger | None = None
        self.sft_stats: dict = {}
        # Built by setup() and the stages (None until then).
        self.policy = self.processor = self.engine = self.reference = None
        self.prompts = self.sft_stream = None
        self.heldout: list = []
        self.optimizer = self.scheduler = None
        self.pad_id = self.image_token_id = None
        self._threads: int | None = None
        self._check()

    def _check(self) -> None:
        cfg = self.config
        if self.world.distributed and cfg.model.lora_rank > 0:
            raise ConfigError("model.lora_rank: LoRA is not supported with torchrun/FSDP2 "
                              "in gro_fast; train full weights or use one process")
        if self.world.distributed and cfg.data.prompts_per_step % self.world.size:
            raise ConfigError(f"data.prompts_per_step: {cfg.data.prompts_per_step} is not "
                              f"divisible by the {self.world.size} data-parallel ranks")

    def log(self, text: str) -> None:
        if self.world.is_main:
            if self.logger is not None:
                self.logger.write(text)
            else:
                self._print(text, flush=True)

    # ----- set-up ------------------------------------------------------------------------
    def setup(self) -> None:
        from gro_fast.generation import RolloutEngine
        cfg = self.config
        self._threads = torch.get_num_threads()
        if self.device.type == "cpu" and cfg.trainer.cpu_threads > 0:
            torch.set_num_threads(cfg.trainer.cpu_threads)
        seed_everything(cfg.trainer.seed + self.world.rank)
        if self.world.is_main:
            os.makedirs(self.out, exist_ok=True)
            save_config(cfg, os.path.join(self.out, "config.yaml"))
        self.policy, self.processor = load_policy(cfg.model, self.device)
        if self.world.distributed:
            shard_model(self.policy, self.world, mixed_precision=self.device.type == "cuda")
        # peft injects LoRA into the model's own layers: the engine samples from the
        # Hugging Face model inside the wrapper, adapters included.
        hf_model = self.policy.get_base_model() if hasattr(self.policy, "get_base_model") \
            else self.policy
        self.engine = (self.engine_factory or RolloutEngine)(hf_model, self.processor)
        # One frame for every sample: what the processor feeds (gro_fast.data.model_frame).
        frame = (data_frame(cfg.data, self.processor)
                 if cfg.data.entries("source") or cfg.data.entries("eval_source") else None)
        self.prompts = PromptStream(cfg.data, seed=cfg.data.seed, processor=self.processor,
                                    frame=frame)
        self.heldout = heldout_samples(cfg.data, cfg.evaluation.size, self.processor, frame)
        skipped = self.prompts.skipped_total()
        if skipped:
            self.log(f"data: skipped {sum(skipped.values())} bad records {skipped}")
        self.pad_id = self.processor.tokenizer.pad_token_id
        self.image_token_id = self.policy.config.image_token_id

    def _build_optimizer(self) -> None:
        cfg, t = self.config, self.config.trainer
        self.optimizer = build_optimizer(self.policy, cfg.optimizer.lr,
                                         cfg.optimizer.weight_decay)
        total = t.steps * t.num_iterations  # the schedule advances once per update pass
        s = cfg.schedule
        self.scheduler = build_scheduler(self.optimizer, warmup=s.warmup_steps, total=total,
                                         cosine=s.cosine, min_ratio=s.min_lr_ratio)

    # ----- stages ------------------------------------------------------------------------
    def evaluate(self, stage: str) -> dict:
        if not self.heldout:
            return {}
        start = time.perf_counter()
        result = evaluate_heldout(self.engine, self.policy, self.heldout,
                                  template=self.config.data.template or None,
                                  max_new_tokens=self.config.evaluation.max_new_tokens,
                                  world=self.world, device=self.device)
        self.heldout_results[stage] = result
        self.log(f"held-out [{stage}] " + "  ".join(f"{k}={v:.3f}" for k, v in result.items())
                 + f"  ({time.perf_counter() - start:.1f}s)")
        return result

    def warm_start(self, path: str | None = None) -> bool:
        """The supervised warm start (``sft.py``), from checkpoint ``path`` when given:
        held-out "before" (fresh runs), the steps with their checkpoints, "after_sft".
        False when a signal stopped it (a checkpoint was written)."""
        from .sft import WarmStart
        cfg, w = self.config, self.config.warm_start
        if path is None:
            self.evaluate("before")
        if w.steps <= 0:
            if path is not None:
                raise ConfigError(f"--resume {path}: a warm-start checkpoint, but "
                                  "warm_start.steps is 0")
            return True
        data = warm_start_data(cfg.data, w.difficulty)
        self.sft_stream = PromptStream(data, seed=cfg.data.seed + 7919, processor=self.processor,
                                       source=self.prompts.source if data is cfg.data else None)
        warm = WarmStart(
            self.policy, self.processor, steps=w.steps, lr=w.lr,
            batch_size=w.batch_size, micro_batch_size=cfg.trainer.micro_batch_size,
            template=cfg.data.template or None, world=self.world, device=self.device,
            revision_fraction=w.revision_fraction if cfg.algorithm.name == "gro" else 0.0,
            plain_steps=round(w.revision_after * w.steps),
            revision_template=cfg.algorithm.revision_template,
            revision_keep=w.revision_keep, seed=cfg.trainer.seed,
            log=self.log)
        if path is not None:
            state = ckpt.load_checkpoint(path, self.policy, warm.optimizer, warm.scheduler,
                                         self.world, verified=True)
            self.sft_stream.load_state_dict(state.data)
            self.heldout_results = dict((state.counters or {}).get("heldout", {}))
            warm.load_state_dict(state.counters["sft"], state.local)
            self.log(f"resumed the warm start from {path} at step {warm.step}")
        self.logger = MetricsLogger(self.out, total_steps=w.steps, start_step=warm.step,
                                    enabled=self.world.is_main, progress=cfg.logging.progress,
                                    tensorboard=False, filename="sft_metrics.jsonl", desc="sft")
        stats = warm.run(iter(self.sft_stream.local_iter(self.world)),
                         after_step=self._after_sft_step)
        self.logger.close()
        self.logger = None
        if stats is None:
            return False
        self.sft_stats = stats
        self.evaluate("after_sft")
        return True

    def _after_sft_step(self, warm) -> bool:
        """Logs a warm-start step, checkpoints on schedule, at its end and on a signal;
        True when a signal asks the run to stop."""
        self.logger.log(warm.step, {"loss": warm.history[-1],
                                    "lr": warm.optimizer.param_groups[0]["lr"]})
        fault_point("sft.step")
        every = self.config.warm_start.save_every
        if any_rank(self.stop.requested, self.world):
            path = self._save_warm_start(warm)
            self.log(f"stopped by {self.stop.signal_name or 'a signal'} after warm-start step "
                     f"{warm.step}; checkpoint {path}")
            return True
        if warm.step == warm.steps or (every and warm.step % every == 0):
            self._save_warm_start(warm)
        return False

    def _save_warm_start(self, warm) -> str:
        state = ckpt.TrainerState(step=warm.step, phase="sft", data=self.sft_stream.state_dict(),
                                  counters={"heldout": self.heldout_results,
                                            "sft": warm.state_dict()},
                                  local=warm.local_state())
        return ckpt.save_checkpoint(self.out, warm.step, self.policy, self.processor,
                                    warm.optimizer, warm.scheduler, state, self.world,
                                    self.config.checkpoint.keep)

    def snapshot_reference(self, fresh: bool) -> None:
        """The frozen KL reference: the policy as RL starts (beta > 0 only), kept in
        ``<output_dir>/reference`` so a resumed run uses the same one."""
        if self.config.algorithm.beta <= 0:
            return
        ref_dir = os.path.join(self.out, "reference")
        if fresh:
            ckpt.write_model(self.policy, None, ref_dir, self.world)
            barrier(self.world)
        reference, _ = load_policy(self.config.model, self.device)
        ckpt.load_model_weights(reference, ref_dir)
        for p in reference.parameters():
            p.requires_grad_(False)
        if self.world.distributed:
            shard_model(reference, self.world, mixed_precision=self.device.type == "cuda")
        self.reference = reference.eval()

    # ----- one step ----------------------------------------------------------------------
    def train_step(self, step: int) -> dict:
        cfg = self.config
        times = {}
        t0 = time.perf_counter()
        prompts = self.prompts.next_local(cfg.data.prompts_per_step, self.world)
        rollout = collect_rollout(
            self.engine, self.policy, self.processor, prompts, algorithm=cfg.algorithm,
            rollout=cfg.rollout, data_template=cfg.data.template,
            seed=cfg.trainer.seed, step=step, world=self.world, device=self.device)
        times["rollout_s"] = time.perf_counter() - t0
        t1 = time.perf_counter()
        scored = score_rollout(rollout, cfg.algorithm, pad_id=self.pad_id,
                               image_token_id=self.image_token_id)
        times["scoring_s"] = time.perf_counter() - t1
        self.last_scored = scored
        t2 = time.perf_counter()
        self._old_and_ref_logprobs(scored.batch)
        times["logprobs_s"] = time.perf_counter() - t2
        t3 = time.perf_counter()
        stats = policy_update(self.policy, self.optimizer, self.scheduler, scored.batch,
                              cfg.algorithm, cfg.trainer, max_grad_norm=cfg.optimizer.max_grad_norm,
                              temperature=cfg.rollout.temperature,
                              max_length=cfg.rollout.max_new_tokens, world=self.world,
                              device=self.device)
        times["update_s"] = time.perf_counter() - t3
        times["step_s"] = time.perf_counter() - t0
        metrics = {**scored.metrics, **stats, **times}
        metrics = all_reduce_mean(metrics, self.world)
        tokens = float(all_reduce_sum(rollout.generated_tokens, self.world).item())
        metrics["generated_tokens"] = tokens
        self.generated_tokens += tokens
        metrics["tokens_per_s"] = tokens / max(metrics["step_s"], 1e-9)
        metrics["data_skipped"] = float(sum(self.prompts.skipped_total().values()))
        return metrics

    def _old_and_ref_logprobs(self, batch) -> None:
        """Stored old log-probs (num_iterations > 1) and reference log-probs (beta > 0)."""
        cfg = self.config
        common = dict(micro_batch_size=cfg.trainer.micro_batch_size,
                      temperature=cfg.rollout.temperature, device=self.device,
                      fused_linear=cfg.trainer.loss_impl == "fused_linear")
        if cfg.trainer.num_iterations > 1:
            batch.old_logprobs = sequence_logprobs(self.policy, batch, **common)
        if cfg.algorithm.beta > 0:
            batch.ref_logprobs = sequence_logprobs(self.reference, batch, **common)

    # ----- run ---------------------------------------------------------------------------
    def _resume_path(self) -> tuple[str | None, str | None]:
        """(checkpoint to resume from, its phase), or (None, None) for a fresh run."""
        if not self.resume:
            return None, None
        path = ckpt.resolve_resume(self.resume, self.out, log=self.log, world=self.world)
        if path is None:
            self.log(f"--resume: no checkpoint under {self.out}; starting fresh")
            return None, None
        return path, ckpt.read_manifest(path)["phase"]

    def _start(self) -> int | None:
        """Warm start + first evaluations (fresh, or resumed from a warm-start checkpoint)
        or a restored RL checkpoint; returns the first step, None when a signal stopped
        the warm start."""
        path, phase = self._resume_path()
        if phase != "rl":
            if not self.warm_start(path):
                return None
            self._build_optimizer()
            self.snapshot_reference(fresh=True)
            return 0
        self._build_optimizer()
        state = ckpt.load_checkpoint(path, self.policy, self.optimizer, self.scheduler,
                                     self.world, verified=True)
        self.prompts.load_state_dict(state.data)
        self.heldout_results = dict((state.counters or {}).get("heldout", {}))
        self.generated_tokens = float((state.counters or {}).get("generated_tokens", 0.0))
        self.snapshot_reference(fresh=False)
        self.log(f"resumed from {path} at step {state.step}")
        return state.step

    def save(self, step: int) -> str:
        state = ckpt.TrainerState(step=step, phase="rl", data=self.prompts.state_dict(),
                                  counters={"heldout": self.heldout_results,
                                            "generated_tokens": self.generated_tokens})
        return ckpt.save_checkpoint(self.out, step, self.policy, self.processor, self.optimizer,
                                    self.scheduler, state, self.world,
                                    self.config.checkpoint.keep)

    def run(self):
        """The whole run; returns the final held-out results (a dict), None on failure."""
        start_clock = time.perf_counter()
        self.setup()
        try:
            with self.stop:
                first = self._start()
                stopped = first is None or self._steps(first)
            if not stopped:
                self._finish(start_clock)
        finally:
            if self.logger is not None:
                self.logger.close()  # after _finish: the plots and tables go to W&B too
        self.close()
        return self.heldout_results

    def _steps(self, first: int) -> bool:
        """RL steps ``first + 1 ..``; True when a signal stopped them (after a checkpoint)."""
        cfg = self.config
        self.logger = MetricsLogger(self.out, total_steps=cfg.trainer.steps, start_step=first,
                                    enabled=self.world.is_main, progress=cfg.logging.progress,
                                    tensorboard=cfg.logging.tensorboard,
                                    wandb=cfg.logging.wandb, run_config=to_dict(cfg))
        self.step = first
        if first == 0 and "after_sft" in self.heldout_results:
            self._log_heldout(0, self.heldout_results["after_sft"])
        for step in range(first + 1, cfg.trainer.steps + 1):
            self.step = step
            metrics = self.train_step(step)
            last = step == cfg.trainer.steps or self.budget_spent()
            if step % cfg.logging.log_every == 0 or last:
                self.logger.log(step, metrics)
            if cfg.evaluation.every and step % cfg.evaluation.every == 0 and not last:
                self._log_heldout(step, self.evaluate(f"step_{step}"))
            fault_point("train.step")
            if any_rank(self.stop.requested, self.world):
                path = self.save(step)
                self.log(f"stopped by {self.stop.signal_name or 'a signal'} after step "
                         f"{step}; checkpoint {path}")
                return True
            if cfg.checkpoint.save_every and step % cfg.checkpoint.save_every == 0:
                self.save(step)
            if last:
                break
        return False

    def _log_heldout(self, step: int, result: dict) -> None:
        """Held-out scores into the metrics log (``heldout/<metric>``), so they are plotted."""
        if result:
            self.logger.log(step, {f"heldout/{k}": v for k, v in result.items()})

    def budget_spent(self) -> bool:
        """True once ``trainer.max_generated_tokens`` (when set) have been generated."""
        budget = self.config.trainer.max_generated_tokens
        return budget > 0 and self.generated_tokens >= budget

    def close(self) -> None:
        """Ends the process group and gives torch back its thread count."""
        close_world(self.world)
        if self._threads:
            torch.set_num_threads(self._threads)

    def _finish(self, start_clock: float) -> None:
        cfg = self.config
        self._log_heldout(self.step, self.evaluate("after"))
        if cfg.trainer.steps > 0:
            self.save(self.step)
        self._write_final(merge_lora=True)
        if not self.world.is_main:
            return
        if cfg.logging.plots:
            from .plots import plot_metrics
            paths = plot_metrics(self.out)
            if paths:
                self.log(f"plots: {os.path.dirname(paths[0])}")
                self.logger.log_plots(paths)
        self.log(summary_table(read_metrics(os.path.join(self.out, "metrics.jsonl"))))
        if self.heldout_results:
            self.log(heldout_table(self.heldout_results))
            self.logger.log_heldout(self.heldout_results)
            if self.closing_note:
                self.log(self.closing_note)
        self.log(f"final model: {os.path.join(self.out, 'final')}  "
                 f"(wall time {time.perf_counter() - start_clock:.1f}s)")

    def _write_final(self, merge_lora: bool) -> None:
        """``<output_dir>/final``: the model, its processor and the prompt template it was
        trained with (``gro-fast eval`` asks it the same way)."""
        final = os.path.join(self.out, "final")
        ckpt.write_model(self.policy, self.processor, final, self.world, merge_lora=merge_lora)
        if self.world.is_main:
            save_template(final, self.config.data.template or None)

    def run_sft_only(self):
        """``gro-fast sft``: warm start (resumable like ``run``), held-out before / after,
        save the model. Returns the warm-start stats ({} when a signal stopped it)."""
        self.setup()
        with self.stop:
            path, phase = self._resume_path()
            if phase == "rl":
                raise ConfigError(f"--resume {path}: an RL checkpoint; `gro-fast sft` resumes "
                                  "warm-start checkpoints (sft-NNNNNN) only")
            finished = self.warm_start(path)
        if finished:
            self._write_final(merge_lora=False)
            if self.world.is_main and self.heldout_results:
                self.log(heldout_table(self.heldout_results))
        self.close()
        return self.sft_stats if finished else {}
