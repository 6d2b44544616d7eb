"""PyTorch's rules where numpy's differ: integer casts carry no gradient, bools and small
integers compute in float32, a 0-d tensor's width does not widen a tensor with dims, NaN
passes through the piecewise activations, and dtypes numpy cannot handle give an OpError
naming the op (not a numpy TypeError from inside the library)."""

import numpy as np
import pytest

import compiler
import tinygrad_edu as tg
import tinygrad_edu.nn.functional as F  # noqa: N812 (PyTorch users write F)
from tinygrad_edu import OpError, OpIndexError, Tensor


def _torch():
    return pytest.importorskip("torch")


def test_an_integer_cast_carries_no_gradient():
    x = Tensor(np.array([1.7, -2.3]), requires_grad=True)
    assert not x.long().requires_grad and not x.bool().requires_grad
    (x.long() * 3.0 + x).sum().backward()  # only the float branch reaches x
    np.testing.assert_array_equal(x.grad.numpy(), [1.0, 1.0])
    assert x.half().requires_grad  # float to float keeps it


@pytest.mark.parametrize("dtype", [np.bool_, np.uint8, np.int8, np.int16, np.int64])
def test_bools_and_integers_compute_in_float32(dtype):
    torch = _torch()
    a = np.array([1, 0, 1], dtype)
    for name in ["exp", "log", "sqrt", "sigmoid", "tanh", "sin", "cos", "sinh", "asinh", "exp2"]:
        with np.errstate(all="ignore"):
            got = getattr(Tensor(a), name)()
        want = getattr(torch.tensor(a), name)()
        assert got.dtype == np.float32, name
        np.testing.assert_allclose(got.numpy(), want.numpy(), rtol=1e-6, err_msg=name)


def test_a_zero_dim_tensor_widens_only_across_categories():
    torch = _torch()
    cases = [
        (np.ones(2, np.float32), np.array(1.5)),  # float32 + 0-d float64: float32
        (np.ones(2, np.int32), np.array(2)),  # int32 + 0-d int64: int32
        (np.ones(2, np.int32), np.array(1.5)),  # int32 + 0-d float64: float64 (category)
        (np.ones(2, np.bool_), np.array(3)),  # bool + 0-d int64: int64
    ]
    for full, zero in cases:
        a, b = Tensor(full, dtype=full.dtype), Tensor(zero, dtype=zero.dtype)
        want = (torch.tensor(full) + torch.tensor(zero)).dtype
        assert str(want).endswith(str((a + b).dtype)), (full.dtype, zero.dtype)
        assert str(want).endswith(str((b * a).dtype))
    x = Tensor(np.ones(2, np.float32))
    mask = Tensor(np.array([True, False]))
    assert x.masked_fill(mask, Tensor(np.array(3.0), dtype=np.float64)).dtype == np.float32


def test_piecewise_activations_pass_nan_through():
    torch = _torch()
    a = np.array([np.nan, -1.0, -0.3, 0.0, 0.2, 0.7, np.inf, -np.inf])
    for name, args in [
        ("elu", ()),
        ("selu", ()),
        ("celu", ()),
        ("hardshrink", ()),
        ("softshrink", ()),
        ("threshold", (0.1, 20.0)),
    ]:
        got = getattr(F, name)(Tensor(a, dtype=np.float64), *args).numpy()
        want = getattr(torch.nn.functional, name)(torch.tensor(a), *args).numpy()
        np.testing.assert_allclose(got, want, rtol=1e-15, err_msg=name)  # NaN where torch's


def test_int64_extremes_survive_padding_and_running_minima():
    big = np.iinfo(np.int64).max
    padded = Tensor(np.array([3, 1])).pad([(1, 0)], value=big)
    np.testing.assert_array_equal(padded.numpy(), [big, 3, 1])
    values, indices = Tensor(np.array([3, 1, 2])).cummin(0)
    np.testing.assert_array_equal(values.numpy(), [3, 1, 1])
    np.testing.assert_array_equal(indices.numpy(), [0, 1, 1])


def test_empty_products_bool_closeness_and_0d_sort_dims():
    assert Tensor(np.zeros(0)).prod().item() == 1.0
    assert Tensor(np.zeros((0, 3))).prod(keepdim=True).shape == (1, 1)
    t = Tensor(np.array([True, False]))
    np.testing.assert_array_equal(t.isclose(Tensor(np.array([True, True]))).numpy(), [1, 0])
    np.testing.assert_array_equal(t.sign().numpy(), [True, False])
    with pytest.raises(OpIndexError, match=r"sort: axis 1 is out of range for a 0-d input"):
        Tensor(np.array(3.0)).sort(1)


