"""Replays the fuzzing regression corpus (``tests/fuzz/corpus/<target>/``) through the
normal build: every input must give pycocotools' / shapely's / the reference's result or a
clear error naming the argument (see ``targets.py``). New inputs come from
``scripts/fuzz.sh``: every crash it found is fixed and its input kept here."""
import os
import signal

import pytest

from .targets import TARGETS

CORPUS = os.path.join(os.path.dirname(__file__), "corpus")


def _inputs():
    for target in sorted(TARGETS):
        folder = os.path.join(CORPUS, target)
        names = sorted(os.listdir(folder)) if os.path.isdir(folder) else []
        yield pytest.param(target, [os.path.join(folder, n) for n in names], id=target)


@pytest.mark.parametrize("target,files", list(_inputs()))
def test_corpus_replays_cleanly(target, files):
    assert files, f"no corpus for {target}"
    check = TARGETS[target]

    def too_slow(signum, frame):
        raise TimeoutError(f"{target}: {current} took over 20 s")

    previous = signal.signal(signal.SIGALRM, too_slow)
    try:
        for current in files:
            with open(current, "rb") as f:
                data = f.read()
            signal.alarm(20)
            try:
                check(data)
            except AssertionError as exc:
                raise AssertionError(f"{os.path.relpath(current, CORPUS)}: {exc}") from exc
            finally:
                signal.alarm(0)
    finally:
        signal.signal(signal.SIGALRM, previous)
