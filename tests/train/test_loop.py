"""The training step on the tiny model: padding, loss scaling, schedule, skipped updates,
GRO and GRPO steps end to end, bad data."""
import json
import math
import os
import warnings

import pytest
import torch

from gro_fast.data import DEFAULT_TEMPLATE
from gro_fast.train.config import load_config
from gro_fast.train.distributed import World
from gro_fast.train.sequences import Sequence, SequenceBatch, build_model_batch
from gro_fast.train.trainer import Trainer
from gro_fast.train.update import (accumulate_gradients, build_optimizer, build_scheduler,
                                   lr_lambda, policy_update)

from .helpers import fast_config, scripted_factory

TOY_REWARD = os.path.join(os.path.dirname(__file__), "toy_reward.py") + ":shape_reward"
CPU = torch.device("cpu")


@pytest.fixture(scope="module")
def tiny():
    from gro_fast.models import tiny_qwen2_5_vl
    from gro_fast.data import SyntheticGroundingTask, build_messages
    from gro_fast.train.sft import encode_prompt
    model, processor = tiny_qwen2_5_vl(seed=0)
    samples = SyntheticGroundingTask(seed=0, image_size=56, split="train", difficulty="easy",
                                     length=3)
    prompts = [encode_prompt(processor, build_messages(s, "Find {query}.")) for s in samples]
    return model, processor, prompts


def _batch(model, processor, prompts, lengths, advantages) -> SequenceBatch:
    g = torch.Generator().manual_seed(0)
    seqs = [Sequence(prefix_ids=prompts[i % len(prompts)][0],
                     completion_ids=torch.randint(0, 1000, (n,), generator=g).tolist(),
                     vision=prompts[i % len(prompts)][1], group=i % len(prompts))
            for i, n in enumerate(lengths)]
    return SequenceBatch(seqs, pad_id=processor.tokenizer.pad_token_id,
                         image_token_id=model.config.image_token_id,
                         advantages=torch.tensor(advantages, dtype=torch.float32))


def test_completions_line_up_after_left_padded_prefixes(tiny):
    model, processor, prompts = tiny
    batch = _batch(model, processor, prompts, [3, 1, 5], [1.0, -1.0, 0.5])
    mb = build_model_batch(batch, [0, 1, 2], CPU)
    P = mb.prefix_len
    for j, seq in enumerate(batch.sequences):
        n = len(seq.completion_ids)
        assert mb.inputs["input_ids"][j, P:P + n].tolist() == seq.completion_ids
        assert mb.inputs["input_ids"][j, P - len(seq.prefix_ids):P].tolist() == seq.prefix_ids
        assert mb.mask[j].sum() == n and mb.targets[j, :n].tolist() == seq.completion_ids
        assert mb.inputs["attention_mask"][j].sum() == len(seq.prefix_ids) + n
    image_tokens = (mb.inputs["input_ids"] == model.config.image_token_id).sum()
    assert image_tokens == mb.inputs["pixel_values"].shape[0] // 4  # 2 x 2 merge


@pytest.mark.parametrize("loss_agg", ["token-mean", "seq-mean-token-mean",
                                      "seq-mean-token-sum-norm"])
def test_micro_batches_give_the_full_batch_gradient(tiny, loss_agg, reference_kernels):
    model, processor, prompts = tiny
    batch = _batch(model, processor, prompts, [4, 1, 6, 3, 2], [1.0, -0.5, 0.3, -1.2, 0.8])
    algo = load_config(None, [f"algorithm.loss_agg={loss_agg}"]).algorithm
    grads = []
    for group in ([[0, 1, 2, 3, 4]], [[0, 1], [2, 3], [4]]):
        model.zero_grad(set_to_none=True)
        accumulate_gradients(model, batch, group, algo, temperature=1.0, fused_linear=False,
                             max_length=8, world=World(), device=CPU)
        grads.append(torch.cat([p.grad.flatten() for p in model.parameters()
                                if p.grad is not None]))
    model.zero_grad(set_to_none=True)
    assert grads[0].abs().max() > 0
    torch.testing.assert_close(grads[1], grads[0], rtol=1e-4, atol=1e-7)


