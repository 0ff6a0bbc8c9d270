"""One runner for every gro_fast benchmark.

  python -m bench.run                      all cases for the available device
  python -m bench.run --group iou --quick  one group, small shapes
  python -m bench.run --check              one production shape per case (scripts/gpu_check.sh)
  python -m bench.run --tiny               smallest shapes: a smoke run (gpu_check.sh --dry-run)
  python -m bench.run --list

Writes ``bench/results/<group-or-all>-<device>-<date>.json`` with the device, versions,
commit and every row the cases returned, and prints a table.
"""
from __future__ import annotations

import argparse
import datetime as dt
import importlib
import json
import os
import pkgutil
import sys
import traceback

import torch

from bench import cases as cases_pkg
from bench.registry import CASES, Context

RESULTS_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "results")


def load_cases() -> None:
    for info in pkgutil.iter_modules(cases_pkg.__path__):
        importlib.import_module(f"bench.cases.{info.name}")


def environment(device: torch.device) -> dict:
    """Device, versions, commit and date of a benchmark run (``gro_fast.doctor`` owns it)."""
    from gro_fast.doctor import run_environment
    return run_environment(device, repo=os.path.dirname(RESULTS_DIR))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--group", action="append", help="run only this group (repeatable)")
    parser.add_argument("--case", action="append", help="run only this case (repeatable)")
    parser.add_argument("--device", default=None, help="cpu or cuda (default: cuda if available)")
    parser.add_argument("--quick", action="store_true", help="small shapes (the default on CPU)")
    parser.add_argument("--check", action="store_true",
                        help="one production shape per case, short timing (scripts/gpu_check.sh)")
    parser.add_argument("--tiny", action="store_true", help="smallest shapes, a smoke run of every case")
    parser.add_argument("--list", action="store_true")
    parser.add_argument("--out", default=None, help="results JSON path")
    args = parser.parse_args(argv)

    load_cases()
    if args.list:
        for c in sorted(CASES.values(), key=lambda c: (c.group, c.name)):
            print(f"{c.group:12s} {c.name:32s} devices={','.join(c.devices)}")
        return 0
    device = torch.device(args.device or ("cuda" if torch.cuda.is_available() else "cpu"))
    ctx = Context(device=device, quick=args.quick or args.tiny or device.type == "cpu",
                  check=args.check, tiny=args.tiny)
    selected = [c for c in CASES.values()
                if (not args.group or c.group in args.group)
                and (not args.case or c.name in args.case)
                and device.type in c.devices]
    if not selected:
        print("no benchmark case matches", file=sys.stderr)
        return 2
    report = {"environment": environment(device), "quick": ctx.quick, "check": ctx.check,
              "tiny": ctx.tiny, "cases": {}}
    failed = 0
    for c in selected:
        print(f"== {c.group}/{c.name} on {device}", flush=True)
        try:
            rows = c.fn(ctx)
        except Exception as exc:  # a failing case is reported, the others still run
            failed += 1
            traceback.print_exc()
            report["cases"][c.name] = {"group": c.group, "error": f"{type(exc).__name__}: {exc}"}
            continue
        report["cases"][c.name] = {"group": c.group, "rows": rows}
        for row in rows:
            print("   " + "  ".join(f"{k}={_fmt(v)}" for k, v in row.items()), flush=True)
    tag = "-".join(args.group) if args.group else "all"
    out = args.out or os.path.join(
        RESULTS_DIR, f"{tag}-{device.type}-{dt.date.today().isoformat()}.json")
    os.makedirs(os.path.dirname(os.path.abspath(out)), exist_ok=True)
    with open(out, "w") as f:
        json.dump(report, f, indent=1)
    print(f"wrote {out}")
    return 1 if failed else 0


def _fmt(value) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


if __name__ == "__main__":
    sys.exit(main())
