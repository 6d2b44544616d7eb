"""ONNX export from the graph IR: `export_onnx(model, example, path)`.

The model is traced (`compiler.trace`, in eval mode: dropout is the identity, batch norm reads
its running statistics) and every node of the graph becomes one or a few ONNX nodes. The
graph holds only op-table primitives, so composites (linear, softmax, LRN, adaptive pooling)
arrive as the primitives they are made of and need no rule of their own. Parameters and
buffers become initializers named as in the state_dict (buffers marked "buffer" in their
doc_string, so `import_onnx` registers them as buffers again); constants become Constant
nodes.

Dynamic batch: the model is traced a second time with the batch one larger. Every dimension
that is N in the first trace and N + 1 in the second is the batch (`"batch"` in the ONNX
shapes), and every shape attribute that changed with it (reshape and expand targets, slice
ends) is written so that it follows the input's batch at run time. A model whose graph or
constants change in any other way with the batch raises instead of exporting a model that is
right for one batch size only.

The file is written atomically (temporary file, fsync, rename): a failed export leaves an
existing file untouched.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from tinygrad_edu import nn
from tinygrad_edu.errors import op_error
from tinygrad_edu.serialization import atomic_write

from .graph import Graph, example_tensor, trace

DEFAULT_OPSET = 18
MIN_OPSET = 17
INT64_MAX = np.iinfo(np.int64).max


def _onnx() -> Any:
    try:
        import onnx
    except ImportError:
        raise ImportError(
            "export_onnx needs the onnx package. Fix: pip install -e '.[onnx]'"
        ) from None
    return onnx


@dataclass
class _Batch:
    """What depends on the batch: per node, the dims that are the batch, and the node's attrs
    in the second trace (batch N + 1), where they differ from the first."""

    size: int = 0
    dims: dict[int, tuple[int, ...]] = field(default_factory=dict)
    attrs2: dict[int, dict[str, Any]] = field(default_factory=dict)
    shape_name: str = ""  # the 1-D int64 [N] tensor, built on first use


@contextmanager
def _eval_mode(model: Any) -> Iterator[None]:
    """Eval mode while exporting (as torch.onnx.export does); the modes are restored."""
    if not isinstance(model, nn.Module):
        yield
        return
    modes = [(m, m.training) for _, m in model.named_modules()]
    model.eval()
    try:
        yield
    finally:
        for m, mode in modes:
            object.__setattr__(m, "training", mode)


def _layer_of(g: Graph, nid: int) -> str:
    """The layer a node belongs to, for messages: the nearest parameter upstream."""
    seen, frontier = {nid}, [nid]
    while frontier:
        nxt = []
        for n in frontier:
            for o in g.operands(n):
                d = g.node(o)
                if d["op"] in ("param", "state"):
                    return d["name"].removeprefix("buffer:").rsplit(".", 1)[0]
                if o not in seen:
                    seen.add(o)
                    nxt.append(o)
        frontier = nxt
    return "(no layer: before any parameter)"


class _Builder:
    """Collects ONNX nodes, initializers and constants while walking the graph."""

    def __init__(self, g: Graph, opset: int, batch: _Batch | None) -> None:
        self.onnx = _onnx()
        self.g, self.opset, self.batch = g, opset, batch
        self.nodes: list[Any] = []
        self.initializers: list[Any] = []
        self.names: dict[int, str] = {}
        self._count = 0
        self.current = -1  # the graph node being exported (for names and messages)

    # -- helpers ----------------------------------------------------------------------------
    def fresh(self, hint: str) -> str:
        self._count += 1
        return f"{hint}_{self._count}"

    def emit(
        self, op_type: str, inputs: Sequence[str], out: str | None = None, **attrs: Any
    ) -> str:
        out = out or self.fresh(f"v{self.current}_{op_type}")
        name = f"{self.g.node(self.current)['op']}_{self.current}" if self.current >= 0 else op_type
        self.nodes.append(
            self.onnx.helper.make_node(op_type, list(inputs), [out], name=self.fresh(name), **attrs)
        )
        return out

    def const(self, value: Any, dtype: Any = None) -> str:
        array = np.asarray(value, dtype=dtype)
        tensor = self.onnx.numpy_helper.from_array(array)
        return self.emit("Constant", [], self.fresh("const"), value=tensor)

    def ints(self, values: Sequence[int]) -> str:
        return self.const(np.asarray(list(values), np.int64))

    def tensor_type(self, dtype: Any) -> int:
        return int(self.onnx.helper.np_dtype_to_tensor_dtype(np.dtype(dtype)))

    def cast(self, name: str, have: Any, want: Any) -> str:
        if np.dtype(have) == np.dtype(want):
            return name
        return self.emit("Cast", [name], to=self.tensor_type(want))

    def fail(self, problem: str, fix: str) -> Exception:
        d = self.g.node(self.current)
        return op_error(
            "export_onnx",
            f"{problem} at node %{self.current} ({self.g.describe(self.current)}, layer "
            f"{_layer_of(self.g, self.current)})",
            f"shape {d['shape']}, dtype {d['dtype']}",
            fix,
        )

    # -- the batch ------------------------------------------------------------------------
    def batch_dims(self, nid: int) -> tuple[int, ...]:
        return self.batch.dims.get(nid, ()) if self.batch else ()

    def batch_size(self) -> str:
        """A 1-D int64 tensor [N] holding the batch of the first batched input."""
        assert self.batch is not None
        if not self.batch.shape_name:
            first = next(n for n in self.g.leaves("input") if self.batch_dims(n))
            saved, self.current = self.current, -1
            self.batch.shape_name = self.emit(
                "Shape", [self.names[first]], "batch_size", start=0, end=1
            )
            self.current = saved
        return self.batch.shape_name

    def shape_vector(self, shape: Sequence[int], batch_at: Sequence[int]) -> str:
        """`shape` as an int64 tensor, with the run-time batch at positions `batch_at`."""
        if not batch_at:
            return self.ints(shape)
        pieces, run = [], []
        for i, n in enumerate(shape):
            if i in batch_at:
                if run:
                    pieces.append(self.ints(run))
                    run = []
                pieces.append(self.batch_size())
            else:
                run.append(n)
        if run:
            pieces.append(self.ints(run))
        return self.emit("Concat", pieces, axis=0)

    def changed(self, nid: int, attr: str) -> Any:
        """The attr's value in the second trace, or None where it did not change."""
        if self.batch is None:
            return None
        return self.batch.attrs2.get(nid, {}).get(attr)