def test_length_grouped_micro_batches():
    from gro_fast.train.sequences import micro_batches
    lengths = [200, 70, 210, 65, 80, 205]
    chunks = micro_batches(6, 3, lengths=lengths)
    assert chunks == [[3, 1, 4], [0, 5, 2]]  # short rows together, long rows together
    assert len(micro_batches(7, 3, lengths=[1] * 7)) == len(micro_batches(7, 3)) == 3
    assert micro_batches(5, 2) == [[0, 1], [2, 3], [4]]


def test_warm_start_step_is_the_same_in_length_grouped_micro_batches(tiny, reference_kernels):
    """Sorting rows by length before cutting micro-batches changes only the padding: the
    token-mean NLL and its gradient are those of the whole batch."""
    from gro_fast.train.sft import _nll_step
    model, processor, prompts = tiny
    batch = _batch(model, processor, prompts, [5, 2, 7, 3, 1], [0.0] * 5)
    text = processor.tokenizer("Check your objects again.", add_special_tokens=False)["input_ids"]
    prefix = prompts[batch.sequences[3].group][0]
    batch.sequences[3].prefix_ids = prefix[:-3] + text * 8 + prefix[-3:]  # revision-like length
    results = []
    for size in (5, 2):
        model.zero_grad(set_to_none=True)
        loss = _nll_step(model, batch, size, World(), CPU)
        results.append((loss, torch.cat([p.grad.flatten() for p in model.parameters()
                                         if p.grad is not None])))
    model.zero_grad(set_to_none=True)
    assert results[1][0] == pytest.approx(results[0][0], rel=1e-5)
    torch.testing.assert_close(results[1][1], results[0][1], rtol=1e-4, atol=1e-7)


def test_image_reliance_measures_what_the_image_changes(reference_kernels):
    """The answer NLL is the warm start's loss (teacher-forced, summed per answer); the
    gain is 0 exactly when every prompt has the same picture, and not 0 otherwise."""
    from dataclasses import replace
    from gro_fast.data import SyntheticGroundingTask
    from gro_fast.models import tiny_qwen2_5_vl
    from gro_fast.train.heldout import image_reliance
    from gro_fast.train.sft import _nll_step, answer_nll, sft_sequence
    model, processor = tiny_qwen2_5_vl(seed=1)
    samples = list(SyntheticGroundingTask(seed=3, image_size=56, split="heldout",
                                          difficulty="easy", length=4))
    per_answer = answer_nll(model, processor, samples, template="Find {query}.", device=CPU,
                            micro_batch_size=3)
    seqs = [sft_sequence(processor, s, "Find {query}.") for s in samples]
    batch = SequenceBatch(seqs, pad_id=processor.tokenizer.pad_token_id,
                          image_token_id=model.config.image_token_id)
    mean = _nll_step(model, batch, 4, World(), CPU)
    model.zero_grad(set_to_none=True)
    assert float(per_answer.sum()) / batch.num_completion_tokens() == pytest.approx(mean, rel=1e-5)
    common = dict(template="Find {query}.", world=World(), device=CPU)
    same = [replace(s, image=samples[0].image) for s in samples]
    assert image_reliance(model, processor, same, **common)["image_nll_gain"] == 0.0
    result = image_reliance(model, processor, samples, **common)
    assert result["answer_nll"] == pytest.approx(float(per_answer.mean()), rel=1e-5)
    assert math.isfinite(result["image_nll_gain"]) and result["image_nll_gain"] != 0.0
    with pytest.raises(ValueError, match="samples"):
        image_reliance(model, processor, samples[:1], **common)


