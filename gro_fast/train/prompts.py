"""Where each step's prompts come from: the synthetic task or a dataset, in a seeded order.

``PromptStream`` wraps a ``gro_fast.data`` source with its ``GroundingSampler``: every rank
draws the same global batch of ``prompts_per_step`` samples and keeps its own slice
(``rank::size``), so the sampler state is identical everywhere and resumes exactly. With
``data.on_error: skip`` a record that fails when it is read (an unreadable image) is
skipped and counted, like the records the reader skipped at load time; with ``raise``
its ``DataError`` (file, line, field) stops the run. Held-out prompts come from
``heldout_samples``. Reading formats is ``gro_fast.data``'s job.
"""
from __future__ import annotations

from collections import Counter

from .config import ConfigError, DataConfig
from .distributed import World

SYNTHETIC_TRAIN_LENGTH = 1_000_000


def resize_config(cfg: DataConfig, processor=None):
    """``gro_fast.data.ResizeConfig`` from ``data.resize`` (processor / none / WxH)."""
    from gro_fast.data import ResizeConfig
    value = cfg.resize.strip().lower()
    if value == "none":
        return ResizeConfig(mode="none")
    if value == "processor":
        image_processor = getattr(processor, "image_processor", None)
        limits = {k: int(getattr(image_processor, k)) for k in ("min_pixels", "max_pixels")
                  if isinstance(getattr(image_processor, k, None), (int, float))}
        return ResizeConfig(mode="processor", **limits)
    try:
        width, height = (int(v) for v in value.split("x"))
    except ValueError:
        raise ConfigError(f"data.resize: expected processor, none or WxH (e.g. 840x840), "
                          f"got {cfg.resize!r}") from None
    return ResizeConfig(mode="fixed", size=(width, height))


def training_source(cfg: DataConfig, processor=None):
    from gro_fast.data import SyntheticGroundingTask, load_grounding_dataset
    if cfg.source == "synthetic":
        return SyntheticGroundingTask(seed=cfg.seed, image_size=cfg.image_size, split="train",
                                      difficulty=cfg.difficulty, length=SYNTHETIC_TRAIN_LENGTH)
    return load_grounding_dataset(cfg.source, format=cfg.format,
                                  image_root=cfg.image_root or None,
                                  resize=resize_config(cfg, processor), on_error=cfg.on_error)


def heldout_samples(cfg: DataConfig, processor=None) -> list:
    """The held-out prompts scored before / after training (``eval_size`` of them)."""
    from gro_fast.data import SyntheticGroundingTask, load_grounding_dataset
    if cfg.eval_size == 0:
        return []
    if cfg.eval_source:
        source = load_grounding_dataset(cfg.eval_source, format=cfg.format,
                                        image_root=cfg.image_root or None,
                                        resize=resize_config(cfg, processor),
                                        on_error=cfg.on_error)
        return [source[i] for i in range(min(cfg.eval_size, len(source)))]
    if cfg.source != "synthetic":
        return []
    task = SyntheticGroundingTask(seed=cfg.seed, image_size=cfg.image_size, split="heldout",
                                  difficulty=cfg.difficulty, length=cfg.eval_size)
    return list(task)


class PromptStream:
    """Seeded, resumable stream of training samples (see the module docstring)."""

    def __init__(self, cfg: DataConfig, *, seed: int, processor=None, source=None):
        from gro_fast.data import GroundingSampler
        self.cfg = cfg
        self.source = source if source is not None else training_source(cfg, processor)
        if len(self.source) == 0:
            raise ValueError(f"data.source {cfg.source!r}: no usable samples "
                             f"(skipped: {dict(getattr(self.source, 'skipped', {}))})")
        self.sampler = GroundingSampler(len(self.source), seed=seed, shuffle=True)
        self.skipped: Counter = Counter()

    def _next_sample(self):
        from gro_fast.data import DataError
        for _ in range(len(self.source)):
            index = self.sampler.next_index()
            try:
                return self.source[index]
            except DataError as exc:
                if self.cfg.on_error != "skip":
                    raise
                self.skipped[exc.reason] += 1
        raise ValueError(f"data.source {self.cfg.source!r}: every record failed to load "
                         f"(skipped: {dict(self.skipped)})")

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
