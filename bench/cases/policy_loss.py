"""Benchmark of GRO's policy loss over logits (group "policy_loss").

GPU: B in {8, 16}, T in {1024, 2048}, V = 151,936 (Qwen2.5-VL), bf16 logits (``--check``:
B = 8, T = 2048 only). Rows:
``gro_fast`` (fused Triton, dlogits allocated), ``gro_fast-inplace`` (dlogits written into
the logits), ``torch-trl`` (TRL-style torch: per-row log-softmax + gather, then the clipped
loss; written below), ``liger-grpo-loss`` (``liger_kernel.ops.grpo_loss``, in place as its
default) and ``liger-fused-linear-grpo`` (chunked LM head + loss from hidden states, so it
includes the matmul: for orientation only). Missing peers give rows with ``skipped``.
Measured: forward and forward+backward ms (gradient via ``torch.autograd.grad``, so no
gradient accumulation is timed), peak memory above the inputs, achieved bandwidth counting
the bytes that must move (logits read twice, dlogits written once) against the device's
peak, and speed-ups against the peers of the same run.
CPU (``ctx.quick``): a small shape with the fp32 reference, the torch peer and the Triton
kernels under the interpreter (timings there say nothing about GPU speed).
"""
from __future__ import annotations

import json
import os
import subprocess
import sys

import torch

from bench.registry import PEAK_TBPS, Context, case, device_peak, peak_memory_mb, time_ms
from bench.registry import timing as bench_timing

GPU_SHAPES = [(8, 1024), (8, 2048), (16, 1024), (16, 2048)]
QWEN_VOCAB = 151_936
QUICK_SHAPE = (2, 8, 384)
SETTINGS = dict(eps_low=0.2, eps_high=0.2, beta=0.04, temperature=1.0)
CHECK_SHAPE = (8, 2048)  # --check: one micro-batch of 8 x 2,048 tokens


def _shapes(ctx) -> list[tuple[int, int, int]]:
    if ctx.quick:
        return [QUICK_SHAPE]
    return [(B, T, QWEN_VOCAB) for B, T in ([CHECK_SHAPE] if ctx.check else GPU_SHAPES)]


def make_inputs(B, T, V, dtype, device, seed=0):
    """Random logits (generated on the device, in their dtype) and loss inputs, with old /
    ref log-probs near the current ones so the loss is in its usual regime."""
    g = torch.Generator(device=device).manual_seed(seed)

    def uniform(*shape):
        return torch.rand(*shape, generator=g, device=device)

    logits = torch.randn(B, T, V, generator=g, device=device, dtype=dtype).mul_(2)
    targets = torch.randint(0, V, (B, T), generator=g, device=device)
    with torch.no_grad():
        logp = torch.log_softmax(logits[0].float(), -1).gather(-1, targets[0, :, None]).mean()
    noise = torch.randn(2, B, T, generator=g, device=device) * 0.1
    return dict(logits=logits, targets=targets, mask=uniform(B, T) > 0.1,
                advantages=torch.randn(B, generator=g, device=device), improvement=uniform(B),
                old=logp + noise[0], ref=logp + noise[1])


def torch_trl_loss(logits, targets, mask, advantages, old, ref, eps_low, eps_high, beta,
                   temperature):
    """The torch peer, the way TRL's GRPO trainer computes it: logits / T, a per-row
    log-softmax + gather (to bound the fp32 upcast), then ratio, clip, k3 KL, token-mean."""
    logits = logits / temperature
    logp = torch.stack([torch.log_softmax(row.float(), -1).gather(-1, ids[:, None]).squeeze(-1)
                        for row, ids in zip(logits, targets)])
    ratio = torch.exp(logp - old)
    clipped = torch.clamp(ratio, 1 - eps_low, 1 + eps_high)
    adv = advantages[:, None]
    per_token = -torch.minimum(ratio * adv, clipped * adv)
    if beta != 0.0:
        per_token = per_token + beta * (torch.exp(ref - logp) - (ref - logp) - 1)
    m = mask.float()
    return (per_token * m).sum() / m.sum().clamp_min(1.0)


