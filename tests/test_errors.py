"""Careless input gets a ValueError naming the op, the shapes and the fix, at the caller's line."""

import numpy as np
import pytest

from tinygrad_edu import OpError, OpIndexError, Tensor, cat, stack


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
        lambda: z(8, 8).conv2d(z(4, 3, 3, 3)),  # (a 3-D input is torch's unbatched form)
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


# Every dim-taking op, called with a dim out of range, and out-of-range indexing: PyTorch raises
# IndexError for all of them, so ours is an IndexError as well as an OpError (a ValueError).
OUT_OF_RANGE = {
    "sum": (lambda t: t.sum(2), r"sum: axis 2 is out of range"),
    "mean": (lambda t: t.mean(-3), r"mean: axis -3 is out of range"),
    "max": (lambda t: t.max(2), r"max: axis 2"),
    "min": (lambda t: t.min(5), r"min: axis 5"),
    "argmax": (lambda t: t.argmax(2), r"argmax: axis 2"),
    "var": (lambda t: t.var(2), r"var: axis 2"),
    "softmax": (lambda t: t.softmax(2), r"softmax: axis 2"),
    "log_softmax": (lambda t: t.log_softmax(2), r"log_softmax: axis 2"),
    "logsumexp": (lambda t: t.logsumexp(2), r"logsumexp: axis 2"),
    "squeeze": (lambda t: t.squeeze(2), r"squeeze: axis 2"),
    "unsqueeze": (lambda t: t.unsqueeze(3), r"unsqueeze: dim 3 is out of range for 3-D"),
    "transpose": (lambda t: t.transpose(0, 2), r"transpose: dim 2"),
    "permute": (lambda t: t.permute(0, 2), r"permute: dim 2"),
    "flatten": (lambda t: t.flatten(0, 2), r"flatten: dim 2"),
    "cat": (lambda t: cat([t, t], axis=2), r"cat: axis 2"),
    "stack": (lambda t: stack([t, t], axis=3), r"stack: dim 3"),
    "zero_d_sum": (lambda t: t.sum().sum(1), r"sum: axis 1 is out of range for a 0-d input"),
    "index": (lambda t: t[2], r"getitem: index 2 is out of bounds"),
    "index_array": (lambda t: t[np.array([0, 5])], r"getitem: index 5 is out of bounds"),
    "too_many_indices": (lambda t: t[0, 0, 0], r"getitem: too many indices"),
    "mask_shape": (lambda t: t[np.array([True, False, True])], r"getitem: .*boolean index"),
    "cross_entropy_target": (lambda t: t.cross_entropy(np.array([0, 3])), r"target values"),
}


@pytest.mark.parametrize("name", sorted(OUT_OF_RANGE))
def test_out_of_range_dims_and_indices_raise_index_error_like_pytorch(name):
    fn, pattern = OUT_OF_RANGE[name]
    with pytest.raises(IndexError, match=pattern) as info:
        fn(z(2, 3))
    assert isinstance(info.value, OpIndexError)
    assert isinstance(info.value, OpError) and isinstance(info.value, ValueError)
    assert "Fix:" in str(info.value) and "test_errors.py:" in str(info.value)


TORCH_OUT_OF_RANGE = {
    "sum": lambda torch, t: t.sum(2),
    "mean": lambda torch, t: t.mean(-3),
    "max": lambda torch, t: t.amax(2),
    "min": lambda torch, t: t.amin(5),
    "argmax": lambda torch, t: t.argmax(2),
    "var": lambda torch, t: t.var(2),
    "softmax": lambda torch, t: t.softmax(2),
    "log_softmax": lambda torch, t: t.log_softmax(2),
    "logsumexp": lambda torch, t: t.logsumexp(2),
    "squeeze": lambda torch, t: t.squeeze(2),
    "unsqueeze": lambda torch, t: t.unsqueeze(3),
    "transpose": lambda torch, t: t.transpose(0, 2),
    "permute": lambda torch, t: t.permute(0, 2),
    "flatten": lambda torch, t: t.flatten(0, 2),
    "cat": lambda torch, t: torch.cat([t, t], 2),
    "stack": lambda torch, t: torch.stack([t, t], 3),
    "zero_d_sum": lambda torch, t: t.sum().sum(1),
    "index": lambda torch, t: t[2],
    "index_array": lambda torch, t: t[torch.tensor([0, 5])],
    "too_many_indices": lambda torch, t: t[0, 0, 0],
    "mask_shape": lambda torch, t: t[torch.tensor([True, False, True])],
    "cross_entropy_target": lambda torch, t: torch.nn.functional.cross_entropy(
        t, torch.tensor([0, 3])
    ),
}


def test_pytorch_raises_index_error_for_the_same_cases():
    torch = pytest.importorskip("torch")
    assert TORCH_OUT_OF_RANGE.keys() == OUT_OF_RANGE.keys()
    for name, fn in TORCH_OUT_OF_RANGE.items():
        with pytest.raises(IndexError):
            fn(torch, torch.zeros(2, 3))
            pytest.fail(f"torch accepted {name}")


def test_iterating_a_tensor_yields_its_rows_and_a_0d_tensor_refuses():
    rows = list(Tensor(np.arange(6.0).reshape(3, 2)))
    assert [r.tolist() for r in rows] == [[0.0, 1.0], [2.0, 3.0], [4.0, 5.0]]
    with pytest.raises(TypeError, match="0-d"):
        iter(Tensor(1.0))


def _line_of(marker: str) -> int:
    """The line number in this file of the statement ending with `# <marker>`."""
    with open(__file__) as f:
        return next(i for i, line in enumerate(f, 1) if line.rstrip().endswith(f"# {marker}"))


def test_error_through_a_model_points_at_the_callers_line():
    from models import MLP

    model = MLP([4, 3, 2])
    with pytest.raises(OpError) as info:
        model(z(5, 7))  # mlp-call
    assert f"test_errors.py:{_line_of('mlp-call')}]" in str(info.value)
    assert "models" not in str(info.value).rsplit("[at", 1)[1]


def test_error_from_a_compiled_call_points_at_the_callers_line():
    import compiler
    from tinygrad_edu import nn

    fn = compiler.compile(nn.Linear(3, 2), z(4, 3), backend="numpy")
    with pytest.raises(OpError, match="compiled call") as info:
        fn(np.zeros((5, 3), dtype=np.float32))  # compiled-call
    location = str(info.value).rsplit("[at", 1)[1]
    assert f"test_errors.py:{_line_of('compiled-call')}]" in location
