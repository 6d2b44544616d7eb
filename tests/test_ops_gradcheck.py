"""Every primitive and composite op passes gradcheck (float64, eps 1e-6, atol 1e-5, rtol 1e-3)
over random shapes and parameters drawn by hypothesis."""

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from tinygrad_edu import Tensor, cat, gradcheck, stack, where
from tinygrad_edu.testing import (
    arrays,
    broadcastable_pair,
    conv2d_cases,
    distinct_arrays,
    pool2d_cases,
    shapes,
)

# Kinks: relu/leaky_relu/abs at 0 and maximum/minimum where operands tie are non-smooth, so
# those tests keep inputs at least 1e-2 from the kink (`away_from`, or operands shifted apart);
# max/min reductions and max-pooling use `distinct_arrays` so no two inputs tie.

UNARY = {
    "neg": (lambda x: -x, {}),
    "exp": (lambda x: x.exp(), {}),
    "log": (lambda x: x.log(), {"low": 0.1}),
    "sqrt": (lambda x: x.sqrt(), {"low": 0.1}),
    "abs": (lambda x: x.abs(), {"away_from": (0.0,)}),
    "relu": (lambda x: x.relu(), {"away_from": (0.0,)}),
    "sigmoid": (lambda x: x.sigmoid(), {}),
    "tanh": (lambda x: x.tanh(), {}),
    "leaky_relu": (lambda x: x.leaky_relu(0.1), {"away_from": (0.0,)}),
    "softmax": (lambda x: x.softmax(-1), {}),
    "log_softmax": (lambda x: x.log_softmax(0), {}),
    "pow_const": (lambda x: x**3 + 2.0**x, {}),
    "sqrt_pow": (lambda x: x**0.5, {"low": 0.1}),
}


@pytest.mark.parametrize("name", sorted(UNARY))
@given(data=st.data())
def test_unary_op_grad_matches_finite_differences(name, data):
    fn, kw = UNARY[name]
    x = data.draw(arrays(shapes(min_dims=1), **{"low": -3.0, **kw}))
    assert gradcheck(fn, [x])


BINARY = {
    "add": lambda a, b: a + b,
    "sub": lambda a, b: a - b,
    "mul": lambda a, b: a * b,
    "div": lambda a, b: a / (b * b + 0.5),
    "pow": lambda a, b: (a * a + 0.5) ** b,
    "rsub_scalar": lambda a, b: 2.0 - a * b,
    "rdiv_scalar": lambda a, b: 1.0 / (a * a + 1.0) + b,
}


@pytest.mark.parametrize("name", sorted(BINARY))
@given(pair=broadcastable_pair())
def test_binary_op_grad_matches_finite_differences_with_broadcasting(name, pair):
    assert gradcheck(BINARY[name], list(pair))


@pytest.mark.parametrize("op", ["maximum", "minimum"])
@given(pair=broadcastable_pair(), sign=st.sampled_from([-1.0, 1.0]))
def test_maximum_minimum_grad_off_ties(op, pair, sign):
    a, b = pair
    # Keep the operands apart (kink where they tie): shift b by a margin of 0.05 away from a.
    b = np.where(np.abs(b - a) < 0.05, a + sign * 0.05, b) if a.shape == b.shape else b + 0.05
    gap = np.abs(np.broadcast_to(a, np.broadcast_shapes(a.shape, b.shape)) - b)
    if gap.size and gap.min() < 1e-3:
        b = b + 0.5  # broadcast ties are rare; move the whole operand
    assert gradcheck(lambda x, y: getattr(x, op)(y), [a, b])


@given(pair=broadcastable_pair(num_shapes=3))
def test_where_grad_matches_finite_differences(pair):
    c, a, b = pair
    assert gradcheck(lambda x, y: where(Tensor(c > 0), x, y), [a, b])


REDUCE_AXES = st.sampled_from([None, 0, -1, (0, 1)])


