"""A slow, exact interpreter for the kernel IR (C semantics), used to check lowering.

Backends render the same loop nests (CUDA C today), so a kernel's IR must compute exactly what
its group's ops compute. `run_kernel` executes the IR element by element in Python on small
inputs; tests compare it with the numpy reference backend. Buffers are addressed row-major
like the backends do, and every access must fall inside its buffer. Integer `/` and `%`
truncate toward zero as in C; `Select` evaluates only the branch it takes (so guarded loads
stay in bounds).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from .kernel import (
    Accumulate,
    Bin,
    Call,
    Comment,
    Const,
    Expr,
    Kernel,
    Let,
    Load,
    Local,
    Loop,
    Select,
    Stmt,
    Store,
    Var,
)


class NotInterpretableError(Exception):
    """The IR calls a runtime helper (random masks, data-dependent indexing)."""


def _cdiv(a: int, b: int) -> int:
    q = abs(a) // abs(b)
    return q if (a >= 0) == (b >= 0) else -q


def _binary(op: str, a: Any, b: Any) -> Any:
    if op == "+":
        return a + b
    if op == "-":
        return a - b
    if op == "*":
        return a * b
    if op == "/":
        if isinstance(a, (int, np.integer)) and isinstance(b, (int, np.integer)):
            return _cdiv(int(a), int(b))
        return a / b
    if op == "%":
        return int(a) - int(b) * _cdiv(int(a), int(b))
    if op in ("max", "min"):  # a NaN wins, as in numpy and PyTorch
        if math.isnan(float(a)) or math.isnan(float(b)):
            return math.nan
        return max(a, b) if op == "max" else min(a, b)
    compare = {"<": a < b, "<=": a <= b, ">": a > b, ">=": a >= b, "==": a == b, "!=": a != b}
    if op in compare:
        return bool(compare[op])
    if op in ("&", "|", "^"):
        x, y = int(a), int(b)
        return x & y if op == "&" else x | y if op == "|" else x ^ y
    if op == "&&":
        return bool(a) and bool(b)
    if op == "||":
        return bool(a) or bool(b)
    raise NotInterpretableError(f"binary op {op}")


def _call(fn: str, args: list[Any]) -> Any:
    x = float(args[0]) if args else 0.0
    with np.errstate(all="ignore"):
        if fn == "expf":
            return float(np.exp(x))
        if fn == "logf":
            return float(np.log(x))
        if fn == "sqrtf":
            return float(np.sqrt(x))
        if fn == "tanhf":
            return math.tanh(x)
        if fn == "fabsf":
            return abs(x)
        if fn == "floorf":
            return float(math.floor(x)) if math.isfinite(x) else x
        if fn == "erff":
            return math.erf(x)
        if fn in ("asinf", "acosf", "atanf"):
            return float(getattr(np, "arc" + fn[1:-1])(x))
        if fn == "sinf":
            return math.sin(x) if math.isfinite(x) else math.nan
        if fn == "cosf":
            return math.cos(x) if math.isfinite(x) else math.nan
        if fn == "signf":
            return 0.0 if math.isnan(x) else float(np.sign(x))
        if fn == "sigmoid":
            return float(1 / (1 + np.exp(-x)))
        if fn == "powf":
            return float(np.power(x, float(args[1])))
    if fn.startswith("(") and fn.endswith(")"):
        return np.dtype(fn[1:-1]).type(args[0]).item()
    raise NotInterpretableError(f"runtime helper {fn}")


class _Machine:
    def __init__(self, buffers: dict[str, np.ndarray]) -> None:
        self.buffers = buffers
        self.env: dict[str, Any] = {}

    def value(self, e: Expr) -> Any:
        if isinstance(e, Var):
            return self.env[e.name]
        if isinstance(e, Const):
            return e.value
        if isinstance(e, Load):
            buf = self.buffers[e.buffer]
            return buf.flat[self.flat(e.buffer, e.index)].item()
        if isinstance(e, Bin):
            return _binary(e.op, self.value(e.a), self.value(e.b))
        if isinstance(e, Select):
            return self.value(e.a) if self.value(e.cond) else self.value(e.b)
        if isinstance(e, Call):
            return _call(e.fn, [self.value(a) for a in e.args])
        raise NotInterpretableError(f"expression {e!r}")

    def flat(self, name: str, index: tuple[Expr, ...]) -> int:
        """Row-major position of `index` in buffer `name`, as the backends address it (an
        index may run past its own dimension, e.g. a pixel p as [0][p]; the position must
        stay inside the buffer)."""
        buf = self.buffers[name]
        flat, stride = 0, 1
        for i, n in zip(reversed(index), reversed(buf.shape)):
            flat += int(self.value(i)) * stride
            stride *= n
        if not 0 <= flat < max(buf.size, 1):
            where = [int(self.value(i)) for i in index]
            raise IndexError(f"{name}{where} is outside {buf.shape}")
        return flat

    def run(self, body: list[Stmt]) -> None:
        for s in body:
            if isinstance(s, Loop):
                for v in range(s.extent):
                    self.env[s.var] = v
                    self.run(s.body)
            elif isinstance(s, Let):
                self.env[s.var] = self.value(s.value)
            elif isinstance(s, Local):
                self.buffers[s.name] = np.zeros(s.shape)
            elif isinstance(s, Store):
                buf = self.buffers[s.buffer]
                buf.flat[self.flat(s.buffer, s.index)] = self.value(s.value)
            elif isinstance(s, Accumulate):
                v = self.value(s.value)
                if s.op == "argmax":
                    best = self.env[f"{s.target}_max"]
                    if v > best or (math.isnan(v) and not math.isnan(best)):
                        self.env[f"{s.target}_max"] = v
                        self.env[s.target] = self.value(s.index)
                elif s.op == "+":
                    self.env[s.target] = self.env[s.target] + v
                elif s.op in ("max", "min"):
                    self.env[s.target] = _binary(s.op, self.env[s.target], v)
                else:
                    raise NotInterpretableError(f"accumulate {s.op}")
            elif not isinstance(s, Comment):
                raise NotInterpretableError(f"statement {s!r}")


def run_kernel(kernel: Kernel, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Execute `kernel` on named input arrays; return its outputs by buffer name."""
    buffers = {b.name: np.asarray(inputs[b.name]) for b in kernel.inputs}
    for b in kernel.outputs:
        buffers[b.name] = np.full(b.shape, np.nan, dtype=np.dtype(b.dtype))
    _Machine(buffers).run(kernel.body)
    return {b.name: buffers[b.name] for b in kernel.outputs}
