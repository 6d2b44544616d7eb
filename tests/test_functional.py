"""`tinygrad_edu.functional` (PyTorch's `torch.nn.functional` names): every function has
PyTorch's parameter names in PyTorch's order, and the layers and normalisations give
PyTorch's numbers (activations and losses are checked in test_tensor_ops.py and
test_losses.py)."""

import inspect

import numpy as np
import pytest

import tinygrad_edu.functional as F  # noqa: N812 (PyTorch users write F)
from tinygrad_edu import OpError, Tensor


def _torch():
    return pytest.importorskip("torch")


def _ours():
    return {
        name: fn
        for name, fn in vars(F).items()
        if inspect.isfunction(fn) and not name.startswith("_") and fn.__module__ == F.__name__
    }


def test_every_function_has_pytorchs_parameter_names_in_order():
    torch = _torch()
    checked = 0
    for name, fn in _ours().items():
        theirs = getattr(torch.nn.functional, name, None) or getattr(torch, name, None)
        if theirs is None:
            continue
        try:
            params = inspect.signature(theirs).parameters
        except (TypeError, ValueError):  # a C builtin without a Python signature
            continue
        if any(p.kind is p.VAR_POSITIONAL for p in params.values()):
            continue  # a boolean dispatcher (max_pool2d): (*args, **kwargs)
        want = list(params)
        assert list(inspect.signature(fn).parameters) == want, name
        checked += 1
    assert checked >= 25


def _t64(x):
    return Tensor(x, dtype=np.float64)


def test_layers_match_pytorch():
    torch = _torch()
    tf = torch.nn.functional
    rng = np.random.default_rng(0)
    x = rng.standard_normal((2, 3, 8, 8))
    w = rng.standard_normal((4, 3, 3, 3))
    b = rng.standard_normal(4)
    tx, tw, tb = torch.tensor(x), torch.tensor(w), torch.tensor(b)
    pairs = [
        (F.conv2d(_t64(x), _t64(w), _t64(b), 2, 1), tf.conv2d(tx, tw, tb, 2, 1)),
        (F.max_pool2d(_t64(x), 3, 2, 1), tf.max_pool2d(tx, 3, 2, 1)),
        (F.avg_pool2d(_t64(x), 2), tf.avg_pool2d(tx, 2)),
        (F.adaptive_avg_pool2d(_t64(x), (3, 5)), tf.adaptive_avg_pool2d(tx, (3, 5))),
        (F.linear(_t64(x[..., :3]), _t64(w[:, 0, 0])), tf.linear(tx[..., :3], tw[:, 0, 0])),
        (F.softmax(_t64(x), dim=1), tf.softmax(tx, dim=1)),
        (F.log_softmax(_t64(x), 2), tf.log_softmax(tx, 2)),
        (F.glu(_t64(x), 2), tf.glu(tx, 2)),
        (F.dropout(_t64(x), 0.5, training=False), tf.dropout(tx, 0.5, training=False)),
        (F.relu(_t64(x)), tf.relu(tx)),
        (F.leaky_relu(_t64(x), 0.2), tf.leaky_relu(tx, 0.2)),
        (F.clamp(_t64(x), -0.5, 0.5), torch.clamp(tx, -0.5, 0.5)),
    ]
    for ours, theirs in pairs:
        np.testing.assert_allclose(ours.numpy(), theirs.numpy(), rtol=1e-10, atol=1e-12)
    labels = Tensor(np.array([0, 3, 1]))
    got = F.one_hot(labels)
    assert got.dtype == np.int64
    np.testing.assert_array_equal(got.numpy(), tf.one_hot(torch.tensor([0, 3, 1])).numpy())
    assert F.one_hot(labels, 6).shape == (3, 6)


def test_batch_norm_matches_pytorch_and_updates_the_running_statistics():
    torch = _torch()
    rng = np.random.default_rng(1)
    x = rng.standard_normal((4, 3, 2, 2))
    w, b = rng.standard_normal(3), rng.standard_normal(3)
    mean, var = _t64(np.zeros(3)), _t64(np.ones(3))
    tmean, tvar = torch.zeros(3, dtype=torch.float64), torch.ones(3, dtype=torch.float64)
    for training in (True, True, False):
        got = F.batch_norm(_t64(x), mean, var, _t64(w), _t64(b), training, 0.2)
        want = torch.nn.functional.batch_norm(
            torch.tensor(x), tmean, tvar, torch.tensor(w), torch.tensor(b), training, 0.2
        )
        np.testing.assert_allclose(got.numpy(), want.numpy(), rtol=1e-12, atol=1e-12)
        np.testing.assert_allclose(mean.numpy(), tmean.numpy(), rtol=1e-12, atol=1e-15)
        np.testing.assert_allclose(var.numpy(), tvar.numpy(), rtol=1e-12)


def test_functional_refuses_non_tensors_and_odd_glu_dims():
    with pytest.raises(TypeError, match="relu: input must be a Tensor"):
        F.relu(np.zeros(3))
    with pytest.raises(OpError, match="glu: dim 0 has odd length 3"):
        F.glu(Tensor(np.zeros(3)), 0)
    with pytest.raises(OpError, match="batch_norm: evaluation needs running_mean"):
        F.batch_norm(Tensor(np.zeros((2, 3))), None, None)
