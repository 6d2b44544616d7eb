"""conv2d's weight gradient with output channels across the vectors
(`conv_gemm.weight_grad_channels`): compiled through autodiff and compared with the eager
gradient over geometries that exercise its parts (padding on every side, strides and
dilations, groups, several bands of rows and a remainder, tap ranges split across tasks:
3 input channels' 147 taps as two overlapping ranges, padded to whole tap blocks).
float32: the kernel sums in another order than numpy."""

import numpy as np
import pytest

pytest.importorskip("llvmlite")

import compiler  # noqa: E402
from compiler.graph import trace  # noqa: E402
from compiler.passes import autodiff  # noqa: E402
from tinygrad_edu import Tensor, nn  # noqa: E402


def weight_grad(conv, x, gy):
    """(the compiled weight-gradient kernels, compiled dW, eager dW) of sum(conv(x) * gy)."""
    graph = autodiff(trace(lambda i: (conv(i) * Tensor(gy)).sum(), x, module=conv))
    fn = compiler.build(
        graph, "llvm", {n: (lambda p=p: p.data) for n, p in conv.named_parameters()}
    )
    grads = fn(x)  # the loss and the weight's gradient, by name
    got = next(v for v in grads.values() if np.shape(v) == conv.weight.shape)
    conv.weight.grad = None
    (conv(Tensor(x)) * Tensor(gy)).sum().backward()
    kernels = [k for k in fn.kernels if "conv2d_grad_weight" in k.ops]
    return kernels, np.asarray(got), conv.weight.grad.numpy()


@pytest.mark.parametrize(
    "cin, cout, hw, width, kernel, stride, padding, dilation, groups",
    [
        (8, 16, 20, 21, 3, 1, 1, 1, 1),
        (6, 16, 23, 24, 5, 2, 2, 1, 1),
        (4, 16, 19, 20, 3, 1, 2, 2, 1),
        (8, 32, 18, 19, 3, 1, 1, 1, 2),
        (3, 16, 40, 41, 7, 2, 3, 1, 1),
        (4, 16, 9, 300, 3, 1, 1, 1, 1),  # rows so wide that a band holds a few: bands and a rest
        (256, 16, 12, 12, 3, 1, 1, 1, 1),  # 2304 taps: split so the kept dW^T stays in L2
    ],
)
def test_weight_gradient_with_channels_across_the_vectors_equals_eager(
    tile_cols, cin, cout, hw, width, kernel, stride, padding, dilation, groups
):
    cout = max(cout, tile_cols * groups)  # enough output channels per group for one vector block
    cin = max(cin, cout // groups // (kernel * kernel) + 1) * groups  # more taps than channels
    conv = nn.Conv2d(cin, cout, kernel, stride, padding, dilation, groups, bias=False)
    rng = np.random.default_rng(hw)
    x = rng.standard_normal((3, cin, hw, width)).astype(np.float32)
    out_shape = conv(Tensor(x)).shape
    gy = rng.standard_normal(out_shape).astype(np.float32)
    kernels, got, want = weight_grad(conv, x, gy)
    assert any("gT" in k.pseudo_c() for k in kernels)
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4 * np.abs(want).max())


@pytest.mark.parametrize("row", ["wide", "over half", "narrow"])
def test_the_output_gradient_is_transposed_in_registers_where_a_row_fills_a_vector(tile_cols, row):
    """Rows of at least a vector of pixels go into the pixel-major copy as vectors, L
    columns at a time, transposed in registers (rows of at least half a vector too, as
    masked vectors, where the target masks: AVX-512); narrower rows keep the scalar copy."""
    from compiler.target import host_target

    target = host_target()  # the fixture's target
    lanes = target.lanes
    width = {"wide": lanes + 5, "over half": lanes - 3, "narrow": lanes // 2 - 1}[row]
    conv = nn.Conv2d(tile_cols // 9 + 1, tile_cols, 3, 1, 1, bias=False)  # taps > channels
    rng = np.random.default_rng(width)
    x = rng.standard_normal((2, conv.in_channels, 24, width)).astype(np.float32)
    gy = rng.standard_normal(conv(Tensor(x)).shape).astype(np.float32)
    kernels, got, want = weight_grad(conv, x, gy)
    assert any("gT" in k.pseudo_c() for k in kernels)
    transposed = any("; transpose(" in k.sources["llvm_ir"] for k in kernels)
    assert transposed == (width >= lanes or (target.masked_remainders and 2 * width >= lanes))
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4 * np.abs(want).max())
