"""The 2-2-1 sigmoid network with summed binary cross-entropy (docs/backprop.md): gradients
from Value, from Tensor and from the hand-derived matrix formulas agree."""

import numpy as np
import pytest

from tinygrad_edu import Tensor, Value


def sigmoid(z):
    return 1 / (1 + np.exp(-z))


@pytest.fixture
def problem():
    r = np.random.default_rng(7)
    return dict(
        X=r.standard_normal((4, 2)),
        Y=r.integers(0, 2, (4, 1)).astype(float),
        W1=r.standard_normal((2, 2)),
        b1=r.standard_normal(2),
        W2=r.standard_normal((2, 1)),
        b2=r.standard_normal(1),
    )


def hand_derived(p):
    """Rows are examples. With L = sum BCE(sigmoid(Z2), Y), dL/dZ2 = Yhat - Y."""
    A1 = sigmoid(p["X"] @ p["W1"] + p["b1"])
    Yhat = sigmoid(A1 @ p["W2"] + p["b2"])
    dZ2 = Yhat - p["Y"]
    dZ1 = (dZ2 @ p["W2"].T) * A1 * (1 - A1)
    return dict(W2=A1.T @ dZ2, b2=dZ2.sum(0), W1=p["X"].T @ dZ1, b1=dZ1.sum(0))


def tensor_grads(p):
    params = {
        k: Tensor(p[k], dtype=np.float64, requires_grad=True) for k in ("W1", "b1", "W2", "b2")
    }
    X, Y = Tensor(p["X"], dtype=np.float64), Tensor(p["Y"], dtype=np.float64)
    A1 = (X @ params["W1"] + params["b1"]).sigmoid()
    Yhat = (A1 @ params["W2"] + params["b2"]).sigmoid()
    loss = -(Y * Yhat.log() + (1 - Y) * (1 - Yhat).log()).sum()
    loss.backward()
    return {k: v.grad.numpy() for k, v in params.items()}


def value_grads(p):
    W1 = [[Value(p["W1"][i, j]) for j in range(2)] for i in range(2)]
    b1 = [Value(v) for v in p["b1"]]
    W2 = [Value(p["W2"][i, 0]) for i in range(2)]
    b2 = Value(p["b2"][0])
    loss = Value(0.0)
    for x, (y,) in zip(p["X"], p["Y"]):
        a1 = [(x[0] * W1[0][j] + x[1] * W1[1][j] + b1[j]).sigmoid() for j in range(2)]
        yhat = (a1[0] * W2[0] + a1[1] * W2[1] + b2).sigmoid()
        loss = loss - (y * yhat.log() + (1 - y) * (1 - yhat).log())
    loss.backward()
    return dict(
        W1=np.array([[w.grad for w in row] for row in W1]),
        b1=np.array([b.grad for b in b1]),
        W2=np.array([[w.grad] for w in W2]),
        b2=np.array([b2.grad]),
    )


def test_value_tensor_and_matrix_formulas_agree(problem):
    want = hand_derived(problem)
    for got in (tensor_grads(problem), value_grads(problem)):
        for k in want:
            np.testing.assert_allclose(got[k], want[k], rtol=1e-10, atol=1e-12)
