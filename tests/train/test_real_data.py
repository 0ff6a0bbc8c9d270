"""``gro-fast train`` on the peers' own formats (tests/data/peers), end to end on the tiny
model: several sources with their own image folders, a save_to_disk split, overrides after
options, and bad data or config exiting 2 with a message."""
import json
import sys

import pytest
import yaml

from gro_fast.cli import main as gro_fast_main
from gro_fast.train.config import ConfigError, load_config

from ..data.datafiles import PEERS

QUICK = ["model.path=tiny", "data.prompts_per_step=2", "evaluation.size=2", "rollout.num_samples=2",
         "rollout.max_new_tokens=6", "evaluation.max_new_tokens=6", "trainer.steps=2",
         "warm_start.steps=0", "trainer.micro_batch_size=4", "logging.progress=false",
         "logging.tensorboard=false", "logging.plots=false"]
SOURCES = [str(PEERS / "segzero_train.jsonl"), str(PEERS / "vlmr1_rec_answer_tags.jsonl"),
           {"path": str(PEERS / "rec_jsons_processed" / "refcocog_val.json"),
            "image_root": str(PEERS / "images")}]


def _recipe(tmp_path, **data) -> str:
    path = tmp_path / "recipe.yaml"
    path.write_text(yaml.safe_dump({"data": data, "trainer": {"output_dir": str(tmp_path / "run")}}))
    return str(path)


def _metrics(tmp_path) -> list[dict]:
    lines = (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()
    return [json.loads(line) for line in lines if '"step"' in line]


def test_train_on_several_peer_files_then_resume_with_overrides_after_options(
        tmp_path, reference_kernels, capsys):
    recipe = _recipe(tmp_path, source=SOURCES,
                     eval_source=str(PEERS / "internvl_grounding.jsonl"))
    assert gro_fast_main(["train", recipe, *QUICK]) == 0
    out = capsys.readouterr().out
    assert "held-out [before]" in out and "held-out [after]" in out
    assert (tmp_path / "run" / "final").is_dir()
    # Issue 12 item 11: options first, then overrides (and the recipe) in any order.
    assert gro_fast_main(["train", recipe, "--resume", "auto", *QUICK, "trainer.steps=3"]) == 0
    steps = [m["step"] for m in _metrics(tmp_path) if "step" in m]
    assert max(steps) == 3


def test_train_on_a_save_to_disk_split(tmp_path, reference_kernels):
    pytest.importorskip("datasets")
    recipe = _recipe(tmp_path, source=str(PEERS / "segzero_hf"), split="train")
    assert gro_fast_main(["train", recipe, *QUICK, "trainer.steps=1", "evaluation.size=0"]) == 0


@pytest.mark.parametrize("case", ["no-split", "no-datasets", "bad-row", "wrong-frame",
                                  "missing-file", "all-skipped"])
def test_bad_data_exits_2_naming_the_problem(tmp_path, capsys, monkeypatch, case):
    if case == "no-datasets":
        monkeypatch.setitem(sys.modules, "datasets", None)
    overrides = {
        "no-split": [f"data.source={PEERS / 'segzero_hf'}"],
        "no-datasets": [f"data.source={PEERS / 'segzero_hf'}", "data.split=train"],
        "bad-row": [f"data.source={PEERS / 'refcoco_val_polygon.jsonl'}"],
        "wrong-frame": ["data.image_size=100"],   # the synthetic task at 100 px; tiny feeds 112
        "missing-file": [f"data.source={tmp_path / 'nowhere.jsonl'}"],
        "all-skipped": [f"data.source={PEERS / 'count_val.jsonl'}", "data.format=vlm_r1",
                        "data.on_error=skip"],
    }[case]
    code = gro_fast_main(["train", *QUICK, f"trainer.output_dir={tmp_path}", *overrides])
    assert code == 2
    err = capsys.readouterr().err
    expected = {"no-split": "choose one with data.split",
                "no-datasets": "pip install 'gro_fast[data]'",
                "bad-row": "refcoco_val_polygon.jsonl:1: this looks like an evaluation row",
                "wrong-frame": "input_size 100x100, but the processor feeds 112x112",
                "missing-file": "data path not found",
                "all-skipped": "no usable samples (skipped: {'missing_field': 2})"}[case]
    assert err.startswith("gro-fast train: ") and expected in err, err


def test_data_source_entries_are_checked():
    cfg = load_config(None, ["data.source=[a.jsonl, {path: b.jsonl, image_root: /imgs}]",
                             "data.image_root=/root", "data.format=vlm_r1"])
    assert cfg.data.entries() == [
        {"path": "a.jsonl", "image_root": "/root", "format": "vlm_r1", "split": ""},
        {"path": "b.jsonl", "image_root": "/imgs", "format": "vlm_r1", "split": ""}]
    assert load_config(None, []).data.entries() == []
    for bad, message in (("[{image_root: /x}]", r"data.source\[0\].path: a dataset path"),
                         ("[{path: a.jsonl, root: /x}]", r"unknown key\(s\) \['root'\]"),
                         ("[7]", r"data.source\[0\]: expected a path"),
                         ("[]", "non-empty list")):
        with pytest.raises(ConfigError, match=message):
            load_config(None, [f"data.source={bad}"])
    for key, value in (("data.bbox_format", "cxcywh"), ("data.coords", "norm1")):
        with pytest.raises(ConfigError, match=key):
            load_config(None, [f"{key}={value}"])
    with pytest.raises(ConfigError, match="data.resize: expected processor"):
        load_config(None, ["data.resize=840"])
