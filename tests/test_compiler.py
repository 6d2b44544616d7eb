"""Compiler: passes on their own, differential tests against eager on random programs and on
the models, fusion of the AlexNet conv1 block, inspection outputs, and bad calls."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import compiler
from compiler.graph import trace
from compiler.passes import GraphError, autodiff, fuse, plan_memory, simplify, verify
from compiler.testing import programs
from models import MLP, AlexNet, LogisticRegression
from tinygrad_edu import Tensor, manual_seed, nn, optim
from tinygrad_edu.ops import OPS, infer_dtype


def eager_outputs(model, *xs):
    out = model(*(Tensor(x) for x in xs))
    return [o.numpy() for o in (out if isinstance(out, tuple) else (out,))]


def close(a, b, rtol=1e-5):
    scale = max(float(np.abs(b).max()), 1.0) if np.size(b) else 1.0
    np.testing.assert_allclose(a, b, rtol=rtol, atol=rtol * scale)


# -- differential: random programs --------------------------------------------------------
@settings(max_examples=30)
@given(program=programs(), seed=st.integers(0, 1000))
def test_compiled_random_programs_match_eager_forward(program, seed):
    xs = program.example_inputs(seed)
    got = compiler.compile(program, *xs).run(*xs)
    for name, want in zip(got, eager_outputs(program, *xs)):
        close(got[name], want)


@settings(max_examples=30)
@given(program=programs(), seed=st.integers(0, 1000))
def test_compiled_random_programs_match_eager_gradients(program, seed):
    xs = program.example_inputs(seed)

    def loss_of(outputs):
        loss = None
        for o in outputs:
            term = (o * o).mean()
            loss = term if loss is None else loss + term
        return loss

    graph = trace(lambda *ts: loss_of(program(*ts)), *xs, module=program)
    grads = compiler.build(
        autodiff(graph),
        bindings={n: (lambda p=p: p.data) for n, p in program.named_parameters()},
    ).run(*xs)
    program.zero_grad()
    eager = loss_of(program(*(Tensor(x) for x in xs)))
    if eager.requires_grad:
        eager.backward()
    close(grads["loss"], eager.numpy())
    for name, p in program.named_parameters():
        want = p.grad.numpy() if p.grad is not None else np.zeros(p.shape, np.float32)
        close(grads[f"grad:{name}"], want, rtol=1e-4)  # float32 sums in different orders


# -- models ----------------------------------------------------------------------------------
MODELS = {
    "logreg": (lambda: LogisticRegression(64, 10), (4, 64)),
    "mlp": (lambda: MLP([64, 32, 10]), (4, 64)),
    "alexnet-paper": (lambda: AlexNet(10, "paper"), (1, 3, 227, 227)),
    "alexnet-torchvision": (lambda: AlexNet(10, "torchvision"), (1, 3, 224, 224)),
}


@pytest.mark.parametrize(
    "name",
    # the paper layout runs with the slow tests (11 s on a Zen 3); the torchvision one has the
    # same ops at the default run's cost
    [
        pytest.param(n, marks=pytest.mark.slow) if n == "alexnet-paper" else n
        for n in sorted(MODELS)
    ],
)
def test_models_compiled_inference_and_train_step_match_eager(name):
    make, shape = MODELS[name]
    x = np.random.default_rng(0).standard_normal(shape).astype(np.float32)
    y = np.arange(shape[0]) % 10
    manual_seed(0)
    eager_model = make().eval()  # eval: dropout off, so both sides are deterministic
    manual_seed(0)
    model = make().eval()
    compiled = compiler.compile(model, x)
    close(compiled(x), eager_model(Tensor(x)).numpy())

    opt_eager = optim.SGD(eager_model.parameters(), lr=0.01, momentum=0.9, weight_decay=5e-4)
    opt = optim.SGD(model.parameters(), lr=0.01, momentum=0.9, weight_decay=5e-4)
    step = compiler.compile_train_step(model, lambda o, t: o.cross_entropy(t), opt, x, y)
    for _ in range(2):
        loss = eager_model(Tensor(x)).cross_entropy(y)
        opt_eager.zero_grad()
        loss.backward()
        opt_eager.step()
        assert step(x, y) == pytest.approx(loss.item(), rel=1e-5)
    for p, q in zip(model.parameters(), eager_model.parameters()):
        close(p.numpy(), q.numpy(), rtol=1e-4)


def test_train_step_with_dropout_draws_fresh_masks_each_call():
    manual_seed(0)
    model = AlexNet(10, "mini")  # training mode: dropout on
    x = np.random.default_rng(0).standard_normal((2, 3, 32, 32)).astype(np.float32)
    opt = optim.SGD(model.parameters(), lr=0.0)  # lr 0: the loss differs only by the masks
    step = compiler.compile_train_step(
        model, lambda o, t: o.cross_entropy(t), opt, x, np.array([1, 2])
    )
    assert step(x, np.array([1, 2])) != step(x, np.array([1, 2]))


def test_train_step_reads_the_learning_rate_each_call():
    model = LogisticRegression(4, 3)
    x, y = np.ones((2, 4), np.float32), np.array([0, 1])
    opt = optim.SGD(model.parameters(), lr=0.1)
    step = compiler.compile_train_step(model, lambda o, t: o.cross_entropy(t), opt, x, y)
    before = model.linear.weight.numpy().copy()
    opt.lr = 0.0
    step(x, y)
    np.testing.assert_array_equal(model.linear.weight.numpy(), before)


@pytest.mark.parametrize("backend", ["numpy", "llvm"])
def test_compiled_inputs_bind_by_argument_position_not_by_graph_order(backend):
    """The tracer meets b before a in `b * 2 + a`; a call still binds by position."""
    a, b = np.array([1.0, 2.0], np.float32), np.array([10.0, 20.0], np.float32)
    c = compiler.compile(lambda a, b: b * 2 + a, a, b, backend=backend)
    assert c.input_names == ["x0", "x1"]
    np.testing.assert_array_equal(c(a, b), [21.0, 42.0])
    np.testing.assert_array_equal(c(a, x1=b), [21.0, 42.0])
    np.testing.assert_array_equal(c(x1=b, x0=a), [21.0, 42.0])
    m = np.arange(6, dtype=np.float32).reshape(3, 2)  # unequal shapes, second read first
    c = compiler.compile(lambda v, m: (m * 2).sum(axis=0) + v, a, m, backend=backend)
    np.testing.assert_array_equal(c(a, m), (m * 2).sum(axis=0) + a)
    with pytest.raises(TypeError, match="both by position and by keyword"):
        c(a, x0=a)
    with pytest.raises(TypeError, match=r"missing \['x1'\]"):
        c(a)


@pytest.mark.parametrize("backend", ["numpy", "llvm"])
def test_compiled_function_accepts_an_input_it_never_reads(backend):
    a, b = np.array([1.0, 2.0], np.float32), np.ones((5, 3), np.float32)
    c = compiler.compile(lambda unused, x: x * 3, b, a, backend=backend)
    assert c.input_names == ["x0", "x1"]
    np.testing.assert_array_equal(c(b, a), [3.0, 6.0])


def test_train_step_binds_x_and_y_when_the_loss_reads_the_target_first():
    """`(t - o)` meets y before the model's output: x and y must still bind by position."""
    x = np.random.default_rng(0).standard_normal((4, 3)).astype(np.float32)
    y = np.random.default_rng(1).standard_normal((4, 2)).astype(np.float32)
    losses = []
    for compiled in (False, True):
        manual_seed(0)
        model = nn.Linear(3, 2)
        opt = optim.SGD(model.parameters(), lr=0.1)
        loss_fn = lambda o, t: ((t - o) * (t - o)).mean()  # noqa: E731
        if compiled:
            step = compiler.compile_train_step(model, loss_fn, opt, x, y, backend="numpy")
            assert step.input_names == ["x", "y"]
            losses.append([step(x, y) for _ in range(3)])
        else:
            run = []
            for _ in range(3):
                loss = loss_fn(model(Tensor(x)), Tensor(y))
                opt.zero_grad()
                loss.backward()
                opt.step()
                run.append(loss.item())
            losses.append(run)
    np.testing.assert_allclose(losses[1], losses[0], rtol=1e-6)


