"""The image-network ops (`tinygrad_edu.image`, `tinygrad_edu.functional`'s image section):
pooling with ceil_mode / count_include_pad / divisor_override / return_indices,
conv_transpose2d, interpolate, pad modes, conv1d, adaptive_max_pool2d.

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
    values, idx = F.max_pool2d(
        Tensor(x, dtype=np.float64), k, s, p, d, ceil_mode=ceil, return_indices=True
    )
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
# conv_transpose2d
# ---------------------------------------------------------------------------------------------
@st.composite
def conv_transpose_cases(draw):
    """(x_shape, w_shape, stride, padding, output_padding, groups, dilation), all valid."""
    groups = draw(st.integers(1, 2))
    cin, cout = groups * draw(st.integers(1, 2)), groups * draw(st.integers(1, 2))
    kernel = (draw(st.integers(1, 3)), draw(st.integers(1, 3)))
    stride = (draw(st.integers(1, 3)), draw(st.integers(1, 3)))
    dil = (draw(st.integers(1, 2)), draw(st.integers(1, 2)))
    extra = tuple(draw(st.integers(0, max(stride[i], dil[i]) - 1)) for i in range(2))
    pad = (draw(st.integers(0, 2)), draw(st.integers(0, 2)))
    hw = []
    for i in range(2):
        # the output side (h - 1) * s - 2p + d (k - 1) + op + 1 must be >= 1
        low = 1
        while (low - 1) * stride[i] - 2 * pad[i] + dil[i] * (kernel[i] - 1) + extra[i] < 0:
            low += 1
        hw.append(draw(st.integers(low, low + 2)))
    x_shape = (draw(st.integers(1, 2)), cin, *hw)
    return x_shape, (cin, cout // groups, *kernel), stride, pad, extra, groups, dil


@given(case=conv_transpose_cases(), data=st.data())
def test_conv_transpose2d_grad_matches_finite_differences(case, data):
    x_shape, w_shape, s, p, op, g, d = case
    x, w, b = (data.draw(arrays(shape)) for shape in (x_shape, w_shape, (w_shape[1] * g,)))
    assert gradcheck(lambda x, w, b: F.conv_transpose2d(x, w, b, s, p, op, g, d), [x, w, b])


@needs_torch
@given(case=conv_transpose_cases(), data=st.data())
def test_conv_transpose2d_matches_torch(case, data):
    x_shape, w_shape, s, p, op, g, d = case
    x, w, b = (data.draw(arrays(shape)) for shape in (x_shape, w_shape, (w_shape[1] * g,)))
    run_both(
        lambda x, w, b: x.conv_transpose2d(w, b, s, p, op, g, d),
        lambda x, w, b: torch.nn.functional.conv_transpose2d(x, w, b, s, p, op, g, d),
        x,
        w,
        b,
    )


def test_conv_transpose2d_is_the_adjoint_of_conv2d():
    # <conv2d(u, w), v> == <u, conv_transpose2d(v, w)> for every u, v: the defining property
    r = np.random.default_rng(6)
    u, w = r.standard_normal((2, 4, 9, 8)), r.standard_normal((6, 2, 3, 2))
    conv = dict(stride=2, padding=1, dilation=(1, 2), groups=2)
    out = Tensor(u, dtype=np.float64).conv2d(Tensor(w, dtype=np.float64), **conv)
    v = r.standard_normal(out.shape)
    back = F.conv_transpose2d(
        Tensor(v, dtype=np.float64), Tensor(w, dtype=np.float64), output_padding=(0, 1), **conv
    )
    assert back.shape == u.shape
    np.testing.assert_allclose((out.numpy() * v).sum(), (u * back.numpy()).sum(), rtol=1e-10)


@needs_torch
def test_conv_transpose2d_module_matches_torchs_names_shapes_and_init():
    layer = nn.ConvTranspose2d(6, 4, (3, 2), stride=2, padding=1, output_padding=1, groups=2)
    ref = torch.nn.ConvTranspose2d(6, 4, (3, 2), stride=2, padding=1, output_padding=1, groups=2)
    ours = layer.state_dict()
    theirs = {k: v.detach().numpy() for k, v in ref.state_dict().items()}
    assert {k: v.shape for k, v in ours.items()} == {k: v.shape for k, v in theirs.items()}
    bound = 1 / np.sqrt(2 * 3 * 2)  # fan_in = out/groups * kh * kw, as torch computes it
    assert np.abs(ours["weight"]).max() <= bound and np.abs(ours["weight"]).max() > bound / 2
    layer.load_state_dict(theirs)
    x = np.random.default_rng(7).standard_normal((2, 6, 5, 4))
    got = layer(Tensor(x, dtype=np.float64)).numpy()
    np.testing.assert_allclose(got, ref(torch.tensor(x, dtype=torch.float32)).detach().numpy(),
                               rtol=1e-4, atol=1e-5)  # fmt: skip
    # output_size picks output_padding, as torch's forward(x, output_size) does
    sized = layer(Tensor(x), output_size=(9, 7))
    assert sized.shape == ref(torch.tensor(x, dtype=torch.float32), output_size=[9, 7]).shape


def test_conv_transpose2d_bad_input_says_what_to_fix():
    x, w = Tensor.zeros(1, 4, 5, 5), Tensor.zeros(4, 2, 3, 3)
    with pytest.raises(OpError, match=r"conv_transpose2d: input has 3 channels but weight"):
        F.conv_transpose2d(Tensor.zeros(1, 3, 5, 5), w)
    with pytest.raises(OpError, match=r"conv_transpose2d: output_padding \(2, 2\) must be"):
        F.conv_transpose2d(x, w, stride=2, output_padding=2)
    with pytest.raises(OpError, match=r"conv_transpose2d: bias must have one entry"):
        F.conv_transpose2d(x, w, Tensor.zeros(3))
    with pytest.raises(OpError, match=r"conv_transpose2d: .*do not divide into groups=3"):
        F.conv_transpose2d(x, w, groups=3)
    with pytest.raises(OpError, match=r"conv_transpose2d: the output would be"):
        F.conv_transpose2d(Tensor.zeros(1, 4, 1, 1), Tensor.zeros(4, 2, 1, 1), padding=1)
    with pytest.raises(OpError, match=r"ConvTranspose2d: output_size \(20, 20\) is not"):
        nn.ConvTranspose2d(4, 2, 3, stride=2)(x, output_size=(20, 20))


@pytest.mark.parametrize(
    "kwargs",
    [
        dict(),
        dict(stride=2, padding=1, output_padding=1),
        dict(stride=(2, 3), dilation=2, groups=2, output_padding=(1, 0)),
        dict(stride=1, dilation=2, output_padding=1),  # output_padding >= stride
        dict(padding=1, groups=2),
    ],
    ids=["plain", "stride2", "grouped-dilated", "op-ge-stride", "grouped-stride1"],
)
def test_conv_transpose2d_compiled_llvm_equal_eager(kwargs):
    x = np.random.default_rng(8).standard_normal((2, 4, 6, 5)).astype(np.float32)
    layer = nn.ConvTranspose2d(4, 6, 3, **kwargs)
    assert_compiled_matches_eager(layer, x)


def test_conv_transpose2d_compiled_training_step_equals_eager():
    from tinygrad_edu import manual_seed

    x = np.random.default_rng(9).standard_normal((2, 4, 5, 5)).astype(np.float32)
    target = np.random.default_rng(10).standard_normal((2, 3, 10, 10)).astype(np.float32)
    states = []
    for compiled in (False, True):
        manual_seed(0)
        layer = nn.ConvTranspose2d(4, 3, 3, stride=2, padding=1, output_padding=1)
        opt = optim.SGD(layer.parameters(), lr=0.1, momentum=0.9)
        loss_fn = lambda o, t: ((o - t) * (o - t)).mean()
        if compiled:
            step = compiler.compile_train_step(layer, loss_fn, opt, x, target, backend="llvm")
            for _ in range(2):
                step(x, target)
        else:
            for _ in range(2):
                opt.zero_grad()
                loss_fn(layer(Tensor(x)), Tensor(target)).backward()
                opt.step()
        states.append(layer.state_dict())
    for name in states[0]:
        np.testing.assert_allclose(states[1][name], states[0][name], rtol=1e-5, atol=1e-6)


# ---------------------------------------------------------------------------------------------
# interpolate / Upsample
# ---------------------------------------------------------------------------------------------
@st.composite
def interpolate_cases(draw):
    """(x_shape, kwargs) over modes, sizes, scale factors (integer and not), align_corners."""
    ndim = draw(st.sampled_from([3, 4]))
    spatial = [draw(st.integers(1, 6)) for _ in range(ndim - 2)]
    mode = draw(st.sampled_from(["nearest", "nearest-exact", "area", "linear"]))
    if mode == "linear" and ndim == 4:
        mode = "bilinear"
    kwargs = {"mode": mode}
    if mode in ("linear", "bilinear"):
        kwargs["align_corners"] = draw(st.booleans())
    if draw(st.booleans()):
        kwargs["size"] = tuple(draw(st.integers(1, 9)) for _ in spatial)
    else:
        factors = st.sampled_from([0.5, 1.0, 1.5, 2.0, 2.5, 3.0])
        kwargs["scale_factor"] = tuple(draw(factors) for _ in spatial)
        if any(int(n * f) < 1 for n, f in zip(spatial, kwargs["scale_factor"])):
            kwargs["scale_factor"] = tuple(2.0 for _ in spatial)
        kwargs["recompute_scale_factor"] = draw(st.sampled_from([None, True]))
    return (draw(st.integers(1, 2)), draw(st.integers(1, 2)), *spatial), kwargs


@given(case=interpolate_cases(), data=st.data())
def test_interpolate_grad_matches_finite_differences(case, data):
    x_shape, kwargs = case
    x = data.draw(arrays(x_shape))
    assert gradcheck(lambda t: F.interpolate(t, **kwargs), [x])


@needs_torch
@given(case=interpolate_cases(), data=st.data())
def test_interpolate_matches_torch(case, data):
    x_shape, kwargs = case
    x = data.draw(arrays(x_shape))
    run_both(
        lambda t: F.interpolate(t, **kwargs),
        lambda t: torch.nn.functional.interpolate(t, **kwargs),
        x,
    )


@needs_torch
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_interpolate_source_positions_round_like_torch_in_float32(dtype):
    # nearest's floor(dst * scale) and bilinear's lambdas are computed in the input's float
    # type (nearest always float32) as PyTorch's kernels do: the sizes where float32 and
    # exact arithmetic disagree still give PyTorch's pixels
    x = np.random.default_rng(12).standard_normal((1, 2, 7, 13)).astype(dtype)
    for kwargs in (
        dict(size=(10, 29)),
        dict(scale_factor=(1.7, 2.3)),
        dict(size=(3, 5), mode="nearest-exact"),
        dict(size=(11, 30), mode="bilinear", align_corners=False),
        dict(size=(11, 30), mode="bilinear", align_corners=True),
        dict(scale_factor=0.6, mode="bilinear"),
    ):
        got = F.interpolate(Tensor(x, dtype=dtype), **kwargs).numpy()
        want = torch.nn.functional.interpolate(torch.tensor(x), **kwargs).numpy()
        rtol = 1e-6 if dtype == np.float32 else 1e-12
        np.testing.assert_allclose(got, want, rtol=rtol, atol=rtol, err_msg=str(kwargs))


def test_interpolate_by_hand():
    x = Tensor(np.array([[[[1.0, 2.0], [3.0, 4.0]]]]))
    up = F.interpolate(x, scale_factor=2)
    np.testing.assert_array_equal(
        up.numpy()[0, 0], np.repeat(np.repeat(x.numpy()[0, 0], 2, 0), 2, 1)
    )
    lin = F.interpolate(x, size=(3, 3), mode="bilinear", align_corners=True).numpy()[0, 0]
    np.testing.assert_allclose(lin, [[1, 1.5, 2], [2, 2.5, 3], [3, 3.5, 4]], rtol=1e-6)
    half = F.interpolate(x, scale_factor=2, mode="bilinear").numpy()[0, 0]
    np.testing.assert_allclose(half[0], [1, 1.25, 1.75, 2], rtol=1e-6)  # half-pixel, clamped
    assert nn.Upsample(scale_factor=2, mode="nearest")(x).shape == (1, 1, 4, 4)
    assert nn.UpsamplingBilinear2d(size=3)(x).numpy()[0, 0, 1, 1] == pytest.approx(2.5)
    assert nn.UpsamplingNearest2d(scale_factor=3)(x).shape == (1, 1, 6, 6)


def test_interpolate_bad_arguments_say_what_to_fix():
    x = Tensor.zeros(1, 1, 4, 4)
    with pytest.raises(OpError, match="interpolate: exactly one of size and scale_factor"):
        F.interpolate(x)
    with pytest.raises(OpError, match="interpolate: exactly one of size and scale_factor"):
        F.interpolate(x, size=2, scale_factor=2)
    with pytest.raises(OpError, match="interpolate: mode 'trilinear' is not offered"):
        F.interpolate(x, size=2, mode="trilinear")
    with pytest.raises(OpError, match="interpolate: align_corners can only be set"):
        F.interpolate(x, size=2, align_corners=True)
    with pytest.raises(OpError, match="interpolate: mode 'bilinear' needs a 4-D input"):
        F.interpolate(Tensor.zeros(1, 1, 4), size=2, mode="bilinear")
    with pytest.raises(OpError, match=r"interpolate: size \(2, 2, 2\) must give 2"):
        F.interpolate(x, size=(2, 2, 2))


@pytest.mark.parametrize(
    "kwargs",
    [
        dict(scale_factor=2),
        dict(scale_factor=0.5),
        dict(size=(7, 11)),
        dict(size=(7, 11), mode="bilinear", align_corners=False),
        dict(scale_factor=2, mode="bilinear", align_corners=True),
        dict(size=(3, 5), mode="area"),
    ],
    ids=["nearest-x2", "nearest-half", "nearest-table", "bilinear", "bilinear-corners", "area"],
)
def test_interpolate_compiled_llvm_equal_eager(kwargs):
    x = np.random.default_rng(13).standard_normal((2, 3, 6, 8)).astype(np.float32)
    assert_compiled_matches_eager(Fn(lambda t: F.interpolate(t, **kwargs)), x)


# ---------------------------------------------------------------------------------------------
# pad modes
# ---------------------------------------------------------------------------------------------
@st.composite
def pad_cases(draw):
    """(x_shape, flat pad, mode) that PyTorch accepts: non-constant modes pad the last 1-3
    dims of a (N, C, ...) or (C, ...) input, reflect by less than the size, circular by at
    most the size; constant pads any dims, negative pads cropping."""
    mode = draw(st.sampled_from(["constant", "reflect", "replicate", "circular"]))
    k = draw(st.integers(1, 3))
    ndim = k + draw(st.integers(1, 2)) if mode != "constant" else draw(st.integers(k, 4))
    shape = tuple(draw(st.integers(1, 4)) for _ in range(ndim))
    pad = []
    for i in range(k):
        n = shape[ndim - 1 - i]
        top = {"reflect": n - 1, "circular": n, "replicate": 3, "constant": 3}[mode]
        low = -(n // 2) if mode == "constant" else 0
        pad += [draw(st.integers(low, top)), draw(st.integers(low, top))]
    return shape, tuple(pad), mode


@given(case=pad_cases(), data=st.data())
def test_pad_grad_matches_finite_differences(case, data):
    shape, pads, mode = case
    x = data.draw(arrays(shape))
    assert gradcheck(lambda t: F.pad(t, pads, mode), [x])


@needs_torch
@given(case=pad_cases(), value=st.sampled_from([None, 0.0, -1.5]), data=st.data())
def test_pad_matches_torch(case, value, data):
    shape, pads, mode = case
    x = data.draw(arrays(shape))
    value = value if mode == "constant" else None
    run_both(
        lambda t: t.pad(pads, mode, value),
        lambda t: torch.nn.functional.pad(t, pads, mode, value),
        x,
    )


def test_pad_modes_by_hand():
    x = Tensor(np.array([[[1.0, 2.0, 3.0]]]))
    assert F.pad(x, (2, 1), "reflect").numpy().tolist() == [[[3, 2, 1, 2, 3, 2]]]
    assert F.pad(x, (2, 1), "replicate").numpy().tolist() == [[[1, 1, 1, 2, 3, 3]]]
    assert F.pad(x, (2, 1), "circular").numpy().tolist() == [[[2, 3, 1, 2, 3, 1]]]
    assert F.pad(x, (1, -1), value=7.0).numpy().tolist() == [[[7, 1, 2]]]


def test_pad_bad_arguments_say_what_to_fix():
    x = Tensor.zeros(1, 2, 3, 3)
    with pytest.raises(OpError, match=r"pad: reflect padding \(3, 0\) must be smaller"):
        F.pad(x, (3, 0, 0, 0), "reflect")
    with pytest.raises(OpError, match=r"pad: circular padding \(0, 4\) wraps around"):
        F.pad(x, (0, 0, 0, 4), "circular")
    with pytest.raises(OpError, match=r"pad: mode 'replicate' pads the last 1 to 3 dims"):
        F.pad(Tensor.zeros(3), (1, 1), "replicate")
    with pytest.raises(OpError, match=r"pad: mode 'reflect' takes no value"):
        F.pad(x, (1, 1, 1, 1), "reflect", value=1.0)
    with pytest.raises(OpError, match=r"pad: mode must be a string, got 0.5 .* value=0.5"):
        x.pad((1, 1), 0.5)
    with pytest.raises(OpError, match=r"pad: mode 'edge' is not offered"):
        F.pad(x, (1, 1), "edge")
    with pytest.raises(OpError, match=r"pad: flat pad \(1, 1, 1\) needs an even length"):
        F.pad(x, (1, 1, 1))
    with pytest.raises(OpError, match=r"pad: mode 'reflect' takes no negative padding"):
        F.pad(x, (-1, 1, 0, 0), "reflect")


@pytest.mark.parametrize("mode", ["constant", "reflect", "replicate", "circular"])
def test_pad_compiled_llvm_equal_eager(mode):
    x = np.random.default_rng(14).standard_normal((2, 3, 5, 6)).astype(np.float32)
    assert_compiled_matches_eager(Fn(lambda t: F.pad(t, (2, 3, 1, 4), mode) * 2.0), x)


# ---------------------------------------------------------------------------------------------
# conv1d
# ---------------------------------------------------------------------------------------------
@st.composite
def conv1d_cases(draw):
    """(x_shape, w_shape, stride, padding, dilation, groups) with a window that fits."""
    groups = draw(st.integers(1, 2))
    cin, cout = groups * draw(st.integers(1, 2)), groups * draw(st.integers(1, 2))
    k, dil = draw(st.integers(1, 3)), draw(st.integers(1, 2))
    stride = draw(st.integers(1, 3))
    pad = draw(st.sampled_from([0, 1, 2, "valid"] + (["same"] if stride == 1 else [])))
    reach = dil * (k - 1) + 1 - (2 * pad if isinstance(pad, int) else 0)
    length = draw(st.integers(max(1, reach), max(1, reach) + 4))
    return (
        (draw(st.integers(1, 2)), cin, length),
        (cout, cin // groups, k),
        stride,
        pad,
        dil,
        groups,
    )


@given(case=conv1d_cases(), data=st.data())
def test_conv1d_grad_matches_finite_differences(case, data):
    x_shape, w_shape, s, p, d, g = case
    x, w, b = (data.draw(arrays(shape)) for shape in (x_shape, w_shape, (w_shape[0],)))
    assert gradcheck(lambda x, w, b: F.conv1d(x, w, b, s, p, d, g), [x, w, b])


@needs_torch
@given(case=conv1d_cases(), data=st.data())
def test_conv1d_matches_torch(case, data):
    x_shape, w_shape, s, p, d, g = case
    x, w, b = (data.draw(arrays(shape)) for shape in (x_shape, w_shape, (w_shape[0],)))
    run_both(
        lambda x, w, b: F.conv1d(x, w, b, s, p, d, g),
        lambda x, w, b: torch.nn.functional.conv1d(x, w, b, s, p, d, g),
        x,
        w,
        b,
    )


@needs_torch
def test_conv1d_module_matches_torchs_names_shapes_and_values():
    layer, ref = (
        nn.Conv1d(4, 6, 3, padding=1, groups=2),
        torch.nn.Conv1d(4, 6, 3, padding=1, groups=2),
    )
    ours = layer.state_dict()
    theirs = {k: v.detach().numpy() for k, v in ref.state_dict().items()}
    assert {k: v.shape for k, v in ours.items()} == {k: v.shape for k, v in theirs.items()}
    assert np.abs(ours["weight"]).max() <= 1 / np.sqrt(2 * 3)  # fan_in = in/groups * k
    layer.load_state_dict(theirs)
    x = np.random.default_rng(15).standard_normal((2, 4, 9)).astype(np.float32)
    np.testing.assert_allclose(layer(Tensor(x)).numpy(), ref(torch.tensor(x)).detach().numpy(),
                               rtol=1e-5, atol=1e-6)  # fmt: skip
    assert layer(Tensor(x[0])).shape == (6, 9)  # an unbatched (C, L) input, as torch takes


def test_conv1d_bad_input_says_what_to_fix():
    with pytest.raises(OpError, match=r"conv1d: input must be \(N, C, L\)"):
        F.conv1d(Tensor.zeros(1, 2, 3, 4), Tensor.zeros(2, 2, 1))
    with pytest.raises(OpError, match=r"conv1d: input channels 3 must equal weight"):
        F.conv1d(Tensor.zeros(1, 3, 5), Tensor.zeros(2, 2, 1))
    with pytest.raises(OpError, match=r"conv1d: stride must be an int or a 1-tuple"):
        F.conv1d(Tensor.zeros(1, 2, 5), Tensor.zeros(2, 2, 1), stride=(1, 2))


def test_conv1d_compiled_llvm_equal_eager():
    x = np.random.default_rng(16).standard_normal((2, 4, 11)).astype(np.float32)
    layer = nn.Sequential(nn.Conv1d(4, 6, 3, stride=2, padding=1), nn.ReLU(), nn.Conv1d(6, 2, 2))
    assert_compiled_matches_eager(layer, x)


# ---------------------------------------------------------------------------------------------
# adaptive_max_pool2d
# ---------------------------------------------------------------------------------------------
adaptive_cases = st.tuples(
    st.tuples(st.integers(1, 2), st.integers(1, 2), st.integers(1, 7), st.integers(1, 7)),
    st.tuples(st.integers(1, 5), st.one_of(st.none(), st.integers(1, 5))),
)


@given(case=adaptive_cases, data=st.data())
def test_adaptive_max_pool2d_grad_matches_finite_differences(case, data):
    x_shape, out = case
    x = data.draw(distinct_arrays(x_shape))
    assert gradcheck(lambda t: F.adaptive_max_pool2d(t, out), [x])


@needs_torch
@given(case=adaptive_cases, ties=st.booleans(), data=st.data())
def test_adaptive_max_pool2d_and_indices_match_torch(case, ties, data):
    # with ties (rounded inputs) too: the gradient and the index go to the first maximum
    x_shape, out = case
    x = data.draw(arrays(x_shape))
    x = np.round(x) if ties else x
    run_both(
        lambda t: F.adaptive_max_pool2d(t, out),
        lambda t: torch.nn.functional.adaptive_max_pool2d(t, out),
        x,
    )
    _, idx = nn.AdaptiveMaxPool2d(out, return_indices=True)(Tensor(x, dtype=np.float64))
    _, want = torch.nn.functional.adaptive_max_pool2d(torch.tensor(x), out, return_indices=True)
    assert idx.dtype == np.int64
    np.testing.assert_array_equal(idx.numpy(), want.numpy())


def test_adaptive_max_pool2d_bad_output_size_says_what_to_fix():
    with pytest.raises(OpError, match=r"adaptive_max_pool2d: output_size must be positive"):
        F.adaptive_max_pool2d(Tensor.zeros(1, 1, 4, 4), (0, 2))
    with pytest.raises(OpError, match=r"adaptive_max_pool2d: input must be \(N, C, H, W\)"):
        F.adaptive_max_pool2d(Tensor.zeros(4, 4), 2)


@pytest.mark.parametrize("out", [(2, 3), (3, 2)], ids=["divides", "uneven"])
def test_adaptive_max_pool2d_compiled_llvm_equal_eager(out):
    x = np.random.default_rng(17).standard_normal((2, 3, 6, 7)).astype(np.float32)
    assert_compiled_matches_eager(Fn(lambda t: F.adaptive_max_pool2d(t, out)), x)


# ---------------------------------------------------------------------------------------------
# the ops' gradients compiled: a training step through all of them equals eager
# ---------------------------------------------------------------------------------------------
class ImageOpsNet(nn.Module):
    """Every image op between two convolutions, so a loss differentiates through each."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(2, 3, 3, padding=1)
        self.up = nn.ConvTranspose2d(3, 2, 3, stride=2, padding=1, output_padding=1)
        self.line = nn.Conv1d(2, 2, 3, padding=1)
        self.pool = nn.MaxPool2d(3, 2, ceil_mode=True)
        self.avg = nn.AvgPool2d(3, 2, 1, ceil_mode=True, count_include_pad=False)

    def forward(self, x):
        h = F.pad(self.conv(x).relu(), (1, 2, 2, 1), "reflect")
        h = self.up(h)
        h = F.interpolate(h, size=(9, 11), mode="bilinear") + F.interpolate(h, size=(9, 11))
        h = F.pad(h, (1, 1, 1, 1), "replicate") + F.pad(h, (1, 1, 1, 1), "circular")
        flat = self.line(h.reshape(h.shape[0], 2, -1)).reshape(h.shape)
        return self.pool(flat).sum() + self.avg(flat).sum() + F.adaptive_max_pool2d(flat, 3).sum()


