"""The training configuration: one small dataclass per component, YAML loading, overrides.

Each field's docstring (the string literal under it) is its documentation, and its type
is its rule: choices are ``Literal`` types, ranges ``Annotated`` ones (``PositiveInt``,
``NonNegativeFloat``, ``Fraction``, ...), and validation reads them. The algorithm section
is ``gro_fast.algo.GROConfig`` itself plus the loss options, so GRO's options are defined
once. ``load_config`` reads a YAML recipe strictly: an unknown key is an error naming its
dotted path (with the closest known key, or the new place of a moved key, as a
suggestion), a value of the wrong type or out of range is an error naming the key.
``key.sub=value`` overrides are parsed as YAML scalars. This module does not build models
or data; it only describes them.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Literal

import yaml

from gro_fast.algo.config import GROConfig
from gro_fast.ops.policy_loss.options import LossAggregation

from .recipe import (ConfigError, Fraction, NonNegativeFloat, NonNegativeInt, PositiveFloat,
                     PositiveInt, fix_scientific, nested, apply_values, check_types, field_docs,
                     parse_override, read_recipe)

Difficulty = Literal["easy", "hard", "mixed", "single"]
"""The synthetic task's difficulties (``gro_fast.data.synthetic.DIFFICULTIES``, checked
equal by a test; not imported, so reading a config does not load the data stack)."""

__all__ = ["AlgorithmConfig", "CheckpointConfig", "Config", "ConfigError", "DataConfig",
           "EvaluationConfig", "LoggingConfig", "MOVED", "ModelConfig", "OptimizerConfig",
           "RolloutConfig", "ScheduleConfig", "TrainerConfig", "WarmStartConfig",
           "apply_overrides", "config_from_values", "field_docs", "load_config",
           "parse_override", "read_recipe", "save_config", "to_dict", "validate"]



@dataclass
class ModelConfig:
    path: str = "small"
    """"small" (a 1.4 M-parameter random Qwen2.5-VL with an offline processor, built in
    memory: the default run's), "tiny" (0.33 M, for tests),
    "random:qwen2.5-vl-3b" / "random:qwen2.5-vl-7b" (full-size shapes, random weights, for
    benchmarks) or a local Hugging Face checkpoint directory of the Qwen2-VL / Qwen2.5-VL /
    Qwen3-VL family."""
    seed: int = 0
    """Seed of the small / tiny model's random weights (ignored for a checkpoint path)."""
    dtype: Literal["auto", "float32", "bfloat16", "float16"] = "auto"
    """Parameter dtype: auto (bf16 on GPU, fp32 on CPU), float32, bfloat16 or float16."""
    attn_implementation: Literal["auto", "sdpa", "eager", "flash_attention_2"] = "auto"
    """auto (flash_attention_2 when installed on GPU, else sdpa), sdpa, eager or
    flash_attention_2."""
    gradient_checkpointing: bool = False
    """Recompute decoder activations in the backward pass (saves memory, costs time)."""
    freeze_vision: bool = True
    """Keep the vision tower frozen (no gradients, no optimizer state). On by default, as
    in the Qwen2.5-VL recipes in configs/; the small model's random tower then stays as
    initialised and its decoder learns to read it (docs/training.md, "The default run")."""
    lora_rank: NonNegativeInt = 0
    """LoRA rank through peft; 0 trains the full model."""
    lora_alpha: float = 16.0
    """LoRA scaling numerator (alpha / rank)."""
    liger: bool = True
    """Apply Liger-Kernel's Qwen2-VL patches (RMSNorm, SwiGLU, RoPE) on GPU when installed."""


@dataclass
class DataConfig:
    source: str | list = "synthetic"
    """synthetic (the built-in grounding task), a path to a dataset file or folder, or a
    list of them (VLM-R1 recipes train on several files), each a path or a mapping
    {path, image_root, format, split} whose missing keys default to the fields below."""
    format: str = "auto"
    """Dataset format for a path source: auto, visionreasoner (seg_zero), vlmr1_rec (vlm_r1),
    vlmr1_rec_json (rec_jsons_processed), internvl, count (see gro_fast.data.readers)."""
    image_root: str = ""
    """Folder that relative image paths of a dataset are resolved against (default: the
    data file's folder)."""
    split: str = ""
    """Split of a datasets save_to_disk folder holding several (empty: its only split);
    applies to folders, not files."""
    bbox_format: Literal["xyxy", "xywh"] = "xyxy"
    """How the data writes boxes: xyxy ([x1, y1, x2, y2]) or xywh (COCO's [x, y, w, h])."""
    coords: Literal["auto", "pixels", "norm1000"] = "auto"
    """Units of the data's coordinates: pixels, norm1000 (0-1000 of the image's width and
    height, as InternVL writes them) or auto (norm1000 for InternVL's <box> form, else
    pixels)."""
    resize: str = "processor"
    """The frame is always what the model's processor feeds (its own resize rule, asked of
    the processor); WxH (e.g. 840x840) resizes each image to that size first, as
    Seg-Zero / VisionReasoner do; processor or none: no such pre-resize."""
    on_error: Literal["raise", "skip"] = "raise"
    """A bad record: raise (error naming file, line and field) or skip (counted in the log)."""
    eval_source: str | list = ""
    """Held-out data (same forms as source): empty = the synthetic held-out split
    (synthetic source) or none."""
    image_size: PositiveInt = 112
    """Synthetic task: side of the square images, in pixels."""
    difficulty: Difficulty = "single"
    """Synthetic task: easy, hard (distractors, small objects, relations, several targets),
    mixed (each prompt easy or hard with probability 1/2) or single (one large shape per
    image: a from-scratch model's first lesson, ``ablation.pretrain_steps``; the default
    run's task)."""
    prompts_per_step: PositiveInt = 2
    """Prompts per training step (summed over all data-parallel ranks)."""
    template: str = "Find {query}."
    """Prompt template with {query} (also {width}, {height}); empty = gro_fast.data's
    default grounding instruction. The short default keeps the tiny model's prompts short."""
    seed: int = 0
    """Seed of the data order (and of the synthetic task)."""

    def entries(self, which: str = "source") -> list[dict]:
        """``source`` (or ``eval_source``) as a list of {path, image_root, format, split}
        mappings, missing keys filled from this section; raises ConfigError naming the key.
        "synthetic" and "" come back as []."""
        value = getattr(self, which)
        if isinstance(value, str):
            value = [] if value in ("", "synthetic") else [value]
        elif not isinstance(value, list) or not value:
            raise ConfigError(f"data.{which}: expected a path or a non-empty list of entries, "
                              f"got {value!r}")
        return [self._entry(item, f"data.{which}[{k}]") for k, item in enumerate(value)]

    def _entry(self, item, key: str) -> dict:
        entry = {"path": None, "image_root": self.image_root, "format": self.format,
                 "split": self.split}
        if isinstance(item, str):
            item = {"path": item}
        if not isinstance(item, dict):
            raise ConfigError(f"{key}: expected a path or a mapping {{path, image_root, format, "
                              f"split}}, got {item!r}")
        unknown = sorted(set(item) - set(entry))
        if unknown:
            raise ConfigError(f"{key}: unknown key(s) {unknown}; known keys: {sorted(entry)}")
        for name, value in item.items():
            if not isinstance(value, str) or (name == "path" and not value.strip()):
                raise ConfigError(f"{key}.{name}: expected a non-empty string, got {value!r}")
        entry.update(item)
        if entry["path"] in (None, "synthetic"):
            raise ConfigError(f"{key}.path: a dataset path is needed (synthetic cannot be "
                              "listed with files)")
        return entry


@dataclass
class RolloutConfig:
    num_samples: PositiveInt = 8
    """G: revisions (GRO) or samples (GRPO) per prompt."""
    max_new_tokens: PositiveInt = 64
    """Longest completion, in tokens."""
    temperature: PositiveFloat = 1.0
    """Sampling temperature (the loss uses the same temperature for its log-probs)."""
    top_p: float = 1.0
    """Nucleus sampling threshold (1 disables)."""
    top_k: NonNegativeInt = 0
    """Top-k sampling (0 disables)."""
    prompts_per_call: NonNegativeInt = 0
    """Prompts per rollout-engine call (0: all of a rank's prompts in one call). 1 makes the
    samples independent of the number of data-parallel ranks (batch-invariant seeds)."""


@dataclass
class AlgorithmConfig(GROConfig):
    """GRO or GRPO and the policy loss. Every option of GRO's scoring is
    ``gro_fast.algo.GROConfig``'s own field, inherited here and documented there (omega,
    penalize_extra, eps, advantage_scale, post_scale, revision_template, reward_terms,
    iou_threshold, l1_threshold, point_threshold, success_accuracy, train_initial)."""

    name: Literal["gro", "grpo"] = "gro"
    """gro (initial response, G revisions, improvement-shaped rewards) or grpo (G samples:
    every prompt scored as fallen back, improvement 0)."""
    reward: str = "vision_reasoner"
    """R_format + R_acc: vision_reasoner (the sum of ``reward_terms``), or a registered
    reward name / "path/to/file.py:function" (gro_fast.rewards.get_reward) called as
    fn(text, ground_truth). With gro the improvement term omega * dphi is still added."""
    eps_low: NonNegativeFloat = 0.2
    """Lower clip range of the ratio: 1 - eps_low."""
    eps_high: NonNegativeFloat = 0.2
    """Upper clip range of the ratio: 1 + eps_high."""
    beta: NonNegativeFloat = 0.0
    """k3 KL weight against a frozen reference policy; 0 skips the reference entirely."""
    loss_agg: LossAggregation = "token-mean"
    """token-mean, seq-mean-token-mean or seq-mean-token-sum-norm (Dr. GRPO)."""


@dataclass
class OptimizerConfig:
    lr: NonNegativeFloat = 3e-5
    """Peak AdamW learning rate of the RL steps."""
    weight_decay: NonNegativeFloat = 0.0
    """AdamW weight decay."""
    max_grad_norm: NonNegativeFloat = 1.0
    """Gradient-norm clipping threshold (0 disables clipping, the norm is still logged)."""


@dataclass
class ScheduleConfig:
    warmup_steps: NonNegativeInt = 1
    """Linear warmup, in update passes (``trainer.num_iterations`` per RL step), before the
    cosine decay; the schedule lasts ``trainer.steps * trainer.num_iterations`` passes."""
    cosine: bool = True
    """Cosine decay after warmup (false: constant lr after warmup)."""
    min_lr_ratio: Fraction = 0.1
    """Cosine floor as a fraction of lr."""


@dataclass
class WarmStartConfig:
    steps: NonNegativeInt = 1200
    """Supervised warm-start steps before RL (0 skips it)."""
    lr: NonNegativeFloat = 1e-3
    """Warm-start learning rate."""
    batch_size: PositiveInt = 4
    """Warm-start examples per step (the small model learns far more from many small
    steps than from a few large ones: docs/training.md, "The default run")."""
    revision_fraction: Fraction = 0.5
    """Share of warm-start examples that are GRO revision turns (flawed first attempt,
    revision query, ideal answer); 0 for plain prompt -> answer examples (always 0 for
    grpo)."""
    revision_after: Fraction = 0.8
    """Revision turns begin after this fraction of ``steps`` (0: from the first step); the
    steps before it are plain prompt -> answer examples, and the revision turns come at the
    schedule's lower learning rates. A model trained from scratch learns to answer (and to
    look) first, then what a revision asks for (docs/training.md, "The default run")."""
    revision_keep: Fraction = 0.5
    """Share of the revision turns whose first attempt is nearly right (each object within
    1/16 of the image of the truth, none extra) rather than flawed (up to a quarter of the
    image off, sometimes an extra object), as the revision query asks: keep what matches,
    discard what does not. With 0 every first attempt in the warm start is wrong, and a
    model that can copy from its context may learn to discard good answers (docs/training.md,
    "Why these settings")."""
    save_every: NonNegativeInt = 0
    """Write a warm-start checkpoint every N warm-start steps (0: only at the end of the
    warm start and on a signal)."""
    difficulty: Literal["", Difficulty] = ""
    """Synthetic task: the scenes the warm start draws ("" = data.difficulty), e.g. single
    to teach revision turns without undoing a one-shape lesson (docs/ablation.md)."""


@dataclass
class CheckpointConfig:
    save_every: NonNegativeInt = 0
    """Write a checkpoint every N RL steps (0: only at the end and on a signal)."""
    keep: PositiveInt = 2
    """How many checkpoints to keep, warm-start and RL together (older ones are deleted;
    resuming falls back to an older one when the newest fails its checksums)."""


@dataclass
class EvaluationConfig:
    size: NonNegativeInt = 256
    """Number of held-out prompts scored before and after training (0 disables)."""
    every: NonNegativeInt = 25
    """Score the held-out split every N RL steps (0: only before and after training)."""
    max_new_tokens: PositiveInt = 64
    """Longest greedy completion when scoring the held-out split."""


@dataclass
class TrainerConfig:
    steps: NonNegativeInt = 150
    """GRO / GRPO steps (rollout -> score -> update)."""
    num_iterations: PositiveInt = 1
    """Policy-update passes over each rollout batch (> 1 uses stored old log-probs)."""
    micro_batch_size: PositiveInt = 32
    """Sequences per forward/backward."""
    grad_accumulation: NonNegativeInt = 0
    """Micro-batches per optimizer step; 0 = the whole rollout batch in one step."""
    loss_impl: Literal["logits", "fused_linear"] = "logits"
    """logits (gro_policy_loss on [B, T, V]) or fused_linear (LM head fused into the loss)."""
    max_generated_tokens: NonNegativeInt = 0
    """Stop RL once this many tokens have been generated (all ranks, all samples; 0: run
    every step). An equal token budget for GRO and GRPO gives GRPO more steps."""
    seed: int = 0
    """Seed of the sampling, the weight init of added parts and the torch RNG."""
    output_dir: str = "runs/gro-synthetic"
    """Run directory: config, checkpoints, metrics, plots, final model."""
    device: Literal["auto", "cpu", "cuda"] = "auto"
    """auto (cuda when available), cpu or cuda."""
    cpu_threads: NonNegativeInt = 1
    """torch CPU threads while training on CPU (0: torch's default). Small models run
    fastest on one thread; several threads on a busy machine can be many times slower."""


@dataclass
class LoggingConfig:
    progress: bool = True
    """Show a tqdm progress bar with ETA and key numbers."""
    tensorboard: bool = True
    """Write TensorBoard scalars when tensorboard is installed."""
    wandb: bool = False
    """Also log the metrics, the plots and the held-out table to Weights & Biases (when
    wandb is installed; project from WANDB_PROJECT, default gro_fast; WANDB_MODE=offline
    writes the run under <output_dir>/wandb without a network)."""
    plots: bool = True
    """Draw PNG plots of the run's metrics at the end."""
    log_every: PositiveInt = 1
    """Write metrics every N steps."""


@dataclass
class Config:
    model: ModelConfig = field(default_factory=ModelConfig)
    """The policy."""
    data: DataConfig = field(default_factory=DataConfig)
    """Training and held-out data."""
    rollout: RolloutConfig = field(default_factory=RolloutConfig)
    """Sampling."""
    algorithm: AlgorithmConfig = field(default_factory=AlgorithmConfig)
    """GRO / GRPO, its scoring and the policy loss."""
    trainer: TrainerConfig = field(default_factory=TrainerConfig)
    """The RL loop: steps, batching, loss implementation, device, output."""
    optimizer: OptimizerConfig = field(default_factory=OptimizerConfig)
    """AdamW of the RL steps."""
    schedule: ScheduleConfig = field(default_factory=ScheduleConfig)
    """Learning-rate schedule of the RL steps."""
    warm_start: WarmStartConfig = field(default_factory=WarmStartConfig)
    """The supervised warm start before RL."""
    checkpoint: CheckpointConfig = field(default_factory=CheckpointConfig)
    """When checkpoints are written and how many are kept."""
    evaluation: EvaluationConfig = field(default_factory=EvaluationConfig)
    """Held-out scoring during the run."""
    logging: LoggingConfig = field(default_factory=LoggingConfig)
    """Progress bar, metrics, plots."""


MOVED = {
    "trainer.lr": "optimizer.lr", "trainer.weight_decay": "optimizer.weight_decay",
    "trainer.max_grad_norm": "optimizer.max_grad_norm",
    "trainer.warmup_steps": "schedule.warmup_steps", "trainer.cosine": "schedule.cosine",
    "trainer.min_lr_ratio": "schedule.min_lr_ratio",
    "trainer.sft_steps": "warm_start.steps", "trainer.sft_lr": "warm_start.lr",
    "trainer.sft_batch_size": "warm_start.batch_size",
    "trainer.sft_revision_fraction": "warm_start.revision_fraction",
    "trainer.sft_save_every": "warm_start.save_every",
    "trainer.save_every": "checkpoint.save_every", "trainer.keep_checkpoints": "checkpoint.keep",
    "trainer.eval_every": "evaluation.every", "data.eval_size": "evaluation.size",
    "rollout.eval_max_new_tokens": "evaluation.max_new_tokens",
}
"""Keys of earlier recipes and where they live now (named in the unknown-key error)."""


def validate(config: Config) -> Config:
    """Every field against its type (choices, ranges), then the rules between fields;
    raises ``ConfigError`` naming the key."""
    check_types(config)
    _check_algorithm(config)
    if not 0.0 < config.rollout.top_p <= 1.0:
        raise ConfigError(f"rollout.top_p: must be in (0, 1], got {config.rollout.top_p!r}")
    config.data.entries("source")
    config.data.entries("eval_source")
    _check_resize(config.data.resize)
    if config.warm_start.difficulty and config.data.source != "synthetic":
        raise ConfigError(f"warm_start.difficulty: only the synthetic task has difficulties; "
                          f"data.source is {config.data.source!r}")
    if config.rollout.num_samples < 2:
        raise ConfigError("rollout.num_samples: group advantages need G >= 2, got "
                          f"{config.rollout.num_samples}")
    return config


def _check_algorithm(config: Config) -> None:
    """GRO's own checks, the loss options as the loss reads them, and the reward by name
    (a typo fails here, not after the warm start)."""
    from gro_fast.ops.policy_loss.options import PolicyLossOptions
    from gro_fast.rewards import get_reward
    a = config.algorithm
    try:
        a.check(prefix="algorithm.")
    except (TypeError, ValueError) as exc:
        raise ConfigError(str(exc)) from None
    try:
        PolicyLossOptions(eps_low=a.eps_low, eps_high=a.eps_high, beta=a.beta,
                          temperature=config.rollout.temperature, loss_agg=a.loss_agg,
                          max_length=config.rollout.max_new_tokens)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"algorithm.{exc}") from None
    if a.reward != "vision_reasoner":
        try:
            get_reward(a.reward)
        except (TypeError, ValueError, OSError, ImportError, AttributeError) as exc:
            raise ConfigError(f"algorithm.reward: {exc}") from None


