"""Tensor ops and activations of issue 13: clamp/clip, hardtanh, ReLU6, rsqrt and the
torchvision activations. Each is checked for values (against numpy formulas, and PyTorch
where installed), gradients (gradcheck in float64 at eps 1e-6, atol 1e-5, rtol 1e-3; inputs
kept 1e-2 off the kinks), PyTorch's gradient at the kinks themselves, and compiled (llvm)
results equal to eager."""

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import compiler
import tinygrad_edu.functional as F  # noqa: N812 (PyTorch users write F)
from compiler.testing import assert_step_matches_eager
from tinygrad_edu import OpError, OpIndexError, Tensor, gradcheck, nn
from tinygrad_edu.testing import arrays, shapes


def _torch():
    return pytest.importorskip("torch")


def _t64(x):
    return Tensor(x, dtype=np.float64)


def _grad_of(fn, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    t = Tensor(x, dtype=x.dtype, requires_grad=True)
    out = fn(t)
    out.sum().backward()
    return out.numpy(), t.grad.numpy()


# -- clamp / clip ------------------------------------------------------------------------------
@given(x=arrays(shapes(min_dims=1)), lo=st.floats(-2, 0), hi=st.floats(0, 2))
def test_clamp_equals_numpy_clip(x, lo, hi):
    t = Tensor(x, dtype=np.float64)
    np.testing.assert_array_equal(t.clamp(lo, hi).numpy(), np.clip(x, lo, hi))
    np.testing.assert_array_equal(t.clip(min=lo).numpy(), np.maximum(x, lo))
    np.testing.assert_array_equal(F.clamp(t, max=hi).numpy(), np.minimum(x, hi))


@given(x=arrays(shapes(min_dims=1), away_from=(-0.5, 0.5)))
def test_clamp_grad_matches_finite_differences(x):
    assert gradcheck(lambda t: t.clamp(-0.5, 0.5) * t, [x])


def test_clamp_with_tensor_bounds_grads_flow_to_the_chosen_operand():
    x = np.array([-3.0, -0.2, 0.1, 2.0])
    lo = np.array([-1.0, -1.0, -1.0, -1.0])
    hi = np.array([1.0, 1.0, 1.0, 1.0])
    assert gradcheck(lambda a, b, c: a.clamp(b, c) * 3.0, [x, lo, hi])
    t, tl, th = (Tensor(v, requires_grad=True) for v in (x, lo, hi))
    t.clamp(tl, th).sum().backward()
    np.testing.assert_array_equal(t.grad.numpy(), [0, 1, 1, 0])
    np.testing.assert_array_equal(tl.grad.numpy(), [1, 0, 0, 0])
    np.testing.assert_array_equal(th.grad.numpy(), [0, 0, 0, 1])


def test_clamp_follows_pytorch_at_ties_nan_and_min_above_max():
    torch = _torch()
    x = np.array([-1.0, 0.0, 0.5, 1.0, 2.0, np.nan])
    for lo, hi in [(0.0, 1.0), (None, 1.0), (0.0, None), (1.0, 0.0)]:
        out, grad = _grad_of(lambda t, lo=lo, hi=hi: t.clamp(lo, hi), x)
        tx = torch.tensor(x, requires_grad=True)
        want = torch.clamp(tx, lo, hi)
        want.sum().backward()
        np.testing.assert_array_equal(out, want.detach().numpy())
        np.testing.assert_array_equal(grad, tx.grad.numpy())


def test_clamp_keeps_pytorch_dtypes():
    ints = Tensor([1, 2, 3])
    assert ints.clamp(min=2).dtype == np.int64
    assert ints.clamp(min=2.5).dtype == np.float32
    np.testing.assert_array_equal(ints.clamp(min=2.5).numpy(), [2.5, 2.5, 3.0])
    assert Tensor(np.zeros(2)).clamp(0, 1).dtype == np.float32


def test_clamp_without_bounds_or_with_bad_bounds_says_how_to_fix():
    with pytest.raises(OpError, match=r"clamp: at least one of min and max.*Fix"):
        Tensor([1.0]).clamp()
    with pytest.raises(OpError, match=r"clamp: min must be a number, a Tensor or None"):
        Tensor([1.0]).clamp(min="0")


# -- hardtanh, relu6, rsqrt ------------------------------------------------------------------
def test_hardtanh_and_relu6_gradients_at_the_ends_match_pytorch():
    torch = _torch()
    x = np.array([-2.0, -1.0, -0.5, 0.0, 1.0, 3.0, 6.0, 7.0, np.nan])
    for ours, theirs in [
        (lambda t: t.hardtanh(), lambda t: torch.nn.functional.hardtanh(t)),
        (lambda t: t.hardtanh(-0.5, 3.0), lambda t: torch.nn.functional.hardtanh(t, -0.5, 3.0)),
        (lambda t: t.relu6(), lambda t: torch.nn.functional.relu6(t)),
        (lambda t: nn.ReLU6()(t), lambda t: torch.nn.ReLU6()(t)),
        (lambda t: F.relu6(t), lambda t: torch.nn.functional.relu6(t)),
    ]:
        out, grad = _grad_of(ours, x)
        tx = torch.tensor(x, requires_grad=True)
        want = theirs(tx)
        want.sum().backward()
        np.testing.assert_array_equal(out, want.detach().numpy())
        np.testing.assert_array_equal(grad, tx.grad.numpy())


@given(x=arrays(shapes(min_dims=1), low=-8, high=8, away_from=(0.0, 6.0)))
def test_relu6_value_and_grad(x):
    np.testing.assert_array_equal(nn.ReLU6()(Tensor(x, dtype=np.float64)).numpy(), np.clip(x, 0, 6))
    assert gradcheck(lambda t: t.relu6() * t, [x])
    assert gradcheck(lambda t: nn.Hardtanh(-2.0, 2.0)(t), [np.where(np.abs(x) == 2, 1.0, x)])


def test_hardtanh_rejects_min_above_max():
    with pytest.raises(OpError, match="hardtanh: min_val 2 is greater than max_val 1"):
        Tensor([0.0]).hardtanh(2, 1)
    with pytest.raises(ValueError, match="Hardtanh: need min_val <= max_val"):
        nn.Hardtanh(2.0, 1.0)


@given(x=arrays(shapes(min_dims=1), low=0.1, high=5.0))
def test_rsqrt_value_and_grad(x):
    np.testing.assert_allclose(Tensor(x, dtype=np.float64).rsqrt().numpy(), x**-0.5, rtol=1e-14)
    assert gradcheck(lambda t: t.rsqrt(), [x])


# -- compiled equals eager ---------------------------------------------------------------------
def test_compiled_mobilenet_block_with_relu6_matches_eager():
    """conv -> BatchNorm (eval) -> ReLU6 -> depthwise conv -> ReLU6: MobileNetV2's pattern."""
    rng = np.random.default_rng(0)
    block = nn.Sequential(
        nn.Conv2d(3, 8, 1),
        nn.BatchNorm2d(8),
        nn.ReLU6(),
        nn.Conv2d(8, 8, 3, padding=1, groups=8),
        nn.ReLU6(),
    ).eval()
    x = (rng.standard_normal((2, 3, 9, 9)) * 4).astype(np.float32)
    want = block(Tensor(x)).numpy()
    got = compiler.compile(block, x, backend="llvm")(x)
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)


