"""Chunked fp32 torch path of the fused LM head + token log-probs.

``ChunkedLinearLogprobs`` computes, for flattened hidden states [N, H], an LM-head weight
[V, H] and an optional bias [V], the log-prob of each target token (and, when asked, the
entropy) under softmax((hidden @ weight.T + bias) / temperature), a few tokens at a time:
the logits of one chunk of tokens exist at once, never all [N, V] of them. Backward
recomputes each chunk's logits and accumulates grad_hidden, grad_weight and grad_bias.

Per chunk the log-probs and their gradient w.r.t. the logits come from
``token_logprobs.reference.reference_token_logprobs`` (autograd through that definition), so
this path inherits the reference's semantics exactly. It is the CPU path of the public
functions and a check for the Triton kernels; it computes in fp32 (a bf16 weight is
upcast once per call), so it is not the fast path. With a ``matmul_dtype`` below fp32 the
operands are rounded to it first (exact products of the rounded values, fp32 sums: what a
bf16 tensor-core product computes); autocast is off inside. The GRO loss itself is composed
outside, from the log-probs, by ``policy_loss.reference.loss_from_logprobs``.
"""
from __future__ import annotations

import torch

from ..token_logprobs.reference import reference_token_logprobs

# Elements of one chunk's fp32 logits (128 MiB); the chunk holds this many // V tokens.
CHUNK_ELEMENTS = 1 << 25


def chunk_tokens_for(vocab_size: int) -> int:
    """Tokens per chunk so that one chunk's logits hold about CHUNK_ELEMENTS values."""
    return max(1, CHUNK_ELEMENTS // max(1, vocab_size))


def _operand(t: torch.Tensor, matmul_dtype: torch.dtype) -> torch.Tensor:
    """fp32 ``t`` with the values it has in ``matmul_dtype``."""
    return t.to(matmul_dtype).float()


def _chunk_logits(hidden_chunk: torch.Tensor, weight32: torch.Tensor,
                  bias32: torch.Tensor | None, matmul_dtype: torch.dtype) -> torch.Tensor:
    logits = _operand(hidden_chunk, matmul_dtype) @ weight32.T
    return logits if bias32 is None else logits + bias32


class ChunkedLinearLogprobs(torch.autograd.Function):
    """(hidden [N, H], weight [V, H], bias [V] | None, targets [N]) -> (logp [N], entropy).

    Both outputs are fp32; entropy is an empty tensor unless ``with_entropy`` and is not
    differentiable. Only logp carries gradients back to hidden, weight and bias.
    """

    @staticmethod
    def forward(ctx, hidden, weight, bias, targets, temperature, with_entropy, chunk, matmul_dtype):
        with torch.autocast(hidden.device.type, enabled=False):
            return ChunkedLinearLogprobs._forward(ctx, hidden, weight, bias, targets, temperature,
                                                  with_entropy, chunk, matmul_dtype)

    @staticmethod
    def _forward(ctx, hidden, weight, bias, targets, temperature, with_entropy, chunk, matmul_dtype):
        n_tokens = hidden.shape[0]
        weight32 = _operand(weight, matmul_dtype)
        bias32 = None if bias is None else bias.float()
        logp = torch.zeros(n_tokens, dtype=torch.float32, device=hidden.device)
        entropy = torch.zeros(n_tokens if with_entropy else 0, dtype=torch.float32,
                              device=hidden.device)
        for start in range(0, n_tokens, chunk):
            rows = slice(start, start + chunk)
            logits = _chunk_logits(hidden[rows], weight32, bias32, matmul_dtype)
            out = reference_token_logprobs(logits, targets[rows], temperature=temperature,
                                           return_entropy=with_entropy)
            if with_entropy:
                logp[rows], entropy[rows] = out
            else:
                logp[rows] = out
        ctx.save_for_backward(hidden, weight, bias, targets)
        ctx.temperature, ctx.chunk, ctx.matmul_dtype = temperature, chunk, matmul_dtype
        ctx.mark_non_differentiable(entropy)
        return logp, entropy

    @staticmethod
    def backward(ctx, grad_logp, grad_entropy):
        with torch.autocast(grad_logp.device.type, enabled=False):
            return ChunkedLinearLogprobs._backward(ctx, grad_logp)

    @staticmethod
    def _backward(ctx, grad_logp):
        hidden, weight, bias, targets = ctx.saved_tensors
        need_h, need_w, need_b = ctx.needs_input_grad[:3]
        weight32 = _operand(weight, ctx.matmul_dtype)
        bias32 = None if bias is None else bias.float()
        grad_logp = grad_logp.float()
        grad_h = torch.zeros(hidden.shape, dtype=torch.float32, device=hidden.device)
        grad_w = torch.zeros(weight.shape, dtype=torch.float32, device=weight.device)
        grad_b = None if bias is None else torch.zeros_like(bias32)
        for start in range(0, hidden.shape[0], ctx.chunk):
            rows = slice(start, start + ctx.chunk)
            hidden32 = _operand(hidden[rows], ctx.matmul_dtype)
            dlogits = _chunk_dlogits(hidden32, weight32, bias32, targets[rows],
                                     grad_logp[rows], ctx.temperature)
            if need_h:
                grad_h[rows] = dlogits @ weight32
            if need_w:
                grad_w.addmm_(dlogits.T, hidden32)
            if grad_b is not None:
                grad_b += dlogits.sum(0)
        return (grad_h.to(hidden.dtype) if need_h else None,
                grad_w.to(weight.dtype) if need_w else None,
                grad_b.to(bias.dtype) if need_b and grad_b is not None else None,
                None, None, None, None, None)


def _chunk_dlogits(hidden32, weight32, bias32, targets, grad_logp, temperature):
    """d(sum grad_logp * logp) / d logits for one chunk, through the reference."""
    with torch.no_grad():
        logits = _chunk_logits(hidden32, weight32, bias32, torch.float32)
    with torch.enable_grad():
        logits.requires_grad_(True)
        logp = reference_token_logprobs(logits, targets, temperature=temperature)
        (dlogits,) = torch.autograd.grad(logp, logits, grad_logp)
    return dlogits


def chunked_linear_logprobs(hidden, weight, bias, targets, *, temperature=1.0,
                            with_entropy=False, chunk=None, matmul_dtype=torch.float32):
    """Flattened inputs -> (logp [N], entropy [N] or empty), differentiable when needed."""
    chunk = chunk_tokens_for(weight.shape[0]) if chunk is None else int(chunk)
    return ChunkedLinearLogprobs.apply(hidden, weight, bias, targets, float(temperature),
                                       bool(with_entropy), chunk, matmul_dtype)
