"""The rollout engine: G samples per prompt, or a GRO round, with a shared-prefix KV cache.

``RolloutEngine(model, processor)`` wraps an unmodified Hugging Face vision-language model
(Qwen2-VL / Qwen2.5-VL / Qwen3-VL classes). Per call it

1. encodes each image once and prefills each prompt once (batched, right-padded, through
   the model's own attention backend: SDPA, flash-attention 2 ...);
2. for a GRO round, samples one initial response per prompt, then prefills the revision
   turn once on top of the cached prefix (:class:`~.cache.PrefixExtensionCache`);
3. decodes the G samples of every group in one batch: the group's prefix KV is stored once,
   each sample has its own suffix buffers, attention is the shared-prefix op
   (:class:`~.cache.SharedPrefixCache`). Positions continue the prefix's M-RoPE positions
   (text tokens after an image continue from the largest image position + 1).

It leaves rewards, scoring and training to others; ``gro_fast.algo`` supplies the default
revision turn and well-formedness test.

Behaviour, documented once here:
- ``max_new_tokens`` must be >= 1 (0 raises ``ValueError``).
- Samples stop at the model's EOS ids (``generation_config.eos_token_id``) and at
  ``<|im_end|>``; the stop token is part of ``token_ids``.
- ``seed`` makes sampling reproducible for the same inputs and batch (a private
  ``torch.Generator``); ``seed=None`` uses torch's global generator.
- Log-probs: see :class:`~.types.Sample`.
- Precision: the forwards run in one compute dtype, on weights already in it
  (:mod:`~.weights`): ``dtype=`` if given, else the autocast dtype when the call runs under
  autocast (a trainer's fp32 master weights under bf16 autocast), else the model's own.
  Autocast is off inside the call, and the KV caches hold keys and values in that dtype.
"""
from __future__ import annotations

import contextlib
import time
import warnings
from dataclasses import dataclass

import torch
from transformers import DynamicCache

from gro_fast.data.frame import grid_sizes
from gro_fast.ops._dispatch import cuda_device, force_backend

from . import prompts
from .cache import (CACHE_KWARG, PrefixExtensionCache, SharedPrefixCache, shared_prefix_attention_enabled,
                    text_attention_implementation)
from .graphs import GraphedDecodeStep
from .sampling import SamplingParams, sample_next
from .types import RolloutGroup, Sample
from .weights import SamplingWeights

_NO_MASK = {"full_attention": None, "sliding_attention": None}  # the caches do the masking
_ATTENTION_CHOICES = ("auto", "reference", "triton")
DECODE_STEP = "gro_fast.decode_step"  # the profiler's label of one decode step


@dataclass
class PrefixState:
    """The cached prefixes of P groups, ready for decoding."""

    keys: list[torch.Tensor]          # per layer [P, Hkv, Lp, D], right-padded
    values: list[torch.Tensor]
    lens: torch.Tensor                # [P] valid prefix lengths
    next_pos: torch.Tensor            # [P] M-RoPE position of the next token
    next_logits: torch.Tensor         # [P, V] fp32 logits of the next token
    token_ids: list[torch.Tensor]     # per group, the prefix's ids


