"""Data for image networks: the digits dataset, a reproducible DataLoader (over arrays or a
dataset object, in worker processes if asked), image transforms, image folders, and the
AlexNet paper's ten-crop test-time evaluation. Everything here is plain numpy (no autograd).

Layout: one rule, torchvision's.

- **Arrays are CHW**: `(channels, height, width)`, the network's layout; batches are NCHW.
  Every transform takes CHW arrays (uint8 or float).
- **PIL images** (what `ImageFolder` returns) are accepted by every geometric transform
  (`ResizeShorter`, `Resize`, `CenterCrop`, `RandomCrop`, `RandomHorizontalFlip`,
  `RandomRotation`, `RandomZoom`, `GrayToRGB`) and stay PIL images, so a file pipeline works in
  Pillow (fast) until `ToCHWFloat`.
- **`ToCHWFloat`** is the bridge, like torchvision's `ToTensor`: PIL or HWC uint8 -> CHW
  float32 in [0, 1]. `Normalize` and `RandomBrightness` come after it (CHW float only).
- An HWC array given to a CHW transform is refused with the fix (it is not guessed);
  `layout="HWC"` on the geometric transforms is kept for older code that works on HWC arrays.
  `load_image` returns HWC uint8 (the file's layout) for such code.

Transforms are small classes called as `transform(image, rng)`: one image (not a batch) and a
`np.random.Generator`. Deterministic transforms ignore `rng`; random ones draw from it, or from
the global generator (`tinygrad_edu.manual_seed`) when it is `None`. `DataLoader` derives each
sample's rng from `(seed, epoch, sample index)` (and sets the global generator from it while a
dataset's `__getitem__` runs), so augmented epochs are reproducible whatever `num_workers` is,
and a run can resume mid-epoch with `set_epoch(epoch, batch)`.

The AlexNet pipeline (Krizhevsky et al. 2012) on a folder of images::

    train = Compose([ResizeShorter(256), RandomCrop(227), RandomHorizontalFlip(),
                     ToCHWFloat(), Normalize(IMAGENET_MEAN, IMAGENET_STD)])
    data = ImageFolder("photos/train", transform=train)            # PIL in, CHW float out
    loader = DataLoader(data, batch_size=128, shuffle=True, num_workers=2)
    for xb, yb in loader:                                            # (128, 3, 227, 227)
        ...
    # test: 256x256 CHW images, the 4 corner + centre 227 crops and their mirrors, averaged
    probs = ten_crop_predict(lambda xb: model(Tensor(xb)).numpy(), images, 227)

Digits, upscaled for a small AlexNet-style net::

    x_train, y_train, x_test, y_test = load_digits()                  # (N, 1, 8, 8) float32
    aug = Compose([Resize(32), RandomRotation(10), RandomZoom((0.9, 1.1))])
    loader = DataLoader(x_train, y_train, batch_size=64, shuffle=True, seed=0, transform=aug)
    for xb, yb in loader:                                             # (64, 1, 32, 32), (64,)
        ...

Resizing uses Pillow's bilinear filter: on PIL images in one call, on arrays one channel at a
time (mode "L" for uint8, "F" for float, so float images are never quantised); downscaling is
antialiased (Pillow widens the filter), like torchvision's `antialias=True`.

`python -m tinygrad_edu.data write-digits DIR` writes the digits as a PNG image folder
(`DIR/train/<class>/*.png`, `DIR/val/<class>/*.png`) to try `--data` training without a
download (`tinygrad_edu.datasets`).
"""

from __future__ import annotations

import functools
import math
import multiprocessing as mp
import os
import random
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import numpy as np
from PIL import Image, UnidentifiedImageError

from . import rng as _rng_module
from .collate import default_collate
from .datasets import IMG_EXTENSIONS, ImageFolder, Subset, stratified_split, write_digits_folder
from .errors import op_error
from .loader_workers import WorkerPool, default_context
from .transforms import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    CenterCrop,
    Compose,
    GrayToRGB,
    Normalize,
    RandomBrightness,
    RandomCrop,
    RandomHorizontalFlip,
    RandomRotation,
    RandomZoom,
    Resize,
    ResizeShorter,
    ToCHWFloat,
    Transform,
    ten_crop,
    ten_crop_predict,
)

