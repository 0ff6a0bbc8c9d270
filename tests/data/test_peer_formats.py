"""The peers' own formats (tests/data/peers) read right, and their bad forms fail loudly.

Every training and evaluation fixture is read with format detection and its boxes (mapped
back to original pixels) and masks compared with the scene's known truth; every silent
defect of issue 12 is turned into an input here that must raise a DataError naming
file:line (or folder[split][index]) and field, or be skipped and counted."""
import json
import sys

import numpy as np
import pytest

from gro_fast.data import DataError, ResizeConfig, load_eval_rows, load_grounding_dataset
from gro_fast.data.prompts import normalize_query
from gro_fast.data.readers import detect_format

from .datafiles import PEERS, peer_truth, write_json, write_jsonl

IMAGES = PEERS / "images"
TRAINING = {  # fixture -> (detected format, task, first query, loader kwargs)
    "segzero_train.jsonl": ("visionreasoner", "seg", "the red box", {}),
    "vlmr1_rec.jsonl": ("vlmr1_rec", "rec", "the red box.", {}),
    "vlmr1_rec_answer_tags.jsonl": ("vlmr1_rec", "rec", "the red box.", {}),
    "rec_jsons_processed/refcocog_val.json": ("vlmr1_rec_json", "rec", "the blue box",
                                              {"image_root": IMAGES}),
    "internvl_grounding.jsonl": ("internvl", "rec", "the red box", {}),
}
EVAL = {  # fixture -> (task, loader kwargs)
    "reasonseg_val.jsonl": ("seg", {}),
    "refcoco_val_polygon.jsonl": ("seg", {}),
    "refcoco_val_polygon_xywh.jsonl": ("seg", {"bbox_format": "xywh"}),
    "refcoco_val_rle.jsonl": ("seg", {}),
    "refcoco_val_rle_uncompressed.jsonl": ("seg", {}),
    "count_val.jsonl": ("count", {}),
    "rec_jsons_processed/refcocog_val.json": ("rec", {"image_root": IMAGES}),
}


def _rows(name):
    text = (PEERS / name).read_text()
    return json.loads(text) if name.endswith(".json") else \
        [json.loads(line) for line in text.splitlines()]


def _close(objects, boxes, tol=0.5):
    got = [o["bbox_2d"] for o in objects]
    assert len(got) == len(boxes)
    assert np.abs(np.asarray(got, float) - np.asarray(boxes, float)).max() <= tol, (got, boxes)


@pytest.mark.parametrize("name", list(TRAINING))
def test_training_fixtures_detected_and_boxes_exact_in_original_pixels(name):
    fmt, task, query, kwargs = TRAINING[name]
    assert detect_format(_rows(name)[0]) == fmt
    ds = load_grounding_dataset(PEERS / name, resize=ResizeConfig.none(), **kwargs)
    assert len(ds) == len(peer_truth(name)) and not ds.skipped
    assert (ds[0].task, ds[0].query) == (task, query)
    for sample, truth in zip(ds, peer_truth(name)):
        _close(sample.to_original(), truth["boxes"])


def test_segzero_rows_keep_the_840_frame_and_the_original_size():
    s = load_grounding_dataset(PEERS / "segzero_train.jsonl", resize=ResizeConfig.none())[1]
    assert s.input_size == (840, 840) and s.original_size == (240, 320)
    assert s.objects[0]["bbox_2d"] == [350.0, 525.0, 735.0, 788.0]   # as stored, 840 frame


def test_internvl_query_has_no_ref_tags_and_boxes_are_read_as_0_to_1000():
    ds = load_grounding_dataset(PEERS / "internvl_grounding.jsonl", resize=ResizeConfig.none())
    assert "<ref>" not in ds[1].query and ds[1].query == "the red box"
    # 0-1000 of 240 x 320: [417, 625, 875, 938] -> [100.08, 200, 210, 300.16].
    _close(ds[1].objects, [[100, 200, 210, 300]], tol=0.2)


def test_coords_option_overrides_detection(tmp_path):
    rows = _rows("vlmr1_rec.jsonl")[:1]
    rows[0]["conversations"][1]["value"] = "[125, 125, 375, 458]"   # 0-1000 of 320 x 240
    path = write_jsonl(tmp_path / "norm.jsonl", rows)
    s = load_grounding_dataset(path, image_root=PEERS, coords="norm1000",
                               resize=ResizeConfig.none())[0]
    _close(s.objects, [[40, 30, 120, 110]], tol=0.1)


