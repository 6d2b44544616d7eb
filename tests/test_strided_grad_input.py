"""The CPU schedule of a strided convolution's input gradient (`conv_gemm.conv_gemm_phases`):
one stride-1 implicit GEMM per phase of input pixels.

`_phase_taps` is checked exhaustively against the definition (input row h takes output
gradient row oh from tap k exactly when h = oh*s - p + k*d); the kernel is compared with the
eager (numpy) result over hypothesis-drawn geometries, through `conv_transpose2d` (the same
primitive as conv2d's input gradient) and through a training step whose stride-2
convolutions' input gradients carry a fused epilogue. float32 tolerances: the LLVM kernel
sums in another order than numpy.
"""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import compiler
import tinygrad_edu.functional as F  # noqa: N812 (PyTorch users write F)
from compiler.lower import _phase_taps
from tinygrad_edu import Tensor, manual_seed, nn, optim


@pytest.mark.parametrize("stride", [2, 3, 4])
@pytest.mark.parametrize("dil", [1, 2, 3])
@pytest.mark.parametrize("kernel", [1, 2, 3, 5, 7])
def test_phase_taps_are_exactly_the_taps_that_reach_each_phase(stride, dil, kernel):
    out_n = 6
    for pad in range(dil * (kernel - 1) + 1):
        size = (out_n - 1) * stride - 2 * pad + dil * (kernel - 1) + 1
        if size <= 0:
            continue
        for a in range(stride):
            count, taps = _phase_taps(a, size, kernel, stride, pad, dil)
            rows = list(range(a, size, stride))
            assert count == len(rows)
            for q, h in enumerate(rows):
                # every (tap, output row) with h = oh*s - p + k*d, output rows in or out of range
                want = {
                    (k, (h + pad - k * dil) // stride)
                    for k in range(kernel)
                    if (h + pad - k * dil) % stride == 0
                }
                if taps is None:
                    assert not want
                    continue
                m, padding, window_dil, first, step = taps
                got = {(first + r * step, q - padding + r * window_dil) for r in range(m)}
                assert got == want, (a, q, h)


@st.composite
def transposed_geometries(draw):
    """conv_transpose2d arguments with a stride of at least 2 on one axis."""
    sh, sw = draw(st.integers(2, 4)), draw(st.integers(1, 3))
    if draw(st.booleans()):
        sh, sw = sw, sh
    kh, kw = draw(st.integers(1, 5)), draw(st.integers(1, 5))
    dh, dw = draw(st.integers(1, 2)), draw(st.integers(1, 2))
    ph = draw(st.integers(0, dh * (kh - 1)))
    pw = draw(st.integers(0, dw * (kw - 1)))
    oph = draw(st.integers(0, max(sh, dh) - 1))
    opw = draw(st.integers(0, max(sw, dw) - 1))
    groups = draw(st.sampled_from([1, 2]))
    n = draw(st.integers(1, 2))
    cin, cout = groups * draw(st.integers(1, 4)), groups * draw(st.integers(1, 3))
    h, w = draw(st.integers(1, 7)), draw(st.integers(1, 7))
    out_h = (h - 1) * sh - 2 * ph + dh * (kh - 1) + oph + 1
    out_w = (w - 1) * sw - 2 * pw + dw * (kw - 1) + opw + 1
    if out_h <= 0 or out_w <= 0:
        ph = pw = 0
    kwargs = dict(
        stride=(sh, sw),
        padding=(ph, pw),
        output_padding=(oph, opw),
        dilation=(dh, dw),
        groups=groups,
    )
    return (n, cin, h, w), (cin, cout // groups, kh, kw), kwargs


@settings(deadline=None)
@given(transposed_geometries(), st.integers(0, 2**31 - 1))
def test_strided_input_gradient_kernel_equals_eager(geometry, seed):
    x_shape, w_shape, kwargs = geometry
    rng = np.random.default_rng(seed)
    x = rng.standard_normal(x_shape).astype(np.float32)
    w = rng.standard_normal(w_shape).astype(np.float32)

    def fn(a, b):  # an elementwise tail, fused into the kernel's epilogue
        return F.conv_transpose2d(a, b, **kwargs).relu() * 2.0

    want = fn(Tensor(x), Tensor(w)).numpy()
    got = compiler.compile(fn, x, w, backend="llvm")(x, w)
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5 * max(1.0, np.abs(want).max()))


def test_strided_input_gradient_uses_the_register_tiled_schedule():
    """Not the per-element gather (a `%` per tap): the phases' micro-kernel on a panel."""
    g = np.ones((2, 8, 5, 5), np.float32)
    w = np.ones((8, 4, 3, 3), np.float32)
    fn = compiler.compile(
        lambda a, b: F.conv_transpose2d(a, b, stride=2, padding=1), g, w, backend="llvm"
    )
    (kernel,) = [k for k in fn.kernels if "conv2d_grad_input" in k.ops]
    code = kernel.pseudo_c()
    assert "acc_tile" in code and "panel" in code


class StridedNet(nn.Module):
    """A ResNet-like stage: a stride-2 3x3 conv and a stride-2 1x1 shortcut, odd sizes."""

    def __init__(self):
        super().__init__()
        self.stem = nn.Conv2d(3, 8, 3, padding=1)
        self.conv = nn.Conv2d(8, 16, 3, stride=2, padding=1)
        self.short = nn.Conv2d(8, 16, 1, stride=2)
        self.head = nn.Linear(16, 5)

    def forward(self, x):
        y = self.stem(x).relu()
        y = (self.conv(y) + self.short(y)).relu()
        return self.head(y.mean(axis=(2, 3)))


def test_training_step_through_strided_convolutions_equals_eager():
    x = np.random.default_rng(1).standard_normal((3, 3, 9, 11)).astype(np.float32)
    y = np.array([0, 3, 4])
    states = []
    for compiled in (False, True):
        manual_seed(0)
        net = StridedNet()
        opt = optim.SGD(net.parameters(), lr=0.1, momentum=0.9)
        if compiled:
            step = compiler.compile_train_step(net, F.cross_entropy, opt, x, y, backend="llvm")
            for _ in range(2):
                step(x, y)
        else:
            for _ in range(2):
                opt.zero_grad()
                F.cross_entropy(net(Tensor(x)), Tensor(y)).backward()
                opt.step()
        states.append(net.state_dict())
    for name in states[0]:
        np.testing.assert_allclose(states[1][name], states[0][name], rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("width", ["narrow", "wide"])
def test_strided_input_gradient_on_whole_row_panels_equals_eager(tile_cols, width):
    """Phases wide enough for whole-row panels (`conv_gemm.row_blocks`): several rows per
    panel, or rows in segments, on every ISA the host can run."""
    wq = {"narrow": tile_cols - tile_cols // 8, "wide": 2 * tile_cols + tile_cols // 2}[width]
    rng = np.random.default_rng(wq)
    g = rng.standard_normal((2, 6, 4, wq)).astype(np.float32)
    w = rng.standard_normal((6, 3, 3, 3)).astype(np.float32)

    def fn(a, b):
        return F.conv_transpose2d(a, b, stride=2, padding=1, output_padding=1) * 0.5

    compiled = compiler.compile(fn, g, w, backend="llvm")
    (kernel,) = [k for k in compiled.kernels if "conv2d_grad_input" in k.ops]
    assert "prow_ok" in kernel.pseudo_c()
    want = fn(Tensor(g), Tensor(w)).numpy()
    np.testing.assert_allclose(compiled(g, w), want, rtol=1e-5, atol=1e-5)


def test_phases_share_one_count_of_row_panels():
    """A task runs panel b of every phase: phases of ResNet's layer3 stride-2 input gradient
    (14x14 grids, sub-kernels of 1 to 4 taps) must not choose different rows a panel (one of
    14 rows beside phases of one row ran its panel 14 times, 24 -> 186 ms), so each phase's
    panel is one column block: the kernel runs no loop over a panel's blocks."""
    g = np.zeros((2, 32, 14, 14), np.float32)
    w = np.zeros((32, 16, 3, 3), np.float32)

    def fn(a, b):
        return F.conv_transpose2d(a, b, stride=2, padding=1, output_padding=1)

    compiled = compiler.compile(fn, g, w, backend="llvm")
    (kernel,) = [k for k in compiled.kernels if "conv2d_grad_input" in k.ops]
    code = kernel.pseudo_c()
    assert "prow_ok" in code and "for (int cb" not in code


def test_rows_no_tap_reaches_are_written_whole_through_the_epilogue(tile_cols):
    """A 1x1 stride-2 kernel reaches no odd input row: those rows are zeros, written a row
    at a time, with the fused epilogue (here adding another tensor) applied to them too."""
    rng = np.random.default_rng(5)
    g = rng.standard_normal((2, 6, 5, tile_cols)).astype(np.float32)
    w = rng.standard_normal((6, 3, 1, 1)).astype(np.float32)
    other = rng.standard_normal((2, 3, 10, 2 * tile_cols)).astype(np.float32)

    def fn(a, b, c):
        return F.conv_transpose2d(a, b, stride=2, output_padding=1) + c * 3.0

    compiled = compiler.compile(fn, g, w, other, backend="llvm")
    (kernel,) = [k for k in compiled.kernels if "conv2d_grad_input" in k.ops]
    assert "z0_1" in kernel.pseudo_c()  # the zero rows of row phase 1
    want = fn(Tensor(g), Tensor(w), Tensor(other)).numpy()
    np.testing.assert_allclose(compiled(g, w, other), want, rtol=1e-5, atol=1e-5)
