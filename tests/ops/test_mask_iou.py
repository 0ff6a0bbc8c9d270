"""mask_iou / mask_iou_batched: bit-packed compiled paths vs the torch reference and
pycocotools, odd widths, empty masks, bad input."""
import numpy as np
import pytest
import torch
from pycocotools import mask as coco_mask

from gro_fast import _ext
from gro_fast.ops import mask_iou, mask_iou_batched
from gro_fast.ops.mask_iou import reference_mask_iou, reference_mask_iou_batched


def blob_masks(n, h, w, seed=0, dtype=torch.uint8):
    """Ellipses at random places and sizes: object-like masks (some empty, some full rows)."""
    g = torch.Generator().manual_seed(seed)
    yy, xx = torch.meshgrid(torch.arange(h), torch.arange(w), indexing="ij")
    cy, cx = torch.rand(n, 1, 1, generator=g) * h, torch.rand(n, 1, 1, generator=g) * w
    ry = torch.rand(n, 1, 1, generator=g) * h / 2 + 0.5
    rx = torch.rand(n, 1, 1, generator=g) * w / 2 + 0.5
    masks = ((yy - cy) / ry) ** 2 + ((xx - cx) / rx) ** 2 <= 1
    return masks.to(dtype)


def test_extension_has_mask_ops():
    assert _ext.has_op("mask_iou_cpu") and _ext.has_op("mask_iou_batched_cpu"), _ext.load_error()


@pytest.mark.parametrize("h, w", [(1, 1), (5, 63), (7, 64), (9, 65), (20, 130), (33, 200)])
@pytest.mark.parametrize("dtype", [torch.uint8, torch.bool])
def test_pairwise_matches_reference(h, w, dtype):
    m1, m2 = blob_masks(6, h, w, seed=1, dtype=dtype), blob_masks(5, h, w, seed=2, dtype=dtype)
    noise = torch.rand(3, h, w, generator=torch.Generator().manual_seed(3)) < 0.5
    m1 = torch.cat([m1, noise.to(dtype), torch.zeros(1, h, w, dtype=dtype)])
    out = mask_iou(m1, m2)
    assert out.dtype == torch.float32 and out.shape == (10, 5)
    assert torch.equal(out, reference_mask_iou(m1, m2))


def test_matches_pycocotools():
    m1, m2 = blob_masks(8, 48, 70, seed=4), blob_masks(6, 48, 70, seed=5)
    rles = [coco_mask.encode(np.asfortranarray(m.numpy().transpose(1, 2, 0))) for m in (m1, m2)]
    expected = coco_mask.iou(rles[0], rles[1], [0] * 6)
    assert np.allclose(mask_iou(m1, m2).numpy(), expected, rtol=1e-6, atol=0)


def test_nonzero_values_are_foreground_and_empty_is_zero():
    a = torch.zeros(2, 4, 70, dtype=torch.uint8)
    a[0, 1, 3:66] = 7
    b = (a != 0).to(torch.uint8)
    out = mask_iou(a, b)
    assert out[0, 0] == 1.0 and out[1, 1] == 0.0 and not torch.isnan(out).any()
    assert mask_iou(a[:0], b).shape == (0, 2) and mask_iou(a, b[:0]).shape == (2, 0)


@pytest.mark.parametrize("b, g, h, w", [(3, 4, 17, 65), (2, 1, 1, 1), (4, 8, 30, 128)])
def test_batched_matches_reference(b, g, h, w):
    pred = blob_masks(b * g, h, w, seed=6).reshape(b, g, h, w)
    pred[0, 0] = 0  # an empty prediction
    gt = blob_masks(b, h, w, seed=7)
    out, ref = mask_iou_batched(pred, gt), reference_mask_iou_batched(pred, gt)
    assert out.intersection.dtype == torch.int64 and out.union.dtype == torch.int64
    assert torch.equal(out.intersection, ref.intersection) and torch.equal(out.union, ref.union)
    assert torch.equal(out.iou, ref.iou)
    assert out.union[0, 0] == (gt[0] != 0).sum() and out.iou[0, 0] == 0


@pytest.mark.parametrize("args, error, name", [
    ((torch.zeros(2, 4, 4), torch.zeros(2, 4, 4, dtype=torch.uint8)), TypeError, "masks1"),
    ((torch.zeros(2, 4, dtype=torch.uint8), torch.zeros(2, 4, 4, dtype=torch.uint8)), ValueError, "masks1"),
    ((torch.zeros(2, 4, 4, dtype=torch.uint8), torch.zeros(2, 4, 5, dtype=torch.uint8)), ValueError, "H and W"),
    ((np.zeros((2, 4, 4), np.uint8), torch.zeros(2, 4, 4, dtype=torch.uint8)), TypeError, "masks1"),
])
def test_bad_input(args, error, name):
    with pytest.raises(error, match=name):
        mask_iou(*args)


def test_batched_bad_input():
    with pytest.raises(ValueError, match="batch size"):
        mask_iou_batched(torch.zeros(2, 3, 4, 4, dtype=torch.bool), torch.zeros(3, 4, 4, dtype=torch.bool))
    with pytest.raises(ValueError, match="gt"):
        mask_iou_batched(torch.zeros(2, 3, 4, 4, dtype=torch.bool), torch.zeros(2, 4, 4, 1, dtype=torch.bool))


@pytest.mark.gpu
def test_cuda_matches_reference():
    assert _ext.has_cuda_kernels(), "CUDA device present but gro_fast._C has no CUDA kernels"
    m1, m2 = blob_masks(37, 45, 131, seed=8), blob_masks(19, 45, 131, seed=9, dtype=torch.bool)
    m2 = m2.to(torch.uint8)
    assert torch.equal(mask_iou(m1.cuda(), m2.cuda()).cpu(), reference_mask_iou(m1, m2))
    pred, gt = blob_masks(24, 45, 131, seed=10).reshape(3, 8, 45, 131), blob_masks(3, 45, 131, seed=11)
    out, ref = mask_iou_batched(pred.cuda(), gt.cuda()), reference_mask_iou_batched(pred, gt)
    assert torch.equal(out.intersection.cpu(), ref.intersection) and torch.equal(out.union.cpu(), ref.union)
    assert torch.equal(out.iou.cpu(), ref.iou)