def test_compiled_clamp_rsqrt_match_eager():
    rng = np.random.default_rng(1)
    x = rng.uniform(-3, 3, (4, 33)).astype(np.float32)

    def fn(t):
        return t.clamp(-1.0, 2.0) + (t * t + 0.5).rsqrt() + t.hardtanh(-0.25, 0.25)

    got = compiler.compile(fn, x, backend="llvm")(x)
    np.testing.assert_allclose(got, fn(Tensor(x)).numpy(), rtol=1e-6, atol=1e-6)


# -- activations: values and gradients against PyTorch ---------------------------------------
# Points on and next to every kink (0, +-3, 6, the softplus threshold) and far into the tails.
KINK_POINTS = np.concatenate(
    [
        np.linspace(-30, 30, 241),
        [0.0, -3.0, 3.0, 6.0, 20.0, -1e-12, 1e-12, -3 - 4e-16, 3 + 4e-16, 1e-300, -1e-300],
    ]
)

# name -> (ours, PyTorch's as a function of `torch`)
ACTIVATIONS = {
    "gelu": (lambda t: t.gelu(), lambda torch, t: torch.nn.functional.gelu(t)),
    "gelu_tanh": (
        lambda t: F.gelu(t, approximate="tanh"),
        lambda torch, t: torch.nn.functional.gelu(t, approximate="tanh"),
    ),
    "silu": (lambda t: F.silu(t), lambda torch, t: torch.nn.functional.silu(t)),
    "hardswish": (lambda t: F.hardswish(t), lambda torch, t: torch.nn.functional.hardswish(t)),
    "hardsigmoid": (
        lambda t: F.hardsigmoid(t),
        lambda torch, t: torch.nn.functional.hardsigmoid(t),
    ),
    "elu": (lambda t: F.elu(t, 0.7), lambda torch, t: torch.nn.functional.elu(t, 0.7)),
    "selu": (lambda t: F.selu(t), lambda torch, t: torch.nn.functional.selu(t)),
    "celu": (lambda t: F.celu(t, 1.5), lambda torch, t: torch.nn.functional.celu(t, 1.5)),
    "softplus": (lambda t: F.softplus(t), lambda torch, t: torch.nn.functional.softplus(t)),
    "softplus_beta": (
        lambda t: F.softplus(t, beta=2.0, threshold=5.0),
        lambda torch, t: torch.nn.functional.softplus(t, beta=2.0, threshold=5.0),
    ),
    "mish": (lambda t: F.mish(t), lambda torch, t: torch.nn.functional.mish(t)),
    "logsigmoid": (lambda t: F.logsigmoid(t), lambda torch, t: torch.nn.functional.logsigmoid(t)),
    "softsign": (lambda t: F.softsign(t), lambda torch, t: torch.nn.functional.softsign(t)),
    "tanhshrink": (lambda t: F.tanhshrink(t), lambda torch, t: torch.nn.functional.tanhshrink(t)),
    "hardshrink": (
        lambda t: F.hardshrink(t, 0.5),
        lambda torch, t: torch.nn.functional.hardshrink(t, 0.5),
    ),
    "softshrink": (
        lambda t: F.softshrink(t, 0.5),
        lambda torch, t: torch.nn.functional.softshrink(t, 0.5),
    ),
    "threshold": (
        lambda t: F.threshold(t, 0.1, -2.0),
        lambda torch, t: torch.nn.functional.threshold(t, 0.1, -2.0),
    ),
    "leaky_relu": (
        lambda t: nn.LeakyReLU(0.2)(t),
        lambda torch, t: torch.nn.LeakyReLU(0.2)(t),
    ),
    "erf": (lambda t: t.erf(), lambda torch, t: torch.erf(t)),
    "log1p": (lambda t: (t.abs() + 0.0).log1p(), lambda torch, t: torch.log1p(t.abs())),
    "softmin": (lambda t: F.softmin(t, dim=0), lambda torch, t: torch.nn.functional.softmin(t, 0)),
}


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("name", sorted(ACTIVATIONS))
def test_activation_values_and_gradients_match_pytorch(name, dtype):
    torch = _torch()
    ours, theirs = ACTIVATIONS[name]
    x = KINK_POINTS.astype(dtype)
    out, grad = _grad_of(ours, x)
    tx = torch.tensor(x, requires_grad=True)
    want = theirs(torch, tx)
    want.sum().backward()
    assert out.dtype == dtype
    # float32: an ulp at |x| = 30 is 2e-6, and the tails of 1 + tanh(...) cancel to a few
    tol = dict(rtol=1e-12, atol=1e-14) if dtype == np.float64 else dict(rtol=1e-5, atol=5e-6)
    if name == "hardsigmoid" and dtype == np.float64:
        tol = dict(rtol=1e-7, atol=0)  # PyTorch's float64 gradient uses 1/6 rounded to float32
    np.testing.assert_allclose(out, want.detach().numpy(), **tol)
    np.testing.assert_allclose(grad, tx.grad.numpy(), **tol)


