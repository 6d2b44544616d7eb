"""Careless input gets a ValueError naming the op, the shapes and the fix, at the caller's line."""

import numpy as np
import pytest

from tinygrad_edu import OpError, Tensor, cat


def z(*shape):
    return Tensor(np.zeros(shape))


CASES = {
    "matmul": (lambda: z(2, 3) @ z(4, 3), r"matmul: inner dimensions differ.*\(2, 3\) @ \(4, 3\)"),
    "broadcast": (
        lambda: z(2, 3) + z(4, 3),
        r"add: shapes cannot be broadcast.*\(2, 3\) and \(4, 3\)",
    ),
    "conv_channels": (
        lambda: z(1, 3, 8, 8).conv2d(z(4, 2, 3, 3)),
        r"conv2d: input has 3 channels but weight expects 2",
    ),
    "conv_groups": (
        lambda: z(1, 4, 8, 8).conv2d(z(3, 2, 3, 3), groups=2),
        r"conv2d: channels must divide into groups=2",
    ),
    "conv_rank": (
        lambda: z(3, 8, 8).conv2d(z(4, 3, 3, 3)),
        r"conv2d: input must be \(N, C, H, W\)",
    ),
    "pool_window": (lambda: z(1, 1, 2, 2).max_pool2d(3), r"max_pool2d: window \(3, 3\) is larger"),
    "pool_padding": (lambda: z(1, 1, 8, 8).avg_pool2d(2, padding=2), r"avg_pool2d: padding"),
    "reshape": (lambda: z(2, 3).reshape(4, 2), r"reshape: cannot view 6 elements"),
    "cat": (lambda: cat([z(2, 3), z(2, 4)], axis=0), r"cat: all dimensions except axis 0"),
    "linear": (lambda: z(2, 3).linear(z(4, 5)), r"linear: input's last dim"),
    "labels": (lambda: z(2, 3).cross_entropy(np.array([0, 3])), r"cross_entropy: target values"),
    "axis": (lambda: z(2, 3).sum(axis=2), r"sum: axis 2 is out of range"),
    "bce_range": (
        lambda: (z(2) + 2).binary_cross_entropy(np.zeros(2)),
        r"binary_cross_entropy: input must be probabilities",
    ),
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_bad_input_raises_value_error_naming_op_shapes_fix_and_line(name):
    fn, pattern = CASES[name]
    with pytest.raises(ValueError, match=pattern) as info:
        fn()
    assert isinstance(info.value, OpError)
    message = str(info.value)
    assert "Fix:" in message
    assert "test_errors.py:" in message  # the user's line, not a line inside the library


def test_backward_on_non_scalar_without_gradient_says_what_to_do():
    x = Tensor(np.ones((2, 2)), requires_grad=True)
    with pytest.raises(RuntimeError, match="reduce to a scalar"):
        (x * 2).backward()


def test_integer_tensor_cannot_require_grad():
    with pytest.raises(TypeError, match="only floating-point"):
        Tensor(np.arange(3), requires_grad=True)
