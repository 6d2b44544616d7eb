"""Forward values and gradients equal PyTorch's (when torch is installed) on random shapes and
parameters, in float64, so semantics (padding rules, LRN's alpha/size, tie handling, loss
reductions) match the library users compare us with."""

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from tinygrad_edu import Tensor
from tinygrad_edu.testing import arrays, conv2d_cases, distinct_arrays, pool2d_cases

torch = pytest.importorskip("torch")
F = torch.nn.functional


def run_both(ours, theirs, *inputs):
    ts = [Tensor(x, dtype=np.float64, requires_grad=True) for x in inputs]
    qs = [torch.tensor(x, dtype=torch.float64, requires_grad=True) for x in inputs]
    out_t, out_q = ours(*ts), theirs(*qs)
    np.testing.assert_allclose(out_t.numpy(), out_q.detach().numpy(), rtol=1e-9, atol=1e-10)
    seed = np.random.default_rng(0).standard_normal(out_t.shape)
    out_t.backward(Tensor(seed, dtype=np.float64))
    out_q.backward(torch.tensor(seed))
    for t, q in zip(ts, qs):
        np.testing.assert_allclose(t.grad.numpy(), q.grad.numpy(), rtol=1e-9, atol=1e-10)


@given(case=conv2d_cases(max_kernel=4), data=st.data())
def test_conv2d_matches_torch(case, data):
    x, w, b = (data.draw(arrays(s)) for s in (case.x_shape, case.w_shape, (case.w_shape[0],)))
    run_both(
        lambda x, w, b: x.conv2d(w, b, **case.kwargs),
        lambda x, w, b: F.conv2d(x, w, b, **case.kwargs),
        x,
        w,
        b,
    )


@given(case=pool2d_cases(), data=st.data())
def test_pools_match_torch(case, data):
    x = data.draw(distinct_arrays(case.x_shape))
    run_both(lambda t: t.max_pool2d(**case.kwargs), lambda t: F.max_pool2d(t, **case.kwargs), x)
    run_both(lambda t: t.avg_pool2d(**case.kwargs), lambda t: F.avg_pool2d(t, **case.kwargs), x)


@given(
    x=arrays(st.tuples(st.integers(1, 2), st.integers(1, 8), st.integers(1, 3), st.integers(1, 3))),
    size=st.integers(1, 6),
)
def test_local_response_norm_matches_torch(x, size):
    run_both(
        lambda t: t.local_response_norm(size, 0.3, 0.75, 2.0),
        lambda t: F.local_response_norm(t, size, 0.3, 0.75, 2.0),
        x,
    )


@given(x=arrays(st.tuples(st.integers(1, 6), st.integers(1, 6))), data=st.data())
def test_losses_and_softmax_match_torch(x, data):
    n, c = x.shape
    labels = np.array(data.draw(st.lists(st.integers(0, c - 1), min_size=n, max_size=n)))
    y = data.draw(arrays(x.shape, low=0.0, high=1.0))
    run_both(
        lambda t: t.cross_entropy(labels), lambda t: F.cross_entropy(t, torch.tensor(labels)), x
    )
    run_both(lambda t: t.log_softmax(1), lambda t: F.log_softmax(t, 1), x)
    run_both(lambda t: t.softmax(0), lambda t: F.softmax(t, 0), x)
    run_both(
        lambda t: t.binary_cross_entropy_with_logits(y),
        lambda t: F.binary_cross_entropy_with_logits(t, torch.tensor(y)),
        x,
    )
    run_both(
        lambda t: t.sigmoid().binary_cross_entropy(y),
        lambda t: F.binary_cross_entropy(t.sigmoid(), torch.tensor(y)),
        x,
    )
    run_both(lambda t: t.mse_loss(y), lambda t: F.mse_loss(t, torch.tensor(y)), x)
    run_both(lambda t: t.logsumexp(1), lambda t: t.logsumexp(1), x)


@given(
    x=arrays(st.tuples(st.integers(1, 3), st.integers(1, 3), st.integers(1, 9), st.integers(1, 9))),
    out=st.tuples(st.integers(1, 4), st.integers(1, 4)),
)
def test_adaptive_avg_pool2d_matches_torch(x, out):
    run_both(lambda t: t.adaptive_avg_pool2d(out), lambda t: F.adaptive_avg_pool2d(t, out), x)


def test_max_with_ties_splits_gradient_like_torch_amax():
    x = np.array([[1.0, 3.0, 3.0], [2.0, 2.0, 2.0]])
    run_both(lambda t: t.amax(dim=1), lambda t: t.amax(dim=1), x)
    run_both(lambda t: t.maximum(t * 0 + 2.0), lambda t: torch.maximum(t, t * 0 + 2.0), x)