SMOOTH = {  # name -> kinks to keep inputs away from
    "gelu": (),
    "gelu_tanh": (),
    "silu": (),
    "hardswish": (-3.0, 3.0),
    "hardsigmoid": (-3.0, 3.0),
    "elu": (0.0,),
    "selu": (0.0,),
    "celu": (0.0,),
    "softplus": (),
    "softplus_beta": (2.5,),  # beta * x = threshold
    "mish": (),
    "logsigmoid": (),
    "softsign": (),
    "tanhshrink": (),
    "softshrink": (-0.5, 0.5),
    "erf": (),
}


@pytest.mark.parametrize("name", sorted(SMOOTH))
@given(data=st.data())
def test_activation_grad_matches_finite_differences(name, data):
    x = data.draw(arrays(shapes(min_dims=1), low=-5.0, high=5.0, away_from=SMOOTH[name]))
    assert gradcheck(ACTIVATIONS[name][0], [x])


@given(x=arrays(shapes(min_dims=1), low=-4.0, high=4.0))
def test_second_derivative_of_exact_gelu_matches_finite_differences(x):
    """erf's VJP is written in DSL ops, so GELU can be differentiated twice."""

    def grad_of_gelu(t):
        t.grad = None
        t.gelu().sum().backward(create_graph=True)
        g, t.grad = t.grad, None
        return g * 1.0

    assert gradcheck(grad_of_gelu, [x])


def test_gelu_with_a_bad_approximation_names_the_choices():
    with pytest.raises(OpError, match=r"gelu: approximate must be 'none' or 'tanh'"):
        Tensor([1.0]).gelu("fast")
    with pytest.raises(ValueError, match="GELU: approximate"):
        nn.GELU("fast")


def test_erf_on_integers_gives_float32_and_keeps_float64():
    assert Tensor([0, 1]).erf().dtype == np.float32
    assert Tensor(np.zeros(2)).erf().dtype == np.float32
    assert Tensor(np.zeros(2), dtype=np.float64).erf().dtype == np.float64


