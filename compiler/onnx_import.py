"""ONNX import: `import_onnx(path)` returns a DSL `nn.Module` that runs the ONNX graph.

The module's forward interprets the graph node by node with DSL Tensor ops, so the imported
model trains (gradients flow to its parameters), compiles (`compiler.compile` traces the
interpretation like any forward) and runs on every backend. Float initializers become
trainable Parameters named as in the ONNX file (dotted names become sub-modules, so
`features.0.weight` is the state_dict key it was in PyTorch); initializers our exporter marks
"buffer", and the running statistics of BatchNormalization, become buffers. Integer
initializers, Constant nodes and the graph's shape arithmetic (Shape, Gather, Concat, ... on
constants) are plain numbers, computed once per call even while the compiler traces.

Everything that cannot be run is refused at import, by node: an op without a rule here names
the op type and the node; an opset outside what the rules are written for names the opset.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from tinygrad_edu import Tensor, nn
from tinygrad_edu.autograd import eager_mode
from tinygrad_edu.errors import OpError, op_error
from tinygrad_edu.tensor import cat

MIN_OPSET = 13  # Squeeze, Unsqueeze, Split and ReduceSum take axes as inputs from here on


@dataclass(frozen=True)
class OnnxNode:
    """One node of the graph, as plain data."""

    op_type: str
    name: str
    inputs: tuple[str, ...]
    outputs: tuple[str, ...]
    attrs: dict[str, Any]

    def where(self) -> str:
        return f"ONNX node {self.name!r} ({self.op_type})"


Value = Any  # a Tensor (computed from the inputs) or an np.ndarray (a constant)


def _is_const(v: Value) -> bool:
    return isinstance(v, np.ndarray)


def _tensor(v: Value) -> Tensor:
    return Tensor(v, dtype=v.dtype) if _is_const(v) else v


def _static(node: OnnxNode, v: Value, what: str) -> np.ndarray:
    if not _is_const(v):
        raise op_error(
            "import_onnx",
            f"{node.where()}: its {what} must be a constant (an initializer, a Constant node "
            "or shape arithmetic), but it is computed from the input",
            getattr(v, "shape", None),
            "export the model with static shapes (constant folding on)",
        )
    return v


def _ints(node: OnnxNode, v: Value, what: str) -> list[int]:
    return [int(i) for i in _static(node, v, what).reshape(-1)]


# ---------------------------------------------------------------------------------------------
# one handler per op type: (node, inputs, opset) -> outputs; inputs absent in the file are None
# ---------------------------------------------------------------------------------------------
Handler = Callable[[OnnxNode, list[Value], int], list[Value]]
HANDLERS: dict[str, Handler] = {}


def _register(*op_types: str) -> Callable[[Handler], Handler]:
    def wrap(fn: Handler) -> Handler:
        for t in op_types:
            HANDLERS[t] = fn
        return fn

    return wrap


def _one(fn: Callable[..., Any]) -> Handler:
    """A handler of tensors with one output."""
    return lambda node, xs, opset: [fn(node, *[None if x is None else _tensor(x) for x in xs])]


_UNARY = {
    "Relu": Tensor.relu,
    "Sigmoid": Tensor.sigmoid,
    "Tanh": Tensor.tanh,
    "Exp": Tensor.exp,
    "Log": Tensor.log,
    "Sqrt": Tensor.sqrt,
    "Abs": Tensor.abs,
    "Neg": Tensor.__neg__,
    "Sign": Tensor.sign,
    "Erf": Tensor.erf,
    "Sin": Tensor.sin,
    "Cos": Tensor.cos,
    "Tan": Tensor.tan,
    "Asin": Tensor.asin,
    "Acos": Tensor.acos,
    "Atan": Tensor.atan,
    "Reciprocal": lambda x: 1.0 / x,
    "Not": lambda x: x == False,  # noqa: E712 (a DSL comparison, not Python's)
}
_BINARY = {
    "Add": Tensor.__add__,
    "Sub": Tensor.__sub__,
    "Mul": Tensor.__mul__,
    "Pow": Tensor.__pow__,
    "Equal": Tensor.__eq__,
    "Less": Tensor.__lt__,
    "LessOrEqual": Tensor.__le__,
    "Greater": Tensor.__gt__,
    "GreaterOrEqual": Tensor.__ge__,
}
_VARIADIC = {"Max": Tensor.maximum, "Min": Tensor.minimum, "Sum": Tensor.__add__}
for _t, _f in _UNARY.items():
    HANDLERS[_t] = _one(lambda node, x, f=_f: f(x))
for _t, _f in _BINARY.items():
    HANDLERS[_t] = _one(lambda node, a, b, f=_f: f(a, b))
for _t, _f in _VARIADIC.items():

    def _fold(node: OnnxNode, *xs: Tensor, f: Callable[..., Tensor] = _f) -> Tensor:
        out = xs[0]
        for x in xs[1:]:
            out = f(out, x)
        return out

    HANDLERS[_t] = _one(_fold)


@_register("Div")
def _div(node: OnnxNode, xs: list[Value], opset: int) -> list[Value]:
    a, b = (_tensor(x) for x in xs)
    out = a / b
    if a.dtype.kind in "iu" and b.dtype.kind in "iu":  # ONNX divides integers, truncating
        out = out.cast(a.dtype)
    return [out]


@_register("Mean")
def _mean(node: OnnxNode, xs: list[Value], opset: int) -> list[Value]:
    total = _tensor(xs[0])
    for x in xs[1:]:
        total = total + _tensor(x)
    return [total / len(xs)]


@_register("Identity")
def _identity(node: OnnxNode, xs: list[Value], opset: int) -> list[Value]:
    return [xs[0]]


@_register("Dropout")
def _dropout(node: OnnxNode, xs: list[Value], opset: int) -> list[Value]:
    # ONNX's dropout is the identity unless the graph passes training_mode = true
    training = len(xs) > 2 and xs[2] is not None and bool(_static(node, xs[2], "training_mode"))
    x = _tensor(xs[0])
    if training:
        ratio = 0.5 if len(xs) < 2 or xs[1] is None else float(_static(node, xs[1], "ratio"))
        x = x.dropout(ratio, True)
    return [x, np.ones(x.shape, np.bool_)][: len(node.outputs)]


@_register("LeakyRelu")
def _leaky_relu(node: OnnxNode, xs: list[Value], opset: int) -> list[Value]:
    return [_tensor(xs[0]).leaky_relu(node.attrs.get("alpha", 0.01))]


@_register("Clip")
def _clip(node: OnnxNode, xs: list[Value], opset: int) -> list[Value]:
    x = _tensor(xs[0])
    if len(xs) > 1 and xs[1] is not None:
        x = x.maximum(_tensor(xs[1]))
    if len(xs) > 2 and xs[2] is not None:
        x = x.minimum(_tensor(xs[2]))
    return [x]


@_register("Where")
def _where(node: OnnxNode, xs: list[Value], opset: int) -> list[Value]:
    cond, a, b = (_tensor(x) for x in xs)
    return [a.where(cond, b)]


def _onnx_dtype(code: int) -> np.dtype:
    from onnx import helper

    return np.dtype(helper.tensor_dtype_to_np_dtype(code))


@_register("Cast")
def _cast(node: OnnxNode, xs: list[Value], opset: int) -> list[Value]:
    return [_tensor(xs[0]).cast(_onnx_dtype(node.attrs["to"]))]


@_register("Constant")
def _constant(node: OnnxNode, xs: list[Value], opset: int) -> list[Value]:
    from onnx import numpy_helper

    a = node.attrs
    if "value" in a:
        return [numpy_helper.to_array(a["value"])]
    for key, dtype in (("value_float", np.float32), ("value_floats", np.float32)):
        if key in a:
            return [np.asarray(a[key], dtype)]
    for key in ("value_int", "value_ints"):
        if key in a:
            return [np.asarray(a[key], np.int64)]
    raise op_error(
        "import_onnx",
        f"{node.where()}: a Constant without a tensor, float or int value",
        sorted(a),
        "give the Constant a value attribute",
    )


# -- shapes ------------------------------------------------------------------------------------
@_register("Shape")
def _shape(node: OnnxNode, xs: list[Value], opset: int) -> list[Value]:
    shape = np.asarray(xs[0].shape, np.int64)
    start, end = node.attrs.get("start", 0), node.attrs.get("end")
    return [shape[start:end]]


@_register("ConstantOfShape")
def _constant_of_shape(node: OnnxNode, xs: list[Value], opset: int) -> list[Value]:
    from onnx import numpy_helper

    fill = node.attrs.get("value")
    value = numpy_helper.to_array(fill).reshape(-1) if fill is not None else np.zeros(1, np.float32)
    return [np.full(_ints(node, xs[0], "shape"), value[0], value.dtype)]


@_register("Range")
def _range(node: OnnxNode, xs: list[Value], opset: int) -> list[Value]:
    start, limit, delta = (_static(node, x, "bounds") for x in xs)
    return [np.arange(start, limit, delta, dtype=np.result_type(start, limit, delta))]


@_register("Reshape")
def _reshape(node: OnnxNode, xs: list[Value], opset: int) -> list[Value]:
    x = _tensor(xs[0])
    shape = _ints(node, xs[1], "shape")
    if not node.attrs.get("allowzero", 0):  # 0 copies the input's size there
        shape = [x.shape[i] if n == 0 else n for i, n in enumerate(shape)]
    return [x.reshape(*shape)]


@_register("Flatten")
def _flatten(node: OnnxNode, xs: list[Value], opset: int) -> list[Value]:
    x = _tensor(xs[0])
    axis = node.attrs.get("axis", 1)
    axis = axis + x.ndim if axis < 0 else axis
    lead = int(np.prod(x.shape[:axis]))
    return [x.reshape(lead, int(np.prod(x.shape[axis:])))]


@_register("Transpose")
def _transpose(node: OnnxNode, xs: list[Value], opset: int) -> list[Value]:
    x = _tensor(xs[0])
    perm = node.attrs.get("perm", list(range(x.ndim))[::-1])
    return [x.permute(*perm)]


def _axes(node: OnnxNode, xs: list[Value], opset: int, since: int) -> list[int] | None:
    """Axes from the input (opset >= since) or the attribute (older)."""
    if opset >= since:
        return _ints(node, xs[1], "axes") if len(xs) > 1 and xs[1] is not None else None
    return node.attrs.get("axes")


@_register("Squeeze")
def _squeeze(node: OnnxNode, xs: list[Value], opset: int) -> list[Value]:
    x = _tensor(xs[0])
    axes = _axes(node, xs, opset, 13)
    drop = (
        {a % x.ndim for a in axes}
        if axes is not None
        else {i for i, n in enumerate(x.shape) if n == 1}
    )
    return [x.reshape(*[n for i, n in enumerate(x.shape) if i not in drop])]


@_register("Unsqueeze")
def _unsqueeze(node: OnnxNode, xs: list[Value], opset: int) -> list[Value]:
    x = _tensor(xs[0])
    axes = _axes(node, xs, opset, 13) or []
    rank = x.ndim + len(axes)
    shape, rest = [], iter(x.shape)
    new = {a % rank for a in axes}
    for i in range(rank):
        shape.append(1 if i in new else next(rest))
    return [x.reshape(*shape)]


@_register("Concat")
def _concat(node: OnnxNode, xs: list[Value], opset: int) -> list[Value]:
    return [cat([_tensor(x) for x in xs], axis=node.attrs["axis"])]


@_register("Slice")
def _slice(node: OnnxNode, xs: list[Value], opset: int) -> list[Value]:
    x = _tensor(xs[0])
    starts, ends = _ints(node, xs[1], "starts"), _ints(node, xs[2], "ends")
    axes = _ints(node, xs[3], "axes") if len(xs) > 3 and xs[3] is not None else range(len(starts))
    steps = _ints(node, xs[4], "steps") if len(xs) > 4 and xs[4] is not None else [1] * len(starts)
    index = [slice(None)] * x.ndim
    for a, s, e, st in zip(axes, starts, ends, steps):
        # Python's slices clamp as ONNX's do; ONNX's "before element 0" end is any end < -n
        index[a % x.ndim] = slice(s, None if st < 0 and e < -x.shape[a % x.ndim] else e, st)
    return [x[tuple(index)]]


@_register("Gather")
def _gather(node: OnnxNode, xs: list[Value], opset: int) -> list[Value]:
    x = _tensor(xs[0])
    idx = _static(node, xs[1], "indices").astype(np.int64)
    axis = node.attrs.get("axis", 0) % x.ndim
    item: Any = int(idx) if idx.ndim == 0 else idx
    return [x[(slice(None),) * axis + (item,)]]


@_register("Expand")
def _expand(node: OnnxNode, xs: list[Value], opset: int) -> list[Value]:
    x = _tensor(xs[0])
    target = tuple(np.broadcast_shapes(x.shape, tuple(_ints(node, xs[1], "shape"))))
    return [x.expand(*target)]


@_register("Pad")
def _pad(node: OnnxNode, xs: list[Value], opset: int) -> list[Value]:
    x = _tensor(xs[0])
    mode = node.attrs.get("mode", b"constant")
    mode = mode.decode() if isinstance(mode, bytes) else mode
    modes = {"constant": "constant", "reflect": "reflect", "edge": "replicate", "wrap": "circular"}
    if mode not in modes:
        raise op_error(
            "import_onnx",
            f"{node.where()}: Pad mode {mode!r} has no rule here",
            x.shape,
            f"use one of {sorted(modes)}",
        )
    pads = _ints(node, xs[1], "pads")
    value = 0.0
    if len(xs) > 2 and xs[2] is not None and _static(node, xs[2], "constant_value").size:
        value = float(_static(node, xs[2], "constant_value").reshape(-1)[0])
    axes = _ints(node, xs[3], "axes") if len(xs) > 3 and xs[3] is not None else range(x.ndim)
    pairs = [(0, 0)] * x.ndim
    k = len(pads) // 2
    for j, a in enumerate(axes):
        pairs[a % x.ndim] = (pads[j], pads[j + k])
    if modes[mode] != "constant":
        return [x.pad(pairs, mode=modes[mode])]
    return [x.pad(pairs, value=value)]


# -- reductions --------------------------------------------------------------------------------
def _reduce(method: str, since: int) -> Handler:
    def handler(node: OnnxNode, xs: list[Value], opset: int) -> list[Value]:
        x = _tensor(xs[0])
        axes = _axes(node, xs, opset, since)
        keep = bool(node.attrs.get("keepdims", 1))
        if not axes:
            if node.attrs.get("noop_with_empty_axes", 0):
                return [x]
            axes = list(range(x.ndim))
        return [getattr(x, method)(tuple(a % x.ndim for a in axes), keepdim=keep)]

    return handler


HANDLERS["ReduceSum"] = _reduce("sum", 13)
HANDLERS["ReduceMean"] = _reduce("mean", 18)
HANDLERS["ReduceMax"] = _reduce("max", 18)
HANDLERS["ReduceMin"] = _reduce("min", 18)


@_register("ArgMax")
def _argmax(node: OnnxNode, xs: list[Value], opset: int) -> list[Value]:
    if node.attrs.get("select_last_index", 0):
        raise op_error(
            "import_onnx",
            f"{node.where()}: ArgMax with select_last_index=1 has no rule here",
            (),
            "export with select_last_index=0 (the first maximum, PyTorch's rule)",
        )
    x = _tensor(xs[0])
    return [
        x.argmax(node.attrs.get("axis", 0) % x.ndim, keepdim=bool(node.attrs.get("keepdims", 1)))
    ]


@_register("Softmax", "LogSoftmax")
def _softmax(node: OnnxNode, xs: list[Value], opset: int) -> list[Value]:
    x = _tensor(xs[0])
    axis = node.attrs.get("axis", -1)
    return [x.softmax(axis) if node.op_type == "Softmax" else x.log_softmax(axis)]


# -- linear algebra and images -------------------------------------------------------------
@_register("MatMul")
def _matmul(node: OnnxNode, xs: list[Value], opset: int) -> list[Value]:
    return [_tensor(xs[0]) @ _tensor(xs[1])]


@_register("Gemm")
def _gemm(node: OnnxNode, xs: list[Value], opset: int) -> list[Value]:
    a, b = _tensor(xs[0]), _tensor(xs[1])
    c = _tensor(xs[2]) if len(xs) > 2 and xs[2] is not None else None
    alpha, beta = node.attrs.get("alpha", 1.0), node.attrs.get("beta", 1.0)
    if node.attrs.get("transA", 0):
        a = a.T
    if node.attrs.get("transB", 0) and alpha == 1.0 and beta == 1.0 and (c is None or c.ndim == 1):
        return [a.linear(b, c)]  # PyTorch's Linear: the DSL's own composite
    out = a @ (b.T if node.attrs.get("transB", 0) else b)
    if alpha != 1.0:
        out = out * alpha
    if c is not None:
        out = out + (c * beta if beta != 1.0 else c)
    return [out]


def _window(node: OnnxNode, x: Tensor, pad_value: float) -> tuple[Tensor, dict[str, Any]]:
    """2-D window attributes; asymmetric pads become an explicit pad of the input."""
    if x.ndim != 4:
        raise op_error(
            "import_onnx",
            f"{node.where()}: only 2-D windows over (N, C, H, W) have a rule here",
            x.shape,
            "use 2-D convolutions and pools",
        )
    auto_pad = node.attrs.get("auto_pad", b"NOTSET")
    if (auto_pad.decode() if isinstance(auto_pad, bytes) else auto_pad) not in ("NOTSET", "VALID"):
        raise op_error(
            "import_onnx",
            f"{node.where()}: auto_pad={auto_pad!r} has no rule here",
            x.shape,
            "export with explicit pads",
        )
    pads = node.attrs.get("pads", [0, 0, 0, 0])
    out = dict(
        stride=tuple(node.attrs.get("strides", [1, 1])),
        dilation=tuple(node.attrs.get("dilations", [1, 1])),
        padding=(pads[0], pads[1]),
    )
    if (pads[0], pads[1]) != (pads[2], pads[3]):
        x = x.pad([(0, 0), (0, 0), (pads[0], pads[2]), (pads[1], pads[3])], value=pad_value)
        out["padding"] = (0, 0)
    return x, out


@_register("Conv")
def _conv(node: OnnxNode, xs: list[Value], opset: int) -> list[Value]:
    x, w = _tensor(xs[0]), _tensor(xs[1])
    bias = _tensor(xs[2]) if len(xs) > 2 and xs[2] is not None else None
    x, win = _window(node, x, 0.0)
    return [
        x.conv2d(
            w, bias, win["stride"], win["padding"], win["dilation"], node.attrs.get("group", 1)
        )
    ]


@_register("MaxPool")
def _max_pool(node: OnnxNode, xs: list[Value], opset: int) -> list[Value]:
    if len(node.outputs) > 1:
        raise op_error(
            "import_onnx",
            f"{node.where()}: MaxPool's Indices output has no rule here",
            (),
            "export the pool without indices",
        )
    x, win = _window(node, _tensor(xs[0]), -np.inf)
    kernel = tuple(node.attrs["kernel_shape"])
    # ceil_mode as PyTorch (and onnxruntime) read it: a last window starting in the padding
    ceil = bool(node.attrs.get("ceil_mode", 0))
    return [x.max_pool2d(kernel, win["stride"], win["padding"], win["dilation"], ceil_mode=ceil)]


@_register("AveragePool")
def _avg_pool(node: OnnxNode, xs: list[Value], opset: int) -> list[Value]:
    x, win = _window(node, _tensor(xs[0]), 0.0)
    if win["dilation"] != (1, 1):
        raise op_error(
            "import_onnx",
            f"{node.where()}: a dilated AveragePool has no rule here",
            x.shape,
            "use dilations of 1",
        )
    kernel = tuple(node.attrs["kernel_shape"])
    if node.attrs.get("ceil_mode", 0):
        raise op_error(
            "import_onnx",
            f"{node.where()}: an AveragePool with ceil_mode=1 has no rule here",
            x.shape,
            "export the pool with ceil_mode=False",
        )
    pooled = x.avg_pool2d(kernel, win["stride"], win["padding"])
    explicit = x.shape != _tensor(xs[0]).shape  # asymmetric pads were made explicit zeros
    if (win["padding"] != (0, 0) or explicit) and not node.attrs.get("count_include_pad", 0):
        # the mean over the real pixels only: divide by the share of each window inside
        inside = Tensor(np.ones((1, 1, *_tensor(xs[0]).shape[2:]), x.dtype), dtype=x.dtype)
        if explicit:
            pads = node.attrs.get("pads")
            inside = inside.pad([(0, 0), (0, 0), (pads[0], pads[2]), (pads[1], pads[3])])
        with eager_mode():
            share = inside.avg_pool2d(kernel, win["stride"], win["padding"]).numpy()
        pooled = pooled / Tensor(share, dtype=x.dtype)
    return [pooled]


@_register("GlobalAveragePool", "GlobalMaxPool")
def _global_pool(node: OnnxNode, xs: list[Value], opset: int) -> list[Value]:
    x = _tensor(xs[0])
    axes = tuple(range(2, x.ndim))
    return [
        x.mean(axes, keepdim=True)
        if node.op_type == "GlobalAveragePool"
        else x.max(axes, keepdim=True)
    ]


@_register("LRN")
def _lrn(node: OnnxNode, xs: list[Value], opset: int) -> list[Value]:
    # ONNX's window over channels: [c - floor((size-1)/2), c + ceil((size-1)/2)]
    x = _tensor(xs[0])
    size = int(node.attrs["size"])
    alpha, beta = node.attrs.get("alpha", 1e-4), node.attrs.get("beta", 0.75)
    bias = node.attrs.get("bias", 1.0)
    pads = [(0, 0)] * x.ndim
    pads[1] = ((size - 1) // 2, size - 1 - (size - 1) // 2)
    sq = (x * x).pad(pads)
    channels = x.shape[1]
    window = sq[:, 0:channels]
    for offset in range(1, size):
        window = window + sq[:, offset : offset + channels]
    return [x / (window * (alpha / size) + bias) ** beta]


@_register("BatchNormalization")
def _batch_norm(node: OnnxNode, xs: list[Value], opset: int) -> list[Value]:
    if len(node.outputs) > 1 or node.attrs.get("training_mode", 0):
        raise op_error(
            "import_onnx",
            f"{node.where()}: BatchNormalization in training mode has no rule here",
            (),
            "export the model in eval mode",
        )
    x, scale, bias, mean, var = (_tensor(v) for v in xs[:5])
    shape = (1, -1) + (1,) * (x.ndim - 2)
    eps = node.attrs.get("epsilon", 1e-5)
    norm = (x - mean.reshape(*shape)) / (var.reshape(*shape) + eps).sqrt()
    return [norm * scale.reshape(*shape) + bias.reshape(*shape)]


# ---------------------------------------------------------------------------------------------
# the module
# ---------------------------------------------------------------------------------------------
class _Scope(nn.Module):
    """A sub-module that only holds tensors (one part of a dotted initializer name)."""


_RESERVED = set(dir(nn.Module())) | {"onnx_nodes", "onnx_inputs", "onnx_outputs"}


class OnnxModule(nn.Module):
    """An ONNX graph run with DSL ops. `onnx_nodes` are the nodes in order, `onnx_inputs`
    (name, static shape or None per dim) the graph inputs, `onnx_outputs` the outputs."""

    def __init__(
        self,
        nodes: list[OnnxNode],
        inputs: list[tuple[str, tuple[int | None, ...]]],
        outputs: list[str],
        tensors: dict[str, tuple[np.ndarray, str]],
        opset: int,
        source: str,
    ) -> None:
        super().__init__()
        object.__setattr__(self, "onnx_nodes", nodes)
        object.__setattr__(self, "onnx_inputs", inputs)
        object.__setattr__(self, "onnx_outputs", outputs)
        object.__setattr__(self, "_opset", opset)
        object.__setattr__(self, "_source", source)
        constants: dict[str, np.ndarray] = {}
        for name, (array, role) in tensors.items():
            if role == "constant":
                constants[name] = array
            else:
                self._place(name, array, role)
        object.__setattr__(self, "_constants", constants)
        object.__setattr__(
            self, "_tensor_names", [n for n, (_, r) in tensors.items() if r != "constant"]
        )

    def _place(self, name: str, array: np.ndarray, role: str) -> None:
        parts = name.split(".")
        if any(not p for p in parts) or parts[0] in _RESERVED or parts[-1] in _RESERVED:
            raise op_error(
                "import_onnx",
                f"initializer {name!r} in {self._source} cannot be a module attribute",
                array.shape,
                "rename the initializer (no empty parts, no Module method names)",
            )
        owner: nn.Module = self
        for part in parts[:-1]:
            child = vars(owner).get(part)
            if child is None:
                child = _Scope()
                setattr(owner, part, child)
            elif not isinstance(child, nn.Module):
                raise op_error(
                    "import_onnx",
                    f"initializer {name!r} in {self._source} nests inside the tensor {part!r}",
                    array.shape,
                    "give the initializers names that are not prefixes of each other",
                )
            owner = child
        if parts[-1] in vars(owner):
            raise op_error(
                "import_onnx",
                f"initializer {name!r} in {self._source} is also a prefix of other names",
                array.shape,
                "give the initializers names that are not prefixes of each other",
            )
        if role == "buffer":
            owner.register_buffer(parts[-1], Tensor(array, dtype=array.dtype))
        else:
            setattr(owner, parts[-1], nn.Parameter(array, dtype=array.dtype))

    def _lookup(self, name: str) -> Tensor:
        owner: Any = self
        for part in name.split("."):
            owner = getattr(owner, part)
        return owner

    def forward(self, *xs: Tensor) -> Any:
        if len(xs) != len(self.onnx_inputs):
            raise op_error(
                "import_onnx",
                f"the model from {self._source} takes {len(self.onnx_inputs)} inputs "
                f"{[n for n, _ in self.onnx_inputs]}, got {len(xs)}",
                [getattr(x, "shape", None) for x in xs],
                "pass one tensor per graph input, in order",
            )
        env: dict[str, Value] = dict(self._constants)
        for name in self._tensor_names:
            env[name] = self._lookup(name)
        for (name, dims), x in zip(self.onnx_inputs, xs):
            x = x if isinstance(x, Tensor) else Tensor(x)
            if len(dims) != x.ndim or any(d is not None and d != n for d, n in zip(dims, x.shape)):
                want = tuple("N" if d is None else d for d in dims)
                raise op_error(
                    "import_onnx",
                    f"input {name!r} of the model from {self._source} must have shape {want}",
                    x.shape,
                    "pass an input of that shape (N is free)",
                )
            env[name] = x
        for node in self.onnx_nodes:
            args = [env[i] if i else None for i in node.inputs]
            try:
                if all(a is None or _is_const(a) for a in args):
                    with eager_mode():  # shape arithmetic: numbers, even while tracing
                        results = HANDLERS[node.op_type](node, args, self._opset)
                        results = [r.numpy() if isinstance(r, Tensor) else r for r in results]
                else:
                    results = HANDLERS[node.op_type](node, args, self._opset)
            except ValueError as e:
                if str(e).startswith("import_onnx"):
                    raise
                kind = type(e) if isinstance(e, OpError) else ValueError  # keeps IndexError
                raise kind(f"import_onnx: {node.where()} of {self._source}: {e}") from e
            for out, value in zip(node.outputs, results):
                if out:
                    env[out] = value
        results = [_tensor(env[name]) for name in self.onnx_outputs]
        return results[0] if len(results) == 1 else tuple(results)


def _load(path: str) -> Any:
    import onnx
    from google.protobuf.message import DecodeError

    if not os.path.isfile(path):
        raise FileNotFoundError(f"import_onnx: no ONNX file at {path}")
    try:
        model = onnx.load(path)
    except (DecodeError, RuntimeError, ValueError, OSError) as e:
        raise ValueError(
            f"import_onnx: {path} is not a readable ONNX model ({type(e).__name__}: {e}). Fix: "
            "the file is truncated or not ONNX; export it again"
        ) from None
    if not model.graph.node and not model.graph.output:
        raise ValueError(
            f"import_onnx: {path} holds no ONNX graph (empty or truncated). Fix: export it again"
        )
    return model


def _opset_of(model: Any, path: str) -> int:
    import onnx

    newest = onnx.defs.onnx_opset_version()
    versions = {o.domain or "ai.onnx": o.version for o in model.opset_import}
    opset = versions.get("ai.onnx")
    if opset is None:
        raise ValueError(
            f"import_onnx: {path} imports no standard ONNX opset (only {sorted(versions)}). "
            "Fix: export with the standard ai.onnx domain"
        )
    if not MIN_OPSET <= opset <= newest:
        raise ValueError(
            f"import_onnx: {path} uses ONNX opset {opset}; the rules here cover opsets "
            f"{MIN_OPSET} to {newest}. Fix: convert it, e.g. onnx.version_converter."
            f"convert_version(onnx.load(path), 18), or export with opset_version=18"
        )
    return opset


def _attrs(node: Any) -> dict[str, Any]:
    from onnx import helper

    return {a.name: helper.get_attribute_value(a) for a in node.attribute}


def _initializer_roles(model: Any, names: Sequence[str]) -> dict[str, str]:
    """buffer, parameter or constant, per initializer name."""
    roles = {}
    stats = {
        n.input[i]
        for n in model.graph.node
        if n.op_type == "BatchNormalization"
        for i in (3, 4)
        if len(n.input) > i
    }
    for init in model.graph.initializer:
        from onnx import helper

        dtype = np.dtype(helper.tensor_dtype_to_np_dtype(init.data_type))
        if init.doc_string == "buffer" or init.name in stats:
            roles[init.name] = "buffer"
        elif dtype.kind != "f":
            roles[init.name] = "constant"
        else:
            roles[init.name] = "parameter"
    return roles


def import_onnx(path: str | os.PathLike[str]) -> OnnxModule:
    """Read an ONNX model into a DSL module (see the module docstring). Raises a clear error
    for a file that is not ONNX, an opset outside 13..newest, or an op without a rule."""
    try:
        import onnx
        from onnx import numpy_helper
    except ImportError:
        raise ImportError(
            "import_onnx needs the onnx package. Fix: pip install -e '.[onnx]'"
        ) from None
    path = os.fspath(path)
    model = _load(path)
    opset = _opset_of(model, path)
    graph = model.graph
    nodes = []
    for i, n in enumerate(graph.node):
        name = n.name or f"{n.op_type}_{i}"
        if n.domain not in ("", "ai.onnx") or n.op_type not in HANDLERS:
            where = f"{n.domain}::{n.op_type}" if n.domain not in ("", "ai.onnx") else n.op_type
            raise ValueError(
                f"import_onnx: {path}: op {where!r} (node {name!r}) has no rule here. Fix: "
                f"export the model with the ops the DSL has ({', '.join(sorted(HANDLERS))}), "
                "or add a rule for it to compiler/onnx_import.py"
            )
        nodes.append(OnnxNode(n.op_type, name, tuple(n.input), tuple(n.output), _attrs(n)))
    try:
        onnx.checker.check_model(model)
    except onnx.checker.ValidationError as e:
        raise ValueError(
            f"import_onnx: {path} is not a valid ONNX model: {e}. Fix: export it again"
        ) from None
    initializers = {init.name: init for init in graph.initializer}
    roles = _initializer_roles(model, list(initializers))
    tensors = {
        name: (np.array(numpy_helper.to_array(init), copy=True), roles[name])
        for name, init in initializers.items()
    }
    inputs = []
    for value in graph.input:
        if value.name in initializers:
            continue
        dims = tuple(
            d.dim_value if d.HasField("dim_value") else None
            for d in value.type.tensor_type.shape.dim
        )
        inputs.append((value.name, dims))
    outputs = [v.name for v in graph.output]
    return OnnxModule(nodes, inputs, outputs, tensors, opset, path)
