"""DataLoader over dataset objects and with worker processes: the same batches whatever
num_workers is, errors raised here with the sample index and the worker's traceback, and
nothing (processes, shared memory) left behind after Ctrl-C, break or errors."""

from __future__ import annotations

import multiprocessing as mp
import os
import random
import signal
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest
from PIL import Image

import tinygrad_edu.rng
from tinygrad_edu.data import (
    Compose,
    DataLoader,
    RandomCrop,
    RandomHorizontalFlip,
    ToCHWFloat,
    default_collate,
)

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


class Noisy:
    """Samples whose values come from every global generator a transform might use."""

    def __init__(self, n: int = 29, fail_at: int | None = None, exit_at: int | None = None):
        self.n, self.fail_at, self.exit_at = n, fail_at, exit_at
        self.crop = Compose([RandomCrop(4), RandomHorizontalFlip()])

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, i: int) -> tuple[np.ndarray, int]:
        if i == self.fail_at:
            raise ValueError(f"cannot make sample {i}: corrupt record")
        if i == self.exit_at:
            os._exit(3)
        base = np.arange(3 * 6 * 6, dtype=np.float32).reshape(3, 6, 6) + 1000 * i
        noise = tinygrad_edu.rng.generator().random((3, 4, 4)).astype(np.float32)
        extra = np.float32(random.random() + np.random.random())
        return self.crop(base) + noise + extra, i


def epochs(loader: DataLoader, n: int = 2) -> list[list[tuple[np.ndarray, np.ndarray]]]:
    return [list(loader) for _ in range(n)]


def assert_same_epochs(a, b) -> None:
    assert len(a) == len(b)
    for ea, eb in zip(a, b):
        assert len(ea) == len(eb)
        for (xa, ya), (xb, yb) in zip(ea, eb):
            np.testing.assert_array_equal(ya, yb)
            np.testing.assert_array_equal(xa, xb)


def our_segments(pid: int) -> list[str]:
    return [n for n in os.listdir("/dev/shm") if n.startswith(f"tge{pid}")]


@pytest.fixture(autouse=True)
def no_leftovers():
    yield
    assert mp.active_children() == []
    if os.path.isdir("/dev/shm"):
        assert our_segments(os.getpid()) == []


def test_batches_are_the_same_for_0_1_2_workers():
    runs = [
        epochs(DataLoader(Noisy(), batch_size=4, shuffle=True, seed=3, num_workers=k))
        for k in (0, 1, 2)
    ]
    assert_same_epochs(runs[0], runs[1])
    assert_same_epochs(runs[0], runs[2])
    xb, yb = runs[0][0][0]
    assert xb.shape == (4, 3, 4, 4) and xb.dtype == np.float32 and yb.dtype == np.int64
    # batches from workers are ordinary writable arrays, each its own memory
    wx, wy = runs[2][0][0]
    assert wx.flags.writeable and wy.flags.writeable
    second = runs[2][0][1][0].copy()
    wx[...] = -1.0
    assert not np.shares_memory(wx, runs[2][0][1][0])
    np.testing.assert_array_equal(runs[2][0][1][0], second)
    # the two epochs differ (order and augmentation), the seed matters
    assert not np.array_equal(np.concatenate([y for _, y in runs[0][0]]), np.arange(29))
    other = epochs(DataLoader(Noisy(), batch_size=4, shuffle=True, seed=4), 1)
    assert not np.array_equal(other[0][0][1], runs[0][0][0][1])


def test_each_sample_is_a_function_of_seed_epoch_and_index():
    loader = DataLoader(Noisy(), batch_size=5, shuffle=True, seed=11, num_workers=2)
    loader.set_epoch(3)
    xb, yb = next(iter(loader))
    # rebuild sample yb[1] of epoch 3 by hand, outside any loader
    gen = loader.sample_rng(3, int(yb[1]))
    key = (3, 2, int(yb[1]))  # the Python-random / legacy-numpy stream
    word = int(np.random.SeedSequence(11, spawn_key=key).generate_state(1)[0])
    random.seed(word)
    np.random.seed(word)
    with tinygrad_edu.rng.using(gen):
        alone, label = Noisy()[int(yb[1])]
    assert label == yb[1]
    np.testing.assert_array_equal(xb[1], alone)


def test_arrays_with_a_transform_match_across_workers_and_resume():
    x = np.random.default_rng(0).random((21, 3, 6, 6), dtype=np.float32)
    y = np.arange(21)
    aug = Compose([RandomCrop(5), RandomHorizontalFlip()])
    ref = DataLoader(x, y, 4, shuffle=True, seed=2, transform=aug)
    par = DataLoader(x, y, 4, shuffle=True, seed=2, transform=aug, num_workers=2)
    ref_epochs = epochs(ref, 2)
    assert_same_epochs(ref_epochs, epochs(par, 2))
    par.set_epoch(1, 2)  # resume mid-epoch in workers
    assert_same_epochs([ref_epochs[1][2:]], [list(par)])


