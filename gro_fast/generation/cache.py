"""Shared-prefix KV caches and the attention function that reads them.

The rollout engine hooks into an unmodified transformers model in two places:

- a ``transformers.Cache`` subclass passed as ``past_key_values``: the model's attention
  layers hand it each new key/value (``update``);
- an attention function registered with transformers' ``AttentionInterface`` under
  ``ATTENTION_NAME``; while :func:`shared_prefix_attention_enabled` is active the text
  decoder's attention layers call it instead of SDPA / flash-attention, and it lets the
  cache (received through the forward's keyword arguments) compute the attention.

Two caches:

- :class:`SharedPrefixCache` (decoding): the prefix KV of each group ``[P, Hkv, Lp, D]``
  stored ONCE per group, plus fixed per-sample suffix buffers ``[P, G, Hkv, max_new, D]``
  (gpt-fast style, allocated up front); attention is
  ``gro_fast.ops.prefix_attention.shared_prefix_attention``.
- :class:`PrefixExtensionCache` (prefilling a new turn on top of a cached prefix, e.g. the
  GRO revision turn): ordinary causal attention of the new tokens over the group's prefix
  and themselves (torch SDPA with an explicit mask), then :meth:`extended_prefix`
  returns the longer prefix, still stored once per group.

The prompt's own prefill is not here: it runs through the model's own attention backend
with a ``DynamicCache``.

Each cache has one compute dtype (``dtype``, default the prefix keys' dtype): keys and
values are stored in it and queries attend in it. Under autocast over fp32 weights the
keys leave RoPE in fp32 while the values leave ``v_proj`` in bf16; without one dtype the
suffix writes would fail (``index_copy_`` of bf16 into fp32) at the first decode step.
"""
from __future__ import annotations

import contextlib

import torch
import torch.nn.functional as F
from transformers import AttentionInterface
from transformers.cache_utils import Cache

from gro_fast.ops.prefix_attention import shared_prefix_attention

ATTENTION_NAME = "gro_fast_shared_prefix"
CACHE_KWARG = "gro_fast_cache"


class _EngineCache(Cache):
    """Common part: per-layer prefix KV [P, Hkv, Lp, D] (right-padded) and its lengths [P],
    in the cache's compute dtype."""

    def __init__(self, prefix_k: list[torch.Tensor], prefix_v: list[torch.Tensor], prefix_lens: torch.Tensor,
                 dtype: torch.dtype | None = None):
        super().__init__(layers=[])
        if len(prefix_k) != len(prefix_v) or not prefix_k:
            raise ValueError("prefix_k and prefix_v must be equally long, non-empty lists (one per layer)")
        self.dtype = dtype or prefix_k[0].dtype
        self.prefix_k = [t.to(self.dtype) for t in prefix_k]
        self.prefix_v = [t.to(self.dtype) for t in prefix_v]
        self.prefix_lens = prefix_lens

    def __len__(self):
        return len(self.prefix_k)

    def get_seq_length(self, layer_idx: int = 0) -> int:
        return int(self.prefix_k[layer_idx].shape[2])

    def prefix_bytes(self) -> int:
        return sum(t.numel() * t.element_size() for t in (*self.prefix_k, *self.prefix_v))


