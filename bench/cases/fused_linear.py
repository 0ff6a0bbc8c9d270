"""Benchmark of the fused LM head + GRO policy loss (group "fused_linear").

GPU: tokens N = B*T in {4096, 16384} (B x 2048), H in {2048, 3584}, V = 151,936, bf16
(``--check``: N = 16,384, H = 3,584 only).
Rows: ``gro_fast-fused`` (Triton, atomic backward), ``gro_fast-fused-det`` (Triton,
deterministic backward), ``torch+gro_policy_loss`` (LM-head matmul, then
``gro_fast.ops.gro_policy_loss`` on the [B, T, V] logits; the fp32 reference when that
is not importable) and ``liger-fused-linear-grpo`` (``LigerFusedLinearGRPOLoss``; a row
with ``skipped`` when it cannot run). Measured per row: forward+backward ms (gradients of
hidden and weight by ``torch.autograd.grad``), forward-only ms without autograd (as for
old / reference log-probs), peak memory above the inputs and the same
minus the two returned gradients (``extra_mb``), effective TFLOP/s counting 8*N*H*V
flops against the device's bf16 dense peak, the loss's relative difference to the torch
peer, and speed-ups against the peers of the same run.
CPU (``ctx.quick``): a small shape through the chunked torch path vs the torch peer, and
a tiny shape through the Triton kernels under the interpreter (CPU timings say nothing
about GPU speed).
"""
from __future__ import annotations

import json
import os
import subprocess
import sys

import torch

from bench.registry import PEAK_BF16_TFLOPS, case, device_peak, peak_memory_mb, time_ms
from bench.registry import timing as bench_timing

QWEN_VOCAB = 151_936
GPU_SHAPES = [(B, 2048, H, QWEN_VOCAB) for B in (2, 8) for H in (2048, 3584)]
CHECK_SHAPE = (8, 2048, 3584, QWEN_VOCAB)  # --check: N = 16,384 tokens, the 7B hidden size
QUICK_SHAPES = [(2, 64, 256, 4096)]
INTERPRETER_SHAPES = [(1, 16, 32, 160)]
SETTINGS = dict(eps_low=0.2, eps_high=0.28, beta=0.0, temperature=1.0)


def make_inputs(B, T, H, V, device, seed=0):
    """bf16 hidden states and LM head with logits of order one, and GRO loss inputs."""
    g = torch.Generator(device=device).manual_seed(seed)  # draws on the device: V x H
    on = dict(generator=g, device=device)
    hidden = torch.randn(B, T, H, **on).to(torch.bfloat16)
    weight = (torch.randn(V, H, **on) * H ** -0.5).to(torch.bfloat16)
    targets = torch.randint(0, V, (B, T), **on)
    noise = 0.1 * torch.randn(B, T, **on)
    with torch.no_grad():  # old log-probs near the current ones, one sequence at a time
        logp = torch.stack([torch.log_softmax((h @ weight.T).float(), -1).gather(
            -1, ids[:, None])[:, 0] for h, ids in zip(hidden, targets)])
    return dict(hidden=hidden, weight=weight, targets=targets, old=logp + noise,
                mask=torch.rand(B, T, **on) > 0.1, advantages=torch.randn(B, **on),
                improvement=torch.rand(B, **on))


def _loss_args(x):
    return ((x["targets"], x["mask"], x["advantages"]),
            dict(improvement=x["improvement"], old_logprobs=x["old"], **SETTINGS))


def _implementations(x, ctx, interpreter):
    """(impl, loss_fn(hidden, weight) or None, skip reason)."""
    from gro_fast.ops import force_backend, fused_linear_gro_policy_loss
    from gro_fast.ops.policy_loss.reference import reference_gro_policy_loss
    args, kwargs = _loss_args(x)

    def fused(backend, deterministic=False):
        def loss(hidden, weight):
            with force_backend(backend):
                return fused_linear_gro_policy_loss(hidden, weight, *args,
                                                    deterministic=deterministic, **kwargs).loss
        return loss

    def torch_peer(hidden, weight):
        logits = hidden @ weight.T
        if ctx.is_cuda:
            from gro_fast.ops import gro_policy_loss
            return gro_policy_loss(logits, *args, **kwargs).loss
        return reference_gro_policy_loss(logits, *args, **kwargs).loss

    impls = []
    if ctx.is_cuda or interpreter:
        impls += [("gro_fast-fused", fused("triton"), None),
                  ("gro_fast-fused-det", fused("triton", True), None)]
    if not ctx.is_cuda:
        impls.append(("gro_fast-chunked", fused("reference"), None))
    impls.append(("torch+gro_policy_loss", torch_peer, None))
    impls.append(_liger_peer(x, ctx))
    return impls


def _liger_peer(x, ctx):
    name = "liger-fused-linear-grpo"
    try:
        from liger_kernel.chunked_loss import LigerFusedLinearGRPOLoss
    except Exception as exc:  # not installed, or no GPU Triton
        return (name, None, f"liger_kernel.chunked_loss unavailable: {type(exc).__name__}")
    if not ctx.is_cuda:
        return (name, None, "needs a CUDA device")
    module = LigerFusedLinearGRPOLoss(beta=SETTINGS["beta"], use_ref_model=False,
                                      epsilon_low=SETTINGS["eps_low"],
                                      epsilon_high=SETTINGS["eps_high"], loss_type="bnpo",
                                      temperature=SETTINGS["temperature"])
    a_hat = (1 + x["improvement"]) * x["advantages"]  # GRO's shaped advantage

    def loss(hidden, weight):
        out = module(hidden, weight, x["targets"], x["mask"].int(), a_hat,
                     old_per_token_logps=x["old"])
        return out[0] if isinstance(out, tuple) else out
    return (name, loss, None)


