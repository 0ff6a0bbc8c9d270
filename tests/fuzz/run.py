"""Runs one fuzz target of ``targets.py`` under atheris (libFuzzer): ``scripts/fuzz.sh``
calls ``python -m tests.fuzz.run TARGET [--as WRAPPER] [libFuzzer flags and corpus
folders]``. ``--as`` names an executable that re-runs this target, for libFuzzer's modes
that start fresh processes of themselves (``-merge=1``).

With ``GRO_FAST_FUZZ_EXT`` set to a sanitized build of the extension (made by
``scripts/fuzz_build.py``), that file is loaded as ``gro_fast._C`` instead of the normal
build; the Python side of ``gro_fast.ops`` is instrumented for coverage too. A failed
check (``AssertionError``) or any unexpected exception is reported by atheris as a crash,
with the input saved as an artifact.
"""
from __future__ import annotations

import importlib.util
import os
import sys


def _load_sanitized_extension(path: str) -> None:
    spec = importlib.util.spec_from_file_location("gro_fast._C", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    sys.modules["gro_fast._C"] = module


def main() -> None:
    import torch  # noqa: F401  (libtorch before the extension)
    target, args = sys.argv[1], sys.argv[2:]
    argv0 = sys.argv[0]
    if args[:1] == ["--as"]:
        argv0, args = args[1], args[2:]
    ext = os.environ.get("GRO_FAST_FUZZ_EXT")
    if ext:
        _load_sanitized_extension(ext)
    import atheris
    with atheris.instrument_imports(include=["gro_fast.ops"]):
        import gro_fast.ops  # noqa: F401
    from gro_fast import _ext
    assert _ext.extension() is not None, _ext.load_error()
    from tests.fuzz.targets import TARGETS
    check = TARGETS[target]
    atheris.Setup([argv0] + args, check)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