class SharedPrefixCache(_EngineCache):
    """Decode-time cache: one prefix per group, fixed suffix buffers per sample.

    ``update`` writes the current token's key/value of every sample at suffix slot
    ``step``; all samples advance in lockstep (a finished sample keeps a slot it no
    longer reads). Call :meth:`advance` after each forward. Nothing in ``update`` or
    ``attend`` depends on the step through Python, so a decode step can be captured in a
    CUDA graph once and replayed.
    """

    def __init__(self, prefix_k, prefix_v, prefix_lens, num_samples: int, max_new_tokens: int,
                 dtype: torch.dtype | None = None):
        super().__init__(prefix_k, prefix_v, prefix_lens, dtype)
        P, Hkv, _, D = prefix_k[0].shape
        self.num_groups, self.num_samples = P, num_samples
        shape = (P, num_samples, Hkv, max_new_tokens, D)
        like = prefix_k[0]
        self.suffix_k = [torch.zeros(shape, dtype=self.dtype, device=like.device) for _ in prefix_k]
        self.suffix_v = [torch.zeros(shape, dtype=self.dtype, device=like.device) for _ in prefix_k]
        # The step lives in device tensors too, so one captured CUDA graph serves every step.
        self.step = 0
        self.slot = torch.zeros(1, dtype=torch.long, device=like.device)
        self.suffix_lens = torch.ones(P, num_samples, dtype=torch.int32, device=like.device)

    def suffix_bytes(self) -> int:
        return sum(t.numel() * t.element_size() for t in (*self.suffix_k, *self.suffix_v))

    def get_seq_length(self, layer_idx: int = 0) -> int:
        return int(self.prefix_k[layer_idx].shape[2]) + self.step

    def update(self, key_states, value_states, layer_idx, *args, **kwargs):
        if self.step >= self.suffix_k[layer_idx].shape[3]:
            raise RuntimeError(f"suffix buffers hold {self.suffix_k[layer_idx].shape[3]} tokens; step {self.step}")
        P, G = self.num_groups, self.num_samples
        if key_states.shape[0] != P * G or key_states.shape[2] != 1:
            raise ValueError(f"decode expects [{P * G}, Hkv, 1, D] keys, got {tuple(key_states.shape)}")
        shape = (P, G, key_states.shape[1], 1, key_states.shape[-1])
        self.suffix_k[layer_idx].index_copy_(3, self.slot, key_states.reshape(shape).to(self.dtype))
        self.suffix_v[layer_idx].index_copy_(3, self.slot, value_states.reshape(shape).to(self.dtype))
        return key_states, value_states

    def advance(self):
        """Move to the next suffix slot (in place: captured graphs see the new step)."""
        self.step += 1
        self.slot.fill_(self.step)
        self.suffix_lens.fill_(self.step + 1)

    def attend(self, layer_idx: int, query: torch.Tensor, scaling: float | None) -> torch.Tensor:
        """query [P*G, Hq, 1, D] -> attention output [P*G, 1, Hq, D]."""
        B, Hq, _, D = query.shape
        q = query[:, :, 0].reshape(self.num_groups, self.num_samples, Hq, D).to(self.dtype)
        out = shared_prefix_attention(
            q, self.prefix_k[layer_idx], self.prefix_v[layer_idx], self.prefix_lens,
            self.suffix_k[layer_idx], self.suffix_v[layer_idx], self.suffix_lens, scale=scaling)
        return out.reshape(B, 1, Hq, D)


