"""``gro-fast doctor``: what this installation can run.

Prints the versions of Python, torch (and its CUDA), Triton, transformers and gro_fast;
whether the compiled extension ``gro_fast._C`` loaded (and why not), its CPU ops and
whether it has CUDA kernels; OpenMP threads; the Triton mode; the attention backends
that can be imported; and the GPU, if any. It changes nothing and always exits 0 unless
asked for ``--strict`` (then 1 when the extension is missing).
"""
from __future__ import annotations

import argparse
import datetime as dt
import importlib
import os
import platform
import subprocess
import sys

import torch

ATTENTION_PEERS = ("flash_attn", "xformers", "liger_kernel")


def _version(module: str) -> str:
    try:
        return str(getattr(importlib.import_module(module), "__version__", "unknown"))
    except Exception as exc:  # not installed, or broken install
        return f"not available ({type(exc).__name__})"


def versions() -> dict[str, str]:
    return {
        "python": platform.python_version(),
        "torch": f"{torch.__version__} (CUDA {torch.version.cuda or 'none'})",
        "triton": _version("triton"),
        "transformers": _version("transformers"),
        "gro_fast": _version("gro_fast"),
    }


def extension_report() -> dict[str, object]:
    """Whether gro_fast._C loaded, its ops split into CPU and CUDA, and OpenMP threads."""
    from . import _ext
    ext = _ext.extension()
    if ext is None:
        return {"loaded": False, "reason": _ext.load_error()}
    names = sorted(n for n in dir(ext) if not n.startswith("_") and callable(getattr(ext, n)))
    return {
        "loaded": True,
        "cpu_ops": [n for n in names if n.endswith("_cpu")],
        "cuda_ops": [n for n in names if n.endswith("_cuda")],
        "with_cuda": bool(getattr(ext, "with_cuda", False)),
        "openmp": bool(getattr(ext, "with_openmp", False)),
        "openmp_threads": int(ext.openmp_max_threads()) if hasattr(ext, "openmp_max_threads") else 1,
    }


def attention_backends() -> list[str]:
    found = []
    if hasattr(torch.nn.functional, "scaled_dot_product_attention"):
        found.append("sdpa")
    for module in ATTENTION_PEERS:
        try:
            importlib.import_module(module)
            found.append(module)
        except Exception:
            continue
    return found


def gpu_report() -> str:
    if not torch.cuda.is_available():
        return "none"
    props = torch.cuda.get_device_properties(0)
    return (f"{props.name} (compute {props.major}.{props.minor}, "
            f"{props.total_memory / 2**30:.1f} GiB, {torch.cuda.device_count()} device(s))")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="gro-fast doctor", description=__doc__.splitlines()[0])
    parser.add_argument("--strict", action="store_true", help="exit 1 when gro_fast._C is missing")
    args = parser.parse_args(list(argv or []))
    from .ops._dispatch import triton_mode
    for name, value in versions().items():
        print(f"{name:14s} {value}")
    ext = extension_report()
    if ext["loaded"]:
        print(f"{'gro_fast._C':14s} loaded; CUDA kernels: {'yes' if ext['with_cuda'] else 'no'}")
        print(f"{'  cpu ops':14s} {', '.join(ext['cpu_ops']) or 'none'}")
        print(f"{'  cuda ops':14s} {', '.join(ext['cuda_ops']) or 'none'}")
        print(f"{'openmp':14s} {'yes' if ext['openmp'] else 'no'}, {ext['openmp_threads']} thread(s)")
    else:
        print(f"{'gro_fast._C':14s} NOT loaded ({ext['reason']}); ops use the torch reference")
    print(f"{'torch threads':14s} {torch.get_num_threads()}")
    print(f"{'triton mode':14s} {triton_mode()}")
    print(f"{'attention':14s} {', '.join(attention_backends())}")
    print(f"{'gpu':14s} {gpu_report()}")
    sys.stdout.flush()
    return 1 if args.strict and not ext["loaded"] else 0



def _module_version(module: str) -> str | None:
    try:
        return getattr(importlib.import_module(module), "__version__", "unknown")
    except Exception:
        return None


def run_environment(device: torch.device, repo: str | None = None) -> dict:
    """What a measurement records about where it ran: device, threads, versions, the git
    commit of ``repo`` (default: the folder above this package; "-dirty" with local
    changes, "" outside a checkout) and the UTC date."""
    repo = repo or os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True,
                                cwd=repo, check=False).stdout.strip()
        dirty = bool(subprocess.run(["git", "status", "--porcelain"], capture_output=True,
                                    text=True, cwd=repo, check=False).stdout.strip())
    except OSError:
        commit, dirty = "", False
    if device.type == "cuda":
        name = torch.cuda.get_device_name(device)
    else:
        name = platform.processor() or platform.machine()
    return {
        "device": name,
        "device_type": device.type,
        "cpu_threads": torch.get_num_threads(),
        "python": platform.python_version(),
        "cuda": torch.version.cuda,
        "gpu_driver": _driver() if device.type == "cuda" else None,
        "versions": {m: _module_version(m) for m in (
            "torch", "triton", "transformers", "numpy", "pycocotools", "shapely",
            "liger_kernel", "gro_fast")},
        "commit": commit + ("-dirty" if dirty else ""),
        "date": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
    }


def _driver() -> str | None:
    try:
        return subprocess.run(["nvidia-smi", "--query-gpu=driver_version", "--format=csv,noheader"],
                              capture_output=True, text=True, check=False).stdout.strip() or None
    except OSError:
        return None


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
