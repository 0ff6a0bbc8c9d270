"""``gro-fast ablation``: arms, equal token budgets, one shared warm start per seed, resume.

The end-to-end test runs the real pipeline (warm start, real rollout engine, scoring,
updates, held-out scoring on both splits, reports) through the command line with
``--quick`` and overrides that shrink it to the tiny model, so it costs seconds.
"""
import json
import math
import os

import pytest

from gro_fast.cli import main as gro_fast_main
from gro_fast.train import ablation
from gro_fast.train.ablation import ARMS, arm_config, load_ablation
from gro_fast.train.config import ConfigError

TINY = ["model.path=tiny", "data.image_size=56", "data.prompts_per_step=2",
        "rollout.num_samples=2", "rollout.max_new_tokens=8", "evaluation.max_new_tokens=8",
        "warm_start.steps=2", "warm_start.batch_size=2", "trainer.micro_batch_size=8",
        "ablation.token_budget=40", "ablation.eval_size=3", "ablation.evals=1",
        "logging.progress=false"]
RECIPE = os.path.join(os.path.dirname(__file__), "..", "..", "configs", "ablation_synthetic.yaml")


def test_each_arm_is_its_algorithm_and_starts_from_the_warm_start():
    base, ab = load_ablation(None, [])
    seen = {}
    for arm in ARMS:
        cfg = arm_config(base, ab, arm, seed=1, warm_start="/w/final", out="/o")
        a = cfg.algorithm
        seen[arm] = (a.name, a.omega, a.post_scale)
        assert cfg.model.path == "/w/final" and cfg.warm_start.steps == 0
        assert cfg.trainer.max_generated_tokens == ab.token_budget
    assert seen["grpo"][0] == "grpo"
    assert seen["revision"] == ("gro", 0.0, False)
    assert seen["gro"] == ("gro", 5.0, True)


def test_recipe_fixes_arms_seeds_and_budget():
    base, ab = load_ablation(RECIPE, [])
    assert ab.arms == ["grpo", "revision", "gro"] and ab.seeds >= 3
    assert ab.eval_size >= 512 and ab.token_budget > 0
    assert base.model.path == "small"
    quick_base, quick = load_ablation(RECIPE, ["ablation.eval_size=7"], quick=True)
    assert quick.eval_size == 7 and quick.seeds == 1  # command line > --quick > recipe
    assert quick_base.warm_start.steps < base.warm_start.steps


@pytest.mark.parametrize("override, key", [
    ("ablation.pretrain_steps=-1", "ablation.pretrain_steps"),
    ("ablation.arms=grpo,ppo", "ablation.arms"), ("ablation.seeds=0", "ablation.seeds"),
    ("ablation.budget=5", "ablation.budget"), ("ablation.evals=-1", "ablation.evals")])
def test_bad_ablation_settings_name_the_key(override, key):
    with pytest.raises(ConfigError, match=key.replace(".", r"\.")):
        load_ablation(None, [override])


def _result(out, arm, seed=0):
    with open(os.path.join(out, "runs", arm, f"seed{seed}", "result.json")) as f:
        return json.load(f)