__all__ = [
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "IMG_EXTENSIONS",
    "CenterCrop",
    "Compose",
    "DataLoader",
    "GrayToRGB",
    "ImageFolder",
    "Normalize",
    "RandomBrightness",
    "RandomCrop",
    "RandomHorizontalFlip",
    "RandomRotation",
    "RandomZoom",
    "Resize",
    "ResizeShorter",
    "Subset",
    "ToCHWFloat",
    "Transform",
    "default_collate",
    "load_digits",
    "load_image",
    "shard_bounds",
    "stratified_split",
    "ten_crop",
    "ten_crop_predict",
    "write_digits_folder",
]

# ----------------------------------------------------------------------------- the digits


DIGITS_SHAPE = (1797, 65)  # 1,797 rows of 64 pixel counts (0..16) and the label


def _digits_file() -> np.ndarray | None:
    """The digits as scikit-learn ships them (`sklearn/datasets/data/digits.csv.gz`), read
    without importing scikit-learn, whose import takes 2-3 s of every training run's and MPI
    rank's start; None where that file is not where this release of scikit-learn keeps it."""
    import gzip
    import importlib.util

    spec = importlib.util.find_spec("sklearn")
    if spec is None or spec.origin is None:
        return None
    path = os.path.join(os.path.dirname(spec.origin), "datasets", "data", "digits.csv.gz")
    try:
        with gzip.open(path, "rt") as f:
            table = np.loadtxt(f, delimiter=",")
    except (OSError, ValueError):
        return None
    return table if table.shape == DIGITS_SHAPE else None


@functools.lru_cache(maxsize=1)
def _digits_raw() -> tuple[np.ndarray, np.ndarray]:
    table = _digits_file()
    if table is not None:
        pixels, targets = table[:, :-1].reshape(-1, 8, 8), table[:, -1]
    else:  # scikit-learn's own loader (the slow import) where its file moved
        from sklearn.datasets import load_digits as sk_load_digits

        bunch = sk_load_digits()
        pixels, targets = bunch.images, bunch.target
    images = (np.asarray(pixels, dtype=np.float32) / np.float32(16.0))[:, None, :, :]
    labels = np.asarray(targets, dtype=np.int64)
    images.setflags(write=False)
    labels.setflags(write=False)
    return images, labels


