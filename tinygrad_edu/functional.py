"""The functional forms of the DSL's ops under PyTorch's names and signatures
(`torch.nn.functional`), imported as `import tinygrad_edu.nn.functional as F`.

Each function is a thin call of the Tensor method that defines the op (one definition, so
eager, compiled and CUDA agree); an argument PyTorch has and the DSL does not support yet
is refused with an error naming it, never silently ignored.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .errors import op_error
from .tensor import Tensor


def _refuse(op: str, **unsupported: tuple[Any, Any]) -> None:
    """Raise for the first argument given a value other than the one the DSL supports."""
    for name, (value, supported) in unsupported.items():
        if value != supported:
            raise op_error(
                op,
                f"{name}={value!r} is not supported",
                f"{name}={value!r}",
                f"leave {name} at {supported!r}",
            )


def _tensor(op: str, x: Any) -> Tensor:
    if not isinstance(x, Tensor):
        raise op_error(op, "input must be a Tensor", type(x).__name__, "wrap it: Tensor(x)")
    return x


# core ops ------------------------------------------------------------------------------------
def relu(input: Tensor, inplace: bool = False) -> Tensor:  # noqa: A002 (PyTorch's name)
    """max(x, 0). `inplace` is accepted for PyTorch code; the result is always a new tensor."""
    return _tensor("relu", input).relu()


def sigmoid(input: Tensor) -> Tensor:  # noqa: A002
    return _tensor("sigmoid", input).sigmoid()


def tanh(input: Tensor) -> Tensor:  # noqa: A002
    return _tensor("tanh", input).tanh()


def softmax(input: Tensor, dim: int = -1, dtype: Any = None) -> Tensor:  # noqa: A002
    """exp(x) / sum(exp(x)) along `dim`; `dtype` casts the input first, as PyTorch does."""
    x = _tensor("softmax", input)
    return (x if dtype is None else x.cast(dtype)).softmax(dim=dim)


def log_softmax(input: Tensor, dim: int = -1, dtype: Any = None) -> Tensor:  # noqa: A002
    x = _tensor("log_softmax", input)
    return (x if dtype is None else x.cast(dtype)).log_softmax(dim=dim)


def cross_entropy(
    input: Tensor,  # noqa: A002
    target: Any,
    weight: Any = None,
    ignore_index: int = -100,
    reduction: str = "mean",
    label_smoothing: float = 0.0,
) -> Tensor:
    """Mean negative log-likelihood of integer class targets (N,) under logits (N, C)."""
    _refuse(
        "cross_entropy",
        weight=(weight, None),
        reduction=(reduction, "mean"),
        label_smoothing=(label_smoothing, 0.0),
    )
    return _tensor("cross_entropy", input).cross_entropy(target)


def mse_loss(input: Tensor, target: Any, reduction: str = "mean") -> Tensor:  # noqa: A002
    """Squared error, averaged ("mean"), summed ("sum") or elementwise ("none")."""
    if reduction not in ("mean", "sum", "none"):
        raise op_error(
            "mse_loss", "unknown reduction", repr(reduction), "pass 'mean', 'sum' or 'none'"
        )
    x = _tensor("mse_loss", input)
    if reduction == "mean":
        return x.mse_loss(target)
    d = x - x._check_target(target, "mse_loss")
    return d * d if reduction == "none" else (d * d).sum()


def linear(input: Tensor, weight: Tensor, bias: Tensor | None = None) -> Tensor:  # noqa: A002
    """x Wᵀ + b with weight (out_features, in_features)."""
    return _tensor("linear", input).linear(weight, bias)


def conv2d(
    input: Tensor,  # noqa: A002
    weight: Tensor,
    bias: Tensor | None = None,
    stride: Any = 1,
    padding: Any = 0,
    dilation: Any = 1,
    groups: int = 1,
) -> Tensor:
    return _tensor("conv2d", input).conv2d(weight, bias, stride, padding, dilation, groups)


def max_pool2d(
    input: Tensor,  # noqa: A002
    kernel_size: Any,
    stride: Any = None,
    padding: Any = 0,
    dilation: Any = 1,
    ceil_mode: bool = False,
    return_indices: bool = False,
) -> Tensor:
    _refuse("max_pool2d", ceil_mode=(ceil_mode, False), return_indices=(return_indices, False))
    return _tensor("max_pool2d", input).max_pool2d(kernel_size, stride, padding, dilation)


def avg_pool2d(
    input: Tensor,  # noqa: A002
    kernel_size: Any,
    stride: Any = None,
    padding: Any = 0,
    ceil_mode: bool = False,
    count_include_pad: bool = True,
    divisor_override: int | None = None,
) -> Tensor:
    _refuse(
        "avg_pool2d",
        ceil_mode=(ceil_mode, False),
        count_include_pad=(count_include_pad, True),
        divisor_override=(divisor_override, None),
    )
    return _tensor("avg_pool2d", input).avg_pool2d(kernel_size, stride, padding)


def adaptive_avg_pool2d(input: Tensor, output_size: Any) -> Tensor:  # noqa: A002
    return _tensor("adaptive_avg_pool2d", input).adaptive_avg_pool2d(output_size)


def dropout(
    input: Tensor,  # noqa: A002
    p: float = 0.5,
    training: bool = True,
    inplace: bool = False,
) -> Tensor:
    """Inverted dropout; identity when not `training` (PyTorch's default is training=True)."""
    return _tensor("dropout", input).dropout(p, training)


def one_hot(tensor: Tensor, num_classes: int = -1) -> Tensor:
    """int64 one-hot rows of integer `tensor`; num_classes=-1 means max(tensor) + 1."""
    labels = _tensor("one_hot", tensor)
    if num_classes == -1:
        values = labels.numpy()
        num_classes = int(values.max()) + 1 if values.size else 0
    return labels.one_hot(num_classes, dtype=np.int64)


__all__ = [
    "adaptive_avg_pool2d", "avg_pool2d", "conv2d", "cross_entropy", "dropout", "linear",
    "log_softmax", "max_pool2d", "mse_loss", "one_hot", "relu", "sigmoid", "softmax", "tanh",
]  # fmt: skip
