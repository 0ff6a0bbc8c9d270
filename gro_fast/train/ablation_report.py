"""The ablation's reports: ``ablation.json``, ``ablation.md`` and ``ablation.png``.

Reads the finished runs' records (``ablation.py`` collects them) and writes: the JSON of
every arm and seed (curves, held-out scores before and after RL on both splits, zero-signal
fractions, dphi on all-fail groups, generated tokens, wall time); a Markdown table of
mean +- std over seeds with the paired per-seed differences gro - grpo and revision - grpo
(and each seed's warm start: its held-out Acc@0.5 and image reliance);
and a figure of held-out Acc@0.5 against generated tokens per arm and split, beside the
zero-signal fraction per arm. It computes statistics of the records, nothing else.
"""
from __future__ import annotations

import json
import math
import os
from dataclasses import asdict

from .ablation_run import SPLITS
from .scoring import BY_KIND

METRICS = ("acc_at_0.5", "mean_iou", "accuracy")
PAIRS = (("gro", "grpo"), ("revision", "grpo"))
DPHI_BINS = (0.0, 1e-9, 0.1, 0.25, 0.5, 0.75, 1.0 + 1e-9)
KIND_HEADS = {"all_fail_frac": "all-fail", "zero_variance_frac": "zero-variance",
              "improved_frac": "dphi>0"}
"""The by-kind table's column name of each ``scoring.BY_KIND`` metric."""


def mean_std(values: list[float]) -> tuple[float, float]:
    """Mean and unbiased standard deviation (0 for a single value, nan for none)."""
    if not values:
        return float("nan"), float("nan")
    mean = sum(values) / len(values)
    if len(values) < 2:
        return mean, 0.0
    return mean, math.sqrt(sum((v - mean) ** 2 for v in values) / (len(values) - 1))


def dphi_summary(values: list[float]) -> dict:
    """The dphi distribution on all-fail groups: count, mean, share > 0, histogram."""
    counts = [sum(lo <= v < hi for v in values) for lo, hi in zip(DPHI_BINS, DPHI_BINS[1:])]
    return {"count": len(values), "mean": mean_std(values)[0] if values else 0.0,
            "positive_frac": sum(v > 0 for v in values) / len(values) if values else 0.0,
            "histogram": {"edges": ["0", "(0,0.1)", "[0.1,0.25)", "[0.25,0.5)", "[0.5,0.75)",
                                    "[0.75,1]"], "counts": counts}}


def kinds_in(records) -> list[str]:
    """The kinds K of training prompt that ``groups/K`` keys name in ``records`` (dicts)."""
    return sorted({k.split("/", 1)[1] for r in records for k in r if k.startswith("groups/")})


def by_kind(steps: list[dict]) -> dict:
    """Per kind of training prompt K (keys ``<metric>/K`` of the steps): each fraction over
    all of the run's groups of that kind (steps weighted by their ``groups/K``)."""
    kinds = kinds_in(steps)
    out = {}
    for kind in kinds:
        counted = [s for s in steps if s.get(f"groups/{kind}", 0) > 0]
        total = sum(s[f"groups/{kind}"] for s in counted)
        out[f"groups/{kind}"] = total
        for metric in BY_KIND:
            out[f"{metric}/{kind}"] = sum(s[f"{metric}/{kind}"] * s[f"groups/{kind}"]
                                          for s in counted) / total if total else 0.0
    return out


def run_summary(record: dict) -> dict:
    """One run's report entry: scores before / after, signal means, dphi distribution."""
    steps = record.get("steps", [])
    signal = {k: mean_std([s[k] for s in steps if k in s])[0]
              for k in ("zero_variance_frac", "all_fail_frac", "fell_back_frac", "dphi_mean")}
    signal.update(by_kind(steps))
    return {"before": record["before"], "after": record["after"], "curve": record["curve"],
            "signals": signal, "all_fail_dphi": dphi_summary(record.get("all_fail_dphi", [])),
            "num_steps": record["num_steps"], "generated_tokens": record["generated_tokens"],
            "wall_s": record["wall_s"]}


def _value(summary: dict, stage: str, split: str, metric: str) -> float:
    return summary[stage].get(f"{split}/{metric}", float("nan"))


def _fmt(values: list[float], digits: int = 3) -> str:
    mean, std = mean_std(values)
    return f"{mean:.{digits}f} ± {std:.{digits}f}" if values else "-"


