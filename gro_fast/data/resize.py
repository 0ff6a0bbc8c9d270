"""Choosing the model-input size of an image and resizing to it.

Two rules, picked by :class:`ResizeConfig`:

* ``processor``: the Qwen2-VL / Qwen2.5-VL processor's rule (:func:`smart_resize`): both
  sides become multiples of ``factor`` (patch size 14 x spatial merge 2 = 28) close to the
  original aspect ratio, with the pixel count kept within [min_pixels, max_pixels];
  optionally after a fixed pre-resize (``pre_size``), as Seg-Zero feeds 840 x 840 images
  to the processor;
* ``fixed``: one size for every image (Seg-Zero and VisionReasoner feed 840 x 840);
* ``none``: keep the image as it is.

The rule matching a given processor is built by ``frame.model_frame`` (the one place
that reads a processor's limits). The coordinate change that goes with a resize lives on
``GroundingSample`` (``to_input`` / ``to_original``). This module does not read files.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

from PIL import Image

MODES = ("processor", "fixed", "none")


def smart_resize(width: int, height: int, *, factor: int = 28, min_pixels: int = 56 * 56,
                 max_pixels: int = 1280 * 28 * 28) -> tuple[int, int]:
    """Qwen2.5-VL's resize rule: the (width, height) the processor feeds the vision tower.

    Each side is rounded to the nearest multiple of ``factor`` (Python ``round``, so halves
    go to even, as the processor does). If the area then exceeds
    ``max_pixels``, both sides are scaled by ``beta = sqrt(h * w / max_pixels)`` and
    floored to multiples of ``factor``; if it falls below ``min_pixels``, scaled by
    ``sqrt(min_pixels / (h * w))`` and ceiled. Aspect ratios above 200 are refused.
    """
    if width <= 0 or height <= 0:
        raise ValueError(f"image size must be positive, got {width}x{height}")
    if max(width, height) / min(width, height) > 200:
        raise ValueError(f"aspect ratio of {width}x{height} exceeds 200")
    h_bar = round(height / factor) * factor
    w_bar = round(width / factor) * factor
    if h_bar * w_bar > max_pixels:
        beta = math.sqrt(height * width / max_pixels)
        h_bar = max(factor, math.floor(height / beta / factor) * factor)
        w_bar = max(factor, math.floor(width / beta / factor) * factor)
    elif h_bar * w_bar < min_pixels:
        beta = math.sqrt(min_pixels / (height * width))
        h_bar = math.ceil(height * beta / factor) * factor
        w_bar = math.ceil(width * beta / factor) * factor
    return w_bar, h_bar


@dataclass(frozen=True)
class ResizeConfig:
    """How images are resized to the model-input size."""

    mode: str = "processor"
    """``"processor"`` (smart resize), ``"fixed"`` (:attr:`size`) or ``"none"``."""
    min_pixels: int = 56 * 56
    """Processor mode: smallest allowed pixel count (Qwen2.5-VL default 3136)."""
    max_pixels: int = 1280 * 28 * 28
    """Processor mode: largest allowed pixel count (1280 visual tokens x 28 x 28)."""
    factor: int = 28
    """Processor mode: both sides are multiples of this (patch 14 x merge 2)."""
    size: tuple | None = None
    """Fixed mode: (width, height), e.g. (840, 840) as in Seg-Zero."""
    pre_size: tuple | None = None
    """Processor mode: (width, height) the image is resized to first (bilinear, as
    VisionReasoner does), before the processor's rule; None: the stored image."""

    def __post_init__(self):
        if self.mode not in MODES:
            raise ValueError(f"ResizeConfig.mode must be one of {MODES}, got {self.mode!r}")
        if self.mode == "fixed":
            if (self.size is None or len(self.size) != 2
                    or not all(isinstance(s, int) and s > 0 for s in self.size)):
                raise ValueError(f"ResizeConfig.size must be (width, height) positive ints "
                                 f"in fixed mode, got {self.size!r}")
        if self.mode == "processor":
            if self.factor <= 0 or self.min_pixels <= 0:
                raise ValueError("ResizeConfig.factor and min_pixels must be positive")
            if self.max_pixels < max(self.min_pixels, self.factor * self.factor):
                raise ValueError(f"ResizeConfig.max_pixels ({self.max_pixels}) must be >= "
                                 f"min_pixels ({self.min_pixels}) and factor**2")
        if self.pre_size is not None and (
                self.mode != "processor" or len(self.pre_size) != 2
                or not all(isinstance(s, int) and s > 0 for s in self.pre_size)):
            raise ValueError(f"ResizeConfig.pre_size must be (width, height) positive ints "
                             f"and needs mode 'processor', got {self.pre_size!r}")

    @classmethod
    def fixed(cls, width: int, height: int) -> "ResizeConfig":
        return cls(mode="fixed", size=(int(width), int(height)))

    @classmethod
    def processor(cls, min_pixels: int = 56 * 56, max_pixels: int = 1280 * 28 * 28,
                  factor: int = 28, pre_size: tuple | None = None) -> "ResizeConfig":
        return cls(mode="processor", min_pixels=min_pixels, max_pixels=max_pixels,
                   factor=factor, pre_size=None if pre_size is None else tuple(pre_size))

    @classmethod
    def none(cls) -> "ResizeConfig":
        return cls(mode="none")

    def target_size(self, width: int, height: int) -> tuple[int, int]:
        """The model-input (width, height) for an image of (width, height)."""
        if self.mode == "fixed":
            return tuple(self.size)
        if self.mode == "none":
            return int(width), int(height)
        if self.pre_size is not None:
            width, height = self.pre_size
        return smart_resize(width, height, factor=self.factor, min_pixels=self.min_pixels,
                            max_pixels=self.max_pixels)

    def apply(self, image: Image.Image) -> Image.Image:
        """Resize ``image`` to :meth:`target_size`: to ``pre_size`` first (bilinear) when
        set, then (bicubic, as the processor does) to the rule's size."""
        if self.pre_size is not None and tuple(self.pre_size) != image.size:
            image = image.resize(tuple(self.pre_size), Image.Resampling.BILINEAR)
        size = self.target_size(*image.size)
        if size == image.size:
            return image
        return image.resize(size, Image.Resampling.BICUBIC)
