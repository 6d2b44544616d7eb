"""The op table: every primitive op defined exactly once.

An `Op` has
- a **shape rule** `shape(*input_shapes, **attrs) -> output_shape` that validates its inputs and
  raises an `OpError` naming the op, the shapes and the fix;
- a **forward** `forward(xp, *arrays, **attrs) -> array`, generic over the array module `xp`
  (numpy, or cupy for CUDA tensors);
- a **vector-Jacobian product** `vjp(g, out, *inputs, **attrs) -> tuple of input gradients`,
  written in DSL ops on the graph nodes (`Tensor` or `Value`), so the backward pass is itself a
  graph: it can be differentiated again or handed to the compiler. `None` means "no gradient
  flows to this input". An op with `vjp=None` (comparisons, argmax) is never recorded.

The scalar `Value`, the eager `Tensor` and the compiler all read this table; composite ops
(softmax, cross-entropy, LRN, linear, ...) live in `tensor.py` as compositions of these.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from .errors import OpIndexError, op_error

Shape = tuple[int, ...]


@dataclass(frozen=True)
class Op:
    """One primitive: its name, kind (for fusion), shape rule, forward and VJP."""

    name: str
    kind: str  # "elementwise", "compare", "reduce", "movement", "matmul", "conv", "pool"
    shape: Callable[..., Shape]
    forward: Callable[..., Any]
    vjp: Callable[..., tuple[Any, ...]] | None

    def __repr__(self) -> str:
        return f"Op({self.name})"


OPS: dict[str, Op] = {}


def _register(
    name: str,
    kind: str,
    shape: Callable[..., Shape],
    forward: Callable[..., Any],
    vjp: Callable[..., tuple[Any, ...]] | None,
) -> Op:
    op = Op(name, kind, shape, forward, vjp)
    OPS[name] = op
    return op


# ---------------------------------------------------------------------------------------------
# shape rules shared by many ops
# ---------------------------------------------------------------------------------------------
def _same_shape(x: Shape, **_: Any) -> Shape:
    return x


def _broadcast_rule(name: str) -> Callable[..., Shape]:
    def rule(*shapes: Shape, **_: Any) -> Shape:
        first = shapes[0]
        if all(s == first for s in shapes):  # the common case, without numpy's overhead
            return tuple(first)
        try:
            return tuple(np.broadcast_shapes(*shapes))
        except ValueError:
            raise op_error(
                name,
                "shapes cannot be broadcast together",
                " and ".join(map(str, shapes)),
                "make trailing dimensions equal or 1 (reshape/unsqueeze one operand)",
            ) from None

    return rule


def unbroadcast(g: Any, shape: Shape) -> Any:
    """Sum a gradient of a broadcast result back down to an input's `shape`."""
    if tuple(g.shape) == tuple(shape):
        return g
    lead = len(g.shape) - len(shape)
    axes = tuple(range(lead)) + tuple(
        lead + i for i, n in enumerate(shape) if n == 1 and g.shape[lead + i] != 1
    )
    summed = g.sum(axis=axes, keepdim=True) if axes else g
    return summed.reshape(shape)


def _needs(node: Any) -> bool:
    return bool(getattr(node, "requires_grad", False))


# ---------------------------------------------------------------------------------------------
# elementwise unary
# ---------------------------------------------------------------------------------------------
def _unary(name: str, forward: Callable[..., Any], vjp: Callable[..., Any] | None) -> Op:
    return _register(
        name,
        "elementwise",
        _same_shape,
        forward,
        None if vjp is None else (lambda g, out, x, **a: (vjp(g, out, x, **a),)),
    )


def _sigmoid(xp: Any, x: Any) -> Any:
    # Stable for large |x|: exp only ever sees non-positive arguments.
    e = xp.exp(-xp.abs(x))
    return xp.where(x >= 0, 1 / (1 + e), e / (1 + e))


NEG = _unary("neg", lambda xp, x: -x, lambda g, out, x: -g)
EXP = _unary("exp", lambda xp, x: xp.exp(x), lambda g, out, x: g * out)
LOG = _unary("log", lambda xp, x: xp.log(x), lambda g, out, x: g / x)
SQRT = _unary("sqrt", lambda xp, x: xp.sqrt(x), lambda g, out, x: g / (out * 2))
ABS = _unary("abs", lambda xp, x: xp.abs(x), lambda g, out, x: g * x.sign())


def _sign(xp: Any, x: Any) -> Any:
    if x.dtype == bool:
        return x.copy()  # a new tensor (writing into it must not change x)
    if x.dtype.kind != "f":
        return xp.sign(x)
    # sign(NaN) is 0, as in PyTorch and the compiled kernels (ordered compares), not
    # numpy's NaN
    return xp.where(xp.isnan(x), xp.zeros_like(x), xp.sign(x))


SIGN = _unary(
    "sign", _sign, lambda g, out, x: g * 0.0
)  # zero a.e.; a bool is its own sign (numpy has no bool sign)
# integers are their own floor (numpy's floor of an int array would be float64)
FLOOR = _unary(
    "floor",
    lambda xp, x: xp.floor(x) if x.dtype.kind == "f" else x.copy(),  # a new tensor, as torch
    lambda g, out, x: g * 0.0,  # zero almost everywhere, as PyTorch's
)
# sin' = cos and cos' = -sin: each VJP is the other op, so derivatives of any order stay in DSL
SIN = _unary("sin", lambda xp, x: xp.sin(x), lambda g, out, x: g * x.cos())
COS = _unary("cos", lambda xp, x: xp.cos(x), lambda g, out, x: -(g * x.sin()))
# asin' = 1/sqrt(1 - x^2), acos' = -asin', atan' = 1/(1 + x^2)
ASIN = _unary("asin", lambda xp, x: xp.arcsin(x), lambda g, out, x: g / (1 - x * x).sqrt())
ACOS = _unary("acos", lambda xp, x: xp.arccos(x), lambda g, out, x: -(g / (1 - x * x).sqrt()))
ATAN = _unary("atan", lambda xp, x: xp.arctan(x), lambda g, out, x: g / (x * x + 1))
RELU = _unary("relu", lambda xp, x: xp.maximum(x, 0), lambda g, out, x: g * (x > 0))
SIGMOID = _unary("sigmoid", _sigmoid, lambda g, out, x: g * out * (1 - out))
TANH = _unary("tanh", lambda xp, x: xp.tanh(x), lambda g, out, x: g * (1 - out * out))
LEAKY_RELU = _unary(
    "leaky_relu",
    lambda xp, x, slope: xp.where(x > 0, x, x * slope),
    lambda g, out, x, slope: g * (x > 0) * (1 - slope) + g * slope,
)


