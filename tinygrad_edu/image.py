"""Image-network ops built as composites of the op table's primitives.

Pooling with PyTorch's `ceil_mode`, `count_include_pad` and `divisor_override`, transposed
convolution, interpolation, padding modes, conv1d and adaptive max pooling. Each is written
from primitives (pad, slices, cat, matmul, conv2d and its adjoint, the pools), so eager
autograd, the compiler and every backend get them from one definition with no new kernels.
`Tensor`'s methods and `tinygrad_edu.functional` call these functions.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from . import ops
from .errors import op_error
from .tensor import Pair, Tensor, _pair, where

# ---------------------------------------------------------------------------------------------
# pooling: PyTorch's output-size rule, with ceil_mode
# ---------------------------------------------------------------------------------------------


def pool_out_size(
    size: int, kernel: int, stride: int, padding: int, dilation: int, ceil_mode: bool
) -> int:
    """PyTorch's pooling output length. With `ceil_mode` the division rounds up, but the last
    window must start inside the input or the left padding (else it is dropped)."""
    span = size + 2 * padding - dilation * (kernel - 1) - 1
    out = (span + (stride - 1 if ceil_mode else 0)) // stride + 1
    if ceil_mode and (out - 1) * stride >= size + padding:
        out -= 1
    return out


def _pool_args(
    op: str, x: Tensor, kernel_size: Any, stride: Any, padding: Any, dilation: Any
) -> tuple[Pair, Pair, Pair, Pair]:
    if x.ndim != 4:
        raise op_error(
            op,
            "input must be (N, C, H, W) or (C, H, W)",
            x.shape,
            "add a batch dim with unsqueeze(0) for a single image",
        )
    kernel = _pair(kernel_size, "kernel_size", op)
    empty = stride is None or (isinstance(stride, (tuple, list)) and len(stride) == 0)
    strides = kernel if empty else _pair(stride, "stride", op)
    pads = _pair(padding, "padding", op)
    dil = _pair(dilation, "dilation", op)
    for name, v, low in (("kernel_size", kernel, 1), ("stride", strides, 1), ("dilation", dil, 1)):
        if min(v) < low:
            raise op_error(op, f"{name} must be >= 1, got {v}", x.shape, f"pass a {name} >= 1")
    if min(pads) < 0 or any(pads[i] * 2 > kernel[i] for i in range(2)):
        raise op_error(
            op,
            f"padding {pads} must be >= 0 and at most half the kernel {kernel}",
            x.shape,
            "use 0 <= padding <= kernel_size // 2",
        )
    return kernel, strides, pads, dil


def _ceil_extra(
    x: Tensor, kernel: Pair, stride: Pair, padding: Pair, dilation: Pair, out_hw: Pair
) -> Pair:
    """How many positions past the right padding the last (ceil_mode) window reaches."""
    extra = []
    for i in range(2):
        needed = (out_hw[i] - 1) * stride[i] + dilation[i] * (kernel[i] - 1) + 1
        extra.append(max(0, needed - (x.shape[2 + i] + 2 * padding[i])))
    return extra[0], extra[1]


def _out_hw(
    op: str, x: Tensor, kernel: Pair, stride: Pair, padding: Pair, dilation: Pair, ceil: bool
) -> Pair:
    out = tuple(
        pool_out_size(x.shape[2 + i], kernel[i], stride[i], padding[i], dilation[i], ceil)
        for i in range(2)
    )
    if min(out) < 1:
        eff = tuple(dilation[i] * (kernel[i] - 1) + 1 for i in range(2))
        padded = tuple(x.shape[2 + i] + 2 * padding[i] for i in range(2))
        raise op_error(
            op,
            f"window {eff} is larger than the padded input {padded}",
            x.shape,
            "use a smaller kernel/dilation, more padding, or a larger input",
        )
    return out  # type: ignore[return-value]


def max_pool2d(
    x: Tensor,
    kernel_size: Any,
    stride: Any = None,
    padding: Any = 0,
    dilation: Any = 1,
    ceil_mode: bool = False,
) -> Tensor:
    """torch.nn.functional.max_pool2d. With ceil_mode the input is padded on the right with
    the dtype's lowest value so the extra windows exist, then the max_pool2d primitive runs."""
    if x.ndim == 3:
        return max_pool2d(x.unsqueeze(0), kernel_size, stride, padding, dilation, ceil_mode)[0]
    kernel, stride, padding, dilation = _pool_args(
        "max_pool2d", x, kernel_size, stride, padding, dilation
    )
    out_hw = _out_hw("max_pool2d", x, kernel, stride, padding, dilation, bool(ceil_mode))
    if any(
        ops._window_in_padding(
            x.shape[2 + i], out_hw[i], kernel[i], stride[i], padding[i], dilation[i]
        )
        for i in range(2)
    ):
        raise op_error(
            "max_pool2d",
            "a window lies entirely in the padding",
            x.shape,
            "use less padding or dilation (or a larger input)",
        )
    extra = _ceil_extra(x, kernel, stride, padding, dilation, out_hw)
    if extra == (0, 0):
        return x._call(
            ops.MAX_POOL2D, kernel=kernel, stride=stride, padding=padding, dilation=dilation
        )
    ph, pw = padding
    pads = ((0, 0), (0, 0), (ph, ph + extra[0]), (pw, pw + extra[1]))
    xpad = x._call(ops.PAD, pads=pads, value=float(ops.lowest_value(x.dtype)))
    return xpad._call(
        ops.MAX_POOL2D, kernel=kernel, stride=stride, padding=(0, 0), dilation=dilation
    )


