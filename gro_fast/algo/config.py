"""``GROConfig``: every choice of GRO's scoring, with the paper's values or, where the paper
is silent, gro_fast's documented default (marked *ours*). The field docstrings are the
documentation. Nothing here computes anything.
"""
from __future__ import annotations

import typing
from dataclasses import dataclass
from typing import Literal

RewardTerm = Literal["think_format", "object_format", "accuracy", "non_repeat"]
AdvantageScale = Literal["group", "batch", "none"]
REWARD_TERMS: tuple[str, ...] = typing.get_args(RewardTerm)
ADVANTAGE_SCALES: tuple[str, ...] = typing.get_args(AdvantageScale)

DEFAULT_REVISION_TEMPLATE = ("Check your objects {objects} against: {query} Keep those that "
                             "match, drop the others, answer again.")
"""U(q, o1), *ours* (the paper's wording is not public): short, so that the revision
prefix stays short for small models. Placeholders: ``{query}``, ``{think}`` (previous
reasoning), ``{objects}`` (previous objects as JSON), ``{answer}`` (previous answer text),
``{response}`` (the whole previous response); ``{{``/``}}`` are literal braces. No ground
truth goes into it."""

DETAILED_REVISION_TEMPLATE = (
    "Here is your previous answer to the request \"{query}\".\n"
    "Your reasoning: {think}\n"
    "Your objects: {objects}\n"
    "Check each of these objects against the request. Keep the objects that match it, "
    "discard those that do not, and add any object the request asks for that is missing. "
    "Then answer again in the same format: your reasoning in <think></think> tags, then the "
    "objects as a JSON list of {{\"bbox_2d\": [x1, y1, x2, y2], \"point_2d\": [x, y]}} in "
    "<answer></answer> tags."
)
"""A longer U(q, o1) that restates the answer format and asks for missing objects too
(*ours*); set ``revision_template`` to it for larger models."""


@dataclass
class GROConfig:
    """How GRO turns an initial response and its G revisions into rewards and advantages."""

    omega: float = 5.0
    """Weight of the improvement in the revision reward r = R_format + R_acc + omega * dphi
    (paper's best of 3 / 5 / 7)."""

    penalize_extra: bool = True
    """*Ours*: extra predictions (more than ground-truth objects) cost 1 each in the
    alignment cost Phi, so spamming boxes never helps; False leaves them out of Phi."""

    eps: float = 1e-6
    """Added to the reward standard deviation: A = (r - mean) / (std + eps)."""

    advantage_scale: AdvantageScale = "group"
    """Advantage denominator: "group" (std of the G revisions, unbiased, as TRL and veRL),
    "batch" (std of all rewards in the batch) or "none" (no division, Dr. GRPO style)."""

    post_scale: bool = True
    """A_hat = (1 + dphi) * A (GRO's post-scaling). False gives A_hat = A (ablation)."""

    revision_template: str = DEFAULT_REVISION_TEMPLATE
    """The revision query template; see ``DEFAULT_REVISION_TEMPLATE`` for placeholders
    (``DETAILED_REVISION_TEMPLATE`` is a longer wording)."""

    reward_terms: tuple[RewardTerm, ...] = REWARD_TERMS
    """Which VisionReasoner terms make up R_format + R_acc. Default: VisionReasoner's total,
    think format (0/1) + object format (0..2) + accuracy (0..3) + non-repeat (0/1)."""

    iou_threshold: float = 0.5
    """Accuracy reward: a pair's box hit is IoU > this (inclusive-pixel IoU)."""

    l1_threshold: float = 10.0
    """Accuracy reward: a pair's box-L1 hit is mean |coordinate difference| < this (px)."""

    point_threshold: float = 30.0
    """Accuracy reward: a pair's point hit is distance < this (px), point inside its box."""

    success_accuracy: float = 1.0
    """*Ours*, statistics only: a revision fails when its accuracy reward (0..3) is below
    this; a group whose revisions all fail counts as an all-fail group."""

    train_initial: bool = False
    """*Ours*: whether the initial response o1's tokens are also trained (the paper does not
    say). Its advantage is its own R_format + R_acc minus its revisions' mean, over the
    std of o1's and its revisions' rewards (``advantage_scale`` "group"; see
    ``scoring.initial_advantages``); its improvement is 0."""

    def __post_init__(self):
        self.check()

    def check(self, prefix: str = "GROConfig.") -> None:
        """Raises ``ValueError`` (``TypeError`` for a non-string template) naming the field
        as ``prefix + name``; the trainer's recipe checks its algorithm section with it."""
        for name in ("omega", "eps", "l1_threshold", "point_threshold", "success_accuracy"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or \
                    not value >= 0 or value == float("inf"):
                raise ValueError(f"{prefix}{name} must be a finite number >= 0, got {value!r}")
        if not 0.0 <= self.iou_threshold <= 1.0:
            raise ValueError(f"{prefix}iou_threshold must be in [0, 1], got {self.iou_threshold!r}")
        if self.advantage_scale not in ADVANTAGE_SCALES:
            raise ValueError(f"{prefix}advantage_scale must be one of {ADVANTAGE_SCALES}, "
                             f"got {self.advantage_scale!r}")
        if isinstance(self.reward_terms, str):
            raise ValueError(f"{prefix}reward_terms must be a list of names from "
                             f"{REWARD_TERMS}, got the string {self.reward_terms!r}")
        self.reward_terms = tuple(self.reward_terms)
        unknown = [t for t in self.reward_terms if t not in REWARD_TERMS]
        if unknown or len(set(self.reward_terms)) != len(self.reward_terms):
            raise ValueError(f"{prefix}reward_terms must be distinct names from {REWARD_TERMS}, "
                             f"got {self.reward_terms!r}")
        check_revision_template(self.revision_template, f"{prefix}revision_template")


SHOWS_ATTEMPT = ("{think}", "{objects}", "{answer}", "{response}")
"""Placeholders that show the model its initial response; a template needs one of them."""


def check_revision_template(template, name: str = "template") -> None:
    """A revision template must be a string showing the initial response."""
    if not isinstance(template, str):
        raise TypeError(f"{name} must be a string, got {type(template).__name__}")
    if not any(p in template for p in SHOWS_ATTEMPT):
        raise ValueError(f"{name} must show the initial response through at least one of "
                         + ", ".join(SHOWS_ATTEMPT) + f"; got {template!r}")
