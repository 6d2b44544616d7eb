"""Layer and group normalisation, vector norms, order statistics (median, kthvalue) and the
two-argument elementary functions (atan2, hypot) with expm1: values against PyTorch where
it is installed, gradients by float64 gradcheck, compiled equal to eager."""

import numpy as np
import pytest
from hypothesis import given

import compiler
import tinygrad_edu as tg
import tinygrad_edu.nn.functional as F  # noqa: N812 (PyTorch users write F)
from tinygrad_edu import OpError, Tensor, gradcheck, nn
from tinygrad_edu.testing import arrays, shapes


def _torch():
    return pytest.importorskip("torch")


def test_layer_norm_and_group_norm_match_torch_values_and_gradients():
    torch = _torch()
    rng = np.random.default_rng(0)
    x = rng.standard_normal((2, 6, 3, 4))
    w, b = rng.standard_normal(6), rng.standard_normal(6)
    lw, lb = rng.standard_normal((3, 4)), rng.standard_normal((3, 4))
    tx = torch.tensor(x)
    cases = [
        (
            lambda t, m: F.group_norm(t, 3, m(w), m(b)),
            lambda t, m: torch.nn.functional.group_norm(t, 3, m(w), m(b)),
        ),
        (lambda t, m: F.group_norm(t, 6), lambda t, m: torch.nn.functional.group_norm(t, 6)),
        (
            lambda t, m: F.layer_norm(t, (3, 4), m(lw), m(lb)),
            lambda t, m: torch.nn.functional.layer_norm(t, (3, 4), m(lw), m(lb)),
        ),
        (lambda t, m: F.layer_norm(t, 4), lambda t, m: torch.nn.functional.layer_norm(t, (4,))),
    ]
    for ours, theirs in cases:
        got = ours(Tensor(x, dtype=np.float64), lambda a: Tensor(a, dtype=np.float64)).numpy()
        want = theirs(tx, torch.tensor).numpy()
        np.testing.assert_allclose(got, want, rtol=1e-10, atol=1e-12)
    assert gradcheck(lambda t, g, h: F.group_norm(t, 2, g, h), [x[:, :4, :2, :2], w[:4], b[:4]])
    assert gradcheck(lambda t, g, h: F.layer_norm(t, 4, g, h), [x[0, 0], lw[0], lb[0]])


def test_layer_norm_and_group_norm_modules_have_torchs_parameters_and_errors():
    torch = _torch()
    ln, gn = nn.LayerNorm((3, 4)), nn.GroupNorm(2, 6)
    assert dict(ln.state_dict()).keys() == torch.nn.LayerNorm((3, 4)).state_dict().keys()
    assert dict(gn.state_dict()).keys() == torch.nn.GroupNorm(2, 6).state_dict().keys()
    assert sum(p.size for p in nn.LayerNorm(8, bias=False).parameters()) == 8
    x = np.random.default_rng(1).standard_normal((2, 6, 3, 4)).astype(np.float32)
    assert ln(Tensor(x)).shape == gn(Tensor(x)).shape == x.shape
    with pytest.raises(ValueError, match="GroupNorm: num_channels \\(6\\) must be divisible"):
        nn.GroupNorm(4, 6)
    with pytest.raises(OpError, match=r"layer_norm: normalized_shape \(5,\) must be the input's"):
        F.layer_norm(Tensor(x), 5)
    with pytest.raises(OpError, match=r"GroupNorm: expected \(N, 6, ...\)"):
        gn(Tensor(x[:, :4]))


def test_compiled_normalisations_equal_eager():
    x = np.random.default_rng(2).standard_normal((2, 8, 5, 5)).astype(np.float32)
    model = nn.Sequential(nn.Conv2d(8, 8, 3, padding=1), nn.GroupNorm(4, 8), nn.ReLU())
    head = nn.LayerNorm((8, 5, 5))

    def fn(t):
        return head(model(t))

    compiled = compiler.compile(fn, x, backend="llvm")
    np.testing.assert_allclose(compiled(x), fn(Tensor(x)).numpy(), rtol=1e-4, atol=1e-5)


def test_vector_norms_match_torch_with_a_zero_gradient_at_zero():
    torch = _torch()
    x = np.random.default_rng(3).standard_normal((3, 4))
    x[1] = 0.0
    for p in ["fro", 2, 1, 3, 0.5, np.inf, -np.inf, 0]:
        for dim in [None, 1, (0, 1)]:
            t, tt = (
                Tensor(x, dtype=np.float64, requires_grad=True),
                torch.tensor(x, requires_grad=True),
            )
            got, want = t.norm(p, dim), tt.norm(p, dim)
            np.testing.assert_allclose(got.numpy(), want.detach().numpy(), rtol=1e-12)
            if p in ("fro", 2, 1, 3) and dim == 1:
                got.sum().backward()
                want.sum().backward()
                np.testing.assert_allclose(t.grad.numpy(), tt.grad.numpy(), rtol=1e-12, atol=1e-15)


