"""Model-input size rules and the coordinate maps between input and original pixels."""
import math

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st
from PIL import Image

from gro_fast.data import GroundingSample, ResizeConfig, smart_resize


# (width, height, min_pixels, max_pixels) -> (width, height), from Qwen2-VL's processor.
PROCESSOR_TABLE = [
    ((640, 480, 3136, 1003520), (644, 476)), ((1920, 1080, 3136, 1003520), (1316, 728)),
    ((1, 1, 3136, 1003520), (56, 56)), ((1, 1, 12544, 200704), (112, 112)),
    ((13, 700, 3136, 1003520), (28, 420)), ((13, 700, 12544, 200704), (28, 840)),
    ((41, 14, 3136, 1003520), (112, 56)), ((41, 14, 12544, 200704), (196, 84)),
    ((70, 70, 3136, 1003520), (56, 56)), ((112, 112, 3136, 1003520), (112, 112)),
    ((5000, 4000, 3136, 1003520), (1120, 896)), ((5000, 4000, 12544, 200704), (476, 392)),
    ((3000, 20, 3136, 1003520), (2996, 28)), ((1893, 2047, 3136, 1003520), (952, 1036)),
    ((140, 577, 12544, 200704), (140, 588)), ((343, 111, 3136, 1003520), (336, 112)),
    ((3270, 1319, 3136, 1003520), (1568, 616)), ((3270, 1319, 12544, 200704), (700, 280)),
    ((498, 1814, 3136, 1003520), (504, 1820)), ((498, 1814, 12544, 200704), (224, 840)),
]


@pytest.mark.parametrize("args,expected", PROCESSOR_TABLE, ids=lambda v: "x".join(map(str, v)))
def test_smart_resize_table(args, expected):
    w, h, lo, hi = args
    assert smart_resize(w, h, min_pixels=lo, max_pixels=hi) == expected


def test_smart_resize_matches_the_processor_rule():
    qwen = pytest.importorskip("transformers.models.qwen2_vl.image_processing_pil_qwen2_vl")
    rng = np.random.default_rng(0)
    for w, h in rng.integers(1, 4000, size=(2000, 2)):
        w, h = int(w), int(h)
        if max(w, h) / min(w, h) > 200:
            continue
        for lo, hi in [(3136, 1003520), (12544, 200704)]:
            ours = smart_resize(w, h, min_pixels=lo, max_pixels=hi)
            assert ours == qwen.smart_resize(h, w, min_pixels=lo, max_pixels=hi)[::-1], (w, h)


@given(st.integers(28, 3000), st.integers(28, 3000))
@settings(max_examples=200, deadline=None)
def test_smart_resize_invariants(w, h):
    if max(w, h) / min(w, h) > 200:
        return
    cfg = ResizeConfig.processor(min_pixels=56 * 56, max_pixels=512 * 28 * 28)
    tw, th = cfg.target_size(w, h)
    assert tw % 28 == 0 and th % 28 == 0
    assert 56 * 56 <= tw * th <= 512 * 28 * 28
    assert math.isclose(tw / th, w / h, rel_tol=0.5)


def test_smart_resize_refuses_extreme_aspect_ratio():
    with pytest.raises(ValueError, match="aspect ratio"):
        smart_resize(10000, 20)


@pytest.mark.parametrize("kwargs,match", [
    ({"mode": "bilinear"}, "mode"),
    ({"mode": "fixed"}, "size"),
    ({"mode": "fixed", "size": (840, 0)}, "size"),
    ({"mode": "processor", "min_pixels": 10_000, "max_pixels": 5_000}, "max_pixels"),
])
def test_resize_config_rejects_bad_values(kwargs, match):
    with pytest.raises(ValueError, match=match):
        ResizeConfig(**kwargs)


def test_fixed_and_none_modes_resize_images():
    image = Image.new("RGB", (300, 200))
    assert ResizeConfig.fixed(840, 840).apply(image).size == (840, 840)
    assert ResizeConfig.none().apply(image) is image
    assert ResizeConfig().apply(image).size == smart_resize(300, 200) == (308, 196)


def _sample(input_size, original_size, objects):
    return GroundingSample(id="s", image=None, query="q", objects=objects,
                           input_size=input_size, original_size=original_size)


def test_to_original_scales_each_axis():
    s = _sample((840, 840), (1680, 420), [{"bbox_2d": [84, 84, 168, 420],
                                            "point_2d": [126, 252]}])
    out = s.to_original()
    assert out == [{"bbox_2d": [168.0, 42.0, 336.0, 210.0], "point_2d": [252.0, 126.0]}]
    assert s.objects[0]["bbox_2d"] == [84, 84, 168, 420]  # not modified in place


@given(st.integers(1, 4000), st.integers(1, 4000),
       st.lists(st.tuples(st.floats(0, 1), st.floats(0, 1), st.floats(0, 1), st.floats(0, 1)),
                min_size=1, max_size=4))
@settings(max_examples=100, deadline=None)
def test_round_trip_through_processor_and_fixed_sizes(w, h, fractions):
    if max(w, h) / min(w, h) > 200:
        return
    objects = [{"bbox_2d": [min(a, b) * w, min(c, d) * h, max(a, b) * w, max(c, d) * h],
                "point_2d": [a * w, c * h]} for a, b, c, d in fractions]
    for cfg in (ResizeConfig(), ResizeConfig.fixed(840, 840)):
        s = _sample(cfg.target_size(w, h), (w, h), [])
        back = s.to_original(s.to_input(objects))
        for got, want in zip(back, objects):
            np.testing.assert_allclose(got["bbox_2d"], want["bbox_2d"], rtol=1e-9, atol=1e-9)
            np.testing.assert_allclose(got["point_2d"], want["point_2d"], rtol=1e-9, atol=1e-9)


def test_sample_rejects_unknown_task_and_zero_sizes():
    with pytest.raises(ValueError, match="task"):
        GroundingSample(id="s", image=None, query="q", task="detect")
    with pytest.raises(ValueError, match="sizes must be positive"):
        _sample((0, 10), (10, 10), []).to_original()