def test_save_to_disk_folder_splits():
    pytest.importorskip("datasets")
    train = load_grounding_dataset(PEERS / "segzero_hf", split="train",
                                   resize=ResizeConfig.none())
    test = load_grounding_dataset(PEERS / "segzero_hf", split="test", resize=ResizeConfig.none())
    assert [s.id for s in train] == ["segzero_0", "segzero_1"] and [s.id for s in test] == ["segzero_2"]
    _close(test[0].to_original(), peer_truth("segzero_train.jsonl")[2]["boxes"])
    assert test[0].source == f"{PEERS / 'segzero_hf'}[test][0]"
    with pytest.raises(DataError, match=r"splits \['test', 'train'\]: choose one with data.split"):
        load_grounding_dataset(PEERS / "segzero_hf")
    with pytest.raises(DataError, match="no split 'val'"):
        load_grounding_dataset(PEERS / "segzero_hf", split="val")
    with pytest.raises(DataError, match="save_to_disk folders only"):
        load_grounding_dataset(PEERS / "segzero_train.jsonl", split="train")


def test_save_to_disk_without_datasets_says_how_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "datasets", None)   # import datasets -> ImportError
    with pytest.raises(DataError, match=r"needs the 'datasets' package.*gro_fast\[data\]") as err:
        load_grounding_dataset(PEERS / "segzero_hf", split="train")
    assert err.value.reason == "missing_dependency"


@pytest.mark.parametrize("name", list(EVAL))
def test_eval_fixtures_masks_boxes_counts(name):
    task, kwargs = EVAL[name]
    ds = load_eval_rows(PEERS / name, resize=ResizeConfig.none(), **kwargs)
    assert [s.task for s in ds] == [task] * len(peer_truth(name))
    for sample, truth in zip(ds, peer_truth(name)):
        if "mask_area" in truth:
            assert sample.mask.shape == sample.original_size[::-1]
            assert int(sample.mask.sum()) == truth["mask_area"]
            ys, xs = np.nonzero(sample.mask)   # the mask covers exactly the target box
            assert [xs.min(), ys.min(), xs.max() + 1, ys.max() + 1] == truth["boxes"][0]
        if "boxes" in truth and sample.objects:
            _close(sample.to_original(), truth["boxes"])
        if "count" in truth:
            assert sample.count == truth["count"]


def test_coco_mask_forms_agree_with_pycocotools():
    mask_utils = pytest.importorskip("pycocotools.mask")
    forms = {f: load_eval_rows(PEERS / f"refcoco_val_{f}.jsonl", resize=ResizeConfig.none())
             for f in ("polygon", "rle", "rle_uncompressed")}
    for k, row in enumerate(_rows("refcoco_val_rle.jsonl")):
        rle = {"size": row["mask"]["size"], "counts": row["mask"]["counts"].encode()}
        expected = mask_utils.decode(rle).astype(bool)
        for form, ds in forms.items():
            assert np.array_equal(ds[k].mask, expected), form


def test_eval_reads_dense_masks_from_a_folder_split():
    pytest.importorskip("datasets")
    ds = load_eval_rows(PEERS / "reasonseg_hf", split="test", resize=ResizeConfig.none())
    assert len(ds) == 1 and int(ds[0].mask.sum()) == peer_truth("reasonseg_val.jsonl")[1]["mask_area"]


def test_vision_reasoner_query_normalization():
    assert normalize_query('What is the Red box on the right?"', "vision_reasoner") == \
        "what is the red box on the right"
    assert normalize_query("Keep. This!", "none") == "Keep. This!"
    with pytest.raises(ValueError, match="query normalization"):
        normalize_query("x", "lower")


# ---- bad inputs: each silent defect of issue 12 is an error naming the record and field ----

def _mutated(tmp_path, name, mutate, k=0):
    rows = _rows(name)
    mutate(rows[k])
    for row in rows:   # the copies live in tmp_path; their images stay in the fixture folder
        if isinstance(row.get("image"), str):
            row["image"] = str(PEERS / row["image"]) if not name.startswith("rec_") \
                else str(IMAGES / row["image"])
    write = write_json if name.endswith(".json") else write_jsonl
    return write(tmp_path / name.replace("/", "_"), rows)


def _drop_last_column(row):
    row["mask"] = [r[:-1] for r in row["mask"]]


def _transpose(row):
    row["mask"] = np.asarray(row["mask"]).T.tolist()


def _swap_sizes(row):
    row["img_width"], row["img_height"] = row["img_height"], row["img_width"]


def _swap_rle(row):
    row["mask"]["size"] = row["mask"]["size"][::-1]


def _coco_box(row):
    x1, y1, x2, y2 = row["bbox"]
    row["bbox"] = [x1, y1, x2 - x1, y2 - y1]


