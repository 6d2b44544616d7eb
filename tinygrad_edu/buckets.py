"""Gradient buckets of one flat buffer, each allreduced as soon as its gradients are final.

Data-parallel training sums every gradient over the ranks. Doing it after backward leaves the
network idle while backward runs and the cores idle while the network runs; starting each
bucket's allreduce once its gradients are final overlaps the two (PyTorch DDP, Horovod):

    reducer = BucketReducer(flat, buckets, spans, world)
    reducer.start(scale=None)        # a new step
    ... reducer.ready(i) ...         # parameter i's part of `flat` is final (in any order)
    reducer.finish()                 # every bucket reduced: `flat` holds the sums

Rules, and why:

- **Buckets go out in index order, on every rank.** MPI pairs the ranks' collectives by their
  order, so bucket k+1 waits for bucket k even when it fills first; a rank whose gradients
  arrive in another order (or that has no samples at all) still issues the same sequence.
- **A communication thread runs the blocking Allreduce** (Horovod's way). A nonblocking
  Iallreduce does not progress by itself with MPICH or Open MPI (it would need Test() calls
  between kernels), and MPICH's asynchronous-progress thread made small messages 50x slower on
  2 cores. mpi4py releases the GIL inside MPI calls, so backward goes on meanwhile. The main
  thread makes no MPI call until `finish` returns, so MPI_THREAD_SERIALIZED suffices; with a
  lower thread level the buckets are reduced on the calling thread in `finish`.
- **The same calls as without overlap**: the same buckets (same sizes, same order) and the same
  arithmetic, so the result is bit-identical to reducing after backward.

`scale` (when not None) multiplies each bucket in place just before it is reduced (a rank's
share n_r / N of the global batch), on the communication thread.

A flat buffer on the GPU (a CuPy array) is reduced by NCCL instead (`tinygrad_edu.nccl`): each
bucket, when it goes out, is queued on NCCL's stream behind a CUDA event recorded on the compute
stream, with no thread; `finish` makes the compute stream wait for the last one. World size 1
takes the same path.
"""

from __future__ import annotations

import os
import threading
from concurrent.futures import Future, ThreadPoolExecutor

import numpy as np

from .distributed import World
from .nccl import nccl_for, on_device

__all__ = ["BucketReducer", "bucket_slices"]


def bucket_slices(size: int, itemsize: int, bucket_bytes: int) -> list[slice]:
    """A flat buffer of `size` elements cut into consecutive slices of `bucket_bytes` each
    (the last one shorter); one allreduce each."""
    if bucket_bytes < 1:
        raise ValueError(
            f"buckets: bucket_bytes must be positive, got {bucket_bytes}. Fix: pass the bytes "
            "per allreduce, e.g. 25 * 2**20 (PyTorch DDP's default)"
        )
    step = max(1, bucket_bytes // itemsize)
    return [slice(lo, min(lo + step, size)) for lo in range(0, size, step)]


class BucketReducer:
    """Allreduces `flat[bucket]` over `world` for each bucket, in order, once every span
    `(lo, hi)` of `flat` that overlaps it is marked ready (see the module docstring).
    `threaded=False` reduces everything on the calling thread in `finish`."""

    def __init__(
        self,
        flat: np.ndarray,
        buckets: list[slice],
        spans: list[tuple[int, int]],
        world: World,
        threaded: bool = True,
    ) -> None:
        self.flat, self.buckets, self.world = flat, buckets, world
        #: the NCCL communicator when `flat` is on the GPU (None: MPI on the host)
        self.device = nccl_for(world) if on_device(flat) else None
        # one process: nothing to wait for; NCCL: queued on its stream, no thread needed
        self.threaded = threaded and world.size > 1 and self.device is None
        # which buckets each span touches, and how many spans each bucket waits for
        self._touches: list[list[int]] = [
            [b for b, s in enumerate(buckets) if lo < s.stop and s.start < hi] for lo, hi in spans
        ]
        self._needs = [0] * len(buckets)
        for touched in self._touches:
            for b in touched:
                self._needs[b] += 1
        self._pool: ThreadPoolExecutor | None = None
        self._pool_pid = 0
        self._lock = threading.Lock()
        self._reset(None)

    def _reset(self, scale: float | None) -> None:
        self._scale = None if scale is None else self.flat.dtype.type(scale)
        self._waiting = list(self._needs)
        self._done = [False] * len(self._touches)
        self._next = 0  # the next bucket to launch
        self._futures: list[Future[None]] = []
        self.launched_at: list[int] = []  # spans marked ready when each bucket went out

    @property
    def pending(self) -> int:
        """Buckets not yet handed to the communication thread this step."""
        return len(self.buckets) - self._next

    def is_ready(self, span: int) -> bool:
        """Whether span `span` was marked ready this step."""
        return self._done[span]

    def start(self, scale: float | None = None) -> None:
        """Begin a step: no span ready, no bucket launched."""
        if self._futures or self._next:
            raise RuntimeError(
                "BucketReducer.start: the previous step's buckets were not finished. Fix: call "
                "finish() (or abandon() after an error) before starting the next step"
            )
        self._reset(scale)

    def ready(self, span: int) -> None:
        """Span `span`'s values are final: launch every bucket that is now complete and whose
        predecessors have gone out. Marking a span twice in a step does nothing."""
        with self._lock:  # hooks may fire from another thread (a kernel callback)
            if self._done[span]:
                return
            self._done[span] = True
            for b in self._touches[span]:
                self._waiting[b] -= 1
            marked = sum(self._done)
            while self._next < len(self.buckets) and self._waiting[self._next] == 0:
                if self.device is not None:  # after the kernels that wrote the bucket
                    view = self.flat[self.buckets[self._next]]
                    self.device.allreduce(view, self._scale, after=self.device.record())
                elif self.threaded:
                    self._futures.append(self._executor().submit(self._reduce, self._next))
                self.launched_at.append(marked)
                self._next += 1

    def finish(self) -> None:
        """Mark every span ready, launch what is left, and wait until every bucket is reduced
        (re-raising the communication thread's error, if any)."""
        for span in range(len(self._touches)):
            self.ready(span)
        futures, self._futures = self._futures, []
        if self.device is not None:
            self.device.wait()
        elif not self.threaded:
            for b in range(len(self.buckets)):
                self._reduce(b)
        for f in futures:
            f.result()
        self._next = 0

    def abandon(self) -> None:
        """After an error in backward: wait for the buckets already handed out (their peers on
        the other ranks are in the same calls) and forget the rest, so a new step can start."""
        futures, self._futures = self._futures, []
        for f in futures:
            f.exception()
        if self.device is not None:
            self.device.wait()
        self._next = 0

    def _reduce(self, b: int) -> None:
        view = self.flat[self.buckets[b]]
        if self._scale is not None:
            np.multiply(view, self._scale, out=view)
        if self.world.size > 1:
            self.world.allreduce(view)

    def _executor(self) -> ThreadPoolExecutor:
        # one worker: the buckets are reduced one after another, in submission order; a
        # forked child (a DataLoader worker) gets its own thread, not its parent's dead one
        if self._pool is None or self._pool_pid != os.getpid():
            self._pool = ThreadPoolExecutor(1, thread_name_prefix="allreduce")
            self._pool_pid = os.getpid()
        return self._pool
