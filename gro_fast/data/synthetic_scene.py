"""Layouts and referring expressions of the synthetic grounding task (no pixels here).

A scene is a list of :class:`Shape` (kind, colour, size class, integer centre and radius) in
drawing order, and a :class:`Query`: a description of the target(s) (colour / kind / size,
any of them), optionally a spatial relation to a uniquely described anchor, or "all" to
select every match. :func:`resolve` is the query's meaning: the indices it refers to.

Builders:
* easy: 1-3 shapes of distinct (colour, kind), large; "the red circle";
* single: one large shape, "the red circle": nothing to tell apart, only where it is (the
  first lesson of a model trained from scratch, docs/ablation.md);
* hard, one of four kinds: distractors sharing the target's colour or kind, a small/large
  twin ("the small red square"), a same-looking twin told apart by a relation ("the red
  triangle left of the blue circle"), or several targets ("all blue shapes").

Rendering, masks and the dataset API are in ``synthetic``.
"""
from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

COLOURS = {"red": (220, 40, 40), "green": (30, 160, 60), "blue": (40, 80, 225),
           "yellow": (235, 195, 20)}
KINDS = ("circle", "square", "triangle", "diamond")
RELATIONS = ("left of", "right of", "above", "below")
RADIUS = {"easy": (0.13, 0.20), "large": (0.14, 0.19), "small": (0.05, 0.08)}
HARD_KINDS = ("distractor", "size", "relation", "multi")
RELATION_MARGIN = 0.08
"""A relation holds when centres differ by more than this fraction of the image side."""


@dataclass(frozen=True)
class Shape:
    kind: str
    colour: str
    size: str
    """"small" or "large" (the word a query may use)."""
    cx: int
    cy: int
    r: int


@dataclass(frozen=True)
class Description:
    colour: str | None = None
    kind: str | None = None
    size: str | None = None

    def matches(self, s: Shape) -> bool:
        return ((self.colour is None or s.colour == self.colour)
                and (self.kind is None or s.kind == self.kind)
                and (self.size is None or s.size == self.size))

    def words(self, plural: bool = False) -> str:
        noun = self.kind or "shape"
        parts = [w for w in (self.size, self.colour) if w] + [noun + ("s" if plural else "")]
        return " ".join(parts)


@dataclass(frozen=True)
class Query:
    target: Description
    relation: str | None = None
    anchor: Description | None = None
    select_all: bool = False

    @property
    def text(self) -> str:
        if self.select_all:
            return f"all {self.target.words(plural=True)}"
        text = f"the {self.target.words()}"
        if self.relation is not None:
            text += f" {self.relation} the {self.anchor.words()}"
        return text


def _relation_holds(relation: str, t: Shape, a: Shape, margin: float) -> bool:
    dx, dy = t.cx - a.cx, t.cy - a.cy
    return {"left of": dx < -margin, "right of": dx > margin,
            "above": dy < -margin, "below": dy > margin}[relation]


def resolve(query: Query, shapes: list[Shape], image_size: int) -> list[int]:
    """Indices of the shapes the query refers to ([] when it refers to none or is
    ambiguous: a relational query needs exactly one anchor)."""
    matches = [i for i, s in enumerate(shapes) if query.target.matches(s)]
    if query.relation is None:
        return matches
    anchors = [i for i, s in enumerate(shapes) if query.anchor.matches(s)]
    if len(anchors) != 1:
        return []
    anchor = shapes[anchors[0]]
    margin = RELATION_MARGIN * image_size
    return [i for i in matches if i != anchors[0]
            and _relation_holds(query.relation, shapes[i], anchor, margin)]


def is_clear(query: Query, shapes: list[Shape], image_size: int) -> bool:
    """A single-target query refers to exactly one shape and, if relational, every other
    match fails the relation even without the margin; "all" refers to two or more."""
    targets = resolve(query, shapes, image_size)
    if query.select_all:
        return len(targets) >= 2
    if len(targets) != 1:
        return False
    if query.relation is None:
        return True
    anchor = next(s for s in shapes if query.anchor.matches(s))
    others = [s for i, s in enumerate(shapes) if query.target.matches(s)
              and i != targets[0] and s is not anchor]
    return not any(_relation_holds(query.relation, s, anchor, 0.0) for s in others)


def _other(rng, options, exclude):
    return str(rng.choice([o for o in options if o != exclude]))


def _random_look(rng, avoid) -> tuple[str, str]:
    """A random (colour, kind) pair not in ``avoid``."""
    pairs = [(c, k) for c in COLOURS for k in KINDS if (c, k) not in avoid]
    return pairs[rng.integers(len(pairs))]


def _gap(spacing: float, same_colour: bool, radii: int) -> float:
    # Shapes of one colour never touch (they would merge into one blob); a square's
    # corners reach 1.2 r from its centre, hence the 1.25.
    return 1.25 * radii + 2 if same_colour else spacing * radii


