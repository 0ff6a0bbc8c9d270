"""gro_fast: a fast, correct training core for Group Revision Optimisation (GRO).

Sub-packages: ``ops`` (fused kernels and IoU ops), ``rewards`` (parsing and grounding
rewards), ``algo`` (GRO consolidation and advantages), ``generation`` (rollout engine),
``models``, ``data``, ``train``, ``eval``. Importing this package imports nothing heavy;
sub-packages load on first use.
"""
from __future__ import annotations

import importlib

__version__ = "0.1.0"

_SUBMODULES = ("ops", "rewards", "algo", "generation", "models", "data", "train", "eval")


def __getattr__(name):
    if name in _SUBMODULES:
        return importlib.import_module(f"gro_fast.{name}")
    raise AttributeError(f"module 'gro_fast' has no attribute {name!r}")
