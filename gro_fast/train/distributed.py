"""Data parallelism for the trainer: process group set-up, FSDP2 sharding, reductions.

Under ``torchrun`` every rank owns a slice of each step's prompts (rollouts, scoring and
the loss are data-parallel); parameters are sharded with PyTorch's ``fully_shard``
(each decoder layer, each vision block, then the root), with bf16 compute and fp32
gradient reduction on GPU. Rollouts run on gathered parameters (``gathered_parameters``)
so ranks can generate different numbers of tokens without issuing mismatched
collectives. A single process (no ``torchrun``) gets a ``World`` of size 1 and every
helper here is a no-op. This module knows nothing about GRO.
"""
from __future__ import annotations

import contextlib
import datetime as dt
import os
from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch import nn


@dataclass
class World:
    rank: int = 0
    size: int = 1
    local_rank: int = 0
    device: torch.device = torch.device("cpu")

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.size > 1


def init_world(device: str = "auto") -> World:
    """Reads torchrun's environment; starts the process group (nccl on GPU, gloo on CPU)."""
    size = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    use_cuda = torch.cuda.is_available() if device == "auto" else device == "cuda"
    if use_cuda and not torch.cuda.is_available():
        raise ValueError("trainer.device: cuda requested but no CUDA device is available")
    if use_cuda:
        torch.cuda.set_device(local_rank)
        dev = torch.device("cuda", local_rank)
    else:
        dev = torch.device("cpu")
    if size > 1 and not dist.is_initialized():
        dist.init_process_group("nccl" if use_cuda else "gloo", rank=rank, world_size=size,
                                timeout=dt.timedelta(minutes=30))
    return World(rank=rank, size=size, local_rank=local_rank, device=dev)


def close_world(world: World) -> None:
    if world.distributed and dist.is_initialized():
        dist.barrier()
        dist.destroy_process_group()


def all_reduce_sum(value: float | torch.Tensor, world: World) -> torch.Tensor:
    """Sum of a scalar (or tensor) over ranks, as an fp64 tensor on CPU-friendly device."""
    t = torch.as_tensor(value, dtype=torch.float64).clone()
    if world.distributed:
        t = t.to(_comm_device(world))
        dist.all_reduce(t)
    return t.cpu()


def all_reduce_mean(values: dict[str, float], world: World) -> dict[str, float]:
    """{key: mean over ranks} of scalar metrics (same keys on every rank)."""
    if not world.distributed or not values:
        return dict(values)
    keys = sorted(values)
    t = torch.tensor([float(values[k]) for k in keys], dtype=torch.float64,
                     device=_comm_device(world))
    dist.all_reduce(t)
    return {k: v / world.size for k, v in zip(keys, t.tolist())}


def any_rank(flag: bool, world: World) -> bool:
    """True when ``flag`` is true on at least one rank."""
    return bool(all_reduce_sum(float(flag), world).item() > 0)


def broadcast_object(obj, world: World):
    if not world.distributed:
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def barrier(world: World) -> None:
    if world.distributed:
        dist.barrier()


def _comm_device(world: World) -> torch.device:
    return world.device if dist.get_backend() == "nccl" else torch.device("cpu")


def sharded_blocks(model: nn.Module) -> list[nn.Module]:
    """The repeated blocks that get their own FSDP unit: decoder layers and vision blocks."""
    blocks = []
    for module in model.modules():
        for name in ("layers", "blocks"):
            children = getattr(module, name, None)
            if isinstance(children, nn.ModuleList) and module is not model:
                blocks.extend(children)
    if not blocks:
        raise ValueError(f"{type(model).__name__}: no decoder layers or vision blocks to shard")
    return blocks


