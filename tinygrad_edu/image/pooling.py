"""Pooling with PyTorch's arguments: max_pool2d / avg_pool2d with `ceil_mode`,
`count_include_pad`, `divisor_override` and `return_indices`, and adaptive_max_pool2d.

Composites of the pad, slice, cat and pooling primitives: the extra windows `ceil_mode` adds
read an input padded on the right; per-window divisors are constants."""

from __future__ import annotations

from typing import Any

import numpy as np

from .. import ops
from ..errors import op_error
from ..tensor import Pair, Tensor, _pair, cat, where

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
