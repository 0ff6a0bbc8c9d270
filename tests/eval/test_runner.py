"""The evaluation loop with scripted answers: metrics, outputs, resume, coordinate mapping."""
import json
import math

import numpy as np
import pytest

from gro_fast.eval import EvalConfig, EvalProtocol, evaluate
from gro_fast.eval.runner import sample_keys

from .conftest import ScriptedEngine, answer, make_sample

# Original frame 20 x 10 (W x H); the model sees 40 x 20, so answers are at twice the scale.


def _mask(rows, cols):
    m = np.zeros((10, 20), bool)
    m[rows, cols] = True
    return m


def seg_samples():
    return [make_sample("a", mask=_mask(slice(0, 5), slice(0, 10))),       # 50 px
            make_sample("b", mask=_mask(slice(5, 10), slice(10, 20))),     # 50 px
            make_sample("c", mask=_mask(slice(0, 10), slice(0, 10)))]      # 100 px


SEG_SCRIPT = {
    "a": answer([0, 0, 20, 10]),                       # -> [0, 0, 10, 5]: exact, I = U = 50
    "b": "I cannot see it.",                           # failed: I = 0, U = 50
    "c": answer([0, 0, 20, 10], [20, 10, 40, 20]),     # 100 px predicted, I = 50, U = 150
}


def test_segmentation_end_to_end(tmp_path):
    engine = ScriptedEngine(SEG_SCRIPT)
    report = evaluate(engine, seg_samples(), tmp_path, EvalConfig(task="seg", batch_size=2),
                      identity={"model": {"name": "scripted"}, "data": {"name": "hand"}})
    assert engine.calls == [2, 1]
    m = report["metrics"]
    assert m["gIoU"] == pytest.approx((1 + 0 + 1 / 3) / 3)
    assert m["cIoU"] == pytest.approx(100 / 250)
    assert report["failures"] == {"no_answer": 1}
    assert report["segmenter"]["name"] == "box"
    lines = (tmp_path / "samples.jsonl").read_text().splitlines()
    records = {r["id"]: r for r in map(json.loads, lines)}
    assert records["c"]["objects"][1]["bbox_2d"] == [10.0, 5.0, 20.0, 10.0]   # original pixels
    assert (records["c"]["intersection"], records["c"]["union"]) == (50, 150)
    assert records["b"]["failure"] == "no_answer" and records["b"]["union"] == 50
    saved = json.loads((tmp_path / "report.json").read_text())
    assert saved["metrics"] == m and saved["data"]["rows"] == 3
    md = (tmp_path / "report.md").read_text()
    assert "| box |" in md and f"{100 * m['gIoU']:.2f}" in md
    assert (tmp_path / "predictions.png").read_bytes()[:4] == b"\x89PNG"
    timing = report["timing"]
    assert timing["samples"] == 3 and 0 <= timing["outside_generation_share"] <= 1


def test_protocol_applies_to_the_same_samples(tmp_path):
    report = evaluate(ScriptedEngine(SEG_SCRIPT), seg_samples(), tmp_path,
                      EvalConfig(task="seg", protocol=EvalProtocol(failures="skip")))
    assert report["metrics"]["gIoU"] == pytest.approx((1 + 1 / 3) / 2)
    assert report["metrics"]["cIoU"] == pytest.approx(100 / 200)
    assert report["protocol"]["failures"] == "skip"


def test_rec_and_count(tmp_path):
    gt = [{"bbox_2d": [0, 0, 20, 10], "point_2d": [10, 5]}]
    rec = [make_sample("r1", objects=gt, task="rec"), make_sample("r2", objects=gt, task="rec")]
    script = {"r1": answer([20, 10, 40, 20], [0, 0, 20, 10]), "r2": answer([0, 0, 20, 10])}
    m = evaluate(ScriptedEngine(script), rec, tmp_path / "rec", EvalConfig(task="rec"))["metrics"]
    assert (m["acc"], m["acc_any"]) == (0.5, 1.0)

    counts = [make_sample(k, count=c, task="count") for k, c in
              (("k1", 2), ("k2", 3), ("k3", 1), ("k4", 1))]
    script = {"k1": answer([0, 0, 1, 1], [2, 2, 3, 3]), "k2": answer([0, 0, 1, 1]),
              "k3": "<think>none</think><answer>[]</answer>", "k4": "no answer"}
    report = evaluate(ScriptedEngine(script), counts, tmp_path / "count", EvalConfig(task="count"))
    m = report["metrics"]
    assert m["accuracy"] == pytest.approx(0.25)
    assert m["mae"] == pytest.approx(1.0)
    assert m["rmse"] == pytest.approx(math.sqrt(1.5))
    assert report["failures"] == {"no_answer": 1}


