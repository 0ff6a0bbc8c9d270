"""Training sequences: prefix + completion per sample, padded so completions line up.

Every trained sequence is a prompt prefix (the conversation up to the assistant turn,
image tokens included) followed by a completion (a revision, a GRPO sample, or the
initial response). Prefixes are left-padded and completions right-padded, so in a padded
batch every completion starts at the same column ``P``: the logits that score completion
token t sit at column ``P - 1 + t`` for every row. Each row keeps a reference to its
prompt's vision inputs (``pixel_values``, ``image_grid_thw``), concatenated per micro-batch
in row order as the model expects. This module builds tensors; it runs no model.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass
class Sequence:
    """One trained sequence."""

    prefix_ids: list[int]
    completion_ids: list[int]
    vision: dict
    """The prompt's vision inputs: pixel_values [patches, dim], image_grid_thw [images, 3]."""
    group: int
    """Index of the prompt (group) the sequence belongs to."""
    role: str = "revision"
    """revision, sample (GRPO) or initial."""


@dataclass
class SequenceBatch:
    """A list of sequences plus per-sequence training signals (all on CPU until used)."""

    sequences: list[Sequence]
    pad_id: int
    image_token_id: int
    advantages: torch.Tensor = None
    """[N] group-normalised advantages."""
    improvement: torch.Tensor | None = None
    """[N] GRO's improvement dphi; the loss trains on A_hat = (1 + dphi) * A (None: A)."""
    old_logprobs: torch.Tensor | None = None
    """[N, T] log-probs under the rollout policy (needed when num_iterations > 1)."""
    ref_logprobs: torch.Tensor | None = None
    """[N, T] log-probs under the frozen reference (beta > 0)."""

    def __len__(self) -> int:
        return len(self.sequences)

    @property
    def max_completion(self) -> int:
        return max((len(s.completion_ids) for s in self.sequences), default=0)

    def num_completion_tokens(self) -> int:
        return sum(len(s.completion_ids) for s in self.sequences)


@dataclass
class ModelBatch:
    """Padded model inputs for rows ``rows`` of a SequenceBatch."""

    inputs: dict
    """input_ids, attention_mask, mm_token_type_ids, pixel_values, image_grid_thw."""
    targets: torch.Tensor
    """[n, T] completion token ids (pad where masked)."""
    mask: torch.Tensor
    """[n, T] completion mask."""
    prefix_len: int
    """P: column of the first completion token."""


def build_model_batch(batch: SequenceBatch, rows: list[int], device: torch.device,
                      width: int | None = None) -> ModelBatch:
    """Pads rows ``rows``: prefixes left-padded to the longest, completions right-padded
    to ``width`` (default: the longest completion among these rows)."""
    seqs = [batch.sequences[i] for i in rows]
    P = max(len(s.prefix_ids) for s in seqs)
    T = width if width is not None else max(max(len(s.completion_ids) for s in seqs), 1)
    n = len(seqs)
    input_ids = torch.full((n, P + T), batch.pad_id, dtype=torch.long)
    attention = torch.zeros(n, P + T, dtype=torch.long)
    targets = torch.full((n, T), batch.pad_id, dtype=torch.long)
    mask = torch.zeros(n, T, dtype=torch.bool)
    for j, s in enumerate(seqs):
        p, t = len(s.prefix_ids), min(len(s.completion_ids), T)
        input_ids[j, P - p:P] = torch.tensor(s.prefix_ids, dtype=torch.long)
        input_ids[j, P:P + t] = torch.tensor(s.completion_ids[:t], dtype=torch.long)
        attention[j, P - p:P + t] = 1
        targets[j, :t] = input_ids[j, P:P + t]
        mask[j, :t] = True
    inputs = {"input_ids": input_ids, "attention_mask": attention,
              "mm_token_type_ids": (input_ids == batch.image_token_id).to(torch.int32)}
    inputs.update(_vision_inputs(seqs))
    inputs = {k: v.to(device) for k, v in inputs.items()}
    return ModelBatch(inputs=inputs, targets=targets.to(device), mask=mask.to(device),
                      prefix_len=P)


def _vision_inputs(seqs: list[Sequence]) -> dict:
    """Each row's vision tensors concatenated in row order (one image per prompt)."""
    keys = [k for k in ("pixel_values", "image_grid_thw") if k in seqs[0].vision]
    return {k: torch.cat([s.vision[k] for s in seqs], dim=0) for k in keys}


def micro_batches(n: int, size: int, lengths: list[int] | None = None) -> list[list[int]]:
    """Row indices 0..n-1 cut into chunks of ``size``: consecutive, or with ``lengths``
    (one per row) in order of length, so rows of similar length share a chunk and
    padding shrinks. The number of chunks depends on ``n`` and ``size`` only, so every
    data-parallel rank runs the same number."""
    order = sorted(range(n), key=lambda i: lengths[i]) if lengths is not None else list(range(n))
    return [order[i:i + size] for i in range(0, n, size)]


def optimizer_groups(n: int, micro_batch_size: int, grad_accumulation: int) -> list[list[list[int]]]:
    """Micro-batches grouped per optimizer step (grad_accumulation 0: one group)."""
    chunks = micro_batches(n, micro_batch_size)
    if grad_accumulation <= 0:
        return [chunks]
    return [chunks[i:i + grad_accumulation] for i in range(0, len(chunks), grad_accumulation)]


def aggregation_count(mask: torch.Tensor, loss_agg: str) -> float:
    """What ``loss_agg`` divides by for these rows: tokens (token-mean), non-empty
    sequences (seq-mean-token-mean) or sequences (seq-mean-token-sum-norm). Scaling a
    micro-batch's loss by its count over the step's total count makes micro-batching and
    data parallelism give exactly the full-batch loss."""
    if loss_agg == "token-mean":
        return float(mask.sum().item())
    if loss_agg == "seq-mean-token-mean":
        return float((mask.sum(-1) > 0).sum().item())
    return float(mask.shape[0])
