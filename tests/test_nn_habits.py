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
