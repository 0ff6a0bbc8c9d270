#!/usr/bin/env bash
# The test suite: sets up .venv (see setup_env.sh), then runs pytest. Extra arguments go
# to pytest, e.g. scripts/test.sh tests/ops -k box.
set -euo pipefail
. "$(dirname "${BASH_SOURCE[0]}")/setup_env.sh"
python -m pytest -q --timeout=900 "$@"
