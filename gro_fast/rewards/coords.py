"""Coordinate conventions of grounding answers and conversions between them.

gro_fast's convention: answer coordinates are pixels of the image *as the model saw it*
(after the processor resized it), the convention of Qwen2.5-VL and VisionReasoner. Two
other conventions meet it: original-image pixels (datasets, evaluation) and the 0-1000
normalised grid some models use (Qwen2-VL, several REC models).

Coordinates are boxes ``[..., 4]`` (x1, y1, x2, y2) or points ``[..., 2]`` (x, y): even
positions are x (scaled by widths), odd positions y (scaled by heights). Sizes are
``(width, height)``. Lists and tuples come back as lists of floats; numpy arrays and torch
tensors come back as the same type (float). Nothing here rounds or clips: do that where
the convention demands it.
"""
from __future__ import annotations

import numpy as np
import torch

NORMALIZED_RANGE = 1000.0
"""The 0-1000 grid: x_norm = x / width * 1000."""


def _check_size(size, name: str) -> tuple[float, float]:
    try:
        width, height = (float(v) for v in size)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be (width, height), got {size!r}") from None
    if not (width > 0 and height > 0 and np.isfinite(width) and np.isfinite(height)):
        raise ValueError(f"{name} must be positive and finite, got {size!r}")
    return width, height


def _scale(coords, sx: float, sy: float):
    """Multiply x entries by sx and y entries by sy, keeping the container type."""
    if isinstance(coords, torch.Tensor):
        c = coords.float() if not coords.is_floating_point() else coords
        _check_last_dim(c.shape)
        factors = torch.tensor([sx, sy], dtype=c.dtype, device=c.device).repeat(c.shape[-1] // 2)
        return c * factors
    array = np.asarray(coords, dtype=np.float64)
    _check_last_dim(array.shape)
    out = array * np.tile([sx, sy], array.shape[-1] // 2)
    return out if isinstance(coords, np.ndarray) else out.tolist()


def _check_last_dim(shape) -> None:
    if len(shape) == 0 or shape[-1] not in (2, 4):
        raise ValueError(f"coords must have a last dimension of 2 (point) or 4 (box), "
                         f"got shape {tuple(shape)}")


def to_original_pixels(coords, model_size, original_size):
    """Model-input pixels -> original-image pixels (sizes are (width, height))."""
    mw, mh = _check_size(model_size, "model_size")
    ow, oh = _check_size(original_size, "original_size")
    return _scale(coords, ow / mw, oh / mh)


def to_model_pixels(coords, original_size, model_size):
    """Original-image pixels -> model-input pixels (sizes are (width, height))."""
    ow, oh = _check_size(original_size, "original_size")
    mw, mh = _check_size(model_size, "model_size")
    return _scale(coords, mw / ow, mh / oh)


def to_normalized(coords, size):
    """Pixels of an image of ``size`` (width, height) -> the 0-1000 grid."""
    w, h = _check_size(size, "size")
    return _scale(coords, NORMALIZED_RANGE / w, NORMALIZED_RANGE / h)


def from_normalized(coords, size):
    """The 0-1000 grid -> pixels of an image of ``size`` (width, height)."""
    w, h = _check_size(size, "size")
    return _scale(coords, w / NORMALIZED_RANGE, h / NORMALIZED_RANGE)
