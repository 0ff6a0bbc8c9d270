"""COCO RLE: byte-identical encode and identical decode / area / iou (iscrowd) vs
pycocotools.mask, compiled path vs reference, malformed RLEs named by index."""
import numpy as np
import pytest
import torch
from pycocotools import mask as coco_mask

from gro_fast import _ext
from gro_fast.ops import force_backend, rle_area, rle_decode, rle_encode, rle_iou
from tests.ops.test_mask_iou import blob_masks


def coco_encode(masks: torch.Tensor):
    return coco_mask.encode(np.asfortranarray(masks.numpy().transpose(1, 2, 0)))


def edge_masks(h=24, w=37):
    ms = torch.zeros(6, h, w, dtype=torch.uint8)
    ms[1] = 1                     # full
    ms[2, 0, 0] = 1               # first pixel set: counts start with 0
    ms[3, -1, -1] = 1             # last pixel
    ms[4, :, ::2] = 1             # many short runs
    ms[5] = torch.rand(h, w, generator=torch.Generator().manual_seed(0)) < 0.5
    return ms


def test_extension_has_rle_ops():
    assert all(_ext.has_op(f"rle_{n}_cpu") for n in ("encode", "parse", "decode", "area", "iou")), _ext.load_error()


@pytest.mark.parametrize("masks", [edge_masks(), blob_masks(12, 300, 211, seed=3),
                                   torch.ones(2, 600, 700, dtype=torch.uint8), torch.zeros(1, 1, 1, dtype=torch.uint8)],
                         ids=["edges", "blobs", "long-runs", "1x1"])
def test_encode_is_byte_identical(masks):
    ours, theirs = rle_encode(masks), coco_encode(masks)
    assert [r["counts"] for r in ours] == [r["counts"] for r in theirs]
    assert all(r["size"] == list(t["size"]) for r, t in zip(ours, theirs))
    with force_backend("reference"):
        assert [r["counts"] for r in rle_encode(masks)] == [r["counts"] for r in theirs]


def test_encode_accepts_bool_numpy_and_single():
    masks = edge_masks()
    assert rle_encode(masks.bool())[4]["counts"] == coco_encode(masks)[4]["counts"]
    assert rle_encode(masks[5].numpy())["counts"] == coco_encode(masks)[5]["counts"]


@pytest.mark.parametrize("backend", ["auto", "reference"])
def test_decode_and_area_match_pycocotools(backend):
    masks = torch.cat([edge_masks(), blob_masks(5, 24, 37, seed=2)])
    rles = coco_encode(masks)
    str_rles = [{"size": r["size"], "counts": r["counts"].decode()} for r in rles]
    with force_backend(backend):
        assert torch.equal(rle_decode(rles), masks)
        assert torch.equal(rle_decode(str_rles), masks)
        assert torch.equal(rle_decode(rles[3]), masks[3])
        assert rle_area(rles).tolist() == coco_mask.area(rles).tolist()
        assert int(rle_area(rles[1])) == 24 * 37


def test_uncompressed_counts():
    masks = blob_masks(4, 20, 30, seed=5)
    rles = rle_encode(masks)
    lists = []
    for m in masks.numpy():
        flat = m.T.reshape(-1)
        change = np.flatnonzero(np.diff(flat)) + 1
        runs = np.diff(np.concatenate([[0], change, [flat.size]])).tolist()
        lists.append({"size": [20, 30], "counts": ([0] if flat[0] else []) + runs})
    assert torch.equal(rle_decode(lists), masks)
    coco = coco_mask.frPyObjects(lists, 20, 30)
    assert [r["counts"] for r in coco] == [r["counts"] for r in rles]
    assert torch.equal(rle_iou(lists, rles), rle_iou(rles, rles))


@pytest.mark.parametrize("backend", ["auto", "reference"])
def test_iou_with_crowd_matches_pycocotools(backend):
    dt = coco_encode(torch.cat([blob_masks(9, 40, 50, seed=6), torch.zeros(1, 40, 50, dtype=torch.uint8)]))
    gt = coco_encode(blob_masks(7, 40, 50, seed=7))
    crowd = [0, 1, 0, 0, 1, 0, 1]
    with force_backend(backend):
        ours = rle_iou(dt, gt, crowd)
    expected = coco_mask.iou(dt, gt, crowd)
    assert ours.dtype == torch.float64 and ours.shape == (10, 7)
    assert np.array_equal(ours.numpy(), expected)
    assert np.array_equal(rle_iou(dt, gt).numpy(), coco_mask.iou(dt, gt, [0] * 7))


def test_empty_sets():
    rles = rle_encode(blob_masks(3, 10, 10))
    assert rle_iou([], rles).shape == (0, 3) and rle_iou(rles, []).shape == (3, 0)
    assert rle_decode([]).shape[0] == 0 and rle_area([]).shape == (0,)


@pytest.mark.parametrize("backend", ["auto", "reference"])
@pytest.mark.parametrize("counts, message", [
    (b"1 2", "invalid character"), ("0" + chr(200), "non-ASCII"), (b"0k", "ends inside"),
    (b"02", "sum"), ([5, -1, 6], "negative"), ([3, 4], "sum"),
])
def test_malformed_rle_names_its_index(backend, counts, message):
    good = {"size": [2, 5], "counts": b"0:"}
    bad = {"size": [2, 5], "counts": counts}
    with force_backend(backend), pytest.raises(ValueError, match=rf"rles\[1\].*{message}|{message}"):
        rle_decode([good, bad])
    with force_backend(backend), pytest.raises(ValueError, match=r"rles2\[1\]"):
        rle_iou([good], [good, bad])


def test_bad_structure():
    with pytest.raises(TypeError, match=r"rles\[0\]"):
        rle_area([{"counts": b"0"}])
    with pytest.raises(ValueError, match="size"):
        rle_area([{"size": [-1, 2], "counts": b"0"}])
    with pytest.raises(TypeError, match="list"):
        rle_iou("abc", [])
    rles = rle_encode(blob_masks(2, 10, 10))
    with pytest.raises(ValueError, match="iscrowd"):
        rle_iou(rles, rles, [0])
    other = rle_encode(blob_masks(1, 10, 11))
    with pytest.raises(ValueError, match=r"rles2\[0\]"):
        rle_iou(rles, other)
    with pytest.raises(ValueError, match=r"rles\[1\]"):
        rle_decode([rles[0], other[0]])
    with pytest.raises(TypeError, match="masks"):
        rle_encode(torch.zeros(2, 3, 3))
