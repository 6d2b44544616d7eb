"""Edge cases found in review: each asserts PyTorch's value or a clear error."""

import itertools

import numpy as np
import pytest

from tinygrad_edu import Tensor, Value, cat, nn, stack


def f64(values, grad=True):
    return Tensor(np.array(values, dtype=np.float64), dtype=np.float64, requires_grad=grad)


def test_bce_gradient_is_finite_at_probabilities_zero_and_one():
    p = f64([0.0, 1.0, 0.0, 1.0])
    p.binary_cross_entropy(np.array([0.0, 1.0, 1.0, 0.0])).backward()
    g = p.grad.numpy()
    assert np.isfinite(g).all()
    np.testing.assert_allclose(g, [0.0, 0.0, -0.25e12, 0.25e12])  # (p - y)/max(p(1-p), 1e-12)/4


def test_bce_rejects_nan_input():
    with pytest.raises(ValueError, match="NaN"):
        Tensor(np.array([np.nan, 0.2])).binary_cross_entropy(np.array([1.0, 0.0]))


def test_pow_gradients_at_zero_base_match_pytorch():
    x = f64([0.0, 1.0])
    (x**0).sum().backward()
    np.testing.assert_array_equal(x.grad.numpy(), [0.0, 0.0])
    a, b = f64([0.0]), f64([2.0])
    (a**b).sum().backward()
    assert a.grad.item() == 0.0 and b.grad.item() == 0.0


def test_pow_exponent_gradient_at_zero_base_is_minus_inf_for_negative_exponents():
    x = f64([-2.0, -1.0, 0.0, 1.0, 2.0, 3.0])
    with np.errstate(divide="ignore"):
        (0.0**x).sum().backward()
    np.testing.assert_array_equal(x.grad.numpy(), [-np.inf, -np.inf, 0.0, 0.0, 0.0, 0.0])
    a, b = f64([0.0]), f64([-0.3])
    with np.errstate(divide="ignore"):
        (a**b).sum().backward()
    assert b.grad.item() == -np.inf and a.grad.item() == -np.inf


def test_scalar_pow_at_zero_base_has_pytorchs_gradients_without_a_nan_error():
    # 0**b: d/da is b * 0**(b-1) (0 at b = 0), d/db is 0 for b >= 0 and -inf for b < 0
    expected = {2.0: (0.0, 0.0), 1.0: (1.0, 0.0), 0.0: (0.0, 0.0), -1.0: (-np.inf, -np.inf)}
    for exponent, (da, db) in expected.items():
        a, b = Value(0.0), Value(exponent)
        (a**b).backward()
        assert (a.grad, b.grad) == (da, db), exponent


POW_BASES = [0.0, -0.0, 2.0, 1.5, -2.0]
POW_EXPONENTS = [-2.0, -1.0, -0.3, 0.0, 0.5, 1.0, 3.0]


def test_pow_gradients_match_torch_at_zero_and_negative_bases():
    torch = pytest.importorskip("torch")
    base, exponent = (np.array(v) for v in zip(*itertools.product(POW_BASES, POW_EXPONENTS)))
    a, b = f64(base), f64(exponent)
    ta, tb = (torch.tensor(v, dtype=torch.float64, requires_grad=True) for v in (base, exponent))
    with np.errstate(divide="ignore", invalid="ignore"):
        (a**b).sum().backward()
    (ta**tb).sum().backward()
    # NaN where torch has NaN (negative bases), infinities of the same sign, values to rounding
    np.testing.assert_allclose(a.grad.numpy(), ta.grad.numpy(), rtol=1e-12, atol=0)
    np.testing.assert_allclose(b.grad.numpy(), tb.grad.numpy(), rtol=1e-12, atol=0)


def _max_pool_by_loops(x, k, stride, pad):
    """Reference: the max over each window of in-range positions (padding never wins)."""
    n, c, h, w = x.shape
    oh, ow = (h + 2 * pad - k) // stride + 1, (w + 2 * pad - k) // stride + 1
    out = np.empty((n, c, oh, ow), dtype=x.dtype)
    for i in range(oh):
        for j in range(ow):
            r0, c0 = i * stride - pad, j * stride - pad
            window = x[:, :, max(r0, 0) : r0 + k, max(c0, 0) : c0 + k]
            out[:, :, i, j] = window.max(axis=(2, 3))
    return out