def test_fused_linear_loss_matches_the_logits_loss(tiny, reference_kernels):
    from gro_fast.train.logprobs import sequence_logprobs
    model, processor, prompts = tiny
    batch = _batch(model, processor, prompts, [4, 2, 5], [0.7, -1.0, 0.2])
    algo = load_config(None, ["algorithm.beta=0.1"]).algorithm
    common = dict(micro_batch_size=2, temperature=0.9, device=CPU)
    old = sequence_logprobs(model, batch, **common)
    fused_old = sequence_logprobs(model, batch, fused_linear=True, **common)
    torch.testing.assert_close(fused_old, old, rtol=1e-5, atol=1e-5)
    batch.old_logprobs, batch.ref_logprobs = old, old - 0.05
    grads, losses = [], []
    for fused in (False, True):
        model.zero_grad(set_to_none=True)
        sums = accumulate_gradients(model, batch, [[0, 1], [2]], algo, temperature=0.9,
                                    fused_linear=fused, max_length=8, world=World(), device=CPU)
        losses.append(sums["loss"])
        grads.append(torch.cat([p.grad.flatten() for p in model.parameters()
                                if p.grad is not None]))
    model.zero_grad(set_to_none=True)
    assert losses[1] == pytest.approx(losses[0], rel=1e-5)
    torch.testing.assert_close(grads[1], grads[0], rtol=1e-4, atol=1e-7)


@pytest.mark.parametrize("loss_impl", ["logits", "fused_linear"])
def test_an_update_moves_answers_the_way_their_advantages_ask(tiny, loss_impl,
                                                              reference_kernels):
    """The policy-gradient check, end to end through ``policy_update``: one small step
    raises sum_i A_i log p_i of its own batch, lifting every positive-advantage answer and
    lowering every negative one (a sign or row misalignment anywhere from advantages to
    loss fails this)."""
    import copy

    from gro_fast.train.logprobs import sequence_logprobs
    base, processor, prompts = tiny
    model = copy.deepcopy(base)
    advantages = [1.5, -0.5, -1.0, 0.8, -0.8]
    batch = _batch(model, processor, prompts, [4, 6, 3, 5, 4], advantages)
    config = load_config(None, ["algorithm.name=grpo", "trainer.micro_batch_size=2",
                                f"trainer.loss_impl={loss_impl}"])
    common = dict(micro_batch_size=5, temperature=1.0, device=CPU)
    before = sequence_logprobs(model, batch, **common).sum(1)
    optimizer = build_optimizer(model, 1e-3, 0.0)
    scheduler = build_scheduler(optimizer, warmup=0, total=1, cosine=False, min_ratio=1.0)
    stats = policy_update(model, optimizer, scheduler, batch, config.algorithm, config.trainer,
                          max_grad_norm=1.0, temperature=1.0, max_length=8, world=World(),
                          device=CPU)
    assert stats["optimizer_steps"] == 1
    delta = sequence_logprobs(model, batch, **common).sum(1) - before
    a = torch.tensor(advantages)
    assert float((a * delta).sum()) > 0
    assert (torch.sign(delta) == torch.sign(a)).all()  # positive up, negative down


def test_warmup_then_cosine():
    values = [lr_lambda(s, warmup=2, total=10, cosine=True, min_ratio=0.1) for s in range(11)]
    assert values[0] < values[1] < values[2] == 1.0
    assert all(a >= b for a, b in zip(values[2:], values[3:]))
    assert values[10] == pytest.approx(0.1)
    assert lr_lambda(7, warmup=0, total=10, cosine=False, min_ratio=0.1) == 1.0


def test_non_finite_loss_skips_the_update(tiny, reference_kernels):
    model, processor, prompts = tiny
    before = {k: v.clone() for k, v in model.state_dict().items()}
    batch = _batch(model, processor, prompts, [3, 2], [float("nan"), 1.0])
    config = load_config(None, ["trainer.micro_batch_size=2"])
    optimizer = build_optimizer(model, 1e-2, 0.0)
    scheduler = build_scheduler(optimizer, warmup=0, total=4, cosine=True, min_ratio=0.1)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        stats = policy_update(model, optimizer, scheduler, batch, config.algorithm,
                              config.trainer, max_grad_norm=1.0, temperature=1.0, max_length=8, world=World(),
                              device=CPU)
    assert stats["skipped_updates"] == 1 and stats["optimizer_steps"] == 0
    assert any("non-finite" in str(w.message) for w in caught)
    assert scheduler.last_epoch == 0 and not optimizer.state
    for key, value in model.state_dict().items():
        assert torch.equal(value, before[key]), key