def test_the_global_generators_are_left_alone():
    before = (tinygrad_edu.rng.get_state(), random.getstate(), np.random.get_state()[1].copy())
    list(DataLoader(Noisy(), batch_size=4, shuffle=True))
    after = (tinygrad_edu.rng.get_state(), random.getstate(), np.random.get_state()[1])
    assert before[0] == after[0] and before[1] == after[1]
    np.testing.assert_array_equal(before[2], after[2])


def test_data_parallel_shards_with_workers_add_up_to_one_process():
    whole = list(DataLoader(Noisy(13), batch_size=5, shuffle=True, seed=1))
    parts = [
        list(DataLoader(Noisy(13), 5, shuffle=True, seed=1, num_replicas=3, rank=r, num_workers=1))
        for r in range(3)
    ]
    for b, (xb, yb) in enumerate(whole):
        np.testing.assert_array_equal(np.concatenate([p[b][1] for p in parts]), yb)
        np.testing.assert_array_equal(np.concatenate([p[b][0] for p in parts]), xb)
    # the last batch has 3 rows over 3 ranks; a 2-row batch leaves a rank with an empty shard
    tiny = list(DataLoader(Noisy(2), 2, num_replicas=3, rank=2, num_workers=1))
    assert tiny[0][0].shape == (0, 3, 4, 4) and tiny[0][1].shape == (0,)


@pytest.mark.parametrize("workers", [0, 2])
def test_a_dataset_error_names_the_sample_and_keeps_the_traceback(workers):
    loader = DataLoader(Noisy(fail_at=7), batch_size=3, num_workers=workers)
    with pytest.raises(ValueError, match="cannot make sample 7: corrupt record") as info:
        list(loader)
    text = str(info.value) + "".join(getattr(info.value, "__notes__", []))
    assert "sample 7" in text
    if workers:
        assert "DataLoader worker" in text and "Original traceback" in text
        assert 'raise ValueError(f"cannot make sample {i}: corrupt record")' in text
        assert info.value.sample_index == 7


def test_a_worker_that_dies_is_reported():
    loader = DataLoader(Noisy(exit_at=4), batch_size=2, num_workers=2)
    with pytest.raises(RuntimeError, match=r"worker 0 \(pid \d+\) exited unexpectedly \(code 3\)"):
        list(loader)


class SlowFirst(Noisy):
    """Sample 0 takes a minute: the first batch is awaited while another worker dies."""

    def __getitem__(self, i: int) -> tuple[np.ndarray, int]:
        if i == 0:
            time.sleep(60)
        return super().__getitem__(i)


def test_a_worker_that_dies_is_reported_while_another_batch_is_awaited():
    """Any dead worker ends the wait: it may have died holding the shared results queue's
    lock, and then no batch of any worker would arrive (the loader waited for ever)."""
    loader = DataLoader(SlowFirst(exit_at=2), batch_size=2, num_workers=2)
    started = time.monotonic()
    with pytest.raises(RuntimeError, match=r"worker 1 \(pid \d+\) exited .* batch 1\b"):
        list(loader)
    assert time.monotonic() - started < 30  # long before batch 0 could be made


def test_break_stops_the_workers_and_frees_shared_memory():
    loader = DataLoader(Noisy(40), batch_size=2, num_workers=2, prefetch_factor=3)
    for i, _ in enumerate(loader):
        if i == 1:
            break
    # the fixture checks: no child process, no segment of ours
    assert len(list(loader)) == 20  # and the loader still works (next epoch)


def test_dataset_mode_positional_batch_size_and_collate():
    loader = DataLoader(Noisy(6), 4)
    assert len(loader) == 2 and loader.batch_size == 4
    batch = default_collate([{"a": np.zeros(2), "b": (1, 2.5)}, {"a": np.ones(2), "b": (3, 4.0)}])
    assert batch["a"].shape == (2, 2) and batch["b"][0].dtype == np.int64
    np.testing.assert_array_equal(batch["b"][1], [2.5, 4.0])
    custom = DataLoader(Noisy(6), batch_size=3, collate_fn=lambda s: len(s), num_workers=1)
    assert list(custom) == [3, 3]


def test_bad_loader_arguments_say_how_to_fix():
    with pytest.raises(ValueError, match="num_workers must be an int >= 0"):
        DataLoader(Noisy(), batch_size=2, num_workers=-1)
    with pytest.raises(ValueError, match="prefetch_factor must be >= 1"):
        DataLoader(Noisy(), batch_size=2, prefetch_factor=0)
    with pytest.raises(ValueError, match="unknown multiprocessing_context"):
        DataLoader(Noisy(), batch_size=2, multiprocessing_context="threads")
    with pytest.raises(ValueError, match="needs __len__ and __getitem__"):
        DataLoader(object(), batch_size=2)
    with pytest.raises(ValueError, match="batch_size given twice"):
        DataLoader(Noisy(), 2, batch_size=3)
    pil = [(Image.new("RGB", (4, 4)), 0)] * 2
    with pytest.raises(ValueError, match="cannot stack PIL images.*ToCHWFloat"):
        next(iter(DataLoader(pil, batch_size=2)))
    odd = [(np.zeros((3, 4, 4)), 0), (np.zeros((3, 5, 5)), 1)]
    with pytest.raises(ValueError, match="different shapes"):
        next(iter(DataLoader(odd, batch_size=2)))
    ok = [(ToCHWFloat()(Image.new("RGB", (4, 4))), 0)] * 2
    assert next(iter(DataLoader(ok, batch_size=2)))[0].shape == (2, 3, 4, 4)


