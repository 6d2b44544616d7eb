"""PyTorch's habits: tensor shape queries, nn containers, module traversal, buffers, state_dict
keys and errors, compared with torch where it is installed."""

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from tinygrad_edu import OpError, Tensor
from tinygrad_edu.testing import shapes


# -- tensor habits ---------------------------------------------------------------------------
@given(shapes(min_dims=1, max_dims=4), st.data())
def test_size_and_dim_follow_pytorch(shape, data):
    x = Tensor(np.zeros(shape))
    assert x.size() == shape and isinstance(x.size(), tuple)
    assert x.dim() == len(shape) and x.numel() == int(np.prod(shape))
    assert x.size == int(np.prod(shape))  # numpy's element count still works
    d = data.draw(st.integers(-len(shape), len(shape) - 1))
    assert x.size(d) == shape[d] == x.shape[d]
    assert x.size().numel() == x.numel()


def test_size_out_of_range_is_an_index_error_naming_the_dims():
    x = Tensor(np.zeros((2, 3)))
    with pytest.raises(IndexError, match=r"dim 2 is out of range for a 2-D tensor"):
        x.size(2)
    with pytest.raises(IndexError, match="0-d tensor has no dims"):
        Tensor(np.float32(1)).size(0)


def test_item_tolist_and_reshape_minus_one():
    x = Tensor(np.arange(6.0).reshape(2, 3))
    assert x.reshape(-1).shape == (6,) and x.view(3, -1).shape == (3, 2)
    assert x.tolist() == [[0.0, 1.0, 2.0], [3.0, 4.0, 5.0]]
    assert x.sum().item() == 15.0 and isinstance(x.sum().item(), float)
    with pytest.raises(ValueError, match="6 elements"):
        x.item()


def test_view_as_type_as_and_new_constructors():
    x = Tensor(np.arange(6.0).reshape(2, 3))
    double = Tensor(np.zeros((3, 2)), dtype=np.float64)
    assert x.view_as(double).shape == (3, 2) and x.reshape_as(double).shape == (3, 2)
    assert x.type_as(double).dtype == np.float64 and x.type_as(x) is x
    assert x[:1].expand_as(x).tolist() == [[0.0, 1.0, 2.0]] * 2
    z = double.new_zeros(2, 4)
    assert z.shape == (2, 4) and z.dtype == np.float64 and not z.numpy().any()
    assert x.new_ones((3,)).tolist() == [1.0] * 3 and x.new_ones(3).dtype == np.float32
    assert x.new_full((2,), 7.0).tolist() == [7.0, 7.0]
    assert x.new_tensor([1, 2]).dtype == np.float32
    assert x.new_zeros(2, dtype=np.int64, requires_grad=False).dtype == np.int64
    with pytest.raises(OpError, match="view_as: expects a Tensor"):
        x.view_as((3, 2))


def test_tensor_habits_match_torch():
    torch = pytest.importorskip("torch")
    a = np.random.default_rng(0).standard_normal((2, 3, 4)).astype(np.float32)
    x, t = Tensor(a), torch.tensor(a)
    assert tuple(x.size()) == tuple(t.size()) and x.size(-2) == t.size(-2)
    assert x.dim() == t.dim() and x.numel() == t.numel()
    assert x.new_zeros(2, 3).shape == tuple(t.new_zeros(2, 3).shape)
    np.testing.assert_array_equal(x.view(-1, 4).numpy(), t.view(-1, 4).numpy())


# -- tinygrad_edu.nn.functional ----------------------------------------------------------------
def test_functional_is_importable_under_pytorchs_path():
    import tinygrad_edu.nn.functional as F  # noqa: N812 (PyTorch's alias)
    from tinygrad_edu import functional

    assert F.relu is functional.relu and "cross_entropy" in F.__all__


def test_functional_forms_match_torch_functional():
    torch = pytest.importorskip("torch")
    import torch.nn.functional as TF  # noqa: N812

    import tinygrad_edu.nn.functional as F  # noqa: N812

    rng = np.random.default_rng(0)
    x = rng.standard_normal((2, 3, 6, 6)).astype(np.float32)
    w = rng.standard_normal((4, 3, 3, 3)).astype(np.float32)
    b = rng.standard_normal(4).astype(np.float32)
    logits = rng.standard_normal((5, 4)).astype(np.float32)
    labels = np.array([0, 3, 1, 1, 2])
    xt, xtorch = Tensor(x), torch.tensor(x)
    pairs = [
        (F.relu(xt), TF.relu(xtorch)),
        (F.sigmoid(xt), torch.sigmoid(xtorch)),
        (F.tanh(xt), torch.tanh(xtorch)),
        (F.softmax(xt, dim=1), TF.softmax(xtorch, dim=1)),
        (F.log_softmax(xt, dim=-1), TF.log_softmax(xtorch, dim=-1)),
        (
            F.conv2d(xt, Tensor(w), Tensor(b), padding=1, stride=2),
            TF.conv2d(xtorch, torch.tensor(w), torch.tensor(b), padding=1, stride=2),
        ),
        (F.max_pool2d(xt, 2), TF.max_pool2d(xtorch, 2)),
        (F.avg_pool2d(xt, 3, stride=2, padding=1), TF.avg_pool2d(xtorch, 3, stride=2, padding=1)),
        (F.adaptive_avg_pool2d(xt, (4, 5)), TF.adaptive_avg_pool2d(xtorch, (4, 5))),
        (F.dropout(xt, 0.5, training=False), TF.dropout(xtorch, 0.5, training=False)),
        (
            F.linear(Tensor(logits), Tensor(w.reshape(4, -1)[:, :4])),
            TF.linear(torch.tensor(logits), torch.tensor(w.reshape(4, -1)[:, :4])),
        ),
        (
            F.cross_entropy(Tensor(logits), Tensor(labels)),
            TF.cross_entropy(torch.tensor(logits), torch.tensor(labels)),
        ),
        (F.one_hot(Tensor(labels)), TF.one_hot(torch.tensor(labels))),
    ]
    for reduction in ("mean", "sum", "none"):
        pairs.append(
            (
                F.mse_loss(xt, Tensor(x[::-1].copy()), reduction=reduction),
                TF.mse_loss(xtorch, torch.tensor(x[::-1].copy()), reduction=reduction),
            )
        )
    for ours, theirs in pairs:
        assert ours.shape == tuple(theirs.shape) and ours.dtype == theirs.numpy().dtype
        np.testing.assert_allclose(ours.numpy(), theirs.numpy(), rtol=1e-5, atol=1e-6)


def test_functional_refuses_arguments_it_does_not_support():
    import tinygrad_edu.nn.functional as F  # noqa: N812

    x = Tensor(np.zeros((1, 1, 4, 4)))
    with pytest.raises(OpError, match="max_pool2d: ceil_mode=True is not supported"):
        F.max_pool2d(x, 2, ceil_mode=True)
    with pytest.raises(OpError, match="relu: input must be a Tensor"):
        F.relu(np.zeros(3))
