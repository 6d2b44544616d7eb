"""Indexing follows PyTorch (not numpy) where the two differ: an int next to index arrays
selects first instead of joining the advanced indices. Forward values and gradients."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tinygrad_edu import Tensor, gradcheck
from tinygrad_edu.testing import index_expressions, shapes

X = np.arange(120.0).reshape(2, 3, 4, 5)
IDX = np.array([0, 2])


def test_int_with_separated_index_array_keeps_pytorchs_dim_order() -> None:
    x = Tensor(X, dtype=np.float64)
    out = x[1, :, IDX]
    assert out.shape == (3, 2, 5)  # numpy would give (2, 3, 5)
    np.testing.assert_array_equal(out.numpy(), X[1][:, IDX])
    assert x[None, 1, :, IDX].shape == (1, 3, 2, 5)
    assert x[1, ..., IDX].shape == (3, 4, 2)
    assert x[:, 1, :, IDX].shape == (2, 4, 2)
    np.testing.assert_array_equal(x[:, 1, :, IDX].numpy(), X[:, 1][:, :, IDX])


def test_zero_d_int_index_acts_as_an_int() -> None:
    x = Tensor(X, dtype=np.float64)
    assert x[Tensor(np.array(1)), :, IDX].shape == (3, 2, 5)
    assert x[np.array(1)].shape == (3, 4, 5)


def test_int_with_bool_mask_keeps_pytorchs_dim_order() -> None:
    mask = np.array([True, False, True, True])
    out = Tensor(X, dtype=np.float64)[1, :, mask]
    np.testing.assert_array_equal(out.numpy(), X[1][:, mask])  # (3, 3, 5): dim 1 first


def test_mixed_index_gradient_scatters_back_to_the_selected_elements() -> None:
    x = Tensor(X, requires_grad=True, dtype=np.float64)
    rows = np.array([0, 2, 2])  # a repeated position accumulates
    g = np.arange(45.0).reshape(3, 3, 5)
    x[1, :, rows].backward(Tensor(g, dtype=np.float64))
    want = np.zeros_like(X)
    np.add.at(want[1], (slice(None), rows), g)
    np.testing.assert_array_equal(x.grad.numpy(), want)
    assert gradcheck(lambda t: t[1, :, rows] * t[0, rows, 1:], [np.random.default_rng(0)
                     .standard_normal((2, 3, 4, 3))])  # fmt: skip


def _torch_index(torch, index):
    return tuple(torch.tensor(i) if isinstance(i, np.ndarray) else i for i in index)


@settings(max_examples=100)  # cheap examples; enough of them to reach the mixed cases
@given(data=st.data())
def test_random_index_expressions_match_torch_forward_and_backward(data) -> None:
    torch = pytest.importorskip("torch")
    shape = data.draw(shapes(min_dims=1, max_dims=4, max_side=4))
    index = data.draw(index_expressions(shape))
    values = np.random.default_rng(0).standard_normal(shape)
    t = torch.tensor(values, requires_grad=True)
    want = t[_torch_index(torch, index)]
    x = Tensor(values, requires_grad=True, dtype=np.float64)
    got = x[index]
    assert got.shape == tuple(want.shape), index
    np.testing.assert_array_equal(got.numpy(), want.detach().numpy())
    if got.size:
        g = np.random.default_rng(1).standard_normal(got.shape)
        got.backward(Tensor(g, dtype=np.float64))
        want.backward(torch.tensor(g))
        np.testing.assert_allclose(x.grad.numpy(), t.grad.numpy(), rtol=1e-12, atol=1e-12)
