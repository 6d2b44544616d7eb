"""Gradient allreduce on the GPU: NCCL through CuPy (`cupy.cuda.nccl`).

The MPI wheels are not CUDA-aware, so a gradient on the GPU would cross to the host for every
allreduce; NCCL sums device buffers where they are. MPI keeps its other jobs (launching the
ranks, broadcasting Python objects):

    comm = nccl_for(world)            # rank 0's NCCL id over MPI; device local_rank; cached
    comm.allreduce(flat[bucket], scale, after=comm.record())   # queued, returns at once
    comm.wait()                       # the compute stream waits for every queued allreduce

Why it is built this way:

- **One communicator per World**, from a unique id rank 0 draws and MPI broadcasts; building
  it is a collective over every rank, so it is made once and kept (`nccl_for`).
- **A communication stream of its own.** Kernels run asynchronously on the compute stream;
  an allreduce must start only after the kernels that write its bucket. The host records a
  CUDA event on the compute stream when it hands a bucket over, and the communication stream
  waits on that event (on the device: the host never blocks). NCCL progresses by itself, so no
  communication thread is needed (unlike MPI's Iallreduce).
- **Scale, then SUM, on that stream**: each rank multiplies its bucket by its own share n_r / N
  and NCCL sums, giving sum_r (n_r / N) g_r, the same as the MPI path (`buckets`).
- **Buckets in order on every rank**: NCCL, like MPI, pairs the ranks' calls by their order.

Not yet run on a device (no GPU was lent when it was written); tests/test_nccl.py checks the
protocol against a stand-in for `cupy.cuda.nccl` and runs it for real where a GPU is present.
"""

from __future__ import annotations

import weakref
from typing import Any

from .distributed import World

__all__ = ["NcclComm", "nccl_dtype", "nccl_for", "on_device"]

#: numpy dtype name -> the `cupy.cuda.nccl` constant of the same element type (the dtypes the
#: gradient buffer may have; a model is cast to one of them)
NCCL_DTYPES = {"float32": "NCCL_FLOAT32", "float64": "NCCL_FLOAT64"}

_INSTALL = 'pip install -e ".[cuda]" (cupy-cuda13x and nvidia-nccl-cu13)'

_comms: weakref.WeakKeyDictionary[World, NcclComm] = weakref.WeakKeyDictionary()


def on_device(array: Any) -> bool:
    """Whether `array` is a CuPy array (its allreduce goes through NCCL)."""
    return type(array).__module__.startswith("cupy")


def cupy_and_nccl(who: str) -> tuple[Any, Any]:
    """The `cupy` module and `cupy.cuda.nccl`, or an error naming what to install."""
    try:
        import cupy
    except ImportError:
        raise RuntimeError(f"{who} needs CuPy for gradients on the GPU. Fix: {_INSTALL}") from None
    try:
        from cupy.cuda import nccl
    except ImportError as e:
        raise RuntimeError(
            f"{who}: CuPy is installed but NCCL is not loadable ({e}). Fix: {_INSTALL}"
        ) from None
    if not getattr(nccl, "available", True):
        raise RuntimeError(f"{who}: CuPy was built without NCCL. Fix: {_INSTALL}")
    return cupy, nccl


def nccl_dtype(nccl: Any, dtype: Any) -> int:
    """The NCCL element type of numpy/CuPy `dtype`; an error for any other."""
    name = getattr(dtype, "name", str(dtype))
    if name not in NCCL_DTYPES:
        raise TypeError(
            f"NCCL allreduce: dtype {name} is not supported. Fix: cast the model to float32 "
            "or float64"
        )
    return getattr(nccl, NCCL_DTYPES[name])


class NcclComm:
    """An NCCL communicator over the ranks of `world`, on the GPU numbered `world.local_rank`
    of this host, with its own CUDA stream for the allreduces (see the module docstring)."""

    def __init__(self, world: World) -> None:
        self.cupy, self.nccl = cupy_and_nccl("NcclComm")
        self.world = world
        self.device = self.cupy.cuda.Device(world.local_rank)
        self.device.use()
        # every rank must build the communicator from the same id: rank 0's, sent over MPI
        uid = world.broadcast_object(self.nccl.get_unique_id() if world.is_root else None)
        self.comm = self.nccl.NcclCommunicator(world.size, uid, world.rank)
        self.stream = self.cupy.cuda.Stream(non_blocking=True)

    def record(self) -> Any:
        """A CUDA event recorded now on the compute (current) stream: what the kernels
        launched so far will have done once it fires."""
        event = self.cupy.cuda.Event(disable_timing=True)
        event.record(self.cupy.cuda.get_current_stream())
        return event

    def allreduce(self, view: Any, scale: Any = None, after: Any = None) -> None:
        """Queue, on the communication stream, `view *= scale` (when not None) and then the
        in-place sum of `view` (a contiguous CuPy array) over the ranks; `after`: an event
        the stream waits for first. Returns before the device has done it: see `wait`."""
        dtype = nccl_dtype(self.nccl, view.dtype)
        if after is not None:
            self.stream.wait_event(after)
        with self.stream:  # the scaling kernel goes on this stream, before the sum
            if scale is not None:
                view *= scale
        ptr = view.data.ptr
        self.comm.allReduce(ptr, ptr, view.size, dtype, self.nccl.NCCL_SUM, self.stream.ptr)

    def broadcast(self, array: Any, root: int = 0) -> Any:
        """Overwrite `array` (a contiguous CuPy array) with rank `root`'s, on the communication
        stream, and make the compute stream wait for it; returns `array`."""
        dtype = nccl_dtype(self.nccl, array.dtype)
        self.stream.wait_event(self.record())  # after whatever last wrote `array`
        ptr = array.data.ptr
        self.comm.broadcast(ptr, ptr, array.size, dtype, root, self.stream.ptr)
        self.wait()
        return array

    def wait(self) -> None:
        """Make the compute (current) stream wait until every call queued so far on the
        communication stream is done; the host does not block."""
        done = self.cupy.cuda.Event(disable_timing=True)
        done.record(self.stream)
        self.cupy.cuda.get_current_stream().wait_event(done)


def nccl_for(world: World) -> NcclComm:
    """The NCCL communicator of `world`, built on first use (a collective: every rank must
    ask for it at the same point) and kept for the World's life."""
    comm = _comms.get(world)
    if comm is None:
        comm = _comms[world] = NcclComm(world)
    return comm