def test_resume_skips_done_samples_and_redoes_a_torn_line(tmp_path):
    evaluate(ScriptedEngine(SEG_SCRIPT), seg_samples(), tmp_path, EvalConfig(task="seg", limit=2))
    with open(tmp_path / "samples.jsonl", "a") as f:
        f.write('{"id": "c", "sour')                    # a crash mid-write
    engine = ScriptedEngine(SEG_SCRIPT)
    report = evaluate(engine, seg_samples(), tmp_path, EvalConfig(task="seg"))
    assert engine.calls == [1]
    assert report["resumed"] == {"previously_done": 2, "new": 1}
    assert report["metrics"]["gIoU"] == pytest.approx((1 + 0 + 1 / 3) / 3)
    ids = [json.loads(line)["id"] for line in (tmp_path / "samples.jsonl").read_text().splitlines()]
    assert ids == ["a", "b", "c"]
    # a second rerun has nothing left to generate
    engine = ScriptedEngine(SEG_SCRIPT)
    evaluate(engine, seg_samples(), tmp_path, EvalConfig(task="seg"))
    assert engine.calls == []
    # --no-resume starts over
    engine = ScriptedEngine(SEG_SCRIPT)
    evaluate(engine, seg_samples(), tmp_path, EvalConfig(task="seg", resume=False))
    assert engine.calls == [3]


def test_resume_refuses_a_different_run(tmp_path):
    evaluate(ScriptedEngine(SEG_SCRIPT), seg_samples(), tmp_path, EvalConfig(task="seg"),
             identity={"model": {"name": "m1"}})
    with pytest.raises(ValueError, match="different run"):
        evaluate(ScriptedEngine(SEG_SCRIPT), seg_samples(), tmp_path, EvalConfig(task="seg"),
                 identity={"model": {"name": "m2"}})


def test_missing_ground_truth_and_bad_config(tmp_path):
    with pytest.raises(ValueError, match="no ground-truth mask"):
        evaluate(ScriptedEngine({"x": answer([0, 0, 1, 1])}), [make_sample("x")], tmp_path,
                 EvalConfig(task="seg"))
    with pytest.raises(ValueError, match="not the original size"):
        evaluate(ScriptedEngine({"x": answer([0, 0, 1, 1])}),
                 [make_sample("x", mask=np.zeros((20, 40), bool))], tmp_path / "shape",
                 EvalConfig(task="seg"))
    with pytest.raises(ValueError, match="no ground-truth box"):
        evaluate(ScriptedEngine({"x": answer([0, 0, 1, 1])}), [make_sample("x", task="rec")],
                 tmp_path / "rec", EvalConfig(task="rec"))
    with pytest.raises(ValueError, match="neither a count"):
        evaluate(ScriptedEngine({"x": answer([0, 0, 1, 1])}), [make_sample("x", task="count")],
                 tmp_path / "count", EvalConfig(task="count"))
    for bad in ({"task": "detect"}, {"batch_size": 0}, {"limit": 0}, {"max_new_tokens": -1}):
        with pytest.raises(ValueError):
            EvalConfig(**bad)


def test_repeated_ids_get_distinct_keys():
    assert sample_keys(["x", "y", "x", "x"]) == ["x", "y", "x#1", "x#2"]


def test_sample_file_reader_tolerates_only_a_torn_last_line(tmp_path):
    from gro_fast.eval.report import append_sample_records, read_sample_records
    path = tmp_path / "samples.jsonl"
    path.write_text('{"id": "a"')                      # the only line, torn
    assert read_sample_records(path) == []
    append_sample_records(path, [{"id": "b"}])
    assert path.read_text() == '{"id":"b"}\n'
    path.write_text('{"id": "a"}\nnot json\n{"id": "c"}\n')
    with pytest.raises(ValueError, match="samples.jsonl:2"):
        read_sample_records(path)
