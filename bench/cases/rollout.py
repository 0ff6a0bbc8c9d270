"""Rollout engine vs Hugging Face ``generate`` in the same run, for GRPO groups and GRO rounds.

Both sample fixed-length continuations (no early stop) of P image+text prompts.
- plain groups: ``generate(num_return_sequences=G)`` encodes each image and prefills each
  prompt G times and keeps G copies of its KV cache; the engine encodes and prefills once,
  keeps one prefix KV per group plus per-sample suffix buffers.
- the GRO round: one initial response o1, then G revisions of [prompt, o1, q2]. With
  ``generate`` that is a call for o1, then a call with ``num_return_sequences=G`` that
  re-encodes the image and re-prefills prompt + o1 + q2 G times; the engine prefills only
  o1 + q2, once, on top of the cached prompt.
Each call is timed whole, from conversations to token ids (processor included on both
sides). Implementations alternate within each repeat, so load on a shared machine hits
both alike; rows give the median, min and max over repeats of wall seconds and of the
calling thread's CPU seconds (steadier on a busy machine), tokens/s and the speed-up
(median of the per-repeat ratios, with their min and max), time to first token, KV bytes
and, on CUDA, peak memory.

Shapes: CPU (default there): a random Qwen2.5-VL of ~31 M parameters built from a config
with the offline tokenizer, one prompt with ~600 visual tokens, G = 8, 32 new tokens; the
advantage is structural (prefill shared), target >= 3x. GPU: the Qwen2.5-VL-3B shape with
random bf16 weights, ~1,000 visual + ~100 text tokens, G = 8 (``--check``: P = 2, N = 128;
full: P = 8, N = 256). ``--tiny``: the tiny model (a smoke run of the code paths).
"""
from __future__ import annotations

import statistics
import time

import torch
from PIL import Image

from bench.registry import case, synchronize
from gro_fast.generation import RolloutEngine, prompts

_QUERY_WORDS = ("find the small red circle to the left of the big blue square near the top of the "
                "picture and the tall green tree behind the white car ").split()

# ~31 M parameters: text decoder 8 x 512 (23 M with embeddings), vision tower 4 x 320 with
# its merger (8 M); the tiny tokenizer's vocabulary. The vision tower's share of the prefill
# FLOPs (~45%: it sees 4x as many patches as the decoder sees visual tokens) is about that
# of the real 3B model.
CPU_MODEL = dict(
    text=dict(hidden_size=512, intermediate_size=1408, num_hidden_layers=8, num_attention_heads=8,
              num_key_value_heads=2, max_position_embeddings=4096, tie_word_embeddings=True,
              rope_parameters={"rope_type": "default", "rope_theta": 1000000.0, "mrope_section": [8, 12, 12]}),
    vision=dict(depth=4, hidden_size=320, intermediate_size=864, num_heads=4, patch_size=14,
                spatial_merge_size=2, temporal_patch_size=2, window_size=112, fullatt_block_indexes=[3]),
    vocab_size=1344)
SHAPES = {
    # image (width, height): 28 px per visual token a side after the 2 x 2 merge.
    "tiny": dict(model="tiny", P=2, G=4, N=8, image=(112, 112), query_words=12, repeats=1),
    "cpu": dict(model="qwen2.5-vl-31m-random", P=1, G=8, N=32, image=(700, 672), query_words=12, repeats=5),
    "check": dict(model="qwen2.5-vl-3b-random", P=2, G=8, N=128, image=(896, 896), query_words=95, repeats=1),
    "gpu": dict(model="qwen2.5-vl-3b-random", P=8, G=8, N=256, image=(896, 896), query_words=95, repeats=1),
}


def _shape_name(ctx) -> str:
    if ctx.tiny:
        return "tiny"
    if ctx.is_cuda:
        return "check" if ctx.check else "gpu"
    return "cpu"


def _model(name: str, device):
    if name == "tiny":
        from gro_fast.models import tiny_qwen2_5_vl
        model, processor = tiny_qwen2_5_vl(seed=0)
        return model.to(device), processor
    from gro_fast.models import qwen2_5_vl_from_config
    if name == "qwen2.5-vl-31m-random":
        return qwen2_5_vl_from_config(CPU_MODEL, dtype=torch.float32, device=device)
    return qwen2_5_vl_from_config("qwen2.5-vl-3b", dtype=torch.bfloat16, device=device)


