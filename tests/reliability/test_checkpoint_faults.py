"""Damaged checkpoints, failing disks and hostile checkpoint files.

Every file of the newest checkpoint is truncated, bit-flipped and deleted in turn:
``--resume auto`` must name the bad file and fall back to the previous checkpoint (and
continue exactly), or stop with a clear error when none is left. A checkpoint write that
fails with ENOSPC / EACCES (injected) must leave the previous checkpoint intact and
nothing half-written under a checkpoint name. State files load with
``weights_only=True``; files and folders are fsynced around the rename."""
import errno
import os
import pickle
import random
import shutil

import pytest
import torch

from gro_fast.train import faults
from gro_fast.train.checkpoint import (CheckpointError, CheckpointWriteError, checkpoint_root,
                                       list_checkpoints, resolve_resume, verify_checkpoint)
from gro_fast.train.config import load_config
from gro_fast.train.manifest import read_state, seal
from gro_fast.train.trainer import Trainer

from .runs import RECIPE, same_run


def _train(out, *extra, resume=None, lines=None):
    from gro_fast.ops._dispatch import force_backend
    faults.reset()
    config = load_config(None, RECIPE + [f"trainer.output_dir={out}"] + list(extra))
    sink = lines if lines is not None else []
    with force_backend("reference"):
        return Trainer(config, resume=resume,
                       print_fn=lambda *a, **k: sink.append(" ".join(map(str, a)))).run()


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    """A finished run: checkpoints step-000002 and step-000003 (keep_checkpoints=2)."""
    out = tmp_path_factory.mktemp("finished")
    _train(out)
    return out


def _copy(run, dst):
    shutil.copytree(run, dst)
    return dst


def _corrupt(path, mode, rng):
    data = open(path, "rb").read()
    if mode == "delete":
        os.remove(path)
        return
    if mode == "truncate":
        data = data[:rng.randrange(len(data))]
    else:
        pos = rng.randrange(len(data))
        data = data[:pos] + bytes([data[pos] ^ (1 << rng.randrange(8))]) + data[pos + 1:]
    with open(path, "wb") as f:
        f.write(data)


def test_every_corruption_of_the_newest_checkpoint_is_detected(finished, tmp_path):
    rng = random.Random(0)
    newest = os.path.join(checkpoint_root(str(finished)), "step-000003")
    files = sorted(os.path.relpath(os.path.join(d, n), newest)
                   for d, _, names in os.walk(newest) for n in names)
    assert "manifest.json" in files and "model/model.safetensors" in files
    tried = detected = 0
    for rel in files:
        for mode in ("truncate", "flip", "flip", "flip", "delete"):
            run = _copy(finished, tmp_path / f"c{tried}")
            _corrupt(os.path.join(run, "checkpoints", "step-000003", rel), mode, rng)
            said = []
            path = resolve_resume("auto", str(run), log=said.append)
            tried += 1
            name = "manifest.json" if mode == "delete" and rel == "manifest.json" else rel
            detected += path.endswith("step-000002") and any(name in s for s in said)
            assert path.endswith("step-000002"), (rel, mode, said)
            assert any(name in s for s in said), (rel, mode, said)
            shutil.rmtree(run)
    print(f"checkpoint corruptions: {tried} tried, {detected} detected")
    assert tried == detected == 5 * len(files)


def test_resume_falls_back_past_a_corrupt_checkpoint_and_continues_exactly(finished, tmp_path):
    run = _copy(finished, tmp_path / "run")
    _corrupt(os.path.join(run, "checkpoints", "step-000003", "model", "model.safetensors"),
             "flip", random.Random(1))
    lines = []
    _train(run, resume="auto", lines=lines)
    text = "\n".join(lines)
    assert "model/model.safetensors does not match its SHA-256" in text
    assert "falling back to" in text and "step-000002" in text
    assert not same_run(finished, run)


