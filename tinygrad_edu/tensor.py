"""`Tensor`: an n-dimensional array that records its history, PyTorch-style, NCHW layout.

Primitive ops come from the op table (`ops.py`); this module adds the user-facing methods,
argument normalisation (ints or pairs, negative axes, `dim=` as an alias of `axis=`), and the
composite ops built from primitives: mean, logsumexp, softmax, losses, linear, LRN, dropout.
Arrays are numpy arrays; the forwards are array-module generic so other modules can plug in.
"""

from __future__ import annotations

import functools
import inspect
import math
import sys
import types
from collections.abc import Iterable, Iterator, Sequence
from typing import Any

import numpy as np

from . import ops, rng
from .autograd import Node, no_grad, record_input_check, tracing
from .errors import OpError, OpIndexError, op_error
from .method_forms import MethodForms
from .ops import Op
from .shape import SizeAttr
from .shape import is_int as _is_int

DEFAULT_FLOAT = np.dtype(np.float32)

Pair = tuple[int, int]
_SQRT_HALF = 0.7071067811865476  # 1 / sqrt(2)
_SQRT_TWO_OVER_PI = 0.7978845608028654  # sqrt(2 / pi), in GELU's tanh approximation
# SELU's constants (Klambauer et al. 2017), to the digits PyTorch uses
_SELU_ALPHA = 1.6732632423543772848170429916717
_SELU_SCALE = 1.0507009873554804934193349852946


class MetaArray:
    """What a tensor holds while the compiler traces: a shape and a dtype, no numbers."""

    __slots__ = ("shape", "dtype")

    def __init__(self, shape: Sequence[int], dtype: Any) -> None:
        self.shape = tuple(int(n) for n in shape)
        self.dtype = np.dtype(dtype)

    @property
    def ndim(self) -> int:
        return len(self.shape)

    @property
    def size(self) -> int:
        return int(np.prod(self.shape))

    def __repr__(self) -> str:
        return f"MetaArray({self.shape}, {self.dtype})"


def _array_module(arrays: Iterable[Any]) -> Any:
    for a in arrays:
        module = type(a).__module__
        if module.startswith("cupy"):
            import cupy  # lazily: only CUDA users have it

            return cupy
    return np


def cupy_with_device(who: str) -> Any:
    """The cupy module, once it is importable and a CUDA device is visible; else an error
    saying which of the two is missing."""
    try:
        import cupy
    except ImportError:
        raise RuntimeError(f"{who} needs CuPy: pip install -e '.[cuda]' (cupy-cuda13x)") from None
    try:
        count = cupy.cuda.runtime.getDeviceCount()
    except Exception:  # noqa: BLE001 (CuPy raises driver-specific errors)
        count = 0
    if count < 1:
        raise RuntimeError(
            f"{who}: no CUDA device is visible. Fix: run on a machine with a GPU "
            "(compiled CUDA sources stay readable in kernel.sources['cuda'])"
        )
    return cupy


def _to_device(arr: np.ndarray, device: str) -> Any:
    assert device == "cuda", device  # `_device` named it
    return cupy_with_device("Tensor(device='cuda')").asarray(arr)


def _to_array(data: Any, dtype: Any = None) -> np.ndarray:
    """A new array of `data`'s values (never the caller's own memory: an optimizer writing a
    parameter in place must not change the array it was made from, as with torch.tensor)."""
    arr = _as_array(data, dtype)
    if isinstance(data, (np.ndarray, Tensor)) and np.may_share_memory(
        arr, data.data if isinstance(data, Tensor) else data
    ):
        arr = arr.copy()
    return arr


def _as_array(data: Any, dtype: Any = None) -> np.ndarray:
    if isinstance(data, Tensor):
        if dtype is None:
            return data.numpy()  # a tensor keeps its dtype, as torch.tensor(t) does
        data = data.numpy()
    if type(data).__module__.startswith("cupy"):
        data = data.get()
    try:
        if dtype is not None:
            return np.asarray(data, dtype=np.dtype(dtype))
        arr = np.asarray(data)
    except ValueError as e:
        if isinstance(data, (list, tuple)):
            raise ValueError(
                f"Tensor: the nested list is ragged (rows of different lengths): {e}. Fix: give "
                "every row the same length, or pad them"
            ) from None
        raise
    if arr.dtype.kind == "f":
        return arr.astype(DEFAULT_FLOAT, copy=False)  # float32 unless asked otherwise
    if arr.dtype.kind in "iu":
        return arr.astype(np.int64, copy=False)
    if arr.dtype.kind == "b":
        return arr
    raise TypeError(
        f"Tensor: cannot make a tensor from dtype {arr.dtype}. Fix: pass numbers, "
        "a numpy array of floats/ints/bools, or a nested list of them"
    )


def _pair(value: int | Sequence[int], name: str, op: str) -> Pair:
    if _is_int(value):
        return (int(value), int(value))
    if not isinstance(value, (tuple, list)) or not all(_is_int(v) for v in value):
        raise op_error(
            op,
            f"{name} must be an int or a pair of ints, got {value!r}",
            value,
            f"pass {name}=3 or (3, 3)",
        )
    items = tuple(int(v) for v in value)
    if len(items) != 2:
        raise op_error(op, f"{name} must be an int or a pair", value, f"pass {name}=3 or (3, 3)")
    return items  # type: ignore[return-value]


def _axis(axis: Any, dim: Any) -> Any:
    return dim if axis is None else axis


def _category(dtype: np.dtype) -> int:
    return {"b": 0, "i": 1, "u": 1, "f": 2, "c": 3}.get(dtype.kind, 4)


def _zero_dim_promotion(a: Tensor, b: Tensor) -> tuple[Tensor, Tensor]:
    """PyTorch's promotion between a tensor with dims and a 0-d one: the 0-d operand's
    width counts only when its category (bool < integer < float) is higher, so
    `float32 tensor + 0-d float64` stays float32 and `int32 tensor + 0-d int64` int32."""
    if a.dtype == b.dtype or (a.ndim == 0) == (b.ndim == 0):
        return a, b
    zero, full = (a, b) if a.ndim == 0 else (b, a)
    if _category(zero.dtype) > _category(full.dtype):
        return a, b
    zero = zero.cast(full.dtype)
    return (zero, full) if a.ndim == 0 else (full, zero)


def _check_integer_bits(name: str, *tensors: Tensor) -> None:
    for t in tensors:
        if t.dtype.kind not in "iub":
            raise op_error(
                name,
                f"defined for integer and bool tensors, got {t.dtype}",
                t.shape,
                "cast to an integer dtype first (x.long())",
            )


def _one_element(value: Any, op: str) -> Any:
    """A 0-d index or source for a 0-d input's gather/scatter, as one element."""
    t = value if isinstance(value, Tensor) else Tensor(np.asarray(value))
    if t.ndim != 0:
        raise op_error(op, "a 0-d input takes a 0-d index and source", t.shape, "pass 0-d tensors")
    return t.reshape(1)


