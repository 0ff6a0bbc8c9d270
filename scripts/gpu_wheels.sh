#!/usr/bin/env bash
# Downloads, on a machine with network, the wheels that scripts/gpu_check.sh needs on the GPU
# machine (no network there; Python 3.12, x86-64): cp312 manylinux wheels, no dependencies
# (everything else is already on that machine), into a gitignored folder:
#
#   scripts/gpu_wheels.sh [DEST]      DEST default .whl/ (gitignored); prints the set and its size
#
# The set is small on purpose: the GPU machine receives the working tree plus carried paths,
# 64 MiB in all (this set is about 18 MiB). Versions: transformers, pycocotools and shapely
# as in the CPU test environment (.venv, when there is one; else the pins below), and the
# Liger-Kernel release the benchmarks' peers were written against.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
DEST="${1:-.whl}"
PY="${PYTHON:-python3}"
[ -x .venv/bin/python ] && LOCAL=.venv/bin/python || LOCAL="$PY"

version_of() {  # the CPU suite's version of a distribution, else the fallback pin
  "$LOCAL" -c "import importlib.metadata as m; print(m.version('$1'))" 2>/dev/null || echo "$2"
}
PACKAGES=(
  "transformers==$(version_of transformers 5.24.0)"   # the GPU image has 5.17; the suite runs this one
  "regex==$(version_of regex 2026.11.19)"             # transformers checks regex>=2025.10.22 at import
  "pycocotools==$(version_of pycocotools 2.0.11)"     # mask IoU peer
  "shapely==$(version_of shapely 2.2.0)"              # polygon IoU peer
  "liger-kernel==0.8.5"                               # GRPO loss / fused linear GRPO peers (pure Python)
)

mkdir -p "$DEST"
rm -f "$DEST"/*.whl
"$PY" -m pip download --quiet --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
  --platform manylinux2014_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux_2_24_x86_64 \
  --platform manylinux_2_28_x86_64 -d "$DEST" "${PACKAGES[@]}"
echo "wheels for the GPU machine in $DEST:"
ls -1 "$DEST"
echo "total: $(du -ch "$DEST"/*.whl | tail -n 1 | cut -f1) (the working tree plus carried paths must stay under 64 MiB)"