def test_median_and_kthvalue_match_torch_ties_and_nan_included():
    torch = _torch()
    x = np.array([[3.0, 1.0, 2.0, 2.0], [np.nan, 0.0, 5.0, 1.0], [4.0, 4.0, 4.0, 4.0]])
    for keepdim in [False, True]:
        (v, i), (tv, ti) = (
            Tensor(x, dtype=np.float64).median(1, keepdim),
            torch.tensor(x).median(1, keepdim),
        )
        np.testing.assert_array_equal(v.numpy(), tv.numpy())
        np.testing.assert_array_equal(i.numpy(), ti.numpy())
    clean = np.nan_to_num(x)
    (v, i), (tv, ti) = Tensor(clean).kthvalue(2, 1), torch.tensor(clean).kthvalue(2, 1)
    np.testing.assert_array_equal(v.numpy(), tv.numpy())
    assert Tensor(clean).median().item() == torch.tensor(clean).median().item()
    assert np.isnan(Tensor(x).median().item())
    assert gradcheck(
        lambda a: a.median(0).values + a.kthvalue(3, 0).values * 2.0,
        [np.array([[0.3, 1.0], [2.0, -1.0], [1.5, 0.1]])],
    )
    with pytest.raises(OpError, match=r"kthvalue: k must be in \[1, 4\]"):
        Tensor(clean).kthvalue(5, 1)


def test_atan2_hypot_expm1_match_numpy_at_signed_zeros_and_extremes():
    y = np.array([0.0, -0.0, 0.0, -0.0, 1.0, -1.0, 1e-30, 3.0, -2.0, np.inf, 1.0, np.nan])
    x = np.array([0.0, 0.0, -0.0, -0.0, 0.0, -0.0, -1.0, -4.0, 1e-30, 1.0, np.inf, 1.0])
    t_y, t_x = Tensor(y, dtype=np.float64), Tensor(x, dtype=np.float64)
    np.testing.assert_array_equal(t_y.atan2(t_x).numpy(), np.arctan2(y, x))
    np.testing.assert_array_equal(np.signbit(t_y.atan2(t_x).numpy()), np.signbit(np.arctan2(y, x)))
    np.testing.assert_allclose(t_y.hypot(t_x).numpy(), np.hypot(y, x), rtol=1e-15)
    big = Tensor(np.array([3e30, 0.0]), dtype=np.float32)
    np.testing.assert_allclose(big.hypot(big).numpy(), [3e30 * np.sqrt(2), 0.0], rtol=1e-6)
    z = np.array([-800.0, -1e-10, -0.0, 1e-300, 1e-8, 0.5, 700.0, np.inf, -np.inf])
    np.testing.assert_allclose(Tensor(z, dtype=np.float64).expm1().numpy(), np.expm1(z), rtol=1e-15)


@given(
    a=arrays(shapes(min_dims=1), away_from=(0.0,)), b=arrays(shapes(min_dims=1), away_from=(0.0,))
)
def test_atan2_hypot_expm1_gradients(a, b):
    n = min(a.size, b.size)
    y, x = a.ravel()[:n], b.ravel()[:n]
    assert gradcheck(lambda s, t: s.atan2(t) + s.hypot(t) + s.expm1() * 0.1, [y, x])
    np.testing.assert_allclose(
        Tensor(y, dtype=np.float64).atan2(Tensor(x, dtype=np.float64)).numpy(),
        np.arctan2(y, x),
        rtol=1e-14,
    )


def test_cosine_similarity_where_and_mt_match_torch():
    torch = _torch()
    rng = np.random.default_rng(4)
    a, b = rng.standard_normal((3, 5)), rng.standard_normal((3, 5))
    b[0] = 0.0
    got = F.cosine_similarity(Tensor(a, dtype=np.float64), Tensor(b, dtype=np.float64))
    want = torch.nn.functional.cosine_similarity(torch.tensor(a), torch.tensor(b))
    np.testing.assert_allclose(got.numpy(), want.numpy(), rtol=1e-12, atol=1e-15)
    m = np.array([[1.0, 0.0], [0.0, 2.0]])
    rows, cols = tg.where(Tensor(m) != 0)
    np.testing.assert_array_equal(rows.numpy(), [0, 1])
    np.testing.assert_array_equal(cols.numpy(), [0, 1])
    np.testing.assert_array_equal(Tensor(m).argwhere().numpy(), [[0, 0], [1, 1]])
    assert Tensor(np.zeros((2, 3, 4))).mT.shape == (2, 4, 3)


def test_atan2_and_hypot_of_infinities_and_the_origin_match_torch():
    torch = _torch()
    inf = np.inf
    y, x = np.array([inf, -inf, inf, -inf]), np.array([inf, inf, -inf, -inf])
    np.testing.assert_allclose(
        Tensor(y, dtype=np.float64).atan2(Tensor(x, dtype=np.float64)).numpy(),
        torch.atan2(torch.tensor(y), torch.tensor(x)).numpy(),
        rtol=1e-15,
    )
    a = Tensor(np.array([0.0]), dtype=np.float64, requires_grad=True)
    b = Tensor(np.array([0.0]), dtype=np.float64, requires_grad=True)
    a.atan2(b).sum().backward()
    assert a.grad.item() == 0.0 and b.grad.item() == 0.0  # torch's subgradient at the origin
    got = Tensor(np.array([inf, np.nan])).hypot(Tensor(np.array([np.nan, -inf]))).numpy()
    np.testing.assert_array_equal(got, [inf, inf])  # inf beside a NaN, as IEEE's hypot


def test_median_and_kthvalue_of_a_0d_tensor_are_the_element_as_torch():
    torch = _torch()
    x = Tensor(np.float32(3.0))
    for (v, i), (tv, ti) in [
        (x.median(0), torch.tensor(3.0).median(0)),
        (x.kthvalue(1, 0), torch.tensor(3.0).kthvalue(1, 0)),
    ]:
        assert (v.item(), i.item()) == (tv.item(), ti.item())
    with pytest.raises(OpError, match=r"kthvalue: k must be in \[1, 1\]"):
        x.kthvalue(2, 0)
