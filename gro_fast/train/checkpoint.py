"""Checkpoints: write atomically and durably, verify, find the newest good one, keep K.

A checkpoint is a folder ``<output_dir>/checkpoints/step-000012/`` (RL) or
``sft-000050/`` (the supervised warm start) holding
  model/               the policy (``save_pretrained``: config + safetensors; the processor)
  trainer_state.pt     optimizer, scheduler, phase, step, data-stream position, counters
  rng-rank<R>.pt       python / numpy / torch (and CUDA) RNG states of each rank, and the
                       rank's own extra state (the warm start's example RNG)
  manifest.json        size and SHA-256 of every file above (``manifest.py``), written last
It is written to a temporary sibling folder, every file and folder fsynced, then renamed
into place and the parent folder fsynced, so neither a crash nor a power cut leaves a
checkpoint that looks complete but is not. Resuming verifies the checksums and falls back
past a damaged checkpoint to the previous one. State files are read with
``torch.load(weights_only=True)``. Under FSDP the full state dicts are gathered
(collectively) and rank 0 writes them. This module does not decide when to save.
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

from .distributed import (World, barrier, broadcast_object, full_state_dict,
                          load_full_state_dict, load_optimizer_state, optimizer_state)
from .faults import fault_point
from .manifest import (CheckpointError, fsync_dir, read_manifest, read_state, seal, verify,
                       write_state)

PHASES = {"sft": "sft", "rl": "step"}   # phase -> folder prefix, in run order
_CHECKPOINT_DIR = re.compile(r"^(sft|step)-(\d+)$")

__all__ = ["CheckpointError", "CheckpointWriteError", "TrainerState", "save_checkpoint",
           "load_checkpoint", "resolve_resume", "verify_checkpoint", "list_checkpoints"]


class CheckpointWriteError(CheckpointError):
    """A checkpoint could not be written (disk full, permission denied, ...)."""


@dataclass
class TrainerState:
    """Everything besides weights that a resumed run needs."""

    step: int = 0
    data: dict | None = None
    counters: dict | None = None
    phase: str = "rl"
    local: dict | None = None   # this rank's own state (saved in its rng-rank<R>.pt)


def checkpoint_root(output_dir: str) -> str:
    return os.path.join(output_dir, "checkpoints")


def rng_state() -> dict:
    """RNG states as tensors and plain containers (loadable with ``weights_only=True``)."""
    name, keys, pos, has_gauss, cached = np.random.get_state()
    state = {"python": random.getstate(),
             "numpy": (name, torch.from_numpy(keys.astype(np.int64)), int(pos), int(has_gauss),
                       float(cached)),
             "torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict) -> None:
    random.setstate(state["python"])
    name, keys, pos, has_gauss, cached = state["numpy"]
    np.random.set_state((name, keys.numpy().astype(np.uint32), pos, has_gauss, cached))
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


def checkpoint_name(phase: str, step: int) -> str:
    """``sft-000050`` (warm start) or ``step-000050`` (RL)."""
    if phase not in PHASES:
        raise ValueError(f"checkpoint phase must be one of {PHASES}, got {phase!r}")
    return f"{PHASES[phase]}-{step:06d}"


def save_checkpoint(output_dir: str, step: int, model: nn.Module, processor, optimizer,
                    scheduler, state: TrainerState, world: World, keep: int) -> str:
    """Writes checkpoint ``state.phase``/``step`` atomically and durably, then deletes all
    but the newest ``keep``. Any OS error while writing (disk full, permission denied)
    removes the temporary folder and raises ``CheckpointWriteError``: the previous
    checkpoints are untouched and nothing half-written is left under a checkpoint name."""
    root = checkpoint_root(output_dir)
    name = checkpoint_name(state.phase, step)
    final, tmp = os.path.join(root, name), os.path.join(root, f".tmp-{name}")
    try:
        _write(tmp, step, model, processor, optimizer, scheduler, state, world)
        if world.is_main:
            fault_point("checkpoint.rename")
            _rename_into_place(tmp, final)
            fault_point("checkpoint.renamed")
            prune_checkpoints(root, keep)
            fault_point("checkpoint.pruned")
    except OSError as exc:
        if world.is_main:
            shutil.rmtree(tmp, ignore_errors=True)
        previous = [p for _, _, p in list_checkpoints(root) if p != final]
        raise CheckpointWriteError(
            f"checkpoint {name} could not be written to {root}: {exc}. Newest earlier "
            f"checkpoint: {previous[-1] if previous else 'none'} (intact; --resume auto "
            "continues from it)") from exc
    barrier(world)
    return final


def _write(tmp: str, step: int, model, processor, optimizer, scheduler, state: TrainerState,
           world: World) -> None:
    """Every file of the checkpoint into ``tmp``, then the manifest (rank 0)."""
    if world.is_main:
        shutil.rmtree(tmp, ignore_errors=True)
        os.makedirs(tmp)
    barrier(world)
    fault_point("checkpoint.start")
    write_model(model, processor, os.path.join(tmp, "model"), world)
    fault_point("checkpoint.model")
    optim_state = optimizer_state(model, optimizer)
    write_state({"rng": rng_state(), "local": state.local},
                os.path.join(tmp, f"rng-rank{world.rank}.pt"))
    fault_point("checkpoint.rng")
    if world.is_main:
        write_state({"optimizer": optim_state, "scheduler": scheduler.state_dict(),
                     "phase": state.phase, "step": step, "data": state.data,
                     "counters": state.counters}, os.path.join(tmp, "trainer_state.pt"))
        fault_point("checkpoint.trainer_state")
    barrier(world)
    if world.is_main:
        seal(tmp, {"phase": state.phase, "step": step, "world_size": world.size})
        fault_point("checkpoint.manifest")


def _rename_into_place(tmp: str, final: str) -> None:
    """``tmp`` becomes ``final`` (an existing ``final`` of the same step is replaced only
    once the new one is in place); the parent folder is fsynced around the rename."""
    root = os.path.dirname(final)
    aside = None
    if os.path.exists(final):
        aside = os.path.join(root, f".old-{os.path.basename(final)}")
        shutil.rmtree(aside, ignore_errors=True)
        os.replace(final, aside)
    os.replace(tmp, final)
    fsync_dir(root)
    if aside is not None:
        shutil.rmtree(aside, ignore_errors=True)


def list_checkpoints(root: str) -> list[tuple[str, int, str]]:
    """(phase, step, path) of every checkpoint folder under ``root``, oldest first (warm
    start before RL). Listed is not verified: see ``verify_checkpoint``."""
    found = []
    for path in glob.glob(os.path.join(root, "*-*")):
        match = _CHECKPOINT_DIR.match(os.path.basename(path))
        if match and os.path.isdir(path):
            phase = next(k for k, v in PHASES.items() if v == match.group(1))
            found.append((phase, int(match.group(2)), path))
    return sorted(found, key=lambda t: (list(PHASES).index(t[0]), t[1]))


def prune_checkpoints(root: str, keep: int) -> None:
    """Deletes all but the newest ``keep`` checkpoints and leftovers of interrupted writes.
    A checkpoint is renamed out of sight before it is deleted, so a kill in the middle
    never leaves a half-deleted folder under a checkpoint name."""
    for _, _, path in list_checkpoints(root)[:-keep] if keep > 0 else []:
        doomed = os.path.join(root, f".pruned-{os.path.basename(path)}")
        shutil.rmtree(doomed, ignore_errors=True)
        os.replace(path, doomed)
    for pattern in (".tmp-*", ".old-*", ".pruned-*"):
        for path in glob.glob(os.path.join(root, pattern)):
            shutil.rmtree(path, ignore_errors=True)


def verify_checkpoint(path: str) -> dict:
    """The manifest of checkpoint ``path`` once every file matches its checksum; raises
    ``CheckpointError`` naming the bad file otherwise."""
    manifest = verify(path)
    match = _CHECKPOINT_DIR.match(os.path.basename(os.path.normpath(path)))
    if match and (int(match.group(2)) != manifest.get("step")
                  or PHASES.get(manifest.get("phase")) != match.group(1)):
        raise CheckpointError(f"checkpoint {os.path.basename(path)}: its manifest is for "
                              f"{manifest.get('phase')} step {manifest.get('step')}")
    return manifest


def resolve_resume(resume: str, output_dir: str, log=print, world: World | None = None
                   ) -> str | None:
    """``"auto"``/``"latest"``: the newest checkpoint of the run that verifies, falling
    back past damaged ones (each named by ``log``); None when the run has no checkpoint;
    ``CheckpointError`` when it has some and none verifies. Otherwise ``resume`` is a
    checkpoint folder, which must verify. Rank 0 checks, the other ranks follow it."""
    world = world or World()
    if not world.is_main:
        result = broadcast_object(None, world)
        if isinstance(result, CheckpointError):
            raise result
        return result
    try:
        path = _resolve(resume, output_dir, log)
    except CheckpointError as exc:
        broadcast_object(exc, world)
        raise
    return broadcast_object(path, world)


def _resolve(resume: str, output_dir: str, log) -> str | None:
    if resume not in ("auto", "latest"):
        if not os.path.isdir(resume):
            raise CheckpointError(f"--resume {resume!r}: no such checkpoint folder")
        verify_checkpoint(resume)
        return resume
    root = checkpoint_root(output_dir)
    found = list_checkpoints(root)
    if not found:
        return None
    problems = []
    for _, _, path in reversed(found):
        try:
            verify_checkpoint(path)
        except CheckpointError as exc:
            problems.append(str(exc))
            log(f"--resume: {exc}; skipping it")
            continue
        if problems:
            log(f"--resume: falling back to {path}")
        return path
    raise CheckpointError(f"--resume: no usable checkpoint under {root}: "
                          + "; ".join(problems))


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
                    world: World, *, verified: bool = False) -> TrainerState:
    """Restores weights, optimizer, scheduler and this rank's RNG states from ``path``
    (verified against its manifest first unless ``verified``)."""
    if not verified and world.is_main:
        verify_checkpoint(path)
    load_model_weights(model, os.path.join(path, "model"))
    blob = read_state(os.path.join(path, "trainer_state.pt"))
    load_optimizer_state(model, optimizer, blob["optimizer"])
    scheduler.load_state_dict(blob["scheduler"])
    local = None
    rng_file = os.path.join(path, f"rng-rank{world.rank}.pt")
    if os.path.isfile(rng_file):
        saved = read_state(rng_file)
        set_rng_state(saved["rng"])
        local = saved.get("local")
    return TrainerState(step=int(blob["step"]), phase=blob.get("phase", "rl"),
                        data=blob.get("data"), counters=blob.get("counters"), local=local)
