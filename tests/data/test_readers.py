"""Training-row readers: formats, storage (JSON, JSONL, datasets folders), image forms,
bad records with their exact file / line / field, and on_error="skip" counts."""
import json
import pickle

import numpy as np
import pytest
from PIL import Image

from gro_fast.data import DataError, ResizeConfig, load_grounding_dataset
from gro_fast.data.readers import vlmr1_query

from .datafiles import b64, png_bytes, write_json, write_jsonl

SOLUTION = [{"bbox_2d": [20, 10, 60, 50], "point_2d": [40, 30]}]


def vr_row(image="a.png", **over):
    row = {"id": "r1", "problem": "the green thing", "solution": json.dumps(SOLUTION),
           "image": image, "img_width": 400, "img_height": 200}
    row.update(over)
    return row


def test_visionreasoner_jsonl_maps_solution_into_input_pixels(tmp_path, image_dir):
    path = write_jsonl(tmp_path / "train.jsonl", [vr_row()])
    ds = load_grounding_dataset(path, image_root=image_dir, resize=ResizeConfig.fixed(100, 50))
    s = ds[0]
    assert (s.id, s.query, s.task, s.count) == ("r1", "the green thing", "seg", 1)
    assert s.image.size == s.input_size == (100, 50) and s.image.mode == "RGB"
    # stored 200x100 -> input 100x50: halve; original declared 400x200.
    assert s.objects == [{"bbox_2d": [10.0, 5.0, 30.0, 25.0], "point_2d": [20.0, 15.0]}]
    assert s.original_size == (400, 200)
    assert s.to_original() == [{"bbox_2d": [40.0, 20.0, 120.0, 100.0], "point_2d": [80.0, 60.0]}]
    assert s.source == f"{path}:1"


def test_json_list_relative_paths_default_to_the_data_folder(tmp_path, image_dir):
    path = write_json(tmp_path / "train.json", [vr_row("imgs/a.png"), vr_row("imgs/b.jpg",
                      solution=json.dumps([{"bbox_2d": [0, 0, 64, 48]}]))])
    ds = load_grounding_dataset(path, resize=ResizeConfig.none())
    assert len(ds) == 2
    assert ds[1].objects == [{"bbox_2d": [0.0, 0.0, 64.0, 48.0], "point_2d": [32.0, 24.0]}]
    assert ds[1].source == f"{path}[1]"


@pytest.mark.parametrize("form", ["base64", "data-uri", "bytes-dict", "absolute", "list"])
def test_image_forms(tmp_path, image_dir, form):
    image = {"base64": b64(200, 100),
             "data-uri": "data:image/png;base64," + b64(200, 100),
             "bytes-dict": {"bytes": b64(200, 100), "path": None},
             "absolute": str(image_dir / "a.png"),
             "list": [str(image_dir / "a.png")]}[form]
    path = write_jsonl(tmp_path / "t.jsonl", [vr_row(image)])
    s = load_grounding_dataset(path, format="visionreasoner", resize=ResizeConfig.none())[0]
    assert s.image.size == (200, 100)


def test_datasets_folder_with_image_feature(tmp_path):
    datasets = pytest.importorskip("datasets")
    rows = [vr_row(Image.fromarray(np.full((100, 200, 3), k * 40, np.uint8)), id=f"r{k}")
            for k in range(3)]
    features = datasets.Features({
        "id": datasets.Value("string"), "problem": datasets.Value("string"),
        "solution": datasets.Value("string"), "image": datasets.Image(),
        "img_width": datasets.Value("int32"), "img_height": datasets.Value("int32")})
    ds = datasets.Dataset.from_list(rows, features=features)
    datasets.DatasetDict({"train": ds}).save_to_disk(str(tmp_path / "vr"))
    out = load_grounding_dataset(tmp_path / "vr", resize=ResizeConfig.none())
    assert [s.id for s in out] == ["r0", "r1", "r2"]
    assert np.asarray(out[2].image)[0, 0].tolist() == [80, 80, 80]
    assert out[0].objects[0]["bbox_2d"] == [20.0, 10.0, 60.0, 50.0]
    assert out[1].source == f"{tmp_path / 'vr'}[train][1]"
    again = pickle.loads(pickle.dumps(out))  # data-loader workers receive a pickled dataset
    assert np.array_equal(np.asarray(again[2].image), np.asarray(out[2].image))


