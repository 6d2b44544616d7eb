"""The shared backward walk: what it keeps after backward (retain_graph / create_graph, as in
PyTorch), for Tensor and Value alike."""

from __future__ import annotations

import gc
import weakref

import numpy as np
import pytest

from tinygrad_edu import Tensor, Value, gradcheck

X = np.array([0.3, -1.2, 2.0])


def _loss(x: Tensor) -> Tensor:
    return ((x * x).tanh() * x).sum()


def _expected_grad() -> np.ndarray:
    t = np.tanh(X * X)
    return t + X * (1 - t * t) * 2 * X


def test_backward_twice_raises_unless_retain_graph() -> None:
    x = Tensor(X, requires_grad=True, dtype=np.float64)
    loss = _loss(x)
    loss.backward()
    np.testing.assert_allclose(x.grad.numpy(), _expected_grad(), rtol=1e-12)
    with pytest.raises(RuntimeError, match="backward through the graph a second time"):
        loss.backward()
    # the refused call wrote nothing: the gradient is not doubled
    np.testing.assert_allclose(x.grad.numpy(), _expected_grad(), rtol=1e-12)


def test_retain_graph_allows_a_second_backward_that_accumulates() -> None:
    x = Tensor(X, requires_grad=True, dtype=np.float64)
    loss = _loss(x)
    loss.backward(retain_graph=True)
    loss.backward()
    np.testing.assert_allclose(x.grad.numpy(), 2 * _expected_grad(), rtol=1e-12)
    with pytest.raises(RuntimeError, match="retain_graph=True"):
        loss.backward()  # the second call did not retain


def test_create_graph_retains_the_graph_unless_told_otherwise() -> None:
    x = Tensor(X, requires_grad=True, dtype=np.float64)
    loss = _loss(x)
    loss.backward(create_graph=True)
    loss.backward(create_graph=True)
    np.testing.assert_allclose(x.grad.numpy(), 2 * _expected_grad(), rtol=1e-12)
    y = Tensor(X, requires_grad=True, dtype=np.float64)
    other = _loss(y)
    other.backward(create_graph=True, retain_graph=False)
    with pytest.raises(RuntimeError, match="second time"):
        other.backward()


def test_second_order_gradient_through_create_graph() -> None:
    x = Tensor(X, requires_grad=True, dtype=np.float64)
    (x * x * x).sum().backward(create_graph=True)
    g = x.grad
    x.grad = None
    g.sum().backward()  # d/dx sum(3 x^2) = 6 x
    np.testing.assert_allclose(x.grad.numpy(), 6 * X, rtol=1e-12)


def test_backward_through_a_subgraph_already_released_raises() -> None:
    x = Tensor(X, requires_grad=True, dtype=np.float64)
    h = x.tanh()
    h.sum().backward()
    with pytest.raises(RuntimeError, match="'tanh'"):
        (h * 2.0).sum().backward()


def test_backward_releases_intermediate_arrays() -> None:
    x = Tensor(X, requires_grad=True, dtype=np.float64)
    h = x * 2.0
    alive = weakref.ref(h.data)
    loss = h.tanh().sum()
    del h
    loss.backward()
    gc.collect()
    assert alive() is None  # nothing but the graph held it, and the graph let go
    assert loss.op_name == "sum"  # the node still says what made it


def test_fresh_forward_passes_accumulate_gradients_as_before() -> None:
    x = Tensor(X, requires_grad=True, dtype=np.float64)
    _loss(x).backward()
    _loss(x).backward()
    np.testing.assert_allclose(x.grad.numpy(), 2 * _expected_grad(), rtol=1e-12)


def test_leaf_backward_twice_accumulates() -> None:
    x = Tensor(np.array([2.0]), requires_grad=True, dtype=np.float64)
    x.backward()
    x.backward()
    np.testing.assert_allclose(x.grad.numpy(), [2.0])


def test_value_backward_twice_raises_and_explain_still_works() -> None:
    a = Value(3.0)
    b = a * a + a
    b.backward()
    assert a.grad == 7.0
    with pytest.raises(RuntimeError, match="second time"):
        b.backward()
    assert a.grad == 7.0
    ledger = b.explain()
    assert "fan-out" in ledger and "grad = 7" in ledger


def test_value_retain_graph_accumulates() -> None:
    a = Value(3.0)
    b = a * a
    b.backward(retain_graph=True)
    b.backward()
    assert a.grad == 12.0


def test_gradcheck_backs_through_one_graph_per_output_row() -> None:
    # gradcheck calls backward once per output element on the same output
    assert gradcheck(lambda t: (t * t).tanh(), [np.array([0.5, -0.3, 1.1])])


def test_torch_also_refuses_a_second_backward() -> None:
    torch = pytest.importorskip("torch")
    x = torch.tensor(X, requires_grad=True)
    loss = ((x * x).tanh() * x).sum()
    loss.backward()
    with pytest.raises(RuntimeError, match="second time"):
        loss.backward()
    np.testing.assert_allclose(x.grad.numpy(), _expected_grad(), rtol=1e-12)
