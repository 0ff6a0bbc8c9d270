"""Exact resume after a SIGTERM, and the 2-process FSDP2 run against one process."""
import json
import os
import signal
import socket
import subprocess
import sys

import pytest
import torch

from gro_fast.train.trainer import Trainer

from .helpers import FAST

TOY_REWARD = os.path.join(os.path.dirname(__file__), "toy_reward.py") + ":shape_reward"
GRPO = ["algorithm.name=grpo", f"algorithm.reward={TOY_REWARD}", "rollout.prompts_per_call=1"]
KEYS = ("reward_mean", "loss", "grad_norm", "ratio_mean", "lr")


def _rows(path):
    with open(os.path.join(path, "metrics.jsonl")) as f:
        return [json.loads(line) for line in f]


def _final(path):
    from safetensors.torch import load_file
    return load_file(os.path.join(path, "final", "model.safetensors"))


def _config(out, *extra):
    from gro_fast.train.config import load_config
    return load_config(None, FAST + GRPO + [f"trainer.output_dir={out}"] + list(extra))


def test_sigterm_then_resume_equals_an_uninterrupted_run(tmp_path, reference_kernels,
                                                         monkeypatch):
    steps = ["trainer.steps=3", "trainer.num_iterations=2", "checkpoint.keep=1"]
    straight = tmp_path / "straight"
    Trainer(_config(straight, *steps)).run()

    interrupted = tmp_path / "interrupted"
    real_step = Trainer.train_step

    def step_then_signal(self, step):
        metrics = real_step(self, step)
        if step == 2:
            os.kill(os.getpid(), signal.SIGTERM)
        return metrics

    monkeypatch.setattr(Trainer, "train_step", step_then_signal)
    assert Trainer(_config(interrupted, *steps)).run() is not None
    monkeypatch.setattr(Trainer, "train_step", real_step)
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL
    assert not (interrupted / "final").exists()
    assert sorted(os.listdir(interrupted / "checkpoints")) == ["step-000002"]
    assert [r["step"] for r in _rows(interrupted)] == [1, 2]

    Trainer(_config(interrupted, *steps), resume="auto").run()
    a, b = _rows(straight), _rows(interrupted)
    assert [r["step"] for r in b] == [1, 2, 3]
    for ra, rb in zip(a, b):
        for key in KEYS:
            assert ra[key] == pytest.approx(rb[key], rel=1e-6, abs=1e-9), (ra["step"], key)
    wa, wb = _final(straight), _final(interrupted)
    assert wa.keys() == wb.keys()
    for key in wa:
        torch.testing.assert_close(wb[key], wa[key], rtol=1e-6, atol=1e-7)
    assert sorted(os.listdir(interrupted / "checkpoints")) == ["step-000003"]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.parametrize("loss_impl", ["logits", "fused_linear"])
def test_fsdp2_two_processes_match_one(tmp_path, reference_kernels, loss_impl):
    # One rollout, two optimizer steps on it: sampling is identical by construction
    # (one prompt per engine call, per-prompt seeds); the updates are what is compared.
    extra = ["trainer.steps=1", "trainer.num_iterations=2", "trainer.micro_batch_size=2"]
    single = tmp_path / "single"
    Trainer(_config(single, *extra)).run()

    sharded = tmp_path / "fsdp"
    env = {k: v for k, v in os.environ.items() if k != "TRITON_INTERPRET"}
    env.update(GRO_FAST_KERNELS="reference", OMP_NUM_THREADS="1")
    overrides = FAST + GRPO + extra + [f"trainer.output_dir={sharded}",
                                       f"trainer.loss_impl={loss_impl}"]
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2",
           f"--master_port={_free_port()}", "-m", "gro_fast.train", *overrides]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]

    a, b = _rows(single), _rows(sharded)
    assert [r["step"] for r in b] == [1]
    for ra, rb in zip(a, b):
        assert rb["optimizer_steps"] == 2
        for key in ("reward_mean", "loss", "grad_norm", "ratio_mean"):
            assert rb[key] == pytest.approx(ra[key], rel=1e-3, abs=1e-6), (ra["step"], key)
    from transformers import AutoModelForImageTextToText
    from gro_fast.models import tiny_qwen2_5_vl
    wa = AutoModelForImageTextToText.from_pretrained(str(single / "final")).state_dict()
    wb = AutoModelForImageTextToText.from_pretrained(str(sharded / "final")).state_dict()
    start = tiny_qwen2_5_vl(seed=0)[0].state_dict()
    assert wa.keys() == wb.keys() == start.keys()
    for key in wa:
        torch.testing.assert_close(wb[key], wa[key], rtol=1e-3, atol=1e-5)
    assert any(not torch.allclose(wb[k], start[k]) for k in wb)


def test_image_reliance_on_two_sharded_ranks(tmp_path, reference_kernels):
    """Ranks score unequal shares (2 and 1 of 3 prompts) of an FSDP2-sharded model without
    hanging, and the means are those of one process."""
    from gro_fast.data import SyntheticGroundingTask
    from gro_fast.models import tiny_qwen2_5_vl
    from gro_fast.train.distributed import World
    from gro_fast.train.heldout import image_reliance
    model, processor = tiny_qwen2_5_vl(seed=1)
    samples = list(SyntheticGroundingTask(seed=3, image_size=56, split="heldout",
                                          difficulty="easy", length=3))
    one = image_reliance(model, processor, samples, template="Find {query}.", world=World(),
                         device=torch.device("cpu"))
    out = tmp_path / "reliance.json"
    env = {k: v for k, v in os.environ.items() if k != "TRITON_INTERPRET"}
    env.update(GRO_FAST_KERNELS="reference", OMP_NUM_THREADS="1")
    worker = os.path.join(os.path.dirname(__file__), "reliance_worker.py")
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2",
           f"--master_port={_free_port()}", worker, str(out)]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    two = json.loads(out.read_text())
    for key in ("answer_nll", "answer_nll_other_image"):  # ~340 nats, summed in fp32
        assert two[key] == pytest.approx(one[key], rel=1e-5), key
    assert two["image_nll_gain"] == pytest.approx(one["image_nll_gain"], abs=1e-3)