# -- activation modules ------------------------------------------------------------------------
def test_prelu_module_learns_one_slope_per_channel_like_pytorch():
    torch = _torch()
    rng = np.random.default_rng(0)
    x = rng.standard_normal((2, 3, 4, 4))
    ours = nn.PReLU(3, init=0.1)
    ours.weight = nn.Parameter(np.array([0.1, 0.2, 0.3]), dtype=np.float64)
    theirs = torch.nn.PReLU(3, init=0.1).double()
    with torch.no_grad():
        theirs.weight.copy_(torch.tensor([0.1, 0.2, 0.3], dtype=torch.float64))
    t = Tensor(x, dtype=np.float64, requires_grad=True)
    out = ours(t)
    (out * out).sum().backward()
    tx = torch.tensor(x, requires_grad=True)
    want = theirs(tx)
    (want * want).sum().backward()
    np.testing.assert_allclose(out.numpy(), want.detach().numpy(), rtol=1e-12)
    np.testing.assert_allclose(t.grad.numpy(), tx.grad.numpy(), rtol=1e-12)
    np.testing.assert_allclose(ours.weight.grad.numpy(), theirs.weight.grad.numpy(), rtol=1e-12)
    assert [n for n, _ in ours.named_parameters()] == ["weight"]
    assert nn.PReLU().weight.shape == (1,) and float(nn.PReLU().weight.numpy()[0]) == 0.25


def test_prelu_grad_matches_finite_differences():
    rng = np.random.default_rng(1)
    x = rng.uniform(0.1, 2, (2, 3, 2)) * rng.choice([-1, 1], (2, 3, 2))
    assert gradcheck(lambda t, w: t.prelu(w), [x, np.array([0.2, -0.3, 0.5])])
    assert gradcheck(lambda t, w: F.prelu(t, w), [x, np.array([0.2])])


def test_prelu_with_the_wrong_number_of_slopes_says_how_many():
    with pytest.raises(OpError, match=r"prelu: weight must have 1 or 3 \(channel count\)"):
        nn.PReLU(4)(Tensor(np.ones((2, 3, 2, 2))))


def test_activation_modules_match_pytorch_modules():
    torch = _torch()
    x = np.random.default_rng(2).standard_normal((3, 5)) * 4
    pairs = [
        (nn.GELU(), torch.nn.GELU()),
        (nn.GELU("tanh"), torch.nn.GELU("tanh")),
        (nn.SiLU(), torch.nn.SiLU()),
        (nn.Hardswish(), torch.nn.Hardswish()),
        (nn.Hardsigmoid(), torch.nn.Hardsigmoid()),
        (nn.ELU(0.5), torch.nn.ELU(0.5)),
        (nn.CELU(2.0), torch.nn.CELU(2.0)),
        (nn.SELU(), torch.nn.SELU()),
        (nn.Softplus(2.0, 10.0), torch.nn.Softplus(2.0, 10.0)),
        (nn.Mish(), torch.nn.Mish()),
        (nn.LogSigmoid(), torch.nn.LogSigmoid()),
        (nn.Softsign(), torch.nn.Softsign()),
        (nn.Tanhshrink(), torch.nn.Tanhshrink()),
        (nn.Hardshrink(1.0), torch.nn.Hardshrink(1.0)),
        (nn.Softshrink(1.0), torch.nn.Softshrink(1.0)),
        (nn.Threshold(0.5, 9.0), torch.nn.Threshold(0.5, 9.0)),
        (nn.LeakyReLU(), torch.nn.LeakyReLU()),
        (nn.Softmax(dim=1), torch.nn.Softmax(dim=1)),
        (nn.Softmax(dim=0), torch.nn.Softmax(dim=0)),
        (nn.LogSoftmax(dim=1), torch.nn.LogSoftmax(dim=1)),
        (nn.Softmin(dim=1), torch.nn.Softmin(dim=1)),
        (nn.Hardtanh(-2.0, 2.0), torch.nn.Hardtanh(-2.0, 2.0)),
        (nn.ReLU6(), torch.nn.ReLU6()),
    ]
    for ours, theirs in pairs:
        got = ours(Tensor(x, dtype=np.float64)).numpy()
        np.testing.assert_allclose(got, theirs(torch.tensor(x)).numpy(), rtol=1e-12, atol=1e-15)


def test_softmax_without_dim_warns_and_picks_pytorchs_legacy_dim():
    x = np.random.default_rng(3).standard_normal((2, 3, 4))
    with pytest.warns(UserWarning, match="implicit dim"):
        got = F.softmax(Tensor(x))
    np.testing.assert_allclose(got.numpy(), Tensor(x).softmax(0).numpy())
    with pytest.warns(UserWarning, match="implicit dim"):
        got = nn.LogSoftmax()(Tensor(x[0]))
    np.testing.assert_allclose(got.numpy(), Tensor(x[0]).log_softmax(1).numpy())