class Tensor(MethodForms, Node):
    """An array with a gradient. float32 by default; float64 works end to end.

    `Tensor(np_array, requires_grad=True)` makes a leaf; ops on it record nodes, and
    `loss.backward()` fills `.grad` (a Tensor) of every leaf that requires grad.
    """

    __slots__ = ()
    __array_priority__ = 1000  # so `ndarray * Tensor` calls Tensor.__rmul__

    def __init__(
        self, data: Any, requires_grad: bool = False, dtype: Any = None, device: str | None = None
    ) -> None:
        device = _device(device)  # "cpu", "cuda", "cuda:0" or x.device: None or "cuda"
        if device is None and type(data).__module__.startswith("cupy"):
            device = "cuda"  # a CuPy array stays on the GPU
        arr = _to_array(data, dtype)
        if device is not None:
            arr = _to_device(arr, device)
        if requires_grad and arr.dtype.kind != "f":
            raise TypeError(
                f"Tensor: only floating-point tensors can require grad, got "
                f"{arr.dtype}. Fix: pass float data or dtype='float32'"
            )
        super().__init__(arr, requires_grad)

    @classmethod
    def _make(cls, array: Any, requires_grad: bool = False) -> Tensor:
        """Wrap an array exactly as it is (no dtype policy, no copy)."""
        t = cls.__new__(cls)
        Node.__init__(t, array, requires_grad)
        return t

    # -- Node hooks ---------------------------------------------------------------------------
    @classmethod
    def _wrap(cls, data: Any) -> Tensor:
        return cls(data)

    @classmethod
    def _forward(
        cls, op: Op, inputs: Sequence[Node], attrs: dict[str, Any], shape: tuple[int, ...]
    ) -> Tensor:
        arrays = [i.data for i in inputs]
        xp = _array_module(arrays)
        if xp is not np and not tracing():  # constants made on the host join the device
            arrays = [xp.asarray(a) for a in arrays]
        if tracing():  # symbolic: the op table's shape and dtype rules, no array work
            dtype = ops.infer_dtype(op, [a.dtype for a in arrays], attrs)
            return cls._make(MetaArray(shape, dtype))
        if op.name in ops.FLOAT_RESULT and not any(a.dtype.kind in "fc" for a in arrays):
            # bools and small ints would give numpy's float16: compute in the default float,
            # as PyTorch (and the compiler's dtype rule) do
            arrays = [a.astype(DEFAULT_FLOAT) for a in arrays]
        try:
            out = op.forward(xp, *arrays, **attrs)
        except (TypeError, ValueError, OverflowError) as e:
            if isinstance(e, OpError):
                raise
            # numpy refusing these dtypes (bool negation, int ** negative int, ...)
            raise op_error(
                op.name,
                f"not defined for {' and '.join(str(a.dtype) for a in arrays)} inputs: {e}",
                " and ".join(str(tuple(a.shape)) for a in arrays),
                "cast first (x.float(), or x.long() for integer arithmetic on bools)",
            ) from None
        if (
            out.dtype == np.float64
            and "dtype" not in attrs
            and not any(a.dtype == np.float64 for a in arrays)
        ):
            out = out.astype(DEFAULT_FLOAT)  # int/int division etc. stays in the default float
        return cls._make(out)

    def _seed_grad(self) -> Tensor:
        if self.data.size != 1:
            raise RuntimeError(
                f"backward: output has shape {self.shape}, so a gradient must be given. "
                "Fix: reduce to a scalar first (e.g. .sum() or .mean()) or call "
                "backward(gradient) with a tensor of the output's shape"
            )
        xp = _array_module([self.data]) if not tracing() else np
        return Tensor._make(xp.ones(self.shape, dtype=self.dtype))

    def _store_grad(self, grad: Node) -> None:
        g = grad if grad.shape == self.shape else grad.expand(self.shape)
        if self.grad is None:
            self.grad = (
                g
                if g.requires_grad or tracing()
                else Tensor._make(g.data.astype(self.data.dtype, copy=True))
            )
        else:
            self.grad = self.grad + g

    def _coerce_seed(self, gradient: Any) -> Node:
        seed = gradient if isinstance(gradient, Tensor) else Tensor(gradient, dtype=self.data.dtype)
        if seed.shape != self.shape:
            raise op_error(
                "backward",
                "gradient shape differs from the output shape",
                f"gradient {seed.shape}, output {self.shape}",
                "pass a gradient with the output's shape",
            )
        return seed

    # -- basics -------------------------------------------------------------------------------
    @property
    def shape(self) -> tuple[int, ...]:
        return tuple(self.data.shape)

    @property
    def device(self) -> str:
        """ "cuda" for tensors on the GPU (CuPy arrays), else "cpu"."""
        return "cuda" if type(self.data).__module__.startswith("cupy") else "cpu"

    def to(self, device: Any) -> Tensor:
        """A copy on `device` ("cpu" or "cuda"), cut from the graph (like .detach()); or,
        given a dtype (np.float64, "float64", ...), `cast(dtype)`, as PyTorch's x.to(dtype)."""
        if not (isinstance(device, str) and device.split(":")[0] in ("cpu", "cuda")):
            try:
                dtype = np.dtype(device)
            except TypeError:
                dtype = None
            if dtype is not None:
                return self.cast(dtype)
        where = _device(device) or "cpu"
        if where == self.device:
            return self
        if where == "cpu":
            return Tensor._make(self.numpy())
        return Tensor._make(_to_device(self.numpy(), where))

    def cuda(self) -> Tensor:
        return self.to("cuda")

    def cpu(self) -> Tensor:
        return self.to("cpu")

    @property
    def dtype(self) -> np.dtype:
        return self.data.dtype

    @property
    def ndim(self) -> int:
        return self.data.ndim

    @property
    def size(self) -> SizeAttr:
        """The element count (numpy's `size`), also callable as PyTorch's `size()`/`size(dim)`."""
        return SizeAttr(self.shape)

    def dim(self) -> int:
        """The number of dimensions (PyTorch's name for `ndim`)."""
        return self.data.ndim

    def numel(self) -> int:
        return int(self.data.size)

    def __len__(self) -> int:
        if self.ndim == 0:
            raise TypeError("len() of a 0-d tensor")
        return self.shape[0]

    def __iter__(self) -> Iterator[Tensor]:
        """The sub-tensors along dim 0 (`for row in t`), as PyTorch iterates."""
        if self.ndim == 0:
            raise TypeError("iteration over a 0-d tensor")
        return (self[i] for i in range(self.shape[0]))

    def numpy(self) -> np.ndarray:
        """The data as a numpy array (shared, not copied: do not write into it)."""
        data = self.data
        if isinstance(data, MetaArray):
            raise RuntimeError(
                f"numpy: this tensor {data} is symbolic (made while the compiler traced), so it "
                "has no values. Fix: read values from the compiled function's outputs"
            )
        return data.get() if hasattr(data, "get") else data

    def item(self) -> float | int | bool:
        if isinstance(self.data, MetaArray):
            self.numpy()  # a symbolic tensor explains itself
        if self.data.size != 1:
            raise ValueError(
                f"item: tensor has {self.data.size} elements, shape {self.shape}. "
                "Fix: reduce it first (sum/mean) or index one element"
            )
        return self.data.reshape(()).item()

    def tolist(self) -> Any:
        return self.numpy().tolist()

    def detach(self) -> Tensor:
        """The same data, cut from the graph (no gradient flows through it)."""
        return self._call(ops.DETACH)

    def requires_grad_(self, requires_grad: bool = True) -> Tensor:
        if requires_grad and self.dtype.kind != "f":
            raise TypeError(f"requires_grad_: only float tensors can require grad ({self.dtype})")
        self.requires_grad = requires_grad
        return self

    def zero_grad(self) -> None:
        self.grad = None

    def __repr__(self) -> str:
        if isinstance(self.data, MetaArray):
            return f"Tensor(symbolic {self.shape}, dtype={self.dtype}, op={self.op_name})"
        grad = ", requires_grad=True" if self.requires_grad else ""
        op = f", op={self.op_name}" if self.op_name else ""
        body = np.array2string(self.numpy(), precision=4, separator=", ", threshold=20)
        return f"Tensor({body}, dtype={self.dtype}{grad}{op})"

    __hash__ = object.__hash__

    def __float__(self) -> float:
        return float(self.item())

    def __int__(self) -> int:
        return int(self.item())

    def __bool__(self) -> bool:
        if self.data.size != 1:
            raise ValueError(
                f"bool: a tensor of shape {self.shape} is ambiguous. "
                "Fix: use .any()/.all() via numpy(), or compare one element"
            )
        return bool(self.data.reshape(()).item())

    # -- constructors ------------------------------------------------------------------------
    @staticmethod
    def zeros(
        *shape: Any, dtype: Any = DEFAULT_FLOAT, requires_grad: bool = False, device: Any = None
    ) -> Tensor:
        data = np.zeros(_shape_arg(shape, "zeros"), dtype=dtype)
        return Tensor(data, requires_grad=requires_grad, dtype=dtype, device=device)

    @staticmethod
    def ones(
        *shape: Any, dtype: Any = DEFAULT_FLOAT, requires_grad: bool = False, device: Any = None
    ) -> Tensor:
        data = np.ones(_shape_arg(shape, "ones"), dtype=dtype)
        return Tensor(data, requires_grad=requires_grad, dtype=dtype, device=device)

    @staticmethod
    def full(
        shape: Sequence[int],
        value: Any,
        dtype: Any = None,
        requires_grad: bool = False,
        device: Any = None,
    ) -> Tensor:
        """`shape` filled with `value`; the dtype as PyTorch infers it from the value (bool,
        int64 for an int, float32 for a float) unless given."""
        if dtype is None:
            kind = np.asarray(value).dtype.kind
            dtype = {"b": np.bool_, "i": np.int64, "u": np.int64}.get(kind, DEFAULT_FLOAT)
        data = np.full(_shape_arg(tuple(shape), "full"), value, dtype=dtype)
        return Tensor(data, requires_grad=requires_grad, dtype=dtype, device=device)

    @staticmethod
    def randn(
        *shape: Any, dtype: Any = DEFAULT_FLOAT, requires_grad: bool = False, device: Any = None
    ) -> Tensor:
        """Standard normal samples from the global generator (`tinygrad_edu.manual_seed`)."""
        data = rng.generator().standard_normal(_shape_arg(shape, "randn")).astype(dtype)
        return Tensor(data, requires_grad=requires_grad, dtype=dtype, device=device)

    @staticmethod
    def rand(
        *shape: Any, dtype: Any = DEFAULT_FLOAT, requires_grad: bool = False, device: Any = None
    ) -> Tensor:
        """Uniform [0, 1) samples from the global generator."""
        data = rng.generator().random(_shape_arg(shape, "rand")).astype(dtype)
        return Tensor(data, requires_grad=requires_grad, dtype=dtype, device=device)

    @staticmethod
    def arange(
        start: float,
        stop: float | None = None,
        step: float = 1,
        dtype: Any = None,
        requires_grad: bool = False,
        device: Any = None,
    ) -> Tensor:
        """Like `torch.arange`: int64 for integer arguments, else float32."""
        if stop is None:
            start, stop = 0, start
        if step == 0:
            raise op_error(
                "arange",
                "step must be non-zero",
                (start, stop, step),
                "pass a positive or negative step",
            )
        data = np.arange(start, stop, step)
        return Tensor(data, requires_grad=requires_grad, dtype=dtype, device=device)

    @staticmethod
    def linspace(
        start: float, end: float, steps: int, dtype: Any = DEFAULT_FLOAT, device: Any = None
    ) -> Tensor:
        """`steps` evenly spaced values from start to end, both included (torch.linspace)."""
        if not _is_int(steps) or steps < 0:
            raise op_error(
                "linspace", f"steps must be a whole number >= 0, got {steps!r}", (), "pass 5"
            )
        return Tensor(np.linspace(start, end, int(steps)), dtype=dtype, device=device)

    @staticmethod
    def empty(
        *shape: Any, dtype: Any = DEFAULT_FLOAT, requires_grad: bool = False, device: Any = None
    ) -> Tensor:
        """A tensor of `shape` (zeros here: numpy memory is not left uninitialised, so no NaN
        or garbage leaks into a computation that reads it)."""
        return Tensor.zeros(*shape, dtype=dtype, requires_grad=requires_grad, device=device)

    @staticmethod
    def randint(
        low: int,
        high: int | None = None,
        size: Any = (),
        dtype: Any = np.int64,
        device: Any = None,
    ) -> Tensor:
        """Integers uniform in [low, high) (`randint(high, size)` from 0), from the global
        generator (`tinygrad_edu.manual_seed`), int64 as PyTorch's."""
        if high is None:
            low, high = 0, low
        if high <= low:
            raise op_error("randint", f"high {high} must exceed low {low}", size, "pass low < high")
        shape = _shape_arg(tuple(size) if not _is_int(size) else (size,), "randint")
        return Tensor(rng.generator().integers(low, high, shape), dtype=dtype, device=device)

    @staticmethod
    def zeros_like(t: Tensor) -> Tensor:
        return Tensor._make(np.zeros_like(t.data))

    @staticmethod
    def ones_like(t: Tensor) -> Tensor:
        return Tensor._make(np.ones_like(t.data))

    # -- applying ops --------------------------------------------------------------------------
    def _lift(self, other: Any) -> Tensor:
        """A constant operand as a tensor whose dtype does not change `self`'s dtype."""
        if isinstance(other, Tensor):
            return other
        if type(other) in (float, int) and self.dtype.kind == "f" and not tracing():
            return Tensor._make(np.array(other, dtype=self.dtype))  # fast path: a number
        if type(other) is int and self.dtype.kind in "iu" and not tracing():
            # a Python int keeps an integer tensor's dtype (int32 + 1 is int32), as in PyTorch
            return Tensor(np.asarray(other), dtype=self.dtype)
        arr = np.asarray(other)
        if arr.dtype.kind == "f" or (arr.dtype.kind in "iub" and self.dtype.kind == "f"):
            dtype = self.dtype if self.dtype.kind == "f" else DEFAULT_FLOAT
            if arr.ndim and arr.dtype == np.float64 and self.dtype != np.float64:
                dtype = DEFAULT_FLOAT
            return Tensor(arr, dtype=dtype)
        return Tensor(arr)

    def _call(self, op: Op, *others: Any, **attrs: Any) -> Tensor:
        if len(others) == 1:
            a, b = _zero_dim_promotion(self, self._lift(others[0]))
            return self.apply(op, (a, b), attrs)  # type: ignore[return-value]
        return self.apply(op, (self, *(self._lift(o) for o in others)), attrs)  # type: ignore

    def _rop(self, op: Op, other: Any) -> Tensor:
        a, b = _zero_dim_promotion(self._lift(other), self)
        return self.apply(op, (a, b), {})  # type: ignore[return-value]

    # -- elementwise -----------------------------------------------------------------------------
    def __add__(self, other: Any) -> Tensor:
        return self._call(ops.ADD, other)

    def __radd__(self, other: Any) -> Tensor:
        return self._rop(ops.ADD, other)

    def __sub__(self, other: Any) -> Tensor:
        return self._call(ops.SUB, other)

    def __rsub__(self, other: Any) -> Tensor:
        return self._rop(ops.SUB, other)

    def __mul__(self, other: Any) -> Tensor:
        return self._call(ops.MUL, other)

    def __rmul__(self, other: Any) -> Tensor:
        return self._rop(ops.MUL, other)

    def __truediv__(self, other: Any) -> Tensor:
        return self._call(ops.DIV, other)

    def __rtruediv__(self, other: Any) -> Tensor:
        return self._rop(ops.DIV, other)

    def __pow__(self, other: Any) -> Tensor:
        return self._call(ops.POW, other)

    def __rpow__(self, other: Any) -> Tensor:
        return self._rop(ops.POW, other)

    def __neg__(self) -> Tensor:
        return self._call(ops.NEG)

    def __matmul__(self, other: Any) -> Tensor:
        return self.matmul(other)

    def __rmatmul__(self, other: Any) -> Tensor:
        return self._lift(other).matmul(self)

    # Comparisons: bool tensors, no gradient.
    def __eq__(self, other: Any) -> Tensor:  # type: ignore[override]
        return self._call(ops.EQ, other)

    def __ne__(self, other: Any) -> Tensor:  # type: ignore[override]
        return self._call(ops.NE, other)

    def __lt__(self, other: Any) -> Tensor:
        return self._call(ops.LT, other)

    def __le__(self, other: Any) -> Tensor:
        return self._call(ops.LE, other)

    def __gt__(self, other: Any) -> Tensor:
        return self._call(ops.GT, other)

    def __ge__(self, other: Any) -> Tensor:
        return self._call(ops.GE, other)

    def exp(self) -> Tensor:
        return self._call(ops.EXP)

    def log(self) -> Tensor:
        return self._call(ops.LOG)

    def sqrt(self) -> Tensor:
        return self._call(ops.SQRT)

    def abs(self) -> Tensor:
        return self._call(ops.ABS)

    def sign(self) -> Tensor:
        return self._call(ops.SIGN)

    def floor(self) -> Tensor:
        return self._call(ops.FLOOR)

    def sin(self) -> Tensor:
        return self._call(ops.SIN)

    def cos(self) -> Tensor:
        return self._call(ops.COS)

    def asin(self) -> Tensor:
        return self._call(ops.ASIN)

    def acos(self) -> Tensor:
        return self._call(ops.ACOS)

    def atan(self) -> Tensor:
        return self._call(ops.ATAN)

    def floor_divide(self, other: Any) -> Tensor:
        """`self // other`, rounded toward minus infinity as PyTorch's and Python's: in the
        promoted dtype (integers stay integers, through float64)."""
        other = self._lift(other)
        wide = self._integer_quotient(other, "floor_divide")
        if wide is not None:  # back in the operands' integer dtype (int32 // 2 is int32)
            integer = np.result_type(self.dtype, other.dtype)
            return wide.floor().cast(integer if integer.kind in "iu" else np.int64)
        q = (self / other).floor()
        # a finite x over an infinite divisor: 0, or -1 when the signs differ (-2 // inf is
        # -1 in Python and PyTorch; floor(-0.0) alone would give -0)
        opposite = (self < 0.0).logical_xor(other < 0.0).logical_and(self != 0.0)
        q = where(other.isinf().logical_and(self.isfinite()).logical_and(opposite), -1.0, q)
        return where(self.isinf().logical_and(other.isfinite()), math.nan, q)  # as Python's

    def _integer_quotient(self, other: Tensor, op: str) -> Tensor | None:
        """self / other in float64 when both are integers (None otherwise): exact for
        integers below 2^53, for rounding to an integer quotient. Raises on a zero divisor,
        as PyTorch's integer division does."""
        if np.result_type(self.dtype, other.dtype).kind not in "iu":
            return None
        if not tracing() and not isinstance(other.data, MetaArray) and (other.numpy() == 0).any():
            raise op_error(
                op,
                "integer division by zero",
                f"{self.shape} // {other.shape}",
                "make the divisor nonzero, or divide floats (inf, as PyTorch's)",
                ZeroDivisionError,
            )
        return self.cast(np.float64) / other.cast(np.float64)

    def remainder(self, other: Any) -> Tensor:
        """`self % other` with the divisor's sign, as PyTorch's and Python's:
        self - floor_divide(self, other) * other."""
        other = self._lift(other)
        out = self - self.floor_divide(other) * other
        if out.dtype.kind != "f":
            return out
        # an infinite divisor: x itself when the signs agree (or x is 0), else the divisor
        same = (self < 0.0).logical_xor(other < 0.0).logical_not().logical_or(self == 0.0)
        by_inf = other.isinf().logical_and(self.isfinite())
        return where(by_inf, where(same, self, other), out)

    def __floordiv__(self, other: Any) -> Tensor:
        return self.floor_divide(other)

    def __rfloordiv__(self, other: Any) -> Tensor:
        return self._lift(other).floor_divide(self)

    def __mod__(self, other: Any) -> Tensor:
        return self.remainder(other)

    def __rmod__(self, other: Any) -> Tensor:
        return self._lift(other).remainder(self)

    def relu(self) -> Tensor:
        return self._call(ops.RELU)

    def sigmoid(self) -> Tensor:
        return self._call(ops.SIGMOID)

    def tanh(self) -> Tensor:
        return self._call(ops.TANH)

    def leaky_relu(self, negative_slope: float = 0.01) -> Tensor:
        return self._call(ops.LEAKY_RELU, slope=float(negative_slope))

    def maximum(self, other: Any) -> Tensor:
        return self._call(ops.MAXIMUM, other)

    def minimum(self, other: Any) -> Tensor:
        return self._call(ops.MINIMUM, other)

    def where(self, condition: Any, other: Any) -> Tensor:
        """`condition ? self : other` (PyTorch's `Tensor.where`)."""
        return where(condition, self, other)

    def cast(self, dtype: Any) -> Tensor:
        dtype = np.dtype(dtype)
        if dtype == self.dtype:
            return self
        if dtype.kind not in "fc" and self.requires_grad:
            # integers and bools carry no gradient (PyTorch's cast detaches them too): a
            # gradient passed through x.long() would be counted as if the cast were identity
            return self.detach()._call(ops.CAST, dtype=dtype.name)
        return self._call(ops.CAST, dtype=dtype.name)

    def float(self) -> Tensor:
        return self.cast(np.float32)

    def double(self) -> Tensor:
        return self.cast(np.float64)

    # -- reductions ------------------------------------------------------------------------------
    def _axes(self, axis: Any, op: str) -> tuple[int, ...]:
        if axis is None:
            return tuple(range(self.ndim))
        if (
            not isinstance(axis, (int, np.integer, tuple, list))
            or isinstance(axis, bool)
            or (
                isinstance(axis, (tuple, list))
                and not all(isinstance(a, (int, np.integer)) for a in axis)
            )
        ):
            raise op_error(
                op,
                f"axis must be an int or a tuple of ints, got {axis!r}",
                self.shape,
                "pass axis=1 or axis=(0, 2)",
            )
        items = (axis,) if isinstance(axis, (int, np.integer)) else tuple(axis)
        if not items:  # PyTorch: an empty dim list reduces over every dim
            return tuple(range(self.ndim))
        if len(set(int(a) % max(self.ndim, 1) for a in items)) != len(items):
            raise op_error(
                op,
                f"axis {tuple(items)} names a dim more than once",
                self.shape,
                "list each axis once",
            )
        if self.ndim == 0:  # like PyTorch, a 0-d tensor accepts dim 0 or -1
            if any(a not in (0, -1) for a in items):
                raise op_error(
                    op,
                    f"axis {axis} is out of range for a 0-d input",
                    (),
                    "use axis 0, -1 or None",
                    OpIndexError,
                )
            return ()
        out = []
        for a in items:
            if not -self.ndim <= a < max(self.ndim, 1):
                raise op_error(
                    op,
                    f"axis {a} is out of range for {self.ndim}-D input",
                    self.shape,
                    f"use an axis in [-{self.ndim}, {self.ndim - 1}]",
                    OpIndexError,
                )
            out.append(int(a) % max(self.ndim, 1))
        return tuple(sorted(set(out)))

    def _dim(self, d: Any, op: str, extra: int = 0) -> int:
        """One dim index, negative allowed, checked against ndim (+ extra for unsqueeze)."""
        n = self.ndim + extra
        if not isinstance(d, (int, np.integer)) or isinstance(d, bool):
            raise op_error(op, f"dim must be an int, got {d!r}", self.shape, "pass an int")
        if not -max(n, 1) <= d < max(n, 1):
            raise op_error(
                op,
                f"dim {d} is out of range for {n}-D",
                self.shape,
                f"use a dim in [-{max(n, 1)}, {max(n, 1) - 1}]",
                OpIndexError,
            )
        return int(d) % max(n, 1)

    def sum(
        self, axis: Any = None, keepdim: bool = False, *, dim: Any = None, dtype: Any = None
    ) -> Tensor:
        """The sum over `axis` (all dims when None); `dtype` casts first, as PyTorch's."""
        source = self if dtype is None else self.cast(dtype)
        axes = source._axes(_axis(axis, dim), "sum")
        return source._call(ops.SUM, axis=axes, keepdim=keepdim)

    def mean(self, axis: Any = None, keepdim: bool = False, *, dim: Any = None) -> Tensor:
        axes = self._axes(_axis(axis, dim), "mean")
        count = int(np.prod([self.shape[a] for a in axes])) if axes else 1
        return self.sum(axes, keepdim) / count

    def var(
        self,
        axis: Any = None,
        unbiased: bool | None = None,
        keepdim: bool = False,
        *,
        dim: Any = None,
        correction: float | None = None,
    ) -> Tensor:
        """Variance, PyTorch's signature: Bessel's correction by default; `correction=0` or
        `unbiased=False` for the biased one (the second positional argument is `unbiased`)."""
        correction = _correction(unbiased, correction, "var")
        axes = self._axes(_axis(axis, dim), "var")
        count = int(np.prod([self.shape[a] for a in axes])) if axes else 1
        centered = self - self.mean(axes, keepdim=True)
        # count <= correction: inf or nan, as PyTorch gives (not a silently clamped divisor)
        denom = count - correction if count > correction else 0.0
        with np.errstate(divide="ignore", invalid="ignore"):
            return (centered * centered).sum(axes, keepdim) / denom

    def std(
        self,
        axis: Any = None,
        unbiased: bool | None = None,
        keepdim: bool = False,
        *,
        dim: Any = None,
        correction: float | None = None,
    ) -> Tensor:
        """Standard deviation: the square root of `var` with the same arguments. Where the
        variance is 0 the gradient is 0, as PyTorch's (sqrt's derivative there is infinite:
        inf * 0 made it NaN); the square root is taken of 1 there and then dropped."""
        var = self.var(axis, unbiased, keepdim, dim=dim, correction=correction)
        zero = var == 0
        return where(zero, 0.0, where(zero, 1.0, var).sqrt())

    # max / min / amax / amin, with PyTorch's (values, indices) form: `method_forms`

    def argmax(
        self, axis: int | None = None, keepdim: bool = False, *, dim: int | None = None
    ) -> Tensor:
        """Index of the largest value (flattened when axis is None); no gradient."""
        axis = _axis(axis, dim)
        if self.ndim == 0:  # PyTorch: the one element's index, 0 (a dim must be 0 or -1)
            self._axes(axis, "argmax")
            return Tensor._make(np.zeros((), np.int64))
        ax = None if axis is None else self._axes(axis, "argmax")[0]
        if (self.size if ax is None else self.shape[ax]) == 0:
            raise op_error(
                "argmax",
                "cannot take the index of the largest of no values",
                self.shape,
                "reduce over a non-empty dim",
                OpIndexError,  # PyTorch: IndexError
            )
        return self._call(ops.ARGMAX, axis=ax, keepdim=keepdim)

    def argmin(
        self, axis: int | None = None, keepdim: bool = False, *, dim: int | None = None
    ) -> Tensor:
        """Index of the smallest value (the first one on ties; a NaN counts as smallest,
        as in PyTorch); no gradient."""
        source = self.cast(np.int64) if self.dtype == np.bool_ else self
        return (-source).argmax(axis, keepdim, dim=dim)

    def logsumexp(self, axis: Any = None, keepdim: bool = False, *, dim: Any = None) -> Tensor:
        """log(sum(exp(x))) computed stably by shifting by the (constant) max."""
        axes = self._axes(_axis(axis, dim), "logsumexp")
        if any(self.shape[a] == 0 for a in axes):  # log of an empty sum: -inf, as PyTorch's
            # from the (empty, 0) sum, so backward() reaches the input (a zero gradient)
            x = self if self.dtype.kind == "f" else self.cast(np.float32)
            return x.sum(axes, keepdim=keepdim) - np.inf
        shift = self.detach().amax(axes, keepdim=True)
        shift = shift.where(shift.abs() != np.inf, 0.0)  # all -inf (or an inf): no shift
        out = (self - shift).exp().sum(axes, keepdim=True).log() + shift
        return out if keepdim else out.reshape(_drop_axes(out.shape, axes))

    # -- movement --------------------------------------------------------------------------------
    def reshape(self, *shape: Any) -> Tensor:
        target = _shape_arg(shape, "reshape", allow_minus_one=True)
        if target.count(-1) > 1:
            raise op_error(
                "reshape",
                "only one dimension can be -1",
                target,
                "give every other dimension explicitly",
            )
        if -1 in target:
            known = int(np.prod([n for n in target if n != -1]))
            if known == 0 or self.size % known:
                raise op_error(
                    "reshape",
                    f"cannot infer -1 in {target} for {self.size} elements",
                    self.shape,
                    "make the sizes divide evenly",
                )
            target = tuple(self.size // known if n == -1 else n for n in target)
        if target == self.shape:
            return self
        return self._call(ops.RESHAPE, shape=target)

    view = reshape

    def permute(self, *dims: Any) -> Tensor:
        order = _shape_arg(dims, "permute", allow_minus_one=True, allow_negative=True)
        norm = tuple(self._dim(d, "permute") for d in order) if self.ndim else ()
        if sorted(norm) != list(range(self.ndim)):
            raise op_error(
                "permute",
                f"dims {order} are not a permutation of 0..{self.ndim - 1}",
                self.shape,
                "list every axis exactly once",
            )
        if norm == tuple(range(self.ndim)):
            return self
        return self._call(ops.PERMUTE, dims=norm)

    def transpose(self, dim0: int = -2, dim1: int = -1) -> Tensor:
        if self.ndim < 2:
            return self
        order = list(range(self.ndim))
        a, b = self._dim(dim0, "transpose"), self._dim(dim1, "transpose")
        order[a], order[b] = order[b], order[a]
        return self.permute(tuple(order))

    @property
    def T(self) -> Tensor:  # noqa: N802 (PyTorch's name)
        return self.permute(tuple(reversed(range(self.ndim))))

    def flatten(self, start_dim: int = 0, end_dim: int = -1) -> Tensor:
        if self.ndim == 0:
            return self.reshape(1)
        s, e = self._dim(start_dim, "flatten"), self._dim(end_dim, "flatten")
        if s > e:
            raise op_error(
                "flatten",
                f"start_dim {start_dim} comes after end_dim {end_dim}",
                self.shape,
                "pass start_dim <= end_dim",
            )
        merged = int(np.prod(self.shape[s : e + 1]))
        return self.reshape(self.shape[:s] + (merged,) + self.shape[e + 1 :])

    def unsqueeze(self, dim: int) -> Tensor:
        d = self._dim(dim, "unsqueeze", extra=1)
        return self.reshape(self.shape[:d] + (1,) + self.shape[d:])

    def squeeze(self, dim: int | None = None) -> Tensor:
        if dim is None:
            return self.reshape(tuple(n for n in self.shape if n != 1))
        drop = {d for d in self._axes(dim, "squeeze") if self.shape[d] == 1}
        return self.reshape(tuple(n for i, n in enumerate(self.shape) if i not in drop))

    def expand(self, *shape: Any) -> Tensor:
        target = _shape_arg(shape, "expand", allow_minus_one=True)
        lead = len(target) - self.ndim
        if lead < 0 or any(n == -1 for n in target[:lead]):
            raise op_error(
                "expand",
                f"cannot expand {self.ndim}-D to {target}",
                self.shape,
                "give at least as many dims, and -1 only for existing dims",
            )
        target = tuple(
            self.shape[i - lead] if n == -1 and i >= lead else n for i, n in enumerate(target)
        )
        if target == self.shape:
            return self
        return self._call(ops.EXPAND, shape=target)

    def pad(self, pad: Sequence[Any], mode: str = "constant", value: float | None = None) -> Tensor:
        """torch.nn.functional.pad: `pad` is PyTorch's flat form, last dim first
        (`(left, right, top, bottom, ...)`), or numpy's one (before, after) pair per dim;
        modes 'constant' (negative pads crop), 'reflect', 'replicate', 'circular'."""
        from . import image

        return image.pad(self, pad, mode, value)

    def __getitem__(self, index: Any) -> Tensor:
        """PyTorch's indexing: ints, slices, None, ..., int and bool arrays (Tensors, lists or
        numpy arrays). Where it differs from numpy, PyTorch's rule wins: an int (or a 0-d int
        array) selects first, like a slice would, and is not an advanced index, so
        `x[1, :, idx]` on (2, 3, 4, 5) is (3, 2, 5), not numpy's (2, 3, 5)."""
        basic, advanced = _split_index(_normalize_index(index))
        out = self._index(basic)
        return out if advanced is None else out._index(advanced)

    def _index(self, idx: tuple[Any, ...]) -> Tensor:
        try:
            return self._call(ops.GETITEM, index=idx)
        except IndexError as e:
            raise op_error(
                "getitem", str(e), self.shape, "index within the tensor's shape", OpIndexError
            ) from None

    def index_put(self, shape: Sequence[int], index: Any) -> Tensor:
        """Zeros of `shape` with self written (added, for repeated indices) at `index`.
        The adjoint of indexing; used by its VJP."""
        return self._call(ops.INDEX_PUT, shape=tuple(shape), index=_normalize_index(index))

    def one_hot(self, num_classes: int, dtype: Any = DEFAULT_FLOAT) -> Tensor:
        """Integer labels (...,) -> (..., num_classes) of 0/1 (no gradient)."""
        if self.dtype.kind not in "iu":
            raise op_error(
                "one_hot",
                f"labels must be integers, got {self.dtype}",
                self.shape,
                "pass labels.astype(int)",
            )
        if tracing():  # the range is checked on each call's labels, as eagerly
            record_input_check(self, lambda a: ops.check_one_hot_labels(a, int(num_classes)))
        return self._call(ops.ONE_HOT, num_classes=int(num_classes), dtype=np.dtype(dtype).name)

    def contiguous(self) -> Tensor:
        return self

    # -- matmul, linear -----------------------------------------------------------------------
    def matmul(self, other: Any) -> Tensor:
        """`self @ other` with numpy/PyTorch semantics, 1-D operands included."""
        other = self._lift(other)
        if self.ndim == 0 or other.ndim == 0:
            raise op_error(
                "matmul",
                "operands must be at least 1-D",
                f"{self.shape} @ {other.shape}",
                "use * for scalar products",
            )
        a = self.unsqueeze(0) if self.ndim == 1 else self
        b = other.unsqueeze(-1) if other.ndim == 1 else other
        out = a.apply(ops.MATMUL, (a, b), {})
        if self.ndim == 1:
            out = out.squeeze(-2)
        if other.ndim == 1:
            out = out.squeeze(-1)
        return out  # type: ignore[return-value]

    def linear(self, weight: Tensor, bias: Tensor | None = None) -> Tensor:
        """`self @ weight.T + bias`, weight in PyTorch layout (out_features, in_features)."""
        if weight.ndim != 2 or self.shape[-1:] != weight.shape[1:]:
            raise op_error(
                "linear",
                "input's last dim must equal weight's in_features",
                f"input {self.shape}, weight {weight.shape}",
                "weight is (out_features, in_features); flatten the input first?",
            )
        bias_shape = tuple(bias.shape if hasattr(bias, "shape") else np.shape(bias))
        if bias is not None and bias_shape not in ((), (1,), weight.shape[:1]):
            raise op_error(
                "linear",
                "bias must have out_features elements",
                f"weight {weight.shape}, bias {bias_shape}",
                f"pass a bias of shape ({weight.shape[0]},)",
            )
        out = self @ weight.T
        return out if bias is None else out + bias

    # -- convolution and pooling ---------------------------------------------------------------
    def conv2d(
        self,
        weight: Tensor,
        bias: Tensor | None = None,
        stride: Any = 1,
        padding: Any = 0,
        dilation: Any = 1,
        groups: int = 1,
    ) -> Tensor:
        """2-D cross-correlation, NCHW input, weight (out, in/groups, kh, kw), PyTorch rules.
        `padding` may also be "valid" (none) or "same" (stride 1; the odd extra row/column
        goes after, as PyTorch pads). An unbatched (C, H, W) input gives (O, H', W')."""
        if self.ndim == 3:
            return self.unsqueeze(0).conv2d(weight, bias, stride, padding, dilation, groups)[0]
        x = self
        if isinstance(padding, str):
            x, padding = self._string_padding(weight, padding, stride, dilation)
        conv = _conv_attrs(stride, padding, dilation, groups, "conv2d")
        if not isinstance(weight, Tensor):
            raise TypeError(f"conv2d: weight must be a Tensor, got {type(weight).__name__}")
        out = x._call(ops.CONV2D, weight, **conv)
        if bias is None:
            return out
        if bias.shape != (weight.shape[0],):
            raise op_error(
                "conv2d",
                "bias must have one entry per output channel",
                f"bias {bias.shape}, weight {weight.shape}",
                f"pass a bias of shape ({weight.shape[0]},)",
            )
        return out + bias.reshape(1, -1, 1, 1)

    def conv2d_grad_input(
        self,
        weight: Tensor,
        x_shape: Sequence[int],
        stride: Pair,
        padding: Pair,
        dilation: Pair,
        groups: int,
    ) -> Tensor:
        """The input gradient of conv2d for output gradient `self` (a transposed conv)."""
        return self._call(
            ops.CONV2D_GRAD_INPUT,
            weight,
            x_shape=tuple(x_shape),
            stride=stride,
            padding=padding,
            dilation=dilation,
            groups=groups,
        )

    def conv2d_grad_weight(
        self,
        grad_out: Tensor,
        w_shape: Sequence[int],
        stride: Pair,
        padding: Pair,
        dilation: Pair,
        groups: int,
    ) -> Tensor:
        """The weight gradient of conv2d for input `self` and output gradient `grad_out`."""
        return self._call(
            ops.CONV2D_GRAD_WEIGHT,
            grad_out,
            w_shape=tuple(w_shape),
            stride=stride,
            padding=padding,
            dilation=dilation,
            groups=groups,
        )

    def conv_transpose2d(
        self,
        weight: Tensor,
        bias: Tensor | None = None,
        stride: Any = 1,
        padding: Any = 0,
        output_padding: Any = 0,
        groups: int = 1,
        dilation: Any = 1,
    ) -> Tensor:
        """Transposed convolution (PyTorch's conv_transpose2d), weight (C_in, C_out/groups,
        kH, kW): conv2d's input gradient given an output shape (`tinygrad_edu.image`)."""
        from . import image

        return image.conv_transpose2d(
            self, weight, bias, stride, padding, output_padding, groups, dilation
        )

    def _string_padding(
        self, weight: Tensor, padding: str, stride: Any, dilation: Any
    ) -> tuple[Tensor, Pair]:
        if padding == "valid":
            return self, (0, 0)
        if padding != "same":
            raise op_error(
                "conv2d",
                f"padding must be an int, a pair, 'valid' or 'same', got {padding!r}",
                self.shape,
                "pass padding=1 or padding='same'",
            )
        if _pair(stride, "stride", "conv2d") != (1, 1):
            raise op_error(
                "conv2d",
                "padding='same' needs stride 1",
                self.shape,
                "use an explicit padding with strided convolutions",
            )
        dil = _pair(dilation, "dilation", "conv2d")
        totals = [dil[i] * (weight.shape[2 + i] - 1) for i in range(2)]
        if all(t % 2 == 0 for t in totals):
            return self, (totals[0] // 2, totals[1] // 2)
        pads = (
            totals[1] // 2,
            totals[1] - totals[1] // 2,
            totals[0] // 2,
            totals[0] - totals[0] // 2,
        )
        return self.pad(pads), (0, 0)

    def max_pool2d(
        self,
        kernel_size: Any,
        stride: Any = None,
        padding: Any = 0,
        dilation: Any = 1,
        ceil_mode: bool = False,
        return_indices: bool = False,
    ) -> Any:
        """Max over (possibly overlapping) windows; stride defaults to kernel_size. PyTorch's
        arguments: `ceil_mode`, and `return_indices` for (values, int64 flat indices)."""
        from . import image

        if return_indices:
            return image.max_pool2d_with_indices(
                self, kernel_size, stride, padding, dilation, ceil_mode
            )
        return image.max_pool2d(self, kernel_size, stride, padding, dilation, ceil_mode)

    def avg_pool2d(
        self,
        kernel_size: Any,
        stride: Any = None,
        padding: Any = 0,
        ceil_mode: bool = False,
        count_include_pad: bool = True,
        divisor_override: int | None = None,
    ) -> Tensor:
        """Mean over windows, PyTorch's arguments: zero padding counted unless
        `count_include_pad=False`; `ceil_mode`; `divisor_override`."""
        from . import image

        return image.avg_pool2d(
            self, kernel_size, stride, padding, ceil_mode, count_include_pad, divisor_override
        )

    def adaptive_avg_pool2d(self, output_size: Any) -> Tensor:
        """PyTorch's adaptive average pooling: window i spans [floor(i*H/O), ceil((i+1)*H/O));
        an output size of None keeps the input's size on that side."""
        if isinstance(output_size, (tuple, list)) and len(output_size) == 2:
            output_size = tuple(
                self.shape[-2 + i] if s is None else s for i, s in enumerate(output_size)
            )
        oh, ow = _pair(output_size, "output_size", "adaptive_avg_pool2d")
        if self.ndim == 3:
            return self.unsqueeze(0).adaptive_avg_pool2d((oh, ow)).squeeze(0)
        if self.ndim != 4:
            raise op_error(
                "adaptive_avg_pool2d",
                "input must be (N, C, H, W) or (C, H, W)",
                self.shape,
                "add a batch dim with unsqueeze(0)",
            )
        if oh < 1 or ow < 1:
            raise op_error(
                "adaptive_avg_pool2d",
                f"output_size must be >= 1, got {(oh, ow)}",
                self.shape,
                "pass a positive output size such as (6, 6)",
            )
        h, w = self.shape[-2:]
        if (h, w) == (oh, ow):
            return self  # every window is one pixel
        if h % oh == 0 and w % ow == 0:
            return self.avg_pool2d((h // oh, w // ow))
        rows = []
        for i in range(oh):
            r0, r1 = (i * h) // oh, -((-(i + 1) * h) // oh)
            cols = []
            for j in range(ow):
                c0, c1 = (j * w) // ow, -((-(j + 1) * w) // ow)
                cols.append(self[:, :, r0:r1, c0:c1].mean(axis=(2, 3), keepdim=True))
            rows.append(cat(cols, axis=3))
        return cat(rows, axis=2)

    def unfold2d(
        self,
        kernel: Sequence[int],
        stride: Pair,
        padding: Pair,
        dilation: Pair,
        pad_value: float = 0.0,
    ) -> Tensor:
        """Every window as a (N, C, KH, KW, OH, OW) tensor (im2col without the reshape)."""
        return self._call(
            ops.UNFOLD2D,
            kernel=tuple(kernel),
            stride=stride,
            padding=padding,
            dilation=dilation,
            pad_value=float(pad_value),
        )

    def fold2d(self, x_shape: Sequence[int], stride: Pair, padding: Pair, dilation: Pair) -> Tensor:
        """Adjoint of `unfold2d`: add windows back into an (N, C, H, W) tensor."""
        return self._call(
            ops.FOLD2D, x_shape=tuple(x_shape), stride=stride, padding=padding, dilation=dilation
        )

    def local_response_norm(
        self, size: int, alpha: float = 1e-4, beta: float = 0.75, k: float = 1.0
    ) -> Tensor:
        """torch.nn.functional.local_response_norm: b = a / (k + alpha/size * sum a^2)^beta,
        the sum over `size` neighbouring channels (zero-padded at the ends)."""
        if self.ndim < 3:
            raise op_error(
                "local_response_norm",
                "input must have a channel dim (N, C, ...)",
                self.shape,
                "pass at least a 3-D tensor",
            )
        if not _is_int(size) or size < 1:
            raise op_error(
                "local_response_norm",
                f"size must be >= 1, got {size}",
                self.shape,
                "use an odd window such as 5",
            )
        channels = self.shape[1]
        sq = self * self
        pads = [(0, 0)] * self.ndim
        pads[1] = (size // 2, (size - 1) // 2)
        sq = sq.pad(pads)
        window = sq[:, 0:channels]
        for offset in range(1, size):
            window = window + sq[:, offset : offset + channels]
        return self / (window * (alpha / size) + k) ** beta

    # -- activations and losses ----------------------------------------------------------------
    def softmax(self, axis: int = -1, *, dim: int | None = None) -> Tensor:
        axis = _axis(axis if dim is None else None, dim)
        axes = self._axes(axis, "softmax")
        if self.size == 0:
            return self * 1.0
        shift = self.detach().max(axes, keepdim=True)
        e = (self - shift).exp()
        return e / e.sum(axes, keepdim=True)

    def log_softmax(self, axis: int = -1, *, dim: int | None = None) -> Tensor:
        axis = _axis(axis if dim is None else None, dim)
        axes = self._axes(axis, "log_softmax")
        if self.size == 0:
            return self * 1.0
        return self - self.logsumexp(axes, keepdim=True)

    def cross_entropy(
        self,
        target: Any,
        weight: Tensor | None = None,
        ignore_index: int = -100,
        reduction: str = "mean",
        label_smoothing: float = 0.0,
    ) -> Tensor:
        """`F.cross_entropy` on logits self ((C,), (N, C) or (N, C, d...)): integer class
        targets or class probabilities; see `losses.cross_entropy`."""
        from . import losses

        return losses.cross_entropy(self, target, weight, ignore_index, reduction, label_smoothing)

    def nll_loss(
        self,
        target: Any,
        weight: Tensor | None = None,
        ignore_index: int = -100,
        reduction: str = "mean",
    ) -> Tensor:
        """`F.nll_loss` on log-probabilities self; see `losses.nll_loss`."""
        from . import losses

        return losses.nll_loss(self, target, weight, ignore_index, reduction)

    def binary_cross_entropy(
        self, target: Any, weight: Any = None, reduction: str = "mean"
    ) -> Tensor:
        """BCE of probabilities self against targets in [0, 1]; logs clamped at -100 as
        PyTorch does, so p = 0 or 1 gives a finite loss."""
        from . import losses

        return losses.binary_cross_entropy(self, target, weight, reduction)

    def binary_cross_entropy_with_logits(
        self, target: Any, weight: Any = None, reduction: str = "mean", pos_weight: Any = None
    ) -> Tensor:
        """BCE on logits through logsigmoid (stable; gradient sigmoid(x) - t)."""
        from . import losses

        return losses.binary_cross_entropy_with_logits(self, target, weight, reduction, pos_weight)

    def mse_loss(self, target: Any, reduction: str = "mean") -> Tensor:
        from . import losses

        return losses.mse_loss(self, target, reduction)

    def dropout(self, p: float = 0.5, training: bool = True) -> Tensor:
        """Inverted dropout: zero each element with probability p, scale the rest by 1/(1-p).
        Draws from the global generator (`tinygrad_edu.manual_seed`). Identity when not
        training or p == 0."""
        return self._dropout(p, training, "dropout", self.shape)

    def _dropout(self, p: float, training: bool, op: str, mask_shape: tuple[int, ...]) -> Tensor:
        """Dropout with one draw per element of `mask_shape` (broadcast to self's shape:
        (N, C, 1, 1) drops whole channels)."""
        if self.dtype.kind != "f":
            raise op_error(
                op,
                f"input must be floating point, got {self.dtype}",
                self.shape,
                "cast with .float() first",
            )
        if (
            not isinstance(p, (int, float, np.floating))
            or isinstance(p, bool)
            or not 0.0 <= p <= 1.0
        ):
            raise op_error(
                op,
                f"p must be in [0, 1], got {p}",
                self.shape,
                "pass a probability such as 0.5",
            )
        if not training or p == 0.0:
            return self
        if p == 1.0:
            return self * 0.0
        attrs = dict(shape=tuple(mask_shape), p=float(p), dtype=self.dtype.name)
        return self * self.apply(ops.BERNOULLI, (), attrs)

    # -- PyTorch's shape and dtype conveniences -----------------------------------------------
    def view_as(self, other: Tensor) -> Tensor:
        """`self.reshape(other.shape)` (PyTorch's `view_as`; views and copies are one here)."""
        return self.reshape(_other(other, "view_as").shape)

    def reshape_as(self, other: Tensor) -> Tensor:
        return self.reshape(_other(other, "reshape_as").shape)

    def expand_as(self, other: Tensor) -> Tensor:
        return self.expand(_other(other, "expand_as").shape)

    def type_as(self, other: Tensor) -> Tensor:
        """This tensor cast to `other`'s dtype (a no-op when they already agree)."""
        return self.cast(_other(other, "type_as").dtype)

    def _new(self, op: str, shape: Any, fill: Any, dtype: Any, requires_grad: bool) -> Tensor:
        dtype = self.dtype if dtype is None else np.dtype(dtype)
        data = np.full(_shape_arg(shape, op), fill, dtype=dtype)
        return Tensor(data, requires_grad=requires_grad, dtype=dtype, device=self.device)

    def new_zeros(self, *size: Any, dtype: Any = None, requires_grad: bool = False) -> Tensor:
        """Zeros of shape `size`, with this tensor's dtype and device unless `dtype` is given."""
        return self._new("new_zeros", size, 0, dtype, requires_grad)

    def new_ones(self, *size: Any, dtype: Any = None, requires_grad: bool = False) -> Tensor:
        return self._new("new_ones", size, 1, dtype, requires_grad)

    def new_full(
        self, size: Sequence[int], fill_value: Any, dtype: Any = None, requires_grad: bool = False
    ) -> Tensor:
        return self._new("new_full", (tuple(size),), fill_value, dtype, requires_grad)

    def new_empty(self, *size: Any, dtype: Any = None, requires_grad: bool = False) -> Tensor:
        """Like `new_zeros` (the memory is zeroed: no uninitialised values leak out)."""
        return self._new("new_empty", size, 0, dtype, requires_grad)

    def new_tensor(self, data: Any, dtype: Any = None, requires_grad: bool = False) -> Tensor:
        """A new leaf holding a copy of `data`, in this tensor's dtype and device by default."""
        dtype = self.dtype if dtype is None else np.dtype(dtype)
        array = np.array(data.numpy() if isinstance(data, Tensor) else data, dtype=dtype)
        return Tensor(array, requires_grad=requires_grad, dtype=dtype, device=self.device)

    # -- clamping and clamped activations (composites: eager, compiled and CUDA for free) ----
    def clamp(self, min: Any = None, max: Any = None) -> Tensor:
        """`torch.clamp`: min(max(self, min), max); `min`/`max` are numbers, tensors or None.
        Where min > max every element becomes max, and NaN stays NaN, as in PyTorch. The
        gradient flows to self where min <= self <= max (ends included) and to a tensor
        bound where it was chosen."""
        if min is None and max is None:
            raise op_error(
                "clamp",
                "at least one of min and max must be given",
                self.shape,
                "pass clamp(min=0.0), clamp(max=6.0) or both",
            )
        _check_bound(min, "min", self)
        _check_bound(max, "max", self)
        # NaN fails both comparisons: it stays NaN (the detached copy) and gets no gradient
        out = self
        if min is not None:
            out = where(out >= min, out, where(out < min, min, out.detach()))
        if max is not None:
            out = where(out <= max, out, where(out > max, max, out.detach()))
        for bound in (min, max):  # a NaN bound gives NaN, as PyTorch's
            if isinstance(bound, Tensor) and bound.dtype.kind == "f":
                out = where(bound.isnan(), bound, out)
            elif isinstance(bound, float) and bound != bound:  # NaN
                out = out * math.nan
        return out

    clip = clamp

    def hardtanh(self, min_val: float = -1.0, max_val: float = 1.0) -> Tensor:
        """`F.hardtanh`: clamp to [min_val, max_val]; unlike clamp, the gradient is zero at
        the two ends themselves (PyTorch's rule, which ReLU6 inherits)."""
        if not min_val <= max_val:
            raise op_error(
                "hardtanh",
                f"min_val {min_val} is greater than max_val {max_val}",
                self.shape,
                "pass min_val <= max_val",
            )
        # the gradient is zeroed only where x <= min_val or x >= max_val: NaN keeps it
        lo, hi = min_val, max_val
        if self.dtype.kind in "iu" and float(lo).is_integer() and float(hi).is_integer():
            # an integer input stays integer (torch's relu6 of an int64 tensor is int64)
            lo, hi = (Tensor(np.asarray(int(v), self.dtype)) for v in (min_val, max_val))
        return where(self <= lo, lo, where(self >= hi, hi, self))

    def relu6(self) -> Tensor:
        """min(max(x, 0), 6), PyTorch's `F.relu6` (hardtanh(0, 6): gradient 0 at 0 and 6)."""
        return self.hardtanh(0.0, 6.0)

    def reciprocal(self) -> Tensor:
        return 1.0 / self

    # -- activations torchvision models use (composites of primitives, erf the one new one) ---
    def erf(self) -> Tensor:
        """The error function, 2/sqrt(pi) * integral_0^x exp(-t^2) dt."""
        return self._call(ops.ERF)

    def log1p(self) -> Tensor:
        """log(1 + x), accurate for tiny x: log(w) * x / (w - 1) with w = 1 + x rounded
        cancels w's rounding error (where w == 1, x itself; where w - 1 == x, no rounding
        happened: log(w), which also keeps log1p(inf) = inf)."""
        w = self + 1.0
        tiny = w == 1.0
        unrounded = (w - 1.0 == self).logical_and(tiny.logical_not())
        # each branch sees safe operands, so the unused ones give no NaN in the gradient
        d = where(tiny.logical_or(unrounded), 1.0, w - 1.0)
        x = where(unrounded, 1.0, self)
        return where(tiny, self, where(unrounded, w.log(), w.log() * x / d))

    def gelu(self, approximate: str = "none") -> Tensor:
        """x * Phi(x): with erf (approximate="none") or PyTorch's tanh approximation."""
        if approximate == "none":
            return self * 0.5 * ((self * _SQRT_HALF).erf() + 1.0)
        if approximate == "tanh":
            inner = (self + self * self * self * 0.044715) * _SQRT_TWO_OVER_PI
            return self * 0.5 * (inner.tanh() + 1.0)
        raise op_error(
            "gelu",
            f"approximate must be 'none' or 'tanh', got {approximate!r}",
            self.shape,
            "pass approximate='none' (exact) or 'tanh'",
        )

    def silu(self) -> Tensor:
        """x * sigmoid(x) (also called swish)."""
        return self * self.sigmoid()

    def hardswish(self) -> Tensor:
        """x * relu6(x + 3) / 6. The ends are tested on x itself (not on x + 3, which
        rounds), so the gradient is PyTorch's: 0 up to -3, x/3 + 1/2 between, 1 from 3."""
        ramp = where(self <= -3.0, 0.0, where(self >= 3.0, 6.0, self + 3.0))
        return self * ramp / 6.0

    def hardsigmoid(self) -> Tensor:
        """relu6(x + 3) / 6, gradient 1/6 strictly inside (-3, 3) (none at NaN), as PyTorch."""
        u = self + 3.0
        inside = where(self < 3.0, u, 6.0)
        return where(self > -3.0, inside, where(self <= -3.0, 0.0, u.detach())) / 6.0

    def elu(self, alpha: float = 1.0) -> Tensor:
        """x for x > 0, else alpha * (exp(x) - 1). exp only sees x <= 0 (no overflow)."""
        negative = self.where(self <= 0.0, 0.0)
        # the conditions send NaN to the branch that is x itself: NaN in, NaN out
        return where(self <= 0.0, (negative.exp() - 1.0) * alpha, self)

    def selu(self) -> Tensor:
        """scale * elu(x, alpha) with the self-normalising constants."""
        return self.elu(_SELU_ALPHA) * _SELU_SCALE

    def celu(self, alpha: float = 1.0) -> Tensor:
        """x for x > 0, else alpha * (exp(x / alpha) - 1)."""
        if alpha == 0:
            raise op_error("celu", "alpha must not be 0", self.shape, "pass alpha=1.0")
        negative = self.where(self <= 0.0, 0.0)
        return where(self <= 0.0, ((negative / alpha).exp() - 1.0) * alpha, self)

    def softplus(self, beta: float = 1.0, threshold: float = 20.0) -> Tensor:
        """log(1 + exp(beta x)) / beta, and x itself where beta x > threshold (PyTorch's).
        Written max(z, 0) + log1p(exp(-|z|)): exp never overflows, and the tied max at 0
        gives the exact gradient sigmoid(0) = 1/2."""
        z = self * beta
        smooth = (z.maximum(0.0) + (-z.abs()).exp().log1p()) / beta
        return where(z > threshold, self, smooth)

    def mish(self) -> Tensor:
        """x * tanh(softplus(x))."""
        return self * self.softplus().tanh()

    def logsigmoid(self) -> Tensor:
        """log(sigmoid(x)) = -(max(-x, 0) + log1p(exp(-|x|))), stable for large |x|."""
        return -((-self).maximum(0.0) + (-self.abs()).exp().log1p())

    def softsign(self) -> Tensor:
        """x / (1 + |x|)."""
        return self / (self.abs() + 1.0)

    def tanhshrink(self) -> Tensor:
        return self - self.tanh()

    def hardshrink(self, lambd: float = 0.5) -> Tensor:
        """x where |x| > lambd, else 0."""
        return where(self.abs() <= lambd, 0.0, self)  # (NaN stays NaN)

    def softshrink(self, lambd: float = 0.5) -> Tensor:
        """x - lambd above lambd, x + lambd below -lambd, else 0."""
        if lambd < 0:
            raise op_error(
                "softshrink", f"lambd must be >= 0, got {lambd}", self.shape, "pass lambd=0.5"
            )
        return where(self.abs() <= lambd, 0.0, self - self.sign() * lambd)  # (NaN stays NaN)

    def threshold(self, threshold: float, value: float) -> Tensor:
        """x where x > threshold, else value (`F.threshold`)."""
        return where(self <= threshold, value, self)  # (NaN stays NaN, as PyTorch's)

    def prelu(self, weight: Tensor) -> Tensor:
        """x where x > 0, else weight * x; weight has 1 entry or one per channel (dim 1)."""
        channels = self.shape[1] if self.ndim >= 2 else 1
        if weight.ndim > 1 or weight.size not in (1, channels):
            raise op_error(
                "prelu",
                f"weight must have 1 or {channels} (channel count) elements",
                f"input {self.shape}, weight {weight.shape}",
                "use nn.PReLU(num_parameters=1) or num_parameters=input.shape[1]",
            )
        if weight.size > 1:
            weight = weight.reshape((1, channels) + (1,) * (self.ndim - 2))
        else:
            weight = weight.reshape(())
        return where(self > 0.0, self, self * weight)

    def softmin(self, axis: int = -1, *, dim: int | None = None) -> Tensor:
        return (-self).softmax(axis, dim=dim)

    # -- masks, logic, comparisons of closeness ---------------------------------------------
    def masked_fill(self, mask: Any, value: Any) -> Tensor:
        """`value` where the bool `mask` (broadcast to self) is True, else self."""
        m = mask if isinstance(mask, Tensor) else Tensor(np.asarray(mask))
        if m.dtype != np.bool_:
            raise op_error(
                "masked_fill",
                f"mask must be bool, got {m.dtype}",
                f"input {self.shape}, mask {m.shape}",
                "compare first (x > 0) or pass mask.astype(bool)",
            )
        if _broadcast(m.shape, self.shape, "masked_fill") != self.shape:
            raise op_error(
                "masked_fill",
                "the mask must broadcast to the input's shape",
                f"input {self.shape}, mask {m.shape}",
                "pass a mask with the input's shape (or 1s where it broadcasts)",
            )
        fill = self._lift(value).cast(self.dtype) if not isinstance(value, Tensor) else value
        if fill.ndim:
            raise op_error(
                "masked_fill",
                "value must be a number or a 0-d tensor",
                fill.shape,
                "pass value=0.0",
            )
        return where(m, fill, self)

    def _logic(self, op: str) -> Tensor:
        if self.dtype != np.bool_:
            raise op_error(
                op,
                f"operands must be bool tensors here, got {self.dtype}",
                self.shape,
                "compare first (x > 0) to get a bool mask",
            )
        return self

    def logical_not(self) -> Tensor:
        """True where self is zero (any dtype, as PyTorch's)."""
        return self._truth() == False  # noqa: E712 (elementwise, not identity)

    def logical_and(self, other: Any) -> Tensor:
        return where(self._truth(), self._lift(other)._truth(), False)

    def logical_or(self, other: Any) -> Tensor:
        return where(self._truth(), True, self._lift(other)._truth())

    def logical_xor(self, other: Any) -> Tensor:
        return self._truth() != self._lift(other)._truth()

    def _truth(self) -> Tensor:
        return self if self.dtype == np.bool_ else self != 0

    # the operators: logical on bools, bitwise on integers (as PyTorch's); a float refused
    def __and__(self, other: Any) -> Tensor:
        if self._bitwise(other):
            return self.bitwise_and(other)
        return self._logic("logical_and").logical_and(self._lift(other)._logic("logical_and"))

    def __or__(self, other: Any) -> Tensor:
        if self._bitwise(other):
            return self.bitwise_or(other)
        return self._logic("logical_or").logical_or(self._lift(other)._logic("logical_or"))

    def __xor__(self, other: Any) -> Tensor:
        if self._bitwise(other):
            return self.bitwise_xor(other)
        return self._logic("logical_xor").logical_xor(self._lift(other)._logic("logical_xor"))

    def _bitwise(self, other: Any) -> bool:
        """Whether `self op other` is integer bitwise (some operand an integer, none float)."""
        kinds = {self.dtype.kind, self._lift(other).dtype.kind}
        return bool(kinds & {"i", "u"}) and kinds <= {"i", "u", "b"}

    def bitwise_and(self, other: Any) -> Tensor:
        return self._integer_bits("bitwise_and", ops.BITWISE_AND, other)

    def bitwise_or(self, other: Any) -> Tensor:
        return self._integer_bits("bitwise_or", ops.BITWISE_OR, other)

    def bitwise_xor(self, other: Any) -> Tensor:
        return self._integer_bits("bitwise_xor", ops.BITWISE_XOR, other)

    def bitwise_not(self) -> Tensor:
        if self.dtype == np.bool_:
            return self.logical_not()
        _check_integer_bits("bitwise_not", self)
        return self._call(ops.BITWISE_NOT)

    def _integer_bits(self, name: str, op: Op, other: Any) -> Tensor:
        o = self._lift(other)
        _check_integer_bits(name, self, o)
        if self.dtype == np.bool_ and o.dtype == np.bool_:  # two bools: the logical form
            logical = {"bitwise_and": "logical_and", "bitwise_or": "logical_or"}
            return getattr(self, logical.get(name, "logical_xor"))(o)
        return self._call(op, o)

    def __rand__(self, other: Any) -> Tensor:
        return self.__and__(other)

    def __ror__(self, other: Any) -> Tensor:
        return self.__or__(other)

    def __rxor__(self, other: Any) -> Tensor:
        return self.__xor__(other)

    def __invert__(self) -> Tensor:
        if self.dtype.kind in "iu":
            return self.bitwise_not()
        return self._logic("logical_not").logical_not()

    def all(self, axis: Any = None, keepdim: bool = False, *, dim: Any = None) -> Tensor:
        """True where every element along `axis` is non-zero (a bool tensor)."""
        return (self == 0).sum(_axis(axis, dim), keepdim) == 0

    def any(self, axis: Any = None, keepdim: bool = False, *, dim: Any = None) -> Tensor:
        """True where some element along `axis` is non-zero (NaN counts, as in PyTorch)."""
        return (self != 0).sum(_axis(axis, dim), keepdim) > 0

    def isclose(
        self, other: Any, rtol: float = 1e-05, atol: float = 1e-08, equal_nan: bool = False
    ) -> Tensor:
        """|self - other| <= atol + rtol * |other|, elementwise; equal infinities are close,
        NaN only with equal_nan (PyTorch's rule)."""
        o = self._lift(other)
        if rtol < 0 or atol < 0:
            raise op_error(
                "isclose", f"rtol and atol must be >= 0, got {rtol}, {atol}", o.shape, "fix them"
            )
        if self.dtype.kind == "b" and o.dtype.kind == "b":
            return self == o
        equal = self == o
        if equal_nan:
            equal = equal | ((self != self) & (o != o))
        error = (self - o).abs()
        within = (error <= (o.abs() * rtol + atol)) & (error < np.inf)
        return equal | within

    def allclose(
        self, other: Any, rtol: float = 1e-05, atol: float = 1e-08, equal_nan: bool = False
    ) -> bool:
        return bool(self.isclose(other, rtol, atol, equal_nan).all().item())

    # -- reshaping into pieces, repeating ----------------------------------------------------
    def repeat(self, *sizes: Any) -> Tensor:
        """Tile the tensor `sizes[i]` times along dim i (PyTorch's `repeat`; leading sizes
        add dims)."""
        reps = _shape_arg(sizes, "repeat")
        if len(reps) < self.ndim:
            raise op_error(
                "repeat",
                f"{len(reps)} repeat sizes for a {self.ndim}-D tensor",
                self.shape,
                "give at least one size per dim",
            )
        shape = (1,) * (len(reps) - self.ndim) + self.shape
        spread = tuple(v for n in shape for v in (1, n))
        tiled = tuple(v for r, n in zip(reps, shape) for v in (r, n))
        out = self.reshape(spread).expand(tiled)
        return out.reshape(tuple(r * n for r, n in zip(reps, shape)))

    def chunk(self, chunks: int, dim: int = 0) -> tuple[Tensor, ...]:
        """Up to `chunks` pieces of ceil(n / chunks) along `dim` (the last may be smaller)."""
        if not _is_int(chunks) or chunks < 1:
            raise op_error("chunk", f"chunks must be >= 1, got {chunks}", self.shape, "pass 2")
        d = self._dim(dim, "chunk")
        if self.shape[d] == 0:  # PyTorch gives `chunks` empty pieces
            return tuple(self for _ in range(chunks))
        return self.split(-(-self.shape[d] // chunks), d)

    def split(self, split_size_or_sections: Any, dim: int = 0) -> tuple[Tensor, ...]:
        """Pieces along `dim`: of `split_size` each (the last may be smaller), or of the
        listed sizes (which must add up to the dim's length)."""
        d = self._dim(dim, "split")
        n = self.shape[d]
        if _is_int(split_size_or_sections):
            size = int(split_size_or_sections)
            if size < 1 and n:
                raise op_error(
                    "split", f"split_size must be >= 1, got {size}", self.shape, "pass 1 or more"
                )
            sizes = [min(size, n - i) for i in range(0, n, size)] if n else [0]
        else:
            sizes = [int(v) for v in split_size_or_sections]
            if sum(sizes) != n or any(v < 0 for v in sizes):
                raise op_error(
                    "split",
                    f"sizes {sizes} must be >= 0 and add up to dim {d}'s length {n}",
                    self.shape,
                    "pass sizes that sum to the dim's length",
                )
        pieces, start = [], 0
        for v in sizes:
            pieces.append(self[(slice(None),) * d + (slice(start, start + v),)])
            start += v
        return tuple(pieces)

    # -- cumulative sums, gather and scatter -------------------------------------------------
    def cumsum(self, dim: int, *, dtype: Any = None) -> Tensor:
        """Running sums along `dim` by doubling (Hillis-Steele): after step k each element
        holds the sum of the 2^k before it, so log2(n) shifted adds (pad, slice, add) give
        the result, its gradient (the reversed running sum) and compiled kernels, in O(n)
        memory per step. Integer and bool inputs give int64, as in PyTorch."""
        x = self if dtype is None else self.cast(dtype)
        if x.dtype.kind in "biu":
            x = x.cast(np.int64)
        return x._scan(dim, "cumsum", lambda a, b: a + b, 0)

    def _gather_index(self, dim: int, index: Any, op: str) -> tuple[tuple[Any, ...], Tensor]:
        """The advanced index that picks self[..., index, ...] along `dim` for each position
        of `index` (`scatter`'s: its last-write-wins rule needs the index values here, so
        the index must be known, not a compiled function's input)."""
        idx = index if isinstance(index, Tensor) else Tensor(np.asarray(index))
        _known_index(idx, op)
        d, idx = self._along_index(dim, idx, op)
        values = idx.numpy()
        ops.check_along_index(values, self.shape[d], d, op)
        grid = list(np.indices(idx.shape, sparse=True))
        grid[d] = values
        return tuple(grid), idx

    def gather(self, dim: int, index: Any) -> Tensor:
        """out[i][j][k] = self[index[i][j][k]][j][k] for dim 0 (likewise for other dims);
        the gradient adds back into the picked positions (repeats accumulate). The index is
        data: it may be computed (argmax, argsort) or a compiled function's input."""
        if self.ndim == 0:  # as PyTorch: a 0-d input and index, taken as one element
            return self.reshape(1).gather(dim, _one_element(index, "gather")).reshape(())
        d, idx = self._along_index(dim, index, "gather")
        return self._cut_to(idx.shape, d).gather_along(idx, d)

    def gather_along(self, index: Tensor, dim: int) -> Tensor:
        """The primitive under `gather`: index of self's shape except along `dim`."""
        return self._call(ops.GATHER_ALONG, index, dim=dim)

    def put_along(self, index: Tensor, size: int, dim: int) -> Tensor:
        """The primitive under `scatter_add` (and gather's gradient): zeros of index's shape
        with dim `dim` of length `size`, self[..., k, ...] added at [..., index[..., k, ...],
        ...]."""
        return self._call(ops.PUT_ALONG, index, size=int(size), dim=dim)

    def _along_index(self, dim: int, index: Any, op: str) -> tuple[int, Tensor]:
        """(dim, index as a Tensor) after PyTorch's rules for gather/scatter: integers, the
        input's number of dims, no larger than the input outside `dim`. The values are
        checked by the op (and on each call of a compiled function taking the index)."""
        idx = index if isinstance(index, Tensor) else Tensor(np.asarray(index))
        if idx.dtype.kind not in "iu" and idx.size:
            raise op_error(
                op, f"index must hold integers, got {idx.dtype}", idx.shape, "pass an int64 index"
            )
        d = self._dim(dim, op)
        if idx.ndim != self.ndim or any(
            idx.shape[i] > self.shape[i] for i in range(self.ndim) if i != d
        ):
            raise op_error(
                op,
                f"index must have the input's {self.ndim} dims, no larger than the input's "
                f"except along dim {d}",
                f"input {self.shape}, index {idx.shape}",
                "unsqueeze/expand the index to the input's rank",
            )
        size = self.shape[d]
        record_input_check(idx, lambda a: ops.check_along_index(a, size, d, op))
        return d, idx.cast(np.int64)

    def _cut_to(self, shape: tuple[int, ...], dim: int) -> Tensor:
        """self's first shape[i] entries along every dim but `dim`."""
        if all(n == m for i, (n, m) in enumerate(zip(self.shape, shape)) if i != dim):
            return self
        return self[tuple(slice(None) if i == dim else slice(0, n) for i, n in enumerate(shape))]

    def _scatter_source(self, index: Tensor, src: Any, op: str) -> Tensor:
        if isinstance(src, Tensor):
            if src.ndim != index.ndim or any(a < b for a, b in zip(src.shape, index.shape)):
                raise op_error(
                    op,
                    "src must be at least as large as index in every dim",
                    f"index {index.shape}, src {src.shape}",
                    "pass a src of the index's shape",
                )
            # (cut only when larger: a slice to the batch's size would pin the batch in ONNX)
            same = tuple(src.shape) == tuple(index.shape)
            s = src if same else src[tuple(slice(0, n) for n in index.shape)]
            return s.cast(self.dtype) if s.dtype != self.dtype else s
        return self._lift(src).cast(self.dtype).expand(index.shape)

    def scatter_add(self, dim: int, index: Any, src: Any) -> Tensor:
        """self with src[i][j] added at self[index[i][j]][j] (dim 0); repeats accumulate.
        The index is data, as gather's."""
        if self.ndim == 0:
            one = _one_element(index, "scatter_add")
            return self.reshape(1).scatter_add(dim, one, _one_element(src, "scatter_add"))[0]
        d, idx = self._along_index(dim, index, "scatter_add")
        source = self._scatter_source(idx, src, "scatter_add")
        added = source.put_along(idx, self.shape[d], d)
        if added.shape != self.shape:  # an index smaller than self outside dim: zeros beyond
            added = added.pad([(0, n - m) for n, m in zip(self.shape, added.shape)])
        return self + added

    def scatter(
        self,
        dim: int,
        index: Any,
        src: Any = None,
        *,
        value: Any = None,
        reduce: str | None = None,
    ) -> Tensor:
        """self with src[i][j] (or `value`) written at self[index[i][j]][j] (dim 0). Where an
        index repeats, the last write wins (PyTorch leaves that order undefined).
        `reduce="add"` adds instead (as `scatter_add`)."""
        if (src is None) == (value is None):
            raise op_error(
                "scatter", "pass exactly one of src and value", self.shape, "scatter(d, i, src)"
            )
        if reduce is not None:
            if reduce != "add":
                raise op_error(
                    "scatter",
                    f"reduce={reduce!r} is not supported (only 'add')",
                    self.shape,
                    "use reduce='add' (scatter_add), or compute the product another way",
                )
            return self.scatter_add(dim, index, src if value is None else value)
        grid, idx = self._gather_index(dim, index, "scatter")
        source = self._scatter_source(idx, src if value is None else value, "scatter")
        flat = np.ravel_multi_index(np.broadcast_arrays(*grid), self.shape).reshape(-1)
        last = np.zeros(flat.shape, dtype=bool)  # keep one write per target: the last one
        _, first_of_reversed = np.unique(flat[::-1], return_index=True)
        last[flat.size - 1 - first_of_reversed] = True
        keep = Tensor._make(last.reshape(idx.shape))
        written = np.zeros(self.shape, dtype=bool)
        written.reshape(-1)[flat] = True
        kept = where(keep, source, Tensor._make(np.zeros((), source.dtype)))
        return where(Tensor._make(written), kept.index_put(self.shape, grid), self)

    def rsqrt(self) -> Tensor:
        """1 / sqrt(x)."""
        return 1.0 / self.sqrt()


def _accepting_keepdims(method: Any) -> Any:
    """`method` that also takes numpy's `keepdims=` for `keepdim=`, as PyTorch's reductions do
    (they take `axis=` for `dim=` likewise)."""

    @functools.wraps(method)
    def reduction(self: Tensor, *args: Any, keepdims: bool | None = None, **kwargs: Any) -> Any:
        if keepdims is not None:
            if "keepdim" in kwargs:
                raise TypeError(
                    f"{method.__name__}(): got both keepdim= and keepdims= (aliases). Fix: "
                    "pass one of them"
                )
            kwargs["keepdim"] = keepdims
        return method(self, *args, **kwargs)

    return reduction


# every reduction with a keepdim argument, the method forms' included
for _name, _method in list({**vars(MethodForms), **vars(Tensor)}.items()):
    if callable(_method) and "keepdim" in inspect.signature(_method).parameters:
        setattr(Tensor, _name, _accepting_keepdims(_method))
del _name, _method


def _other(other: Any, op: str) -> Tensor:
    if not isinstance(other, Tensor):
        raise op_error(op, "expects a Tensor", type(other).__name__, f"pass a Tensor: x.{op}(y)")
    return other


# ---------------------------------------------------------------------------------------------
# module-level functions
# ---------------------------------------------------------------------------------------------
def _shape_arg(
    shape: Sequence[Any],
    op: str = "shape",
    allow_minus_one: bool = False,
    allow_negative: bool = False,
) -> tuple[int, ...]:
    """Integer sizes (or dims), refusing floats, bools and negative sizes with a clear error."""
    if len(shape) == 1 and isinstance(shape[0], (tuple, list)):
        shape = shape[0]
    for n in shape:
        if not isinstance(n, (int, np.integer)) or isinstance(n, bool):
            raise op_error(
                op,
                f"sizes must be ints, got {n!r}",
                tuple(shape),
                "pass integers (int(x) if you computed a size)",
            )
        if n < 0 and not allow_negative and not (allow_minus_one and n == -1):
            raise op_error(
                op,
                f"size {n} is negative",
                tuple(shape),
                "sizes must be >= 0" + (" (-1 infers one size)" if allow_minus_one else ""),
            )
    return tuple(int(n) for n in shape)


def _drop_axes(shape: tuple[int, ...], axes: tuple[int, ...]) -> tuple[int, ...]:
    return tuple(n for i, n in enumerate(shape) if i not in axes)


def _known_index(index: Tensor, op: str) -> None:
    """An index tensor must hold numbers: indices are compiled in, so one that is an input
    of a compiled function (symbolic while tracing) cannot be used."""
    if isinstance(index.data, MetaArray):
        raise op_error(
            op,
            "an index tensor that is an input of a compiled function: indices are compiled in",
            index.shape,
            "index with a constant (an array the function captures), or run eagerly",
        )


def _normalize_index(index: Any, op: str = "getitem") -> tuple[Any, ...]:
    items = index if isinstance(index, tuple) else (index,)
    out: list[Any] = []
    for item in items:
        if isinstance(item, Tensor):
            _known_index(item, op)
            item = item.numpy()
        if isinstance(item, (list, bool, np.bool_)):
            item = np.asarray(item)
        if isinstance(item, np.ndarray) and item.ndim == 0 and item.dtype.kind in "iu":
            item = int(item)  # PyTorch indexes with a 0-d int tensor as with an int
        if isinstance(item, np.ndarray) and item.dtype.kind not in "iub":
            raise op_error(
                op,
                f"index arrays must hold ints or bools, not {item.dtype}",
                item.shape,
                "cast the index with .astype(int)",
            )
        if not isinstance(item, (int, np.integer, slice, np.ndarray, type(None), type(Ellipsis))):
            raise op_error(
                op,
                f"unsupported index {item!r}",
                type(item).__name__,
                "use ints, slices, None, ... or integer/bool arrays",
            )
        out.append(int(item) if isinstance(item, np.integer) else item)
    return tuple(out)


def _split_index(idx: tuple[Any, ...]) -> tuple[tuple[Any, ...], tuple[Any, ...] | None]:
    """PyTorch's order as two numpy indexes: first every basic item (ints select, slices,
    None), then the index arrays alone, with `:` where the basic items left a dim. Numpy
    counts an int next to an index array as one more advanced index (which moves the result's
    dims), PyTorch does not; without ints the two rules agree and one step does."""
    has_int = any(isinstance(i, int) for i in idx)
    if not has_int or not any(isinstance(i, np.ndarray) for i in idx):
        return idx, None
    basic: list[Any] = []
    advanced: list[Any] = []
    for item in idx:
        if isinstance(item, np.ndarray):
            # a k-d bool mask spans k dims; a 0-d bool adds one dim in the second step
            basic.extend([slice(None)] * (item.ndim if item.dtype.kind == "b" else 1))
            advanced.append(item)
        elif isinstance(item, int):
            basic.append(item)
        elif item is Ellipsis:
            basic.append(item)
            advanced.append(item)
        else:  # slice or None: applied in the first step, a full dim in the second
            basic.append(item)
            advanced.append(slice(None))
    return tuple(basic), tuple(advanced)


def _conv_attrs(stride: Any, padding: Any, dilation: Any, groups: int, op: str) -> dict:
    if not _is_int(groups):
        raise op_error(op, f"groups must be an int, got {groups!r}", (), "pass groups=1 or 2")
    return dict(
        stride=_pair(stride, "stride", op),
        padding=_pair(padding, "padding", op),
        dilation=_pair(dilation, "dilation", op),
        groups=int(groups),
    )


def _correction(unbiased: bool | None, correction: float | None, op: str) -> float:
    if unbiased is not None and correction is not None:
        raise op_error(
            op,
            "pass either unbiased or correction, not both",
            (unbiased, correction),
            "use correction=0 (biased) or correction=1 (unbiased)",
        )
    if correction is not None:
        return correction
    return 0 if unbiased is False else 1


def _check_bound(bound: Any, name: str, x: Tensor) -> None:
    if bound is None or isinstance(bound, Tensor):
        return
    if not isinstance(bound, (int, float, np.integer, np.floating)) or isinstance(bound, bool):
        raise op_error(
            "clamp",
            f"{name} must be a number, a Tensor or None, got {type(bound).__name__}",
            x.shape,
            f"pass {name}=0.0 or a Tensor that broadcasts to the input",
        )


def _broadcast(a: tuple[int, ...], b: tuple[int, ...], op: str) -> tuple[int, ...]:
    try:
        return tuple(np.broadcast_shapes(a, b))
    except ValueError:
        raise op_error(
            op,
            "shapes cannot be broadcast together",
            f"{a} and {b}",
            "make trailing dimensions equal or 1",
        ) from None


def where(condition: Any, a: Any = None, b: Any = None) -> Any:
    """Elementwise `condition ? a : b` with broadcasting; gradients flow to a and b.
    `where(condition)` alone is `condition.nonzero(as_tuple=True)`, as PyTorch's."""
    if a is None and b is None:
        cond = condition if isinstance(condition, Tensor) else Tensor(np.asarray(condition))
        return cond.nonzero(as_tuple=True)
    if a is None or b is None:
        raise op_error("where", "give both a and b, or neither", (), "where(cond, a, b)")
    anchor = a if isinstance(a, Tensor) else b if isinstance(b, Tensor) else Tensor(a)
    cond = condition if isinstance(condition, Tensor) else Tensor(np.asarray(condition))
    if cond.dtype != np.bool_:
        raise op_error(
            "where",
            f"condition must be bool, got {cond.dtype}",
            cond.shape,
            "compare first (x > 0) or cast with .astype(bool)",
        )
    a, b = _zero_dim_promotion(anchor._lift(a), anchor._lift(b))
    return anchor.apply(ops.WHERE, (cond, a, b), {})  # type: ignore


def cat(tensors: Sequence[Tensor], axis: int = 0, *, dim: int | None = None) -> Tensor:
    """Join tensors along an existing axis."""
    axis = _axis(axis if dim is None else None, dim)
    if isinstance(tensors, Tensor) or not all(isinstance(t, Tensor) for t in tensors):
        raise TypeError("cat: pass a list or tuple of Tensors, e.g. cat([a, b], axis=0)")
    if not tensors:
        raise op_error("cat", "needs at least one tensor", [], "pass a non-empty list")
    first = tensors[0]
    if first.ndim == 0:
        raise op_error(
            "cat",
            "zero-dimensional tensors cannot be concatenated",
            [t.shape for t in tensors],
            "use stack, or unsqueeze(0) each one",
        )
    if any(t.ndim != first.ndim for t in tensors):
        raise op_error(
            "cat",
            "all tensors must have the same number of dims",
            [t.shape for t in tensors],
            "reshape the inputs to the same rank",
        )
    ax = first._axes(axis, "cat")[0]
    return first.apply(ops.CAT, tuple(tensors), {"axis": ax})  # type: ignore[return-value]


def stack(tensors: Sequence[Tensor], axis: int = 0, *, dim: int | None = None) -> Tensor:
    """Join tensors along a new axis."""
    axis = _axis(axis if dim is None else None, dim)
    if not tensors:
        raise op_error("stack", "needs at least one tensor", [], "pass a non-empty list")
    shapes = {t.shape for t in tensors}
    if len(shapes) != 1:
        raise op_error(
            "stack",
            "all tensors must have the same shape",
            [t.shape for t in tensors],
            "reshape or pad them to one shape",
        )
    ax = tensors[0]._dim(axis, "stack", extra=1)
    return cat([t.unsqueeze(ax) for t in tensors], axis=ax)


# ---------------------------------------------------------------------------------------------
# constructors shaped like another tensor; eye; einsum; closeness (torch.* functions)
# ---------------------------------------------------------------------------------------------
def meshgrid(*tensors: Any, indexing: str = "ij") -> tuple[Tensor, ...]:
    """Coordinate grids from 1-D tensors, as `torch.meshgrid` (`indexing` "ij": the first
    tensor varies along dim 0; "xy": the first two swapped, as numpy's default)."""
    if len(tensors) == 1 and isinstance(tensors[0], (list, tuple)):
        tensors = tuple(tensors[0])
    if indexing not in ("ij", "xy"):
        raise op_error("meshgrid", f"indexing must be 'ij' or 'xy', got {indexing!r}", (),
                       "pass indexing='ij'")  # fmt: skip
    ts = [t if isinstance(t, Tensor) else Tensor(np.asarray(t)) for t in tensors]
    ts = [t.reshape(1) if t.ndim == 0 else t for t in ts]  # a 0-d tensor is one point
    if any(t.ndim != 1 for t in ts):
        raise op_error(
            "meshgrid", "expects 1-D tensors", [t.shape for t in ts], "flatten them first"
        )
    order = list(range(len(ts)))
    if indexing == "xy" and len(ts) >= 2:
        order[0], order[1] = 1, 0
    shape = tuple(ts[k].shape[0] for k in order)
    out = []
    for k, t in enumerate(ts):
        view = [1] * len(ts)
        view[order.index(k)] = t.shape[0]
        out.append(t.reshape(view).expand(shape))
    return tuple(out)


def full_like(
    input: Tensor,
    fill_value: Any,
    dtype: Any = None,
    requires_grad: bool = False,
    device: Any = None,
) -> Tensor:
    """A tensor of `input`'s shape filled with `fill_value` (input's dtype and device unless
    given)."""
    dt = input.dtype if dtype is None else np.dtype(dtype)
    data = np.full(input.shape, fill_value, dtype=dt)
    where = input.device if device is None else device
    return Tensor(data, dtype=dt, requires_grad=requires_grad, device=where)


def zeros_like(
    input: Tensor, dtype: Any = None, requires_grad: bool = False, device: Any = None
) -> Tensor:
    return full_like(input, 0, dtype, requires_grad, device)


def ones_like(
    input: Tensor, dtype: Any = None, requires_grad: bool = False, device: Any = None
) -> Tensor:
    return full_like(input, 1, dtype, requires_grad, device)


def eye(
    n: int,
    m: int | None = None,
    dtype: Any = DEFAULT_FLOAT,
    requires_grad: bool = False,
    device: Any = None,
) -> Tensor:
    """The (n, m) identity matrix (m = n by default)."""
    cols = n if m is None else m
    sizes = _shape_arg((n, cols), "eye")
    data = np.eye(*sizes, dtype=dtype)
    return Tensor(data, dtype=dtype, requires_grad=requires_grad, device=device)


def isclose(
    input: Tensor, other: Any, rtol: float = 1e-05, atol: float = 1e-08, equal_nan: bool = False
) -> Tensor:
    return input.isclose(other, rtol, atol, equal_nan)


def allclose(
    input: Tensor, other: Any, rtol: float = 1e-05, atol: float = 1e-08, equal_nan: bool = False
) -> bool:
    return input.allclose(other, rtol, atol, equal_nan)


def einsum(equation: str, *operands: Any) -> Tensor:
    """`torch.einsum` for the common contractions: any number of operands, implicit or
    explicit output ('ij,jk' or 'ij,jk->ik'), `...` for shared leading dims. Built from
    permute, reshape, sum and matmul (so gradients and compiled kernels follow); an index
    repeated within one operand (a diagonal, 'ii->i') is not supported."""
    from .contraction import contract

    if len(operands) == 1 and isinstance(operands[0], (list, tuple)):
        operands = tuple(operands[0])
    return contract(equation, list(operands))


__all__ = [
    "Tensor", "allclose", "cat", "einsum", "eye", "full_like", "isclose", "no_grad",
    "ones_like", "stack", "where", "zeros_like",
]  # fmt: skip


def new_tensor(
    data: Any, dtype: Any = None, requires_grad: bool = False, device: Any = None
) -> Tensor:
    """`torch.tensor`: a new leaf Tensor holding a copy of `data` (a list, number or array;
    float32 for floats unless `dtype` says otherwise, int64 for integers)."""
    source = np.array(data.numpy() if isinstance(data, Tensor) else data, copy=True)
    return Tensor(source, dtype=dtype, requires_grad=requires_grad, device=device)


def _device(device: Any) -> str | None:
    """What `device=` names (every factory passes it to `Tensor`): "cpu", "cuda" ("cuda:0":
    the one GPU used), a tensor's `.device`, or None (the host) -> None for the host, else
    "cuda"; anything else is refused by name."""
    if device is None:
        return None
    name = str(device)
    if name.split(":")[0] not in ("cpu", "cuda"):
        raise op_error(
            "device", f"unknown device {device!r}", (), 'pass "cpu" or "cuda" (or x.device)'
        )
    return None if name == "cpu" else "cuda"


class _CallableModule(types.ModuleType):
    """This module, callable: `tinygrad_edu.tensor([1.0, 2.0])` is PyTorch's `torch.tensor`
    while `tinygrad_edu.tensor` stays the module every `import` of it finds."""

    def __call__(
        self, data: Any, dtype: Any = None, requires_grad: bool = False, device: Any = None
    ) -> Tensor:
        return new_tensor(data, dtype, requires_grad, device)


sys.modules[__name__].__class__ = _CallableModule
