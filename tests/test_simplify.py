"""simplify's common subexpression elimination and its sum rewrite (factors constant along a
sum's axes taken out of it): what they merge and rewrite, what they must leave alone, and
that the compiled values still equal eager's."""

import numpy as np
import pytest

import compiler
from compiler.graph import trace
from compiler.passes import autodiff, simplify
from tinygrad_edu import Tensor, manual_seed, nn, optim


def ops(g):
    return sorted(g.node(n)["op"] for n in g.nx.nodes)


def sums_over(g, shape):
    """The sum nodes of g whose operand has `shape`."""
    return [
        n
        for n in g.nx.nodes
        if g.node(n)["op"] == "sum" and g.node(g.operands(n)[0])["shape"] == tuple(shape)
    ]


def test_cse_computes_a_repeated_expression_once():
    x = np.ones((3, 4), np.float32)
    g = simplify(trace(lambda x: x.exp().sum(1) + x.exp().sum(1), x), exact=True)
    assert ops(g).count("exp") == 1 and ops(g).count("sum") == 1


def test_cse_keeps_two_random_draws_two():
    manual_seed(0)
    drop = nn.Dropout(0.5)
    x = np.ones((8, 8), np.float32)
    g = simplify(trace(lambda x: drop(x) + drop(x), x))
    assert ops(g).count("bernoulli") == 2


def test_cse_keeps_outputs_distinct_nodes():
    x = np.ones((3,), np.float32)
    g = simplify(trace(lambda x: (x * 2.0, x * 2.0), x))
    assert len(set(g.outputs)) == 2
    first, second = compiler.compile(lambda x: (x * 2.0, x * 2.0), x)(x).values()
    np.testing.assert_array_equal(first, 2.0)
    np.testing.assert_array_equal(second, 2.0)


@pytest.mark.parametrize(
    "x_shape, w_shape, axis, keepdim",
    [
        ((4, 3, 5, 5), (1, 3, 1, 1), (0, 2, 3), True),  # BatchNorm's per-channel factor
        ((4, 3, 5, 5), (3, 1, 1), (0, 2, 3), False),  # lower rank, dims dropped
        ((6, 7), (6, 1), (1,), False),  # per-row factor of a row sum
        ((2, 3, 4), (4,), (0, 1), True),
    ],
)
def test_factors_constant_along_the_sum_leave_it(x_shape, w_shape, axis, keepdim):
    r = np.random.default_rng(0)
    x = r.standard_normal(x_shape).astype(np.float32)
    w = r.standard_normal(w_shape).astype(np.float32)
    s = (np.abs(r.standard_normal(w_shape)) + 0.5).astype(np.float32)

    def fn(x, w, s):
        return (-(x * w) / s).sum(axis, keepdim=keepdim)

    g = simplify(trace(fn, x, w, s))
    (only,) = [n for n in g.nx.nodes if g.node(n)["op"] == "sum"]
    assert g.node(g.operands(only)[0])["op"] == "input"  # sum(x) itself, times w / s outside
    exact = simplify(trace(fn, x, w, s), exact=True)
    assert g.node(only)["shape"] == exact.node(exact.outputs[0])["shape"]
    (kept,) = [n for n in exact.nx.nodes if exact.node(n)["op"] == "sum"]
    assert exact.node(exact.operands(kept)[0])["op"] == "div"  # the reference: as traced
    want = fn(Tensor(x), Tensor(w), Tensor(s)).numpy()
    got = compiler.compile(fn, x, w, s, backend="llvm")(x, w, s)
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5 * np.abs(want).max())


def test_a_factor_varying_along_the_sum_stays_inside():
    x = np.ones((4, 5), np.float32)
    v = np.arange(5, dtype=np.float32)
    g = simplify(trace(lambda x, v: (x * v).sum(1), x, v))
    (only,) = [n for n in g.nx.nodes if g.node(n)["op"] == "sum"]
    assert g.node(g.operands(only)[0])["op"] == "mul"
    np.testing.assert_allclose(compiler.compile(lambda x, v: (x * v).sum(1), x, v)(x, v), 10.0)


def test_a_sum_of_a_broadcast_term_is_not_split():
    """sum(x + b) with b broadcast is sum(x) + count * b, not sum(x) + b: left as traced."""
    x = np.ones((4, 5), np.float32)
    b = np.full((4, 1), 2.0, np.float32)

    def fn(x, b):
        return (x * b + b).sum(1)

    np.testing.assert_allclose(compiler.compile(fn, x, b)(x, b), fn(Tensor(x), Tensor(b)).numpy())


