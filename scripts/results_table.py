"""The README's results table, generated from what the benchmarks and the ablation wrote.

  python scripts/results_table.py                    print the Markdown table
  python scripts/results_table.py --write README.md  replace the text between
                                                     <!-- results:start --> and <!-- results:end -->

Reads every ``bench/results/*.json`` (``bench.run`` reports: ``environment`` and
``cases``) and, when it exists, ``bench/results/ablation/ablation.json`` (``gro-fast
ablation``'s report, see docs/ablation.md). One row per benchmark case: device, commit and
date, case, its headline number (gro_fast against the peers of the same run); one row per
ablation arm: mean ± std over seeds of the after-RL held-out Acc@0.5 on each split. It
reads results and formats them; it measures nothing. Standard library only.
"""
from __future__ import annotations

import argparse
import glob
import json
import os
import statistics
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
RESULTS = os.path.join(ROOT, "bench", "results")
START, END = "<!-- results:start -->", "<!-- results:end -->"
HEADER = ["| device | commit, date | case | headline |", "|---|---|---|---|"]
# Kernel cases whose CPU rows run the Triton interpreter or a reference path: on CPU they
# check correctness and say nothing about speed.
KERNEL_CASES = ("gro_policy_loss", "token_logprobs_nograd", "fused_linear_gro_loss")


def _num(value: float) -> str:
    return f"{value:.3g}" if abs(value) < 1000 else f"{value:,.0f}"


def _speedups(row: dict) -> list[str]:
    return [f"{_num(v)}x vs {k[len('speedup_vs_'):]}" for k, v in row.items()
            if k.startswith("speedup_vs_") and isinstance(v, (int, float))]


def _ours(rows: list[dict]) -> list[dict]:
    """gro_fast's measured rows: impl named gro_fast..., or rows that carry a speed-up over
    another implementation (a peer's row may carry its ratio to itself, 1)."""
    def has_speedup(r):
        return any(k.startswith("speedup") and k != f"speedup_vs_{r.get('impl')}" for k in r)
    return [r for r in rows if "skipped" not in r and (
        str(r.get("impl", "")).startswith("gro_fast") or has_speedup(r))]


def _label(row: dict, rows: list[dict]) -> str:
    """What tells this row from the other rows of ours (mode, task, threads, shape)."""
    keys = [k for k in ("mode", "task", "threads", "impl", "shape", "B", "T", "N", "H")
            if len({str(r.get(k)) for r in rows}) > 1]
    return ", ".join(f"{k}={row.get(k)}" for k in keys)


def generic(rows: list[dict], env: dict) -> str:
    """The default headline: per gro_fast row, its time, its speed-ups over the peers of the
    same run and its share of the device's peak (the peers' times when there is no such row)."""
    ours = _ours(rows)
    if not ours:
        return "; ".join(f"{r.get('impl')} {_num(r['ms'])} ms" for r in rows if "ms" in r) or "-"
    parts = []
    for row in ours:
        time = f"{_num(row['us_per_pair'])} us/pair" if "us_per_pair" in row else \
            f"{_num(row['ms'])} ms" if "ms" in row else ""
        extra = [] if row.get("pct_of_peak") is None else [f"{_num(row['pct_of_peak'])}% of peak"]
        if "target_ms" in row:
            extra.append(f"target < {_num(row['target_ms'])} ms")
        text = ", ".join(x for x in [time, *_speedups(row), *extra] if x)
        label = _label(row, ours)
        parts.append(f"{label}: {text}" if label else text)
    return "; ".join(parts)


def kernel(rows: list[dict], env: dict) -> str:
    """Kernel cases: on CPU only a correctness run, on GPU the default headline."""
    if env.get("device_type") == "cpu":
        return "CPU: Triton interpreter / reference path, a correctness run, not a speed"
    return generic(rows, env)


def rollout(rows: list[dict], env: dict) -> str:
    parts = []
    hf = {r.get("mode"): r for r in rows if r.get("impl") == "hf_generate"}
    for row in (r for r in rows if r.get("impl") == "gro_fast_engine"):
        ratio = row.get("speedup_s", row.get("speedup_vs_hf"))
        if ratio is None:
            continue
        text = f"{row.get('mode') or 'groups'}: {_num(ratio)}x HF generate"
        if "speedup_s_min" in row:
            text += f" (per repeat {_num(row['speedup_s_min'])}-{_num(row['speedup_s_max'])}x)"
        peer = hf.get(row.get("mode"), {})
        if "kv_cache_mb" in row and "kv_cache_mb" in peer:
            text += f", KV {_num(row['kv_cache_mb'])} vs {_num(peer['kv_cache_mb'])} MiB"
        parts.append(text)
    model = next((r.get("model") for r in rows if r.get("model")), "?")
    return f"model {model}, {rows[0].get('shape', '')}: " + "; ".join(parts) if parts else "-"


def train_step(rows: list[dict], env: dict) -> str:
    parts = [f"{r['impl']}: {_num(r['ms'])} ms/step (rollout {_num(r['rollout_ms'])}, "
             f"scoring {_num(r['scoring_ms'])}, log-probs {_num(r['logprobs_ms'])}, "
             f"update {_num(r['update_ms'])})" for r in rows if "ms" in r]
    return "; ".join(parts) or "-"


