"""PyTorch's method and function forms (`tinygrad_edu.method_forms`) and the sin/cos
primitives they build on.

Values are checked against numpy's formulas (and PyTorch's where installed), gradients by
gradcheck in float64 at eps 1e-6, atol 1e-5, rtol 1e-3 (inputs kept 1e-2 off the kinks of
round/trunc/ceil, whose gradient is zero), and compiled (llvm) results against eager ones.
"""

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import compiler
import tinygrad_edu as tg
import tinygrad_edu.nn.functional as F  # noqa: N812 (PyTorch users write F)
from compiler.testing import assert_step_matches_eager
from tinygrad_edu import OpError, OpIndexError, Tensor, Value, gradcheck, nn
from tinygrad_edu.testing import arrays, shapes


def _torch():
    return pytest.importorskip("torch")


# -- sin and cos: primitives on every path ----------------------------------------------------
@given(x=arrays(shapes(min_dims=1)))
def test_sin_cos_values_and_gradients(x):
    t = Tensor(x, dtype=np.float64)
    np.testing.assert_allclose(t.sin().numpy(), np.sin(x), rtol=1e-15, atol=1e-15)
    np.testing.assert_allclose(t.cos().numpy(), np.cos(x), rtol=1e-15, atol=1e-15)
    assert gradcheck(lambda a: a.sin() * a.cos() + a.tan().sin(), [np.clip(x, -1.2, 1.2)])


def test_sin_second_derivative_is_minus_sin():
    x0 = np.linspace(-3, 3, 7)
    x = Tensor(x0, dtype=np.float64, requires_grad=True)
    x.sin().sum().backward(create_graph=True)
    g = x.grad
    np.testing.assert_allclose(g.numpy(), np.cos(x0), rtol=1e-14)
    x.grad = None
    g.sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), -np.sin(x0), rtol=1e-14, atol=1e-15)


def test_scalar_values_share_sin_and_cos():
    a = Value(0.7)
    out = a.sin() * a.cos()
    out.backward()
    assert out.data == pytest.approx(np.sin(0.7) * np.cos(0.7))
    assert a.grad == pytest.approx(np.cos(1.4))  # d/da sin(a)cos(a) = cos(2a)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_compiled_trigonometry_equals_eager(dtype):
    x = np.concatenate([np.linspace(-20, 20, 997), [0.0, np.inf, -np.inf, np.nan]]).astype(dtype)

    def fn(t):
        return t.sin() + t.cos() * 2.0, t.tan(), t.sinh() - t.cosh()

    compiled = compiler.compile(fn, x, backend="llvm")
    assert any("sin" in k.ops for k in compiled.kernels)
    tol = 1e-6 if dtype == np.float32 else 1e-13
    for got, want in zip(compiled(x).values(), fn(Tensor(x, dtype=dtype))):
        np.testing.assert_allclose(got, want.numpy(), rtol=tol, atol=tol)


