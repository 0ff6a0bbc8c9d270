"""Ground-truth masks of evaluation rows: checking their form and decoding them.

Accepted forms of a row's ``mask`` (all at the original image size H x W):

* COCO RLE: ``{"size": [H, W], "counts": str}`` (compressed) or ``counts`` a list of run
  lengths (uncompressed), or a list of such dicts (OR-ed);
* COCO polygons: ``[[x1, y1, x2, y2, ...], ...]`` (or one flat list), OR-ed;
* a dense mask: nested lists or an array of shape [H, W] (0/1 or bools), as VisionReasoner's
  evaluation sets store it (its evaluation_segmentation.py reads ``np.array(item["mask"])``);
  a dense mask of another shape is an error naming both shapes (a transposed one says so),
  never a polygon list;
* a mask image: a path (relative to ``image_root``, default the data file's folder), a
  PIL image or a ``{"bytes", "path"}`` dict (a ``datasets`` Image cell); a pixel is inside when > 0 for 0/1 images, >= 128 for 0..255 images.

RLE and polygons are decoded with ``gro_fast.ops.rle_decode`` /
``gro_fast.ops.polygons_to_mask`` when those ops are importable, otherwise with
pycocotools. :func:`check_mask` validates the form cheaply at load time;
:func:`decode_mask` decodes when a sample is read. Mask IoU is left to ``gro_fast.ops``.
"""
from __future__ import annotations

import importlib
from numbers import Real

import numpy as np
from PIL import Image

from .images import image_ref
from .sample import FieldProblem


def _problem(detail: str) -> FieldProblem:
    return FieldProblem("mask", detail, "bad_mask")


def _is_rle(value) -> bool:
    return isinstance(value, dict) and "counts" in value and "size" in value


def _is_coord(c) -> bool:
    return isinstance(c, Real) and not isinstance(c, (bool, np.bool_))


def _is_polygon_list(value) -> bool:
    return (isinstance(value, list) and len(value) > 0
            and all(isinstance(p, list) and all(_is_coord(c) for c in p) for p in value))


def _is_flag(c) -> bool:
    return isinstance(c, (bool, np.bool_)) or (isinstance(c, (int, np.integer)) and c in (0, 1))


def _dense_shape(value) -> tuple[int, int] | None:
    """(rows, columns) when ``value`` looks like a dense 0/1 mask (a 2-D array, or rows of
    one length holding bools or 0/1), else None. Polygons hold coordinates, rarely all 0/1,
    and their rows differ in length."""
    if isinstance(value, np.ndarray):
        return tuple(value.shape) if value.ndim == 2 else None
    if not (isinstance(value, list) and value and all(isinstance(r, list) for r in value)):
        return None
    width = len(value[0])
    if width == 0 or any(len(r) != width for r in value):
        return None
    if len(value) < 2 and not any(isinstance(c, (bool, np.bool_)) for c in value[0]):
        return None
    if not all(_is_flag(c) for c in value[0]) or not all(_is_flag(c) for c in value[-1]):
        return None
    return len(value), width


def _shape_problem(what: str, shape, height: int, width: int) -> FieldProblem:
    swapped = (" (height and width swapped: store it as [H, W] rows of W values)"
               if tuple(shape) == (width, height) and height != width else "")
    return _problem(f"{what} has shape [{shape[0]}, {shape[1]}], the image is [height, width] "
                    f"= [{height}, {width}]{swapped}")


def _check_rle(rle, height: int, width: int, verify_compressed: bool) -> None:
    size = rle["size"]
    if not (isinstance(size, (list, tuple)) and len(size) == 2 and list(size) == [height, width]):
        swapped = (" (height and width swapped?)" if isinstance(size, (list, tuple))
                   and list(size) == [width, height] else "")
        raise _problem(f"RLE size {size!r} does not match the image [height, width] = "
                       f"[{height}, {width}]{swapped}")
    counts = rle["counts"]
    if isinstance(counts, list):
        if not all(isinstance(c, int) and c >= 0 for c in counts):
            raise _problem("uncompressed RLE counts must be non-negative ints")
        if sum(counts) != height * width:
            raise _problem(f"uncompressed RLE counts sum to {sum(counts)}, expected "
                           f"{height * width} (H*W)")
    elif isinstance(counts, (str, bytes)):
        if not verify_compressed:
            return
        try:  # a compressed string can only be checked by decoding it (cheap)
            _rle_decode(rle, height, width)
        except (ValueError, TypeError) as exc:
            raise _problem(f"malformed compressed RLE: {exc}") from exc
    else:
        raise _problem(f"RLE counts must be a string or a list, got {type(counts).__name__}")


def _check_polygons(polygons) -> None:
    for k, poly in enumerate(polygons):
        if len(poly) < 6 or len(poly) % 2:
            raise _problem(f"polygon {k} needs an even number (>= 6) of coordinates, "
                           f"got {len(poly)}")