BAD = {  # id -> (fixture, mutation, loader, kwargs, field, text in the message, skip reason)
    "dense-mask-wrong-shape": ("reasonseg_val.jsonl", _drop_last_column, "eval", {}, "mask",
                               "dense mask has shape [48, 63], the image is [height, width] = [48, 64]",
                               "bad_mask"),
    "dense-mask-transposed": ("reasonseg_val.jsonl", _transpose, "eval", {}, "mask",
                              "height and width swapped", "bad_mask"),
    "declared-size-swapped": ("refcoco_val_polygon.jsonl", _swap_sizes, "eval", {}, "img_width",
                              "with height and width swapped", "swapped_size"),
    "count-size-swapped": ("count_val.jsonl", _swap_sizes, "eval", {}, "img_width",
                           "with height and width swapped", "swapped_size"),
    "rle-size-swapped": ("refcoco_val_rle.jsonl", _swap_rle, "eval", {}, "mask",
                         "height and width swapped?", "bad_mask"),
    # Row 1: its [x, y, w, h] has w < x (row 0's would pass as a box, silently wrong:
    # bbox_format says what the file holds; the hint points there from the first failure).
    "coco-box-read-as-xyxy": ("refcoco_val_polygon.jsonl", _coco_box, "eval", {}, "bbox",
                              "bbox_format='xywh'", "bad_box"),
    "internvl-read-as-pixels": ("internvl_grounding.jsonl", lambda r: None, "train",
                                {"coords": "pixels"}, "conversations[1].value",
                                "coords='norm1000'", "box_outside_image"),
}


@pytest.mark.parametrize("case", list(BAD))
def test_bad_input_names_line_and_field_or_is_counted(tmp_path, case):
    name, mutate, loader, kwargs, field, text, reason = BAD[case]
    k = 1 if case == "coco-box-read-as-xyxy" else 0
    bad_rows = 2 if case == "internvl-read-as-pixels" else 1   # every InternVL row then fails
    path = _mutated(tmp_path, name, mutate, k)
    load = load_eval_rows if loader == "eval" else load_grounding_dataset
    with pytest.raises(DataError) as err:
        load(path, resize=ResizeConfig.none(), **kwargs)
    where = f"{path}:{k + 1}" if path.endswith(".jsonl") else f"{path}[{k}]"
    assert str(err.value).startswith(f"{where}: field {field!r}: "), str(err.value)
    assert text in str(err.value)
    ds = load(path, resize=ResizeConfig.none(), on_error="skip", **kwargs)
    assert dict(ds.skipped) == {reason: bad_rows} and len(ds) == len(_rows(name)) - bad_rows


def test_a_wrong_shaped_boolean_mask_is_never_a_polygon(tmp_path):
    rows = _rows("reasonseg_val.jsonl")[:1]
    rows[0]["mask"] = [[True, False, True]] * 3   # 3 x 3 bools on a 48 x 64 image
    path = _mutated(tmp_path, "reasonseg_val.jsonl", lambda r: r.update(mask=rows[0]["mask"]))
    with pytest.raises(DataError, match=r"dense mask has shape \[3, 3\]"):
        load_eval_rows(path)


def test_auto_format_skips_an_unreadable_first_record(tmp_path):
    rows = _rows("vlmr1_rec.jsonl")
    for row in rows:
        row["image"] = str(PEERS / (row["image"][0] if isinstance(row["image"], list)
                                    else row["image"]))
    lines = ['{"image": "a.png", "broken', json.dumps({"image": "x", "caption": "?"})] + rows
    path = write_jsonl(tmp_path / "mixed.jsonl", lines)
    with pytest.raises(DataError) as err:
        load_grounding_dataset(path)
    assert str(err.value).startswith(f"{path}:1: invalid JSON: ")
    assert "at: column" in str(err.value) and "at at" not in str(err.value)
    path2 = write_jsonl(tmp_path / "unknown_first.jsonl", lines[1:])
    with pytest.raises(DataError, match=r"unknown_first.jsonl:1: cannot tell the data format"):
        load_grounding_dataset(path2)
    ds = load_grounding_dataset(path, on_error="skip", resize=ResizeConfig.none())
    assert dict(ds.skipped) == {"bad_json": 1, "unknown_format": 1} and len(ds) == 2
    _close(ds[0].to_original(), peer_truth("vlmr1_rec.jsonl")[0]["boxes"])


def test_rec_json_rows_are_rec_rows_not_visionreasoner_rows(tmp_path):
    """VLM-R1's {image, problem, solution: [box], normal_caption} used to be refused with
    "object 0 needs a 'bbox_2d': 61.0" (training) and "field 'text': missing" (eval)."""
    train = load_grounding_dataset(PEERS / "rec_jsons_processed/refcocog_val.json",
                                   image_root=IMAGES, resize=ResizeConfig.none())
    rows = load_eval_rows(PEERS / "rec_jsons_processed/refcocog_val.json", image_root=IMAGES,
                          resize=ResizeConfig.none())
    assert train[0].query == rows[0].query == "the blue box"
    assert train[0].objects == rows[0].objects and rows[0].task == "rec"
