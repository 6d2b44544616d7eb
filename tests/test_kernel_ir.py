"""The kernel IR computes what its group's ops compute: every kernel of random programs and of
small models, interpreted element by element (C semantics), equals the numpy reference."""

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

import compiler
from compiler.graph import trace
from compiler.interpret import NotInterpretableError, run_kernel
from compiler.lower import buffer_name, lower
from compiler.passes import autodiff
from compiler.testing import programs, scalar_loss
from models import MLP
from tinygrad_edu import nn, optim


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
