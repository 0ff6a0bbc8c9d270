"""Hostile data files: mutated rows of every supported format and hostile images.

Each mutated row sits on line 2 of a JSONL file between two valid rows. Read with
``on_error="raise"`` it must load cleanly or raise a ``DataError`` naming the file, line 2
and (for a mutated field) the field; every sample that loads must then build or raise a
``DataError`` naming its line. Read with ``on_error="skip"`` the three rows must be
accounted for: loaded or counted in ``skipped``. Nothing may hang (10 s per file) and no
other exception may escape. The default suite runs 250 mutations per format, the ``slow``
test 1,000 per format (and 250 inside JSON list files; README, "Reliability")."""
import json
import random
import re
import signal
from collections import Counter

import pytest
from PIL import Image

from gro_fast.data import DataError, ResizeConfig, load_eval_rows, load_grounding_dataset

from .mutations import hostile_images, mutate, valid_rows

FORMATS = ("visionreasoner", "vlmr1_rec", "count", "eval")


def _load(path, fmt, on_error):
    if fmt == "eval":
        return load_eval_rows(path, resize=ResizeConfig.none(), on_error=on_error)
    return load_grounding_dataset(path, format=fmt, resize=ResizeConfig.none(),
                                  on_error=on_error)


class _Hang(Exception):
    pass


def _alarm(signum, frame):
    raise _Hang()


def check_file(path, fmt, rows: int, bad_line: int | None) -> str:
    """Reads ``path`` both ways; returns "loaded" (nothing wrong found) or "error" (a named
    error with ``raise``, and then a counted skip with ``skip``)."""
    previous = signal.signal(signal.SIGALRM, _alarm)
    signal.alarm(10)
    try:
        return _check(path, fmt, rows, bad_line)
    except _Hang:
        raise AssertionError(f"{path}: reading took over 10 s") from None
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)


def _build_all(ds) -> int:
    failed = 0
    for i in range(len(ds)):
        try:
            sample = ds[i]
            assert sample.image.mode == "RGB"
        except DataError as exc:
            assert exc.line == ds.records[i].location.line, exc
            failed += 1
    return failed


def _check(path, fmt, rows, bad_line) -> str:
    outcome = "loaded"
    try:
        ds = _load(path, fmt, "raise")
        outcome = "error" if _build_all(ds) else "loaded"
    except DataError as exc:
        assert exc.file == str(path), exc
        assert exc.line == bad_line, f"error names line {exc.line}, not {bad_line}: {exc}"
        assert str(exc).startswith(f"{path}:{bad_line}: "), exc
        assert exc.field is not None or exc.reason in ("bad_json", "wrong_type", "bad_record"), \
            f"no field named: {exc} ({exc.reason})"
        outcome = "error"
    ds = _load(path, fmt, "skip")
    assert len(ds) + sum(ds.skipped.values()) == rows, (len(ds), dict(ds.skipped))
    skipped = sum(ds.skipped.values()) + _build_all(ds)
    assert (outcome == "error") == (skipped > 0), (outcome, dict(ds.skipped))
    return outcome


def _images(folder):
    Image.new("RGB", (64, 48), (200, 20, 20)).save(folder / "a.png")


def check_json_list(path, fmt) -> str:
    """A JSON list file whose record [1] is mutated: a whole-file error naming the file,
    or what ``check_file`` asks of record [1]."""
    try:
        ds = _load(path, fmt, "skip")
    except DataError as exc:  # the whole file is unreadable: no record to skip
        if exc.index is not None:
            raise
        assert str(exc).startswith(f"{path}") and "invalid" in str(exc), exc
        assert exc.reason == "bad_json", exc
        return "error"
    assert len(ds) + sum(ds.skipped.values()) == 3, (len(ds), dict(ds.skipped))
    try:
        ds = _load(path, fmt, "raise")
        return "error" if _build_all(ds) else "loaded"
    except DataError as exc:
        assert exc.index == 1 and str(exc).startswith(f"{path}[1]: "), exc
        return "error"


