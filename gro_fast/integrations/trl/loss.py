"""TRL's clipped policy loss computed by gro_fast's kernels (``GROTrainer(loss_impl=...)``).

``"gro_fast"``: the model's logits for the completion positions (``logits_to_keep``) go
through ``gro_fast.ops.gro_policy_loss`` (log-probs, clipped surrogate and k3 KL in one
pass over each logits row). ``"gro_fast_fused"``: the last hidden states and the LM head
go through ``fused_linear_gro_policy_loss``, so the completion logits never exist.

Both reproduce TRL 1.16's ``_compute_loss`` for ``importance_sampling_level="token"`` and
``loss_type`` in ``grpo`` (``seq-mean-token-mean``), ``bnpo`` (``token-mean``), ``dr_grpo``
(``seq-mean-token-sum-norm`` over ``max_completion_length``) and ``dapo`` (token sum over
the generation batch's token count), with the same gradient-accumulation scaling; other
TRL options (entropy masks and bonus, off-policy masks, vLLM importance sampling, two-sided
``delta`` clipping, MoE aux loss, the KL term weighted by the importance ratio, TRL's
default ``use_bias_correction_kl=True`` when ``beta > 0``) are refused when the trainer
is built. The advantages are
the shaped A_hat the trainer stored, so ``improvement`` is not passed again.
"""
from __future__ import annotations

import torch

LOSS_IMPLS = ("trl", "gro_fast", "gro_fast_fused")
LOSS_AGG = {"grpo": "seq-mean-token-mean", "bnpo": "token-mean", "dapo": "token-mean",
            "dr_grpo": "seq-mean-token-sum-norm"}
MODEL_INPUT_KEYS = ("pixel_values", "image_grid_thw", "pixel_attention_mask", "image_sizes",
                    "token_type_ids", "mm_token_type_ids", "image_position_ids")


def unsupported_options(trainer) -> list[str]:
    """TRL options the gro_fast loss does not reproduce (empty when all is supported)."""
    args = trainer.args
    checks = [
        (trainer.loss_type not in LOSS_AGG, f"loss_type={trainer.loss_type!r} (supported: "
                                            f"{', '.join(LOSS_AGG)})"),
        (trainer.importance_sampling_level != "token",
         f"importance_sampling_level={trainer.importance_sampling_level!r}"),
        (trainer.top_entropy_quantile < 1.0, "top_entropy_quantile < 1"),
        (trainer.off_policy_mask_threshold is not None, "off_policy_mask_threshold"),
        (getattr(args, "delta", None) is not None, "delta"),
        (getattr(trainer, "_entropy_bonus_enabled", False), "an entropy bonus"),
        (getattr(trainer, "aux_loss_enabled", False), "a MoE aux loss"),
        (trainer.use_vllm, "use_vllm"),
        (bool(trainer.beta) and getattr(args, "use_bias_correction_kl", False),
         "use_bias_correction_kl=True with beta > 0 (gro_fast's KL term is the plain k3 "
         "estimator: set use_bias_correction_kl=False)"),
    ]
    return [what for bad, what in checks if bad]


def _model_inputs(inputs: dict) -> tuple[dict, int]:
    completion_ids = inputs["completion_ids"]
    model_inputs = {"input_ids": torch.cat([inputs["prompt_ids"], completion_ids], dim=1),
                    "attention_mask": torch.cat([inputs["prompt_mask"],
                                                 inputs["completion_mask"]], dim=1)}
    model_inputs.update({k: inputs[k] for k in MODEL_INPUT_KEYS if inputs.get(k) is not None})
    return model_inputs, completion_ids.size(1)


def _policy_output(trainer, model, inputs, mask, common: dict):
    from gro_fast.ops import fused_linear_gro_policy_loss, gro_policy_loss
    model_inputs, T = _model_inputs(inputs)
    targets = inputs["completion_ids"]
    advantages = inputs["advantages"].float().reshape(-1)
    with trainer.accelerator.autocast():
        if trainer.loss_impl == "gro_fast":
            logits = model(**model_inputs, logits_to_keep=T + 1).logits[:, :-1]
            return gro_policy_loss(logits, targets, mask, advantages, **common)
        out = model(**model_inputs, logits_to_keep=1, output_hidden_states=True)
    hidden = out.hidden_states[-1][:, -T - 1:-1]
    head = trainer.accelerator.unwrap_model(model).get_output_embeddings()
    return fused_linear_gro_policy_loss(hidden, head.weight, targets, mask, advantages,
                                        bias=head.bias, **common)


def gro_fast_policy_loss(trainer, model, inputs) -> torch.Tensor:
    """The loss TRL's ``_compute_loss`` would return, computed by gro_fast's kernels."""
    mask = inputs["completion_mask"]
    if "tool_mask" in inputs:
        mask = mask * inputs["tool_mask"]
    mask = mask.float()
    common = dict(old_logprobs=inputs.get("old_per_token_logps"),
                  ref_logprobs=inputs.get("ref_per_token_logps") if trainer.beta else None,
                  beta=float(trainer.beta), eps_low=trainer.epsilon_low,
                  eps_high=trainer.epsilon_high, temperature=trainer.temperature,
                  loss_agg=LOSS_AGG[trainer.loss_type], return_entropy=True,
                  max_length=trainer.max_completion_length)
    out = _policy_output(trainer, model, inputs, mask, common)
    mode = "train" if trainer.model.training else "eval"
    accumulation = trainer.current_gradient_accumulation_steps if mode == "train" else 1.0
    if trainer.loss_type == "dapo":
        normalizer = inputs["num_items_in_batch"].clamp(min=1.0) / trainer.accelerator.num_processes
        if mode == "train":
            normalizer = normalizer * accumulation / trainer.args.steps_per_generation
        loss = out.loss * mask.sum() / normalizer
    else:
        loss = out.loss / accumulation
    _log(trainer, mode, out.stats)
    return loss


def _log(trainer, mode: str, stats: dict) -> None:
    metrics = trainer._metrics[mode]
    gather = trainer.accelerator.gather
    for name, key in (("kl", "kl"), ("entropy", "entropy"), ("clip_ratio/low_mean", "clip_frac_low"),
                      ("clip_ratio/high_mean", "clip_frac_high")):
        if key in stats and (key != "kl" or trainer.beta):
            value = torch.as_tensor(stats[key], dtype=torch.float32, device=trainer.accelerator.device)
            metrics[name].append(gather(value.reshape(1)).mean().item())