def _erf_forward(xp: Any, x: Any) -> Any:
    # numpy has no erf; SciPy's (a scikit-learn dependency) and CuPy's are exact to an ulp
    if xp is np:
        from scipy.special import erf
    else:
        from cupyx.scipy.special import erf
    return erf(x)


_TWO_OVER_SQRT_PI = 2.0 / math.sqrt(math.pi)
# d erf(x)/dx = 2/sqrt(pi) exp(-x^2): the exact GELU's gradient comes from here
ERF = _unary("erf", _erf_forward, lambda g, out, x: g * (x * x * -1.0).exp() * _TWO_OVER_SQRT_PI)


def _cast_forward(xp: Any, x: Any, dtype: str) -> Any:
    return x.astype(dtype)


CAST = _register(
    "cast",
    "elementwise",
    lambda x, dtype: x,
    _cast_forward,
    lambda g, out, x, dtype: (g.cast(x.dtype),),
)


# ---------------------------------------------------------------------------------------------
# elementwise binary (broadcasting) and where
# ---------------------------------------------------------------------------------------------
def _binary(
    name: str,
    forward: Callable[..., Any],
    vjp: Callable[..., tuple[Any, Any]] | None,
    kind: str = "elementwise",
) -> Op:
    def full_vjp(g: Any, out: Any, a: Any, b: Any) -> tuple[Any, Any]:
        assert vjp is not None
        ga, gb = vjp(g, out, a, b)
        return (
            None if ga is None else unbroadcast(ga, a.shape),
            None if gb is None else unbroadcast(gb, b.shape),
        )

    return _register(name, kind, _broadcast_rule(name), forward, None if vjp is None else full_vjp)


def _pow_vjp(g: Any, out: Any, a: Any, b: Any) -> tuple[Any, Any]:
    # PyTorch's rules, written so that no intermediate is NaN where the result is not (the
    # scalar Value raises on NaN): d(a^b)/da = b * a^(b-1), 0 where b == 0 (a^0 is constant);
    # d(a^b)/db = a^b * log(a), and at a zero base 0 for b >= 0 but -inf * a^b = -a^b (an
    # infinity) for b < 0. A negative base gives log(a) = NaN, as in PyTorch.
    ga = gb = None
    if _needs(a):
        nonzero_b = b.abs() > 0
        ga = g * b * a ** (b.where(nonzero_b, 1.0) - 1)  # a^(b-1) is not evaluated at b == 0
    if _needs(b):
        nonzero_a = a.abs() > 0
        away = out.where(nonzero_a, 0.0) * a.where(nonzero_a, 1.0).log()
        gb = g * away.where(nonzero_a, (-out).where(b < 0, 0.0))
    return ga, gb


def _max_share(g: Any, a: Any, b: Any) -> Any:
    # Where a and b tie, each gets half of the gradient (as PyTorch does). Masks multiply g
    # (not a Python float) so the result keeps g's dtype.
    return g * (a > b) + g * (a == b) * 0.5


ADD = _binary("add", lambda xp, a, b: a + b, lambda g, out, a, b: (g, g))
SUB = _binary("sub", lambda xp, a, b: a - b, lambda g, out, a, b: (g, -g))
MUL = _binary(
    "mul",
    lambda xp, a, b: a * b,
    lambda g, out, a, b: (g * b if _needs(a) else None, g * a if _needs(b) else None),
)
DIV = _binary(
    "div",
    lambda xp, a, b: a / b,
    lambda g, out, a, b: (g / b if _needs(a) else None, -g * out / b if _needs(b) else None),
)


def _pow_forward(xp: Any, a: Any, b: Any) -> Any:
    base, exponent = xp.asarray(a), xp.asarray(b)
    if base.dtype.kind in "iu" and exponent.dtype.kind in "iu" and bool((exponent < 0).any()):
        raise op_error(
            "pow",
            "integers to negative integer powers are not integers",
            f"{np.shape(a)} ** {np.shape(b)}",
            "raise a float tensor instead: x.float() ** e",
        )
    return a**b


POW = _binary("pow", _pow_forward, _pow_vjp)
MAXIMUM = _binary(
    "maximum",
    lambda xp, a, b: xp.maximum(a, b),
    lambda g, out, a, b: (_max_share(g, a, b), _max_share(g, b, a)),
)
MINIMUM = _binary(
    "minimum",
    lambda xp, a, b: xp.minimum(a, b),
    lambda g, out, a, b: (_max_share(g, b, a), _max_share(g, a, b)),
)

# Comparisons have no gradient; they produce bool tensors (floats 0/1 for `Value`).
# integers' bitwise operators (PyTorch's `&`, `|`, `^`, `~` on int tensors): no gradient
BITWISE_AND = _binary("bitwise_and", lambda xp, a, b: xp.bitwise_and(a, b), None)
BITWISE_OR = _binary("bitwise_or", lambda xp, a, b: xp.bitwise_or(a, b), None)
BITWISE_XOR = _binary("bitwise_xor", lambda xp, a, b: xp.bitwise_xor(a, b), None)
BITWISE_NOT = _unary("bitwise_not", lambda xp, x: xp.invert(x), None)

