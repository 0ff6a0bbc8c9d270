"""The built-in synthetic grounding task: coloured shapes drawn on the fly, deterministic.

``SyntheticGroundingTask(seed, image_size, split, difficulty)`` is a sequence of
:class:`GroundingSample`: item ``i`` is drawn from its own random stream
``(seed, split, i, attempt)``, so any item can be built alone and always comes out the same.
Shapes are painted in order onto a light background; each shape's VISIBLE mask is its own
pixels minus those of shapes painted later, every shape keeps at least 60 % of itself
visible, and each target's box is the tight inclusive box ``[x_min, y_min, x_max, y_max]``
of its visible mask while its point is the visible pixel farthest from the mask's edge.
``sample.mask`` is the union of the targets' visible masks; ``count`` the number of targets.

Held-out split: every scene has a signature (a hash of its background, shapes and query);
scenes whose signature falls in one bucket in ``HELDOUT_BUCKETS`` belong to "heldout",
all others to "train", and each split rejects the other's scenes. So no (image, query) pair
appears in both splits, by construction and not just by chance.

:func:`synthetic_answer` writes the ideal response for the supervised warm start. Layouts
and query meaning are in ``synthetic_scene``.
"""
from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass
from numbers import Integral

import numpy as np
from PIL import Image, ImageDraw
from scipy import ndimage

from .sample import GroundingSample
from .synthetic_scene import (COLOURS, Query, Shape, easy_scene, hard_scene, resolve,
                              single_scene)

SPLITS = ("train", "heldout")
DIFFICULTIES = ("easy", "hard", "mixed", "single")
HELDOUT_BUCKETS = 8
MIN_VISIBLE = 0.6
_SPLIT_STREAM = {"train": 0, "heldout": 1}
_MAX_ATTEMPTS = 500


@dataclass
class SyntheticScene:
    """Everything behind one synthetic sample (for tests and visual checks)."""

    shapes: list
    query: Query
    targets: list
    visible_masks: np.ndarray
    """bool [n_shapes, H, W]: what is visible of each shape."""
    background: tuple
    signature: str
    difficulty: str = ""
    """The kind of scene drawn: "easy", "hard" or "single" (a "mixed" task draws either of
    the first two)."""


def shape_mask(shape: Shape, image_size: int) -> np.ndarray:
    """bool [H, W]: the pixels PIL paints for ``shape`` (before occlusion)."""
    canvas = Image.new("L", (image_size, image_size), 0)
    draw, (cx, cy, r) = ImageDraw.Draw(canvas), (shape.cx, shape.cy, shape.r)
    if shape.kind == "circle":
        draw.ellipse([cx - r, cy - r, cx + r, cy + r], fill=1)
    elif shape.kind == "square":
        h = int(round(0.85 * r))
        draw.rectangle([cx - h, cy - h, cx + h, cy + h], fill=1)
    elif shape.kind == "triangle":
        dx = 0.87 * r
        draw.polygon([(cx, cy - r), (cx - dx, cy + 0.5 * r), (cx + dx, cy + 0.5 * r)], fill=1)
    elif shape.kind == "diamond":
        draw.polygon([(cx, cy - r), (cx + r, cy), (cx, cy + r), (cx - r, cy)], fill=1)
    else:
        raise ValueError(f"unknown shape kind {shape.kind!r}")
    return np.asarray(canvas, dtype=bool)


def visible_masks(shapes: list[Shape], image_size: int) -> np.ndarray:
    """bool [n, H, W]: each shape's pixels not covered by a shape painted after it."""
    own = np.stack([shape_mask(s, image_size) for s in shapes])
    covered = np.zeros((image_size, image_size), dtype=bool)
    visible = np.empty_like(own)
    for i in range(len(shapes) - 1, -1, -1):
        visible[i] = own[i] & ~covered
        covered |= own[i]
    return visible


def render(shapes: list[Shape], masks: np.ndarray, background) -> Image.Image:
    """Paint each shape's visible pixels in its colour over a flat background."""
    size = masks.shape[-1]
    pixels = np.empty((size, size, 3), dtype=np.uint8)
    pixels[:] = background
    for shape, mask in zip(shapes, masks):
        pixels[mask] = COLOURS[shape.colour]
    return Image.fromarray(pixels, "RGB")


def object_from_mask(mask: np.ndarray) -> dict:
    """Inclusive tight box and most interior point of a non-empty mask."""
    ys, xs = np.nonzero(mask)
    depth = ndimage.distance_transform_edt(np.pad(mask, 1))[1:-1, 1:-1]
    py, px = np.unravel_index(int(np.argmax(depth)), mask.shape)
    return {"bbox_2d": [int(xs.min()), int(ys.min()), int(xs.max()), int(ys.max())],
            "point_2d": [int(px), int(py)]}


def scene_signature(shapes, query: Query, background) -> str:
    text = json.dumps([list(background), [[s.kind, s.colour, s.size, s.cx, s.cy, s.r]
                                          for s in shapes], query.text])
    return hashlib.sha1(text.encode()).hexdigest()


