"""Held-out curves of several RL runs side by side: ``python -m bench.rl_budget OUT RUN...``.

Each RUN is a ``gro-fast train`` output folder (``config.yaml`` and ``metrics.jsonl``),
optionally written ``label=path``. Writes ``OUT/curves.json`` (per run: its label, the keys
that set it apart, the held-out metrics at every scoring, and the mean training accuracy
per 50 RL steps), ``OUT/curves.md`` (one table per held-out metric) and ``OUT/curves.png``
(held-out Acc@0.5 and mean IoU against RL steps, on the full [0, 1] axis; GRPO runs
solid, GRO dashed). It measures
nothing itself: the runs do.
"""
from __future__ import annotations

import json
import os
import sys

KEYS = ("algorithm.name", "algorithm.train_initial", "optimizer.lr", "trainer.steps",
        "schedule.warmup_steps", "data.prompts_per_step", "rollout.num_samples",
        "evaluation.size", "model.seed")
METRICS = ("acc_at_0.5", "mean_iou", "accuracy")


def _get(config, dotted: str):
    value = config
    for part in dotted.split("."):
        value = getattr(value, part)
    return value


def read_run(label: str, path: str) -> dict:
    """One run's settings (its saved ``config.yaml``) and curves (its ``metrics.jsonl``;
    a stopped run's cut-off last line is dropped)."""
    from gro_fast.train.config import load_config
    from gro_fast.train.metrics import read_metrics
    config = load_config(os.path.join(path, "config.yaml"))
    rows = read_metrics(os.path.join(path, "metrics.jsonl"))
    heldout = [{"step": r["step"], **{m: r[f"heldout/{m}"] for m in METRICS}}
               for r in rows if f"heldout/{METRICS[0]}" in r]
    train = [r["accuracy_mean"] for r in rows if "accuracy_mean" in r]
    return {"label": label,
            "settings": {k: _get(config, k) for k in KEYS},
            "rl_steps_done": len(train),
            "heldout": heldout,
            "train_accuracy_per_50_steps": [round(sum(train[i:i + 50]) / len(train[i:i + 50]), 4)
                                            for i in range(0, len(train), 50)]}


def write_markdown(runs: list[dict], path: str) -> None:
    lines = []
    for metric in METRICS:
        steps = sorted({h["step"] for r in runs for h in r["heldout"]})
        lines += [f"## held-out {metric}", "",
                  "| run | " + " | ".join(f"step {s}" for s in steps) + " |",
                  "|---" * (len(steps) + 1) + "|"]
        for r in runs:
            by_step = {h["step"]: h[metric] for h in r["heldout"]}
            lines.append(f"| {r['label']} | " + " | ".join(
                f"{by_step[s]:.3f}" if s in by_step else "" for s in steps) + " |")
        lines.append("")
    lines += ["## training accuracy (mean per 50 RL steps)", ""]
    lines += [f"- {r['label']}: " + ", ".join(f"{v:.3f}" for v in r["train_accuracy_per_50_steps"])
              for r in runs]
    with open(path, "w") as f:
        f.write("\n".join(lines) + "\n")


def write_plot(runs: list[dict], path: str) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, axes = plt.subplots(1, 2, figsize=(12, 4.5 + 0.22 * len(runs)))
    colors = plt.get_cmap("tab20").colors
    for ax, metric, title in zip(axes, ("acc_at_0.5", "mean_iou"),
                                 ("held-out Acc@0.5 (greedy)", "held-out mean IoU")):
        for i, r in enumerate(runs):
            style = "-" if r["settings"]["algorithm.name"] == "grpo" else "--"
            ax.plot([h["step"] for h in r["heldout"]], [h[metric] for h in r["heldout"]],
                    style, marker="o", markersize=3, color=colors[i % len(colors)],
                    label=r["label"])
        ax.set_ylim(0, 1)
        ax.set_xlabel("RL step (0: after the warm start)")
        ax.set_title(title)
        ax.grid(alpha=0.3)
    handles, labels = axes[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="lower center", ncol=2, fontsize=8, frameon=False)
    fig.tight_layout(rect=(0, 0.11 * len(runs) / 6 if len(runs) > 1 else 0.1, 1, 1))
    fig.savefig(path, dpi=100)
    plt.close(fig)


def main(argv: list[str]) -> int:
    if len(argv) < 2:
        print(__doc__.strip().splitlines()[0], file=sys.stderr)
        return 2
    out, specs = argv[0], argv[1:]
    runs = []
    for spec in specs:
        label, _, path = spec.rpartition("=") if "=" in spec else (os.path.basename(spec), "", spec)
        if not os.path.exists(os.path.join(path, "metrics.jsonl")):
            print(f"{path}: no metrics.jsonl (not a gro-fast train output folder)", file=sys.stderr)
            return 2
        runs.append(read_run(label, path))
    os.makedirs(out, exist_ok=True)
    with open(os.path.join(out, "curves.json"), "w") as f:
        json.dump({"runs": runs}, f, indent=1)
    write_markdown(runs, os.path.join(out, "curves.md"))
    write_plot(runs, os.path.join(out, "curves.png"))
    print(f"wrote {out}/curves.json, curves.md, curves.png ({len(runs)} runs)")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