# -- fusion ------------------------------------------------------------------------------------
def conv1_block(x, w, b):
    return x.conv2d(w, b, stride=4).relu().max_pool2d(3, stride=2)


class Conv1Block(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 96, 11, stride=4)

    def forward(self, x):
        return self.conv(x).relu().max_pool2d(3, 2)


def test_alexnet_conv1_block_is_one_kernel_writing_only_the_pooled_output():
    x = np.zeros((2, 3, 227, 227), np.float32)
    compiled = compiler.compile(Conv1Block(), x)
    assert len(compiled.kernels) == 1
    kernel = compiled.kernels[0]
    assert [op for op in kernel.ops if op != "reshape"] == ["conv2d", "add", "relu", "max_pool2d"]
    assert [b.shape for b in kernel.outputs] == [(2, 96, 27, 27)]
    assert (
        kernel.flops
        == 2 * 2 * 96 * 55 * 55 * 3 * 11 * 11
        + 3 * 2 * 96 * 55 * 55 // 1
        - (2 * 96 * 55 * 55)
        + 2 * 96 * 27 * 27 * 9
    )  # conv MACs, add + relu, pool compares
    assert "pooling epilogue of the conv2d kernel" in compiled.explain_fusion()
    assert "on-chip tile" in kernel.pseudo_c()


