"""The training configuration: one small dataclass per component, YAML loading, overrides.

Each field's docstring (the string literal under it) is its documentation. ``load_config``
reads a YAML recipe strictly: an unknown key is an error naming its dotted path (with the
closest known key as a suggestion), a value of the wrong type or out of range is an error
naming the key. ``key.sub=value`` overrides are parsed as YAML scalars. This module does
not build models or data; it only describes them.
"""
from __future__ import annotations

import dataclasses
import difflib
import types
import typing
from dataclasses import dataclass, field
from typing import Any

import yaml


@dataclass
class ModelConfig:
    path: str = "tiny"
    """"tiny" (a small random Qwen2.5-VL with an offline processor, built in memory),
    "random:qwen2.5-vl-3b" / "random:qwen2.5-vl-7b" (full-size shapes, random weights, for
    benchmarks) or a local Hugging Face checkpoint directory of the Qwen2-VL / Qwen2.5-VL /
    Qwen3-VL family."""
    seed: int = 0
    """Seed of the tiny model's random weights (ignored for a checkpoint path)."""
    dtype: str = "auto"
    """Parameter dtype: auto (bf16 on GPU, fp32 on CPU), float32, bfloat16 or float16."""
    attn_implementation: str = "auto"
    """auto (flash_attention_2 when installed on GPU, else sdpa), sdpa, eager or
    flash_attention_2."""
    gradient_checkpointing: bool = False
    """Recompute decoder activations in the backward pass (saves memory, costs time)."""
    freeze_vision: bool = False
    """Keep the vision tower frozen (no gradients, no optimizer state)."""
    lora_rank: int = 0
    """LoRA rank through peft; 0 trains the full model."""
    lora_alpha: float = 16.0
    """LoRA scaling numerator (alpha / rank)."""
    liger: bool = True
    """Apply Liger-Kernel's Qwen2-VL patches (RMSNorm, SwiGLU, RoPE) on GPU when installed."""


@dataclass
class DataConfig:
    source: str = "synthetic"
    """synthetic (the built-in grounding task) or a path to a dataset file or folder."""
    format: str = "auto"
    """Dataset format for a path source: auto, seg_zero, vlm_r1, counting (see gro_fast.data)."""
    image_root: str = ""
    """Folder that relative image paths of a dataset are resolved against."""
    resize: str = "processor"
    """processor (the processor's min/max pixels), none, or a fixed size such as 840x840."""
    on_error: str = "raise"
    """A bad record: raise (error naming file, line and field) or skip (counted in the log)."""
    eval_source: str = ""
    """Held-out data: empty = the synthetic held-out split (synthetic source) or none."""
    image_size: int = 112
    """Synthetic task: side of the square images, in pixels."""
    difficulty: str = "easy"
    """Synthetic task: easy, hard (distractors, small objects, relations, several targets)
    or mixed (each prompt easy or hard with probability 1/2)."""
    prompts_per_step: int = 8
    """Prompts per training step (summed over all data-parallel ranks)."""
    eval_size: int = 64
    """Number of held-out prompts scored before and after training (0 disables)."""
    template: str = "Find {query}."
    """Prompt template with {query} (also {width}, {height}); empty = gro_fast.data's
    default grounding instruction. The short default keeps the tiny model's prompts short."""
    seed: int = 0
    """Seed of the data order (and of the synthetic task)."""


@dataclass
class RolloutConfig:
    num_samples: int = 8
    """G: revisions (GRO) or samples (GRPO) per prompt."""
    max_new_tokens: int = 64
    """Longest completion, in tokens."""
    temperature: float = 1.0
    """Sampling temperature (the loss uses the same temperature for its log-probs)."""
    top_p: float = 1.0
    """Nucleus sampling threshold (1 disables)."""
    top_k: int = 0
    """Top-k sampling (0 disables)."""
    eval_max_new_tokens: int = 64
    """Longest greedy completion when scoring the held-out split."""
    prompts_per_call: int = 0
    """Prompts per rollout-engine call (0: all of a rank's prompts in one call). 1 makes the
    samples independent of the number of data-parallel ranks (batch-invariant seeds)."""


