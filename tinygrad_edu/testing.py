"""Hypothesis strategies for testing ops (ours and yours).

    from hypothesis import given
    from tinygrad_edu.testing import arrays, broadcastable_pair, conv2d_cases

    @given(broadcastable_pair())
    def test_my_op(pair):
        a, b = pair
        ...

Arrays are float64 with elements bounded away from overflow; `away_from` keeps them off a
kink (relu at 0, say) so finite differences are valid. Conv and pool strategies draw the
parameters first and then an input large enough for at least one output position.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from .ops import window_out_size


def shapes(
    min_dims: int = 0, max_dims: int = 4, min_side: int = 1, max_side: int = 5
) -> st.SearchStrategy[tuple[int, ...]]:
    """Array shapes."""
    return hnp.array_shapes(
        min_dims=min_dims, max_dims=max_dims, min_side=min_side, max_side=max_side
    )


def _away(x: np.ndarray, kinks: tuple[float, ...], margin: float) -> np.ndarray:
    for k in kinks:
        close = np.abs(x - k) < margin
        x = np.where(close, k + np.where(x >= k, margin, -margin), x)
    return x


def arrays(
    shape: Any = None,
    low: float = -3.0,
    high: float = 3.0,
    away_from: tuple[float, ...] = (),
    margin: float = 1e-2,
    dtype: Any = np.float64,
) -> st.SearchStrategy[np.ndarray]:
    """Float arrays of `shape` (a shape or a strategy; random shapes when None), elements in
    [low, high], nudged at least `margin` away from each value in `away_from`."""
    shape_st = shapes() if shape is None else shape
    if isinstance(shape_st, tuple):
        shape_st = st.just(shape_st)
    elements = st.floats(low, high, allow_nan=False, allow_infinity=False, width=64)
    base = shape_st.flatmap(lambda s: hnp.arrays(np.float64, s, elements=elements))
    return base.map(lambda a: _away(a, away_from, margin).astype(dtype))


def positive_arrays(
    shape: Any = None, low: float = 0.1, high: float = 3.0
) -> st.SearchStrategy[np.ndarray]:
    """Arrays in [low, high] (for log, sqrt, division)."""
    return arrays(shape, low, high)


def broadcastable_pair(
    num_shapes: int = 2, max_dims: int = 4, max_side: int = 4, **kw: Any
) -> st.SearchStrategy[tuple[np.ndarray, ...]]:
    """Arrays whose shapes broadcast together (dims of 1 and missing leading dims included)."""
    shapes_st = hnp.mutually_broadcastable_shapes(
        num_shapes=num_shapes, max_dims=max_dims, max_side=max_side
    )
    return shapes_st.flatmap(lambda bs: st.tuples(*(arrays(s, **kw) for s in bs.input_shapes)))


@dataclass(frozen=True)
class Conv2dCase:
    """One valid conv2d call: input and weight shapes plus every keyword argument."""

    x_shape: tuple[int, int, int, int]
    w_shape: tuple[int, int, int, int]
    stride: tuple[int, int]
    padding: tuple[int, int]
    dilation: tuple[int, int]
    groups: int

    @property
    def kwargs(self) -> dict[str, Any]:
        return dict(
            stride=self.stride, padding=self.padding, dilation=self.dilation, groups=self.groups
        )


@st.composite
def conv2d_cases(
    draw: Any,
    max_batch: int = 2,
    max_groups: int = 3,
    max_kernel: int = 3,
    max_stride: int = 3,
    max_dilation: int = 2,
    max_channels_per_group: int = 2,
) -> Conv2dCase:
    """Valid conv2d parameter sets: non-square kernels, strides, padding, dilation, groups."""
    groups = draw(st.integers(1, max_groups))
    cin = groups * draw(st.integers(1, max_channels_per_group))
    cout = groups * draw(st.integers(1, max_channels_per_group))
    kernel = (draw(st.integers(1, max_kernel)), draw(st.integers(1, max_kernel)))
    stride = (draw(st.integers(1, max_stride)), draw(st.integers(1, max_stride)))
    dilation = (draw(st.integers(1, max_dilation)), draw(st.integers(1, max_dilation)))
    padding = (draw(st.integers(0, 2)), draw(st.integers(0, 2)))
    hw = []
    for i in range(2):
        reach = dilation[i] * (kernel[i] - 1) + 1
        low = max(1, reach - 2 * padding[i])
        hw.append(draw(st.integers(low, low + 2 * stride[i] + 1)))
    n = draw(st.integers(1, max_batch))
    return Conv2dCase(
        (n, cin, hw[0], hw[1]), (cout, cin // groups, *kernel), stride, padding, dilation, groups
    )


@dataclass(frozen=True)
class Pool2dCase:
    """One valid pooling call (overlapping and padded windows included)."""

    x_shape: tuple[int, int, int, int]
    kernel_size: tuple[int, int]
    stride: tuple[int, int]
    padding: tuple[int, int]

    @property
    def kwargs(self) -> dict[str, Any]:
        return dict(kernel_size=self.kernel_size, stride=self.stride, padding=self.padding)

    @property
    def out_shape(self) -> tuple[int, int, int, int]:
        n, c, h, w = self.x_shape
        return (
            n,
            c,
            *(
                window_out_size((h, w)[i], self.kernel_size[i], self.stride[i], self.padding[i], 1)
                for i in range(2)
            ),
        )


@st.composite
def pool2d_cases(draw: Any, max_kernel: int = 3, max_stride: int = 3) -> Pool2dCase:
    """Valid pooling parameter sets; padding at most half the kernel, as PyTorch requires."""
    kernel = (draw(st.integers(1, max_kernel)), draw(st.integers(1, max_kernel)))
    stride = (draw(st.integers(1, max_stride)), draw(st.integers(1, max_stride)))
    padding = (draw(st.integers(0, kernel[0] // 2)), draw(st.integers(0, kernel[1] // 2)))
    hw = tuple(
        draw(st.integers(max(1, kernel[i] - 2 * padding[i]), kernel[i] + 2 * stride[i]))
        for i in range(2)
    )
    x_shape = (draw(st.integers(1, 2)), draw(st.integers(1, 3)), hw[0], hw[1])
    return Pool2dCase(x_shape, kernel, stride, padding)  # type: ignore[arg-type]


def distinct_arrays(
    shape: Any, low: float = -3.0, high: float = 3.0, gap: float = 1e-3
) -> st.SearchStrategy[np.ndarray]:
    """Arrays whose elements are pairwise at least `gap` apart (no ties for max/min/pool),
    drawn as a shuffled, jittered grid."""
    shape_st = st.just(shape) if isinstance(shape, tuple) else shape

    def build(s: tuple[int, ...], seed: int) -> np.ndarray:
        n = int(np.prod(s))
        r = np.random.default_rng(seed)
        grid = np.linspace(low, high, max(n, 1)) if n > 1 else np.array([0.5 * (low + high)])
        step = (high - low) / max(n - 1, 1)
        jitter = r.uniform(-0.25, 0.25, grid.shape) * min(step, 1.0) if n > 1 else 0.0
        values = grid + jitter
        assert n < 2 or np.diff(np.sort(values)).min() >= min(gap, step / 2)
        return r.permutation(values)[:n].reshape(s)

    return st.tuples(shape_st, st.integers(0, 2**32 - 1)).map(lambda t: build(*t))


@st.composite
def index_expressions(draw: Any, shape: tuple[int, ...]) -> tuple[Any, ...]:
    """Valid PyTorch index tuples for a tensor of `shape`: ints (some as 0-d int arrays),
    slices with positive steps, None, at most one Ellipsis, and either int index arrays (one
    shared shape, adjacent or separated) or a single bool mask spanning one or more dims."""
    kinds: list[tuple[str, int]] = []  # (kind, dims it consumes)
    free = len(shape)
    advanced = draw(st.sampled_from(["int arrays", "int arrays", "bool mask", "none"]))
    for _ in range(draw(st.integers(1, len(shape) + 2))):
        # weighted towards what numpy and PyTorch disagree on: ints mixed with index arrays
        options = ["none"] + (["int", "int", "slice"] if free else [])
        if free and advanced == "int arrays":
            options += ["array", "array"]
        if free and advanced == "bool mask" and not any(k == "mask" for k, _ in kinds):
            options += ["mask", "mask"]
        kind = draw(st.sampled_from(options))
        used = {"none": 0, "mask": draw(st.integers(1, min(2, free or 1)))}.get(kind, 1)
        kinds.append((kind, used))
        free -= used
    ellipsis_at = draw(st.integers(0, len(kinds))) if draw(st.booleans()) else None
    # which dims each item indexes: from the front before an Ellipsis, from the back after it
    dims: list[int] = []
    front = 0
    back = len(shape) - sum(u for _, u in kinds[ellipsis_at:]) if ellipsis_at is not None else 0
    for k, (_, used) in enumerate(kinds):
        start = back if ellipsis_at is not None and k >= ellipsis_at else front
        dims.append(start)
        if ellipsis_at is not None and k >= ellipsis_at:
            back += used
        else:
            front += used
    array_shape = tuple(draw(st.lists(st.integers(1, 3), min_size=1, max_size=2)))
    items: list[Any] = []
    for (kind, used), d in zip(kinds, dims):
        n = shape[d] if used else 0
        if kind == "none":
            items.append(None)
        elif kind == "int":
            value = draw(st.integers(-n, n - 1))
            items.append(np.array(value) if draw(st.booleans()) else value)
        elif kind == "slice":
            bound = st.none() | st.integers(-n - 1, n + 1)
            items.append(slice(draw(bound), draw(bound), draw(st.sampled_from([None, 1, 2, 3]))))
        elif kind == "array":
            values = draw(st.lists(st.integers(-n, n - 1), min_size=int(np.prod(array_shape)),
                                   max_size=int(np.prod(array_shape))))  # fmt: skip
            items.append(np.array(values, dtype=np.int64).reshape(array_shape))
        else:
            mask_shape = shape[d : d + used]
            bits = draw(st.lists(st.booleans(), min_size=int(np.prod(mask_shape)),
                                 max_size=int(np.prod(mask_shape))))  # fmt: skip
            items.append(np.array(bits, dtype=bool).reshape(mask_shape))
    if ellipsis_at is not None:
        items.insert(ellipsis_at, Ellipsis)
    return tuple(items)
