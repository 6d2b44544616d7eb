"""Value: micrograd-style scalars on the shared autograd; explain(); scalar vs tensor."""

import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from tinygrad_edu import Tensor, Value


def test_readme_example_gradients_match_hand_derivation():
    a, b = Value(2.0), Value(-3.0)
    c = (a * b + a.relu()).tanh()
    c.backward()
    t = math.tanh(-4.0)
    assert a.grad == pytest.approx((1 - t * t) * (-3.0 + 1.0))
    assert b.grad == pytest.approx((1 - t * t) * 2.0)


def test_explain_shows_local_times_upstream_and_fan_out_sum():
    a, b = Value(2.0, label="a"), Value(-3.0, label="b")
    c = (a * b + a.relu()).tanh()
    c.label = "c"
    c.backward()
    text = c.explain()
    assert "c = tanh(" in text and "(local) x" in text
    # a feeds mul and relu: its gradient is the sum of two contributions, shown as such
    fan = [line for line in text.splitlines() if "fan-out: d/da" in line]
    assert len(fan) == 1 and fan[0].endswith(f"{a.grad:.6g}")


def test_backward_on_a_50k_node_chain_needs_no_recursion():
    x = Value(0.5)
    y = x
    for _ in range(25_000):  # 50k nodes: fifty times Python's recursion limit
        y = y * 1.0 + 0.0
    y.backward()
    assert x.grad == 1.0


@pytest.mark.parametrize("exponent", [2, 0.5, -1.5])
def test_pow_with_constant_and_value_exponent(exponent):
    a, e = Value(1.7), Value(exponent)
    (a**exponent).backward()
    assert a.grad == pytest.approx(exponent * 1.7 ** (exponent - 1))
    a.grad = None
    out = a**e
    out.backward()
    assert a.grad == pytest.approx(exponent * 1.7 ** (exponent - 1))
    assert e.grad == pytest.approx(1.7**exponent * math.log(1.7))


def test_gradients_accumulate_across_backward_calls_like_pytorch():
    a = Value(3.0)
    (a * a).backward()
    (a * a).backward()
    assert a.grad == 12.0


# Random elementwise expressions, evaluated with Value and with Tensor, give the same values
# and gradients (both run the same op table).
EXPRESSIONS = [
    lambda x, y: (x * y + x.tanh()).sigmoid(),
    lambda x, y: (x - y) / (y * y + 1.0) + (x * 0.5).exp(),
    lambda x, y: ((x * x + 1.0).log() * y.relu() - x.leaky_relu(0.2)) ** 2,
    lambda x, y: (x.abs() + 1.0).sqrt() - 2.0 / (1.0 + y * y) + (-x).exp(),
    lambda x, y: (x * x + 0.1) ** (y.sigmoid() + 1.0),
]


@pytest.mark.parametrize("expr", range(len(EXPRESSIONS)))
@given(
    x=st.floats(-3, 3).filter(lambda v: abs(v) > 1e-3),
    y=st.floats(-3, 3).filter(lambda v: abs(v) > 1e-3),
)
def test_value_and_tensor_agree_on_values_and_gradients(expr, x, y):
    f = EXPRESSIONS[expr]
    vx, vy = Value(x), Value(y)
    vout = f(vx, vy)
    vout.backward()
    tx = Tensor(np.array([x]), dtype=np.float64, requires_grad=True)
    ty = Tensor(np.array([y]), dtype=np.float64, requires_grad=True)
    tout = f(tx, ty)
    tout.sum().backward()
    assert vout.data == pytest.approx(tout.item(), rel=1e-12, abs=1e-12)
    assert vx.grad == pytest.approx(tx.grad.item(), rel=1e-9, abs=1e-12)
    assert vy.grad == pytest.approx(ty.grad.item(), rel=1e-9, abs=1e-12)


def test_value_rejects_non_numbers_with_a_clear_message():
    with pytest.raises(TypeError, match="Value holds one float"):
        Value([1.0, 2.0])


def test_value_nan_results_raise_naming_the_op_but_infinities_pass():
    assert (Value(1.0) / Value(0.0)).data == math.inf
    with pytest.raises(ValueError, match="log: the result is not a number"):
        Value(-1.0).log()
    with pytest.raises(ValueError, match="div: the result is not a number"):
        Value(0.0) / Value(0.0)
