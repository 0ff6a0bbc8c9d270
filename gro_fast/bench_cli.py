"""``gro-fast bench``: runs the benchmark suite of a source checkout (bench/run.py)."""
from __future__ import annotations

import os
import sys


def main(argv: list[str]) -> int:
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    if not os.path.isfile(os.path.join(root, "bench", "run.py")):
        print("gro-fast bench needs a source checkout (bench/ is not installed with the "
              "package); run `python -m bench.run` from the repository root", file=sys.stderr)
        return 2
    sys.path.insert(0, root)
    from bench.run import main as run_main
    return run_main(argv)
