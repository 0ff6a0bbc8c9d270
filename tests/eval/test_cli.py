"""``gro-fast eval`` end to end on the tiny model: synthetic data, row files, bad rows, SAM2."""
import json

import numpy as np
import pytest
from PIL import Image

from gro_fast.cli import main as gro_fast_main
from gro_fast.eval.cli import main
from gro_fast.eval.scoring import FAILURE_REASONS

SMALL = ["--model", "tiny", "--max-new-tokens", "6", "--batch-size", "2", "--grid", "2"]


def _report(out):
    return json.loads((out / "report.json").read_text())


def test_synthetic_segmentation_and_resume(tmp_path, reference_kernels, capsys):
    out = tmp_path / "seg"
    args = ["eval", *SMALL, "--data", "synthetic", "--synthetic-samples", "2", "--task", "seg",
            "--out", str(out)]
    assert gro_fast_main(args) == 0
    report = _report(out)
    assert report["metrics"]["n_samples"] == 2 and report["segmenter"]["name"] == "box"
    assert report["model"]["name"] == "tiny_qwen2_5_vl" and report["data"]["rows"] == 2
    assert len(report["data"]["sha256"]) == 64
    records = [json.loads(line) for line in (out / "samples.jsonl").read_text().splitlines()]
    assert len(records) == 2
    assert sum(report["failures"].values()) == sum(r["failure"] is not None for r in records)
    assert set(report["failures"]) <= set(FAILURE_REASONS)
    assert "gIoU" in capsys.readouterr().out
    # A rerun finds every sample done; another protocol re-aggregates the same records.
    assert gro_fast_main(args + ["--protocol", "lisa"]) == 0
    again = _report(out)
    assert again["resumed"] == {"previously_done": 2, "new": 0}
    assert again["protocol"]["empty_target"] == "lisa"


def _rows_file(tmp_path, rows):
    for name, colour in (("a.png", (200, 30, 30)), ("b.png", (30, 30, 200))):
        Image.fromarray(np.full((30, 40, 3), colour, np.uint8)).save(tmp_path / name)
    path = tmp_path / "rows.jsonl"
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    return path


def test_rows_file_counting(tmp_path, reference_kernels):
    rows = [{"id": "r0", "image": "a.png", "text": "the red things", "count": 2,
             "img_height": 30, "img_width": 40},
            {"id": "r1", "image": "b.png", "text": "the blue things", "count": 0,
             "img_height": 30, "img_width": 40}]
    path = _rows_file(tmp_path, rows)
    out = tmp_path / "out"
    assert main([*SMALL, "--data", str(path), "--task", "count", "--out", str(out)]) == 0
    report = _report(out)
    assert report["metrics"]["n_samples"] == 2 and report["data"]["name"] == "rows.jsonl"
    records = [json.loads(line) for line in (out / "samples.jsonl").read_text().splitlines()]
    assert [r["gt_count"] for r in records] == [2, 0]


def test_rows_file_segmentation_with_coco_masks(tmp_path, reference_kernels):
    # Stored images are 40 x 30 but the originals were 80 x 60: masks are at original size.
    polygon = [[0, 0, 40, 0, 40, 30, 0, 30]]
    rle = {"size": [60, 80], "counts": [60 * 40, 60 * 40]}   # column-major: right half
    rows = [{"id": "p", "image": "a.png", "text": "the red square", "mask": polygon,
             "img_height": 60, "img_width": 80},
            {"id": "r", "image": "b.png", "text": "the blue half", "mask": rle,
             "img_height": 60, "img_width": 80}]
    out = tmp_path / "out"
    assert main([*SMALL, "--data", str(_rows_file(tmp_path, rows)), "--task", "seg",
                 "--out", str(out)]) == 0
    records = {r["id"]: r for r in map(json.loads, (out / "samples.jsonl").read_text().splitlines())}
    assert records["r"]["gt_area"] == 60 * 40
    assert 40 * 30 <= records["p"]["gt_area"] <= 41 * 31
    for r in records.values():
        assert r["gt_area"] <= r["union"] and r["intersection"] <= r["gt_area"]


