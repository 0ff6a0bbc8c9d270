"""Build script for the compiled extension ``gro_fast._C``.

The C++ CPU extension (``csrc/*.cpp``, OpenMP) is always built. The CUDA kernels
(``kernels/*.cu``) are added when PyTorch was built with CUDA and a CUDA toolkit is
found. Environment variables (also listed in the README):

  GRO_FAST_BUILD_CUDA   0: never build CUDA kernels; 1: require them (fail otherwise);
                        unset: build them when possible.
  GRO_FAST_CUDA_ARCHS   e.g. "8.0;9.0" (sets TORCH_CUDA_ARCH_LIST for this build).
  MAX_JOBS              parallel compile jobs (read by torch's build helper).
  GRO_FAST_SKIP_EXT     1: install the pure-Python package only (ops use the torch reference).

torch is not a build requirement in pyproject.toml, so that pip never pulls a CUDA
torch into an isolated build environment. Install with ``--no-build-isolation``; a
plain ``pip install .`` also works: the torch installed in the target environment is
found through its site-packages directory.
"""
from __future__ import annotations

import glob
import os
import sys
import sysconfig

from setuptools import setup

ROOT = os.path.dirname(os.path.abspath(__file__))


def _import_torch():
    try:
        import torch  # noqa: F401
        return torch
    except ImportError:
        pass
    # Under pip's build isolation the target environment's site-packages is hidden;
    # make its torch visible rather than letting pip download another one.
    for key in ("purelib", "platlib"):
        path = sysconfig.get_paths()[key]
        if path not in sys.path and os.path.isdir(os.path.join(path, "torch")):
            sys.path.append(path)
    try:
        import torch  # noqa: F401
        return torch
    except ImportError:
        return None


def _want_cuda(torch, cuda_home) -> bool:
    flag = os.environ.get("GRO_FAST_BUILD_CUDA", "").strip()
    possible = torch.version.cuda is not None and cuda_home is not None
    if flag == "0":
        return False
    if flag == "1":
        if not possible:
            raise RuntimeError(
                "GRO_FAST_BUILD_CUDA=1 but CUDA kernels cannot be built: "
                f"torch.version.cuda={torch.version.cuda!r}, CUDA_HOME={cuda_home!r}"
            )
        return True
    if flag not in ("", "auto"):
        raise RuntimeError(f"GRO_FAST_BUILD_CUDA must be 0, 1 or unset, got {flag!r}")
    return possible


def _openmp_flags():
    if sys.platform == "darwin":
        return [], []
    return ["-fopenmp"], ["-fopenmp"]


def extensions():
    if os.environ.get("GRO_FAST_SKIP_EXT") == "1":
        return [], {}
    torch = _import_torch()
    if torch is None:
        print("gro_fast: torch not importable at build time; installing without gro_fast._C "
              "(ops fall back to the torch reference). Install torch first, then "
              "`pip install --no-build-isolation .`", file=sys.stderr)
        return [], {}
    from torch.utils import cpp_extension as ce

    sources = sorted(glob.glob(os.path.join("csrc", "*.cpp")))
    cxx = ["-O3", "-std=c++17", "-DGRO_FAST_BUILD"]
    omp_c, omp_l = _openmp_flags()
    cxx += omp_c
    define_macros = []
    if _want_cuda(torch, ce.CUDA_HOME):
        archs = os.environ.get("GRO_FAST_CUDA_ARCHS")
        if archs:
            os.environ["TORCH_CUDA_ARCH_LIST"] = archs
        sources += sorted(glob.glob(os.path.join("kernels", "*.cu")))
        define_macros.append(("GRO_FAST_WITH_CUDA", "1"))
        ext = ce.CUDAExtension(
            "gro_fast._C", sources, include_dirs=[os.path.join(ROOT, "csrc"), os.path.join(ROOT, "kernels")],
            define_macros=define_macros,
            extra_compile_args={"cxx": cxx, "nvcc": ["-O3", "-std=c++17", "--use_fast_math", "-lineinfo"]},
            extra_link_args=omp_l,
        )
    else:
        ext = ce.CppExtension(
            "gro_fast._C", sources, include_dirs=[os.path.join(ROOT, "csrc"), os.path.join(ROOT, "kernels")],
            define_macros=define_macros, extra_compile_args={"cxx": cxx}, extra_link_args=omp_l,
        )
    return [ext], {"build_ext": ce.BuildExtension.with_options(use_ninja=True)}


ext_modules, cmdclass = extensions()
setup(ext_modules=ext_modules, cmdclass=cmdclass)