# -- compiled (llvm) equals eager; CUDA source compiles ----------------------------------------
def _activation_mix(t):
    return (
        t.gelu()
        + t.gelu("tanh")
        + t.silu()
        + t.hardswish()
        + t.hardsigmoid()
        + t.elu()
        + t.softplus()
        + t.mish()
        + t.logsigmoid()
        + t.softsign()
    )


def test_compiled_activations_match_eager_forward_and_gradient():
    rng = np.random.default_rng(4)
    x = rng.uniform(-6, 6, (4, 37)).astype(np.float32)
    got = compiler.compile(_activation_mix, x, backend="llvm")(x)
    np.testing.assert_allclose(got, _activation_mix(Tensor(x)).numpy(), rtol=2e-5, atol=2e-5)

    model = nn.Sequential(nn.Linear(37, 16), nn.GELU(), nn.Linear(16, 5), nn.SiLU())
    y = np.arange(4) % 5
    opt = __import__("tinygrad_edu").optim.SGD(model.parameters(), lr=0.1)
    assert_step_matches_eager(model, lambda o, t: o.cross_entropy(t), opt, x, y)


def test_compiled_erf_is_close_to_exact_everywhere():
    """The LLVM kernel's erf (a series and a Chebyshev fit, no libm) within 2e-7 of SciPy's."""
    from scipy.special import erf

    x = np.concatenate([np.linspace(-7, 7, 20001), [0.0, -0.0, 1.0, -1.0, np.inf, -np.inf]])
    x = x.astype(np.float32)
    compiled = compiler.compile(lambda t: t.erf(), x, backend="llvm")
    assert any("erf" in k.ops for k in compiled.kernels)
    got = compiled(x)
    np.testing.assert_allclose(got, erf(x.astype(np.float64)), rtol=0, atol=2e-7)
    assert np.isnan(compiled(np.array([np.nan] * len(x), np.float32))).all()


