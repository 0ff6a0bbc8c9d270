#!/usr/bin/env bash
# The main job: environment report, then GRO training on the built-in synthetic task
# with the small model (CPU: about 6 minutes on 2 quiet cores), ending with held-out
# accuracy before / after the warm start / during / after RL (plotted). GRO vs GRPO on
# equal token budgets: `gro-fast ablation` (docs/ablation.md).
set -euo pipefail
. "$(dirname "${BASH_SOURCE[0]}")/setup_env.sh"
gro-fast doctor
gro-fast train "$@"