def max_pool2d_with_indices(
    x: Tensor,
    kernel_size: Any,
    stride: Any = None,
    padding: Any = 0,
    dilation: Any = 1,
    ceil_mode: bool = False,
) -> tuple[Tensor, Tensor]:
    """max_pool2d and, as PyTorch's return_indices=True gives, the int64 position of each
    window's first maximum, flattened within its (H, W) plane: h * W + w."""
    out = max_pool2d(x, kernel_size, stride, padding, dilation, ceil_mode)
    if x.ndim == 3:
        _, idx = max_pool2d_with_indices(
            x.unsqueeze(0), kernel_size, stride, padding, dilation, ceil_mode
        )
        return out, idx[0]
    kernel, stride, padding, dilation = _pool_args(
        "max_pool2d", x, kernel_size, stride, padding, dilation
    )
    oh, ow = out.shape[2:]
    extra = _ceil_extra(x, kernel, stride, padding, dilation, (oh, ow))
    low = float(ops.lowest_value(x.dtype))
    ph, pw = padding
    pads = ((0, 0), (0, 0), (ph, ph + extra[0]), (pw, pw + extra[1]))
    xpad = x.detach()._call(ops.PAD, pads=pads, value=low)
    win = xpad.unfold2d(kernel, stride, (0, 0), dilation, pad_value=low)
    n, c = x.shape[:2]
    taps = kernel[0] * kernel[1]
    first = win.reshape(n, c, taps, oh, ow).argmax(axis=2, keepdim=True)
    i, j, r, q = np.meshgrid(
        np.arange(kernel[0]), np.arange(kernel[1]), np.arange(oh), np.arange(ow), indexing="ij"
    )
    rows = r * stride[0] - ph + i * dilation[0]
    cols = q * stride[1] - pw + j * dilation[1]
    flat = (rows * x.shape[3] + cols).reshape(1, 1, taps, oh, ow).astype(np.int64)
    tap_ids = Tensor(np.arange(taps, dtype=np.int64).reshape(1, 1, taps, 1, 1))
    chosen = where(first == tap_ids, Tensor(flat), Tensor(np.zeros((), np.int64)))
    return out, chosen.sum(axis=2)


def _avg_divisor(
    size: int, out: int, kernel: int, stride: int, padding: int, include_pad: bool
) -> np.ndarray:
    """PyTorch's per-window divisor along one axis: the window clipped to the padded input
    (count_include_pad) or to the input itself."""
    starts = np.arange(out) * stride - padding
    ends = np.minimum(starts + kernel, size + padding)
    if not include_pad:
        starts, ends = np.maximum(starts, 0), np.minimum(ends, size)
    return (ends - starts).astype(np.float64)


def avg_pool2d(
    x: Tensor,
    kernel_size: Any,
    stride: Any = None,
    padding: Any = 0,
    ceil_mode: bool = False,
    count_include_pad: bool = True,
    divisor_override: int | None = None,
) -> Tensor:
    """torch.nn.functional.avg_pool2d. The plain case is the avg_pool2d primitive; otherwise
    the window sums (that primitive on a zero-padded input, times the kernel area) are divided
    by PyTorch's per-window divisor, a constant."""
    if x.ndim == 3:
        out = avg_pool2d(
            x.unsqueeze(0),
            kernel_size,
            stride,
            padding,
            ceil_mode,
            count_include_pad,
            divisor_override,
        )
        return out.squeeze(0)
    kernel, stride, padding, _ = _pool_args("avg_pool2d", x, kernel_size, stride, padding, 1)
    if divisor_override is not None and (
        not isinstance(divisor_override, (int, np.integer)) or divisor_override == 0
    ):
        raise op_error(
            "avg_pool2d",
            f"divisor_override must be a non-zero int, got {divisor_override!r}",
            x.shape,
            "pass divisor_override=None or a positive int",
        )
    out_hw = _out_hw("avg_pool2d", x, kernel, stride, padding, (1, 1), bool(ceil_mode))
    extra = _ceil_extra(x, kernel, stride, padding, (1, 1), out_hw)
    attrs = dict(kernel=kernel, stride=stride, dilation=(1, 1))
    if extra == (0, 0) and divisor_override is None and (count_include_pad or padding == (0, 0)):
        return x._call(ops.AVG_POOL2D, padding=padding, **attrs)
    ph, pw = padding
    xpad = x._call(
        ops.PAD, pads=((0, 0), (0, 0), (ph, ph + extra[0]), (pw, pw + extra[1])), value=0.0
    )
    means = xpad._call(ops.AVG_POOL2D, padding=(0, 0), **attrs)
    area = kernel[0] * kernel[1]
    if divisor_override is not None:
        return means * (area / float(divisor_override))
    rows, cols = (
        _avg_divisor(x.shape[2 + i], out_hw[i], kernel[i], stride[i], padding[i], count_include_pad)
        for i in range(2)
    )
    scale = area / np.outer(rows, cols)  # exact small integers: no rounding before the divide
    dtype = x.dtype if x.dtype.kind == "f" else np.dtype(np.float32)
    return means * Tensor(scale.reshape(1, 1, *out_hw), dtype=dtype)


