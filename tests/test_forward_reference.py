"""conv2d, pooling and LRN forwards equal direct loop implementations written here."""

import numpy as np
from hypothesis import given
from hypothesis import strategies as st

from tinygrad_edu import Tensor
from tinygrad_edu.testing import arrays, conv2d_cases, pool2d_cases


def conv2d_loops(x, w, stride, padding, dilation, groups):
    n, c, h, wd = x.shape
    o, cg, kh, kw = w.shape
    xp = np.pad(x, ((0, 0), (0, 0), (padding[0],) * 2, (padding[1],) * 2))
    oh = (h + 2 * padding[0] - dilation[0] * (kh - 1) - 1) // stride[0] + 1
    ow = (wd + 2 * padding[1] - dilation[1] * (kw - 1) - 1) // stride[1] + 1
    out = np.zeros((n, o, oh, ow))
    og = o // groups
    for b in range(n):
        for oc in range(o):
            g = oc // og
            for i in range(oh):
                for j in range(ow):
                    acc = 0.0
                    for ci in range(cg):
                        for u in range(kh):
                            for v in range(kw):
                                acc += (
                                    w[oc, ci, u, v]
                                    * xp[
                                        b,
                                        g * cg + ci,
                                        i * stride[0] + u * dilation[0],
                                        j * stride[1] + v * dilation[1],
                                    ]
                                )
                    out[b, oc, i, j] = acc
    return out


def pool_loops(x, kernel, stride, padding, mode):
    n, c, h, w = x.shape
    fill = -np.inf if mode == "max" else 0.0
    xp = np.pad(x, ((0, 0), (0, 0), (padding[0],) * 2, (padding[1],) * 2), constant_values=fill)
    oh = (h + 2 * padding[0] - kernel[0]) // stride[0] + 1
    ow = (w + 2 * padding[1] - kernel[1]) // stride[1] + 1
    out = np.zeros((n, c, oh, ow))
    for i in range(oh):
        for j in range(ow):
            win = xp[
                :,
                :,
                i * stride[0] : i * stride[0] + kernel[0],
                j * stride[1] : j * stride[1] + kernel[1],
            ]
            out[:, :, i, j] = win.max(axis=(2, 3)) if mode == "max" else win.mean(axis=(2, 3))
    return out


def lrn_loops(x, size, alpha, beta, k):
    c = x.shape[1]
    out = np.empty_like(x)
    for ch in range(c):
        lo, hi = max(0, ch - size // 2), min(c, ch + (size - 1) // 2 + 1)
        s = (x[:, lo:hi] ** 2).sum(axis=1)
        out[:, ch] = x[:, ch] / (k + alpha / size * s) ** beta
    return out


@given(case=conv2d_cases(max_kernel=4), data=st.data())
def test_conv2d_forward_equals_direct_loops(case, data):
    x, w = data.draw(arrays(case.x_shape)), data.draw(arrays(case.w_shape))
    got = Tensor(x, dtype=np.float64).conv2d(Tensor(w, dtype=np.float64), **case.kwargs)
    want = conv2d_loops(x, w, case.stride, case.padding, case.dilation, case.groups)
    np.testing.assert_allclose(got.numpy(), want, rtol=1e-10, atol=1e-10)


@given(case=pool2d_cases(), data=st.data())
def test_pooling_forward_equals_direct_loops(case, data):
    x = data.draw(arrays(case.x_shape))
    t = Tensor(x, dtype=np.float64)
    for mode in ("max", "avg"):
        got = getattr(t, f"{mode}_pool2d")(**case.kwargs).numpy()
        want = pool_loops(x, case.kernel_size, case.stride, case.padding, mode)
        assert got.shape == case.out_shape
        np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-12)


@given(
    x=arrays(st.tuples(st.integers(1, 2), st.integers(1, 7), st.integers(1, 3), st.integers(1, 3))),
    size=st.integers(1, 6),
    alpha=st.floats(1e-4, 1.0),
    beta=st.floats(0.25, 1.0),
    k=st.floats(0.5, 2.0),
)
def test_local_response_norm_forward_equals_direct_loops(x, size, alpha, beta, k):
    got = Tensor(x, dtype=np.float64).local_response_norm(size, alpha, beta, k).numpy()
    np.testing.assert_allclose(got, lrn_loops(x, size, alpha, beta, k), rtol=1e-12)


def test_alexnet_conv1_block_shapes():
    x = Tensor.randn(1, 3, 227, 227)
    w, b = Tensor.randn(96, 3, 11, 11) * 0.01, Tensor.zeros(96)
    y = x.conv2d(w, b, stride=4).relu().max_pool2d(3, stride=2)
    assert y.shape == (1, 96, 27, 27) and y.dtype == np.float32


def test_adaptive_avg_pool2d_matches_window_rule():
    x = np.arange(2 * 3 * 7 * 5, dtype=np.float64).reshape(2, 3, 7, 5)
    got = Tensor(x, dtype=np.float64).adaptive_avg_pool2d((3, 2)).numpy()
    want = np.zeros((2, 3, 3, 2))
    for i in range(3):
        for j in range(2):
            r0, r1 = i * 7 // 3, -(-(i + 1) * 7 // 3)
            c0, c1 = j * 5 // 2, -(-(j + 1) * 5 // 2)
            want[:, :, i, j] = x[:, :, r0:r1, c0:c1].mean(axis=(2, 3))
    np.testing.assert_allclose(got, want)
