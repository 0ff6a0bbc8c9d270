"""Helpers for the data tests: small images and data files written into tmp_path."""
import base64
import io
import json
from pathlib import Path

from PIL import Image


def png_bytes(width: int, height: int, colour=(200, 30, 30)) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (width, height), colour).save(buf, format="PNG")
    return buf.getvalue()


def b64(width: int, height: int) -> str:
    return base64.b64encode(png_bytes(width, height)).decode()


def write_jsonl(path, records) -> str:
    with open(path, "w") as fh:
        for rec in records:
            fh.write((rec if isinstance(rec, str) else json.dumps(rec)) + "\n")
    return str(path)


def write_json(path, records) -> str:
    with open(path, "w") as fh:
        json.dump(records, fh)
    return str(path)


PEERS = Path(__file__).resolve().parent / "peers"
"""Rows in the peers' own formats (see peers/README.md and peers/make_fixtures.py)."""


def peer_truth(name: str) -> list[dict]:
    """The ground truth of the peer fixture ``name``, one dict per row: ``boxes`` in
    original pixels [x1, y1, x2, y2], ``mask_area``, ``count``."""
    return json.loads((PEERS / "truth.json").read_text())[name]
