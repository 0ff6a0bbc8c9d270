"""Evaluation throughput: samples per second of ``gro_fast.eval.evaluate`` end to end, and
the share of its time spent outside generation (reading samples, parsing, segmenting, IoU,
writing samples.jsonl and the PNG grid). Target: under 5 % of the time outside generation.

- CPU (``--quick``): the tiny random Qwen2.5-VL on 32 synthetic held-out samples
  (112 x 112 images), greedy, 32 new tokens, batch 8.
- GPU: a Qwen2.5-VL-3B-shaped model with random weights (bf16), 64 synthetic samples of
  840 x 840 (Seg-Zero's input size, about 900 visual tokens), 256 new tokens, batch 16.
  Random weights rarely stop early, so every answer costs the full budget: the run is
  generation-bound as a real one is.

Each CPU row is the median of 3 runs (GPU: one run, generation-bound and steady). Rows:
one per task ("seg" with the box segmenter, "rec", "count") with ``samples_per_s``,
the time split (generation / data / scoring / writing samples.jsonl / the one-off PNG
grid), ``outside_generation_share`` and the per-sample overhead without the grid;
plus ``hf_generate``: the "rec" run with transformers' ``model.generate`` (batched,
left-padded, greedy) in place of ``RolloutEngine``, and the engine's speed-up over it.
No SAM2 checkpoint is available offline, so SAM2's own cost is not part of these rows.
On CPU the tiny model generates so fast that fixed per-run costs (the PNG grid, tens of ms)
weigh in the share; the target is meant for the generation-bound GPU run.
"""
from __future__ import annotations

import tempfile

import torch

from bench.registry import case
from gro_fast.data import SyntheticGroundingTask
from gro_fast.eval.runner import EvalConfig, evaluate
from gro_fast.generation import RolloutEngine

QUICK = dict(model="tiny", samples=32, image_size=112, max_new_tokens=32, batch_size=8, repeats=3)
FULL = dict(model="qwen2.5-vl-3b", samples=64, image_size=840, max_new_tokens=256, batch_size=16,
            repeats=1)


def _model(spec: dict, device: torch.device):
    from gro_fast import models
    if spec["model"] == "tiny":
        model, processor = models.tiny_qwen2_5_vl(seed=0)
        return model.to(device).eval(), processor
    return models.qwen2_5_vl_from_config(spec["model"], dtype=torch.bfloat16, device=device)


class HFGenerateEngine:
    """The peer: transformers' batched greedy ``generate`` behind the engine's interface."""

    def __init__(self, model, processor):
        self.model, self.processor = model, processor

    def generate(self, conversations, num_samples, max_new_tokens, temperature=0.0, **_):
        from gro_fast.generation.types import RolloutGroup, Sample
        texts = [self.processor.apply_chat_template(c, tokenize=False, add_generation_prompt=True)
                 for c in conversations]
        images = [item["image"] for c in conversations for m in c for item in m["content"]
                  if isinstance(item, dict) and item.get("type") == "image"]
        self.processor.tokenizer.padding_side = "left"
        inputs = self.processor(text=texts, images=images, padding=True, return_tensors="pt")
        inputs = inputs.to(self.model.device)
        with torch.inference_mode():
            out = self.model.generate(**inputs, max_new_tokens=max_new_tokens, do_sample=False)
        new = out[:, inputs["input_ids"].shape[1]:]
        decoded = self.processor.batch_decode(new, skip_special_tokens=True)
        return [RolloutGroup(ids, {}, [Sample(row, text, torch.zeros(len(row)), "length")])
                for ids, row, text in zip(inputs["input_ids"], new, decoded)]


def _run(engine, samples, task: str, spec: dict) -> dict:
    """Time split of the median of ``repeats`` full evaluations (after a one-batch warm-up)."""
    config = EvalConfig(task=task, batch_size=spec["batch_size"], resume=False,
                        max_new_tokens=spec["max_new_tokens"], grid_samples=8)
    with tempfile.TemporaryDirectory() as out:
        evaluate(engine, samples[:spec["batch_size"]], out, config)
        timings = [evaluate(engine, samples, out, config)["timing"] for _ in range(spec["repeats"])]
    return sorted(timings, key=lambda t: t["total_s"])[len(timings) // 2]


def _row(impl: str, task: str, spec: dict, timing: dict) -> dict:
    return {"impl": impl, "task": task, "model": spec["model"], "samples": timing["samples"],
            "ms": 1e3 * timing["total_s"], "samples_per_s": timing["samples_per_s"],
            "generation_s": timing["generation_s"], "data_s": timing["data_s"],
            "scoring_s": timing["scoring_s"], "writing_s": timing["writing_s"], "grid_s": timing["grid_s"],
            "outside_generation_share": timing["outside_generation_share"],
            "per_sample_overhead_ms": 1e3 * (timing["outside_generation_s"] - timing["grid_s"])
            / max(1, timing["samples"]),
            "target_share": 0.05, "threads": torch.get_num_threads()}


@case("eval_throughput", "eval")
def eval_throughput(ctx):
    spec = QUICK if ctx.quick else FULL
    threads = torch.get_num_threads()
    if ctx.device.type == "cpu":
        torch.set_num_threads(1)  # tiny matrices: threads only add contention noise
    try:
        return _rows(ctx, spec)
    finally:
        torch.set_num_threads(threads)


def _rows(ctx, spec: dict) -> list:
    model, processor = _model(spec, ctx.device)
    task_data = SyntheticGroundingTask(seed=0, image_size=spec["image_size"], split="heldout",
                                       difficulty="mixed", length=spec["samples"])
    samples = [task_data[i] for i in range(len(task_data))]  # drawn once, outside the timing
    engine = RolloutEngine(model, processor)
    rows = [_row("gro_fast", task, spec, _run(engine, samples, task, spec))
            for task in ("seg", "rec", "count")]
    try:
        timing = _run(HFGenerateEngine(model, processor), samples, "rec", spec)
        peer = _row("hf_generate", "rec", spec, timing)
        peer["engine_speedup"] = rows[1]["samples_per_s"] / peer["samples_per_s"]
        rows.append(peer)
    except Exception as exc:  # a peer that cannot run is reported, not fatal
        rows.append({"impl": "hf_generate", "task": "rec", "skipped": f"{type(exc).__name__}: {exc}"})
    return rows