# ---------------------------------------------------------------------------------------------
# transposed convolution: the adjoint of conv2d (the conv2d_grad_input primitive), given an
# output shape
# ---------------------------------------------------------------------------------------------


def conv_transpose2d(
    x: Tensor,
    weight: Tensor,
    bias: Tensor | None = None,
    stride: Any = 1,
    padding: Any = 0,
    output_padding: Any = 0,
    groups: int = 1,
    dilation: Any = 1,
) -> Tensor:
    """torch.nn.functional.conv_transpose2d: weight (C_in, C_out / groups, kH, kW); output
    side (H - 1) * stride - 2 * padding + dilation * (kH - 1) + output_padding + 1.

    It is conv2d's input gradient with `x` as the output gradient, so its VJP, compiled
    kernels and CUDA source are conv2d's."""
    op = "conv_transpose2d"
    if not isinstance(weight, Tensor):
        raise TypeError(f"{op}: weight must be a Tensor, got {type(weight).__name__}")
    if x.ndim == 3:
        return conv_transpose2d(
            x.unsqueeze(0), weight, bias, stride, padding, output_padding, groups, dilation
        )[0]
    shapes = f"input {x.shape}, weight {weight.shape}"
    if x.ndim != 4 or weight.ndim != 4:
        raise op_error(
            op,
            "input must be (N, C_in, H, W) and weight (C_in, C_out/groups, kH, kW)",
            shapes,
            "add a batch dim with unsqueeze(0); weight is laid out in-channels first",
        )
    if not isinstance(groups, (int, np.integer)) or isinstance(groups, bool) or groups < 1:
        raise op_error(op, f"groups must be a positive int, got {groups!r}", shapes, "groups=1")
    groups = int(groups)
    if weight.shape[0] % groups:
        raise op_error(
            op,
            f"weight's {weight.shape[0]} in-channels do not divide into groups={groups}",
            shapes,
            "pick groups dividing in_channels",
        )
    if x.shape[1] != weight.shape[0]:
        raise op_error(
            op,
            f"input has {x.shape[1]} channels but weight expects {weight.shape[0]}",
            shapes,
            "weight.shape[0] must equal the input's channels (C_in, C_out/groups, kH, kW)",
        )
    s = _pair(stride, "stride", op)
    p = _pair(padding, "padding", op)
    d = _pair(dilation, "dilation", op)
    extra = _pair(output_padding, "output_padding", op)
    if min(s) < 1 or min(d) < 1 or min(p) < 0 or min(extra) < 0:
        raise op_error(
            op,
            f"stride {s} and dilation {d} must be >= 1, padding {p} and output_padding "
            f"{extra} >= 0",
            shapes,
            "pass non-negative paddings and positive strides/dilations",
        )
    if any(extra[i] >= max(s[i], d[i]) for i in range(2)):
        raise op_error(
            op,
            f"output_padding {extra} must be smaller than stride {s} or dilation {d}",
            shapes,
            "use output_padding < stride (it only picks among the sizes a stride rounds)",
        )
    kernel = weight.shape[2:]
    out_hw = tuple(
        (x.shape[2 + i] - 1) * s[i] - 2 * p[i] + d[i] * (kernel[i] - 1) + extra[i] + 1
        for i in range(2)
    )
    if min(out_hw) < 1:
        raise op_error(
            op,
            f"the output would be {out_hw}",
            shapes,
            "use less padding or a larger input",
        )
    c_out = weight.shape[1] * groups
    # conv2d over the output shape has x.shape[2:] + output_padding // stride windows: the
    # rows past the input are zero windows (output_padding >= stride only with dilation)
    more = (extra[0] // s[0], extra[1] // s[1])
    g = x
    if more != (0, 0):
        g = x._call(ops.PAD, pads=((0, 0), (0, 0), (0, more[0]), (0, more[1])), value=0.0)
    out = g.conv2d_grad_input(weight, (x.shape[0], c_out, *out_hw), s, p, d, groups)
    if bias is None:
        return out
    if bias.shape != (c_out,):
        raise op_error(
            op,
            "bias must have one entry per output channel",
            f"bias {bias.shape}, weight {weight.shape}",
            f"pass a bias of shape ({c_out},)",
        )
    return out + bias.reshape(1, -1, 1, 1)