def test_quick_ablation_writes_reports_and_resumes(tmp_path, reference_kernels, monkeypatch,
                                                   capsys):
    out = str(tmp_path / "abl")
    args = ["ablation", "--quick", "--arms", "grpo,gro", "--out", out, *TINY]
    assert gro_fast_main(args) == 0
    for name in ("ablation.json", "ablation.md", "ablation.png"):
        assert os.path.getsize(os.path.join(out, name)) > 0
    report = json.load(open(os.path.join(out, "ablation.json")))
    env = report["environment"]  # where it ran, as the benchmarks record it
    assert env["device_type"] == "cpu" and env["versions"]["torch"] and env["date"]
    assert "commit" in env
    warm = report["warm_start"]["0"]
    for split in ("hard", "easy"):  # does the warm start look at the image at all?
        reliance = warm["image_reliance"][split]
        assert reliance["image_nll_gain"] == pytest.approx(
            reliance["answer_nll_other_image"] - reliance["answer_nll"])
    assert warm["sft"]["sft_loss_last"] > 0 and warm["wall_s"] > 0
    runs = {arm: _result(out, arm) for arm in ("grpo", "gro")}
    for arm, run in runs.items():
        # One shared warm start: every arm's config starts from it, its scores are the
        # arms' "before", and the arm's own evaluation after RL covers both splits.
        cfg = open(os.path.join(out, "runs", arm, "seed0", "config.yaml")).read()
        assert f"path: {warm['model']}" in cfg
        assert run["before"] == warm["heldout"]
        assert {"hard/acc_at_0.5", "easy/acc_at_0.5", "hard/mean_iou", "easy/accuracy"} \
            <= set(run["after"])
        # Equal budget: a run stops at the first step that reaches it.
        tokens = [s["tokens"] for s in run["steps"]]
        assert tokens[-1] >= 40 and (len(tokens) == 1 or tokens[-2] < 40)
        assert run["generated_tokens"] == tokens[-1] and run["wall_s"] > 0
        assert all(0 <= s["zero_variance_frac"] <= 1 for s in run["steps"])
        # the recipe's mixed prompts: every step's groups counted by kind of scene
        for s in run["steps"]:
            counts = {k: v for k, v in s.items() if k.startswith("groups/")}
            assert set(counts) <= {"groups/easy", "groups/hard"} and sum(counts.values()) == 2
            assert all(0 <= s[f"all_fail_frac/{k[7:]}"] <= 1 for k in counts)
    md = open(os.path.join(out, "ablation.md")).read()
    assert "gro - grpo" in md and "hard split" in md and "easy split" in md
    gain = warm["image_reliance"]["easy"]["image_nll_gain"]
    assert f"| 0 | {warm['heldout']['hard/acc_at_0.5']:.3f} |" in md and f"{gain:+.3f}" in md
    assert "revision - grpo" not in md  # no revision arm was run
    assert "By kind of training prompt" in md and "all-fail (" in md

    # Rerun: both runs are finished, nothing trains again.
    def fail(*a, **k):
        raise AssertionError("a finished run was rerun")
    monkeypatch.setattr(ablation, "run_arm", fail)
    monkeypatch.setattr(ablation, "ensure_warm_start", fail)
    capsys.readouterr()
    assert gro_fast_main(args) == 0
    assert capsys.readouterr().out.count("finished before, skipped") == 2
    # A missing result reruns that run only, from the same warm start.
    monkeypatch.undo()
    os.remove(os.path.join(out, "runs", "gro", "seed0", "result.json"))
    calls = []
    real = ablation.run_arm
    monkeypatch.setattr(ablation, "run_arm", lambda *a, **k: calls.append(a[2]) or real(*a, **k))
    assert gro_fast_main(args) == 0
    assert calls == ["gro"]
    assert _result(out, "gro")["before"] == warm["heldout"]


def test_shared_pretraining_is_every_seeds_start_and_trained_once(tmp_path, reference_kernels,
                                                                 monkeypatch):
    out = str(tmp_path / "abl")
    args = ["ablation", "--quick", "--arms", "grpo", "--seeds", "2", "--out", out, *TINY,
            "ablation.pretrain_steps=3", "warm_start.difficulty=mixed"]
    assert gro_fast_main(args) == 0
    pretrain = json.load(open(os.path.join(out, "pretrain", "pretrain.json")))
    cfg = open(os.path.join(out, "pretrain", "config.yaml")).read()
    # one-shape scenes, plain prompt -> answer examples, no RL
    assert "difficulty: single" in cfg and "name: grpo" in cfg
    assert pretrain["sft"]["sft_loss_last"] > 0 and "easy" in pretrain["image_reliance"]
    for seed in (0, 1):  # every seed's warm start starts from it, on the recipe's scenes
        warm_cfg = open(os.path.join(out, "warm_start", f"seed{seed}", "config.yaml")).read()
        assert f"path: {pretrain['model']}" in warm_cfg and "difficulty: single" not in warm_cfg
    report = json.load(open(os.path.join(out, "ablation.json")))
    assert report["pretrain"] == pretrain and report["settings"]["pretrain_steps"] == 3
    assert "| pretraining (every seed) |" in open(os.path.join(out, "ablation.md")).read()
    # a seed added later starts from the same pretraining; it is not trained again
    from gro_fast.train import ablation_run
    real = ablation_run.warm_start

    def no_pretraining(config, *a, **k):
        assert config.trainer.output_dir != os.path.join(out, "pretrain"), "pretrained again"
        return real(config, *a, **k)
    monkeypatch.setattr(ablation_run, "warm_start", no_pretraining)
    assert gro_fast_main([a if a != "2" else "3" for a in args]) == 0
    warm_cfg = open(os.path.join(out, "warm_start", "seed2", "config.yaml")).read()
    assert f"path: {pretrain['model']}" in warm_cfg


