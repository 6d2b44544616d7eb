"""What a compiled program checks at each call, as the eager code it was traced from does:
class labels in range (tracing has shapes, not numbers, so the check runs on each call's
labels), and a model still being the one it was compiled from (its parameters, buffers and
mode). And losses stay finite where PyTorch's do: a masked-out logit of -inf (which is not
the target, or sits in an ignored row) must not turn the loss into NaN."""

from __future__ import annotations

import numpy as np
import pytest

import compiler
import tinygrad_edu.nn.functional as F  # noqa: N812 (PyTorch users write F)
from tinygrad_edu import Tensor, manual_seed, nn, optim
from tinygrad_edu.errors import OpError, OpIndexError


def small_model():
    manual_seed(0)
    return nn.Sequential(nn.Linear(3, 4), nn.ReLU(), nn.Dropout(0.5), nn.Linear(4, 2))


X = np.random.default_rng(0).standard_normal((4, 3)).astype(np.float32)
Y = np.array([0, 1, 1, 0])


@pytest.mark.parametrize("backend", ["numpy", "llvm"])
@pytest.mark.parametrize("bad", [[0, 5, 1, 0], [0, -1, 1, 0], [0, 1, 2, 0]])
def test_a_compiled_step_refuses_labels_out_of_range_and_leaves_the_weights(backend, bad):
    model = small_model()
    opt = optim.SGD(model.parameters(), lr=0.1)
    step = compiler.compile_train_step(
        model, lambda o, t: o.cross_entropy(t), opt, X, Y, backend=backend
    )
    step(X, Y)
    before = [p.numpy().copy() for p in model.parameters()]
    with pytest.raises(OpIndexError, match=r"cross_entropy: target values must be in \[0, 1\]"):
        step(X, np.array(bad))
    for p, q in zip(model.parameters(), before, strict=True):
        np.testing.assert_array_equal(p.numpy(), q)
    step(X, Tensor(np.array([1, 0, -100, 1])))  # ignore_index is not out of range


@pytest.mark.parametrize(
    "loss",
    [
        lambda a, t: F.cross_entropy(a, t, reduction="none"),
        lambda a, t: F.nll_loss(a.log_softmax(1), t),
        lambda a, t: F.one_hot(t, 2).sum() + a.sum(),
    ],
)
def test_compiled_functions_check_labels_like_eager(loss):
    x = X[:, :2]
    compiled = compiler.compile(loss, Tensor(x), Tensor(Y), backend="llvm")
    np.testing.assert_allclose(compiled(x, Y), loss(Tensor(x), Tensor(Y)).numpy(), rtol=1e-6)
    for bad in ([0, 5, 1, 0], [-3, 0, 0, 0]):
        with pytest.raises(OpError) as eager:
            loss(Tensor(x), Tensor(np.array(bad)))
        with pytest.raises(OpError) as compiled_error:
            compiled(x, np.array(bad))
        # the same message, naming the op (only the [at file:line] differs)
        assert str(compiled_error.value).split(" [at")[0] == str(eager.value).split(" [at")[0]


def test_a_replaced_parameter_is_read_by_a_compiled_model():
    model = small_model().eval()
    compiled = compiler.compile(model, X, backend="llvm")
    model[0].weight = Tensor(np.ones((4, 3), np.float32), requires_grad=True)
    np.testing.assert_allclose(compiled(X), model(Tensor(X)).numpy(), rtol=1e-6)
    model[0].weight = Tensor(np.ones((5, 3), np.float32), requires_grad=True)
    with pytest.raises(OpError, match="'0.weight' was replaced by a tensor of another shape"):
        compiled(X)


def test_a_mode_change_after_compiling_is_an_error_not_a_stale_result():
    model = small_model().eval()
    compiled = compiler.compile(model, X, backend="llvm")
    want = compiled(X)
    model.train()
    with pytest.raises(OpError, match="compiled in eval mode .* now in training mode"):
        compiled(X)
    model.eval()  # back as compiled: fine again
    np.testing.assert_array_equal(compiled(X), want)


def test_a_train_step_refuses_a_replaced_parameter_its_optimizer_does_not_hold():
    model = small_model()
    opt = optim.SGD(model.parameters(), lr=0.1)
    step = compiler.compile_train_step(
        model, lambda o, t: o.cross_entropy(t), opt, X, Y, backend="llvm"
    )
    step(X, Y)
    # eager steps and in-place loads in between are fine
    loss = model(Tensor(X)).cross_entropy(Tensor(Y))
    opt.zero_grad()
    loss.backward()
    opt.step()
    model.load_state_dict(model.state_dict())
    step(X, Y)
    model[3].bias = Tensor(np.zeros(2, np.float32), requires_grad=True)
    with pytest.raises(OpError, match="the optimizer does not hold"):
        step(X, Y)


def log_softmax_np(x):
    finite = np.where(np.isfinite(x), x, -np.inf)
    m = finite.max(axis=1, keepdims=True)
    return x - m - np.log(np.exp(x - m).sum(axis=1, keepdims=True))


@pytest.mark.parametrize("backend", [None, "numpy", "llvm"])
def test_minus_infinity_logits_that_are_not_counted_keep_the_loss_finite(backend):
    x = np.array([[0.0, -np.inf, 1.0], [1.0, 2.0, 0.0], [-np.inf, -np.inf, -np.inf]])
    y = np.array([0, 1, -100])  # row 2: all -inf, and ignored (padding)
    # reference: only the counted rows' target entries are read
    want = -(log_softmax_np(x[:1])[0, 0] + log_softmax_np(x[1:2])[0, 1]) / 2
    smooth = 0.1
    spread = [-log_softmax_np(x[i : i + 1]).sum() for i in (0, 1)]  # row 0: inf
    for kwargs, expected in (({}, want), ({"label_smoothing": smooth}, np.inf)):

        def loss(a, t, kwargs=kwargs):
            return F.cross_entropy(a, t, **kwargs)

        a, t = Tensor(x, dtype="float64"), Tensor(y)
        if backend is None:
            got = float(loss(a, t).numpy())
        else:
            got = float(compiler.compile(loss, a, t, backend=backend)(x, y))
        assert got == pytest.approx(expected, rel=1e-12), (kwargs, got)
    assert np.isinf(spread[0])
    # the gradient of the finite loss is finite in the counted rows
    a = Tensor(x, dtype="float64", requires_grad=True)
    F.cross_entropy(a, Tensor(y)).backward()
    assert np.isfinite(a.grad.numpy()[:2]).all()
    probs = np.exp(log_softmax_np(x[:2]))
    onehot = np.eye(3)[y[:2]]
    np.testing.assert_allclose(a.grad.numpy()[:2], (probs - onehot) / 2, rtol=1e-12, atol=1e-15)