@pytest.mark.parametrize("dtype", [np.int32, np.int64, np.int8, np.uint8])
@pytest.mark.parametrize("k, stride, pad", [(2, 2, 1), (3, 1, 1), (3, 2, 1), (2, 1, 1)])
def test_integer_max_pool_with_padding_pads_with_the_dtype_minimum(dtype, k, stride, pad):
    info = np.iinfo(dtype)
    x = np.random.default_rng(0).integers(info.min, info.max, (2, 3, 5, 4), endpoint=True)
    x = x.astype(dtype)
    x[0, 0] = info.min  # a window of minima stays the minimum
    out = Tensor(x, dtype=dtype).max_pool2d(k, stride, pad)
    assert out.dtype == dtype
    np.testing.assert_array_equal(out.numpy(), _max_pool_by_loops(x, k, stride, pad))


@pytest.mark.parametrize("dtype", [np.int32, np.int64])
def test_integer_max_pool_with_padding_matches_torch(dtype):
    torch = pytest.importorskip("torch")
    x = np.arange(-20, 20).reshape(1, 2, 4, 5).astype(dtype)
    want = torch.nn.functional.max_pool2d(torch.from_numpy(x), 2, padding=1).numpy()
    got = Tensor(x, dtype=dtype).max_pool2d(2, padding=1)
    assert got.dtype == want.dtype
    np.testing.assert_array_equal(got.numpy(), want)


def test_var_with_too_few_elements_is_nan_or_inf_like_pytorch():
    assert np.isnan(f64([1.0], grad=False).var().item())
    assert np.isinf(f64([1.0, 2.0], grad=False).var(correction=2).item())


@pytest.mark.parametrize(
    "call",
    [
        lambda t: t.unsqueeze(5),
        lambda t: t.unsqueeze(-4),
        lambda t: t.permute(0, 5),
        lambda t: t.transpose(0, 5),
        lambda t: t.flatten(5),
        lambda t: stack([t, t], 3),
    ],
)
def test_out_of_range_dims_raise(call):
    with pytest.raises(ValueError, match="out of range"):
        call(Tensor.zeros(2, 3))


def test_flatten_start_after_end_raises():
    with pytest.raises(ValueError, match="start_dim"):
        Tensor.zeros(2, 3, 4).flatten(2, 1)


def test_squeeze_with_a_tuple_squeezes_every_listed_dim():
    assert Tensor.zeros(1, 3, 1).squeeze((0, 2)).shape == (3,)


def test_constructors_keep_the_requested_dtype():
    for make in (Tensor.zeros, Tensor.ones, Tensor.randn, Tensor.rand):
        assert make(3, dtype=np.float64).dtype == np.float64
    assert Tensor.full((2,), 1.5, dtype=np.float64).dtype == np.float64
    t64 = Tensor(np.ones(2), dtype=np.float64)
    assert Tensor(t64).dtype == np.float64


def test_float64_dropout_scale_is_exact():
    out = Tensor(np.ones(200), dtype=np.float64).dropout(0.3).numpy()
    kept = out[out != 0]
    assert out.dtype == np.float64 and np.all(kept == 1 / 0.7)