# ---------------------------------------------------------------------------------------------
# one rule per op: (builder, node id, operand names, attrs) -> output name
# ---------------------------------------------------------------------------------------------
Rule = Callable[[_Builder, int, list[str], dict[str, Any]], str]
RULES: dict[str, Rule] = {}

_UNARY = {
    "neg": "Neg",
    "exp": "Exp",
    "log": "Log",
    "sqrt": "Sqrt",
    "abs": "Abs",
    "sign": "Sign",
    "floor": "Floor",
    "relu": "Relu",
    "sigmoid": "Sigmoid",
    "tanh": "Tanh",
    "erf": "Erf",
    "sin": "Sin",
    "cos": "Cos",
    "asin": "Asin",
    "acos": "Acos",
    "atan": "Atan",
    "detach": "Identity",
    "bitwise_not": "BitwiseNot",
}
_ARITHMETIC = {"add": "Add", "sub": "Sub", "mul": "Mul", "div": "Div", "pow": "Pow"}
_ARITHMETIC |= {"maximum": "Max", "minimum": "Min"}
_ARITHMETIC |= {"bitwise_and": "BitwiseAnd", "bitwise_or": "BitwiseOr", "bitwise_xor": "BitwiseXor"}
_COMPARE = {"eq": "Equal", "lt": "Less", "le": "LessOrEqual", "gt": "Greater"}
_COMPARE |= {"ge": "GreaterOrEqual"}


def _operand_dtypes(b: _Builder, nid: int) -> list[np.dtype]:
    return [b.g.node(o)["dtype"] for o in b.g.operands(nid)]


def _unary(op_type: str) -> Rule:
    return lambda b, nid, xs, attrs: b.emit(op_type, xs)


def _arithmetic(op_type: str) -> Rule:
    # ONNX does not promote: every operand is cast to the result's dtype first (int / int
    # is float32 in the DSL, a float times a bool mask is a float)
    def rule(b: _Builder, nid: int, xs: list[str], attrs: dict[str, Any]) -> str:
        want = b.g.node(nid)["dtype"]
        args = [b.cast(x, d, want) for x, d in zip(xs, _operand_dtypes(b, nid))]
        return b.emit(op_type, args)

    return rule


def _compare(op_type: str, negate: bool = False) -> Rule:
    def rule(b: _Builder, nid: int, xs: list[str], attrs: dict[str, Any]) -> str:
        dtypes = _operand_dtypes(b, nid)
        common = np.result_type(*dtypes)
        out = b.emit(op_type, [b.cast(x, d, common) for x, d in zip(xs, dtypes)])
        return b.emit("Not", [out]) if negate else out

    return rule


for _op, _t in _UNARY.items():
    RULES[_op] = _unary(_t)
for _op, _t in _ARITHMETIC.items():
    RULES[_op] = _arithmetic(_t)
for _op, _t in _COMPARE.items():
    RULES[_op] = _compare(_t)
RULES["ne"] = _compare("Equal", negate=True)


def _leaky_relu(b: _Builder, nid: int, xs: list[str], attrs: dict[str, Any]) -> str:
    return b.emit("LeakyRelu", xs, alpha=float(attrs["slope"]))


def _cast(b: _Builder, nid: int, xs: list[str], attrs: dict[str, Any]) -> str:
    return b.emit("Cast", xs, to=b.tensor_type(attrs["dtype"]))


