"""Comparison helpers shared by the tests."""
from __future__ import annotations

import torch


def rel_error(actual: torch.Tensor, expected: torch.Tensor) -> float:
    """max |a - e| / max(|e|, tiny): the relative error of the whole tensor."""
    a, e = actual.detach().double(), expected.detach().double()
    if a.shape != e.shape:
        raise AssertionError(f"shape {tuple(a.shape)} != {tuple(e.shape)}")
    if torch.isnan(a).any() != torch.isnan(e).any():
        raise AssertionError("NaN pattern differs")
    finite = torch.isfinite(e)
    if not torch.equal(torch.isfinite(a), finite):
        raise AssertionError("non-finite pattern differs")
    if not finite.any():
        return 0.0
    diff = (a[finite] - e[finite]).abs().max().item()
    scale = e[finite].abs().max().item()
    return diff / max(scale, 1e-12)


def assert_rel_close(actual, expected, tol: float, name: str = "tensor") -> None:
    err = rel_error(actual, expected)
    assert err <= tol, f"{name}: relative error {err:.3e} > {tol:.1e}"


def compile_for_sm90(script: str) -> str:
    """Run ``script`` (which compiles Triton kernels for sm_90 with ``triton.compile`` and
    prints "compiled") in a child process without TRITON_INTERPRET: this catches what the
    interpreter accepts but the GPU compiler rejects, without a GPU. Returns the script's
    standard output. Skips when Triton's NVIDIA backend has no ptxas."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    import pytest

    nvidia = pytest.importorskip("triton.backends.nvidia")
    if not (Path(nvidia.__file__).parent / "bin" / "ptxas").exists():
        pytest.skip("Triton's NVIDIA backend has no ptxas here")
    env = {k: v for k, v in os.environ.items() if k != "TRITON_INTERPRET"}
    done = subprocess.run([sys.executable, "-c", script], cwd=Path(__file__).resolve().parents[1],
                          capture_output=True, text=True, timeout=300, env=env)
    assert done.returncode == 0 and "compiled" in done.stdout, done.stderr[-3000:]
    return done.stdout


def i32_products_of(ttir: str, names) -> list[str]:
    """The lines of Triton IR (TTIR) that multiply in 32 bits a kernel argument of
    ``names`` (directly or a splat / broadcast / expand_dims of it): an element offset
    ``index * stride`` computed there overflows past 2**31 elements."""
    import re

    derived = {f"%{name}" for name in names}
    found = []
    for line in ttir.splitlines():
        view = re.match(r"\s*(%[\w.]+) = tt\.(?:splat|broadcast|expand_dims) (%[\w.]+)", line)
        if view and view.group(2) in derived:
            derived.add(view.group(1))
        product = re.match(r"\s*%[\w.]+ = arith\.muli (%[\w.]+), (%[\w.]+) : (\S+)", line)
        if product and product.group(3).rstrip(">").endswith("i32") \
                and {product.group(1), product.group(2)} & derived:
            found.append(line.strip())
    return found
