"""Eager vs compiled drift: the numpy backend equals eager mode bit for bit (dropout masks
included); llvm stays within its stated bound; `compiler.drift` finds where two runs part."""

import importlib.util

import numpy as np
import pytest

import compiler
from compiler.drift import compare
from compiler.passes import simplify
from models import MLP, AlexNet
from tinygrad_edu import Tensor, manual_seed, optim, rng


def cross_entropy(o, t):
    return o.cross_entropy(t)


def sgd(ps):
    return optim.SGD(ps, lr=0.01, momentum=0.9, weight_decay=5e-4)


def adam(ps):
    return optim.Adam(ps, lr=1e-3, weight_decay=1e-4)


MODELS = {
    "mlp": (lambda: MLP([64, 128, 64, 10]), (16, 64)),
    # dropout 0.5 in training mode: both runs must draw the same masks
    "alexnet-mini-dropout": (lambda: AlexNet(10, "mini"), (2, 3, 32, 32)),
}


def batches(shape, steps, dtype=np.float32, seed=0):
    g = np.random.default_rng(seed)
    return [
        (g.random(shape).astype(dtype), g.integers(0, 10, shape[0]))  # pixels in [0, 1)
        for _ in range(steps)
    ]


def run(model_name, make_opt, backend, steps, dtype=np.float32):
    """(eager model, compiled model, eager losses, compiled losses) over `steps` steps."""
    make, shape = MODELS[model_name]
    data = batches(shape, steps, dtype)
    runs = []
    for compiled in (False, True):
        manual_seed(0)
        model = make()
        for p in model.parameters():
            p.data = p.data.astype(dtype)
        opt = make_opt(model.parameters())
        if compiled:
            step = compiler.compile_train_step(model, cross_entropy, opt, *data[0], backend=backend)
        rng.manual_seed(1)  # the same dropout stream for both runs
        losses = []
        for x, y in data:
            if compiled:
                losses.append(step(x, y))
            else:
                loss = cross_entropy(model(Tensor(x, dtype=dtype)), y)
                opt.zero_grad()
                loss.backward()
                opt.step()
                losses.append(loss.item())
        runs.append((model, losses))
    (eager, want), (model, got) = runs
    return eager, model, want, got


@pytest.mark.parametrize("make_opt", [sgd, adam], ids=["sgd", "adam"])
@pytest.mark.parametrize("model_name", sorted(MODELS))
def test_numpy_backend_equals_eager_bit_for_bit_over_twenty_steps(model_name, make_opt):
    """float32, 20 steps: every loss and every parameter identical to the last bit. Before,
    simplify's permute(A @ B) = B^T @ A^T made the weight gradients differ in the last bits."""
    eager, model, want, got = run(model_name, make_opt, "numpy", 20)
    assert np.isfinite(want).all() and len(set(want)) == len(want)  # finite, each step new
    assert got == want
    for (name, a), (_, b) in zip(model.named_parameters(), eager.named_parameters()):
        assert a.data.dtype == b.data.dtype == np.float32
        np.testing.assert_array_equal(a.data, b.data, err_msg=name)


def test_dropout_masks_are_the_eager_ones_and_change_every_step():
    """The compiled step draws its masks from the same generator in the same order as eager
    mode, so the same stream gives the same masks; and a new mask every call."""
    _, _, want, got = run("alexnet-mini-dropout", sgd, "numpy", 3)
    assert got == want
    manual_seed(0)
    model = AlexNet(10, "mini")
    x, y = batches((2, 3, 32, 32), 1)[0]
    step = compiler.compile_train_step(
        model, cross_entropy, optim.SGD(model.parameters(), lr=0.0), x, y, backend="numpy"
    )
    assert step(x, y) != step(x, y)  # lr 0: only the masks change


def test_compiled_reference_keeps_float32_where_numpy_would_promote():
    """int / int is float32 eagerly (PyTorch's rule); the numpy backend computed it in
    float64 and rounded later, so the product below differed in the last bit."""
    a = np.arange(1, 7).reshape(2, 3)
    b = np.array([3, 7, 9])
    x = np.array([0.1, 0.2, 0.3], np.float32)
    f = compiler.compile(lambda a, b, x: (a / b) * x + x, a, b, x, backend="numpy")
    want = ((Tensor(a) / Tensor(b)) * Tensor(x) + Tensor(x)).numpy()
    got = f(a, b, x)
    assert got.dtype == want.dtype == np.float32
    np.testing.assert_array_equal(got, want)