def _where(b: _Builder, nid: int, xs: list[str], attrs: dict[str, Any]) -> str:
    want = b.g.node(nid)["dtype"]
    dtypes = _operand_dtypes(b, nid)
    return b.emit("Where", [xs[0]] + [b.cast(x, d, want) for x, d in zip(xs[1:], dtypes[1:])])


def _reduce(op_type: str) -> Rule:
    def rule(b: _Builder, nid: int, xs: list[str], attrs: dict[str, Any]) -> str:
        axes, keep = list(attrs["axis"]), int(bool(attrs["keepdim"]))
        x = b.cast(xs[0], _operand_dtypes(b, nid)[0], b.g.node(nid)["dtype"])
        if not axes:  # ONNX reads empty axes as "all"; the DSL as "none"
            return b.emit("Identity", [x])
        if op_type == "ReduceSum" or b.opset >= 18:
            return b.emit(op_type, [x, b.ints(axes)], keepdims=keep)
        return b.emit(op_type, [x], axes=axes, keepdims=keep)

    return rule


RULES["leaky_relu"] = _leaky_relu
RULES["cast"] = _cast
RULES["where"] = _where
RULES["sum"] = _reduce("ReduceSum")
RULES["max"] = _reduce("ReduceMax")
RULES["min"] = _reduce("ReduceMin")


def _argmax(b: _Builder, nid: int, xs: list[str], attrs: dict[str, Any]) -> str:
    if attrs["axis"] is not None:
        return b.emit("ArgMax", xs, axis=int(attrs["axis"]), keepdims=int(attrs["keepdim"]))
    flat = b.emit("Reshape", [xs[0], b.ints([-1])])
    out = b.emit("ArgMax", [flat], axis=0, keepdims=0)
    return _reshape_to(b, out, b.g.node(nid)["shape"], []) if attrs["keepdim"] else out


def _batch_positions(b: _Builder, nid: int, attr: str, values: Sequence[int]) -> list[int]:
    """Positions of a shape attribute that follow the batch (checked: N -> N + 1)."""
    other = b.changed(nid, attr)
    if other is None:
        return []
    assert b.batch is not None
    moved = [i for i, (p, q) in enumerate(zip(values, other)) if p != q]
    if any((values[i], other[i]) != (b.batch.size, b.batch.size + 1) for i in moved):
        raise b.fail(
            f"the {attr} {tuple(values)} changes with the batch in a way other than the "
            f"batch itself (N + 1 gives {tuple(other)})",
            "export with dynamic_batch=False, or keep the batch as its own dimension",
        )
    return moved


def _reshape_to(b: _Builder, x: str, shape: Sequence[int], batch_at: Sequence[int]) -> str:
    """Reshape to `shape`, the batch at `batch_at`; a 0 means an empty dim (allowzero), not
    ONNX's default "copy the input's size"."""
    shape = list(shape)
    if 0 in shape:
        return b.emit("Reshape", [x, b.shape_vector(shape, batch_at)], allowzero=1)
    if len(batch_at) == 1:  # the other sizes are fixed: -1 lets ONNX infer the batch
        shape[batch_at[0]] = -1
        return b.emit("Reshape", [x, b.ints(shape)])
    return b.emit("Reshape", [x, b.shape_vector(shape, batch_at)])


def _reshape(b: _Builder, nid: int, xs: list[str], attrs: dict[str, Any]) -> str:
    shape = list(attrs["shape"])
    return _reshape_to(b, xs[0], shape, _batch_positions(b, nid, "shape", shape))


def _permute(b: _Builder, nid: int, xs: list[str], attrs: dict[str, Any]) -> str:
    return b.emit("Transpose", xs, perm=list(attrs["dims"]))


def _expand(b: _Builder, nid: int, xs: list[str], attrs: dict[str, Any]) -> str:
    shape = list(attrs["shape"])
    return b.emit(
        "Expand", [xs[0], b.shape_vector(shape, _batch_positions(b, nid, "shape", shape))]
    )


def _pad(b: _Builder, nid: int, xs: list[str], attrs: dict[str, Any]) -> str:
    pads = [lo for lo, _ in attrs["pads"]] + [hi for _, hi in attrs["pads"]]
    value = b.const(np.asarray(attrs["value"], b.g.node(nid)["dtype"]))
    return b.emit("Pad", [xs[0], b.ints(pads), value], mode="constant")


def _axes_used(item: Any) -> int:
    """How many input axes an index item consumes (a k-d bool mask: k)."""
    if item is None or item is Ellipsis:
        return 0
    if isinstance(item, np.ndarray) and item.dtype.kind == "b":
        return item.ndim
    return 1


