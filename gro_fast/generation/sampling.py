"""Next-token sampling: temperature, top-k, top-p, greedy; and the behaviour log-probs.

``sample_next`` draws one token per row of fp32 logits with an explicit ``torch.Generator``
so a seeded rollout is reproducible. It returns the token and its log-prob under
``log_softmax(logits / T)`` (T = 1 for greedy): the untruncated tempered distribution, the
convention the trainer uses when it recomputes log-probs. Suppressed ids (the image / video
placeholder tokens, by the engine's default) are never drawn. It does not run the model.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class SamplingParams:
    temperature: float = 1.0
    """0 = greedy (argmax); otherwise logits are divided by it."""
    top_p: float = 1.0
    """Nucleus sampling: keep the smallest set of tokens whose probability reaches top_p."""
    top_k: int = 0
    """Keep the k most likely tokens; 0 = no limit."""

    def __post_init__(self):
        if not isinstance(self.temperature, (int, float)) or not self.temperature >= 0:
            raise ValueError(f"temperature must be a number >= 0, got {self.temperature!r}")
        if not isinstance(self.top_p, (int, float)) or not 0 < self.top_p <= 1:
            raise ValueError(f"top_p must lie in (0, 1], got {self.top_p!r}")
        if isinstance(self.top_k, bool) or not isinstance(self.top_k, int) or self.top_k < 0:
            raise ValueError(f"top_k must be an int >= 0, got {self.top_k!r}")

    @property
    def greedy(self) -> bool:
        return self.temperature == 0


def truncate_logits(scaled: torch.Tensor, top_k: int, top_p: float) -> torch.Tensor:
    """``scaled`` [B, V] with tokens outside top-k / top-p set to -inf (at least one kept)."""
    if top_k > 0 and top_k < scaled.shape[-1]:
        kth = torch.topk(scaled, top_k, dim=-1).values[..., -1:]
        scaled = scaled.masked_fill(scaled < kth, float("-inf"))
    if top_p < 1.0:
        sorted_logits, order = torch.sort(scaled, dim=-1, descending=True)
        probs = torch.softmax(sorted_logits, dim=-1)
        mass_before = torch.cumsum(probs, dim=-1) - probs
        drop_sorted = mass_before >= top_p  # the first token has mass_before 0 and stays
        drop = torch.zeros_like(drop_sorted).scatter(-1, order, drop_sorted)
        scaled = scaled.masked_fill(drop, float("-inf"))
    return scaled


def sample_next(logits: torch.Tensor, params: SamplingParams, generator: torch.Generator | None,
                suppress: torch.Tensor | None = None):
    """Tokens [B] (int64) and their behaviour log-probs [B] (fp32) for logits [B, V].

    ``suppress``: token ids never drawn (their logits set to -inf for the draw only; the
    returned log-probs are those of the model's own tempered distribution).
    """
    logits = logits.float()
    temperature = 1.0 if params.greedy else params.temperature
    logp = torch.log_softmax(logits / temperature, dim=-1)
    drawable = logits if suppress is None or suppress.numel() == 0 else logits.index_fill(-1, suppress, float("-inf"))
    if params.greedy:
        tokens = torch.argmax(drawable, dim=-1)
    else:
        kept = truncate_logits(drawable / params.temperature, params.top_k, params.top_p)
        tokens = torch.multinomial(torch.softmax(kept, dim=-1), 1, generator=generator).squeeze(-1)
    return tokens, logp.gather(-1, tokens.unsqueeze(-1)).squeeze(-1)
