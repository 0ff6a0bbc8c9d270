"""The model-input frame: the image size a processor feeds its vision tower.

The frame rule: every coordinate gro_fast trains or scores with (ground-truth boxes and
points, the model's answers, the rewards) is in pixels of the image AS THE PROCESSOR FEEDS
IT to the vision tower. This module is the one place that knows that size:

* :func:`model_frame` gives the ``ResizeConfig`` that the readers resize samples with, for a
  processor: the processor's own rule (Qwen-VL's smart resize with the processor's patch
  size, merge size and pixel limits, read wherever this transformers version keeps them),
  after an optional fixed pre-resize (``data.resize: 840x840``, as Seg-Zero stores its
  images). The rule is checked against the grid the processor itself produces on probe
  images before it is returned;
* :func:`fed_size` asks the processor what it feeds for one image (its ``image_grid_thw``
  times the patch size), and :func:`grid_sizes` reads the same from processor outputs;
* :func:`check_frame` is the pipeline's guard: train and eval call it on their first
  sample, and a sample whose ``input_size`` is not what the processor feeds raises
  :class:`FrameMismatch` naming both sizes.

Samples are resized to the frame by the readers, so the processor's own resize is then a
no-op. Reading files, and mapping coordinates between frames, are left to others.
"""
from __future__ import annotations

import warnings
from collections.abc import Mapping

from PIL import Image

from .resize import ResizeConfig

RESIZE_HELP = "processor (the processor's own rule), none (the same), or WxH such as 840x840"


class FrameMismatch(ValueError):
    """The data's model-input size and the size the processor feeds disagree."""


def _image_processor(processor):
    return getattr(processor, "image_processor", processor)


def _limit(image_processor, attribute: str, size_keys: tuple[str, ...]) -> int | None:
    """A pixel limit: the attribute when set (transformers applies it over ``size``), else
    the first of ``size_keys`` present in ``size`` (transformers 5.x keeps them there)."""
    value = getattr(image_processor, attribute, None)
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return int(value)
    size = getattr(image_processor, "size", None)
    for key in size_keys:
        value = size.get(key) if isinstance(size, Mapping) else getattr(size, key, None)
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return int(value)
    return None


def processor_rule(processor) -> ResizeConfig:
    """The processor's resize rule as read from its configuration (see :func:`model_frame`,
    which also checks it against the processor's own output)."""
    ip = _image_processor(processor)
    if getattr(ip, "do_resize", True) is False:
        return ResizeConfig.none()
    patch = getattr(ip, "patch_size", None)
    merge = getattr(ip, "merge_size", None)
    min_pixels = _limit(ip, "min_pixels", ("shortest_edge", "min_pixels"))
    max_pixels = _limit(ip, "max_pixels", ("longest_edge", "max_pixels"))
    if not all(isinstance(v, int) and v > 0 for v in (patch, merge, min_pixels, max_pixels)):
        raise ValueError(
            f"cannot tell the image frame of {type(ip).__name__}: gro_fast knows processors "
            "of the Qwen-VL family (patch_size, merge_size and min / max pixels, as attributes "
            f"or in size); got patch_size={patch!r}, merge_size={merge!r}, "
            f"min_pixels={min_pixels!r}, max_pixels={max_pixels!r}")
    return ResizeConfig.processor(min_pixels=min_pixels, max_pixels=max_pixels,
                                  factor=patch * merge)


def grid_sizes(processor, model_inputs: Mapping) -> list[tuple[int, int]]:
    """(width, height) of each image in processor outputs, from ``image_grid_thw``."""
    grid = model_inputs.get("image_grid_thw") if isinstance(model_inputs, Mapping) else None
    if grid is None:
        return []
    patch = int(_image_processor(processor).patch_size)
    return [(int(w) * patch, int(h) * patch) for _, h, w in grid.tolist()]


def fed_size(processor, image: Image.Image) -> tuple[int, int]:
    """(width, height) the processor feeds the vision tower for ``image``: asked of the
    processor itself (it processes the image once)."""
    ip = _image_processor(processor)
    with warnings.catch_warnings():  # min_pixels / max_pixels attributes warn in 5.x
        warnings.simplefilter("ignore", FutureWarning)
        out = ip(images=[image.convert("RGB")], return_tensors="pt")
    sizes = grid_sizes(processor, out)
    if len(sizes) != 1:
        raise ValueError(f"{type(ip).__name__} returned no image_grid_thw for one image; "
                         "gro_fast knows processors of the Qwen-VL family")
    return sizes[0]


