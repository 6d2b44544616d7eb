"""Losses with PyTorch's semantics: nll_loss and cross_entropy (weights, ignore_index, the
three reductions, label_smoothing, class-probability targets, (C,), (N, C) and (N, C, H, W)
inputs), the elementwise losses, and their nn modules. Values and gradients equal PyTorch's
in float64 (where installed), gradients pass gradcheck (float64, eps 1e-6, atol 1e-5,
rtol 1e-3), bad input raises an error naming the op, the value and the fix, and a compiled
(llvm) training step with these losses equals the eager one."""

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import compiler
import tinygrad_edu.functional as F  # noqa: N812 (PyTorch users write F)
from tinygrad_edu import OpError, OpIndexError, Tensor, gradcheck, nn, optim


def _torch():
    return pytest.importorskip("torch")


def _t64(x, grad=False):
    return Tensor(x, dtype=np.float64, requires_grad=grad)


# (input shape, target shape): one sample, a batch, a batch of images
LAYOUTS = [((5,), ()), ((6, 4), (6,)), ((3, 4, 2, 3), (3, 2, 3))]


@st.composite
def class_cases(draw):
    """Logits, integer targets (some ignored), weights and options for one loss call."""
    shape, tshape = draw(st.sampled_from(LAYOUTS))
    seed = draw(st.integers(0, 2**16))
    rng = np.random.default_rng(seed)
    classes = shape[0] if len(shape) == 1 else shape[1]
    x = rng.standard_normal(shape) * 3
    ignore_index = draw(st.sampled_from([-100, 1]))
    target = rng.integers(0, classes, tshape)
    if target.ndim and draw(st.booleans()):
        target.flat[0] = ignore_index  # at least one ignored entry, the rest maybe too
    weight = rng.uniform(0.2, 3.0, classes) if draw(st.booleans()) else None
    reduction = draw(st.sampled_from(["mean", "sum", "none"]))
    smoothing = draw(st.sampled_from([0.0, 0.1, 0.45]))
    return x, np.asarray(target), weight, ignore_index, reduction, smoothing


def _ours_and_torchs(torch, fn_ours, fn_torch, x, *rest):
    ours_x = _t64(x, grad=True)
    out = fn_ours(ours_x)
    theirs_x = torch.tensor(x, requires_grad=True)
    want = fn_torch(theirs_x)
    assert out.shape == tuple(want.shape)
    if np.isnan(want.detach().numpy()).any():  # all ignored: NaN in both, no gradient check
        np.testing.assert_array_equal(np.isnan(out.numpy()), np.isnan(want.detach().numpy()))
        return
    np.testing.assert_allclose(out.numpy(), want.detach().numpy(), rtol=1e-12, atol=1e-13)
    (out * out).sum().backward()
    (want * want).sum().backward()
    np.testing.assert_allclose(ours_x.grad.numpy(), theirs_x.grad.numpy(), rtol=1e-10, atol=1e-13)


@given(case=class_cases())
def test_cross_entropy_with_class_indices_matches_pytorch(case):
    torch = _torch()
    x, target, weight, ignore_index, reduction, smoothing = case
    kw = dict(ignore_index=ignore_index, reduction=reduction, label_smoothing=smoothing)
    w = None if weight is None else _t64(weight)
    tw = None if weight is None else torch.tensor(weight)
    _ours_and_torchs(
        torch,
        lambda t: F.cross_entropy(t, Tensor(target), weight=w, **kw),
        lambda t: torch.nn.functional.cross_entropy(t, torch.tensor(target), weight=tw, **kw),
        x,
    )


@given(case=class_cases())
def test_nll_loss_matches_pytorch(case):
    torch = _torch()
    x, target, weight, ignore_index, reduction, _ = case
    kw = dict(ignore_index=ignore_index, reduction=reduction)
    w = None if weight is None else _t64(weight)
    tw = None if weight is None else torch.tensor(weight)
    dim = 0 if x.ndim == 1 else 1
    _ours_and_torchs(
        torch,
        lambda t: F.nll_loss(t.log_softmax(dim), target, weight=w, **kw),
        lambda t: torch.nn.functional.nll_loss(
            t.log_softmax(dim), torch.tensor(target), weight=tw, **kw
        ),
        x,
    )