def markdown(ab, summaries: dict[str, dict[int, dict]], warm: dict,
             pretrain: dict | None = None) -> str:
    """The ``ablation.md`` text (see the module docstring)."""
    arms = [a for a in ab.arms if summaries.get(a)]
    seeds = sorted({s for a in arms for s in summaries[a]})
    lines = [f"# GRO vs GRPO ablation ({len(seeds)} seed(s): {seeds})", "",
             f"Budget per run: {ab.token_budget} generated tokens; held-out: {ab.eval_size} "
             "prompts per split, greedy. Mean ± std over seeds.", ""]
    lines += _warm_starts(warm, pretrain)
    for split in SPLITS:
        lines += [f"## {split} split", "",
                  "| arm | " + " | ".join(f"{m} before → after" for m in METRICS) + " | steps |",
                  "|---|" + "---|" * (len(METRICS) + 1)]
        for arm in arms:
            runs = summaries[arm]
            cells = [f"{_fmt([_value(r, 'before', split, m) for r in runs.values()])} → "
                     f"{_fmt([_value(r, 'after', split, m) for r in runs.values()])}"
                     for m in METRICS]
            lines.append(f"| {arm} | " + " | ".join(cells) +
                         f" | {_fmt([r['num_steps'] for r in runs.values()], 1)} |")
        lines += [""] + _paired(summaries, split) + [""]
    lines += _signals(arms, summaries)
    return "\n".join(lines) + "\n"


def _warm_starts(warm: dict, pretrain: dict | None = None) -> list[str]:
    """Each seed's shared warm start (and the pretraining every seed starts from, when
    there is one): held-out Acc@0.5 and whether it looks at the image (``image_nll_gain``,
    nats per answer; about 0: it answers without looking)."""
    seeds = sorted((s for s in warm if warm[s]), key=int)
    if not seeds and not pretrain:
        return []
    lines = ["## Warm starts (the arms' shared start, per seed)", "",
             "| seed | " + " | ".join(f"{split} acc_at_0.5" for split in SPLITS) + " | " +
             " | ".join(f"{split} image NLL gain" for split in SPLITS) + " |",
             "|---|" + "---|" * (2 * len(SPLITS))]
    rows = ([("pretraining (every seed)", pretrain)] if pretrain else []) + \
        [(str(seed), warm[seed]) for seed in seeds]
    for name, record in rows:
        reliance = record.get("image_reliance") or {}
        acc = [f"{record['heldout'].get(f'{split}/acc_at_0.5', float('nan')):.3f}"
               for split in SPLITS]
        gain = [f"{reliance[split]['image_nll_gain']:+.3f}" if split in reliance else "-"
                for split in SPLITS]
        lines.append(f"| {name} | " + " | ".join(acc + gain) + " |")
    return lines + [""]


def _paired(summaries: dict, split: str) -> list[str]:
    """Per-seed differences of the after-RL scores, a - b, over the seeds both ran."""
    lines = [f"Paired per-seed differences after RL ({split}):", "",
             "| difference | " + " | ".join(METRICS) + " | per seed (acc_at_0.5) |",
             "|---|" + "---|" * (len(METRICS) + 1)]
    for a, b in PAIRS:
        common = sorted(set(summaries.get(a, {})) & set(summaries.get(b, {})))
        if not common:
            continue
        diffs = {m: [_value(summaries[a][s], "after", split, m) -
                     _value(summaries[b][s], "after", split, m) for s in common] for m in METRICS}
        per_seed = ", ".join(f"{d:+.3f}" for d in diffs["acc_at_0.5"])
        lines.append(f"| {a} - {b} | " + " | ".join(_fmt(diffs[m]) for m in METRICS) +
                     f" | {per_seed} |")
    return lines