def _getitem(b: _Builder, nid: int, xs: list[str], attrs: dict[str, Any]) -> str:
    # Slices keep Python's meaning in ONNX's Slice (negative starts count from the end, ends
    # clamp), so they are written as given and follow the batch; ints and one integer array
    # become Gathers (a 0-d index drops its axis, an array puts its dims in place, as numpy
    # does for a single index array); None becomes Unsqueeze at its place in the result.
    index = attrs["index"]
    rank = len(b.g.node(b.g.operands(nid)[0])["shape"])
    arrays = [i for i in index if isinstance(i, np.ndarray)]
    used = sum(_axes_used(i) for i in index)
    items: list[Any] = []
    for i in index:  # the Ellipsis and the unnamed trailing axes as full slices
        items += [slice(None)] * (rank - used) if i is Ellipsis else [i]
    items += [slice(None)] * (rank - sum(_axes_used(i) for i in items))
    if len(arrays) > 1 or any(a.dtype.kind == "b" for a in arrays):
        return _advanced_index(b, nid, xs[0], items)
    starts, ends, axes, steps, gathers, unsqueeze = [], [], [], [], [], []
    axis = position = 0
    for item in items:
        if item is None:
            unsqueeze.append(position)
            position += 1
            continue
        if isinstance(item, slice):
            step = 1 if item.step is None else int(item.step)
            if item != slice(None) and (item.start, item.stop, step) != (None, None, 1):
                forward = step > 0
                starts.append((0 if forward else INT64_MAX) if item.start is None else item.start)
                ends.append(
                    (INT64_MAX if forward else -INT64_MAX) if item.stop is None else item.stop
                )
                axes.append(axis)
                steps.append(step)
            position += 1
        elif isinstance(item, int):
            gathers.append((axis, np.asarray(item, np.int64)))
        else:
            gathers.append((axis, np.asarray(item, np.int64)))
            position += item.ndim
        axis += 1
    out = xs[0]
    if axes:
        out = b.emit("Slice", [out, b.ints(starts), b.ints(ends), b.ints(axes), b.ints(steps)])
    for g_axis, idx in reversed(gathers):  # last axis first: earlier axes keep their numbers
        out = b.emit("Gather", [out, b.const(idx)], axis=g_axis)
    if unsqueeze:
        out = b.emit("Unsqueeze", [out, b.ints(unsqueeze)])
    return out if out != xs[0] else b.emit("Identity", [out])


def _advanced_index(b: _Builder, nid: int, x: str, items: list[Any]) -> str:
    """Several index arrays (a bool mask is the int arrays of its nonzero positions): slice,
    bring the indexed axes together (first, unless they are adjacent: numpy's placement
    rule), merge them into one axis and Gather with the flat (raveled) index."""
    if any(i is None or isinstance(i, int) for i in items) or any(
        isinstance(i, np.ndarray) and i.dtype.kind == "b" and i.ndim == 0 for i in items
    ):
        raise b.fail(
            "index arrays mixed with None or a 0-d mask have no ONNX rule here",
            "index with the arrays and slices alone, then unsqueeze",
        )
    shape = list(b.g.node(b.g.operands(nid)[0])["shape"])
    per_axis: list[Any] = []
    for item in items:  # a k-d mask spans k axes: one int array per axis
        if isinstance(item, np.ndarray) and item.dtype.kind == "b":
            per_axis += list(np.nonzero(item))
        else:
            per_axis.append(item)
    starts, ends, steps, slice_axes, sizes = [], [], [], [], []
    for a, item in enumerate(per_axis):
        if isinstance(item, slice):
            r = range(*item.indices(shape[a]))
            if (r.start, r.stop, r.step) != (0, shape[a], 1):
                starts, ends = starts + [r.start], ends + [r.stop if r.stop >= 0 else -INT64_MAX]
                steps, slice_axes = steps + [r.step], slice_axes + [a]
            sizes.append(len(r))
        else:
            sizes.append(shape[a])
    batch = set(b.batch_dims(b.g.operands(nid)[0]))
    axes = [a for a, item in enumerate(per_axis) if isinstance(item, np.ndarray)]
    if batch & (set(axes) | set(slice_axes)):
        raise b.fail(
            "index arrays or slices on the batch axis cannot follow a dynamic batch",
            "export with dynamic_batch=False",
        )
    out = x
    if slice_axes:
        out = b.emit(
            "Slice", [out, b.ints(starts), b.ints(ends), b.ints(slice_axes), b.ints(steps)]
        )
    arrays = np.broadcast_arrays(*[per_axis[a] % max(sizes[a], 1) for a in axes])
    flat = np.ravel_multi_index(tuple(arrays), [sizes[a] for a in axes]).astype(np.int64)
    adjacent = axes == list(range(axes[0], axes[0] + len(axes)))
    order = (
        list(range(len(sizes)))
        if adjacent
        else axes + [a for a in range(len(sizes)) if a not in axes]
    )
    if not adjacent:
        out = b.emit("Transpose", [out], perm=order)
    p = axes[0] if adjacent else 0
    moved = [sizes[a] for a in order]
    merged = moved[:p] + [int(np.prod([sizes[a] for a in axes]))] + moved[p + len(axes) :]
    at = [i for i, a in enumerate(order[:p] + [-1] + order[p + len(axes) :]) if a in batch]
    out = _reshape_to(b, out, merged, at)
    return b.emit("Gather", [out, b.const(flat)], axis=p)


