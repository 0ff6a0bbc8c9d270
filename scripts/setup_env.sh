#!/usr/bin/env bash
# Creates .venv (once), installs torch without ever replacing one already there, then
# gro_fast in editable mode with the compiled extension and the test extras (TRL, wandb),
# and veRL for its integration tests (all CPU-only; torch stays pinned throughout).
# Sourced by scripts/main.sh and scripts/test.sh.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
PYTHON="${PYTHON:-python3}"
if [ ! -x .venv/bin/python ]; then
  "$PYTHON" -m venv .venv
fi
# shellcheck disable=SC1091
. .venv/bin/activate
export PIP_DISABLE_PIP_VERSION_CHECK=1
if ! python -c "import torch" >/dev/null 2>&1; then
  if command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi >/dev/null 2>&1; then
    python -m pip install -q torch
  else
    # CPU machine: the CPU build, pinned (a loose requirement pulls GBs of CUDA wheels).
    python -m pip install -q "torch==${GRO_FAST_CPU_TORCH:-2.13.0}"
  fi
fi
TORCH_VERSION="$(python -c 'import torch; print(torch.__version__.split("+")[0])')"
CONSTRAINTS="$(mktemp)"
echo "torch==${TORCH_VERSION}" >"$CONSTRAINTS"
STAMP=".venv/.gro_fast_installed"
if [ ! -f "$STAMP" ] || [ setup.py -nt "$STAMP" ] || [ pyproject.toml -nt "$STAMP" ] \
   || [ scripts/requirements-verl.txt -nt "$STAMP" ] \
   || [ -n "$(find csrc kernels -newer "$STAMP" -type f 2>/dev/null | head -n 1)" ]; then
  python -m pip install -q -c "$CONSTRAINTS" setuptools wheel ninja
  MAX_JOBS="${MAX_JOBS:-2}" python -m pip install -q -c "$CONSTRAINTS" --no-build-isolation -e ".[test]"
  # veRL for tests/integrations/test_verl.py, without its own dependency pins (they would
  # replace transformers); what its imports need is in scripts/requirements-verl.txt.
  if python -c 'import sys; sys.exit(not (3, 10) <= sys.version_info[:2] < (3, 13))'; then
    python -m pip install -q -c "$CONSTRAINTS" --no-deps "verl==${GRO_FAST_TEST_VERL:-0.9.1}"
    python -m pip install -q -c "$CONSTRAINTS" -r scripts/requirements-verl.txt
  else
    echo "setup_env.sh: verl supports Python 3.10-3.12; its integration tests will be skipped"
  fi
  touch "$STAMP"
fi
rm -f "$CONSTRAINTS"