@pytest.mark.skipif(__import__("shutil").which("nvcc") is None, reason="nvcc is not on PATH")
def test_generated_cuda_for_activations_compiles_with_nvcc(tmp_path):
    from compiler.backends.cuda import render_module

    x = np.random.default_rng(5).uniform(-3, 3, (4, 37)).astype(np.float32)
    compiled = compiler.compile(_activation_mix, x, backend="cuda")
    source, rendered = render_module(compiled.kernels)
    assert "erff(" in source and rendered
    cu = tmp_path / "activations.cu"
    cu.write_text(source)
    result = __import__("subprocess").run(
        ["nvcc", "--ptx", "-arch=sm_90", "-o", str(tmp_path / "a.ptx"), str(cu)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-4000:]


# -- reductions: std/var, argmin, all/any ------------------------------------------------------
@given(x=arrays(shapes(min_dims=1, min_side=2)), data=st.data())
def test_std_and_var_follow_pytorchs_signature(x, data):
    torch = _torch()
    dim = data.draw(st.integers(0, x.ndim - 1))
    keepdim = data.draw(st.booleans())
    t, tt = _t64(x), torch.tensor(x)
    # below float64's normal range (a variance of ~1e-160 values is ~1e-320) a value has
    # fewer significant bits than 1e-10 asks for: compare those absolutely
    tiny = np.finfo(np.float64).tiny
    for kw in [{}, {"unbiased": False}, {"correction": 0}, {"correction": 2}]:
        want_var = tt.var(dim, keepdim=keepdim, **kw).numpy()
        got_var = t.var(dim, keepdim=keepdim, **kw).numpy()
        np.testing.assert_allclose(got_var, want_var, 1e-10, atol=tiny)
        want_std = tt.std(dim, keepdim=keepdim, **kw).numpy()
        np.testing.assert_allclose(t.std(dim, keepdim=keepdim, **kw).numpy(), want_std, 1e-10)
    np.testing.assert_allclose(
        t.var(dim, False).numpy(), tt.var(dim, False).numpy(), 1e-10, atol=tiny
    )


def test_std_grad_matches_finite_differences_and_rejects_two_corrections():
    x = np.random.default_rng(0).standard_normal((3, 4))
    assert gradcheck(lambda t: t.std(1), [x])
    assert gradcheck(lambda t: t.std(correction=0), [x])
    with pytest.raises(OpError, match="var: pass either unbiased or correction"):
        _t64(x).var(unbiased=True, correction=1)


@given(x=arrays(shapes(min_dims=1)), data=st.data())
def test_argmin_matches_numpy_first_index(x, data):
    dim = data.draw(st.integers(-x.ndim, x.ndim - 1))
    x = np.round(x)  # ties, so "the first index" is tested
    np.testing.assert_array_equal(_t64(x).argmin(dim).numpy(), np.argmin(x, axis=dim))
    np.testing.assert_array_equal(_t64(x).argmin().numpy(), np.argmin(x))
    assert Tensor([True, False, True]).argmin().item() == 1


def test_all_and_any_match_pytorch():
    torch = _torch()
    x = np.array([[0.0, 1.0, np.nan], [2.0, 3.0, 4.0], [0.0, 0.0, 0.0]])
    for dim in (None, 0, 1):
        for fn in ("all", "any"):
            kw = {} if dim is None else {"dim": dim}
            got = getattr(_t64(x), fn)(**kw)
            want = getattr(torch.tensor(x), fn)(**kw)
            assert got.dtype == np.bool_
            np.testing.assert_array_equal(got.numpy(), want.numpy())


# -- masks and logic -------------------------------------------------------------------------
def test_masked_fill_and_logical_ops():
    x = Tensor(np.array([[1.0, -2.0], [3.0, -4.0]]), requires_grad=True)
    mask = x < 0
    out = x.masked_fill(mask, 0.5)
    np.testing.assert_array_equal(out.numpy(), [[1.0, 0.5], [3.0, 0.5]])
    out.sum().backward()
    np.testing.assert_array_equal(x.grad.numpy(), [[1, 0], [1, 0]])
    row = x.masked_fill(Tensor(np.array([True, False])), -1.0)  # broadcast along rows
    np.testing.assert_array_equal(row.numpy(), [[-1.0, -2.0], [-1.0, -4.0]])
    a, b = Tensor([True, True, False]), Tensor([True, False, False])
    np.testing.assert_array_equal((a & b).numpy(), [True, False, False])
    np.testing.assert_array_equal((a | b).numpy(), [True, True, False])
    np.testing.assert_array_equal((a ^ b).numpy(), [False, True, False])
    np.testing.assert_array_equal((~a).numpy(), [False, False, True])
    with pytest.raises(OpError, match="masked_fill: mask must be bool"):
        x.masked_fill(Tensor([1, 0]), 0.0)
    np.testing.assert_array_equal((Tensor([1, 2]) & Tensor([1, 0])).numpy(), [1, 0])  # bitwise
    with pytest.raises(OpError, match="logical_and: operands must be bool"):
        Tensor([1.0, 2.0]) & Tensor([1, 0])


@given(x=arrays(shapes(min_dims=1)), scale=st.sampled_from([0.0, 1e-9, 1e-6, 1e-3]))
def test_isclose_and_allclose_match_pytorch(x, scale):
    torch = _torch()
    y = x * (1 + scale) + scale
    y.reshape(-1)[0] = np.inf
    x = x.copy()
    x.reshape(-1)[-1] = np.nan
    for kw in [{}, {"rtol": 1e-3, "atol": 0.0}, {"equal_nan": True}]:
        got = _t64(x).isclose(_t64(y), **kw).numpy()
        want = torch.isclose(torch.tensor(x), torch.tensor(y), **kw).numpy()
        np.testing.assert_array_equal(got, want)
        assert __import__("tinygrad_edu").allclose(_t64(x), _t64(y), **kw) == bool(
            torch.allclose(torch.tensor(x), torch.tensor(y), **kw)
        )


# -- constructors ----------------------------------------------------------------------------
def test_like_constructors_and_eye():
    import tinygrad_edu as tg

    ints, floats = Tensor([[1, 2, 3]]), Tensor(np.zeros((2, 2)), dtype=np.float64)
    assert tg.zeros_like(ints).dtype == np.int64 and tg.zeros_like(ints).shape == (1, 3)
    assert tg.ones_like(floats).dtype == np.float64
    np.testing.assert_array_equal(tg.full_like(floats, 2.5).numpy(), np.full((2, 2), 2.5))
    assert tg.full_like(ints, 7, dtype="float32").dtype == np.float32
    assert tg.zeros_like(floats, requires_grad=True).requires_grad
    np.testing.assert_array_equal(tg.eye(3).numpy(), np.eye(3))
    np.testing.assert_array_equal(tg.eye(2, 4, dtype="int64").numpy(), np.eye(2, 4))


# -- repeat, chunk, split ----------------------------------------------------------------------
@given(x=arrays(shapes(min_dims=1, max_dims=3)), data=st.data())
def test_repeat_matches_numpy_tile_and_its_grad_sums_the_copies(x, data):
    reps = tuple(data.draw(st.lists(st.integers(1, 3), min_size=x.ndim, max_size=x.ndim + 1)))
    np.testing.assert_array_equal(_t64(x).repeat(*reps).numpy(), np.tile(x, reps))
    assert gradcheck(lambda t: t.repeat(reps), [x])


@given(n=st.integers(0, 9), chunks=st.integers(1, 5), size=st.integers(1, 4))
def test_chunk_and_split_match_pytorch(n, chunks, size):
    torch = _torch()
    x = np.arange(n * 2, dtype=np.float64).reshape(n, 2)
    ours = [c.numpy() for c in _t64(x).chunk(chunks)]
    theirs = [c.numpy() for c in torch.tensor(x).chunk(chunks)]
    assert len(ours) == len(theirs) and all(np.array_equal(a, b) for a, b in zip(ours, theirs))
    ours = [c.numpy() for c in _t64(x).split(size)]
    theirs = [c.numpy() for c in torch.tensor(x).split(size)]
    assert len(ours) == len(theirs) and all(np.array_equal(a, b) for a, b in zip(ours, theirs))
    parts = _t64(x.T).split([1, n - 1] if n else [0, 0], dim=1)
    assert [p.shape for p in parts] == [(2, min(n, 1)), (2, max(n - 1, 0))]


def test_split_with_sizes_that_do_not_add_up_says_so():
    with pytest.raises(OpError, match=r"split: sizes \[2, 2\] must be >= 0 and add up"):
        Tensor(np.zeros(5)).split([2, 2])


# -- cumsum, gather, scatter ---------------------------------------------------------------------
@given(x=arrays(shapes(min_dims=1)), data=st.data())
def test_cumsum_values_and_grad(x, data):
    dim = data.draw(st.integers(-x.ndim, x.ndim - 1))
    np.testing.assert_allclose(_t64(x).cumsum(dim).numpy(), np.cumsum(x, axis=dim), atol=1e-12)
    assert gradcheck(lambda t: t.cumsum(dim) * t, [x])
    assert Tensor([1, 2, 3]).cumsum(0).dtype == np.int64


def test_cumsum_of_a_long_axis_matches_numpy():
    x = np.random.default_rng(7).standard_normal((2, 300))
    np.testing.assert_allclose(_t64(x).cumsum(1).numpy(), np.cumsum(x, 1), atol=1e-12)
    np.testing.assert_allclose(_t64(x).cumsum(-2).numpy(), np.cumsum(x, 0), atol=1e-12)
    assert gradcheck(lambda t: t.cumsum(1), [x], fast=True)
    big = Tensor(np.arange(5000)).cumsum(0)
    assert big.dtype == np.int64 and int(big.numpy()[-1]) == 4999 * 5000 // 2


@st.composite
def gather_cases(draw):
    shape = draw(shapes(min_dims=1, max_dims=3))
    dim = draw(st.integers(0, len(shape) - 1))
    rng = np.random.default_rng(draw(st.integers(0, 2**16)))
    ishape = tuple(
        draw(st.integers(1, 4)) if i == dim else draw(st.integers(1, n))
        for i, n in enumerate(shape)
    )
    return rng.standard_normal(shape), dim, rng.integers(0, shape[dim], ishape)


@given(case=gather_cases())
def test_gather_scatter_add_and_scatter_match_pytorch(case):
    torch = _torch()
    x, dim, index = case
    src = np.random.default_rng(1).standard_normal(index.shape)
    tx, ti, ts = torch.tensor(x), torch.tensor(index), torch.tensor(src)
    np.testing.assert_array_equal(_t64(x).gather(dim, index).numpy(), tx.gather(dim, ti).numpy())
    np.testing.assert_allclose(
        _t64(x).scatter_add(dim, index, _t64(src)).numpy(),
        tx.scatter_add(dim, ti, ts).numpy(),
        atol=1e-12,
    )
    np.testing.assert_array_equal(
        _t64(x).scatter(dim, index, value=2.5).numpy(), tx.scatter(dim, ti, 2.5).numpy()
    )
    assert gradcheck(lambda t: t.gather(dim, index), [x])
    assert gradcheck(lambda t, s: t.scatter_add(dim, index, s), [x, src])
    assert gradcheck(lambda t, s: t.scatter(dim, index, s), [x, src])


def test_scatter_without_repeats_equals_pytorch_and_bad_indices_are_named():
    torch = _torch()
    x = np.zeros((3, 5))
    index = np.array([[0, 1], [2, 3], [4, 0]])
    src = np.arange(6.0).reshape(3, 2)
    want = torch.tensor(x).scatter(1, torch.tensor(index), torch.tensor(src)).numpy()
    np.testing.assert_array_equal(_t64(x).scatter(1, index, _t64(src)).numpy(), want)
    with pytest.raises(OpIndexError, match=r"gather: index 5 is out of bounds for dim 1"):
        _t64(x).gather(1, np.array([[5]]))
    with pytest.raises(OpError, match=r"gather: index must have the input's 2 dims"):
        _t64(x).gather(1, np.array([0]))


# -- einsum ------------------------------------------------------------------------------------
EINSUMS = [
    ("ij,jk->ik", [(3, 4), (4, 5)]),
    ("bij,bjk->bik", [(2, 3, 4), (2, 4, 5)]),
    ("ij->ji", [(3, 4)]),
    ("i,j->ij", [(3,), (4,)]),
    ("ij->", [(3, 4)]),
    ("ij,ij->i", [(3, 4), (3, 4)]),
    ("...ij,...jk", [(2, 3, 4), (2, 4, 5)]),
    ("bhqd,bhkd->bhqk", [(2, 3, 4, 5), (2, 3, 6, 5)]),
    ("ij,jk,kl->il", [(2, 3), (3, 4), (4, 5)]),
    ("i,i", [(4,), (4,)]),
    ("ijk->kj", [(2, 3, 4)]),
    ("ij,kj", [(2, 3), (4, 3)]),
    ("...j,j", [(2, 3, 4), (4,)]),
    ("bi,bj->b", [(3, 2), (3, 4)]),
]


@pytest.mark.parametrize("equation, operand_shapes", EINSUMS)
def test_einsum_matches_pytorch_and_its_grad_is_correct(equation, operand_shapes):
    import tinygrad_edu as tg

    torch = _torch()
    rng = np.random.default_rng(0)
    xs = [rng.standard_normal(s) for s in operand_shapes]
    got = tg.einsum(equation, *[_t64(x) for x in xs]).numpy()
    want = torch.einsum(equation, *[torch.tensor(x) for x in xs]).numpy()
    assert got.shape == want.shape
    np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-12)
    assert gradcheck(lambda *ts: tg.einsum(equation, *ts), xs)