def test_exact_simplify_keeps_transposed_products_as_traced():
    manual_seed(0)
    model = MLP([4, 3, 2])
    x, y = np.ones((5, 4), np.float32), np.array([0, 1, 0, 1, 1])
    step = compiler.compile_train_step(
        model, cross_entropy, optim.SGD(model.parameters(), lr=0.1), x, y, backend="numpy"
    )
    traced = step.compiled.traced
    ops = lambda g: sorted(g.node(n)["op"] for n in g.nx.nodes)  # noqa: E731
    exact, rewritten = simplify(traced, exact=True), simplify(traced)
    assert ops(exact).count("matmul") == ops(rewritten).count("matmul")
    # every exact node holds a traced value: `origin` points at it
    assert all(exact.node(n).get("origin") is not None for n in exact.nx.nodes)
    product_of_permute = [
        n
        for n in exact.nx.nodes
        if exact.node(n)["op"] == "permute" and exact.node(exact.operands(n)[0])["op"] == "matmul"
    ]
    assert product_of_permute  # the weight gradient's permute(A @ B) is still there
    assert not [
        n
        for n in rewritten.nx.nodes
        if rewritten.node(n)["op"] == "permute"
        and rewritten.node(rewritten.operands(n)[0])["op"] == "matmul"
    ]


def test_drift_tool_names_the_rewritten_product_as_the_root(monkeypatch):
    """With the B^T @ A^T rewrite forced back on for the numpy backend, the tool reports the
    weight-gradient products as the first differing values, with inputs equal to eager's."""
    original = compiler.simplify
    monkeypatch.setattr(compiler, "simplify", lambda g, exact=False: original(g, False))
    make, _ = MODELS["mlp"]
    report = compare(make, cross_entropy, sgd, batches((32, 64), 2), backend="numpy")
    first = report.first_difference
    assert first is not None and first.step == 1
    assert first.loss_eager == first.loss_compiled  # the forward is untouched
    roots = first.roots
    assert roots and all(r.op == "matmul" and "rewrote permute" in r.note for r in roots)
    assert {r.label for r in roots} <= {f"grad:layers.{i}.weight" for i in (0, 2, 4)}
    assert all(0 < r.max_rel < 1e-3 for r in roots)
    assert any(v for v in first.grads.values())


def test_drift_tool_finds_no_difference_on_the_numpy_backend():
    make, _ = MODELS["mlp"]
    report = compare(make, cross_entropy, adam, batches((8, 64), 3), backend="numpy")
    assert report.first_difference is None
    step = report.steps[0]
    assert step.compared > 40 and step.unmatched == 0 and step.same_random_draws
    assert "bit-identical" in str(report)


def test_drift_tool_sees_a_different_dropout_stream():
    """If the compiled step drew other masks, the tool says so at the dropout."""
    make, _ = MODELS["alexnet-mini-dropout"]

    def shifted(ps):  # draws one extra number between the eager and the compiled step
        opt = sgd(ps)
        real = opt.prepare

        def prepare(state, w, *group):  # group: the param group, since param_groups
            if w.ndim == 4 and w.shape[0] == 24:
                rng.generator().random()
            return real(state, w, *group)

        opt.prepare = prepare
        return opt

    report = compare(make, cross_entropy, shifted, batches((2, 3, 32, 32), 1))
    first = report.first_difference
    assert first is not None
    assert first.roots[0].op == "bernoulli"  # the first value that differs is a mask


def test_drift_tool_reports_the_first_llvm_kernel_that_differs():
    pytest.importorskip("llvmlite")
    make, _ = MODELS["mlp"]
    report = compare(make, cross_entropy, sgd, batches((32, 64), 1), backend="llvm")
    first = report.first_difference
    assert first is not None
    root = first.roots[0]
    assert "matmul" in root.kernel_ops  # a reassociated sum: the first layer's GEMM
    assert 0 < root.max_abs < 1e-5


@pytest.mark.parametrize("model_name", sorted(MODELS))
def test_llvm_float64_stays_within_1e_12_of_eager_over_twenty_steps(model_name):
    """The README's llvm bound: float64 losses and parameters to 1e-12 relative (of the
    largest parameter) over 20 steps, dropout included."""
    pytest.importorskip("llvmlite")
    eager, model, want, got = run(model_name, sgd, "llvm", 20, np.float64)
    np.testing.assert_allclose(got, want, rtol=1e-12)
    for (name, a), (_, b) in zip(model.named_parameters(), eager.named_parameters()):
        scale = float(np.abs(b.data).max())
        np.testing.assert_allclose(a.data, b.data, rtol=0, atol=1e-12 * scale, err_msg=name)


def test_drift_command_prints_where_runs_part(capsys):
    from compiler.__main__ import main

    main(["drift", "mlp", "--backend", "numpy", "--steps", "2", "--batch", "4"])
    out = capsys.readouterr().out
    assert "eager vs compiled (numpy, float32), 2 steps: bit-identical" in out
    if importlib.util.find_spec("llvmlite") is None:
        return
    main(["drift", "mlp", "--backend", "llvm", "--steps", "2", "--batch", "4"])
    out = capsys.readouterr().out
    assert "first difference at step 1" in out and "ROOT" in out and "matmul" in out
