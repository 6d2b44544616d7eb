"""max_pool2d's input gradient as one op (`max_pool2d_grad`): eager, as the compiled scatter
(CPU: bands of planes on chip) and as the gather of the default schedule (CUDA, the kernel
interpreter), always routing each window's gradient to its first maximum, as PyTorch does."""

import numpy as np
import pytest
from test_cuda import needs_nvcc, nvcc_ptx

from compiler.grad_step import compile_gradient_step
from compiler.interpret import run_kernel
from compiler.lower import buffer_name, lower
from compiler.target import CPUTarget
from tinygrad_edu import Tensor, gradcheck, nn, ops, optim

# (input shape, max_pool2d arguments): overlapping 3x3/2 windows with padding, disjoint 2x2,
# dilation, a rectangular window with unequal strides, and windows that miss the last column
CASES = [
    ((2, 3, 11, 9), dict(kernel_size=3, stride=2, padding=1)),
    ((2, 2, 8, 8), dict(kernel_size=2)),
    ((1, 2, 11, 10), dict(kernel_size=3, stride=1, padding=1, dilation=2)),
    ((2, 2, 12, 9), dict(kernel_size=(3, 2), stride=(2, 1), padding=(1, 0))),
    ((1, 3, 8, 8), dict(kernel_size=3, stride=3)),
]


def relu_pool_loss(kwargs):
    def loss(t):
        return ((t * 1.5).relu().max_pool2d(**kwargs) * t.max_pool2d(**kwargs)).sum()

    return loss


def eager_grad(f, x):
    t = Tensor(x, dtype=x.dtype, requires_grad=True)
    f(t).backward()
    return t.grad.numpy()


class Image(nn.Module):
    """x as the parameter, so a compiled gradient step gives f's gradient at x."""

    def __init__(self, x, f):
        super().__init__()
        self.x, self.f = nn.Parameter(x, dtype=x.dtype), f

    def forward(self, zero):
        return self.f(self.x + zero)


def compiled_grad(f, x, backend):
    """(x -> f's gradient at x, compiled on `backend`; the compiled step's kernels)."""
    model = Image(x, f)
    zero = np.zeros((), x.dtype)
    step = compile_gradient_step(
        model, lambda out, _: out, optim.SGD(model.parameters(), lr=0.0), zero, zero, backend
    )

    def grad(at):
        model.x.data[...] = at
        return step(zero, zero)[1]["x"]

    return grad, step


def inputs(shape, seed=0):
    x = np.random.default_rng(seed).standard_normal(shape)
    x[0, 0, :4, :4] = 0.0  # ties: the gradient goes to the first of equal maxima
    x[0, -1, 1:3, 2:5] = -2.0
    return x


def test_max_pool2d_grad_is_the_vjp_of_max_pool2d():
    x = inputs((2, 3, 7, 7))
    t = Tensor(x, dtype=x.dtype, requires_grad=True)
    y = t.max_pool2d(3, 2, 1)
    g = np.random.default_rng(1).standard_normal(y.shape)
    y.backward(Tensor(g, dtype=g.dtype))
    direct = Tensor(x, dtype=x.dtype)._call(
        ops.MAX_POOL2D_GRAD,
        Tensor(g, dtype=g.dtype),
        kernel=(3, 3),
        stride=(2, 2),
        padding=(1, 1),
        dilation=(1, 1),
    )
    np.testing.assert_array_equal(t.grad.numpy(), direct.numpy())
    # every window's gradient lands once: the sums agree
    np.testing.assert_allclose(direct.numpy().sum(axis=(2, 3)), g.sum(axis=(2, 3)), rtol=1e-12)


def test_max_pool2d_grad_rejects_a_gradient_of_the_wrong_shape():
    with pytest.raises(ValueError, match=r"max_pool2d_grad.*pooled shape \(1, 1, 3, 3\)"):
        Tensor(np.zeros((1, 1, 6, 6)))._call(
            ops.MAX_POOL2D_GRAD,
            Tensor(np.zeros((1, 1, 2, 3))),
            kernel=(2, 2),
            stride=(2, 2),
            padding=(0, 0),
            dilation=(1, 1),
        )