EQ = _binary("eq", lambda xp, a, b: a == b, None, "compare")
NE = _binary("ne", lambda xp, a, b: a != b, None, "compare")
LT = _binary("lt", lambda xp, a, b: a < b, None, "compare")
LE = _binary("le", lambda xp, a, b: a <= b, None, "compare")
GT = _binary("gt", lambda xp, a, b: a > b, None, "compare")
GE = _binary("ge", lambda xp, a, b: a >= b, None, "compare")


def _where_vjp(g: Any, out: Any, cond: Any, a: Any, b: Any) -> tuple[Any, Any, Any]:
    ga = unbroadcast(g.where(cond, 0.0), a.shape) if _needs(a) else None
    gb = unbroadcast((g * 0.0).where(cond, g), b.shape) if _needs(b) else None
    return None, ga, gb


WHERE = _register(
    "where",
    "elementwise",
    _broadcast_rule("where"),
    lambda xp, c, a, b: xp.where(c, a, b),
    _where_vjp,
)


# ---------------------------------------------------------------------------------------------
# reductions (attrs: axis = sorted tuple of non-negative ints, keepdim = bool)
# ---------------------------------------------------------------------------------------------
def _reduce_shape(x: Shape, axis: tuple[int, ...], keepdim: bool) -> Shape:
    if keepdim:
        return tuple(1 if i in axis else n for i, n in enumerate(x))
    return tuple(n for i, n in enumerate(x) if i not in axis)


def _keep_shape(x: Shape, axis: tuple[int, ...]) -> Shape:
    return tuple(1 if i in axis else n for i, n in enumerate(x))


def _sum_vjp(g: Any, out: Any, x: Any, axis: tuple[int, ...], keepdim: bool) -> tuple[Any]:
    return (g.reshape(_keep_shape(x.shape, axis)).expand(x.shape),)


def _extreme_vjp(g: Any, out: Any, x: Any, axis: tuple[int, ...], keepdim: bool) -> tuple[Any]:
    # The gradient is split evenly between tied extremes: a valid subgradient that sums to g.
    keep = _keep_shape(x.shape, axis)
    best = out.detach().reshape(keep)
    hit = x == best
    if x.dtype.kind == "f":  # a NaN extreme is the NaN elements' (x == NaN is never true)
        hit = hit.logical_or(x.isnan().logical_and(best.isnan()))
    return (g.reshape(keep) * hit / hit.sum(axis=axis, keepdim=True),)


def _reducer(name: str, fn: str) -> Callable[..., Any]:
    def forward(xp: Any, x: Any, axis: tuple[int, ...], keepdim: bool) -> Any:
        if fn != "sum" and any(x.shape[a] == 0 for a in axis):
            raise op_error(
                name,
                f"cannot take the {name} over an empty dim",
                x.shape,
                "reduce over dims with at least one element",
            )
        return getattr(xp, fn)(x, axis=axis, keepdims=keepdim)

    return forward


SUM = _register("sum", "reduce", _reduce_shape, _reducer("sum", "sum"), _sum_vjp)
MAX = _register("max", "reduce", _reduce_shape, _reducer("max", "max"), _extreme_vjp)
MIN = _register("min", "reduce", _reduce_shape, _reducer("min", "min"), _extreme_vjp)


def _argmax_shape(x: Shape, axis: int | None, keepdim: bool) -> Shape:
    if axis is None:
        return (1,) * len(x) if keepdim else ()
    return _reduce_shape(x, (axis,), keepdim)


def _argmax_forward(xp: Any, x: Any, axis: int | None, keepdim: bool) -> Any:
    return xp.argmax(x, axis=axis, keepdims=keepdim)


ARGMAX = _register("argmax", "reduce", _argmax_shape, _argmax_forward, None)


# ---------------------------------------------------------------------------------------------
# movement
# ---------------------------------------------------------------------------------------------
def _reshape_shape(x: Shape, shape: Shape) -> Shape:
    if int(np.prod(x)) != int(np.prod(shape)):
        raise op_error(
            "reshape",
            f"cannot view {int(np.prod(x))} elements as {shape}",
            x,
            "keep the number of elements the same (use -1 for one dimension)",
        )
    return shape


RESHAPE = _register(
    "reshape",
    "movement",
    _reshape_shape,
    lambda xp, x, shape: x.reshape(shape),
    lambda g, out, x, shape: (g.reshape(x.shape),),
)


def _permute_shape(x: Shape, dims: tuple[int, ...]) -> Shape:
    return tuple(x[d] for d in dims)


PERMUTE = _register(
    "permute",
    "movement",
    _permute_shape,
    lambda xp, x, dims: xp.transpose(x, dims),
    lambda g, out, x, dims: (g.permute(tuple(np.argsort(dims))),),
)


def _expand_shape(x: Shape, shape: Shape) -> Shape:
    lead = len(shape) - len(x)
    if lead < 0 or any(n != 1 and n != shape[lead + i] for i, n in enumerate(x)):
        raise op_error(
            "expand",
            f"cannot expand to {shape}",
            x,
            "only dimensions of size 1 can grow; add leading dims with unsqueeze",
        )
    return shape


EXPAND = _register(
    "expand",
    "movement",
    _expand_shape,
    lambda xp, x, shape: xp.broadcast_to(x, shape),
    lambda g, out, x, shape: (unbroadcast(g, x.shape),),
)


def _pad_shape(x: Shape, pads: tuple[tuple[int, int], ...], value: float) -> Shape:
    return tuple(n + lo + hi for n, (lo, hi) in zip(x, pads, strict=True))


def _pad_vjp(g: Any, out: Any, x: Any, pads: Any, value: float) -> tuple[Any]:
    return (g[tuple(slice(lo, lo + n) for n, (lo, _) in zip(x.shape, pads, strict=True))],)


PAD = _register(
    "pad",
    "movement",
    _pad_shape,
    lambda xp, x, pads, value: xp.pad(x, pads, constant_values=value),
    _pad_vjp,
)


def _getitem_shape(x: Shape, index: tuple[Any, ...]) -> Shape:
    return tuple(np.empty(x, dtype=np.bool_)[index].shape)


