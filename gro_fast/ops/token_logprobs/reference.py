"""fp32 torch reference of token log-probs (and entropy).

The definition lives beside GRO's policy loss in ``ops/policy_loss/reference.py``; it is
re-exported here so this op has its reference in its own folder like every other op.
"""
from ..policy_loss.reference import reference_token_logprobs

__all__ = ["reference_token_logprobs"]
