"""Policy forwards on micro-batches: completion logits / hidden states and log-probs.

``completion_outputs`` runs the model on a padded micro-batch and returns what the loss
needs at the completion positions: the logits [n, T, V] (``loss_impl: logits``) or the
final hidden states [n, T, H] plus the LM-head weight (``loss_impl: fused_linear``, which
never materialises the logits). ``sequence_logprobs`` computes no-grad log-probs of whole
batches (the stored old policy when ``num_iterations`` > 1, the frozen reference when
beta > 0) with the ops' ``token_logprobs`` kernels. Losses and updates live in ``update.py``.
"""
from __future__ import annotations

import contextlib

import torch
from torch import nn

from .sequences import ModelBatch, SequenceBatch, build_model_batch, micro_batches


def autocast_context(device: torch.device, enabled: bool):
    """bf16 autocast for fp32 master weights on GPU (a no-op on CPU or when disabled)."""
    if enabled and device.type == "cuda":
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return contextlib.nullcontext()


def output_weight(model: nn.Module) -> tuple[torch.Tensor, torch.Tensor | None]:
    """The LM head's weight [V, H] and bias (or None)."""
    head = model.get_output_embeddings()
    return head.weight, getattr(head, "bias", None)


def completion_outputs(model: nn.Module, mb: ModelBatch, *, fused_linear: bool = False):
    """Logits [n, T, V] that score the completion tokens, or with ``fused_linear`` the
    hidden states [n, T, H] feeding the LM head at those positions."""
    T = mb.targets.shape[1]
    if not fused_linear:
        out = model(**mb.inputs, logits_to_keep=T + 1, use_cache=False)
        return out.logits[:, :-1]
    out = model(**mb.inputs, logits_to_keep=1, use_cache=False, output_hidden_states=True)
    hidden = out.hidden_states[-1]
    P = mb.prefix_len
    return hidden[:, P - 1:P - 1 + T]


@torch.no_grad()
def sequence_logprobs(model: nn.Module, batch: SequenceBatch, *, micro_batch_size: int,
                      temperature: float, device: torch.device, fused_linear: bool = False,
                      autocast: bool = True) -> torch.Tensor:
    """fp32 [N, T] log-probs of every completion token of ``batch`` (0 past each end)."""
    from gro_fast.ops import token_logprobs

    T = batch.max_completion
    out = torch.zeros(len(batch), T, dtype=torch.float32)
    was_training = model.training
    model.eval()
    try:
        for rows in micro_batches(len(batch), micro_batch_size):
            mb = build_model_batch(batch, rows, device)
            with autocast_context(device, autocast):
                result = completion_outputs(model, mb, fused_linear=fused_linear)
            if fused_linear:
                logp = _fused_logprobs(model, result, mb.targets, temperature)
            else:
                logp = token_logprobs(result, mb.targets, temperature=temperature)
            logp = logp.float().masked_fill(~mb.mask, 0.0).cpu()
            out[rows, :logp.shape[1]] = logp
    finally:
        model.train(was_training)
    return out


def _fused_logprobs(model, hidden, targets, temperature):
    from gro_fast.ops import fused_linear_token_logprobs
    weight, bias = output_weight(model)
    return fused_linear_token_logprobs(hidden, weight, targets, bias=bias,
                                       temperature=temperature)
