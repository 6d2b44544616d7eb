"""LLVM backend: the kernel IR rendered as LLVM IR text, JIT-compiled by llvmlite for the host.

Each kernel becomes `void @name(ptr args, i64 start, i64 end)`: `args` holds the buffer
pointers (inputs, then outputs, in the kernel's buffer order) and [start, end) is the slice of
the outermost loop — the one the schedule marks parallel — that this call runs, so a thread
pool splits it over the cores (ctypes releases the GIL during the call). Scalars live in
allocas that LLVM's own passes promote to registers; `Select` becomes control flow, so a
guarded (padded) load is never executed out of bounds. Accumulations carry `reassoc contract`
so LLVM may vectorise reductions and fuse multiply-adds.

The target machine is the kernel's `CPUTarget` (`compiler/target.py`: the host CPU's name and
features, or the lower vector ISA $TINYGRAD_EDU_CPU forces), optimised with the new pass
manager at -O3. "vectorize(L)" loops become explicit `<L x float>` code, L the target's
lanes. Compiled objects are cached in memory and on disk (`~/.cache/tinygrad_edu/llvm`, keyed
by a hash of the IR, the CPU, its features and the versions; a file whose checksum fails is
rebuilt, never loaded). A kernel seen before is not even rendered: a small reference file,
keyed by the kernel IR itself and this backend's code, names its object (a warm compile of
the paper AlexNet's training step spent a third of its time rendering IR it did not use; the
IR is rendered when `kernel.llvm_ir` is read). Kernels whose IR needs a
runtime helper (random masks, gathers with index arrays) run the op table's numpy
forwards instead.
"""

from __future__ import annotations

import ctypes
import functools
import hashlib
import json
import math
import os
import queue
import re
import struct
import subprocess
import sys
import threading
import time
import weakref
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..kernel import (
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
    add,
    mul,
    substitute,
    walk,
)
from ..names import check_kernel_names
from ..passes import MemoryPlan
from ..target import CPUTarget, TargetError, host_target, usable_cores
from . import llvm_objects as objects
from .numpy import NumpyExecutor, run_ops

ELEM = {"float32": "float", "float64": "double", "int64": "i64", "int32": "i32", "bool": "i8"}
CACHE_VERSION = "tinygrad_edu-llvm-3"
VECTOR_OPS = ("+", "-", "*", "/", "max", "min")
VECTOR_CALLS = {"sqrtf": "sqrt", "fabsf": "fabs", "floorf": "floor"}  # one instruction a vector
# max/min keep a NaN, as numpy and PyTorch do (maxnum/minnum, C's fmaxf, would drop it); nsz:
# which of -0.0 and +0.0 comes out is left open, sparing a sign test per element
MAX_MIN = {"max": "maximum", "min": "minimum"}
# register reductions a vector loop carries lane-wise, with their identities
VECTOR_REDUCTIONS = {"+": 0.0, "max": -math.inf, "min": math.inf}
VECTOR_COMPARES = ("<", "<=", ">", ">=", "==", "!=")
# erf(x) = 2/sqrt(pi) sum_n (-1)^n x^(2n+1) / (n! (2n+1)): coefficients of x^(2n+1), n <= 12
ERF_TAYLOR = tuple(
    (-1) ** n * 2 / math.sqrt(math.pi) / (math.factorial(n) * (2 * n + 1)) for n in range(13)
)
# erfc(z) ~ t exp(-z^2 + sum c_k t^k), t = 1 / (1 + z/2), z >= 0 (a Chebyshev fit)
ERFC_FIT = (
    -1.26551223, 1.00002368, 0.37409196, 0.09678418, -0.18628806,
    0.27886807, -1.13520398, 1.48851587, -0.82215223, 0.17087277,
)  # fmt: skip
MAX_UNROLL = 16  # "unroll" loops up to this extent are emitted once per value
MAX_VECTOR_UNROLL = 4  # vector loops of up to this many registers get constant offsets
# the narrowest half-width vector a remainder runs as (4 floats: an xmm register)
HALF_VECTOR_LANES = 4


class NotRenderableError(Exception):
    """The kernel's IR uses a runtime helper that this backend leaves to numpy."""


def _fconst(value: float, ty: str) -> str:
    if ty == "float":
        value = float(np.float32(value))
    return "0x" + struct.pack(">d", float(value)).hex().upper()


def _has_load(e: Expr) -> bool:
    return any(isinstance(x, Load) for x in walk(e))


def _loops(stmts: list[Any]) -> list[Loop]:
    """Every loop of a statement list, nested ones included."""
    out: list[Loop] = []
    for st in stmts:
        if isinstance(st, Loop):
            out.append(st)
            out += _loops(st.body)
    return out


def _names(e: Expr) -> set[str]:
    return {x.name for x in walk(e) if isinstance(x, Var)}


# Kernels whose long loops LLVM does not unroll (`_Function.leave_rolled`): measured on a
# Zen 3 (paper AlexNet training step, 74 kernels), LLVM's unrolling of their loops took 2.9
# of the 9.5 s of serial LLVM time (a 16 x 1000 bias-gradient sum alone 0.22 s for 4 KB of
# IR: its 500-element on-chip loops were fully unrolled) and changed none of their run times
# beyond noise. Convolutions, GEMMs and pooling keep it (rolled, the 55x55 max-pool ran
# 2.5 -> 17 ms), and so do loops shorter than UNROLL_MIN_EXTENT everywhere (with those
# rolled too, the max-pool's backward ran 10 -> 30 ms and a permute of 3x3 taps 1.7x slower).
ROLLED_KINDS = frozenset({"elementwise", "reduce", "movement"})
UNROLL_MIN_EXTENT = 8


