"""``gro-fast eval`` on the peers' own evaluation rows (tests/data/peers), end to end on the
tiny model: dense / polygon / RLE masks, a save_to_disk split, COCO boxes, VLM-R1's
rec_jsons_processed rows, counting; VisionReasoner's query normalisation; bad data exits 2."""
import json
import sys

import numpy as np
import pytest

from gro_fast.eval.cli import main

from ..data.datafiles import PEERS, peer_truth

SMALL = ["--model", "tiny", "--max-new-tokens", "6", "--batch-size", "2", "--grid", "1"]
RUNS = {  # id -> (fixture, task, extra options)
    "reasonseg-dense": ("reasonseg_val.jsonl", "seg", ["--protocol", "vision_reasoner"]),
    "reasonseg-folder-split": ("reasonseg_hf", "seg", ["--split", "test"]),
    "refcoco-polygon": ("refcoco_val_polygon.jsonl", "seg", []),
    "refcoco-rle": ("refcoco_val_rle.jsonl", "seg", []),
    "refcoco-rle-uncompressed": ("refcoco_val_rle_uncompressed.jsonl", "seg", []),
    "refcoco-coco-boxes": ("refcoco_val_polygon_xywh.jsonl", "rec", ["--bbox-format", "xywh"]),
    "vlmr1-rec-json": ("rec_jsons_processed/refcocog_val.json", "rec",
                       ["--image-root", str(PEERS / "images")]),
    "count": ("count_val.jsonl", "count", ["--query-normalization", "vision_reasoner"]),
}


def _records(out):
    return [json.loads(line) for line in (out / "samples.jsonl").read_text().splitlines()]


@pytest.mark.parametrize("run", list(RUNS))
def test_eval_on_peer_rows(tmp_path, reference_kernels, run):
    if run == "reasonseg-folder-split":
        pytest.importorskip("datasets")
    fixture, task, extra = RUNS[run]
    out = tmp_path / "out"
    assert main([*SMALL, "--data", str(PEERS / fixture), "--task", task, "--out", str(out),
                 *extra]) == 0
    report = json.loads((out / "report.json").read_text())
    records = _records(out)
    truth = peer_truth("reasonseg_val.jsonl")[1:] if run == "reasonseg-folder-split" \
        else peer_truth(fixture)
    assert report["metrics"]["n_samples"] == len(records) == len(truth)
    if task == "seg":   # the ground-truth masks as decoded: every pixel of the target
        assert [r["gt_area"] for r in records] == [t["mask_area"] for t in truth]
    elif task == "rec":
        got = np.array([r["gt_boxes"] for r in records])
        assert np.abs(got - np.array([t["boxes"] for t in truth])).max() < 1e-6
    else:
        assert [r["gt_count"] for r in records] == [t["count"] for t in truth]
    if "--split" in extra:
        assert report["data"]["split"] == "test"
    if "--bbox-format" in extra:
        assert report["data"]["bbox_format"] == "xywh"


def test_vision_reasoner_protocol_asks_normalised_queries(tmp_path):
    """VisionReasoner lower-cases each query and strips .?!" at both ends before asking;
    --protocol vision_reasoner (or --query-normalization) does the same, and a finished
    run is not re-aggregated under the other rule (the prompts differ)."""
    from gro_fast.data import load_eval_rows, model_frame
    from gro_fast.eval import EvalConfig, EvalProtocol, evaluate
    from gro_fast.models import tiny_processor

    from .conftest import ScriptedEngine, answer
    samples = load_eval_rows(PEERS / "reasonseg_val.jsonl", resize=model_frame(tiny_processor()))
    asked = []

    class Recording(ScriptedEngine):
        def generate(self, conversations, **kw):
            asked.extend(c[0]["content"][1]["text"] for c in conversations)
            return super().generate(conversations, **kw)

    script = {"what is the yellow box on the right": answer([0, 0, 10, 10]),
              "what is the red box on the right": answer([0, 0, 10, 10])}
    config = EvalConfig(task="seg", protocol=EvalProtocol.parse("vision_reasoner"),
                        template="find {query}")
    evaluate(Recording(script), samples, tmp_path / "out", config)
    assert asked == ["find what is the yellow box on the right",
                     "find what is the red box on the right"]
    with pytest.raises(ValueError, match=r"differs in \['query_normalization'\]"):
        evaluate(Recording(script), samples, tmp_path / "out", EvalConfig(task="seg"))


@pytest.mark.parametrize("case", ["no-split", "no-datasets", "coco-boxes-as-xyxy", "bad-split"])
def test_bad_data_exits_2_with_the_reason(tmp_path, capsys, monkeypatch, case):
    if case == "no-datasets":
        monkeypatch.setitem(sys.modules, "datasets", None)
    data, extra, expected = {
        "no-split": ("reasonseg_hf", [], "splits ['test', 'val']: choose one"),
        "no-datasets": ("reasonseg_hf", ["--split", "val"], "pip install 'gro_fast[data]'"),
        "coco-boxes-as-xyxy": ("refcoco_val_polygon_xywh.jsonl", [],
                               "refcoco_val_polygon_xywh.jsonl:2: field 'bbox'"),
        "bad-split": ("reasonseg_val.jsonl", ["--split", "val"], "save_to_disk folders only"),
    }[case]
    code = main([*SMALL, "--data", str(PEERS / data), "--task", "seg", "--out",
                 str(tmp_path / "out"), *extra])
    assert code == 2
    err = capsys.readouterr().err
    assert err.startswith("gro-fast eval: error: ") and expected in err, err
