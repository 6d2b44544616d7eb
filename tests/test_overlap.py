"""Gradient allreduce overlapped with backward (`DataParallel.backward`, `tinygrad_edu.buckets`).

In one process a stand-in world of two ranks (whose allreduce doubles, as two equal replicas
sum) shows the order, the thread and the timing of the bucket reductions; real 2- and 3-rank
jobs under mpiexec must give the parameters of the reduce-after-backward path bit for bit (the
same allreduce calls on the same bytes: MPI's reduction order is then the same too).
"""

from __future__ import annotations

import copy
import os
import threading

import numpy as np
import pytest
from test_distributed import _worker, needs_mpi

from models.mlp import MLP
from tinygrad_edu import Tensor, distributed, manual_seed, nn, optim
from tinygrad_edu.buckets import BucketReducer, bucket_slices
from tinygrad_edu.data_parallel import DataParallel


class TwoEqualRanks(distributed.World):
    """A world of two ranks holding the same gradients: allreduce doubles. Records each call
    (thread name, first element's offset in the flat buffer, length)."""

    def __init__(self) -> None:
        super().__init__()
        self.size = 2
        self.calls: list[tuple[str, int, int]] = []
        self.flat: np.ndarray | None = None

    def allreduce(self, value):
        if self.flat is not None and np.shares_memory(value, self.flat):
            offset = (value.ctypes.data - self.flat.ctypes.data) // value.itemsize
            self.calls.append((threading.current_thread().name, offset, value.size))
        value *= 2
        return value


def _mlp_step(dp: DataParallel, model: nn.Module, overlap: bool) -> None:
    gen = np.random.default_rng(7)
    x, y = gen.standard_normal((6, 12)).astype(np.float32), gen.integers(0, 3, 6)
    dp.optimizer.zero_grad()
    loss = model(Tensor(x)).cross_entropy(y)
    if overlap:
        dp.backward(loss, 0.375)
    else:
        loss.backward()
        dp.reduce_gradients(0.375)


def _pair(bucket_bytes: int) -> tuple[tuple, tuple]:
    manual_seed(0)
    model = MLP([12, 16, 8, 3])
    twin = copy.deepcopy(model)
    runs = []
    for m in (model, twin):
        w = TwoEqualRanks()
        dp = DataParallel(m, optim.SGD(m.parameters(), lr=0.1), w, bucket_bytes, overlap=True)
        w.flat = dp.flat
        runs.append((m, dp, w))
    return runs[0], runs[1]


def test_overlapped_backward_gives_the_bits_of_reducing_after_backward() -> None:
    (m1, dp1, w1), (m2, dp2, w2) = _pair(bucket_bytes=64)
    for _ in range(2):  # twice: the second step reuses the hooks and the buffer
        _mlp_step(dp1, m1, overlap=False)
        _mlp_step(dp2, m2, overlap=True)
    assert np.array_equal(dp1.flat, dp2.flat)
    for p, q in zip(m1.parameters(), m2.parameters()):
        assert np.array_equal(p.grad.numpy(), q.grad.numpy())
        assert np.shares_memory(q.grad.data, dp2.flat)  # a view of the buffer, not a copy
    # the same calls: the same buckets in the same order (on the communication thread)
    assert [c[1:] for c in w1.calls] == [c[1:] for c in w2.calls]
    assert [c[1] for c in w2.calls] == [b.start for b in dp2.buckets] * 2
    assert {c[0] for c in w2.calls} != {threading.current_thread().name}
    assert all(c[0].startswith("allreduce") for c in w2.calls)


def test_the_first_bucket_goes_out_while_backward_is_still_running() -> None:
    _, (model, dp, _) = _pair(bucket_bytes=64)
    _mlp_step(dp, model, overlap=True)
    reducer = dp._reducer
    assert reducer is not None and len(reducer.buckets) > 3
    spans = len(dp.optimizer.params)
    # bucket 0 (the last layer's bias) left when 1 of the 6 gradients was final; the
    # first layer's weight completes the last buckets
    assert reducer.launched_at[0] < spans / 2
    assert reducer.launched_at[-1] == spans