def _weights(path):
    from safetensors.torch import load_file
    return load_file(os.path.join(path, "model.safetensors"))


def _metrics(path):
    with open(os.path.join(path, "metrics.jsonl")) as f:
        return [json.loads(line) for line in f]


def test_gro_steps_change_weights_and_log_finite_metrics(tmp_path, reference_kernels):
    from transformers import AutoModelForImageTextToText
    from gro_fast.models import tiny_qwen2_5_vl
    config = fast_config(tmp_path, "algorithm.name=gro", "logging.plots=true",
                         "algorithm.train_initial=true")
    trainer = Trainer(config, engine_factory=scripted_factory({}))
    assert trainer.run() is not None
    rows = _metrics(tmp_path)
    assert [r["step"] for r in rows] == [1, 2]
    for row in rows:
        for key in ("reward_mean", "loss", "grad_norm", "kl", "clip_frac", "dphi_mean",
                    "all_fail_frac", "tokens_per_s", "rollout_s", "update_s"):
            assert row[key] is not None and math.isfinite(row[key]), key
        assert row["optimizer_steps"] == 1 and row["skipped_updates"] == 0
    assert any(r["dphi_mean"] > 0 for r in rows)
    start, _ = tiny_qwen2_5_vl(seed=0)
    final = AutoModelForImageTextToText.from_pretrained(str(tmp_path / "final"))
    changed = [k for k, v in final.state_dict().items()
               if not torch.equal(v, start.state_dict()[k])]
    assert changed and any("layers" in k for k in changed)
    assert os.path.isfile(tmp_path / "checkpoints" / "step-000002" / "trainer_state.pt")
    assert os.path.isfile(tmp_path / "plots" / "training.png")
    assert os.path.isfile(tmp_path / "config.yaml")
    from gro_fast.data import load_template
    assert load_template(str(tmp_path / "final")) == (config.data.template or DEFAULT_TEMPLATE)


def test_grpo_steps_with_the_real_engine(tmp_path, reference_kernels):
    config = fast_config(tmp_path, "algorithm.name=grpo", f"algorithm.reward={TOY_REWARD}",
                         "trainer.steps=1", "trainer.num_iterations=2", "algorithm.beta=0.05")
    from gro_fast.models import tiny_qwen2_5_vl
    start = tiny_qwen2_5_vl(seed=0)[0].state_dict()
    assert Trainer(config).run() is not None
    row = _metrics(tmp_path)[0]
    assert row["optimizer_steps"] == 2 and math.isfinite(row["loss"])
    assert row["reward_std"] > 0
    assert row["kl"] >= 0 and math.isfinite(row["kl"])
    final = _weights(str(tmp_path / "final"))
    shared = [k for k in final if k in start]
    assert "lm_head.weight" in shared
    assert any(not torch.equal(final[k], start[k]) for k in shared)


def test_gro_with_a_custom_reward_keeps_the_improvement_term(tmp_path, reference_kernels):
    """algorithm.reward with name: gro replaces R_format + R_acc; omega * dphi stays."""
    rows = {}
    for reward in ("vision_reasoner", TOY_REWARD):
        out = tmp_path / str(len(rows))
        trainer = Trainer(fast_config(out, "algorithm.name=gro", f"algorithm.reward={reward}",
                                      "trainer.steps=3"), engine_factory=scripted_factory({}))
        assert trainer.run() is not None
        rows[reward] = [r for r in _metrics(out) if "reward_mean" in r]
        assert trainer.last_scored.batch.improvement is not None  # post-scaling is on
    custom, default = rows[TOY_REWARD], rows["vision_reasoner"]
    # Same samples (same seed), the same improvement, a different base reward.
    assert [r["dphi_mean"] for r in custom] == [r["dphi_mean"] for r in default]
    assert max(r["dphi_mean"] for r in custom) > 0
    assert all(c["reward_mean"] != d["reward_mean"] for c, d in zip(custom, default))


