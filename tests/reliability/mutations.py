"""Mutated data rows and hostile images for the reader reliability tests.

``ROWS`` holds one valid row per supported format (the three training formats and the
evaluation rows); ``mutate(row, rng)`` returns a JSON line made from it by one mutation:
a dropped field, a retyped field, a huge number, wrong nesting (at any depth, inside the
JSON strings of ``solution`` / answers too), invalid UTF-8, a truncated line, a flipped
byte or nesting deep enough to exhaust the JSON parser's recursion.
``hostile_images(folder)`` writes images that stress the decoder: truncated files,
decompression bombs, unusual modes, EXIF rotation, 1 x 1 and 20,000 x 20,000 headers.
"""
from __future__ import annotations

import copy
import functools
import io
import json
import random
import struct
import zlib

import numpy as np
from PIL import Image

IMAGE = "a.png"   # 64 x 48, written by the tests next to the data file


def _rle() -> dict:
    from pycocotools import mask as coco
    m = np.zeros((48, 64), np.uint8)
    m[5:20, 8:30] = 1
    r = coco.encode(np.asfortranarray(m))
    return {"size": [48, 64], "counts": r["counts"].decode()}


SOLUTION = [{"bbox_2d": [2, 3, 30, 40], "point_2d": [10, 12]},
            {"bbox_2d": [40, 5, 60, 20], "point_2d": [50, 10]}]
ROWS = {
    "visionreasoner": {"id": "r1", "problem": "the red square", "solution": json.dumps(SOLUTION),
                       "image": IMAGE, "img_height": 48, "img_width": 64},
    "vlmr1_rec": {"id": "v1", "image": [IMAGE], "conversations": [
        {"from": "human", "value": "<image>Please provide the bounding box coordinate of the "
                                   "region this sentence describes: the red square"},
        {"from": "gpt", "value": "[2, 3, 30, 40]"}]},
    "count": {"id": "c1", "image": IMAGE, "query": "how many squares?", "count": 2,
              "points": [[5, 5], [20, 30]]},
    "eval": {"id": "e1", "image": IMAGE, "text": "the red square", "mask": None,
             "img_height": 48, "img_width": 64, "bbox": [8, 5, 29, 19]},
}
POLYGON_ROW = {"id": "e2", "image": IMAGE, "text": "the red square", "img_height": 48,
               "img_width": 64, "mask": [[8, 5, 30, 5, 30, 20, 8, 20]]}

NEW_VALUES = [None, "", "x", "12", 0, -1, 1.5, -7.25, True, False, [], {}, [[]], [None],
              {"a": 1}, [1, 2], [1, 2, 3, 4, 5], "[1, 2, 3, 4]", "<answer>[]</answer>",
              "\u0000", "\ud7ff\ue000", "🙂" * 3]
HUGE = [1e308, -1e308, 10**30, -(10**30), 2**63, 2**64 + 1, 1e-320, 4.5e15,
        float("inf"), -float("inf"), float("nan"), 10**400]
OPS = ("drop", "retype", "huge", "nest", "unnest", "inner", "utf8", "truncate", "flip",
       "deep", "dup_key")


def valid_rows() -> dict:
    rows = copy.deepcopy(ROWS)
    rows["eval"]["mask"] = _rle()
    return rows


def _paths(value, prefix=()):
    """Every (path, value) inside a JSON value (the root excluded)."""
    if isinstance(value, dict):
        for k, v in value.items():
            yield prefix + (k,), v
            yield from _paths(v, prefix + (k,))
    elif isinstance(value, list):
        for i, v in enumerate(value):
            yield prefix + (i,), v
            yield from _paths(v, prefix + (i,))


def _set(root, path, value):
    parent = root
    for key in path[:-1]:
        parent = parent[key]
    if value is _DROP:
        del parent[path[-1]]
    else:
        parent[path[-1]] = value


_DROP = object()


def _dumps(value) -> bytes:
    return json.dumps(value, allow_nan=True, ensure_ascii=False).encode("utf-8", "surrogatepass")


def _inner_strings(row):
    """Paths of string fields that hold JSON themselves (solution, answer turns)."""
    return [p for p, v in _paths(row) if isinstance(v, str) and v[:1] in "[{"]


