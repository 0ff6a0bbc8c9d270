"""GRO itself: the revision query, consolidation (alignment cost Phi, improvement dphi),
group and shaped advantages, and the batch scorer that gives every trained row its
advantage and improvement.

Pure tensor / numpy math on parsed responses; parsing and the VisionReasoner rewards live
in ``gro_fast.rewards``, the policy loss in ``gro_fast.ops.policy_loss``, sampling in
``gro_fast.generation``.
"""
from .advantages import group_advantages, shaped_advantages
from .config import (DEFAULT_REVISION_TEMPLATE, DETAILED_REVISION_TEMPLATE, REWARD_TERMS,
                     GROConfig, check_revision_template)
from .consolidation import alignment_cost, alignment_costs, improvement
from .revision import is_well_formed, revision_query
from .scoring import (GROScores, all_fail_improvements, batch_statistics,
                      gro_rewards_and_advantages, initial_advantages, row_signals)

__all__ = [
    "DEFAULT_REVISION_TEMPLATE", "DETAILED_REVISION_TEMPLATE", "GROConfig", "GROScores",
    "REWARD_TERMS", "alignment_cost", "alignment_costs", "all_fail_improvements",
    "batch_statistics", "check_revision_template", "group_advantages",
    "gro_rewards_and_advantages", "improvement", "initial_advantages", "is_well_formed",
    "revision_query", "row_signals", "shaped_advantages",
]
