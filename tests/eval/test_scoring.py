"""Per-sample scoring and the box segmenter, hand-computed."""
import numpy as np
import pytest

from gro_fast.eval.scoring import answer_objects, failure_reason, score_rec, score_segmentation
from gro_fast.eval.segmenters import BoxSegmenter
from gro_fast.rewards import parse_response

from .conftest import answer


def test_box_segmenter_pixel_centre_rule_and_or():
    image = np.zeros((10, 12, 3), np.uint8)  # H=10, W=12
    mask = BoxSegmenter().segment(image, [{"bbox_2d": [0, 0, 5, 5]}, {"bbox_2d": [5, 5, 10, 10]}])
    assert mask.dtype == np.bool_ and mask.shape == (10, 12)
    expected = np.zeros((10, 12), bool)
    expected[0:5, 0:5] = True    # centres 0.5 .. 4.5 lie in [0, 5]
    expected[5:10, 5:10] = True
    np.testing.assert_array_equal(mask, expected)


def test_box_segmenter_clips_and_handles_empty():
    seg = BoxSegmenter()
    mask = seg.segment(np.zeros((4, 4)), [{"bbox_2d": [-5, 2.6, 100, 100]}])
    assert mask.sum() == 4 * 1   # only row 3 (centre 3.5) is in [2.6, 100]; all 4 columns
    assert not seg.segment(np.zeros((4, 4)), []).any()
    with pytest.raises(ValueError, match="bbox_2d"):
        seg.segment(np.zeros((4, 4)), [{"point_2d": [1, 1]}])


def test_multi_box_answer_mask_iou():
    gt = np.zeros((10, 10), bool)
    gt[0:5, 0:5] = True                                   # 25 px
    pred = BoxSegmenter().segment(np.zeros((10, 10)), [{"bbox_2d": [0, 0, 5, 5]},
                                                       {"bbox_2d": [5, 5, 10, 10]}])
    assert score_segmentation(pred, gt) == (25, 50)
    assert score_segmentation(np.zeros_like(gt), gt) == (0, 25)   # failed: union = |gt|
    with pytest.raises(ValueError, match="same"):
        score_segmentation(pred[:5], gt)


def test_rec_first_and_best_box():
    first, best = score_rec([[0, 0, 10, 10], [20, 20, 30, 30]], [[20, 20, 30, 30]])
    assert first == pytest.approx(0.0) and best == pytest.approx(1.0)
    assert score_rec([], [[0, 0, 1, 1]]) == (0.0, 0.0)
    # continuous: 4*9 / 9*9; inclusive pixels: 5*10 / 10*10
    assert score_rec([[0, 0, 9, 9]], [[0, 0, 4, 9]])[0] == pytest.approx(36 / 81)
    assert score_rec([[0, 0, 9, 9]], [[0, 0, 4, 9]], inclusive=True)[0] == pytest.approx(0.5)
    with pytest.raises(ValueError, match="ground-truth"):
        score_rec([[0, 0, 1, 1]], [])


@pytest.mark.parametrize("text,need_box,reason", [
    pytest.param("no tags at all", True, "no_answer", id="no-answer"),
    pytest.param("<answer>[{'bbox_2d': [1]}]</answer>", True, "unparseable_answer", id="not-json"),
    pytest.param("<answer>[]</answer>", True, "empty_answer", id="empty"),
    pytest.param("<answer>[]</answer>", False, None, id="empty-count-is-zero"),
    pytest.param('<answer>[{"point_2d": [1, 2]}]</answer>', True, "no_valid_box", id="no-box"),
    pytest.param(answer([1, 2, 3, 4]), True, None, id="ok"),
])
def test_failure_reasons(text, need_box, reason):
    assert failure_reason(parse_response(text), need_box=need_box) == reason


def test_answer_objects_keep_boxed_objects_and_optional_points():
    text = '<answer>[{"bbox_2d": [1, 2, 3, 4]}, {"point_2d": [5, 6]}, ' \
           '{"bbox_2d": [0, 0, 2, 2], "point_2d": [1, 1]}]</answer>'
    assert answer_objects(parse_response(text)) == [
        {"bbox_2d": [1.0, 2.0, 3.0, 4.0]},
        {"bbox_2d": [0.0, 0.0, 2.0, 2.0], "point_2d": [1.0, 1.0]}]