class RolloutEngine:
    """Sampling for GRPO / GRO rollouts over a transformers vision-language model.

    ``max_context``: longest prefix + response allowed (default: the text config's
    ``max_position_embeddings``). ``attention``: the decode attention implementation,
    ``"auto"`` (follow ``gro_fast.ops._dispatch``: Triton kernel on CUDA, torch reference
    on CPU, ``GRO_FAST_KERNELS`` / ``force_backend`` respected), ``"reference"`` or
    ``"triton"`` (forced for the decode steps). ``stop_token_ids``: ids that end a sample;
    None = the model's EOS ids and ``<|im_end|>``; ``[]`` = never stop early (fixed-length
    runs, as the benchmark does). ``suppress_token_ids``: ids never sampled; None = the
    model's vision placeholders (image / video pad, vision start / end), which in a response
    would break the training forward (more image tokens than image features).
    ``cuda_graphs``: replay each decode step from a CUDA
    graph captured once per call (default: on for a CUDA model; a failed capture warns
    and decodes eagerly). ``prefill_attention``: the text decoder's backend for prompt
    prefill; "auto" = ``flash_attention_2`` when flash-attn is installed and the model is a
    fp16 / bf16 CUDA model, else the model's own (SDPA by default); None = the model's own;
    or any ``attn_implementation`` name. ``dtype``: the compute dtype of sampling (None:
    the autocast dtype under autocast, else the model's; see the module docstring).

    After each call ``last_stats`` holds ``first_token_s`` (seconds from the call to the
    first sampled token) and, for the last decode of the call, ``prefix_kv_shape`` /
    ``suffix_kv_shape`` (layer 0), ``prefix_kv_bytes`` / ``suffix_kv_bytes`` (all layers,
    keys and values), ``decode_steps``, ``compute_dtype`` and ``weight_refreshes`` (how
    often a compute-dtype copy of the weights was refilled so far).
    """

    def __init__(self, model, processor, *, max_context: int | None = None, attention: str = "auto",
                 stop_token_ids: list[int] | None = None, suppress_token_ids: list[int] | None = None,
                 cuda_graphs: bool | None = None, prefill_attention: str | None = "auto",
                 dtype: torch.dtype | None = None):
        if attention not in _ATTENTION_CHOICES:
            raise ValueError(f"attention must be one of {_ATTENTION_CHOICES}, got {attention!r}")
        prompts.require_chat_template(processor)
        self.model, self.processor, self.attention = model, processor, attention
        self.tokenizer = getattr(processor, "tokenizer", processor)
        self.dtype, self.weights = dtype, SamplingWeights(model)
        self.net, self.base = model, getattr(model, model.base_model_prefix)  # per call: _rollout_mode
        self.kv_dtype: torch.dtype | None = None                                # per call too
        text_config = model.config.get_text_config()
        self.max_context = int(max_context or text_config.max_position_embeddings)
        default_stops = self._stop_ids(model, self.tokenizer)
        self.stop_ids = default_stops if stop_token_ids is None else [int(i) for i in stop_token_ids]
        pad = self.tokenizer.pad_token_id
        self.pad_id = int(pad if pad is not None else default_stops[0])
        self.suppress_ids = (self._placeholder_ids(model) if suppress_token_ids is None
                             else [int(i) for i in suppress_token_ids])
        self.cuda_graphs = cuda_graphs
        self.prefill_attention = self._prefill_backend(model, prefill_attention)
        self.last_stats: dict = {}

    @staticmethod
    def _stop_ids(model, tokenizer) -> list[int]:
        eos = getattr(getattr(model, "generation_config", None), "eos_token_id", None)
        ids = list(eos) if isinstance(eos, (list, tuple)) else ([eos] if eos is not None else [])
        for token in (tokenizer.eos_token, "<|im_end|>"):
            token_id = tokenizer.convert_tokens_to_ids(token) if token else None
            if token_id is not None and token_id != tokenizer.unk_token_id:
                ids.append(token_id)
        if not ids:
            raise ValueError("neither the model's generation_config nor the tokenizer names an EOS token")
        return sorted(set(int(i) for i in ids))

    @staticmethod
    def _prefill_backend(model, choice: str | None) -> str | None:
        if choice != "auto":
            return choice
        from transformers.utils import is_flash_attn_2_available

        fast_dtype = next(model.parameters()).dtype in (torch.float16, torch.bfloat16)
        if model.device.type == "cuda" and fast_dtype and is_flash_attn_2_available():
            return "flash_attention_2"
        return None

    @staticmethod
    def _placeholder_ids(model) -> list[int]:
        names = ("image_token_id", "video_token_id", "vision_start_token_id", "vision_end_token_id")
        vocab = model.get_output_embeddings().weight.shape[0]
        ids = (getattr(model.config, name, None) for name in names)
        return sorted({int(i) for i in ids if isinstance(i, int) and 0 <= i < vocab})

    # ---------------------------------------------------------------- public API

    def generate(self, conversations, num_samples: int, max_new_tokens: int, temperature: float = 1.0,
                 top_p: float = 1.0, top_k: int = 0, seed: int | None = None) -> list[RolloutGroup]:
        """``num_samples`` responses for each conversation (GRPO groups)."""
        params, generator = self._check_call(conversations, num_samples, max_new_tokens,
                                             SamplingParams(temperature, top_p, top_k), seed)
        with self._rollout_mode():
            _, encodings = self._encode(conversations, max_new_tokens)
            prefix = self._prefill(encodings)
            samples = self._decode(prefix, num_samples, max_new_tokens, params, generator)
        return [RolloutGroup(prefix.token_ids[p], prompts.group_inputs(encodings[p]), samples[p],
                             self.fed_sizes(encodings[p])) for p in range(len(encodings))]

    def gro_round(self, conversations, num_revisions: int, max_new_tokens: int, *, revision_query_fn=None,
                  is_well_formed_fn=None, temperature: float = 1.0, top_p: float = 1.0, top_k: int = 0,
                  seed: int | None = None) -> list[RolloutGroup]:
        """One GRO round per conversation: an initial response o1; if it is well formed, the
        revision turn q2 = revision_query_fn(query, o1) and ``num_revisions`` revisions of
        the conversation [user: x, q] [assistant: o1] [user: q2]; otherwise
        ``num_revisions`` plain samples of the original prompt (``fell_back=True``)."""
        if revision_query_fn is None or is_well_formed_fn is None:
            from gro_fast.algo import is_well_formed, revision_query
            revision_query_fn = revision_query_fn or revision_query
            is_well_formed_fn = is_well_formed_fn or is_well_formed
        params, generator = self._check_call(conversations, num_revisions, max_new_tokens,
                                             SamplingParams(temperature, top_p, top_k), seed)
        with self._rollout_mode():
            prepared, encodings = self._encode(conversations, max_new_tokens)
            prefix = self._prefill(encodings)
            prompt_lengths = [int(ids.numel()) for ids in prefix.token_ids]
            initial = [group[0] for group in self._decode(prefix, 1, max_new_tokens, params, generator)]
            turns = self._revision_turns(prepared, initial, revision_query_fn, is_well_formed_fn)
            if any(turn is not None for turn, _ in turns):
                prefix = self._extend(prefix, [ids for _, ids in turns])
            samples = self._decode(prefix, num_revisions, max_new_tokens, params, generator)
        return [RolloutGroup(prefix.token_ids[p], prompts.group_inputs(encodings[p]), samples[p],
                             self.fed_sizes(encodings[p]), initial=initial[p],
                             revision_query=turns[p][0], fell_back=turns[p][0] is None,
                             prompt_length=prompt_lengths[p])
                for p in range(len(encodings))]

    def fed_sizes(self, encoding: dict) -> list[tuple[int, int]]:
        """(width, height) of each image of one encoded prompt as the processor fed it: the
        frame the model's answer coordinates are in (``gro_fast.data.frame`` owns it)."""
        return grid_sizes(self.processor, encoding)

    # ---------------------------------------------------------------- steps

    def _check_call(self, conversations, num_samples, max_new_tokens, params, seed):
        if not isinstance(conversations, (list, tuple)) or not conversations:
            raise ValueError("conversations must be a non-empty list of conversations")
        for name, value in (("num_samples", num_samples), ("max_new_tokens", max_new_tokens)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be an int >= 1, got {value!r}")
        if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int)):
            raise TypeError(f"seed must be an int or None, got {type(seed).__name__}")
        generator = None
        if seed is not None:
            generator = torch.Generator(device=self.model.device).manual_seed(seed)
        return params, generator

    def _encode(self, conversations, max_new_tokens: int):
        prepared = [prompts.prepare_conversation(c, i) for i, c in enumerate(conversations)]
        encodings = [prompts.encode(self.processor, conversation) for conversation, _ in prepared]
        for i, encoding in enumerate(encodings):
            self._check_length(i, encoding["input_ids"].shape[1], max_new_tokens)
        return prepared, encodings

    def _check_length(self, index: int, prefix_len: int, max_new_tokens: int):
        if prefix_len + max_new_tokens > self.max_context:
            raise ValueError(f"conversation {index}: prompt of {prefix_len} tokens plus max_new_tokens="
                             f"{max_new_tokens} exceeds the context of {self.max_context} tokens")

    def _prefill(self, encodings: list[dict]) -> PrefixState:
        """One batched forward over all prompts (images encoded once) into a DynamicCache."""
        batch = {k: v.to(self.model.device) for k, v in prompts.collate(encodings, self.pad_id).items()}
        lens = batch["attention_mask"].sum(dim=1)
        cache = DynamicCache(config=self.model.config)
        saved_deltas = getattr(self.base, "rope_deltas", None)
        self.base.rope_deltas = None
        try:
            with text_attention_implementation(self.net, self.prefill_attention):
                out = self.base(**batch, past_key_values=cache, use_cache=True)
            deltas = self.base.rope_deltas
        finally:
            self.base.rope_deltas = saved_deltas
        rows = torch.arange(lens.shape[0], device=lens.device)
        next_logits = self._logits(out.last_hidden_state[rows, lens - 1])
        deltas = torch.zeros_like(lens) if deltas is None else deltas.view(-1).to(lens)
        keys = [layer.keys.to(self.kv_dtype) for layer in cache.layers]
        values = [layer.values.to(self.kv_dtype) for layer in cache.layers]
        token_ids = [e["input_ids"][0].clone() for e in encodings]
        return PrefixState(keys, values, lens, lens + deltas, next_logits, token_ids)

    def _extend(self, prefix: PrefixState, new_ids: list[list[int]]) -> PrefixState:
        """Prefill each group's new tokens (possibly none) on top of its cached prefix."""
        device = prefix.lens.device
        new_lens = torch.tensor([len(ids) for ids in new_ids], device=device)
        width = int(new_lens.max())
        input_ids = torch.full((len(new_ids), width), self.pad_id, dtype=torch.long, device=device)
        for p, ids in enumerate(new_ids):
            input_ids[p, :len(ids)] = torch.as_tensor(ids, dtype=torch.long)
        positions = (prefix.next_pos[:, None] + torch.arange(width, device=device)).expand(3, -1, -1)
        cache = PrefixExtensionCache(prefix.keys, prefix.values, prefix.lens, new_lens, self.kv_dtype)
        with shared_prefix_attention_enabled(self.net):
            out = self.base(input_ids=input_ids, position_ids=positions, attention_mask=_NO_MASK,
                            past_key_values=cache, use_cache=True, **{CACHE_KWARG: cache})
        rows = torch.arange(len(new_ids), device=device)
        last = self._logits(out.last_hidden_state[rows, (new_lens - 1).clamp_min(0)])
        next_logits = torch.where((new_lens > 0)[:, None], last, prefix.next_logits)
        keys, values, lens = cache.extended_prefix()
        token_ids = [torch.cat([old, torch.as_tensor(ids, dtype=torch.long)])
                     for old, ids in zip(prefix.token_ids, new_ids)]
        return PrefixState(keys, values, lens, prefix.next_pos + new_lens, next_logits, token_ids)

    def _revision_turns(self, prepared, initial: list[Sample], revision_query_fn, is_well_formed_fn):
        """Per conversation (revision text, new prefix ids) or (None, []) when it falls back."""
        turns = []
        for index, ((conversation, query), o1) in enumerate(zip(prepared, initial)):
            if not is_well_formed_fn(o1.text):
                turns.append((None, []))
                continue
            revision_query = revision_query_fn(query, o1.text)
            follow = prompts.revision_turn_text(self.processor, conversation, o1.text, revision_query, index)
            kept = o1.token_ids[:-1] if o1.finish_reason == "stop" else o1.token_ids
            ids = kept.tolist() + self.tokenizer(follow, add_special_tokens=False)["input_ids"]
            turns.append((revision_query, ids))
        return turns

    def _logits(self, hidden: torch.Tensor) -> torch.Tensor:
        return self.net.get_output_embeddings()(hidden).float()

    def _decode(self, prefix: PrefixState, num_samples: int, max_new_tokens: int, params: SamplingParams,
                generator) -> list[list[Sample]]:
        """Sample ``num_samples`` continuations of every group's prefix, in one batch."""
        P, G = prefix.lens.shape[0], num_samples
        for p in range(P):
            self._check_length(p, int(prefix.lens[p]), max_new_tokens)
        cache = SharedPrefixCache(prefix.keys, prefix.values, prefix.lens, G, max_new_tokens, self.kv_dtype)
        tokens, logprobs, lengths, stopped = self._decode_loop(cache, prefix, G, max_new_tokens, params, generator)
        self._record(cache)
        return self._samples(tokens, logprobs, lengths, stopped, P, G)

    def _decode_loop(self, cache, prefix, G, max_new_tokens, params, generator):
        B = prefix.lens.shape[0] * G
        device = prefix.lens.device
        stop = torch.tensor(self.stop_ids, dtype=torch.long, device=device)
        suppress = torch.tensor(self.suppress_ids, dtype=torch.long, device=device)
        tokens = torch.full((B, max_new_tokens), self.pad_id, dtype=torch.long, device=device)
        logprobs = torch.zeros(B, max_new_tokens, dtype=torch.float32, device=device)
        lengths = torch.full((B,), max_new_tokens, dtype=torch.long, device=device)
        stopped = torch.zeros(B, dtype=torch.bool, device=device)
        positions = prefix.next_pos.repeat_interleave(G)
        logits = prefix.next_logits.repeat_interleave(G, dim=0)
        check_every = 8 if device.type == "cuda" else 1  # a stop check synchronises with the GPU
        backend = contextlib.nullcontext() if self.attention == "auto" else force_backend(self.attention)
        with shared_prefix_attention_enabled(self.net), backend:
            step = None
            for t in range(max_new_tokens):
                tokens[:, t], logprobs[:, t] = sample_next(logits, params, generator, suppress)
                if t == 0:
                    self._mark_first_token()
                newly = ~stopped & torch.isin(tokens[:, t], stop)
                lengths = torch.where(newly, t + 1, lengths)
                stopped |= newly
                if t + 1 == max_new_tokens or ((t + 1) % check_every == 0 and bool(stopped.all())):
                    break
                if step is None:
                    step = self._step_function(cache, B, device)
                with torch.profiler.record_function(DECODE_STEP):
                    logits = step(tokens[:, t], positions + t)
        return tokens, logprobs, lengths, stopped

    def _step_function(self, cache: SharedPrefixCache, batch: int, device: torch.device):
        use_graphs = self.cuda_graphs if self.cuda_graphs is not None else device.type == "cuda"
        if not use_graphs:
            return lambda tokens, positions: self._decode_step(cache, tokens, positions)
        if device.type != "cuda":
            raise ValueError("cuda_graphs=True needs a model on a CUDA device")
        try:
            return GraphedDecodeStep(self._forward_step, cache, batch, device)
        except Exception as error:  # capture is an optimisation: decode eagerly instead
            warnings.warn(f"CUDA graph capture of the decode step failed ({type(error).__name__}: {error}); "
                          "decoding eagerly", RuntimeWarning, stacklevel=2)
            return lambda tokens, positions: self._decode_step(cache, tokens, positions)

    def _forward_step(self, cache: SharedPrefixCache, tokens: torch.Tensor, positions: torch.Tensor):
        """One decode forward (no cache advance): next-token logits [B, V] fp32."""
        position_ids = positions.view(1, -1, 1).expand(3, -1, 1)
        out = self.base(input_ids=tokens[:, None], position_ids=position_ids, attention_mask=_NO_MASK,
                        past_key_values=cache, use_cache=True, **{CACHE_KWARG: cache})
        return self._logits(out.last_hidden_state[:, -1])

    def _decode_step(self, cache: SharedPrefixCache, tokens: torch.Tensor, positions: torch.Tensor):
        logits = self._forward_step(cache, tokens, positions)
        cache.advance()
        return logits

    def _samples(self, tokens, logprobs, lengths, stopped, P, G) -> list[list[Sample]]:
        tokens, logprobs, lengths, stopped = tokens.cpu(), logprobs.cpu(), lengths.tolist(), stopped.tolist()
        groups = []
        for p in range(P):
            group = []
            for b in range(p * G, (p + 1) * G):
                ids = tokens[b, :lengths[b]].clone()
                text = self.tokenizer.decode(ids, skip_special_tokens=True)
                group.append(Sample(ids, text, logprobs[b, :lengths[b]].clone(), "stop" if stopped[b] else "length"))
            groups.append(group)
        return groups

    # ---------------------------------------------------------------- bookkeeping

    def _mark_first_token(self):
        if "first_token_s" not in self.last_stats:
            if self.model.device.type == "cuda":
                torch.cuda.synchronize(self.model.device)
            self.last_stats["first_token_s"] = time.perf_counter() - self.last_stats["start"]

    def _record(self, cache: SharedPrefixCache):
        self.last_stats.update(
            prefix_kv_shape=tuple(cache.prefix_k[0].shape), suffix_kv_shape=tuple(cache.suffix_k[0].shape),
            prefix_kv_bytes=cache.prefix_bytes(), suffix_kv_bytes=cache.suffix_bytes(),
            decode_steps=cache.step + 1)

    def _compute_dtype(self) -> torch.dtype | None:
        device_type = self.model.device.type
        if self.dtype is None and torch.is_autocast_enabled(device_type):
            return torch.get_autocast_dtype(device_type)
        return self.dtype

    @contextlib.contextmanager
    def _rollout_mode(self):
        """For the call: the compute-dtype weights (``self.net`` / ``self.base``), eval mode,
        no autograd, no autocast, the model's CUDA device current; all restored after."""
        self.last_stats = {"start": time.perf_counter()}
        device = self.model.device
        self.net = self.weights.get(self._compute_dtype())
        self.base = getattr(self.net, self.net.base_model_prefix)
        self.kv_dtype = dtype = self.net.get_input_embeddings().weight.dtype
        self.last_stats.update(compute_dtype=str(dtype).replace("torch.", ""),
                               weight_refreshes=self.weights.refreshes)
        was_training = self.net.training
        self.net.eval()
        try:
            with torch.inference_mode(), torch.autocast(device.type, enabled=False), cuda_device(device):
                yield
        finally:
            self.net.train(was_training)
            self.net, self.base = self.model, getattr(self.model, self.model.base_model_prefix)
