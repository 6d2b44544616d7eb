"""pad (F.pad): constant through the pad primitive (negative pads crop), reflect / replicate /
circular from slices, expand and cat along each padded dim."""

from __future__ import annotations

from typing import Any

import numpy as np

from .. import ops
from ..errors import op_error
from ..tensor import Tensor, cat

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
    return cat(parts, axis=axis) if len(parts) > 1 else x


def pad(x: Tensor, pad: Any, mode: str = "constant", value: float | None = None) -> Tensor:
    """torch.nn.functional.pad: `pad` is (left, right, top, bottom, ...), last dim first.
    'constant' fills with `value` (negative pads crop, as in PyTorch); 'reflect' mirrors
    without repeating the edge; 'replicate' repeats the edge; 'circular' wraps around."""
    if not isinstance(mode, str):
        raise op_error(
            "pad",
            f"mode must be a string, got {mode!r} (pad's third argument is mode, as in F.pad)",
            x.shape,
            f"pass the fill value by keyword: pad(..., value={mode!r})",
        )
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
        fill = 0 if value is None else value
        # an integer tensor's fill stays an int: int64's extremes do not survive a float
        exact = out.dtype.kind in "iub" and float(fill).is_integer()
        return out._call(ops.PAD, pads=grow, value=int(fill) if exact else float(fill))
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
