"""The kernel IR computes what its group's ops compute: every kernel of random programs and of
small models, interpreted element by element (C semantics), equals the numpy reference."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import compiler
from compiler.graph import trace
from compiler.interpret import NotInterpretableError, run_kernel
from compiler.kernel import Loop
from compiler.lower import buffer_name, lower
from compiler.passes import autodiff
from compiler.testing import programs, scalar_loss
from models import MLP
from tinygrad_edu import Tensor, nn, optim


def check_kernels(compiled, *args):
    """Interpret every kernel, in both schedules, and compare with the reference values."""
    values = compiled.values(*args)
    g = compiled.graph
    checked = 0
    cpu_kernels = lower(compiled.fusion, "cpu")
    for kernel in [*compiled.kernels, *cpu_kernels]:
        inputs = {buffer_name(g, b.node): values[b.node] for b in kernel.inputs}
        try:
            outs = run_kernel(kernel, inputs)
        except NotInterpretableError:
            continue
        for b in kernel.outputs:
            want = values[b.node]
            np.testing.assert_allclose(
                outs[b.name],
                want,
                rtol=1e-4,
                atol=1e-5,
                err_msg=f"{kernel.name}\n{kernel.pseudo_c()}",
            )
        checked += 1
    return checked


@settings(max_examples=15)
@given(program=programs(max_steps=4), seed=st.integers(0, 100))
def test_kernel_ir_of_random_programs_matches_the_reference(program, seed):
    xs = program.example_inputs(seed)
    compiled = compiler.compile(program, *xs, backend="numpy")
    assert check_kernels(compiled, *xs) == 2 * len(compiled.kernels)  # all interpretable here

    loss = scalar_loss(program)
    graph = trace(loss, *xs, module=program)
    grads = compiler.build(
        autodiff(graph),
        "numpy",
        bindings={n: (lambda p=p: p.data) for n, p in program.named_parameters()},
    )
    check_kernels(grads, *xs)


def test_kernel_ir_of_a_conv_net_training_step_matches_the_reference():
    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = nn.Conv2d(2, 4, 3, stride=2, padding=1, groups=2)
            self.fc = nn.Linear(4 * 2 * 2, 3)

        def forward(self, x):
            h = self.conv(x).relu().max_pool2d(2).local_response_norm(3, 0.1, 0.75, 2.0)
            return self.fc(h.flatten(1))

    x = np.random.default_rng(0).standard_normal((2, 2, 8, 8)).astype(np.float32)
    y = np.array([0, 2])
    model = Net()
    step = compiler.compile_train_step(
        model,
        lambda o, t: o.cross_entropy(t),
        optim.SGD(model.parameters(), lr=0.1, momentum=0.9),
        x,
        y,
        backend="numpy",
    )
    assert check_kernels(step.compiled, x, y) >= 20


def test_kernel_ir_of_the_mlp_matches_the_reference():
    x = np.random.default_rng(0).standard_normal((3, 8)).astype(np.float32)
    assert check_kernels(compiler.compile(MLP([8, 5, 4]), x, backend="numpy"), x) == 4


# Regression cases the interpreter caught while the lowering was written (kept as fixed tests).
def _regression_programs():
    from compiler.testing import Program, Step

    return {
        # a reduction whose elementwise prologue is also read by another kernel: it must store it
        "prologue_store": Program(
            (1, 2, 4, 4), [Step("relu", (0,)), Step("relu", (1,)), Step("relu", (1,))], 0
        ),
        # a conv whose pooling epilogue is padded: the tile must be read with bounds checks
        "padded_pool_tile": Program(
            (1, 2, 4, 4),
            [
                Step("conv2d", (0,), (1, (1, 1), (1, 1), (0, 0), (1, 1), 1)),
                Step("max_pool2d", (1,), ((1, 2), (1, 1), (0, 1))),
            ],
            0,
        ),
        # an anchor reading through a folded view (fold2d of a reshape in avg-pool backward)
        "view_into_anchor": Program(
            (1, 2, 4, 4),
            [Step("scale", (0,)), Step("avg_pool2d", (1,), ((1, 1), (1, 1), (0, 0)))],
            0,
        ),
    }


def test_kernel_ir_regressions():
    for name, program in _regression_programs().items():
        x = np.random.default_rng(0).standard_normal(program.x_shape).astype(np.float32)
        compiled = compiler.compile(program, x, backend="numpy")
        assert check_kernels(compiled, x) == 2 * len(compiled.kernels), name

        loss = scalar_loss(program)
        grads = compiler.build(
            autodiff(trace(loss, x, module=program)),
            "numpy",
            bindings={n: (lambda p=p: p.data) for n, p in program.named_parameters()},
        )
        check_kernels(grads, x)


def test_blocked_matmul_schedule_matches_the_reference():
    from compiler.target import host_target

    tile = host_target().gemm_tile  # two row blocks, two column blocks of the host's tile
    r = np.random.default_rng(0)
    a = r.standard_normal((2 * tile.rows, 5)).astype(np.float32)
    b = r.standard_normal((5, 2 * tile.cols))
    c = r.standard_normal(2 * tile.cols).astype(np.float32)
    compiled = compiler.compile(
        lambda a, b, c: (a @ b + c).relu(), a, b.astype(np.float32), c, backend="numpy"
    )
    assert "acc_tile" in lower(compiled.fusion, "cpu")[0].pseudo_c()  # the register tile is used
    assert check_kernels(compiled, a, b.astype(np.float32), c) == 2


@pytest.mark.parametrize(
    "x_shape, kernel, stride, padding, dilation",
    [
        ((2, 3, 9, 10), (3, 3), (2, 2), (1, 1), (1, 1)),  # ResNet's max-pool: 2 taps an axis
        ((1, 2, 11, 9), (2, 3), (3, 2), (0, 1), (1, 1)),  # stride past the kernel: 0 or 1 tap
        ((1, 2, 9, 8), (3, 2), (2, 2), (1, 0), (2, 1)),  # dilated rows keep the full walk
        ((2, 2, 7, 7), (7, 7), (7, 7), (0, 0), (1, 1)),  # a global pool: 1 tap, not 49
        ((1, 2, 6, 6), (3, 3), (1, 1), (1, 1), (1, 1)),  # stride 1: every tap
    ],
)
def test_transposed_windows_walk_only_the_taps_that_reach_a_pixel(
    x_shape, kernel, stride, padding, dilation
):
    """fold2d and the gathered conv2d_grad_input visit, along an undilated strided axis, only
    the ceil(k / s) taps congruent to the pixel (`lower._window_taps`): every sum still
    equals the reference, in both schedules and compiled for the CPU."""
    r = np.random.default_rng(0)
    x = r.standard_normal(x_shape).astype(np.float32)
    windows = Tensor(x).unfold2d(kernel, stride, padding, dilation)
    cols = r.standard_normal(windows.shape).astype(np.float32)
    w = r.standard_normal((4, x_shape[1], *kernel)).astype(np.float32)
    g = r.standard_normal((x_shape[0], 4, *windows.shape[4:])).astype(np.float32)

    def fold(cols):
        return cols.fold2d(x_shape, stride, padding, dilation)

    def grad_input(g, w):
        return g.conv2d_grad_input(w, x_shape, stride, padding, dilation, 1)

    walked = tuple(
        -(-k // s) if d == 1 else k for k, s, d in zip(kernel, stride, dilation, strict=True)
    )
    for fn, args in ((fold, (cols,)), (grad_input, (g, w))):
        reference = compiler.compile(fn, *args, backend="numpy")
        assert check_kernels(reference, *args) == 2 * len(reference.kernels)
        (kernel_ir,) = reference.kernels
        extents = {lp.var: lp.extent for lp in _loops(kernel_ir.body)}
        assert (extents["kh"], extents["kw"]) == walked
        want = fn(*(Tensor(a) for a in args)).numpy()
        got = compiler.compile(fn, *args, backend="llvm")(*args)
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)


def _loops(body):
    for s in body:
        if isinstance(s, Loop):
            yield s
            yield from _loops(s.body)


def test_kernel_ir_max_and_min_keep_a_nan():
    """The IR's max/min are numpy's (a NaN wins), in the interpreter as in the backends."""
    x = np.random.default_rng(1).standard_normal((2, 3, 6, 6)).astype(np.float32)
    x[0, 1, 2, 3] = np.nan
    for f in (
        lambda t: t.relu().max_pool2d(3, 2, 1),
        lambda t: t.amax((0, 2, 3)) + t.amin(1).sum(),
    ):
        compiled = compiler.compile(f, x, backend="numpy")
        assert np.isnan(compiled(x)).any()
        assert check_kernels(compiled, x) > 0
