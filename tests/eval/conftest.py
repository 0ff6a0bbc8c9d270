"""Shared pieces of the evaluation tests: small samples and a scripted engine."""
from __future__ import annotations

import numpy as np
import pytest
from PIL import Image


@pytest.fixture(autouse=True)
def _one_thread(one_cpu_thread):
    """Every test here runs torch on one thread (see tests/conftest.py)."""
    yield


def make_sample(sid, *, objects=(), mask=None, count=None, original=(20, 10), input_size=(40, 20),
                task="seg"):
    """A GroundingSample whose input frame is twice the original (so mapping matters)."""
    from gro_fast.data.sample import GroundingSample
    image = Image.fromarray(np.full((input_size[1], input_size[0], 3), 128, np.uint8))
    return GroundingSample(id=sid, image=image, query=f"find {sid}", objects=list(objects),
                           count=count, mask=mask, original_size=original, input_size=input_size,
                           task=task, source=f"test:{sid}")


def answer(*boxes, points=True) -> str:
    """A well-formed response with the given boxes (model-input pixels)."""
    import json
    objs = []
    for b in boxes:
        obj = {"bbox_2d": list(b)}
        if points:
            obj["point_2d"] = [(b[0] + b[2]) / 2, (b[1] + b[3]) / 2]
        objs.append(obj)
    return f"<think>look</think><answer>{json.dumps(objs)}</answer>"


class _Sample:
    def __init__(self, text):
        self.text = text


class _Group:
    def __init__(self, text):
        self.samples = [_Sample(text)]
        self.image_sizes = []  # a RolloutGroup's fed sizes; none reported here


class ScriptedEngine:
    """Answers each conversation with the text scripted for its query; records calls."""

    def __init__(self, script: dict):
        self.script, self.calls = script, []

    def generate(self, conversations, num_samples=1, max_new_tokens=16, temperature=0.0, **kw):
        assert num_samples == 1 and temperature == 0.0
        self.calls.append(len(conversations))
        out = []
        for conv in conversations:
            text = _conversation_text(conv)
            key = next(k for k in self.script if f"find {k}" in text)
            out.append(_Group(self.script[key]))
        return out


def _conversation_text(conv) -> str:
    """All text parts of a chat-format conversation, joined."""
    parts = []
    for message in conv:
        content = message["content"] if isinstance(message, dict) else message
        if isinstance(content, str):
            parts.append(content)
            continue
        for item in content:
            if isinstance(item, dict) and item.get("type") == "text":
                parts.append(item["text"])
    return " ".join(parts)
