"""tinygrad_edu: a readable autograd engine and compiler DSL for image neural networks.

- `Value`: a scalar with a gradient (micrograd-sized) and `explain()` of the chain rule.
- `Tensor`: numpy-backed arrays with PyTorch-style ops and autograd.
- `gradcheck`: analytical vs finite-difference gradients in float64.
Both `Value` and `Tensor` run the op table in `ops.py` through one autograd (`autograd.py`).
"""

from . import nn, optim
from .autograd import detect_anomaly, enable_grad, grad_enabled, no_grad, set_detect_anomaly
from .errors import OpError, OpIndexError
from .gradcheck import GradcheckError, gradcheck
from .rng import manual_seed
from .scalar import Value
from .tensor import Tensor, cat, stack, where

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
    "manual_seed",
    "nn",
    "optim",
    "no_grad",
    "set_detect_anomaly",
    "stack",
    "where",
]
