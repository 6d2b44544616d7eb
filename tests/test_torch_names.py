"""More of PyTorch's names (tinygrad_edu/torch_names.py and the composed methods), `x[i] = v`
and `nn.parameter`: values (and gradients where they have one) equal torch's."""

import numpy as np
import pytest

import compiler
import tinygrad_edu as tg
from tinygrad_edu import OpError, OpIndexError, Tensor


def _torch():
    return pytest.importorskip("torch")


RNG = np.random.default_rng(0)
A = RNG.standard_normal((3, 4)).astype(np.float32)
B = RNG.standard_normal((3, 4)).astype(np.float32)
WITH_NAN = np.array([[1.0, np.nan, -2.0], [np.nan, np.nan, 3.0]], np.float32)
SIGNED = np.array([-1.5, -0.0, 0.0, 2.0, np.inf, -np.inf], np.float32)
M = RNG.standard_normal((2, 3)).astype(np.float32)
N3 = RNG.standard_normal((3, 2)).astype(np.float32)
V3 = RNG.standard_normal((4, 3)).astype(np.float32)
W3 = RNG.standard_normal((4, 3)).astype(np.float32)

# name -> (ours, torch's), each a function of the module (tg or torch)
CASES = {
    "divide": lambda m: m.divide(m.tensor(A), m.tensor(B)),
    "multiply": lambda m: m.multiply(m.tensor(A), 3.0),
    "subtract": lambda m: m.subtract(m.tensor(A), m.tensor(B), alpha=2),
    "true_divide": lambda m: m.true_divide(m.tensor(A), 2.0),
    "negative": lambda m: m.negative(m.tensor(A)),
    "absolute": lambda m: m.absolute(m.tensor(A)),
    "greater": lambda m: m.greater(m.tensor(A), m.tensor(B)),
    "less_equal": lambda m: m.less_equal(m.tensor(A), 0.0),
    "not_equal": lambda m: m.not_equal(m.tensor(A), m.tensor(A) * 0 + A[0, 0]),
    "diff": lambda m: m.diff(m.tensor(A), dim=1),
    "diff_n2_prepend": lambda m: m.diff(m.tensor(A), n=2, dim=0, prepend=m.tensor(B[:1])),
    "diff_append": lambda m: m.tensor(A).diff(append=m.tensor(B[:, :2])),
    "broadcast_to": lambda m: m.broadcast_to(m.tensor(A[:1]), (3, 4)),
    "rad2deg": lambda m: m.rad2deg(m.tensor(A)),
    "deg2rad": lambda m: m.tensor(A).deg2rad(),
    "count_nonzero": lambda m: m.count_nonzero(m.tensor(np.array([[0, 1, 2], [0, 0, 3]])), 1),
    "isposinf": lambda m: m.isposinf(m.tensor(SIGNED)),
    "isneginf": lambda m: m.isneginf(m.tensor(SIGNED)),
    "signbit": lambda m: m.signbit(m.tensor(SIGNED)),
    "sgn": lambda m: m.sgn(m.tensor(SIGNED)),
    "fmax": lambda m: m.fmax(m.tensor(WITH_NAN), m.tensor(WITH_NAN[::-1].copy())),
    "fmin": lambda m: m.fmin(m.tensor(WITH_NAN), m.tensor(np.zeros_like(WITH_NAN))),
    "nansum": lambda m: m.nansum(m.tensor(WITH_NAN), 1),
    "nanmean": lambda m: m.nanmean(m.tensor(WITH_NAN), 0),
    "xlogy": lambda m: m.xlogy(m.tensor(np.array([0.0, 1.0, 2.0, 0.0])), m.tensor(
        np.array([0.0, 3.0, 0.5, np.nan]))),
    "float_power": lambda m: m.float_power(m.tensor(np.abs(A)), 1.5),
    "heaviside": lambda m: m.heaviside(m.tensor(SIGNED), m.tensor(np.float32(0.5))),
    "aminmax": lambda m: m.aminmax(m.tensor(A), dim=1),
    "ravel": lambda m: m.ravel(m.tensor(A.T.copy())),
    "tensor_split_sections": lambda m: m.tensor_split(m.arange(10), 3),
    "tensor_split_indices": lambda m: m.tensor_split(m.tensor(A), [1, 3], dim=1),
    "hsplit": lambda m: m.hsplit(m.tensor(A), 2),
    "vsplit": lambda m: m.vsplit(m.tensor(A), [1]),
    "take_along_dim": lambda m: m.take_along_dim(
        m.tensor(A), m.tensor(np.argsort(A, 1)[:, :2]), dim=1
    ),
    "take_along_dim_flat": lambda m: m.take_along_dim(m.tensor(A), m.tensor(np.array([0, 5]))),
    "dist": lambda m: m.dist(m.tensor(A), m.tensor(B), 3),
    "addmm": lambda m: m.addmm(m.tensor(A[:2, :2]), m.tensor(M), m.tensor(N3), beta=0.5, alpha=2),
    "baddbmm": lambda m: m.baddbmm(m.tensor(np.ones((2, 2, 2), np.float32)),
                                   m.tensor(np.stack([M, M])), m.tensor(np.stack([N3, N3]))),
    "kron": lambda m: m.kron(m.tensor(M), m.tensor(N3)),
    "tensordot": lambda m: m.tensordot(m.tensor(A.reshape(3, 2, 2)), m.tensor(B.reshape(2, 2, 3)),
                                       dims=2),
    "tensordot_pairs": lambda m: m.tensordot(m.tensor(A), m.tensor(B), dims=([0], [0])),
    "cross": lambda m: m.cross(m.tensor(V3), m.tensor(W3), dim=1),
    "hstack": lambda m: m.hstack([m.tensor(A), m.tensor(B)]),
    "vstack": lambda m: m.vstack([m.tensor(A[0]), m.tensor(B)]),
    "concat": lambda m: m.concat([m.tensor(A), m.tensor(B)], dim=1),
    "atleast_3d": lambda m: m.atleast_3d(m.tensor(A)),
    "atleast_2d_many": lambda m: m.atleast_2d(m.tensor(np.float32(1.0)), m.tensor(A[0])),
    "broadcast_tensors": lambda m: m.broadcast_tensors(m.tensor(A[:1]), m.tensor(B)),
    "clamp_min": lambda m: m.clamp_min(m.tensor(A), 0.0),
    "moveaxis": lambda m: m.moveaxis(m.tensor(A.reshape(3, 2, 2)), 0, -1),
}  # fmt: skip


