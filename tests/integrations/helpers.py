"""A rollout engine that writes scripted answers, for trainer tests that need rewards to differ.

``ScriptedSampler`` is the real ``RolloutEngine`` (prompt encoding, revision turn, shared
prefix) with only the sampling replaced: a random tiny model writes nothing a grounding
reward can tell apart. Each prompt's answers are built from its ground truth, looked up
by (prompt text, image bytes): initial responses are well formed except for every third
prompt (GRO's fallback), and samples are exact, shifted or malformed, chosen by the seed.
"""
from __future__ import annotations

import hashlib
import json
import random

import torch

from gro_fast.generation import RolloutEngine
from gro_fast.generation.prompts import prepare_conversation
from gro_fast.generation.types import Sample


def image_key(image) -> str:
    return hashlib.md5(image.convert("RGB").tobytes()).hexdigest()


def conversation_key(conversation) -> tuple:
    messages, query = prepare_conversation(conversation, 0)
    images = [b["image"] for m in messages for b in m["content"]
              if isinstance(b, dict) and b.get("type") == "image"]
    return query, image_key(images[0])


GT = [{"bbox_2d": [10, 12, 50, 60], "point_2d": [30, 36]},
      {"bbox_2d": [70, 20, 100, 52], "point_2d": [85, 36]}]
"""A two-object ground truth in a 112 x 112 image."""


def answer(objects, shift: int) -> str:
    out = [{"bbox_2d": [round(v) + shift for v in o["bbox_2d"]],
            "point_2d": [round(v) + shift for v in o["point_2d"]]} for o in objects]
    return f"<think>ok.</think><answer>{json.dumps(out)}</answer>"


class ScriptedSampler(RolloutEngine):
    """See the module docstring; ``registry`` maps conversation keys to ground truth."""

    registry: dict = {}

    def gro_round(self, conversations, *args, **kwargs):
        self._keys = [conversation_key(c) for c in conversations]
        self._rng = random.Random(kwargs.get("seed"))
        self._initial_done = False
        return super().gro_round(conversations, *args, **kwargs)

    def _sample(self, text: str) -> Sample:
        end = self.tokenizer.convert_tokens_to_ids("<|im_end|>")
        ids = self.tokenizer(text, add_special_tokens=False)["input_ids"] + [end]
        return Sample(torch.tensor(ids), text, torch.full((len(ids),), -1.5), "stop")

    def _decode(self, prefix, num_samples, max_new_tokens, params, generator):
        groups = []
        for p, key in enumerate(self._keys):
            objects = self.registry[key]
            if not self._initial_done:
                texts = ["no answer" if p % 3 == 0 else answer(objects, 6)]
            else:
                choices = [answer(objects, 0), answer(objects, 3), answer(objects, 9), "bad"]
                texts = [choices[self._rng.randrange(4)] for _ in range(num_samples)]
            groups.append([self._sample(t) for t in texts])
        self._initial_done = True
        return groups
