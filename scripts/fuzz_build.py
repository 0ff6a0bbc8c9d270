"""Builds ``gro_fast._C`` with AddressSanitizer + UndefinedBehaviorSanitizer for fuzzing.

Usage: ``python scripts/fuzz_build.py OUT_DIR`` (``scripts/fuzz.sh`` calls it). Writes
``OUT_DIR/_C.<abi>.so`` (the C++ CPU ops, no CUDA, no OpenMP: the fuzzer drives one thread)
and, with clang, ``OUT_DIR/asan_with_fuzzer.so``: the ASan runtime and libFuzzer in one
library to LD_PRELOAD, so libFuzzer (through atheris) sees the extension's own edge
coverage (``-fsanitize=fuzzer-no-link``). With g++ only, the extension is sanitized but not
coverage-instrumented (atheris then follows Python coverage only). Prints the preload path.
It leaves the normal build (``pip install -e .``) alone.
"""
from __future__ import annotations

import glob
import os
import shutil
import subprocess
import sys
import sysconfig
from concurrent.futures import ThreadPoolExecutor

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _compiler() -> tuple[str, bool]:
    for name in ("clang++", "clang++-18", "clang++-17", "clang++-16", "clang++-15", "clang++-14"):
        path = shutil.which(name)
        if path:
            return path, True
    return shutil.which("g++") or "c++", False


def _runtime_dir(cxx: str) -> str:
    out = subprocess.run([cxx, "-print-resource-dir"], capture_output=True, text=True).stdout
    return os.path.join(out.strip(), "lib", "linux")


def _preload(cxx: str, clang: bool, out: str) -> str:
    """The runtime library to LD_PRELOAD into Python."""
    if not clang:
        return subprocess.run([cxx, "-print-file-name=libasan.so"], capture_output=True,
                              text=True).stdout.strip()
    rt = _runtime_dir(cxx)
    asan = os.path.join(out, "asan.a")
    shutil.copy(os.path.join(rt, "libclang_rt.asan-x86_64.a"), asan)
    # A shared library cannot carry .preinit_array: drop that one object.
    subprocess.run(["ar", "d", asan, "asan_preinit.cpp.o"], check=True)
    lib = os.path.join(out, "asan_with_fuzzer.so")
    subprocess.run([cxx, "-shared", "-o", lib, "-Wl,--whole-archive", asan,
                    os.path.join(rt, "libclang_rt.fuzzer_no_main-x86_64.a"),
                    os.path.join(rt, "libclang_rt.asan_cxx-x86_64.a"), "-Wl,--no-whole-archive",
                    "-lpthread", "-ldl", "-lrt", "-lm", "-lstdc++"], check=True)
    return lib


def main(out: str) -> None:
    import torch
    from torch.utils import cpp_extension as ce
    os.makedirs(out, exist_ok=True)
    cxx, clang = _compiler()
    sanitize = ["-fsanitize=address,undefined", "-fno-sanitize-recover=undefined",
                "-fno-omit-frame-pointer"]
    if clang:
        sanitize += ["-fsanitize=fuzzer-no-link", "-fno-sanitize=vptr,function"]
    abi = int(torch._C._GLIBCXX_USE_CXX11_ABI)
    flags = ["-std=c++17", "-O1", "-g", "-fPIC", "-DGRO_FAST_BUILD", "-Wno-unknown-pragmas", "-w",
             "-DTORCH_EXTENSION_NAME=_C", "-DTORCH_API_INCLUDE_EXTENSION_H",
             f"-D_GLIBCXX_USE_CXX11_ABI={abi}", f"-I{os.path.join(ROOT, 'csrc')}", f"-I{os.path.join(ROOT, 'kernels')}",
             f"-I{sysconfig.get_paths()['include']}"] + [f"-I{p}" for p in ce.include_paths()]
    sources = sorted(glob.glob(os.path.join(ROOT, "csrc", "*.cpp")))
    objects = [os.path.join(out, os.path.basename(s) + ".o") for s in sources]

    headers = glob.glob(os.path.join(ROOT, "csrc", "*.h")) + glob.glob(
        os.path.join(ROOT, "kernels", "*.h"))

    def compile_one(pair):
        src, obj = pair
        if os.path.exists(obj) and os.path.getmtime(obj) > max(
                os.path.getmtime(p) for p in [src, *headers]):
            return   # up to date
        subprocess.run([cxx, *flags, *sanitize, "-c", src, "-o", obj], check=True)

    with ThreadPoolExecutor(int(os.environ.get("MAX_JOBS", "2"))) as pool:
        list(pool.map(compile_one, zip(sources, objects)))
    suffix = sysconfig.get_config_var("EXT_SUFFIX")
    lib_dirs = ce.library_paths()
    link = ["-fsanitize=address,undefined"]   # the runtime comes from the preloaded library
    subprocess.run([cxx, "-shared", *link, "-o", os.path.join(out, "_C" + suffix), *objects,
                    *[f"-L{p}" for p in lib_dirs], *[f"-Wl,-rpath,{p}" for p in lib_dirs],
                    "-lc10", "-ltorch", "-ltorch_cpu", "-ltorch_python"], check=True)
    print(_preload(cxx, clang, out))


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else os.path.join(ROOT, "build", "fuzz"))