@pytest.mark.parametrize("op", ["sum", "mean", "logsumexp", "var"])
@given(
    x=arrays(shapes(min_dims=2, max_dims=3, min_side=2)), axis=REDUCE_AXES, keepdim=st.booleans()
)
def test_reduction_grad_matches_finite_differences(op, x, axis, keepdim):
    assert gradcheck(lambda t: getattr(t, op)(axis=axis, keepdim=keepdim), [x])


@pytest.mark.parametrize("op", ["max", "min"])
@given(
    x=distinct_arrays(shapes(min_dims=1, max_dims=3)),
    axis=st.sampled_from([None, 0, -1]),
    keepdim=st.booleans(),
)
def test_max_min_reduction_grad_without_ties(op, x, axis, keepdim):
    assert gradcheck(lambda t: getattr(t, op)(axis=axis, keepdim=keepdim), [x])


@given(x=arrays(shapes(min_dims=1, max_dims=4)), data=st.data())
def test_movement_ops_grad_matches_finite_differences(x, data):
    perm = data.draw(st.permutations(range(x.ndim)))
    pads = tuple(data.draw(st.integers(0, 2)) for _ in range(2 * min(x.ndim, 2)))
    start = data.draw(st.integers(0, x.ndim - 1))

    def fn(t):
        moved = t.permute(*perm).reshape(-1).reshape(t.permute(*perm).shape)
        flat = moved.flatten(start_dim=min(start, moved.ndim - 1))
        padded = t.pad(pads, value=0.5)
        grown = t.unsqueeze(0).expand(2, *t.shape).transpose(0, -1).squeeze()
        return (flat.sum() * 2, padded * 3, grown)

    assert gradcheck(fn, [x])


@given(x=arrays(shapes(min_dims=2, max_dims=3, min_side=2)), data=st.data())
def test_getitem_grad_matches_finite_differences(x, data):
    i = data.draw(st.integers(-x.shape[0], x.shape[0] - 1))
    step = data.draw(st.integers(1, 2))
    rows = np.array(data.draw(st.lists(st.integers(0, x.shape[0] - 1), min_size=1, max_size=4)))

    def fn(t):  # ints, slices with steps, None, Ellipsis, and repeated integer-array rows
        return (t[i], t[::step, 1:], t[None, ..., 0], t[rows])

    assert gradcheck(fn, [x])


@given(x=arrays(shapes(min_dims=2, max_dims=3)), data=st.data())
def test_cat_and_stack_grad_matches_finite_differences(x, data):
    axis = data.draw(st.integers(-x.ndim, x.ndim - 1))
    extra = list(x.shape)
    extra[axis] = data.draw(st.integers(1, 3))
    y = data.draw(arrays(tuple(extra)))
    assert gradcheck(lambda a, b: (cat([a, b, a], axis=axis), stack([a, a * 2], axis=axis)), [x, y])


@given(data=st.data())
def test_matmul_grad_matches_finite_differences_batched_and_broadcast(data):
    n, k, m = (data.draw(st.integers(1, 4)) for _ in range(3))
    batch_a = data.draw(st.sampled_from([(), (2,), (1,), (2, 3)]))
    batch_b = data.draw(st.sampled_from([(), (2,), (1,)])) if len(batch_a) < 2 else (3,)
    a = data.draw(arrays(batch_a + (n, k)))
    b = data.draw(arrays(batch_b + (k, m)))
    v = data.draw(arrays((k,)))
    assert gradcheck(lambda x, y, z: (x @ y, x @ z, z @ y), [a, b, v])


@given(data=st.data(), bias=st.booleans())
def test_linear_grad_matches_finite_differences(data, bias):
    n, i, o = (data.draw(st.integers(1, 4)) for _ in range(3))
    x, w, b = data.draw(arrays((n, i))), data.draw(arrays((o, i))), data.draw(arrays((o,)))
    assert gradcheck(lambda x, w, b: x.linear(w, b if bias else None), [x, w, b])


