"""The image-network ops (`tinygrad_edu.image`, `tinygrad_edu.functional`'s image section):
pooling with ceil_mode / count_include_pad / divisor_override / return_indices.

Each op: gradcheck in float64 (eps 1e-6, atol 1e-5, rtol 1e-3) over hypothesis-drawn shapes
and parameters; values and gradients equal PyTorch's where it is installed (float64, 1e-9);
compiled with the LLVM backend equal to eager (float32: rtol 1e-5, atol 1e-5, the usual
float32 reassociation slack); the CUDA backend's source compiles with `nvcc --ptx`.
"""

import shutil
import subprocess

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import compiler
import tinygrad_edu.functional as F  # noqa: N812 (PyTorch users write F)
from tinygrad_edu import OpError, Tensor, gradcheck, nn, optim
from tinygrad_edu.image import pool_out_size
from tinygrad_edu.testing import arrays, distinct_arrays

try:
    import torch
except ImportError:  # the torch comparisons skip; everything else runs
    torch = None

needs_torch = pytest.mark.skipif(torch is None, reason="torch is not installed")
needs_nvcc = pytest.mark.skipif(shutil.which("nvcc") is None, reason="nvcc is not on PATH")


def run_both(ours, theirs, *inputs, grad=True):
    """Values (and gradients for a random cotangent) of ours and torch's, float64."""
    ts = [Tensor(x, dtype=np.float64, requires_grad=grad) for x in inputs]
    qs = [torch.tensor(x, dtype=torch.float64, requires_grad=grad) for x in inputs]
    out_t, out_q = ours(*ts), theirs(*qs)
    np.testing.assert_allclose(out_t.numpy(), out_q.detach().numpy(), rtol=1e-9, atol=1e-10)
    if not grad:
        return
    seed = np.random.default_rng(0).standard_normal(out_t.shape)
    out_t.backward(Tensor(seed, dtype=np.float64))
    out_q.backward(torch.tensor(seed))
    for t, q in zip(ts, qs):
        np.testing.assert_allclose(t.grad.numpy(), q.grad.numpy(), rtol=1e-9, atol=1e-10)


def assert_compiled_matches_eager(module, *xs):
    """float32: the LLVM kernels may reassociate sums, hence 1e-5 rather than exact."""
    eager = module(*(Tensor(x) for x in xs))
    compiled = compiler.compile(module, *xs, backend="llvm")
    np.testing.assert_allclose(compiled(*xs), eager.numpy(), rtol=1e-5, atol=1e-5)


