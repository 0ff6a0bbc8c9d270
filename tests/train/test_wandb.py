"""``logging.wandb: true``: the metrics, plots and held-out table reach Weights & Biases
(a real offline run; ``wandb.Run.log`` is observed, then the offline run folder is read)."""
import glob
import json
import math
import os

import pytest

from gro_fast.train.trainer import Trainer

from .helpers import fast_config, scripted_factory

wandb = pytest.importorskip("wandb", reason="wandb is not installed (pip install wandb)")


@pytest.fixture
def offline(monkeypatch, tmp_path):
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_SILENT", "true")
    monkeypatch.setenv("WANDB_PROJECT", "gro-fast-test")
    for key in ("WANDB_CONFIG_DIR", "WANDB_CACHE_DIR", "WANDB_DATA_DIR"):
        monkeypatch.setenv(key, str(tmp_path / "wandb-home"))
    logged = []
    real_log = wandb.Run.log

    def spy(run, data, step=None, **kwargs):
        logged.append((step, dict(data)))
        return real_log(run, data, step=step, **kwargs)

    monkeypatch.setattr(wandb.Run, "log", spy)
    return logged


def _jsonl(path):
    with open(path) as f:
        return [json.loads(line) for line in f if line.strip()]


def test_wandb_gets_the_metrics_plots_and_heldout_table(tmp_path, offline, reference_kernels):
    out = tmp_path / "run"
    config = fast_config(out, "logging.wandb=true", "logging.plots=true", "evaluation.size=2",
                         "evaluation.every=1", "evaluation.max_new_tokens=8")
    Trainer(config, engine_factory=scripted_factory({})).run()

    rows = _jsonl(out / "metrics.jsonl")
    scalars = {}
    for step, data in offline:
        for key, value in data.items():
            if isinstance(value, (int, float)):
                scalars[(step, key)] = value
    compared = 0
    for row in rows:
        for key, value in row.items():
            if key in ("step", "time") or not isinstance(value, (int, float)):
                continue
            assert math.isclose(scalars[(row["step"], key)], value, rel_tol=1e-9), key
            compared += 1
    assert compared > 20 and any(k.startswith("heldout/") for _, k in scalars)

    images = {k for _, data in offline for k, v in data.items() if isinstance(v, wandb.Image)}
    assert "plots/training" in images and len(images) == len(os.listdir(out / "plots"))
    tables = [v for _, data in offline for k, v in data.items() if k == "heldout"]
    assert len(tables) == 1 and isinstance(tables[0], wandb.Table)
    stages = [r[0] for r in tables[0].data]
    assert stages[0] == "before" and stages[-1] == "after"

    run_dirs = glob.glob(str(out / "wandb" / "offline-run-*"))
    assert len(run_dirs) == 1
    assert glob.glob(os.path.join(run_dirs[0], "files", "media", "table", "heldout_*.table.json"))
    assert len(glob.glob(os.path.join(run_dirs[0], "files", "media", "images", "plots", "*.png"))) == \
        len(images)
    assert (out / "wandb-run-id").read_text().strip() in os.path.basename(run_dirs[0])


def test_missing_wandb_warns_and_keeps_the_other_logs(tmp_path, monkeypatch):
    import builtins
    from gro_fast.train.metrics import MetricsLogger
    real_import = builtins.__import__

    def no_wandb(name, *args, **kwargs):
        if name == "wandb":
            raise ImportError("no wandb")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_wandb)
    with pytest.warns(UserWarning, match="wandb is not installed"):
        logger = MetricsLogger(str(tmp_path), total_steps=1, progress=False, tensorboard=False,
                               wandb=True)
    logger.log(1, {"loss": 0.5})
    logger.close()
    assert _jsonl(tmp_path / "metrics.jsonl")[0]["loss"] == 0.5


def test_a_resumed_run_continues_the_same_wandb_run(tmp_path, offline):
    from gro_fast.train.metrics import MetricsLogger
    first = MetricsLogger(str(tmp_path), total_steps=2, progress=False, tensorboard=False,
                          wandb=True, run_config={"trainer": {"steps": 2}})
    run_id = first.wandb.run.id
    first.log(1, {"loss": 1.0})
    first.close()
    resumed = MetricsLogger(str(tmp_path), total_steps=2, start_step=1, progress=False,
                            tensorboard=False, wandb=True)
    assert resumed.wandb.run.id == run_id
    resumed.log(2, {"loss": 0.5})
    resumed.close()
    fresh = MetricsLogger(str(tmp_path), total_steps=2, progress=False, tensorboard=False,
                          wandb=True)
    assert fresh.wandb.run.id != run_id
    fresh.close()
    assert [(step, data["loss"]) for step, data in offline] == [(1, 1.0), (2, 0.5)]
