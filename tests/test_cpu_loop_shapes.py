"""CPU loop shapes that follow memory: sums whose kept axes sit between reduced ones walk the
input in order (`_Lowerer.reduction_streamed`), and trailing axes that every access indexes
row-major are merged into one vector loop (`_Lowerer.flat_loops`). Each compared with the
eager (numpy) result; float32 sums in another order, hence the tolerances.
"""

import numpy as np
import pytest

pytest.importorskip("llvmlite")

import compiler  # noqa: E402
from compiler.lower import STREAM_BLOCK  # noqa: E402
from tinygrad_edu import Tensor  # noqa: E402


def check(fn, *arrays, rtol=1e-5):
    compiled = compiler.compile(fn, *arrays, backend="llvm")
    want = fn(*(Tensor(a) for a in arrays)).numpy()
    np.testing.assert_allclose(compiled(*arrays), want, rtol=rtol, atol=1e-4)
    return compiled


def data(*shape, seed=0):
    return np.random.default_rng(seed).standard_normal(shape).astype(np.float32)


@pytest.mark.parametrize("shape", [(4, 6, 7, 7), (3, 64, 56, 56), (2, 3, 5, 17), (5, 2, 1, 1)])
@pytest.mark.parametrize("keepdim", [False, True])
def test_per_channel_sums_walk_memory_in_order(shape, keepdim):
    x, y = data(*shape), data(*shape, seed=1)

    def fn(a, b):  # BatchNorm's backward sum: a product in front, a scale behind
        return (a * b).sum(axis=(0, 2, 3), keepdim=keepdim) * 0.5

    compiled = check(fn, x, y, rtol=1e-4)
    assert "racc" in compiled.kernels[0].pseudo_c()


def test_more_kept_elements_than_one_task_holds():
    x = data(2, STREAM_BLOCK * 2 + 3, 3)
    check(lambda a: a.sum(axis=(0, 2)), x)


def test_column_sums_vectorise_along_the_kept_axis():
    x = data(33, 70)
    compiled = check(lambda a: a.sum(axis=0), x)
    assert "racc" in compiled.kernels[0].pseudo_c()


def test_kept_axes_in_several_runs_keep_the_default_nest():
    x = data(3, 4, 5, 6)
    compiled = check(lambda a: a.sum(axis=(0, 2)), x)
    assert "racc" not in compiled.kernels[0].pseudo_c()


def test_trailing_axes_merge_into_one_vector_loop():
    x, scale = data(2, 8, 7, 7), data(1, 8, 1, 1, seed=2)
    compiled = check(lambda a, s: (a * s + 1.0).relu(), x, scale)
    code = compiled.kernels[0].pseudo_c()
    # the scale varies along channels, so (7, 7) merge, not (8, 7, 7): one loop of 49
    assert "i3 < 49; i3++) {  // vectorize" in code


def test_a_permuted_view_is_not_addressed_flat():
    x, y = data(2, 3, 5, 6), data(2, 3, 6, 5, seed=3)
    check(lambda a, b: a.permute(0, 1, 3, 2) * 2.0 + b, x, y)
    check(lambda a, b: (a.permute(0, 1, 3, 2) * b).sum(axis=(0, 2, 3)), x, y)


def test_broadcast_rows_are_not_addressed_flat():
    x, row = data(2, 3, 4, 9), data(2, 3, 1, 9, seed=4)
    check(lambda a, r: a - r, x, row)
    check(lambda a, r: (a * r).sum(axis=(0, 2, 3)), x, row)


@pytest.mark.parametrize("m, k, n", [(32, 64, 128), (32, 128, 64), (13, 20, 70), (96, 7, 64)])
def test_small_transposed_weights_are_packed_for_the_gemm_tile(tile_cols, m, k, n):
    """x @ W.T with W in L1 and rows enough to reuse it (an MLP's linear layers): W is
    transposed into the blocked GEMM's packed panels, not summed as dot products, and every
    edge block (rows or columns that the tile does not divide) is still right."""
    x, w, b = data(m, k), data(n, k, seed=1), data(n, seed=2)
    compiled = check(lambda x, w, b: (x @ w.permute(1, 0) + b).relu(), x, w, b)
    source = compiled.kernels[0].pseudo_c()
    tile = compiled.kernels[0].target.gemm_tile
    blocked = m >= 2 * tile.rows and n >= tile.cols and k * n * 4 <= compiled.kernels[0].target.l1d
    assert ("pack this column panel of B" in source) == (
        blocked and -(-n // tile.cols) * tile.cols * 4 <= n * 5
        and -(-m // tile.rows) * tile.rows * 4 <= m * 5
    )  # fmt: skip
    assert ("dots" in source) != ("pack this column panel of B" in source)


def test_a_large_transposed_weight_keeps_the_dot_products():
    """AlexNet's fc layers (16 rows, a weight far beyond L1): transposing the weight would
    cost more than the product, so they stay dot products."""
    x, w = data(16, 1024), data(256, 1024, seed=1)
    compiled = check(lambda x, w: x @ w.permute(1, 0), x, w, rtol=1e-4)
    assert "dots" in compiled.kernels[0].pseudo_c()