def test_vlmr1_rec_box_centre_point_and_query(tmp_path, image_dir):
    human = "<image>Please provide the bounding box coordinate of the region this sentence " \
            "describes: man in red."
    row = {"id": 7, "image": ["a.png"], "conversations": [
        {"from": "human", "value": human}, {"from": "gpt", "value": "[10, 20, 110, 80]"}]}
    path = write_jsonl(tmp_path / "rec.jsonl", [row])
    s = load_grounding_dataset(path, image_root=image_dir, resize=ResizeConfig.fixed(400, 200))[0]
    assert (s.id, s.query, s.task) == ("7", "man in red.", "rec")
    assert s.objects == [{"bbox_2d": [20.0, 40.0, 220.0, 160.0], "point_2d": [120.0, 100.0]}]
    assert s.original_size == (200, 100)


def test_sub_pixel_overshoot_is_clamped(tmp_path, image_dir):
    over = json.dumps([{"bbox_2d": [-0.4, 10, 200.6, 100.3], "point_2d": [200.5, 50]}])
    path = write_jsonl(tmp_path / "t.jsonl", [vr_row(solution=over)])
    s = load_grounding_dataset(path, image_root=image_dir, resize=ResizeConfig.none())[0]
    assert s.objects == [{"bbox_2d": [0.0, 10.0, 200.0, 100.0], "point_2d": [200.0, 50.0]}]


def test_vlmr1_query_plain_text():
    assert vlmr1_query("<image>\nthe dog on the left") == "the dog on the left"


def test_count_rows_with_points_and_with_count_only(tmp_path, image_dir):
    rows = [{"image": "a.png", "question": "How many cups?", "points": [[10, 10], [50, 60]]},
            {"image": "b.jpg", "text": "How many dogs?", "count": 4}]
    path = write_jsonl(tmp_path / "count.jsonl", rows)
    ds = load_grounding_dataset(path, format="counting", image_root=image_dir,
                                resize=ResizeConfig.none())
    assert [(s.count, s.task, s.query) for s in ds] == [(2, "count", "How many cups?"),
                                                        (4, "count", "How many dogs?")]
    assert ds[0].objects == [{"point_2d": [10.0, 10.0]}, {"point_2d": [50.0, 60.0]}]
    assert ds[0].id == "count:1"


BAD = [
    ("missing-problem", {"problem": None}, "problem", "missing"),
    ("missing-image", {"image": None}, "image", "missing"),
    ("unreadable-image", {"image": "not_there.png"}, "image", "image file not found"),
    ("not-an-image", {"image": "notes.txt"}, "image", "unreadable image"),
    ("malformed-solution", {"solution": '[{"bbox_2d": [1, 2'}, "solution", "malformed JSON"),
    ("box-outside", {"solution": json.dumps([{"bbox_2d": [10, 10, 250, 50]}])}, "solution",
     "outside the 200x100 image"),
    ("box-negative", {"solution": json.dumps([{"bbox_2d": [-2, 10, 20, 50]}])}, "solution",
     "bbox_2d [-2, 10, 20, 50] lies outside"),
    ("point-outside", {"solution": json.dumps([{"bbox_2d": [1, 1, 5, 5],
                                                "point_2d": [3, 102]}])}, "solution",
     "point_2d [3, 102] lies outside"),
    ("inverted-box", {"solution": json.dumps([{"bbox_2d": [50, 10, 20, 50]}])}, "solution",
     "x1 > x2"),
    ("short-box", {"solution": json.dumps([{"bbox_2d": [1, 2, 3]}])}, "solution",
     "list of 4 numbers"),
    ("string-width", {"img_width": "400"}, "img_width", "expected a positive integer"),
    ("problem-type", {"problem": 5}, "problem", "expected a string"),
    ("solution-type", {"solution": 3}, "solution", "JSON string of objects"),
]


@pytest.mark.parametrize("name,over,field,detail", [pytest.param(*b, id=b[0]) for b in BAD])
def test_bad_record_names_file_line_and_field(tmp_path, image_dir, name, over, field, detail):
    (image_dir / "notes.txt").write_text("hello")
    path = write_jsonl(tmp_path / "bad.jsonl", [vr_row(), vr_row(**over)])
    with pytest.raises(DataError) as err:
        load_grounding_dataset(path, image_root=image_dir)
    assert str(err.value).startswith(f"{path}:2: field {field!r}: ")
    assert detail in str(err.value)
    assert (err.value.file, err.value.line, err.value.field) == (path, 2, field)


def test_bad_json_line_and_json_list_index(tmp_path, image_dir):
    path = write_jsonl(tmp_path / "bad.jsonl", [vr_row(), "{not json"])
    with pytest.raises(DataError, match=r"bad\.jsonl:2: invalid JSON"):
        load_grounding_dataset(path, format="visionreasoner", image_root=image_dir)
    path = write_json(tmp_path / "bad.json", [vr_row(), vr_row(), vr_row(problem=None)])
    with pytest.raises(DataError, match=r"bad\.json\[2\]: field 'problem': missing"):
        load_grounding_dataset(path, image_root=image_dir)