class _Wave(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.fc1, self.fc2 = nn.Linear(5, 8), nn.Linear(8, 3)

    def forward(self, x):
        h = self.fc1(x)
        return self.fc2(h.sin() * h.cos())


def test_compiled_sin_training_step_matches_eager():
    """The VJPs (cos for sin, -sin for cos) are compiled too: one SGD step, both ways."""
    rng = np.random.default_rng(3)
    x = rng.uniform(-2, 2, (8, 5)).astype(np.float32)
    y = np.arange(8) % 3
    tg.manual_seed(0)
    model = _Wave()
    opt = tg.optim.SGD(model.parameters(), lr=0.1)
    assert_step_matches_eager(model, lambda o, t: o.cross_entropy(t), opt, x, y)


@pytest.mark.skipif(__import__("shutil").which("nvcc") is None, reason="nvcc is not on PATH")
def test_generated_cuda_for_trigonometry_compiles_with_nvcc(tmp_path):
    from compiler.backends.cuda import render_module

    x = np.linspace(-3, 3, 64, dtype=np.float32)
    compiled = compiler.compile(lambda t: t.sin() * t.cos(), x, backend="cuda")
    source, _ = render_module(compiled.kernels)
    assert "sinf(" in source and "cosf(" in source
    cu = tmp_path / "trig.cu"
    cu.write_text(source)
    result = __import__("subprocess").run(
        ["nvcc", "--ptx", "-arch=sm_90", "-o", str(tmp_path / "t.ptx"), str(cu)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-4000:]


# -- max / min with PyTorch's return types ----------------------------------------------------
def test_max_over_a_dim_unpacks_into_values_and_indices_whatever_the_batch():
    """`_, pred = out.max(1)`: with two rows, a plain tensor would silently unpack into them."""
    logits = Tensor(np.array([[0.1, 2.0, -1.0], [3.0, 0.5, 0.2]]))
    values, pred = logits.max(1)
    np.testing.assert_array_equal(values.numpy(), [2.0, 3.0])
    np.testing.assert_array_equal(pred.numpy(), [1, 0])
    assert pred.dtype == np.int64
    result = logits.min(dim=0, keepdim=True)
    assert result.values.shape == (1, 3) and result.indices.shape == (1, 3)
    np.testing.assert_array_equal(result.indices.numpy(), [[0, 1, 0]])
    assert logits.max().item() == 3.0
    np.testing.assert_array_equal(logits.max(axis=1).indices.numpy(), [1, 0])


def test_max_min_forms_match_torch():
    torch = _torch()
    x = np.random.default_rng(0).standard_normal((3, 4, 5))
    t, tt = Tensor(x, dtype=np.float64), torch.tensor(x)
    for dim in (0, 1, -1):
        for keepdim in (False, True):
            for name in ("max", "min"):
                ours = getattr(t, name)(dim, keepdim)
                theirs = getattr(tt, name)(dim, keepdim)
                np.testing.assert_array_equal(ours.values.numpy(), theirs.values.numpy())
                np.testing.assert_array_equal(ours.indices.numpy(), theirs.indices.numpy())
    other = Tensor(np.zeros((3, 4, 5)))
    np.testing.assert_array_equal(t.max(other).numpy(), tt.max(torch.zeros(3, 4, 5)).numpy())
    np.testing.assert_array_equal(t.amax((0, 2)).numpy(), tt.amax((0, 2)).numpy())
    np.testing.assert_array_equal(t.amin(1, True).numpy(), tt.amin(1, True).numpy())


def test_compiled_max_over_a_dim_gives_values_and_indices():
    x = np.random.default_rng(1).standard_normal((6, 10)).astype(np.float32)
    compiled = compiler.compile(lambda t: tuple(t.max(1)), x, backend="llvm")
    values, indices = compiled(x).values()  # outputs by name: out0, out1
    np.testing.assert_array_equal(values, x.max(1))
    np.testing.assert_array_equal(indices, x.argmax(1))


@pytest.mark.parametrize("backend", ["numpy", "llvm"])
def test_compiled_gather_and_scatter_check_an_index_computed_in_the_program(backend):
    """An index the program computes is checked at each call too (it becomes an output the
    runtime reads and drops): never a clamped read or a dropped write."""
    x = np.arange(12, dtype=np.float32).reshape(3, 4)
    ok, bad = np.array([[0], [2], [1]]), np.array([[0], [3], [1]])
    picked = compiler.compile(lambda t, i: t.gather(1, i + 1), x, ok, backend=backend)
    np.testing.assert_array_equal(picked(x, ok).ravel(), [1.0, 7.0, 10.0])
    with pytest.raises(OpIndexError, match=r"gather: index 4 is out of bounds for dim 1"):
        picked(x, bad)
    spread = compiler.compile(
        lambda t, i: Tensor.zeros(3, 4).scatter_add(1, i * 2, t[:, :1]), x, ok, backend=backend
    )
    with pytest.raises(OpIndexError, match=r"scatter_add: index 4 is out of bounds"):
        spread(x, ok)
    assert list(picked.run(x, ok)) == ["out"]  # the check's output is not returned


def test_max_values_gradient_flows_to_the_maximum():
    assert gradcheck(
        lambda a: a.max(1).values * 2.0, [np.array([[1.0, 3.0, 2.0], [0.5, -1.0, 0.0]])]
    )


def test_max_min_over_a_dim_give_a_tie_all_of_the_gradient_as_torch():
    """x.max(dim) reads the values at the indices it returns, so the returned element gets
    the whole gradient (amax splits it between ties); cummax/cummin likewise."""
    torch = _torch()
    a = np.array([[1.0, 3.0, 3.0, 2.0], [5.0, 5.0, 1.0, 0.0]])
    w = np.arange(8.0).reshape(2, 4)
    for name in ["max", "min", "cummax", "cummin"]:
        for keepdim in [False, True]:
            x, tx = Tensor(a, requires_grad=True), torch.tensor(a, requires_grad=True)
            extra = {} if name.startswith("cum") else {"keepdim": keepdim}
            (v, i), (tv, ti) = getattr(x, name)(1, **extra), getattr(tx, name)(1, **extra)
            np.testing.assert_array_equal(i.numpy(), ti.numpy())
            seed = w[:, : tv.shape[1]] if tv.ndim == 2 else w[:, 0]
            (v * Tensor(seed)).sum().backward()
            (tv * torch.tensor(seed)).sum().backward()
            np.testing.assert_array_equal(x.grad.numpy(), tx.grad.numpy())
    x = Tensor(np.float32(2.0), requires_grad=True)
    values, index = x.max(0)
    values.backward()
    assert (values.item(), index.item(), x.grad.item()) == (2.0, 0, 1.0)


def test_gather_and_scatter_add_on_0d_and_reductions_over_no_dims_match_torch():
    torch = _torch()
    x = Tensor(np.float64(3.0), requires_grad=True)
    y = x.gather(0, Tensor(np.int64(0)))
    y.backward()
    assert y.shape == () and y.item() == 3.0 and x.grad.item() == 1.0
    assert Tensor(np.float32(3.0)).scatter_add(0, Tensor(np.int64(0)), 2.0).item() == 5.0
    with pytest.raises(OpIndexError, match=r"gather: index 1 is out of bounds"):
        x.gather(0, Tensor(np.int64(1)))
    a = np.arange(6.0).reshape(2, 3)
    for name in ["sum", "mean", "amax", "amin"]:  # torch: dim=() reduces every dim
        got = getattr(Tensor(a), name)(())
        assert got.shape == () and got.item() == getattr(torch.tensor(a), name)(()).item()


# -- arithmetic, rounding, comparisons --------------------------------------------------------
def test_arithmetic_methods_take_pytorchs_arguments():
    a, b = Tensor(np.array([1.0, -2.0, 3.0])), Tensor(np.array([0.5, 4.0, -1.0]))
    np.testing.assert_allclose(a.add(b, alpha=2).numpy(), [2.0, 6.0, 1.0])
    np.testing.assert_allclose(a.sub(b, alpha=0.5).numpy(), [0.75, -4.0, 3.5])
    np.testing.assert_allclose(a.mul(b).numpy(), [0.5, -8.0, -3.0])
    np.testing.assert_allclose(a.div(b).numpy(), [2.0, -0.5, -3.0])
    np.testing.assert_allclose(a.pow(2).numpy(), a.square().numpy())
    np.testing.assert_allclose(a.neg().numpy(), [-1.0, 2.0, -3.0])
    np.testing.assert_allclose(a.lerp(b, 0.25).numpy(), [0.875, -0.5, 2.0])
    np.testing.assert_allclose(a.clamp_min(0).numpy(), [1.0, 0.0, 3.0])
    np.testing.assert_allclose(a.clamp_max(0).numpy(), [0.0, -2.0, 0.0])
    np.testing.assert_allclose(a.exp2().numpy(), 2.0 ** a.numpy(), rtol=1e-6)
    np.testing.assert_allclose(b.abs().log2().numpy(), np.log2(np.abs(b.numpy())), rtol=1e-6)
    np.testing.assert_allclose(b.abs().log10().numpy(), np.log10(np.abs(b.numpy())), rtol=1e-6)
    for name, want in [("eq", [0, 0, 0]), ("ne", [1, 1, 1]), ("lt", [0, 1, 0])]:
        np.testing.assert_array_equal(getattr(a, name)(b).numpy(), want)
    np.testing.assert_array_equal(a.ge(1.0).numpy(), [1, 0, 1])
    assert a.equal(a.clone()) and not a.equal(b) and not a.equal(a[:2])


@pytest.mark.parametrize("mode", [None, "trunc", "floor"])
def test_div_rounding_modes_match_torch_for_ints_and_floats(mode):
    torch = _torch()
    ai, bi = np.array([7, -7, 7, -7, 0, 6]), np.array([2, 2, -2, -2, 3, -3])
    af, bf = ai.astype(np.float32) + 0.5, bi.astype(np.float32)
    for a, b in [(ai, bi), (af, bf)]:
        ours = Tensor(a).div(Tensor(b), rounding_mode=mode)
        theirs = torch.tensor(a).div(torch.tensor(b), rounding_mode=mode)
        assert str(ours.dtype) == str(theirs.dtype).replace("torch.", "")
        np.testing.assert_allclose(ours.numpy(), theirs.numpy(), rtol=1e-6)


def test_integer_trunc_division_by_zero_and_bad_modes_say_how_to_fix():
    with pytest.raises(ZeroDivisionError, match="div: integer division by zero"):
        Tensor([1, 2]).div(Tensor([1, 0]), rounding_mode="trunc")
    with pytest.raises(OpError, match=r"div: rounding_mode must be.*'trunc'.*Fix"):
        Tensor([1.0]).div(2.0, rounding_mode="round")


@given(x=arrays(shapes(min_dims=1), away_from=(-0.5, 0.5)))
def test_rounding_matches_numpy_and_has_zero_gradient(x):
    x = x * 3.0  # spans several whole numbers
    t = Tensor(x, dtype=np.float64)
    np.testing.assert_array_equal(t.round().numpy(), np.round(x))
    np.testing.assert_array_equal(t.trunc().numpy(), np.trunc(x))
    np.testing.assert_array_equal(t.ceil().numpy(), np.ceil(x))
    np.testing.assert_allclose(t.frac().numpy(), x - np.trunc(x), atol=1e-15)
    g = Tensor(x, dtype=np.float64, requires_grad=True)
    (g.round() + g.trunc() + g.ceil()).sum().backward()
    np.testing.assert_array_equal(g.grad.numpy(), np.zeros_like(x))


def test_round_sends_halves_to_the_even_neighbour_like_torch():
    x = np.array([-2.5, -1.5, -0.5, 0.5, 1.5, 2.5, 3.5, 1e8 + 0.5, np.inf, np.nan])
    want = [-2.0, -2.0, -0.0, 0.0, 2.0, 2.0, 4.0, 1e8, np.inf, np.nan]
    np.testing.assert_array_equal(Tensor(x, dtype=np.float64).round().numpy(), want)
    np.testing.assert_allclose(
        Tensor(np.array([1.2345, -2.5551])).round(decimals=2).numpy(), [1.23, -2.56], rtol=1e-6
    )
    compiled = compiler.compile(lambda t: t.round(), x.astype(np.float32), backend="llvm")
    np.testing.assert_array_equal(compiled(x.astype(np.float32)), np.round(x.astype(np.float32)))


# -- matrix products --------------------------------------------------------------------------
def test_matrix_products_and_their_shape_errors():
    rng = np.random.default_rng(2)
    a, b, v = rng.standard_normal((3, 4)), rng.standard_normal((4, 2)), rng.standard_normal(4)
    ta, tb, tv = Tensor(a), Tensor(b), Tensor(v)
    np.testing.assert_allclose(ta.mm(tb).numpy(), a @ b, rtol=1e-5)
    np.testing.assert_allclose(ta.mv(tv).numpy(), a @ v, rtol=1e-5)
    np.testing.assert_allclose(tv.dot(tv).numpy(), v @ v, rtol=1e-5)
    np.testing.assert_allclose(tv.outer(tv[:2]).numpy(), np.outer(v, v[:2]), rtol=1e-6)
    np.testing.assert_allclose(ta.t().numpy(), a.T)
    batch = rng.standard_normal((2, 3, 4))
    np.testing.assert_allclose(
        Tensor(batch).bmm(Tensor(batch).transpose(1, 2)).numpy(),
        batch @ batch.transpose(0, 2, 1),
        rtol=1e-5,
    )
    with pytest.raises(OpError, match=r"mm: expects 2-D and 2-D operands, got 2-D and 1-D.*Fix"):
        ta.mm(tv)
    with pytest.raises(OpError, match=r"bmm: batch sizes differ"):
        Tensor(batch).bmm(Tensor(rng.standard_normal((3, 4, 2))))
    with pytest.raises(OpError, match=r"t: expects a tensor of at most 2 dims.*Fix"):
        Tensor(batch).t()
    assert gradcheck(lambda x, y: x.mm(y).tanh() + x.t().t().mm(y), [a, b])


# -- movement ---------------------------------------------------------------------------------
def test_movement_methods_match_numpy():
    x = np.arange(24.0).reshape(2, 3, 4)
    t = Tensor(x, dtype=np.float64)
    np.testing.assert_array_equal(t.flip(0, 2).numpy(), np.flip(x, (0, 2)))
    np.testing.assert_array_equal(t.flip([1]).numpy(), np.flip(x, 1))
    np.testing.assert_array_equal(t[0].fliplr().numpy(), np.fliplr(x[0]))
    np.testing.assert_array_equal(t[0].flipud().numpy(), np.flipud(x[0]))
    np.testing.assert_array_equal(t.roll(2, 2).numpy(), np.roll(x, 2, 2))
    np.testing.assert_array_equal(t.roll((1, -1), (0, 1)).numpy(), np.roll(x, (1, -1), (0, 1)))
    np.testing.assert_array_equal(t.roll(5).numpy(), np.roll(x, 5))
    np.testing.assert_array_equal(t.narrow(2, 1, 2).numpy(), x[:, :, 1:3])
    np.testing.assert_array_equal(t.narrow(1, -2, 2).numpy(), x[:, 1:3])
    np.testing.assert_array_equal(t.index_select(2, Tensor([3, 0, 3])).numpy(), x[:, :, [3, 0, 3]])
    np.testing.assert_array_equal(t.movedim(0, -1).numpy(), np.moveaxis(x, 0, -1))
    np.testing.assert_array_equal(t.movedim((0, 1), (2, 0)).numpy(), np.moveaxis(x, (0, 1), (2, 0)))
    np.testing.assert_array_equal(t.swapaxes(0, 2).numpy(), np.swapaxes(x, 0, 2))
    np.testing.assert_array_equal(t.tile(2).numpy(), np.tile(x, 2))
    np.testing.assert_array_equal(t.tile((2, 1, 1, 1)).numpy(), np.tile(x, (2, 1, 1, 1)))
    assert [u.shape for u in t.unbind(1)] == [(2, 4)] * 3
    np.testing.assert_array_equal(t.unbind(1)[2].numpy(), x[:, 2])
    np.testing.assert_array_equal(t.select(0, 1).numpy(), x[1])
    np.testing.assert_array_equal(t.triu(1).numpy(), np.triu(x, 1))
    np.testing.assert_array_equal(t.tril(-1).numpy(), np.tril(x, -1))
    np.testing.assert_array_equal(t.diagonal(1, 1, 2).numpy(), np.diagonal(x, 1, 1, 2))
    np.testing.assert_array_equal(t[0].diagonal(-1).numpy(), np.diagonal(x[0], -1))
    assert t[0].trace().item() == np.trace(x[0])
    assert t.clone() is not t and t.clone().dtype == t.dtype
    assert t.long().dtype == np.int64 and t.int().dtype == np.int32 and t.bool().dtype == np.bool_


def test_movement_gradients_match_finite_differences():
    x = np.random.default_rng(4).standard_normal((3, 4))
    assert gradcheck(
        lambda a: (
            a.flip(1).roll(1, 0) * a.triu()
            + a.index_select(1, Tensor([0, 0, 2, 3]))
            + a.t().movedim(0, 1)
            + a.clone() * a.narrow(1, 0, 4)
            + a.diagonal().sum()
        ),
        [x],
    )


def test_compiled_movement_equals_eager():
    x = np.random.default_rng(5).standard_normal((2, 3, 8, 8)).astype(np.float32)

    def fn(t):
        return (
            t.flip(3) + t.roll(2, 2),
            t.tril().amax((2, 3)),
            t.movedim(1, 3).narrow(3, 1, 2) * 2.0,
            t.index_select(1, Tensor([2, 0])).trunc(),
        )

    compiled = compiler.compile(fn, x, backend="llvm")
    for got, want in zip(compiled(x).values(), fn(Tensor(x))):
        np.testing.assert_allclose(got, want.numpy(), rtol=1e-6, atol=1e-6)


def test_movement_mistakes_say_how_to_fix():
    t = Tensor(np.zeros((2, 3)))
    with pytest.raises(OpIndexError, match=r"narrow: start 2 and length 2 run outside dim 1.*Fix"):
        t.narrow(1, 2, 2)
    with pytest.raises(OpError, match=r"movedim: 2 source dims but 1 destinations.*Fix"):
        t.movedim((0, 1), 0)
    with pytest.raises(OpError, match=r"roll: 2 shifts for 1 dims.*Fix"):
        t.roll((1, 2), 0)
    with pytest.raises(OpError, match=r"index_select: index must be a 1-D integer tensor.*Fix"):
        t.index_select(0, Tensor([0.5]))
    with pytest.raises(OpError, match=r"triu: needs at least 2 dims.*Fix"):
        Tensor([1.0, 2.0]).triu()


# -- function forms, factories, dtypes --------------------------------------------------------
def test_function_forms_read_like_torch():
    x = tg.tensor([[1.0, -2.0], [3.0, 0.5]])
    np.testing.assert_allclose(tg.exp(x).numpy(), np.exp(x.numpy()))
    np.testing.assert_allclose(tg.sin([0.0, 1.0]).numpy(), np.sin([0.0, 1.0]), rtol=1e-6)
    np.testing.assert_array_equal(tg.max(x, 1).indices.numpy(), [0, 0])
    np.testing.assert_array_equal(tg.max(x, tg.zeros(2, 2)).numpy(), np.maximum(x.numpy(), 0))
    np.testing.assert_allclose(tg.matmul(x, x).numpy(), x.numpy() @ x.numpy())
    np.testing.assert_array_equal(tg.flatten(x).numpy(), x.numpy().reshape(-1))
    np.testing.assert_array_equal(tg.transpose(x, 0, 1).numpy(), x.numpy().T)
    assert tg.numel(x) == 4
    assert tg.exp.__name__ == "exp" and "x.exp" in tg.exp.__doc__ or "input.exp" in tg.exp.__doc__


def test_tensor_factory_copies_and_picks_pytorchs_dtypes():
    data = np.array([1.0, 2.0])
    t = tg.tensor(data, requires_grad=True)
    data[0] = 5.0
    assert t.numpy()[0] == 1.0 and t.requires_grad and t.dtype == np.float32
    assert tg.tensor([1, 2]).dtype == np.int64 and tg.tensor(2.5).shape == ()
    assert tg.tensor([1, 2], dtype=tg.float64).dtype == np.float64
    assert tg.zeros(2, 3, dtype=tg.int64).dtype == np.int64
    assert tg.ones(2).numpy().tolist() == [1.0, 1.0] and tg.arange(3).shape == (3,)
    assert tg.randn(2, 2).shape == (2, 2) and tg.rand(3).dtype == np.float32
    assert tg.full((2,), 7.0).numpy().tolist() == [7.0, 7.0]
    assert tg.float is np.float32 and tg.long is np.int64 and tg.bool is np.bool_
    import tinygrad_edu.tensor as module

    assert module.Tensor is Tensor  # the submodule is still the module


@given(data=st.data())
def test_methods_agree_with_torch_on_random_inputs(data):
    torch = _torch()
    x = data.draw(arrays(st.tuples(st.integers(2, 5), st.integers(2, 5)), away_from=(-0.5, 0.5)))
    t, tt = Tensor(x, dtype=np.float64), torch.tensor(x)
    for name, args in [
        ("sin", ()),
        ("cos", ()),
        ("tan", ()),
        ("sinh", ()),
        ("cosh", ()),
        ("exp2", ()),
        ("round", ()),
        ("trunc", ()),
        ("ceil", ()),
        ("frac", ()),
        ("square", ()),
        ("flip", (0,)),
        ("roll", (1, 1)),
        ("triu", (0,)),
        ("tril", (1,)),
        ("t", ()),
        ("amax", (1,)),
        ("amin", (0,)),
        ("movedim", (0, 1)),
        ("narrow", (1, 0, 2)),
    ]:
        np.testing.assert_allclose(
            getattr(t, name)(*args).numpy(),
            getattr(tt, name)(*args).numpy(),
            rtol=1e-12,
            atol=1e-12,
            err_msg=name,
        )


# -- gather / scatter_add with a tensor of indices, argsort / sort / topk --------------------
def test_compiled_gather_reads_an_index_the_function_takes():
    """A hand-written NLL loss, `-logp.gather(1, y.unsqueeze(1))`, compiled: the labels are an
    input, so the gather is an op with the index as data (the old one read the index at trace
    time and could not compile)."""
    rng = np.random.default_rng(6)
    x = rng.standard_normal((6, 10)).astype(np.float32)
    y = np.array([1, 3, 0, 9, 2, 2])

    def picked(t, labels):
        return -t.log_softmax(1).gather(1, labels.unsqueeze(1)).squeeze(1)

    compiled = compiler.compile(picked, x, y, backend="llvm")
    want = picked(Tensor(x), Tensor(y)).numpy()
    np.testing.assert_allclose(compiled(x, y), want, rtol=1e-5, atol=1e-6)
    y2 = np.array([0, 0, 5, 5, 9, 1])
    np.testing.assert_allclose(
        compiled(x, y2), picked(Tensor(x), Tensor(y2)).numpy(), rtol=1e-5, atol=1e-6
    )
    with pytest.raises(IndexError, match=r"gather: index 10 is out of bounds for dim 1 of size 10"):
        compiled(x, np.array([1, 3, 0, 10, 2, 2]))


def test_compiled_training_through_gather_matches_eager():
    class Picker(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.fc = nn.Linear(5, 4)

        def forward(self, x):
            return self.fc(x)

    def loss_fn(out, labels):
        return -out.log_softmax(1).gather(1, labels.unsqueeze(1)).mean()

    rng = np.random.default_rng(7)
    x, y = rng.standard_normal((8, 5)).astype(np.float32), np.arange(8) % 4
    tg.manual_seed(1)
    model = Picker()
    assert_step_matches_eager(model, loss_fn, tg.optim.SGD(model.parameters(), lr=0.5), x, y)


def test_gather_and_scatter_add_match_torch_with_gradients():
    torch = _torch()
    rng = np.random.default_rng(8)
    x = rng.standard_normal((4, 6, 3))
    idx = rng.integers(0, 6, (3, 5, 2))  # smaller than x outside dim 1, larger along it
    t = Tensor(x, dtype=np.float64, requires_grad=True)
    tt = torch.tensor(x, requires_grad=True)
    out, tout = t.gather(1, idx), tt.gather(1, torch.tensor(idx))
    np.testing.assert_array_equal(out.numpy(), tout.detach().numpy())
    (out * out).sum().backward()
    (tout * tout).sum().backward()
    np.testing.assert_allclose(t.grad.numpy(), tt.grad.numpy(), rtol=1e-12)
    src = rng.standard_normal((3, 5, 2))
    ours = Tensor(x, dtype=np.float64).scatter_add(1, idx, Tensor(src, dtype=np.float64)).numpy()
    theirs = torch.tensor(x).scatter_add(1, torch.tensor(idx), torch.tensor(src)).numpy()
    np.testing.assert_allclose(ours, theirs, rtol=1e-12)
    assert gradcheck(lambda a, s: a.scatter_add(1, idx, s) * a, [x, src])
    compiled = compiler.compile(lambda a, s: a.scatter_add(1, idx, s), x, src, backend="llvm")
    np.testing.assert_allclose(compiled(x, src), theirs, rtol=1e-6, atol=1e-6)  # in float32


def test_sort_argsort_topk_match_torch_ties_and_nan_included():
    torch = _torch()
    x = np.array(
        [[3.0, np.nan, 1.0, 3.0, -np.inf, np.inf, 1.0], [2.0, 2.0, 2.0, 0.0, 5.0, 1.0, -1.0]]
    )
    t, tt = Tensor(x, dtype=np.float64), torch.tensor(x)
    for descending in (False, True):
        ours = t.sort(1, descending=descending)
        theirs = tt.sort(dim=1, descending=descending, stable=True)
        np.testing.assert_array_equal(ours.values.numpy(), theirs.values.numpy())
        np.testing.assert_array_equal(ours.indices.numpy(), theirs.indices.numpy())
        np.testing.assert_array_equal(
            t.argsort(0, descending).numpy(), tt.argsort(dim=0, descending=descending, stable=True)
        )
    finite = np.nan_to_num(x, nan=7.0, posinf=8.0, neginf=-8.0)
    distinct = np.random.default_rng(10).permutation(14).reshape(2, 7).astype(np.float64)
    for k, largest in [(3, True), (2, False), (0, True), (7, True)]:
        ours = Tensor(finite).topk(k, 1, largest)
        theirs = torch.tensor(finite).topk(k, 1, largest)
        np.testing.assert_array_equal(ours.values.numpy(), theirs.values.numpy())
        # torch leaves the order of tied entries open (ours: the lower index first), so the
        # indices are compared where the values are distinct
        ours = Tensor(distinct).topk(k, 1, largest)
        theirs = torch.tensor(distinct).topk(k, 1, largest)
        np.testing.assert_array_equal(ours.indices.numpy(), theirs.indices.numpy())
    ints = Tensor(np.array([3, 1, 2, 1]))
    assert ints.sort(descending=True).values.tolist() == [3, 2, 1, 1]
    assert ints.argsort().dtype == np.int64
    with pytest.raises(OpError, match=r"topk: k=8 must be a whole number in \[0, 7\].*Fix"):
        t.topk(8)


def test_sorted_values_carry_gradients_to_their_positions():
    x = np.array([[0.3, -1.2, 2.5, 0.1], [1.0, 0.2, -0.4, 0.9]])
    assert gradcheck(lambda a: a.sort(1).values * Tensor(np.arange(4.0)), [x])
    assert gradcheck(lambda a: a.topk(2, 1).values.exp(), [x])


def test_compiled_topk_accuracy_equals_eager():
    """Top-5 accuracy as ImageNet scripts compute it: `output.topk(5, 1)` against labels."""
    rng = np.random.default_rng(9)
    logits = rng.standard_normal((16, 20)).astype(np.float32)
    labels = rng.integers(0, 20, 16)

    def top5(out, y):
        _, pred = out.topk(5, 1, True, True)
        return (pred == y.reshape(-1, 1)).any(1).float().mean()

    compiled = compiler.compile(top5, logits, labels, backend="llvm")
    want = top5(Tensor(logits), Tensor(labels)).item()
    assert float(compiled(logits, labels)) == want
    assert want == np.mean([y in np.argsort(-row)[:5] for row, y in zip(logits, labels)])


# -- what running tinygrad's op tests through a name map found missing or different ---------
def test_shape_mistakes_are_runtime_errors_as_in_torch_and_value_errors_as_before():
    a, b = Tensor(np.zeros((2, 3))), Tensor(np.zeros((2, 3)))
    for call in (lambda: a @ b, lambda: a.permute(0), lambda: a.div(b, rounding_mode="x")):
        with pytest.raises(RuntimeError):
            call()
        with pytest.raises(ValueError):
            call()


def test_binary_cross_entropy_differentiates_the_target_too():
    torch = _torch()
    rng = np.random.default_rng(12)
    p, y = rng.uniform(0.1, 0.9, (2, 3)), rng.uniform(0, 1, (2, 3))
    for reduction in ("mean", "sum"):
        tp, ty = (
            Tensor(p, dtype=np.float64, requires_grad=True),
            Tensor(y, dtype=np.float64, requires_grad=True),
        )
        F.binary_cross_entropy(tp, ty, reduction=reduction).backward()
        qp, qy = torch.tensor(p, requires_grad=True), torch.tensor(y, requires_grad=True)
        torch.nn.functional.binary_cross_entropy(qp, qy, reduction=reduction).backward()
        np.testing.assert_allclose(ty.grad.numpy(), qy.grad.numpy(), rtol=1e-12)
        np.testing.assert_allclose(tp.grad.numpy(), qp.grad.numpy(), rtol=1e-12)
    assert gradcheck(lambda a, b: a.binary_cross_entropy(b), [p, y])


def test_small_pytorch_rules_flip_roll_logical_full():
    t = Tensor(np.arange(8.0).reshape(2, 4))
    with pytest.raises(OpError, match=r"flip: dims \(0, 0\) repeat a dim"):
        t.flip((0, 0))
    np.testing.assert_array_equal(t.roll((1,)).numpy(), np.roll(np.arange(8.0), 1).reshape(2, 4))
    np.testing.assert_array_equal(
        Tensor(np.array([1.0, 0.0, 0.5])).logical_not().numpy(), [0, 1, 0]
    )
    np.testing.assert_array_equal(Tensor([2, 0]).logical_and(Tensor([1, 1])).numpy(), [1, 0])
    assert tg.full((2,), 4).dtype == np.int64 and tg.full((2,), True).dtype == np.bool_
    assert (
        tg.full((2,), 0.5).dtype == np.float32
        and tg.full((2,), 4, dtype=tg.float64).dtype == np.float64
    )
    np.testing.assert_array_equal((Tensor([1, 2]) & Tensor([1, 0])).numpy(), [1, 0])  # bitwise
    with pytest.raises(OpError, match=r"logical_and: operands must be bool"):
        Tensor([1.0, 2.0]) & Tensor([1, 0])  # a float is neither logical nor bitwise


def test_elementwise_extras_match_torch():
    torch = _torch()
    x = np.array([1.5, -np.inf, np.nan, -3.25, np.inf, 0.0, -0.0])
    t, tt = Tensor(x, dtype=np.float64), torch.tensor(x)
    for name in ("isnan", "isinf", "isfinite"):
        np.testing.assert_array_equal(getattr(t, name)().numpy(), getattr(tt, name)().numpy())
    np.testing.assert_array_equal(t.nan_to_num().numpy(), tt.nan_to_num().numpy())
    np.testing.assert_array_equal(
        t.nan_to_num(1.0, 2.0, -2.0).numpy(), tt.nan_to_num(1.0, 2.0, -2.0).numpy()
    )
    a = np.array([5.0, -5.0, 5.5, -7.0, 1e-3])
    b = np.array([3.0, 3.0, -2.0, 2.0, 7.0])
    ta, tb, qa, qb = (
        Tensor(a, dtype=np.float64),
        Tensor(b, dtype=np.float64),
        torch.tensor(a),
        torch.tensor(b),
    )
    np.testing.assert_allclose(ta.fmod(tb).numpy(), qa.fmod(qb).numpy(), rtol=1e-12)
    np.testing.assert_allclose(ta.logaddexp(tb).numpy(), qa.logaddexp(qb).numpy(), rtol=1e-12)
    big = Tensor(np.array([1000.0, -np.inf, np.inf]), dtype=np.float64)
    np.testing.assert_array_equal(big.logaddexp(big).numpy(), [1000.0 + np.log(2), -np.inf, np.inf])
    s, m = ta.std_mean(0)
    qs, qm = torch.std_mean(qa, 0)
    np.testing.assert_allclose([s.item(), m.item()], [qs.item(), qm.item()], rtol=1e-12)
    assert gradcheck(lambda u, v: u.logaddexp(v) + u.fmod(3.0) * v, [a[[0, 2, 3]], b[[0, 2, 3]]])


def test_shape_extras_match_torch():
    torch = _torch()
    v, m = np.array([1.0, 2.0, 3.0]), np.arange(6.0).reshape(2, 3)
    for d in (0, 2, -1):
        np.testing.assert_array_equal(Tensor(v).diag(d).numpy(), torch.tensor(v).diag(d).numpy())
    np.testing.assert_array_equal(Tensor(m).diag(1).numpy(), torch.tensor(m).diag(1).numpy())
    np.testing.assert_array_equal(
        Tensor(m).repeat_interleave(2, 1).numpy(), torch.tensor(m).repeat_interleave(2, 1).numpy()
    )
    np.testing.assert_array_equal(
        Tensor(m).repeat_interleave(3).numpy(), torch.tensor(m).repeat_interleave(3).numpy()
    )
    assert Tensor(np.zeros((2, 12))).unflatten(1, (3, -1)).shape == (2, 3, 4)
    for indexing in ("ij", "xy"):
        ours = tg.meshgrid(Tensor(v), Tensor(v[:2]), indexing=indexing)
        theirs = torch.meshgrid(torch.tensor(v), torch.tensor(v[:2]), indexing=indexing)
        for o, w in zip(ours, theirs):
            np.testing.assert_array_equal(o.numpy(), w.numpy())
    assert gradcheck(
        lambda a: a.diag(1).sum(0) * a.repeat_interleave(2).reshape(3, 2)[:, 0].sum(), [v]
    )


def test_factories_and_normalize_match_torch():
    torch = _torch()
    np.testing.assert_allclose(tg.linspace(-1, 2, 7).numpy(), torch.linspace(-1, 2, 7).numpy())
    tg.manual_seed(3)
    r = tg.randint(2, 9, (1000,))
    assert r.dtype == np.int64 and r.numpy().min() >= 2 and r.numpy().max() <= 8
    assert tg.randint(5, size=(2, 2)).shape == (2, 2) and tg.empty(2, 3).shape == (2, 3)
    assert Tensor(np.ones(3, np.float32)).sum(dtype=tg.float64).dtype == np.float64
    x = np.random.default_rng(13).standard_normal((4, 5))
    for p, dim in [(2.0, 1), (1.0, 0), (float("inf"), -1), (3.0, 1)]:
        np.testing.assert_allclose(
            F.normalize(Tensor(x, dtype=np.float64), p, dim).numpy(),
            torch.nn.functional.normalize(torch.tensor(x), p, dim).numpy(),
            rtol=1e-12,
        )
    assert gradcheck(lambda a: F.normalize(a) * 2.0, [x])
    x[0, :2] = 0.0
    np.testing.assert_allclose(  # p=0 counts the non-zero entries
        F.normalize(Tensor(x, dtype=np.float64), 0.0).numpy(),
        torch.nn.functional.normalize(torch.tensor(x), 0.0).numpy(),
    )
    shapes = [t.shape for t in tg.meshgrid(tg.tensor(10.0), tg.arange(3.0))]
    assert shapes == [(1, 3), (1, 3)]  # a 0-d tensor is one point, as in torch
    index, ones = Tensor(np.array([[0, 0], [1, 0]])), Tensor(np.ones((2, 2)))
    np.testing.assert_array_equal(
        Tensor(np.zeros((2, 3))).scatter(1, index, ones, reduce="add").numpy(),
        torch.zeros(2, 3, dtype=torch.float64)
        .scatter(
            1, torch.tensor([[0, 0], [1, 0]]), torch.ones(2, 2, dtype=torch.float64), reduce="add"
        )
        .numpy(),
    )
    with pytest.raises(OpError, match=r"scatter: reduce='multiply' is not supported.*Fix"):
        Tensor(np.zeros((2, 3))).scatter(1, index, ones, reduce="multiply")


def test_compiled_extras_equal_eager():
    x = np.random.default_rng(14).standard_normal((3, 8)).astype(np.float32)
    x[0, 0], x[1, 1] = np.inf, np.nan

    def fn(t):
        u = t.nan_to_num(0.0, 5.0, -5.0)
        return u.logaddexp(u * 0.5), t.isfinite(), u.repeat_interleave(2, 1), u.fmod(1.5)

    compiled = compiler.compile(fn, x, backend="llvm")
    for got, want in zip(compiled(x).values(), fn(Tensor(x))):
        np.testing.assert_allclose(got, want.numpy(), rtol=1e-6, atol=1e-6)


@given(x=arrays(shapes(min_dims=1), away_from=(0.0,)))  # abs's kink, in the acosh check
def test_inverse_trigonometry_values_and_gradients(x):
    inside = np.clip(x, -0.9, 0.9)  # asin/acos/atanh are defined (and smooth) on (-1, 1)
    t = Tensor(inside, dtype=np.float64)
    np.testing.assert_allclose(t.asin().numpy(), np.arcsin(inside), rtol=1e-13, atol=1e-15)
    np.testing.assert_allclose(t.acos().numpy(), np.arccos(inside), rtol=1e-13, atol=1e-15)
    np.testing.assert_allclose(t.atanh().numpy(), np.arctanh(inside), rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(Tensor(x, dtype=np.float64).atan().numpy(), np.arctan(x), rtol=1e-13)
    np.testing.assert_allclose(
        Tensor(x, dtype=np.float64).asinh().numpy(), np.arcsinh(x), rtol=1e-12, atol=1e-15
    )
    np.testing.assert_allclose(
        Tensor(np.abs(x) + 1.0, dtype=np.float64).acosh().numpy(),
        np.arccosh(np.abs(x) + 1.0),
        rtol=1e-12,
    )
    assert gradcheck(lambda a: a.asin() + a.acos() * a.atan() + a.asinh() + a.atanh(), [inside])
    assert gradcheck(lambda a: (a.abs() + 1.1).acosh(), [x])


def test_asinh_is_accurate_far_out_and_at_zero():
    z = np.array([1e-9, -1e-9, 3e10, -3e10, 0.0])
    np.testing.assert_allclose(
        Tensor(z, dtype=np.float64).asinh().numpy(), np.arcsinh(z), rtol=1e-13
    )
    g = Tensor(np.array([0.0]), dtype=np.float64, requires_grad=True)
    g.asinh().sum().backward()
    assert g.grad.item() == 1.0


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_inverse_hyperbolics_at_the_edges_of_their_domains(dtype):
    """Where x^2 overflows (asinh, acosh: log(2|x|) there), at atanh's poles and outside
    the domains (NaN, as numpy and PyTorch give), with finite gradients wherever the
    function is smooth."""
    huge = np.finfo(dtype).max / 2
    x = np.array([-huge, -1e20, -1e9, -3.0, -1.0, 0.0, 1e-30, 0.5, 1.0, 1.5, 1.1e8, 1e20, huge])
    x = x.astype(dtype)
    with np.errstate(all="ignore"):
        for name, ref in [("asinh", np.arcsinh), ("acosh", np.arccosh), ("atanh", np.arctanh)]:
            t = Tensor(x, dtype=dtype, requires_grad=True)
            y = getattr(t, name)()
            np.testing.assert_allclose(y.numpy(), ref(x), rtol=4 * np.finfo(dtype).eps)
            y.sum().backward()
            smooth = np.isfinite(ref(x)) & (np.abs(x) != 1.0)
            assert np.isfinite(t.grad.numpy()[smooth]).all(), name
        np.testing.assert_array_equal(
            Tensor(np.array([np.inf, -1.0]), dtype=dtype).log1p().numpy(), [np.inf, -np.inf]
        )


def test_compiled_inverse_trigonometry_equals_eager():
    x = np.linspace(-0.99, 0.99, 257).astype(np.float32)

    def fn(t):
        return t.asin() + t.acos(), t.atan() * 3.0, t.asinh() - t.atanh()

    compiled = compiler.compile(fn, x, backend="llvm")
    assert any("asin" in k.ops for k in compiled.kernels)
    for got, want in zip(compiled(x).values(), fn(Tensor(x))):
        np.testing.assert_allclose(got, want.numpy(), rtol=2e-6, atol=2e-6)


def test_copysign_masked_select_nonzero_match_torch():
    torch = _torch()
    a, b = np.array([1.0, -2.0, 3.0, -4.0]), np.array([-0.0, 1.0, -5.0, 0.0])
    np.testing.assert_array_equal(
        Tensor(a).copysign(Tensor(b)).numpy(), torch.tensor(a).copysign(torch.tensor(b)).numpy()
    )
    x = np.arange(6.0).reshape(2, 3)
    mask = np.array([True, False, True])
    np.testing.assert_array_equal(
        Tensor(x).masked_select(Tensor(mask)).numpy(),
        torch.tensor(x).masked_select(torch.tensor(mask)).numpy(),
    )
    z = np.array([[0, 1, 0], [2, 0, 3]])
    np.testing.assert_array_equal(Tensor(z).nonzero().numpy(), torch.tensor(z).nonzero().numpy())
    for ours, theirs in zip(
        Tensor(z).nonzero(as_tuple=True), torch.tensor(z).nonzero(as_tuple=True)
    ):
        np.testing.assert_array_equal(ours.numpy(), theirs.numpy())
    with pytest.raises(OpError, match=r"nonzero: the number of non-zero elements.*Fix"):
        compiler.compile(lambda t: t.nonzero(), z.astype(np.float32), backend="numpy")


@pytest.mark.parametrize(
    "kwargs",
    [{}, {"is_causal": True}, {"mask": "bool"}, {"mask": "float"}, {"scale": 0.3}, {"gqa": True}],
    ids=["plain", "causal", "bool-mask", "float-mask", "scale", "gqa"],
)
def test_scaled_dot_product_attention_matches_torch(kwargs):
    torch = _torch()
    rng = np.random.default_rng(15)
    heads = 2 if kwargs.get("gqa") else 4
    q = rng.standard_normal((2, 4, 5, 8))
    k, v = rng.standard_normal((2, heads, 6, 8)), rng.standard_normal((2, heads, 6, 3))
    ours_kw, theirs_kw = {}, {}
    if kwargs.get("mask") == "bool":
        m = rng.uniform(size=(5, 6)) > 0.3
        m[:, 0] = True  # every row keeps a key (an all-masked row is NaN in both)
        ours_kw["attn_mask"], theirs_kw["attn_mask"] = Tensor(m), torch.tensor(m)
    if kwargs.get("mask") == "float":
        m = rng.standard_normal((5, 6))
        ours_kw["attn_mask"] = Tensor(m, dtype=np.float64)
        theirs_kw["attn_mask"] = torch.tensor(m)
    for key in ("is_causal", "scale"):
        if key in kwargs:
            ours_kw[key] = theirs_kw[key] = kwargs[key]
    gqa = bool(kwargs.get("gqa"))
    f64 = [Tensor(a, dtype=np.float64) for a in (q, k, v)]
    ours = F.scaled_dot_product_attention(*f64, enable_gqa=gqa, **ours_kw)
    theirs = torch.nn.functional.scaled_dot_product_attention(
        *(torch.tensor(a) for a in (q, k, v)), enable_gqa=gqa, **theirs_kw
    )
    np.testing.assert_allclose(ours.numpy(), theirs.numpy(), rtol=1e-12, atol=1e-14)
    with pytest.raises(OpError, match=r"is_causal and attn_mask are exclusive"):
        F.scaled_dot_product_attention(*f64, is_causal=True, attn_mask=Tensor(np.ones((5, 6))))
    assert gradcheck(
        lambda a, b, c: F.scaled_dot_product_attention(a, b, c, is_causal=True),
        [q[:1, :1], k[:1, :1], v[:1, :1]],
    )


def test_running_reductions_match_torch_ties_and_nan_included():
    torch = _torch()
    x = np.array([[1.0, 3.0, 3.0, 2.0, 5.0, -1.0], [0.0, -2.0, 4.0, 4.0, np.nan, 0.0]])
    t, tt = Tensor(x, dtype=np.float64), torch.tensor(x)
    for name in ("cummax", "cummin"):
        for dim in (0, 1):
            ours, theirs = getattr(t, name)(dim), getattr(tt, name)(dim)
            np.testing.assert_array_equal(ours.values.numpy(), theirs.values.numpy())
            np.testing.assert_array_equal(ours.indices.numpy(), theirs.indices.numpy())
    finite = np.nan_to_num(x)
    np.testing.assert_allclose(
        Tensor(finite, dtype=np.float64).cumprod(1).numpy(), torch.tensor(finite).cumprod(1).numpy()
    )
    np.testing.assert_allclose(
        Tensor(finite, dtype=np.float64).logcumsumexp(1).numpy(),
        torch.tensor(finite).logcumsumexp(1).numpy(),
        rtol=1e-12,
    )
    ints = np.array([3, 1, 4, 1, 5])
    assert Tensor(ints).cumprod(0).tolist() == torch.tensor(ints).cumprod(0).tolist()
    assert Tensor(ints).cummax(0).indices.tolist() == torch.tensor(ints).cummax(0).indices.tolist()
    big = Tensor(np.array([1000.0, 1000.0, -np.inf]), dtype=np.float64).logcumsumexp(0)
    np.testing.assert_allclose(big.numpy(), [1000.0, 1000.0 + np.log(2), 1000.0 + np.log(2)])


def test_running_reductions_have_gradients_zeros_included():
    x = np.array([[0.5, 0.0, -1.5, 2.0], [1.2, -0.7, 0.3, 0.9]])  # a zero in a product
    assert gradcheck(lambda a: a.cumprod(1), [x])
    assert gradcheck(lambda a: a.logcumsumexp(1) * 2.0, [x])
    assert gradcheck(
        lambda a: a.cummax(1).values + a.cummin(0).values, [x + np.arange(8).reshape(2, 4) * 0.01]
    )


def test_compiled_running_reductions_equal_eager():
    x = np.random.default_rng(16).standard_normal((3, 9)).astype(np.float32)

    def fn(t):
        top = t.cummax(1)
        return t.cumprod(1), t.logcumsumexp(1), top.values, top.indices

    compiled = compiler.compile(fn, x, backend="llvm")
    for got, want in zip(compiled(x).values(), fn(Tensor(x))):
        np.testing.assert_allclose(got, want.numpy(), rtol=1e-5, atol=1e-6)


def test_prod_unfold_half_match_torch():
    torch = _torch()
    x = np.array([[0.5, 0.0, -1.5, 2.0], [1.2, -0.7, 0.3, 0.9]])
    t, tt = Tensor(x, dtype=np.float64), torch.tensor(x)
    np.testing.assert_allclose(t.prod().numpy(), tt.prod().numpy())
    for dim, keepdim in [(0, False), (1, True), (-1, False)]:
        np.testing.assert_allclose(t.prod(dim, keepdim).numpy(), tt.prod(dim, keepdim).numpy())
    assert Tensor(np.zeros((2, 0))).prod(1).tolist() == [1.0, 1.0]
    assert Tensor([2, 3]).prod().dtype == np.int64 and Tensor([2, 3]).prod().item() == 6
    assert gradcheck(lambda a: a.prod(1) + a.prod(), [x])  # a zero factor included
    a = np.arange(10.0).reshape(2, 5)
    for args in [(1, 2, 2), (1, 3, 1), (0, 1, 1), (1, 0, 2)]:
        np.testing.assert_array_equal(
            Tensor(a).unfold(*args).numpy(), torch.tensor(a).unfold(*args).numpy()
        )
    assert gradcheck(lambda u: u.unfold(1, 3, 1) * 2.0, [a])
    with pytest.raises(OpError, match=r"unfold: size 6 must be in \[0, 5\]"):
        Tensor(a).unfold(1, 6, 1)
    assert Tensor(a).half().dtype == np.float16
