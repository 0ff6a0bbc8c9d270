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