@dataclass
class AlgorithmConfig:
    name: str = "gro"
    """gro (initial response, G revisions, consolidation shaping) or grpo (G samples)."""
    reward: str = "vision_reasoner"
    """Registered reward function name (gro_fast.rewards.get_reward)."""
    omega: float = 5.0
    """Weight of the improvement dphi in the revision reward r = R_format + R_acc + omega*dphi."""
    penalize_extra: bool = True
    """Extra predicted objects cost 1 each in the alignment cost (so spamming never helps)."""
    eps: float = 1e-6
    """Added to the group standard deviation when normalising advantages."""
    advantage_scale: str = "group"
    """Advantage denominator: group (std of the G rewards), batch (std of the whole batch)
    or none (no division, Dr. GRPO style)."""
    post_scale: bool = True
    """GRO's shaped advantage A_hat = (1 + dphi) * A (false: A_hat = A, an ablation)."""
    train_initial: bool = False
    """Also train the initial response o1 (the paper does not say; ours, default off). Its
    advantage is its reward normalised by the mean / std of its revisions' rewards."""
    revision_template: str = "Check your objects {objects} against: {query} Keep those that match, drop the others, answer again."
    """Revision query U(q, o1) template ({query}, {think}, {objects}, {answer}, {response});
    empty = gro_fast.algo's longer default wording. The short default suits the tiny model."""
    eps_low: float = 0.2
    """Lower clip range of the ratio: 1 - eps_low."""
    eps_high: float = 0.2
    """Upper clip range of the ratio: 1 + eps_high."""
    beta: float = 0.0
    """k3 KL weight against a frozen reference policy; 0 skips the reference entirely."""
    loss_agg: str = "token-mean"
    """token-mean, seq-mean-token-mean or seq-mean-token-sum-norm (Dr. GRPO)."""


@dataclass
class TrainerConfig:
    steps: int = 50
    """GRO / GRPO steps (rollout -> score -> update)."""
    lr: float = 3e-4
    """Peak AdamW learning rate."""
    weight_decay: float = 0.0
    """AdamW weight decay."""
    warmup_steps: int = 1
    """Linear warmup steps (optimizer steps) before the cosine decay."""
    min_lr_ratio: float = 0.1
    """Cosine floor as a fraction of lr."""
    cosine: bool = True
    """Cosine decay after warmup (false: constant lr after warmup)."""
    num_iterations: int = 1
    """Policy-update passes over each rollout batch (> 1 uses stored old log-probs)."""
    micro_batch_size: int = 32
    """Sequences per forward/backward."""
    grad_accumulation: int = 0
    """Micro-batches per optimizer step; 0 = the whole rollout batch in one step."""
    max_grad_norm: float = 1.0
    """Gradient-norm clipping threshold (0 disables clipping, the norm is still logged)."""
    loss_impl: str = "logits"
    """logits (gro_policy_loss on [B, T, V]) or fused_linear (LM head fused into the loss)."""
    sft_steps: int = 600
    """Supervised warm-start steps before RL (0 skips it)."""
    sft_lr: float = 1e-2
    """Warm-start learning rate."""
    sft_batch_size: int = 16
    """Warm-start examples per step."""
    sft_revision_fraction: float = 0.5
    """Share of warm-start examples that are GRO revision turns (flawed first attempt,
    revision query, ideal answer); 0 for plain prompt -> answer examples."""
    eval_every: int = 0
    """Score the held-out split every N steps (0: only before and after training)."""
    save_every: int = 0
    """Write a checkpoint every N steps (0: only at the end and on a signal)."""
    sft_save_every: int = 0
    """Write a warm-start checkpoint every N warm-start steps (0: only at the end of the
    warm start and on a signal)."""
    keep_checkpoints: int = 2
    """How many checkpoints to keep, warm-start and RL together (older ones are deleted;
    resuming falls back to an older one when the newest fails its checksums)."""
    seed: int = 0
    """Seed of the sampling, the weight init of added parts and the torch RNG."""
    output_dir: str = "runs/gro-synthetic"
    """Run directory: config, checkpoints, metrics, plots, final model."""
    device: str = "auto"
    """auto (cuda when available), cpu or cuda."""
    cpu_threads: int = 1
    """torch CPU threads while training on CPU (0: torch's default). Small models run
    fastest on one thread; several threads on a busy machine can be many times slower."""