def _implementations(inputs, quick):
    """(impl name, setup) pairs; setup() returns (logits to differentiate, loss function of
    them), or a string saying why the peer cannot run here. Setups run one at a time so
    that only one impl's extra buffers are alive."""
    from gro_fast.ops import force_backend, gro_policy_loss
    from gro_fast.ops.policy_loss import reference_gro_policy_loss
    x = inputs
    # GRO's shaped advantage, given to every peer as its advantage.
    a_hat = (1 + x["improvement"]) * x["advantages"]

    def ours(inplace):
        def loss(logits):
            with force_backend("triton"):
                return gro_policy_loss(logits, x["targets"], x["mask"], x["advantages"],
                                       improvement=x["improvement"], old_logprobs=x["old"],
                                       ref_logprobs=x["ref"], inplace_backward=inplace,
                                       **SETTINGS).loss
        # The in-place variant overwrites its logits: give it its own copy.
        return lambda: (x["logits"].clone() if inplace else x["logits"], loss)

    def trl():
        return x["logits"], lambda logits: torch_trl_loss(
            logits, x["targets"], x["mask"], a_hat, x["old"], x["ref"], **SETTINGS)

    def reference():
        return x["logits"], lambda logits: reference_gro_policy_loss(
            logits, x["targets"], x["mask"], x["advantages"], improvement=x["improvement"],
            old_logprobs=x["old"], ref_logprobs=x["ref"], **SETTINGS).loss

    impls = [("gro_fast", ours(False)), ("gro_fast-inplace", ours(True)), ("torch-trl", trl)]
    if quick:  # the fp32 reference materialises [B, T, V] fp32 tensors: small shapes only
        impls.append(("reference", reference))
    impls.append(("liger-grpo-loss", lambda: _liger_grpo_loss(x, a_hat)))
    return impls


def _liger_grpo_loss(x, a_hat):
    try:
        from liger_kernel.ops.grpo_loss import GrpoLossFunction
    except Exception as exc:  # not installed, or no GPU Triton
        return f"liger_kernel.ops.grpo_loss unavailable: {exc}"
    if not x["logits"].is_cuda:
        return "needs a CUDA device"
    B, T, V = x["logits"].shape
    # Liger reads logits [B, T + 1, V] and ignores the last position; it writes its
    # gradient into them (its default), so it gets its own buffer.
    padded = torch.empty(B, T + 1, V, dtype=x["logits"].dtype, device=x["logits"].device)
    padded[:, :T] = x["logits"]
    padded[:, T] = 0
    mask = x["mask"].to(torch.int32).contiguous()

    def loss(logits):
        out = GrpoLossFunction.apply(logits, x["old"], x["ref"], x["targets"], a_hat, mask,
                                     SETTINGS["temperature"], SETTINGS["beta"],
                                     SETTINGS["eps_low"], SETTINGS["eps_high"], True)
        per_token = out[0] if isinstance(out, tuple) else out
        if per_token.dim() > 0:  # older releases return the per-token loss
            m = mask.float()
            return (per_token * m).sum() / m.sum().clamp_min(1.0)
        return per_token
    return padded, loss


def _measure(name, logits, loss_fn, bytes_per_elem, ctx, timing):
    """One row: forward ms, fwd+bwd ms and peak memory (bandwidth is added later)."""
    leaf = logits.detach().requires_grad_()

    def forward():
        return loss_fn(leaf)

    def forward_backward():
        return torch.autograd.grad(loss_fn(leaf), leaf)

    loss = float(forward())  # before any in-place backward overwrites the logits
    fwd_ms = time_ms(forward, ctx.device, **timing)
    fwdbwd_ms = time_ms(forward_backward, ctx.device, **timing)
    peak = peak_memory_mb(forward_backward, ctx.device)
    B, T, V = leaf.shape[0], leaf.shape[1], leaf.shape[2]
    row = {"impl": name, "loss": loss, "ms": fwdbwd_ms, "fwd_ms": fwd_ms,
           "fwdbwd_ms": fwdbwd_ms,
           "peak_mb": peak, "logits_mb": B * T * V * bytes_per_elem / 2**20}
    return row