@pytest.mark.parametrize("shape,kwargs", CASES, ids=str)
def test_max_pool_second_order_grad_matches_finite_differences(shape, kwargs):
    """The op's own VJP: linear in the upstream gradient v (read back at each window's
    first maximum), flat in x (distinct values: no route changes within eps)."""
    x = np.random.default_rng(0).permutation(np.prod(shape)).reshape(shape) / 7.0
    v = np.random.default_rng(1).standard_normal(Tensor(x).max_pool2d(**kwargs).shape)

    def grad_norm(x, v):
        x.grad = None
        x.max_pool2d(**kwargs).backward(v, create_graph=True)
        gx, x.grad = x.grad, None
        return (gx * gx * x).sum()

    assert gradcheck(grad_norm, [x, v])


@pytest.mark.parametrize("backend", ["numpy", "llvm"])
@pytest.mark.parametrize("shape,kwargs", CASES, ids=str)
def test_compiled_max_pool_grad_equals_eager(shape, kwargs, backend):
    if backend == "llvm":
        pytest.importorskip("llvmlite")
    f = relu_pool_loss(kwargs)
    x = inputs(shape)
    grad, step = compiled_grad(f, x, backend)
    assert any("max_pool2d_grad" in k.name for k in step.kernels)
    np.testing.assert_allclose(grad(x), eager_grad(f, x), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("shape,kwargs", CASES[:2], ids=str)
def test_a_nan_in_a_window_takes_its_gradient_compiled_as_eager(shape, kwargs):
    pytest.importorskip("llvmlite")
    f = relu_pool_loss(kwargs)
    x = inputs(shape)
    x[1, 1, 3, 4] = np.nan
    want = eager_grad(lambda t: t.max_pool2d(**kwargs).sum(), x)
    got = compiled_grad(lambda t: t.max_pool2d(**kwargs).sum(), x, "llvm")[0](x)
    assert want[1, 1, 3, 4] >= 1.0
    np.testing.assert_array_equal(got, want)
    assert np.isnan(compiled_grad(f, x, "llvm")[0](x)).any()  # through ReLU, as eager


@pytest.mark.parametrize("band_rows", [1, 2, 3])
@pytest.mark.parametrize("shape,kwargs", CASES, ids=str)
def test_the_scatter_in_bands_equals_eager(shape, kwargs, band_rows, monkeypatch):
    """Planes split into bands of a few rows (the last one overlapping the one before):
    windows across two bands are searched by both and land in one."""
    pytest.importorskip("llvmlite")
    width = shape[3]
    monkeypatch.setattr(
        CPUTarget,
        "scatter_band_bytes",
        property(lambda self: 4 * width * band_rows),  # float32
    )
    f = relu_pool_loss(kwargs)
    x = inputs(shape, seed=band_rows).astype(np.float32)
    grad, step = compiled_grad(f, x, "llvm")
    scatters = [k for k in step.kernels if "max_pool2d_grad" in k.name]
    bands = -(-shape[2] // band_rows)
    assert scatters and all(k.body[0].extent == shape[0] * shape[1] * bands for k in scatters)
    np.testing.assert_allclose(grad(x), eager_grad(f, x), rtol=1e-5, atol=1e-6)


def test_both_schedules_interpret_to_the_reference():
    """The CPU scatter and the default schedule's gather, run by the kernel interpreter."""
    f = relu_pool_loss(CASES[0][1])
    x = inputs(CASES[0][0])
    compiled = compiled_grad(f, x, "numpy")[1].compiled
    zero = np.zeros((), x.dtype)
    values = compiled.values(zero, zero)
    g = compiled.graph
    checked = dict.fromkeys(("default", "cpu"), 0)
    for schedule in checked:
        for kernel in lower(compiled.fusion, schedule):
            if "max_pool2d_grad" not in kernel.name:
                continue
            inputs_ = {buffer_name(g, b.node): values[b.node] for b in kernel.inputs}
            outs = run_kernel(kernel, inputs_)
            for b in kernel.outputs:
                np.testing.assert_allclose(outs[b.name], values[b.node], rtol=1e-12)
            checked[schedule] += 1
    assert checked == {"default": 2, "cpu": 2}  # the two pools' gradients


@needs_nvcc
def test_the_gather_renders_as_cuda_that_nvcc_compiles(tmp_path):
    from compiler.backends.cuda import render_module

    f = relu_pool_loss(CASES[0][1])
    x = inputs(CASES[0][0]).astype(np.float32)
    source, rendered = render_module(compiled_grad(f, x, "cuda")[1].kernels)
    assert any("max_pool2d_grad" in name for name in rendered)
    nvcc_ptx(source, tmp_path, "pool")