def test_einsum_errors_name_the_problem():
    import tinygrad_edu as tg

    a = Tensor(np.zeros((2, 3)))
    with pytest.raises(OpError, match="einsum: index repeated within term 'ii'"):
        tg.einsum("ii->i", Tensor(np.zeros((2, 2))))
    with pytest.raises(OpError, match="einsum: term 'ijk' does not match an operand of 2 dims"):
        tg.einsum("ijk->i", a)
    with pytest.raises(OpError, match="einsum: index 'j' has sizes 3 and 4"):
        tg.einsum("ij,jk->ik", a, Tensor(np.zeros((4, 2))))
    with pytest.raises(OpError, match="einsum: the equation has 2 operand terms"):
        tg.einsum("ij,jk->ik", a)


# -- dtype promotion -----------------------------------------------------------------------------
def test_integer_dtypes_follow_pytorchs_promotion():
    torch = _torch()
    cases = [
        (lambda m: m.tensor([1, 2]) + 1, "int64"),
        (lambda m: m.tensor([1, 2]) * 2.5, "float32"),
        (lambda m: m.tensor([1, 2]) / m.tensor([2, 2]), "float32"),
        (lambda m: m.tensor([1, 2]) > 1, "bool"),
        (lambda m: m.tensor([True]) + 1, "int64"),
        (lambda m: m.tensor([1, 2]) + m.tensor([1.0, 2.0]), "float32"),
        (lambda m: m.tensor([1, 2]).sum(), "int64"),
    ]

    class Ours:
        @staticmethod
        def tensor(v):
            return Tensor(v)

    for fn, name in cases:
        assert str(fn(torch).dtype) == f"torch.{name}"
        assert fn(Ours).dtype == np.dtype(name)
    small = Tensor(np.array([1, 2], np.int32), dtype=np.int32)
    assert (small + 1).dtype == np.int32  # a Python int does not widen int32
    assert (small * 2.0).dtype == np.float32


