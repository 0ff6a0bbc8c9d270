"""Config loading: strict keys, typed values, overrides, round trip, CLI exit codes."""
import pytest
import yaml

from gro_fast.train.cli import train_main
from gro_fast.train.config import (Config, ConfigError, field_docs, load_config, parse_override,
                                   save_config, TrainerConfig)


def _write(tmp_path, values) -> str:
    path = tmp_path / "recipe.yaml"
    path.write_text(yaml.safe_dump(values))
    return str(path)


def test_defaults_are_valid_and_documented():
    config = load_config()
    assert isinstance(config, Config)
    docs = field_docs(TrainerConfig)
    assert "lr" in docs and docs["lr"]
    assert set(docs) == set(vars(config.trainer))


def test_yaml_and_overrides(tmp_path):
    path = _write(tmp_path, {"trainer": {"lr": 1e-5, "steps": 3}, "algorithm": {"name": "grpo"}})
    config = load_config(path, ["trainer.lr=2e-6", "rollout.num_samples=4",
                                "algorithm.penalize_extra=false", "data.template=Find {query}."])
    assert config.trainer.lr == pytest.approx(2e-6)
    assert config.trainer.steps == 3
    assert config.algorithm.name == "grpo"
    assert config.rollout.num_samples == 4
    assert config.algorithm.penalize_extra is False
    assert config.data.template == "Find {query}."


def test_scientific_notation_in_yaml_is_a_number(tmp_path):
    path = tmp_path / "r.yaml"
    path.write_text("trainer:\n  lr: 1e-6\n")
    assert load_config(str(path)).trainer.lr == pytest.approx(1e-6)
    assert parse_override("trainer.lr=3e-4") == (["trainer", "lr"], pytest.approx(3e-4))


@pytest.mark.parametrize("values, key", [
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
    ("trainer.lr=fast", "trainer.lr"),
    ("trainer.steps=2.5", "trainer.steps"),
    ("rollout.num_samples=1", "rollout.num_samples"),
    ("algorithm.name=ppo", "algorithm.name"),
    ("trainer.loss_impl=chunked", "trainer.loss_impl"),
    ("rollout.top_p=0", "rollout.top_p"),
    ("trainer.lr=-1", "trainer.lr"),
    ("algorithm.penalize_extra=maybe", "algorithm.penalize_extra"),
    ("data=3", "data"),
])
def test_bad_value_names_the_key(override, key):
    with pytest.raises(ConfigError) as err:
        load_config(None, [override])
    assert key in str(err.value)


def test_override_syntax_errors():
    with pytest.raises(ConfigError, match="key.sub=value"):
        load_config(None, ["trainer.lr"])
    with pytest.raises(ConfigError, match="empty key"):
        load_config(None, ["trainer..lr=1"])


def test_missing_file_and_bad_yaml(tmp_path):
    with pytest.raises(ConfigError, match="nope.yaml"):
        load_config(str(tmp_path / "nope.yaml"))
    bad = tmp_path / "bad.yaml"
    bad.write_text("trainer: [1, 2\n")
    with pytest.raises(ConfigError, match="invalid YAML"):
        load_config(str(bad))


def test_saved_config_loads_back(tmp_path):
    config = load_config(None, ["trainer.lr=1e-6", "algorithm.omega=3"])
    path = str(tmp_path / "config.yaml")
    save_config(config, path)
    assert load_config(path) == config


def test_cli_config_error_exit_code(capsys):
    assert train_main(["trainer.lrr=1"]) == 2
    assert "trainer.lrr" in capsys.readouterr().err
    assert train_main(["--print-config", "trainer.steps=5"]) == 0
    assert "steps: 5" in capsys.readouterr().out


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