def test_no_usable_checkpoint_is_a_clear_error(finished, tmp_path, capsys):
    from gro_fast.train.cli import train_main
    run = _copy(finished, tmp_path / "run")
    for _, _, path in list_checkpoints(checkpoint_root(str(run))):
        _corrupt(os.path.join(path, "trainer_state.pt"), "truncate", random.Random(2))
    with pytest.raises(CheckpointError, match="no usable checkpoint.*trainer_state.pt"):
        resolve_resume("auto", str(run), log=lambda s: None)
    assert train_main(RECIPE + [f"trainer.output_dir={run}", "--resume"]) == 2
    err = capsys.readouterr().err
    assert "checkpoint error" in err and "step-000002" in err and "trainer_state.pt" in err
    with pytest.raises(CheckpointError, match="trainer_state.pt"):
        resolve_resume(os.path.join(checkpoint_root(str(run)), "step-000003"), str(run))


@pytest.mark.parametrize("fault", ["checkpoint.write:enospc:3", "checkpoint.model:eacces:2",
                                   "checkpoint.manifest:enospc:2", "checkpoint.rename:eacces:2"])
def test_a_failing_checkpoint_write_leaves_the_previous_one_intact(tmp_path, monkeypatch,
                                                                   fault):
    monkeypatch.setenv(faults.ENV, fault)
    with pytest.raises(CheckpointWriteError, match="sft-000002 could not be written.*"
                       "(No space left|Permission denied).*sft-000001"):
        _train(tmp_path)
    root = checkpoint_root(str(tmp_path))
    assert sorted(os.listdir(root)) == ["sft-000001"]      # no temporary folder left
    verify_checkpoint(os.path.join(root, "sft-000001"))
    monkeypatch.delenv(faults.ENV)
    assert resolve_resume("auto", str(tmp_path)).endswith("sft-000001")


def test_disk_full_in_the_middle_of_the_weights_file(tmp_path, monkeypatch, capsys):
    """A failing writer under ``save_pretrained``: half of model.safetensors, then ENOSPC."""
    import transformers.modeling_utils as mu
    from gro_fast.train.cli import train_main
    real = mu.safe_save_file
    calls = []

    def failing(tensors, filename, metadata=None):
        calls.append(filename)
        if len(calls) == 2:
            real(tensors, filename, metadata=metadata)
            with open(filename, "r+b") as f:
                f.truncate(os.path.getsize(filename) // 2)
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), filename)
        return real(tensors, filename, metadata=metadata)

    monkeypatch.setattr(mu, "safe_save_file", failing)
    monkeypatch.setenv("GRO_FAST_KERNELS", "reference")
    assert train_main(RECIPE + [f"trainer.output_dir={tmp_path}"]) == 3
    err = capsys.readouterr().err
    assert "No space left on device" in err and "sft-000001" in err
    root = checkpoint_root(str(tmp_path))
    assert sorted(os.listdir(root)) == ["sft-000001"]
    verify_checkpoint(os.path.join(root, "sft-000001"))


class _Exploit:
    def __reduce__(self):
        return (os.system, ("touch EXPLOITED",))


def test_state_files_cannot_run_code(finished, tmp_path, monkeypatch):
    from gro_fast.models import tiny_qwen2_5_vl
    from gro_fast.train.checkpoint import load_checkpoint
    from gro_fast.train.distributed import World
    from gro_fast.train.update import build_optimizer, build_scheduler
    monkeypatch.chdir(tmp_path)
    run = _copy(finished, tmp_path / "run")
    ckpt = os.path.join(run, "checkpoints", "step-000003")
    with open(os.path.join(ckpt, "trainer_state.pt"), "wb") as f:
        pickle.dump({"optimizer": _Exploit()}, f)
    os.remove(os.path.join(ckpt, "manifest.json"))
    seal(ckpt, {"phase": "rl", "step": 3, "world_size": 1})   # checksums cannot help here
    with pytest.raises(CheckpointError, match="cannot be read as a state file"):
        read_state(os.path.join(ckpt, "trainer_state.pt"))
    model, _ = tiny_qwen2_5_vl(seed=0)
    optimizer = build_optimizer(model, 1e-3, 0.0)
    scheduler = build_scheduler(optimizer, warmup=0, total=3, cosine=True, min_ratio=0.1)
    with pytest.raises(CheckpointError):
        load_checkpoint(ckpt, model, optimizer, scheduler, World())
    assert not os.path.exists(tmp_path / "EXPLOITED")


