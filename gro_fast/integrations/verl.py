"""GRO in veRL (tested with verl 0.9.1): the custom reward function and the ``gro``
advantage estimator.

Reward function (``reward.custom_reward_function.path=pkg://gro_fast.integrations.verl``
or this file's path, ``name=compute_score``; veRL migrates the older top-level
``custom_reward_function.path/name`` to it):
``compute_score(data_source, solution_str, ground_truth, extra_info=None, **kwargs)``
returns ``{"score": VisionReasoner's total (0..7), "think_format", "object_format",
"accuracy", "non_repeat", "vision_reasoner"}``; veRL trains on ``score`` and logs the rest
as reward extra info. ``ground_truth`` is the dataset's ``reward_model.ground_truth``: a
Seg-Zero / VisionReasoner solution (JSON string or list of ``{"bbox_2d", "point_2d"}``),
one box, or a VLM-R1 answer text. This is what a Seg-Zero / VisionReasoner GRPO run
trains on, scored by gro_fast.

GRO: the rows of a prompt id (``uid``) must be ``[o1, s_1, ..., s_G]`` (the initial
response, then its G revisions, or G plain samples when o1 is not well formed), which
veRL's own rollouts do not produce: an agent loop that samples o1, builds the revision
turn (``gro_fast.algo.revision_query``) and samples G revisions emits them (veRL v1's
multi-output agent loops keep one uid per session). That loop sees the whole group, so it
sets each output's ``reward_score`` with :func:`gro_group_scores` (score = A_hat, 0 for o1;
see ``gro_fast.integrations.groups`` for why the score is the shaped advantage), and
``algorithm.adv_estimator=gro`` trains on exactly ``gro_rewards_and_advantages``' A_hat.

``register()`` adds ``gro`` to ``verl.trainer.ppo.core_algos``' registry
(``register_adv_est``). It must run in the process that computes advantages (veRL's
TaskRunner, a Ray actor): put ``+ray_kwargs.ray_init.runtime_env.worker_process_setup_hook=
gro_fast.integrations.verl.register`` on the command line (veRL merges it into the Ray
runtime environment, and Ray calls it in every worker it starts).
"""
from __future__ import annotations

from gro_fast.algo import GROConfig

# Absolute imports: veRL may load this file by its path (custom_reward_function.path).
from gro_fast.integrations.columns import ground_truth_objects
from gro_fast.integrations.groups import (gro_outcome_advantage, score_groups,
                                          vision_reasoner_terms)

VERL_VERSIONS = ">=0.9,<0.10"
"""The veRL releases this adapter is tested with."""
ESTIMATOR = "gro"


def compute_score(data_source=None, solution_str: str = "", ground_truth=None, extra_info=None,
                  **kwargs) -> dict:
    """veRL custom reward: VisionReasoner's total as ``score``, plus its terms."""
    terms = vision_reasoner_terms([solution_str], [ground_truth_objects(ground_truth)])[0]
    return {"score": terms["vision_reasoner"], **terms}


def gro_group_scores(initial_response: str, responses: list[str], ground_truth,
                     image_size: tuple[int, int], config: GROConfig | None = None,
                     fell_back: bool = False) -> list[dict]:
    """GRO scores of one group, rows ``[o1, *responses]``: each dict's ``score`` is the
    row's ``reward_score`` for veRL (A_hat; 0 for o1), the other keys its extra info."""
    gt = ground_truth_objects(ground_truth, image_size)
    return score_groups([initial_response], [list(responses)], [gt], [tuple(image_size)],
                        config, fell_back=[fell_back])[0]


def gro_advantage(token_level_rewards, response_mask, index=None, config=None, **kwargs):
    """veRL's estimator signature around :func:`gro_outcome_advantage`."""
    if index is None:
        raise ValueError("gro: veRL passed no uid index; GRO groups rows by prompt id")
    return gro_outcome_advantage(token_level_rewards, response_mask, index)


def register() -> None:
    """Register ``gro`` in veRL's advantage-estimator registry (idempotent)."""
    from packaging.specifiers import SpecifierSet

    import verl
    from verl.trainer.ppo import core_algos
    if not SpecifierSet(VERL_VERSIONS).contains(verl.__version__, prereleases=True):
        raise ImportError(f"gro_fast.integrations.verl is tested with verl{VERL_VERSIONS}; found "
                          f"verl {verl.__version__}")
    registered = core_algos.ADV_ESTIMATOR_REGISTRY.get(ESTIMATOR)
    if registered is None:
        core_algos.register_adv_est(ESTIMATOR)(gro_advantage)
    elif getattr(registered, "__qualname__", None) != gro_advantage.__qualname__:
        raise ValueError(f"veRL already has an advantage estimator {ESTIMATOR!r}: {registered}")