def _numpy(out):
    if isinstance(out, tuple):
        return [_numpy(o) for o in out]
    return out.detach().numpy() if hasattr(out, "detach") else np.asarray(out)


@pytest.mark.parametrize("name", CASES)
def test_more_torch_names_equal_torch(name):
    torch = _torch()
    ours, theirs = _numpy(CASES[name](tg)), _numpy(CASES[name](torch))
    ours, theirs = (ours, theirs) if isinstance(ours, list) else ([ours], [theirs])
    assert len(ours) == len(theirs)
    for o, t in zip(ours, theirs):
        assert o.shape == t.shape and o.dtype.kind == t.dtype.kind, (o.shape, t.shape)
        np.testing.assert_allclose(o, t, rtol=1e-5, atol=1e-6, equal_nan=True)


@pytest.mark.parametrize("name", ["diff", "kron", "tensordot", "cross", "xlogy", "addmm"])
def test_composed_names_have_torchs_gradients(name):
    torch = _torch()
    x = RNG.random((3, 3)) + 0.5
    y = RNG.random((3, 3)) + 0.5
    fns = {
        "diff": lambda m, a, b: m.diff(a * b, n=2, dim=0),
        "kron": lambda m, a, b: m.kron(a, b),
        "tensordot": lambda m, a, b: m.tensordot(a, b, dims=([1], [0])),
        "cross": lambda m, a, b: m.cross(a, b, dim=0),
        "xlogy": lambda m, a, b: m.xlogy(a, b),
        "addmm": lambda m, a, b: m.addmm(a, b, a, beta=0.5, alpha=2.0),
    }
    grads = []
    ours = lambda v, **k: Tensor(v, dtype=np.float64, **k)  # noqa: E731
    for m, make in ((tg, ours), (torch, torch.tensor)):
        a, b = make(x, requires_grad=True), make(y, requires_grad=True)
        (fns[name](m, a, b) ** 2).sum().backward()
        grads.append([a.grad.numpy(), b.grad.numpy()])
    for o, t in zip(*grads):
        np.testing.assert_allclose(o, t, rtol=1e-10, atol=1e-12)


def test_item_assignment_writes_like_torch():
    torch = _torch()

    def fill(m, x):
        x[0] = 1.0
        x[1, 2] = 5.5
        x[:, 3] += 2.0  # a read, an in-place add and the write back, as Python runs it
        x[x > 4] = -1.0
        x[2, [0, 2]] = m.tensor(np.array([7.0, 8.0], np.float32))
        x[..., 1] = m.tensor(np.array([9.0, 8.0, 7.0], np.float32))
        row = x[1]
        row[0] = 3.0  # a view of x: x sees it
        return x

    ours = fill(tg, tg.zeros(3, 4)).numpy()
    want = fill(torch, torch.zeros(3, 4)).numpy()
    np.testing.assert_array_equal(ours, want)
    # PyTorch's order for an int beside an index array
    t, o = torch.zeros(2, 3, 4), tg.zeros(2, 3, 4)
    t[1, :, [0, 2]] = 3.0
    o[1, :, [0, 2]] = 3.0
    np.testing.assert_array_equal(o.numpy(), t.numpy())
    ints = tg.arange(6)
    ints[ints % 2 == 0] = 1.9  # cast to the tensor's dtype, as torch
    np.testing.assert_array_equal(ints.numpy(), [1, 1, 1, 3, 1, 5])