def split_of(signature: str) -> str:
    return "heldout" if int(signature[:8], 16) % HELDOUT_BUCKETS == 0 else "train"


class SyntheticGroundingTask(Sequence):
    """Deterministic synthetic REC samples of coloured shapes (see module docstring).

    ``seed``: base of every item's random stream. ``image_size``: side of the square
    images (112 = 4 x 28 keeps the tiny model fast on CPU). ``split``: "train" or
    "heldout" (disjoint). ``difficulty``: "easy", "hard", "mixed" (each item easy or hard
    with probability 1/2) or "single" (one large shape per image). ``length``: the number
    of items.
    """

    def __init__(self, seed: int = 0, image_size: int = 112, split: str = "train",
                 difficulty: str = "mixed", length: int = 1000):
        if split not in SPLITS:
            raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
        if difficulty not in DIFFICULTIES:
            raise ValueError(f"difficulty must be one of {DIFFICULTIES}, got {difficulty!r}")
        for name, value, low in (("image_size", image_size, 32), ("length", length, 0),
                                 ("seed", seed, 0)):
            if not isinstance(value, Integral) or isinstance(value, bool) or value < low:
                raise ValueError(f"{name} must be an int >= {low}, got {value!r}")
        self.seed, self.image_size, self.split = int(seed), int(image_size), split
        self.difficulty, self.length = difficulty, int(length)

    def __len__(self) -> int:
        return self.length

    def __repr__(self) -> str:
        return (f"SyntheticGroundingTask(seed={self.seed}, image_size={self.image_size}, "
                f"split={self.split!r}, difficulty={self.difficulty!r}, length={self.length})")

    def _index(self, i) -> int:
        if not isinstance(i, (int, np.integer)):
            raise TypeError(f"index must be an int, got {type(i).__name__}")
        i = int(i) + (self.length if i < 0 else 0)
        if not 0 <= i < self.length:
            raise IndexError(f"index {i} out of range for {self.length} items")
        return i

    def scene(self, i: int) -> SyntheticScene:
        """The layout, query and visible masks behind item ``i``."""
        i = self._index(i)
        for attempt in range(_MAX_ATTEMPTS):
            rng = np.random.default_rng([self.seed, _SPLIT_STREAM[self.split], i, attempt])
            hard = self.difficulty == "hard" or (self.difficulty == "mixed"
                                                 and rng.random() < 0.5)
            kind = "single" if self.difficulty == "single" else "hard" if hard else "easy"
            build = {"single": single_scene, "hard": hard_scene, "easy": easy_scene}[kind]
            built = build(rng, self.image_size)
            if built is None:
                continue
            shapes, query = built
            background = tuple(int(v) for v in rng.integers(225, 250, size=3))
            signature = scene_signature(shapes, query, background)
            if split_of(signature) != self.split:
                continue
            masks = visible_masks(shapes, self.image_size)
            own = np.stack([shape_mask(s, self.image_size) for s in shapes]).sum(axis=(1, 2))
            if np.any(masks.sum(axis=(1, 2)) < MIN_VISIBLE * own):
                continue
            targets = resolve(query, shapes, self.image_size)
            return SyntheticScene(shapes, query, targets, masks, background, signature, kind)
        raise RuntimeError(f"no synthetic scene for item {i} after {_MAX_ATTEMPTS} attempts "
                           f"(image_size={self.image_size} too small?)")

    def __getitem__(self, i):
        if isinstance(i, slice):
            return [self[k] for k in range(*i.indices(self.length))]
        i = self._index(i)
        scene = self.scene(i)
        image = render(scene.shapes, scene.visible_masks, scene.background)
        objects = [object_from_mask(scene.visible_masks[t]) for t in scene.targets]
        mask = np.logical_or.reduce(scene.visible_masks[scene.targets], axis=0)
        size = (self.image_size, self.image_size)
        return GroundingSample(
            id=f"synthetic-{self.split}-{self.seed}-{i}", image=image, query=scene.query.text,
            objects=objects, count=len(objects), mask=mask, original_size=size,
            input_size=size, task="rec", source=f"synthetic:{self.split}:{i}",
            difficulty=scene.difficulty)


def _rounded(obj: dict) -> dict:
    return {key: [int(round(v)) for v in obj[key]] for key in ("bbox_2d", "point_2d")
            if key in obj}


def synthetic_answer(sample: GroundingSample) -> str:
    """The ideal response to ``sample``: a one-sentence think and the ground-truth objects
    (rounded to whole pixels of the input image) as the answer, e.g.
    ``<think>Looking for the red circle: 1 match.</think><answer>[{"bbox_2d": [..],
    "point_2d": [..]}]</answer>``."""
    objects = [_rounded(o) for o in sample.objects]
    n = len(objects)
    think = f"Looking for {sample.query}: {n} match{'es' if n != 1 else ''}."
    return f"<think>{think}</think><answer>{json.dumps(objects)}</answer>"
