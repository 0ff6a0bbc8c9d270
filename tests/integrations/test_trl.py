"""GROTrainer on TRL's real GRPOTrainer: two steps with the tiny Qwen2.5-VL on the synthetic
task; the advantages TRL trains on are gro_rewards_and_advantages' shaped advantages; TRL's
reward functions agree with gro_fast's scorer; the gro_fast loss equals TRL's loss."""
import importlib.metadata
import os

import pytest
import torch
from packaging.specifiers import SpecifierSet

from gro_fast.algo import GROConfig, gro_rewards_and_advantages
from gro_fast.integrations import trl as gtrl

from .helpers import ScriptedSampler, image_key

# Decided from the installed metadata: importing TRL (seconds) waits for the tests.
try:
    _TRL_VERSION = importlib.metadata.version("trl")
except importlib.metadata.PackageNotFoundError:
    pytest.skip('TRL is not installed (pip install "gro_fast[trl]")', allow_module_level=True)
if not SpecifierSet(gtrl.TRL_VERSIONS).contains(_TRL_VERSION, prereleases=True):
    pytest.skip(f"TRL {_TRL_VERSION} is outside the tested range {gtrl.TRL_VERSIONS}",
                allow_module_level=True)

G, PROMPTS, TEMPLATE = 4, 3, "Find {query}."


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """Two GROTrainer steps; what TRL generated, scored and trained on, per step."""
    os.environ.setdefault("TRL_EXPERIMENTAL_SILENCE", "1")
    from trl import GRPOConfig
    from gro_fast.data import SyntheticGroundingTask, format_prompt
    from gro_fast.integrations.trl import GROTrainer, grounding_rows
    from gro_fast.models import tiny_qwen2_5_vl
    from gro_fast.ops._dispatch import force_backend

    task = SyntheticGroundingTask(seed=0, image_size=56, split="train", difficulty="mixed",
                                  length=2 * PROMPTS)
    samples = [task[i] for i in range(len(task))]
    registry = {(format_prompt(s, TEMPLATE), image_key(s.image)): s for s in samples}
    ScriptedSampler.registry = {k: s.objects for k, s in registry.items()}
    model, processor = tiny_qwen2_5_vl(seed=0)
    steps = []

    class Recording(GROTrainer):
        def _generate_and_score_completions(self, inputs):
            output = super()._generate_and_score_completions(inputs)
            steps.append({"rows": [dict(r) for r in inputs], "rounds": self.last_gro_rounds,
                          "advantages": output["advantages"].clone(),
                          "tool_mask": output.get("tool_mask")})
            return output

        def _compute_loss(self, model, inputs):
            steps[-1]["loss_inputs"] = {k: v.detach().clone() if torch.is_tensor(v) else v
                                        for k, v in inputs.items()}
            return super()._compute_loss(model, inputs)

    args = GRPOConfig(output_dir=str(tmp_path_factory.mktemp("trl")), num_generations=G,
                      per_device_train_batch_size=G * PROMPTS, max_completion_length=48,
                      max_steps=2, learning_rate=1e-3, logging_steps=1, report_to="none",
                      use_cpu=True, save_strategy="no", seed=0, bf16=False)
    trainer = Recording(model, args=args, train_dataset=grounding_rows(samples, TEMPLATE),
                        processing_class=processor, engine_factory=ScriptedSampler)
    with force_backend("reference"):
        trainer.train()
    return trainer, steps, registry


def _expected(step, registry, config=None):
    """gro_rewards_and_advantages on the step's sampled texts, ground truth from the task."""
    rounds = step["rounds"]
    truth = [registry[(r["prompt"][0]["content"], image_key(r["image"]))]
             for r in step["rows"][::G]]
    return gro_rewards_and_advantages(
        [r.initial.text for r in rounds], [[s.text for s in r.samples] for r in rounds],
        [s.objects for s in truth], [s.input_size for s in truth], config or GROConfig(),
        fell_back=[r.fell_back for r in rounds])


def test_trl_trains_on_gro_shaped_advantages(run):
    trainer, steps, registry = run
    assert len(steps) == 2 and trainer.state.global_step == 2
    fell_back = improved = 0
    for step in steps:
        scores = _expected(step, registry)
        torch.testing.assert_close(step["advantages"], scores.shaped_advantages.reshape(-1),
                                   rtol=0, atol=0)
        # TRL shuffles the generation batch before the loss: the same values, permuted.
        trained = step["loss_inputs"]["advantages"]
        torch.testing.assert_close(trained.sort().values, step["advantages"].sort().values)
        fell_back += int(scores.fell_back.sum())
        improved += int((scores.improvement > 0).sum())
        assert not torch.equal(scores.shaped_advantages, scores.advantages)
    assert fell_back > 0 and improved > 0  # both branches of GRO were exercised


def test_initial_turn_is_context_not_loss(run):
    trainer, steps, _ = run
    step = steps[0]
    mask = step["tool_mask"]
    for g, round_ in enumerate(step["rounds"]):
        turn = len(round_.prompt_token_ids) - round_.prompt_length
        assert (turn == 0) == round_.fell_back
        for i, sample in enumerate(round_.samples):
            row = mask[g * G + i]
            assert row[:turn].sum() == 0 and row[turn:turn + sample.length].all()
    logged = trainer.state.log_history[0]
    assert 0 < logged["gro/fallback_fraction"] < 1 and "rewards/accuracy_reward/mean" in logged