def _signals(arms: list[str], summaries: dict) -> list[str]:
    lines = ["## Where the signals differ (means over RL steps, then over seeds)", "",
             "| arm | zero-variance groups | all-fail groups | fell back to GRPO |"
             " dphi>0 on all-fail revisions | mean dphi on all-fail | generated tokens | wall s |",
             "|---|---|---|---|---|---|---|---|"]
    for arm in arms:
        runs = list(summaries[arm].values())
        lines.append(
            f"| {arm} | {_fmt([r['signals']['zero_variance_frac'] for r in runs])} | "
            f"{_fmt([r['signals']['all_fail_frac'] for r in runs])} | "
            f"{_fmt([r['signals']['fell_back_frac'] for r in runs])} | "
            f"{_fmt([r['all_fail_dphi']['positive_frac'] for r in runs])} | "
            f"{_fmt([r['all_fail_dphi']['mean'] for r in runs])} | "
            f"{_fmt([r['generated_tokens'] for r in runs], 0)} | "
            f"{_fmt([r['wall_s'] for r in runs], 0)} |")
    kinds = kinds_in(r["signals"] for arm in arms for r in summaries[arm].values())
    if not kinds:  # runs recorded before the per-kind statistics
        return lines
    head = " | ".join(f"{KIND_HEADS[metric]} ({kind})" for metric in BY_KIND for kind in kinds)
    lines += ["", "By kind of training prompt (over all groups of that kind, then over seeds; "
              "dphi>0: share of revisions, all groups):", "", f"| arm | {head} |",
              "|---" * (1 + len(BY_KIND) * len(kinds)) + "|"]
    for arm in arms:
        runs = list(summaries[arm].values())
        cells = [_fmt([r["signals"].get(f"{metric}/{kind}", float("nan")) for r in runs])
                 for metric in BY_KIND for kind in kinds]
        lines.append(f"| {arm} | " + " | ".join(cells) + " |")
    return lines


def plot(path: str, ab, summaries: dict) -> None:
    """Held-out Acc@0.5 vs generated tokens (hard, easy; mean over seeds) and the
    zero-signal fraction per arm."""
    import matplotlib
    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt
    fig, axes = plt.subplots(1, 3, figsize=(14, 3.8))
    for ax, split in zip(axes, SPLITS):
        for arm in ab.arms:
            runs = list(summaries.get(arm, {}).values())
            if runs:
                xs, ys = _mean_curve(runs, f"{split}/acc_at_0.5")
                ax.plot(xs, ys, marker="o", markersize=3, label=arm)
        ax.set(title=f"held-out Acc@0.5, {split} split", xlabel="generated tokens")
        ax.grid(alpha=0.3)
        ax.legend()
    arms = [a for a in ab.arms if summaries.get(a)]
    for k, key in enumerate(("zero_variance_frac", "all_fail_frac")):
        values = [mean_std([r["signals"][key] for r in summaries[a].values()])[0] for a in arms]
        axes[2].bar([i + 0.4 * k for i in range(len(arms))], values, width=0.4,
                    label=key.replace("_frac", " groups"))
    axes[2].set_xticks([i + 0.2 for i in range(len(arms))], arms)
    axes[2].set(title="zero-signal fraction per arm", ylim=(0, 1))
    axes[2].legend()
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


def _mean_curve(runs: list[dict], key: str) -> tuple[list[float], list[float]]:
    """The curve averaged over seeds, point by point (runs share their evaluation marks;
    the x value is the mean of the seeds' token counts at that point)."""
    curves = [[p for p in r["curve"] if key in p] for r in runs]
    n = min(len(c) for c in curves)
    xs = [sum(c[i]["tokens"] for c in curves) / len(curves) for i in range(n)]
    ys = [sum(c[i][key] for c in curves) / len(curves) for i in range(n)]
    return xs, ys


def write_reports(out: str, ab, results: dict[str, dict[int, dict]], warm: dict,
                  pretrain: dict | None = None, threads: int | None = None,
                  jobs: int = 1) -> list[str]:
    """Writes the three files into ``out``; returns their paths. ``threads`` (torch threads
    of each training process) and ``jobs`` (processes at once) describe where it ran."""
    summaries = {arm: {seed: run_summary(r) for seed, r in runs.items()}
                 for arm, runs in results.items()}
    paths = [os.path.join(out, name) for name in ("ablation.json", "ablation.md",
                                                  "ablation.png")]
    import torch
    from gro_fast.doctor import run_environment
    environment = run_environment(torch.device("cpu"))
    if threads:  # the training processes', not this one's
        environment["cpu_threads"] = threads
    environment["jobs"] = jobs
    with open(paths[0], "w") as f:
        json.dump({"environment": environment,
                   "settings": asdict(ab), "pretrain": pretrain, "warm_start": warm,
                   "runs": {a: {str(s): v for s, v in runs.items()}
                            for a, runs in summaries.items()}}, f, indent=1)
    with open(paths[1], "w") as f:
        f.write(markdown(ab, summaries, warm, pretrain))
    plot(paths[2], ab, summaries)
    return paths