class _Function:
    """Emits one kernel's LLVM IR text."""

    def __init__(self, kernel: Kernel, symbol: str, checked: bool = False) -> None:
        self.kernel = kernel
        self.checked = checked
        self.buffer_ids: dict[str, int] = {}
        self.symbol = symbol
        self.lines: list[str] = []
        self.entry: list[str] = []
        self.n = 0
        self.buffers: dict[str, tuple[str, tuple[int, ...], str]] = {}
        self.slots: dict[str, str] = {}  # "name:type" -> alloca
        self.var_type: dict[str, str] = {}
        self.loop_vars: set[str] = set()
        self.intrinsics: set[str] = set()
        self.fixed: dict[str, int] = {}  # unrolled loop variables -> their constant value
        self.vector: tuple[str, Expr] | None = None  # (loop variable, first lane's index)
        self.lanes = 1  # of the vector loop being emitted ("vectorize(L)")
        # lanes of the partial vector being emitted (a masked remainder), 0: a whole vector
        self.live_lanes = 0
        target = kernel.target
        self.masked_remainders = target is not None and target.masked_remainders
        self.vector_loops = 0  # emitted so far: loops around them are not LLVM's to vectorise
        self.vector_lets: set[str] = set()
        self.metadata: list[str] = []
        outs = [b for b in kernel.outputs if b.dtype == "float64"]
        self.ftype = "double" if outs else "float"

    def tmp(self) -> str:
        self.n += 1
        return f"%t{self.n}"

    def label(self, stem: str) -> str:
        self.n += 1
        return f"{stem}{self.n}"

    def emit(self, line: str) -> None:
        self.lines.append("  " + line)

    def block(self, name: str) -> None:
        self.lines.append(f"{name}:")

    def slot(self, name: str, ty: str) -> str:
        key = f"{name}:{ty}"
        if key not in self.slots:
            ptr = "%s_" + re.sub(r"\W", "", f"{name}_{ty}")
            self.slots[key] = ptr
            self.entry.append(f"  {ptr} = alloca {ty}")
        return self.slots[key]

    # -- types ----------------------------------------------------------------------------------
    def type_of(self, e: Expr) -> str:
        if isinstance(e, Var):
            if e.name in self.loop_vars or e.name in self.fixed:
                return "i64"
            return self.var_type.get(e.name, self.ftype)
        if isinstance(e, Const):
            if isinstance(e.value, bool):
                return "i1"
            return "i64" if isinstance(e.value, (int, np.integer)) else self.ftype
        if isinstance(e, Load):
            elem = self.buffers[e.buffer][2]
            return "i1" if elem == "i8" else elem
        if isinstance(e, Bin):
            if e.op in ("<", "<=", ">", ">=", "==", "!=", "&&", "||"):
                return "i1"
            return self.join(self.type_of(e.a), self.type_of(e.b))
        if isinstance(e, Select):
            return self.join(self.type_of(e.a), self.type_of(e.b))
        if isinstance(e, Call):
            if e.fn.startswith("(") and e.fn.endswith(")"):
                name = e.fn[1:-1]
                return "i1" if name == "bool" else ELEM.get(name, self.ftype)
            return self.join(self.ftype, *(self.type_of(a) for a in e.args))
        raise NotRenderableError(f"expression {e!r}")

    @staticmethod
    def join(*types: str) -> str:
        if "double" in types:
            return "double"
        if "float" in types:
            return "float"
        if "i64" in types or "i32" in types:
            return "i64"
        return "i1"

    def convert(self, value: str, src: str, dst: str) -> str:
        if src == dst:
            return value
        t = self.tmp()
        floats = ("float", "double")
        if src == "i1" and dst in floats:
            self.emit(f"{t} = uitofp i1 {value} to {dst}")
        elif src == "i1":
            self.emit(f"{t} = zext i1 {value} to {dst}")
        elif dst == "i1" and src in floats:
            self.emit(f"{t} = fcmp une {src} {value}, 0.0")
        elif dst == "i1":
            self.emit(f"{t} = icmp ne {src} {value}, 0")
        elif src in floats and dst in floats:
            op = "fpext" if dst == "double" else "fptrunc"
            self.emit(f"{t} = {op} {src} {value} to {dst}")
        elif src in floats:
            self.emit(f"{t} = fptosi {src} {value} to {dst}")
        elif dst in floats:
            self.emit(f"{t} = sitofp {src} {value} to {dst}")
        else:
            op = "sext" if int(src[1:]) < int(dst[1:]) else "trunc"
            self.emit(f"{t} = {op} {src} {value} to {dst}")
        return t

    # -- expressions --------------------------------------------------------------------------
    def address(self, buffer: str, index: tuple[Expr, ...], lanes: int = 1) -> tuple[str, str]:
        ptr, shape, elem = self.buffers[buffer]
        flat = "0"
        stride = 1
        for i, n in zip(reversed(index), reversed(shape)):
            v = self.value(i, "i64")
            if stride != 1:
                t = self.tmp()
                self.emit(f"{t} = mul i64 {v}, {stride}")
                v = t
            if flat == "0":
                flat = v
            else:
                t = self.tmp()
                self.emit(f"{t} = add i64 {flat}, {v}")
                flat = t
            stride *= n
        t = self.tmp()
        inbounds = "" if self.checked else " inbounds"  # checked: the index may be wrong
        self.emit(f"{t} = getelementptr{inbounds} {elem}, ptr {ptr}, i64 {flat}")
        if self.checked:
            return self.checked_address(buffer, flat, t, int(np.prod(shape)), lanes), elem
        return t, elem

    def checked_address(self, buffer: str, flat: str, ptr: str, size: int, lanes: int) -> str:
        """Bounds-check mode: an access outside [0, size) goes to a scratch slot instead and
        is recorded in the error record (flag, buffer number, flat index) for the runtime."""
        if buffer not in self.buffer_ids:
            self.buffer_ids[buffer] = len(self.buffer_ids)
        low, last, high, ok, bad = (self.tmp() for _ in range(5))
        self.emit(f"{low} = icmp sge i64 {flat}, 0")
        self.emit(f"{last} = add i64 {flat}, {lanes - 1}")
        self.emit(f"{high} = icmp slt i64 {last}, {size}")
        self.emit(f"{ok} = and i1 {low}, {high}")
        self.emit(f"{bad} = xor i1 {ok}, true")
        for slot, new in ((0, "1"), (1, str(self.buffer_ids[buffer])), (2, flat)):
            at, old, value = self.tmp(), self.tmp(), self.tmp()
            self.emit(f"{at} = getelementptr i64, ptr %err, i64 {slot}")
            self.emit(f"{old} = load i64, ptr {at}")
            self.emit(f"{value} = select i1 {bad}, i64 {new}, i64 {old}")
            self.emit(f"store i64 {value}, ptr {at}")
        safe = self.tmp()
        self.emit(f"{safe} = select i1 {ok}, ptr {ptr}, ptr %sink")
        return safe

    def value(self, e: Expr, want: str | None = None) -> str:
        ty = self.type_of(e)
        v = self.raw(e, ty)
        return self.convert(v, ty, want) if want else v

    def raw(self, e: Expr, ty: str) -> str:
        if isinstance(e, Var):
            if e.name in self.fixed:
                return str(self.fixed[e.name])
            if e.name in self.loop_vars:
                t = self.tmp()
                self.emit(f"{t} = load i64, ptr {self.slot(e.name, 'i64')}")
                return t
            t = self.tmp()
            self.emit(f"{t} = load {ty}, ptr {self.slot(e.name, ty)}")
            return t
        if isinstance(e, Const):
            if ty == "i1":
                return "true" if e.value else "false"
            if ty == "i64":
                return str(int(e.value))
            return _fconst(float(e.value), ty)
        if isinstance(e, Load):
            addr, elem = self.address(e.buffer, e.index)
            t = self.tmp()
            self.emit(f"{t} = load {elem}, ptr {addr}")
            return self.convert(t, elem, "i1") if elem == "i8" else t
        if isinstance(e, Bin):
            return self.binary(e, ty)
        if isinstance(e, Select):
            return self.select(e, ty)
        if isinstance(e, Call):
            return self.call(e, ty)
        raise NotRenderableError(f"expression {e!r}")

    def binary(self, e: Bin, ty: str) -> str:
        t = self.tmp()
        if e.op in ("&&", "||"):
            a, b = self.value(e.a, "i1"), self.value(e.b, "i1")
            self.emit(f"{t} = {'and' if e.op == '&&' else 'or'} i1 {a}, {b}")
            return t
        if e.op in ("<", "<=", ">", ">=", "==", "!="):
            common = self.join(self.type_of(e.a), self.type_of(e.b))
            a, b = self.value(e.a, common), self.value(e.b, common)
            if common in ("float", "double"):
                pred = {"<": "olt", "<=": "ole", ">": "ogt", ">=": "oge", "==": "oeq", "!=": "une"}[
                    e.op
                ]
                self.emit(f"{t} = fcmp {pred} {common} {a}, {b}")
            else:
                pred = {"<": "slt", "<=": "sle", ">": "sgt", ">=": "sge", "==": "eq", "!=": "ne"}[
                    e.op
                ]
                self.emit(f"{t} = icmp {pred} {common} {a}, {b}")
            return t
        a, b = self.value(e.a, ty), self.value(e.b, ty)
        if ty in ("float", "double"):
            if e.op in ("max", "min"):
                return self.max_min(e.op, ty, a, b)
            op = {"+": "fadd", "-": "fsub", "*": "fmul", "/": "fdiv"}.get(e.op)
            if op is None:
                raise NotRenderableError(f"float {e.op}")
            # `contract` lets a*b + c become one fused multiply-add
            self.emit(f"{t} = {op} contract {ty} {a}, {b}")
            return t
        op = {"+": "add", "-": "sub", "*": "mul", "/": "sdiv", "%": "srem"}.get(e.op)
        op = op or {"&": "and", "|": "or", "^": "xor"}.get(e.op)
        if op is None:
            if e.op in ("max", "min"):
                c = self.tmp()
                self.emit(f"{c} = icmp {'sgt' if e.op == 'max' else 'slt'} {ty} {a}, {b}")
                self.emit(f"{t} = select i1 {c}, {ty} {a}, {ty} {b}")
                return t
            raise NotRenderableError(f"integer {e.op}")
        if ty == "i1":
            a, b = self.convert(a, "i1", "i64"), self.convert(b, "i1", "i64")
            ty = "i64"
        self.emit(f"{t} = {op} {ty} {a}, {b}")
        return t

    def select(self, e: Select, ty: str) -> str:
        if not (_has_load(e.a) or _has_load(e.b)):  # nothing to guard: a branch-free select
            cond = self.value(e.cond, "i1")
            a, b = self.value(e.a, ty), self.value(e.b, ty)
            t = self.tmp()
            self.emit(f"{t} = select i1 {cond}, {ty} {a}, {ty} {b}")
            return t
        # real control flow: only the taken side runs (guarded loads stay in bounds)
        result = self.slot(f"sel{self.n}", ty)
        cond = self.value(e.cond, "i1")
        yes, no, done = self.label("sel_yes"), self.label("sel_no"), self.label("sel_done")
        self.emit(f"br i1 {cond}, label %{yes}, label %{no}")
        self.block(yes)
        self.emit(f"store {ty} {self.value(e.a, ty)}, ptr {result}")
        self.emit(f"br label %{done}")
        self.block(no)
        self.emit(f"store {ty} {self.value(e.b, ty)}, ptr {result}")
        self.emit(f"br label %{done}")
        self.block(done)
        t = self.tmp()
        self.emit(f"{t} = load {ty}, ptr {result}")
        return t

    def intrinsic(self, name: str, ty: str, *args: str) -> str:
        suffix = "f32" if ty == "float" else "f64"
        fn = f"llvm.{name}.{suffix}"
        self.intrinsics.add(f"declare {ty} @{fn}({', '.join([ty] * len(args))})")
        t = self.tmp()
        self.emit(f"{t} = call {ty} @{fn}({', '.join(f'{ty} {a}' for a in args)})")
        return t

    def max_min(self, op: str, ty: str, a: str, b: str) -> str:
        """max/min of two scalars that keeps a NaN: `a` where it is NaN, else `a > b ? a : b`
        (which gives `b` where `b` is NaN). x86 does each half in one instruction (maxps is
        that select), and LLVM's loop vectoriser takes the selects as they are; llvm.maximum
        it left scalar in a 3x3 max-pool (3.8 ms became 12.5) and maxnum drops the NaN."""
        pick, first, nan, t = self.tmp(), self.tmp(), self.tmp(), self.tmp()
        self.emit(f"{pick} = fcmp {'ogt' if op == 'max' else 'olt'} {ty} {a}, {b}")
        self.emit(f"{first} = select i1 {pick}, {ty} {a}, {ty} {b}")
        self.emit(f"{nan} = fcmp uno {ty} {a}, 0.0")
        self.emit(f"{t} = select i1 {nan}, {ty} {a}, {ty} {first}")
        return t

    def call(self, e: Call, ty: str) -> str:
        if e.fn.startswith("(") and e.fn.endswith(")"):
            return self.value(e.args[0], ty)
        x = self.value(e.args[0], ty) if e.args else "0"
        one = _fconst(1.0, ty)
        simple = {"expf": "exp", "logf": "log", "sqrtf": "sqrt", "fabsf": "fabs", "floorf": "floor"}
        # LLVM lowers these to libm's sinf/cosf (sin/cos for doubles), lane by lane
        simple |= {"sinf": "sin", "cosf": "cos", "asinf": "asin", "acosf": "acos", "atanf": "atan"}
        if e.fn in simple:
            return self.intrinsic(simple[e.fn], ty, x)
        if e.fn == "powf":
            return self.intrinsic("pow", ty, x, self.value(e.args[1], ty))
        if e.fn == "sigmoid":
            neg = self.tmp()
            self.emit(f"{neg} = fneg {ty} {x}")
            ex = self.intrinsic("exp", ty, neg)
            den, t = self.tmp(), self.tmp()
            self.emit(f"{den} = fadd {ty} {one}, {ex}")
            self.emit(f"{t} = fdiv {ty} {one}, {den}")
            return t
        if e.fn == "tanhf":  # tanh x = 1 - 2 / (exp(2x) + 1): exact at +-inf, no libm call
            two = self.tmp()
            self.emit(f"{two} = fadd {ty} {x}, {x}")
            ex = self.intrinsic("exp", ty, two)
            den, q, t = self.tmp(), self.tmp(), self.tmp()
            self.emit(f"{den} = fadd {ty} {ex}, {one}")
            self.emit(f"{q} = fdiv {ty} {_fconst(2.0, ty)}, {den}")
            self.emit(f"{t} = fsub {ty} {one}, {q}")
            return t
        if e.fn == "erff":
            return self.erf(x, ty)
        if e.fn == "signf":
            pos, neg, a, t = self.tmp(), self.tmp(), self.tmp(), self.tmp()
            self.emit(f"{pos} = fcmp ogt {ty} {x}, 0.0")
            self.emit(f"{neg} = fcmp olt {ty} {x}, 0.0")
            self.emit(f"{a} = select i1 {neg}, {ty} {_fconst(-1.0, ty)}, {ty} 0.0")
            self.emit(f"{t} = select i1 {pos}, {ty} {one}, {ty} {a}")
            return t
        raise NotRenderableError(f"runtime helper {e.fn}")

    def binop(self, op: str, ty: str, a: str, b: str) -> str:
        t = self.tmp()
        self.emit(f"{t} = {op} {ty} {a}, {b}")
        return t

    def horner(self, coefficients: tuple[float, ...], t: str, ty: str) -> str:
        """c0 + t (c1 + t (c2 + ...)), lowest coefficient first."""
        acc = _fconst(coefficients[-1], ty)
        for c in reversed(coefficients[:-1]):
            acc = self.binop("fadd", ty, self.binop("fmul", ty, acc, t), _fconst(c, ty))
        return acc

    def erf(self, x: str, ty: str) -> str:
        """erf (LLVM has no erf intrinsic). Float kernels: the Taylor series for |x| < 1, else
        1 - erfc(|x|) by a Chebyshev fit of relative error 1.2e-7, with x's sign; within ~2
        float32 ulps of the exact value, and vectorisable. Double kernels call libm's erf (the
        JIT resolves it in the process, as it does the libm calls LLVM makes for exp): the
        fit's 1e-8 broke float64 agreement with eager (exact GELU's forward differed by 4e-9)."""
        if ty == "double":
            self.intrinsics.add("declare double @erf(double)")
            t = self.tmp()
            self.emit(f"{t} = call double @erf(double {x})")
            return t
        a = self.intrinsic("fabs", ty, x)
        sq = self.binop("fmul", ty, a, a)
        small = self.binop("fmul", ty, a, self.horner(ERF_TAYLOR, sq, ty))
        half = self.binop("fmul", ty, a, _fconst(0.5, ty))
        t = self.binop("fdiv", ty, _fconst(1.0, ty), self.binop("fadd", ty, half, _fconst(1, ty)))
        power = self.binop("fsub", ty, self.horner(ERFC_FIT, t, ty), sq)
        erfc = self.binop("fmul", ty, t, self.intrinsic("exp", ty, power))
        large = self.binop("fsub", ty, _fconst(1.0, ty), erfc)
        near = self.tmp()
        self.emit(f"{near} = fcmp olt {ty} {a}, {_fconst(1.0, ty)}")
        chosen = self.tmp()
        self.emit(f"{chosen} = select i1 {near}, {ty} {small}, {ty} {large}")
        return self.intrinsic("copysign", ty, chosen, x)

    # -- statements ---------------------------------------------------------------------------
    def stmts(self, body: list[Stmt], parallel_loop: Loop | None = None) -> None:
        for s in body:
            if isinstance(s, Loop) and s is not parallel_loop and self.try_special_loop(s):
                continue
            if isinstance(s, Loop):
                self.loop(s, s is parallel_loop)
            elif isinstance(s, Let):
                ty = self.type_of(s.value)
                v = self.value(s.value, ty)
                self.var_type[s.var] = ty
                self.emit(f"store {ty} {v}, ptr {self.slot(s.var, ty)}")
            elif isinstance(s, Store):
                addr, elem = self.address(s.buffer, s.index)
                v = self.value(s.value, "i1" if elem == "i8" else elem)
                if elem == "i8":
                    v = self.convert(v, "i1", "i8")
                self.emit(f"store {elem} {v}, ptr {addr}")
            elif isinstance(s, Accumulate):
                self.accumulate(s)
            elif isinstance(s, Local):
                size = int(np.prod(s.shape))
                ptr = f"%local_{s.name}"
                self.entry.append(f"  {ptr} = alloca [{size} x {self.ftype}]")
                self.buffers[s.name] = (ptr, s.shape, self.ftype)
            elif not isinstance(s, Comment):
                raise NotRenderableError(f"statement {s!r}")

    def accumulate(self, s: Accumulate) -> None:
        if s.op == "argmax":
            self.argmax(s)
            return
        ty = self.var_type.get(s.target, self.ftype)
        slot = self.slot(s.target, ty)
        cur, t = self.tmp(), self.tmp()
        self.emit(f"{cur} = load {ty}, ptr {slot}")
        v = self.value(s.value, ty)
        if s.op == "+":
            self.emit(f"{t} = fadd reassoc contract {ty} {cur}, {v}")
        elif s.op in ("max", "min"):
            t = self.max_min(s.op, ty, cur, v)
        else:
            raise NotRenderableError(f"accumulate {s.op}")
        self.emit(f"store {ty} {t}, ptr {slot}")

    # -- schedule tags the backend carries out itself ------------------------------------------
    def try_special_loop(self, lp: Loop) -> bool:
        """Carry out "unroll" (small loops: the body once per value, the variable a constant,
        so on-chip tiles get constant offsets and stay in registers) and "vectorize(L)"
        (explicit <L x float> code for bodies of contiguous loads/stores and arithmetic);
        False leaves the loop to the generic path."""
        if "unroll" in lp.tags and lp.extent <= MAX_UNROLL and lp.var not in self.fixed:
            for v in range(lp.extent):
                self.fixed[lp.var] = v
                self.stmts(lp.body)
            del self.fixed[lp.var]
            return True
        if lp.transpose_lanes and self.vector is None and self.transposed_copy(lp):
            return True
        lanes = lp.vector_lanes
        if (
            lanes
            and self.vector is None
            and self.ftype == "float"
            and lp.extent >= (self.half_vector_lanes(lp, lanes) or lanes)
            and self.vectorizable(lp)
        ):
            self.lanes = lanes
            self.vector_loop(lp)
            return True
        return False

    def transposed_copy(self, lp: Loop) -> bool:
        """A "transpose(L)" loop (`kernel.transpose`): `for col < C: lets; for p < L: [bw =
        b0 + p;] dst[row(p)][col] = value(p)` with value(p) a vector along p. Per L columns:
        the L values as vectors of p, transposed in registers by log2(L) rounds of two-vector
        shuffles, then L stores of L columns each. Done lane by lane it was a load and a store
        per element, a third of ResNet-18's layer1 weight gradients (Zen 5). False: the loop
        is not of that form (the generic path then runs it as written)."""
        lanes = lp.transpose_lanes
        assert lanes is not None
        if (
            self.ftype != "float"
            or lanes & (lanes - 1)
            or lp.extent % lanes
            or not lp.body
            or not isinstance(lp.body[-1], Loop)
            or any(not isinstance(s, Let) for s in lp.body[:-1])
        ):
            return False
        inner = lp.body[-1]
        stmts = list(inner.body)
        env: dict[str, Expr] = {}
        while stmts and isinstance(stmts[0], Let):  # pixel positions along p: inlined
            let = stmts.pop(0)
            env[let.var] = substitute(let.value, env)
        if len(stmts) != 1 or not isinstance(stmts[0], Store):
            return False
        # fewer pixels than lanes (a 14-pixel row, 16 lanes): masked loads of the live lanes
        # where the target masks cheaply, and only the live rows of the result stored
        live = inner.extent
        if live != lanes and not (self.masked_remainders and lanes // 2 <= live < lanes):
            return False
        store = stmts[0]
        value = substitute(store.value, env)
        index = tuple(substitute(i, env) for i in store.index)
        setup = {s.var for s in lp.body[:-1]}
        p = inner.var
        if (
            index[-1] != Var(lp.var)
            or store.buffer not in self.buffers
            or self.buffers[store.buffer][2] != "float"
            or any(lp.var in _names(i) for i in index[:-1])
            or self.lane_kind(value, p, set()) != "v"
            or any(name in setup for i in index[:-1] for name in _names(i))
        ):
            return False
        chunk = f"{lp.var}.chunk"
        self.lanes = lanes

        def body() -> None:
            columns = []
            for c in range(lanes):
                col = add(mul(Var(chunk), lanes), Const(c))
                here = {lp.var: col}
                for let in lp.body[:-1]:
                    assert isinstance(let, Let)
                    self.stmts([Let(let.var, substitute(let.value, here))])
                self.vector = (p, Const(0))
                self.vector_lets = set()
                self.live_lanes = 0 if live == lanes else live
                columns.append(self.vec_value(substitute(value, here)))
                self.live_lanes = 0
                self.vector = None
            rows = self.transpose_vectors(columns)
            for q, row in enumerate(rows[:live]):
                at = tuple(substitute(i, {p: Const(q)}) for i in index[:-1])
                address = self.address(store.buffer, (*at, mul(Var(chunk), lanes)), lanes)[0]
                self.emit(f"store {self.vec} {row}, ptr {address}, align 4")

        self.vector_loops += 1
        self.emit(f"; transpose({lanes}) into {store.buffer}, {lanes} columns at a time")
        self.loop(Loop(chunk, lp.extent // lanes, []), False, body)
        return True

    def transpose_vectors(self, rows: list[str]) -> list[str]:
        """The columns of the square matrix whose rows are `rows` (L vectors of L lanes):
        at block size b = L/2, ..., 1, every pair of rows (i, i + b) swaps the upper-right
        and lower-left b x b blocks of each of their 2b-wide column blocks (the iterative
        form of transpose(A) = [[A11^T, A21^T], [A12^T, A22^T]])."""
        n = len(rows)
        out = list(rows)
        b = n // 2
        while b >= 1:
            for i in range(n):
                if (i // b) % 2:
                    continue
                j = i + b
                lo = [e if e % (2 * b) < b else n + e - b for e in range(n)]
                hi = [e + b if e % (2 * b) < b else n + e for e in range(n)]
                a, c = self.tmp(), self.tmp()
                for dst, mask in ((a, lo), (c, hi)):
                    m = ", ".join(f"i32 {k}" for k in mask)
                    self.emit(
                        f"{dst} = shufflevector {self.vec} {out[i]}, {self.vec} {out[j]}, "
                        f"<{n} x i32> <{m}>"
                    )
                out[i], out[j] = a, c
            b //= 2
        return out

    def half_vector_lanes(self, lp: Loop, lanes: int) -> int:
        """The lanes of the half-width vector a remainder of a loop of `lanes` vectors may
        run as (then a loop of that many iterations or more is vectorised), 0 for none:
        not where remainders are masked, nor for a sum (its lane-wise partials are `lanes`
        wide), nor below HALF_VECTOR_LANES."""
        half = lanes // 2
        sums = any(isinstance(st, Accumulate) for st in lp.body)
        if self.masked_remainders or sums or half < HALF_VECTOR_LANES:
            return 0
        return half

    def vectorizable(self, lp: Loop) -> bool:
        lets: set[str] = set()
        for st in lp.body:
            if isinstance(st, Comment):
                continue
            if isinstance(st, Let):
                kind = self.lane_kind(st.value, lp.var, lets)
                if kind is None or kind == "m":  # masks live only inside a select
                    return False
                if kind == "v":
                    lets.add(st.var)
                elif st.var in lets:
                    lets.discard(st.var)
            elif isinstance(st, Store):
                if not self.contiguous(st.buffer, st.index, lp.var, lets):
                    return False
                if self.lane_kind(st.value, lp.var, lets) in (None, "m"):
                    return False
            elif isinstance(st, Accumulate):
                if not self.vector_accumulable(st, lp, lets):
                    return False
            else:
                return False
        return True

    def vector_accumulable(self, st: Accumulate, lp: Loop, lets: set[str]) -> bool:
        """`acc op= value` into a float register the loop body reads nowhere else: summed (or
        maxed) lane-wise in a vector, reduced across lanes once after the loop. Without this,
        a sum over 49 pixels (7x7) left LLVM to vectorise the loop outside it, with gathers."""
        if st.op not in VECTOR_REDUCTIONS or "[" in st.target or st.target in lets:
            return False
        if self.var_type.get(st.target, self.ftype) != "float":
            return False
        if self.lane_kind(st.value, lp.var, lets) not in ("u", "v"):
            return False
        for other in lp.body:
            if not isinstance(other, (Let, Store, Accumulate)):
                continue
            written = other.var if isinstance(other, Let) else getattr(other, "target", None)
            if other is not st and written == st.target:
                return False
            exprs = [other.value, *(other.index if isinstance(other, Store) else ())]
            if any(isinstance(x, Var) and x.name == st.target for e in exprs for x in walk(e)):
                return False
        return True

    def contiguous(self, buffer: str, index: tuple[Expr, ...], var: str, lets: set[str]) -> bool:
        """A float buffer indexed [uniform..., uniform + var]: one vector of lanes."""
        if buffer not in self.buffers or self.buffers[buffer][2] != "float" or not index:
            return False
        if any(self.lane_kind(i, var, lets) != "u" for i in index[:-1]):
            return False
        return self.unit_stride(index[-1], var, lets)

    def unit_stride(self, e: Expr, var: str, lets: set[str]) -> bool:
        """`e` is the loop variable plus terms that are the same for every lane."""
        if e == Var(var):
            return True
        if isinstance(e, Bin) and e.op == "+":
            for a, b in ((e.a, e.b), (e.b, e.a)):
                if self.unit_stride(a, var, lets) and self.lane_kind(b, var, lets) == "u":
                    return True
        return False

    def lane_kind(self, e: Expr, var: str, lets: set[str]) -> str | None:
        """'u' (the same for every lane), 'v' (a float vector) or None (not supported)."""
        if isinstance(e, Var):
            if e.name == var:
                return None
            return "v" if e.name in lets else "u"
        if isinstance(e, Const):
            return "u"
        if isinstance(e, Load):
            if all(self.lane_kind(i, var, lets) == "u" for i in e.index):
                return "u"
            return "v" if self.contiguous(e.buffer, e.index, var, lets) else None
        if isinstance(e, Bin):
            a, b = self.lane_kind(e.a, var, lets), self.lane_kind(e.b, var, lets)
            if a is None or b is None:
                return None
            if a == b == "u":
                return "u"
            if e.op in VECTOR_COMPARES and "m" not in (a, b):
                # a per-lane condition ("m": a mask), only to choose between float lanes
                floats = all(self.type_of(p) == "float" for p in (e.a, e.b))
                return "m" if floats else None
            if e.op in ("&&", "||"):
                return "m" if a in ("m", "u") and b in ("m", "u") else None
            return "v" if e.op in VECTOR_OPS and "m" not in (a, b) else None
        if isinstance(e, (Select, Call)):
            parts = (e.cond, e.a, e.b) if isinstance(e, Select) else e.args
            kinds = [self.lane_kind(p, var, lets) for p in parts]
            if all(k == "u" for k in kinds):
                return "u"
            if None in kinds or "m" in kinds[1:]:
                return None
            if isinstance(e, Select) and not (_has_load(e.a) or _has_load(e.b)):
                return "v"  # a condition (per lane or for all) picks between vectors
            if isinstance(e, Call) and e.fn in VECTOR_CALLS and "m" not in kinds:
                return "v"
        return None

    def vector_loop(self, lp: Loop) -> None:
        self.vector_loops += 1
        lanes = self.lanes
        full = lp.extent // lanes
        sums = [st for st in lp.body if isinstance(st, Accumulate)]
        for st in sums:  # lane-wise partial results start at the reduction's identity
            start = self.splat(_fconst(VECTOR_REDUCTIONS[st.op], "float"), "float")
            self.emit(f"store {self.vec} {start}, ptr {self.vector_slot(st.target)}")
        if full <= MAX_VECTOR_UNROLL:  # constant offsets: tiles can live in registers
            for c in range(full):
                self.vector_body(lp, Const(c * lanes))
        else:
            # "." cannot occur in a kernel's names: no Let of the kernel can shadow the counter
            chunk = f"{lp.var}.chunk"
            self.loop(
                Loop(chunk, full, []),
                False,
                lambda: self.vector_body(lp, Bin("*", Var(chunk), Const(lanes))),
            )
        rest = lp.extent - full * lanes
        # the remainder as one masked vector, after constant-offset vectors only: after a
        # run-time loop of them (an image row of 227) LLVM took 3x as long to compile the
        # kernel (the stem's weight gradient: 0.34 -> 1.12 s, a fifth of AlexNet's cold step)
        if self.masked_remainders and rest >= 2 and full <= MAX_VECTOR_UNROLL:
            self.live_lanes = rest
            self.vector_body(lp, Const(full * lanes))
            self.live_lanes = 0
            rest = 0
        half = self.half_vector_lanes(lp, lanes)
        if half and rest >= half:
            # no cheap masks (AVX2): a half-width vector takes most of the remainder, so a
            # 12-column run is one ymm and one xmm copy instead of a ymm and 4 lanes
            self.lanes = half
            self.vector_body(lp, Const(full * lanes))
            self.lanes = lanes
            rest -= half
        for st in sums:  # across the lanes, into the register, once per loop
            self.reduce_lanes(st)
        for v in range(lp.extent - rest, lp.extent):  # the remainder, one lane at a time
            self.fixed[lp.var] = v
            self.stmts(lp.body)
            del self.fixed[lp.var]

    def lane_mask(self) -> str:
        """The constant mask of a partial vector's live lanes (the first `live_lanes`)."""
        bits = ["i1 true"] * self.live_lanes + ["i1 false"] * (self.lanes - self.live_lanes)
        return f"<{self.lanes} x i1> <{', '.join(bits)}>"

    def vector_load(self, address: str) -> str:
        t = self.tmp()
        if not self.live_lanes:
            self.emit(f"{t} = load {self.vec}, ptr {address}, align 4")
            return t
        # a masked load touches no memory in its dead lanes (no fault past a buffer's end)
        fn = f"llvm.masked.load.v{self.lanes}f32.p0"
        self.intrinsics.add(f"declare {self.vec} @{fn}(ptr, i32, <{self.lanes} x i1>, {self.vec})")
        self.emit(
            f"{t} = call {self.vec} @{fn}(ptr {address}, i32 4, {self.lane_mask()}, "
            f"{self.vec} zeroinitializer)"
        )
        return t

    def vector_store(self, value: str, address: str) -> None:
        if not self.live_lanes:
            self.emit(f"store {self.vec} {value}, ptr {address}, align 4")
            return
        fn = f"llvm.masked.store.v{self.lanes}f32.p0"
        self.intrinsics.add(f"declare void @{fn}({self.vec}, ptr, i32, <{self.lanes} x i1>)")
        self.emit(f"call void @{fn}({self.vec} {value}, ptr {address}, i32 4, {self.lane_mask()})")

    def vector_body(self, lp: Loop, base: Expr) -> None:
        self.vector = (lp.var, base)
        self.vector_lets = set()
        for st in lp.body:
            if isinstance(st, Let):
                if self.lane_kind(st.value, lp.var, self.vector_lets) == "v":
                    v = self.vec_value(st.value)
                    self.vector_lets.add(st.var)
                    self.emit(f"store {self.vec} {v}, ptr {self.slot(st.var, self.vec)}")
                else:
                    self.vector_lets.discard(st.var)
                    self.stmts([st])
            elif isinstance(st, Store):
                value = self.vec_value(st.value)
                self.vector_store(value, self.lane_address(st.buffer, st.index))
            elif isinstance(st, Accumulate):
                slot = self.vector_slot(st.target)
                v, cur, t = self.vec_value(st.value), self.tmp(), self.tmp()
                if self.live_lanes:  # dead lanes add the reduction's identity
                    identity = self.splat(_fconst(VECTOR_REDUCTIONS[st.op], "float"), "float")
                    live = self.tmp()
                    self.emit(
                        f"{live} = select {self.lane_mask()}, {self.vec} {v}, {self.vec} {identity}"
                    )
                    v = live
                self.emit(f"{cur} = load {self.vec}, ptr {slot}")
                if st.op == "+":
                    self.emit(f"{t} = fadd reassoc contract {self.vec} {cur}, {v}")
                else:
                    t = self.vec_max_min(st.op, cur, v)
                self.emit(f"store {self.vec} {t}, ptr {slot}")
        self.vector = None
        self.vector_lets = set()

    def vec_max_min(self, op: str, a: str, b: str) -> str:
        """Lane-wise max/min that keeps a NaN (`max_min` for vectors, as llvm.maximum)."""
        fn = f"llvm.{MAX_MIN[op]}.v{self.lanes}f32"
        self.intrinsics.add(f"declare {self.vec} @{fn}({self.vec}, {self.vec})")
        t = self.tmp()
        self.emit(f"{t} = call nsz {self.vec} @{fn}({self.vec} {a}, {self.vec} {b})")
        return t

    def vector_slot(self, target: str) -> str:
        """The vector of a register's lane-wise partial sums ("." is in no kernel name)."""
        return self.slot(f"{target}.lanes{self.lanes}", self.vec)

    def reduce_lanes(self, st: Accumulate) -> None:
        """Fold a register's lane-wise partials into the register itself."""
        scalar = self.slot(st.target, "float")
        part, cur, t = self.tmp(), self.tmp(), self.tmp()
        self.emit(f"{part} = load {self.vec}, ptr {self.vector_slot(st.target)}")
        self.emit(f"{cur} = load float, ptr {scalar}")
        if st.op == "+":  # the register's value is the sum's start
            fn = f"llvm.vector.reduce.fadd.v{self.lanes}f32"
            self.intrinsics.add(f"declare float @{fn}(float, {self.vec})")
            self.emit(f"{t} = call reassoc float @{fn}(float {cur}, {self.vec} {part})")
        else:
            fn = f"llvm.vector.reduce.f{MAX_MIN[st.op]}.v{self.lanes}f32"
            self.intrinsics.add(f"declare float @{fn}({self.vec})")
            across = self.tmp()
            self.emit(f"{across} = call nsz float @{fn}({self.vec} {part})")
            t = self.max_min(st.op, "float", cur, across)
        self.emit(f"store float {t}, ptr {scalar}")

    def lane_address(self, buffer: str, index: tuple[Expr, ...]) -> str:
        """Address of lane 0: the loop variable replaced by the chunk's first index."""
        assert self.vector is not None
        var, base = self.vector
        first = index[:-1] + (substitute(index[-1], {var: base}),)
        return self.address(buffer, first, self.live_lanes or self.lanes)[0]

    @property
    def vec(self) -> str:
        """The LLVM type of one vector of the loop being emitted."""
        return f"<{self.lanes} x float>"

    @property
    def mask(self) -> str:
        return f"<{self.lanes} x i1>"

    def vec_value(self, e: Expr) -> str:
        assert self.vector is not None
        var = self.vector[0]
        kind = self.lane_kind(e, var, self.vector_lets)
        if kind == "u":
            return self.splat(self.value(e, "float"), "float")
        t = self.tmp()
        if isinstance(e, Var):
            self.emit(f"{t} = load {self.vec}, ptr {self.slot(e.name, self.vec)}")
        elif isinstance(e, Load):
            return self.vector_load(self.lane_address(e.buffer, e.index))
        elif isinstance(e, Select):
            if self.lane_kind(e.cond, var, self.vector_lets) == "m":
                cond, cond_ty = self.vec_mask(e.cond), self.mask
            else:
                cond, cond_ty = self.value(e.cond, "i1"), "i1"
            a, b = self.vec_value(e.a), self.vec_value(e.b)
            self.emit(f"{t} = select {cond_ty} {cond}, {self.vec} {a}, {self.vec} {b}")
        elif isinstance(e, Call):
            fn = f"llvm.{VECTOR_CALLS[e.fn]}.v{self.lanes}f32"
            self.intrinsics.add(f"declare {self.vec} @{fn}({self.vec})")
            self.emit(f"{t} = call {self.vec} @{fn}({self.vec} {self.vec_value(e.args[0])})")
        else:
            assert isinstance(e, Bin)
            a, b = self.vec_value(e.a), self.vec_value(e.b)
            if e.op in ("max", "min"):
                return self.vec_max_min(e.op, a, b)
            op = {"+": "fadd", "-": "fsub", "*": "fmul", "/": "fdiv"}[e.op]
            self.emit(f"{t} = {op} contract {self.vec} {a}, {b}")
        return t

    def vec_mask(self, e: Expr) -> str:
        """A <L x i1> lane condition: float comparisons, combined with && and ||."""
        assert isinstance(e, Bin) and self.vector is not None
        t = self.tmp()
        if e.op in ("&&", "||"):
            a, b = (
                self.vec_mask(p)
                if self.lane_kind(p, self.vector[0], self.vector_lets) == "m"
                else self.splat(self.value(p, "i1"), "i1")
                for p in (e.a, e.b)
            )
            self.emit(f"{t} = {'and' if e.op == '&&' else 'or'} {self.mask} {a}, {b}")
            return t
        pred = {"<": "olt", "<=": "ole", ">": "ogt", ">=": "oge", "==": "oeq", "!=": "une"}
        a, b = self.vec_value(e.a), self.vec_value(e.b)
        self.emit(f"{t} = fcmp {pred[e.op]} {self.vec} {a}, {b}")
        return t

    def splat(self, scalar: str, elem: str) -> str:
        """The same `elem` value in every lane (a float, or an i1 condition)."""
        n = self.lanes
        vec = f"<{n} x {elem}>"
        ins, t = self.tmp(), self.tmp()
        self.emit(f"{ins} = insertelement {vec} poison, {elem} {scalar}, i64 0")
        self.emit(f"{t} = shufflevector {vec} {ins}, {vec} poison, <{n} x i32> zeroinitializer")
        return t

    def argmax(self, s: Accumulate) -> None:
        """Take this position when its value is larger, or is the first NaN (numpy's rule)."""
        assert s.index is not None
        best_ty = self.var_type.get(f"{s.target}_max", self.ftype)
        best_slot = self.slot(f"{s.target}_max", best_ty)
        best = self.tmp()
        self.emit(f"{best} = load {best_ty}, ptr {best_slot}")
        v = self.value(s.value, best_ty)
        take = self.tmp()
        if best_ty in ("float", "double"):
            larger, nan_v, num_best, first_nan = (self.tmp() for _ in range(4))
            self.emit(f"{larger} = fcmp ogt {best_ty} {v}, {best}")
            self.emit(f"{nan_v} = fcmp uno {best_ty} {v}, 0.0")
            self.emit(f"{num_best} = fcmp ord {best_ty} {best}, 0.0")
            self.emit(f"{first_nan} = and i1 {nan_v}, {num_best}")
            self.emit(f"{take} = or i1 {larger}, {first_nan}")
        else:  # integer values (the first of equal ones is kept)
            self.emit(f"{take} = icmp sgt {best_ty} {v}, {best}")
        new_best = self.tmp()
        self.emit(f"{new_best} = select i1 {take}, {best_ty} {v}, {best_ty} {best}")
        self.emit(f"store {best_ty} {new_best}, ptr {best_slot}")
        idx_ty = self.var_type.get(s.target, "i64")
        idx_slot = self.slot(s.target, idx_ty)
        cur = self.tmp()
        self.emit(f"{cur} = load {idx_ty}, ptr {idx_slot}")
        pos = self.value(s.index, idx_ty)
        new_idx = self.tmp()
        self.emit(f"{new_idx} = select i1 {take}, {idx_ty} {pos}, {idx_ty} {cur}")
        self.emit(f"store {idx_ty} {new_idx}, ptr {idx_slot}")

    def loop(self, lp: Loop, parallel: bool, emit_body: Any = None) -> None:
        self.loop_vars.add(lp.var)
        slot = self.slot(lp.var, "i64")
        head, body, done = self.label("head"), self.label("body"), self.label("done")
        self.emit(f"store i64 {'%start' if parallel else 0}, ptr {slot}")
        self.emit(f"br label %{head}")
        self.block(head)
        i, c = self.tmp(), self.tmp()
        self.emit(f"{i} = load i64, ptr {slot}")
        self.emit(f"{c} = icmp slt i64 {i}, {'%end' if parallel else lp.extent}")
        self.emit(f"br i1 {c}, label %{body}, label %{done}")
        self.block(body)
        vector_loops = self.vector_loops
        if emit_body is None:
            self.stmts(lp.body)
        else:
            emit_body()
        j, k = self.tmp(), self.tmp()
        self.emit(f"{j} = load i64, ptr {slot}")
        self.emit(f"{k} = add nuw nsw i64 {j}, 1")
        self.emit(f"store i64 {k}, ptr {slot}")
        hints = []
        # "scalar": e.g. a pack whose vector form would be gathers/scatters. A loop around
        # explicit vector code is not LLVM's to vectorise either: once it unrolls what is
        # inside, that would take lanes across this loop's variable, with gathers
        if "scalar" in lp.tags or self.vector_loops > vector_loops:
            hints.append('!{!"llvm.loop.vectorize.enable", i1 false}')
        if "scalar" in lp.tags or "rolled" in lp.tags or self.leave_rolled(lp):
            hints.append('!{!"llvm.loop.unroll.disable"}')
        if hints:
            m = len(self.metadata)
            refs = "".join(f", !{m + 1 + i}" for i in range(len(hints)))
            self.metadata.append(f"!{m} = distinct !{{!{m}{refs}}}")
            self.metadata += [f"!{m + 1 + i} = {h}" for i, h in enumerate(hints)]
            self.emit(f"br label %{head}, !llvm.loop !{m}")
        else:
            self.emit(f"br label %{head}")
        self.block(done)

    def leave_rolled(self, lp: Loop) -> bool:
        """Whether LLVM's unroller must leave `lp` alone: a loop of UNROLL_MIN_EXTENT or more
        iterations in a memory-bound kernel (`ROLLED_KINDS`), which waits on memory whether
        unrolled or not, while unrolling it (fully, where the trip count is constant) was
        most of the compile time of such kernels (see ROLLED_KINDS)."""
        return self.kernel.kind in ROLLED_KINDS and lp.extent >= UNROLL_MIN_EXTENT

    def render(self) -> str:
        for i, b in enumerate(self.kernel.buffers):
            ptr = f"%buf{i}"
            self.entry.append(f"  %slot{i} = getelementptr ptr, ptr %args, i64 {i}")
            self.entry.append(f"  {ptr} = load ptr, ptr %slot{i}")
            if b.dtype not in ELEM:
                raise NotRenderableError(f"dtype {b.dtype}")
            self.buffers[b.name] = (ptr, b.shape, ELEM[b.dtype])
            self.buffer_ids[b.name] = i
        if self.checked:  # the error record follows the buffers in `args`
            n = len(self.kernel.buffers)
            self.entry.append(f"  %errslot = getelementptr ptr, ptr %args, i64 {n}")
            self.entry.append("  %err = load ptr, ptr %errslot")
            widest = max([lp.vector_lanes or 1 for lp in _loops(self.kernel.body)] + [1])
            self.entry.append(f"  %sink = alloca [{widest} x double]")
        body = self.kernel.body
        parallel = body[0] if len(body) == 1 and isinstance(body[0], Loop) else None
        if parallel is None:  # no outer loop to split: the call with start 0 does it all
            skip = self.label("skip")
            run = self.label("run")
            c = self.tmp()
            self.emit(f"{c} = icmp eq i64 %start, 0")
            self.emit(f"br i1 {c}, label %{run}, label %{skip}")
            self.block(run)
            self.stmts(body)
            self.emit(f"br label %{skip}")
            self.block(skip)
        else:
            self.stmts(body, parallel)
        self.emit("ret void")
        head = [f"define void @{self.symbol}(ptr noalias %args, i64 %start, i64 %end) {{", "entry:"]
        return "\n".join(
            sorted(self.intrinsics)
            + head
            + self.entry
            + ["  br label %main", "main:"]
            + self.lines
            + ["}"]
            + self.metadata
        )


def render(kernel: Kernel, checked: bool = False) -> tuple[str, str, list[str]]:
    """(LLVM IR text, function symbol, buffer names by number in the bounds-check record) for
    one kernel; `checked` adds a bounds check to every access."""
    check_kernel_names(kernel)  # before any code is generated (a found object needs none)
    # the symbol names what the kernel computes, not what the tile search measured
    digest = hashlib.sha256(kernel.identity().encode()).hexdigest()[:12]
    symbol = f"{kernel.name}_{digest}{'_checked' if checked else ''}"
    fn = _Function(kernel, symbol, checked)
    text = fn.render()
    names = sorted(fn.buffer_ids, key=fn.buffer_ids.__getitem__)
    return text, symbol, names


def parallel_extent(kernel: Kernel) -> int:
    """The extent of the loop the threads split (1 when the body is not one loop)."""
    body = kernel.body
    return body[0].extent if len(body) == 1 and isinstance(body[0], Loop) else 1


def _source_digest() -> str:
    """A hash of the code that turns kernel IR into LLVM IR (this module, the kernel IR's and
    the target's), read at import: the code that runs, not a later edit of its files. Part
    of every reference key, so a changed renderer renders again."""
    from .. import kernel as kernel_module
    from .. import target as target_module

    h = hashlib.sha256()
    for path in (__file__, kernel_module.__file__, target_module.__file__):
        with open(path, "rb") as f:
            h.update(f.read())
    return h.hexdigest()


_RENDERER_DIGEST = _source_digest()


def bounds_checks_enabled() -> bool:
    """`TINYGRAD_EDU_CHECK_BOUNDS=1`: every generated load and store is bounds-checked (a
    debug mode: slower kernels; an access outside its buffer raises instead of corrupting)."""
    return os.environ.get("TINYGRAD_EDU_CHECK_BOUNDS", "0") not in ("", "0")


class OutOfBoundsError(IndexError):
    """A generated kernel tried to access memory outside a buffer (bounds-check mode)."""


class _Target:
    """A CPU target's LLVM target machine, JIT engine and object cache (one per target and
    process: a forced lower target gets its own engine)."""

    _instances: dict[CPUTarget, _Target] = {}
    _lock = threading.Lock()

    def __init__(self, target: CPUTarget) -> None:
        import llvmlite
        import llvmlite.binding as llvm

        if not target.runnable:
            raise TargetError(
                f"llvm: cannot run code built for {target.describe()}; use "
                "compiler.backends.llvm.assembly() to read it"
            )
        self.llvm = llvm
        self.spec = target
        self.cpu = target.cpu
        self.features = target.features
        self.machine = objects.target_machine(target.triple, target.cpu, target.features)
        self.engine = llvm.create_mcjit_compiler(llvm.parse_assembly(""), self.machine)
        self.tag = f"{CACHE_VERSION}|{llvmlite.__version__}|{self.cpu}|{self.features}"
        self.cache_dir = os.environ.get(
            "TINYGRAD_EDU_CACHE",
            os.path.join(os.path.expanduser("~"), ".cache", "tinygrad_edu", "llvm"),
        )
        self.memory: dict[str, int] = {}
        self.asm: dict[str, str] = {}
        self.refs: dict[str, dict[str, Any]] = {}  # reference key -> what render() gave
        self.read: dict[str, tuple[bytes, str | None]] = {}  # objects read, not yet loaded
        self.hits = 0
        self.misses = 0
        self.processes_used = 0  # worker processes of the last parallel compile

    @classmethod
    def get(cls, target: CPUTarget | None = None) -> _Target:
        """The engine of `target` (default: the host target, or the one TINYGRAD_EDU_CPU
        forces)."""
        target = target or host_target()
        with cls._lock:
            if target not in cls._instances:
                cls._instances[target] = cls(target)
            return cls._instances[target]

    @classmethod
    def reset(cls) -> None:
        """Forget every engine and in-memory object (as a new process would start)."""
        with cls._lock:
            cls._instances.clear()

    def key(self, ir: str) -> str:
        return hashlib.sha256((self.tag + "\n" + ir).encode()).hexdigest()

    def reference_key(self, kernel: Kernel, checked: bool) -> str:
        """A key from the kernel IR itself (every field rendering reads) and the renderer's
        code: equal keys render to equal IR, so the IR need not be rendered to be found."""
        what = repr(
            (kernel.name, kernel.ops, kernel.buffers, kernel.body, kernel.flops,
             kernel.bytes_read, kernel.bytes_written, kernel.target, kernel.tuning, checked)
        )  # fmt: skip
        return hashlib.sha256(f"{self.tag}|{_RENDERER_DIGEST}\n{what}".encode()).hexdigest()

    def reference(self, ref_key: str) -> dict[str, Any] | None:
        """What rendering the kernel of `ref_key` gave ({"key", "symbol", "names"} or
        {"numpy": why it cannot be rendered}), when known and its object is at hand (in
        memory, or read now from the disk cache); None: render it."""
        with self._lock:
            ref = self.refs.get(ref_key) or objects.read_reference(self.cache_dir, ref_key)
            if ref is None:
                return None
            key = ref.get("key")
            if key is not None and key not in self.memory and key not in self.read:
                cached = objects.read_cache(self.cache_dir, key)
                if cached is None:
                    return None
                self.read[key] = cached
            self.refs[ref_key] = ref
            return ref

    def remember(self, ref_key: str, ref: dict[str, Any]) -> None:
        """Record what the kernel of `ref_key` rendered to (in memory and on disk)."""
        with self._lock:
            self.refs[ref_key] = ref
        objects.write_reference(self.cache_dir, ref_key, ref)

    def compile(self, ir: str, symbol: str) -> int:
        """Address of `symbol`, compiling (or loading from the caches) as needed."""
        return self.compile_many([(ir, symbol)])[0]

    def compile_many(self, modules: list[tuple[str, str]], label: str = "") -> list[int]:
        """Addresses of every (IR, symbol), from memory, the disk cache, or compiled. Cold
        kernels compile in parallel worker processes when there are enough of them to pay a
        worker's start (llvmlite serialises LLVM calls within one process), with progress
        on stderr when it takes over a second."""
        return self.compile_keyed([(self.key(ir), ir, symbol) for ir, symbol in modules], label)

    def compile_keyed(
        self, modules: list[tuple[str, str | None, str]], label: str = ""
    ) -> list[int]:
        """`compile_many` of (key, IR, symbol); IR may be None for an object `reference`
        found (in memory or already read from disk)."""
        keys = [key for key, _, _ in modules]
        with self._lock:
            loaded: dict[str, tuple[bytes, str | None]] = {}
            cold: dict[str, str] = {}
            for key, ir, _ in modules:
                if key in self.memory or key in loaded or key in cold:
                    continue
                cached = self.read.pop(key, None) or objects.read_cache(self.cache_dir, key)
                if cached is not None:
                    loaded[key] = cached
                elif ir is None:
                    raise RuntimeError(f"llvm: object {key} neither in memory nor read")
                else:
                    cold[key] = ir
            self.hits += len(modules) - len(cold)
            self.misses += len(cold)
            if cold:
                loaded.update(self._compile_cold(cold, label))
            for key, (obj, asm) in loaded.items():
                self.engine.add_object_file(self.llvm.ObjectFileRef.from_data(obj))
                if asm is not None:
                    self.asm[key] = asm
            if loaded:
                self.engine.finalize_object()
            for key, _, symbol in modules:
                if key not in self.memory:
                    address = self.engine.get_function_address(symbol)
                    if not address:
                        raise RuntimeError(f"llvm: symbol {symbol} missing after compilation")
                    self.memory[key] = address
            return [self.memory[key] for key in keys]

    def _compile_cold(
        self, cold: dict[str, str], label: str
    ) -> dict[str, tuple[bytes, str | None]]:
        out: dict[str, tuple[bytes, str | None]] = {}
        progress = _Progress(len(cold), label or "kernels", self.spec)
        workers = min(self.spec.cores, len(cold) // PARALLEL_MIN_KERNELS)
        self.processes_used = 0
        if workers >= 2 and parallel_compile_enabled():
            out.update(self._compile_in_workers(cold, workers, progress))
        for key, ir in cold.items():  # what no worker did (or all of it)
            if key not in out:
                obj = objects.compile_object(self.machine, ir)
                objects.write_cache(self.cache_dir, key, obj)
                out[key] = (obj, None)
                progress.step()
        progress.close()
        return out

    def _compile_in_workers(
        self, cold: dict[str, str], workers: int, progress: _Progress
    ) -> dict[str, tuple[bytes, str | None]]:
        """Split the cold kernels over `workers` processes (largest first, each to the least
        loaded) that write into the disk cache; read back what they compiled. A worker that
        fails costs only time: its kernels are compiled here afterwards."""
        shares: list[list[tuple[str, str]]] = [[] for _ in range(workers)]
        loads = [0] * workers
        for key, ir in sorted(cold.items(), key=lambda kv: -len(kv[1])):
            w = loads.index(min(loads))
            shares[w].append((key, ir))
            loads[w] += len(ir)
        os.makedirs(self.cache_dir, exist_ok=True)
        procs = []
        for share in shares:
            job = json.dumps(
                {
                    "triple": self.spec.triple,
                    "cpu": self.spec.cpu,
                    "features": self.spec.features,
                    "cache_dir": self.cache_dir,
                    "jobs": share,
                }
            )
            proc = subprocess.Popen(
                [sys.executable, objects.__file__],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=subprocess.DEVNULL,
                text=True,
            )
            procs.append((proc, job))
        self.processes_used = progress.processes = len(procs)
        done: dict[str, tuple[bytes, str | None]] = {}

        def feed_and_read(proc: subprocess.Popen[str], job: str) -> None:
            assert proc.stdin is not None and proc.stdout is not None
            try:
                proc.stdin.write(job)
                proc.stdin.close()
                for line in proc.stdout:
                    if line.startswith("done "):
                        progress.step()
            except OSError:
                pass  # a worker that died: its kernels are compiled by the caller
            finally:
                proc.wait()

        readers = [threading.Thread(target=feed_and_read, args=pj, daemon=True) for pj in procs]
        for t in readers:
            t.start()
        try:
            for t in readers:
                t.join()
        finally:
            for proc, _ in procs:
                if proc.poll() is None:
                    proc.kill()
        for key in cold:
            cached = objects.read_cache(self.cache_dir, key)
            if cached is not None:
                done[key] = cached
        return done

    def assembly(self, key: str, ir: Callable[[], str]) -> str:
        """The assembly of object `key` (of IR `ir()`): from memory or the disk cache, else
        generated now and stored beside the object."""
        asm = self.asm.get(key)
        if asm is None:
            text = ir()
            asm = objects.compile_assembly(self.machine, text)
            if self.key(text) != key:  # the kernel changed since it was compiled: not its object's
                return asm
            objects.write_assembly(self.cache_dir, key, asm)
            self.asm[key] = asm
        return asm


PARALLEL_MIN_KERNELS = 4  # cold kernels per worker process that pay for its start (~0.3 s)


def parallel_compile_enabled() -> bool:
    """`TINYGRAD_EDU_PARALLEL_COMPILE=0` compiles every kernel in this process."""
    return os.environ.get("TINYGRAD_EDU_PARALLEL_COMPILE", "1").strip() not in ("0", "")


class _Progress:
    """Progress of a cold compile on stderr, once it has run for a second (never for short
    ones): on a terminal a tqdm bar "[compiler] compiling N kernels for avx512 in 2
    processes" with its count, rate and ETA; in a log one line at the start and one at the
    end."""

    def __init__(self, total: int, label: str, target: CPUTarget) -> None:
        self.total, self.label, self.target = total, label, target
        self.count = 0
        self.processes = 1
        self.start = time.perf_counter()
        self.shown = False
        self.tty = sys.stderr.isatty()
        self.lock = threading.Lock()
        self.bar: Any = None

    def what(self) -> str:
        where = f" in {self.processes} processes" if self.processes > 1 else ""
        return f"{self.total} {self.label} for {self.target.isa}{where}"

    def step(self) -> None:
        with self.lock:
            self.count += 1
            elapsed = time.perf_counter() - self.start
            if self.bar is not None:
                self.bar.update(1)
                return
            if elapsed < 1.0 or self.count >= self.total:
                return
            if self.tty:
                from tqdm import tqdm

                self.bar = tqdm(
                    total=self.total,
                    initial=self.count,
                    desc=f"[compiler] compiling {self.what()}",
                    unit="kernel",
                    file=sys.stderr,
                    leave=False,
                )
            elif not self.shown:
                print(f"[compiler] compiling {self.what()} ...", file=sys.stderr, flush=True)
            self.shown = True

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
        if self.shown:
            elapsed = time.perf_counter() - self.start
            print(
                f"[compiler] compiled {self.what()} in {elapsed:.1f} s",
                file=sys.stderr,
                flush=True,
            )


def _target_machine(target: CPUTarget) -> Any:
    return objects.target_machine(target.triple, target.cpu, target.features)


def assembly(kernel: Kernel, target: CPUTarget | None = None) -> str:
    """The assembly of `kernel` compiled for `target` (default: the one it was lowered for),
    without running it: any target can be inspected, e.g. AVX-512 or NEON code on a machine
    that could not execute it. Lower the kernel for that target first so its schedule fits
    it (`compiler.lower(fusion, "cpu", target)`)."""
    target = target or kernel.target or host_target()
    ir = render(kernel)[0]
    return objects.compile_assembly(_target_machine(target), ir)


KernelFn = ctypes.CFUNCTYPE(None, ctypes.c_void_p, ctypes.c_int64, ctypes.c_int64)


class _Workers:
    """Threads that run slices of a kernel's parallel loop. Their stacks are large because
    kernels keep on-chip tiles (`Local`) on the stack: the implicit-GEMM convolution's panel
    and tile take up to GEMM_LOCAL_BYTES."""

    STACK_BYTES = 64 << 20

    def __init__(self, count: int) -> None:
        self.tasks: queue.SimpleQueue[Any] = queue.SimpleQueue()
        old = threading.stack_size(self.STACK_BYTES)
        try:
            self.threads = [
                threading.Thread(target=self._work, daemon=True, name=f"tinygrad_edu-llvm-{i}")
                for i in range(count)
            ]
            for t in self.threads:
                t.start()
        finally:
            threading.stack_size(old)

    def _work(self) -> None:
        while True:
            fn, args, take, done = self.tasks.get()
            try:
                _run_slices(fn, args, take)
            finally:
                done.release()

    def run(self, fn: Any, args: Any, bounds: list[tuple[int, int]], caller_too: bool) -> None:
        """Run every slice, each once, on as many threads as there are workers (the calling
        thread being one of them when `caller_too`: kernels with big on-chip tiles stay on
        the workers' big stacks). The slices are dealt out as threads come free, not split
        in advance: on a shared machine one core is often slowed by another tenant, and a
        fixed half each made every parallel kernel wait for the slower core's half."""
        done = threading.Semaphore(0)
        pending = iter(bounds)

        def take() -> tuple[int, int] | None:
            return next(pending, None)  # one C call under the GIL: atomic, no lock to leak

        helpers = min(len(self.threads), len(bounds)) - (1 if caller_too else 0)
        for _ in range(helpers):
            self.tasks.put((fn, args, take, done))
        waited = 0
        try:
            if caller_too:
                _run_slices(fn, args, take)
            while waited < helpers:
                done.acquire()
                waited += 1
        finally:
            # interrupted (Ctrl-C): the workers still write into the caller's arrays, so
            # they must finish before those arrays may be freed
            while waited < helpers:
                try:
                    done.acquire()
                    waited += 1
                except KeyboardInterrupt:
                    continue


def _run_slices(fn: Any, args: Any, take: Callable[[], tuple[int, int] | None]) -> None:
    while (piece := take()) is not None:
        fn(args, *piece)


def thread_count() -> int:
    """Threads a parallel kernel uses: `$TINYGRAD_EDU_THREADS` when set, else the cores this
    process may run on (its affinity mask, which containers and `taskset` narrow)."""
    configured = os.environ.get("TINYGRAD_EDU_THREADS", "").strip()
    if configured:
        try:
            return max(1, int(configured))
        except ValueError as e:
            raise ValueError(
                f"TINYGRAD_EDU_THREADS={configured!r} is not a whole number; set it to the "
                "number of threads parallel kernels may use (or unset it: all allowed cores)"
            ) from e
    return usable_cores()


_WORKERS: _Workers | None = None
_WORKERS_LOCK = threading.Lock()


def _forget_workers() -> None:
    """In a forked child the parent's worker threads do not exist: start new ones."""
    global _WORKERS, _WORKERS_LOCK
    _WORKERS = None
    _WORKERS_LOCK = threading.Lock()


os.register_at_fork(after_in_child=_forget_workers)


def _workers() -> _Workers:
    global _WORKERS
    with _WORKERS_LOCK:
        if _WORKERS is None:
            _WORKERS = _Workers(thread_count())
        return _WORKERS


# A kernel is split across the cores only when one core would take longer than this: waking
# a worker thread costs tens of microseconds, more than small kernels take whole.
PARALLEL_SECONDS = 100e-6
SERIAL_FLOPS_PER_S, SERIAL_BYTES_PER_S = 40e9, 8e9
SMALL_STACK_BYTES = 256 << 10  # on-chip tiles up to this size may run on the caller's stack
# The parallel loop is cut into this many slices per thread, dealt out as threads come free
# (`_Workers.run`)
SLICES_PER_THREAD = 4


@dataclass
class _Launch:
    """Everything a call of one compiled kernel needs, prepared once."""

    fn: Any
    buffers: list[tuple[int, bool, np.dtype, tuple[int, ...]]]  # node, is input, dtype, shape
    args: Any  # the ctypes pointer array, refilled per call
    bounds: list[tuple[int, int]]  # slices of the parallel loop (SLICES_PER_THREAD a thread)
    caller_too: bool
    errors: np.ndarray | None = None  # bounds-check mode: (flag, buffer number, flat index)
    names: list[str] | None = None  # buffer names by number (locals after the arguments)
    #: per argument, the arena buffer it held last call (its pointer is still in `args`:
    #: intermediates live in the same memory every call), else None
    bound: list[Any] = field(init=False)

    def __post_init__(self) -> None:
        self.bound = [None] * len(self.buffers)


def _local_bytes(body: list[Stmt]) -> int:
    total = 0
    for s in body:
        if isinstance(s, Local):
            total += int(np.prod(s.shape)) * 8
        elif isinstance(s, Loop):
            total += _local_bytes(s.body)
    return total


def _references(table: dict[int, np.ndarray], key: int) -> int:
    return sys.getrefcount(table[key])


def _calibrate_unviewed() -> int | None:
    """The reference count `_references` reports for a buffer nothing views, measured on this
    interpreter (counting conventions differ between Python versions), or None when a view
    does not show up as exactly one more reference (then outputs are never reused)."""
    table = {0: np.empty(8, np.uint8)}
    alone = _references(table, 0)
    view = table[0].view(np.float32)
    seen = _references(table, 0)
    del view
    return alone if seen == alone + 1 and _references(table, 0) == alone else None


UNVIEWED = _calibrate_unviewed()


def _unviewed(table: dict[int, np.ndarray], key: int) -> bool:
    return UNVIEWED is not None and _references(table, key) == UNVIEWED


def _ir_of(kernel: Kernel, checked: bool) -> str:
    return render(kernel, checked)[0]


class LLVMExecutor(NumpyExecutor):
    """Runs each group as its JIT-compiled kernel, the parallel loop split across threads
    (host arrays, like the numpy reference it falls back to)."""

    def __init__(self, kernels: list[Kernel], memory: MemoryPlan | None = None) -> None:
        self.memory = memory
        # Intermediates live in the memory plan's buffers, allocated once and reused by every
        # call: fresh arrays would cost the OS a page fault and a zeroed page per 4 KiB each
        # call (a third of an AlexNet training step went there).
        self.arena: dict[int, np.ndarray] = {}
        self.kept: dict[int, np.ndarray] = {}  # graph outputs, when the caller copies them
        self.returned: dict[int, np.ndarray] = {}  # buffers behind outputs handed out
        self.views: dict[int, np.ndarray] = {}  # node -> its view of an arena buffer
        self.addresses: dict[int, tuple[weakref.ref[np.ndarray], int]] = {}
        self.reuse_outputs = False
        targets = {k.target for k in kernels if k.target is not None}
        if len(targets) > 1:
            raise ValueError("llvm: kernels lowered for different CPU targets in one function")
        self.target = _Target.get(targets.pop() if targets else None)
        self.compiled: dict[str, _Launch] = {}
        self.checked = bounds_checks_enabled()
        # (kernel, its reference key, what rendering gave, the IR when rendered here)
        runs: list[tuple[Kernel, str, dict[str, Any], str | None]] = []
        for k in kernels:
            ref_key = self.target.reference_key(k, self.checked)
            ref = self.target.reference(ref_key)
            ir = None
            if ref is None:
                try:
                    ir, symbol, names = render(k, self.checked)
                    ref = {"key": self.target.key(ir), "symbol": symbol, "names": names}
                except NotRenderableError as why:
                    ref = {"numpy": str(why)}
                    self.target.remember(ref_key, ref)
            if "numpy" in ref:
                k.sources["llvm"] = f"; runs with numpy: {ref['numpy']}"
                continue
            if ir is not None:
                k.sources["llvm_ir"] = ir
            else:
                k.sources.later("llvm_ir", functools.partial(_ir_of, k, self.checked))
            runs.append((k, ref_key, ref, ir))
        addresses = self.target.compile_keyed([(r["key"], ir, r["symbol"]) for *_, r, ir in runs])
        for (k, ref_key, ref, ir), address in zip(runs, addresses):
            if ir is not None:  # its object is in the disk cache now: the reference may point at it
                self.target.remember(ref_key, ref)
            asm = self.target.asm.get(ref["key"])
            if asm:
                k.sources["asm"] = asm
            else:  # a cold compile emits objects only: the assembly is made when read
                ir_of = functools.partial(k.sources.__getitem__, "llvm_ir")
                k.sources.later("asm", functools.partial(self.target.assembly, ref["key"], ir_of))
            fn, extent = KernelFn(address), parallel_extent(k)
            self.compiled[k.name] = self.launch(k, fn, extent, ref["names"], self.checked)

    def output_array(self, node: int, shape: tuple[int, ...], dtype: np.dtype) -> np.ndarray:
        """Where kernel output `node` is written: its planned buffer (intermediates), a
        buffer kept across calls (graph outputs with `reuse_outputs`), or a new array."""
        plan = self.memory
        if plan is not None and node in plan.buffer_of:
            arr = self.views.get(node)
            if arr is None:
                b = plan.buffer_of[node]
                raw = self.arena.get(b)
                if raw is None:
                    raw = self.arena[b] = np.empty(plan.buffer_bytes[b], np.uint8)
                nbytes = int(np.prod(shape)) * dtype.itemsize
                arr = self.views[node] = raw[:nbytes].view(dtype).reshape(shape)
            return arr
        if self.reuse_outputs:  # the caller copies (or swaps) outputs at once
            arr = self.kept.get(node)
            if arr is None:
                arr = self.kept[node] = np.empty(shape, dtype)
            return arr
        # Otherwise the caller gets a view of a buffer kept here. Once no view of it is left
        # (the caller dropped the output and everything sliced from it: each view holds a
        # reference to the buffer), the next call writes the same memory again; a fresh
        # array costs the OS a zeroed page per 4 KiB on first write.
        if node in self.returned and _unviewed(self.returned, node):
            raw = self.returned[node]
        else:
            raw = self.returned[node] = np.empty(int(np.prod(shape)) * dtype.itemsize, np.uint8)
        return raw.view(dtype).reshape(shape)

    def recycle(self, node: int, array: np.ndarray) -> None:
        """Write graph output `node` into `array` on the next call with reuse_outputs."""
        self.kept[node] = array

    def address(self, arr: np.ndarray) -> int:
        """The data pointer of `arr`, remembered for the arrays that are reused every call
        (numpy's `.ctypes.data` builds a helper object each time)."""
        key = id(arr)
        hit = self.addresses.get(key)
        if hit is not None and hit[0]() is arr:
            return hit[1]
        address = arr.ctypes.data
        if len(self.addresses) > 4096:
            self.addresses.clear()
        # a weak reference: the cache must not keep the caller's arrays alive
        self.addresses[key] = (weakref.ref(arr), address)
        return address

    @staticmethod
    def launch(k: Kernel, fn: Any, extent: int, names: list[str], checked: bool) -> _Launch:
        seconds = k.flops / SERIAL_FLOPS_PER_S + (k.bytes_read + k.bytes_written) / (
            SERIAL_BYTES_PER_S
        )
        threads = thread_count()
        chunks = min(threads * SLICES_PER_THREAD, extent) if seconds > PARALLEL_SECONDS else 1
        cuts = np.linspace(0, extent, chunks + 1).astype(int)
        bounds = [(int(a), int(b)) for a, b in zip(cuts[:-1], cuts[1:]) if b > a]
        return _Launch(
            fn,
            [(b.node, b.role == "in", np.dtype(b.dtype), b.shape) for b in k.buffers],
            (ctypes.c_void_p * (len(k.buffers) + checked))(),
            bounds,
            _local_bytes(k.body) <= SMALL_STACK_BYTES,
            np.zeros(3, np.int64) if checked else None,
            names,
        )

    def run_group(self, g: Any, group: Any, kernel: Kernel, env: dict[int, Any]) -> None:
        launch = self.compiled.get(kernel.name)
        if launch is None:
            run_ops(np, g, group.nodes, env)
            return
        keep = []  # every array stays referenced until the call returns
        args, bound, views = launch.args, launch.bound, self.views
        for i, (node, is_input, dtype, shape) in enumerate(launch.buffers):
            if is_input:
                arr = env[node]
                if arr is bound[i]:
                    continue  # the same arena buffer as last call: its pointer is in args
                if type(arr) is not np.ndarray or arr.dtype != dtype or not arr.flags.c_contiguous:
                    arr = np.ascontiguousarray(arr, dtype=dtype)
            else:
                arr = bound[i]
                if arr is not None:  # its arena buffer, bound last call
                    env[node] = arr
                    continue
                arr = self.output_array(node, shape, dtype)
                env[node] = arr
            keep.append(arr)
            args[i] = self.address(arr)
            # arena views are this executor's and never move; anything else may change
            bound[i] = arr if views.get(node) is arr else None
        errors = launch.errors
        if errors is not None:
            errors[:] = 0
            args[len(launch.buffers)] = errors.ctypes.data
        if len(launch.bounds) == 1 and launch.caller_too:
            launch.fn(args, *launch.bounds[0])
        else:
            _workers().run(launch.fn, args, launch.bounds, launch.caller_too)
        del keep
        if errors is not None and errors[0]:
            self.report_out_of_bounds(kernel, launch)

    @staticmethod
    def report_out_of_bounds(kernel: Kernel, launch: _Launch) -> None:
        assert launch.errors is not None and launch.names is not None
        name = launch.names[int(launch.errors[1])]
        shapes = {b.name: b.shape for b in kernel.buffers}
        shape = shapes.get(name, "an on-chip tile")
        raise OutOfBoundsError(
            f"llvm kernel {kernel.name}: an access outside buffer {name!r} ({shape}) at flat "
            f"index {int(launch.errors[2])} (skipped). This is a lowering bug: please report it "
            "with the kernel's pseudo-C (kernel.pseudo_c()); meanwhile use backend='numpy'."
        )


def _peak_ir(lanes: int, chains: int) -> str:
    """A loop of `chains` independent vector FMA chains (enough to cover the FMA units'
    latency), `n` iterations; the sums are stored so nothing is optimised away."""
    vec = f"<{lanes} x float>"
    fma = f"llvm.fma.v{lanes}f32"
    lines = [
        f"declare {vec} @{fma}({vec}, {vec}, {vec})",
        "define void @fma_peak(ptr noalias %io, i64 %n) {",
        "entry:",
        "  %xs = load float, ptr %io, align 4",
        f"  %x0 = insertelement {vec} poison, float %xs, i64 0",
        f"  %x = shufflevector {vec} %x0, {vec} poison, <{lanes} x i32> zeroinitializer",
        "  br label %loop",
        "loop:",
        "  %i = phi i64 [0, %entry], [%i1, %loop]",
    ]
    for c in range(chains):
        lines.append(f"  %a{c} = phi {vec} [%x, %entry], [%b{c}, %loop]")
    for c in range(chains):
        lines.append(f"  %b{c} = call {vec} @{fma}({vec} %a{c}, {vec} %x, {vec} %x)")
    lines += [
        "  %i1 = add i64 %i, 1",
        "  %more = icmp ult i64 %i1, %n",
        "  br i1 %more, label %loop, label %exit",
        "exit:",
    ]
    total = "%b0"
    for c in range(1, chains):
        lines.append(f"  %s{c} = fadd {vec} {total}, %b{c}")
        total = f"%s{c}"
    lines += [f"  store {vec} {total}, ptr %io, align 4", "  ret void", "}"]
    return "\n".join(lines)


def measure_peak_gflops(
    target: CPUTarget | None = None, threads: int | None = None, seconds: float = 0.2
) -> float:
    """This machine's float32 peak for `target` (default: the host's), measured: a JIT-compiled
    loop of independent vector FMAs on `threads` threads at once (default: the target's
    usable cores), the best of five runs of about `seconds` each, or the best single-core
    run times `threads` if that is higher. "% of peak" in the benchmarks means this figure,
    on this machine."""
    target = target or host_target()
    engine = _Target.get(target)
    chains = max(8, min(16, target.registers - 4))
    address = engine.compile(_peak_ir(target.lanes, chains), "fma_peak")
    fn = ctypes.CFUNCTYPE(None, ctypes.c_void_p, ctypes.c_int64)(address)
    threads = threads or target.cores
    flops_per_iteration = 2 * target.lanes * chains
    buffers = [np.full(target.lanes, 1e-7, np.float32) for _ in range(threads)]

    def run(n: int) -> float:
        workers = [
            threading.Thread(target=fn, args=(b.ctypes.data, n), daemon=True) for b in buffers
        ]
        start = time.perf_counter()
        for w in workers:
            w.start()
        for w in workers:
            w.join()
        return time.perf_counter() - start

    n = 1 << 16
    while run(n) < seconds / 4:  # calibrate: about `seconds` per run
        n *= 2
    n = int(n * seconds / max(run(n), 1e-9))
    all_cores = threads * n * flops_per_iteration / min(run(n) for _ in range(5))
    # another busy process on a shared machine slows the all-core run: one core's best rate
    # times the cores is the peak too (the FMA units of cores are independent)
    buffers = buffers[:1]
    one_core = n * flops_per_iteration / min(run(n) for _ in range(5))
    return max(all_cores, one_core * threads) / 1e9
