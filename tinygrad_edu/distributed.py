"""Processes that train together: rank, world size, broadcast, allreduce, barrier on MPI.

    world = distributed.world()          # the processes of this job (one, when not launched)
    world.broadcast(model_weights)       # rank 0's values, in place, on every rank
    world.allreduce(gradients)           # the sum over ranks, in place
    if world.rank == 0: save(...)
    world.barrier()

Launch a job with `mpiexec -n W python -m mpi4py SCRIPT` (`pip install -e ".[mpi]"` adds
mpi4py and the MPICH wheel). `-m mpi4py` makes an exception on one rank abort the whole job
instead of leaving the others waiting in their next collective.

Not launched by mpiexec, `world()` is a world of one process that needs no MPI at all, and its
collectives return at once with their input unchanged: a script calls the same functions
whatever the world size. Launched by mpiexec (its environment variables say so: `PMI_RANK`,
`OMPI_COMM_WORLD_RANK`, `PMIX_RANK`), a missing mpi4py is an error naming the extra, never a
silent run of W independent copies.

Kernel and BLAS threads: W ranks on a host of C cores each get C // W threads (`world()` sets
`$TINYGRAD_EDU_THREADS` for the LLVM kernels and limits numpy's BLAS through threadpoolctl),
because ranks that each use every core slow each other down 10-100x. When C // W >= 2, one of
them is kept for the communication thread that overlaps the gradient allreduce with backward
(`World.communication_core`; `tinygrad_edu.buckets`), so kernel, BLAS and communication
threads together never outnumber the cores.
"""

from __future__ import annotations

import os
import socket
import sys
import traceback
from collections.abc import Iterable
from typing import Any

import numpy as np

from .tensor import Tensor

__all__ = ["World", "launched_by_mpi", "split_cores", "threads_per_rank", "world"]

#: environment variables a process started by an MPI launcher has (MPICH/Hydra and Intel MPI:
#: PMI_RANK; Open MPI: OMPI_COMM_WORLD_RANK; PMIx launchers such as Slurm's: PMIX_RANK)
LAUNCHER_VARIABLES = ("PMI_RANK", "OMPI_COMM_WORLD_RANK", "PMIX_RANK")

#: the dtypes collectives reduce; others would need an MPI datatype chosen by hand
_REDUCIBLE = (np.dtype(np.float32), np.dtype(np.float64), np.dtype(np.int64))


def launched_by_mpi(environ: dict[str, str] | None = None) -> bool:
    """Whether this process was started by an MPI launcher (mpiexec, mpirun, srun)."""
    env = os.environ if environ is None else environ
    return any(name in env for name in LAUNCHER_VARIABLES)


def _array_of(value: Tensor | np.ndarray, op: str) -> np.ndarray:
    """The array a collective works on in place: a Tensor's data or the array itself."""
    array = value.data if isinstance(value, Tensor) else value
    if not isinstance(array, np.ndarray):
        raise TypeError(
            f"{op}: expects a Tensor or a numpy array, got {type(value).__name__}. "
            "Fix: pass Tensor(...) or np.asarray(...)"
        )
    if not array.flags.c_contiguous or not array.flags.writeable:
        raise ValueError(
            f"{op}: works in place on a contiguous, writeable array (got shape {array.shape}, "
            f"contiguous={array.flags.c_contiguous}, writeable={array.flags.writeable}). "
            "Fix: pass np.ascontiguousarray(a) and use the result"
        )
    if array.dtype not in _REDUCIBLE:
        raise TypeError(
            f"{op}: dtype {array.dtype} is not supported (shape {array.shape}). Fix: use "
            "float32, float64 or int64"
        )
    return array


class World:
    """The processes of one job. `rank` in [0, size); `local_rank` and `local_size` count the
    ranks on this host. Built by `world()`; with `comm=None`, a world of one process."""

    def __init__(self, comm: Any = None) -> None:
        self.comm = comm
        #: whether a thread other than the one that started MPI may make MPI calls (one at a
        #: time): what a communication thread overlapping allreduce with backward needs
        self.threads_may_communicate = True
        #: whether this rank keeps a core for the communication thread (set by `world()`)
        self.communication_core = False
        if comm is None:
            self.rank, self.size, self.local_rank, self.local_size = 0, 1, 0, 1
            self.host_cores = len(os.sched_getaffinity(0))
            return
        from mpi4py import MPI

        self.threads_may_communicate = MPI.Query_thread() >= MPI.THREAD_SERIALIZED
        self.rank, self.size = comm.Get_rank(), comm.Get_size()
        local = comm.Split_type(MPI.COMM_TYPE_SHARED, key=self.rank)
        self.local_rank, self.local_size = local.Get_rank(), local.Get_size()
        # the cores this host gives the job: the union of its ranks' affinity masks (a
        # launcher that binds each rank to its own cores narrows each mask, not the union)
        masks = local.allgather(sorted(os.sched_getaffinity(0)))
        self.host_cores = len(set().union(*map(set, masks)))
        local.Free()

    def __repr__(self) -> str:
        return (
            f"World(rank={self.rank}, size={self.size}, local_rank={self.local_rank}, "
            f"local_size={self.local_size})"
        )

    @property
    def is_root(self) -> bool:
        """Rank 0: the rank that prints and writes files."""
        return self.rank == 0

    def broadcast(self, value: Tensor | np.ndarray, root: int = 0) -> Tensor | np.ndarray:
        """Overwrite `value` (a Tensor's data or an array) in place with rank `root`'s; returns
        it. Every rank must call it with the same shape and dtype."""
        array = _array_of(value, "broadcast")
        if self.comm is not None:
            self.comm.Bcast(array, root=root)
        return value

    def broadcast_object(self, obj: Any, root: int = 0) -> Any:
        """Rank `root`'s Python object (dicts of arrays: a checkpoint) on every rank."""
        return obj if self.comm is None else self.comm.bcast(obj, root=root)

    def allreduce(self, value: Tensor | np.ndarray) -> Tensor | np.ndarray:
        """Replace `value` in place with the elementwise sum over all ranks; returns it.

        Replicas must stay bit-identical, so every rank must get the same bits. MPI does not
        promise it, but MPICH's and Open MPI's algorithms add each element in one place and
        send the result on (and a + b == b + a in IEEE arithmetic); tests/test_distributed.py
        checks the replicas bit for bit."""
        array = _array_of(value, "allreduce")
        if self.comm is not None:
            from mpi4py import MPI

            self.comm.Allreduce(MPI.IN_PLACE, array, op=MPI.SUM)
        return value

    def allreduce_sum(self, values: Iterable[float]) -> np.ndarray:
        """Sum of a few numbers over ranks (metrics), as a float64 array."""
        return np.asarray(self.allreduce(np.array(list(values), dtype=np.float64)))

    def roll_call(self) -> str:
        """On rank 0, which process and host each rank is (a collective: every rank calls it;
        the others get ""). Print it at start: when a rank dies, the launcher's report names
        only its PID and host ("BAD TERMINATION ... PID 11134 RUNNING AT node7"), and this
        line turns that into a rank."""
        me = (self.rank, os.getpid(), socket.gethostname())
        table = [me] if self.comm is None else self.comm.gather(me, root=0)
        if not self.is_root:
            return ""
        return f"{self.size} rank(s): " + ", ".join(f"rank {r} pid {p} on {h}" for r, p, h in table)

    def barrier(self) -> None:
        """Wait until every rank gets here (after rank 0 writes a file the others read)."""
        if self.comm is not None:
            self.comm.Barrier()

    def abort(self, code: int = 1) -> None:
        """End every rank of the job now (after this rank failed)."""
        if self.comm is None:
            raise SystemExit(code)
        self.comm.Abort(code)


