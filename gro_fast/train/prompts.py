"""Where each step's prompts come from: the synthetic task or a dataset, in a seeded order.

``PromptStream`` wraps a ``gro_fast.data`` source with its ``GroundingSampler``: every rank
draws the same global batch of ``prompts_per_step`` samples and keeps its own slice
(``rank::size``), so the sampler state is identical everywhere and resumes exactly. With
``data.on_error: skip`` a record that fails when it is read (an unreadable image) is
skipped and counted, like the records the reader skipped at load time; with ``raise``
its ``DataError`` (file, line, field) stops the run. Held-out prompts come from
``heldout_samples``. Samples are built in the frame the processor feeds
(``gro_fast.data.model_frame``, the one owner of that size) and the first one drawn is
checked against the processor's own output. Reading formats is ``gro_fast.data``'s job.
"""
from __future__ import annotations

import os
from collections import Counter
from dataclasses import replace

from .config import DataConfig
from .distributed import World

SYNTHETIC_TRAIN_LENGTH = 1_000_000


def data_frame(cfg: DataConfig, processor=None):
    """The ``ResizeConfig`` samples are built with: the frame ``processor`` feeds
    (``gro_fast.data.model_frame``, after ``data.resize``'s optional pre-resize). Without a
    processor (unit tests): Qwen2.5-VL's default rule, or the fixed ``data.resize``."""
    from gro_fast.data import ResizeConfig, model_frame
    from gro_fast.data.frame import parse_resize
    if processor is not None:
        return model_frame(processor, cfg.resize)
    size = parse_resize(cfg.resize)
    return ResizeConfig() if size is None else ResizeConfig.fixed(*size)


def _load(cfg: DataConfig, which: str, frame):
    """The datasets of ``data.<which>`` read with ``frame``, as one dataset."""
    from gro_fast.data import concat_datasets, load_grounding_dataset
    parts = []
    for entry in cfg.entries(which):
        is_folder = os.path.isdir(entry["path"])
        parts.append(load_grounding_dataset(
            entry["path"], format=entry["format"], image_root=entry["image_root"] or None,
            resize=frame, on_error=cfg.on_error, split=(entry["split"] or None) if is_folder
            else None, bbox_format=cfg.bbox_format, coords=cfg.coords))
    return concat_datasets(parts)


def training_source(cfg: DataConfig, processor=None, frame=None):
    """The training samples: the synthetic task or ``data.source`` (``frame``: the
    ``ResizeConfig`` to read with, default :func:`data_frame`)."""
    from gro_fast.data import SyntheticGroundingTask
    if cfg.source == "synthetic":
        return SyntheticGroundingTask(seed=cfg.seed, image_size=cfg.image_size, split="train",
                                      difficulty=cfg.difficulty, length=SYNTHETIC_TRAIN_LENGTH)
    return _load(cfg, "source", frame or data_frame(cfg, processor))


def warm_start_data(cfg: DataConfig, difficulty: str) -> DataConfig:
    """The data the warm start draws: ``cfg``, with the synthetic task's scenes of
    ``difficulty`` when it is set (``warm_start.difficulty``)."""
    if not difficulty or difficulty == cfg.difficulty:
        return cfg
    return replace(cfg, difficulty=difficulty)


def heldout_samples(cfg: DataConfig, size: int, processor=None, frame=None) -> list:
    """The held-out prompts scored before / after training (``size`` of them); the
    first is checked to be in ``processor``'s frame."""
    from gro_fast.data import SyntheticGroundingTask, check_frame
    if size == 0:
        return []
    if cfg.eval_source:
        source = _load(cfg, "eval_source", frame or data_frame(cfg, processor))
        samples = [source[i] for i in range(min(size, len(source)))]
    elif cfg.source != "synthetic":
        return []
    else:
        samples = list(SyntheticGroundingTask(seed=cfg.seed, image_size=cfg.image_size,
                                              split="heldout", difficulty=cfg.difficulty,
                                              length=size))
    if samples and processor is not None:
        check_frame(samples[0], processor, where="data.eval_source" if cfg.eval_source
                    else "the synthetic held-out split (data.image_size)")
    return samples


class PromptStream:
    """Seeded, resumable stream of training samples (see the module docstring)."""

    def __init__(self, cfg: DataConfig, *, seed: int, processor=None, source=None,
                 frame=None):
        from gro_fast.data import GroundingSampler
        self.cfg, self.processor = cfg, processor
        self.source = source if source is not None else training_source(cfg, processor, frame)
        if len(self.source) == 0:
            from gro_fast.data import DataError
            raise DataError(f"data.source {cfg.source!r}", "no usable samples (skipped: "
                            f"{dict(getattr(self.source, 'skipped', {}))})", reason="empty")
        self.sampler = GroundingSampler(len(self.source), seed=seed, shuffle=True)
        self.skipped: Counter = Counter()
        self._frame_checked = processor is None

    def _next_sample(self):
        from gro_fast.data import DataError
        for _ in range(len(self.source)):
            index = self.sampler.next_index()
            try:
                return self._checked(self.source[index])
            except DataError as exc:
                if self.cfg.on_error != "skip":
                    raise
                self.skipped[exc.reason] += 1
        raise ValueError(f"data.source {self.cfg.source!r}: every record failed to load "
                         f"(skipped: {dict(self.skipped)})")

    def _checked(self, sample):
        """The first sample drawn is checked to be in the processor's frame."""
        if not self._frame_checked:
            from gro_fast.data import check_frame
            check_frame(sample, self.processor, where="the synthetic task (data.image_size)"
                        if self.cfg.source == "synthetic" else "data.source")
            self._frame_checked = True
        return sample

    def next_global(self, n: int) -> list:
        return [self._next_sample() for _ in range(n)]

    def next_local(self, n_global: int, world: World) -> list:
        """This rank's share of the next global batch of ``n_global`` samples."""
        return self.next_global(n_global)[world.rank::world.size]

    def local_iter(self, world: World):
        """Endless samples for this rank (one global draw of ``size`` per local sample)."""
        while True:
            yield self.next_global(world.size)[world.rank]

    def skipped_total(self) -> dict:
        counts = Counter(getattr(self.source, "skipped", {}) or {})
        counts.update(self.skipped)
        return dict(counts)

    def state_dict(self) -> dict:
        return {"sampler": self.sampler.state_dict(), "skipped": dict(self.skipped)}

    def load_state_dict(self, state: dict | None) -> None:
        if not state:
            return
        self.sampler.load_state_dict(state["sampler"])
        self.skipped = Counter(state.get("skipped", {}))