def test_lora_policy_trains_and_saves_a_merged_model(tmp_path, reference_kernels):
    from transformers import AutoModelForImageTextToText
    from gro_fast.models import tiny_qwen2_5_vl
    config = fast_config(tmp_path, "algorithm.name=grpo", f"algorithm.reward={TOY_REWARD}",
                         "model.lora_rank=4", "trainer.steps=1", "optimizer.lr=1e-2",
                         "algorithm.beta=0.1")
    assert Trainer(config).run() is not None
    assert os.path.isfile(tmp_path / "checkpoints" / "step-000001" / "model" /
                          "adapter_model.safetensors")
    final = AutoModelForImageTextToText.from_pretrained(str(tmp_path / "final")).state_dict()
    start = tiny_qwen2_5_vl(seed=0)[0].state_dict()
    assert final.keys() == start.keys()
    changed = [k for k in final if not torch.equal(final[k], start[k])]
    assert changed and all("proj" in k for k in changed)


def test_sft_command_learns_and_saves(tmp_path, capsys, reference_kernels):
    from gro_fast.train.cli import sft_main
    args = [f"trainer.output_dir={tmp_path}", "model.path=tiny", "warm_start.steps=3", "warm_start.batch_size=4",
            "warm_start.lr=1e-2", "data.image_size=56", "evaluation.size=2",
            "evaluation.max_new_tokens=4", "logging.progress=false"]
    assert sft_main(args) == 0
    out = capsys.readouterr().out
    first, last = [float(line.rsplit(" ", 1)[1]) for line in out.splitlines()
                   if line.startswith("sft step 1/") or line.startswith("sft step 3/")]
    assert last < first
    assert "after_sft" in out
    assert os.path.isfile(tmp_path / "final" / "model.safetensors")


def test_warm_start_draws_the_scenes_of_its_own_difficulty(tmp_path, monkeypatch, reference_kernels):
    """``warm_start.difficulty=single``: the warm start sees one-shape scenes only, RL's
    data stays as configured; only the synthetic task has difficulties."""
    from gro_fast.train import sft
    from gro_fast.train.cli import sft_main
    from gro_fast.train.config import ConfigError
    drawn = []
    real = sft.sft_sequence
    monkeypatch.setattr(sft, "sft_sequence", lambda processor, sample, *a, **k: (
        drawn.append(sample), real(processor, sample, *a, **k))[1])
    args = [f"trainer.output_dir={tmp_path}", "model.path=tiny", "warm_start.steps=2",
            "warm_start.batch_size=6", "data.image_size=56", "data.difficulty=mixed",
            "evaluation.size=0", "logging.progress=false"]
    assert sft_main(args + ["warm_start.difficulty=single"]) == 0
    assert len(drawn) == 12 and all(s.count == 1 and s.query.count(" ") == 2 for s in drawn)
    drawn.clear()
    assert sft_main([a.replace(str(tmp_path), str(tmp_path / "mixed")) for a in args]) == 0
    assert any(s.count != 1 or s.query.count(" ") > 2 for s in drawn)
    with pytest.raises(ConfigError, match="warm_start.difficulty"):
        load_config(None, ["data.source=/data/x.jsonl", "warm_start.difficulty=single"])


