"""Checkpoints: write atomically, find the latest, restore exactly, keep the last K.

A checkpoint is a folder ``<output_dir>/checkpoints/step-000012/`` holding
  model/               the policy (``save_pretrained``: config + safetensors; the processor)
  trainer_state.pt     optimizer, scheduler, step, data-sampler position, trainer counters
  rng-rank<R>.pt       python / numpy / torch (and CUDA) RNG states of each rank
It is written to a temporary sibling folder and renamed into place, so a crash never
leaves a half-written checkpoint under a final name. Under FSDP the full state dicts are
gathered (collectively) and rank 0 writes them. This module does not decide when to save.
"""
from __future__ import annotations

import glob
import os
import random
import re
import shutil
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from .distributed import (World, barrier, full_state_dict, load_full_state_dict,
                          load_optimizer_state, optimizer_state)

_STEP_DIR = re.compile(r"^step-(\d+)$")


@dataclass
class TrainerState:
    """Everything besides weights that a resumed run needs."""

    step: int = 0
    data: dict | None = None
    counters: dict | None = None


def checkpoint_root(output_dir: str) -> str:
    return os.path.join(output_dir, "checkpoints")


def rng_state() -> dict:
    state = {"python": random.getstate(), "numpy": np.random.get_state(),
             "torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict) -> None:
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def is_lora(model: nn.Module) -> bool:
    return hasattr(model, "peft_config")


def write_model(model: nn.Module, processor, path: str, world: World, *,
                merge_lora: bool = False) -> None:
    """``save_pretrained`` of the policy (collective under FSDP; rank 0 writes).

    A LoRA policy is written as its adapter, or with ``merge_lora`` as a plain model with
    the adapter merged in (what ``AutoModelForImageTextToText.from_pretrained`` loads).
    """
    _quiet_transformers()
    if is_lora(model):
        if world.is_main:
            if merge_lora:
                import copy
                copy.deepcopy(model).merge_and_unload().save_pretrained(path)
            else:
                model.save_pretrained(path)
    else:
        state = full_state_dict(model)
        if world.is_main:
            model.save_pretrained(path, state_dict=state)
    if world.is_main and processor is not None:
        processor.save_pretrained(path)


def _quiet_transformers() -> None:
    """No "Writing model shards" progress bars in the middle of the training bar."""
    try:
        from transformers.utils import logging as hf_logging
        hf_logging.disable_progress_bar()
    except ImportError:
        pass


def save_checkpoint(output_dir: str, step: int, model: nn.Module, processor, optimizer,
                    scheduler, state: TrainerState, world: World, keep: int) -> str:
    """Writes ``step-<step>`` atomically and deletes all but the newest ``keep``."""
    root = checkpoint_root(output_dir)
    final = os.path.join(root, f"step-{step:06d}")
    tmp = os.path.join(root, f".tmp-step-{step:06d}")
    if world.is_main:
        shutil.rmtree(tmp, ignore_errors=True)
        os.makedirs(tmp, exist_ok=True)
    barrier(world)
    write_model(model, processor, os.path.join(tmp, "model"), world)
    optim_state = optimizer_state(model, optimizer)
    torch.save(rng_state(), os.path.join(tmp, f"rng-rank{world.rank}.pt"))
    if world.is_main:
        torch.save({"optimizer": optim_state, "scheduler": scheduler.state_dict(),
                    "step": step, "data": state.data, "counters": state.counters},
                   os.path.join(tmp, "trainer_state.pt"))
    barrier(world)
    if world.is_main:
        shutil.rmtree(final, ignore_errors=True)
        os.replace(tmp, final)
        prune_checkpoints(root, keep)
    barrier(world)
    return final


def list_checkpoints(root: str) -> list[tuple[int, str]]:
    """(step, path) of every complete checkpoint under ``root``, oldest first."""
    found = []
    for path in glob.glob(os.path.join(root, "step-*")):
        match = _STEP_DIR.match(os.path.basename(path))
        if match and os.path.isfile(os.path.join(path, "trainer_state.pt")):
            found.append((int(match.group(1)), path))
    return sorted(found)


def prune_checkpoints(root: str, keep: int) -> None:
    for _, path in list_checkpoints(root)[:-keep] if keep > 0 else []:
        shutil.rmtree(path, ignore_errors=True)


def resolve_resume(resume: str, output_dir: str) -> str | None:
    """``"auto"``/``"latest"``: the newest checkpoint of the run (None when there is none);
    otherwise the given path, which must be a checkpoint folder."""
    if resume in ("auto", "latest"):
        found = list_checkpoints(checkpoint_root(output_dir))
        return found[-1][1] if found else None
    if not os.path.isfile(os.path.join(resume, "trainer_state.pt")):
        raise ValueError(f"--resume {resume!r}: not a checkpoint folder (no trainer_state.pt)")
    return resume


def load_model_weights(model: nn.Module, model_dir: str) -> None:
    """Loads weights written by ``write_model`` into ``model`` (in place).

    A full model is read back through ``from_pretrained`` (transformers renames some keys
    when it saves), then copied into ``model``; a LoRA policy reads its adapter.
    """
    if not glob.glob(os.path.join(model_dir, "*.safetensors")):
        raise ValueError(f"{model_dir}: no .safetensors weights")
    if is_lora(model):
        from peft import set_peft_model_state_dict
        from safetensors.torch import load_file
        state = {}
        for file in sorted(glob.glob(os.path.join(model_dir, "*.safetensors"))):
            state.update(load_file(file))
        set_peft_model_state_dict(model, state)
        return
    from transformers import AutoModelForImageTextToText
    _quiet_transformers()
    dtype = next(model.parameters()).dtype
    loaded = AutoModelForImageTextToText.from_pretrained(model_dir, dtype=dtype)
    load_full_state_dict(model, loaded.state_dict())


def load_checkpoint(path: str, model: nn.Module, optimizer, scheduler,
                    world: World) -> TrainerState:
    """Restores weights, optimizer, scheduler and this rank's RNG states from ``path``."""
    load_model_weights(model, os.path.join(path, "model"))
    blob = torch.load(os.path.join(path, "trainer_state.pt"), map_location="cpu",
                      weights_only=False)
    load_optimizer_state(model, optimizer, blob["optimizer"])
    scheduler.load_state_dict(blob["scheduler"])
    rng_file = os.path.join(path, f"rng-rank{world.rank}.pt")
    if os.path.isfile(rng_file):
        set_rng_state(torch.load(rng_file, weights_only=False))
    return TrainerState(step=int(blob["step"]), data=blob.get("data"),
                        counters=blob.get("counters"))
