"""Edge cases an independent differential fuzzer against PyTorch found: integer true
division in compiled code, sums of products of mixed dtypes through the simplifier, zero
vectors in normalize / cosine_similarity, Parameter dtypes, integer inputs of another width,
reductions over an empty dim."""

import numpy as np
import pytest

import compiler
import tinygrad_edu.nn.functional as F  # noqa: N812 (PyTorch's spelling)
from tinygrad_edu import Tensor, nn

BACKENDS = ["numpy", "llvm"]


def _backend(name):
    if name == "llvm":
        pytest.importorskip("llvmlite")
    return name


@pytest.mark.parametrize("backend", BACKENDS)
def test_integer_true_division_is_not_truncated(backend):
    x = np.array([[-3, 1, 4, -5]])
    y = np.array([4, 2, 3, 2])
    want = np.array([[-0.75, 0.5, 4 / 3, -2.5]], np.float32)
    fn = compiler.compile(lambda a, b: a / b, x, y, backend=_backend(backend))
    np.testing.assert_allclose(fn(x, y), want, rtol=1e-6)
    np.testing.assert_allclose((Tensor(x) / Tensor(y)).numpy(), want, rtol=1e-6)
    halves = compiler.compile(lambda a: a / 2, x, backend=backend)(x)
    np.testing.assert_array_equal(halves, x / 2)
    # a float op of integers (sqrt) converts first too
    roots = compiler.compile(lambda a: a.sqrt(), y, backend=backend)(y)
    np.testing.assert_allclose(roots, np.sqrt(y), rtol=1e-6)


@pytest.mark.parametrize("backend", BACKENDS)
def test_sums_of_products_of_mixed_dtypes_compile(backend):
    """The simplifier takes a factor constant along the summed axis out of the sum; each
    node it builds gets the op table's dtype (a float64 factor makes the result float64)."""
    rng = np.random.default_rng(0)
    x = rng.standard_normal((4, 9)).astype(np.float32)
    y = rng.standard_normal((4, 1))  # float64
    mask = rng.standard_normal((4, 9)) > 0
    fn = compiler.compile(lambda a, b: (a * b).sum(1), x, y, backend=_backend(backend))
    want = (Tensor(x) * Tensor(y, dtype=np.float64)).sum(1)
    assert fn(x, y).dtype == want.dtype == np.float64
    np.testing.assert_allclose(fn(x, y), want.numpy(), rtol=1e-6)
    w = y.astype(np.float32)
    fn = compiler.compile(lambda m, b: (m * b).sum(1), mask, w, backend=backend)
    np.testing.assert_allclose(fn(mask, w), (mask * w).sum(1), rtol=1e-6)
    fn = compiler.compile(lambda a, b: (-(a * b) * 2.0).sum(1), x, y, backend=backend)
    np.testing.assert_allclose(fn(x, y), (-(x * y) * 2.0).sum(1), rtol=1e-6)


def test_normalize_of_a_zero_vector_has_finite_gradients():
    """PyTorch's: the zero row divides by eps, so its gradient is 1 / eps (not NaN from the
    square root's infinite slope at 0)."""
    data = np.array([[0.0, 0.0, 0.0], [3.0, 0.0, 4.0]])
    for p in (2, 1, 3, float("inf")):
        x = Tensor(data, dtype=np.float64, requires_grad=True)
        out = F.normalize(x, p=p, dim=1)
        np.testing.assert_array_equal(out.numpy()[0], 0.0)
        out.sum().backward()
        assert np.isfinite(x.grad.numpy()).all()
        np.testing.assert_allclose(x.grad.numpy()[0], 1e12)


