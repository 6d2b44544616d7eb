"""Identifiers in generated code: every name a kernel prints is a valid C, CUDA and LLVM
identifier, unique in its graph, and still says which tensor it is.

Module paths cannot be pasted into C: `nn.Sequential` names its parameters `0.weight`, an
attribute may be called `int`, `threadIdx`, `a-b` or `poids_é`, and `a.b` and `a_b` would
both become `a_b`. `buffer_names(g)` gives each node of a graph one identifier:
- named leaves get their role's prefix (`in_` input, `p_` parameter, `s_` state such as
  momentum) and then their name with accents folded to ASCII and every run of other
  characters made one `_`: `0.weight` -> `p_0_weight`, `int` -> `p_int`. The prefix keeps
  them clear of C/CUDA keywords and builtins and of the compiler's own local names (loop
  variables, registers, tiles), which never take these prefixes — `check_kernel_names` checks
  that on every kernel the LLVM and CUDA backends render (before any code is generated; a
  warm compile that finds a kernel's object renders nothing), so a clash is a compile-time
  error and never a wrong number;
- intermediates are `t{id}`, constants `c{id}`;
- names that clean to the same string take `_2`, `_3`, ... in node order.
The original name stays visible: `Buffer.label` holds it and kernels print it beside the
identifier.
"""

from __future__ import annotations

import re
import unicodedata
import weakref

from tinygrad_edu.ops import OPS

from .graph import Graph
from .kernel import Accumulate, Call, Kernel, Let, Load, Local, Loop, Stmt, Store, Var, walk

ROLE_PREFIX = {"input": "in", "param": "p", "state": "s"}
IDENTIFIER = re.compile(r"[A-Za-z][A-Za-z0-9_]*")

# Names generated code must never declare: C and C++ keywords, the CUDA builtins, and the
# functions and macros the backends' sources call.
RESERVED = frozenset(
    """
    alignas alignof and asm auto bool break case catch char class const constexpr continue
    decltype default delete do double else enum explicit export extern false float for friend
    goto if inline int long mutable namespace new noexcept not nullptr operator or private
    protected public register restrict return short signed sizeof static struct switch
    template this throw true try typedef typename union unsigned using virtual void volatile
    while xor
    threadIdx blockIdx blockDim gridDim warpSize
    expf logf sqrtf tanhf fabsf floorf powf fmaxf fminf fmax fmin isnan INFINITY NAN
    tg_sigmoid tg_sign main
    """.split()
)


def identifier(text: str) -> str:
    """`text` as ASCII letters, digits and single underscores (no leading or trailing `_`);
    may be empty or start with a digit, so callers add a prefix."""
    folded = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()
    return re.sub(r"[^A-Za-z0-9]+", "_", folded).strip("_")


PHASE_TAG = {"backward": "bwd", "update": "upd"}  # forward and loss kernels need no tag


def kernel_name(index: int, ops: list[str], layer: str = "", phase: str = "") -> str:
    """`k{index}_`, the layer it computes (`features.3` -> `features_3`, 40 characters at
    most), `bwd_`/`upd_` for a backward or update kernel, and its distinct op names (48
    characters at most): `k12_features_3_conv2d_add_relu`. The index keeps names unique;
    every part is an identifier, so the name is a valid C, CUDA and LLVM symbol."""
    parts = [identifier(layer)[:40].strip("_"), PHASE_TAG.get(phase, "")]
    parts.append(identifier("_".join(dict.fromkeys(ops))[:48]))
    return f"k{index}_" + "_".join(p for p in parts if p)


def _leaf_identifier(role: str, name: str) -> str:
    return f"{ROLE_PREFIX[role]}_{identifier(name) or 'unnamed'}"


def _assign(g: Graph) -> dict[int, str]:
    names: dict[int, str] = {}
    taken: set[str] = set()
    for nid in sorted(g.nx.nodes):
        d = g.node(nid)
        if d["op"] in ROLE_PREFIX:
            base = _leaf_identifier(d["op"], d["name"])
        else:
            base = f"c{nid}" if d["op"] == "const" else f"t{nid}"
        name, k = base, 1
        while name in taken:
            k += 1
            name = f"{base}_{k}"
        taken.add(name)
        names[nid] = name
    return names


