"""GRO's rollout as TRL's custom rollout hook (``GRPOTrainer(rollout_func=...)``).

TRL hands ``rollout_func(prompts, trainer)`` the process's prompts, each repeated G times
in a row (its ``RepeatSampler``), and expects one completion per entry. ``gro_rollout``
takes each run of G as one prompt and calls ``gro_fast.generation.RolloutEngine.gro_round``
on the policy: one initial response o1, the revision turn q2 = U(q, o1), and G revisions
sampled after the shared prefix [user: x, q] [assistant: o1] [user: q2] (or, when o1 is
not well formed, G plain samples of q: GRPO's fallback). Each revision comes back as one
row: ``prompt_ids`` is the original prompt (the tokens TRL's processor call describes, so
the image token types and M-RoPE positions line up), ``completion_ids`` is the initial
turn (o1 and q2) followed by the revision, and ``env_mask`` (TRL's mask of tokens the
model did not write in this turn) is 0 over the initial turn: it is run through the model
as context and never enters the loss.

Extra fields ride along to the reward functions and to ``GROTrainer``'s scoring:
``gro_initial_response`` (o1's text), ``gro_fell_back``, ``gro_completion`` (the revision's
text) and ``gro_image_size`` (the model-input size the processor produced, from
``image_grid_thw``). Scoring and advantages are ``GROTrainer``'s job.
"""
from __future__ import annotations

import torch

ROLLOUT_FIELDS = ("gro_initial_response", "gro_fell_back", "gro_completion", "gro_image_size")


def _prompt_key(messages) -> tuple:
    """What identifies a prompt within its run of G: the message texts and image sizes."""
    if isinstance(messages, str):
        raise ValueError("GROTrainer needs conversational prompts ([{'role': 'user', "
                         "'content': ...}]); got a plain string prompt")
    key = []
    for message in messages:
        content = message.get("content")
        if isinstance(content, str):
            key.append((message.get("role"), content))
            continue
        for block in content or []:
            image = block.get("image")
            key.append((message.get("role"), block.get("type"), block.get("text"),
                        getattr(image, "size", None)))
    return tuple(key)


def prompt_groups(prompts: list, group_size: int) -> list:
    """The distinct prompts of a TRL batch whose entries come in runs of ``group_size``."""
    if group_size < 1 or len(prompts) % group_size:
        raise ValueError(f"GROTrainer: {len(prompts)} prompts on this process is not a multiple "
                         f"of num_generations={group_size}; a GRO group (one initial response, "
                         "G revisions) cannot span processes or micro-batches: make "
                         "per_device_train_batch_size * steps_per_generation a multiple of "
                         "num_generations")
    firsts = prompts[::group_size]
    for g, first in enumerate(firsts):
        key = _prompt_key(first)
        run = prompts[g * group_size:(g + 1) * group_size]
        if any(_prompt_key(p) != key for p in run):
            raise ValueError(f"GROTrainer: prompts {g * group_size}..{(g + 1) * group_size - 1} "
                             "are not one prompt repeated num_generations times (TRL's "
                             "RepeatSampler layout this rollout relies on)")
    return firsts


def input_size(model_inputs: dict, processor) -> tuple[int, int] | None:
    """(width, height) of the image the processor fed the model, from ``image_grid_thw``."""
    grid = model_inputs.get("image_grid_thw")
    if grid is None or len(grid) == 0:
        return None
    if len(grid) != 1:
        raise ValueError("GROTrainer scores one image per prompt; got "
                         f"{len(grid)} images in a prompt")
    patch = int(processor.image_processor.patch_size)
    _, h, w = (int(v) for v in grid[0])
    return w * patch, h * patch


def gro_rollout(prompts: list, trainer) -> dict:
    """TRL ``rollout_func``: GRO rounds for ``trainer`` (a ``GROTrainer``)."""
    from gro_fast.algo import is_well_formed, revision_query
    template = trainer.gro.revision_template
    training = trainer.model.training
    group = trainer.num_generations if training else trainer.num_generations_eval
    conversations = prompt_groups(prompts, group)
    rounds = trainer.gro_engine().gro_round(
        conversations, num_revisions=group, max_new_tokens=trainer.max_completion_length,
        revision_query_fn=lambda query, initial: revision_query(query, initial, template),
        is_well_formed_fn=is_well_formed, temperature=trainer.temperature,
        top_p=trainer.top_p, top_k=trainer.top_k or 0, seed=trainer.gro_seed())
    out = {"prompt_ids": [], "completion_ids": [], "logprobs": [], "env_mask": []}
    out.update({name: [] for name in ROLLOUT_FIELDS})
    for round_ in rounds:
        prompt, turn = _split_prefix(round_)
        size = input_size(round_.model_inputs, trainer.processing_class)
        for sample in round_.samples:
            out["prompt_ids"].append(prompt)
            out["completion_ids"].append(turn + sample.token_ids.tolist())
            out["logprobs"].append([0.0] * len(turn) + sample.logprobs.float().tolist())
            out["env_mask"].append([0] * len(turn) + [1] * sample.length)
            out["gro_initial_response"].append(round_.initial.text)
            out["gro_fell_back"].append(bool(round_.fell_back))
            out["gro_completion"].append(sample.text)
            out["gro_image_size"].append(size)
    trainer.gro_record_rounds(rounds)
    return out


def _split_prefix(round_) -> tuple[list[int], list[int]]:
    """(original prompt ids, initial-turn ids) of a round's prefix; the turn is empty when
    the round fell back."""
    prefix = round_.prompt_token_ids.tolist()
    length = len(prefix) if round_.fell_back else round_.prompt_length
    if length is None or not 0 < length <= len(prefix):
        raise ValueError("GROTrainer: the rollout engine's RolloutGroup must give prompt_length, "
                         "where the original prompt ends in prompt_token_ids")
    return prefix[:length], prefix[length:]


def engine_model(trainer) -> torch.nn.Module:
    """The Hugging Face model the engine samples from (unwrapped; PEFT's base model, whose
    layers carry the adapters)."""
    model = trainer.accelerator.unwrap_model(trainer.model)
    return model.get_base_model() if hasattr(model, "get_base_model") else model
