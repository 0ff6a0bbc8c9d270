"""GRO in TRL: reward functions with TRL's signature and ``GROTrainer`` (a ``GRPOTrainer``).

```python
from gro_fast.integrations.trl import GROTrainer, grounding_rows
from trl import GRPOConfig
trainer = GROTrainer(model, args=GRPOConfig(num_generations=8, ...), processing_class=processor,
                     train_dataset=grounding_rows(load_grounding_dataset("train.jsonl")))
```

The reward functions (``rewards``) need no TRL; ``GROTrainer`` and ``grounding_rows`` import
it on first use and require the tested version range ``TRL_VERSIONS`` (install with
``pip install "gro_fast[trl]"``): GROTrainer relies on TRL's experimental ``rollout_func``
and on private methods whose behaviour changes between releases.
"""
from __future__ import annotations

from .rewards import (VISION_REASONER_REWARDS, accuracy_reward, completion_text, count_reward,
                      make_mask_iou_reward, mask_iou_reward, non_repeat_reward,
                      object_format_reward, rec_accuracy_reward, rec_iou_reward,
                      think_format_reward, vision_reasoner_reward)

TRL_VERSIONS = ">=1.16,<1.17"
"""The TRL releases GROTrainer is tested with (also the ``gro_fast[trl]`` pin)."""


def require_trl():
    """``import trl``, or an ImportError saying which versions GROTrainer supports."""
    from packaging.specifiers import SpecifierSet
    try:
        import trl
    except ImportError as exc:
        raise ImportError('GROTrainer needs TRL: pip install "gro_fast[trl]" '
                          f"(trl{TRL_VERSIONS})") from exc
    if not SpecifierSet(TRL_VERSIONS).contains(trl.__version__, prereleases=True):
        raise ImportError(f"GROTrainer is tested with trl{TRL_VERSIONS} and uses its experimental "
                          f"rollout_func and private scoring / loss methods; found trl "
                          f'{trl.__version__}. Install a tested version: pip install "gro_fast[trl]"')
    return trl


def __getattr__(name):
    if name == "GROTrainer":
        from .trainer import GROTrainer
        return GROTrainer
    if name == "grounding_rows":
        from .data import grounding_rows
        return grounding_rows
    if name == "gro_rollout":
        from .rollout import gro_rollout
        return gro_rollout
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = ["GROTrainer", "TRL_VERSIONS", "VISION_REASONER_REWARDS", "accuracy_reward",
           "completion_text", "count_reward", "gro_rollout", "grounding_rows",
           "make_mask_iou_reward", "mask_iou_reward", "non_repeat_reward",
           "object_format_reward", "rec_accuracy_reward", "rec_iou_reward", "require_trl",
           "think_format_reward", "vision_reasoner_reward"]
