"""Polygons: pixel equality with pycocotools' rasterisation, exact IoU vs shapely 2 and
the slab reference, degenerate and huge inputs, bad polygons named by index."""
import numpy as np
import pytest
import shapely
from pycocotools import mask as coco_mask

from gro_fast import _ext
from gro_fast.ops import force_backend, polygon_iou, polygons_to_mask
from gro_fast.ops.polygon.reference import reference_polygon_iou

# pycocotools' decode triggers numpy 2's copy-keyword DeprecationWarning
pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


def star(rng, center, radius, k):
    """Random simple star-shaped (generally non-convex) polygon, flat [x1, y1, ...]."""
    angles = np.sort(rng.uniform(0, 2 * np.pi, k))
    r = rng.uniform(0.2, 1.0, k) * radius
    return np.stack([center[0] + r * np.cos(angles), center[1] + r * np.sin(angles)], 1).reshape(-1)


def coco_pixels(polys, h, w):
    return coco_mask.decode(coco_mask.merge(coco_mask.frPyObjects([list(map(float, p)) for p in polys], h, w)))


def test_extension_has_polygon_ops():
    assert _ext.has_op("polygons_to_mask_cpu") and _ext.has_op("polygon_iou_cpu"), _ext.load_error()


@pytest.mark.parametrize("backend", ["auto", "reference"])
def test_rasterisation_matches_pycocotools(backend):
    rng = np.random.default_rng(0)
    trials = 300 if backend == "auto" else 40
    mismatches = []
    for t in range(trials):
        h, w = (int(v) for v in rng.integers(1, 90, 2))
        polys = []
        for _ in range(int(rng.integers(1, 4))):
            if t % 3 == 0:  # arbitrary vertices, also outside the image and self-touching
                polys.append(rng.uniform(-10, max(h, w) + 10, 2 * int(rng.integers(3, 12))))
            else:
                polys.append(star(rng, rng.uniform(-5, [w + 5, h + 5]), rng.uniform(1, 40), int(rng.integers(3, 30))))
        if t % 5 == 0:
            polys[0] = np.round(polys[0])  # integer vertices: ties in the rounding
        with force_backend(backend):
            ours = polygons_to_mask([p.tolist() for p in polys], h, w)
        if not np.array_equal(ours.numpy(), coco_pixels(polys, h, w)):
            mismatches.append(t)
    assert not mismatches, f"pixel mismatches in trials {mismatches}"


def test_rasterisation_forms_and_edges():
    square = [1.0, 1.0, 6.0, 1.0, 6.0, 4.0, 1.0, 4.0]
    expected = coco_pixels([square], 8, 9)
    assert np.array_equal(polygons_to_mask(square, 8, 9).numpy(), expected)          # one flat list
    assert np.array_equal(polygons_to_mask([np.array(square).reshape(4, 2)], 8, 9).numpy(), expected)
    assert polygons_to_mask([square], 0, 5).shape == (0, 5)
    assert polygons_to_mask([], 3, 4).sum() == 0
    repeated = [2.0, 2.0, 2.0, 2.0, 7.0, 2.0, 7.0, 7.0, 7.0, 7.0]
    assert np.array_equal(polygons_to_mask([repeated], 9, 9).numpy(), coco_pixels([repeated], 9, 9))


def test_huge_coordinates_are_safe():
    big = [-1e12, -1e12, 1e12, -1e12, 1e12, 1e12, -1e12, 1e12]
    assert polygons_to_mask([big], 20, 30).all()
    far = [1e300, 1e300, 2e300, 1e300, 2e300, 2e300]
    assert polygons_to_mask([far], 20, 30).sum() == 0
    with force_backend("reference"):
        assert polygons_to_mask([big], 20, 30).all()


def shapely_iou(ps, qs):
    a = np.array([shapely.Polygon(p.reshape(-1, 2)) for p in ps], dtype=object)[:, None]
    b = np.array([shapely.Polygon(q.reshape(-1, 2)) for q in qs], dtype=object)[None, :]
    inter = shapely.area(shapely.intersection(a, b))
    union = shapely.area(a) + shapely.area(b) - inter
    return np.where(union > 0, inter / np.where(union > 0, union, 1), 0)


