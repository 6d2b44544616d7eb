"""torch.nn.init's schemes the torchvision models use, drawn from `tinygrad_edu.rng`.

Each writes a parameter's array in place, as PyTorch's trailing-underscore functions do, so a
model built after `manual_seed(s)` has the same weights every time. Fans follow PyTorch: for a
weight of shape (out, in, *kernel), fan_in = in * prod(kernel), fan_out = out * prod(kernel)
(for a grouped convolution `in` is the channels per group, as in the weight's shape).
"""

from __future__ import annotations

import math

import numpy as np

from tinygrad_edu import Tensor, rng


def _fans(weight: Tensor) -> tuple[int, int]:
    if weight.ndim < 2:
        raise ValueError(
            f"init: fan_in/fan_out need a weight of 2 or more dims, got shape {weight.shape}"
        )
    receptive = int(np.prod(weight.shape[2:]))
    return weight.shape[1] * receptive, weight.shape[0] * receptive


def _gain(nonlinearity: str, a: float) -> float:
    if nonlinearity == "relu":
        return math.sqrt(2.0)
    if nonlinearity == "leaky_relu":
        return math.sqrt(2.0 / (1 + a * a))
    if nonlinearity in ("linear", "conv2d", "sigmoid"):
        return 1.0
    raise ValueError(
        f"init: unsupported nonlinearity {nonlinearity!r}; use 'relu', 'leaky_relu' or 'linear'"
    )


def _fan(weight: Tensor, mode: str) -> int:
    if mode not in ("fan_in", "fan_out"):
        raise ValueError(f"init: mode must be 'fan_in' or 'fan_out', got {mode!r}")
    fan_in, fan_out = _fans(weight)
    return fan_in if mode == "fan_in" else fan_out


def kaiming_normal_(
    weight: Tensor, a: float = 0.0, mode: str = "fan_in", nonlinearity: str = "leaky_relu"
) -> Tensor:
    """N(0, std²) with std = gain / √fan (He et al., 2015), torch.nn.init's defaults."""
    std = _gain(nonlinearity, a) / math.sqrt(_fan(weight, mode))
    weight.data[...] = rng.generator().normal(0.0, std, weight.shape)
    return weight


def kaiming_uniform_(
    weight: Tensor, a: float = 0.0, mode: str = "fan_in", nonlinearity: str = "leaky_relu"
) -> Tensor:
    """U(±bound) with bound = gain * √(3 / fan), torch.nn.init's defaults."""
    bound = _gain(nonlinearity, a) * math.sqrt(3.0 / _fan(weight, mode))
    weight.data[...] = rng.generator().uniform(-bound, bound, weight.shape)
    return weight


def normal_(tensor: Tensor, mean: float = 0.0, std: float = 1.0) -> Tensor:
    """N(mean, std²)."""
    tensor.data[...] = rng.generator().normal(mean, std, tensor.shape)
    return tensor


def constant_(tensor: Tensor, value: float) -> Tensor:
    """Every element set to `value`."""
    tensor.data[...] = value
    return tensor
