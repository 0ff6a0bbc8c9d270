"""Config loading: strict keys, typed values, overrides, round trip, CLI exit codes."""
import pytest
import yaml

from gro_fast.train.cli import train_main
import dataclasses

from gro_fast.algo import GROConfig
from gro_fast.train.config import (MOVED, AlgorithmConfig, Config, ConfigError, field_docs,
                                   load_config, parse_override, save_config)


def _write(tmp_path, values) -> str:
    path = tmp_path / "recipe.yaml"
    path.write_text(yaml.safe_dump(values))
    return str(path)


def test_defaults_are_valid_and_documented():
    config = load_config()
    assert isinstance(config, Config)
    for section in dataclasses.fields(config):
        value = getattr(config, section.name)
        docs = field_docs(type(value))
        assert set(docs) == {f.name for f in dataclasses.fields(value)}, section.name
        assert all(docs.values()), section.name
    assert "omega" in field_docs(AlgorithmConfig)  # GROConfig's own docs, inherited


def test_yaml_and_overrides(tmp_path):
    path = _write(tmp_path, {"optimizer": {"lr": 1e-5}, "trainer": {"steps": 3},
                             "algorithm": {"name": "grpo"}})
    config = load_config(path, ["optimizer.lr=2e-6", "rollout.num_samples=4",
                                "algorithm.penalize_extra=false", "data.template=Find {query}."])
    assert config.optimizer.lr == pytest.approx(2e-6)
    assert config.trainer.steps == 3
    assert config.algorithm.name == "grpo"
    assert config.rollout.num_samples == 4
    assert config.algorithm.penalize_extra is False
    assert config.data.template == "Find {query}."


def test_scientific_notation_in_yaml_is_a_number(tmp_path):
    path = tmp_path / "r.yaml"
    path.write_text("optimizer:\n  lr: 1e-6\n")
    assert load_config(str(path)).optimizer.lr == pytest.approx(1e-6)
    assert parse_override("optimizer.lr=3e-4") == (["optimizer", "lr"], pytest.approx(3e-4))


@pytest.mark.parametrize("values, key", [
    ({"trainer": {"stpes": 5}}, "trainer.stpes"),
    ({"trainer": {"lrr": 1e-5}}, "trainer.lrr"),
    ({"trainers": {"lr": 1e-5}}, "trainers"),
    ({"algorithm": {"omgea": 3}}, "algorithm.omgea"),
])
def test_unknown_key_names_it_and_suggests(tmp_path, values, key):
    with pytest.raises(ConfigError) as err:
        load_config(_write(tmp_path, values))
    assert repr(key) in str(err.value)
    assert "did you mean" in str(err.value)


@pytest.mark.parametrize("override, key", [
    ("optimizer.lr=fast", "optimizer.lr"),
    ("trainer.steps=2.5", "trainer.steps"),
    ("rollout.num_samples=1", "rollout.num_samples"),
    ("algorithm.name=ppo", "algorithm.name"),
    ("trainer.loss_impl=chunked", "trainer.loss_impl"),
    ("rollout.top_p=0", "rollout.top_p"),
    ("optimizer.lr=-1", "optimizer.lr"),
    ("algorithm.penalize_extra=maybe", "algorithm.penalize_extra"),
    ("algorithm.advantage_scale=std", "algorithm.advantage_scale"),
    ("algorithm.reward_terms=[accuracy, format]", "algorithm.reward_terms[1]"),
    ("algorithm.reward_terms=accuracy", "algorithm.reward_terms"),
    ("algorithm.iou_threshold=1.5", "algorithm.iou_threshold"),
    ("algorithm.revision_template=", "algorithm.revision_template"),
    ("algorithm.loss_agg=sum", "algorithm.loss_agg"),
    ("schedule.min_lr_ratio=1.5", "schedule.min_lr_ratio"),
    ("warm_start.revision_fraction=-0.1", "warm_start.revision_fraction"),
    ("evaluation.size=-1", "evaluation.size"),
    ("checkpoint.keep=0", "checkpoint.keep"),
    ("model.dtype=fp8", "model.dtype"),
    ("algorithm.eps_low=1.5", "algorithm.eps_low"),
    ("optimizer.lr=.inf", "optimizer.lr"),
    ("rollout.temperature=.nan", "rollout.temperature"),
    ("algorithm.reward=no_such_reward", "algorithm.reward"),
    ("algorithm.reward=/nowhere/r.py:fn", "algorithm.reward"),
    ("data=3", "data"),
])
def test_bad_value_names_the_key(override, key):
    with pytest.raises(ConfigError) as err:
        load_config(None, [override])
    assert key in str(err.value)


