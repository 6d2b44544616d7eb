"""fuse moves an elementwise op that one kernel writes out for a single reader elsewhere into
that reader's kernel, when what the op reads is in memory anyway (`_sink_into_readers`).

BatchNorm's backward is the case it is for: the input-gradient convolution's epilogue wrote
dy, dy * x_hat and dy * gamma / sigma where only dy has several readers. The tests check the
kernel writes what it must and no more, that the results do not change, and that a move
which would make a kernel write a value it kept in registers is refused."""

from __future__ import annotations

import importlib

import numpy as np
import pytest

import compiler
import tinygrad_edu.nn.functional as F  # noqa: N812 (PyTorch users write F)
from tinygrad_edu import Tensor, manual_seed, nn, optim

fuse_module = importlib.import_module("compiler.passes.fuse")
AXES = (0, 2, 3)


def conv_groups(compiled):
    g = compiled.fusion.graph
    return [
        grp
        for grp in compiled.fusion.groups
        if grp.anchor is not None and g.node(grp.anchor)["op"] == "conv2d"
    ]


def batch_norm_backward_like(x, w, m, a, gamma, sigma):
    """dy = conv(x) * mask; the two per-channel sums and dx of BatchNorm's backward."""
    dy = F.conv2d(x, w, padding=1) * m
    s1 = dy.sum(AXES, keepdim=True)
    s2 = (dy * a).sum(AXES, keepdim=True)
    return dy * gamma / sigma + s1 * a + s2, s1


def inputs(rng, dtype):
    shapes = [(2, 3, 6, 5), (4, 3, 3, 3), (2, 4, 6, 5), (2, 4, 6, 5), (1, 4, 1, 1), (1, 4, 1, 1)]
    out = [rng.standard_normal(s).astype(dtype) for s in shapes]
    out[2] = (out[2] > 0).astype(dtype)
    out[5] = np.abs(out[5]) + 0.5
    return out


@pytest.mark.parametrize("backend", ["numpy", "llvm"])
def test_the_convolution_writes_only_the_gradient_others_read_and_results_hold(backend):
    arrays = inputs(np.random.default_rng(0), np.float64)
    tensors = [Tensor(v, dtype="float64") for v in arrays]
    compiled = compiler.compile(batch_norm_backward_like, *tensors, backend=backend)
    (conv,) = conv_groups(compiled)
    g = compiled.fusion.graph
    written = compiled.fusion.group_outputs(conv)
    # dy alone: dy * a now runs in its sum's kernel, dy * gamma / sigma in dx's kernel
    assert [g.node(n)["op"] for n in written] == ["mul"]
    moved = [d for d in compiled.fusion.decisions if d.reason.startswith("moved from")]
    assert {d.op for d in moved} == {"mul", "div"} and len(moved) == 3
    got = list(compiled(*arrays).values())  # several outputs come back by name
    want = batch_norm_backward_like(*tensors)
    for a, b in zip(got, want, strict=True):
        np.testing.assert_allclose(a, b.numpy(), rtol=1e-12, atol=1e-12)


def test_a_value_kept_in_registers_is_not_written_out_to_move_its_reader():
    # conv(x) * a has one reader, a sum in another kernel; moving it there would make the
    # convolution write conv(x), which no one else reads: the convolution keeps it
    def f(x, w, a):
        return (F.conv2d(x, w, padding=1) * a).sum(AXES)

    rng = np.random.default_rng(1)
    x, w = rng.standard_normal((2, 3, 6, 5)), rng.standard_normal((4, 3, 3, 3))
    a = rng.standard_normal((2, 4, 6, 5))
    args = [Tensor(v, dtype="float64") for v in (x, w, a)]
    compiled = compiler.compile(f, *args, backend="llvm")
    (conv,) = conv_groups(compiled)
    g = compiled.fusion.graph
    assert [g.node(n)["op"] for n in compiled.fusion.group_outputs(conv)] == ["mul"]
    assert not [d for d in compiled.fusion.decisions if d.reason.startswith("moved from")]
    want = f(*args).numpy()
    np.testing.assert_allclose(compiled(x, w, a), want, rtol=1e-12, atol=1e-12)


def train_step(sink: bool, monkeypatch):
    if not sink:
        monkeypatch.setattr(fuse_module, "_sink_into_readers", lambda *args: {})
    manual_seed(0)
    model = nn.Sequential(
        nn.Conv2d(3, 8, 3, padding=1),
        nn.BatchNorm2d(8),
        nn.ReLU(),
        nn.Conv2d(8, 8, 3, padding=1),
        nn.BatchNorm2d(8),
        nn.ReLU(),
        nn.Flatten(),
        nn.Linear(8 * 8 * 8, 5),
    )
    rng = np.random.default_rng(2)
    x = rng.standard_normal((4, 3, 8, 8)).astype(np.float32)
    y = np.array([0, 1, 2, 3])
    opt = optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    step = compiler.compile_train_step(
        model, lambda out, t: out.cross_entropy(t), opt, x, y, backend="llvm"
    )
    losses = [float(step(x, y)) for _ in range(3)]
    moved = sum(k.bytes_read + k.bytes_written for k in step.compiled.kernels)
    params = [p.numpy().copy() for p in model.parameters()]
    return losses, params, moved


def test_a_batch_norm_training_step_moves_fewer_bytes_and_computes_the_same(monkeypatch):
    losses, params, moved = train_step(True, monkeypatch)
    with monkeypatch.context() as m:
        base_losses, base_params, base_moved = train_step(False, m)
    activation = 4 * 8 * 8 * 8 * 4  # bytes of one (4, 8, 8, 8) float32 tensor
    # at least three such tensors fewer written or read (the parameters' traffic is the same)
    assert base_moved - moved >= 3 * activation, (moved, base_moved)
    # the moved ops compute the same products in another kernel: identical in float32
    np.testing.assert_allclose(losses, base_losses, rtol=1e-6)
    for p, q in zip(params, base_params, strict=True):
        np.testing.assert_allclose(p, q, rtol=1e-5, atol=1e-6)
