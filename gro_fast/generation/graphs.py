"""CUDA-graph replay of the engine's decode step.

One decode step of a large model launches hundreds of small kernels; in eager mode the
GPU waits on Python between them. ``GraphedDecodeStep`` captures the step once per
rollout call (static token / position buffers, the cache's fixed buffers, its step held
in device tensors) and replays it for every step. It does not sample: sampling, stop
checks and the cache's ``advance`` stay outside the graph. CUDA only. Capture and
replay run with the step's device current (graphs, like kernels, use the current device).
"""
from __future__ import annotations

from typing import Callable

import torch

from gro_fast.ops._dispatch import cuda_device


class GraphedDecodeStep:
    """``step(tokens [B], positions [B]) -> logits [B, V]`` by graph replay.

    ``forward_step(cache, tokens, positions)`` is the eager step without ``advance``; it
    runs twice on a side stream first (kernel compilation, allocator warm-up: those
    writes land in the current suffix slot, which the replay rewrites), then is captured.
    """

    def __init__(self, forward_step: Callable, cache, batch: int, device: torch.device):
        self.cache, self.device = cache, torch.device(device)
        with cuda_device(self.device):
            self.tokens = torch.zeros(batch, dtype=torch.long, device=self.device)
            self.positions = torch.zeros(batch, dtype=torch.long, device=self.device)
            side = torch.cuda.Stream(self.device)
            side.wait_stream(torch.cuda.current_stream(self.device))
            with torch.cuda.stream(side):
                for _ in range(2):
                    forward_step(cache, self.tokens, self.positions)
            torch.cuda.current_stream(self.device).wait_stream(side)
            self.graph = torch.cuda.CUDAGraph()
            with torch.cuda.graph(self.graph):
                self.logits = forward_step(cache, self.tokens, self.positions)

    def __call__(self, tokens: torch.Tensor, positions: torch.Tensor) -> torch.Tensor:
        with cuda_device(self.device):
            self.tokens.copy_(tokens)
            self.positions.copy_(positions)
            self.graph.replay()
        self.cache.advance()
        return self.logits