def test_files_and_folders_are_fsynced_around_the_rename(tmp_path, monkeypatch):
    events = []
    real_fsync, real_replace = os.fsync, os.replace

    def fsync(fd):
        events.append(("fsync", os.readlink(f"/proc/self/fd/{fd}")))
        return real_fsync(fd)

    def replace(src, dst):
        events.append(("replace", str(dst)))
        return real_replace(src, dst)

    monkeypatch.setattr(os, "fsync", fsync)
    monkeypatch.setattr(os, "replace", replace)
    _train(tmp_path, "warm_start.steps=1", "trainer.steps=0")
    root = checkpoint_root(str(tmp_path))
    final = os.path.join(root, "sft-000001")
    renamed = events.index(("replace", final))
    before = {p.replace("/.tmp-sft-000001", "/sft-000001") for k, p in events[:renamed]}
    files = {os.path.join(d, n) for d, _, names in os.walk(final) for n in names}
    folders = {d for d, _, _ in os.walk(final)}
    assert files | folders <= before                      # every file and folder, then
    assert ("fsync", root) in events[renamed + 1:]          # the rename itself


def _signal_during_warm_start(monkeypatch, signum):
    real = Trainer._after_sft_step

    def after(self, warm):
        if warm.step == 1:
            os.kill(os.getpid(), signum)
        return real(self, warm)

    monkeypatch.setattr(Trainer, "_after_sft_step", after)
    return lambda: monkeypatch.setattr(Trainer, "_after_sft_step", real)


def test_ctrl_c_during_the_warm_start_checkpoints_and_resumes_exactly(finished, tmp_path,
                                                                     monkeypatch):
    import signal
    found = signal.getsignal(signal.SIGINT)  # Python's own, or SIG_IGN in a background job
    restore = _signal_during_warm_start(monkeypatch, signal.SIGINT)
    assert _train(tmp_path) is not None
    restore()
    assert signal.getsignal(signal.SIGINT) is found  # the run gives back what it found
    assert sorted(os.listdir(checkpoint_root(str(tmp_path)))) == ["sft-000001"]
    assert not (tmp_path / "final").exists() and not (tmp_path / "metrics.jsonl").exists()
    lines = []
    _train(tmp_path, resume="auto", lines=lines)
    assert any("resumed the warm start" in line and "sft-000001" in line for line in lines)
    assert not same_run(finished, tmp_path)


def test_sigterm_during_gro_fast_sft_then_resume(tmp_path, monkeypatch):
    import signal
    from safetensors.torch import load_file
    from gro_fast.train.cli import sft_main
    monkeypatch.setenv("GRO_FAST_KERNELS", "reference")
    args = RECIPE + ["warm_start.steps=3"]
    assert sft_main(args + [f"trainer.output_dir={tmp_path / 'straight'}"]) == 0
    restore = _signal_during_warm_start(monkeypatch, signal.SIGTERM)
    assert sft_main(args + [f"trainer.output_dir={tmp_path / 'cut'}"]) == 0
    restore()
    assert not (tmp_path / "cut" / "final").exists()
    assert sft_main(args + [f"trainer.output_dir={tmp_path / 'cut'}", "--resume"]) == 0
    a = load_file(tmp_path / "straight" / "final" / "model.safetensors")
    b = load_file(tmp_path / "cut" / "final" / "model.safetensors")
    for key in a:
        assert torch.equal(a[key], b[key]), key


def test_a_death_while_pruning_leaves_no_half_deleted_checkpoint(finished, tmp_path,
                                                                 monkeypatch):
    """Found by the kill trials: pruning deleted the oldest checkpoint in place, so a kill
    in the middle left a half-deleted folder under a checkpoint name."""
    from gro_fast.train import checkpoint
    run = _copy(finished, tmp_path / "run")
    root = checkpoint_root(str(run))

    def dies_half_way(path, ignore_errors=False):
        if not os.path.exists(path):
            return
        files = sorted(os.path.join(d, n) for d, _, names in os.walk(path) for n in names)
        if files:
            os.remove(files[0])
        raise SystemExit("killed while deleting")

    monkeypatch.setattr(checkpoint.shutil, "rmtree", dies_half_way)
    with pytest.raises(SystemExit):
        checkpoint.prune_checkpoints(root, keep=1)
    for _, _, path in list_checkpoints(root):
        verify_checkpoint(path)
    assert [os.path.basename(p) for _, _, p in list_checkpoints(root)] == ["step-000003"]
