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
from tinygrad_edu import OpError, Tensor, gradcheck, nn
from tinygrad_edu.testing import arrays, shapes


def _torch():
    return pytest.importorskip("torch")


def _grad_of(fn, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    t = Tensor(x, requires_grad=True)
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
