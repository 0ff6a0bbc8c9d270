"""Fuzz targets of the compiled IoU ops, and the rule each input is judged by.

Each target turns raw bytes (from libFuzzer through atheris, or a file of the regression
corpus ``tests/fuzz/corpus/<target>/``) into arguments with ``Bytes``, calls the op and
checks the outcome: a result equal to the library that defines the op's semantics where
that library accepts the input (pycocotools for RLE and polygon rasterisation, shapely for
polygon IoU, the torch reference for dense masks), or a ``ValueError`` / ``TypeError``
naming the argument (and the index of the bad item). Anything else raises
``AssertionError``: a wrong result, an unclear error, or another exception. Crashes,
hangs and out-of-bounds accesses are caught by the sanitizers and the fuzzer around it.
The byte decoding is plain Python, so the corpus replays without atheris.
"""
from __future__ import annotations

import math
import struct
import warnings

import numpy as np
import torch

SPECIAL_FLOATS = (0.0, -0.0, 0.5, 1.0, -1.0, 1e300, -1e300, float("nan"), float("inf"),
                  -float("inf"), 1e-300, 2.0**31, 4.5e15, 1e100)
SPECIAL_SIDES = (0, 1, 2, 3, 7, 64, 2**31 - 1, 2**31, 2**16)
MAX_PIXELS_COMPARED = 1 << 20     # pycocotools is asked only about masks this small
ALLOWED_BUT_SLOW = 1 << 24        # larger masks that the ops accept are not fuzzed