def _index_put_forward(xp: Any, g: Any, shape: Shape, index: tuple[Any, ...]) -> Any:
    out = xp.zeros(shape, dtype=g.dtype)
    if any(isinstance(i, (np.ndarray, list)) for i in index):
        xp.add.at(out, index, g)  # advanced indexing may repeat positions: accumulate
    else:
        out[index] = g
    return out


GETITEM = _register(
    "getitem",
    "movement",
    _getitem_shape,
    lambda xp, x, index: x[index],
    lambda g, out, x, index: (g.index_put(x.shape, index),),
)
INDEX_PUT = _register(
    "index_put",
    "movement",
    lambda g, shape, index: shape,
    _index_put_forward,
    lambda g, out, u, shape, index: (g[index],),
)


def _cat_shape(*shapes: Shape, axis: int) -> Shape:
    first = shapes[0]
    for s in shapes[1:]:
        if len(s) != len(first) or any(
            a != b for i, (a, b) in enumerate(zip(s, first)) if i != axis
        ):
            raise op_error(
                "cat",
                f"all dimensions except axis {axis} must match",
                list(shapes),
                "reshape the inputs so only the joined axis differs",
            )
    return first[:axis] + (sum(s[axis] for s in shapes),) + first[axis + 1 :]


def _cat_vjp(g: Any, out: Any, *xs: Any, axis: int) -> tuple[Any, ...]:
    grads, start = [], 0
    for x in xs:
        stop = start + x.shape[axis]
        grads.append(g[(slice(None),) * axis + (slice(start, stop),)] if _needs(x) else None)
        start = stop
    return tuple(grads)


CAT = _register(
    "cat", "movement", _cat_shape, lambda xp, *xs, axis: xp.concatenate(xs, axis=axis), _cat_vjp
)


# ---------------------------------------------------------------------------------------------
# matmul (batched, broadcasting batch dims; both operands at least 2-D here)
# ---------------------------------------------------------------------------------------------
def _matmul_shape(a: Shape, b: Shape) -> Shape:
    if len(a) < 2 or len(b) < 2 or a[-1] != b[-2]:
        raise op_error(
            "matmul",
            "inner dimensions differ"
            if len(a) >= 2 and len(b) >= 2
            else "operands must be at least 1-D",
            f"{a} @ {b}",
            "the last dim of the left operand must equal the second-to-last of "
            "the right (transpose one of them?)",
        )
    try:
        batch = tuple(np.broadcast_shapes(a[:-2], b[:-2]))
    except ValueError:
        raise op_error(
            "matmul",
            "batch dimensions cannot be broadcast",
            f"{a} @ {b}",
            "make the leading (batch) dims equal or 1",
        ) from None
    return batch + (a[-2], b[-1])


def _matmul_vjp(g: Any, out: Any, a: Any, b: Any) -> tuple[Any, Any]:
    ga = unbroadcast(g @ b.transpose(-1, -2), a.shape) if _needs(a) else None
    gb = unbroadcast(a.transpose(-1, -2) @ g, b.shape) if _needs(b) else None
    return ga, gb


MATMUL = _register("matmul", "matmul", _matmul_shape, lambda xp, a, b: xp.matmul(a, b), _matmul_vjp)


# ---------------------------------------------------------------------------------------------
# sliding windows: the machinery conv2d and pooling share
# ---------------------------------------------------------------------------------------------
Pair = tuple[int, int]


def window_out_size(size: int, kernel: int, stride: int, padding: int, dilation: int) -> int:
    """Output length of a sliding window (PyTorch's floor rule)."""
    return (size + 2 * padding - dilation * (kernel - 1) - 1) // stride + 1


def _window_out(
    op: str, hw: Pair, kernel: Pair, stride: Pair, padding: Pair, dilation: Pair, shapes: object
) -> Pair:
    for name, v, low in (
        ("kernel_size", kernel, 1),
        ("stride", stride, 1),
        ("padding", padding, 0),
        ("dilation", dilation, 1),
    ):
        if min(v) < low:
            raise op_error(
                op, f"{name} must be >= {low}, got {v}", shapes, f"pass a {name} of at least {low}"
            )
    out = tuple(
        window_out_size(hw[i], kernel[i], stride[i], padding[i], dilation[i]) for i in range(2)
    )
    if min(out) < 1:
        eff = tuple(dilation[i] * (kernel[i] - 1) + 1 for i in range(2))
        padded = tuple(hw[i] + 2 * padding[i] for i in range(2))
        raise op_error(
            op,
            f"window {eff} is larger than the padded input {padded}",
            shapes,
            "use a smaller kernel/dilation, more padding, or a larger input",
        )
    return out  # type: ignore[return-value]


def _pad_hw(xp: Any, x: Any, padding: Pair, value: float) -> Any:
    if padding == (0, 0):
        return x
    ph, pw = padding
    return xp.pad(x, ((0, 0), (0, 0), (ph, ph), (pw, pw)), constant_values=value)


def _tap(xpad: Any, i: int, j: int, out_hw: Pair, stride: Pair, dilation: Pair) -> Any:
    """The strided slice of the padded input that kernel tap (i, j) sees, shape (..., OH, OW)."""
    r0, c0 = i * dilation[0], j * dilation[1]
    return xpad[
        ...,
        r0 : r0 + stride[0] * (out_hw[0] - 1) + 1 : stride[0],
        c0 : c0 + stride[1] * (out_hw[1] - 1) + 1 : stride[1],
    ]


def _windows(
    xp: Any, x: Any, kernel: Pair, stride: Pair, padding: Pair, dilation: Pair, pad_value: float
) -> Any:
    """A strided view (N, C, KH, KW, OH, OW) of every window of x (no copy beyond padding)."""
    xpad = xp.ascontiguousarray(_pad_hw(xp, x, padding, pad_value))
    n, c, h, w = xpad.shape
    oh = (h - dilation[0] * (kernel[0] - 1) - 1) // stride[0] + 1
    ow = (w - dilation[1] * (kernel[1] - 1) - 1) // stride[1] + 1
    sn, sc, sh, sw = xpad.strides
    return xp.lib.stride_tricks.as_strided(
        xpad,
        shape=(n, c, kernel[0], kernel[1], oh, ow),
        strides=(sn, sc, sh * dilation[0], sw * dilation[1], sh * stride[0], sw * stride[1]),
    )