def _check_resize(value: str) -> None:
    from gro_fast.data.frame import parse_resize  # the frame module owns the syntax
    try:
        parse_resize(value)
    except ValueError as exc:
        raise ConfigError(f"data.{exc}") from None


def load_config(path: str | None = None, overrides: list[str] | tuple = ()) -> Config:
    """The default config, updated by the YAML recipe at ``path`` then by ``overrides``."""
    return config_from_values(read_recipe(path) if path else {}, overrides)


def config_from_values(values: dict, overrides: list[str] | tuple = ()) -> Config:
    """The default config, updated by the nested mapping ``values`` then by ``overrides``."""
    config = Config()
    apply_values(config, fix_scientific(values), moved=MOVED)
    return apply_overrides(config, overrides)


def apply_overrides(config: Config, overrides: list[str] | tuple) -> Config:
    """``config`` (changed in place) with ``key.sub=value`` overrides applied, validated."""
    for text in overrides:
        parts, value = parse_override(text)
        apply_values(config, nested(parts, value), moved=MOVED)
    return validate(config)


def to_dict(config: Config) -> dict:
    return dataclasses.asdict(config)


def save_config(config: Config, path: str) -> None:
    """Writes the resolved config as YAML (loadable again with ``load_config``)."""
    with open(path, "w") as f:
        yaml.safe_dump(to_dict(config), f, sort_keys=False)


