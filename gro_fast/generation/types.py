"""What the rollout engine returns: samples and groups of samples (plain or GRO).

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
    """The G samples of one prompt (one conversation), from ``generate`` (plain samples)
    or ``gro_round`` (GRO: an initial response, then G revisions, or G plain samples when
    the initial response was not well formed)."""

    prompt_token_ids: torch.LongTensor
    """[prefix_len] the prefix shared by every sample of the group: the prompt, or for
    revisions the prompt, the initial response and the revision query turn."""
    model_inputs: dict
    """Processor outputs other than ``input_ids`` / ``attention_mask`` (images, grids)."""
    samples: list[Sample] = field(default_factory=list)
    image_sizes: list = field(default_factory=list)
    """(width, height) of each image as the processor fed it: the frame of the samples'
    coordinates (``gro_fast.data.frame.grid_sizes``)."""
    initial: Sample | None = None
    """GRO's initial response o1 (None for ``generate``)."""
    revision_query: str | None = None
    """The revision query turn q2 = U(q, o1); None when the samples are not revisions."""
    fell_back: bool = True
    """True when the samples are plain samples of the prompt, scored as GRPO: always for
    ``generate``, and for a GRO round whose initial response was not well formed."""
    prompt_length: int | None = None
    """Length of the original prompt at the start of ``prompt_token_ids`` (what follows it
    in a revised group is the initial turn: initial response and revision query)."""

    def __post_init__(self):
        if self.prompt_length is None:
            self.prompt_length = int(self.prompt_token_ids.numel())
