#!/usr/bin/env bash
# One command that validates and benchmarks gro_fast on a GPU machine, in at most 9 minutes:
#
#   scripts/gpu_check.sh [OUTDIR]             on the GPU machine (default OUTDIR: runs/gpu_check)
#   scripts/gpu_check.sh --dry-run [OUTDIR]   the same stages on CPU at tiny shapes (reference /
#                                             interpreter paths), in a few minutes; the test suite runs it
#
# The GPU machine is taken as it is (Python 3.12, torch 2.11 + CUDA 13, Triton 3.6, no
# network): nothing is installed into its Python. Packages it lacks (liger-kernel,
# pycocotools, shapely, the transformers of the CPU suite) come from the wheel folder that
# scripts/gpu_wheels.sh fills on a machine with network (GRO_FAST_WHEELS, default .whl/),
# unpacked into a temporary folder. The extension is built in place; the repository is on
# PYTHONPATH.
#
# Stages run in order, each under its own time limit (and all under one 9-minute deadline);
# a failed or timed-out stage is recorded and the next one runs. OUTDIR receives log.txt
# (all output), <stage>.log, tests.xml, bench-*.json (device, versions, commit) and
# summary.json; the one-screen summary is printed last. Exit status 0 when every stage passed.
set -uo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

DRY_RUN=0
if [ "${1:-}" = "--dry-run" ]; then DRY_RUN=1; shift; fi
OUT="$(mkdir -p "${1:-runs/gpu_check}" && cd "${1:-runs/gpu_check}" && pwd)"
PY="${PYTHON:-python3}"
WHEELS="${GRO_FAST_WHEELS:-$ROOT/.whl}"
SITE="$(mktemp -d "${TMPDIR:-/tmp}/gro_fast_site.XXXXXX")"
trap 'rm -rf "$SITE"' EXIT
rm -f "$OUT"/stages.jsonl "$OUT"/tests*.xml "$OUT"/bench-*.json "$OUT"/summary.json
exec > >(tee "$OUT/log.txt") 2>&1

if [ "$DRY_RUN" = 1 ]; then
  BUDGET=300; SCALE=--tiny; DEVICE=cpu
  LIMITS=(env=30 build=30 tests=60 bench_loss=120 bench_iou=45 bench_rollout=60 bench_train=60)
else
  BUDGET=540; SCALE=--check; DEVICE=cuda
  LIMITS=(env=45 build=150 tests=150 bench_loss=100 bench_iou=30 bench_rollout=90 bench_train=120)
fi
DEADLINE=$(( $(date +%s) + BUDGET - 15 ))   # 15 s kept for the summary
limit_of() { local kv; for kv in "${LIMITS[@]}"; do [ "${kv%%=*}" = "$1" ] && echo "${kv#*=}"; done; }

export PYTHONPATH="$ROOT${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 TOKENIZERS_PARALLELISM=false
export TRITON_DEFAULT_FP_FUSION="${TRITON_DEFAULT_FP_FUSION:-1}"
if [ "$DRY_RUN" = 1 ]; then export CUDA_VISIBLE_DEVICES=""; fi

# run_stage NAME COMMAND: runs COMMAND (a bash string) under the stage's limit, output to
# the log and OUTDIR/NAME.log; appends {stage, status, rc, seconds, limit_s} to stages.jsonl.
run_stage() {
  local name=$1 cmd=$2 limit left start rc status seconds
  limit=$(limit_of "$name")
  left=$(( DEADLINE - $(date +%s) ))
  [ "$limit" -gt "$left" ] && limit=$left
  echo
  echo "=== [$name] limit ${limit}s: $cmd"
  start=$(date +%s.%N)
  if [ "$limit" -lt 5 ]; then
    rc=-1; status=skipped; echo "no time left"
  else
    timeout --kill-after=10 "$limit" bash -c "$cmd" 2>&1 | tee "$OUT/$name.log"
    rc=${PIPESTATUS[0]}
    case $rc in 0) status=ok ;; 124|137) status=timeout ;; *) status=failed ;; esac
  fi
  seconds=$("$PY" -c "import time; print(round(time.time() - $start, 1))" 2>/dev/null || echo 0)
  printf '{"stage": "%s", "status": "%s", "rc": %s, "seconds": %s, "limit_s": %s, "log": "%s.log"}\n' \
    "$name" "$status" "$rc" "$seconds" "$limit" "$name" >>"$OUT/stages.jsonl"
  echo "=== [$name] $status (rc $rc, ${seconds}s)"
}