def eval_throughput(rows: list[dict], env: dict) -> str:
    ours = [r for r in rows if r.get("impl") == "gro_fast" and "samples_per_s" in r]
    if not ours:
        return "-"
    parts = [f"{r['task']} {_num(r['samples_per_s'])} samples/s, "
             f"{100 * r['outside_generation_share']:.1f}% outside generation" for r in ours]
    return "; ".join(parts) + f" (target < {100 * ours[0].get('target_share', 0.05):.0f}%)"


def data_pipeline(rows: list[dict], env: dict) -> str:
    parts = [f"{r['impl']} {_num(r['ms'])} ms" for r in rows if "ms" in r]
    ratio = next((r["vs_peer"] for r in rows if "vs_peer" in r), None)
    return ", ".join(parts) + (f" (RLE decode {_num(ratio)}x pycocotools' time)" if ratio else "")


HEADLINES = {"rollout_engine_vs_generate": rollout, "train_step": train_step,
             "eval_throughput": eval_throughput, "data_pipeline": data_pipeline,
             **{name: kernel for name in KERNEL_CASES}}


def _device(env: dict, report: dict) -> str:
    scale = "tiny" if report.get("tiny") else "check" if report.get("check") else \
        "quick" if report.get("quick") else "full"
    name = env.get("device", "?")
    if env.get("device_type") == "cpu":
        threads = env.get("cpu_threads", "?")
        name += f" CPU, {env['jobs']} process(es) x {threads} thread(s)" if "jobs" in env \
            else f" CPU, {threads} threads"
    return f"{name}, {scale}"


def _stamp(env: dict, name: str) -> str:
    commit = env.get("commit") or "?"
    commit = commit[:7] + ("-dirty" if commit.endswith("-dirty") else "")
    return f"`{commit}` {str(env.get('date', '?'))[:10]} ({name})"


def bench_rows(path: str) -> list[str]:
    with open(path) as f:
        report = json.load(f)
    env = report.get("environment", {})
    device, stamp = _device(env, report), _stamp(env, os.path.basename(path))
    lines = []
    for case, result in report.get("cases", {}).items():
        if "error" in result:
            headline = "error: " + (str(result["error"]).strip().splitlines() or ["?"])[0][:80]
        else:
            headline = HEADLINES.get(case, generic)(result.get("rows", []), env)
        lines.append(f"| {device} | {stamp} | {case} | {headline} |")
    return lines


def _mean_std(values: list[float]) -> str:
    std = statistics.stdev(values) if len(values) > 1 else 0.0
    return f"{statistics.fmean(values):.3f} ± {std:.3f}"


def _provenance(folder: str) -> dict:
    """``run.json`` beside an ablation.json written before reports recorded their
    environment: {device, commit, date} as written by hand when the run was committed."""
    try:
        with open(os.path.join(folder, "run.json")) as f:
            run = json.load(f)
    except OSError:
        return {}
    return {"device": run.get("device", "?"), "commit": run.get("commit"),
            "date": run.get("date")}


def ablation_rows(path: str) -> list[str]:
    """Per arm: after-RL held-out Acc@0.5, mean ± std over seeds, on each split."""
    with open(path) as f:
        report = json.load(f)
    settings = report.get("settings", {})
    env = report.get("environment") or _provenance(os.path.dirname(path))
    device = _device(env, {"full": True}) if env else "-"
    stamp = _stamp(env, "ablation/ablation.json") if env else "- (ablation/ablation.json)"
    lines, metric = [], "/acc_at_0.5"
    for arm, seeds in report.get("runs", {}).items():
        afters = [run["after"] for run in seeds.values()]
        splits = [k[:-len(metric)] for k in (afters[0] if afters else {}) if k.endswith(metric)]
        scores = ", ".join(f"{s} {_mean_std([a[s + metric] for a in afters])}" for s in splits)
        case = (f"ablation `{arm}` ({len(seeds)} seeds, {settings.get('token_budget', '?')} "
                f"tokens, {settings.get('eval_size', '?')} prompts per split)")
        lines.append(f"| {device} | {stamp} | {case} | after-RL held-out Acc@0.5: "
                     f"{scores or '-'} |")
    return lines


def table(results: str = RESULTS) -> str:
    lines = list(HEADER)
    for path in sorted(glob.glob(os.path.join(results, "*.json"))):
        lines += bench_rows(path)
    ablation = os.path.join(results, "ablation", "ablation.json")
    if os.path.exists(ablation):
        lines += ablation_rows(ablation)
    return "\n".join(lines)


def replace_block(text: str, block: str) -> str:
    """``text`` with everything between the two markers replaced by ``block``."""
    start, end = text.find(START), text.find(END)
    if start < 0 or end < start:
        raise ValueError(f"markers {START} ... {END} not found (in that order)")
    return text[:start + len(START)] + "\n" + block + "\n" + text[end:]


def block_of(text: str) -> str:
    """The text between the two markers (what ``--write`` put there)."""
    start, end = text.find(START), text.find(END)
    if start < 0 or end < start:
        raise ValueError(f"markers {START} ... {END} not found (in that order)")
    return text[start + len(START):end].strip("\n")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--results", default=RESULTS,
                        help="folder of bench results (default %(default)s)")
    parser.add_argument("--write", metavar="FILE", help="replace the marked block of FILE")
    args = parser.parse_args(argv)
    block = table(args.results)
    if not args.write:
        print(block)
        return 0
    with open(args.write) as f:
        text = f.read()
    try:
        text = replace_block(text, block)
    except ValueError as exc:
        print(f"{args.write}: {exc}", file=sys.stderr)
        return 2
    with open(args.write, "w") as f:
        f.write(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