class Bytes:
    """Consumes fuzzer bytes as small ints, floats and byte strings (0 when exhausted)."""

    def __init__(self, data: bytes):
        self.data, self.pos = data, 0

    def left(self) -> int:
        return len(self.data) - self.pos

    def take(self, n: int) -> bytes:
        out = self.data[self.pos:self.pos + n]
        self.pos += len(out)
        return out

    def int(self, lo: int, hi: int) -> int:
        """An int in [lo, hi]."""
        span = hi - lo + 1
        raw = int.from_bytes(self.take(max(1, (span.bit_length() + 7) // 8)), "little")
        return lo + raw % span

    def choice(self, options):
        return options[self.int(0, len(options) - 1)]

    def float(self, scale: float = 100.0) -> float:
        """Mostly small coordinates, sometimes a special value or any double."""
        kind = self.int(0, 15)
        if kind < 10:
            return (self.int(0, 65535) / 65535.0 - 0.25) * scale
        if kind < 13:
            return self.choice(SPECIAL_FLOATS)
        raw = self.take(8).ljust(8, b"\0")
        return struct.unpack("<d", raw)[0]


def expect_clear_error(exc: Exception, names: tuple[str, ...]) -> None:
    """``exc`` must be a ValueError / TypeError whose message names one of ``names``."""
    if not isinstance(exc, (ValueError, TypeError)):
        raise AssertionError(f"unexpected {type(exc).__name__}: {exc}") from exc
    if not any(name in str(exc) for name in names):
        raise AssertionError(f"error does not name {names}: {exc}") from exc


# ----- RLE ------------------------------------------------------------------------------
def _rle_counts(b: Bytes, size: tuple[int, int]) -> bytes | str | list:
    """Random bytes, a valid string cut anywhere, or a valid string with one byte changed."""
    h, w = size
    kind = b.int(0, 5)
    if kind <= 1 or h * w > MAX_PIXELS_COMPARED or h * w == 0:
        raw = b.take(b.int(0, 40))
        return raw.decode("latin-1") if kind == 1 else raw
    from pycocotools import mask as coco
    mask = np.asfortranarray(np.frombuffer(b.take(h * w).ljust(h * w, b"\0"), np.uint8)
                             .reshape(h, w) > 127).astype(np.uint8)
    valid = coco.encode(mask)["counts"]
    if kind == 2:
        return valid
    if kind == 3:
        return valid[:b.int(0, len(valid))]
    if kind == 4 and valid:
        pos = b.int(0, len(valid) - 1)
        return valid[:pos] + bytes([b.int(0, 255)]) + valid[pos + 1:]
    return [b.int(0, h * w + 2) for _ in range(b.int(0, 6))]


def _rles(b: Bytes, n: int, size: tuple[int, int] | None = None) -> list[dict]:
    out = []
    for _ in range(n):
        s = size or (b.choice(SPECIAL_SIDES[:6]), b.choice(SPECIAL_SIDES[:6]))
        if b.int(0, 15) == 0:
            s = (b.choice(SPECIAL_SIDES), b.choice(SPECIAL_SIDES))
        out.append({"size": list(s), "counts": _rle_counts(b, s)})
    return out


def _coco_rle(rle: dict) -> dict:
    counts = rle["counts"]
    if isinstance(counts, list):
        from pycocotools import mask as coco
        return coco.frPyObjects({"size": rle["size"], "counts": counts}, *rle["size"])
    return {"size": rle["size"], "counts": counts.encode() if isinstance(counts, str) else counts}


def _small(rles: list[dict]) -> bool:
    return all(r["size"][0] * r["size"][1] <= MAX_PIXELS_COMPARED for r in rles)


def rle_decode_target(data: bytes) -> None:
    from pycocotools import mask as coco
    from gro_fast.ops import rle_area, rle_decode
    b = Bytes(data)
    rles = _rles(b, b.int(1, 3), size=None if b.int(0, 3) == 0 else
                 (b.int(0, 9), b.int(0, 9)))
    try:
        masks = rle_decode(rles)
        areas = rle_area(rles)
    except Exception as exc:
        expect_clear_error(exc, ("rles[",))
        return
    assert torch.equal(areas, masks.flatten(1).sum(1).to(torch.int64)), "area != decoded sum"
    if _small(rles):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            for i, rle in enumerate(rles):
                expected = coco.decode(_coco_rle(rle))
                assert np.array_equal(masks[i].numpy(), expected), f"rles[{i}] != pycocotools"


def rle_area_target(data: bytes) -> None:
    from pycocotools import mask as coco
    from gro_fast.ops import rle_area
    b = Bytes(data)
    rles = _rles(b, b.int(0, 4))
    try:
        areas = rle_area(rles)
    except Exception as exc:
        expect_clear_error(exc, ("rles[",))
        return
    if _small(rles) and rles:
        expected = coco.area([_coco_rle(r) for r in rles])
        assert areas.tolist() == [int(a) for a in expected], (areas, expected)


def rle_iou_target(data: bytes) -> None:
    from pycocotools import mask as coco
    from gro_fast.ops import rle_iou
    b = Bytes(data)
    size = (b.int(0, 12), b.int(0, 12)) if b.int(0, 7) else None
    rles1, rles2 = _rles(b, b.int(0, 3), size), _rles(b, b.int(0, 3), size)
    iscrowd = [b.int(0, 1) for _ in range(len(rles2) + (b.int(0, 15) == 0))]
    try:
        iou = rle_iou(rles1, rles2, iscrowd)
    except Exception as exc:
        expect_clear_error(exc, ("rles1[", "rles2[", "iscrowd"))
        return
    assert iou.shape == (len(rles1), len(rles2))
    if rles1 and rles2 and _small(rles1 + rles2):
        expected = np.asarray(coco.iou([_coco_rle(r) for r in rles1],
                                       [_coco_rle(r) for r in rles2], iscrowd), dtype=np.float64)
        np.testing.assert_allclose(iou.numpy(), expected.reshape(iou.shape), rtol=0, atol=1e-12)


# ----- polygons -------------------------------------------------------------------------
def _polygon(b: Bytes, scale: float) -> list[float]:
    kind = b.int(0, 31)
    if kind == 0:          # a huge polygon: a circle of many vertices
        k = b.choice((1000, 20_000, 100_000))
        t = np.linspace(0, 2 * np.pi, k, endpoint=False)
        r = scale * (0.2 + 0.2 * b.int(0, 3))
        return np.stack([scale / 2 + r * np.cos(t), scale / 2 + r * np.sin(t)], 1).ravel().tolist()
    n = b.choice((0, 1, 2, 3, 3, 4, 4, 5, 6, 8, 12)) * 2 + (1 if kind == 1 else 0)
    return [b.float(scale) for _ in range(n)]


def polygons_to_mask_target(data: bytes) -> None:
    from pycocotools import mask as coco
    from gro_fast.ops import polygons_to_mask
    b = Bytes(data)
    h, w = (b.int(0, 40), b.int(0, 40)) if b.int(0, 15) else (b.choice(SPECIAL_SIDES),
                                                             b.choice(SPECIAL_SIDES))
    if ALLOWED_BUT_SLOW < h * w <= 2**31:
        return   # a valid multi-GiB raster: minutes under ASan, covered by test_regressions
    polys = [_polygon(b, max(h, w, 1) * 1.5) for _ in range(b.int(0, 3))]
    try:
        mask = polygons_to_mask(polys, h, w)
    except Exception as exc:
        expect_clear_error(exc, ("polygons", "height", "width"))
        return
    assert mask.shape == (h, w) and mask.dtype == torch.uint8
    limit = 4 * max(h, w) + 1024
    if polys and 0 < h * w <= MAX_PIXELS_COMPARED and all(abs(v) <= limit for p in polys
                                                          for v in p):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            expected = coco.decode(coco.merge(coco.frPyObjects(polys, h, w)))
        assert np.array_equal(mask.numpy(), expected), "polygons_to_mask != pycocotools"


def _shapely_iou(p, q) -> float | None:
    """shapely's IoU when it accepts both polygons as valid and the union has area."""
    import shapely
    a, b = shapely.Polygon(np.reshape(p, (-1, 2))), shapely.Polygon(np.reshape(q, (-1, 2)))
    if not (a.is_valid and b.is_valid):
        return None
    union = a.union(b).area
    return None if union <= 0 or not math.isfinite(union) else a.intersection(b).area / union


def polygon_iou_target(data: bytes) -> None:
    from gro_fast.ops import polygon_iou
    b = Bytes(data)
    scale = b.choice((10.0, 1000.0, 1e6))
    polys1 = [_polygon(b, scale) for _ in range(b.int(0, 3))]
    polys2 = [_polygon(b, scale) for _ in range(b.int(0, 3))]
    try:
        iou = polygon_iou(polys1, polys2)
    except Exception as exc:
        expect_clear_error(exc, ("polys1[", "polys2["))
        return
    assert iou.shape == (len(polys1), len(polys2))
    assert torch.isfinite(iou).all() and (iou >= 0).all() and (iou <= 1 + 1e-12).all(), iou
    for i, p in enumerate(polys1):
        for j, q in enumerate(polys2):
            if len(p) > 2000 or len(q) > 2000:
                continue
            expected = _shapely_iou(p, q)
            if expected is not None:
                assert abs(float(iou[i, j]) - expected) <= 1e-6, (i, j, float(iou[i, j]),
                                                                  expected)


# ----- dense masks ----------------------------------------------------------------------
def _mask_tensor(b: Bytes, n: int, h: int, w: int) -> torch.Tensor:
    """[n, h, w] masks, sometimes a strided view, of dtype bool / uint8 (or a wrong one)."""
    kind = b.int(0, 7)
    hh, ww = (h * 2, w * 3) if kind in (1, 2) else (h, w)
    raw = np.frombuffer(b.take(n * hh * ww).ljust(n * hh * ww, b"\0"), np.uint8)
    t = torch.from_numpy(raw.copy()).reshape(n, hh, ww) > 127
    if kind == 1:
        t = t[:, ::2, ::3]
    elif kind == 2:
        t = t[:, 1::2, 2::3]
    elif kind == 3:
        t = t.transpose(1, 2).contiguous().transpose(1, 2)
    if b.int(0, 1):
        t = t.to(torch.uint8)
    if b.int(0, 31) == 0:
        t = t.to(b.choice((torch.int32, torch.float32, torch.int8)))
    return t


def mask_iou_target(data: bytes) -> None:
    from pycocotools import mask as coco
    from gro_fast.ops import mask_iou, rle_encode
    from gro_fast.ops.mask_iou import reference_mask_iou
    b = Bytes(data)
    h, w = b.int(0, 70), b.int(0, 70)
    m1 = _mask_tensor(b, b.int(0, 3), h, w)
    m2 = _mask_tensor(b, b.int(0, 3), h if b.int(0, 15) else h + 1, w)
    try:
        iou = mask_iou(m1, m2)
    except Exception as exc:
        expect_clear_error(exc, ("masks1", "masks2"))
        return
    expected = reference_mask_iou(m1.bool().contiguous(), m2.bool().contiguous())
    torch.testing.assert_close(iou, expected, rtol=0, atol=1e-6)
    if m1.numel():
        rles = rle_encode(m1)
        for i, rle in enumerate(rles):
            want = coco.encode(np.asfortranarray(m1[i].numpy().astype(np.uint8)))["counts"]
            assert rle["counts"] == want, f"rle_encode(masks)[{i}] != pycocotools"


TARGETS = {
    "rle_decode": rle_decode_target,
    "rle_area": rle_area_target,
    "rle_iou": rle_iou_target,
    "polygons_to_mask": polygons_to_mask_target,
    "polygon_iou": polygon_iou_target,
    "mask_iou": mask_iou_target,
}
__all__ = ["TARGETS", "Bytes", "expect_clear_error"]