def test_item_assignment_refuses_what_would_lose_a_gradient_or_not_fit():
    w = tg.zeros(3, requires_grad=True)
    with pytest.raises(OpError, match="setitem: a tensor that requires grad"):
        w[0] = 1.0
    with tg.no_grad():
        w[0] = 1.0  # as nn.init does
    assert float(w[0].item()) == 1.0
    x = tg.zeros(3, 4)
    with pytest.raises(OpError, match="setitem: the value written requires grad"):
        x[0] = tg.ones(4, requires_grad=True)
    with pytest.raises(OpIndexError, match="setitem: index 5 is out of bounds"):
        x[5] = 1.0
    with pytest.raises(OpError, match=r"setitem: cannot write a \(5,\)"):
        x[0] = tg.ones(5)
    small = tg.zeros(3, dtype=np.int32)
    with pytest.raises(OpError, match="do not fit this int32 tensor"):
        small[0] = 2**40  # numpy's cast would store 0
    small[1] = tg.tensor([3])  # a (1,) value into one element, as torch allows
    small[2] = np.int64(-5)
    np.testing.assert_array_equal(small.numpy(), [0, 3, -5])


def test_a_mask_filled_by_item_assignment_compiles():
    """While the compiler traces, a constant built from numbers may still be filled in
    (Swin's attention mask is built so); a traced tensor may not."""

    def f(x):
        mask = tg.zeros(4, 4)
        mask[:2, 2:] = 1.0
        return x * mask

    x = RNG.standard_normal((4, 4)).astype(np.float32)
    compiled = compiler.compile(f, x, backend="numpy")
    np.testing.assert_allclose(compiled(x), f(Tensor(x)).numpy())

    def g(x):
        x[0] = 1.0
        return x

    with pytest.raises(OpError, match="setitem: in-place ops cannot be compiled"):
        compiler.compile(g, x, backend="numpy")


def test_module_level_factories_and_grad_switch():
    a = np.arange(6, dtype=np.float32)
    t = tg.from_numpy(a)
    a[0] = 10.0  # shared, as torch.from_numpy
    assert float(t[0].item()) == 10.0
    assert tg.as_tensor(a) is not None and tg.is_tensor(t) and not tg.is_tensor(a)
    assert tg.is_floating_point(t) and not tg.is_floating_point(tg.arange(3))
    assert tg.get_default_dtype() == np.float32
    assert tg.rand_like(t).shape == (6,) and tg.randn_like(t).dtype == np.float32
    assert tg.empty_like(t).shape == (6,)
    r = tg.randint_like(tg.zeros(50, dtype=np.int64), 3, 7).numpy()
    assert r.dtype == np.int64 and r.min() >= 3 and r.max() < 7
    tg.manual_seed(1)
    p = tg.randperm(10).numpy()
    assert sorted(p.tolist()) == list(range(10)) and p.dtype == np.int64
    w = tg.ones(2, requires_grad=True)
    with tg.set_grad_enabled(False):
        assert not tg.is_grad_enabled() and not (w * 2).requires_grad
    assert tg.is_grad_enabled()
    tg.set_grad_enabled(False)  # as a call, for good
    try:
        assert not (w * 2).requires_grad
    finally:
        tg.set_grad_enabled(True)
    assert (w * 2).requires_grad


def test_nn_parameter_module_path_and_requires_grad():
    p = tg.nn.parameter.Parameter(tg.zeros(2, 3))
    assert p.requires_grad and p.shape == (2, 3)
    assert not tg.nn.Parameter(tg.ones(2), requires_grad=False).requires_grad


def test_factories_take_a_device_as_torch_code_passes_one():
    """torchvision's stochastic_depth calls `torch.empty(size, dtype=, device=x.device)`."""
    x = tg.ones(2)
    here = tg.device("cuda" if tg.cuda.is_available() else "cpu")
    assert tg.cuda.device_count() >= 0 and here in ("cpu", "cuda")
    made = [
        tg.empty([2, 1], dtype=tg.float32, device=x.device),
        tg.zeros(2, device="cpu"),
        tg.ones(2, device=tg.device("cpu")),
        tg.rand(2, device="cpu"),
        tg.randn(2, device="cpu"),
        tg.arange(3, device="cpu"),
        tg.full((2,), 3.0, device="cpu"),
        tg.linspace(0, 1, 3, device="cpu"),
        tg.randint(0, 5, (3,), device="cpu"),
        tg.tensor([1.0, 2.0], device="cpu"),
    ]
    assert all(t.device == "cpu" for t in made)
    np.testing.assert_array_equal(made[-1].numpy(), [1.0, 2.0])
    with pytest.raises(OpError, match="unknown device 'tpu'"):
        tg.zeros(2, device="tpu")


