#!/usr/bin/env bash
# GRO on veRL (tested with verl 0.9.1) for a VisionReasoner-style grounding run: only the
# lines marked CHANGED differ from a GRPO run with VisionReasoner's rewards.
#
#   bash configs/verl/gro_visionreasoner.sh data.train_files=... actor_rollout_ref.model.path=...
#
# veRL's rollouts have no revision turn: the agent loop manager named below must sample,
# per prompt, the initial response and then G revisions under one uid, and set each
# output's reward_score from gro_fast.integrations.verl.gro_group_scores (see
# docs/integrations.md). Without it the gro estimator stops with "the first row of a
# prompt id (the initial response) has a non-zero score".
set -euo pipefail
GRO_AGENT_LOOP_MANAGER="${GRO_AGENT_LOOP_MANAGER:?set it to your GRO agent loop manager class}"
args=(
  algorithm.adv_estimator=gro                                                  # CHANGED: was grpo
  reward.custom_reward_function.path=pkg://gro_fast.integrations.verl          # CHANGED: was the VisionReasoner reward file
  reward.custom_reward_function.name=compute_score                             # CHANGED
  +ray_kwargs.ray_init.runtime_env.worker_process_setup_hook=gro_fast.integrations.verl.register  # NEW: registers gro
  "+actor_rollout_ref.rollout.agent.agent_loop_manager_class=${GRO_AGENT_LOOP_MANAGER}"            # NEW: GRO's rollout
  actor_rollout_ref.rollout.n=1                                                # one session per prompt (it emits 1 + G rows)
  actor_rollout_ref.actor.use_kl_loss=true                                     # KL as a loss term ...
  algorithm.use_kl_in_reward=false                                             # ... never added to the score (A_hat)
  trainer.use_v1=true
)
exec python -m verl.trainer.main_ppo "${args[@]}" "$@"
