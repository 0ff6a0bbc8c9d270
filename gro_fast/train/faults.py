"""Fault injection: named points where the reliability tests make a run die or a write fail.

A point is a call ``fault_point("checkpoint.model")`` at a place where a real fault can
strike (inside ``save_checkpoint`` between its files, after a training step, ...). It does
nothing unless the environment variable ``GRO_FAST_FAULT`` names it:

    GRO_FAST_FAULT=<point>:<action>[:<n>][,<point>:<action>[:<n>] ...]

``action`` is ``kill`` (SIGKILL this process: no handler, no cleanup, as a power cut or
the OOM killer), ``enospc`` (raise ``OSError(ENOSPC)``: disk full) or ``eacces`` (raise
``PermissionError(EACCES)``: output made read-only); ``n`` (default 1) fires on the n-th
time the point is reached in this process. Every point is listed in ``POINTS``; an unknown
point or action is an error, so a typo never silently tests nothing. This module does not
decide where points go: the modules that call ``fault_point`` do.
"""
from __future__ import annotations

import errno
import os
import signal
from collections import Counter

ENV = "GRO_FAST_FAULT"
POINTS = (
    "checkpoint.start",          # temporary folder created, nothing written yet
    "checkpoint.model",          # model/ written
    "checkpoint.write",          # inside a state file, half of its bytes written
    "checkpoint.rng",            # rng-rank<R>.pt written
    "checkpoint.trainer_state",  # trainer_state.pt written
    "checkpoint.manifest",       # every file synced, manifest.json written
    "checkpoint.rename",         # just before the rename into place
    "checkpoint.renamed",        # renamed into place, older checkpoints not yet pruned
    "checkpoint.pruned",         # older checkpoints deleted
    "train.step",                # an RL step finished (before any checkpoint of it)
    "sft.step",                  # a warm-start step finished
)
ACTIONS = ("kill", "enospc", "eacces")
_hits: Counter = Counter()


def _plan() -> dict[str, tuple[str, int]]:
    spec = os.environ.get(ENV, "").strip()
    plan = {}
    for item in filter(None, (s.strip() for s in spec.split(","))):
        parts = item.split(":")
        if len(parts) not in (2, 3) or parts[0] not in POINTS or parts[1] not in ACTIONS \
                or (len(parts) == 3 and not parts[2].isdigit()):
            raise ValueError(f"{ENV}={spec!r}: expected <point>:<action>[:<n>] with a point "
                             f"in {POINTS} and an action in {ACTIONS}; got {item!r}")
        plan[parts[0]] = (parts[1], int(parts[2]) if len(parts) == 3 else 1)
    return plan


def fault_point(name: str) -> None:
    """Fires the fault ``GRO_FAST_FAULT`` sets for ``name`` (see the module docstring)."""
    if name not in POINTS:
        raise ValueError(f"unknown fault point {name!r}")
    if ENV not in os.environ:
        return
    action = _plan().get(name)
    if action is None:
        return
    _hits[name] += 1
    kind, nth = action
    if _hits[name] != nth:
        return
    if kind == "kill":
        os.kill(os.getpid(), signal.SIGKILL)
    code = errno.ENOSPC if kind == "enospc" else errno.EACCES
    error = PermissionError if kind == "eacces" else OSError
    raise error(code, f"{os.strerror(code)} (injected by {ENV} at {name})")


def reset() -> None:
    """Forget how often each point was reached (tests that run several times in-process)."""
    _hits.clear()
