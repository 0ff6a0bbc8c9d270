#!/usr/bin/env bash
# GRO on EasyR1 for a Seg-Zero / VisionReasoner run (they train with EasyR1-style configs).
# Run it with your existing config; only the lines marked CHANGED differ from a GRPO run.
# Contract-tested against hiyouga/EasyR1 at commit b44b311 (see docs/integrations.md).
#
#   CONFIG=training_scripts/visionreasoner_7b.yaml bash configs/easyr1/gro_visionreasoner.sh
#
# Needs a rollout that writes GRO's arrangement: per prompt the initial response, then its
# G revisions, each row's ground truth tagged {"solution", "gro_group", "gro_role",
# "image_size"} (docs/integrations.md). Without it the gro estimator stops with
# "the first row of a prompt id (the initial response) has a non-zero score".
set -euo pipefail
CONFIG="${CONFIG:?set CONFIG to your EasyR1 YAML}"
REWARD_FILE="$(python -c 'import gro_fast.integrations.easyr1 as m; print(m.__file__)')"
args=(
  "config=${CONFIG}"
  algorithm.adv_estimator=gro                                  # CHANGED: was grpo
  "worker.reward.reward_function=${REWARD_FILE}:compute_score" # CHANGED: was the Seg-Zero / VisionReasoner reward
  worker.reward.reward_function_kwargs.omega=5.0               # NEW: GROConfig fields (omega, penalize_extra, ...)
  "worker.reward.reward_function_kwargs.image_size=[840,840]"  # NEW: model-input size when a row names none
  worker.rollout.n=8                                           # G: revisions per initial response
  algorithm.use_kl_loss=true                                   # KL as a loss term, never in the reward
  algorithm.online_filtering=false                             # it would filter on overall (= A_hat)
)
# CHANGED: was `python3 -m verl.trainer.main`; this registers the gro estimator in every Ray worker.
exec python -m gro_fast.integrations.easyr1 "${args[@]}" "$@"