def _cat(b: _Builder, nid: int, xs: list[str], attrs: dict[str, Any]) -> str:
    want = b.g.node(nid)["dtype"]
    args = [b.cast(x, d, want) for x, d in zip(xs, _operand_dtypes(b, nid))]
    return b.emit("Concat", args, axis=int(attrs["axis"]))


def _matmul(b: _Builder, nid: int, xs: list[str], attrs: dict[str, Any]) -> str:
    want = b.g.node(nid)["dtype"]
    return b.emit("MatMul", [b.cast(x, d, want) for x, d in zip(xs, _operand_dtypes(b, nid))])


def _window_attrs(attrs: dict[str, Any]) -> dict[str, Any]:
    ph, pw = attrs["padding"]
    return dict(strides=list(attrs["stride"]), pads=[ph, pw, ph, pw])


def _conv_attrs(g: Graph, nid: int) -> dict[str, Any]:
    attrs = g.node(nid)["attrs"]
    return dict(
        kernel_shape=list(g.node(g.operands(nid)[1])["shape"][2:]),
        dilations=list(attrs["dilation"]),
        group=int(attrs["groups"]),
        **_window_attrs(attrs),
    )


def _conv2d(b: _Builder, nid: int, xs: list[str], attrs: dict[str, Any]) -> str:
    return b.emit("Conv", xs, **_conv_attrs(b.g, nid))


def _max_pool2d(b: _Builder, nid: int, xs: list[str], attrs: dict[str, Any]) -> str:
    return b.emit(
        "MaxPool",
        xs,
        kernel_shape=list(attrs["kernel"]),
        dilations=list(attrs["dilation"]),
        **_window_attrs(attrs),
    )


def _avg_pool2d(b: _Builder, nid: int, xs: list[str], attrs: dict[str, Any]) -> str:
    extra: dict[str, Any] = {}
    if tuple(attrs["dilation"]) != (1, 1):
        if b.opset < 19:
            raise b.fail(
                "a dilated average pool needs ONNX opset 19", "export with opset=19 or more"
            )
        extra["dilations"] = list(attrs["dilation"])
    # the DSL divides by the whole window, padding included (count_include_pad=True)
    return b.emit(
        "AveragePool",
        xs,
        kernel_shape=list(attrs["kernel"]),
        count_include_pad=1,
        **_window_attrs(attrs),
        **extra,
    )


def _binary_cross_entropy(b: _Builder, nid: int, xs: list[str], attrs: dict[str, Any]) -> str:
    # -(y * max(log p, -100) + (1 - y) * max(log(1 - p), -100)), the op table's formula
    dtype = b.g.node(nid)["dtype"]
    p, y = (b.cast(x, d, dtype) for x, d in zip(xs, _operand_dtypes(b, nid)))
    one, floor = b.const(np.asarray(1, dtype)), b.const(np.asarray(-100, dtype))
    log_p = b.emit("Max", [b.emit("Log", [p]), floor])
    log_q = b.emit("Max", [b.emit("Log", [b.emit("Sub", [one, p])]), floor])
    total = b.emit(
        "Add", [b.emit("Mul", [y, log_p]), b.emit("Mul", [b.emit("Sub", [one, y]), log_q])]
    )
    return b.emit("Neg", [total])


def _one_hot(b: _Builder, nid: int, xs: list[str], attrs: dict[str, Any]) -> str:
    labels = b.cast(xs[0], _operand_dtypes(b, nid)[0], np.int64)
    column = b.emit("Unsqueeze", [labels, b.ints([-1])])
    hit = b.emit("Equal", [column, b.const(np.arange(attrs["num_classes"], dtype=np.int64))])
    return b.emit("Cast", [hit], to=b.tensor_type(attrs["dtype"]))


def _bernoulli(b: _Builder, nid: int, xs: list[str], attrs: dict[str, Any]) -> str:
    raise b.fail(
        "dropout in training mode (a random mask) has no inference meaning",
        "call dropout with training=False (modules are exported in eval mode)",
    )


def _gather_along(b: _Builder, nid: int, xs: list[str], attrs: dict[str, Any]) -> str:
    index = b.cast(xs[1], _operand_dtypes(b, nid)[1], np.int64)
    return b.emit("GatherElements", [xs[0], index], axis=int(attrs["dim"]))