def test_review_findings_stay_fixed():
    """What a review of the names above found against torch."""
    # results that must not alias their input (a write into them would change it)
    for make in (lambda x: x.flip(0), lambda x: x.floor(), lambda x: x.round()):
        x = tg.arange(6)
        y = make(x)
        y[0] = 100
        assert int(x[0].item()) == 0
    b = tg.tensor([True, False])
    s = b.sign()
    s[0] = False
    assert bool(b[0].item())
    # beta=0 does not read the input (torch.empty-style buffers hold anything)
    a = tg.tensor([[1.0, 2.0], [3.0, 4.0]])
    out = tg.addmm(tg.full((2, 2), float("nan")), a, a, beta=0)
    np.testing.assert_array_equal(out.numpy(), a.numpy() @ a.numpy())
    assert tg.tensordot(tg.zeros(2, 0), tg.zeros(0, 3), dims=1).shape == (2, 3)
    assert tg.nansum(tg.arange(4)).dtype == np.int64
    assert tg.nanmean(tg.tensor([1.0, float("nan")], dtype=np.float16)).dtype == np.float16
    with pytest.raises(OpError, match="nanmean: expects a float tensor"):
        tg.nanmean(tg.arange(3))
    z = tg.tensor([0.0], requires_grad=True)
    tg.xlogy(z, tg.tensor([0.0])).sum().backward()
    assert float(z.grad.numpy()[0]) == 0.0  # torch's: no NaN from the unused log(0)
    got = tg.take_along_dim(tg.tensor([[1.0, 2.0, 3.0]]), tg.tensor([[-1, 0]]), dim=1)
    np.testing.assert_array_equal(got.numpy(), [[3.0, 1.0]])
    assert tg.eye(2, device="cpu").device == "cpu"
    assert tg.zeros_like(tg.ones(2), device="cpu").device == "cpu"


def test_set_grad_enabled_as_a_decorator_changes_nothing_until_called():
    @tg.set_grad_enabled(False)
    def recording() -> bool:
        return tg.is_grad_enabled()

    assert tg.is_grad_enabled()  # decorating is not a call
    assert not recording() and tg.is_grad_enabled()
    with tg.no_grad():
        assert not recording() and not tg.is_grad_enabled()  # restored to the caller's


def test_an_interrupted_caller_still_waits_for_the_workers():
    """Ctrl-C in the calling thread's own slice must not return while workers still write
    into the caller's arrays."""
    import threading
    import time

    from compiler.backends import llvm as backend

    workers = backend._Workers(2)
    finished = []

    def fn(args, start, end):
        if threading.current_thread() is threading.main_thread():
            time.sleep(0.01)
            raise KeyboardInterrupt
        time.sleep(0.05)
        finished.append(start)

    with pytest.raises(KeyboardInterrupt):
        workers.run(fn, None, [(i, i + 1) for i in range(4)], True)
    assert finished  # the worker's slices were done before run() gave up


def test_cross_broadcasts_diff_of_bools_xors_and_splits_check_like_torch():
    torch = _torch()
    a, b = RNG.random((3, 3)).astype(np.float32), RNG.random((1, 3)).astype(np.float32)
    np.testing.assert_allclose(
        tg.cross(tg.tensor(a), tg.tensor(b), dim=1).numpy(),
        torch.cross(torch.tensor(a), torch.tensor(b), dim=1).numpy(),
        rtol=1e-6,
    )
    bits = [True, False, False, True]
    np.testing.assert_array_equal(tg.diff(tg.tensor(bits)).numpy(), torch.diff(torch.tensor(bits)))
    assert [t.shape for t in tg.tensor_split(tg.arange(7), tg.tensor(3))] == [(3,), (2,), (2,)]
    with pytest.raises(OpError, match="hsplit: dim 1 of length 4 does not split into 3"):
        tg.hsplit(tg.zeros(2, 4), 3)
    with pytest.raises(OpError, match="vsplit: needs at least 2 dims"):
        tg.vsplit(tg.zeros(4), 2)
    with pytest.raises(OpError, match="take_along_dim: indices need as many dims"):
        tg.take_along_dim(tg.zeros(2, 3), tg.tensor([0]), dim=1)
