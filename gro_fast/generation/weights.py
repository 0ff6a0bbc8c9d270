"""The weights the rollout engine samples from: the model's, in the compute dtype.

A trainer keeps fp32 master weights and computes in bf16 (autocast on one GPU, FSDP2's
``param_dtype`` on several). Under autocast every forward casts every weight again, and a
decode step is one forward per token: sampling would read fp32 and write bf16 copies of
all weights at every token (for a 7B model about 42 GB per token, ~4x the bytes of
reading bf16 weights once). :class:`SamplingWeights` hands the engine a model whose
parameters are already in the compute dtype:

- the model itself when its parameters are (a bf16 model; FSDP2's gathered parameters,
  which are in ``param_dtype``);
- otherwise a copy with its parameters in the compute dtype (buffers shared with the
  model), made on first use and refreshed from the model's parameters at the start of a
  call only when they changed since the last refresh (an optimizer step, a loaded
  checkpoint): one cast per parameter per change, never per token. A single-process
  trainer's refresh therefore happens once after each optimizer step that precedes a
  rollout. The copy costs the parameters once more in the compute dtype.

It does not decide the compute dtype (the engine does) and never changes the model.
"""
from __future__ import annotations

import copy

import torch
from torch import nn


def _version(param: torch.Tensor):
    """The parameter's in-place version (None for inference tensors, which have none)."""
    return None if param.is_inference() else param._version


class SamplingWeights:
    """``get(dtype)``: a model with the parameters of ``model`` in ``dtype`` (see module)."""

    def __init__(self, model: nn.Module):
        self.model = model
        self.copy: nn.Module | None = None
        self._pairs: list[tuple[torch.Tensor, torch.Tensor]] = []
        self._dtype = None
        self._seen = None
        self.refreshes = 0
        """How many times the copy was (re)filled from the model: for tests and stats."""

    def get(self, dtype: torch.dtype | None) -> nn.Module:
        params = list(self.model.parameters())
        if dtype is None or all(p.dtype == dtype for p in params if p.is_floating_point()):
            return self.model
        if any(hasattr(p, "full_tensor") for p in params):
            raise ValueError(f"the model's parameters are sharded (FSDP2) and not in {dtype}: sample "
                             "under gathered_parameters with MixedPrecisionPolicy(param_dtype="
                             f"{dtype}) so the gathered parameters already are")
        # Normal tensors even when called under inference mode: the copy outlives the call.
        with torch.inference_mode(False), torch.no_grad():
            if self.copy is None or self._dtype != dtype:
                self._make_copy(params, dtype)
            else:
                self._refresh()
        return self.copy

    def _make_copy(self, params: list[torch.Tensor], dtype: torch.dtype) -> None:
        replacements = {id(p): nn.Parameter(p.detach().to(dtype) if p.is_floating_point()
                                            else p.detach(), requires_grad=False)
                        for p in params}
        memo = dict(replacements)
        memo.update({id(b): b for b in self.model.buffers()})  # shared, not copied
        self.copy = copy.deepcopy(self.model, memo).eval()
        self._pairs = [(p, replacements[id(p)]) for p in params if p.is_floating_point()]
        self._dtype, self._seen = dtype, self._stamp()
        self.refreshes += 1

    def _stamp(self) -> list:
        return [(p.data_ptr(), _version(p)) for p, _ in self._pairs]

    def _refresh(self) -> None:
        stamp = self._stamp()
        if stamp == self._seen and all(v is not None for _, v in stamp):
            return
        if self._pairs:
            masters, copies = zip(*self._pairs)
            torch._foreach_copy_(list(copies), list(masters))
        self._seen = stamp
        self.refreshes += 1
