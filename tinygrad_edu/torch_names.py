"""torch_names: more of PyTorch's module-level functions, each a few lines over the DSL.

`tinygrad_edu.from_numpy(a)`, `rand_like(x)`, `hstack([a, b])`, `set_grad_enabled(False)`,
... as ported model and training code calls them (`import tinygrad_edu as torch`). Nothing
here is an op of its own: each is composed of tensor methods, factories or the autograd
switch, so every path (eager, compiled) runs the one definition underneath.
"""

from __future__ import annotations

import functools
import types
from collections.abc import Sequence
from typing import Any

import numpy as np

from . import autograd, rng
from .errors import op_error
from .tensor import DEFAULT_FLOAT, Tensor, _device, cat, cupy_with_device

__all__ = [
    "as_tensor",
    "cuda",
    "device",
    "atleast_1d",
    "atleast_2d",
    "atleast_3d",
    "broadcast_tensors",
    "concat",
    "concatenate",
    "empty_like",
    "from_numpy",
    "get_default_dtype",
    "hstack",
    "is_floating_point",
    "is_grad_enabled",
    "is_tensor",
    "rand_like",
    "randint_like",
    "randn_like",
    "randperm",
    "set_grad_enabled",
    "vstack",
]


def from_numpy(array: np.ndarray) -> Tensor:
    """A tensor over `array` itself (no copy: writes through either show in the other), as
    torch.from_numpy."""
    if not isinstance(array, np.ndarray):
        raise op_error(
            "from_numpy",
            f"expects a numpy array, got {type(array).__name__}",
            (),
            "pass np.asarray(x)",
        )
    return Tensor._make(array)


def as_tensor(data: Any, dtype: Any = None, device: str | None = None) -> Tensor:
    """`data` as a tensor, shared where it already is one (or an array) of that dtype."""
    where = _device(device)
    if isinstance(data, Tensor) and (where or "cpu") == data.device:
        return data if dtype is None or data.dtype == np.dtype(dtype) else data.cast(dtype)
    same = dtype is None or getattr(data, "dtype", None) == np.dtype(dtype)
    if isinstance(data, np.ndarray) and same and where is None:
        return Tensor._make(data)
    source = data.numpy() if isinstance(data, Tensor) else data
    return Tensor(source, dtype=dtype, device=where)


def is_tensor(obj: Any) -> bool:
    return isinstance(obj, Tensor)


def is_floating_point(x: Tensor) -> bool:
    return x.dtype.kind == "f"


def get_default_dtype() -> Any:
    return DEFAULT_FLOAT


def empty_like(
    x: Tensor, dtype: Any = None, requires_grad: bool = False, device: Any = None
) -> Tensor:
    """Zeros of x's shape (see `Tensor.empty`: no uninitialised memory), on x's device
    unless given, as the other `_like` factories."""
    return Tensor.zeros(
        *x.shape, dtype=dtype or x.dtype, requires_grad=requires_grad, device=device or x.device
    )


def rand_like(
    x: Tensor, dtype: Any = None, requires_grad: bool = False, device: Any = None
) -> Tensor:
    dtype = dtype or _float_of(x)
    return Tensor.rand(
        *x.shape, dtype=dtype, requires_grad=requires_grad, device=device or x.device
    )


def randn_like(
    x: Tensor, dtype: Any = None, requires_grad: bool = False, device: Any = None
) -> Tensor:
    dtype = dtype or _float_of(x)
    return Tensor.randn(
        *x.shape, dtype=dtype, requires_grad=requires_grad, device=device or x.device
    )


def randint_like(
    x: Tensor, low: int, high: int | None = None, dtype: Any = None, device: Any = None
) -> Tensor:
    """Integers in [low, high) (`randint_like(x, high)`: from 0) of x's shape and dtype."""
    out = Tensor.randint(low, high, tuple(x.shape), device=device or x.device)
    return out.cast(dtype or x.dtype)


def randperm(n: int, dtype: Any = np.int64) -> Tensor:
    """A random permutation of 0 .. n-1 from the global generator (`manual_seed`)."""
    return Tensor(rng.generator().permutation(int(n)).astype(dtype))