def test_dtypes_numpy_refuses_give_an_op_error_naming_the_op():
    b = Tensor(np.array([True, False]))
    with pytest.raises(OpError, match=r"neg: not defined for bool inputs.*Fix: cast first"):
        _ = -b
    with pytest.raises(OpError, match=r"sub: not defined for bool and bool inputs"):
        _ = b - b
    with pytest.raises(OpError, match=r"pow: integers to negative integer powers"):
        _ = Tensor(np.array([2])) ** Tensor(np.array([-1]))


def test_the_other_in_place_variants_bernoulli_and_inference_mode():
    x = Tensor(np.array([-1.0, 0.5, 2.0]))
    array = x.data
    assert x.relu_() is x and x.data is array
    np.testing.assert_array_equal(x.numpy(), [0.0, 0.5, 2.0])
    np.testing.assert_allclose(x.sigmoid_().numpy(), 1 / (1 + np.exp(-np.array([0.0, 0.5, 2.0]))))
    with pytest.raises(OpError, match=r"sqrt_: the float32 result cannot be stored in this int64"):
        Tensor(np.array([1, 4])).sqrt_()
    w = Tensor(np.ones(3), requires_grad=True)
    with pytest.raises(OpError, match=r"relu_: a tensor that requires grad"):
        w.relu_()
    tg.manual_seed(0)
    draws = Tensor(np.zeros(10_000)).bernoulli_(0.3).numpy()
    assert set(np.unique(draws)) <= {0.0, 1.0} and abs(draws.mean() - 0.3) < 0.03
    np.testing.assert_array_equal(Tensor(np.array([0.0, 1.0])).bernoulli().numpy(), [0.0, 1.0])

    @tg.inference_mode()
    def predict(t):
        return t * 2.0

    assert not predict(w).requires_grad
    with tg.inference_mode(False):
        assert (w * 2.0).requires_grad
    assert tg.nn.Unflatten(1, (2, 4))(tg.zeros(3, 8)).shape == (3, 2, 4)
    assert w.type() == "float32" and w.type(np.float64).dtype == np.float64


def test_division_remainders_by_infinity_and_nan_clamp_bounds_match_torch():
    torch = _torch()
    a = np.array([1.0, -2.0, 0.0, 3.5, np.inf, np.nan, 2.0, -np.inf])
    for b in [np.full(8, np.inf), np.full(8, -np.inf), np.array([2, -3, 1.5, -0.5, 1, 1, 0, -2.0])]:
        for name in ["fmod", "remainder", "floor_divide"]:
            with np.errstate(all="ignore"):
                got = getattr(Tensor(a, dtype=np.float64), name)(Tensor(b, dtype=np.float64))
            want = getattr(torch, name)(torch.tensor(a), torch.tensor(b))
            np.testing.assert_array_equal(got.numpy(), want.numpy(), err_msg=f"{name} {b}")
    x = Tensor(np.array([1.0, 2.0]))
    np.testing.assert_array_equal(x.clamp(min=Tensor(np.array([np.nan, 0.0]))).numpy(), [np.nan, 2])
    assert np.isnan(x.clamp(max=float("nan")).numpy()).all()


def test_unbatched_convolution_and_reductions_of_empty_tensors_match_torch():
    torch = _torch()
    x = np.random.default_rng(5).standard_normal((3, 6, 6)).astype(np.float32)
    w = np.random.default_rng(6).standard_normal((4, 3, 3, 3)).astype(np.float32)
    got = F.conv2d(Tensor(x), Tensor(w), padding=1).numpy()
    want = torch.nn.functional.conv2d(torch.tensor(x), torch.tensor(w), padding=1).numpy()
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)
    assert Tensor(np.zeros((3, 0))).amax(0).shape == (0,)  # an empty result, not an error
    assert Tensor(np.zeros(0)).logsumexp(0).item() == -np.inf
    assert Tensor(np.zeros((2, 0))).logsumexp(1, keepdim=True).shape == (2, 1)
    with pytest.raises(OpError, match=r"max: cannot take the max over an empty dim"):
        Tensor(np.zeros((3, 0))).amax(1)


def test_a_nan_maximum_sends_its_gradient_to_the_nan_as_torch():
    torch = _torch()
    a = np.array([1.0, np.nan, 3.0])
    x, tx = Tensor(a, dtype=np.float64, requires_grad=True), torch.tensor(a, requires_grad=True)
    x.max().backward()
    tx.max().backward()
    np.testing.assert_array_equal(x.grad.numpy(), tx.grad.numpy())