def test_revision_turns_begin_after_the_plain_steps(tmp_path, monkeypatch, reference_kernels):
    """``plain_steps`` (``warm_start.revision_after`` x ``warm_start.steps``): the first N
    warm-start steps are plain prompt -> answer examples, revision turns (here every
    example after them) begin at step N + 1."""
    from gro_fast.data import SyntheticGroundingTask
    from gro_fast.models import tiny_qwen2_5_vl
    from gro_fast.train import sft
    from gro_fast.train.cli import sft_main
    from gro_fast.train.config import ConfigError
    model, processor = tiny_qwen2_5_vl(seed=0)
    kinds = []
    real = sft.sft_sequence
    monkeypatch.setattr(sft, "sft_sequence", lambda processor, sample, *a, **k: (
        kinds.append(k["revision"]), real(processor, sample, *a, **k))[1])
    warm = sft.WarmStart(model, processor, steps=4, lr=1e-3, batch_size=3, micro_batch_size=3,
                         template="Find {query}.", world=World(), device=CPU,
                         revision_fraction=1.0, plain_steps=2, log=lambda s: None)
    warm.run(iter(SyntheticGroundingTask(seed=0, image_size=56, length=12)))
    assert kinds == [False] * 6 + [True] * 6
    kinds.clear()  # the recipe key: the trainer turns the fraction into plain steps
    assert sft_main([f"trainer.output_dir={tmp_path}", "model.path=tiny", "warm_start.steps=4",
                     "warm_start.batch_size=2", "warm_start.revision_fraction=1",
                     "warm_start.revision_after=0.75", "data.image_size=56",
                     "evaluation.size=0", "logging.progress=false"]) == 0
    assert kinds == [False] * 6 + [True] * 2
    with pytest.raises(ConfigError, match="warm_start.revision_after"):
        load_config(None, ["warm_start.revision_after=1.5"])


def _first_attempt(messages):
    text = messages[1]["content"][0]["text"]
    return json.loads(text[text.index("<answer>") + 8:text.index("</answer>")])