def test_vlmr1_bad_answer_names_the_turn(tmp_path, image_dir):
    row = {"image": "a.png", "conversations": [{"from": "human", "value": "<image>x"},
                                               {"from": "gpt", "value": "somewhere left"}]}
    path = write_jsonl(tmp_path / "rec.jsonl", [row])
    with pytest.raises(DataError, match=r"rec\.jsonl:1: field 'conversations\[1\]\.value': "
                                        r"no \[x1, y1, x2, y2\] box"):
        load_grounding_dataset(path, image_root=image_dir)


def test_skip_counts_bad_records_by_reason(tmp_path, image_dir):
    rows = [vr_row(), vr_row(problem=None), "{oops", vr_row(image="gone.png"),
            vr_row(solution="[{"), vr_row(solution=json.dumps([{"bbox_2d": [0, 0, 999, 1]}])),
            vr_row(id="last")]
    path = write_jsonl(tmp_path / "mixed.jsonl", rows)
    ds = load_grounding_dataset(path, format="visionreasoner", image_root=image_dir,
                                on_error="skip")
    assert [s.id for s in ds] == ["r1", "last"]
    assert dict(ds.skipped) == {"missing_field": 1, "bad_json": 1, "bad_image": 1,
                                "bad_solution": 1, "box_outside_image": 1}
    assert ds[1].source == f"{path}:7"


def test_truncated_image_fails_on_access_with_location(tmp_path):
    data = png_bytes(200, 100)
    (tmp_path / "cut.png").write_bytes(data[: len(data) // 2])
    path = write_jsonl(tmp_path / "t.jsonl", [vr_row("cut.png")])
    ds = load_grounding_dataset(path)
    with pytest.raises(DataError, match=r"t\.jsonl:1: field 'image': unreadable image"):
        ds[0]


def test_usage_errors(tmp_path, image_dir):
    path = write_jsonl(tmp_path / "t.jsonl", [vr_row()])
    with pytest.raises(ValueError, match="format"):
        load_grounding_dataset(path, format="coco")
    with pytest.raises(ValueError, match="on_error"):
        load_grounding_dataset(path, on_error="ignore")
    with pytest.raises(FileNotFoundError):
        load_grounding_dataset(tmp_path / "missing.jsonl")
    eval_path = write_jsonl(tmp_path / "e.jsonl", [{"image": "a.png", "text": "x", "mask": []}])
    with pytest.raises(ValueError, match="load_eval_rows"):
        load_grounding_dataset(eval_path)


def test_extreme_aspect_ratio_is_a_bad_image(tmp_path):
    Image.new("RGB", (2010, 10)).save(tmp_path / "strip.png")
    path = write_jsonl(tmp_path / "t.jsonl", [vr_row("strip.png", solution="[]")])
    with pytest.raises(DataError, match=r"t\.jsonl:1: field 'image': aspect ratio"):
        load_grounding_dataset(path)
    assert len(load_grounding_dataset(path, resize=ResizeConfig.fixed(840, 840))) == 1


def test_data_error_survives_pickling_and_plain_rebuilding():
    err = DataError("f.jsonl", "missing", line=3, field="image", reason="missing_field")
    again = pickle.loads(pickle.dumps(err))
    assert (str(again), again.line, again.field, again.reason) == (
        "f.jsonl:3: field 'image': missing", 3, "image", "missing_field")
    assert str(DataError(str(err))) == str(err)  # how torch's worker wrapper re-raises


@pytest.mark.parametrize("rec,field,detail", [
    ({"image": "a.png", "text": "n?", "count": 3, "points": [[1, 1]]}, "count",
     "3 does not match the 1 points"),
    ({"image": "a.png", "text": "n?"}, "count", "missing (and no points or solution)"),
    ({"image": "a.png", "count": 2}, "query", "missing (looked for query, problem"),
    ({"image": "a.png", "text": "n?", "count": -1}, "count", "must be >= 0"),
    ({"image": "a.png", "text": "n?", "points": [[1, 1, 2]]}, "points", "list of 2 numbers"),
    ({"image": ["a.png", "b.jpg"], "text": "n?", "count": 1}, "image", "one image, got a list"),
])
def test_bad_count_rows(tmp_path, image_dir, rec, field, detail):
    path = write_jsonl(tmp_path / "c.jsonl", [rec])
    with pytest.raises(DataError) as err:
        load_grounding_dataset(path, format="count", image_root=image_dir)
    assert str(err.value).startswith(f"{path}:1: field {field!r}: ") and detail in str(err.value)