def mutate(row: dict, rng: random.Random) -> tuple[str, bytes]:
    """(operation, one mutated JSON line without its newline)."""
    op = rng.choice(OPS)
    row = copy.deepcopy(row)
    paths = [p for p, _ in _paths(row)]
    path = rng.choice(paths)
    if op == "drop":
        _set(row, path, _DROP)
    elif op == "retype":
        _set(row, path, rng.choice(NEW_VALUES))
    elif op == "huge":
        numeric = [p for p, v in _paths(row) if isinstance(v, (int, float))
                   and not isinstance(v, bool)] or paths
        _set(row, rng.choice(numeric), rng.choice(HUGE))
    elif op == "nest":
        value = row
        for key in path:
            value = value[key]
        _set(row, path, rng.choice(([value], {"value": value}, [[value]])))
    elif op == "unnest":
        lists = [p for p, v in _paths(row) if isinstance(v, (list, dict)) and v] or paths
        p = rng.choice(lists)
        value = row
        for key in p:
            value = value[key]
        inner = value[0] if isinstance(value, list) else next(iter(value.values()), None) \
            if isinstance(value, dict) else value
        _set(row, p, inner)
    elif op == "inner":
        inner = _inner_strings(row)
        if inner:
            p = rng.choice(inner)
            value = row
            for key in p:
                value = value[key]
            _set(row, p, _mutate_text(value, rng))
    elif op == "dup_key":
        line = _dumps(row)
        key = rng.choice([k for k in row])
        return op, line[:-1] + b', "' + key.encode() + b'": ' + _dumps(rng.choice(NEW_VALUES)) + b"}"
    line = _dumps(row)
    if op == "utf8":
        pos = rng.randrange(len(line) + 1)
        bad = rng.choice([b"\xff", b"\xfe\xff", b"\xc3", b"\xe2\x82", b"\xed\xa0\x80", b"\x80"])
        line = line[:pos] + bad + line[pos:]
    elif op == "truncate":
        line = line[:rng.randrange(len(line))]
    elif op == "flip":
        pos = rng.randrange(len(line))
        line = line[:pos] + bytes([line[pos] ^ (1 << rng.randrange(8))]) + line[pos + 1:]
        line = line.replace(b"\n", b" ").replace(b"\r", b" ")
    elif op == "deep":
        depth = rng.choice((1000, 100_000))
        text = line.decode("utf-8", "surrogatepass")
        key = rng.choice(list(row))
        text = text[:-1] + f', "{key}": ' + "[" * depth + "]" * depth + "}"
        line = text.encode("utf-8", "surrogatepass")
    return op, line


def _mutate_text(text: str, rng: random.Random) -> str:
    kind = rng.randrange(5)
    if kind == 0:
        return text[:rng.randrange(len(text) + 1)]
    if kind == 1:
        pos = rng.randrange(len(text) + 1)
        return text[:pos] + rng.choice(["[", "]", "{", "}", ",", '"', "1e999", "NaN", "-"]) \
            + text[pos:]
    if kind == 2:
        return "[" * 5000 + "]" * 5000
    if kind == 3:
        try:
            value = json.loads(text)
        except ValueError:
            return text
        return json.dumps([value] if rng.random() < 0.5 else {"objects": value})
    return text.replace("2", str(rng.choice(HUGE)), 1)


# ----- images ---------------------------------------------------------------------------
def _png_header_only(width: int, height: int) -> bytes:
    """A PNG whose header claims width x height (a tiny, wrong IDAT after it)."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(
            ">I", zlib.crc32(kind + data) & 0xFFFFFFFF)
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 64))
            + chunk(b"IEND", b""))


def _save(image: Image.Image, fmt: str, **kw) -> bytes:
    buf = io.BytesIO()
    image.save(buf, format=fmt, **kw)
    return buf.getvalue()


@functools.lru_cache(maxsize=1)
def hostile_images() -> dict[str, bytes]:
    """name -> file bytes; every image is 64 x 48 unless its name says otherwise."""
    rng = np.random.default_rng(0)
    rgb = Image.fromarray(rng.integers(0, 255, (48, 64, 3), dtype=np.uint8), "RGB")
    png, jpeg = _save(rgb, "PNG"), _save(rgb, "JPEG", quality=90)
    exif = Image.Exif()
    exif[0x0112] = 6                                  # "rotate 90 CW" orientation
    p_image = rgb.convert("P", palette=Image.Palette.ADAPTIVE)
    p_image.info["transparency"] = 0
    out = {
        "ok.png": png,
        "truncated_header.png": png[:20],
        "truncated_data.png": png[:len(png) // 2],
        "truncated_data.jpg": jpeg[:len(jpeg) // 2],
        "empty.png": b"",
        "garbage.png": bytes(rng.integers(0, 255, 500, dtype=np.uint8)),
        "bomb_20000x20000.png": _png_header_only(20000, 20000),
        "bomb_100000x100000.png": _png_header_only(100_000, 100_000),
        "warning_10000x9000.png": _png_header_only(10000, 9000),
        "header_1x1.png": _save(Image.new("RGB", (1, 1), (9, 9, 9)), "PNG"),
        "header_0x48.png": _png_header_only(0, 48),
        "wide_20000x1.png": _save(Image.new("RGB", (20000, 1), (9, 9, 9)), "PNG"),
        "cmyk.jpg": _save(rgb.convert("CMYK"), "JPEG"),
        "la.png": _save(rgb.convert("LA"), "PNG"),
        "p_transparent.png": _save(p_image, "PNG"),
        "l.png": _save(rgb.convert("L"), "PNG"),
        "i16.png": _save(Image.fromarray((np.asarray(rgb.convert("L"), np.uint16) * 257)), "PNG"),
        "rgba.png": _save(rgb.convert("RGBA"), "PNG"),
        "one_bit.png": _save(rgb.convert("1"), "PNG"),
        "exif_rotated.jpg": _save(rgb, "JPEG", exif=exif.tobytes()),
        "gif_animated.gif": _save(rgb, "GIF", save_all=True,
                                  append_images=[rgb.rotate(90)], duration=10),
    }
    return out