@dataclass
class LoggingConfig:
    progress: bool = True
    """Show a tqdm progress bar with ETA and key numbers."""
    tensorboard: bool = True
    """Write TensorBoard scalars when tensorboard is installed."""
    plots: bool = True
    """Draw PNG plots of the run's metrics at the end."""
    log_every: int = 1
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
    """GRO / GRPO and the policy loss."""
    trainer: TrainerConfig = field(default_factory=TrainerConfig)
    """Optimisation, schedule, checkpoints."""
    logging: LoggingConfig = field(default_factory=LoggingConfig)
    """Progress bar, metrics, plots."""


CHOICES = {
    "model.dtype": ("auto", "float32", "bfloat16", "float16"),
    "model.attn_implementation": ("auto", "sdpa", "eager", "flash_attention_2"),
    "data.on_error": ("raise", "skip"),
    "data.difficulty": ("easy", "hard", "mixed"),
    "algorithm.name": ("gro", "grpo"),
    "algorithm.advantage_scale": ("group", "batch", "none"),
    "algorithm.loss_agg": ("token-mean", "seq-mean-token-mean", "seq-mean-token-sum-norm"),
    "trainer.loss_impl": ("logits", "fused_linear"),
    "trainer.device": ("auto", "cpu", "cuda"),
}
POSITIVE = ("data.image_size", "data.prompts_per_step", "rollout.num_samples",
            "rollout.max_new_tokens", "rollout.temperature", "rollout.eval_max_new_tokens",
            "trainer.num_iterations", "trainer.micro_batch_size", "trainer.keep_checkpoints",
            "trainer.sft_batch_size", "logging.log_every")
NON_NEGATIVE = ("data.eval_size", "rollout.top_k", "rollout.prompts_per_call", "algorithm.omega", "algorithm.eps",
                "algorithm.eps_low", "algorithm.eps_high", "algorithm.beta", "trainer.steps",
                "trainer.lr", "trainer.weight_decay", "trainer.warmup_steps",
                "trainer.grad_accumulation", "trainer.max_grad_norm", "trainer.sft_steps",
                "trainer.sft_lr", "trainer.eval_every", "trainer.save_every",
                "trainer.sft_save_every", "model.lora_rank", "trainer.cpu_threads")


class ConfigError(ValueError):
    """A bad recipe or override; the message names the dotted key."""


def _hints(cls) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def _coerce(key: str, value: Any, hint: Any) -> Any:
    """``value`` checked (and int -> float widened) against the annotation ``hint``."""
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        for option in typing.get_args(hint):
            if option is type(None) and value is None:
                return None
            try:
                return _coerce(key, value, option)
            except ConfigError:
                continue
        raise ConfigError(f"{key}: expected {hint}, got {value!r}")
    if hint is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if hint is str and isinstance(value, (int, float)) and not isinstance(value, bool):
        return str(value)
    if hint in (int, float, str, bool):
        if isinstance(value, bool) and hint is not bool:
            raise ConfigError(f"{key}: expected {hint.__name__}, got {value!r}")
        if not isinstance(value, hint):
            raise ConfigError(f"{key}: expected {hint.__name__}, got {type(value).__name__} "
                              f"{value!r}")
        return value
    return value


def _apply(obj, values: dict, prefix: str) -> None:
    """Sets the fields of dataclass ``obj`` from the nested dict ``values`` (strictly)."""
    if not isinstance(values, dict):
        raise ConfigError(f"{prefix or 'config'}: expected a mapping, got {values!r}")
    hints = _hints(type(obj))
    names = [f.name for f in dataclasses.fields(obj)]
    for name, value in values.items():
        key = f"{prefix}{name}"
        if name not in names:
            close = difflib.get_close_matches(str(name), names, n=1)
            hint = f"; did you mean {prefix}{close[0]}?" if close else \
                f"; known keys: {', '.join(prefix + n for n in names)}"
            raise ConfigError(f"unknown config key {key!r}{hint}")
        current = getattr(obj, name)
        if dataclasses.is_dataclass(current):
            _apply(current, value or {}, f"{key}.")
        else:
            setattr(obj, name, _coerce(key, value, hints[name]))