# -- compiled equals eager for the composites ----------------------------------------------------
def test_compiled_tensor_ops_match_eager():
    import tinygrad_edu as tg

    rng = np.random.default_rng(6)
    x = rng.standard_normal((4, 6)).astype(np.float32)
    w = rng.standard_normal((6, 3)).astype(np.float32)

    def fn(a, b):
        mixed = tg.einsum("ij,jk->ik", a, b) + a.cumsum(1)[:, :3]
        pieces = a.chunk(2, dim=1)
        return (
            mixed.std(1, keepdim=True)
            + pieces[0].sum(1, keepdim=True)
            + a.repeat(1, 2).var(1, False, keepdim=True)
            + a.masked_fill(a > 1.0, 0.0).sum(1, keepdim=True)
        )

    got = compiler.compile(fn, x, w, backend="llvm")(x, w)
    np.testing.assert_allclose(got, fn(Tensor(x), Tensor(w)).numpy(), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize(
    "name",
    ["sum", "mean", "var", "std", "max", "min", "argmax", "argmin", "logsumexp", "all", "any"],
)
def test_reductions_take_numpys_keepdims_as_pytorch_does(name):
    """torch.Tensor.sum(axis=1, keepdims=True) works in PyTorch (numpy's names are aliases)."""
    x = Tensor(np.arange(12.0).reshape(3, 4))
    got = getattr(x, name)(axis=1, keepdims=True)
    want = getattr(x, name)(dim=1, keepdim=True)
    if name in ("max", "min"):  # PyTorch's (values, indices) pair, for axis= as for dim=
        got, want = got.values, want.values
    assert got.shape == (3, 1)
    np.testing.assert_array_equal(got.numpy(), want.numpy())
    with pytest.raises(TypeError, match="both keepdim= and keepdims="):
        getattr(x, name)(1, keepdim=True, keepdims=True)
