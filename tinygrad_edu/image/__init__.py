"""Image-network ops built as composites of the op table's primitives.

Pooling with PyTorch's `ceil_mode`, `count_include_pad`, `divisor_override` and
`return_indices` and adaptive max pooling (`pooling`), transposed convolution and conv1d
(`conv`), interpolation (`resize`) and padding modes (`padding`). Each is written from
primitives (pad, slices, cat, matmul, conv2d and its adjoint, the pools), so eager autograd,
the compiler and every backend get them from one definition with no new kernels. `Tensor`'s
methods, `tinygrad_edu.nn`'s modules and `tinygrad_edu.functional` call these functions.
"""

from .conv import conv1d, conv_transpose2d
from .padding import pad
from .pooling import (
    adaptive_max_pool2d,
    avg_pool2d,
    max_pool2d,
    max_pool2d_with_indices,
    pool_out_size,
)
from .resize import interpolate

__all__ = [
    "adaptive_max_pool2d",
    "avg_pool2d",
    "conv1d",
    "conv_transpose2d",
    "interpolate",
    "max_pool2d",
    "max_pool2d_with_indices",
    "pad",
    "pool_out_size",
]
