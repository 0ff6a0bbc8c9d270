"""The six scalar options of GRO's policy loss, checked once: ``PolicyLossOptions``.

``gro_policy_loss``, ``fused_linear_gro_policy_loss`` and the fp32 reference take the
options as keyword arguments of the same names and build one of these; everything below
them (``loss_from_logprobs``, the autograd Function, the kernel launcher) takes the object.
The tensors of the loss are checked elsewhere (``ops._checks.check_loss_inputs``).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, get_args

from .._checks import check_max_length, check_scalar, check_temperature

LossAggregation = Literal["token-mean", "seq-mean-token-mean", "seq-mean-token-sum-norm"]
LOSS_AGGREGATIONS: tuple[str, ...] = get_args(LossAggregation)


@dataclass(frozen=True)
class PolicyLossOptions:
    """Clip range, KL weight, temperature and aggregation of the loss (docs/method.md).

    Construction checks every field and raises ``TypeError`` / ``ValueError`` naming it.
    """

    eps_low: float = 0.2
    """Lower clip range of the ratio: 1 - eps_low, with eps_low in [0, 1)."""
    eps_high: float = 0.2
    """Upper clip range of the ratio: 1 + eps_high, with eps_high >= 0."""
    beta: float = 0.0
    """Weight of the k3 KL term against the reference policy (>= 0; > 0 needs ref log-probs)."""
    temperature: float = 1.0
    """The policy is softmax(logits / temperature), temperature > 0 (the sampling one)."""
    loss_agg: LossAggregation = "token-mean"
    """token-mean, seq-mean-token-mean or seq-mean-token-sum-norm (Dr. GRPO): how the
    per-token losses are weighted into the scalar (``reference.aggregation_weights``)."""
    max_length: int | None = None
    """The length seq-mean-token-sum-norm divides by (None: the batch's T)."""

    def __post_init__(self):
        checked = dict(eps_low=check_scalar("eps_low", self.eps_low, low=0.0, high=1.0),
                       eps_high=check_scalar("eps_high", self.eps_high, low=0.0),
                       beta=check_scalar("beta", self.beta, low=0.0),
                       temperature=check_temperature(self.temperature))
        # Stored as plain floats: a kernel launched with an int would specialise on it.
        for name, value in checked.items():
            object.__setattr__(self, name, value)
        if self.loss_agg not in LOSS_AGGREGATIONS:
            raise ValueError(f"loss_agg must be one of {LOSS_AGGREGATIONS}, got {self.loss_agg!r}")
        check_max_length(self.max_length)
