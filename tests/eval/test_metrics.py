"""Metrics and protocol switches against hand-computed values."""
import math

import numpy as np
import pytest

from gro_fast.eval.metrics import (PRESETS, EvalProtocol, count_metrics, rec_accuracy, sample_ious,
                                   segmentation_metrics)

SKIP = EvalProtocol(failures="skip")
LISA = EvalProtocol(empty_target="lisa")


def test_giou_ciou_default_keeps_failures():
    # sample 1: I=30, U=50; sample 2 failed (empty mask): I=0, U=|gt|=20; sample 3 exact: 10/10
    out = segmentation_metrics([30, 0, 10], [50, 20, 10], failed=[False, True, False])
    assert out["gIoU"] == pytest.approx((0.6 + 0.0 + 1.0) / 3)
    assert out["cIoU"] == pytest.approx(40 / 80)
    assert out["n_scored"] == 3


def test_skip_failures_drops_them_from_both_denominators():
    out = segmentation_metrics([30, 0, 10], [50, 20, 10], failed=[False, True, False], protocol=SKIP)
    assert out["gIoU"] == pytest.approx(0.8)
    assert out["cIoU"] == pytest.approx(40 / 60)
    assert out["n_scored"] == 2


def test_empty_target_rule():
    # sample 1: empty target and empty prediction (U = 0); sample 2: 5 / 10
    default = segmentation_metrics([0, 5], [0, 10])
    lisa = segmentation_metrics([0, 5], [0, 10], protocol=LISA)
    assert default["gIoU"] == pytest.approx(0.25)
    assert lisa["gIoU"] == pytest.approx(0.75)
    assert default["cIoU"] == lisa["cIoU"] == pytest.approx(0.5)
    # a non-empty prediction on an empty target has U > 0: IoU 0 under both rules
    assert sample_ious([0], [7], LISA).tolist() == [0.0]


def test_all_unions_zero_gives_zero_ciou_not_nan():
    out = segmentation_metrics([0, 0], [0, 0], protocol=LISA)
    assert out["cIoU"] == 0.0 and out["gIoU"] == 1.0


def test_rec_strict_and_any_box():
    first = [0.6, 0.3, 0.0, 0.5]   # sample 2: a later box matches; sample 4: exactly 0.5
    best = [0.6, 0.7, 0.0, 0.5]
    failed = [False, False, True, False]
    out = rec_accuracy(first, best, failed)
    assert out["acc"] == pytest.approx(1 / 4)      # 0.5 is not > 0.5
    assert out["acc_any"] == pytest.approx(2 / 4)
    skipped = rec_accuracy(first, best, failed, SKIP)
    assert skipped["acc"] == pytest.approx(1 / 3) and skipped["acc_any"] == pytest.approx(2 / 3)
    loose = rec_accuracy(first, best, failed, EvalProtocol(rec_threshold=0.45))
    assert loose["acc"] == pytest.approx(2 / 4)


def test_count_metrics():
    pred, gt, failed = [3, 0, 2, 5], [3, 1, 2, 2], [False, True, False, False]
    out = count_metrics(pred, gt, failed)
    assert out["accuracy"] == pytest.approx(0.5)
    assert out["mae"] == pytest.approx(1.0)
    assert out["rmse"] == pytest.approx(math.sqrt(10 / 4))
    skipped = count_metrics(pred, gt, failed, SKIP)
    assert skipped["accuracy"] == pytest.approx(2 / 3)
    assert skipped["mae"] == pytest.approx(1.0)
    assert skipped["rmse"] == pytest.approx(math.sqrt(3))


def test_no_samples_gives_zeros():
    assert segmentation_metrics([], [])["gIoU"] == 0.0
    assert rec_accuracy([0.9], [0.9], [True], SKIP) == {"acc": 0.0, "acc_any": 0.0, "n_scored": 0}


@pytest.mark.parametrize("call", [
    pytest.param(lambda: segmentation_metrics([3], [2]), id="intersection>union"),
    pytest.param(lambda: segmentation_metrics([1, 2], [2]), id="length"),
    pytest.param(lambda: segmentation_metrics([[1]], [[2]]), id="2d"),
    pytest.param(lambda: segmentation_metrics([1], [2], failed=[True, False]), id="failed-length"),
    pytest.param(lambda: rec_accuracy([0.7], [0.6]), id="first>best"),
    pytest.param(lambda: count_metrics([-1], [2]), id="negative-count"),
    pytest.param(lambda: EvalProtocol(failures="drop"), id="bad-failures"),
    pytest.param(lambda: EvalProtocol(empty_target="one"), id="bad-empty-target"),
    pytest.param(lambda: EvalProtocol(rec_threshold=1.5), id="bad-threshold"),
    pytest.param(lambda: EvalProtocol.parse("failures"), id="parse-no-value"),
    pytest.param(lambda: EvalProtocol.parse("colour=red"), id="parse-unknown-key"),
])
def test_bad_inputs_raise_value_error(call):
    with pytest.raises(ValueError):
        call()


def test_protocol_parse_presets_and_pairs():
    assert EvalProtocol.parse(None) == EvalProtocol()
    assert EvalProtocol.parse("lisa") == LISA
    assert EvalProtocol.parse("skip_failures") == SKIP
    assert EvalProtocol.parse("vision_reasoner").box_convention == "inclusive"
    custom = EvalProtocol.parse("failures=skip, rec_threshold=0.7")
    assert custom == EvalProtocol(failures="skip", rec_threshold=0.7)
    assert set(PRESETS) >= {"gro_fast", "lisa", "skip_failures", "vision_reasoner"}
    assert custom.to_dict()["rec_threshold"] == 0.7


def test_inputs_may_be_numpy():
    out = segmentation_metrics(np.array([1, 2]), np.array([2, 4]), failed=np.array([False, False]))
    assert out["gIoU"] == pytest.approx(0.5)