def validate(config: Config) -> Config:
    """Range and choice checks; raises ``ConfigError`` naming the key."""
    for key, choices in CHOICES.items():
        value = _get(config, key)
        if value not in choices:
            raise ConfigError(f"{key}: must be one of {choices}, got {value!r}")
    for key in POSITIVE:
        if not _get(config, key) > 0:
            raise ConfigError(f"{key}: must be > 0, got {_get(config, key)!r}")
    for key in NON_NEGATIVE:
        if not _get(config, key) >= 0:
            raise ConfigError(f"{key}: must be >= 0, got {_get(config, key)!r}")
    if not 0.0 < config.rollout.top_p <= 1.0:
        raise ConfigError(f"rollout.top_p: must be in (0, 1], got {config.rollout.top_p!r}")
    if not 0.0 <= config.trainer.sft_revision_fraction <= 1.0:
        raise ConfigError("trainer.sft_revision_fraction: must be in [0, 1], got "
                          f"{config.trainer.sft_revision_fraction!r}")
    if not 0.0 <= config.trainer.min_lr_ratio <= 1.0:
        raise ConfigError("trainer.min_lr_ratio: must be in [0, 1], got "
                          f"{config.trainer.min_lr_ratio!r}")
    if config.rollout.num_samples < 2:
        raise ConfigError("rollout.num_samples: group advantages need G >= 2, got "
                          f"{config.rollout.num_samples}")
    return config


def _get(config: Config, key: str) -> Any:
    obj = config
    for part in key.split("."):
        obj = getattr(obj, part)
    return obj


def parse_override(text: str) -> tuple[list[str], Any]:
    """``"trainer.lr=1e-6"`` -> (["trainer", "lr"], 1e-6), the value parsed as YAML."""
    if "=" not in text:
        raise ConfigError(f"override {text!r}: expected key.sub=value")
    key, raw = text.split("=", 1)
    key = key.strip()
    if not key or any(not part for part in key.split(".")):
        raise ConfigError(f"override {text!r}: empty key")
    try:
        value = yaml.safe_load(raw) if raw.strip() else ""
    except yaml.YAMLError as exc:
        raise ConfigError(f"override {key}: cannot parse value {raw!r}: {exc}") from None
    if isinstance(value, str):
        value = _scientific(value)
    return key.split("."), value


def _scientific(value: str):
    """YAML 1.1 reads ``1e-6`` as a string; a number is what anyone means by it."""
    try:
        return float(value) if any(c in value for c in "eE") and value[0] in "+-.0123456789" \
            else value
    except ValueError:
        return value


def _nest(parts: list[str], value: Any) -> dict:
    out: Any = value
    for part in reversed(parts):
        out = {part: out}
    return out


def _fix_scientific(values: Any) -> Any:
    if isinstance(values, dict):
        return {k: _fix_scientific(v) for k, v in values.items()}
    if isinstance(values, str):
        return _scientific(values)
    return values


def load_config(path: str | None = None, overrides: list[str] | tuple = ()) -> Config:
    """The default config, updated by the YAML recipe at ``path`` then by ``overrides``."""
    config = Config()
    if path:
        try:
            with open(path) as f:
                values = yaml.safe_load(f) or {}
        except OSError as exc:
            raise ConfigError(f"config file {path!r}: {exc.strerror}") from None
        except yaml.YAMLError as exc:
            raise ConfigError(f"config file {path!r}: invalid YAML: {exc}") from None
        _apply(config, _fix_scientific(values), "")
    for text in overrides:
        parts, value = parse_override(text)
        _apply(config, _nest(parts, value), "")
    return validate(config)


def to_dict(config: Config) -> dict:
    return dataclasses.asdict(config)


def save_config(config: Config, path: str) -> None:
    """Writes the resolved config as YAML (loadable again with ``load_config``)."""
    with open(path, "w") as f:
        yaml.safe_dump(to_dict(config), f, sort_keys=False)


def field_docs(cls) -> dict[str, str]:
    """{field: docstring} of a config dataclass, read from its source (for ``--help``)."""
    import ast
    import inspect
    tree = ast.parse(inspect.getsource(cls))
    body = tree.body[0].body
    docs = {}
    for node, nxt in zip(body, body[1:]):
        if isinstance(node, ast.AnnAssign) and isinstance(nxt, ast.Expr) and \
                isinstance(getattr(nxt, "value", None), ast.Constant):
            docs[node.target.id] = " ".join(str(nxt.value.value).split())
    return docs