def _add_bandwidth(row, n_elems, bytes_per_elem, peak_tbps):
    moved = 3 * n_elems * bytes_per_elem  # logits read twice, dlogits written once
    tbps = moved / (row["fwdbwd_ms"] * 1e-3) / 1e12
    row["fwdbwd_tbps"] = tbps
    row["fwd_tbps"] = n_elems * bytes_per_elem / (row["fwd_ms"] * 1e-3) / 1e12
    row["pct_of_peak"] = None if peak_tbps is None else 100.0 * tbps / peak_tbps


def _add_speedups(rows):
    by_impl = {r["impl"]: r for r in rows if "fwdbwd_ms" in r}
    for r in rows:
        if not r["impl"].startswith("gro_fast") or "fwdbwd_ms" not in r:
            continue
        for peer in ("torch-trl", "liger-grpo-loss"):
            if peer in by_impl:
                r[f"speedup_vs_{peer}"] = by_impl[peer]["fwdbwd_ms"] / r["fwdbwd_ms"]


def _interpreter_ready() -> bool:
    """Whether Triton kernels can run on CPU tensors in this process: TRITON_INTERPRET
    must have been set before Triton was first imported."""
    if os.environ.get("TRITON_INTERPRET") != "1":
        return False
    if "triton" not in sys.modules:
        return True
    import triton.language as tl
    return type(tl.max).__name__ != "JITFunction"


