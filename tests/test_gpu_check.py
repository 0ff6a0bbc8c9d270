"""``scripts/gpu_check.sh --dry-run``: every stage of the GPU check runs on CPU at tiny
shapes and the run ends with its summary (so the first GPU run fails on nothing but the GPU)."""
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
STAGES = ["env", "build", "tests", "bench_loss", "bench_iou", "bench_rollout", "bench_train"]


@pytest.mark.slow
def test_gpu_check_dry_run(tmp_path):
    env = {k: v for k, v in os.environ.items() if k != "TRITON_INTERPRET"}
    env["PYTHON"] = sys.executable
    done = subprocess.run(["bash", str(ROOT / "scripts" / "gpu_check.sh"), "--dry-run", str(tmp_path)],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=330)
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-2000:]
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert [s["stage"] for s in summary["stages"]] == STAGES
    assert all(s["status"] == "ok" for s in summary["stages"]), summary["stages"]
    assert summary["all_stages_ok"] and summary["tests"]["failures"] == 0
    assert summary["environment"]["commit"] and summary["environment"]["versions"]["torch"]
    assert {h["case"] for h in summary["headlines"] if h["values"]} >= {
        "gro_policy_loss", "mask_iou_dense", "rollout_engine_vs_generate", "train_step"}
    for name in ("bench-loss.json", "bench-iou.json", "bench-rollout.json", "bench-train.json"):
        report = json.loads((tmp_path / name).read_text())
        assert report["tiny"] and not any("error" in c for c in report["cases"].values()), name
    log = (tmp_path / "log.txt").read_text()
    assert "=== [bench_train] ok" in log
    assert done.stdout.rstrip().splitlines()[-1].startswith("all stages ok: True")