def nvcc_ptx(source, tmp_path, name):
    cu = tmp_path / f"{name}.cu"
    cu.write_text(source)
    result = subprocess.run(
        ["nvcc", "--ptx", "-arch=sm_90", "-o", str(tmp_path / f"{name}.ptx"), str(cu)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-4000:]


class Fn(nn.Module):
    """A parameter-free module around a function, so the compiler can trace it."""

    def __init__(self, fn):
        super().__init__()
        self.fn = fn

    def forward(self, *xs):
        return self.fn(*xs)


# ---------------------------------------------------------------------------------------------
# pooling
# ---------------------------------------------------------------------------------------------
@st.composite
def ceil_pool_cases(draw, dilation=True):
    """(x_shape, kernel, stride, padding, dilation) with padding <= kernel // 2 and a window
    that fits the padded input; small, odd sizes so ceil_mode often adds a window."""
    kernel = (draw(st.integers(1, 3)), draw(st.integers(1, 3)))
    stride = (draw(st.integers(1, 3)), draw(st.integers(1, 3)))
    padding = (draw(st.integers(0, kernel[0] // 2)), draw(st.integers(0, kernel[1] // 2)))
    dil = (draw(st.integers(1, 2)), draw(st.integers(1, 2))) if dilation else (1, 1)
    hw = []
    for i in range(2):
        reach = dil[i] * (kernel[i] - 1) + 1
        low = max(1, reach - 2 * padding[i], padding[i] * dil[i] + 1)
        hw.append(draw(st.integers(low, low + 2 * stride[i] + 1)))
    x_shape = (draw(st.integers(1, 2)), draw(st.integers(1, 2)), *hw)
    return x_shape, kernel, stride, padding, dil


def test_ceil_mode_output_size_follows_pytorchs_rule():
    # 6 wide, kernel 2, stride 2, padding 1: ceil would give 5 windows but the 5th would start
    # at 7 >= 6 + 1 (in the right padding), so PyTorch keeps 4
    assert pool_out_size(6, 2, 2, 1, 1, True) == 4
    assert pool_out_size(6, 2, 2, 1, 1, False) == 4
    assert pool_out_size(5, 2, 2, 0, 1, True) == 3  # the last window covers column 4 alone
    assert pool_out_size(5, 2, 2, 0, 1, False) == 2
    assert pool_out_size(54, 3, 2, 0, 1, True) == 27  # SqueezeNet's first pool on 111 -> 55


def test_ceil_mode_max_pool_by_hand():
    x = Tensor(np.arange(25.0).reshape(1, 1, 5, 5))
    out = x.max_pool2d(2, ceil_mode=True)
    np.testing.assert_array_equal(out.numpy()[0, 0], [[6, 8, 9], [16, 18, 19], [21, 23, 24]])
    avg = x.avg_pool2d(2, ceil_mode=True).numpy()[0, 0]
    assert avg[0, 2] == (4 + 9) / 2 and avg[2, 2] == 24.0  # clipped windows divide by their size
    # ceil_mode lets a window larger than the input start at 0, as PyTorch allows
    small = Tensor(np.arange(16.0).reshape(1, 1, 4, 4))
    assert small.max_pool2d(5, ceil_mode=True).numpy().item() == 15.0
    assert small.avg_pool2d(5, ceil_mode=True).numpy().item() == pytest.approx(7.5, rel=1e-6)


@given(case=ceil_pool_cases(), ceil=st.booleans(), data=st.data())
def test_max_pool2d_ceil_mode_grad_matches_finite_differences(case, ceil, data):
    x_shape, k, s, p, d = case
    x = data.draw(distinct_arrays(x_shape))
    assert gradcheck(lambda t: F.max_pool2d(t, k, s, p, d, ceil_mode=ceil), [x])


@given(
    case=ceil_pool_cases(dilation=False),
    ceil=st.booleans(),
    include_pad=st.booleans(),
    divisor=st.sampled_from([None, 2, 5]),
    data=st.data(),
)
def test_avg_pool2d_options_grad_matches_finite_differences(case, ceil, include_pad, divisor, data):
    x_shape, k, s, p, _ = case
    x = data.draw(arrays(x_shape))
    assert gradcheck(lambda t: F.avg_pool2d(t, k, s, p, ceil, include_pad, divisor), [x])


@needs_torch
@given(case=ceil_pool_cases(), ceil=st.booleans(), data=st.data())
def test_max_pool2d_ceil_mode_and_indices_match_torch(case, ceil, data):
    x_shape, k, s, p, d = case
    x = data.draw(distinct_arrays(x_shape))
    run_both(
        lambda t: F.max_pool2d(t, k, s, p, d, ceil_mode=ceil),
        lambda t: torch.nn.functional.max_pool2d(t, k, s, p, d, ceil_mode=ceil),
        x,
    )
    values, idx = F.max_pool2d(Tensor(x), k, s, p, d, ceil_mode=ceil, return_indices=True)
    want = torch.nn.functional.max_pool2d(
        torch.tensor(x), k, s, p, d, ceil_mode=ceil, return_indices=True
    )
    assert idx.dtype == np.int64
    np.testing.assert_array_equal(idx.numpy(), want[1].numpy())
    np.testing.assert_allclose(values.numpy(), want[0].numpy(), rtol=1e-6)


@needs_torch
@given(
    case=ceil_pool_cases(dilation=False),
    ceil=st.booleans(),
    include_pad=st.booleans(),
    divisor=st.sampled_from([None, 3]),
    data=st.data(),
)
def test_avg_pool2d_options_match_torch(case, ceil, include_pad, divisor, data):
    x_shape, k, s, p, _ = case
    x = data.draw(arrays(x_shape))
    run_both(
        lambda t: F.avg_pool2d(t, k, s, p, ceil, include_pad, divisor),
        lambda t: torch.nn.functional.avg_pool2d(t, k, s, p, ceil, include_pad, divisor),
        x,
    )


def test_pool_modules_take_pytorchs_arguments():
    x = Tensor(np.random.default_rng(0).standard_normal((2, 3, 7, 7)))
    assert nn.MaxPool2d(3, 2, ceil_mode=True)(x).shape == (2, 3, 3, 3)
    assert nn.MaxPool2d(3, 2)(x).shape == (2, 3, 3, 3)
    assert nn.MaxPool2d(2, 2, ceil_mode=True)(x).shape == (2, 3, 4, 4)
    values, idx = nn.MaxPool2d(2, return_indices=True)(x)
    assert values.shape == idx.shape == (2, 3, 3, 3) and idx.dtype == np.int64
    flat = x.numpy().reshape(2, 3, -1)
    np.testing.assert_array_equal(
        np.take_along_axis(flat, idx.numpy().reshape(2, 3, -1), 2).reshape(values.shape),
        values.numpy(),
    )
    avg = nn.AvgPool2d(2, ceil_mode=True, count_include_pad=False, divisor_override=None)
    assert avg(x).shape == (2, 3, 4, 4)
    np.testing.assert_allclose(avg(x).numpy()[..., 3, 3], x.numpy()[..., 6, 6], rtol=1e-6)
    assert nn.AvgPool2d(2, divisor_override=1)(x).numpy()[0, 0, 0, 0] == pytest.approx(
        float(x.numpy()[0, 0, :2, :2].sum()), rel=1e-6
    )


def test_pool_bad_arguments_say_what_to_fix():
    x = Tensor.zeros(1, 1, 4, 4)
    with pytest.raises(OpError, match=r"avg_pool2d: divisor_override must be a non-zero int"):
        x.avg_pool2d(2, divisor_override=0)
    with pytest.raises(OpError, match=r"max_pool2d: padding .* at most half the kernel"):
        x.max_pool2d(2, padding=2, ceil_mode=True)
    with pytest.raises(OpError, match=r"max_pool2d: window \(5, 5\) is larger"):
        x.max_pool2d(5)
    with pytest.raises(OpError, match=r"max_pool2d: input must be \(N, C, H, W\)"):
        Tensor.zeros(4, 4).max_pool2d(2)


@pytest.mark.parametrize(
    "fn",
    [
        lambda t: F.max_pool2d(t, 3, 2, ceil_mode=True),
        lambda t: F.max_pool2d(t, 2, 2, 1, 2, ceil_mode=True),
        lambda t: F.avg_pool2d(t, 3, 2, 1, ceil_mode=True, count_include_pad=False),
        lambda t: F.avg_pool2d(t, 2, divisor_override=3),
        lambda t: F.max_pool2d(t.relu(), 3, 2, ceil_mode=True).relu(),
    ],
    ids=["max-ceil", "max-ceil-dilated", "avg-ceil-exclude-pad", "avg-divisor", "fused"],
)
def test_pools_compiled_llvm_equal_eager(fn):
    x = np.random.default_rng(3).standard_normal((2, 3, 8, 9)).astype(np.float32)
    assert_compiled_matches_eager(Fn(fn), x)


def test_max_pool_indices_compiled_llvm_equal_eager():
    x = np.random.default_rng(4).standard_normal((2, 3, 7, 7)).astype(np.float32)
    module = Fn(lambda t: F.max_pool2d(t, 3, 2, 1, ceil_mode=True, return_indices=True)[1])
    compiled = compiler.compile(module, x, backend="llvm")
    np.testing.assert_array_equal(compiled(x), module(Tensor(x)).numpy())


# ---------------------------------------------------------------------------------------------
# every op above, rendered for CUDA
# ---------------------------------------------------------------------------------------------
def _all_image_ops(x):
    a = F.max_pool2d(x, 3, 2, 1, ceil_mode=True)
    b = F.avg_pool2d(x, 3, 2, 1, ceil_mode=True, count_include_pad=False)
    c = F.avg_pool2d(x, 2, divisor_override=3)
    idx = F.max_pool2d(x, 2, ceil_mode=True, return_indices=True)[1]
    return a.sum() + b.sum() + c.sum() + idx.sum().float()


@needs_nvcc
@pytest.mark.parametrize("train", [False, True], ids=["forward", "gradient"])
def test_image_ops_render_cuda_that_nvcc_compiles(train, tmp_path):
    from compiler.backends.cuda import render_module

    x = np.random.default_rng(5).standard_normal((2, 3, 9, 9)).astype(np.float32)
    if train:
        module = nn.Sequential(nn.Conv2d(3, 4, 3), Fn(_all_image_ops))
        opt = optim.SGD(module.parameters(), lr=0.01, momentum=0.9)
        compiled = compiler.compile_train_step(
            module, lambda o, t: (o - t) * (o - t), opt, x, np.float32(0.0), backend="cuda"
        )
    else:
        compiled = compiler.compile(Fn(_all_image_ops), x, backend="cuda")
    source, rendered = render_module(compiled.kernels)
    assert len(rendered) == len(compiled.kernels)  # no runtime-helper fallback
    nvcc_ptx(source, tmp_path, "image-ops")