def test_reward_functions_agree_with_the_scorer(run):
    from gro_fast import rewards as R
    _, steps, registry = run
    step = steps[1]
    rows = step["rows"]
    columns = {k: [r[k] for r in rows] for k in rows[0] if k != "prompt"}
    completions = [[{"role": "assistant", "content": "ignored: the revision is scored"}]] * len(rows)
    terms = {fn.__name__: fn(completions, **columns) for fn in gtrl.VISION_REASONER_REWARDS}
    total = gtrl.vision_reasoner_reward(completions, **columns)
    scores = _expected(step, registry)
    base = scores.rewards.reshape(-1) - 5.0 * scores.improvement.reshape(-1)
    torch.testing.assert_close(torch.tensor(total, dtype=torch.float64), base.double(), rtol=0, atol=1e-5)
    torch.testing.assert_close(torch.tensor(terms["accuracy_reward"], dtype=torch.float64),
                               scores.accuracy.reshape(-1).double(), rtol=0, atol=1e-6)
    for text, row, fmt, acc in zip(columns["gro_completion"], rows,
                                   terms["think_format_reward"], terms["accuracy_reward"]):
        gt = registry[(row["prompt"][0]["content"], image_key(row["image"]))].objects
        assert fmt == R.format_reward(text) and acc == pytest.approx(R.accuracy_reward(text, gt))
    assert len(set(total)) > 2


@pytest.mark.parametrize("impl,loss_type,beta", [
    ("gro_fast", "dapo", 0.0), ("gro_fast", "grpo", 0.04), ("gro_fast", "bnpo", 0.0),
    ("gro_fast", "dr_grpo", 0.04), ("gro_fast_fused", "grpo", 0.04),
    ("gro_fast_fused", "dapo", 0.0)])
def test_gro_fast_loss_equals_trls_loss(run, loss_type, beta, impl, monkeypatch, reference_kernels):
    from trl import GRPOTrainer
    from gro_fast.integrations.trl.loss import gro_fast_policy_loss, unsupported_options
    trainer, steps, _ = run
    inputs = dict(steps[0]["loss_inputs"])
    g = torch.Generator().manual_seed(1)
    shape = inputs["completion_ids"].shape
    # Off-policy old log-probs (so ratios clip) and a reference policy for the KL term.
    inputs["old_per_token_logps"] = -7.0 + 0.5 * torch.randn(shape, generator=g)
    inputs["ref_per_token_logps"] = -7.0 + 0.5 * torch.randn(shape, generator=g)
    monkeypatch.setattr(trainer, "loss_type", loss_type)
    monkeypatch.setattr(trainer, "beta", beta)
    monkeypatch.setattr(trainer, "loss_impl", impl)
    monkeypatch.setattr(trainer.args, "use_bias_correction_kl", False)
    assert unsupported_options(trainer) == []
    model = trainer.model.train()
    losses, grads = [], []
    for compute in (lambda: GRPOTrainer._compute_loss(trainer, model, inputs),
                    lambda: gro_fast_policy_loss(trainer, model, inputs)):
        model.zero_grad()
        loss = compute()
        loss.backward()
        losses.append(loss.detach())
        grads.append(model.lm_head.weight.grad.clone())
    torch.testing.assert_close(losses[1], losses[0], rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(grads[1], grads[0], rtol=1e-4, atol=1e-6)
    assert grads[0].abs().sum() > 0
    model.zero_grad()


def test_gro_fast_loss_refuses_what_it_does_not_reproduce(run, monkeypatch):
    from gro_fast.integrations.trl.loss import unsupported_options
    trainer, _, _ = run
    monkeypatch.setattr(trainer, "beta", 0.04)
    monkeypatch.setattr(trainer.args, "use_bias_correction_kl", True)
    monkeypatch.setattr(trainer, "loss_type", "cispo")
    bad = " ".join(unsupported_options(trainer))
    assert "use_bias_correction_kl" in bad and "loss_type='cispo'" in bad


def test_unsupported_trl_version_is_refused(monkeypatch):
    import trl
    monkeypatch.setattr(trl, "__version__", "1.17.0")
    with pytest.raises(ImportError, match=r"tested with trl>=1.16,<1.17.*found trl 1.17.0"):
        gtrl.require_trl()


def test_prompts_must_come_in_runs_of_g():
    from gro_fast.integrations.trl.rollout import prompt_groups
    a = [{"role": "user", "content": "find a"}]
    b = [{"role": "user", "content": "find b"}]
    assert prompt_groups([a, a, b, b], 2) == [a, b]
    with pytest.raises(ValueError, match="not a multiple of num_generations=2"):
        prompt_groups([a, a, b], 2)
    with pytest.raises(ValueError, match="not one prompt repeated"):
        prompt_groups([a, b, b, b], 2)
    with pytest.raises(ValueError, match="conversational prompts"):
        prompt_groups(["find a", "find a"], 2)


def test_trl_recipe_runs_one_step(tmp_path, reference_kernels):
    """configs/trl/gro_visionreasoner.py with its defaults (tiny model, synthetic task) and
    the real rollout engine."""
    import importlib.util
    path = os.path.join(os.path.dirname(__file__), "..", "..", "configs", "trl",
                        "gro_visionreasoner.py")
    spec = importlib.util.spec_from_file_location("gro_trl_recipe", path)
    recipe = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(recipe)
    trainer = recipe.build_trainer(["--steps", "1", "--output-dir", str(tmp_path),
                                    "--max-completion-length", "16"])
    trainer.train()
    assert trainer.state.global_step == 1 and trainer.loss_impl == "gro_fast_fused"
    assert len(trainer.last_gro_rounds) == 2 and "gro/fallback_fraction" in trainer.state.log_history[0]