def _dense_shape_ok(value, height: int, width: int) -> bool:
    if isinstance(value, np.ndarray):
        return value.shape == (height, width)
    return (isinstance(value, list) and len(value) == height
            and all(isinstance(row, list) and len(row) == width for row in value))


def check_mask(value, height: int, width: int, *, base_dir=None, image_root=None,
               verify_compressed: bool = True) -> None:
    """Validate a mask's form; raises FieldProblem(field='mask'). Only a compressed RLE
    string is decoded to check it (unless ``verify_compressed`` is False)."""
    if _is_rle(value):
        return _check_rle(value, height, width, verify_compressed)
    if isinstance(value, list) and value and all(_is_rle(v) for v in value):
        for rle in value:
            _check_rle(rle, height, width, verify_compressed)
        return None
    if _dense_shape_ok(value, height, width):
        return None
    shape = _dense_shape(value)
    if shape is not None:
        raise _shape_problem("dense mask", shape, height, width)
    if _is_polygon_list(value):
        return _check_polygons(value)
    if isinstance(value, list) and value and all(_is_coord(c) for c in value):
        return _check_polygons([value])
    if isinstance(value, (str, Image.Image)) or (isinstance(value, dict)
                                                  and ("bytes" in value or "path" in value)):
        size = image_ref(value, base_dir=base_dir, image_root=image_root).size()
        if tuple(size) != (width, height):
            swapped = (" (height and width swapped)" if tuple(size) == (height, width)
                       and height != width else "")
            raise _problem(f"mask image is {size[0]}x{size[1]}, the image is "
                           f"{width}x{height}{swapped}")
        return None
    raise _problem(f"expected COCO RLE, polygons, a [H, W] array or a mask image; got "
                   f"{type(value).__name__} {value!r:.60}")


def _ops_function(name: str, module: str):
    """``gro_fast.ops.<name>`` (or ``gro_fast.ops.<module>.<name>``), None if not importable."""
    try:
        ops = importlib.import_module("gro_fast.ops")
        if hasattr(ops, name):
            return getattr(ops, name)
        return getattr(importlib.import_module(f"gro_fast.ops.{module}"), name)
    except (ImportError, AttributeError):
        return None


def _as_bool(mask) -> np.ndarray:
    mask = mask.numpy() if hasattr(mask, "numpy") else np.asarray(mask)
    return mask.astype(bool)


def _rle_decode(rle, height: int, width: int) -> np.ndarray:
    rle_decode = _ops_function("rle_decode", "rle")
    if rle_decode is not None:
        return _as_bool(rle_decode(rle)).reshape(height, width)
    from pycocotools import mask as mask_utils
    if isinstance(rle["counts"], list):
        rle = mask_utils.frPyObjects(rle, height, width)
    elif isinstance(rle["counts"], str):
        rle = {"size": rle["size"], "counts": rle["counts"].encode("ascii")}
    return mask_utils.decode(rle).astype(bool)


def _polygons_to_mask(polygons, height: int, width: int) -> np.ndarray:
    polygons_to_mask = _ops_function("polygons_to_mask", "polygon")
    if polygons_to_mask is not None:
        return _as_bool(polygons_to_mask(polygons, height, width)).reshape(height, width)
    from pycocotools import mask as mask_utils
    rles = mask_utils.frPyObjects([[float(c) for c in p] for p in polygons], height, width)
    return mask_utils.decode(mask_utils.merge(rles)).astype(bool)


def _image_mask(value, base_dir, image_root) -> np.ndarray:
    image = value if isinstance(value, Image.Image) else \
        image_ref(value, base_dir=base_dir, image_root=image_root)._open()
    array = np.asarray(image.convert("L"))
    return array > 0 if array.max(initial=0) <= 1 else array >= 128


def decode_mask(value, height: int, width: int, *, base_dir=None,
                image_root=None) -> np.ndarray:
    """Decode a checked mask value (see module docstring) to ``np.bool_`` [H, W]."""
    check_mask(value, height, width, base_dir=base_dir, image_root=image_root,
               verify_compressed=False)  # decoded right below
    try:
        mask = _decode(value, height, width, base_dir, image_root)
    except (ValueError, TypeError) as exc:  # e.g. a malformed compressed RLE string
        raise _problem(f"cannot decode: {exc}") from exc
    if mask.shape != (height, width):
        raise _problem(f"decoded mask has shape {mask.shape}, expected {(height, width)}")
    return np.ascontiguousarray(mask, dtype=bool)


def _decode(value, height: int, width: int, base_dir, image_root) -> np.ndarray:
    if _is_rle(value):
        mask = _rle_decode(value, height, width)
    elif isinstance(value, list) and value and all(_is_rle(v) for v in value):
        mask = np.logical_or.reduce([_rle_decode(r, height, width) for r in value])
    elif _dense_shape_ok(value, height, width):
        mask = np.asarray(value).astype(bool)
    elif _is_polygon_list(value):
        mask = _polygons_to_mask(value, height, width)
    elif isinstance(value, list):
        mask = _polygons_to_mask([value], height, width)
    else:
        mask = _image_mask(value, base_dir, image_root)
    return mask
