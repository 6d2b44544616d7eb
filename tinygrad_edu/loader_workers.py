"""The worker processes behind `DataLoader(num_workers=K)`: each batch is decoded and augmented
in a worker and handed back in shared memory.

How a batch travels:

1. The main process sends a task `(task_id, arguments)` to worker `task_id % K`
   and keeps `prefetch * K` tasks in flight, so the next batches are being made while the
   training step runs.
2. The worker builds the batch (`load_batch(*arguments)`: the same function the main
   process runs when K = 0, so the numbers do not depend on K), writes its arrays into one new
   shared-memory segment named after the pool and the task, and sends back only the segment's
   name and the arrays' offsets, shapes and dtypes.
3. The main process maps the segment (Linux: the batch's arrays are views of it, no copy;
   elsewhere they are copied out), unlinks its name at once, and yields batches in task
   order whatever order they finish in.

Shutdown (end of epoch, `break`, Ctrl-C, an error): every worker is told to stop and joined,
stragglers are terminated, and every segment that was or could have been made is unlinked, so
no process or shared memory outlives the iteration. Workers ignore SIGINT (Ctrl-C reaches the
whole process group; the main process decides), and exit by themselves if the main process
dies. A worker's exception comes back as the same exception class raised in the main process,
its message naming the worker, the sample index and the worker's original traceback.
"""

from __future__ import annotations

import importlib
import math
import mmap
import multiprocessing as mp
import os
import pickle
import queue
import secrets
import signal
import time
import traceback
from collections.abc import Callable
from multiprocessing import resource_tracker
from multiprocessing.shared_memory import SharedMemory
from typing import Any

import numpy as np

__all__ = ["WorkerPool", "default_context"]

LoadBatch = Callable[..., Any]

_POLL_S = 0.1  # how often a waiting process looks up (worker alive? parent alive?)
_JOIN_S = 5.0  # how long a stopping worker may take to finish its current batch
_ALIGN = 64  # bytes: each array of a batch starts on a cache line
_SHM_DIR = "/dev/shm"  # where Linux keeps POSIX shared memory as files


def default_context() -> str:
    """The start method used unless one is given: "fork" where the platform has it (workers
    inherit the dataset, lambdas included, and start fast), else "spawn" (the dataset and
    transforms must then be picklable)."""
    return "fork" if "fork" in mp.get_all_start_methods() else "spawn"


# ----------------------------------------------------------------------------- batch <-> segment


def _flatten(batch: Any, arrays: list[np.ndarray]) -> Any:
    """The batch's structure with each array replaced by its index in `arrays`."""
    if isinstance(batch, np.ndarray):
        arrays.append(np.ascontiguousarray(batch))
        return ("array", len(arrays) - 1)
    if isinstance(batch, tuple | list):
        kind = "tuple" if isinstance(batch, tuple) else "list"
        return (kind, [_flatten(item, arrays) for item in batch])
    if isinstance(batch, dict):
        return ("dict", [(key, _flatten(value, arrays)) for key, value in batch.items()])
    return ("value", batch)  # small Python values (strings, numbers) travel as they are


def _unflatten(spec: Any, arrays: list[np.ndarray]) -> Any:
    kind, body = spec
    if kind == "array":
        return arrays[body]
    if kind in ("tuple", "list"):
        items = [_unflatten(s, arrays) for s in body]
        return tuple(items) if kind == "tuple" else items
    if kind == "dict":
        return {key: _unflatten(s, arrays) for key, s in body}
    return body


def _write_segment(name: str, arrays: list[np.ndarray]) -> list[tuple[int, tuple, str]]:
    """Copy `arrays` into a new shared-memory segment `name`; returns (offset, shape, dtype)."""
    layout, offset = [], 0
    for a in arrays:
        layout.append((offset, a.shape, a.dtype.str))
        offset += math.ceil(a.nbytes / _ALIGN) * _ALIGN
    shm = SharedMemory(name=name, create=True, size=max(offset, 1))
    try:
        for a, (start, shape, dtype) in zip(arrays, layout):
            view = np.ndarray(shape, dtype=dtype, buffer=shm.buf, offset=start)
            view[...] = a
            del view  # the segment cannot be closed while a view exports its buffer
    finally:
        shm.close()
    return layout


def _read_segment(name: str, layout: list[tuple[int, tuple, str]]) -> list[np.ndarray]:
    """The arrays of segment `name`; the segment's name is unlinked at once.

    Where POSIX shared memory is a file under /dev/shm (Linux), the arrays are views of a
    mapping of it (no copy: the memory is freed when the last array is); elsewhere
    they are copied out."""
    path = os.path.join(_SHM_DIR, name)
    if os.path.isfile(path):
        with open(path, "r+b") as f:
            mapping = mmap.mmap(f.fileno(), os.fstat(f.fileno()).st_size)
        _unlink_quietly(name)  # the mapping outlives the name
        return [
            np.ndarray(shape, dtype=dtype, buffer=mapping, offset=start)
            for start, shape, dtype in layout
        ]
    shm = SharedMemory(name=name)
    try:
        return [
            np.ndarray(shape, dtype=dtype, buffer=shm.buf, offset=start).copy()
            for start, shape, dtype in layout
        ]
    finally:
        shm.close()
        shm.unlink()


