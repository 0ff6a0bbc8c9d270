"""GRO inside the trainers researchers already run: TRL, veRL and EasyR1.

* ``gro_fast.integrations.trl``: VisionReasoner / REC / counting / mask rewards with TRL's
  reward-function signature, and ``GROTrainer``, a ``trl.GRPOTrainer`` whose rollout is
  GRO's (initial response, revision turn, G revisions) and whose advantages are GRO's
  shaped advantages (extra ``gro_fast[trl]``, TRL version pinned).
* ``gro_fast.integrations.verl`` / ``gro_fast.integrations.easyr1``: each framework's
  custom reward function (VisionReasoner's total and terms) and GRO's advantage estimator
  registered as ``gro`` in the framework's own registry.
* ``columns``: ground truth from the dataset columns of the formats gro_fast reads;
  ``groups``: GRO scores of rows laid out as [initial response, G samples] per prompt id,
  shared by the veRL and EasyR1 adapters.

Nothing here is imported by ``import gro_fast``: each adapter imports its framework only
when it is used, and checks the version it was tested with. The scoring itself is
``gro_fast.rewards`` and ``gro_fast.algo``; nothing here re-derives a reward.
See ``docs/integrations.md`` for the recipes.
"""
