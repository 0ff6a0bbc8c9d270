"""Evaluation rows: masks as COCO polygons / RLE / dense arrays / mask images, counts,
boxes, and bad rows."""
import numpy as np
import pytest
from PIL import Image

from gro_fast.data import DataError, ResizeConfig, load_eval_rows
from gro_fast.data import masks
from gro_fast.data.masks import decode_mask

from .datafiles import write_json, write_jsonl

H, W = 100, 200  # a.png of the image_dir fixture is 200 x 100
# pycocotools (the yardstick here) trips a numpy 2 deprecation inside itself
pytestmark = pytest.mark.filterwarnings("ignore:__array__ implementation:DeprecationWarning")


def uncompressed_rle(mask: np.ndarray) -> dict:
    """COCO's uncompressed RLE written out by hand: column-major runs, zeros first."""
    flat = mask.T.reshape(-1).astype(np.uint8)
    counts, current, run = [], 0, 0
    for v in flat:
        if v == current:
            run += 1
        else:
            counts.append(run)
            current, run = v, 1
    counts.append(run)
    return {"size": [int(mask.shape[0]), int(mask.shape[1])], "counts": counts}


def blob_mask() -> np.ndarray:
    mask = np.zeros((H, W), dtype=bool)
    mask[20:60, 30:90] = True
    mask[70:75, 150:190] = True
    return mask


def row(mask, **over):
    r = {"image": "a.png", "text": "the blob", "mask": mask, "img_height": H, "img_width": W}
    r.update(over)
    return r


def test_uncompressed_and_compressed_rle(tmp_path, image_dir):
    pycoco = pytest.importorskip("pycocotools.mask")
    mask = blob_mask()
    compressed = pycoco.encode(np.asfortranarray(mask.astype(np.uint8)))
    compressed["counts"] = compressed["counts"].decode()
    path = write_jsonl(tmp_path / "e.jsonl", [row(uncompressed_rle(mask)), row(compressed)])
    ds = load_eval_rows(path, image_root=image_dir)
    for s in ds:
        assert s.mask.dtype == np.bool_ and s.mask.shape == (H, W)
        np.testing.assert_array_equal(s.mask, mask)
        assert s.task == "seg" and s.original_size == (W, H)


def test_polygons_cover_the_drawn_region(tmp_path, image_dir):
    square = [30, 20, 90, 20, 90, 60, 30, 60]
    path = write_json(tmp_path / "e.json", [row([square]), row(square)])
    for s in load_eval_rows(path, image_root=image_dir):
        ys, xs = np.nonzero(s.mask)
        assert (xs.min(), ys.min()) == (30, 20)
        assert 89 <= xs.max() <= 90 and 59 <= ys.max() <= 60
        assert abs(int(s.mask.sum()) - 60 * 40) <= 60 + 40 + 1


def test_polygon_pixels_follow_coco():
    pycoco = pytest.importorskip("pycocotools.mask")
    rng = np.random.default_rng(0)
    polygons = [list(rng.uniform(-5, 205, size=12)), list(rng.uniform(0, 100, size=8))]
    expected = pycoco.decode(pycoco.merge(pycoco.frPyObjects(polygons, H, W))).astype(bool)
    np.testing.assert_array_equal(decode_mask(polygons, H, W), expected)


@pytest.mark.parametrize("ops_present", [True, False], ids=["gro_fast.ops", "pycocotools"])
def test_both_decoders_agree(monkeypatch, ops_present):
    pycoco = pytest.importorskip("pycocotools.mask")
    if not ops_present:
        monkeypatch.setattr(masks, "_ops_function", lambda name, module: None)
    mask = blob_mask()
    compressed = pycoco.encode(np.asfortranarray(mask.astype(np.uint8)))
    compressed["counts"] = compressed["counts"].decode()
    for value in (compressed, uncompressed_rle(mask)):
        np.testing.assert_array_equal(decode_mask(value, H, W), mask)
    square = [[30, 20, 90, 20, 90, 60, 30, 60]]
    expected = pycoco.decode(pycoco.merge(pycoco.frPyObjects(square, H, W))).astype(bool)
    np.testing.assert_array_equal(decode_mask(square, H, W), expected)


def test_list_of_rles_is_or_ed(image_dir):
    a, b = np.zeros((H, W), bool), np.zeros((H, W), bool)
    a[:10, :10], b[50:, 100:] = True, True
    out = decode_mask([uncompressed_rle(a), uncompressed_rle(b)], H, W)
    np.testing.assert_array_equal(out, a | b)


