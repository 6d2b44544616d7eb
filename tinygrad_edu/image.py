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


# ---------------------------------------------------------------------------------------------
# interpolate: one spatial axis at a time, from constant index tables or weight matrices
# ---------------------------------------------------------------------------------------------
_INTERPOLATE_MODES = ("nearest", "nearest-exact", "linear", "bilinear", "area")


def _nearest_sources(size: int, out: int, scale: float | None, exact: bool) -> np.ndarray:
    """PyTorch's nearest source index per output index, in float32 as its kernels compute it:
    floor(dst * scale) ('nearest') or floor((dst + 0.5) * scale) ('nearest-exact')."""
    dst = np.arange(out)
    if not exact and out == size:
        return dst
    if not exact and out == 2 * size:
        return dst // 2
    step = np.float32(1.0 / scale) if scale is not None and scale > 0 else np.float32(size / out)
    pos = (dst.astype(np.float32) + np.float32(0.5 if exact else 0.0)) * step
    return np.minimum(np.floor(pos).astype(np.int64), size - 1)


def _linear_weights(
    size: int, out: int, scale: float | None, align_corners: bool, dtype: np.dtype
) -> np.ndarray:
    """The (out, size) matrix of PyTorch's linear interpolation along one axis, computed in
    the input's float type as PyTorch computes its source positions and lambdas."""
    one = dtype.type(1)
    dst = np.arange(out).astype(dtype)
    if align_corners:
        step = dtype.type((size - 1) / (out - 1)) if out > 1 else dtype.type(0)
        src = step * dst
    else:
        step = (
            dtype.type(1.0 / scale) if scale is not None and scale > 0 else dtype.type(size / out)
        )
        src = np.maximum(step * (dst + dtype.type(0.5)) - dtype.type(0.5), dtype.type(0))
    low = src.astype(np.int64)  # src >= 0, so truncation is floor
    high = np.where(low < size - 1, low + 1, low)
    frac = (src - low.astype(dtype)).astype(dtype)
    weights = np.zeros((out, size), dtype)
    rows = np.arange(out)
    np.add.at(weights, (rows, low), one - frac)
    np.add.at(weights, (rows, high), frac)
    return weights