def test_training_step_through_every_image_op_compiled_llvm_equals_eager():
    from tinygrad_edu import manual_seed

    x = np.random.default_rng(19).standard_normal((2, 2, 5, 6)).astype(np.float32)
    y = np.zeros((), np.float32)
    loss_fn = lambda out, t: (out - t) * (out - t) * 1e-4
    states = []
    for compiled in (False, True):
        manual_seed(0)
        model = ImageOpsNet()
        start = model.state_dict()["conv.weight"].copy()
        opt = optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
        if compiled:
            step = compiler.compile_train_step(model, loss_fn, opt, x, y, backend="llvm")
            for _ in range(2):
                step(x, y)
        else:
            for _ in range(2):
                opt.zero_grad()
                loss_fn(model(Tensor(x)), Tensor(y)).backward()
                opt.step()
        states.append(model.state_dict())
    for name in states[0]:
        np.testing.assert_allclose(states[1][name], states[0][name], rtol=1e-4, atol=1e-5)
    assert np.abs(states[0]["conv.weight"] - start).max() > 1e-6  # the steps moved the weights


# ---------------------------------------------------------------------------------------------
# every op above, rendered for CUDA
# ---------------------------------------------------------------------------------------------
def _all_image_ops(x):
    a = F.max_pool2d(x, 3, 2, 1, ceil_mode=True)
    b = F.avg_pool2d(x, 3, 2, 1, ceil_mode=True, count_include_pad=False)
    c = F.avg_pool2d(x, 2, divisor_override=3)
    idx = F.max_pool2d(x, 2, ceil_mode=True, return_indices=True)[1]
    w = Tensor(np.random.default_rng(11).standard_normal((x.shape[1], 2, 3, 3)).astype(np.float32))
    up = F.conv_transpose2d(x, w, stride=2, padding=1, output_padding=1)
    up2 = F.conv_transpose2d(x, w[:, :1], dilation=2, output_padding=1)
    near = F.interpolate(x, scale_factor=2) + F.interpolate(
        x, size=(2 * x.shape[2], 2 * x.shape[3]), mode="bilinear"
    )
    small = F.interpolate(x, scale_factor=0.5, mode="bilinear", align_corners=True)
    padded = sum(F.pad(x, (2, 1, 1, 2), m).sum() for m in ("reflect", "replicate", "circular"))
    w1 = Tensor(np.random.default_rng(18).standard_normal((2, x.shape[1], 3)).astype(np.float32))
    line = F.conv1d(x.reshape(x.shape[0], x.shape[1], -1), w1, stride=2, padding=1)
    ada = F.adaptive_max_pool2d(x, (2, 3)) + F.adaptive_max_pool2d(x, (2, 3), True)[1].float()
    total = (
        padded
        + line.sum()
        + ada.sum()
        + a.sum()
        + b.sum()
        + c.sum()
        + idx.sum().float()
        + up.sum()
        + up2.sum()
    )
    return total + near.sum() + small.sum()


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
