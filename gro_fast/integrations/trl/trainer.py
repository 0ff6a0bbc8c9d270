"""``GROTrainer``: TRL's ``GRPOTrainer`` with GRO's rollout, scoring and advantages.

Per prompt: one initial response o1, the revision turn, G revisions (``rollout.gro_rollout``
through TRL's ``rollout_func`` hook; o1 and q2 lead each completion under an ``env_mask``
of 0, so they are context for the forward pass and never in the loss). After
TRL has scored the completions with ``reward_funcs`` (logged as usual; default:
VisionReasoner's four terms), ``_generate_and_score_completions`` replaces TRL's
advantages with GRO's: ``gro_fast.algo.gro_rewards_and_advantages`` on o1, the G
revisions, the ground truth (dataset columns, ``gro_fast.integrations.columns``) and the
model-input image size, giving r = R_format + R_acc + omega * dphi, the group advantage A
and A_hat = (1 + dphi) A, which TRL's loss then trains on. A prompt whose o1 is not well
formed was sampled as GRPO (G samples of q) and is scored as GRPO (dphi = 0).
``loss_impl="gro_fast"`` / ``"gro_fast_fused"`` computes TRL's loss with gro_fast's
kernels (``loss.py``). GRO's statistics are logged under ``gro/``.

Hooks used (TRL 1.16): ``rollout_func`` (experimental), ``_generate_and_score_completions``
and ``_compute_loss`` (private). ``require_trl`` refuses other TRL versions.
"""
from __future__ import annotations

import torch

from gro_fast.algo import GROConfig, gro_rewards_and_advantages

from ..columns import image_size, row_objects
from . import require_trl
from .loss import LOSS_IMPLS, gro_fast_policy_loss, unsupported_options
from .rewards import VISION_REASONER_REWARDS
from .rollout import engine_model, gro_rollout

trl = require_trl()

STAT_KEYS = ("fallback_fraction", "mean_dphi", "improved_fraction", "all_fail_fraction",
             "zero_variance_fraction", "zero_variance_fraction_without_dphi", "mean_reward",
             "mean_accuracy", "mean_phi_initial", "mean_phi_revised",
             "mean_abs_shaped_advantage")