def _in_interpreter_process(case_name: str, ctx) -> list[dict]:
    """Run a case's CPU rows in a fresh process with the Triton interpreter on."""
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    env = dict(os.environ, TRITON_INTERPRET="1")
    done = subprocess.run([sys.executable, "-m", "bench.cases.policy_loss", case_name]
                          + (["--tiny"] if ctx.tiny else []),
                          cwd=root, env=env, capture_output=True, text=True, timeout=900)
    if done.returncode != 0:
        raise RuntimeError(f"interpreter run of {case_name} failed:\n{done.stderr[-2000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


@case("gro_policy_loss", "policy_loss")
def bench_gro_policy_loss(ctx):
    if not ctx.is_cuda and not _interpreter_ready():
        return _in_interpreter_process("gro_policy_loss", ctx)
    shapes = _shapes(ctx)
    dtype = torch.bfloat16
    timing = bench_timing(ctx, dict(warmup=3, repeats=10))
    peak_tbps = device_peak(ctx.device, PEAK_TBPS)
    rows = []
    for B, T, V in shapes:
        inputs = make_inputs(B, T, V, dtype, ctx.device)
        shape_rows = []
        for name, setup in _implementations(inputs, ctx.quick):
            shape_rows.append(_measure_impl(name, setup, (B, T, V), ctx, timing, peak_tbps))
        shape_rows.append(_fused_linear_peer(B, T, V, inputs, ctx, timing))
        _add_speedups(shape_rows)
        rows.extend(shape_rows)
        del inputs
    return rows


def _measure_impl(name, setup, shape, ctx, timing, peak_tbps) -> dict:
    """The row of one implementation at one shape (``skipped`` when it cannot run)."""
    B, T, V = shape
    base = {"impl": name, "B": B, "T": T, "V": V, "dtype": "bf16"}
    ours = name.startswith("gro_fast")
    try:
        prepared = setup()
        if isinstance(prepared, str):
            return {**base, "skipped": prepared}
        row = _measure(name, *prepared, 2, ctx, timing)
    except torch.cuda.OutOfMemoryError as exc:
        return {**base, "skipped": f"out of memory: {exc}"[:200]}
    except Exception as exc:  # an optional peer's API mismatch must not stop the run
        if ours:
            raise
        return {**base, "skipped": f"{type(exc).__name__}: {exc}"[:200]}
    finally:
        prepared = None
        if ctx.is_cuda:
            torch.cuda.empty_cache()
    _add_bandwidth(row, B * T * V, 2, peak_tbps)
    if ours and not ctx.is_cuda:
        row["note"] = "Triton interpreter on CPU: a correctness run, not a speed"
    return {**row, **base}


def _fused_linear_peer(B, T, V, inputs, ctx, timing, hidden_size=3584):
    """Liger's chunked LM head + GRPO loss from hidden states (includes the matmul)."""
    base = {"impl": "liger-fused-linear-grpo", "B": B, "T": T, "V": V, "dtype": "bf16"}
    try:
        from liger_kernel.chunked_loss import LigerFusedLinearGRPOLoss
    except Exception as exc:
        return {**base, "skipped": f"liger_kernel.chunked_loss unavailable: {exc}"}
    if not ctx.is_cuda:
        return {**base, "skipped": "needs a CUDA device"}
    try:
        g = torch.Generator(device="cpu").manual_seed(1)
        hidden = torch.randn(B, T, hidden_size, generator=g).to(ctx.device, torch.bfloat16)
        weight = (torch.randn(V, hidden_size, generator=g) * hidden_size ** -0.5).to(
            ctx.device, torch.bfloat16).requires_grad_()
        module = LigerFusedLinearGRPOLoss(beta=SETTINGS["beta"], epsilon_low=SETTINGS["eps_low"],
                                          epsilon_high=SETTINGS["eps_high"], loss_type="bnpo",
                                          temperature=SETTINGS["temperature"])
        a_hat = (1 + inputs["improvement"]) * inputs["advantages"]

        def loss_fn(h):
            out = module(h, weight, inputs["targets"], inputs["mask"].int(), a_hat,
                         ref_per_token_logps=inputs["ref"], old_per_token_logps=inputs["old"])
            return out[0] if isinstance(out, tuple) else out
        row = _measure(base["impl"], hidden, loss_fn, 2, ctx, timing)
        row["note"] = "includes the LM-head matmul; not comparable byte for byte"
        return {**row, **{k: v for k, v in base.items() if k != "impl"}}
    except Exception as exc:  # an API mismatch in the optional peer must not stop the run
        return {**base, "skipped": f"{type(exc).__name__}: {exc}"[:200]}


@case("token_logprobs_nograd", "policy_loss")
def bench_token_logprobs(ctx):
    """Old / reference-policy log-probs (no autograd): fused kernel vs TRL-style torch."""
    if not ctx.is_cuda and not _interpreter_ready():
        return _in_interpreter_process("token_logprobs_nograd", ctx)
    from gro_fast.ops import force_backend, token_logprobs
    shapes = _shapes(ctx)
    timing = bench_timing(ctx, dict(warmup=3, repeats=10))
    peak_tbps = device_peak(ctx.device, PEAK_TBPS)
    rows = []
    for B, T, V in shapes:
        x = make_inputs(B, T, V, torch.bfloat16, ctx.device)

        @torch.no_grad()
        def ours():
            with force_backend("triton"):
                return token_logprobs(x["logits"], x["targets"])

        @torch.no_grad()
        def trl():
            return torch.stack([torch.log_softmax(r.float(), -1).gather(-1, i[:, None])[:, 0]
                                for r, i in zip(x["logits"], x["targets"])])
        ms = {name: time_ms(fn, ctx.device, **timing) for name, fn in (("gro_fast", ours),
                                                                      ("torch-trl", trl))}
        bytes_read = B * T * V * 2
        for name, value in ms.items():
            tbps = bytes_read / (value * 1e-3) / 1e12
            rows.append({"impl": name, "B": B, "T": T, "V": V, "dtype": "bf16", "ms": value,
                         "tbps": tbps, "pct_of_peak": None if peak_tbps is None
                         else 100.0 * tbps / peak_tbps,
                         "speedup_vs_torch-trl": ms["torch-trl"] / value})
        del x
    return rows


if __name__ == "__main__":
    # CPU rows under the interpreter, printed as JSON (see ``_in_interpreter_process``).
    cases = {"gro_policy_loss": bench_gro_policy_loss,
             "token_logprobs_nograd": bench_token_logprobs}
    torch.set_num_threads(max(1, min(2, os.cpu_count() or 1)))
    tiny = "--tiny" in sys.argv[2:]
    print(json.dumps(cases[sys.argv[1]](Context(device=torch.device("cpu"), quick=True, tiny=tiny))))
