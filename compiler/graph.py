"""Graph IR: the program as a networkx MultiDiGraph, and `trace` that records it from the DSL.

A node is an int id with attributes: `op` (an op-table name, or "input" / "param" / "const" /
"state" for leaves), `attrs`, `shape`, `dtype`, `name` (for leaves and outputs) and `value`
(constants); optionally `label` (what an intermediate is: "grad:NAME" for a parameter's
gradient) and, after simplify, `origin` (the traced node whose value it holds). Traced ops
also carry their provenance: `layer`, the path of the module whose call recorded them
(`features.3`, "" outside any sub-module, "loss" for a training loss), and `phase`
("forward", "loss", "backward": the VJP of an op of that layer, "update": the optimizer's
update of that layer's parameters); passes keep both on the nodes they rebuild. An edge
`a -> b` with key `k` says "a is operand k of b", so `mul(h, h)` has two edges.
`Graph.outputs` lists the output node ids in order; `Graph.input_names` lists the
inputs in argument order (the order a compiled call binds them), which is not the order the
tracer met them and includes inputs the program never reads.

Tracing runs the user's function in `trace_mode`: every op is recorded and no numbers are
computed (tensors hold only shapes and dtypes, from the op table's rules), so tracing the full
AlexNet costs milliseconds.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import networkx as nx
import numpy as np

from tinygrad_edu import Tensor, nn
from tinygrad_edu.autograd import FORWARD, input_checks, module_paths, trace_mode
from tinygrad_edu.ops import OPS
from tinygrad_edu.tensor import MetaArray

LEAF_ROLES = ("input", "param", "const", "state")


@dataclass(frozen=True)
class Leaf:
    """How a traced leaf tensor enters the graph: its role and its name."""

    role: str
    name: str


class Graph:
    """A traced program. `g.nx` is the networkx MultiDiGraph; passes return new Graphs."""

    def __init__(self) -> None:
        self.nx: nx.MultiDiGraph = nx.MultiDiGraph()
        self.outputs: list[int] = []
        self.output_names: list[str] = []
        self.input_names: list[str] = []  # argument order; see `argument_names`
        # (input name, check): run on that input's array at each call (`record_input_check`)
        self.input_checks: list[tuple[str, Callable[[Any], None]]] = []
        # output name -> check: outputs that exist only to be checked at each call (an index
        # computed inside the program, that no input check covers); never returned
        self.output_checks: dict[str, Callable[[Any], None]] = {}
        self._next = 0

    # -- building ---------------------------------------------------------------------------
    def add(
        self,
        op: str,
        operands: Sequence[int] = (),
        attrs: dict[str, Any] | None = None,
        shape: Sequence[int] = (),
        dtype: Any = np.float32,
        name: str = "",
        value: np.ndarray | None = None,
    ) -> int:
        nid = self._next
        self._next += 1
        self.nx.add_node(
            nid,
            op=op,
            attrs=dict(attrs or {}),
            shape=tuple(shape),
            dtype=np.dtype(dtype),
            name=name,
            value=value,
        )
        for k, src in enumerate(operands):
            self.nx.add_edge(src, nid, key=k)
        return nid

    def copy(self) -> Graph:
        g = Graph()
        g.nx = self.nx.copy()
        g.outputs, g.output_names, g._next = list(self.outputs), list(self.output_names), self._next
        g.input_names = list(self.input_names)
        g.input_checks = list(self.input_checks)
        g.output_checks = dict(self.output_checks)
        return g

    # -- reading ----------------------------------------------------------------------------
    def node(self, nid: int) -> dict[str, Any]:
        return self.nx.nodes[nid]

    def operands(self, nid: int) -> list[int]:
        # an edge's key is its operand position; read networkx's predecessor table directly
        # (an in_edges view per call made this a tenth of a warm compile)
        pairs = sorted((key, src) for src, keys in self.nx._pred[nid].items() for key in keys)
        return [src for _, src in pairs]

    def consumers(self, nid: int) -> list[int]:
        return sorted({dst for _, dst in self.nx.out_edges(nid)})

    def order(self) -> list[int]:
        """Nodes in a deterministic topological order (ties broken by id)."""
        return list(nx.lexicographical_topological_sort(self.nx))

    def is_leaf(self, nid: int) -> bool:
        return self.node(nid)["op"] in LEAF_ROLES

    def leaves(self, role: str) -> list[int]:
        return [n for n in sorted(self.nx.nodes) if self.node(n)["op"] == role]

    def argument_names(self) -> list[str]:
        """Every input in argument order: the declared `input_names`, then any other input
        leaf (a graph built by hand) in id order."""
        declared = set(self.input_names)
        extra = [self.node(n)["name"] for n in self.leaves("input")]
        return list(self.input_names) + [n for n in extra if n not in declared]

    def __len__(self) -> int:
        return self.nx.number_of_nodes()

    def layer(self, nid: int) -> str:
        """The module path that produced node `nid` ("" when unknown or outside modules)."""
        return self.node(nid).get("layer", "")

    def phase(self, nid: int) -> str:
        """The phase that produced node `nid`: forward, loss, backward or update."""
        return self.node(nid).get("phase", FORWARD)

    def describe(self, nid: int) -> str:
        d = self.node(nid)
        if d["op"] in LEAF_ROLES:
            return f"%{nid} = {d['op']} {d['name']!r}"
        args = ", ".join(f"%{o}" for o in self.operands(nid))
        attrs = ", ".join(f"{k}={_short(v)}" for k, v in d["attrs"].items())
        return f"%{nid} = {d['op']}({args}{', ' if attrs and args else ''}{attrs})"

    def __str__(self) -> str:
        lines = [f"Graph: {len(self)} nodes, outputs {self.output_names}"]
        for nid in self.order():
            d = self.node(nid)
            out = (
                f"  -> output {self.output_names[self.outputs.index(nid)]!r}"
                if (nid in self.outputs)
                else ""
            )
            lines.append(f"  {self.describe(nid):64s} {str(d['shape']):18s} {d['dtype']}{out}")
        return "\n".join(lines)

    __repr__ = __str__


def _short(v: Any) -> str:
    if isinstance(v, tuple) and len(v) > 6:
        return f"({', '.join(map(str, v[:3]))}, ...)"
    if isinstance(v, float):
        return f"{v:g}"
    return str(v)


def from_tensors(
    outputs: Sequence[Tensor],
    output_names: Sequence[str],
    leaves: dict[int, Leaf],
    input_names: Sequence[str] = (),
    labels: dict[int, str] | None = None,
) -> Graph:
    """Read the recorded ops behind `outputs` into a Graph.

    `leaves` maps id(tensor) of every input, parameter and state tensor to its role and name;
    any other leaf must hold real numbers and becomes a constant. `labels` maps id(tensor) of
    intermediates worth naming (a parameter's gradient: "grad:NAME") to a node `label`.
    """
    g = Graph()
    ids: dict[int, int] = {}
    # iterative post-order walk over the recorded inputs
    stack: list[tuple[Tensor, bool]] = [(t, False) for t in reversed(outputs)]
    while stack:
        t, expanded = stack.pop()
        if id(t) in ids:
            continue
        if t._op is None or id(t) in leaves:
            leaf = leaves.get(id(t))
            if leaf is not None:
                ids[id(t)] = g.add(leaf.role, shape=t.shape, dtype=t.dtype, name=leaf.name)
            elif isinstance(t.data, MetaArray):
                raise ValueError(
                    f"trace: a symbolic tensor of shape {t.shape} reached the graph without "
                    "being an input or a parameter. Fix: create tensors inside the traced "
                    "function from its arguments (or pass them in as inputs)"
                )
            else:
                value = np.array(t.data, copy=True)
                ids[id(t)] = g.add(
                    "const", shape=t.shape, dtype=t.dtype, name=f"const{len(ids)}", value=value
                )
            continue
        if not expanded:
            stack.append((t, True))
            for parent in reversed(t._inputs):
                if id(parent) not in ids:
                    stack.append((parent, False))
            continue
        ids[id(t)] = g.add(t._op.name, [ids[id(p)] for p in t._inputs], t._attrs, t.shape, t.dtype)
        layer, phase = t._scope
        g.node(ids[id(t)]).update(layer=layer, phase=phase)
    for key, label in (labels or {}).items():
        if key in ids:
            g.node(ids[key])["label"] = label
    g.outputs = [ids[id(t)] for t in outputs]
    g.output_names = list(output_names)
    g.input_names = list(input_names)
    return g


def _as_outputs(result: Any) -> tuple[list[Tensor], list[str]]:
    if isinstance(result, Tensor):
        return [result], ["out"]
    if isinstance(result, dict):
        return list(result.values()), [str(k) for k in result]
    if isinstance(result, (tuple, list)) and all(isinstance(r, Tensor) for r in result):
        return list(result), [f"out{i}" for i in range(len(result))]
    raise TypeError(
        f"trace: the function must return a Tensor, a tuple of Tensors or a dict, "
        f"got {type(result).__name__}"
    )


def example_tensor(x: Any, name: str) -> Tensor:
    """A symbolic stand-in (shape and dtype only) for an example input."""
    arr = x.numpy() if isinstance(x, Tensor) else np.asarray(x)
    dtype = arr.dtype
    if dtype.kind == "f" and dtype != np.float64:
        dtype = np.dtype(np.float32)
    elif dtype.kind in "iu":
        dtype = np.dtype(np.int64)
    return Tensor._make(MetaArray(arr.shape, dtype))


def named_parameters(model: Any) -> list[tuple[str, Tensor]]:
    if isinstance(model, nn.Module):
        return list(model.named_parameters())
    return []


@dataclass(frozen=True)
class BufferRef:
    """A module's buffer: its state_dict name, its owner and attribute, its tensor."""

    name: str
    owner: nn.Module
    attr: str
    tensor: Tensor


def buffers_of(model: Any) -> list[BufferRef]:
    """Every buffer of `model` (none unless it is an nn.Module), state_dict names."""
    if not isinstance(model, nn.Module):
        return []
    return [
        BufferRef(f"{prefix}.{attr}" if prefix else attr, module, attr, t)
        for prefix, module in model.named_modules()
        for attr, t in module.named_buffers(recurse=False)
    ]


def trace(
    model: Callable[..., Any],
    *examples: Any,
    input_names: Iterable[str] | None = None,
    module: Any = None,
) -> Graph:
    """Record `model(*examples)` as a Graph (nothing is computed).

    `model` is an `nn.Module` (its parameters become "param" leaves, named as in its
    state_dict, and its buffers "state" leaves named "buffer:NAME") or any function of
    Tensors. Examples are arrays or Tensors; only their shapes and dtypes matter. `module`
    names the parameters' owner when `model` is a plain function that calls a module. A
    buffer the program updates (`Module.update_buffer`: running statistics in training mode)
    gets an output "buffer:NAME" holding its new value.
    """
    names = (
        list(input_names) if input_names is not None else [f"x{i}" for i in range(len(examples))]
    )
    if len(names) != len(examples) or len(set(names)) != len(names):
        raise ValueError(
            f"trace: input_names {names} must name each of the {len(examples)} examples once. "
            "Fix: pass one distinct name per example"
        )
    leaves: dict[int, Leaf] = {}
    with trace_mode(), input_checks() as checks:
        args = [example_tensor(x, n) for x, n in zip(examples, names)]
        for t, n in zip(args, names):
            leaves[id(t)] = Leaf("input", n)
        owner = module if module is not None else model
        for name, p in named_parameters(owner):
            leaves[id(p)] = Leaf("param", name)
        buffers = buffers_of(owner)
        for b in buffers:
            leaves[id(b.tensor)] = Leaf("state", f"buffer:{b.name}")
        paths = module_paths(owner) if isinstance(owner, nn.Module) else contextlib.nullcontext()
        try:
            with paths:
                outputs, out_names = _as_outputs(model(*args))
            for b in buffers:  # updated buffers: the attribute now holds the new value
                new = getattr(b.owner, b.attr)
                if new is not b.tensor:
                    outputs.append(new)
                    out_names.append(f"buffer:{b.name}")
        finally:
            for b in buffers:
                object.__setattr__(b.owner, b.attr, b.tensor)
    on_inputs: list[tuple[str, Callable[[Any], None]]] = []
    output_checks: dict[str, Callable[[Any], None]] = {}
    for t, check in checks:
        source = _traced_source(t)
        leaf = leaves.get(id(source))
        if leaf is not None and leaf.role == "input":
            on_inputs.append((leaf.name, check))
        elif leaf is None and source.op_name not in IN_RANGE_BY_CONSTRUCTION:
            # computed in the program: its values are known only when it runs, so it becomes
            # an output the runtime checks (and drops) at each call
            name = f"check:{len(output_checks)}"
            outputs.append(t)
            out_names.append(name)
            output_checks[name] = check
    g = from_tensors(outputs, out_names, leaves, names)
    g.input_checks, g.output_checks = on_inputs, output_checks
    return g


def _traced_source(t: Tensor) -> Tensor:
    """The tensor `t` re-presents without changing its values (through casts, reshapes and
    detaches): an input's checks hold for it too."""
    while t._op is not None and len(t._inputs) == 1 and t._op.name in SAME_VALUES:
        t = t._inputs[0]
    return t


SAME_VALUES = ("cast", "reshape", "detach")
# ops whose results are valid indices along the dim they were taken over
IN_RANGE_BY_CONSTRUCTION = ("argmax", "argmin", "argsort")


def copy_provenance(src: dict[str, Any], dst: dict[str, Any]) -> None:
    """Give node attributes `dst` the layer and phase of `src` unless it has its own."""
    for key in ("layer", "phase"):
        if key in src:
            dst.setdefault(key, src[key])


def op_of(g: Graph, nid: int) -> Any:
    """The op-table entry of a non-leaf node."""
    return OPS[g.node(nid)["op"]]
