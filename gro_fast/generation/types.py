"""What the rollout engine returns: samples, groups of samples, GRO rounds.

Plain dataclasses; the engine fills them, the trainer reads them. A group's
``prompt_token_ids`` followed by a sample's ``token_ids`` is the exact token sequence the
behaviour policy saw, and ``model_inputs`` holds the image tensors needed to run that
sequence through the model again (``pixel_values``, ``image_grid_thw``, ...). Token-aligned
entries of ``model_inputs`` (``mm_token_type_ids``) cover the prompt only; extend them with
zeros (text) over the response.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import torch


@dataclass
class Sample:
    """One sampled response."""

    token_ids: torch.LongTensor
    """[length] sampled ids, the stop token included when one ended the sample."""
    text: str
    """``token_ids`` decoded without special tokens."""
    logprobs: torch.Tensor
    """[length] fp32 behaviour log-probs: log_softmax(logits / T) at each sampled token, T the
    sampling temperature (T = 1 when sampling greedily); top-k / top-p truncation is not
    part of it (the same convention as ``gro_fast.ops.token_logprobs(..., temperature=T)``)."""
    finish_reason: str
    """"stop" (a stop token was sampled) or "length" (max_new_tokens reached)."""

    @property
    def length(self) -> int:
        return int(self.token_ids.numel())


@dataclass
class RolloutGroup:
    """The samples of one prompt (one conversation)."""

    prompt_token_ids: torch.LongTensor
    """[prompt_len] the prompt's ids, the prefix shared by every sample of the group."""
    model_inputs: dict
    """Processor outputs other than ``input_ids`` / ``attention_mask`` (images, grids)."""
    samples: list[Sample] = field(default_factory=list)
    image_sizes: list = field(default_factory=list)
    """(width, height) of each image as the processor fed it: the frame of the samples'
    coordinates (``gro_fast.data.frame.grid_sizes``)."""


@dataclass
class GRORound:
    """One GRO round for one conversation: initial response, then G revisions (or, when the
    initial response is not well formed, G plain samples of the original prompt)."""

    initial: Sample
    revision_prompt: str | None
    """The revision user turn q2, None when the round fell back."""
    samples: list[Sample]
    fell_back: bool
    prompt_token_ids: torch.LongTensor
    """[prefix_len] the samples' prefix: prompt, initial response and revision turn (or the
    prompt alone when the round fell back)."""
    model_inputs: dict
    image_sizes: list = field(default_factory=list)
    """(width, height) of each image as the processor fed it (see ``RolloutGroup``)."""
    prompt_length: int | None = None
    """Length of the original prompt at the start of ``prompt_token_ids`` (what follows it is
    the initial turn: initial response and revision turn)."""