CTRL_C_CHILD = textwrap.dedent(
    """
    import sys, time
    import numpy as np
    from tinygrad_edu.data import DataLoader

    class Slow:
        def __len__(self):
            return 1000
        def __getitem__(self, i):
            time.sleep(0.05)
            return np.full((3, 8, 8), i, np.float32), i

    loader = DataLoader(Slow(), batch_size=4, num_workers=2)
    for i, (xb, yb) in enumerate(loader):
        if i == 0:
            import multiprocessing as mp
            print(" ".join(str(p.pid) for p in mp.active_children()), flush=True)
    """
)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # a zombie (exited, not yet reaped by its dead parent's reaper) counts as gone
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(") ")[-1][0] != "Z"
    except OSError:
        return False


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals")
def test_ctrl_c_stops_workers_and_frees_shared_memory():
    env = dict(os.environ, PYTHONPATH=ROOT)
    child = subprocess.Popen(
        [sys.executable, "-c", CTRL_C_CHILD],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        pids = [int(p) for p in child.stdout.readline().split()]
        assert len(pids) >= 2  # the two workers (and maybe the resource tracker)
        time.sleep(0.3)  # batches in flight, segments being made
        child.send_signal(signal.SIGINT)
        _, err = child.communicate(timeout=30)
    finally:
        if child.poll() is None:
            child.kill()
    assert child.returncode != 0 and "KeyboardInterrupt" in err
    assert "leaked shared_memory" not in err and "Original traceback" not in err
    deadline = time.monotonic() + 5
    while any(_alive(p) for p in pids) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not any(_alive(p) for p in pids)
    if os.path.isdir("/dev/shm"):
        assert our_segments(child.pid) == []


def test_spawn_workers_give_the_same_batches_and_explain_unpicklable_code():
    ref = epochs(DataLoader(Noisy(9), batch_size=4, shuffle=True, seed=5), 1)
    spawned = DataLoader(
        Noisy(9), batch_size=4, shuffle=True, seed=5, num_workers=1, multiprocessing_context="spawn"
    )
    assert_same_epochs(ref, epochs(spawned, 1))
    local = DataLoader(
        Noisy(4),
        batch_size=2,
        collate_fn=lambda s: s,
        num_workers=1,
        multiprocessing_context="spawn",
    )
    with pytest.raises(TypeError, match="cannot be sent to a 'spawn' worker.*lambdas"):
        list(local)


def _fail_init(worker_id: int) -> None:
    raise RuntimeError(f"no GPU for worker {worker_id}")


def test_worker_init_fn_runs_in_each_worker_and_its_error_is_reported():
    seen = DataLoader(
        list(range(4)),
        batch_size=1,
        num_workers=2,
        worker_init_fn=lambda w: np.random.seed(100 + w),
        collate_fn=lambda s: np.random.randint(1000),
        pin_memory=True,
        persistent_workers=True,
    )
    first = list(seen)
    assert first == list(seen)  # each worker seeded the same way each epoch
    broken = DataLoader(list(range(4)), batch_size=2, num_workers=1, worker_init_fn=_fail_init)
    with pytest.raises(RuntimeError, match="worker 0 while loading its worker_init_fn.*no GPU"):
        list(broken)


@pytest.mark.skipif(not hasattr(os, "fork"), reason="no fork on this platform")
def test_a_forked_worker_gets_a_resource_tracker_lock_it_can_take():
    """A fork while another parent thread holds the resource tracker's lock copies it held:
    the child could never take it (its first SharedMemory() would hang, as a worker once did
    in the whole suite) until `_fresh_resource_tracker_lock` replaces it."""
    import threading
    from multiprocessing import resource_tracker

    from tinygrad_edu.loader_workers import _fresh_resource_tracker_lock

    tracker = resource_tracker._resource_tracker
    held, release = threading.Event(), threading.Event()

    def hold():
        with tracker._lock:
            held.set()
            release.wait()

    holder = threading.Thread(target=hold)
    holder.start()
    held.wait()
    try:
        codes = []
        for fresh in (False, True):
            pid = os.fork()
            if pid == 0:  # the child: exit 0 when it can take the lock within a second
                if fresh:
                    _fresh_resource_tracker_lock()
                os._exit(0 if tracker._lock.acquire(timeout=1.0) else 1)
            codes.append(os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]))
    finally:
        release.set()
        holder.join()
    assert codes == [1, 0]  # the inherited lock is stuck; the fresh one is free
