"""Small Triton helpers shared by the kernels.

``dot`` / ``mma`` (``acc + a @ b`` with an explicit input precision): ``tl.dot`` with fp32
accumulation. Triton's CPU interpreter (TRITON_INTERPRET=1)
multiplies bf16/fp16 operands incorrectly, so under the interpreter the operands are
upcast to fp32 first (``UPCAST`` is a compile-time flag; GPU launches pass False and use
the tensor cores on the original dtype).
"""
from __future__ import annotations

import triton
import triton.language as tl

from ._dispatch import interpreter_enabled


@triton.jit
def dot(a, b, UPCAST: tl.constexpr):
    if UPCAST:
        return tl.dot(a.to(tl.float32), b.to(tl.float32))
    return tl.dot(a, b)


@triton.jit
def mma(a, b, acc, PRECISION: tl.constexpr, UPCAST: tl.constexpr):
    """acc + a @ b in fp32, ``PRECISION`` the input precision of fp32 operands on a GPU."""
    if UPCAST:
        out = tl.dot(a.to(tl.float32), b.to(tl.float32), acc, input_precision="ieee")
    else:
        out = tl.dot(a, b, acc, input_precision=PRECISION)
    return out


def dot_upcast() -> bool:
    """The value to pass as ``UPCAST`` for launches from this process."""
    return interpreter_enabled()