def batchnorm_model():
    manual_seed(0)
    model = nn.Sequential(
        nn.Conv2d(3, 8, 3, padding=1, bias=False), nn.BatchNorm2d(8), nn.ReLU(),
        nn.Conv2d(8, 4, 3, padding=1), nn.Flatten(), nn.Linear(4 * 6 * 6, 5),
    )  # fmt: skip
    return model, optim.SGD(model.parameters(), lr=0.1, momentum=0.9)


def test_batchnorm_backward_sums_three_full_tensors_and_matches_eager():
    """BatchNorm's backward needs sum(g), sum(g * (x - mean)) and sum(x - mean) over the
    batch; as traced it sums five full-size tensors (two the same as the weight's and bias's
    gradients up to per-channel factors). The rewrite leaves three, and the compiled steps
    still equal eager's (every BatchNorm statistic and parameter included)."""
    r = np.random.default_rng(1)
    x = r.standard_normal((4, 3, 6, 6)).astype(np.float32)
    y = np.array([0, 1, 2, 3])
    model, opt = batchnorm_model()
    step = compiler.compile_train_step(
        model, lambda o, t: o.cross_entropy(t), opt, x, y, backend="llvm"
    )
    full = (4, 8, 6, 6)
    # forward: sum(x) for the mean (traced twice: mean and var each take it) and
    # sum((x - mean)^2); backward: five as traced, three rewritten
    assert len(sums_over(step.compiled.traced, full)) == 3 + 5
    assert len(sums_over(step.compiled.graph, full)) == 2 + 3
    eager_model, eager_opt = batchnorm_model()
    for _ in range(3):
        step(x, y)
        eager_opt.zero_grad()
        eager_model(Tensor(x)).cross_entropy(Tensor(y)).backward()
        eager_opt.step()
    got, want = model.state_dict(), eager_model.state_dict()
    for name in want:
        np.testing.assert_allclose(
            np.asarray(got[name]), np.asarray(want[name]), rtol=1e-4, atol=1e-5, err_msg=name
        )


@pytest.mark.parametrize(
    "kernel, padding, dilation, stride, groups, rewritten",
    [
        ((3, 3), (1, 1), (1, 1), (1, 1), 1, True),
        ((3, 2), (2, 0), (2, 1), (1, 1), 1, True),  # dilated, uneven: padding d(k-1)-p = (2, 1)
        ((1, 1), (1, 1), (1, 1), (1, 1), 1, False),  # padding d(k-1)-p = -1: stays a gradient
        ((3, 3), (1, 1), (1, 1), (2, 2), 1, False),  # strided: conv_gemm's phases
        ((3, 3), (1, 1), (1, 1), (1, 1), 2, False),  # grouped
    ],
)
def test_a_stride_1_input_gradient_becomes_the_convolution_it_is(
    kernel, padding, dilation, stride, groups, rewritten
):
    r = np.random.default_rng(2)
    x = r.standard_normal((2, 4, 7, 8)).astype(np.float32)
    manual_seed(0)
    net = nn.Sequential(
        nn.Conv2d(4, 4, 1),  # its weight's gradient needs the next layer's input gradient
        nn.Conv2d(4, 6, kernel, stride, padding, dilation, groups, bias=False),
    )

    def loss(x):
        out = net(x)
        return (out * out).sum()

    graph = autodiff(trace(loss, x, module=net))
    build = compiler.build(
        graph, "llvm", {n: (lambda p=p: p.data) for n, p in net.named_parameters()}
    )
    g = build.graph
    grads_input = [n for n in g.nx.nodes if g.node(n)["op"] == "conv2d_grad_input"]
    convs = [n for n in g.nx.nodes if g.node(n)["op"] == "conv2d"]
    assert (len(grads_input), len(convs)) == ((0, 3) if rewritten else (1, 2))
    if rewritten:  # the flipped, transposed weight is written by its own kernel, once
        (weight,) = [c for c in build.kernels if c.ops == ["getitem", "permute"]]
        assert weight.outputs[0].shape == (4, 6, *kernel)
    loss(Tensor(x)).backward()
    got = build.run(x)
    for name, p in net.named_parameters():
        want = p.grad.numpy()
        scale = np.abs(want).max()
        np.testing.assert_allclose(
            got[f"grad:{name}"], want, rtol=1e-4, atol=1e-5 * scale, err_msg=name
        )