def _probe_sizes(rule: ResizeConfig) -> list[tuple[int, int]]:
    """Image sizes that exercise the rule's branches cheaply: rounding to the factor,
    the min_pixels floor, and (where such an image is small) the max_pixels cap."""
    f = rule.factor
    sizes = [(3 * f + 5, 2 * f + 3), (f // 2 + 1, f // 3 + 1)]
    if rule.max_pixels <= 1_100_000:  # a larger probe would cost a noticeable fraction of a second
        side = int((rule.max_pixels * 1.3) ** 0.5) + 1
        sizes.append((side + 3 * f, side))
    return sizes


def model_frame(processor, resize: str | ResizeConfig = "processor") -> ResizeConfig:
    """The ``ResizeConfig`` that puts samples in ``processor``'s frame.

    ``resize``: ``"processor"`` (or ``"none"``): the processor's rule on the stored image;
    ``"WxH"``: the image is first resized to W x H (Seg-Zero / VisionReasoner feed 840 x
    840), then the processor's rule applies (a no-op when W x H is already in its frame).
    The rule is checked against the processor's own output on probe images; a processor
    whose configuration gro_fast reads wrongly raises :class:`FrameMismatch`.
    """
    pre_size = parse_resize(resize)
    rule = processor_rule(processor)
    for width, height in _probe_sizes(rule) if rule.mode == "processor" else []:
        expected = rule.target_size(width, height)
        got = fed_size(processor, Image.new("RGB", (width, height)))
        if got != expected:
            raise FrameMismatch(
                f"{type(_image_processor(processor)).__name__} feeds {got[0]}x{got[1]} for a "
                f"{width}x{height} image, but its configuration reads as {rule} "
                f"({expected[0]}x{expected[1]}); gro_fast cannot tell this processor's frame")
    if pre_size is None:
        return rule
    if rule.mode == "none":
        return ResizeConfig.fixed(*pre_size)
    return ResizeConfig.processor(min_pixels=rule.min_pixels, max_pixels=rule.max_pixels,
                                  factor=rule.factor, pre_size=pre_size)


def parse_resize(resize) -> tuple[int, int] | None:
    """The pre-resize (width, height) that ``resize`` asks for, or None (see
    :func:`model_frame`); raises ValueError on anything else."""
    if isinstance(resize, ResizeConfig):
        if resize.mode == "fixed":
            return tuple(resize.size)
        return resize.pre_size
    value = str(resize).strip().lower()
    if value in ("processor", "none", ""):
        return None
    try:
        width, height = (int(v) for v in value.split("x"))
        if width > 0 and height > 0:
            return width, height
    except ValueError:
        pass
    raise ValueError(f"resize: expected {RESIZE_HELP}; got {resize!r}")


def _mismatch(sample, fed, where: str) -> FrameMismatch:
    (iw, ih), (fw, fh) = sample.input_size, fed
    return FrameMismatch(
        f"{where}: sample {sample.id!r} ({sample.source}) has input_size {iw}x{ih}, but the "
        f"processor feeds {fw}x{fh}: its ground truth and rewards would be in another frame "
        "than the model's answers. Build the data with gro_fast.data.model_frame(processor) "
        "(gro-fast train / eval do), or give images the processor keeps as they are "
        "(sides multiples of patch x merge, within its pixel limits)")


def check_frame(sample, processor, *, where: str = "data") -> None:
    """Raise :class:`FrameMismatch` unless ``sample.input_size`` (the frame its ground
    truth is in) is what ``processor`` feeds for ``sample.image``."""
    fed = fed_size(processor, sample.image)
    if tuple(fed) != tuple(sample.input_size):
        raise _mismatch(sample, fed, where)


def check_fed_sizes(samples, fed_sizes, *, where: str = "rollout") -> None:
    """The same check on sizes a rollout engine reports having fed (one list of image
    sizes per sample; an empty list, from an engine that does not report, is skipped)."""
    for sample, sizes in zip(samples, fed_sizes):
        if sizes and tuple(sizes[0]) != tuple(sample.input_size):
            raise _mismatch(sample, sizes[0], where)
