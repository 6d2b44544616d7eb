"""Anomaly mode: the first op that makes NaN/inf from finite numbers raises, forward or
backward, naming the op, the shapes and the user's line; off, nothing changes."""

from __future__ import annotations

import numpy as np
import pytest

import tinygrad_edu as tg
from tinygrad_edu import OpError, Tensor, Value


def _line_of(marker: str) -> int:
    with open(__file__) as f:
        return next(i for i, line in enumerate(f, 1) if line.rstrip().endswith(f"# {marker}"))


@pytest.fixture(autouse=True)
def _mode_off_afterwards():
    yield
    tg.set_detect_anomaly(False)


def test_forward_anomaly_names_the_op_shapes_and_line():
    x = Tensor(np.array([[1.0, 0.0, 2.0]]))
    with tg.detect_anomaly():
        with pytest.raises(OpError) as info:
            x.log()  # forward-log
    message = str(info.value)
    assert message.startswith("log: forward produced an infinity from finite inputs")
    assert "(1, 3) -> (1, 3)" in message
    assert f"test_anomaly.py:{_line_of('forward-log')}]" in message


def test_backward_anomaly_names_the_op_and_both_lines():
    x = Tensor(np.array([4.0, 0.0]), requires_grad=True)
    with tg.detect_anomaly():
        y = x.sqrt()  # forward-sqrt
        with pytest.raises(OpError) as info:
            y.sum().backward()  # backward-call
    message = str(info.value)
    assert message.startswith("sqrt: backward produced an infinity in the gradient of input 0")
    assert f"forward ran at {__file__}:{_line_of('forward-sqrt')}" in message
    assert f"[at {__file__}:{_line_of('backward-call')}]" in message


def test_nan_from_finite_inputs_is_reported_as_nan():
    a = Tensor(np.array([0.0, 1.0]))
    with tg.detect_anomaly(), pytest.raises(OpError, match="div: forward produced NaN"):
        a / a


def test_off_by_default_and_the_context_restores_the_previous_mode():
    assert not tg.is_anomaly_enabled()
    with np.errstate(divide="ignore"):
        assert Tensor(np.array([0.0])).log().item() == -np.inf
    tg.set_detect_anomaly(True)
    with tg.detect_anomaly():
        assert tg.is_anomaly_enabled()
    assert tg.is_anomaly_enabled()  # it was on before the block
    tg.set_detect_anomaly(False)
    with tg.detect_anomaly():
        pass
    assert not tg.is_anomaly_enabled()


def test_non_finite_inputs_are_not_an_anomaly():
    x = Tensor(np.array([np.inf, 1.0]), requires_grad=True)
    with tg.detect_anomaly():
        y = (x.exp() * 2.0).sum()  # inf in, inf out: the anomaly happened earlier
        y.backward()
    assert x.grad.numpy()[0] == np.inf


def test_scalar_value_anomalies_are_caught_too():
    with tg.detect_anomaly(), pytest.raises(OpError, match="exp: forward produced an infinity"):
        Value(1000.0).exp()
    assert Value(1000.0).exp().data == float("inf")  # off again: an infinity passes


def test_healthy_training_step_is_unchanged_under_anomaly_mode():
    from models import MLP

    rng = np.random.default_rng(0)
    x, y = rng.standard_normal((8, 5)), rng.integers(0, 3, 8)
    grads = []
    for on in (False, True):
        tg.manual_seed(0)
        model = MLP([5, 4, 3])
        tg.set_detect_anomaly(on)
        model(x).cross_entropy(y).backward()
        grads.append([p.grad.numpy().copy() for p in model.parameters()])
    for a, b in zip(*grads):
        np.testing.assert_array_equal(a, b)


def test_max_pool_backward_with_padding_is_not_an_anomaly():
    # the VJP pads with -inf internally; only the gradients it returns are checked
    x = Tensor(np.random.default_rng(1).standard_normal((1, 1, 4, 4)), requires_grad=True)
    with tg.detect_anomaly():
        x.max_pool2d(3, 2, 1).sum().backward()
    assert np.isfinite(x.grad.numpy()).all()