def load_digits(
    test_fraction: float = 0.2, seed: int = 0
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """scikit-learn's handwritten digits (1,797 images of 8x8 pixels, 10 classes, no download).

    Returns `(x_train, y_train, x_test, y_test)`: images float32 of shape `(N, 1, 8, 8)` in
    [0, 1] (the 0..16 pixel counts divided by 16), labels int64 in 0..9.

    The split is **stratified** and deterministic for a given `seed`: with
    `rng = np.random.default_rng(seed)`, each class in order 0..9 has its indices permuted and
    the first `round(test_fraction * class_count)` go to the test set; then the train and the
    test set are each shuffled once more with the same rng (so neither comes sorted by class).
    The default gives 1,438 train and 359 test images with every class in both.

    The images keep their CHW shape; flattening for a multilayer perceptron is left to the
    caller: `x_train.reshape(len(x_train), -1)` gives `(N, 64)`. The arrays are fresh copies.
    """
    if not 0.0 <= test_fraction < 1.0:
        raise op_error(
            "load_digits",
            "test_fraction must be in [0, 1)",
            f"test_fraction={test_fraction!r}",
            "pass e.g. test_fraction=0.2 for an 80/20 split",
        )
    _check_seed("load_digits", seed)
    images, labels = _digits_raw()
    rng = np.random.default_rng(seed)
    train_parts, test_parts = [], []
    for c in np.unique(labels):
        idx = rng.permutation(np.flatnonzero(labels == c))
        n_test = int(round(test_fraction * len(idx)))
        test_parts.append(idx[:n_test])
        train_parts.append(idx[n_test:])
    train_idx = rng.permutation(np.concatenate(train_parts))
    test_idx = rng.permutation(np.concatenate(test_parts))
    return images[train_idx], labels[train_idx], images[test_idx], labels[test_idx]


# ----------------------------------------------------------------------------- the loader

_ORDER_STREAM = 0
_AUGMENT_STREAM = 1
_PYTHON_RANDOM_STREAM = 2


class _SampleSource:
    """How one batch is made from sample indices: what the main process runs when
    `num_workers=0` and every worker runs otherwise (so batches do not depend on K).
    Holds only the data, the transform and the seed, so "spawn" workers can rebuild it."""

    def __init__(
        self,
        dataset: Any,
        x: Any,
        y: np.ndarray | None,
        transform: Callable[..., Any] | None,
        collate_fn: Callable[[list[Any]], Any] | None,
        seed: int,
    ) -> None:
        self.dataset, self.x, self.y = dataset, x, y
        self.transform, self.collate_fn, self.seed = transform, collate_fn, seed

    def sample_rng(self, epoch: int, index: int) -> np.random.Generator:
        return np.random.default_rng(
            np.random.SeedSequence(self.seed, spawn_key=(int(epoch), _AUGMENT_STREAM, int(index)))
        )

    def load_batch(self, indices: Sequence[int], epoch: int, empty: bool = False) -> Any:
        """The collated batch of samples `indices` of `epoch` (`empty`: keep no rows, only
        the structure and shapes, for a rank whose shard of a small batch is empty)."""
        if self.dataset is None and self.transform is None and self.collate_fn is None:
            idx = np.asarray(indices, dtype=np.int64)
            if isinstance(self.x, np.ndarray):
                xb = self.x[idx]
            else:
                xb = np.stack([np.asarray(self.x[i]) for i in idx])
            batch: Any = (xb, self.y[idx])
        else:
            samples = []
            for i in indices:
                try:
                    samples.append(self._sample(int(i), epoch))
                except Exception as e:
                    e.sample_index = int(i)  # read by the worker's error report
                    e.add_note(f"DataLoader: raised while loading sample {i} (epoch {epoch})")
                    raise
            batch = (self.collate_fn or default_collate)(samples)
        return _keep_no_rows(batch) if empty else batch

    def _sample(self, index: int, epoch: int) -> Any:
        gen = self.sample_rng(epoch, index)
        if self.dataset is None:
            image = np.asarray(self.x[index])
            if self.transform is not None:
                image = self.transform(image, gen)
            return image, self.y[index]
        # the dataset's own random transforms draw from the global generator (and maybe
        # Python's `random` / numpy's legacy one): seed all three from (seed, epoch, index)
        key = (int(epoch), _PYTHON_RANDOM_STREAM, index)
        word = int(np.random.SeedSequence(self.seed, spawn_key=key).generate_state(1)[0])
        py_state, np_state = random.getstate(), np.random.get_state()
        random.seed(word)
        np.random.seed(word)
        try:
            with _rng_module.using(gen):
                sample = self.dataset[index]
                if self.transform is not None:
                    sample = (self.transform(sample[0], gen), *sample[1:])
        finally:
            random.setstate(py_state)
            np.random.set_state(np_state)
        return sample


def _keep_no_rows(batch: Any) -> Any:
    if isinstance(batch, np.ndarray):
        return batch[:0]
    if isinstance(batch, tuple | list):
        return type(batch)(_keep_no_rows(b) for b in batch)
    if isinstance(batch, dict):
        return {k: _keep_no_rows(v) for k, v in batch.items()}
    return batch


class DataLoader:
    """Batches from arrays or from a dataset object, reproducible per epoch, resumable, and
    made in worker processes when asked.

    Two ways to give the data:

    - **arrays**: `DataLoader(x, y, batch_size)`: `x` an array of samples (first axis) or a
      sequence of per-sample arrays (e.g. images of different sizes that `transform` brings to
      one size), `y` an array of labels; batches are `(xb, yb)` numpy arrays. `transform(image,
      rng)` is applied to each sample with that sample's rng.
    - **a dataset**, as PyTorch's: `DataLoader(dataset, batch_size=64, shuffle=True,
      num_workers=2)`: any object with `__len__` and `__getitem__(index)` (e.g. `ImageFolder`)
      whose samples `collate_fn` (default `default_collate`: arrays stacked, ints to int64)
      makes into a batch; `(image, label)` samples give `(xb, yb)`.

    Iterating runs one epoch: `len(loader)` batches of `batch_size` (the last one smaller unless
    `drop_last=True`, which drops an incomplete last batch). Each `iter()` starts the next
    epoch: 0, 1, 2, ...

    Everything random is derived from `(seed, epoch)` with `np.random.SeedSequence`, never from
    state carried between epochs: epoch k's order (when `shuffle=True`) is the same whatever ran
    before it, and sample i's transform rng comes from `(seed, epoch, i)` (`sample_rng`). A
    dataset's own transforms, which draw from the global generator, run with it (and Python's
    `random`, and numpy's legacy global generator) set from `(seed, epoch, i)` for that one
    sample, then put back; training's own draws (dropout) are untouched. So a batch is the same
    whatever `num_workers` is and whichever worker makes it, and resuming is `set_epoch(epoch,
    batch)` (or `load_state_dict`): exactly the batches the interrupted run would have seen.

    `num_workers=K > 0` makes batches in K processes (`tinygrad_edu.loader_workers`): worker
    `b % K` makes batch b, `prefetch_factor * K` batches are in flight, results come back in
    shared memory and in order. A worker's exception is raised here as its own class, naming
    the sample index and carrying the worker's traceback; Ctrl-C, `break` and errors stop and
    join every worker and free every segment. `multiprocessing_context` is "fork" by default
    where available (the dataset is inherited, lambdas included), else "spawn" (the dataset
    must then be picklable). `timeout` (seconds, 0 = forever) bounds the wait for one batch;
    `worker_init_fn(worker_id)` runs first in each worker. `pin_memory` and
    `persistent_workers` are accepted for PyTorch code and change nothing (numpy batches have
    no pinned memory; workers start per epoch, which gives the same batches).

    Data-parallel training (`num_replicas` W > 1, this process's `rank`): `batch_size` stays
    the global batch. Every rank draws the same order and the same batches, and serves only
    its shard of each (`shard_bounds`: contiguous, sizes differing by at most one, the last
    partial batch split too), so together the W ranks see exactly the batches one process
    sees, and take the same number of steps. `global_batch_len(b)` is batch b's size over all
    ranks (the denominator of the gradient's sample-weighted mean). Per-sample rngs make each
    rank's rows equal to one process's rows of the same batch.
    """

    def __init__(
        self,
        x: Any,
        y: np.ndarray | Sequence[int] | int | None = None,
        batch_size: int | None = None,
        shuffle: bool = False,
        seed: int = 0,
        drop_last: bool = False,
        transform: Callable[..., Any] | None = None,
        num_replicas: int = 1,
        rank: int = 0,
        *,
        num_workers: int = 0,
        collate_fn: Callable[[list[Any]], Any] | None = None,
        prefetch_factor: int = 2,
        timeout: float = 0.0,
        multiprocessing_context: str | None = None,
        worker_init_fn: Callable[[int], Any] | None = None,
        pin_memory: bool = False,
        persistent_workers: bool = False,
    ) -> None:
        if not (isinstance(num_replicas, int) and num_replicas >= 1 and 0 <= rank < num_replicas):
            raise op_error(
                "DataLoader",
                "need num_replicas >= 1 and 0 <= rank < num_replicas",
                f"num_replicas={num_replicas!r}, rank={rank!r}",
                "pass world.size and world.rank from tinygrad_edu.distributed.world()",
            )
        dataset = None
        if y is None or (isinstance(y, int | np.integer) and not isinstance(y, bool)):
            # dataset mode; DataLoader(dataset, 32) passes the batch size second, as PyTorch
            if y is not None:
                if batch_size is not None:
                    raise op_error(
                        "DataLoader",
                        "batch_size given twice (second argument and batch_size=)",
                        f"{y!r} and batch_size={batch_size!r}",
                        "pass DataLoader(dataset, batch_size=...)",
                    )
                batch_size = int(y)
            _check_dataset(x)
            dataset, x, y = x, None, None
        elif len(x) != len(y):
            raise op_error(
                "DataLoader",
                "x and y must have the same length (one label per sample)",
                f"len(x)={len(x)}, len(y)={len(y)}",
                "pass as many labels as samples",
            )
        batch_size = 1 if batch_size is None else batch_size
        if isinstance(batch_size, bool) or not isinstance(batch_size, int | np.integer):
            raise op_error(
                "DataLoader", "batch_size must be an int", f"{batch_size!r}", "pass e.g. 64"
            )
        if batch_size < 1:
            raise op_error(
                "DataLoader",
                "batch_size must be >= 1",
                f"batch_size={batch_size}",
                "pass a positive batch size, e.g. 64",
            )
        _check_seed("DataLoader", seed)
        _check_workers(num_workers, prefetch_factor, multiprocessing_context)
        self.dataset = dataset
        self.x = x
        self.y = None if y is None else np.asarray(y)
        self.batch_size = int(batch_size)
        self.shuffle = bool(shuffle)
        self.seed = int(seed)
        self.drop_last = bool(drop_last)
        self.transform = transform
        self.collate_fn = collate_fn
        self.num_workers = int(num_workers)
        self.prefetch_factor = int(prefetch_factor)
        self.timeout = float(timeout)
        self.multiprocessing_context = multiprocessing_context
        self.worker_init_fn = worker_init_fn
        # accepted for PyTorch code: numpy batches have no pinned memory, and workers start
        # per epoch either way (the batches are the same)
        self.pin_memory, self.persistent_workers = bool(pin_memory), bool(persistent_workers)
        self.num_replicas, self.rank = int(num_replicas), int(rank)
        self._next_epoch = 0  # the epoch the next iter() runs
        self._start_batch = 0  # and the batch it starts at (set_epoch / load_state_dict)
        self._position: tuple[int, int] | None = None  # (epoch, batches yielded) while running

    @property
    def num_samples(self) -> int:
        return len(self.dataset) if self.dataset is not None else len(self.y)

    def __len__(self) -> int:
        """Batches per epoch."""
        if self.drop_last:
            return self.num_samples // self.batch_size
        return math.ceil(self.num_samples / self.batch_size)

    def global_batch_len(self, batch: int) -> int:
        """Samples in batch `batch` of an epoch over all ranks (the last may be smaller)."""
        return min(self.batch_size, self.num_samples - batch * self.batch_size)

    @property
    def epoch(self) -> int:
        """The epoch the next `iter()` will run."""
        return self._next_epoch

    def order(self, epoch: int) -> np.ndarray:
        """The sample indices of `epoch` in the order they are served (all of them, int64)."""
        n = self.num_samples
        if not self.shuffle:
            return np.arange(n, dtype=np.int64)
        rng = np.random.default_rng(self._seed_sequence(epoch, _ORDER_STREAM))
        return rng.permutation(n).astype(np.int64)

    def sample_rng(self, epoch: int, index: int) -> np.random.Generator:
        """The generator sample `index` is transformed with in `epoch` (a fresh one per call)."""
        return self._source().sample_rng(epoch, index)

    def set_epoch(self, epoch: int, batch: int = 0) -> None:
        """Make the next `iter()` run `epoch`, starting at batch index `batch` (to resume)."""
        if epoch < 0 or not 0 <= batch <= len(self):
            raise op_error(
                "DataLoader.set_epoch",
                f"need epoch >= 0 and 0 <= batch <= len(loader) = {len(self)}",
                f"epoch={epoch}, batch={batch}",
                "pass the epoch and batch index saved when training stopped",
            )
        self._next_epoch, self._start_batch = int(epoch), int(batch)
        self._position = None

    def state_dict(self) -> dict[str, np.ndarray]:
        """Where the loader stands, as a flat dict of numpy int64 scalars.

        `epoch` and `batch` are the next batch to serve: mid-epoch while an iteration is
        under way (batches already handed out count as done), else the start of the next epoch.
        """
        if self._position is not None and self._position[1] < len(self):
            epoch, batch = self._position
        elif self._position is not None:
            epoch, batch = self._position[0] + 1, 0
        else:
            epoch, batch = self._next_epoch, self._start_batch
        return {
            "seed": np.array(self.seed, dtype=np.int64),
            "epoch": np.array(epoch, dtype=np.int64),
            "batch": np.array(batch, dtype=np.int64),
            "num_samples": np.array(self.num_samples, dtype=np.int64),
            "batch_size": np.array(self.batch_size, dtype=np.int64),
        }

    def load_state_dict(self, state: dict[str, np.ndarray]) -> None:
        """Resume from `state_dict()`: the next `iter()` continues where that one stood."""
        missing = {"seed", "epoch", "batch"} - set(state)
        if missing:
            raise op_error(
                "DataLoader.load_state_dict",
                f"state is missing {sorted(missing)}",
                sorted(state),
                "pass a dict returned by DataLoader.state_dict()",
            )
        batch = int(state["batch"])
        saved_n = int(state.get("num_samples", self.num_samples))
        saved_bs = int(state.get("batch_size", self.batch_size))
        if saved_n != self.num_samples or (batch > 0 and saved_bs != self.batch_size):
            raise op_error(
                "DataLoader.load_state_dict",
                "the state was saved for a different dataset size or batch size",
                f"saved num_samples={saved_n}, batch_size={saved_bs}; this loader "
                f"num_samples={self.num_samples}, batch_size={self.batch_size}",
                "resume with the same data and batch_size",
            )
        seed = int(state["seed"])
        _check_seed("DataLoader.load_state_dict", seed)
        self.seed = seed
        self.set_epoch(int(state["epoch"]), batch)

    def __iter__(self) -> Iterator[Any]:
        epoch, start = self._next_epoch, self._start_batch
        self._next_epoch, self._start_batch = epoch + 1, 0
        self._position = (epoch, start)
        return self._run(epoch, start)

    def _source(self) -> _SampleSource:
        return _SampleSource(
            self.dataset, self.x, self.y, self.transform, self.collate_fn, self.seed
        )

    def _shards(self, epoch: int, start: int) -> list[tuple[list[int], bool]]:
        """This rank's sample indices of each batch from `start` on (and whether the shard is
        empty: it then carries the batch's first index, to learn the shapes, and keeps no row)."""
        order = self.order(epoch)
        shards = []
        for b in range(start, len(self)):
            idx = order[b * self.batch_size : (b + 1) * self.batch_size]
            lo, hi = shard_bounds(len(idx), self.rank, self.num_replicas)
            shards.append((idx[lo:hi].tolist(), False) if hi > lo else (idx[:1].tolist(), True))
        return shards

    def _run(self, epoch: int, start: int) -> Iterator[Any]:
        source, shards = self._source(), self._shards(epoch, start)
        if self.num_workers == 0:
            for k, (indices, empty) in enumerate(shards):
                batch = source.load_batch(indices, epoch, empty)
                self._position = (epoch, start + k + 1)
                yield batch
            return
        context = self.multiprocessing_context or default_context()
        with WorkerPool(
            source.load_batch, self.num_workers, context, self.timeout, self.worker_init_fn
        ) as pool:
            ahead = self.prefetch_factor * self.num_workers
            for k in range(min(ahead, len(shards))):
                pool.submit(start + k, (shards[k][0], epoch, shards[k][1]))
            for k in range(len(shards)):
                batch = pool.result(start + k)
                if k + ahead < len(shards):
                    indices, empty = shards[k + ahead]
                    pool.submit(start + k + ahead, (indices, epoch, empty))
                self._position = (epoch, start + k + 1)
                yield batch

    def _seed_sequence(self, epoch: int, *key: int) -> np.random.SeedSequence:
        return np.random.SeedSequence(self.seed, spawn_key=(int(epoch), *key))

    def __repr__(self) -> str:
        return (
            f"DataLoader(num_samples={self.num_samples}, batch_size={self.batch_size}, "
            f"shuffle={self.shuffle}, seed={self.seed}, drop_last={self.drop_last}, "
            f"num_workers={self.num_workers}, epoch={self.epoch})"
        )


def _check_dataset(dataset: Any) -> None:
    if not (hasattr(dataset, "__len__") and hasattr(dataset, "__getitem__")):
        raise op_error(
            "DataLoader",
            "a dataset needs __len__ and __getitem__ (or pass arrays x, y)",
            f"{type(dataset).__name__}",
            "pass an ImageFolder / a map-style dataset, or DataLoader(x, y, batch_size)",
        )


def _check_workers(num_workers: int, prefetch_factor: int, context: str | None) -> None:
    if isinstance(num_workers, bool) or not isinstance(num_workers, int) or num_workers < 0:
        raise op_error(
            "DataLoader", "num_workers must be an int >= 0", f"{num_workers!r}", "pass 0, 2, ..."
        )
    if isinstance(prefetch_factor, bool) or not isinstance(prefetch_factor, int):
        raise op_error("DataLoader", "prefetch_factor must be an int", prefetch_factor, "pass 2")
    if prefetch_factor < 1:
        raise op_error("DataLoader", "prefetch_factor must be >= 1", prefetch_factor, "pass 2")
    if context is not None and context not in mp.get_all_start_methods():
        raise op_error(
            "DataLoader",
            "unknown multiprocessing_context",
            repr(context),
            f"pass one of {mp.get_all_start_methods()}",
        )


# ----------------------------------------------------------------------------- helpers


def shard_bounds(n: int, rank: int, num_replicas: int) -> tuple[int, int]:
    """Rows [lo, hi) of an n-row batch that `rank` of `num_replicas` takes: contiguous
    shards in rank order, the first n % num_replicas ranks one row larger (a rank may get
    none when n < num_replicas)."""
    base, extra = divmod(n, num_replicas)
    lo = rank * base + min(rank, extra)
    return lo, lo + base + (rank < extra)


def _check_seed(op: str, seed: int) -> None:
    if isinstance(seed, bool) or not isinstance(seed, int | np.integer) or seed < 0:
        raise op_error(op, "seed must be a non-negative int", f"seed={seed!r}", "pass e.g. 0")


# ----------------------------------------------------------------------------- files


def load_image(path: str | os.PathLike[str]) -> np.ndarray:
    """Read an image file with Pillow as RGB, HWC uint8 (gray and RGBA files are converted).

    Raises `FileNotFoundError` for a missing path and `ValueError` for a file Pillow cannot read.
    """
    if not os.path.isfile(path):
        raise FileNotFoundError(f"load_image: no such file: {os.fspath(path)!r}")
    try:
        with Image.open(path) as im:
            return np.asarray(im.convert("RGB"), dtype=np.uint8).copy()
    except (UnidentifiedImageError, OSError) as e:
        raise ValueError(
            f"load_image: cannot read {os.fspath(path)!r} as an image ({e}). "
            "Fix: pass a JPEG/PNG/... file Pillow can open"
        ) from e


if __name__ == "__main__":  # python -m tinygrad_edu.data write-digits DIR
    from tinygrad_edu.datasets import main

    main()
