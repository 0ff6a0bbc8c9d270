"""Device guards, without a GPU: Triton kernels and CUDA graphs run on the CURRENT CUDA
device, so every launcher and the decode-step graph must make the tensors' device current
(a model on cuda:1 would otherwise be read by kernels running on cuda:0)."""
import ast
import contextlib
from pathlib import Path

import pytest
import torch
from torch._subclasses.fake_tensor import FakeTensorMode

from gro_fast.ops import _dispatch

OPS = Path(_dispatch.__file__).parent


class DeviceRecorder:
    """Stands in for ``torch.cuda.device``: tracks which device index is current."""

    def __init__(self):
        self.current, self.entered = 0, []

    @contextlib.contextmanager
    def __call__(self, device):
        previous, self.current = self.current, torch.device(device).index
        self.entered.append(self.current)
        try:
            yield
        finally:
            self.current = previous


@pytest.fixture
def recorder(monkeypatch):
    rec = DeviceRecorder()
    monkeypatch.setattr(torch.cuda, "device", rec)
    return rec


def test_launcher_runs_on_its_tensors_device(recorder):
    seen = []
    launcher = _dispatch.on_tensor_device(lambda x, *, scale: seen.append(recorder.current))
    with FakeTensorMode():
        on_cuda1 = torch.empty(4, device="cuda:1")
    launcher(on_cuda1, scale=2.0)
    launcher(torch.empty(4), scale=2.0)               # CPU tensors: no CUDA call at all
    launcher((on_cuda1, None), scale=2.0)             # a tuple of kernel arguments
    assert seen == [1, 0, 1] and recorder.entered == [1, 1]


def _launching_functions(path: Path):
    """(function, decorator names) of every function that launches a Triton kernel
    (``kernel[grid](...)``) in a module."""
    tree = ast.parse(path.read_text())
    for fn in (n for n in ast.walk(tree) if isinstance(n, ast.FunctionDef)):
        launches = any(isinstance(c, ast.Call) and isinstance(c.func, ast.Subscript) for c in ast.walk(fn))
        if launches and not any(isinstance(d, ast.Attribute) and d.attr == "jit" for d in fn.decorator_list):
            yield fn.name, {getattr(d, "id", getattr(d, "attr", None)) for d in fn.decorator_list}


def test_every_triton_launcher_is_guarded():
    modules = sorted(OPS.glob("*/triton.py"))
    assert len(modules) >= 4
    found = 0
    for path in modules:
        for name, decorators in _launching_functions(path):
            found += 1
            assert "on_tensor_device" in decorators, f"{path.parent.name}/triton.py: {name} launches unguarded"
    assert found >= 6


def test_decode_graph_is_captured_and_replayed_on_the_model_device(recorder, monkeypatch):
    from gro_fast.generation import graphs

    events = []

    class FakeStream:
        def __init__(self, device=None):
            pass

        def wait_stream(self, other):
            pass

    class FakeGraph:
        def replay(self):
            events.append(("replay", recorder.current))

    @contextlib.contextmanager
    def capture(graph):
        events.append(("capture", recorder.current))
        yield

    for name, value in dict(Stream=FakeStream, current_stream=lambda device=None: FakeStream(),
                            stream=lambda s: contextlib.nullcontext(), CUDAGraph=FakeGraph,
                            graph=capture).items():
        monkeypatch.setattr(torch.cuda, name, value)
    monkeypatch.setattr(graphs.torch, "zeros", lambda *a, **k: torch.empty(0))

    class Cache:
        def advance(self):
            events.append(("advance", recorder.current))

    step = graphs.GraphedDecodeStep(lambda cache, tokens, positions: tokens, Cache(), 4, torch.device("cuda", 1))
    step(torch.empty(0), torch.empty(0))
    assert events == [("capture", 1), ("replay", 1), ("advance", 0)]
