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