def threads_per_rank(host_cores: int, ranks_on_host: int) -> int:
    """Threads each rank may use so the ranks on a host do not oversubscribe its cores."""
    return max(1, host_cores // max(1, ranks_on_host))


def split_cores(cores: int, threads_may_communicate: bool = True) -> tuple[int, bool]:
    """A rank's `cores` as (kernel and BLAS threads, whether one core is kept for the
    communication thread that overlaps the gradient allreduce with backward).

    With 2+ cores one goes to that thread: MPI polls while it waits for the other ranks, so it
    keeps a core busy. With one core it would take half of it from the kernels (measured on 2
    cores, 2 ranks: overlapped steps 1.25x (eager) to 2.3x (compiled) slower), so there is no
    communication core and DataParallel reduces after backward."""
    keep = cores >= 2 and threads_may_communicate
    return max(1, cores - keep), keep


_WORLD: World | None = None


def world() -> World:
    """The processes of this job (created on the first call, then the same object).

    Launched by mpiexec: MPI's COMM_WORLD (mpi4py required), threads limited per rank, and an
    uncaught exception on any rank aborts the job with that rank's traceback. Otherwise: one
    process, no MPI."""
    global _WORLD
    if _WORLD is not None:
        return _WORLD
    if not launched_by_mpi():
        _WORLD = World()
        return _WORLD
    try:
        from mpi4py import MPI
    except ImportError as e:
        variables = [name for name in LAUNCHER_VARIABLES if name in os.environ]
        raise ImportError(
            f"distributed: this process was started by an MPI launcher ({variables} are set) "
            "but mpi4py is not installed, so the ranks cannot talk to each other. Fix: pip "
            'install -e ".[mpi]" (mpi4py and the MPICH wheel) in the environment every rank '
            "runs, or run without mpiexec"
        ) from e
    _WORLD = World(MPI.COMM_WORLD)
    if _WORLD.size > 1:
        cores = threads_per_rank(_WORLD.host_cores, _WORLD.local_size)
        threads, _WORLD.communication_core = split_cores(cores, _WORLD.threads_may_communicate)
        _limit_threads(threads)
        _abort_on_uncaught_exception(_WORLD)
    return _WORLD


def _limit_threads(threads: int) -> None:
    """C cores shared by W ranks: C // W kernel and BLAS threads each. An explicit
    `$TINYGRAD_EDU_THREADS` wins (the LLVM backend reads it when it starts its workers)."""
    configured = os.environ.get("TINYGRAD_EDU_THREADS", "").strip()
    if configured:  # empty counts as unset, as the LLVM backend reads it
        try:
            threads = max(1, int(configured))
        except ValueError as e:
            raise ValueError(
                f"distributed: TINYGRAD_EDU_THREADS={configured!r} is not a whole number; set "
                "it to the threads each rank may use, or unset it (cores // ranks per host)"
            ) from e
    os.environ["TINYGRAD_EDU_THREADS"] = str(threads)
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:  # numpy's BLAS then keeps its own default (OMP_NUM_THREADS)
        return
    threadpool_limits(limits=threads)


def _abort_on_uncaught_exception(w: World) -> None:
    """Without `python -m mpi4py`, an exception on one rank would leave the others waiting
    forever in their next collective: print it with the rank, then abort every rank."""
    previous = sys.excepthook

    def hook(kind: type[BaseException], error: BaseException, tb: Any) -> None:
        text = "".join(traceback.format_exception(kind, error, tb))
        sys.stderr.write(f"[rank {w.rank}/{w.size}] failed; aborting the job:\n{text}")
        sys.stderr.flush()
        if kind is KeyboardInterrupt:
            previous(kind, error, tb)
        w.abort(1)

    sys.excepthook = hook
