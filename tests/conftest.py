"""Test-wide set-up.

Without a GPU, Triton kernels are exercised through its interpreter: TRITON_INTERPRET=1
must be set before Triton is imported, so it is set here, first. Library code on CPU
tensors then routes Triton-capable ops to the interpreter; tests that want the fast
reference path instead (end-to-end training, generation) use the ``reference_kernels``
fixture.
"""
import os

try:
    import torch as _torch
    _HAS_CUDA = _torch.cuda.is_available()
except Exception:  # pragma: no cover
    _HAS_CUDA = False
if not _HAS_CUDA:
    os.environ.setdefault("TRITON_INTERPRET", "1")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import pytest  # noqa: E402
import torch  # noqa: E402

torch.set_num_threads(max(1, min(2, os.cpu_count() or 1)))


def pytest_collection_modifyitems(config, items):
    """``gpu`` tests need CUDA; ``slow`` tests (long trial counts, run by hand) run only
    when ``-m`` selects them, e.g. ``scripts/test.sh -m slow tests/reliability -s``."""
    skip_gpu = pytest.mark.skip(reason="needs a CUDA device")
    skip_slow = pytest.mark.skip(reason="slow: run by hand with -m slow")
    run_slow = "slow" in (config.getoption("markexpr", "") or "")
    for item in items:
        if "gpu" in item.keywords and not torch.cuda.is_available():
            item.add_marker(skip_gpu)
        if "slow" in item.keywords and not run_slow:
            item.add_marker(skip_slow)


@pytest.fixture
def reference_kernels():
    """Run the block with the fp32 torch reference ops (no Triton interpreter)."""
    from gro_fast.ops._dispatch import force_backend
    with force_backend("reference"):
        yield


@pytest.fixture
def one_cpu_thread():
    """Torch on one CPU thread for the block: the tiny models' ops are too small for
    intra-op threads, and on a shared, loaded CPU their spin-waits make steps many times
    slower. Test folders of tiny-model tests use it for every test."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture
def nan_poison(monkeypatch):
    """Fresh float allocations (torch.empty / empty_like) are filled with NaN, so a
    kernel that forgets to write part of its output fails the comparison."""
    real_empty, real_empty_like = torch.empty, torch.empty_like

    def poison(t):
        if t.is_floating_point():
            t.fill_(float("nan"))
        return t

    monkeypatch.setattr(torch, "empty", lambda *a, **k: poison(real_empty(*a, **k)))
    monkeypatch.setattr(torch, "empty_like", lambda *a, **k: poison(real_empty_like(*a, **k)))
    yield


def pytest_report_header(config):
    return f"TRITON_INTERPRET={os.environ.get('TRITON_INTERPRET')} cuda={torch.cuda.is_available()}"