def _put_along(b: _Builder, nid: int, xs: list[str], attrs: dict[str, Any]) -> str:
    """ScatterElements(reduction="add") into zeros of the index's shape but `size` along dim
    (the shape read from the index at run time, so a dynamic batch stays dynamic)."""
    dim, src_dtype = int(attrs["dim"]), _operand_dtypes(b, nid)[0]
    index = b.cast(xs[1], _operand_dtypes(b, nid)[1], np.int64)
    shape = b.emit("Shape", [index])
    parts = [b.emit("Slice", [shape, b.ints([0]), b.ints([dim])]), b.ints([attrs["size"]])]
    parts.append(b.emit("Slice", [shape, b.ints([dim + 1]), b.ints([len(b.g.node(nid)["shape"])])]))
    zeros = b.emit("Expand", [b.const(np.zeros((), src_dtype)), b.emit("Concat", parts, axis=0)])
    return b.emit("ScatterElements", [zeros, index, xs[0]], axis=dim, reduction="add")


def _argsort(b: _Builder, nid: int, xs: list[str], attrs: dict[str, Any]) -> str:
    """TopK of every entry (ONNX keeps the lower index first among equal values: stable)."""
    dim = int(attrs["dim"])  # k: the dim's length, read at run time (it may be the batch)
    size = b.emit("Slice", [b.emit("Shape", [xs[0]]), b.ints([dim]), b.ints([dim + 1])])
    values, indices = b.fresh(f"v{nid}_sorted"), b.fresh(f"v{nid}_order")
    have = np.dtype(_operand_dtypes(b, nid)[0])
    # onnxruntime's TopK takes float, double, int32 and int64: widen the rest (order kept)
    want = {"b": np.int32, "i": np.int32 if have.itemsize < 4 else have, "u": np.int64}.get(
        have.kind, np.float32 if have == np.float16 else have
    )
    keys = b.cast(xs[0], have, want)
    b.nodes.append(
        b.onnx.helper.make_node(
            "TopK",
            [keys, size],
            [values, indices],
            name=b.fresh(f"argsort_{nid}"),
            axis=dim,
            largest=int(attrs["descending"]),
            sorted=1,
        )  # fmt: skip
    )
    return indices


RULES |= {
    "argmax": _argmax,
    "gather_along": _gather_along,
    "put_along": _put_along,
    "argsort": _argsort,
    "reshape": _reshape,
    "permute": _permute,
    "expand": _expand,
    "pad": _pad,
    "getitem": _getitem,
    "cat": _cat,
    "matmul": _matmul,
    "conv2d": _conv2d,
    "max_pool2d": _max_pool2d,
    "avg_pool2d": _avg_pool2d,
    "binary_cross_entropy": _binary_cross_entropy,
    "one_hot": _one_hot,
    "bernoulli": _bernoulli,
}


# ---------------------------------------------------------------------------------------------
# tracing, the batch, the model proto
# ---------------------------------------------------------------------------------------------
def _examples_of(example: Any) -> tuple[Any, ...]:
    return tuple(example) if isinstance(example, (tuple, list)) else (example,)


def _batched(
    examples: Sequence[Any], names: Sequence[str], which: bool | Sequence[str]
) -> tuple[int, list[bool]]:
    """The batch size and which inputs carry it: those named in `which`, or (True) every
    input with the first one's leading size."""
    chosen = list(names) if which is True else list(which)  # type: ignore[arg-type]
    unknown = [c for c in chosen if c not in names]
    if unknown:
        raise op_error(
            "export_onnx",
            f"dynamic_batch names {unknown}, which are not inputs",
            list(names),
            "name inputs from input_names",
        )
    shapes = [np.shape(x) for x in examples]
    picked = [i for i, name in enumerate(names) if name in chosen and shapes[i]]
    if not picked or (which is not True and len(picked) != len(chosen)):
        raise op_error(
            "export_onnx",
            "dynamic_batch needs inputs with a batch dimension",
            shapes,
            "pass dynamic_batch=False for 0-d inputs",
        )
    n = shapes[picked[0]][0]
    return n, [i in picked and shapes[i][0] == n for i in range(len(examples))]


def _grown(examples: Sequence[Any], batched: Sequence[bool]) -> list[np.ndarray]:
    out = []
    for x, grow in zip(examples, batched):
        arr = np.asarray(x.numpy() if hasattr(x, "numpy") else x)
        if grow:
            arr = np.concatenate([arr, arr[:1]], axis=0)
        out.append(arr)
    return out


