"""Reading raw records from a JSON file, a JSONL file or a ``datasets`` save_to_disk folder.

:func:`read_records` yields ``(location, record)`` pairs; ``location`` says where the record
is (1-based ``line`` for JSONL, 0-based ``index`` for JSON lists and dataset rows) and a
record that is not valid JSON comes back as a :class:`FieldProblem` in place of the dict, so
the caller decides whether to raise or skip. For ``datasets`` folders the heavy columns
(``image``, ``mask``) are not materialised: they come back as :class:`LazyColumn` values
read again when a sample is built, and Image features are read undecoded (bytes + path).
What a record means is left to the format readers.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from .sample import FieldProblem

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
                yield loc, FieldProblem(None, f"invalid JSON ({exc.msg} at column {exc.colno})",
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
        raise ValueError(f"{path}: invalid UTF-8 at line {line} (byte {exc.start})") from None
    except json.JSONDecodeError as exc:
        raise ValueError(f"{path}: invalid JSON ({exc.msg} at line {exc.lineno}, column "
                         f"{exc.colno}); a JSON data file must hold a list of records") from exc
    except RecursionError:
        raise ValueError(f"{path}: invalid JSON (nested too deeply)") from None
    if isinstance(data, dict) and isinstance(data.get("data"), list):
        data = data["data"]
    if not isinstance(data, list):
        raise ValueError(f"{path}: a JSON data file must hold a list of records (or "
                         f"{{'data': [...]}}), got {type(data).__name__}")
    for index, record in enumerate(data):
        yield Location(str(path), index=index), record


def _open_dataset(path: Path, split: str | None):
    import datasets

    ds = datasets.load_from_disk(str(path))
    if isinstance(ds, datasets.DatasetDict):
        if split is None and len(ds) == 1:
            split = next(iter(ds))
        if split not in ds:
            raise ValueError(f"{path}: a DatasetDict with splits {sorted(ds)}; pass split= "
                             f"one of them (got {split!r})")
        ds = ds[split]
    elif split is not None:
        raise ValueError(f"{path}: split={split!r} given but the folder holds one Dataset")
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
        raise ValueError(f"{path}: split= applies to datasets folders only")
    if path.suffix.lower() == ".jsonl":
        return _jsonl_records(path)
    return _json_records(path)