@given(
    layout=st.sampled_from(LAYOUTS),
    seed=st.integers(0, 2**16),
    weighted=st.booleans(),
    reduction=st.sampled_from(["mean", "sum", "none"]),
    smoothing=st.sampled_from([0.0, 0.2]),
)
def test_cross_entropy_with_class_probabilities_matches_pytorch(
    layout, seed, weighted, reduction, smoothing
):
    torch = _torch()
    shape, _ = layout
    rng = np.random.default_rng(seed)
    x = rng.standard_normal(shape) * 2
    dim = 0 if x.ndim == 1 else 1
    probs = np.moveaxis(rng.dirichlet(np.ones(shape[dim]), shape[:dim] + shape[dim + 1 :]), -1, dim)
    weight = rng.uniform(0.2, 3.0, shape[dim]) if weighted else None
    kw = dict(reduction=reduction, label_smoothing=smoothing)
    w = None if weight is None else _t64(weight)
    tw = None if weight is None else torch.tensor(weight)
    _ours_and_torchs(
        torch,
        lambda t: F.cross_entropy(t, _t64(probs), weight=w, **kw),
        lambda t: torch.nn.functional.cross_entropy(t, torch.tensor(probs), weight=tw, **kw),
        x,
    )


@given(case=class_cases())
def test_cross_entropy_grad_matches_finite_differences(case):
    x, target, weight, ignore_index, reduction, smoothing = case
    if (target == ignore_index).all() and reduction == "mean":
        target = np.zeros_like(target)  # an all-ignored mean is NaN, not differentiable
    w = None if weight is None else _t64(weight)

    def loss(t):
        return t.cross_entropy(target, w, ignore_index, reduction, smoothing)

    assert gradcheck(loss, [x])


def test_weighted_mean_divides_by_the_weights_of_the_counted_targets():
    logp = np.log(np.array([[0.5, 0.25, 0.25], [0.1, 0.8, 0.1], [0.2, 0.2, 0.6]]))
    w = np.array([1.0, 2.0, 4.0])
    target = np.array([0, 1, -100])
    got = F.nll_loss(_t64(logp), target, weight=_t64(w)).item()
    want = (-np.log(0.5) * 1.0 - np.log(0.8) * 2.0) / (1.0 + 2.0)
    assert got == pytest.approx(want, rel=1e-14)
    assert F.nll_loss(_t64(logp), target, reduction="sum").item() == pytest.approx(
        -np.log(0.5) - np.log(0.8), rel=1e-14
    )
    np.testing.assert_allclose(
        F.nll_loss(_t64(logp), target, reduction="none").numpy(),
        [-np.log(0.5), -np.log(0.8), 0.0],
        rtol=1e-14,
    )


def test_all_targets_ignored_gives_nan_for_the_mean_and_zero_for_the_sum():
    x = Tensor(np.zeros((2, 3)))
    assert np.isnan(x.cross_entropy(np.array([-100, -100])).item())
    assert x.cross_entropy(np.array([-100, -100]), reduction="sum").item() == 0.0


def test_existing_cross_entropy_calls_keep_their_values():
    x = np.random.default_rng(0).standard_normal((4, 3))
    y = np.array([0, 2, 1, 2])
    logp = x - np.log(np.exp(x).sum(1, keepdims=True))
    want = -logp[np.arange(4), y].mean()
    assert _t64(x).cross_entropy(y).item() == pytest.approx(want, rel=1e-14)
    assert _t64(x).cross_entropy(Tensor(y)).item() == pytest.approx(want, rel=1e-14)


# -- errors ------------------------------------------------------------------------------------
def test_out_of_range_target_names_the_op_the_value_and_the_fix():
    x = Tensor(np.zeros((3, 4)))
    with pytest.raises(OpIndexError, match=r"nll_loss: target values must be in \[0, 3\].*got 7"):
        F.nll_loss(x, np.array([0, 7, 1]))
    with pytest.raises(IndexError, match=r"cross_entropy: target values.*got -1.*Fix: check"):
        F.cross_entropy(x, np.array([0, -1, 1]))
    # the ignored value itself is fine even though it is out of range
    assert np.isfinite(F.cross_entropy(x, np.array([0, -100, 1])).item())
    assert np.isfinite(F.cross_entropy(x, np.array([0, 9, 1]), ignore_index=9).item())


