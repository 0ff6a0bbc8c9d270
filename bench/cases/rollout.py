"""Rollout engine vs Hugging Face ``generate(num_return_sequences=G)`` in the same run.

Both sample G fixed-length continuations (no early stop) of P image+text prompts.
``generate`` prefills every prompt G times and keeps G copies of its KV cache; the
engine prefills each prompt once and keeps one prefix KV per group plus per-sample
suffix buffers. Measured per implementation: generated tokens per second (P * G * N over
the whole call, prefill included), time to first token, peak CUDA memory of the call,
KV-cache bytes. GPU shape (issue 5): Qwen2.5-VL-3B shape with random weights, bf16,
P = 8 prompts of ~1,024 visual + ~100 text tokens, G = 8, N = 256. CPU (quick): the tiny
model, P = 4, G = 4, N = 16.
"""
from __future__ import annotations

import time

import torch
from PIL import Image

from bench.registry import case, synchronize
from gro_fast.generation import RolloutEngine, prompts

_QUERY_WORDS = ("find the small red circle to the left of the big blue square near the top of the "
                "picture and the tall green tree behind the white car ").split()


def _conversations(P: int, image_px: int, query_words: int):
    conversations = []
    for p in range(P):
        image = Image.new("RGB", (image_px, image_px), (40 * p % 255, 90, 200 - 20 * p % 200))
        words = [_QUERY_WORDS[(p + i) % len(_QUERY_WORDS)] for i in range(query_words)]
        conversations.append([{"role": "user", "content": [
            {"type": "image", "image": image}, {"type": "text", "text": " ".join(words)}]}])
    return conversations


def _setup(ctx):
    if ctx.quick:
        from gro_fast.models import tiny_qwen2_5_vl
        model, processor = tiny_qwen2_5_vl(seed=0)
        return model.to(ctx.device), processor, dict(P=4, G=4, N=16, image_px=112, query_words=12)
    from gro_fast.models import qwen2_5_vl_from_config
    model, processor = qwen2_5_vl_from_config("qwen2.5-vl-3b", dtype=torch.bfloat16, device=ctx.device)
    # 896 x 896 px = 64 x 64 patches = 1,024 visual tokens; ~95 query words ~ 100 text tokens.
    return model, processor, dict(P=8, G=8, N=256, image_px=896, query_words=95)


def _measure(fn, device, repeats: int = 1):
    """(result, seconds, peak CUDA MiB above the start or None); the fastest of ``repeats``."""
    runs = [_measure_once(fn, device) for _ in range(repeats)]
    return min(runs, key=lambda run: run[1])


def _measure_once(fn, device):
    synchronize(device)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
        before = torch.cuda.memory_allocated(device)
    start = time.perf_counter()
    result = fn()
    synchronize(device)
    seconds = time.perf_counter() - start
    peak = (torch.cuda.max_memory_allocated(device) - before) / 2**20 if device.type == "cuda" else None
    return result, seconds, peak


def _hf_inputs(processor, conversations, device):
    """The prompts as one left-padded batch (how ``generate`` wants a batch)."""
    encoded = [prompts.encode(processor, prompts.prepare_conversation(c, i)[0]) for i, c in enumerate(conversations)]
    width = max(e["input_ids"].shape[1] for e in encoded)
    batch = {}
    for key in ("input_ids", "attention_mask", "mm_token_type_ids"):
        if key in encoded[0]:
            fill = processor.tokenizer.pad_token_id if key == "input_ids" else 0
            batch[key] = torch.cat([torch.nn.functional.pad(e[key], (width - e[key].shape[1], 0), value=fill)
                                    for e in encoded])
    for key in ("pixel_values", "image_grid_thw"):
        batch[key] = torch.cat([e[key] for e in encoded])
    return {k: v.to(device) for k, v in batch.items()}


def _hf_generate(model, inputs, G, N, suppress):
    with torch.inference_mode():
        return model.generate(**inputs, max_new_tokens=N, min_new_tokens=N, do_sample=True, top_k=0,
                              temperature=1.0, num_return_sequences=G, return_dict_in_generate=True,
                              suppress_tokens=suppress)


def _cache_bytes(cache) -> int:
    return sum(t.numel() * t.element_size() for layer in cache.layers for t in (layer.keys, layer.values))


def _row(impl, tokens, seconds, ttft, peak, kv_bytes, **extra):
    return dict(impl=impl, tokens=tokens, s=seconds, tokens_per_s=tokens / seconds, ttft_s=ttft,
                peak_mem_mb=peak, kv_cache_mb=kv_bytes / 2**20, **extra)


@case("rollout_engine_vs_generate", "rollout")
def rollout_engine_vs_generate(ctx):
    threads = torch.get_num_threads()
    if ctx.device.type == "cpu":
        torch.set_num_threads(1)  # tiny ops: intra-op threads only add spin-wait noise
    try:
        return _compare(ctx)
    finally:
        torch.set_num_threads(threads)


def _compare(ctx):
    model, processor, shape = _setup(ctx)
    repeats = 3 if ctx.quick else 1
    P, G, N = shape["P"], shape["G"], shape["N"]
    conversations = _conversations(P, shape["image_px"], shape["query_words"])
    engine = RolloutEngine(model, processor, stop_token_ids=[])
    def run_engine():
        return engine.generate(conversations, G, N, temperature=1.0, seed=0), dict(engine.last_stats)

    run_engine()  # warm-up (kernels, allocator, CUDA graph pool)
    (groups, stats), seconds, peak = _measure(run_engine, ctx.device, repeats)
    prompt_tokens = sum(g.prompt_token_ids.numel() for g in groups) // P
    tokens = sum(s.length for g in groups for s in g.samples)
    ours = _row("gro_fast_engine", tokens, seconds, stats["first_token_s"], peak,
                stats["prefix_kv_bytes"] + stats["suffix_kv_bytes"],
                prefix_kv_mb=stats["prefix_kv_bytes"] / 2**20, suffix_kv_mb=stats["suffix_kv_bytes"] / 2**20)

    inputs = _hf_inputs(processor, conversations, ctx.device)
    _hf_generate(model, inputs, G, 2, engine.suppress_ids)  # warm-up
    _, ttft, _ = _measure(lambda: _hf_generate(model, inputs, G, 1, engine.suppress_ids), ctx.device, repeats)
    out, seconds, peak = _measure(lambda: _hf_generate(model, inputs, G, N, engine.suppress_ids), ctx.device, repeats)
    hf_tokens = (out.sequences.shape[1] - inputs["input_ids"].shape[1]) * out.sequences.shape[0]
    hf = _row("hf_generate", hf_tokens, seconds, ttft, peak, _cache_bytes(out.past_key_values))
    label = f"P{P}xG{G}xN{N}xprompt{prompt_tokens}"
    for row in (ours, hf):
        row.update(shape=label, model="tiny" if ctx.quick else "qwen2.5-vl-3b-random")
    ours["speedup_vs_hf"] = ours["tokens_per_s"] / hf["tokens_per_s"]
    ours["kv_ratio_vs_hf"] = ours["kv_cache_mb"] / hf["kv_cache_mb"]
    return [ours, hf]