def test_a_parameter_without_a_gradient_counts_as_zero_and_keeps_grad_none() -> None:
    manual_seed(0)
    used, unused = nn.Linear(4, 3), nn.Linear(4, 3)
    params = [*used.parameters(), *unused.parameters()]

    class Model:
        def parameters(self):
            return params

    w = TwoEqualRanks()
    dp = DataParallel(Model(), optim.SGD(params, lr=0.1), w, bucket_bytes=16, overlap=True)
    dp.backward(used(Tensor(np.ones((2, 4), np.float32))).sum(), 1.0)
    assert unused.weight.grad is None and unused.bias.grad is None
    assert used.bias.grad.numpy().tolist() == [4.0, 4.0, 4.0]  # 2 rows, doubled by 2 ranks
    assert not dp.every_parameter_has_grad


def test_plain_backward_leaves_the_gradients_alone_and_an_error_leaves_no_step_open() -> None:
    _, (model, dp, world) = _pair(bucket_bytes=64)
    _mlp_step(dp, model, overlap=True)
    before, calls = dp.flat.copy(), len(world.calls)
    dp.optimizer.zero_grad()
    model(Tensor(np.ones((1, 12), np.float32))).sum().backward()  # no DataParallel
    assert np.array_equal(dp.flat, before) and len(world.calls) == calls
    with pytest.raises(RuntimeError, match="does not require grad"):
        dp.backward(Tensor(np.ones(())), 1.0)
    _mlp_step(dp, model, overlap=True)  # the failed step did not leave buckets pending
    assert len(world.calls) > calls


def test_bucket_reducer_sends_buckets_in_order_whatever_order_spans_fill() -> None:
    flat = np.arange(10, dtype=np.float64)
    buckets = bucket_slices(10, 8, 24)  # 3 elements each: [0:3] [3:6] [6:9] [9:10]
    world = TwoEqualRanks()
    world.flat = flat
    reducer = BucketReducer(flat, buckets, [(0, 4), (4, 7), (7, 10)], world)
    reducer.start(scale=0.5)
    reducer.ready(2)  # fills buckets 2 and 3, but bucket 0 has not gone out: nothing yet
    assert reducer.pending == 4
    reducer.ready(0)  # bucket 0 complete -> out; bucket 1 still needs span 1
    assert reducer.pending == 3
    reducer.ready(1)
    reducer.finish()
    assert [c[1] for c in world.calls] == [0, 3, 6, 9]
    np.testing.assert_array_equal(flat, np.arange(10.0))  # x 0.5, then x 2 by the "ranks"


def test_overlap_needs_a_core_for_the_communication_thread() -> None:
    # kernel + BLAS threads and the communication thread never outnumber a rank's cores
    assert distributed.split_cores(8) == (7, True)
    assert distributed.split_cores(2) == (1, True)
    assert distributed.split_cores(1) == (1, False)  # 2 ranks on 2 cores: no overlap
    assert distributed.split_cores(8, threads_may_communicate=False) == (8, False)
    model = MLP([4, 2])
    for keep in (True, False):
        w = TwoEqualRanks()
        w.communication_core = keep
        assert DataParallel(model, optim.SGD(model.parameters(), lr=0.1), w).overlap is keep


def test_bad_bucket_size_is_an_error_with_the_fix() -> None:
    model = MLP([4, 2])
    with pytest.raises(ValueError, match="bucket_bytes must be positive.*25 \\* 2\\*\\*20"):
        DataParallel(model, optim.SGD(model.parameters(), lr=0.1), distributed.World(), 0)


