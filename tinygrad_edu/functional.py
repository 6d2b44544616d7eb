"""torch.nn.functional's names and signatures over the DSL's ops.

Each function here is a thin forwarder: the op itself is defined once (the op table, a Tensor
method or a composite module), so code written against `torch.nn.functional` reads the same:
`import tinygrad_edu.functional as F`.
"""

from __future__ import annotations

from typing import Any

from . import image
from .tensor import Tensor

# image ops


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


def interpolate(
    input: Tensor,
    size: Any = None,
    scale_factor: Any = None,
    mode: str = "nearest",
    align_corners: bool | None = None,
    recompute_scale_factor: bool | None = None,
    antialias: bool = False,
) -> Tensor:
    """Resize (N, C, L) or (N, C, H, W): 'nearest', 'nearest-exact', 'linear', 'bilinear',
    'area'."""
    return image.interpolate(
        input, size, scale_factor, mode, align_corners, recompute_scale_factor, antialias
    )


def pad(input: Tensor, pad: Any, mode: str = "constant", value: float | None = None) -> Tensor:
    """Pad by (left, right, top, bottom, ...), last dim first: 'constant', 'reflect',
    'replicate', 'circular'."""
    return image.pad(input, pad, mode, value)


def conv1d(
    input: Tensor,
    weight: Tensor,
    bias: Tensor | None = None,
    stride: Any = 1,
    padding: Any = 0,
    dilation: Any = 1,
    groups: int = 1,
) -> Tensor:
    """1-D convolution, input (N, C, L), weight (O, C / groups, K)."""
    return image.conv1d(input, weight, bias, stride, padding, dilation, groups)


def adaptive_max_pool2d(input: Tensor, output_size: Any, return_indices: bool = False) -> Any:
    """Adaptive max pooling; (values, int64 flat indices) with `return_indices=True`."""
    return image.adaptive_max_pool2d(input, output_size, return_indices)
