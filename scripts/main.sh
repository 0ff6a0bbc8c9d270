#!/usr/bin/env bash
# The main job: environment report, then GRO training on the built-in synthetic task
# with the tiny model (CPU: a few minutes), ending with held-out accuracy before/after.
set -euo pipefail
. "$(dirname "${BASH_SOURCE[0]}")/setup_env.sh"
gro-fast doctor
gro-fast train "$@"
