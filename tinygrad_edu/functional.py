"""The functional API under `torch.nn.functional`'s names and signatures.

`import tinygrad_edu.functional as F` (or `tinygrad_edu.nn.functional`), then `F.relu(x)`,
`F.cross_entropy(logits, y, label_smoothing=0.1)`, `F.conv2d(x, w, b, padding=1)` read as
they do in PyTorch. Each function is a thin wrapper over a `Tensor` method, so the op itself
is defined once (in `ops.py` or as a composite in `tensor.py`) and eager, compiled and CUDA
runs agree. Arguments PyTorch keeps only for old code (`inplace`, `size_average`, `reduce`,
`_stacklevel`) are accepted; `inplace=True` returns a new tensor (the DSL has no in-place ops).
"""

from __future__ import annotations

import warnings
from typing import Any

from . import image
from .errors import op_error
from .tensor import Tensor


def _tensor(x: Any, op: str) -> Tensor:
    if not isinstance(x, Tensor):
        raise TypeError(
            f"{op}: input must be a Tensor, got {type(x).__name__}. Fix: wrap it as Tensor(x)"
        )
    return x


# ---------------------------------------------------------------------------------------------
# activations
# ---------------------------------------------------------------------------------------------
def relu(input: Tensor, inplace: bool = False) -> Tensor:
    return _tensor(input, "relu").relu()


def relu6(input: Tensor, inplace: bool = False) -> Tensor:
    return _tensor(input, "relu6").relu6()


def hardtanh(
    input: Tensor,
    min_val: float = -1.0,
    max_val: float = 1.0,
    inplace: bool = False,
) -> Tensor:
    return _tensor(input, "hardtanh").hardtanh(min_val, max_val)


def leaky_relu(
    input: Tensor,
    negative_slope: float = 0.01,
    inplace: bool = False,
) -> Tensor:
    return _tensor(input, "leaky_relu").leaky_relu(negative_slope)


def sigmoid(input: Tensor) -> Tensor:
    return _tensor(input, "sigmoid").sigmoid()


def tanh(input: Tensor) -> Tensor:
    return _tensor(input, "tanh").tanh()


def softmax(
    input: Tensor,
    dim: int | None = None,
    _stacklevel: int = 3,
    dtype: Any = None,
) -> Tensor:
    x = _tensor(input, "softmax")
    x = x if dtype is None else x.cast(dtype)
    return x.softmax(dim=_implicit_dim(x, dim, "softmax"))


def log_softmax(
    input: Tensor,
    dim: int | None = None,
    _stacklevel: int = 3,
    dtype: Any = None,
) -> Tensor:
    x = _tensor(input, "log_softmax")
    x = x if dtype is None else x.cast(dtype)
    return x.log_softmax(dim=_implicit_dim(x, dim, "log_softmax"))


def _implicit_dim(x: Tensor, dim: int | None, op: str) -> int:
    """PyTorch's legacy choice for dim=None (0 for 0-, 1- and 3-D inputs, else 1), with the
    same warning PyTorch gives, since the guess is easy to get wrong."""
    if dim is not None:
        return dim
    chosen = 0 if x.ndim in (0, 1, 3) else 1
    warnings.warn(
        f"{op}: implicit dim is deprecated; chose dim={chosen} for a {x.ndim}-D input. "
        f"Fix: pass dim= explicitly",
        UserWarning,
        stacklevel=3,
    )
    return chosen


# ---------------------------------------------------------------------------------------------
# math on tensors
# ---------------------------------------------------------------------------------------------
def clamp(input: Tensor, min: Any = None, max: Any = None) -> Tensor:
    """`torch.clamp` (also `torch.clip`)."""
    return _tensor(input, "clamp").clamp(min, max)


clip = clamp


# ---------------------------------------------------------------------------------------------
# layers: linear, convolution, pooling, dropout, one_hot
# ---------------------------------------------------------------------------------------------
def linear(input: Tensor, weight: Tensor, bias: Tensor | None = None) -> Tensor:
    return _tensor(input, "linear").linear(weight, bias)


def conv2d(
    input: Tensor,
    weight: Tensor,
    bias: Tensor | None = None,
    stride: Any = 1,
    padding: Any = 0,
    dilation: Any = 1,
    groups: int = 1,
) -> Tensor:
    return _tensor(input, "conv2d").conv2d(weight, bias, stride, padding, dilation, groups)


def max_pool2d(
    input: Tensor,
    kernel_size: Any,
    stride: Any = None,
    padding: Any = 0,
    dilation: Any = 1,
    ceil_mode: bool = False,
    return_indices: bool = False,
) -> Any:
    """Max pooling; (values, int64 flat indices) with `return_indices=True`."""
    if return_indices:
        return image.max_pool2d_with_indices(
            input, kernel_size, stride, padding, dilation, ceil_mode
        )
    return image.max_pool2d(input, kernel_size, stride, padding, dilation, ceil_mode)


def avg_pool2d(
    input: Tensor,
    kernel_size: Any,
    stride: Any = None,
    padding: Any = 0,
    ceil_mode: bool = False,
    count_include_pad: bool = True,
    divisor_override: int | None = None,
) -> Tensor:
    """Average pooling with PyTorch's ceil_mode, count_include_pad and divisor_override."""
    return image.avg_pool2d(
        input, kernel_size, stride, padding, ceil_mode, count_include_pad, divisor_override
    )


def conv_transpose2d(
    input: Tensor,
    weight: Tensor,
    bias: Tensor | None = None,
    stride: Any = 1,
    padding: Any = 0,
    output_padding: Any = 0,
    groups: int = 1,
    dilation: Any = 1,
) -> Tensor:
    """Transposed convolution, weight (C_in, C_out / groups, kH, kW)."""
    return image.conv_transpose2d(
        input, weight, bias, stride, padding, output_padding, groups, dilation
    )


def adaptive_avg_pool2d(input: Tensor, output_size: Any) -> Tensor:
    return _tensor(input, "adaptive_avg_pool2d").adaptive_avg_pool2d(output_size)


def dropout(
    input: Tensor,
    p: float = 0.5,
    training: bool = True,
    inplace: bool = False,
) -> Tensor:
    """Inverted dropout; identity when `training` is False (pass `self.training`)."""
    return _tensor(input, "dropout").dropout(p, training)


def one_hot(tensor: Tensor, num_classes: int = -1) -> Tensor:
    """int64 one-hot rows as `F.one_hot` gives; num_classes=-1 means max label + 1."""
    labels = _tensor(tensor, "one_hot")
    if num_classes == -1:
        if labels.size == 0:
            raise op_error(
                "one_hot",
                "cannot infer num_classes from an empty tensor",
                labels.shape,
                "pass num_classes",
            )
        num_classes = int(labels.numpy().max()) + 1
    return labels.one_hot(num_classes, dtype="int64")