def test_torchvision_alexnet_first_kernel_fuses_conv_bias_relu_pool():
    x = np.zeros((1, 3, 224, 224), np.float32)
    compiled = compiler.compile(AlexNet(10, "torchvision").eval(), x)
    first = [op for op in compiled.kernels[0].ops if op != "reshape"]
    assert first == ["conv2d", "add", "relu", "max_pool2d"]


def test_fusion_records_why_an_op_was_not_fused():
    class TwoReaders(nn.Module):
        def forward(self, x):
            h = x.exp()
            return h.sum() + h.max()  # h is read by two reductions: it must be written

    compiled = compiler.compile(TwoReaders(), np.ones((3, 4), np.float32))
    assert "read by 1 other op(s)" in compiled.explain_fusion()


def test_fusion_never_creates_a_cycle_between_kernels():
    class Diamond(nn.Module):
        def forward(self, x):
            h = x.tanh()
            s = h.sum(axis=1, keepdim=True)
            return h * s  # would-be epilogue of h's kernel reads a kernel that reads h

    x = np.random.default_rng(0).standard_normal((3, 4)).astype(np.float32)
    compiled = compiler.compile(Diamond(), x)
    close(compiled(x), Diamond()(Tensor(x)).numpy())


# -- passes on their own -----------------------------------------------------------------
def test_trace_keeps_repeated_operands():
    g = trace(lambda h: h * h, np.ones(3, np.float32))
    mul = [n for n in g.nx.nodes if g.node(n)["op"] == "mul"][0]
    assert g.operands(mul) == [0, 0]


def test_verify_names_the_inconsistent_node():
    g = trace(lambda x: x.relu() + 1.0, np.ones((2, 3), np.float32))
    bad = [n for n in g.nx.nodes if g.node(n)["op"] == "relu"][0]
    g.node(bad)["shape"] = (3, 2)
    with pytest.raises(GraphError, match=rf"%{bad} = relu"):
        verify(g)


def test_simplify_removes_dead_code_noops_and_folds_constants():
    def fn(x):
        _dead = x.exp()
        c = Tensor(np.full(3, 2.0, np.float32)) * 3.0  # constant subgraph
        return x.reshape(2, 3).reshape(2, 3).detach() + c

    g = trace(fn, np.ones((2, 3), np.float32))
    s = simplify(g)
    ops = sorted(s.node(n)["op"] for n in s.nx.nodes)
    assert ops == ["add", "const", "input"]
    const = [n for n in s.nx.nodes if s.node(n)["op"] == "const"][0]
    np.testing.assert_array_equal(s.node(const)["value"], np.full(3, 6.0))


def test_memory_plan_never_shares_a_buffer_between_live_values():
    x = np.zeros((1, 3, 227, 227), np.float32)
    g = simplify(trace(AlexNet(10, "paper").eval(), x))
    fusion = fuse(g)
    plan = plan_memory(fusion)
    assert plan.planned_bytes < plan.unplanned_bytes
    born = {}
    for k, group in enumerate(fusion.groups):
        for n in fusion.group_outputs(group):
            born[n] = k
    for a, ba in plan.buffer_of.items():
        for b, bb in plan.buffer_of.items():
            if a < b and ba == bb:
                end_a, end_b = plan.last_use[a], plan.last_use[b]
                assert end_a < born[b] or end_b < born[a]


