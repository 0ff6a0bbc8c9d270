"""Reading raw records from a JSON file, a JSONL file or a ``datasets`` save_to_disk folder.

:func:`read_records` yields ``(location, record)`` pairs; ``location`` says where the record
is (1-based ``line`` for JSONL, 0-based ``index`` for JSON lists and dataset rows) and a
record that is not valid JSON comes back as a :class:`FieldProblem` in place of the dict, so
the caller decides whether to raise or skip. For ``datasets`` folders the heavy columns
(``image``, ``mask``) are not materialised: they come back as :class:`LazyColumn` values
read again when a sample is built, and Image features are read undecoded (bytes + path).
Reading a folder needs the ``datasets`` package, an optional dependency (the ``data``
extra): without it the reader raises a ``DataError`` saying how to install it. What a
record means is left to the format readers.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from .sample import DataError, FieldProblem

HEAVY_COLUMNS = ("image", "mask")


@dataclass(frozen=True)
class Location:
    file: str
    line: int | None = None
    index: int | None = None

    def kwargs(self) -> dict:
        return {"line": self.line, "index": self.index}


class LazyColumn:
    """One cell of a memory-mapped dataset, read on demand with :meth:`get`."""

    def __init__(self, table, column: str, index: int):
        self.table, self.column, self.index = table, column, index

    def get(self):
        return self.table[self.index][self.column]


def _jsonl_records(path: Path):
    # Lines are decoded one by one, so invalid UTF-8 is a bad record, not a failed read.
    with open(path, "rb") as fh:
        for line_no, raw in enumerate(fh, start=1):
            if not raw.strip():
                continue
            loc = Location(str(path), line=line_no)
            try:
                yield loc, json.loads(raw.decode("utf-8"))
            except UnicodeDecodeError as exc:
                yield loc, FieldProblem(None, f"invalid UTF-8 (byte {exc.start + 1} of the "
                                        "line)", "bad_json")
            except json.JSONDecodeError as exc:
                yield loc, FieldProblem(None, f"invalid JSON: {exc.msg}: column {exc.colno}",
                                        "bad_json")
            except RecursionError:
                yield loc, FieldProblem(None, "invalid JSON (nested too deeply)", "bad_json")


def _json_records(path: Path):
    with open(path, "rb") as fh:
        raw = fh.read()
    try:
        data = json.loads(raw.decode("utf-8"))
    except UnicodeDecodeError as exc:
        line = raw.count(b"\n", 0, exc.start) + 1
        raise DataError(path, f"invalid UTF-8 (byte {exc.start})", line=line,
                        reason="bad_json") from None
    except json.JSONDecodeError as exc:
        raise DataError(path, f"invalid JSON: {exc.msg}: line {exc.lineno}, column "
                        f"{exc.colno}; a JSON data file must hold a list of records",
                        reason="bad_json") from None
    except RecursionError:
        raise DataError(path, "invalid JSON (nested too deeply)", reason="bad_json") from None
    if isinstance(data, dict) and isinstance(data.get("data"), list):
        data = data["data"]
    if not isinstance(data, list):
        raise DataError(path, f"a JSON data file must hold a list of records (or "
                        f"{{'data': [...]}}), got {type(data).__name__}", reason="bad_file")
    for index, record in enumerate(data):
        yield Location(str(path), index=index), record


def _datasets_module(path: Path):
    try:
        import datasets
    except ImportError as exc:
        raise DataError(path, f"a datasets save_to_disk folder; reading it needs the "
                        f"'datasets' package ({exc}): pip install 'gro_fast[data]' (or pip "
                        "install datasets), or convert the folder to JSONL",
                        reason="missing_dependency") from None
    return datasets


def _open_dataset(path: Path, split: str | None):
    datasets = _datasets_module(path)
    try:
        ds = datasets.load_from_disk(str(path))
    except FileNotFoundError as exc:
        raise DataError(path, f"not a datasets save_to_disk folder ({exc})",
                        reason="bad_folder") from None
    if isinstance(ds, datasets.DatasetDict):
        if split is None and len(ds) == 1:
            split = next(iter(ds))
        if split not in ds:
            choose = "choose one" if split is None else f"there is no split {split!r}; choose one"
            raise DataError(path, f"the folder holds the splits {sorted(ds)}: {choose} with "
                            "data.split (gro-fast train), --split (gro-fast eval) or split=",
                            reason="bad_split")
        ds = ds[split]
    elif split is not None:
        raise DataError(path, f"split {split!r} given, but the folder holds one Dataset "
                        "without splits; drop the split", reason="bad_split")
    for column, feature in ds.features.items():
        if isinstance(feature, datasets.Image) and feature.decode:
            ds = ds.cast_column(column, datasets.Image(decode=False))
    return ds, split


def _dataset_records(path: Path, split: str | None):
    ds, split = _open_dataset(path, split)
    heavy = [c for c in HEAVY_COLUMNS if c in ds.column_names]
    tables = {c: ds.select_columns([c]) for c in heavy}
    light = ds.remove_columns(heavy) if heavy else ds
    label = f"{path}[{split}]" if split else str(path)
    for index, row in enumerate(light):
        record = dict(row)
        for column in heavy:
            record[column] = LazyColumn(tables[column], column, index)
        yield Location(label, index=index), record


def read_records(path, *, split: str | None = None):
    """Yield ``(Location, record_or_FieldProblem)`` for every record at ``path``.

    ``path`` is a ``.jsonl`` file (one JSON object per line; blank lines ignored), any other
    file holding a JSON list, or a folder written by ``datasets`` ``save_to_disk``
    (``split`` picks a split of a DatasetDict).
    """
    path = Path(path)
    if path.is_dir():
        return _dataset_records(path, split)
    if not path.is_file():
        raise FileNotFoundError(f"data path not found: {path}")
    if split is not None:
        raise DataError(path, f"split {split!r} given, but splits apply to datasets "
                        "save_to_disk folders only", reason="bad_split")
    if path.suffix.lower() == ".jsonl":
        return _jsonl_records(path)
    return _json_records(path)
