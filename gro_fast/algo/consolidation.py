"""GRO's consolidation: the alignment cost Phi of an answer and the improvement dphi of a
revision over the initial response.

Pair cost of prediction m and ground-truth object n (GRO, arXiv 2605.15951):
    e_mn = 1/3 * [(1 - IoU(b_m, b_n)) + L1(b_m, b_n) + L1(p_m, p_n)]
IoU is the inclusive-pixel box IoU of the accuracy reward; each L1 is the mean absolute
coordinate difference with x divided by the image width and y by its height, the term
clamped at 1. A prediction missing its box pays 1 for both box terms, one missing its
point pays 1 for the point term. Hungarian matching on e; each ground-truth object left
unmatched costs 1, each extra prediction costs 1 when ``penalize_extra`` (*ours*, default)
and is ignored otherwise; Phi = total / |A| with |A| = max(M, N) (N without the extra
penalty), in [0, 1]. An unparseable answer has Phi = 1. No ground truth (N = 0): Phi = 0
for an empty answer, 1 for a non-empty one when extras are penalised (0 otherwise).

    dphi = max(0, (Phi(s1) - Phi(s2)) / Phi(s1)),  0 when Phi(s1) = 0.

Rewards and advantages are composed in ``scoring.py``; this module only measures.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np
import torch

from gro_fast.rewards.matching import PairGeometry, matched_costs, pair_geometry, stack_objects
from gro_fast.rewards.parsing import (ParsedObject, ParsedResponse, parse_objects,
                                      parse_response, read_objects)


def alignment_pair_costs(geom: PairGeometry) -> np.ndarray:
    """Flat [K] pair costs e_mn in [0, 1] (``geom`` built with image sizes)."""
    if geom.box_l1_norm is None or geom.point_l1_norm is None:
        raise ValueError("alignment_pair_costs needs geometry computed with image_sizes")
    iou_term = np.where(geom.pred_box_valid, 1.0 - geom.iou, 1.0)
    box_term = np.where(geom.pred_box_valid, geom.box_l1_norm, 1.0)
    point_term = np.where(geom.pred_point_valid, geom.point_l1_norm, 1.0)
    return np.clip((iou_term + box_term + point_term) / 3.0, 0.0, 1.0)


def phi_from_matching(matched: np.ndarray, rows: np.ndarray, parsed: np.ndarray,
                      penalize_extra: bool = True) -> np.ndarray:
    """[B] Phi from each row's matched pair cost, (M, N) and parse flag (module docstring)."""
    m, n = rows[:, 0], rows[:, 1]
    pairs = np.minimum(m, n)
    total = matched + (n - pairs) + ((m - pairs) if penalize_extra else 0)
    denom = np.maximum(np.maximum(m, n) if penalize_extra else n, 1)
    no_gt = np.where((m > 0) & penalize_extra, 1.0, 0.0)
    phi = np.where(n == 0, no_gt, np.clip(total / denom, 0.0, 1.0))
    return np.where(parsed, phi, 1.0)


def as_prediction(pred) -> ParsedResponse:
    """A prediction as ``ParsedResponse``: response text (or bytes/None), a parsed
    response, or objects (solution-format dicts or ``ParsedObject``, read leniently)."""
    if isinstance(pred, ParsedResponse):
        return pred
    if pred is None or isinstance(pred, (str, bytes, bytearray)):
        return parse_response(pred)
    if isinstance(pred, (list, tuple)):
        items = [{"bbox_2d": list(o.bbox) if o.bbox is not None else None,
                  "point_2d": list(o.point) if o.point is not None else None}
                 if isinstance(o, ParsedObject) else o for o in pred]
        coords, parsed, num_items, error = read_objects(list(items))
        return ParsedResponse(coords=coords, parsed=parsed, num_items=num_items, error=error)
    raise TypeError(f"pred_objects must be a response text, ParsedResponse or a list of "
                    f"objects, got {type(pred).__name__}")


def image_size_array(image_sizes: Sequence, name: str = "image_sizes") -> np.ndarray:
    """[(width, height), ...] -> float64 [B, 2], checked positive and finite."""
    try:
        sizes = np.array([[float(w), float(h)] for w, h in image_sizes], dtype=np.float64)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a sequence of (width, height) pairs") from None
    sizes = sizes.reshape(-1, 2)
    if not (np.isfinite(sizes).all() and (sizes > 0).all()):
        raise ValueError(f"{name} must be positive and finite, got {image_sizes!r}")
    return sizes


def alignment_costs(preds: Sequence, gt_objects: Sequence, image_sizes: Sequence, *,
                    penalize_extra: bool = True) -> np.ndarray:
    """Phi of B predictions against their ground truths and image sizes: float64 [B]."""
    if not len(preds) == len(gt_objects) == len(image_sizes):
        raise ValueError(f"preds ({len(preds)}), gt_objects ({len(gt_objects)}) and "
                         f"image_sizes ({len(image_sizes)}) must have the same length")
    parsed = [as_prediction(p) for p in preds]
    gts = [parse_objects(g, name=f"gt_objects[{i}]") for i, g in enumerate(gt_objects)]
    geom = pair_geometry(stack_objects(parsed), stack_objects(gts),
                         image_sizes=image_size_array(image_sizes))
    parsed_ok = np.array([p.parsed for p in parsed], dtype=bool)
    matched = matched_costs(alignment_pair_costs(geom), geom, parsed_ok)
    return phi_from_matching(matched, geom.rows, parsed_ok, penalize_extra)


def alignment_cost(pred_objects, gt_objects, image_size, *, penalize_extra: bool = True) -> float:
    """Phi in [0, 1] of one prediction; ``image_size`` = (width, height) of the model input."""
    return float(alignment_costs([pred_objects], [gt_objects], [image_size],
                                 penalize_extra=penalize_extra)[0])


def _as_float_tensor(x, name: str) -> torch.Tensor:
    t = x.detach().to(torch.float64) if isinstance(x, torch.Tensor) else \
        torch.as_tensor(np.asarray(x, dtype=np.float64))
    if not torch.isfinite(t).all() or (t < 0).any() or (t > 1).any():
        raise ValueError(f"{name} must hold values in [0, 1]")
    return t


def improvement(phi_initial, phi_revised):
    """dphi = max(0, (phi_initial - phi_revised) / phi_initial), 0 where phi_initial = 0.

    Broadcasts like numpy, except that a 1-D ``phi_initial`` of length P against a 2-D
    ``phi_revised`` [P, G] is taken per row. Returns a torch tensor if either input is
    one, a numpy array for array inputs, a float for two scalars.
    """
    p1, p2 = _as_float_tensor(phi_initial, "phi_initial"), _as_float_tensor(phi_revised, "phi_revised")
    if p1.ndim == 1 and p2.ndim == 2 and p1.shape[0] == p2.shape[0]:
        p1 = p1.unsqueeze(1)
    dphi = torch.where(p1 > 0, ((p1 - p2) / p1.clamp_min(1e-300)).clamp(0.0, 1.0), 0.0)
    if isinstance(phi_initial, torch.Tensor) or isinstance(phi_revised, torch.Tensor):
        like = phi_revised if isinstance(phi_revised, torch.Tensor) else phi_initial
        return dphi.to(like.dtype if like.is_floating_point() else torch.float32)
    if dphi.ndim == 0 and np.ndim(phi_initial) == 0 and np.ndim(phi_revised) == 0:
        return float(dphi)
    return dphi.numpy()
