"""box_iou: compiled paths vs the fp32 reference, conventions, edge cases, bad input."""
import pytest
import torch

from gro_fast import _ext
from gro_fast.ops import box_iou, force_backend
from gro_fast.ops.box_iou import reference_box_iou
from tests.helpers import assert_rel_close


def random_boxes(*shape, degenerate=0.2, generator=None):
    xy = torch.rand(*shape, 2, generator=generator) * 100
    wh = torch.rand(*shape, 2, generator=generator) * 40 - 40 * degenerate  # some x2 < x1
    return torch.cat([xy, xy + wh], -1)


def test_extension_has_box_iou():
    assert _ext.has_op("box_iou_cpu"), f"gro_fast._C missing box_iou_cpu: {_ext.load_error()}"


@pytest.mark.parametrize("kind", ["iou", "giou"])
@pytest.mark.parametrize("inclusive", [False, True])
@pytest.mark.parametrize("shapes", [((7, 4), (5, 4)), ((3, 1, 6, 4), (2, 9, 4)), ((1, 4), (33, 4))],
                         ids=["plain", "broadcast-batch", "one-row"])
def test_matches_reference(kind, inclusive, shapes):
    g = torch.Generator().manual_seed(0)
    b1 = random_boxes(*shapes[0][:-1], generator=g)
    b2 = random_boxes(*shapes[1][:-1], generator=g)
    out = box_iou(b1, b2, kind=kind, inclusive=inclusive)
    ref = reference_box_iou(b1, b2, kind=kind, inclusive=inclusive)
    assert out.dtype == torch.float32 and out.shape == ref.shape
    assert_rel_close(out, ref, 1e-6, "box_iou")
    assert not torch.isnan(out).any()


def test_known_values():
    a = torch.tensor([[0.0, 0.0, 10.0, 10.0]])
    b = torch.tensor([[5.0, 5.0, 15.0, 15.0], [20.0, 20.0, 30.0, 30.0], [0.0, 0.0, 10.0, 10.0]])
    assert torch.allclose(box_iou(a, b), torch.tensor([[25 / 175, 0.0, 1.0]]))
    # pixel-inclusive: 11 x 11 boxes overlapping in 6 x 6
    assert torch.allclose(box_iou(a, b[:1], inclusive=True), torch.tensor([[36 / (242 - 36)]]))
    # GIoU of disjoint boxes: hull 30 x 30 = 900, union 200
    assert torch.allclose(box_iou(a, b[1:2], kind="giou"), torch.tensor([[-(900 - 200) / 900]]))


def test_degenerate_and_empty():
    deg = torch.tensor([[5.0, 5.0, 4.0, 9.0], [3.0, 3.0, 3.0, 3.0]])  # x2 < x1, zero area
    assert (box_iou(deg, deg) == 0).all()
    giou = box_iou(deg, deg, kind="giou")
    # zero hull with itself -> 0; the two degenerate boxes span a 2 x 6 hull -> -1
    assert torch.equal(giou, torch.tensor([[0.0, -1.0], [-1.0, 0.0]]))
    assert box_iou(torch.zeros(0, 4), torch.zeros(3, 4)).shape == (0, 3)
    assert box_iou(torch.zeros(2, 4), torch.zeros(0, 4)).shape == (2, 0)


def test_huge_coordinates_stay_finite():
    b = torch.tensor([[-3e38, -3e38, 3e38, 3e38], [0.0, 0.0, 1e38, 1e38]])
    out = box_iou(b, b, kind="giou")
    assert torch.isfinite(out).all()
    assert_rel_close(out, reference_box_iou(b, b, kind="giou"), 1e-6)


def test_integer_boxes_and_reference_backend():
    b = torch.tensor([[0, 0, 10, 10], [2, 2, 8, 8]])
    with force_backend("reference"):
        ref = box_iou(b, b, inclusive=True)
    assert_rel_close(box_iou(b, b, inclusive=True), ref, 1e-6)


@pytest.mark.parametrize("bad, error", [
    (torch.zeros(3, 5), ValueError), (torch.zeros(4), ValueError),
    (torch.zeros(3, 4, dtype=torch.bool), TypeError), ([[0, 0, 1, 1]], TypeError),
    (torch.tensor([[0.0, 0.0, float("nan"), 1.0]]), ValueError),
    (torch.tensor([[0.0, 0.0, float("inf"), 1.0]]), ValueError),
])
def test_bad_input(bad, error):
    with pytest.raises(error, match="boxes1"):
        box_iou(bad, torch.zeros(2, 4))


def test_bad_kind_and_batch():
    with pytest.raises(ValueError, match="kind"):
        box_iou(torch.zeros(1, 4), torch.zeros(1, 4), kind="diou")
    with pytest.raises(ValueError, match="broadcast"):
        box_iou(torch.zeros(2, 1, 4), torch.zeros(3, 1, 4))


def test_cpp_checks_name_arguments():
    if not _ext.has_op("box_iou_cpu"):
        pytest.skip("no extension")
    with pytest.raises(TypeError, match="boxes1"):
        _ext.extension().box_iou_cpu(torch.zeros(1, 2, 4, dtype=torch.float64), torch.zeros(1, 2, 4), False, False)
    with pytest.raises(ValueError, match="batch"):
        _ext.extension().box_iou_cpu(torch.zeros(1, 2, 4), torch.zeros(2, 2, 4), False, False)


@pytest.mark.gpu
@pytest.mark.parametrize("kind", ["iou", "giou"])
def test_cuda_matches_reference(kind):
    assert _ext.has_cuda_kernels(), "CUDA device present but gro_fast._C has no CUDA kernels"
    g = torch.Generator().manual_seed(1)
    b1, b2 = random_boxes(3, 70, generator=g), random_boxes(3, 45, generator=g)
    out = box_iou(b1.cuda(), b2.cuda(), kind=kind, inclusive=True)
    assert out.is_cuda
    assert_rel_close(out.cpu(), reference_box_iou(b1, b2, kind=kind, inclusive=True), 1e-6)