class PrefixExtensionCache(_EngineCache):
    """Prefill of new tokens [P, Le] (right-padded, valid lengths ``new_lens``) on top of the
    cached prefix; the new tokens' KV is kept to build the extended prefix."""

    def __init__(self, prefix_k, prefix_v, prefix_lens, new_lens: torch.Tensor, dtype: torch.dtype | None = None):
        super().__init__(prefix_k, prefix_v, prefix_lens, dtype)
        self.new_lens = new_lens
        self.new_k: list[torch.Tensor | None] = [None] * len(prefix_k)
        self.new_v: list[torch.Tensor | None] = [None] * len(prefix_k)

    def update(self, key_states, value_states, layer_idx, *args, **kwargs):
        self.new_k[layer_idx], self.new_v[layer_idx] = key_states.to(self.dtype), value_states.to(self.dtype)
        return key_states, value_states

    def _mask(self, new_len_max: int) -> torch.Tensor:
        """[P, 1, Le, Lp + Le] bool: valid prefix keys, then causal over the new tokens."""
        Lp, device = self.prefix_k[0].shape[2], self.prefix_lens.device
        prefix_ok = torch.arange(Lp, device=device) < self.prefix_lens[:, None]          # [P, Lp]
        causal = torch.ones(new_len_max, new_len_max, dtype=torch.bool, device=device).tril()
        P = prefix_ok.shape[0]
        mask = torch.cat([prefix_ok[:, None, :].expand(P, new_len_max, Lp),
                          causal.expand(P, new_len_max, new_len_max)], dim=-1)
        return mask[:, None]

    def attend(self, layer_idx: int, query: torch.Tensor, scaling: float | None) -> torch.Tensor:
        """query [P, Hq, Le, D] -> [P, Le, Hq, D]."""
        keys = torch.cat([self.prefix_k[layer_idx], self.new_k[layer_idx]], dim=2)
        values = torch.cat([self.prefix_v[layer_idx], self.new_v[layer_idx]], dim=2)
        rep = query.shape[1] // keys.shape[1]
        if rep > 1:
            keys, values = keys.repeat_interleave(rep, dim=1), values.repeat_interleave(rep, dim=1)
        out = F.scaled_dot_product_attention(query.to(self.dtype), keys, values, attn_mask=self._mask(query.shape[2]),
                                             scale=scaling)
        return out.transpose(1, 2)

    def extended_prefix(self) -> tuple[list[torch.Tensor], list[torch.Tensor], torch.Tensor]:
        """Per layer, each group's old prefix followed by its new tokens, right-padded again:
        (prefix_k, prefix_v, prefix_lens). One copy per group, never per sample."""
        Lp = self.prefix_k[0].shape[2]
        lens = self.prefix_lens + self.new_lens
        length = int(lens.max())
        j = torch.arange(length, device=lens.device)[None, :]                    # [1, L]
        old = self.prefix_lens[:, None]
        index = torch.where(j < old, j, Lp + (j - old)).clamp_max(Lp + self.new_k[0].shape[2] - 1)
        out_k, out_v = [], []
        for layer in range(len(self.prefix_k)):
            for src, out in ((torch.cat([self.prefix_k[layer], self.new_k[layer]], 2), out_k),
                             (torch.cat([self.prefix_v[layer], self.new_v[layer]], 2), out_v)):
                P, H, _, D = src.shape
                out.append(src.gather(2, index[:, None, :, None].expand(P, H, length, D)))
        return out_k, out_v, lens


def _attention(module, query, key, value, attention_mask, scaling=None, dropout=0.0, **kwargs):
    """transformers attention function: delegates to the engine cache passed as a kwarg."""
    cache = kwargs.get(CACHE_KWARG)
    if not isinstance(cache, _EngineCache):
        raise RuntimeError(f"attention {ATTENTION_NAME!r} needs a gro_fast engine cache passed as "
                           f"{CACHE_KWARG}=...; it is only for gro_fast.generation's decode steps")
    return cache.attend(module.layer_idx, query, scaling), None


AttentionInterface.register(ATTENTION_NAME, _attention)


def text_attention_config(model):
    """The config object the text decoder's attention layers read their backend from."""
    for module in model.modules():
        if getattr(module, "is_causal", False) and hasattr(module, "layer_idx") and hasattr(module, "config"):
            return module.config
    raise TypeError(f"{type(model).__name__} has no causal attention layers with a config")


@contextlib.contextmanager
def text_attention_implementation(model, name: str | None):
    """Within the block, the text decoder's attention layers use backend ``name`` (None: keep
    the model's); the vision tower is untouched. The previous backend is restored."""
    config = text_attention_config(model)
    previous = config._attn_implementation
    if name is not None:
        config._attn_implementation = name
    try:
        yield
    finally:
        config._attn_implementation = previous


def shared_prefix_attention_enabled(model):
    """Within the block, the text decoder's attention runs :func:`_attention`."""
    return text_attention_implementation(model, ATTENTION_NAME)
