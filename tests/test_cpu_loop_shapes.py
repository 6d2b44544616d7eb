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