@needs_mpi
@pytest.mark.parametrize(
    "ranks, flags",
    [
        (2, ()),
        pytest.param(3, (), marks=pytest.mark.slow),  # 2 ranks cover the default run
        (2, ("--compiled",)),
        pytest.param(3, ("--compiled",), marks=pytest.mark.slow),  # 3 compiling ranks, 2 cores
    ],
    ids=["2-ranks-eager", "3-ranks-eager", "2-ranks-compiled", "3-ranks-compiled"],
)
def test_overlapped_jobs_equal_reduce_after_backward_bit_for_bit(
    tmp_path, ranks: int, flags: tuple[str, ...]
) -> None:
    # 512-byte buckets: the MLP's 17,226 float32 gradients go out in 135 allreduces
    small = ("--bucket-bytes", "512", *flags)
    (os.makedirs(tmp_path / "after"), os.makedirs(tmp_path / "overlap"))
    after = _worker(ranks, tmp_path / "after", "mlp", "float32", *small)
    overlapped = _worker(ranks, tmp_path / "overlap", "mlp", "float32", *small, "--overlap")
    for a, b in zip(after, overlapped):
        assert all(np.array_equal(a[k], b[k]) for k in a)
    assert all(np.array_equal(overlapped[0][k], r[k]) for r in overlapped[1:] for k in r)


# -- compiled: gradient kernels writing into the flat buffer ----------------------------------
def _compiled_pair(backend: str, model_fn) -> list[tuple]:
    from compiler.grad_step import compile_gradient_step

    manual_seed(0)
    model = model_fn()
    runs = []
    for m, overlap in ((model, False), (copy.deepcopy(model), True)):
        w = TwoEqualRanks()
        opt = optim.SGD(m.parameters(), lr=0.1)
        dp = DataParallel(m, opt, w, bucket_bytes=64, overlap=True)
        w.flat = dp.flat
        gen = np.random.default_rng(7)
        x, y = gen.standard_normal((6, 12)).astype(np.float32), gen.integers(0, 3, 6)
        step = compile_gradient_step(m, lambda o, t: o.cross_entropy(t), opt, x, y, backend)
        for _ in range(2):
            opt.zero_grad()
            if overlap:
                loss = step.reduce_into(dp, x, y, 0.375)
            else:
                loss, grads = step(x, y)
                step.set_grads(m, grads)
                dp.reduce_gradients(0.375)
        runs.append((m, dp, w, step, loss))
    return runs


class WithUnusedLayer(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.used, self.unused = MLP([12, 16, 3]), nn.Linear(12, 3)

    def forward(self, x: Tensor) -> Tensor:
        return self.used(x)


@pytest.mark.parametrize("backend", ["llvm", "numpy"])
@pytest.mark.parametrize(
    "model_fn", [lambda: MLP([12, 16, 8, 3]), WithUnusedLayer], ids=["mlp", "unused-layer"]
)
def test_compiled_gradients_into_the_flat_buffer_equal_the_copying_path(backend, model_fn) -> None:
    (m1, dp1, w1, _, loss1), (m2, dp2, w2, step, loss2) = _compiled_pair(backend, model_fn)
    assert loss1 == loss2
    assert np.array_equal(dp1.flat, dp2.flat)
    assert [c[1:] for c in w1.calls] == [c[1:] for c in w2.calls]
    computed = 0
    for (name, p), q in zip(m1.named_parameters(), m2.parameters()):
        if name.startswith("unused"):  # not in the traced graph: no gradient on either path
            assert p.grad is None and q.grad is None
            continue
        computed += 1
        assert np.array_equal(p.grad.numpy(), q.grad.numpy())
        assert np.shares_memory(q.grad.data, dp2.flat)
    # the LLVM kernels write every gradient in place; numpy's are copied in
    assert step.copied == (0 if backend == "llvm" else computed)
    # the gradient kernels run last layer first, so the first bucket (the last layer's) goes
    # out while the kernels of the layers below still run
    reducer = dp2._reducer
    assert reducer.launched_at[0] < len(m2.parameters()) / 2
    assert all(c[0].startswith("allreduce") for c in w2.calls)
