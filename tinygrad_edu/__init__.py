"""tinygrad_edu: a readable autograd engine and compiler DSL for image neural networks.

- `Value`: a scalar with a gradient (micrograd-sized) and `explain()` of the chain rule.
- `Tensor`: numpy-backed arrays with PyTorch-style ops and autograd.
- `gradcheck`: analytical vs finite-difference gradients in float64.
Both `Value` and `Tensor` run the op table in `ops.py` through one autograd (`autograd.py`).
"""

from . import nn, optim
from .anomaly import detect_anomaly, is_anomaly_enabled, set_detect_anomaly
from .autograd import enable_grad, grad_enabled, no_grad
from .errors import OpError, OpIndexError
from .gradcheck import GradcheckError, gradcheck
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
    ones_like,
    stack,
    where,
    zeros_like,
)

__version__ = "0.1.0"

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
]
