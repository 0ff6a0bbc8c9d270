"""The defects the fuzzer and the hostile-input suite found in the IoU ops, one test each
(their inputs are also in the regression corpus)."""
import time

import numpy as np
import pytest
import torch

from gro_fast.ops import polygon_iou, polygons_to_mask, rle_area, rle_decode, rle_iou
from gro_fast.ops.mask_iou import reference_mask_iou

BIG = "ooooooooooo?"          # one run of 2^59 - 1 pixels (12 five-bit groups)


def test_run_lengths_that_overflow_int64_are_a_clear_error():
    rle = {"size": [2**31 - 1, 2**31 - 1], "counts": BIG * 40}
    for op in (rle_decode, rle_area):
        with pytest.raises(ValueError, match=r"rles\[0\]: malformed RLE counts: count \d+ "
                                             r"overflows|rles\[0\]: counts exceed"):
            op([rle])


def test_decoding_a_mask_above_two_to_the_31_pixels_is_refused_before_allocating():
    side = 2**31 - 1
    # Runs that sum exactly to h * w: the RLE is valid, the mask would be 4.6e18 bytes.
    total = side * side
    counts = [0] + [2**59] * (total // 2**59) + [total % 2**59]
    rle = {"size": [side, side], "counts": counts}
    assert int(rle_area([rle])[0]) == sum(counts[1::2])
    with pytest.raises(ValueError, match=r"rles\[0\]: a 2147483647 x 2147483647 mask has "
                                         r"more than 2\^31 pixels"):
        rle_decode([rle])
    assert rle_iou([rle], [rle]).shape == (1, 1)


@pytest.mark.parametrize("h,w,match", [(2**31, 1, "height"), (1, 2**40, "width"),
                                       (2**16, 2**16, "more than 2\\^31 pixels")])
def test_a_huge_raster_is_refused_before_allocating(h, w, match):
    with pytest.raises(ValueError, match=match):
        polygons_to_mask([[0, 0, 5, 0, 5, 5]], h, w)


def test_edges_too_long_to_walk_are_refused_not_walked_for_minutes():
    start = time.perf_counter()
    with pytest.raises(ValueError, match=r"polygons\[1\]: its edges are too long"):
        polygons_to_mask([[0, 0, 1, 0, 1, 1], [0, 0, 2e9, 0, 2e9, 0.5]], 1, 2**31 - 1)
    assert time.perf_counter() - start < 5


def _circle(k, cx, r, cy=50):
    t = np.linspace(0, 2 * np.pi, k, endpoint=False)
    return np.stack([cx + r * np.cos(t), cy + r * np.sin(t)], 1)


def test_polygon_iou_of_100000_vertex_polygons_is_fast_and_exact():
    shapely = pytest.importorskip("shapely")
    a, b = _circle(100_000, 50, 30), _circle(100_000, 60, 30)
    start = time.perf_counter()
    iou = float(polygon_iou([a], [b])[0, 0])
    assert time.perf_counter() - start < 10
    pa, pb = shapely.Polygon(a), shapely.Polygon(b)
    assert iou == pytest.approx(pa.intersection(pb).area / pa.union(pb).area, abs=1e-9)


def test_polygon_iou_of_nearly_coincident_many_vertex_polygons():
    """Found by the fuzzer: boundaries that touch everywhere sent every piece of every edge
    to a point-in-polygon test over all 100,000 edges (minutes)."""
    shapely = pytest.importorskip("shapely")
    a, b = _circle(20_000, 5, 2, cy=5), _circle(100_000, 5, 2, cy=5)
    start = time.perf_counter()
    iou = float(polygon_iou([a], [b])[0, 0])
    assert time.perf_counter() - start < 10
    pa, pb = shapely.Polygon(a), shapely.Polygon(b)
    assert iou == pytest.approx(pa.intersection(pb).area / pa.union(pb).area, abs=1e-9)


def test_polygons_to_mask_of_a_100000_vertex_polygon():
    coco = pytest.importorskip("pycocotools.mask")
    poly = _circle(100_000, 50, 30).ravel().tolist()
    expected = coco.decode(coco.merge(coco.frPyObjects([poly], 100, 100)))
    assert np.array_equal(polygons_to_mask([poly], 100, 100).numpy(), expected)


def test_reference_mask_iou_of_no_masks():
    out = reference_mask_iou(torch.zeros(0, 3, 4, dtype=torch.bool),
                             torch.ones(2, 3, 4, dtype=torch.bool))
    assert out.shape == (0, 2)


@pytest.mark.parametrize("height", [2**28, pytest.param(2**31 - 1, marks=pytest.mark.slow)])
def test_a_valid_tall_raster_is_made(height):
    poly = [[0, 0, 1, 0, 1, 5]]
    mask = polygons_to_mask(poly, height, 1)
    assert mask.shape == (height, 1)
    assert torch.equal(mask[:64], polygons_to_mask(poly, 64, 1))
    assert int(mask.sum()) == int(mask[:64].sum())