def _col2im(xp: Any, cols: Any, x_shape: Shape, stride: Pair, padding: Pair, dilation: Pair) -> Any:
    """Adjoint of `_windows`: add every window (N, C, KH, KW, OH, OW) back into (N, C, H, W)."""
    n, c, h, w = x_shape
    kh, kw, oh, ow = cols.shape[-4:]
    ph, pw = padding
    acc = xp.zeros((n, c, h + 2 * ph, w + 2 * pw), dtype=cols.dtype)
    for i in range(kh):
        for j in range(kw):
            _tap(acc, i, j, (oh, ow), stride, dilation)[...] += cols[:, :, i, j]
    return acc[:, :, ph : ph + h, pw : pw + w]


def _unfold_shape(
    x: Shape, kernel: Pair, stride: Pair, padding: Pair, dilation: Pair, pad_value: float
) -> Shape:
    oh, ow = _window_out("unfold2d", x[2:], kernel, stride, padding, dilation, x)
    return (x[0], x[1], kernel[0], kernel[1], oh, ow)


UNFOLD2D = _register(
    "unfold2d",
    "movement",
    _unfold_shape,
    lambda xp, x, kernel, stride, padding, dilation, pad_value: _windows(
        xp, x, kernel, stride, padding, dilation, pad_value
    ).copy(),
    lambda g, out, x, kernel, stride, padding, dilation, pad_value: (
        g.fold2d(x.shape, stride, padding, dilation),
    ),
)
FOLD2D = _register(
    "fold2d",
    "movement",
    lambda cols, x_shape, stride, padding, dilation: x_shape,
    lambda xp, cols, x_shape, stride, padding, dilation: _col2im(
        xp, cols, x_shape, stride, padding, dilation
    ),
    lambda g, out, cols, x_shape, stride, padding, dilation: (
        g.unfold2d(cols.shape[2:4], stride, padding, dilation),
    ),
)


# ---------------------------------------------------------------------------------------------
# conv2d and its two adjoints (together they are closed under differentiation)
# ---------------------------------------------------------------------------------------------
def _conv_shape(
    x: Shape, w: Shape, stride: Pair, padding: Pair, dilation: Pair, groups: int
) -> Shape:
    shapes = f"input {x}, weight {w}"
    if len(x) != 4 or len(w) != 4:
        raise op_error(
            "conv2d",
            "input must be (N, C, H, W) and weight (O, C/groups, KH, KW)",
            shapes,
            "add a batch dim with unsqueeze(0) for a single image",
        )
    if groups < 1 or x[1] % groups or w[0] % groups:
        raise op_error(
            "conv2d",
            f"channels must divide into groups={groups}",
            shapes,
            "pick groups dividing both input and output channels",
        )
    if x[1] != w[1] * groups:
        raise op_error(
            "conv2d",
            f"input has {x[1]} channels but weight expects "
            f"{w[1]} x groups {groups} = {w[1] * groups}",
            shapes,
            "make weight.shape[1] == in_channels / groups",
        )
    oh, ow = _window_out("conv2d", x[2:], w[2:], stride, padding, dilation, shapes)
    return (x[0], w[0], oh, ow)


