"""interpolate: nearest modes as constant-table gathers, linear modes as constant
interpolation matrices, one spatial axis at a time, with PyTorch's source positions."""

from __future__ import annotations

from typing import Any

import numpy as np

from ..errors import op_error
from ..tensor import Tensor

# ---------------------------------------------------------------------------------------------
# interpolate: one spatial axis at a time, from constant index tables or weight matrices
# ---------------------------------------------------------------------------------------------
_INTERPOLATE_MODES = ("nearest", "nearest-exact", "linear", "bilinear", "bicubic", "area")
_CUBIC_A = -0.75  # PyTorch's (and OpenCV's) bicubic convolution constant


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


def _source_positions(
    size: int, out: int, scale: float | None, align_corners: bool, dtype: np.dtype
) -> np.ndarray:
    """Each output index's source position along one axis, in the input's float type as
    PyTorch computes it: step * dst with corners aligned, else step * (dst + 0.5) - 0.5
    (step 1 / scale_factor when one is used, else size / out)."""
    dst = np.arange(out).astype(dtype)
    if align_corners:
        step = dtype.type((size - 1) / (out - 1)) if out > 1 else dtype.type(0)
        return step * dst
    step = dtype.type(1.0 / scale) if scale is not None and scale > 0 else dtype.type(size / out)
    return step * (dst + dtype.type(0.5)) - dtype.type(0.5)


def _linear_weights(
    size: int, out: int, scale: float | None, align_corners: bool, dtype: np.dtype
) -> np.ndarray:
    """The (out, size) matrix of PyTorch's linear interpolation along one axis, computed in
    the input's float type as PyTorch computes its source positions and lambdas."""
    one = dtype.type(1)
    src = _source_positions(size, out, scale, align_corners, dtype)
    if not align_corners:
        src = np.maximum(src, dtype.type(0))  # (the cubic mode keeps them unclamped)
    low = src.astype(np.int64)  # src >= 0, so truncation is floor
    high = np.where(low < size - 1, low + 1, low)
    frac = (src - low.astype(dtype)).astype(dtype)
    weights = np.zeros((out, size), dtype)
    rows = np.arange(out)
    np.add.at(weights, (rows, low), one - frac)
    np.add.at(weights, (rows, high), frac)
    return weights


def _cubic_weights(
    size: int, out: int, scale: float | None, align_corners: bool, dtype: np.dtype
) -> np.ndarray:
    """The (out, size) matrix of PyTorch's bicubic interpolation along one axis: four taps
    at floor(src) - 1 .. + 2 with Keys' cubic convolution weights (A = -0.75), taps beyond
    the edge clamped to it; source positions computed in the input's float type, unclamped
    (as PyTorch's cubic mode)."""
    a = dtype.type(_CUBIC_A)
    src = _source_positions(size, out, scale, align_corners, dtype)
    base = np.floor(src).astype(np.int64)
    t = (src - base.astype(dtype)).astype(dtype)

    def near(x: np.ndarray) -> np.ndarray:  # |x| <= 1
        return ((a + 2) * x - (a + 3)) * x * x + 1

    def far(x: np.ndarray) -> np.ndarray:  # 1 < |x| < 2
        return ((a * x - 5 * a) * x + 8 * a) * x - 4 * a

    taps = [far(t + 1), near(t), near(1 - t), far(2 - t)]
    weights = np.zeros((out, size), dtype)
    rows = np.arange(out)
    for k, w in enumerate(taps):
        np.add.at(weights, (rows, np.clip(base - 1 + k, 0, size - 1)), w.astype(dtype))
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
    'nearest', 'nearest-exact', 'linear' (3-D), 'bilinear' and 'bicubic' (4-D) and 'area'.

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
    linear = mode in ("linear", "bilinear", "bicubic")
    if linear and x.ndim != (3 if mode == "linear" else 4):
        raise op_error(
            op,
            f"mode {mode!r} needs a {3 if mode == 'linear' else 4}-D input",
            x.shape,
            "use 'linear' for (N, C, L) and 'bilinear' or 'bicubic' for (N, C, H, W)",
        )
    if align_corners is not None and not linear:
        raise op_error(
            op,
            "align_corners can only be set with the interpolating modes (linear, bilinear, "
            "bicubic)",
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
            weigh = _cubic_weights if mode == "bicubic" else _linear_weights
            m = weigh(x.shape[axis], sizes[i], scales[i], bool(align_corners), dtype)
            weights = Tensor(m, dtype=dtype)
            out = out @ weights.T if axis == out.ndim - 1 else weights @ out
        else:
            src = _nearest_sources(x.shape[axis], sizes[i], scales[i], mode == "nearest-exact")
            out = _gather_axis(out, axis, src)
    return out