def test_revision_keep_mixes_nearly_right_first_attempts_in(tmp_path, monkeypatch,
                                                            reference_kernels):
    """``warm_start.revision_keep``: that share of the revision turns starts from a nearly
    right first attempt (each box within 1/16 of the image, nothing extra), the rest from a
    flawed one; 0 draws nothing extra from the example RNG, so earlier runs' examples are
    unchanged; the trainer passes the recipe key through."""
    import random

    from gro_fast.data import SyntheticGroundingTask
    from gro_fast.train import sft
    from gro_fast.train.cli import sft_main
    from gro_fast.train.config import ConfigError
    samples = list(SyntheticGroundingTask(seed=0, image_size=112, length=200))

    def offsets(keep, seed=0):
        """(largest box-corner offset, extra objects) of each sample's first attempt."""
        rng, out = random.Random(seed), []
        for s in samples:
            attempt = _first_attempt(sft.revision_messages(s, "Find {query}.", None, rng, keep))
            off = max(abs(a - b) for o, t in zip(attempt, s.objects)
                      for a, b in zip(o["bbox_2d"], t["bbox_2d"]))
            out.append((off, len(attempt) - len(s.objects)))
        return out

    near = offsets(1.0)
    assert all(off <= 112 // 16 and extra == 0 for off, extra in near)
    flawed = offsets(0.0)
    assert max(off for off, _ in flawed) > 112 // 8 and any(extra > 0 for _, extra in flawed)
    mixed = offsets(0.5)
    share_near = sum(off <= 112 // 16 and extra == 0 for off, extra in mixed) / len(mixed)
    assert 0.4 < share_near < 0.75   # half kept, plus the flawed ones that land close by chance
    # keep 0: the same first attempts and the same RNG state as the plain flawed answers
    rng_a, rng_b = random.Random(3), random.Random(3)
    for s in samples[:20]:
        kept = _first_attempt(sft.revision_messages(s, "Find {query}.", None, rng_a, 0.0))
        assert kept == _first_attempt([None, {"content": [{"text": sft.flawed_answer(s, rng_b)}]}])
    assert rng_a.getstate() == rng_b.getstate()
    # the recipe key reaches the warm start's revision turns
    seen = []
    real = sft.sft_sequence
    monkeypatch.setattr(sft, "sft_sequence", lambda processor, sample, *a, **k: (
        seen.append((k["revision"], k["revision_keep"])), real(processor, sample, *a, **k))[1])
    assert sft_main([f"trainer.output_dir={tmp_path}", "model.path=tiny", "warm_start.steps=2",
                     "warm_start.batch_size=2", "warm_start.revision_fraction=1",
                     "warm_start.revision_after=0", "warm_start.revision_keep=0.25",
                     "data.image_size=56", "evaluation.size=0", "logging.progress=false"]) == 0
    assert seen == [(True, 0.25)] * 4
    with pytest.raises(ConfigError, match="warm_start.revision_keep"):
        load_config(None, ["warm_start.revision_keep=1.5"])


def test_bad_data_record_names_file_line_and_field(tmp_path, capsys):
    from gro_fast.train.cli import train_main
    from PIL import Image
    Image.new("RGB", (56, 56), (200, 10, 10)).save(tmp_path / "a.png")
    good = {"id": "a", "problem": "the red square", "image": "a.png", "img_width": 56,
            "img_height": 56, "solution": json.dumps([{"bbox_2d": [1, 1, 20, 20],
                                                       "point_2d": [10, 10]}])}
    bad = dict(good, id="b")
    del bad["solution"]
    data = tmp_path / "rows.jsonl"
    data.write_text(json.dumps(good) + "\n" + json.dumps(bad) + "\n")
    args = [f"trainer.output_dir={tmp_path / 'run'}", f"data.source={data}", "trainer.steps=0",
            "warm_start.steps=0", "evaluation.size=0", "logging.progress=false",
            "logging.plots=false", "logging.tensorboard=false"]
    assert train_main(args) == 2
    err = capsys.readouterr().err
    assert "rows.jsonl:2" in err and "solution" in err
    assert train_main(args + ["data.on_error=skip"]) == 0


def test_step_statistics_by_kind_of_scene():
    """A mixed task's step metrics split its groups by kind of scene; dataset rows (no
    kind) add nothing."""
    import json as _json
    from types import SimpleNamespace

    from gro_fast.algo import GROConfig, gro_rewards_and_advantages
    from gro_fast.train.scoring import _by_difficulty
    hit = {"bbox_2d": [0, 0, 99, 99], "point_2d": [50, 50]}
    miss = {"bbox_2d": [120, 120, 179, 179], "point_2d": [150, 150]}

    def answer(objs):
        return f"<think>look</think><answer>{_json.dumps(objs)}</answer>"
    samples = [[answer([miss])] * 2, [answer([hit]), answer([miss])], [answer([miss])] * 2]
    scores = gro_rewards_and_advantages([answer([miss])] * 3, samples, [[hit]] * 3,
                                        [(200, 200)] * 3)
    cfg = GROConfig()
    rollout = SimpleNamespace(prompts=[SimpleNamespace(difficulty=k)
                                       for k in ("hard", "easy", "hard")])
    got = _by_difficulty(scores, rollout, cfg)
    assert got["groups/hard"] == 2 and got["groups/easy"] == 1
    assert got["all_fail_frac/hard"] == 1.0 and got["all_fail_frac/easy"] == 0.0
    rows = SimpleNamespace(prompts=[SimpleNamespace(difficulty="")] * 3)
    assert _by_difficulty(scores, rows, cfg) == {}


def test_held_out_plots_span_the_whole_score_range(tmp_path, monkeypatch):
    """A held-out score that moves by a few hundredths is drawn on [0, 1], where it reads
    as noise, not on an axis zoomed onto it; training panels keep their own range."""
    import matplotlib.pyplot as plt
    from gro_fast.train import plots
    rows = [{"step": s, "heldout/acc_at_0.5": v, "reward_mean": r}
            for s, v, r in ((0, 0.277, 4.0), (20, 0.270, 4.2), (40, 0.273, 4.1))]
    (tmp_path / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    drawn, real = {}, plots._draw
    monkeypatch.setattr(plots, "_draw", lambda ax, rows, title, keys: (
        real(ax, rows, title, keys), drawn.__setitem__(title, ax.get_ylim())))
    try:
        paths = plots.plot_metrics(str(tmp_path))
    finally:
        plt.close("all")
    assert any(p.endswith("heldout_acc.png") for p in paths)
    low, high = drawn["held-out Acc@0.5 (greedy)"]
    assert low <= 0.0 and high >= 1.0
    low, high = drawn["reward"]
    assert high - low < 1.0
