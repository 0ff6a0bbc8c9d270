"""Registry of benchmark cases and the small timing helpers they share.

A case is a function ``fn(ctx) -> list[dict]`` registered with ``@case(name, group)``
in a module of ``bench/cases/``. Each returned row is one measurement (a shape, a peer),
with at least ``impl`` and ``ms``; ratios against peers are computed by the case itself
from peers measured in the same run.
"""
from __future__ import annotations

import statistics
import time
from dataclasses import dataclass, field
from typing import Callable

import torch

CASES: dict[str, "Case"] = {}

# Device peaks by a fragment of torch.cuda.get_device_name (first match wins, so the more
# specific names come first): memory bandwidth in TB/s and dense bf16 tensor TFLOP/s.
PEAK_TBPS = (("H200", 4.8), ("H100 NVL", 3.9), ("H100 PCIe", 2.0), ("H100", 3.35),
             ("A100-SXM4-80GB", 2.04), ("A100", 1.55))
PEAK_BF16_TFLOPS = (("H100 PCIe", 756.0), ("H100 NVL", 835.0), ("GH200", 989.0), ("H200", 989.0),
                    ("H100", 989.0), ("A100", 312.0), ("L40S", 362.0))


def device_peak(device: torch.device, table) -> float | None:
    """The device's entry of ``PEAK_TBPS`` / ``PEAK_BF16_TFLOPS``; None on CPU or unknown."""
    if device.type != "cuda":
        return None
    name = torch.cuda.get_device_name(device)
    return next((peak for fragment, peak in table if fragment in name), None)


@dataclass
class Context:
    """What a case gets: the device to run on and which shapes to use."""

    device: torch.device
    quick: bool = False
    """Small shapes (the default on CPU)."""
    check: bool = False
    """One production shape per case and short timing: the benchmarks of
    ``scripts/gpu_check.sh`` (a GPU run of a few minutes)."""
    tiny: bool = False
    """The smallest shapes, a smoke run of every code path (``scripts/gpu_check.sh
    --dry-run`` on CPU); implies ``quick``."""
    extras: dict = field(default_factory=dict)

    @property
    def is_cuda(self) -> bool:
        return self.device.type == "cuda"


@dataclass
class Case:
    name: str
    group: str
    fn: Callable[[Context], list]
    devices: tuple[str, ...]


def case(name: str, group: str, devices: tuple[str, ...] = ("cpu", "cuda")):
    def register(fn):
        if name in CASES:
            raise ValueError(f"benchmark case {name!r} registered twice")
        CASES[name] = Case(name, group, fn, devices)
        return fn
    return register


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def timing(ctx: Context, full: dict) -> dict:
    """``time_ms`` arguments for ``ctx``: one untimed-warm-up-free run with ``--tiny``,
    1 warm-up and 3 runs with ``--quick`` / ``--check``, else ``full``."""
    if ctx.tiny:
        return dict(warmup=0, repeats=1)
    if ctx.quick or ctx.check:
        return dict(warmup=1, repeats=3)
    return full


def time_ms(fn: Callable[[], object], device: torch.device, *, warmup: int = 2,
            repeats: int = 5, min_seconds: float = 0.0) -> float:
    """Median wall time of ``fn()`` in milliseconds (CUDA-synchronised)."""
    for _ in range(warmup):
        fn()
    synchronize(device)
    samples = []
    start_all = time.perf_counter()
    while len(samples) < repeats or time.perf_counter() - start_all < min_seconds:
        start = time.perf_counter()
        fn()
        synchronize(device)
        samples.append((time.perf_counter() - start) * 1e3)
        if len(samples) >= 1000:
            break
    return statistics.median(samples)


def peak_memory_mb(fn: Callable[[], object], device: torch.device) -> float | None:
    """Peak CUDA memory allocated during ``fn()`` above what was allocated before."""
    if device.type != "cuda":
        return None
    synchronize(device)
    torch.cuda.reset_peak_memory_stats(device)
    before = torch.cuda.memory_allocated(device)
    fn()
    synchronize(device)
    return (torch.cuda.max_memory_allocated(device) - before) / 2**20
