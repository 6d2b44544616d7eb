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


def eager_outputs(model, x):
    out = model(Tensor(x))
    return [o.numpy() for o in (out if isinstance(out, tuple) else (out,))]


def close(a, b, rtol=1e-5):
    scale = max(float(np.abs(b).max()), 1.0) if np.size(b) else 1.0
    np.testing.assert_allclose(a, b, rtol=rtol, atol=rtol * scale)


# -- differential: random programs --------------------------------------------------------
@settings(max_examples=30)
@given(program=programs(), seed=st.integers(0, 1000))
def test_compiled_random_programs_match_eager_forward(program, seed):
    x = np.random.default_rng(seed).standard_normal(program.x_shape).astype(np.float32)
    compiled = compiler.compile(program, x)
    got = compiled.run(x)
    for name, want in zip(got, eager_outputs(program, x)):
        close(got[name], want)


@settings(max_examples=30)
@given(program=programs(), seed=st.integers(0, 1000))
def test_compiled_random_programs_match_eager_gradients(program, seed):
    x = np.random.default_rng(seed).standard_normal(program.x_shape).astype(np.float32)

    def loss_of(outputs):
        loss = None
        for o in outputs:
            term = (o * o).mean()
            loss = term if loss is None else loss + term
        return loss

    graph = trace(lambda t: loss_of(program(t)), x, module=program)
    grads = compiler.build(
        autodiff(graph, sgd=None),
        bindings={n: (lambda p=p: p.data) for n, p in program.named_parameters()},
    ).run(x)
    program.zero_grad()
    eager = loss_of(program(Tensor(x)))
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


@pytest.mark.parametrize("name", sorted(MODELS))
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
    assert "1 kernels" in err and "void k0_conv2d" in err
    assert "digraph" in compiled.to_dot()
    assert '"kernels"' in compiled.to_json()
    path = compiled.report(str(tmp_path / "r.html"))
    html = open(path).read()
    assert "<svg" in html and "k0_conv2d" in html and "pooling epilogue" in html


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