def _gather_axis(x: Tensor, axis: int, sources: np.ndarray) -> Tensor:
    """x indexed by `sources` along `axis`, as view ops where the pattern allows (a repeat
    per input element, or a strided slice), else an index-array getitem."""
    size, out = x.shape[axis], len(sources)
    lead = (slice(None),) * axis
    if out == size and np.array_equal(sources, np.arange(size)):
        return x
    if out % size == 0 and np.array_equal(sources, np.arange(out) // (out // size)):
        rep = out // size
        wide = x.unsqueeze(axis + 1)
        target = list(wide.shape)
        target[axis + 1] = rep
        shape = list(x.shape)
        shape[axis] = out
        return wide.expand(*target).reshape(*shape)
    step = int(sources[1] - sources[0]) if out > 1 else 1
    start = int(sources[0])
    if step > 0 and np.array_equal(sources, start + step * np.arange(out)):
        return x[(*lead, slice(start, start + step * (out - 1) + 1, step))]
    return x[(*lead, sources)]


def _interpolate_sizes(
    x: Tensor, size: Any, scale_factor: Any, recompute: bool | None
) -> tuple[list[int], list[float | None]]:
    op = "interpolate"
    spatial = x.ndim - 2
    if (size is None) == (scale_factor is None):
        raise op_error(
            op,
            "exactly one of size and scale_factor must be given",
            x.shape,
            "pass size=(H, W) or scale_factor=2",
        )
    if size is not None:
        sizes = [size] * spatial if isinstance(size, (int, np.integer)) else list(size)
        if len(sizes) != spatial or not all(
            isinstance(s, (int, np.integer)) and s >= 1 for s in sizes
        ):
            raise op_error(
                op,
                f"size {size!r} must give {spatial} positive ints for this input",
                x.shape,
                f"pass size with {spatial} entries (the spatial dims)",
            )
        return [int(s) for s in sizes], [None] * spatial
    scales = (
        [float(scale_factor)] * spatial
        if isinstance(scale_factor, (int, float, np.number))
        else [float(s) for s in scale_factor]
    )
    if len(scales) != spatial or min(scales) <= 0:
        raise op_error(
            op,
            f"scale_factor {scale_factor!r} must give {spatial} positive numbers",
            x.shape,
            "pass scale_factor=2 or a tuple per spatial dim",
        )
    sizes = [int(np.floor(x.shape[2 + i] * scales[i])) for i in range(spatial)]
    if min(sizes) < 1:
        raise op_error(
            op, f"the output would be {tuple(sizes)}", x.shape, "use a larger scale_factor"
        )
    return sizes, ([None] * spatial if recompute else list(scales))


def interpolate(
    x: Tensor,
    size: Any = None,
    scale_factor: Any = None,
    mode: str = "nearest",
    align_corners: bool | None = None,
    recompute_scale_factor: bool | None = None,
    antialias: bool = False,
) -> Tensor:
    """torch.nn.functional.interpolate for (N, C, L) and (N, C, H, W) inputs: modes
    'nearest', 'nearest-exact', 'linear' (3-D), 'bilinear' (4-D) and 'area'.

    Nearest modes index each spatial axis by a constant table (a repeat or a strided slice
    when the table is one, so integer factors are view ops); linear modes multiply by a
    constant (out, in) interpolation matrix per axis (two non-zeros per row). Both are
    primitives the compiler already lowers, and their gradients are the transposes. One
    difference from PyTorch's two-tap kernels: an inf or NaN input reaches every output of
    its row or column under the linear modes (0 * inf in the matrix product is NaN)."""
    op = "interpolate"
    if mode not in _INTERPOLATE_MODES:
        raise op_error(
            op,
            f"mode {mode!r} is not offered",
            x.shape,
            f"use one of {', '.join(_INTERPOLATE_MODES)}",
        )
    if x.ndim not in (3, 4):
        raise op_error(
            op, "input must be (N, C, L) or (N, C, H, W)", x.shape, "add batch/channel dims"
        )
    linear = mode in ("linear", "bilinear")
    if linear and x.ndim != (3 if mode == "linear" else 4):
        raise op_error(
            op,
            f"mode {mode!r} needs a {3 if mode == 'linear' else 4}-D input",
            x.shape,
            "use 'linear' for (N, C, L) and 'bilinear' for (N, C, H, W)",
        )
    if align_corners is not None and not linear:
        raise op_error(
            op,
            "align_corners can only be set with the interpolating modes (linear, bilinear)",
            x.shape,
            "leave align_corners=None for nearest and area",
        )
    if antialias:
        raise op_error(op, "antialias=True is not offered", x.shape, "pass antialias=False")
    sizes, scales = _interpolate_sizes(x, size, scale_factor, recompute_scale_factor)
    if mode == "area":
        if x.ndim == 3:
            return x.unsqueeze(2).adaptive_avg_pool2d((1, sizes[0])).squeeze(2)
        return x.adaptive_avg_pool2d(tuple(sizes))
    out = x
    for i in range(x.ndim - 2):
        axis = 2 + i
        if linear:
            dtype = x.dtype if x.dtype.kind == "f" else np.dtype(np.float32)
            m = _linear_weights(x.shape[axis], sizes[i], scales[i], bool(align_corners), dtype)
            weights = Tensor(m, dtype=dtype)
            out = out @ weights.T if axis == out.ndim - 1 else weights @ out
        else:
            src = _nearest_sources(x.shape[axis], sizes[i], scales[i], mode == "nearest-exact")
            out = _gather_axis(out, axis, src)
    return out


# ---------------------------------------------------------------------------------------------
# pad: constant (the pad primitive; negative pads crop) and reflect / replicate / circular
# (slices and cat along each padded dim)
# ---------------------------------------------------------------------------------------------
_PAD_MODES = ("constant", "reflect", "replicate", "circular")


def _pad_pairs(x: Tensor, pad: Any) -> list[tuple[int, int]]:
    """PyTorch's flat pad (last dim first) as one (before, after) pair per dim of x; numpy's
    nested pairs (one per dim) are accepted too, as Tensor.pad always has."""
    if len(pad) and isinstance(pad[0], (tuple, list)):
        pairs = [(int(p[0]), int(p[1])) for p in pad]
        if len(pairs) != x.ndim:
            raise op_error(
                "pad",
                f"{len(pairs)} (before, after) pairs for a {x.ndim}-D tensor",
                x.shape,
                "give one pair per dim",
            )
        return pairs
    if len(pad) % 2 or len(pad) // 2 > x.ndim:
        raise op_error(
            "pad",
            f"flat pad {tuple(pad)} needs an even length of at most 2 * ndim",
            x.shape,
            "pass (left, right[, top, bottom, ...]), last dim first",
        )
    if not all(isinstance(v, (int, np.integer)) and not isinstance(v, bool) for v in pad):
        raise op_error("pad", f"pad sizes must be ints, got {tuple(pad)}", x.shape, "pass ints")
    pairs = [(0, 0)] * x.ndim
    for i in range(len(pad) // 2):
        pairs[x.ndim - 1 - i] = (int(pad[2 * i]), int(pad[2 * i + 1]))
    return pairs


def _check_mode_dims(x: Tensor, pad: Any, pairs: list[tuple[int, int]], mode: str) -> None:
    """PyTorch pads reflect/replicate/circular over the last 1-3 dims, as many as the
    flat pad names, of a batched or unbatched input: (C, L) or (N, C, L) for 1 dim, ..."""
    nested = len(pad) and isinstance(pad[0], (tuple, list))
    padded = (
        len(pad) // 2
        if not nested
        else x.ndim - next((i for i, p in enumerate(pairs) if p != (0, 0)), x.ndim - 1)
    )
    if padded > 3 or x.ndim - padded not in (1, 2):
        raise op_error(
            "pad",
            f"mode {mode!r} pads the last 1 to 3 dims of a (N, C, ...) or (C, ...) input, "
            f"here {padded} of {x.ndim}",
            x.shape,
            "pad fewer dims, or add a batch/channel dim",
        )
    if any(lo < 0 or hi < 0 for lo, hi in pairs):
        raise op_error(
            "pad",
            f"mode {mode!r} takes no negative padding",
            x.shape,
            "crop with slicing first, or use mode='constant'",
        )


def _pad_dim(x: Tensor, axis: int, lo: int, hi: int, mode: str) -> Tensor:
    n = x.shape[axis]
    lead = (slice(None),) * axis
    if mode == "reflect" and (lo >= n or hi >= n):
        raise op_error(
            "pad",
            f"reflect padding ({lo}, {hi}) must be smaller than dim {axis}'s size {n}",
            x.shape,
            "pad less, or use mode='replicate' or 'circular'",
        )
    if mode == "circular" and (lo > n or hi > n):
        raise op_error(
            "pad",
            f"circular padding ({lo}, {hi}) wraps around dim {axis} (size {n}) more than once",
            x.shape,
            f"pad at most {n} on each side",
        )
    parts = []
    if lo:
        if mode == "reflect":
            parts.append(x[(*lead, slice(lo, 0, -1))])
        elif mode == "replicate":
            edge = x[(*lead, slice(0, 1))]
            parts.append(edge.expand(*edge.shape[:axis], lo, *edge.shape[axis + 1 :]))
        else:
            parts.append(x[(*lead, slice(n - lo, n))])
    parts.append(x)
    if hi:
        if mode == "reflect":
            stop = n - 2 - hi
            parts.append(x[(*lead, slice(n - 2, stop if stop >= 0 else None, -1))])
        elif mode == "replicate":
            edge = x[(*lead, slice(n - 1, n))]
            parts.append(edge.expand(*edge.shape[:axis], hi, *edge.shape[axis + 1 :]))
        else:
            parts.append(x[(*lead, slice(0, hi))])
    from .tensor import cat

    return cat(parts, axis=axis) if len(parts) > 1 else x


def pad(x: Tensor, pad: Any, mode: str = "constant", value: float | None = None) -> Tensor:
    """torch.nn.functional.pad: `pad` is (left, right, top, bottom, ...), last dim first.
    'constant' fills with `value` (negative pads crop, as in PyTorch); 'reflect' mirrors
    without repeating the edge; 'replicate' repeats the edge; 'circular' wraps around."""
    if mode not in _PAD_MODES:
        raise op_error(
            "pad", f"mode {mode!r} is not offered", x.shape, f"use one of {', '.join(_PAD_MODES)}"
        )
    pairs = _pad_pairs(x, pad)
    if mode == "constant":
        crop = tuple(slice(max(-lo, 0), n - max(-hi, 0)) for n, (lo, hi) in zip(x.shape, pairs))
        if any(n - max(-lo, 0) - max(-hi, 0) < 0 for n, (lo, hi) in zip(x.shape, pairs)):
            raise op_error("pad", "negative padding crops more than the dim", x.shape, "pad less")
        out = x[crop] if any(lo < 0 or hi < 0 for lo, hi in pairs) else x
        grow = tuple((max(lo, 0), max(hi, 0)) for lo, hi in pairs)
        if all(g == (0, 0) for g in grow):
            return out
        return out._call(ops.PAD, pads=grow, value=float(0.0 if value is None else value))
    if value is not None and value != 0:
        raise op_error(
            "pad",
            f"mode {mode!r} takes no value (got value={value})",
            x.shape,
            "drop value=, or use mode='constant'",
        )
    _check_mode_dims(x, pad, pairs, mode)
    out = x
    for axis in range(x.ndim - 1, -1, -1):
        lo, hi = pairs[axis]
        if lo or hi:
            out = _pad_dim(out, axis, lo, hi, mode)
    return out


# ---------------------------------------------------------------------------------------------
# conv1d: conv2d on an (N, C, 1, L) view
# ---------------------------------------------------------------------------------------------


def _one(value: Any, name: str) -> int:
    """A 1-D conv argument: an int or a 1-tuple."""
    if isinstance(value, (tuple, list)) and len(value) == 1:
        value = value[0]
    if not isinstance(value, (int, np.integer)) or isinstance(value, bool):
        raise op_error(
            "conv1d", f"{name} must be an int or a 1-tuple, got {value!r}", (), f"{name}=1"
        )
    return int(value)


def conv1d(
    x: Tensor,
    weight: Tensor,
    bias: Tensor | None = None,
    stride: Any = 1,
    padding: Any = 0,
    dilation: Any = 1,
    groups: int = 1,
) -> Tensor:
    """torch.nn.functional.conv1d: input (N, C, L) or (C, L), weight (O, C/groups, K);
    padding an int, 'valid' or 'same'. The conv2d primitive on H = 1."""
    if not isinstance(weight, Tensor):
        raise TypeError(f"conv1d: weight must be a Tensor, got {type(weight).__name__}")
    if x.ndim == 2:
        return conv1d(x.unsqueeze(0), weight, bias, stride, padding, dilation, groups)[0]
    if x.ndim != 3 or weight.ndim != 3:
        raise op_error(
            "conv1d",
            "input must be (N, C, L) and weight (O, C/groups, K)",
            f"input {x.shape}, weight {weight.shape}",
            "add a batch dim with unsqueeze(0); for images use conv2d",
        )
    if (
        not isinstance(groups, (int, np.integer))
        or groups < 1
        or x.shape[1] != weight.shape[1] * int(groups)
        or weight.shape[0] % int(groups)
    ):
        raise op_error(
            "conv1d",
            f"input channels {x.shape[1]} must equal weight.shape[1] x groups ({groups}), and "
            "groups divide the output channels",
            f"input {x.shape}, weight {weight.shape}",
            "weight is (out_channels, in_channels / groups, kernel_size)",
        )
    pad: Any = padding if isinstance(padding, str) else (0, _one(padding, "padding"))
    out = x.unsqueeze(2).conv2d(
        weight.unsqueeze(2),
        None,
        (1, _one(stride, "stride")),
        pad,
        (1, _one(dilation, "dilation")),
        groups,
    )
    out = out.squeeze(2)
    if bias is None:
        return out
    if bias.shape != (weight.shape[0],):
        raise op_error(
            "conv1d",
            "bias must have one entry per output channel",
            f"bias {bias.shape}, weight {weight.shape}",
            f"pass a bias of shape ({weight.shape[0]},)",
        )
    return out + bias.reshape(1, -1, 1)


# ---------------------------------------------------------------------------------------------
# adaptive max pooling: PyTorch's windows [floor(i*H/O), ceil((i+1)*H/O)), first maximum
# ---------------------------------------------------------------------------------------------


def _adaptive_sizes(x: Tensor, output_size: Any) -> Pair:
    op = "adaptive_max_pool2d"
    sizes = (
        (output_size, output_size) if not isinstance(output_size, (tuple, list)) else output_size
    )
    if len(sizes) != 2:
        raise op_error(op, f"output_size {output_size!r} needs 2 entries", x.shape, "pass (H, W)")
    out = []
    for i, s in enumerate(sizes):
        s = x.shape[-2 + i] if s is None else s
        if not isinstance(s, (int, np.integer)) or isinstance(s, bool) or s < 1:
            raise op_error(
                op,
                f"output_size must be positive ints (or None), got {output_size!r}",
                x.shape,
                "pass a positive output size such as (7, 7)",
            )
        out.append(int(s))
    return out[0], out[1]


def _first_max_index(window: Tensor, row0: int, col0: int, width: int) -> Tensor:
    """(N, C, 1, 1) int64 flat index (in an input `width` wide) of the first maximum of
    `window`, which starts at (row0, col0)."""
    n, c, hh, ww = window.shape
    first = window.detach().reshape(n, c, hh * ww).argmax(axis=2, keepdim=True)
    taps = np.arange(hh * ww)
    flat = ((row0 + taps // ww) * width + col0 + taps % ww).astype(np.int64)
    pick = first == Tensor(taps.reshape(1, 1, -1))
    chosen = where(pick, Tensor(flat.reshape(1, 1, -1)), Tensor(np.zeros((), np.int64)))
    return chosen.sum(axis=2, keepdim=True).reshape(n, c, 1, 1)


def adaptive_max_pool2d(x: Tensor, output_size: Any, return_indices: bool = False) -> Any:
    """torch.nn.functional.adaptive_max_pool2d; with return_indices, also the int64 flat
    (h * W + w) position of each window's first maximum. Equal windows are one max_pool2d;
    otherwise each window is a slice pooled whole (the max_pool2d primitive routes the
    gradient to the first maximum, as PyTorch does)."""
    op = "adaptive_max_pool2d"
    if x.ndim == 3:
        out = adaptive_max_pool2d(x.unsqueeze(0), output_size, return_indices)
        return (out[0][0], out[1][0]) if return_indices else out[0]
    if x.ndim != 4:
        raise op_error(
            op,
            "input must be (N, C, H, W) or (C, H, W)",
            x.shape,
            "add a batch dim with unsqueeze(0)",
        )
    oh, ow = _adaptive_sizes(x, output_size)
    h, w = x.shape[2:]
    if h % oh == 0 and w % ow == 0:
        kernel = (h // oh, w // ow)
        if return_indices:
            return max_pool2d_with_indices(x, kernel)
        return max_pool2d(x, kernel)
    from .tensor import cat

    rows, index_rows = [], []
    for i in range(oh):
        r0, r1 = (i * h) // oh, -((-(i + 1) * h) // oh)
        cols, index_cols = [], []
        for j in range(ow):
            c0, c1 = (j * w) // ow, -((-(j + 1) * w) // ow)
            window = x[:, :, r0:r1, c0:c1]
            cols.append(max_pool2d(window, (r1 - r0, c1 - c0)))
            if return_indices:
                index_cols.append(_first_max_index(window, r0, c0, w))
        rows.append(cat(cols, axis=3))
        if return_indices:
            index_rows.append(cat(index_cols, axis=3))
    out = cat(rows, axis=2)
    return (out, cat(index_rows, axis=2)) if return_indices else out
