"""NCCL through CuPy (tinygrad_edu.nccl). Without a GPU: the protocol, against a stand-in for
`cupy` and `cupy.cuda.nccl` that records every call (rank 0's unique id over MPI, the device
by local rank, one allreduce per bucket in bucket order on the communication stream behind an
event recorded on the compute stream, the scale before the sum, dtype mapping, the error
without CuPy). With CuPy and a device (marked `gpu`): a real 1-rank NCCL allreduce and
DataParallel step on device="cuda" against the CPU, and 2 ranks under mpiexec with 2+ GPUs."""

import shutil
import subprocess
import sys
import textwrap
import types
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from tinygrad_edu import Tensor, distributed, nn, optim
from tinygrad_edu.buckets import BucketReducer, bucket_slices
from tinygrad_edu.data_parallel import DataParallel
from tinygrad_edu.nccl import NcclComm, nccl_dtype, nccl_for

ROOT = Path(__file__).resolve().parents[1]


# -- a stand-in for cupy and cupy.cuda.nccl ------------------------------------------------------
class FakeCupyArray(np.ndarray):
    """Host memory that calls itself a CuPy array; in-place multiplies are logged with the
    stream they ran on."""

    log: list = []
    current: list = []

    @property
    def data(self):  # CuPy's MemoryPointer: only .ptr is used
        return SimpleNamespace(ptr=self.ctypes.data)

    def __imul__(self, other):
        FakeCupyArray.log.append(("scale", FakeCupyArray.current[-1].ptr, float(other)))
        return super().__imul__(other)


FakeCupyArray.__module__ = "cupy._core.fake"


def fake_cupy(ranks_summed: int = 2) -> tuple[types.ModuleType, list]:
    """(the `cupy` stand-in, its call log). Its NCCL sum multiplies by `ranks_summed`, as if
    every rank held the same values."""
    log: list = []
    FakeCupyArray.log = log
    cupy = types.ModuleType("cupy")
    cuda = types.ModuleType("cupy.cuda")
    nccl = types.ModuleType("cupy.cuda.nccl")
    cupy.cuda, cuda.nccl = cuda, nccl

    class Stream:
        count = 0

        def __init__(self, non_blocking: bool = False) -> None:
            Stream.count += 1
            self.ptr = 1000 + Stream.count

        def wait_event(self, event) -> None:
            log.append(("wait", self.ptr, event.id))

        def __enter__(self):
            FakeCupyArray.current.append(self)

        def __exit__(self, *exc) -> None:
            FakeCupyArray.current.pop()

    compute = Stream()
    compute.ptr = 0  # the null stream
    FakeCupyArray.current = [compute]

    class Event:
        count = 0

        def __init__(self, disable_timing: bool = False) -> None:
            Event.count += 1
            self.id = Event.count

        def record(self, stream) -> None:
            log.append(("record", stream.ptr, self.id))

    class Device:
        def __init__(self, index: int) -> None:
            self.index = index

        def use(self) -> None:
            log.append(("device", self.index))

    class NcclCommunicator:
        def __init__(self, ndev: int, uid, rank: int) -> None:
            log.append(("communicator", ndev, uid, rank))

        def allReduce(self, send, recv, count, dtype, op, stream) -> None:  # noqa: N802
            log.append(("allreduce", send, recv, count, dtype, op, stream))
            assert send == recv  # in place
            view = np.ctypeslib.as_array(
                (
                    np.ctypeslib.as_ctypes_type({10: np.float32, 11: np.float64}[dtype]) * count
                ).from_address(recv)
            )
            view *= ranks_summed

        def broadcast(self, send, recv, count, dtype, root, stream) -> None:
            log.append(("broadcast", send, count, dtype, root, stream))

    cuda.Stream, cuda.Event, cuda.Device = Stream, Event, Device
    cuda.get_current_stream = lambda: FakeCupyArray.current[-1]
    nccl.NcclCommunicator = NcclCommunicator
    nccl.get_unique_id = lambda: ("uid", 42)
    nccl.NCCL_FLOAT32, nccl.NCCL_FLOAT64, nccl.NCCL_SUM = 10, 11, 0
    cupy.zeros = lambda n, dtype: np.zeros(n, dtype).view(FakeCupyArray)
    cupy.multiply = np.multiply
    return cupy, log


@pytest.fixture
def cupy_log(monkeypatch):
    cupy, log = fake_cupy()
    monkeypatch.setitem(sys.modules, "cupy", cupy)
    monkeypatch.setitem(sys.modules, "cupy.cuda", cupy.cuda)
    monkeypatch.setitem(sys.modules, "cupy.cuda.nccl", cupy.cuda.nccl)
    return log