def _conv_cols(
    xp: Any, x: Any, kernel: Pair, stride: Pair, padding: Pair, dilation: Pair, groups: int
) -> Any:
    """im2col: (N, G, Cg*KH*KW, OH*OW), one contiguous copy, ready for a batched GEMM."""
    view = _windows(xp, x, kernel, stride, padding, dilation, 0.0)
    n, c, kh, kw, oh, ow = view.shape
    return view.reshape(n, groups, (c // groups) * kh * kw, oh * ow)


def _conv_forward(
    xp: Any, x: Any, w: Any, stride: Pair, padding: Pair, dilation: Pair, groups: int
) -> Any:
    o, cg, kh, kw = w.shape
    cols = _conv_cols(xp, x, (kh, kw), stride, padding, dilation, groups)
    out = xp.matmul(w.reshape(groups, o // groups, cg * kh * kw), cols)  # (N, G, Og, L)
    oh, ow = (
        window_out_size(x.shape[2 + i], w.shape[2 + i], stride[i], padding[i], dilation[i])
        for i in range(2)
    )
    return out.reshape(x.shape[0], o, oh, ow)


def _conv_grad_input_forward(
    xp: Any,
    g: Any,
    w: Any,
    x_shape: Shape,
    stride: Pair,
    padding: Pair,
    dilation: Pair,
    groups: int,
) -> Any:
    n, _, oh, ow = g.shape
    o, cg, kh, kw = w.shape
    wm = w.reshape(groups, o // groups, cg * kh * kw)
    cols = xp.matmul(wm.transpose(0, 2, 1), g.reshape(n, groups, o // groups, oh * ow))
    cols = cols.reshape(n, groups * cg, kh, kw, oh, ow)
    return _col2im(xp, cols, x_shape, stride, padding, dilation)


def _conv_grad_weight_forward(
    xp: Any,
    x: Any,
    g: Any,
    w_shape: Shape,
    stride: Pair,
    padding: Pair,
    dilation: Pair,
    groups: int,
) -> Any:
    o, cg, kh, kw = w_shape
    n, _, oh, ow = g.shape
    cols = _conv_cols(xp, x, (kh, kw), stride, padding, dilation, groups)
    gm = g.reshape(n, groups, o // groups, oh * ow)
    return xp.matmul(gm, cols.transpose(0, 1, 3, 2)).sum(axis=0).reshape(w_shape)


def _conv_vjp(g: Any, out: Any, x: Any, w: Any, **conv: Any) -> tuple[Any, Any]:
    gx = g.conv2d_grad_input(w, x.shape, **conv) if _needs(x) else None
    gw = x.conv2d_grad_weight(g, w.shape, **conv) if _needs(w) else None
    return gx, gw


def _conv_grad_input_vjp(
    u: Any, out: Any, g: Any, w: Any, x_shape: Shape, **conv: Any
) -> tuple[Any, Any]:
    # out = J_x^T g, bilinear in (g, w): d/dg <u, out> = conv2d(u, w); d/dw = grad_weight(u, g)
    gg = u.conv2d(w, **conv) if _needs(g) else None
    gw = u.conv2d_grad_weight(g, w.shape, **conv) if _needs(w) else None
    return gg, gw


def _conv_grad_weight_vjp(
    v: Any, out: Any, x: Any, g: Any, w_shape: Shape, **conv: Any
) -> tuple[Any, Any]:
    # out = J_w^T g, bilinear in (x, g): d/dx <v, out> = grad_input(g, v); d/dg = conv2d(x, v)
    gx = g.conv2d_grad_input(v, x.shape, **conv) if _needs(x) else None
    gg = x.conv2d(v, **conv) if _needs(g) else None
    return gx, gg


CONV2D = _register("conv2d", "conv", _conv_shape, _conv_forward, _conv_vjp)
CONV2D_GRAD_INPUT = _register(
    "conv2d_grad_input",
    "conv",
    lambda g, w, x_shape, **conv: x_shape,
    _conv_grad_input_forward,
    _conv_grad_input_vjp,
)
CONV2D_GRAD_WEIGHT = _register(
    "conv2d_grad_weight",
    "conv",
    lambda x, g, w_shape, **conv: w_shape,
    _conv_grad_weight_forward,
    _conv_grad_weight_vjp,
)


# ---------------------------------------------------------------------------------------------
# pooling (forward loops over kernel taps: KH*KW vector ops, no window copy)
# ---------------------------------------------------------------------------------------------
def _pool_shape(name: str) -> Callable[..., Shape]:
    def rule(x: Shape, kernel: Pair, stride: Pair, padding: Pair, dilation: Pair) -> Shape:
        if len(x) != 4:
            raise op_error(
                name,
                "input must be (N, C, H, W)",
                x,
                "add a batch dim with unsqueeze(0) for a single image",
            )
        if any(padding[i] * 2 > kernel[i] for i in range(2)):
            raise op_error(
                name,
                f"padding {padding} exceeds half the kernel {kernel}",
                x,
                "use padding <= kernel_size // 2",
            )
        out_hw = _window_out(name, x[2:], kernel, stride, padding, dilation, x)
        if name == "max_pool2d" and any(
            _window_in_padding(x[2 + i], out_hw[i], kernel[i], stride[i], padding[i], dilation[i])
            for i in range(2)
        ):
            raise op_error(
                "max_pool2d",
                "a window lies entirely in the padding",
                x,
                "use less padding or dilation (or a larger input)",
            )
        return x[:2] + out_hw

    return rule


def _window_in_padding(n: int, out: int, k: int, stride: int, pad: int, dilation: int) -> bool:
    """Whether some window along one axis sees no input position, only padding (its max
    would be the padding value). Decided from the geometry alone, for every dtype."""
    return any(
        all(not 0 <= o * stride + t * dilation - pad < n for t in range(k)) for o in range(out)
    )


def lowest_value(dtype: Any) -> Any:
    """The padding value for a max: -inf for floats, the dtype's minimum for integers (an
    integer array cannot hold -inf), False for bools."""
    dtype = np.dtype(dtype)
    if dtype.kind == "f":
        return -np.inf
    if dtype.kind == "b":
        return False
    return np.iinfo(dtype).min


def _pool_forward(reduce: str) -> Callable[..., Any]:
    def forward(xp: Any, x: Any, kernel: Pair, stride: Pair, padding: Pair, dilation: Pair) -> Any:
        fill = lowest_value(x.dtype) if reduce == "max" else 0.0
        xpad = _pad_hw(xp, x, padding, fill)
        out_hw = (
            window_out_size(x.shape[2], kernel[0], stride[0], padding[0], dilation[0]),
            window_out_size(x.shape[3], kernel[1], stride[1], padding[1], dilation[1]),
        )
        acc = None
        for i in range(kernel[0]):
            for j in range(kernel[1]):
                tap = _tap(xpad, i, j, out_hw, stride, dilation)
                if acc is None:
                    acc = tap.copy()
                elif reduce == "max":
                    xp.maximum(acc, tap, out=acc)
                else:
                    acc += tap
        assert acc is not None
        return acc if reduce == "max" else acc / (kernel[0] * kernel[1])

    return forward


def _max_pool_vjp(
    g: Any, out: Any, x: Any, kernel: Pair, stride: Pair, padding: Pair, dilation: Pair
) -> tuple[Any]:
    # The whole gradient goes to the first maximum of each window in row-major order (as
    # PyTorch routes it): one op, so the compiler can scatter instead of unfolding windows
    grad = x.detach()._call(
        MAX_POOL2D_GRAD, g, kernel=kernel, stride=stride, padding=padding, dilation=dilation
    )
    return (grad,)


def _first_maximum(x: Any, kernel: Pair, stride: Pair, padding: Pair, dilation: Pair) -> Any:
    """(N, C, KH*KW, OH, OW) one-hot of each window's first maximum in row-major tap order
    (a NaN counts as the maximum, as in numpy's argmax), from DSL ops."""
    kh, kw = kernel
    win = x.detach().unfold2d(kernel, stride, padding, dilation, pad_value=-np.inf)
    n, c, _, _, oh, ow = win.shape
    first = win.reshape((n, c, kh * kw, oh, ow)).argmax(axis=2, keepdim=True)
    return first == type(x)._make(np.arange(kh * kw).reshape(1, 1, kh * kw, 1, 1))


def _max_pool_grad_shape(
    x: Shape, g: Shape, kernel: Pair, stride: Pair, padding: Pair, dilation: Pair
) -> Shape:
    pooled = _pool_shape("max_pool2d")(x, kernel, stride, padding, dilation)
    if tuple(g) != pooled:
        raise op_error(
            "max_pool2d_grad",
            f"the gradient must have the pooled shape {pooled}",
            f"input {x}, gradient {g}",
            "pass the gradient of max_pool2d's output for this input and window",
        )
    return x


def _max_pool_grad_forward(
    xp: Any, x: Any, g: Any, kernel: Pair, stride: Pair, padding: Pair, dilation: Pair
) -> Any:
    """Each window's gradient added at its first maximum: argmax over the windows, one-hot,
    then back into the image (`_col2im`)."""
    n, c, oh, ow = g.shape
    kh, kw = kernel
    win = _windows(xp, x, kernel, stride, padding, dilation, lowest_value(x.dtype))
    first = win.reshape(n, c, kh * kw, oh, ow).argmax(axis=2)
    pick = first[:, :, None] == xp.arange(kh * kw).reshape(1, 1, kh * kw, 1, 1)
    cols = (g[:, :, None] * pick).reshape(n, c, kh, kw, oh, ow)
    return _col2im(xp, cols, x.shape, stride, padding, dilation)


def _max_pool_grad_vjp(
    h: Any, out: Any, x: Any, g: Any, kernel: Pair, stride: Pair, padding: Pair, dilation: Pair
) -> tuple[Any, Any]:
    # The routes do not move with x (zero almost everywhere, like argmax's); the map from g
    # is linear, and its adjoint reads h back at each window's first maximum
    n, c, oh, ow = g.shape
    kh, kw = kernel
    pick = _first_maximum(x, kernel, stride, padding, dilation)
    hw = h.unfold2d(kernel, stride, padding, dilation).reshape((n, c, kh * kw, oh, ow))
    return None, (hw * pick).sum(axis=2)


def _avg_pool_vjp(
    g: Any, out: Any, x: Any, kernel: Pair, stride: Pair, padding: Pair, dilation: Pair
) -> tuple[Any]:
    n, c, oh, ow = out.shape
    cols = (g / (kernel[0] * kernel[1])).reshape((n, c, 1, 1, oh, ow))
    cols = cols.expand((n, c, kernel[0], kernel[1], oh, ow))
    return (cols.fold2d(x.shape, stride, padding, dilation),)


MAX_POOL2D = _register(
    "max_pool2d", "pool", _pool_shape("max_pool2d"), _pool_forward("max"), _max_pool_vjp
)
# max_pool2d's input gradient (x, g) -> x's shape: a scatter, written as one op
MAX_POOL2D_GRAD = _register(
    "max_pool2d_grad",
    "movement",
    _max_pool_grad_shape,
    _max_pool_grad_forward,
    _max_pool_grad_vjp,
)
AVG_POOL2D = _register(
    "avg_pool2d", "pool", _pool_shape("avg_pool2d"), _pool_forward("avg"), _avg_pool_vjp
)


# ---------------------------------------------------------------------------------------------
# binary cross-entropy on probabilities, elementwise (PyTorch's clamped formula)
# ---------------------------------------------------------------------------------------------
def _bce_forward(xp: Any, p: Any, y: Any) -> Any:
    with np.errstate(divide="ignore"):
        log_p = xp.maximum(xp.log(p), -100.0)
        log_q = xp.maximum(xp.log(1 - p), -100.0)
    return -(y * log_p + (1 - y) * log_q)


def _bce_vjp(g: Any, out: Any, p: Any, y: Any) -> tuple[Any, Any]:
    # d/dp = (p - y) / max(p (1 - p), 1e-12): finite at p = 0 and p = 1 (PyTorch's rule)
    gp = g * (p - y) / (p * (1 - p)).maximum(1e-12) if _needs(p) else None
    gy = g * ((1 - p).log().maximum(-100.0) - p.log().maximum(-100.0)) if _needs(y) else None
    return (
        None if gp is None else unbroadcast(gp, p.shape),
        None if gy is None else unbroadcast(gy, y.shape),
    )


BCE = _register(
    "binary_cross_entropy",
    "elementwise",
    _broadcast_rule("binary_cross_entropy"),
    _bce_forward,
    _bce_vjp,
)


# ---------------------------------------------------------------------------------------------
# no gradient: detach, random masks, one-hot labels
# ---------------------------------------------------------------------------------------------
DETACH = _register("detach", "elementwise", _same_shape, lambda xp, x: x, None)


def _bernoulli_forward(xp: Any, shape: Shape, p: float, dtype: str) -> Any:
    # Inverted-dropout mask: 0 with probability p, else 1/(1-p). Drawn from the global
    # generator (`tinygrad_edu.manual_seed`) on every execution, eager or compiled; in
    # data-parallel training, this rank's rows of the global batch's mask (`rng.uniform`).
    from . import rng

    keep = rng.uniform(shape) >= p
    return xp.asarray((keep / (1.0 - p)).astype(dtype))


BERNOULLI = _register(
    "bernoulli", "elementwise", lambda shape, p, dtype: shape, _bernoulli_forward, None
)


def _one_hot_shape(labels: Shape, num_classes: int, dtype: str) -> Shape:
    return labels + (num_classes,)


def check_one_hot_labels(labels: Any, num_classes: int) -> None:
    """one_hot's range rule (eagerly in its forward; a compiled program on each call)."""
    if labels.size and (int(labels.min()) < 0 or int(labels.max()) >= num_classes):
        raise op_error(
            "one_hot",
            f"labels must be in [0, {num_classes - 1}], got [{int(labels.min())}, "
            f"{int(labels.max())}]",
            labels.shape,
            "check the label encoding or the number of classes",
        )


def _one_hot_forward(xp: Any, labels: Any, num_classes: int, dtype: str) -> Any:
    check_one_hot_labels(labels, num_classes)
    return (labels[..., None] == xp.arange(num_classes)).astype(dtype)


ONE_HOT = _register("one_hot", "elementwise", _one_hot_shape, _one_hot_forward, None)


# ---------------------------------------------------------------------------------------------
# along one dim, with a tensor of indices (the index is data, not an attribute, so these run
# compiled whatever made it): PyTorch's gather and scatter_add once the source is cut to the
# index's extent in the other dims, and argsort (the order sort and topk read)
# ---------------------------------------------------------------------------------------------
def check_along_index(index: Any, size: int, dim: int, op: str = "gather") -> None:
    """Every index in [0, size) (eagerly in the forward; a compiled program on each call)."""
    if index.size and (int(index.min()) < 0 or int(index.max()) >= size):
        bad = index[(index < 0) | (index >= size)].flat[0]
        raise op_error(
            op,
            f"index {int(bad)} is out of bounds for dim {dim} of size {size}",
            index.shape,
            f"use indices in [0, {size - 1}]",
            OpIndexError,
        )


def _along_rule(name: str, src: Shape, index: Shape, dim: int) -> None:
    if len(src) != len(index) or not 0 <= dim < len(src):
        raise op_error(
            name,
            f"the index must have the source's {len(src)} dims and dim {dim} one of them",
            f"source {src}, index {index}",
            "unsqueeze the index to the source's rank",
        )
    if any(a != b for d, (a, b) in enumerate(zip(src, index)) if d != dim):
        raise op_error(
            name,
            f"the index must match the source outside dim {dim}",
            f"source {src}, index {index}",
            "slice the source to the index's extent first (Tensor.gather does)",
        )


def _gather_along_shape(x: Shape, index: Shape, dim: int) -> Shape:
    _along_rule("gather", x, index, dim)
    return index


def _gather_along_forward(xp: Any, x: Any, index: Any, dim: int) -> Any:
    check_along_index(index, x.shape[dim], dim)
    return xp.take_along_axis(x, index.astype(np.int64), axis=dim)


def _put_along_shape(src: Shape, index: Shape, size: int, dim: int) -> Shape:
    if src != index:
        raise op_error(
            "scatter_add", "src must have the index's shape", f"src {src}, index {index}",
            "slice src to the index's shape",
        )  # fmt: skip
    return index[:dim] + (size,) + index[dim + 1 :]


def _put_along_forward(xp: Any, src: Any, index: Any, size: int, dim: int) -> Any:
    """Zeros with src[..., k, ...] added at [..., index[..., k, ...], ...] (repeats add up)."""
    check_along_index(index, size, dim, "scatter_add")
    out = xp.zeros(index.shape[:dim] + (size,) + index.shape[dim + 1 :], src.dtype)
    grid = list(xp.indices(index.shape, sparse=True))
    grid[dim] = index.astype(np.int64)
    if xp is np:
        np.add.at(out, tuple(grid), src)
    else:  # CuPy
        import cupyx

        cupyx.scatter_add(out, tuple(grid), src)
    return out


# each other's adjoint: gather's VJP adds the gradient back where it was picked from
GATHER_ALONG = _register(
    "gather_along",
    "movement",
    _gather_along_shape,
    _gather_along_forward,
    lambda g, out, x, index, dim: (
        g.put_along(index, x.shape[dim], dim) if _needs(x) else None,
        None,
    ),
)
PUT_ALONG = _register(
    "put_along",
    "movement",
    _put_along_shape,
    _put_along_forward,
    lambda g, out, src, index, size, dim: (
        g.gather_along(index, dim) if _needs(src) else None,
        None,
    ),
)


def _argsort_forward(xp: Any, x: Any, dim: int, descending: bool) -> Any:
    """Stable: ties keep their order. NaN counts as the largest value, as in PyTorch."""
    if not descending:
        return xp.argsort(x, axis=dim, kind="stable")
    if x.dtype.kind == "f":  # NaNs first, then the values from the largest
        keys = (xp.where(xp.isnan(x), 0, -x), ~xp.isnan(x))
    else:
        keys = (-x.astype(np.int64),)
    moved = [xp.moveaxis(k, dim, -1) for k in keys]
    return xp.moveaxis(xp.lexsort(tuple(moved), axis=-1), -1, dim)


ARGSORT = _register("argsort", "movement", lambda x, dim, descending: x, _argsort_forward, None)


# ---------------------------------------------------------------------------------------------
# dtype rule (the compiler's verify pass and symbolic tracing use it; eager runs get the same
# answer from numpy, which a test checks)
# ---------------------------------------------------------------------------------------------
_DEFAULT_FLOAT = np.dtype(np.float32)
# float even on ints
# ops whose result is a float whatever the inputs (integers and bools compute in float32)
FLOAT_RESULT = ("sigmoid", "tanh", "exp", "log", "sqrt", "div", "erf", "sin", "cos")
FLOAT_RESULT += ("asin", "acos", "atan")


def infer_dtype(op: Op, dtypes: list[np.dtype], attrs: dict[str, Any]) -> np.dtype:
    """Result dtype of `op` on inputs of `dtypes`: numpy promotion, except that float64
    appears only when an input is float64 (int/int division gives float32, as in PyTorch)."""
    if op.kind == "compare":
        return np.dtype(np.bool_)
    if op.name in ("argmax", "argsort"):
        return np.dtype(np.int64)
    if op.name in ("gather_along", "put_along"):
        return np.dtype(dtypes[0])
    if "dtype" in attrs:
        return np.dtype(attrs["dtype"])
    if op.name == "where":
        dtypes = dtypes[1:]
    if op.name in FLOAT_RESULT or op.kind in ("conv", "pool"):
        dtypes = [*dtypes, _DEFAULT_FLOAT]
    result = np.result_type(*dtypes) if dtypes else _DEFAULT_FLOAT
    if op.name == "sum" and result.kind in "biu":
        return np.dtype(np.int64)  # numpy sums bools and small ints into int64
    if result == np.float64 and np.dtype(np.float64) not in dtypes:
        return _DEFAULT_FLOAT
    return np.dtype(result)