def test_in_place_methods_on_a_reduction_result_and_bare_inference_mode():
    total = Tensor(np.array([1.0, -2.0])).sum()
    assert total.relu_().item() == 0.0
    assert Tensor(np.array([1.0, -2.0])).sum().add_(3.0).item() == 2.0

    @tg.inference_mode
    def predict(t):
        return t * 2.0

    assert not predict(Tensor(np.ones(2), requires_grad=True)).requires_grad


@pytest.mark.parametrize("backend", ["numpy", "llvm"])
def test_integer_bitwise_operators_match_torch_eager_compiled_and_in_onnx(backend, tmp_path):
    torch = _torch()
    a, b = np.array([6, -3, 12, 0]), np.array([3, 5, -1, 7])
    x, y, ta, tb = Tensor(a), Tensor(b), torch.tensor(a), torch.tensor(b)
    for ours, theirs in [(x & y, ta & tb), (x | y, ta | tb), (x ^ y, ta ^ tb), (~x, ~ta)]:
        np.testing.assert_array_equal(ours.numpy(), theirs.numpy())
        assert ours.dtype == np.int64
    np.testing.assert_array_equal((x & 3).numpy(), (ta & 3).numpy())
    flags = Tensor(np.array([True, False, True, True]))
    np.testing.assert_array_equal((flags & x).numpy(), (torch.tensor(flags.numpy()) & ta).numpy())

    def fn(p, q):
        return ((p & q) | (p ^ 5)) + ~q

    compiled = compiler.compile(fn, a, b, backend=backend)
    np.testing.assert_array_equal(compiled(a, b), fn(x, y).numpy())
    if backend == "numpy":
        ort = pytest.importorskip("onnxruntime")
        compiler.export_onnx(fn, (a, b), tmp_path / "bits.onnx")
        session = ort.InferenceSession(str(tmp_path / "bits.onnx"))
        names = [i.name for i in session.get_inputs()]
        np.testing.assert_array_equal(
            session.run(None, dict(zip(names, (a, b))))[0], fn(x, y).numpy()
        )
    with pytest.raises(OpError, match=r"logical_and: operands must be bool"):
        _ = Tensor(np.array([1.0])) & Tensor(np.array([1]))


def test_generated_cuda_for_bitwise_operators_compiles_with_nvcc(tmp_path):
    import shutil
    import subprocess

    from compiler.backends.cuda import render_module

    if shutil.which("nvcc") is None:
        pytest.skip("nvcc is not installed")
    a = np.array([6, -3, 12, 0])
    compiled = compiler.compile(lambda p: (p & 3) | ~p ^ 5, a, backend="cuda")
    source, _ = render_module(compiled.kernels)
    assert " & " in source and " ^ " in source
    cu = tmp_path / "bits.cu"
    cu.write_text(source)
    done = subprocess.run(
        ["nvcc", "--ptx", "-arch=sm_90", "-o", str(tmp_path / "b.ptx"), str(cu)],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-4000:]


def test_copysign_promotes_as_torch():
    torch = _torch()
    a, b = np.array([1.0, -2.0], np.float32), np.array([-0.0, 3.0])
    got = Tensor(a).copysign(Tensor(b, dtype=np.float64))
    want = torch.tensor(a).copysign(torch.tensor(b))
    assert got.dtype == np.float64 and str(want.dtype) == "torch.float64"
    np.testing.assert_array_equal(got.numpy(), want.numpy())
    ints = Tensor(np.array([1, -2])).copysign(Tensor(np.array([-1, 1])))
    assert ints.dtype == np.float32  # integers compute in float32, as torch


def test_relu6_and_hardtanh_keep_an_integer_input_integer():
    torch = _torch()
    x = np.array([-3, 2, 9])
    got = F.relu6(Tensor(x))
    assert got.dtype == np.int64
    np.testing.assert_array_equal(got.numpy(), torch.nn.functional.relu6(torch.tensor(x)).numpy())


@pytest.mark.parametrize("backend", ["numpy", "llvm"])
def test_sign_of_nan_is_zero_eager_compiled_and_in_the_gradient_of_abs(backend):
    x = np.array([np.nan, -0.0, 0.0, 1.5, -2.0, np.inf, -np.inf], np.float32)
    want = np.array([0.0, 0.0, 0.0, 1.0, -1.0, 1.0, -1.0], np.float32)  # torch.sign's values
    np.testing.assert_array_equal(Tensor(x).sign().numpy(), want)
    np.testing.assert_array_equal(compiler.compile(Tensor.sign, x, backend=backend)(x), want)
    t = Tensor(x, requires_grad=True)
    t.abs().sum().backward()  # torch: grad * sgn(x), so 0 at a NaN
    np.testing.assert_array_equal(t.grad.numpy(), want)
    assert float(tg.Value(float("nan")).sign().data) == 0.0