class GROTrainer(trl.GRPOTrainer):
    """``trl.GRPOTrainer`` training with GRO (see the module docstring).

    ``gro``: scoring options (``GROConfig``: omega, penalize_extra, eps, advantage_scale,
    post_scale, revision_template, reward_terms). ``loss_impl``: ``"trl"`` (TRL's loss),
    ``"gro_fast"`` or ``"gro_fast_fused"``. ``engine_factory(model, processor)`` replaces
    ``gro_fast.generation.RolloutEngine`` (other samplers, scripted tests). Other arguments
    are ``GRPOTrainer``'s; ``reward_funcs`` defaults to VisionReasoner's four terms.
    """

    def __init__(self, model, reward_funcs=None, args=None, train_dataset=None,
                 eval_dataset=None, processing_class=None, *, gro: GROConfig | None = None,
                 loss_impl: str = "trl", engine_factory=None, **kwargs):
        if "rollout_func" in kwargs:
            raise ValueError("GROTrainer brings its own rollout_func (GRO's rollout)")
        if loss_impl not in LOSS_IMPLS:
            raise ValueError(f"loss_impl must be one of {LOSS_IMPLS}, got {loss_impl!r}")
        self.gro = gro if gro is not None else GROConfig()
        if not isinstance(self.gro, GROConfig):
            raise TypeError(f"gro must be a GROConfig, got {type(self.gro).__name__}")
        self.loss_impl = loss_impl
        self._engine_factory = engine_factory
        self._engine = None
        self._rollout_calls = 0
        self.last_gro_rounds: list = []
        super().__init__(model=model, reward_funcs=reward_funcs or list(VISION_REASONER_REWARDS),
                         args=args, train_dataset=train_dataset, eval_dataset=eval_dataset,
                         processing_class=processing_class, rollout_func=gro_rollout, **kwargs)
        self._check_options()

    def _check_options(self) -> None:
        if self.gro.train_initial:
            raise ValueError("GROTrainer keeps the initial response out of the loss; "
                             "GROConfig.train_initial=True is supported by gro-fast train only")
        if self.use_vllm:
            raise ValueError("GROTrainer samples with gro_fast's rollout engine on the policy; "
                             "use_vllm=True is not supported")
        if self.min_p not in (None, 0.0) or self.repetition_penalty not in (None, 1.0):
            raise ValueError("GROTrainer's sampler supports temperature, top_p and top_k; "
                             "set min_p=None and repetition_penalty=1.0")
        if self.loss_impl != "trl":
            bad = unsupported_options(self)
            if bad:
                raise ValueError(f"loss_impl={self.loss_impl!r} reproduces TRL's clipped loss "
                                 f"only; unsupported here: {', '.join(bad)}")

    # ----- rollout (called by gro_rollout) ------------------------------------------------
    def gro_engine(self):
        """The rollout engine over the (unwrapped) policy, built on first use."""
        if self._engine is None:
            from gro_fast.generation import RolloutEngine
            factory = self._engine_factory or RolloutEngine
            self._engine = factory(engine_model(self), self.processing_class)
        return self._engine

    def gro_seed(self) -> int:
        """A distinct, reproducible sampling seed per rollout call and process (the rule of
        ``gro-fast train``: run seed, call, process)."""
        from gro_fast.train.rollout import step_seed
        self._rollout_calls += 1
        return step_seed(self.args.seed, self._rollout_calls, self.accelerator.process_index)

    def gro_record_rounds(self, rounds) -> None:
        """Keeps the last call's ``RolloutGroup``s (for inspection and tests)."""
        self.last_gro_rounds = list(rounds)

    # ----- scoring ----------------------------------------------------------------------
    def gro_scores(self, inputs: list[dict]):
        """``GROScores`` of the process's rows (runs of G, fields from ``gro_rollout``)."""
        group = self.num_generations if self.model.training else self.num_generations_eval
        heads = inputs[::group]
        sizes = [self._scoring_size(row) for row in heads]
        return gro_rewards_and_advantages(
            [row["gro_initial_response"] for row in heads],
            [[row["gro_completion"] for row in inputs[g * group:(g + 1) * group]]
             for g in range(len(heads))],
            [row_objects(row, size) for row, size in zip(heads, sizes)], sizes, self.gro,
            fell_back=[row["gro_fell_back"] for row in heads])

    @staticmethod
    def _scoring_size(row: dict) -> tuple[int, int]:
        """The model-input size; the ground truth's frame must be the same."""
        seen = row.get("gro_image_size")
        try:
            frame = image_size(row)
        except ValueError:
            frame = None
        if seen is None and frame is None:
            raise ValueError("GROTrainer: no image size for a prompt (no image, no "
                             "img_width / img_height columns)")
        if seen is not None and frame is not None and tuple(seen) != tuple(frame):
            raise ValueError(
                f"GROTrainer: the processor fed the model a {seen[0]}x{seen[1]} image, but the "
                f"dataset's image (the ground truth's frame) is {frame[0]}x{frame[1]}; store "
                "images already resized to the model-input size "
                "(gro_fast.integrations.trl.grounding_rows does)")
        return tuple(seen if seen is not None else frame)

    def _generate_and_score_completions(self, inputs):
        output = super()._generate_and_score_completions(inputs)
        scores = self.gro_scores(inputs)
        advantages = scores.shaped_advantages.reshape(-1)
        if advantages.numel() != output["advantages"].numel():
            raise RuntimeError(f"GROTrainer: {advantages.numel()} GRO advantages for "
                               f"{output['advantages'].numel()} completions")
        output["advantages"] = advantages.to(output["advantages"])
        self._log_gro(scores)
        return output

    def _log_gro(self, scores) -> None:
        mode = "train" if self.model.training else "eval"
        device = self.accelerator.device
        for key in STAT_KEYS:
            value = torch.tensor([scores.stats[key]], dtype=torch.float32, device=device)
            self._metrics[mode][f"gro/{key}"].append(self.accelerator.gather(value).mean().item())

    # ----- loss -------------------------------------------------------------------------
    def _compute_loss(self, model, inputs):
        if self.loss_impl == "trl":
            return super()._compute_loss(model, inputs)
        return gro_fast_policy_loss(self, model, inputs)