def _measure(loss_fn, x, ctx, timing):
    """fwd+bwd ms, forward-only ms (no autograd), peak memory of fwd+bwd (MB above the
    inputs) and the loss value."""
    hidden = x["hidden"].detach().requires_grad_()
    weight = x["weight"].detach().requires_grad_()

    def forward_backward():
        loss = loss_fn(hidden, weight)
        torch.autograd.grad(loss, (hidden, weight))
        return loss

    ms = time_ms(forward_backward, ctx.device, **timing)
    peak = peak_memory_mb(forward_backward, ctx.device)
    with torch.no_grad():
        fwd_ms = time_ms(lambda: loss_fn(x["hidden"], x["weight"]), ctx.device, **timing)
        value = float(loss_fn(x["hidden"], x["weight"]))
    return ms, fwd_ms, peak, value


def _row(name, shape, loss_fn, reason, x, ctx, timing, peak_tflops):
    B, T, H, V = shape
    base = {"impl": name, "B": B, "T": T, "N": B * T, "H": H, "V": V, "dtype": "bf16"}
    if loss_fn is None:
        return {**base, "skipped": reason}
    try:
        ms, fwd_ms, peak, loss = _measure(loss_fn, x, ctx, timing)
    except Exception as exc:  # OOM or an optional peer's API mismatch: report, go on
        if ctx.is_cuda:
            torch.cuda.empty_cache()
        return {**base, "skipped": f"{type(exc).__name__}: {exc}"[:200]}
    tflops = 8.0 * B * T * H * V / (ms * 1e-3) / 1e12
    grads_mb = (B * T * H + V * H) * 2 / 2**20
    return {**base, "ms": ms, "fwd_ms": fwd_ms, "peak_mb": peak,
            "extra_mb": None if peak is None else peak - grads_mb, "tflops": tflops,
            "pct_of_peak": None if peak_tflops is None else 100.0 * tflops / peak_tflops,
            "loss": loss}


def _compare(rows):
    """Loss difference to the torch peer and speed-ups against the peers, in place."""
    by_impl = {r["impl"]: r for r in rows if "ms" in r}
    torch_row = by_impl.get("torch+gro_policy_loss")
    for r in rows:
        if "ms" not in r or not r["impl"].startswith("gro_fast"):
            continue
        if torch_row is not None:
            r["loss_rel_diff"] = abs(r["loss"] - torch_row["loss"]) / max(
                abs(torch_row["loss"]), 1e-12)
            r["speedup_vs_torch"] = torch_row["ms"] / r["ms"]
        if "liger-fused-linear-grpo" in by_impl:
            r["speedup_vs_liger"] = by_impl["liger-fused-linear-grpo"]["ms"] / r["ms"]


def _run_plan(plan, ctx) -> list[dict]:
    """Rows for each (shape, interpreter) of the plan, compared within each shape."""
    timing = bench_timing(ctx, dict(warmup=2, repeats=5))
    peak_tflops = device_peak(ctx.device, PEAK_BF16_TFLOPS)
    rows = []
    for shape, interpreter in plan:
        x = make_inputs(*shape, ctx.device)
        shape_rows = [_row(name, shape, fn, reason, x, ctx, timing, peak_tflops)
                      for name, fn, reason in _implementations(x, ctx, interpreter)]
        _compare(shape_rows)
        rows.extend(shape_rows)
        del x
        if ctx.is_cuda:
            torch.cuda.empty_cache()
    return rows


def _interpreter_rows(ctx) -> list[dict]:
    """The Triton kernels on CPU need TRITON_INTERPRET=1 before Triton is first imported,
    which the runner's process cannot promise: run them in a child process."""
    env = dict(os.environ, TRITON_INTERPRET="1")
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    done = subprocess.run([sys.executable, "-m", "bench.cases.fused_linear"] + (["--tiny"] if ctx.tiny else []), env=env,
                          cwd=root, capture_output=True, text=True, timeout=900, check=False)
    if done.returncode != 0:
        return [{"impl": "gro_fast-fused", "skipped": "interpreter run failed: "
                 + (done.stderr.strip().splitlines() or ["no output"])[-1][:200]}]
    return json.loads(done.stdout.strip().splitlines()[-1])


@case("fused_linear_gro_loss", "fused_linear")
def bench_fused_linear(ctx):
    if ctx.is_cuda:
        shapes = QUICK_SHAPES if ctx.quick else [CHECK_SHAPE] if ctx.check else GPU_SHAPES
        return _run_plan([(s, False) for s in shapes], ctx)
    return _run_plan([(s, False) for s in QUICK_SHAPES], ctx) + _interpreter_rows(ctx)


if __name__ == "__main__":  # the interpreter rows (see _interpreter_rows)
    from bench.registry import Context
    print(json.dumps(_run_plan([(s, True) for s in INTERPRETER_SHAPES],
                               Context(device=torch.device("cpu"), quick=True, tiny="--tiny" in sys.argv[1:]))))