_CACHE: weakref.WeakKeyDictionary[Graph, tuple[int, dict[int, str]]] = weakref.WeakKeyDictionary()


def buffer_names(g: Graph) -> dict[int, str]:
    """Node id -> identifier for every node of `g` (see the module docstring). Cached per
    graph until a node is added (passes never rename an existing node; they build new
    graphs)."""
    hit = _CACHE.get(g)
    if hit is None or hit[0] != g._next:
        hit = (g._next, _assign(g))
        _CACHE[g] = hit
    return hit[1]


def label(g: Graph, nid: int) -> str:
    """What a reader knows the node by: its leaf name (e.g. `0.weight`), or "" for
    intermediates."""
    d = g.node(nid)
    return d["name"] if d["op"] in ROLE_PREFIX else ""


def _locals(body: list[Stmt]) -> set[str]:
    """Every name a kernel body declares or reads that is not one of its buffers' loads."""
    found: set[str] = set()

    def expr(e: object) -> None:
        parts = list(walk(e))  # type: ignore[arg-type]
        # a runtime helper (an op done by numpy, e.g. getitem with an index array) names its
        # source buffer as a Var argument: a buffer read, not a local
        helper_buffers = {
            id(a)
            for p in parts
            if isinstance(p, Call) and p.fn in OPS
            for a in p.args[:1]
            if isinstance(a, Var)
        }
        found.update(p.name for p in parts if isinstance(p, Var) and id(p) not in helper_buffers)

    stack = list(body)
    while stack:
        s = stack.pop()
        if isinstance(s, Loop):
            found.add(s.var)
            stack.extend(s.body)
        elif isinstance(s, Let):
            found.add(s.var)
            expr(s.value)
        elif isinstance(s, Local):
            found.add(s.name)
        elif isinstance(s, Store):
            for i in s.index:
                expr(i)
            expr(s.value)
        elif isinstance(s, Accumulate):
            if "[" not in s.target:  # a register, not a buffer element
                found.add(s.target)
            expr(s.value)
            if s.index is not None:
                expr(s.index)
    return found


def _loaded(body: list[Stmt]) -> set[str]:
    found: set[str] = set()
    stack = list(body)
    while stack:
        s = stack.pop()
        if isinstance(s, Loop):
            stack.extend(s.body)
            continue
        exprs = []
        if isinstance(s, (Let, Accumulate)):
            exprs = [s.value]
        elif isinstance(s, Store):
            found.add(s.buffer)
            exprs = [s.value, *s.index]
        for e in exprs:
            found.update(p.buffer for p in walk(e) if isinstance(p, Load))
    return found


def check_kernel_names(kernel: Kernel) -> None:
    """Raise if a name `kernel` would print is not a valid identifier, is reserved, or is
    both a buffer and a local (a compiler bug: it would compile to wrong numbers)."""
    buffers = [b.name for b in kernel.buffers]
    local = _locals(kernel.body)
    problems = [
        f"{name!r} is not a valid identifier or is reserved"
        for name in [kernel.name, *buffers, *local]
        if not IDENTIFIER.fullmatch(name) or name in RESERVED
    ]
    if len(set(buffers)) != len(buffers):
        problems.append(f"two buffers share a name in {buffers}")
    problems += [f"{name!r} is both a buffer and a local" for name in sorted(local & set(buffers))]
    unknown = _loaded(kernel.body) - set(buffers) - local
    problems += [f"{name!r} is loaded but is neither a buffer nor a local" for name in unknown]
    if problems:
        raise RuntimeError(
            f"compiler bug in kernel {kernel.name}: {'; '.join(problems)}. "
            "Local names must not take a buffer prefix (in_, p_, s_, t<id>, c<id>)"
        )
