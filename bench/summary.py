"""The summary of a ``scripts/gpu_check.sh`` run: ``python -m bench.summary OUTDIR``.

Reads what the stages left in OUTDIR (``stages.jsonl``: one record per stage; ``tests.xml``:
pytest's JUnit report; ``bench-*.json``: ``bench.run`` reports) and writes
``OUTDIR/summary.json`` (environment, stages, test counts, the benchmark headlines against
the targets of issue 11, every benchmark file's rows by reference) and prints one screen:
stages, tests, headlines. Exit status 0 when every stage passed. It measures nothing.
"""
from __future__ import annotations

import glob
import json
import operator
import os
import sys
import xml.etree.ElementTree as ET

# (label, case, impl prefix, row filter, value key, comparison, target): the headline numbers.
TARGETS = [
    ("policy loss fwd+bwd, % of HBM peak", "gro_policy_loss", "gro_fast", None, "pct_of_peak", ">=", 90.0),
    ("policy loss vs Liger GRPO loss", "gro_policy_loss", "gro_fast", None, "speedup_vs_liger-grpo-loss", ">=", 1.2),
    ("policy loss vs TRL-style torch", "gro_policy_loss", "gro_fast", None, "speedup_vs_torch-trl", ">=", 8.0),
    ("fused linear, % of bf16 peak", "fused_linear_gro_loss", "gro_fast-fused", None, "pct_of_peak", ">=", 60.0),
    ("fused linear vs Liger fused GRPO", "fused_linear_gro_loss", "gro_fast-fused", None, "speedup_vs_liger", ">=", 2.0),
    ("fused linear extra memory, MiB", "fused_linear_gro_loss", "gro_fast-fused", None, "extra_mb", "<", 1024.0),
    ("mask IoU 200x200 vs pycocotools", "mask_iou_dense", "gro_fast", None, "speedup_vs_pycocotools_encode_iou",
     ">=", 100.0),
    ("rollout groups vs HF generate", "rollout_engine_vs_generate", "gro_fast_engine", ("mode", "groups"),
     "speedup_s", ">=", 3.0),
    ("rollout GRO round vs HF generate", "rollout_engine_vs_generate", "gro_fast_engine", ("mode", "gro_round"),
     "speedup_s", ">=", 3.0),
    ("GRO train step, ms", "train_step", "", None, "ms", None, None),
]
_OPS = {">=": operator.ge, "<": operator.lt}


def read_stages(out: str) -> list[dict]:
    path = os.path.join(out, "stages.jsonl")
    if not os.path.exists(path):
        return []
    with open(path) as f:
        return [json.loads(line) for line in f if line.strip()]


def read_tests(out: str) -> dict | None:
    """Counts from pytest's JUnit XML report(s) in ``out`` (None when there is none)."""
    totals = None
    for path in sorted(glob.glob(os.path.join(out, "tests*.xml"))):
        try:
            root = ET.parse(path).getroot()
        except ET.ParseError:
            continue
        suites = [root] if root.tag == "testsuite" else root.findall("testsuite")
        totals = totals or {"tests": 0, "failures": 0, "errors": 0, "skipped": 0}
        for suite in suites:
            for key in totals:
                totals[key] += int(suite.get(key, 0))
        totals["failed_ids"] = totals.get("failed_ids", []) + [
            f"{case.get('classname')}::{case.get('name')}" for case in root.iter("testcase")
            if case.find("failure") is not None or case.find("error") is not None][:20]
    return totals


def read_benchmarks(out: str) -> tuple[dict, dict]:
    """(environment of the first report, with its scale; {case name: rows or {"error"}})
    of bench-*.json."""
    environment, cases = {}, {}
    for path in sorted(glob.glob(os.path.join(out, "bench-*.json"))):
        with open(path) as f:
            report = json.load(f)
        scale = "tiny" if report.get("tiny") else "check" if report.get("check") else \
            "quick" if report.get("quick") else "full"
        environment = environment or {**report.get("environment", {}), "scale": scale}
        for name, result in report.get("cases", {}).items():
            cases[name] = {**result, "file": os.path.basename(path)}
    return environment, cases


def headlines(cases: dict) -> list[dict]:
    lines = []
    for label, case_name, impl, where, key, op, target in TARGETS:
        result = cases.get(case_name)
        entry = {"label": label, "case": case_name, "key": key, "target": target, "op": op, "values": []}
        if result is None:
            entry["status"] = "not run"
        elif "error" in result:
            entry["status"] = "error: " + result["error"][:80]
        else:
            rows = [r for r in result.get("rows", []) if r.get("impl", "").startswith(impl)
                    and (where is None or r.get(where[0]) == where[1]) and r.get(key) is not None]
            entry["values"] = [{"impl": r["impl"], "shape": r.get("shape") or _shape(r), key: r[key]} for r in rows]
            if not rows:
                entry["status"] = "no value"
            elif op is None:
                entry["status"] = "measured"
            else:
                entry["status"] = "met" if all(_OPS[op](r[key], target) for r in rows) else "missed"
        lines.append(entry)
    return lines


def _shape(row: dict) -> str:
    return "x".join(f"{k}{row[k]}" for k in ("B", "T", "N", "H", "V") if k in row)


def summarize(out: str) -> dict:
    environment, cases = read_benchmarks(out)
    stages = read_stages(out)
    summary = {"outdir": os.path.abspath(out), "environment": environment, "stages": stages,
               "tests": read_tests(out), "headlines": headlines(cases),
               "benchmark_files": sorted(os.path.basename(p) for p in glob.glob(os.path.join(out, "bench-*.json"))),
               "all_stages_ok": bool(stages) and all(s.get("status") == "ok" for s in stages)}
    with open(os.path.join(out, "summary.json"), "w") as f:
        json.dump(summary, f, indent=1)
    return summary


def render(summary: dict) -> str:
    env = summary["environment"]
    versions = env.get("versions", {})
    lines = [f"gro_fast GPU check: {env.get('device', '?')} | torch {versions.get('torch')} | "
             f"triton {versions.get('triton')} | transformers {versions.get('transformers')} | "
             f"commit {env.get('commit', '?')}", "", "stage            status     seconds  limit"]
    for s in summary["stages"]:
        lines.append(f"{s['stage']:<16} {s['status']:<10} {s.get('seconds', 0):7.1f}  {s.get('limit_s', '')}")
    tests = summary["tests"]
    if tests:
        lines += ["", f"tests: {tests['tests']} run, {tests['failures']} failed, {tests['errors']} errors, "
                      f"{tests['skipped']} skipped"]
        lines += [f"  FAILED {t}" for t in tests.get("failed_ids", [])[:8]]
    lines += ["", "benchmark headline                     value(s)                     target     status"]
    for h in summary["headlines"]:
        values = ", ".join(f"{v[h['key']]:.3g}" for v in h["values"][:3]) or "-"
        target = f"{h['op']} {h['target']:g}" if h["op"] else ""
        lines.append(f"{h['label'][:38]:<38} {values[:28]:<28} {target:<10} {h['status']}")
    if env.get("scale") == "tiny":
        lines.append("(--dry-run: tiny shapes on CPU, a smoke run; the values are not measurements)")
    lines += ["", f"all stages ok: {summary['all_stages_ok']}   ->  {summary['outdir']}/summary.json, log.txt"]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) != 1:
        print("usage: python -m bench.summary OUTDIR", file=sys.stderr)
        return 2
    summary = summarize(argv[0])
    print(render(summary))
    return 0 if summary["all_stages_ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