def a_world(rank: int, size: int = 2) -> distributed.World:
    """A World that says it is rank `rank` of `size` (local rank = rank); its object
    broadcast returns what rank 0 would have sent, and is logged."""
    w = distributed.World()
    w.rank, w.size, w.local_rank = rank, size, rank
    w.sent = []

    def broadcast_object(obj, root=0):
        w.sent.append(obj)
        return ("uid", 42)

    w.broadcast_object = broadcast_object
    w.allreduce = lambda value: value  # the host-side _has_grad sum: the ranks agree
    return w


def test_communicator_is_built_from_rank_0s_id_on_the_local_device(cupy_log) -> None:
    root, other = a_world(0), a_world(1)
    NcclComm(root)
    assert root.sent == [("uid", 42)]  # rank 0 draws the id and broadcasts it
    NcclComm(other)
    assert other.sent == [None]  # the other ranks receive it
    assert [e for e in cupy_log if e[0] in ("device", "communicator")] == [
        ("device", 0),
        ("communicator", 2, ("uid", 42), 0),
        ("device", 1),
        ("communicator", 2, ("uid", 42), 1),
    ]
    assert nccl_for(other) is nccl_for(other)  # a collective: built once per World


def test_each_bucket_is_one_allreduce_in_order_behind_a_compute_event(cupy_log) -> None:
    flat = np.arange(1, 11, dtype=np.float32).view(FakeCupyArray)
    buckets = bucket_slices(10, 4, 12)  # [0:3] [3:6] [6:9] [9:10]
    spans = [(0, 4), (4, 7), (7, 10)]
    reducer = BucketReducer(flat, buckets, spans, a_world(0))
    assert not reducer.threaded  # NCCL queues on its stream: no communication thread
    comm = reducer.device.stream.ptr
    reducer.start(0.5)
    del cupy_log[:]
    reducer.ready(2)  # buckets 2 and 3 are complete, but bucket 0 goes first
    assert not [e for e in cupy_log if e[0] == "allreduce"]
    reducer.ready(0)
    reducer.ready(1)
    reducer.finish()
    base = flat.ctypes.data
    expected = []
    for b in buckets:
        event = len([e for e in expected if e[0] == "record"]) + 1
        expected += [("record", 0, event), ("wait", comm, event), ("scale", comm, 0.5)]
        ptr = base + b.start * 4
        expected.append(("allreduce", ptr, ptr, b.stop - b.start, 10, 0, comm))
    ids = [e[2] for e in cupy_log if e[0] == "record"]
    renumbered = [
        (e[0], e[1], ids.index(e[2]) + 1) if e[0] in ("record", "wait") else e for e in cupy_log
    ]
    # then the compute stream waits for the last allreduce
    expected += [("record", comm, len(buckets) + 1), ("wait", 0, len(buckets) + 1)]
    assert renumbered == expected
    # scaled by 0.5, then summed over two equal ranks
    np.testing.assert_array_equal(np.asarray(flat), np.arange(1, 11, dtype=np.float32))


def test_dtypes_map_to_nccl_types_and_others_are_an_error(cupy_log) -> None:
    nccl = sys.modules["cupy.cuda.nccl"]
    assert nccl_dtype(nccl, np.dtype(np.float32)) == nccl.NCCL_FLOAT32
    assert nccl_dtype(nccl, np.dtype(np.float64)) == nccl.NCCL_FLOAT64
    with pytest.raises(TypeError, match="int64 is not supported.*float32 or float64"):
        nccl_dtype(nccl, np.dtype(np.int64))


def test_data_parallel_on_the_gpu_reduces_through_nccl(cupy_log) -> None:
    w1 = nn.Parameter(np.ones((2, 3)))
    w2 = nn.Parameter(np.ones(4))
    for p in (w1, w2):
        p.data = p.data.view(FakeCupyArray)

    class Model:
        def parameters(self):
            return [w1, w2]

    dp = DataParallel(Model(), optim.SGD([w1, w2], lr=0.1), a_world(0), bucket_bytes=12)
    assert isinstance(dp.flat, FakeCupyArray) and dp.device is not None
    w1.grad = Tensor._make(np.full((2, 3), 3.0, np.float32).view(FakeCupyArray))
    w2.grad = Tensor._make(np.arange(4, dtype=np.float32).view(FakeCupyArray))
    del cupy_log[:]
    dp.reduce_gradients(0.25)
    calls = [e for e in cupy_log if e[0] == "allreduce"]
    assert [c[3] for c in calls] == [3, 3, 3, 1]  # 10 floats in buckets of 3
    np.testing.assert_array_equal(np.asarray(w1.grad.data), np.full((2, 3), 1.5, np.float32))
    np.testing.assert_array_equal(np.asarray(w2.grad.data), np.arange(4) * 0.5)