def test_cosine_similarity_with_a_zero_vector():
    """0, a gradient of 0 for the other vector, and (b / |b|) / eps for the zero one, as
    PyTorch (each vector divided by max(its norm, eps), after broadcasting)."""
    a = Tensor(np.zeros((1, 3)), dtype=np.float64, requires_grad=True)
    b = Tensor(np.array([[1.0, 2.0, 2.0]]), dtype=np.float64, requires_grad=True)
    out = F.cosine_similarity(a, b)
    np.testing.assert_array_equal(out.numpy(), [0.0])
    out.sum().backward()
    np.testing.assert_array_equal(b.grad.numpy(), 0.0)
    np.testing.assert_allclose(a.grad.numpy(), [[1 / 3 * 1e8, 2 / 3 * 1e8, 2 / 3 * 1e8]])
    # broadcasting: one vector against each row
    rows = np.array([[1.0, 0.0], [0.0, 2.0], [3.0, 3.0]])
    got = F.cosine_similarity(Tensor(rows), Tensor(np.array([1.0, 0.0])), dim=-1).numpy()
    np.testing.assert_allclose(got, [1.0, 0.0, np.sqrt(0.5)], rtol=1e-6)
    with pytest.raises(ValueError, match="cosine_similarity"):
        F.cosine_similarity(Tensor(np.ones((2, 3))), Tensor(np.ones((4, 3))))


def test_a_parameter_keeps_a_float_tensors_dtype():
    assert nn.Parameter(Tensor(np.ones(2), dtype=np.float64)).dtype == np.float64
    assert nn.Parameter(np.ones(2)).dtype == np.float32  # an array: float32, as before
    assert nn.Parameter(Tensor(np.ones(2, np.int64))).dtype == np.float32
    assert nn.Parameter(np.ones(2), dtype=np.float64).dtype == np.float64


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_compiled_function_takes_integer_data_of_another_width(backend):
    """Integers are traced as int64; the uint8 image it was compiled with is accepted."""
    img = np.random.default_rng(0).integers(0, 255, (2, 3), dtype=np.uint8)
    fn = compiler.compile(lambda x: x.float() / 255.0, img, backend=_backend(backend))
    np.testing.assert_allclose(fn(img), img / 255.0, rtol=1e-6)
    np.testing.assert_allclose(fn(img.astype(np.int32)), img / 255.0, rtol=1e-6)
    with pytest.raises(ValueError, match="compiled for int64"):
        fn(np.ones((2, 3), np.uint64))  # may not fit int64


def test_reductions_over_an_empty_dim_stay_in_the_graph():
    """logsumexp (-inf) and prod (1) over a size-0 dim require grad like sum does, and their
    backward reaches the input (an empty gradient), as PyTorch's."""
    x = Tensor(np.zeros((2, 0)), dtype=np.float64, requires_grad=True)
    lse, prod = x.logsumexp(1), x.prod(1)
    np.testing.assert_array_equal(lse.numpy(), [-np.inf, -np.inf])
    np.testing.assert_array_equal(prod.numpy(), [1.0, 1.0])
    assert lse.requires_grad and prod.requires_grad and prod.dtype == np.float64
    (lse.sum() + prod.sum()).backward()
    assert x.grad.shape == (2, 0)
    assert x.prod(1, keepdim=True).shape == (2, 1)
    assert Tensor(np.zeros((2, 0), np.int64)).prod(1).dtype == np.int64


def test_norm_and_linear_parameters_of_the_wrong_size_name_their_op():
    x = Tensor(np.ones((4, 3, 2, 2)))
    with pytest.raises(ValueError, match=r"batch_norm: weight must have one value per channel"):
        F.batch_norm(x, None, None, Tensor(np.ones(4)), None, training=True)
    with pytest.raises(ValueError, match=r"batch_norm: running_mean"):
        F.batch_norm(x, Tensor(np.zeros(2)), Tensor(np.ones(3)))
    with pytest.raises(ValueError, match=r"linear: bias must have out_features"):
        F.linear(Tensor(np.ones((4, 3))), Tensor(np.ones((5, 3))), Tensor(np.ones(4)))
    assert F.linear(Tensor(np.ones((4, 3))), Tensor(np.ones((5, 3))), Tensor(np.ones(5))).shape == (
        4,
        5,
    )


def test_integer_floor_division_and_remainder_keep_the_operands_dtype():
    t = Tensor(np.array([7, -7], np.int32), dtype=np.int32)
    assert (t // 2).dtype == np.int32 and (t % 2).dtype == np.int32  # PyTorch's too
    np.testing.assert_array_equal((t // 2).numpy(), [3, -4])
    np.testing.assert_array_equal((t % -2).numpy(), [-1, -1])
    assert (Tensor(np.array([7])) // 2).dtype == np.int64