@given(case=conv2d_cases(), data=st.data(), bias=st.booleans())
def test_conv2d_grad_matches_finite_differences(case, data, bias):
    x = data.draw(arrays(case.x_shape))
    w = data.draw(arrays(case.w_shape))
    b = data.draw(arrays((case.w_shape[0],)))
    assert gradcheck(lambda x, w, b: x.conv2d(w, b if bias else None, **case.kwargs), [x, w, b])


@given(case=conv2d_cases(max_batch=1, max_kernel=2), data=st.data())
def test_conv2d_second_order_grad_matches_finite_differences(case, data):
    """conv2d's VJP is written in DSL ops (conv2d_grad_input/weight), so it differentiates.

    Inputs in [-1, 1]: the checked function is quartic, and with inputs up to 3 its value
    (~1e4) makes central-difference round-off (~1e-16 * f / eps) reach the 1e-5 atol."""
    x = data.draw(arrays(case.x_shape, low=-1.0, high=1.0))
    w = data.draw(arrays(case.w_shape, low=-1.0, high=1.0))

    def grad_norm(x, w):
        x.grad = w.grad = None  # gradcheck's own backward may have left gradients here
        y = x.conv2d(w, **case.kwargs)
        y.backward(y * y, create_graph=True)
        gx, gw = x.grad, w.grad
        x.grad = w.grad = None
        return (gx * gx).sum() + (gw * gw).sum()

    assert gradcheck(grad_norm, [x, w])


@given(case=pool2d_cases(), data=st.data())
def test_max_pool2d_grad_matches_finite_differences(case, data):
    x = data.draw(distinct_arrays(case.x_shape))  # no ties inside a window
    assert gradcheck(lambda t: t.max_pool2d(**case.kwargs), [x])


@given(case=pool2d_cases(), data=st.data())
def test_avg_pool2d_grad_matches_finite_differences(case, data):
    x = data.draw(arrays(case.x_shape))
    assert gradcheck(lambda t: t.avg_pool2d(**case.kwargs), [x])


@given(
    x=arrays(st.tuples(st.integers(1, 2), st.integers(1, 6), st.integers(1, 3), st.integers(1, 3))),
    size=st.integers(1, 5),
    alpha=st.floats(1e-4, 1.0),
    beta=st.floats(0.25, 1.0),
    k=st.floats(0.5, 2.0),
)
def test_local_response_norm_grad_matches_finite_differences(x, size, alpha, beta, k):
    assert gradcheck(lambda t: t.local_response_norm(size, alpha, beta, k), [x])


@given(x=arrays(st.tuples(st.integers(1, 5), st.integers(2, 6))), data=st.data())
def test_cross_entropy_grad_matches_finite_differences(x, data):
    labels = np.array(
        data.draw(
            st.lists(st.integers(0, x.shape[1] - 1), min_size=x.shape[0], max_size=x.shape[0])
        )
    )
    assert gradcheck(lambda t: t.cross_entropy(labels), [x])


@given(pair=st.tuples(arrays((3, 4)), arrays((3, 4), low=0.0, high=1.0)))
def test_binary_losses_grad_match_finite_differences(pair):
    x, y = pair
    probs = 1 / (1 + np.exp(-x))  # probabilities in (0, 1), away from the clamped ends
    assert gradcheck(lambda p: p.binary_cross_entropy(y), [probs])
    assert gradcheck(lambda t: t.binary_cross_entropy_with_logits(y), [x])
    assert gradcheck(lambda t: t.mse_loss(y), [x])


@given(x=arrays((4, 5)), p=st.floats(0.0, 0.9), seed=st.integers(0, 1000))
def test_dropout_grad_matches_finite_differences_for_a_fixed_mask(x, p, seed):
    from tinygrad_edu import manual_seed

    def fn(t):
        manual_seed(seed)  # same mask on every evaluation
        return t.dropout(p, training=True)

    assert gradcheck(fn, [x])


@given(x=arrays(shapes(min_dims=1, max_dims=3)))
def test_fast_mode_agrees_with_full_mode(x):
    fn = lambda t: (t.tanh() * t).sum(0)  # noqa: E731
    assert gradcheck(fn, [x], fast=True) and gradcheck(fn, [x])
