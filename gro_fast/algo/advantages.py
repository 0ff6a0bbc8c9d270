"""Group-relative advantages and GRO's shaped (post-scaled) advantages.

    A_i = (r_i - mean_G(r)) / (std + eps)      std: unbiased, as TRL and veRL compute it
    A_hat_i = (1 + dphi_i) * A_i               never changes the sign of A_i

``scale`` picks the std: "group" (per row of G), "batch" (all P x G rewards) or "none"
(A = r - mean, no division). A group of one sample, or a zero std with ``eps = 0``,
gives A = 0, never NaN; so does a group of equal rewards, exactly. Both functions accept numpy arrays and torch tensors and return
the input's kind; the math runs in float64 and comes back in the input's float dtype
(float32 for integer input). Rewards themselves are built in ``scoring.py``.
"""
from __future__ import annotations

import numpy as np
import torch

from gro_fast.ops.policy_loss.reference import shaped_advantage

from .config import ADVANTAGE_SCALES as SCALES


def _to_float64(x, name: str) -> tuple[torch.Tensor, object]:
    """(float64 tensor, a function turning a float64 tensor back into x's kind)."""
    if isinstance(x, torch.Tensor):
        dtype = x.dtype if x.is_floating_point() else torch.float32
        return x.detach().to(torch.float64), lambda t: t.to(dtype)
    try:
        array = np.asarray(x)
        t = torch.from_numpy(np.array(array, dtype=np.float64))
    except (TypeError, ValueError):
        raise TypeError(f"{name} must be a numpy array or torch tensor of numbers") from None
    dtype = array.dtype if np.issubdtype(array.dtype, np.floating) else np.float32
    return t, lambda t: t.numpy().astype(dtype, copy=False)


def group_advantages(rewards, eps: float = 1e-6, scale: str = "group"):
    """Advantages of rewards [P, G] (P prompts, G samples each); see the module docstring."""
    if scale not in SCALES:
        raise ValueError(f"scale must be one of {SCALES}, got {scale!r}")
    if not (isinstance(eps, (int, float)) and eps >= 0):
        raise ValueError(f"eps must be a number >= 0, got {eps!r}")
    r, back = _to_float64(rewards, "rewards")
    if r.ndim != 2:
        raise ValueError(f"rewards must be 2-D [P, G], got shape {tuple(r.shape)}")
    if not torch.isfinite(r).all():
        raise ValueError("rewards must be finite (found NaN or inf)")
    centred = r - r.mean(dim=1, keepdim=True)
    # A group of equal rewards gets exactly 0 (its float mean can miss by an ulp).
    flat = (r.amax(dim=1, keepdim=True) == r.amin(dim=1, keepdim=True))
    centred = torch.where(flat, torch.zeros_like(centred), centred)
    if scale == "none":
        return back(centred)
    if scale == "group":
        std = r.std(dim=1, keepdim=True) if r.shape[1] > 1 else torch.zeros_like(r[:, :1])
    else:
        std = r.std() if r.numel() > 1 else torch.zeros((), dtype=r.dtype, device=r.device)
    if not (torch.isfinite(centred).all() and torch.isfinite(std).all()):
        raise ValueError("rewards overflow: their mean or standard deviation is not finite "
                         f"in float64 (rewards between {float(r.min()):.3g} and "
                         f"{float(r.max()):.3g}); rescale them")
    denom = std + eps
    safe = torch.where(denom > 0, denom, torch.ones_like(denom))
    return back(torch.where(denom > 0, centred / safe, torch.zeros_like(centred)))


def shaped_advantages(advantages, dphi):
    """A_hat = (1 + dphi) * A; ``dphi`` (>= 0, finite) broadcasts against ``advantages``.
    Checks its inputs, then applies the loss's own ``shaped_advantage`` in float64."""
    a, back = _to_float64(advantages, "advantages")
    d, _ = _to_float64(dphi, "dphi")
    if not torch.isfinite(a).all():
        raise ValueError("advantages must be finite (found NaN or inf)")
    if not torch.isfinite(d).all() or (d < 0).any():
        raise ValueError("dphi must be finite and >= 0 (it is an improvement in [0, 1])")
    try:
        return back(shaped_advantage(a, d.to(a.device), dtype=torch.float64))
    except RuntimeError as exc:
        raise ValueError(f"dphi {tuple(d.shape)} does not broadcast against advantages "
                         f"{tuple(a.shape)}") from exc
