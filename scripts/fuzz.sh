#!/usr/bin/env bash
# Coverage-guided fuzzing of the compiled IoU ops (gro_fast._C: RLE, polygons, dense masks)
# with atheris (libFuzzer) against an AddressSanitizer + UndefinedBehaviorSanitizer build.
#
#   scripts/fuzz.sh [SECONDS_PER_TARGET] [TARGET ...]      (default: 60 s, every target)
#   FUZZ_MERGE=1 scripts/fuzz.sh ...   then add the new coverage to tests/fuzz/corpus/
#
# Targets and the rule each input is judged by: tests/fuzz/targets.py. Builds the
# sanitized extension into build/fuzz/ (scripts/fuzz_build.py; clang gives native edge
# coverage, g++ sanitizers only), seeds each target from the regression corpus
# tests/fuzz/corpus/<target>/ (replayed by the normal test suite), keeps what it finds in
# build/fuzz/corpus/<target>/ and crashing inputs in build/fuzz/crashes/<target>/, and
# prints the executions per target. Exit status 1 when any target crashed, hung or failed
# its check. Not part of scripts/test.sh (the build alone takes minutes on 2 cores): CI
# replays the corpus instead; run this by hand after changing csrc/ (README, Reliability).
set -euo pipefail
. "$(dirname "${BASH_SOURCE[0]}")/setup_env.sh"
SECONDS_PER_TARGET="${1:-60}"
shift || true
TARGETS=("$@")
if [ ${#TARGETS[@]} -eq 0 ]; then
  TARGETS=(rle_decode rle_area rle_iou polygons_to_mask polygon_iou mask_iou)
fi
python -c "import atheris" 2>/dev/null || python -m pip install -q atheris
OUT=build/fuzz
PRELOAD="$(python scripts/fuzz_build.py "$OUT" | tail -n 1)"
EXT="$(ls "$OUT"/_C.*.so)"
export ASAN_OPTIONS="detect_leaks=0:allocator_may_return_null=1:handle_abort=1:abort_on_error=0"
export UBSAN_OPTIONS="halt_on_error=1:print_stacktrace=1"
export GRO_FAST_FUZZ_EXT="$EXT" OMP_NUM_THREADS=1 GRO_FAST_KERNELS=auto
status=0
printf '%-18s %12s %10s %s\n' target executions exec/s result > "$OUT/summary.txt"
for target in "${TARGETS[@]}"; do
  corpus="$OUT/corpus/$target" crashes="$OUT/crashes/$target/"
  mkdir -p "$corpus" "$crashes" "tests/fuzz/corpus/$target"
  log="$OUT/$target.log"
  runner="$OUT/run-$target"      # what libFuzzer re-executes in -merge mode
  printf '#!/bin/sh\ncd "%s" && exec "%s" -m tests.fuzz.run %s --as "$0" "$@"\n' \
    "$PWD" "$(command -v python)" "$target" > "$runner"
  chmod +x "$runner"
  set +e
  LD_PRELOAD="$PRELOAD" "$runner" "$corpus" "tests/fuzz/corpus/$target" \
    -max_total_time="$SECONDS_PER_TARGET" -timeout=20 -rss_limit_mb=8192 -malloc_limit_mb=8192 \
    -artifact_prefix="$crashes" -print_final_stats=1 >"$log" 2>&1
  rc=$?
  set -e
  runs="$(grep -oE 'stat::number_of_executed_units: *[0-9]+' "$log" | grep -oE '[0-9]+$' | tail -n 1)"
  rate="$(grep -oE 'stat::average_exec_per_sec: *[0-9]+' "$log" | grep -oE '[0-9]+$' | tail -n 1)"
  result=ok
  if [ "$rc" -ne 0 ]; then result="FAILED (rc $rc, see $log and $crashes)"; status=1; fi
  printf '%-18s %12s %10s %s\n' "$target" "${runs:-?}" "${rate:-?}" "$result" | tee -a "$OUT/summary.txt"
  if [ "${FUZZ_MERGE:-0}" = "1" ]; then
    LD_PRELOAD="$PRELOAD" "$runner" -merge=1 -timeout=20 -rss_limit_mb=8192 \
      -malloc_limit_mb=8192 "tests/fuzz/corpus/$target" "$corpus" >>"$log" 2>&1 || true
  fi
done
exit $status