def _conversations(P: int, image, query_words: int):
    conversations = []
    for p in range(P):
        picture = Image.new("RGB", image, (40 * p % 255, 90, 200 - 20 * p % 200))
        words = [_QUERY_WORDS[(p + i) % len(_QUERY_WORDS)] for i in range(query_words)]
        conversations.append([{"role": "user", "content": [
            {"type": "image", "image": picture}, {"type": "text", "text": " ".join(words)}]}])
    return conversations


def _revision(query: str, initial: str) -> str:
    return f"Check each object of your answer to '{query}' again and correct it."


class HFRollouts:
    """The peer: Hugging Face ``generate`` on the same model, prompts and sampling."""

    def __init__(self, model, processor, suppress: list[int]):
        self.model, self.processor, self.suppress = model, processor, suppress

    def _inputs(self, encodings: list[dict]) -> dict:
        """Left-padded batch (how ``generate`` wants one) of single-conversation encodings."""
        width = max(e["input_ids"].shape[1] for e in encodings)
        batch = {}
        for key in ("input_ids", "attention_mask", "mm_token_type_ids"):
            if key in encodings[0]:
                fill = self.processor.tokenizer.pad_token_id if key == "input_ids" else 0
                batch[key] = torch.cat([torch.nn.functional.pad(e[key], (width - e[key].shape[1], 0), value=fill)
                                        for e in encodings])
        for key in ("pixel_values", "image_grid_thw"):
            batch[key] = torch.cat([e[key] for e in encodings])
        return {k: v.to(self.model.device) for k, v in batch.items()}

    def _generate(self, encodings, G: int, N: int):
        inputs = self._inputs(encodings)
        with torch.inference_mode():
            out = self.model.generate(**inputs, max_new_tokens=N, min_new_tokens=N, do_sample=True, top_k=0,
                                      temperature=1.0, num_return_sequences=G, return_dict_in_generate=True,
                                      suppress_tokens=self.suppress)
        return out.sequences[:, inputs["input_ids"].shape[1]:], out.past_key_values

    def groups(self, conversations, G: int, N: int):
        encodings = [prompts.encode(self.processor, prompts.prepare_conversation(c, i)[0])
                     for i, c in enumerate(conversations)]
        return self._generate(encodings, G, N)

    def gro_round(self, conversations, G: int, N: int):
        """o1 for each prompt, then G revisions of [prompt, o1, q2], all re-prefilled."""
        prepared = [prompts.prepare_conversation(c, i) for i, c in enumerate(conversations)]
        encodings = [prompts.encode(self.processor, c) for c, _ in prepared]
        initial, _ = self._generate(encodings, 1, N)
        revised = []
        for i, ((conversation, query), enc, o1) in enumerate(zip(prepared, encodings, initial.cpu())):
            text = self.processor.tokenizer.decode(o1, skip_special_tokens=True)
            follow = prompts.revision_turn_text(self.processor, conversation, text, _revision(query, text), i)
            extra = torch.cat([o1, torch.tensor(self.processor.tokenizer(follow, add_special_tokens=False)
                                                ["input_ids"])])[None]
            ids = torch.cat([enc["input_ids"], extra], dim=1)
            revised.append({**enc, "input_ids": ids, "attention_mask": torch.ones_like(ids),
                            **({"mm_token_type_ids": torch.nn.functional.pad(
                                enc["mm_token_type_ids"], (0, extra.shape[1]))} if "mm_token_type_ids" in enc else {})})
        samples, cache = self._generate(revised, G, N)
        return (initial, samples), cache


def _timed(fn, device):
    """(result, wall s, CPU s of this thread, peak CUDA MiB above the start or None)."""
    synchronize(device)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
        before = torch.cuda.memory_allocated(device)
    wall, cpu = time.perf_counter(), time.thread_time()
    result = fn()
    synchronize(device)
    wall, cpu = time.perf_counter() - wall, time.thread_time() - cpu
    peak = (torch.cuda.max_memory_allocated(device) - before) / 2**20 if device.type == "cuda" else None
    return result, wall, cpu, peak


def _cache_bytes(cache) -> int:
    return sum(t.numel() * t.element_size() for layer in cache.layers for t in (layer.keys, layer.values))


def _spread(values: list[float], prefix: str) -> dict:
    return {f"{prefix}_median": statistics.median(values), f"{prefix}_min": min(values), f"{prefix}_max": max(values)}


