"""Where a record's image lives, and loading it as RGB.

A record names its image in one of several ways; :func:`image_ref` turns each into an
:class:`ImageRef` that can report the stored size cheaply (the file header only) and
decode the full image on demand, so a large dataset is checked at load time without
holding every image in memory. Accepted forms:

* a path, absolute or relative to ``image_root`` (default: the data file's folder);
* embedded bytes: raw ``bytes``, a ``data:image/...;base64,`` URI or a bare base64 string;
* a dict ``{"bytes": ..., "path": ...}`` (the ``datasets`` Image feature undecoded);
* a ``PIL.Image`` (the ``datasets`` Image feature decoded);
* a one-element list of any of these (VLM-R1 writes ``"image": [path]``);
* a ``LazyColumn`` of a ``datasets`` folder, read again on each access.

Images are converted to RGB (16-bit greyscale scaled to 8 bits); EXIF orientation is NOT
applied, because the boxes of these datasets refer to the stored pixel array. Images above
PIL's decompression-bomb limit are refused (``bad_image``). Resizing is left to ``resize``.
"""
from __future__ import annotations

import base64
import binascii
import io
from pathlib import Path

from PIL import Image, UnidentifiedImageError

from .sample import FieldProblem
from .sources import LazyColumn

_MIN_BASE64_CHARS = 64


class ImageRef:
    """A reference to one image: ``size()`` reads the header, ``load()`` decodes to RGB.

    Exactly one of ``path``, ``data`` (encoded bytes), ``pil`` or ``lazy`` (a cell of a
    memory-mapped dataset, read again on each access; ``base_dir`` / ``image_root`` resolve
    a relative path found there) is set. ImageRefs pickle, so datasets can go to workers.
    """

    def __init__(self, *, path: Path | None = None, data: bytes | None = None,
                 pil: Image.Image | None = None, lazy: LazyColumn | None = None,
                 base_dir=None, image_root=None):
        self.path, self.data, self.pil, self.lazy = path, data, pil, lazy
        self.base_dir, self.image_root = base_dir, image_root

    def _open(self) -> Image.Image:
        if self.pil is not None:
            return self.pil
        if self.data is not None:
            return Image.open(io.BytesIO(self.data))
        if self.path is not None:
            return Image.open(self.path)
        return image_ref(self.lazy.get(), base_dir=self.base_dir,
                         image_root=self.image_root)._open()

    def size(self) -> tuple[int, int]:
        """(width, height) from the header; raises FieldProblem if unreadable."""
        try:
            image = self._open()
            size = tuple(image.size)
            if image is not self.pil:
                image.close()  # only the header was read; do not hold the file open
            return size
        except _DECODE_ERRORS as exc:
            raise FieldProblem("image", f"unreadable image ({self.describe()}): {exc}",
                               "bad_image") from exc

    def load(self) -> Image.Image:
        """The fully decoded image in RGB; raises FieldProblem if it cannot be decoded."""
        image = None
        try:
            image = self._open()
            image.load()
            return _to_rgb(image)
        except _DECODE_ERRORS as exc:
            if image is not None and image is not self.pil:
                image.close()
            raise FieldProblem("image", f"unreadable image ({self.describe()}): {exc}",
                               "bad_image") from exc

    def describe(self) -> str:
        if self.path is not None:
            return str(self.path)
        if self.data is not None:
            return f"{len(self.data)} embedded bytes"
        return "in-memory image" if self.pil is not None else "dataset image"


# PIL refuses images above 2 x Image.MAX_IMAGE_PIXELS (decompression bombs) with an error
# that is not an OSError.
_DECODE_ERRORS = (OSError, UnidentifiedImageError, ValueError, Image.DecompressionBombError)


def _to_rgb(image: Image.Image) -> Image.Image:
    """RGB; 16-bit greyscale is scaled to 8 bits first (PIL's own conversion clips it)."""
    if image.mode == "RGB":
        return image
    if image.mode.startswith("I;16"):
        import numpy as np
        high = (np.asarray(image, dtype=np.uint16) >> 8).astype(np.uint8)
        return Image.fromarray(high, "L").convert("RGB")
    return image.convert("RGB")


def _decode_base64(text: str) -> bytes | None:
    if text.startswith("data:"):
        _, _, payload = text.partition(",")
        text = payload
    elif len(text) < _MIN_BASE64_CHARS:
        return None
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        return None


def _from_string(text: str, base_dir, image_root) -> ImageRef:
    if text.startswith("data:"):
        data = _decode_base64(text)
        if data is None:
            raise FieldProblem("image", "malformed base64 data URI", "bad_image")
        return ImageRef(data=data)
    path = Path(text).expanduser()
    if not path.is_absolute():
        root = image_root if image_root is not None else base_dir
        path = Path(root or ".") / path
    if path.is_file():
        return ImageRef(path=path)
    data = _decode_base64(text)
    if data is not None:
        return ImageRef(data=data)
    raise FieldProblem("image", f"image file not found: {path}", "bad_image")


def image_ref(value, *, base_dir=None, image_root=None) -> ImageRef:
    """Turn a record's ``image`` value into an :class:`ImageRef` (see module docstring)."""
    if isinstance(value, LazyColumn):
        return ImageRef(lazy=value, base_dir=base_dir, image_root=image_root)
    if isinstance(value, Image.Image):
        return ImageRef(pil=value)
    if isinstance(value, (bytes, bytearray)):
        return ImageRef(data=bytes(value))
    if isinstance(value, str):
        if not value.strip():
            raise FieldProblem("image", "empty image path", "bad_image")
        return _from_string(value, base_dir, image_root)
    if isinstance(value, dict):
        if value.get("bytes") is not None:
            return image_ref(value["bytes"], base_dir=base_dir, image_root=image_root)
        if value.get("path"):
            return image_ref(value["path"], base_dir=base_dir, image_root=image_root)
        raise FieldProblem("image", "image dict has neither 'bytes' nor 'path'", "bad_image")
    if isinstance(value, (list, tuple)):
        if len(value) != 1:
            raise FieldProblem("image", f"expected one image, got a list of {len(value)} "
                               "(multi-image records are not supported)", "wrong_type")
        return image_ref(value[0], base_dir=base_dir, image_root=image_root)
    raise FieldProblem("image", f"expected a path, bytes, dict or PIL image, got "
                       f"{type(value).__name__}", "wrong_type")