# Wheels: unpacked (never installed into the machine's Python) into $SITE, first on
# PYTHONPATH. A dry run on CPU only lists them (they are built for the GPU machine's Python).
wheels_step() {
  if ! ls "$WHEELS"/*.whl >/dev/null 2>&1; then
    echo "no wheels in $WHEELS (scripts/gpu_wheels.sh fills it): peers that need them are skipped"
  elif [ "$DRY_RUN" = 1 ]; then
    echo "wheels in $WHEELS (not unpacked in a dry run):"; ls -1 "$WHEELS"
  else
    "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
      --target "$SITE" "$WHEELS"/*.whl && echo "unpacked $(ls "$WHEELS"/*.whl | wc -l) wheels into $SITE"
  fi
}
wheels_step 2>&1 | tee "$OUT/wheels.log"
[ -n "$(ls -A "$SITE")" ] && export PYTHONPATH="$SITE:$PYTHONPATH"

ENV_CMD="nvidia-smi 2>/dev/null || echo 'nvidia-smi: not available'; \"$PY\" -c 'import importlib
from gro_fast.doctor import main
main([])
for m in (\"liger_kernel\", \"pycocotools\", \"shapely\", \"hypothesis\", \"xdist\"):
    try:
        print(f\"{m:24s}\", getattr(importlib.import_module(m), \"__version__\", \"installed\"))
    except Exception as exc:
        print(f\"{m:24s} not available ({type(exc).__name__})\")'"
if [ "$DRY_RUN" = 1 ]; then
  # The CPU machine has its extension already; check that setup.py still resolves the build.
  BUILD_CMD="GRO_FAST_BUILD_CUDA=0 \"$PY\" setup.py --name && \"$PY\" -c 'from gro_fast import _ext; assert _ext.extension() is not None, _ext.load_error(); print(\"gro_fast._C loaded; CUDA kernels:\", _ext.has_cuda_kernels())'"
  # Collects the GPU run's tests and runs the gpu-marked ones (skipped without a GPU).
  TESTS_CMD="\"$PY\" -m pytest -q -rs -p no:cacheprovider --timeout=120 --junitxml=\"$OUT/tests.xml\" -m gpu tests/ops tests/generation"
else
  BUILD_CMD="GRO_FAST_BUILD_CUDA=1 GRO_FAST_CUDA_ARCHS=\"\${GRO_FAST_CUDA_ARCHS:-9.0}\" MAX_JOBS=\"\${MAX_JOBS:-16}\" \"$PY\" setup.py -q build_ext --inplace \
&& \"$PY\" -c 'from gro_fast import _ext; assert _ext.has_cuda_kernels(), _ext.load_error(); print(\"gro_fast._C with CUDA kernels\")'"
  XDIST=$("$PY" -c 'import xdist' 2>/dev/null && echo "-n 8" || echo "")
  TESTS_CMD="\"$PY\" -m pytest -q -rfE -p no:cacheprovider --timeout=120 $XDIST --junitxml=\"$OUT/tests.xml\" tests/ops tests/generation"
fi
bench() { echo "\"$PY\" -m bench.run --device $DEVICE $SCALE $* "; }
# On CPU our Triton kernels run under the interpreter, in the runner's own process.
LOSS_ENV=$([ "$DRY_RUN" = 1 ] && echo "TRITON_INTERPRET=1 " || echo "")

run_stage env "$ENV_CMD"
run_stage build "$BUILD_CMD"
run_stage tests "$TESTS_CMD"
run_stage bench_loss "$LOSS_ENV$(bench --group policy_loss --group fused_linear --out "$OUT/bench-loss.json")"
run_stage bench_iou "$(bench --case mask_iou_dense --case mask_iou_batched --out "$OUT/bench-iou.json")"
run_stage bench_rollout "$(bench --group rollout --out "$OUT/bench-rollout.json")"
run_stage bench_train "$(bench --group train --out "$OUT/bench-train.json")"

echo
"$PY" -m bench.summary "$OUT"