def test_iou_matches_shapely():
    rng = np.random.default_rng(1)
    ps = [star(rng, rng.uniform(0, 100, 2), rng.uniform(5, 60), int(rng.integers(3, 65))) for _ in range(40)]
    qs = [star(rng, rng.uniform(0, 100, 2), rng.uniform(5, 60), int(rng.integers(3, 65))) for _ in range(30)]
    qs[0] = qs[0].reshape(-1, 2)[::-1].reshape(-1)  # clockwise
    ours = polygon_iou(ps, qs).numpy()
    expected = shapely_iou(ps, qs)
    assert ours.dtype == np.float64 and ours.shape == (40, 30)
    assert np.abs(ours - expected).max() <= 1e-9 and (expected > 0.05).sum() > 50


def test_iou_matches_slab_reference():
    rng = np.random.default_rng(2)
    ps = [star(rng, rng.uniform(0, 30, 2), 20, int(rng.integers(3, 20))) for _ in range(6)]
    assert np.abs(polygon_iou(ps, ps[::-1]).numpy() - reference_polygon_iou(
        [p.reshape(-1, 2) for p in ps], [p.reshape(-1, 2) for p in ps[::-1]]).numpy()).max() <= 1e-9


def test_iou_degenerate_configurations():
    sq = np.array([0, 0, 4, 0, 4, 4, 0, 4], dtype=float)
    cases = {
        "identical": (sq, sq, 1.0),
        "reversed": (sq, sq.reshape(-1, 2)[::-1].reshape(-1), 1.0),
        "shared edge": (sq, sq + [4, 0] * 4, 0.0),
        "half overlap on shared lines": (sq, sq + [2, 0] * 4, 8 / 24),
        "contained": (sq, np.array([1, 1, 3, 1, 3, 3, 1, 3], float), 4 / 16),
        "corner touch": (sq, sq + 4, 0.0),
        "zero area": (sq, np.array([0, 0, 2, 2, 4, 4], float), 0.0),
        "far apart": (sq, sq + 1e6, 0.0),
    }
    for name, (p, q, expected) in cases.items():
        got = polygon_iou([p], [q])[0, 0].item()
        assert abs(got - expected) <= 1e-12, (name, got, expected)
    notch = np.array([0, 0, 6, 0, 6, 6, 4, 6, 4, 2, 2, 2, 2, 6, 0, 6], float)  # U shape, non-convex
    assert abs(polygon_iou([notch], [sq + [1, 1] * 4])[0, 0].item() - shapely_iou([notch], [sq + [1, 1] * 4])[0, 0]) < 1e-12


def test_iou_large_coordinates():
    sq = np.array([0, 0, 4, 0, 4, 4, 0, 4], dtype=float)
    for scale in (1e-90, 1e90):
        got = polygon_iou([sq * scale], [(sq + [2, 0] * 4) * scale])[0, 0].item()
        assert abs(got - 8 / 24) < 1e-12
    with pytest.raises(ValueError, match=r"polys1\[0\].*beyond"):
        polygon_iou([sq * 1e200], [sq])


def test_empty_sets():
    sq = [0, 0, 1, 0, 1, 1]
    assert polygon_iou([], [sq]).shape == (0, 1) and polygon_iou([sq], []).shape == (1, 0)


@pytest.mark.parametrize("poly, message", [
    ([0, 0, 1, 0, 1], "odd number"), ([0, 0, 1, 1], "at least 3"),
    ([0, 0, 1, float("nan"), 1, 1], "non-finite"), ([0, 0, float("inf"), 0, 1, 1], "non-finite"),
    ("abc", "polygon"),
])
def test_bad_polygon_names_its_index(poly, message):
    good = [0, 0, 1, 0, 1, 1]
    with pytest.raises(ValueError, match=rf"polys2\[1\].*{message}"):
        polygon_iou([good], [good, poly])
    with pytest.raises(ValueError, match=rf"polygons\[1\].*{message}"):
        polygons_to_mask([good, poly], 5, 5)


def test_bad_sizes():
    with pytest.raises(ValueError, match="height"):
        polygons_to_mask([[0, 0, 1, 0, 1, 1]], -1, 4)
    with pytest.raises(TypeError, match="polys1"):
        polygon_iou(5, [])