def run_mutations(tmp_path, fmt: str, count: int, seed: int, container: str = "jsonl"
                  ) -> Counter:
    """``count`` mutations of ``fmt``'s row as record 2 of 3 of a JSONL file, or (with
    ``container="json"``) as record [1] of a JSON list file; returns the outcomes."""
    rng = random.Random(seed)
    _images(tmp_path)
    row = valid_rows()[fmt]
    good = json.dumps(row).encode()
    tally = Counter()
    for k in range(count):
        op, line = mutate(row, rng)
        path = tmp_path / f"{fmt}-{k}.{container}"
        try:
            if container == "json":
                path.write_bytes(b"[" + good + b",\n" + line + b",\n" + good + b"]")
                outcome = check_json_list(path, fmt)
            else:
                path.write_bytes(good + b"\n" + line + b"\n" + good + b"\n")
                outcome = check_file(path, fmt, 3 if line.strip() else 2, 2)  # blank: ignored
        except AssertionError as exc:
            raise AssertionError(f"mutation {k} ({op}) of {fmt} in {path.name}: {exc}") from exc
        tally[outcome] += 1
        path.unlink()
    return tally


@pytest.mark.parametrize("fmt", FORMATS)
def test_mutated_rows_give_named_errors_or_counted_skips(tmp_path, fmt):
    tally = run_mutations(tmp_path, fmt, 250, seed=FORMATS.index(fmt))
    assert tally["error"] > 0 and tally["loaded"] > 0, tally


@pytest.mark.parametrize("fmt", FORMATS)
def test_mutated_records_of_a_json_list(tmp_path, fmt):
    tally = run_mutations(tmp_path, fmt, 50, seed=100 + FORMATS.index(fmt), container="json")
    assert tally["error"] > 0, tally


@pytest.mark.slow
def test_a_thousand_mutations_per_format(tmp_path):
    for fmt in FORMATS:
        folder = tmp_path / fmt
        folder.mkdir()
        for kind, container, n in (("JSONL", "jsonl", 1000), ("JSON list", "json", 250)):
            tally = run_mutations(folder, fmt, n, seed=1000 + FORMATS.index(fmt),
                                  container=container)
            handled = tally["loaded"] + tally["error"]
            print(f"data mutations {fmt} ({kind}): {n} tried, {handled} handled "
                  f"({tally['loaded']} harmless, {tally['error']} named errors / skips)")
            assert handled == n


def test_a_json_list_file_that_is_cut_or_not_utf8_names_the_file(tmp_path):
    _images(tmp_path)
    text = json.dumps([valid_rows()["visionreasoner"]] * 3).encode()
    for name, data in (("cut.json", text[:len(text) // 2]),
                       ("utf8.json", text[:40] + b"\xff\xfe" + text[40:])):
        path = tmp_path / name
        path.write_bytes(data)
        with pytest.raises(DataError, match=rf"{re.escape(str(path))}(:1: |.*line 1)"):
            load_grounding_dataset(path, format="visionreasoner")


@pytest.mark.parametrize("name", sorted(hostile_images()))
def test_hostile_images_load_or_give_named_errors(tmp_path, name):
    (tmp_path / name).write_bytes(hostile_images()[name])
    row = dict(valid_rows()["visionreasoner"], image=name)
    row.pop("img_width"), row.pop("img_height")
    row["solution"] = json.dumps([{"bbox_2d": [0, 0, 1, 1], "point_2d": [0, 0]}])
    path = tmp_path / "rows.jsonl"
    path.write_text(json.dumps(row) + "\n")
    outcome = check_file(path, "visionreasoner", 1, 1)
    if name.startswith(("ok", "header_1x1", "cmyk", "la", "p_", "l.", "i16", "rgba",
                        "one_bit", "exif", "gif", "wide")):
        assert outcome == "loaded", name
    if name.startswith(("truncated", "empty", "garbage", "bomb", "header_0")):
        assert outcome != "loaded", name


def test_sixteen_bit_images_keep_their_contrast(tmp_path):
    import numpy as np
    (tmp_path / "i16.png").write_bytes(hostile_images()["i16.png"])
    row = dict(valid_rows()["visionreasoner"], image="i16.png")
    path = tmp_path / "rows.jsonl"
    path.write_text(json.dumps(row) + "\n")
    image = np.asarray(_load(path, "visionreasoner", "raise")[0].image)
    assert image.min() < 50 and 100 < image.mean() < 200, (image.min(), image.mean())


def test_exif_rotation_is_not_applied(tmp_path):
    (tmp_path / "r.jpg").write_bytes(hostile_images()["exif_rotated.jpg"])
    row = dict(valid_rows()["visionreasoner"], image="r.jpg")
    path = tmp_path / "rows.jsonl"
    path.write_text(json.dumps(row) + "\n")
    assert _load(path, "visionreasoner", "raise")[0].image.size == (64, 48)