def test_bad_loss_arguments_say_how_to_fix_them():
    x = Tensor(np.zeros((3, 4)))
    y = np.array([0, 1, 2])
    cases = [
        (lambda: F.cross_entropy(x, y, reduction="avg"), r"reduction must be 'mean', 'sum'"),
        (lambda: F.cross_entropy(x, y, weight=Tensor(np.ones(3))), r"weight must have one entry"),
        (lambda: F.cross_entropy(x, np.array([0, 1])), r"target must be \(3,\)"),
        (lambda: F.cross_entropy(x, y, label_smoothing=1.5), r"label_smoothing must be in"),
        (lambda: F.cross_entropy(x, np.zeros((3, 3))), r"probability targets must have"),
        (lambda: F.nll_loss(Tensor(np.zeros(())), np.array(0)), r"nll_loss: input must have"),
        (lambda: F.mse_loss(x, np.zeros(3)), r"mse_loss: input and target shapes differ"),
        (lambda: F.smooth_l1_loss(x, x, beta=-1.0), r"smooth_l1_loss: beta must be >= 0"),
        (lambda: F.huber_loss(x, x, delta=0.0), r"huber_loss: delta must be > 0"),
        (lambda: nn.MSELoss(reduction="avg"), r"MSELoss: reduction must be"),
    ]
    for fn, pattern in cases:
        with pytest.raises(OpError, match=pattern) as info:
            fn()
        assert "Fix:" in str(info.value)
    with pytest.raises(OpError, match=r"nll_loss: targets must be integer class indices"):
        F.nll_loss(x, np.array([0.0, 1.0, 2.0]))


# -- elementwise losses ----------------------------------------------------------------------
ELEMENTWISE = {
    "mse_loss": (F.mse_loss, "mse_loss", {}),
    "l1_loss": (F.l1_loss, "l1_loss", {}),
    "smooth_l1_loss": (F.smooth_l1_loss, "smooth_l1_loss", {"beta": 0.5}),
    "smooth_l1_loss_beta0": (F.smooth_l1_loss, "smooth_l1_loss", {"beta": 0.0}),
    "huber_loss": (F.huber_loss, "huber_loss", {"delta": 0.7}),
}


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
@pytest.mark.parametrize(
    "name, weighted",
    [(n, False) for n in sorted(ELEMENTWISE)]
    + [(n, True) for n in sorted(ELEMENTWISE) if not n.startswith("smooth")],  # no weight arg
)
def test_elementwise_losses_match_pytorch(name, reduction, weighted):
    torch = _torch()
    ours, theirs, kw = ELEMENTWISE[name]
    rng = np.random.default_rng(0)
    x, y = rng.standard_normal((4, 5)), rng.standard_normal((4, 5))
    if weighted:
        w = rng.uniform(0.0, 2.0, (4, 5))
        ours_kw = {**kw, "weight": _t64(w)}
        theirs_kw = {**kw, "weight": torch.tensor(w)}
    else:
        ours_kw = theirs_kw = kw
    _ours_and_torchs(
        torch,
        lambda t: ours(t, _t64(y), reduction=reduction, **ours_kw),
        lambda t: getattr(torch.nn.functional, theirs)(
            t, torch.tensor(y), reduction=reduction, **theirs_kw
        ),
        x,
    )
    assert gradcheck(lambda t: ours(t, _t64(y + 0.013), reduction=reduction, **ours_kw), [x])


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_binary_cross_entropies_with_weights_match_pytorch(reduction):
    torch = _torch()
    tf = torch.nn.functional
    rng = np.random.default_rng(1)
    x, y = rng.standard_normal((4, 3)) * 3, rng.uniform(0, 1, (4, 3))
    w, pw = rng.uniform(0.5, 2, (1, 3)), rng.uniform(0.5, 2, 3)
    _ours_and_torchs(
        torch,
        lambda t: F.binary_cross_entropy_with_logits(
            t, _t64(y), weight=_t64(w), reduction=reduction, pos_weight=_t64(pw)
        ),
        lambda t: tf.binary_cross_entropy_with_logits(
            t,
            torch.tensor(y),
            weight=torch.tensor(w),
            reduction=reduction,
            pos_weight=torch.tensor(pw),
        ),
        x,
    )
    _ours_and_torchs(
        torch,
        lambda t: F.binary_cross_entropy(t.sigmoid(), _t64(y), _t64(w), reduction=reduction),
        lambda t: tf.binary_cross_entropy(
            t.sigmoid(), torch.tensor(y), torch.tensor(w), reduction=reduction
        ),
        x,
    )
    assert gradcheck(
        lambda t: t.binary_cross_entropy_with_logits(y, reduction=reduction, pos_weight=pw), [x]
    )


