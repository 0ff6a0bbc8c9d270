"""PNG plots of a run's metrics (matplotlib, Agg backend), drawn from ``metrics.jsonl``.

One figure ``<output_dir>/plots/training.png`` with a panel per quantity (reward,
accuracy, improvement dphi, all-fail-group fraction, KL, clip fraction, tokens/s) plus
one PNG per panel. Metrics missing from the log (KL at beta = 0 is still logged as 0)
are skipped. This module reads the log; it computes nothing new.
"""
from __future__ import annotations

import os

from .metrics import read_metrics

PANELS = (
    ("held-out Acc@0.5 (greedy)", ("heldout/acc_at_0.5",)),
    ("held-out accuracy reward / 3", ("heldout/accuracy",)),
    ("reward", ("reward_mean",)),
    ("accuracy", ("accuracy_mean",)),
    ("improvement dphi", ("dphi_mean",)),
    ("all-fail group fraction", ("all_fail_frac",)),
    ("KL (k3)", ("kl",)),
    ("clip fraction", ("clip_frac",)),
    ("tokens / s", ("tokens_per_s",)),
)


def _series(rows: list[dict], key: str) -> tuple[list[int], list[float]]:
    pairs = [(r["step"], r[key]) for r in rows if isinstance(r.get(key), (int, float))]
    return [p[0] for p in pairs], [p[1] for p in pairs]


def plot_metrics(output_dir: str) -> list[str]:
    """Writes the plots; returns the paths written (empty when nothing was logged)."""
    rows = read_metrics(os.path.join(output_dir, "metrics.jsonl"))
    if not rows:
        return []
    import matplotlib
    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    out_dir = os.path.join(output_dir, "plots")
    os.makedirs(out_dir, exist_ok=True)
    panels = [(title, keys) for title, keys in PANELS if any(_series(rows, k)[0] for k in keys)]
    if not panels:
        return []
    written = []
    cols = 3
    nrows = -(-len(panels) // cols)
    fig, axes = plt.subplots(nrows, cols, figsize=(4.2 * cols, 3.0 * nrows), squeeze=False)
    for ax, (title, keys) in zip(axes.flat, panels):
        _draw(ax, rows, title, keys)
    for ax in list(axes.flat)[len(panels):]:
        ax.axis("off")
    fig.tight_layout()
    path = os.path.join(out_dir, "training.png")
    fig.savefig(path, dpi=90)
    plt.close(fig)
    written.append(path)
    for title, keys in panels:
        fig, ax = plt.subplots(figsize=(4.5, 3.2))
        _draw(ax, rows, title, keys)
        fig.tight_layout()
        path = os.path.join(out_dir, _file_name(title) + ".png")
        fig.savefig(path, dpi=90)
        plt.close(fig)
        written.append(path)
    return written


def _file_name(title: str) -> str:
    """"improvement dphi" -> "improvement"; the held-out panels -> "heldout_acc" /
    "heldout_accuracy"."""
    words = title.replace("-", "_").replace("@", " ").lower().split(" ")
    return "_".join(words[:2]).replace("held_out", "heldout") if words[0] == "held_out" \
        else words[0]


def _draw(ax, rows, title, keys) -> None:
    for key in keys:
        steps, values = _series(rows, key)
        ax.plot(steps, values, marker="o", markersize=2, linewidth=1.2, label=key)
    ax.set_title(title)
    ax.set_xlabel("step")
    ax.grid(alpha=0.3)
    if all(k.startswith("heldout/") for k in keys):
        # held-out scores are fractions: on the full [0, 1] axis a move of one seed's noise
        # (a few hundredths on 256 prompts) looks like what it is, not like a trend
        ax.set_ylim(-0.02, 1.02)
