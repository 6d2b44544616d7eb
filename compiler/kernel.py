"""Kernel IR: what a kernel computes, as loop nests over buffers, plus how it loops (schedule).

Expressions: `Var`, `Const`, `Load(buffer, index)`, `Bin(op, a, b)`, `Call(fn, args)` and
`Select(cond, a, b)`. Statements: `Loop(var, extent, body, tags)`, `Let(var, value)` (a
scalar in a register), `Local(name, shape)` (a small on-chip tile), `Store(buffer, index,
value)` and `Accumulate(target, op, value)`. The schedule is carried as loop tags —
"parallel" (split across threads), "vectorize(L)" (SIMD vectors of L lanes, the target's
width), "unroll", "scalar" (never vectorise), "rolled" (never unroll), "tile=N" — in the
spirit of Halide/TVM: the same computation can be re-scheduled without changing what it
computes. `Kernel.pseudo_c()` prints it as readable C.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, MutableMapping
from dataclasses import dataclass, field, replace

import numpy as np

from .target import CPUTarget


# -- expressions -------------------------------------------------------------------------------
@dataclass(frozen=True)
class Var:
    name: str

    def __str__(self) -> str:
        return self.name


@dataclass(frozen=True)
class Const:
    value: float | int | bool

    def __str__(self) -> str:
        v = self.value
        if isinstance(v, float):
            return "-INFINITY" if v == -np.inf else "INFINITY" if v == np.inf else f"{v!r}f"
        return str(v).lower() if isinstance(v, bool) else str(v)


@dataclass(frozen=True)
class Load:
    buffer: str
    index: tuple[Expr, ...]

    def __str__(self) -> str:
        return self.buffer + ("".join(f"[{i}]" for i in self.index) or "[0]")


@dataclass(frozen=True)
class Bin:
    op: str  # + - * / max min < <= > >= == != && || (float max/min keep a NaN, as numpy)
    a: Expr
    b: Expr

    def __str__(self) -> str:
        if self.op in ("max", "min"):
            return f"f{self.op}({self.a}, {self.b})"
        return f"({self.a} {self.op} {self.b})"


@dataclass(frozen=True)
class Call:
    fn: str
    args: tuple[Expr, ...]

    def __str__(self) -> str:
        return f"{self.fn}({', '.join(map(str, self.args))})"


@dataclass(frozen=True)
class Select:
    cond: Expr
    a: Expr
    b: Expr

    def __str__(self) -> str:
        return f"({self.cond} ? {self.a} : {self.b})"


Expr = Var | Const | Load | Bin | Call | Select


def substitute(e: Expr, env: dict[str, Expr]) -> Expr:
    """`e` with each variable named in `env` replaced by its expression."""
    if isinstance(e, Var):
        return env.get(e.name, e)
    if isinstance(e, Load):
        return Load(e.buffer, tuple(substitute(i, env) for i in e.index))
    if isinstance(e, Bin):
        return Bin(e.op, substitute(e.a, env), substitute(e.b, env))
    if isinstance(e, Select):
        return Select(substitute(e.cond, env), substitute(e.a, env), substitute(e.b, env))
    if isinstance(e, Call):
        return Call(e.fn, tuple(substitute(a, env) for a in e.args))
    return e


def walk(e: Expr) -> Iterator[Expr]:
    """`e` and every expression inside it (loads' indices, operands, arguments)."""
    yield e
    if isinstance(e, Load):
        parts: tuple[Expr, ...] = e.index
    elif isinstance(e, Bin):
        parts = (e.a, e.b)
    elif isinstance(e, Select):
        parts = (e.cond, e.a, e.b)
    elif isinstance(e, Call):
        parts = e.args
    else:
        parts = ()
    for part in parts:
        yield from walk(part)


def add(*terms: Expr) -> Expr:
    """Sum of index terms with zeros dropped (keeps printed indices short)."""
    kept = [t for t in terms if not (isinstance(t, Const) and t.value == 0)]
    if not kept:
        return Const(0)
    out = kept[0]
    for t in kept[1:]:
        out = Bin("+", out, t)
    return out


def in_range(e: Expr, n: int) -> Expr:
    """0 <= e < n."""
    return Bin("&&", Bin(">=", e, Const(0)), Bin("<", e, Const(n)))


def clamp(e: Expr, n: int) -> Expr:
    """`e` held inside [0, n): an index that is always safe to read at."""
    return Bin("min", Bin("max", e, Const(0)), Const(n - 1))


def in_image(row: Expr, col: Expr, hw: tuple[int, int]) -> Expr:
    """(row, col) lies inside an image of hw = (height, width): the padding test."""
    return Bin("&&", in_range(row, hw[0]), in_range(col, hw[1]))


def mul(a: Expr, k: int) -> Expr:
    if k == 0:
        return Const(0)
    if k == 1:
        return a
    if isinstance(a, Const):
        return Const(a.value * k)
    return Bin("*", a, Const(k))


# -- statements --------------------------------------------------------------------------------
@dataclass
class Loop:
    var: str
    extent: int
    body: list[Stmt]
    tags: list[str] = field(default_factory=list)

    def _tag_lanes(self, name: str) -> int | None:
        """L of a "name(L)" tag, or None."""
        for tag in self.tags:
            if tag.startswith(f"{name}(") and tag.endswith(")"):
                return int(tag[len(name) + 1 : -1])
        return None

    @property
    def transpose_lanes(self) -> int | None:
        return self._tag_lanes("transpose")

    @property
    def vector_lanes(self) -> int | None:
        return self._tag_lanes("vectorize")


def transpose(lanes: int) -> str:
    """The tag of a loop `for col < C: ...; for p < lanes: dst[row(p)][col] = src(p)` whose
    `src(p)` reads contiguous runs along p: a transposing copy, done `lanes` columns at a
    time as `lanes` vectors of p transposed in registers (`backends/llvm.py`)."""
    return f"transpose({lanes})"


def vectorize(lanes: int) -> str:
    """The schedule tag of a loop run as SIMD vectors of `lanes` float32 values."""
    return f"vectorize({lanes})"


@dataclass
class Let:
    var: str
    value: Expr


@dataclass
class Local:
    name: str
    shape: tuple[int, ...]


@dataclass
class Store:
    buffer: str
    index: tuple[Expr, ...]
    value: Expr


@dataclass
class Accumulate:
    """`target op= value`. For "argmax", `target` holds the index and `{target}_max` the
    largest value so far (both set by Lets before the loop); `index` is this iteration's
    position, taken when the value is larger (or the first NaN, as numpy does)."""

    target: str  # a register (Let) or a buffer element written as "buf[i, j]"
    op: str  # "+", "max", "min" or "argmax"
    value: Expr
    index: Expr | None = None


@dataclass
class Comment:
    text: str


Stmt = Loop | Let | Local | Store | Accumulate | Comment


@dataclass
class Buffer:
    name: str
    shape: tuple[int, ...]
    dtype: str
    role: str  # "in" | "out"
    node: int
    label: str = ""  # the name the user knows it by (e.g. "0.weight"), when it has one


class Sources(MutableMapping[str, str]):
    """A kernel's backend sources by name ("llvm_ir", "asm", "cuda"), some rendered only when
    first read: a kernel whose object a cache held needs no IR to run, and rendering it is
    most of a warm compile's time."""

    def __init__(self, *args: object, **kwargs: str) -> None:
        self._text: dict[str, str] = dict(*args, **kwargs)
        self._later: dict[str, Callable[[], str]] = {}

    def later(self, name: str, render: Callable[[], str]) -> None:
        """`render()` gives source `name` when it is first read."""
        self._text.pop(name, None)
        self._later[name] = render

    def ready(self, name: str) -> bool:
        """Whether source `name` is at hand without rendering or compiling anything."""
        return name in self._text

    def __getitem__(self, name: str) -> str:
        if name not in self._text and name in self._later:
            text = self._later[name]()  # kept for the next read if rendering raises
            self._text[name] = text
            self._later.pop(name, None)
        return self._text[name]

    def __setitem__(self, name: str, text: str) -> None:
        self._later.pop(name, None)
        self._text[name] = text

    def __delitem__(self, name: str) -> None:
        if self._later.pop(name, None) is None:
            del self._text[name]

    def __iter__(self) -> Iterator[str]:
        return iter([*self._text, *self._later])

    def __len__(self) -> int:
        return len(self._text) + len(self._later)

    def __contains__(self, name: object) -> bool:
        return name in self._text or name in self._later

    def __repr__(self) -> str:
        return f"Sources({sorted(self)})"


@dataclass
class Kernel:
    """One fused group lowered: its buffers, loop nest, and cost figures."""

    name: str
    ops: list[str]
    nodes: list[int]
    buffers: list[Buffer]
    body: list[Stmt]
    flops: int
    bytes_read: int
    bytes_written: int
    kind: str
    seconds: list[float] = field(default_factory=list)  # measured per call by the runtime
    # backend sources, when rendered (not compared: comparing would render them)
    sources: Sources = field(default_factory=Sources, compare=False)
    target: CPUTarget | None = None  # the CPU its schedule was built for ("cpu" schedule)
    tuning: str = ""  # what the tile search tried and chose, when it ran (compiler.tune)
    layer: str = ""  # module path of its main op (`features.3`); "" outside any module
    phase: str = "forward"  # "forward" | "loss" | "backward" | "update", of its main op
    layers: list[str] = field(default_factory=list)  # every layer it computes, in order

    @property
    def inputs(self) -> list[Buffer]:
        return [b for b in self.buffers if b.role == "in"]

    @property
    def outputs(self) -> list[Buffer]:
        return [b for b in self.buffers if b.role == "out"]

    @property
    def llvm_ir(self) -> str | None:
        """LLVM IR text (backend "llvm"), or None."""
        return self.sources.get("llvm_ir")

    @property
    def asm(self) -> str | None:
        """Host assembly of the LLVM backend's object (made when first read, then kept in the
        disk cache beside the object), or None for kernels it did not compile."""
        return self.sources.get("asm")

    @property
    def cuda_src(self) -> str | None:
        """CUDA C with its launch configuration (backend "cuda"), or None."""
        return self.sources.get("cuda")

    @property
    def median_seconds(self) -> float | None:
        return float(np.median(self.seconds)) if self.seconds else None

    def identity(self) -> str:
        """The pseudo-C without what was measured (the tile search's note): what the kernel
        computes and how it loops, for symbols and cache keys."""
        return replace(self, tuning="").pseudo_c()

    def pseudo_c(self) -> str:
        params = ", ".join(
            f"{'const ' if b.role == 'in' else ''}{_ctype(b.dtype)} {b.name}"
            f"{''.join(f'[{n}]' for n in b.shape) or '[1]'}"
            for b in self.buffers
        )
        lines = [
            f"// {self.name}: {' -> '.join(self.ops)}",
            f"// {self.flops:,} FLOPs, {self.bytes_read:,} B read, "
            f"{self.bytes_written:,} B written",
            *([f"// {buffer_legend(self.buffers)}"] if buffer_legend(self.buffers) else []),
            *([f"// built for {self.target.describe()}"] if self.target else []),
            *([f"// tuned: {self.tuning}"] if self.tuning else []),
            f"void {self.name}({params}) {{",
        ]
        _print(self.body, 1, lines)
        lines.append("}")
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.pseudo_c()


def buffer_legend(buffers: list[Buffer]) -> str:
    """`p_0_weight = '0.weight', ...`: each identifier beside the name the user knows, for the
    comments of generated sources."""
    return ", ".join(f"{b.name} = {b.label!r}" for b in buffers if b.label)


def _ctype(dtype: str) -> str:
    return {
        "float32": "float",
        "float64": "double",
        "int64": "int64_t",
        "bool": "bool",
        "int32": "int32_t",
    }.get(dtype, dtype)


def _is_index(e: Expr, ints: set[str]) -> bool:
    """Integer arithmetic on loop variables, integer registers and integer constants."""
    if isinstance(e, Var):
        return e.name in ints
    if isinstance(e, Const):
        return isinstance(e.value, (int, np.integer)) and not isinstance(e.value, bool)
    if isinstance(e, Bin):
        return e.op in ("+", "-", "*", "/", "%", "max", "min") and (
            _is_index(e.a, ints) and _is_index(e.b, ints)
        )
    if isinstance(e, Call):  # a conversion to an integer type
        return e.fn in ("(int64)", "(int32)")
    return False


def _print(stmts: list[Stmt], depth: int, lines: list[str], ints: set[str] | None = None) -> None:
    pad = "  " * depth
    ints = set() if ints is None else ints  # names holding integers (loop variables, indices)
    for s in stmts:
        if isinstance(s, Loop):
            tags = f"  // {', '.join(s.tags)}" if s.tags else ""
            lines.append(f"{pad}for (int {s.var} = 0; {s.var} < {s.extent}; {s.var}++) {{{tags}")
            _print(s.body, depth + 1, lines, ints | {s.var})
            lines.append(f"{pad}}}")
        elif isinstance(s, Let):
            index = _is_index(s.value, ints)
            if index:
                ints.add(s.var)
            else:
                ints.discard(s.var)
            lines.append(f"{pad}{'int' if index else 'float'} {s.var} = {s.value};")
        elif isinstance(s, Local):
            lines.append(
                f"{pad}float {s.name}{''.join(f'[{n}]' for n in s.shape)};  // on-chip tile"
            )
        elif isinstance(s, Store):
            idx = "".join(f"[{i}]" for i in s.index) or "[0]"
            lines.append(f"{pad}{s.buffer}{idx} = {s.value};")
        elif isinstance(s, Accumulate):
            if s.op == "argmax":
                best = f"{s.target}_max"
                lines.append(f"{pad}float x_ = {s.value};")
                lines.append(
                    f"{pad}if (x_ > {best} || (isnan(x_) && !isnan({best}))) "
                    f"{{ {best} = x_; {s.target} = {s.index}; }}"
                )
            elif s.op == "+":
                lines.append(f"{pad}{s.target} += {s.value};")
            else:
                lines.append(f"{pad}{s.target} = f{s.op}({s.target}, {s.value});")
        elif isinstance(s, Comment):
            lines.append(f"{pad}// {s.text}")