@pytest.mark.parametrize(
    "call,match",
    [
        (lambda: Tensor.zeros(1, 4, 5, 5).conv2d(Tensor.zeros(2, 2, 3, 3), groups=2.5), "groups"),
        (lambda: Tensor.randn(2.5), "sizes must be ints"),
        (lambda: Tensor.zeros(2, -1), "negative"),
        (lambda: Tensor.zeros(4).reshape(2.5, 2), "sizes must be ints"),
        (lambda: Tensor.arange(0, 5, 0), "step must be non-zero"),
        (lambda: Tensor.zeros(3).sum(1.0), "axis must be an int"),
        (lambda: Tensor.zeros(2, 2).sum((1, 1)), "more than once"),
        (lambda: Tensor.zeros(1, 1, 5, 5).conv2d(Tensor.zeros(1, 1, 3, 3), stride=1.5), "stride"),
        (
            lambda: Tensor.zeros(1, 1, 5, 5).conv2d(Tensor.zeros(1, 1, 3, 3), padding="half"),
            "padding must be",
        ),
        (lambda: Tensor.zeros(1, 1, 5, 5).local_response_norm(2.5), "size must be"),
        (lambda: Tensor.zeros(3).dropout("0.5"), "p must be"),
        (lambda: Tensor.zeros(3, dtype=np.int64).dropout(0.5), "floating point"),
        (lambda: Tensor.zeros(1, 1, 4, 4).adaptive_avg_pool2d(0), "output_size must be >= 1"),
        (lambda: Tensor.zeros(2, 3).softmax(2), "softmax: axis 2"),
        (lambda: cat([Tensor(1.0), Tensor(2.0)]), "zero-dimensional"),
        (
            lambda: Tensor(np.ones((1, 1, 3, 1))).max_pool2d((2, 2), (3, 3), (1, 1), (1, 2)),
            "entirely in the padding",
        ),
        (lambda: nn.BatchNorm2d(3)(Tensor(np.ones((1, 3, 1, 1)))), "more than 1 value"),
        (lambda: nn.Conv2d(3, 4, 0), "kernel_size must be >= 1"),
        (lambda: nn.Conv2d(-3, 4, 3), "positive int"),
        (lambda: nn.Linear(2.5, 3), "features"),
        (lambda: nn.MaxPool2d(0), "kernel_size"),
        (lambda: nn.LocalResponseNorm(0), "positive int"),
        (lambda: nn.BatchNorm2d(3, eps=-1), "eps"),
    ],
)
def test_careless_inputs_get_clear_errors(call, match):
    with pytest.raises((ValueError, TypeError), match=match):
        call()


def test_zero_dim_reductions_accept_dim_zero_like_pytorch():
    t = Tensor(2.0)
    assert t.sum(0).item() == 2.0 and t.amax(-1).item() == 2.0 and t.mean(0).item() == 2.0
    values, indices = t.max(-1)  # PyTorch's (values, indices), an index 0 for a 0-d tensor
    assert values.item() == 2.0 and indices.item() == 0 and indices.dtype == np.int64


def test_same_padding_keeps_the_size_with_even_kernels():
    x = Tensor.randn(1, 2, 7, 6)
    w = Tensor.randn(3, 2, 4, 2)
    assert x.conv2d(w, padding="same").shape == (1, 3, 7, 6)
    torch = pytest.importorskip("torch")
    want = torch.nn.functional.conv2d(
        torch.tensor(x.numpy()), torch.tensor(w.numpy()), padding="same"
    )
    np.testing.assert_allclose(
        x.conv2d(w, padding="same").numpy(), want.numpy(), rtol=1e-5, atol=1e-5
    )


def test_max_pool_ties_send_the_gradient_to_the_first_maximum_like_pytorch():
    x = f64(np.ones((1, 1, 3, 3)))
    x.max_pool2d(2, 1).sum().backward()
    np.testing.assert_array_equal(x.grad.numpy()[0, 0], [[1, 1, 0], [1, 1, 0], [0, 0, 0]])


def test_pools_accept_a_single_chw_image():
    assert Tensor.randn(3, 8, 8).max_pool2d(2).shape == (3, 4, 4)
    assert Tensor.randn(3, 8, 8).adaptive_avg_pool2d(3).shape == (3, 3, 3)


def test_where_requires_a_bool_condition():
    with pytest.raises(ValueError, match="condition must be bool"):
        Tensor.ones(2).where(np.array([1.0, 0.0]), 0.0)


def test_sign_has_a_zero_gradient():
    x = f64([1.0, -2.0])
    x.sign().sum().backward()
    np.testing.assert_array_equal(x.grad.numpy(), [0.0, 0.0])
