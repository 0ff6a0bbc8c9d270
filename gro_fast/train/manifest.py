"""Checkpoint integrity: durable writes, a manifest of per-file checksums, verification.

``write_state(obj, path)`` saves a state file (``torch.save``) and fsyncs it;
``seal(folder, meta)`` fsyncs every file and folder under ``folder`` and writes
``manifest.json`` last: the size and SHA-256 of every file, the checkpoint's metadata and a
checksum of the manifest itself. ``verify(folder)`` recomputes them and raises
``CheckpointError`` naming the first bad file (missing, truncated, corrupt, or an unreadable
manifest), so a damaged checkpoint is never loaded. ``fsync_dir`` makes a rename durable.
``read_state`` loads with ``torch.load(weights_only=True)``: tensors and plain containers
only, so a state file from elsewhere cannot run code. This module knows nothing about what
a checkpoint holds (``checkpoint.py`` does).
"""
from __future__ import annotations

import hashlib
import json
import os

import torch

from .faults import fault_point

MANIFEST = "manifest.json"
FORMAT = 1
_CHUNK = 1 << 22


class CheckpointError(RuntimeError):
    """A checkpoint that cannot be used (incomplete, corrupt) or could not be written."""


def _fsync_path(path: str) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def fsync_dir(path: str) -> None:
    """Makes the entries of folder ``path`` (creations, renames, deletions) durable."""
    _fsync_path(path)


class _FaultingWriter:
    """A file wrapper that offers the ``checkpoint.write`` fault point once part of the
    file has been written (a disk that fills up in the middle of a file)."""

    def __init__(self, f):
        self.f, self.written, self._offered = f, 0, False

    def write(self, data) -> int:
        n = self.f.write(data)
        self.written += n
        if self.written and not self._offered:
            self._offered = True
            fault_point("checkpoint.write")
        return n

    def flush(self) -> None:
        self.f.flush()


def write_state(obj, path: str) -> None:
    """``torch.save(obj)`` to ``path``, flushed and fsynced."""
    with open(path, "wb") as f:
        torch.save(obj, _FaultingWriter(f))
        f.flush()
        os.fsync(f.fileno())


def read_state(path: str):
    """``torch.load`` with ``weights_only=True`` (tensors and plain containers only)."""
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises pickle / runtime errors of many kinds
        raise CheckpointError(f"{path}: cannot be read as a state file "
                              f"({type(exc).__name__}: {str(exc).splitlines()[0][:200]})") \
            from exc


def file_digest(path: str) -> tuple[int, str]:
    """(size in bytes, SHA-256 hex digest) of a file."""
    h = hashlib.sha256()
    size = 0
    with open(path, "rb") as f:
        while chunk := f.read(_CHUNK):
            h.update(chunk)
            size += len(chunk)
    return size, h.hexdigest()


def _files(folder: str) -> list[str]:
    """Every file under ``folder`` (relative, '/'-separated, sorted), the manifest aside."""
    out = []
    for dirpath, _, names in os.walk(folder):
        for name in names:
            rel = os.path.relpath(os.path.join(dirpath, name), folder).replace(os.sep, "/")
            if rel != MANIFEST:
                out.append(rel)
    return sorted(out)


def _checksum(body: dict) -> str:
    return hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()


def seal(folder: str, meta: dict) -> None:
    """fsyncs every file and folder under ``folder``, then writes and fsyncs the manifest
    (``meta`` plus each file's size and SHA-256, plus the manifest's own checksum)."""
    files = {}
    for rel in _files(folder):
        full = os.path.join(folder, rel)
        _fsync_path(full)
        size, digest = file_digest(full)
        files[rel] = {"size": size, "sha256": digest}
    body = {"format": FORMAT, **meta, "files": files}
    manifest = dict(body, checksum=_checksum(body))
    with open(os.path.join(folder, MANIFEST), "w") as f:
        json.dump(manifest, f, indent=1, sort_keys=True)
        f.flush()
        os.fsync(f.fileno())
    for dirpath, _, _ in sorted(os.walk(folder), key=lambda t: -len(t[0])):
        fsync_dir(dirpath)


def read_manifest(folder: str) -> dict:
    """The manifest of ``folder``, checked against its own checksum."""
    path = os.path.join(folder, MANIFEST)
    name = os.path.basename(os.path.normpath(folder))
    if not os.path.isfile(path):
        raise CheckpointError(f"checkpoint {name}: no {MANIFEST} (an incomplete checkpoint, "
                              "or one written by a gro_fast without manifests)")
    try:
        with open(path, "rb") as f:
            manifest = json.loads(f.read().decode("utf-8"))
        body = {k: v for k, v in manifest.items() if k != "checksum"}
        ok = manifest.get("checksum") == _checksum(body) and isinstance(body.get("files"), dict)
    except (ValueError, AttributeError):
        ok = False
    if not ok:
        raise CheckpointError(f"checkpoint {name}: file {MANIFEST} is corrupt")
    if manifest.get("format") != FORMAT:
        raise CheckpointError(f"checkpoint {name}: {MANIFEST} has format "
                              f"{manifest.get('format')!r}, this gro_fast reads {FORMAT}")
    return manifest


def verify(folder: str) -> dict:
    """Checks every file of ``folder`` against its manifest; returns the manifest or raises
    ``CheckpointError`` naming the first missing, truncated or corrupt file."""
    manifest = read_manifest(folder)
    name = os.path.basename(os.path.normpath(folder))
    for rel, expected in sorted(manifest["files"].items()):
        full = os.path.join(folder, rel)
        if not os.path.isfile(full):
            raise CheckpointError(f"checkpoint {name}: file {rel} is missing")
        size = os.path.getsize(full)
        if size != expected.get("size"):
            raise CheckpointError(f"checkpoint {name}: file {rel} has {size} bytes, the "
                                  f"manifest says {expected.get('size')} (truncated or "
                                  "overwritten)")
        if file_digest(full)[1] != expected.get("sha256"):
            raise CheckpointError(f"checkpoint {name}: file {rel} does not match its "
                                  "SHA-256 checksum (corrupt)")
    return manifest
