"""The GRO / GRPO trainer: config, the training loop's steps, checkpoints, logs, FSDP2.

Entry points: ``gro-fast train`` / ``gro-fast sft`` (``cli.py``), ``Trainer`` (``trainer.py``)
and ``load_config`` (``config.py``). One module per loop step: ``rollout`` (sampling with
the rollout engine), ``scoring`` (rewards, consolidation, advantages), ``logprobs`` (old /
reference log-probs), ``update`` (the clipped policy loss, AdamW, schedule), plus
``checkpoint`` (with ``manifest``: checksums, durable writes), ``metrics``, ``plots``,
``distributed``, ``sft``, ``heldout``, ``signals`` and ``faults`` (fault injection for the
reliability tests).
Importing this package imports no model code.
"""
from .config import (AlgorithmConfig, CheckpointConfig, Config, ConfigError, DataConfig,
                     EvaluationConfig, LoggingConfig, ModelConfig, OptimizerConfig,
                     RolloutConfig, ScheduleConfig, TrainerConfig, WarmStartConfig,
                     load_config, save_config)

__all__ = ["AlgorithmConfig", "CheckpointConfig", "Config", "ConfigError", "DataConfig",
           "EvaluationConfig", "LoggingConfig", "ModelConfig", "OptimizerConfig",
           "RolloutConfig", "ScheduleConfig", "TrainerConfig", "WarmStartConfig",
           "load_config", "save_config", "Trainer"]


def __getattr__(name):
    if name == "Trainer":
        from .trainer import Trainer
        return Trainer
    raise AttributeError(f"module 'gro_fast.train' has no attribute {name!r}")
