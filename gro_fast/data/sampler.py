"""Choosing which samples go into each batch: a seeded, resumable sampler and a collate.

:class:`GroundingSampler` walks a dataset of ``n`` samples epoch after epoch; with
``shuffle`` each epoch is a permutation drawn from ``(seed, epoch)``, so the order never
depends on what ran before. Its position (epoch and offset) is its whole state:
``state_dict()`` / ``load_state_dict()`` let a resumed run draw exactly the batches an
uninterrupted run would have. :func:`collate` groups samples into lists per field.
Loading the samples themselves is the dataset's job.
"""
from __future__ import annotations

import numpy as np

from .sample import GroundingSample


class GroundingSampler:
    """Endless, deterministic index stream over ``n`` samples."""

    def __init__(self, n: int, *, seed: int = 0, shuffle: bool = True):
        if not isinstance(n, int) or n <= 0:
            raise ValueError(f"n must be a positive int, got {n!r}")
        if not isinstance(seed, int) or seed < 0:
            raise ValueError(f"seed must be a non-negative int, got {seed!r}")
        self.n, self.seed, self.shuffle = n, seed, bool(shuffle)
        self.epoch, self.offset = 0, 0
        self._order = self._epoch_order(0)

    def _epoch_order(self, epoch: int) -> np.ndarray:
        if not self.shuffle:
            return np.arange(self.n)
        return np.random.default_rng([self.seed, epoch]).permutation(self.n)

    def next_index(self) -> int:
        if self.offset == self.n:
            self.epoch, self.offset = self.epoch + 1, 0
            self._order = self._epoch_order(self.epoch)
        index = int(self._order[self.offset])
        self.offset += 1
        return index

    def next_batch(self, batch_size: int) -> list[int]:
        """The next ``batch_size`` indices (a batch may span two epochs)."""
        if not isinstance(batch_size, int) or batch_size <= 0:
            raise ValueError(f"batch_size must be a positive int, got {batch_size!r}")
        return [self.next_index() for _ in range(batch_size)]

    def __iter__(self):
        while True:
            yield self.next_index()

    def state_dict(self) -> dict:
        return {"n": self.n, "seed": self.seed, "shuffle": self.shuffle,
                "epoch": self.epoch, "offset": self.offset}

    def load_state_dict(self, state: dict) -> None:
        """Resume from :meth:`state_dict`; the dataset size, seed and shuffle must match."""
        for key in ("n", "seed", "shuffle"):
            if state.get(key) != getattr(self, key):
                raise ValueError(f"sampler state has {key}={state.get(key)!r}, this sampler "
                                 f"has {key}={getattr(self, key)!r}")
        epoch, offset = state.get("epoch"), state.get("offset")
        if not (isinstance(epoch, int) and epoch >= 0 and isinstance(offset, int)
                and 0 <= offset <= self.n):
            raise ValueError(f"sampler state has invalid epoch/offset: {epoch!r}/{offset!r}")
        self.epoch, self.offset = epoch, offset
        self._order = self._epoch_order(epoch)


def collate(samples: list[GroundingSample]) -> dict:
    """Field-wise lists: ``{"ids", "images", "queries", "objects", "counts", "masks",
    "input_sizes", "original_sizes", "tasks", "samples"}``."""
    if not samples:
        raise ValueError("collate needs at least one sample")
    return {
        "ids": [s.id for s in samples], "images": [s.image for s in samples],
        "queries": [s.query for s in samples], "objects": [s.objects for s in samples],
        "counts": [s.count for s in samples], "masks": [s.mask for s in samples],
        "input_sizes": [s.input_size for s in samples],
        "original_sizes": [s.original_size for s in samples],
        "tasks": [s.task for s in samples], "samples": list(samples),
    }