# -- modules -----------------------------------------------------------------------------------
def test_loss_modules_match_pytorch_modules():
    torch = _torch()
    rng = np.random.default_rng(2)
    x = rng.standard_normal((5, 4))
    y = np.array([0, 3, -100, 1, 3])
    w = rng.uniform(0.5, 2, 4)
    z = rng.standard_normal((5, 4))
    p = rng.uniform(0, 1, (5, 4))
    pairs = [
        (nn.CrossEntropyLoss(), torch.nn.CrossEntropyLoss(), y),
        (
            nn.CrossEntropyLoss(weight=w, label_smoothing=0.1, ignore_index=3),
            torch.nn.CrossEntropyLoss(torch.tensor(w), ignore_index=3, label_smoothing=0.1),
            np.where(y == -100, 2, y),
        ),
        (
            nn.CrossEntropyLoss(reduction="none"),
            torch.nn.CrossEntropyLoss(reduction="none"),
            y,
        ),
        (
            nn.NLLLoss(weight=w, reduction="sum"),
            torch.nn.NLLLoss(torch.tensor(w), reduction="sum"),
            y,
        ),
        (nn.MSELoss(), torch.nn.MSELoss(), z),
        (nn.L1Loss(reduction="sum"), torch.nn.L1Loss(reduction="sum"), z),
        (nn.SmoothL1Loss(beta=0.3), torch.nn.SmoothL1Loss(beta=0.3), z),
        (nn.HuberLoss(delta=0.3), torch.nn.HuberLoss(delta=0.3), z),
        (
            nn.BCEWithLogitsLoss(pos_weight=w),
            torch.nn.BCEWithLogitsLoss(pos_weight=torch.tensor(w)),
            p,
        ),
        (nn.MSELoss(size_average=False), torch.nn.MSELoss(reduction="sum"), z),
        (nn.L1Loss(reduce=False), torch.nn.L1Loss(reduction="none"), z),
    ]
    for ours, theirs, target in pairs:
        for param in ("weight", "pos_weight"):  # modules hold float32 buffers, as PyTorch
            if getattr(ours, param, None) is not None:
                setattr(ours, param, _t64(getattr(ours, param).numpy().astype(np.float64)))
                setattr(theirs, param, getattr(theirs, param).float().double())
        tt = torch.tensor(target)
        got = ours(_t64(x), Tensor(target) if target.dtype.kind == "i" else _t64(target))
        np.testing.assert_allclose(got.numpy(), theirs(torch.tensor(x), tt).numpy(), rtol=1e-6)
    bce = nn.BCELoss(weight=w)(_t64(p), _t64(p > 0.5)).item()
    want = torch.nn.BCELoss(torch.tensor(w))(torch.tensor(p), torch.tensor(p > 0.5).double())
    assert bce == pytest.approx(want.item(), rel=1e-6)
    assert nn.CrossEntropyLoss(weight=w).state_dict()["weight"].shape == (4,)
    assert nn.CrossEntropyLoss().state_dict() == {}


# -- compiled ----------------------------------------------------------------------------------
def _train_once(model, loss_fn, x, y, compiled):
    opt = optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    if compiled:
        step = compiler.compile_train_step(model, loss_fn, opt, x, y, backend="llvm")
        return step(x, y), [p.numpy().copy() for p in model.parameters()]
    loss = loss_fn(model(Tensor(x)), Tensor(y))
    loss.backward()
    opt.step()
    return loss.item(), [p.numpy().copy() for p in model.parameters()]


@pytest.mark.parametrize(
    "loss_fn, y",
    [
        (nn.CrossEntropyLoss([1.0, 2.0, 0.5], label_smoothing=0.1), [0, 1, 2, -100, 1, 2]),
        (nn.CrossEntropyLoss(ignore_index=1, reduction="sum"), [0, 1, 2, 0, 1, 2]),
        (lambda o, t: F.nll_loss(o.log_softmax(1), t), [0, 1, 2, -100, -100, 2]),
    ],
    ids=["weighted-smoothed", "ignore-sum", "nll"],
)
def test_compiled_train_step_with_the_new_losses_equals_eager(loss_fn, y):
    rng = np.random.default_rng(3)
    x = rng.standard_normal((6, 8)).astype(np.float32)
    y = np.array(y)
    results = []
    for compiled in (False, True):
        manual = np.random.default_rng(4)
        model = nn.Sequential(nn.Linear(8, 5), nn.GELU(), nn.Linear(5, 3))
        for p in model.parameters():
            p.data[...] = manual.uniform(-0.5, 0.5, p.shape)
        results.append(_train_once(model, loss_fn, x, y, compiled))
    (eager_loss, eager_params), (compiled_loss, compiled_params) = results
    assert compiled_loss == pytest.approx(eager_loss, rel=1e-5)
    for a, b in zip(compiled_params, eager_params):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
