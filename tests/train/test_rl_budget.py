"""``bench.rl_budget``: several runs' held-out curves side by side, read from their folders."""
import json
import os

import yaml

from bench.rl_budget import main
from gro_fast.train.config import Config


def _fake_run(path, algorithm, heldout, train_acc):
    os.makedirs(path)
    with open(os.path.join(path, "config.yaml"), "w") as f:
        yaml.safe_dump({"algorithm": {"name": algorithm}, "optimizer": {"lr": 3e-5}}, f)
    with open(os.path.join(path, "metrics.jsonl"), "w") as f:
        for step, acc in heldout:
            f.write(json.dumps({"step": step, "heldout/acc_at_0.5": acc, "heldout/mean_iou": acc / 2,
                                "heldout/accuracy": acc / 3}) + "\n")
        for step, acc in enumerate(train_acc, 1):
            f.write(json.dumps({"step": step, "accuracy_mean": acc, "reward_mean": 1.0}) + "\n")


def test_curves_of_several_runs(tmp_path):
    _fake_run(tmp_path / "a", "grpo", [(0, 0.25), (50, 0.5)], [0.0] * 50 + [1.0] * 10)
    _fake_run(tmp_path / "b", "gro", [(0, 0.25), (100, 0.125)], [0.5] * 20)
    with open(tmp_path / "b" / "metrics.jsonl", "a") as f:
        f.write('{"step": 21, "accuracy_me')   # a run stopped mid-write: the cut line is dropped
    out = tmp_path / "out"
    assert main([str(out), f"grpo-run={tmp_path / 'a'}", str(tmp_path / "b")]) == 0
    runs = json.load(open(out / "curves.json"))["runs"]
    assert [r["label"] for r in runs] == ["grpo-run", "b"]
    assert runs[0]["settings"]["algorithm.name"] == "grpo"
    assert runs[0]["settings"]["optimizer.lr"] == 3e-5
    assert runs[0]["heldout"] == [{"step": 0, "acc_at_0.5": 0.25, "mean_iou": 0.125, "accuracy": 0.25 / 3},
                                  {"step": 50, "acc_at_0.5": 0.5, "mean_iou": 0.25, "accuracy": 0.5 / 3}]
    assert runs[0]["train_accuracy_per_50_steps"] == [0.0, 1.0]
    assert runs[0]["rl_steps_done"] == 60 and runs[1]["rl_steps_done"] == 20
    assert runs[1]["settings"]["trainer.steps"] == Config().trainer.steps  # unset: the defaults
    table = (out / "curves.md").read_text()
    assert "| grpo-run | 0.250 | 0.500 |  |" in table      # steps 0, 50, 100: run a has no step 100
    assert "| b | 0.250 |  | 0.125 |" in table
    assert (out / "curves.png").stat().st_size > 0


def test_a_folder_without_metrics_is_named(tmp_path, capsys):
    assert main([str(tmp_path / "out"), str(tmp_path)]) == 2
    assert str(tmp_path) in capsys.readouterr().err
