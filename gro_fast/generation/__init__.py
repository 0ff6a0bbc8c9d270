"""Rollout generation for GRPO / GRO: the engine, its shared-prefix KV cache, sampling.

``RolloutEngine(model, processor).generate(...)`` samples G responses per conversation;
``.gro_round(...)`` runs GRO's initial response, revision turn and G revisions. Each
group's prefix is prefilled once and its KV stored once; see ``engine`` for the details.
Rewards and training are not here.
"""
from .cache import ATTENTION_NAME, PrefixExtensionCache, SharedPrefixCache, shared_prefix_attention_enabled
from .engine import RolloutEngine
from .sampling import SamplingParams, sample_next, truncate_logits
from .types import RolloutGroup, Sample

__all__ = [
    "ATTENTION_NAME", "PrefixExtensionCache", "RolloutEngine", "RolloutGroup", "Sample",
    "SamplingParams", "SharedPrefixCache", "sample_next", "shared_prefix_attention_enabled", "truncate_logits",
]
