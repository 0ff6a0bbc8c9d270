"""Rollout step: sample responses for a step's prompts and lay them out as training rows.

GRO: per prompt one initial response o1, then G revisions as the assistant turn of
[user: x, q] [assistant: o1] [user: U(q, o1)] (the engine shares the prefix's KV cache);
a prompt whose o1 is not well formed falls back to G plain samples (GRPO). GRPO: G
samples per prompt. Each trained row is (prefix, completion) with the prompt's vision
inputs (``sequences.Sequence``); with ``train_initial`` the initial responses become rows
too. Sampling runs without gradients on gathered parameters (see ``distributed``) under
the trainer's autocast, so the engine samples from weights in the compute dtype: on one GPU
a bf16 copy of the fp32 master weights refreshed after each optimizer step, under FSDP2
the gathered bf16 parameters (``gro_fast.generation.weights``); each
step's seed is derived from the run seed, the step and the rank, so a resumed run samples
exactly what an uninterrupted one would (and, with ``rollout.prompts_per_call: 1``,
what a run on any number of ranks would). Scoring is ``scoring.py``'s job.
"""
from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass

import torch

from .distributed import World, gathered_parameters
from .logprobs import autocast_context
from .sequences import Sequence


@dataclass
class Rollout:
    """One step's samples."""

    prompts: list
    """The GroundingSamples of this rank."""
    groups: list
    """One ``gro_fast.generation.RolloutGroup`` per prompt (plain for GRPO, GRO rounds)."""
    sequences: list[Sequence]
    """Trained rows: G per prompt, then the initial responses when trained."""
    generated_tokens: int
    """Tokens sampled this step (initial responses included)."""


def step_seed(seed: int, step: int, prompt_index: int) -> int:
    """The sampling seed of an engine call: run seed, step and first global prompt index."""
    return (seed * 1_000_003 + step * 7919 + prompt_index * 104_729) % (2**31 - 1)


def _ids(values) -> list[int]:
    return values.tolist() if isinstance(values, torch.Tensor) else [int(v) for v in values]


def _vision(group) -> dict:
    """The group's vision inputs as ordinary CPU tensors (the engine makes inference-mode
    tensors, which autograd refuses to save)."""
    inputs = group.model_inputs
    return {k: inputs[k].detach().cpu().clone() for k in ("pixel_values", "image_grid_thw")
            if k in inputs and inputs[k] is not None}


@contextmanager
def sampling_mode(model, device: torch.device):
    """The policy as the engine samples from it: eval mode, full parameters gathered (FSDP2),
    no gradients, the trainer's autocast; train mode is restored afterwards."""
    was_training = model.training
    model.eval()
    try:
        with gathered_parameters(model), torch.no_grad(), autocast_context(device, True):
            yield
    finally:
        model.train(was_training)


def sample_groups(engine, conversations: list, *, algorithm, rollout, seed: int) -> list:
    """Calls the engine: ``gro_round`` for GRO, ``generate`` for GRPO."""
    common = dict(max_new_tokens=rollout.max_new_tokens, temperature=rollout.temperature,
                  top_p=rollout.top_p, top_k=rollout.top_k, seed=seed)
    if algorithm.name == "grpo":
        return engine.generate(conversations, num_samples=rollout.num_samples, **common)
    from gro_fast.algo import is_well_formed, revision_query
    template = algorithm.revision_template
    return engine.gro_round(conversations, num_revisions=rollout.num_samples,
                            revision_query_fn=lambda query, o1: revision_query(query, o1, template),
                            is_well_formed_fn=is_well_formed, **common)


def engine_calls(n_local: int, per_call: int, world: World) -> list[tuple[list[int], int]]:
    """(local prompt indices, global index of the first) of each engine call. With one
    prompt per call the samples do not depend on how prompts are spread over ranks."""
    size = n_local if per_call <= 0 else per_call
    calls = []
    for start in range(0, n_local, size):
        local = list(range(start, min(start + size, n_local)))
        calls.append((local, world.rank + world.size * start))
    return calls


def collect_rollout(engine, model, processor, prompts: list, *, algorithm, rollout,
                    data_template: str, seed: int, step: int, world: World,
                    device: torch.device) -> Rollout:
    """Samples this rank's prompts (``prompts[j]`` is global prompt rank + size * j) and
    builds the training rows."""
    from gro_fast.data import build_messages
    from gro_fast.data.frame import check_fed_sizes
    conversations = [build_messages(p, template=data_template or None) for p in prompts]
    groups = []
    with sampling_mode(model, device):
        for local, first in engine_calls(len(prompts), rollout.prompts_per_call, world):
            groups += sample_groups(engine, [conversations[j] for j in local],
                                    algorithm=algorithm, rollout=rollout,
                                    seed=step_seed(seed, step, first))
    # The engine reports the size it fed each image: ground truth must be in that frame.
    check_fed_sizes(prompts, [group.image_sizes for group in groups], where="rollout")
    initial_prefixes = None
    if algorithm.name == "gro" and algorithm.train_initial:
        from gro_fast.generation.prompts import encode, prepare_conversation
        initial_prefixes = [encode(processor, prepare_conversation(c, i)[0])["input_ids"][0]
                            .tolist() for i, c in enumerate(conversations)]
    return layout_rows(prompts, groups, algorithm, initial_prefixes)


def layout_rows(prompts: list, groups: list, algorithm, initial_prefixes=None) -> Rollout:
    """The (prefix, completion) rows of every group, in prompt order. ``initial_prefixes``
    (the prompts' own token ids) are needed only to train initial responses."""
    sequences, initial_rows, generated = [], [], 0
    for p, group in enumerate(groups):
        vision = _vision(group)
        role = "sample" if group.fell_back else "revision"
        for sample in group.samples:
            sequences.append(Sequence(prefix_ids=_ids(group.prompt_token_ids),
                                      completion_ids=_ids(sample.token_ids), vision=vision,
                                      group=p, role=role))
            generated += sample.length
        if group.initial is not None:
            generated += group.initial.length
            if algorithm.train_initial and not group.fell_back:
                initial_rows.append(Sequence(prefix_ids=initial_prefixes[p],
                                             completion_ids=_ids(group.initial.token_ids),
                                             vision=vision, group=p, role="initial"))
    return Rollout(prompts=prompts, groups=groups, sequences=sequences + initial_rows,
                   generated_tokens=generated)