def _batch_of(g: Graph, g2: Graph, n: int) -> _Batch:
    """Compare the traces at batch N and N + 1 node by node (see the module docstring)."""
    batch = _Batch(size=n)
    same = len(g) == len(g2) and all(
        g.node(v)["op"] == g2.node(v)["op"] and g.operands(v) == g2.operands(v) for v in g.nx
    )
    if not same or g.outputs != g2.outputs:
        raise op_error(
            "export_onnx",
            "the model's graph changes with the batch size",
            f"{len(g)} nodes at batch {n}, {len(g2)} at batch {n + 1}",
            "export with dynamic_batch=False (a model for this batch size only)",
        )
    for v in g.nx:
        d1, d2 = g.node(v), g2.node(v)
        moved = [i for i, (p, q) in enumerate(zip(d1["shape"], d2["shape"])) if p != q]
        if any((d1["shape"][i], d2["shape"][i]) != (n, n + 1) for i in moved) or (
            d1["op"] == "const" and moved
        ):
            raise op_error(
                "export_onnx",
                f"node %{v} ({g.describe(v)}, layer {_layer_of(g, v)}) has shape "
                f"{d1['shape']} at batch {n} but {d2['shape']} at batch {n + 1}",
                d1["shape"],
                "keep the batch as a dimension of its own, or export with dynamic_batch=False",
            )
        if d1["op"] == "const" and not moved and not np.array_equal(d1["value"], d2["value"]):
            raise op_error(
                "export_onnx",
                f"the constant %{v} (layer {_layer_of(g, v)}) is {d1['value']} at batch {n} "
                f"but {d2['value']} at batch {n + 1} (a mean over the batch?)",
                d1["shape"],
                "export with dynamic_batch=False, or reduce over the batch outside the model",
            )
        if moved:
            batch.dims[v] = tuple(moved)
        changed = {
            k: d2["attrs"][k] for k in d1["attrs"] if _differs(d1["attrs"][k], d2["attrs"][k])
        }
        if changed:
            batch.attrs2[v] = changed
    return batch


def _differs(a: Any, b: Any) -> bool:
    if isinstance(a, tuple) and isinstance(b, tuple):
        return len(a) != len(b) or any(_differs(x, y) for x, y in zip(a, b))
    if isinstance(a, np.ndarray) or isinstance(b, np.ndarray):
        return not (np.shape(a) == np.shape(b) and np.array_equal(a, b))
    return bool(a != b)


def _only_consumer(g: Graph, nid: int, consumer: int) -> bool:
    return g.consumers(nid) == [consumer] and nid not in g.outputs


def _layers(g: Graph) -> tuple[dict[int, tuple[str, list[int], dict[str, Any]]], set[int]]:
    """Adds that finish a layer, written as one ONNX node as PyTorch's exporter writes them:
    conv2d + reshaped bias -> Conv with its bias input, x @ W.T + b -> Gemm(transB=1). Returns
    the fused adds (op type, operands, attributes) and the nodes they absorb."""
    fused: dict[int, tuple[str, list[int], dict[str, Any]]] = {}
    skipped: set[int] = set()
    for nid in g.nx.nodes:
        d = g.node(nid)
        if d["op"] != "add" or len(g.operands(nid)) != 2:
            continue
        for main, bias in (g.operands(nid), g.operands(nid)[::-1]):
            m, bd = g.node(main), g.node(bias)
            if main == bias or not _only_consumer(g, main, nid) or m["dtype"] != d["dtype"]:
                continue
            if bd["dtype"] != d["dtype"] or m["shape"] != d["shape"]:
                continue
            if m["op"] == "conv2d" and bd["op"] == "reshape" and _only_consumer(g, bias, nid):
                vector = g.operands(bias)[0]
                if bd["shape"] == (1, d["shape"][1], 1, 1) and len(g.node(vector)["shape"]) == 1:
                    fused[nid] = ("Conv", [*g.operands(main), vector], _conv_attrs(g, main))
                    skipped |= {main, bias}
                    break
            if m["op"] == "matmul" and len(m["shape"]) == 2 and bd["shape"] == m["shape"][1:]:
                a, t = g.operands(main)
                if g.node(t)["op"] == "permute" and g.node(t)["attrs"]["dims"] == (1, 0):
                    if _only_consumer(g, t, main) and g.node(a)["dtype"] == d["dtype"]:
                        fused[nid] = ("Gemm", [a, g.operands(t)[0], bias], {"transB": 1})
                        skipped |= {main, t}
                        break
    return fused, skipped


def _declare_unread_inputs(g: Graph, examples: Sequence[Any], names: Sequence[str]) -> None:
    """Inputs the program never reads are still graph inputs (calls bind by position)."""
    seen = {g.node(n)["name"] for n in g.leaves("input")}
    for x, name in zip(examples, names):
        if name not in seen:
            meta = example_tensor(x, name)
            g.add("input", shape=meta.shape, dtype=meta.dtype, name=name)


def _value_info(b: _Builder, name: str, nid: int) -> Any:
    d = b.g.node(nid)
    dims = [("batch" if i in b.batch_dims(nid) else n) for i, n in enumerate(d["shape"])]
    return b.onnx.helper.make_tensor_value_info(name, b.tensor_type(d["dtype"]), dims)