def _unlink_quietly(name: str) -> None:
    try:
        shm = SharedMemory(name=name)
    except (FileNotFoundError, OSError, ValueError):
        return
    shm.close()
    shm.unlink()


# ----------------------------------------------------------------------------- the worker


def _fresh_resource_tracker_lock() -> None:
    """A forked worker inherits the parent's resource-tracker lock in whatever state another
    parent thread had it at the fork: held, when a garbage-collected semaphore's finalizer
    was unregistering it just then, and the worker's first SharedMemory() then waits for it
    forever (seen as a test suite hung in `_write_segment`). The worker runs one thread, so
    a new lock is the correct state; under "spawn" it replaces a fresh one."""
    tracker = resource_tracker._resource_tracker
    tracker._lock = type(tracker._lock)()


def _worker_main(
    worker_id: int,
    load_batch: LoadBatch,
    tasks: Any,
    results: Any,
    tag: str,
    parent_pid: int,
    init_fn: Callable[[int], Any] | None = None,
) -> None:
    """A worker's life: take tasks until told to stop (None) or the parent is gone."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    _fresh_resource_tracker_lock()
    init_error: tuple | None = None
    if init_fn is not None:
        try:
            init_fn(worker_id)
        except Exception as e:  # reported as the answer to every task this worker gets
            init_error = _error_report(e, worker_id, "worker_init_fn")
    while True:
        try:
            task = tasks.get(timeout=_POLL_S)
        except queue.Empty:
            if os.getppid() != parent_pid:
                return  # orphaned: the main process died without stopping us
            continue
        if task is None:
            return
        task_id, arguments = task
        if init_error is not None:
            results.put((init_error[0], task_id, *init_error[1:]))
            continue
        try:
            arrays: list[np.ndarray] = []
            spec = _flatten(load_batch(*arguments), arrays)
            name = f"{tag}_{task_id}"
            layout = _write_segment(name, arrays)
            results.put(("ok", task_id, name, spec, layout))
        except Exception as e:
            report = _error_report(e, worker_id, getattr(e, "sample_index", None))
            results.put((report[0], task_id, *report[1:]))


def _error_report(e: Exception, worker_id: int, where: int | str | None) -> tuple:
    """An exception as plain values (the class by module and name, the traceback as text)."""
    return (
        "error",
        worker_id,
        where,
        type(e).__module__,
        type(e).__qualname__,
        str(e),
        traceback.format_exc(),
    )


class _Message(str):
    """A message that prints the same through repr() (KeyError's str of its argument)."""

    def __repr__(self) -> str:
        return str(self)


def _rebuild_error(message: tuple) -> BaseException:
    """The worker's exception, as its own class where it can be built from a message."""
    _, _, worker_id, index, module, qualname, text, tb = message
    if isinstance(index, str):
        where, index = f"its {index}", None
    else:
        where = f"sample {index}" if index is not None else "a batch"
    full = (
        f"{qualname} in DataLoader worker {worker_id} while loading {where}: {text}\n\n"
        f"Original traceback in the worker process:\n{tb}"
    )
    cls: Any = RuntimeError
    try:
        found: Any = importlib.import_module(module)
        for part in qualname.split("."):
            found = getattr(found, part)
        if isinstance(found, type) and issubclass(found, Exception):
            cls = found
    except (ImportError, AttributeError):
        pass
    try:
        # KeyError shows its argument's repr; a str whose repr is itself keeps the text readable
        error = cls(_Message(full)) if issubclass(cls, KeyError) else cls(full)
    except Exception:  # a class whose constructor wants more than a message
        error = RuntimeError(full)
    error.sample_index = index
    return error


# ----------------------------------------------------------------------------- the pool


class WorkerPool:
    """K worker processes running `load_batch` on the tasks `submit`ted, results by `result`.

    Use it as a context manager (or call `close`): leaving stops and joins every worker and
    unlinks every shared-memory segment, whatever happened inside.
    """

    def __init__(
        self,
        load_batch: LoadBatch,
        num_workers: int,
        context: str | None = None,
        timeout: float = 0.0,
        worker_init_fn: Callable[[int], Any] | None = None,
    ) -> None:
        ctx = mp.get_context(context or default_context())
        # one resource tracker, started here and inherited by the workers, sees both the
        # workers' segment creations and our unlinks, so it never reports a false leak
        resource_tracker.ensure_running()
        self.timeout = float(timeout)
        self._tag = f"tge{os.getpid()}{secrets.token_hex(3)}"
        self._tasks = [ctx.Queue() for _ in range(num_workers)]
        self._results = ctx.Queue()
        self._assigned: dict[int, int] = {}  # task id -> worker, until its result is taken
        self._arrived: dict[int, tuple] = {}  # results received ahead of their turn
        self._closed = False
        self.workers = []
        try:
            for w in range(num_workers):
                process = ctx.Process(
                    target=_worker_main,
                    args=(
                        w,
                        load_batch,
                        self._tasks[w],
                        self._results,
                        self._tag,
                        os.getpid(),
                        worker_init_fn,
                    ),
                    name=f"DataLoader-worker-{w}",
                    daemon=True,
                )
                self.workers.append(process)
                process.start()
        except (pickle.PicklingError, AttributeError, TypeError) as e:
            self.close()
            raise TypeError(
                f"DataLoader: the dataset, transform or collate_fn cannot be sent to a "
                f"{ctx.get_start_method()!r} worker ({e}). Fix: use module-level functions "
                "and classes instead of lambdas / local ones, or multiprocessing_context='fork'"
            ) from e
        except BaseException:
            self.close()
            raise

    def __enter__(self) -> WorkerPool:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def submit(self, task_id: int, arguments: tuple) -> None:
        """Queue batch `task_id`, made by `load_batch(*arguments)` (small picklable values)."""
        worker = task_id % len(self.workers)
        self._assigned[task_id] = worker
        self._tasks[worker].put((task_id, arguments))

    def result(self, task_id: int) -> Any:
        """Wait for batch `task_id`; raise the worker's exception if it failed."""
        started = time.monotonic()
        while task_id not in self._arrived:
            try:
                message = self._results.get(timeout=_POLL_S)
            except queue.Empty:
                self._check_worker(task_id, started)
                continue
            self._arrived[message[1]] = message
        message = self._arrived.pop(task_id)
        self._assigned.pop(task_id, None)
        if message[0] == "error":
            raise _rebuild_error(message)
        _, _, name, spec, layout = message
        return _unflatten(spec, _read_segment(name, layout))

    def _check_worker(self, task_id: int, started: float) -> None:
        # every worker, not only the one making `task_id`: a worker that dies while its
        # queue's feeder thread writes a result leaves the shared results queue locked, and
        # the others' batches then never arrive (seen as a rare hang of the awaited batch)
        for worker, process in enumerate(self.workers):
            if process.exitcode is None:
                continue
            code = process.exitcode
            how = f"killed by signal {signal.Signals(-code).name}" if code < 0 else f"code {code}"
            mine = [t for t, w in self._assigned.items() if w == worker]
            batch = task_id if task_id in mine else min(mine, default=task_id)
            raise RuntimeError(
                f"DataLoader worker {worker} (pid {process.pid}) exited unexpectedly ({how}) "
                f"while making batch {batch}. Fix: if it ran out of memory (SIGKILL), use "
                "fewer workers or a smaller batch_size; a crash inside a decoder shows with "
                "num_workers=0"
            )
        if self.timeout > 0 and time.monotonic() - started > self.timeout:
            raise RuntimeError(
                f"DataLoader: batch {task_id} took over timeout={self.timeout}s in worker "
                f"{self._assigned[task_id]}. Fix: raise timeout= (0 waits forever)"
            )

    def close(self) -> None:
        """Stop and join the workers; unlink every segment made or in the making."""
        if self._closed:
            return
        self._closed = True
        for q in self._tasks:
            try:
                q.put(None)
            except (OSError, ValueError):
                pass
        deadline = time.monotonic() + _JOIN_S
        while time.monotonic() < deadline:
            self._drain(timeout=0.0)  # a worker blocked on a full pipe can then finish
            alive = [p for p in self.workers if p.is_alive()]
            if not alive:
                break
            alive[0].join(0.01)
        self.workers = [p for p in self.workers if p.pid is not None]  # started ones
        for p in self.workers:
            if p.is_alive():
                p.terminate()
                p.join(1.0)
            if p.is_alive():
                p.kill()
            p.join(1.0)
        self._drain(timeout=0.0)
        for message in self._arrived.values():
            if message[0] == "ok":
                _unlink_quietly(message[2])
        for task_id in self._assigned:  # a worker stopped between creating and reporting
            _unlink_quietly(f"{self._tag}_{task_id}")
        self._arrived.clear()
        self._assigned.clear()
        for q in [*self._tasks, self._results]:
            q.cancel_join_thread()
            q.close()

    def _drain(self, timeout: float) -> None:
        while True:
            try:
                if timeout:
                    message = self._results.get(timeout=timeout)
                else:
                    message = self._results.get_nowait()
            except (queue.Empty, OSError, ValueError, EOFError):
                return
            self._arrived[message[1]] = message

    def __del__(self) -> None:
        try:
            self.close()
        except Exception:
            pass
