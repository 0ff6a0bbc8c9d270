"""Small pieces the trainer tests share: a fast tiny config and a scripted rollout engine.

``ScriptedEngine`` stands in for the sampler so tests get groups whose rewards differ
(a random tiny model writes nothing a grounding reward can tell apart): it encodes the
prompts like the real engine, and answers with ground-truth-based texts, some exact, some
shifted, some malformed, chosen by the seed. Everything downstream (scoring, log-probs,
the update) is the product code.
"""
from __future__ import annotations

import json
import random

import torch

from gro_fast.generation.prompts import encode, group_inputs, prepare_conversation
from gro_fast.generation.types import RolloutGroup, Sample
from gro_fast.train.config import load_config

FAST = [
    "model.path=tiny", "data.image_size=56", "data.prompts_per_step=2", "evaluation.size=0",
    "data.template=Find {query}.", "rollout.num_samples=4", "rollout.max_new_tokens=12",
    "warm_start.steps=0", "trainer.steps=2", "trainer.micro_batch_size=4",
    "optimizer.lr=1e-3", "schedule.warmup_steps=0", "logging.progress=false",
    "logging.tensorboard=false", "logging.plots=false",
]


def fast_config(tmp_path, *overrides):
    return load_config(None, FAST + [f"trainer.output_dir={tmp_path}"] + list(overrides))


def _answer(objects, shift: int) -> str:
    out = [{"bbox_2d": [round(v) + shift for v in o["bbox_2d"]],
            "point_2d": [round(v) + shift for v in o["point_2d"]]} for o in objects]
    return f"<think>ok.</think><answer>{json.dumps(out)}</answer>"


class ScriptedEngine:
    """Same interface as ``RolloutEngine.generate`` / ``gro_round`` (see module docstring)."""

    def __init__(self, model, processor):
        self.model, self.processor = model, processor
        self.tokenizer = processor.tokenizer
        self.objects = {}
        self.calls = 0

    def _sample(self, text: str) -> Sample:
        ids = torch.tensor(self.tokenizer(text, add_special_tokens=False)["input_ids"][:40]
                           + [self.tokenizer.convert_tokens_to_ids("<|im_end|>")])
        return Sample(ids, text, torch.full((len(ids),), -1.0), "stop")

    def _texts(self, conversation, n: int, rng: random.Random) -> list[str]:
        query = prepare_conversation(conversation, 0)[1]
        objects = self.objects.get(query, [{"bbox_2d": [5, 5, 30, 30], "point_2d": [17, 17]}])
        choices = [_answer(objects, 0), _answer(objects, 9), _answer(objects, 25), "no answer"]
        return [choices[rng.randrange(len(choices))] for _ in range(n)]

    def generate(self, conversations, num_samples, max_new_tokens, temperature=1.0, top_p=1.0,
                 top_k=0, seed=None):
        self.calls += 1
        rng = random.Random(seed)
        groups = []
        for c in conversations:
            enc = encode(self.processor, prepare_conversation(c, 0)[0])
            groups.append(RolloutGroup(enc["input_ids"][0], group_inputs(enc),
                                       [self._sample(t) for t in self._texts(c, num_samples, rng)]))
        return groups

    def gro_round(self, conversations, num_revisions, max_new_tokens, *, revision_query_fn=None,
                  is_well_formed_fn=None, temperature=1.0, top_p=1.0, top_k=0, seed=None):
        rng = random.Random(seed)
        rounds = []
        for c in conversations:
            enc = encode(self.processor, prepare_conversation(c, 0)[0])
            query = prepare_conversation(c, 0)[1]
            objects = self.objects.get(query, [{"bbox_2d": [5, 5, 30, 30], "point_2d": [17, 17]}])
            initial = self._sample(_answer(objects, 12))
            samples = [self._sample(t) for t in self._texts(c, num_revisions, rng)]
            prefix = torch.cat([enc["input_ids"][0], initial.token_ids])
            rounds.append(RolloutGroup(prefix, group_inputs(enc), samples, initial=initial,
                                       revision_query="check your answer", fell_back=False,
                                       prompt_length=int(enc["input_ids"][0].numel())))
        return rounds


def scripted_factory(registry: dict):
    """An engine factory whose engines know each prompt's ground truth (by query text)."""
    def make(model, processor):
        engine = ScriptedEngine(model, processor)
        engine.objects = registry
        return engine
    return make
