"""Builds the policy (and the frozen reference) the trainer optimises, from ``ModelConfig``.

The tiny / small presets or a local checkpoint (``gro_fast.models``); dtype and attention backend
chosen from what the machine has; optional gradient checkpointing, frozen vision tower,
LoRA (peft) and, on GPU when installed, Liger-Kernel's Qwen2-VL patches. GPU-only
packages are detected, never required. Sharding is ``distributed.py``'s job.
"""
from __future__ import annotations

import importlib.util
import warnings

import torch
from torch import nn

from .config import ModelConfig

DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


def resolve_dtype(cfg: ModelConfig, device: torch.device) -> torch.dtype:
    """auto: fp32 master weights everywhere (bf16 compute on GPU comes from autocast or
    FSDP's mixed precision), so small learning rates are not lost to bf16 rounding."""
    return torch.float32 if cfg.dtype == "auto" else DTYPES[cfg.dtype]


def resolve_attention(cfg: ModelConfig, device: torch.device) -> str:
    if cfg.attn_implementation != "auto":
        if cfg.attn_implementation == "flash_attention_2" and \
                importlib.util.find_spec("flash_attn") is None:
            raise ValueError("model.attn_implementation: flash_attention_2 needs the flash-attn "
                             "package, which is not installed")
        return cfg.attn_implementation
    if device.type == "cuda" and importlib.util.find_spec("flash_attn") is not None:
        return "flash_attention_2"
    return "sdpa"


def load_policy(cfg: ModelConfig, device: torch.device):
    """(model, processor) on ``device``, in train mode, with the configured options."""
    from gro_fast.models import load_pretrained, small_qwen2_5_vl, tiny_qwen2_5_vl

    dtype = resolve_dtype(cfg, device)
    attention = resolve_attention(cfg, device)
    if device.type == "cuda" and cfg.liger:
        apply_liger()
    if cfg.path in ("tiny", "small"):
        build = tiny_qwen2_5_vl if cfg.path == "tiny" else small_qwen2_5_vl
        model, processor = build(seed=cfg.seed, dtype=dtype, attn_implementation=attention)
    elif cfg.path.startswith("random:"):
        from gro_fast.models import qwen2_5_vl_from_config
        model, processor = qwen2_5_vl_from_config(cfg.path[len("random:"):], seed=cfg.seed,
                                                  dtype=dtype, device=device,
                                                  attn_implementation=attention)
    else:
        model, processor = load_pretrained(cfg.path, dtype=dtype, attn_implementation=attention)
    model.to(device)
    if cfg.freeze_vision:
        for p in vision_tower(model).parameters():
            p.requires_grad_(False)
    if cfg.gradient_checkpointing:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
        model.config.use_cache = False
    if cfg.lora_rank > 0:
        model = add_lora(model, cfg)
    model.train()
    return model, processor


def vision_tower(model: nn.Module) -> nn.Module:
    inner = getattr(model, "model", model)
    for name in ("visual", "vision_tower", "vision_model"):
        if hasattr(inner, name):
            return getattr(inner, name)
    raise ValueError(f"{type(model).__name__}: no vision tower found (model.freeze_vision)")


def add_lora(model: nn.Module, cfg: ModelConfig) -> nn.Module:
    try:
        from peft import LoraConfig, get_peft_model
    except ImportError:
        raise ValueError("model.lora_rank > 0 needs the peft package") from None
    targets = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]
    config = LoraConfig(r=cfg.lora_rank, lora_alpha=cfg.lora_alpha, target_modules=targets,
                        lora_dropout=0.0, bias="none",
                        exclude_modules=r".*visual.*" if cfg.freeze_vision else None)
    return get_peft_model(model, config)


def apply_liger() -> bool:
    """Liger-Kernel's Qwen2-VL family patches when installed; False when not."""
    if importlib.util.find_spec("liger_kernel") is None:
        return False
    try:
        from liger_kernel.transformers import apply_liger_kernel_to_qwen2_5_vl
        apply_liger_kernel_to_qwen2_5_vl(rope=True, rms_norm=True, swiglu=True,
                                         cross_entropy=False, fused_linear_cross_entropy=False)
        return True
    except Exception as exc:  # an incompatible liger version must not stop training
        warnings.warn(f"liger-kernel patches not applied: {exc}", RuntimeWarning, stacklevel=2)
        return False