def to_onnx(
    g: Graph,
    values: dict[str, np.ndarray],
    opset: int = DEFAULT_OPSET,
    batch: _Batch | None = None,
    output_names: Sequence[str] | None = None,
    buffers: Sequence[str] = (),
) -> Any:
    """The ONNX ModelProto of a traced graph; `values` is the state_dict (the initializers,
    in its order), `buffers` the names in it that are buffers."""
    b = _Builder(g, opset, batch)
    onnx = b.onnx
    inputs, outputs = [], []
    for nid in g.leaves("input"):
        b.names[nid] = g.node(nid)["name"]
    for name in g.argument_names():
        nid = next(n for n in g.leaves("input") if g.node(n)["name"] == name)
        inputs.append(_value_info(b, name, nid))
    for name, array in values.items():  # the whole state_dict, read by the graph or not
        init = onnx.numpy_helper.from_array(np.asarray(array), name)
        if name in buffers:
            init.doc_string = "buffer"
        b.initializers.append(init)
    fused, skipped = _layers(g)
    for nid in g.order():
        d = g.node(nid)
        b.current = nid
        if nid in skipped:
            continue
        if nid in fused:
            op_type, operands, extra = fused[nid]
            b.names[nid] = b.emit(op_type, [b.names[o] for o in operands], **extra)
        elif d["op"] in ("param", "state"):
            b.names[nid] = d["name"].removeprefix("buffer:")
        elif d["op"] == "const":
            b.names[nid] = b.const(d["value"])
        elif d["op"] != "input":
            rule = RULES.get(d["op"])
            if rule is None:
                raise b.fail(
                    f"op {d['op']!r} has no ONNX export rule",
                    f"export the inference graph only (ops with rules: {', '.join(sorted(RULES))})",
                )
            b.names[nid] = rule(b, nid, [b.names[o] for o in g.operands(nid)], d["attrs"])
    b.current = -1
    kept = [(nid, n) for nid, n in zip(g.outputs, g.output_names) if n not in g.output_checks]
    names = list(output_names) if output_names is not None else [n for _, n in kept]
    for (nid, _), name in zip(kept, names):
        b.emit("Identity", [b.names[nid]], name)
        outputs.append(_value_info(b, name, nid))
    graph = onnx.helper.make_graph(b.nodes, "tinygrad_edu", inputs, outputs, b.initializers)
    model = onnx.helper.make_model(
        graph,
        opset_imports=[onnx.helper.make_opsetid("", opset)],
        producer_name="tinygrad_edu",
    )
    model.ir_version = min(model.ir_version, 10)  # readable by onnxruntime releases since 1.20
    return model


def export_onnx(
    model: Callable[..., Any],
    example: Any,
    path: str | os.PathLike[str],
    dynamic_batch: bool | Sequence[str] = True,
    *,
    opset: int = DEFAULT_OPSET,
    input_names: Sequence[str] | None = None,
    output_names: Sequence[str] | None = None,
) -> Any:
    """Trace `model(example)` (a tuple or list for several inputs) in eval mode and write it
    to `path` as ONNX (opset >= 17), checked with `onnx.checker`; returns the ModelProto.

    With `dynamic_batch=True`, dim 0 of the first input, and of every input with the same
    leading size, is the symbolic "batch"; a list of input names says which inputs carry it
    (the model must accept batch N + 1: it is traced again to find what follows the batch).
    Initializers are named as in the state_dict. Inputs are named `input_names` (default
    "input", or "input0", "input1", ...), outputs `output_names` (default "output", ...)."""
    onnx = _onnx()
    if not isinstance(opset, int) or opset < MIN_OPSET:
        raise op_error(
            "export_onnx", f"opset must be >= {MIN_OPSET}", opset, f"pass opset={DEFAULT_OPSET}"
        )
    examples = _examples_of(example)
    if input_names is None:
        input_names = (
            ["input"] if len(examples) == 1 else [f"input{i}" for i in range(len(examples))]
        )
    with _eval_mode(model):
        g = trace(model, *examples, input_names=input_names)
        batch = None
        if dynamic_batch:
            n, batched = _batched(examples, list(input_names), dynamic_batch)
            try:
                g2 = trace(model, *_grown(examples, batched), input_names=input_names)
            except ValueError as e:
                raise op_error(
                    "export_onnx",
                    f"the model does not run at batch {n + 1} ({e}), so its batch cannot be "
                    "dynamic",
                    [np.shape(x) for x in examples],
                    "name the inputs that carry the batch (dynamic_batch=['input0', ...]) or "
                    "export with dynamic_batch=False (a model for this batch size only)",
                ) from e
            batch = _batch_of(g, g2, n)
    _declare_unread_inputs(g, examples, input_names)
    if batch is not None:
        for nid in g.leaves("input"):
            if batched[list(input_names).index(g.node(nid)["name"])]:
                batch.dims.setdefault(nid, (0,))
    if output_names is None:
        k = len(g.outputs) - len(g.output_checks)
        output_names = ["output"] if k == 1 else [f"output{i}" for i in range(k)]
    values: dict[str, np.ndarray] = {}
    buffers: list[str] = []
    if isinstance(model, nn.Module):
        values = model.state_dict()
        buffers = [name for name, _ in model.named_buffers()]
    proto = to_onnx(g, values, opset, batch, output_names, buffers)
    onnx.checker.check_model(proto, full_check=True)
    data = proto.SerializeToString()

    def write(tmp: str) -> None:
        with open(tmp, "wb") as f:
            f.write(data)

    atomic_write(path, write)
    return proto
