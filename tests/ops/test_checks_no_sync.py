"""Value checks without host synchronisation on CUDA, and the one warning when CUDA tensors
take the torch reference. Fake CUDA tensors (FakeTensorMode) stand in for a GPU: reading
one's value on the host raises, so a check that would synchronise fails here."""
import warnings

import pytest
import torch
from torch._subclasses.fake_tensor import FakeTensorMode

from gro_fast import _ext
from gro_fast.ops import _dispatch
from gro_fast.ops._checks import check_targets_range
from gro_fast.ops.box_iou import box_iou


@pytest.fixture
def device_asserts(monkeypatch):
    queued = []
    monkeypatch.setattr(torch, "_assert_async", lambda ok, message: queued.append(message))
    monkeypatch.delenv("GRO_FAST_VALUE_CHECKS", raising=False)
    return queued


def test_cuda_value_checks_queue_device_asserts_without_a_host_sync(device_asserts):
    with FakeTensorMode():
        targets = torch.zeros(2, 3, dtype=torch.long, device="cuda")
        boxes = torch.zeros(4, 4, device="cuda")
        check_targets_range(targets, 11)
        from gro_fast.ops.box_iou import _check_boxes
        _check_boxes(boxes, "boxes1")
        with pytest.raises(Exception):   # what a host-side check would do
            bool(torch.isfinite(boxes).all())
    assert [m.split(":")[1].strip() for m in device_asserts] == [
        "targets must lie in [0, V) = [0, 11)", "boxes1 contains non-finite coordinates"]


def test_value_check_modes(monkeypatch, device_asserts):
    cuda = torch.device("cuda")
    assert _dispatch.value_checks(cuda) == "async" and _dispatch.value_checks(torch.device("cpu")) == "sync"
    monkeypatch.setenv("GRO_FAST_VALUE_CHECKS", "off")
    with FakeTensorMode():
        check_targets_range(torch.zeros(3, dtype=torch.long, device="cuda"), 11)
    assert device_asserts == []
    monkeypatch.setenv("GRO_FAST_VALUE_CHECKS", "sync")
    assert _dispatch.value_checks(cuda) == "sync"
    monkeypatch.setenv("GRO_FAST_VALUE_CHECKS", "sometimes")
    with pytest.raises(ValueError, match="GRO_FAST_VALUE_CHECKS"):
        _dispatch.value_checks(cuda)


def test_cpu_value_checks_raise_with_the_values():
    with pytest.raises(ValueError, match=r"targets must lie in .* got values in \[-1, 2\]"):
        check_targets_range(torch.tensor([2, -1]), 11)
    with pytest.raises(ValueError, match="non-finite"):
        box_iou(torch.tensor([[0.0, 0, float("nan"), 1]]), torch.zeros(1, 4))


def test_cuda_tensors_without_cuda_kernels_warn_once(monkeypatch):
    if _ext.extension() is None:
        pytest.skip("gro_fast._C is not built here")
    monkeypatch.setattr(_ext, "has_cuda_kernels", lambda: False)
    _dispatch._warn_no_cuda_kernels.cache_clear()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert _dispatch.native_op("cuda", "box_iou") is None
        assert _dispatch.native_op("cuda:0", "mask_iou") is None
        assert _dispatch.native_op("cpu", "box_iou") is not None
    messages = [str(w.message) for w in caught if issubclass(w.category, RuntimeWarning)]
    assert len(messages) == 1 and "without CUDA kernels" in messages[0]
    _dispatch._warn_no_cuda_kernels.cache_clear()