def _compare(mode: str, runs: dict, repeats: int, device, shape: dict, model_name: str) -> list[dict]:
    """Alternate the two implementations ``repeats`` times; rows with spreads and ratios."""
    measured = {name: [] for name in runs}
    order = list(runs)
    for r in range(repeats):
        for name in (order if r % 2 == 0 else order[::-1]):
            measured[name].append(_timed(runs[name]["fn"], device))
    rows = []
    for name, results in measured.items():
        tokens = runs[name]["tokens"]
        walls, cpus = [m[1] for m in results], [m[2] for m in results]
        extra = runs[name]["stats"](results[-1][0])
        peaks = [m[3] for m in results if m[3] is not None]
        rows.append(dict(impl=name, mode=mode, model=model_name, tokens=tokens,
                         tokens_per_s=tokens / statistics.median(walls), **_spread(walls, "s"),
                         **_spread(cpus, "cpu_s"), peak_mem_mb=max(peaks) if peaks else None, repeats=repeats,
                         shape=f"P{shape['P']}xG{shape['G']}xN{shape['N']}", **extra))
    ours, peer = rows
    for kind in ("s", "cpu_s"):
        ratios = [p[1 if kind == "s" else 2] / o[1 if kind == "s" else 2]
                  for o, p in zip(measured[ours["impl"]], measured[peer["impl"]])]
        ours.update({f"speedup_{kind}": statistics.median(ratios), f"speedup_{kind}_min": min(ratios),
                     f"speedup_{kind}_max": max(ratios)})
    ours["kv_ratio_vs_hf"] = ours["kv_cache_mb"] / peer["kv_cache_mb"]
    return rows


def _engine_stats(engine):
    def stats(_result):
        s = engine.last_stats
        return dict(ttft_s=s["first_token_s"], kv_cache_mb=(s["prefix_kv_bytes"] + s["suffix_kv_bytes"]) / 2**20,
                    prompt_tokens=s["prefix_kv_shape"][2])
    return stats


def _hf_stats(result):
    _, cache = result
    return dict(kv_cache_mb=_cache_bytes(cache) / 2**20)


@case("rollout_engine_vs_generate", "rollout")
def rollout_engine_vs_generate(ctx):
    threads = torch.get_num_threads()
    if ctx.device.type == "cpu":
        torch.set_num_threads(1)  # steadier on a shared machine; both sides get the same
    try:
        return _run(ctx)
    finally:
        torch.set_num_threads(threads)


def _run(ctx):
    name = _shape_name(ctx)
    shape = SHAPES[name]
    model, processor = _model(shape["model"], ctx.device)
    P, G, N = shape["P"], shape["G"], shape["N"]
    conversations = _conversations(P, shape["image"], shape["query_words"])
    engine = RolloutEngine(model, processor, stop_token_ids=[])
    hf = HFRollouts(model, processor, engine.suppress_ids)
    gro_kwargs = dict(is_well_formed_fn=lambda text: True, revision_query_fn=_revision)
    # Warm-up: kernels, allocator, CUDA graph pool, processor caches.
    engine.generate(conversations, G, 2, seed=0)
    engine.gro_round(conversations, G, 2, seed=0, **gro_kwargs)
    hf.groups(conversations, G, 2)
    plain = {"gro_fast_engine": dict(fn=lambda: engine.generate(conversations, G, N, seed=0), tokens=P * G * N,
                                     stats=_engine_stats(engine)),
             "hf_generate": dict(fn=lambda: hf.groups(conversations, G, N), tokens=P * G * N, stats=_hf_stats)}
    gro = {"gro_fast_engine": dict(fn=lambda: engine.gro_round(conversations, G, N, seed=0, **gro_kwargs),
                                   tokens=P * (G + 1) * N, stats=_engine_stats(engine)),
           "hf_generate": dict(fn=lambda: hf.gro_round(conversations, G, N), tokens=P * (G + 1) * N,
                               stats=_hf_stats)}
    rows = _compare("groups", plain, shape["repeats"], ctx.device, shape, shape["model"])
    rows += _compare("gro_round", gro, shape["repeats"], ctx.device, shape, shape["model"])
    params = sum(p.numel() for p in model.parameters())
    for row in rows:
        row.update(params_m=params / 1e6, threads=torch.get_num_threads())
    return rows