def test_override_syntax_errors():
    with pytest.raises(ConfigError, match="key.sub=value"):
        load_config(None, ["optimizer.lr"])
    with pytest.raises(ConfigError, match="empty key"):
        load_config(None, ["optimizer..lr=1"])


def test_missing_file_and_bad_yaml(tmp_path):
    with pytest.raises(ConfigError, match="nope.yaml"):
        load_config(str(tmp_path / "nope.yaml"))
    bad = tmp_path / "bad.yaml"
    bad.write_text("optimizer: [1, 2\n")
    with pytest.raises(ConfigError, match="invalid YAML"):
        load_config(str(bad))


def test_saved_config_loads_back(tmp_path):
    config = load_config(None, ["optimizer.lr=1e-6", "algorithm.omega=3"])
    path = str(tmp_path / "config.yaml")
    save_config(config, path)
    assert load_config(path) == config


def test_cli_config_error_exit_code(capsys):
    assert train_main(["trainer.lrr=1"]) == 2
    assert "trainer.lrr" in capsys.readouterr().err
    assert train_main(["--print-config", "trainer.steps=5"]) == 0
    out = capsys.readouterr().out
    assert "\n  steps: 5    # GRO / GRPO steps" in out and "..." not in out
    assert "  reward_terms: [think_format, object_format, accuracy, non_repeat]    #" in out


def test_shipped_recipes_load():
    import glob
    import os
    root = os.path.join(os.path.dirname(__file__), "..", "..", "configs")
    recipes = sorted(glob.glob(os.path.join(root, "*.yaml")))
    assert recipes, "configs/*.yaml missing"
    from gro_fast.train.ablation import load_ablation
    from gro_fast.train.config import read_recipe
    for recipe in recipes:
        if "ablation" in read_recipe(recipe):  # gro-fast ablation's recipes
            load_ablation(recipe)
        else:
            load_config(recipe)


def test_the_default_runs_recipe_is_the_defaults():
    """``configs/gro_synthetic.yaml`` spells out what ``gro-fast train`` with no arguments
    runs: the two must not drift apart (the README and docs/training.md quote both)."""
    import os
    from gro_fast.train.config import to_dict
    recipe = os.path.join(os.path.dirname(__file__), "..", "..", "configs", "gro_synthetic.yaml")
    assert to_dict(load_config(recipe)) == to_dict(load_config(None))
    grpo = to_dict(load_config(os.path.join(os.path.dirname(recipe), "grpo_synthetic.yaml")))
    default = to_dict(load_config(None))
    assert grpo["algorithm"]["name"] == "grpo"
    for section in ("model", "data", "rollout", "optimizer", "schedule", "evaluation"):
        assert grpo[section] == default[section], section
    assert grpo["trainer"]["steps"] == default["trainer"]["steps"]
    assert grpo["warm_start"]["steps"] == default["warm_start"]["steps"]


@pytest.mark.parametrize("old", sorted(MOVED))
def test_a_moved_key_names_its_new_place(old):
    with pytest.raises(ConfigError) as err:
        load_config(None, [f"{old}=1"])
    assert f"it is now {MOVED[old]}" in str(err.value)
    section, name = MOVED[old].split(".")
    assert hasattr(getattr(Config(), section), name)


def test_the_algorithm_section_is_the_algos_own_config():
    """Every GROConfig option is settable from a recipe, with GROConfig's defaults."""
    config = load_config(None, ["algorithm.reward_terms=[accuracy, non_repeat]",
                                "algorithm.l1_threshold=5", "algorithm.success_accuracy=2",
                                "algorithm.train_initial=true"])
    algorithm = config.algorithm
    assert isinstance(algorithm, GROConfig)
    assert algorithm.reward_terms == ("accuracy", "non_repeat")
    assert algorithm.l1_threshold == 5.0 and algorithm.success_accuracy == 2.0
    defaults = GROConfig()
    for f in dataclasses.fields(GROConfig):
        assert getattr(AlgorithmConfig(), f.name) == getattr(defaults, f.name), f.name