def test_dtype_rule_matches_eager_results():
    r = np.random.default_rng(0)
    arrays = {
        "f32": r.standard_normal(4).astype(np.float32),
        "f64": r.standard_normal(4),
        "i64": np.arange(1, 5),
    }
    for op_name in ("add", "mul", "div", "maximum", "gt", "exp", "relu", "sum"):
        op = OPS[op_name]
        for a in arrays.values():
            for b in arrays.values():
                if op.kind in ("elementwise", "compare") and op_name not in ("exp", "relu"):
                    t = Tensor.apply(op, (Tensor._make(a), Tensor._make(b)), {})
                    want = infer_dtype(op, [a.dtype, b.dtype], {})
                else:
                    attrs = {"axis": (0,), "keepdim": False} if op_name == "sum" else {}
                    t = Tensor.apply(op, (Tensor._make(a),), attrs)
                    want = infer_dtype(op, [a.dtype], attrs)
                assert t.dtype == want, (op_name, a.dtype, b.dtype)


# -- using it ------------------------------------------------------------------------------------
def test_calling_with_the_wrong_shape_names_expected_and_actual():
    compiled = compiler.compile(MLP([64, 10]), np.zeros((4, 64), np.float32))
    with pytest.raises(
        ValueError,
        match=r"\(3, 64\) but the function was compiled for "
        r"\(4, 64\)",
    ):
        compiled(np.zeros((3, 64), np.float32))
    with pytest.raises(ValueError, match="dtype int64"):
        compiled(np.zeros((4, 64), np.int64))


def test_inspection_outputs(tmp_path, capsys, monkeypatch):
    x = np.zeros((2, 3, 227, 227), np.float32)
    monkeypatch.setenv("DEBUG", "3")
    compiled = compiler.compile(Conv1Block(), x)
    compiled(x)
    err = capsys.readouterr().err
    assert "1 kernel," in err and "void k0_conv_conv2d" in err
    assert "digraph" in compiled.to_dot()
    assert '"kernels"' in compiled.to_json()
    path = compiled.report(str(tmp_path / "r.html"))
    html = open(path).read()
    assert "<svg" in html and "k0_conv_conv2d" in html and "pooling epilogue" in html


def test_default_backend_is_llvm_and_the_environment_can_choose(monkeypatch):
    monkeypatch.delenv("TINYGRAD_EDU_BACKEND", raising=False)
    assert compiler.default_backend() == "llvm"
    x = np.ones((2, 3), np.float32)
    assert compiler.compile(lambda t: t.relu(), x).backend == "llvm"
    monkeypatch.setenv("TINYGRAD_EDU_BACKEND", "numpy")
    assert compiler.compile(lambda t: t.relu(), x).backend == "numpy"
    monkeypatch.setenv("TINYGRAD_EDU_BACKEND", "tpu")
    with pytest.raises(ValueError, match="unknown backend 'tpu'.*TINYGRAD_EDU_BACKEND"):
        compiler.compile(lambda t: t.relu(), x)


@pytest.mark.parametrize("backend", ["numpy", "llvm"])
def test_a_parameter_named_like_an_input_does_not_take_its_place(backend):
    """A module may call a parameter "x", the name compile_train_step gives the batch: the
    batch is still the first argument, the parameter still read from the module."""
    from tinygrad_edu import Tensor as DSLTensor
    from tinygrad_edu import nn as tnn
    from tinygrad_edu import optim as topt

    class Scaled(tnn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.x = DSLTensor(np.full((3,), 2.0), requires_grad=True)

        def forward(self, inp):
            return inp * self.x

    model = Scaled()
    batch = np.arange(6, dtype=np.float32).reshape(2, 3)
    fwd = compiler.compile(model, batch, backend=backend)
    np.testing.assert_allclose(fwd(batch), batch * 2.0)
    opt = topt.SGD(model.parameters(), lr=0.1)
    step = compiler.compile_train_step(
        model, lambda o, t: ((o - t) * (o - t)).mean(), opt, batch, batch, backend=backend
    )
    assert step.input_names[:2] == ["x", "y"]
    assert step(batch, batch) == pytest.approx(float(np.mean((batch * 2.0 - batch) ** 2)))