def test_without_cupy_the_error_names_the_extra(monkeypatch) -> None:
    monkeypatch.setitem(sys.modules, "cupy", None)
    with pytest.raises(RuntimeError, match=r'\.\[cuda\]".*nvidia-nccl-cu13'):
        NcclComm(distributed.World())


def test_cupy_without_nccl_is_an_error_naming_the_wheel(monkeypatch) -> None:
    cupy, _ = fake_cupy()
    del cupy.cuda.nccl
    monkeypatch.setitem(sys.modules, "cupy", cupy)
    monkeypatch.setitem(sys.modules, "cupy.cuda", cupy.cuda)
    monkeypatch.delitem(sys.modules, "cupy.cuda.nccl", raising=False)
    with pytest.raises(RuntimeError, match="NCCL is not loadable.*nvidia-nccl-cu13"):
        NcclComm(distributed.World())


# -- on a device ----------------------------------------------------------------------------------
def _gpus() -> tuple[int, str]:
    """(how many GPUs NCCL can use, why none)."""
    try:
        import cupy

        count = cupy.cuda.runtime.getDeviceCount()
    except Exception as e:  # noqa: BLE001 (no CuPy or no driver: no GPU test)
        return 0, f"no GPU/CuPy ({type(e).__name__}; pip install -e '.[cuda]')"
    try:
        from cupy.cuda import nccl  # noqa: F401
    except ImportError:
        return 0, "a GPU and CuPy but no NCCL (pip install nvidia-nccl-cu13)"
    return count, "no GPU/CuPy: no CUDA device is visible"


GPUS, WHY_NOT = _gpus()
needs_gpu = pytest.mark.skipif(GPUS < 1, reason=WHY_NOT)


@pytest.mark.gpu
@needs_gpu
def test_one_rank_nccl_allreduce_on_the_gpu() -> None:
    import cupy

    flat = cupy.arange(1, 11, dtype=cupy.float32)
    reducer = BucketReducer(flat, bucket_slices(10, 4, 12), [(0, 6), (6, 10)], distributed.World())
    reducer.start(0.5)
    reducer.ready(1)
    reducer.ready(0)
    reducer.finish()
    cupy.cuda.get_current_stream().synchronize()
    np.testing.assert_array_equal(cupy.asnumpy(flat), np.arange(1, 11, dtype=np.float32) / 2)


@pytest.mark.gpu
@needs_gpu
def test_data_parallel_backward_on_cuda_equals_the_cpu() -> None:
    gen = np.random.default_rng(0)
    w0, x0 = gen.standard_normal((3, 4)), gen.standard_normal((5, 3))
    grads = []
    for device in ("cpu", "cuda"):
        w = Tensor(w0, dtype=np.float32, requires_grad=True, device=device)
        x = Tensor(x0, dtype=np.float32, device=device)

        class Model:
            def parameters(self, w=w):
                return [w]

        dp = DataParallel(Model(), optim.SGD([w], lr=0.1), distributed.World(), overlap=True)
        dp.backward(x.matmul(w).tanh().sum(), 0.5)
        grads.append(w.grad.numpy())
    np.testing.assert_allclose(grads[1], grads[0], rtol=1e-5, atol=1e-6)


TWO_RANKS = textwrap.dedent(
    """
    import cupy, numpy as np
    from tinygrad_edu import distributed
    from tinygrad_edu.nccl import nccl_for
    w = distributed.world()
    comm = nccl_for(w)
    a = cupy.full(1000, w.rank + 1, dtype=cupy.float64)
    comm.allreduce(a, scale=2.0, after=comm.record())
    comm.wait()
    assert cupy.asnumpy(a).tolist() == [6.0] * 1000, cupy.asnumpy(a)[:4]
    print("rank", w.rank, "ok")
    """
)


@pytest.mark.gpu
@pytest.mark.skipif(GPUS < 2 or shutil.which("mpiexec") is None, reason="needs 2 GPUs + mpiexec")
def test_two_ranks_nccl_allreduce() -> None:
    run = subprocess.run(
        ["mpiexec", "-n", "2", sys.executable, "-c", TWO_RANKS],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert run.returncode == 0, run.stdout + run.stderr
    assert run.stdout.count(" ok") == 2