def _float_of(x: Tensor) -> Any:
    return x.dtype if x.dtype.kind == "f" else DEFAULT_FLOAT


def concat(tensors: Sequence[Tensor], dim: int = 0) -> Tensor:
    return cat(tensors, dim)


concatenate = concat


def atleast_1d(*tensors: Any) -> Any:
    return _at_least(tensors, 1)


def atleast_2d(*tensors: Any) -> Any:
    return _at_least(tensors, 2)


def atleast_3d(*tensors: Any) -> Any:
    return _at_least(tensors, 3)


def _at_least(tensors: tuple[Any, ...], ndim: int) -> Any:
    """One tensor for one argument, else a tuple (a list or tuple argument counts as many)."""
    listed = len(tensors) == 1 and isinstance(tensors[0], list | tuple)
    items = list(tensors[0]) if listed else list(tensors)
    out = tuple(
        _with_dims(t if isinstance(t, Tensor) else Tensor(np.asarray(t)), ndim) for t in items
    )
    return out if listed or len(out) != 1 else out[0]


def _with_dims(t: Tensor, ndim: int) -> Tensor:
    if t.ndim >= ndim:
        return t
    # torch's rules: a number is (1, ..., 1), a vector (n) a row (1, n) (or (1, n, 1)),
    # a matrix (m, n) becomes (m, n, 1)
    if t.ndim == 0:
        return t.reshape(*(1,) * ndim)
    if t.ndim == 1:
        return t.reshape(1, *t.shape, *(1,) * (ndim - 2))
    return t.reshape(*t.shape, 1)


def hstack(tensors: Sequence[Tensor]) -> Tensor:
    """Join along dim 1 (dim 0 for vectors), as torch.hstack."""
    parts = atleast_1d(tuple(tensors))
    return cat(parts, 0 if parts[0].ndim == 1 else 1)


def vstack(tensors: Sequence[Tensor]) -> Tensor:
    """Join along dim 0 after making vectors rows, as torch.vstack."""
    return cat(atleast_2d(tuple(tensors)), 0)


def broadcast_tensors(*tensors: Tensor) -> tuple[Tensor, ...]:
    shape = np.broadcast_shapes(*(tuple(t.shape) for t in tensors))
    return tuple(t.expand(*shape) for t in tensors)


class set_grad_enabled:  # noqa: N801 (PyTorch's name)
    """Turn recording for backward on or off: as a call (`set_grad_enabled(False)`, for
    good), a context manager (restored on exit) or a decorator (each call runs in the mode,
    and decorating changes nothing), as torch.set_grad_enabled."""

    def __init__(self, mode: bool) -> None:
        self.previous = autograd.grad_enabled()
        self.mode = bool(mode)
        autograd._state.enabled = self.mode

    def __enter__(self) -> None:
        autograd._state.enabled = self.mode

    def __exit__(self, *exc: object) -> None:
        autograd._state.enabled = self.previous

    def __call__(self, fn: Any) -> Any:
        autograd._state.enabled = self.previous  # decorating is not a call
        mode = self.mode

        @functools.wraps(fn)
        def run(*args: Any, **kwargs: Any) -> Any:
            with set_grad_enabled(mode):
                return fn(*args, **kwargs)

        return run


def is_grad_enabled() -> bool:
    return autograd.grad_enabled()


def device(name: Any = "cpu", index: int | None = None) -> str:
    """torch.device: a device here is its name, "cpu" or "cuda" (what `x.device` gives and
    every `device=` and `.to()` takes)."""
    if isinstance(name, str) and index is not None:
        name = f"{name}:{index}"
    return _device(name) or "cpu"


def _cuda_count() -> int:
    try:
        cupy_with_device("tinygrad_edu.cuda")
    except RuntimeError:
        return 0
    import cupy

    return int(cupy.cuda.runtime.getDeviceCount())


# torch.cuda's questions a training script asks before choosing its device
cuda = types.SimpleNamespace(
    is_available=lambda: _cuda_count() > 0,
    device_count=_cuda_count,
)
