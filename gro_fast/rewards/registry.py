"""Rewards by name, so configs can choose them and users can add their own.

``get_reward(name)`` returns a callable ``fn(response, ground_truth, **kwargs) -> float``.
``name`` is a built-in or registered name, or ``"path/to/file.py:function"`` (the
veRL / EasyR1 custom-reward convention): the file is imported once and the function
called as ``function(response, ground_truth)``. ``register_reward(name, fn)`` adds a
callable. Built-ins that ignore the ground truth (format, object_format, non_repeat)
accept and drop it; ``mask_iou`` takes (pred_masks, gt_masks).
``reward_matrix`` calls one on a batch of texts and checks every value (``RewardError``
names the reward, the sample and what it returned). This module only looks rewards up and
calls them; it does not combine them (``gro_fast.algo`` does).
"""
from __future__ import annotations

import importlib.util
import numbers
import os
from typing import Callable

import numpy as np
import torch

from . import task, vision_reasoner

RewardFn = Callable[..., float]


def _ignoring_gt(fn: Callable[[object], float]) -> RewardFn:
    def reward(response, ground_truth=None, **_):
        return fn(response)
    reward.__name__ = fn.__name__
    reward.__doc__ = fn.__doc__
    return reward


_REGISTRY: dict[str, RewardFn] = {
    "format": _ignoring_gt(vision_reasoner.format_reward),
    "object_format": _ignoring_gt(vision_reasoner.object_format_reward),
    "non_repeat": _ignoring_gt(vision_reasoner.non_repeat_reward),
    "accuracy": vision_reasoner.accuracy_reward,
    "vision_reasoner": vision_reasoner.vision_reasoner_reward,
    "rec_iou": task.rec_iou_reward,
    "rec_accuracy": task.rec_accuracy_reward,
    "count": task.count_reward,
    "graded_count": task.graded_count_reward,
    "mask_iou": task.mask_iou_reward,
}
_FILE_CACHE: dict[str, RewardFn] = {}


def register_reward(name: str, fn: RewardFn, *, overwrite: bool = False) -> RewardFn:
    """Make ``fn`` available as ``get_reward(name)``; returns ``fn``."""
    if not isinstance(name, str) or not name or ":" in name:
        raise ValueError(f"reward name must be a non-empty string without ':', got {name!r}")
    if not callable(fn):
        raise TypeError(f"reward {name!r} must be callable, got {type(fn).__name__}")
    if name in _REGISTRY and not overwrite:
        raise ValueError(f"reward {name!r} is already registered (pass overwrite=True)")
    _REGISTRY[name] = fn
    return fn


def available_rewards() -> list[str]:
    """Names ``get_reward`` knows (files excluded)."""
    return sorted(_REGISTRY)


def _load_from_file(spec: str) -> RewardFn:
    path, _, func = spec.rpartition(":")
    if not path.endswith(".py") or not func:
        raise ValueError(f"reward {spec!r}: expected 'path/to/file.py:function'")
    path = os.path.abspath(os.path.expanduser(path))
    key = f"{path}:{func}"
    if key in _FILE_CACHE:
        return _FILE_CACHE[key]
    if not os.path.isfile(path):
        raise ValueError(f"reward {spec!r}: file {path} does not exist")
    module_name = f"gro_fast_user_reward_{abs(hash(path))}"
    module_spec = importlib.util.spec_from_file_location(module_name, path)
    module = importlib.util.module_from_spec(module_spec)
    module_spec.loader.exec_module(module)
    fn = getattr(module, func, None)
    if not callable(fn):
        raise ValueError(f"reward {spec!r}: {path} has no callable {func!r}")
    _FILE_CACHE[key] = fn
    return fn


def get_reward(name: str) -> RewardFn:
    """The reward called ``name``, or the function ``"file.py:function"`` points at."""
    if not isinstance(name, str):
        raise TypeError(f"reward name must be a string, got {type(name).__name__}")
    if name in _REGISTRY:
        return _REGISTRY[name]
    if ":" in name:
        return _load_from_file(name)
    raise ValueError(f"unknown reward {name!r}; known: {', '.join(available_rewards())}, "
                     f"or 'path/to/file.py:function'")


class RewardError(ValueError):
    """A custom reward returned something that is not a finite number, or raised."""


def reward_value(value, name: str, where: str) -> float:
    """``value`` as a float when it is a finite real number (a Python / numpy number or a
    one-element tensor / array); otherwise ``RewardError`` naming the reward, the sample and
    what it returned."""
    raw = value
    if isinstance(value, torch.Tensor) and value.numel() == 1:
        value = value.item()
    elif isinstance(value, np.ndarray) and value.size == 1:
        value = value.item()
    if isinstance(value, (str, bytes)) or not isinstance(value, numbers.Real):
        raise RewardError(f"algorithm.reward {name!r} returned {type(raw).__name__} "
                          f"{str(raw)[:60]!r} for {where}; a reward must be a finite number")
    value = float(value)
    if not np.isfinite(value):
        raise RewardError(f"algorithm.reward {name!r} returned {value} for {where}; a reward "
                          "must be a finite number")
    return value


def reward_matrix(fn, name: str, texts: list[list[str]], ground_truth: list,
                  label: str = "sample {i}") -> torch.Tensor:
    """float64 [P, G] rewards ``fn(text, ground_truth)``, each checked by ``reward_value``;
    errors name "prompt p, " + ``label`` (with ``{i}`` the text's index in its group)."""
    rows = []
    for p, (group, gt) in enumerate(zip(texts, ground_truth)):
        row = []
        for i, text in enumerate(group):
            where = f"prompt {p}, " + label.format(i=i)
            try:
                value = fn(text, gt)
            except Exception as exc:
                raise RewardError(f"algorithm.reward {name!r} raised {type(exc).__name__}: "
                                  f"{exc} for {where}") from exc
            row.append(reward_value(value, name, where))
        rows.append(row)
    return torch.tensor(rows, dtype=torch.float64)