def shard_model(model: nn.Module, world: World, *, mixed_precision: bool) -> nn.Module:
    """Applies FSDP2's ``fully_shard`` to each block, then to the root (in place)."""
    from torch.distributed.fsdp import MixedPrecisionPolicy, fully_shard
    from torch.distributed.device_mesh import init_device_mesh

    mesh = init_device_mesh(world.device.type, (world.size,))
    policy = MixedPrecisionPolicy(param_dtype=torch.bfloat16, reduce_dtype=torch.float32) \
        if mixed_precision else MixedPrecisionPolicy()
    for block in sharded_blocks(model):
        fully_shard(block, mesh=mesh, mp_policy=policy)
    fully_shard(model, mesh=mesh, mp_policy=policy)
    return model


def is_sharded(model: nn.Module) -> bool:
    from torch.distributed.fsdp import FSDPModule
    return isinstance(model, FSDPModule)


@contextlib.contextmanager
def gathered_parameters(model: nn.Module):
    """Within the block every FSDP unit holds full parameters and does no collectives, so
    each rank may run as many forwards as it likes (generation). No-op when unsharded."""
    if not is_sharded(model):
        yield model
        return
    from torch.distributed.fsdp import FSDPModule
    # The engine calls submodules directly: make the root the root before they run.
    model._get_fsdp_state()._lazy_init()
    units = [m for m in model.modules() if isinstance(m, FSDPModule)]
    for unit in units:
        unit.unshard()
    model.set_reshard_after_forward(False)
    try:
        yield model
    finally:
        model.set_reshard_after_forward(True)
        model.set_reshard_after_forward(False, recurse=False)  # the root keeps its default
        for unit in units:
            unit.reshard()


def set_gradient_sync(model: nn.Module, enabled: bool) -> None:
    """Skips the reduce-scatter on all but the last micro-batch of an accumulation."""
    if is_sharded(model):
        model.set_requires_gradient_sync(enabled)


def full_state_dict(model: nn.Module) -> dict[str, torch.Tensor]:
    """The full (unsharded) model state dict on CPU; collective under FSDP."""
    if not is_sharded(model):
        return {k: v.detach().cpu() for k, v in model.state_dict().items()}
    from torch.distributed.checkpoint.state_dict import StateDictOptions, get_model_state_dict
    return get_model_state_dict(model, options=StateDictOptions(full_state_dict=True,
                                                                cpu_offload=True))


def load_full_state_dict(model: nn.Module, state: dict[str, torch.Tensor]) -> None:
    """Loads a full state dict (every rank passes the same dict)."""
    if not is_sharded(model):
        missing, unexpected = model.load_state_dict(state, strict=False)
        _check_keys(model, missing, unexpected)
        return
    from torch.distributed.checkpoint.state_dict import StateDictOptions, set_model_state_dict
    set_model_state_dict(model, state, options=StateDictOptions(full_state_dict=True,
                                                               strict=False))


def _check_keys(model: nn.Module, missing, unexpected) -> None:
    tied = set(getattr(model, "_tied_weights_keys", None) or ())
    missing = [k for k in missing if k not in tied]
    if missing or unexpected:
        raise ValueError(f"checkpoint does not match the model: missing {missing[:5]}, "
                         f"unexpected {list(unexpected)[:5]}")


def optimizer_state(model: nn.Module, optimizer: torch.optim.Optimizer) -> dict:
    if not is_sharded(model):
        return optimizer.state_dict()
    from torch.distributed.checkpoint.state_dict import StateDictOptions, get_optimizer_state_dict
    return get_optimizer_state_dict(model, optimizer, options=StateDictOptions(
        full_state_dict=True, cpu_offload=True))


def load_optimizer_state(model: nn.Module, optimizer: torch.optim.Optimizer, state: dict) -> None:
    if not is_sharded(model):
        optimizer.load_state_dict(state)
        return
    from torch.distributed.checkpoint.state_dict import StateDictOptions, set_optimizer_state_dict
    set_optimizer_state_dict(model, optimizer, state, options=StateDictOptions(
        full_state_dict=True))