def test_dense_mask_and_mask_image(tmp_path, image_dir):
    mask = blob_mask()
    Image.fromarray(mask.astype(np.uint8) * 255).save(image_dir / "m255.png")
    Image.fromarray(mask.astype(np.uint8)).save(image_dir / "m01.png")
    path = write_jsonl(tmp_path / "e.jsonl", [row(mask.astype(int).tolist()), row("m255.png"),
                                              row("m01.png")])
    for s in load_eval_rows(path, image_root=image_dir):
        np.testing.assert_array_equal(s.mask, mask)


def test_mask_stays_at_original_size_while_image_is_resized(tmp_path, image_dir):
    path = write_jsonl(tmp_path / "e.jsonl", [row(uncompressed_rle(blob_mask()),
                                                  bbox=[30, 20, 90, 60])])
    s = load_eval_rows(path, image_root=image_dir, resize=ResizeConfig.fixed(100, 100))[0]
    assert s.image.size == (100, 100) and s.mask.shape == (H, W)
    assert s.objects == [{"bbox_2d": [15.0, 20.0, 45.0, 60.0], "point_2d": [30.0, 40.0]}]
    assert s.to_original()[0]["bbox_2d"] == [30.0, 20.0, 90.0, 60.0]


def test_count_rows_bbox_xywh_and_ids(tmp_path, image_dir):
    rows = [{"image": "a.png", "text": "how many?", "count": 3, "image_id": 9, "ann_id": 2},
            {"image": "a.png", "text": "the left one", "bbox": [10, 10, 20, 30]}]
    path = write_jsonl(tmp_path / "e.jsonl", rows)
    ds = load_eval_rows(path, image_root=image_dir, resize=ResizeConfig.none(),
                        bbox_format="xywh")
    assert (ds[0].task, ds[0].count, ds[0].mask, ds[0].id) == ("count", 3, None, "9_2")
    assert ds[1].task == "rec" and ds[1].objects[0]["bbox_2d"] == [10.0, 10.0, 30.0, 40.0]


def test_datasets_folder_with_dense_masks(tmp_path):
    datasets = pytest.importorskip("datasets")
    mask = blob_mask()
    rows = [{"image": Image.new("RGB", (W, H)), "text": f"t{k}", "mask": mask.tolist(),
             "img_height": H, "img_width": W} for k in range(2)]
    datasets.Dataset.from_list(rows).save_to_disk(str(tmp_path / "ev"))
    ds = load_eval_rows(tmp_path / "ev", task="reasoning_seg")
    assert [s.query for s in ds] == ["t0", "t1"] and ds[1].task == "reasoning_seg"
    np.testing.assert_array_equal(ds[1].mask, mask)


BAD = [
    ("rle-size", {"mask": {"size": [10, 10], "counts": [100]}}, "mask", "does not match"),
    ("rle-sum", {"mask": {"size": [H, W], "counts": [5, 5]}}, "mask", "sum to 10"),
    ("rle-string", {"mask": {"size": [H, W], "counts": "abc"}}, "mask", "malformed compressed"),
    ("odd-polygon", {"mask": [[1, 2, 3, 4, 5]]}, "mask", "even number"),
    ("mask-type", {"mask": 3.5}, "mask", "expected COCO RLE"),
    ("mask-image-size", {"mask": "b.jpg"}, "mask", "mask image is 64x48"),
    ("no-target", {"mask": None}, "mask", "needs one of mask, count or bbox"),
    ("no-text", {"text": None}, "text", "missing"),
    ("count-type", {"mask": None, "count": "3"}, "count", "non-negative integer"),
    ("bbox-outside", {"bbox": [0, 0, 10, 102]}, "bbox", "outside the 200x100 image"),
]


@pytest.mark.parametrize("name,over,field,detail", [pytest.param(*b, id=b[0]) for b in BAD])
def test_bad_eval_rows(tmp_path, image_dir, name, over, field, detail):
    record = row(uncompressed_rle(blob_mask()))
    record.update(over)
    path = write_jsonl(tmp_path / "e.jsonl", [record])
    with pytest.raises(DataError) as err:
        load_eval_rows(path, image_root=image_dir)
    assert str(err.value).startswith(f"{path}:1: field {field!r}: ")
    assert detail in str(err.value)
    skipped = load_eval_rows(path, image_root=image_dir, on_error="skip")
    assert len(skipped) == 0 and sum(skipped.skipped.values()) == 1


def test_undecodable_rle_in_a_datasets_folder_fails_on_access(tmp_path):
    datasets = pytest.importorskip("datasets")
    rows = [{"image": Image.new("RGB", (W, H)), "text": "t", "img_height": H, "img_width": W,
             "mask": {"size": [H, W], "counts": "abc"}}]
    datasets.Dataset.from_list(rows).save_to_disk(str(tmp_path / "ev"))
    ds = load_eval_rows(tmp_path / "ev")
    with pytest.raises(DataError, match=r"ev\[0\]: field 'mask': cannot decode"):
        ds[0]