def test_bad_row_names_file_line_and_field(tmp_path, capsys):
    rows = [{"image": "a.png", "text": "the red square", "count": 1, "img_height": 30, "img_width": 40},
            {"image": "a.png", "count": 1, "img_height": 30, "img_width": 40}]   # no "text"
    path = _rows_file(tmp_path, rows)
    assert main([*SMALL, "--data", str(path), "--task", "count", "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert "rows.jsonl:2" in err and "text" in err


@pytest.mark.parametrize("extra", [
    pytest.param(["--task", "detect"], id="task"),
    pytest.param(["--task", "seg", "--protocol", "failures=maybe"], id="protocol"),
    pytest.param(["--task", "seg", "--limit", "0"], id="limit"),
    pytest.param(["--task", "seg", "--sam2", "/no/such/folder"], id="sam2-path"),
])
def test_bad_arguments_exit_2(tmp_path, extra, capsys):
    assert main(["--model", "tiny", "--data", "synthetic", "--out", str(tmp_path), *extra]) == 2
    assert "error" in capsys.readouterr().err


def test_sam2_segmenter_from_the_command_line(tmp_path, reference_kernels):
    import torch
    from transformers import Sam2Model

    from .test_sam2 import tiny_sam2_config
    torch.manual_seed(0)
    Sam2Model(tiny_sam2_config()).save_pretrained(tmp_path / "sam2")
    out = tmp_path / "out"
    assert main([*SMALL, "--data", "synthetic", "--synthetic-samples", "1", "--task", "seg",
                 "--sam2", str(tmp_path / "sam2"), "--out", str(out)]) == 0
    report = _report(out)
    assert report["segmenter"]["name"] == "sam2"
    assert report["segmenter"]["checkpoint"] == str(tmp_path / "sam2")


def test_answers_map_back_to_original_pixels_through_the_reader(tmp_path):
    """Stored 40 x 30, original 80 x 60, model input 84 x 56 (the tiny processor's rule):
    an answer covering the right half of the input covers the right half of the original."""
    from gro_fast.data import load_eval_rows, model_frame
    from gro_fast.eval import EvalConfig, evaluate
    from gro_fast.models import tiny_processor

    from .conftest import ScriptedEngine, answer
    rle = {"size": [60, 80], "counts": [60 * 40, 60 * 40]}   # right half
    rows = [{"id": "r", "image": "b.png", "text": "find r", "mask": rle, "img_height": 60, "img_width": 80}]
    samples = load_eval_rows(_rows_file(tmp_path, rows), resize=model_frame(tiny_processor()))
    assert samples[0].input_size == (84, 56)
    report = evaluate(ScriptedEngine({"r": answer([42, 0, 84, 56])}), samples, tmp_path / "out",
                      EvalConfig(task="seg"))
    assert report["metrics"]["gIoU"] == 1.0


def test_pixel_segmenters_see_the_stored_image_at_original_size(tmp_path):
    from gro_fast.data import load_eval_rows
    from gro_fast.eval.runner import segmenter_image
    from gro_fast.eval.segmenters import BoxSegmenter, Segmenter

    class Pixels(Segmenter):
        def _segment(self, image, objects, width, height):
            return np.zeros((height, width), bool)

    rows = [{"id": "r", "image": "a.png", "text": "x", "count": 1, "img_height": 60, "img_width": 80}]
    data = load_eval_rows(_rows_file(tmp_path, rows))
    image = segmenter_image(data, 0, data[0], Pixels())
    assert image.size == (80, 60) and image.getpixel((79, 59)) == (200, 30, 30)
    assert segmenter_image(data, 0, data[0], BoxSegmenter()).size == (80, 60)


def test_predictions_do_not_depend_on_batch_size(tmp_path, reference_kernels):
    """Greedy answers of a batch equal those generated one prompt at a time."""
    def predictions(batch, out):
        assert main(["--model", "tiny", "--max-new-tokens", "8", "--grid", "0", "--data", "synthetic",
                     "--synthetic-samples", "3", "--task", "count", "--batch-size", str(batch),
                     "--out", str(out)]) == 0
        return [json.loads(line)["prediction"] for line in (out / "samples.jsonl").read_text().splitlines()]

    assert predictions(3, tmp_path / "b3") == predictions(1, tmp_path / "b1")


def test_prompt_template_comes_from_the_flag_then_the_model_folder(tmp_path):
    import argparse

    from gro_fast.data import save_template
    from gro_fast.eval.cli import prompt_template
    args = argparse.Namespace(template=None, model=str(tmp_path))
    assert prompt_template(args) is None                 # nothing recorded: data's default
    save_template(str(tmp_path), "Locate {query}.")
    assert prompt_template(args) == "Locate {query}."    # what the model was trained with
    args.template = "Where is {query}?"
    assert prompt_template(args) == "Where is {query}?"  # the flag wins
    args.template = "no placeholder"
    with pytest.raises(ValueError, match="query"):
        prompt_template(args)
