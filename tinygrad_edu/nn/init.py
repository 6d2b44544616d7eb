"""nn.init: PyTorch's weight initialisers, under its names and with its formulas.

torchvision's model code sets its weights this way (`nn.init.kaiming_normal_(m.weight,
mode="fan_out", nonlinearity="relu")`, `nn.init.constant_(m.bias, 0)`, ...), so a model ported
from it runs as written. Each function fills its tensor in place (`Tensor.normal_`, ...) from
the global generator (`tinygrad_edu.manual_seed`), without recording a gradient, and returns
it. The formulas (fans, gains, bounds) are PyTorch's, from its documentation of
`torch.nn.init`; the numbers drawn are this project's generator's, not torch's.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from ..autograd import no_grad
from ..errors import op_error
from ..tensor import Tensor

__all__ = [
    "calculate_gain",
    "constant_",
    "dirac_",
    "eye_",
    "kaiming_normal_",
    "kaiming_uniform_",
    "normal_",
    "ones_",
    "orthogonal_",
    "trunc_normal_",
    "uniform_",
    "xavier_normal_",
    "xavier_uniform_",
    "zeros_",
]

_LINEAR = ("linear", "conv1d", "conv2d", "conv3d", "conv_transpose1d", "conv_transpose2d")
_LINEAR += ("conv_transpose3d", "sigmoid")


def calculate_gain(nonlinearity: str, param: float | None = None) -> float:
    """The recommended scale of the weights before `nonlinearity` (PyTorch's table): 1 for
    linear layers and sigmoid, 5/3 for tanh, sqrt(2) for relu, sqrt(2 / (1 + slope^2)) for
    leaky_relu (slope `param`, default 0.01), 3/4 for selu."""
    if nonlinearity in _LINEAR:
        return 1.0
    if nonlinearity == "tanh":
        return 5.0 / 3
    if nonlinearity == "relu":
        return math.sqrt(2.0)
    if nonlinearity == "leaky_relu":
        slope = 0.01 if param is None else param
        if isinstance(slope, bool) or not isinstance(slope, (int, float)):
            raise op_error(
                "calculate_gain",
                f"negative_slope {slope!r} is not a number",
                nonlinearity,
                "pass e.g. param=0.2",
            )
        return math.sqrt(2.0 / (1 + slope**2))
    if nonlinearity == "selu":
        return 3.0 / 4
    raise op_error(
        "calculate_gain",
        f"unsupported nonlinearity {nonlinearity!r}",
        nonlinearity,
        "use one of linear, conv2d, sigmoid, tanh, relu, leaky_relu, selu",
    )


def _fans(tensor: Tensor, op: str) -> tuple[int, int]:
    """(fan_in, fan_out) as PyTorch counts them: dims 1 and 0 times the receptive field (the
    product of the remaining dims)."""
    if tensor.ndim < 2:
        raise op_error(
            op,
            "fan in and fan out need a tensor of at least 2 dims",
            tensor.shape,
            "use normal_/uniform_/constant_ for biases and other 1-D tensors",
        )
    receptive = math.prod(tensor.shape[2:])
    return tensor.shape[1] * receptive, tensor.shape[0] * receptive


def _fan(tensor: Tensor, mode: str, op: str) -> int:
    if mode not in ("fan_in", "fan_out"):
        raise op_error(
            op,
            f"mode must be 'fan_in' or 'fan_out', got {mode!r}",
            tensor.shape,
            "pass mode='fan_in' (the default) or mode='fan_out'",
        )
    fan_in, fan_out = _fans(tensor, op)
    return fan_in if mode == "fan_in" else fan_out


def uniform_(tensor: Tensor, a: float = 0.0, b: float = 1.0, generator: Any = None) -> Tensor:
    """Fill with U(a, b)."""
    with no_grad():
        return tensor.uniform_(a, b, generator=generator)


def normal_(tensor: Tensor, mean: float = 0.0, std: float = 1.0, generator: Any = None) -> Tensor:
    """Fill with N(mean, std^2)."""
    with no_grad():
        return tensor.normal_(mean, std, generator=generator)


def trunc_normal_(
    tensor: Tensor,
    mean: float = 0.0,
    std: float = 1.0,
    a: float = -2.0,
    b: float = 2.0,
    generator: Any = None,
) -> Tensor:
    """Fill with N(mean, std^2) restricted to [a, b] (a and b absolute, as PyTorch's): draws
    outside are drawn again."""
    if not a < b:
        raise op_error("trunc_normal_", f"a={a} must be below b={b}", tensor.shape, "pass a < b")
    from .. import rng

    gen = generator if generator is not None else rng.generator()
    count = math.prod(tensor.shape)
    out = np.empty(count, np.float64)
    todo = np.arange(count)
    for _ in range(1000):  # each round keeps at least P(a <= x <= b) of the rest
        if not todo.size:
            break
        draw = gen.normal(mean, std, todo.size)
        ok = (draw >= a) & (draw <= b)
        out[todo[ok]] = draw[ok]
        todo = todo[~ok]
    if todo.size:
        raise op_error(
            "trunc_normal_",
            f"[{a}, {b}] holds almost none of N({mean}, {std}^2)",
            tensor.shape,
            "put the interval around the mean (a and b are absolute values)",
        )
    with no_grad():
        return tensor.copy_(Tensor(out.reshape(tensor.shape), dtype=tensor.dtype))


def constant_(tensor: Tensor, val: float) -> Tensor:
    with no_grad():
        return tensor.fill_(val)


def ones_(tensor: Tensor) -> Tensor:
    return constant_(tensor, 1.0)


def zeros_(tensor: Tensor) -> Tensor:
    return constant_(tensor, 0.0)


def eye_(tensor: Tensor) -> Tensor:
    """The identity matrix (a 2-D tensor)."""
    if tensor.ndim != 2:
        raise op_error("eye_", "needs a 2-D tensor", tensor.shape, "pass a matrix")
    with no_grad():
        return tensor.copy_(Tensor(np.eye(*tensor.shape), dtype=tensor.dtype))


def dirac_(tensor: Tensor, groups: int = 1) -> Tensor:
    """A convolution weight (3- to 5-D) that passes its input through: in each group, output
    channel i has a one at input channel i's centre tap."""
    if not 3 <= tensor.ndim <= 5 or tensor.shape[0] % groups:
        raise op_error(
            "dirac_",
            f"needs a 3-5-D weight whose {tensor.shape[0] if tensor.ndim else 0} output "
            f"channels divide into {groups} groups",
            tensor.shape,
            "pass a convolution weight and a groups that divides its first dim",
        )
    out = np.zeros(tensor.shape)
    per_group = tensor.shape[0] // groups
    centre = tuple(n // 2 for n in tensor.shape[2:])
    for g in range(groups):
        for i in range(min(per_group, tensor.shape[1])):
            out[(g * per_group + i, i, *centre)] = 1.0
    with no_grad():
        return tensor.copy_(Tensor(out, dtype=tensor.dtype))


def xavier_uniform_(tensor: Tensor, gain: float = 1.0, generator: Any = None) -> Tensor:
    """U(-b, b) with b = gain * sqrt(6 / (fan_in + fan_out)) (Glorot & Bengio, 2010)."""
    fan_in, fan_out = _fans(tensor, "xavier_uniform_")
    bound = gain * math.sqrt(6.0 / (fan_in + fan_out))
    return uniform_(tensor, -bound, bound, generator)


def xavier_normal_(tensor: Tensor, gain: float = 1.0, generator: Any = None) -> Tensor:
    """N(0, std^2) with std = gain * sqrt(2 / (fan_in + fan_out))."""
    fan_in, fan_out = _fans(tensor, "xavier_normal_")
    return normal_(tensor, 0.0, gain * math.sqrt(2.0 / (fan_in + fan_out)), generator)


def kaiming_uniform_(
    tensor: Tensor,
    a: float = 0.0,
    mode: str = "fan_in",
    nonlinearity: str = "leaky_relu",
    generator: Any = None,
) -> Tensor:
    """U(-b, b) with b = sqrt(3) * std (He et al., 2015; std as `kaiming_normal_`)."""
    bound = math.sqrt(3.0) * _kaiming_std(tensor, a, mode, nonlinearity, "kaiming_uniform_")
    return uniform_(tensor, -bound, bound, generator)


def kaiming_normal_(
    tensor: Tensor,
    a: float = 0.0,
    mode: str = "fan_in",
    nonlinearity: str = "leaky_relu",
    generator: Any = None,
) -> Tensor:
    """N(0, std^2) with std = gain / sqrt(fan); `a` is leaky_relu's negative slope."""
    std = _kaiming_std(tensor, a, mode, nonlinearity, "kaiming_normal_")
    return normal_(tensor, 0.0, std, generator)


def _kaiming_std(tensor: Tensor, a: float, mode: str, nonlinearity: str, op: str) -> float:
    fan = _fan(tensor, mode, op)
    return calculate_gain(nonlinearity, a) / math.sqrt(fan) if fan else 0.0


def orthogonal_(tensor: Tensor, gain: float = 1.0, generator: Any = None) -> Tensor:
    """A (semi-)orthogonal matrix, times `gain`, of the tensor flattened to (dim 0, rest):
    the Q of a QR decomposition of a normal matrix, its signs fixed by R's diagonal."""
    if tensor.ndim < 2:
        raise op_error("orthogonal_", "needs at least 2 dims", tensor.shape, "pass a matrix")
    from .. import rng

    gen = generator if generator is not None else rng.generator()
    rows, cols = tensor.shape[0], math.prod(tensor.shape[1:])
    flat = gen.normal(0.0, 1.0, (rows, cols))
    if rows < cols:
        flat = flat.T
    q, r = np.linalg.qr(flat)
    q = q * np.sign(np.diag(r))
    if rows < cols:
        q = q.T
    with no_grad():
        return tensor.copy_(Tensor((gain * q).reshape(tensor.shape), dtype=tensor.dtype))
