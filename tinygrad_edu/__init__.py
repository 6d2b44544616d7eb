"""tinygrad_edu: a readable autograd engine and compiler DSL for image neural networks.

- `Value`: a scalar with a gradient (micrograd-sized) and `explain()` of the chain rule.
- `Tensor`: numpy-backed arrays with PyTorch-style ops and autograd.
- `gradcheck`: analytical vs finite-difference gradients in float64.
Both `Value` and `Tensor` run the op table in `ops.py` through one autograd (`autograd.py`).
"""

import numpy as np

from . import jit, nn, optim
from .anomaly import detect_anomaly, is_anomaly_enabled, set_detect_anomaly
from .autograd import enable_grad, grad_enabled, inference_mode, no_grad
from .errors import OpError, OpIndexError
from .gradcheck import GradcheckError, gradcheck
from .method_forms import ValuesIndices, functions
from .rng import manual_seed
from .scalar import Value
from .tensor import (
    Tensor,
    allclose,
    cat,
    einsum,
    eye,
    full_like,
    isclose,
    meshgrid,
    ones_like,
    stack,
    where,
    zeros_like,
)

__version__ = "0.1.0"

# PyTorch's function forms, `tinygrad_edu.exp(x)` for `x.exp()` (the method is the definition)
FUNCTION_FORMS = (
    "abs",
    "acos",
    "acosh",
    "add",
    "all",
    "amax",
    "amin",
    "any",
    "arccos",
    "arcsin",
    "arctan",
    "arctan2",
    "argmax",
    "argmin",
    "argsort",
    "argwhere",
    "asin",
    "asinh",
    "atan",
    "atan2",
    "atanh",
    "bmm",
    "ceil",
    "chunk",
    "clamp",
    "clip",
    "clone",
    "copysign",
    "cos",
    "cosh",
    "cummax",
    "cummin",
    "cumprod",
    "cumsum",
    "diag",
    "diagonal",
    "div",
    "dot",
    "eq",
    "erf",
    "exp",
    "exp2",
    "expm1",
    "flatten",
    "flip",
    "floor",
    "floor_divide",
    "fmod",
    "gather",
    "ge",
    "gt",
    "hypot",
    "index_select",
    "isfinite",
    "isinf",
    "isnan",
    "kthvalue",
    "le",
    "lerp",
    "log",
    "log10",
    "log1p",
    "log2",
    "log_softmax",
    "logaddexp",
    "logcumsumexp",
    "logical_and",
    "logical_not",
    "logical_or",
    "logical_xor",
    "logsumexp",
    "lt",
    "masked_fill",
    "masked_select",
    "matmul",
    "max",
    "maximum",
    "mean",
    "median",
    "min",
    "minimum",
    "mm",
    "movedim",
    "mul",
    "mv",
    "nan_to_num",
    "narrow",
    "ne",
    "neg",
    "nonzero",
    "norm",
    "numel",
    "outer",
    "permute",
    "pow",
    "prod",
    "relu",
    "remainder",
    "repeat_interleave",
    "reshape",
    "roll",
    "round",
    "rsqrt",
    "select",
    "sigmoid",
    "sign",
    "sin",
    "sinh",
    "softmax",
    "sort",
    "split",
    "sqrt",
    "square",
    "squeeze",
    "std",
    "std_mean",
    "sub",
    "sum",
    "swapaxes",
    "t",
    "tan",
    "tanh",
    "tile",
    "topk",
    "trace",
    "transpose",
    "tril",
    "triu",
    "trunc",
    "unbind",
    "unflatten",
    "unsqueeze",
    "var",
    "var_mean",
)


def _assert(condition: object, message: str) -> None:
    """`torch._assert`, as torchvision's model code calls it: AssertionError(message)."""
    if not condition:
        raise AssertionError(message)


globals().update(functions(FUNCTION_FORMS))
# the factories under PyTorch's module-level names
zeros, ones, full = Tensor.zeros, Tensor.ones, Tensor.full
rand, randn, arange = Tensor.rand, Tensor.randn, Tensor.arange
linspace, empty, randint = Tensor.linspace, Tensor.empty, Tensor.randint
# dtypes under PyTorch's names (numpy's dtypes: what every dtype= argument takes)
float32, float64, int32, int64, uint8 = np.float32, np.float64, np.int32, np.int64, np.uint8
float, double, long = np.float32, np.float64, np.int64  # noqa: A001 (torch.float, ...)
bool = np.bool_  # noqa: A001 (torch.bool)


__all__ = [
    "GradcheckError",
    "OpError",
    "OpIndexError",
    "Tensor",
    "Value",
    "cat",
    "detect_anomaly",
    "enable_grad",
    "grad_enabled",
    "gradcheck",
    "is_anomaly_enabled",
    "manual_seed",
    "nn",
    "optim",
    "set_detect_anomaly",
    "no_grad",
    "inference_mode",
    "jit",
    "stack",
    "where",
    # tensor functions of issue 13
    "allclose",
    "einsum",
    "eye",
    "full_like",
    "isclose",
    "ones_like",
    "zeros_like",
    # PyTorch's function forms, factories and dtype names
    "ValuesIndices",
    "arange",
    "full",
    "ones",
    "rand",
    "randn",
    "empty",
    "linspace",
    "meshgrid",
    "randint",
    "tensor",
    "zeros",
    *FUNCTION_FORMS,
]