def _place(rng, looks, image_size: int, spacing: float) -> list[Shape] | None:
    """Give each (colour, kind, size) a centre and radius; centres at least
    ``spacing * (r_i + r_j)`` apart so overlaps stay partial (shapes of one colour do not
    touch at all). None if it does not fit."""
    shapes: list[Shape] = []
    for colour, kind, size in looks:
        lo, hi = RADIUS[size]
        r = max(3, int(round(rng.uniform(lo, hi) * image_size)))
        for _ in range(60):
            cx, cy = (int(v) for v in rng.integers(r, image_size - r, size=2))
            if all(np.hypot(cx - s.cx, cy - s.cy) >= _gap(spacing, colour == s.colour, r + s.r)
                   for s in shapes):
                break
        else:
            return None
        shapes.append(Shape(kind, colour, "small" if size == "small" else "large", cx, cy, r))
    return shapes


def easy_scene(rng, image_size: int, n: int | None = None):
    n = int(rng.integers(1, 4)) if n is None else n
    looks = []
    while len(looks) < n:
        colour, kind = _random_look(rng, {(c, k) for c, k, _ in looks})
        looks.append((colour, kind, "easy"))
    shapes = _place(rng, looks, image_size, spacing=1.0)
    if shapes is None:
        return None
    t = shapes[int(rng.integers(n))]
    return shapes, Query(Description(colour=t.colour, kind=t.kind))


def single_scene(rng, image_size: int):
    return easy_scene(rng, image_size, n=1)


def _fill(rng, looks, avoid, n_extra):
    for _ in range(n_extra):
        colour, kind = _random_look(rng, avoid)
        looks.append((colour, kind, str(rng.choice(["small", "large"]))))


def _hard_looks(rng, kind: str):
    """Looks (colour, kind, size) for one hard scene, target first, and its query."""
    colour, shape = str(rng.choice(list(COLOURS))), str(rng.choice(KINDS))
    target_size = str(rng.choice(["small", "large"]))
    looks = [(colour, shape, target_size)]
    if kind == "distractor":
        same_colour, same_kind = rng.random() < 0.7, rng.random() < 0.7
        if same_colour or not same_kind:
            looks.append((colour, _other(rng, KINDS, shape), "large"))
        if same_kind:
            looks.append((_other(rng, list(COLOURS), colour), shape, "large"))
        _fill(rng, looks, {(colour, shape)}, int(rng.integers(0, 3)))
        return looks, Query(Description(colour=colour, kind=shape))
    if kind == "size":
        looks.append((colour, shape, "large" if target_size == "small" else "small"))
        _fill(rng, looks, {(colour, shape)}, int(rng.integers(1, 4)))
        return looks, Query(Description(colour=colour, kind=shape, size=target_size))
    if kind == "relation":
        anchor = _random_look(rng, {(colour, shape)})
        looks += [(colour, shape, str(rng.choice(["small", "large"]))), (*anchor, "large")]
        _fill(rng, looks, {(colour, shape), anchor}, int(rng.integers(0, 3)))
        return looks, Query(Description(colour=colour, kind=shape),
                            relation=str(rng.choice(RELATIONS)),
                            anchor=Description(colour=anchor[0], kind=anchor[1]))
    by = str(rng.choice(["colour", "kind", "both"]))
    target = Description(colour=colour if by != "kind" else None,
                         kind=shape if by != "colour" else None)
    for _ in range(int(rng.integers(1, 3))):
        looks.append((colour if by != "kind" else _other(rng, list(COLOURS), colour),
                      shape if by != "colour" else _other(rng, KINDS, shape),
                      str(rng.choice(["small", "large"]))))
    # a near miss: shares the target's kind (or colour) but not what the query selects on
    if by == "kind" or (by == "both" and rng.random() < 0.5):
        looks.append((colour, _other(rng, KINDS, shape), "large"))
    else:
        looks.append((_other(rng, list(COLOURS), colour), shape, "large"))
    avoid = {(c, k) for c in COLOURS for k in KINDS
             if target.matches(Shape(k, c, "large", 0, 0, 1))}
    _fill(rng, looks, avoid, int(rng.integers(0, 2)))
    return looks, Query(target, select_all=True)


def hard_scene(rng, image_size: int):
    kind = str(rng.choice(HARD_KINDS))
    looks, query = _hard_looks(rng, kind)
    order = rng.permutation(len(looks))
    shapes = _place(rng, [looks[k] for k in order], image_size, spacing=0.75)
    if shapes is None:
        return None
    candidates = [query]
    if query.relation is not None:
        # whichever relation tells the target from its twin in this layout
        candidates = [replace(query, relation=str(rel)) for rel in rng.permutation(RELATIONS)]
    for candidate in candidates:
        if is_clear(candidate, shapes, image_size):
            return shapes, candidate
    return None