def test_quick_caps_the_recipes_pretraining():
    _, ab = load_ablation(None, ["ablation.pretrain_steps=500"])
    assert ab.pretrain_steps == 500
    _, quick = load_ablation(None, ["ablation.pretrain_steps=500"], quick=True)
    assert 0 < quick.pretrain_steps == ablation.QUICK_PRETRAIN < 500
    # the pretraining draws one-shape scenes whatever the recipe's warm start draws
    base, ab = load_ablation(None, ["ablation.pretrain_steps=500", "warm_start.difficulty=mixed"])
    cfg = ablation.pretrain_config(base, ab, "/o")
    assert cfg.warm_start.difficulty == "single" and cfg.warm_start.steps == 500
    assert cfg.algorithm.name == "grpo" and cfg.trainer.steps == 0


def test_parallel_jobs_give_the_sequential_results(tmp_path, monkeypatch):
    """``--jobs 2``: warm starts and runs in two worker processes, the same records as one
    after the other (each run is deterministic on one torch thread)."""
    monkeypatch.setenv("GRO_FAST_KERNELS", "reference")  # the workers read it too
    records = {}
    for jobs in (1, 2):
        out = str(tmp_path / f"jobs{jobs}")
        args = ["ablation", "--quick", "--arms", "grpo,gro", "--seeds", "2", "--out", out,
                "--jobs", str(jobs), *TINY]
        assert gro_fast_main(args) == 0
        records[jobs] = {(arm, seed): _result(out, arm, seed)
                         for arm in ("grpo", "gro") for seed in (0, 1)}
    for key, one in records[1].items():
        two = records[2][key]
        assert two["after"] == one["after"], key
        assert [s["tokens"] for s in two["steps"]] == [s["tokens"] for s in one["steps"]]
    for jobs in (1, 2):  # the report says where its runs ran, not where it was written
        env = json.load(open(str(tmp_path / f"jobs{jobs}" / "ablation.json")))["environment"]
        assert (env["jobs"], env["cpu_threads"]) == (jobs, 1)
    assert gro_fast_main(["ablation", "--jobs", "0"]) == 2


def test_bad_ablation_command_is_a_config_error(capsys):
    assert gro_fast_main(["ablation", "--arms", "grpo,nope"]) == 2
    assert "ablation.arms" in capsys.readouterr().err


def test_eta_counts_runs_and_warm_starts_at_their_own_mean(monkeypatch):
    now = [0.0]
    monkeypatch.setattr(ablation.time, "perf_counter", lambda: now[0])
    clock = ablation.Clock(runs=4, warm_starts=2)

    def takes(seconds):
        now[0] += seconds
    clock.timed("warm", lambda: takes(100))
    assert math.isnan(clock.eta_s())  # no run measured yet
    assert "ETA after the first run (4 run(s) left), elapsed 1.7 min" in clock.status()
    clock.timed("run", lambda: takes(30))
    clock.timed("run", lambda: takes(50))
    assert clock.eta_s() == pytest.approx(2 * 40 + 1 * 100)
    assert "2 run(s) left" in clock.status()
    two = ablation.Clock(runs=2, warm_starts=0, jobs=2)  # two workers share what is left
    two.add("run", 60.0)
    assert two.eta_s() == pytest.approx(60.0 / 2)


def test_by_kind_weights_each_step_by_its_groups():
    from gro_fast.train.ablation_report import by_kind
    steps = [{"groups/hard": 3, "all_fail_frac/hard": 1.0, "zero_variance_frac/hard": 0.0,
              "improved_frac/hard": 0.5, "groups/easy": 1, "all_fail_frac/easy": 0.0,
              "zero_variance_frac/easy": 1.0, "improved_frac/easy": 0.0},
             {"groups/hard": 1, "all_fail_frac/hard": 0.0, "zero_variance_frac/hard": 1.0,
              "improved_frac/hard": 0.1},
             {"zero_variance_frac": 0.2}]  # a step recorded before the per-kind statistics
    got = by_kind(steps)
    assert got["groups/hard"] == 4 and got["groups/easy"] == 1
    assert got["all_fail_frac/hard"] == pytest.approx(0.75)
    assert got["zero_variance_frac/hard"] == pytest.approx(0.25)
    assert got["improved_frac/hard"] == pytest.approx(0.4)
    assert got["zero_variance_frac/easy"] == 1.0
    assert by_kind([{"zero_variance_frac": 0.2}]) == {}
