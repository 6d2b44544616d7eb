"""Data for image networks: the digits dataset, a reproducible DataLoader, image transforms, and
the AlexNet paper's ten-crop test-time evaluation. Everything here is plain numpy (no autograd).

Layout conventions (the one rule to remember):

- **CHW float32** is the network's layout: `(channels, height, width)`, values in [0, 1] until
  `Normalize`. Batches are NCHW. Every transform works on CHW unless it says otherwise.
- **HWC uint8** is the file layout: what `load_image` returns and what Pillow speaks.
  `ResizeShorter` takes HWC (uint8 or float) or a PIL image by default, and `ToCHWFloat` is the
  bridge from HWC uint8 to CHW float32. `CenterCrop`, `RandomCrop` and `Resize` take
  `layout="HWC"` when you want them before the bridge.

Transforms are small classes called as `transform(image, rng)`: one image (not a batch) and a
`np.random.Generator`. Deterministic transforms ignore `rng`; random ones draw from it, or from
the global generator (`tinygrad_edu.manual_seed`) when it is `None`. `DataLoader` passes an rng
derived from `(seed, epoch, batch index)`, so augmented epochs are reproducible and a run can
resume mid-epoch with `set_epoch(epoch, batch)`.

The AlexNet pipeline (Krizhevsky et al. 2012), train and test::

    train = Compose([ResizeShorter(256), CenterCrop(256, layout="HWC"), ToCHWFloat(),
                     RandomCrop(227), RandomHorizontalFlip(),
                     Normalize(IMAGENET_MEAN, IMAGENET_STD)])
    x = np.stack([train(load_image(p), rng) for p in paths])          # (B, 3, 227, 227)
    # test: 256x256 CHW images, the 4 corner + centre 227 crops and their mirrors, averaged
    probs = ten_crop_predict(lambda xb: model(Tensor(xb)).numpy(), images, 227)

Digits, upscaled for a small AlexNet-style net::

    x_train, y_train, x_test, y_test = load_digits()                  # (N, 1, 8, 8) float32
    aug = Compose([Resize(32), RandomRotation(10), RandomZoom((0.9, 1.1))])
    loader = DataLoader(x_train, y_train, batch_size=64, shuffle=True, seed=0, transform=aug)
    for xb, yb in loader:                                             # (64, 1, 32, 32), (64,)
        ...

Resizing uses Pillow's bilinear filter one channel at a time (mode "L" for uint8, "F" for
float), so float images are never quantised; downscaling is antialiased (Pillow widens the
filter), like torchvision's `antialias=True`.
"""

from __future__ import annotations

import functools
import math
import os
from collections.abc import Callable, Iterator, Sequence
from typing import Literal, Protocol

import numpy as np
from PIL import Image, UnidentifiedImageError

from .errors import op_error
from .rng import generator as _global_generator

__all__ = [
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "CenterCrop",
    "Compose",
    "DataLoader",
    "GrayToRGB",
    "Normalize",
    "RandomBrightness",
    "RandomCrop",
    "RandomHorizontalFlip",
    "RandomRotation",
    "RandomZoom",
    "Resize",
    "ResizeShorter",
    "ToCHWFloat",
    "Transform",
    "load_digits",
    "load_image",
    "shard_bounds",
    "ten_crop",
    "ten_crop_predict",
]

Layout = Literal["CHW", "HWC"]
Size = int | tuple[int, int]

#: Per-channel RGB mean and std of ImageNet in [0, 1] (the torchvision values), for `Normalize`.
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


class Transform(Protocol):
    """What `Compose` and `DataLoader(transform=...)` call: one image in, one image out."""

    def __call__(self, image: np.ndarray, rng: np.random.Generator | None = None) -> np.ndarray: ...


# ----------------------------------------------------------------------------- the digits


@functools.lru_cache(maxsize=1)
def _digits_raw() -> tuple[np.ndarray, np.ndarray]:
    from sklearn.datasets import load_digits as sk_load_digits  # slow import: only when needed

    bunch = sk_load_digits()
    images = (np.asarray(bunch.images, dtype=np.float32) / np.float32(16.0))[:, None, :, :]
    labels = np.asarray(bunch.target, dtype=np.int64)
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


class DataLoader:
    """Batches of `(xb, yb)` numpy arrays, reproducible per epoch and resumable.

    `x` is an array of samples (first axis) or a sequence of per-sample arrays (e.g. images of
    different sizes that `transform` brings to one size); `y` is an array of labels.
    Iterating runs one epoch: `len(loader)` batches of `batch_size` (the last one smaller unless
    `drop_last=True`, which drops an incomplete last batch). Each `iter()` starts the next
    epoch: 0, 1, 2, ...

    Everything random is derived from `(seed, epoch)` with `np.random.SeedSequence`, never from
    state carried between epochs: epoch k's order (when `shuffle=True`) is the same whatever ran
    before it, and batch b's transform rng comes from `(seed, epoch, b)`. `transform(image,
    rng)` is applied to each sample of a batch in turn with that batch's rng. So resuming is
    `set_epoch(epoch, batch)` (or `load_state_dict`), and gives exactly the batches the
    interrupted run would have seen.

    Data-parallel training (`num_replicas` W > 1, this process's `rank`): `batch_size` stays
    the global batch. Every rank draws the same order and the same batches, and serves only
    its shard of each (`shard_bounds`: contiguous, sizes differing by at most one, the last
    partial batch split too), so together the W ranks see exactly the batches one process
    sees, and take the same number of steps. `global_batch_len(b)` is batch b's size over all
    ranks (the denominator of the gradient's sample-weighted mean). With a `transform`, each
    rank transforms the whole global batch with the batch's rng and keeps its rows (exactly
    one process's samples, at W times the transform work).
    """

    def __init__(
        self,
        x: np.ndarray | Sequence[np.ndarray],
        y: np.ndarray | Sequence[int],
        batch_size: int,
        shuffle: bool = False,
        seed: int = 0,
        drop_last: bool = False,
        transform: Callable[[np.ndarray, np.random.Generator], np.ndarray] | None = None,
        num_replicas: int = 1,
        rank: int = 0,
    ) -> None:
        if not (isinstance(num_replicas, int) and num_replicas >= 1 and 0 <= rank < num_replicas):
            raise op_error(
                "DataLoader",
                "need num_replicas >= 1 and 0 <= rank < num_replicas",
                f"num_replicas={num_replicas!r}, rank={rank!r}",
                "pass world.size and world.rank from tinygrad_edu.distributed.world()",
            )
        if len(x) != len(y):
            raise op_error(
                "DataLoader",
                "x and y must have the same length (one label per sample)",
                f"len(x)={len(x)}, len(y)={len(y)}",
                "pass as many labels as samples",
            )
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
        self.x = x
        self.y = np.asarray(y)
        self.batch_size = int(batch_size)
        self.shuffle = bool(shuffle)
        self.seed = int(seed)
        self.drop_last = bool(drop_last)
        self.transform = transform
        self.num_replicas, self.rank = int(num_replicas), int(rank)
        self._next_epoch = 0  # the epoch the next iter() runs
        self._start_batch = 0  # and the batch it starts at (set_epoch / load_state_dict)
        self._position: tuple[int, int] | None = None  # (epoch, batches yielded) while running

    @property
    def num_samples(self) -> int:
        return len(self.y)

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

    def batch_rng(self, epoch: int, batch: int) -> np.random.Generator:
        """The generator passed to `transform` for every sample of batch `batch` of `epoch`."""
        return np.random.default_rng(self._seed_sequence(epoch, _AUGMENT_STREAM, batch))

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

    def __iter__(self) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        epoch, start = self._next_epoch, self._start_batch
        self._next_epoch, self._start_batch = epoch + 1, 0
        self._position = (epoch, start)
        return self._run(epoch, start)

    def _run(self, epoch: int, start: int) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        order = self.order(epoch)
        for b in range(start, len(self)):
            idx = order[b * self.batch_size : (b + 1) * self.batch_size]
            lo, hi = shard_bounds(len(idx), self.rank, self.num_replicas)
            if self.transform is None or self.num_replicas == 1:
                xb = self._gather(idx[lo:hi], epoch, b)
            else:  # per-sample draws from the batch's rng: transform all, keep this shard
                xb = self._gather(idx, epoch, b)[lo:hi]
            self._position = (epoch, b + 1)
            yield xb, self.y[idx[lo:hi]]

    def _gather(self, idx: np.ndarray, epoch: int, batch: int) -> np.ndarray:
        if self.transform is None:
            if isinstance(self.x, np.ndarray):
                return self.x[idx]
            return np.stack([np.asarray(self.x[i]) for i in idx])
        rng = self.batch_rng(epoch, batch)
        return np.stack([np.asarray(self.transform(np.asarray(self.x[i]), rng)) for i in idx])

    def _seed_sequence(self, epoch: int, *key: int) -> np.random.SeedSequence:
        return np.random.SeedSequence(self.seed, spawn_key=(int(epoch), *key))

    def __repr__(self) -> str:
        return (
            f"DataLoader(num_samples={self.num_samples}, batch_size={self.batch_size}, "
            f"shuffle={self.shuffle}, seed={self.seed}, drop_last={self.drop_last}, "
            f"epoch={self.epoch})"
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


def _pair(op: str, size: Size) -> tuple[int, int]:
    """`size` as (height, width): an int means a square."""
    if isinstance(size, int | np.integer) and not isinstance(size, bool):
        hw = (int(size), int(size))
    elif isinstance(size, tuple | list) and len(size) == 2:
        hw = (int(size[0]), int(size[1]))
    else:
        raise op_error(op, "size must be an int or (height, width)", repr(size), "pass e.g. 227")
    if hw[0] < 1 or hw[1] < 1:
        raise op_error(op, "size must be positive", repr(size), "pass e.g. 227")
    return hw


def _as_array(image: np.ndarray | Image.Image) -> np.ndarray:
    """A PIL image as its HWC (or HW) uint8 array; arrays pass through."""
    return np.asarray(image)


def _check_layout(op: str, layout: str) -> None:
    if layout not in ("CHW", "HWC"):
        raise op_error(op, "layout must be 'CHW' or 'HWC'", repr(layout), "pass layout='CHW'")


def _check_ndim(op: str, image: np.ndarray, layout: str = "CHW") -> None:
    if image.ndim != 3:
        example = "(3, 227, 227)" if layout == "CHW" else "(256, 256, 3)"
        raise op_error(
            op,
            f"expects one {layout} image with 3 dimensions",
            f"shape {image.shape}",
            f"pass a single {layout} image such as {example}; for a gray (H, W) array add a "
            "channel axis",
        )


def _hw(image: np.ndarray, layout: str) -> tuple[int, int]:
    return (image.shape[1], image.shape[2]) if layout == "CHW" else (image.shape[0], image.shape[1])


def _crop(image: np.ndarray, top: int, left: int, hw: tuple[int, int], layout: str) -> np.ndarray:
    h, w = hw
    if layout == "CHW":
        return image[:, top : top + h, left : left + w]
    return image[top : top + h, left : left + w]


def _check_crop_fits(op: str, image: np.ndarray, hw: tuple[int, int], layout: str) -> None:
    ih, iw = _hw(image, layout)
    if hw[0] > ih or hw[1] > iw:
        raise op_error(
            op,
            f"crop {hw[0]}x{hw[1]} is larger than the image {ih}x{iw} (height x width)",
            f"{layout} shape {image.shape}",
            "resize the image first (ResizeShorter / Resize) or crop smaller",
        )


def _map_planes(
    image: np.ndarray, layout: str, fn: Callable[[Image.Image], Image.Image]
) -> np.ndarray:
    """Apply a Pillow operation to each channel of a 3-D image; uint8 stays uint8 (mode "L"),
    anything else is processed as float32 (mode "F")."""
    chw = image if layout == "CHW" else np.moveaxis(image, -1, 0)
    is_uint8 = chw.dtype == np.uint8
    planes = []
    for plane in chw:
        plane = plane if is_uint8 else plane.astype(np.float32, copy=False)
        planes.append(np.asarray(fn(Image.fromarray(np.ascontiguousarray(plane)))))
    out = np.stack(planes)
    out = out if is_uint8 else out.astype(np.float32, copy=False)
    return out if layout == "CHW" else np.moveaxis(out, 0, -1).copy()


def _resize(image: np.ndarray, hw: tuple[int, int], layout: str) -> np.ndarray:
    size_wh = (hw[1], hw[0])  # Pillow sizes are (width, height)
    return _map_planes(image, layout, lambda im: im.resize(size_wh, Image.Resampling.BILINEAR))


def _rng(rng: np.random.Generator | None) -> np.random.Generator:
    return _global_generator() if rng is None else rng


# ----------------------------------------------------------------------------- transforms


class Compose:
    """Apply transforms in order, passing the same rng to each."""

    def __init__(self, transforms: Sequence[Transform]) -> None:
        self.transforms = list(transforms)

    def __call__(self, image: np.ndarray, rng: np.random.Generator | None = None) -> np.ndarray:
        for t in self.transforms:
            image = t(image, rng)
        return image

    def __repr__(self) -> str:
        return "Compose([" + ", ".join(repr(t) for t in self.transforms) + "])"


class ResizeShorter:
    """Scale so the shorter side is `size`, keeping the aspect ratio (longer side rounded).

    Input: an HWC array (uint8 or float), an (H, W) gray array, or a PIL image (converted to an
    array). Output: an array of the same layout; uint8 stays uint8, other dtypes become float32.
    With `layout="CHW"` it takes and returns CHW arrays instead. Bilinear (Pillow).
    """

    def __init__(self, size: int = 256, layout: Layout = "HWC") -> None:
        self.size = _pair("ResizeShorter", size)[0]
        _check_layout("ResizeShorter", layout)
        self.layout = layout

    def __call__(
        self, image: np.ndarray | Image.Image, rng: np.random.Generator | None = None
    ) -> np.ndarray:
        arr = _as_array(image)
        gray = arr.ndim == 2
        if gray:
            arr = arr[:, :, None]
        _check_ndim("ResizeShorter", arr, self.layout)
        if self.layout == "HWC" and arr.shape[0] <= 4 < arr.shape[2]:
            raise op_error(
                "ResizeShorter",
                "the image looks like CHW but layout='HWC'",
                f"shape {arr.shape}",
                "pass layout='CHW', or an (H, W, C) image",
            )
        h, w = _hw(arr, self.layout)
        if h <= w:
            hw = (self.size, max(1, round(w * self.size / h)))
        else:
            hw = (max(1, round(h * self.size / w)), self.size)
        out = _resize(arr, hw, self.layout)
        return out[:, :, 0] if gray else out

    def __repr__(self) -> str:
        return f"ResizeShorter({self.size})"


class Resize:
    """Resize to exactly `size` (int: square; or (height, width)), bilinear via Pillow per
    channel: mode "F" for float images (no quantisation), "L" for uint8. For upscaling small
    images, e.g. digits 8x8 -> 32x32. CHW by default; float output is float32."""

    def __init__(self, size: Size, layout: Layout = "CHW") -> None:
        self.hw = _pair("Resize", size)
        _check_layout("Resize", layout)
        self.layout = layout

    def __call__(self, image: np.ndarray, rng: np.random.Generator | None = None) -> np.ndarray:
        image = _as_array(image)
        _check_ndim("Resize", image, self.layout)
        return _resize(image, self.hw, self.layout)

    def __repr__(self) -> str:
        return f"Resize({self.hw})"


class CenterCrop:
    """The central `size` crop (top-left at ((H - h) // 2, (W - w) // 2)). CHW by default."""

    def __init__(self, size: Size, layout: Layout = "CHW") -> None:
        self.hw = _pair("CenterCrop", size)
        _check_layout("CenterCrop", layout)
        self.layout = layout

    def __call__(self, image: np.ndarray, rng: np.random.Generator | None = None) -> np.ndarray:
        image = _as_array(image)
        _check_ndim("CenterCrop", image, self.layout)
        _check_crop_fits("CenterCrop", image, self.hw, self.layout)
        h, w = _hw(image, self.layout)
        top, left = (h - self.hw[0]) // 2, (w - self.hw[1]) // 2
        return _crop(image, top, left, self.hw, self.layout).copy()

    def __repr__(self) -> str:
        return f"CenterCrop({self.hw})"


class RandomCrop:
    """A `size` crop at a uniformly random position (every position equally likely), as in
    AlexNet's 227x227 training patches from 256x256 images. CHW by default."""

    def __init__(self, size: Size, layout: Layout = "CHW") -> None:
        self.hw = _pair("RandomCrop", size)
        _check_layout("RandomCrop", layout)
        self.layout = layout

    def __call__(self, image: np.ndarray, rng: np.random.Generator | None = None) -> np.ndarray:
        image = _as_array(image)
        _check_ndim("RandomCrop", image, self.layout)
        _check_crop_fits("RandomCrop", image, self.hw, self.layout)
        h, w = _hw(image, self.layout)
        r = _rng(rng)
        top = int(r.integers(0, h - self.hw[0] + 1))
        left = int(r.integers(0, w - self.hw[1] + 1))
        return _crop(image, top, left, self.hw, self.layout).copy()

    def __repr__(self) -> str:
        return f"RandomCrop({self.hw})"


class RandomHorizontalFlip:
    """Mirror left-right (reverse the width axis of a CHW image) with probability `p`."""

    def __init__(self, p: float = 0.5) -> None:
        if not 0.0 <= p <= 1.0:
            raise op_error("RandomHorizontalFlip", "p must be in [0, 1]", f"p={p}", "pass 0.5")
        self.p = float(p)

    def __call__(self, image: np.ndarray, rng: np.random.Generator | None = None) -> np.ndarray:
        image = np.asarray(image)
        _check_ndim("RandomHorizontalFlip", image)
        if self.p >= 1.0 or (self.p > 0.0 and _rng(rng).random() < self.p):
            return image[:, :, ::-1].copy()
        return image

    def __repr__(self) -> str:
        return f"RandomHorizontalFlip(p={self.p})"


class RandomRotation:
    """Rotate a CHW image by an angle drawn uniformly from [-degrees, degrees] (or from
    `(low, high)`), counter-clockwise, about the centre, bilinear, same size; corners that come
    from outside the image are `fill`."""

    def __init__(self, degrees: float | tuple[float, float], fill: float = 0.0) -> None:
        if isinstance(degrees, tuple | list):
            low, high = float(degrees[0]), float(degrees[1])
        else:
            low, high = -abs(float(degrees)), abs(float(degrees))
        if low > high:
            raise op_error("RandomRotation", "need low <= high", (low, high), "pass (-10, 10)")
        self.degrees = (low, high)
        self.fill = float(fill)

    def __call__(self, image: np.ndarray, rng: np.random.Generator | None = None) -> np.ndarray:
        image = np.asarray(image)
        _check_ndim("RandomRotation", image)
        angle = float(_rng(rng).uniform(*self.degrees))
        fill = int(round(self.fill)) if image.dtype == np.uint8 else self.fill
        return _map_planes(
            image,
            "CHW",
            lambda im: im.rotate(angle, resample=Image.Resampling.BILINEAR, fillcolor=fill),
        )

    def __repr__(self) -> str:
        return f"RandomRotation({self.degrees}, fill={self.fill})"


class RandomZoom:
    """Zoom a CHW image about its centre by a factor drawn uniformly from `scale` (> 1 zooms in,
    < 1 zooms out and pads with `fill`); bilinear, same output size."""

    def __init__(self, scale: tuple[float, float] = (0.9, 1.1), fill: float = 0.0) -> None:
        low, high = float(scale[0]), float(scale[1])
        if not 0.0 < low <= high:
            raise op_error(
                "RandomZoom", "scale must be (low, high) with 0 < low <= high", scale, "(0.9, 1.1)"
            )
        self.scale = (low, high)
        self.fill = float(fill)

    def __call__(self, image: np.ndarray, rng: np.random.Generator | None = None) -> np.ndarray:
        image = np.asarray(image)
        _check_ndim("RandomZoom", image)
        s = float(_rng(rng).uniform(*self.scale))
        h, w = image.shape[1], image.shape[2]
        cx, cy = w / 2.0, h / 2.0
        # Pillow's affine maps each output point (x, y) to the input point (a x + b y + c, ...).
        coeffs = (1 / s, 0.0, cx - cx / s, 0.0, 1 / s, cy - cy / s)
        fill = int(round(self.fill)) if image.dtype == np.uint8 else self.fill
        return _map_planes(
            image,
            "CHW",
            lambda im: im.transform(
                (w, h),
                Image.Transform.AFFINE,
                coeffs,
                resample=Image.Resampling.BILINEAR,
                fillcolor=fill,
            ),
        )

    def __repr__(self) -> str:
        return f"RandomZoom({self.scale}, fill={self.fill})"


class RandomBrightness:
    """Add one offset drawn uniformly from [-delta, delta] to every pixel of a float image, then
    clip to `clip` (default [0, 1]; None to skip). Use before `Normalize`."""

    def __init__(self, delta: float, clip: tuple[float, float] | None = (0.0, 1.0)) -> None:
        if delta < 0:
            raise op_error("RandomBrightness", "delta must be >= 0", f"delta={delta}", "pass 0.1")
        self.delta = float(delta)
        self.clip = clip

    def __call__(self, image: np.ndarray, rng: np.random.Generator | None = None) -> np.ndarray:
        image = np.asarray(image)
        _check_ndim("RandomBrightness", image)
        if not np.issubdtype(image.dtype, np.floating):
            raise op_error(
                "RandomBrightness",
                "expects a float image in [0, 1]",
                f"dtype {image.dtype}",
                "apply ToCHWFloat() first",
            )
        offset = _rng(rng).uniform(-self.delta, self.delta)
        out = image + image.dtype.type(offset)
        return out if self.clip is None else np.clip(out, *self.clip).astype(image.dtype)

    def __repr__(self) -> str:
        return f"RandomBrightness({self.delta}, clip={self.clip})"


class GrayToRGB:
    """Repeat the one channel of a gray CHW image: (1, H, W) -> (3, H, W). A 3-channel image
    passes through unchanged (so mixed gray/colour datasets need no special case)."""

    def __call__(self, image: np.ndarray, rng: np.random.Generator | None = None) -> np.ndarray:
        image = np.asarray(image)
        _check_ndim("GrayToRGB", image)
        if image.shape[0] == 3:
            return image
        if image.shape[0] != 1:
            raise op_error(
                "GrayToRGB",
                "expects a CHW image with 1 (or 3) channels",
                f"shape {image.shape}",
                "pass a (1, H, W) image; use ToCHWFloat() first on HWC images",
            )
        return np.repeat(image, 3, axis=0)

    def __repr__(self) -> str:
        return "GrayToRGB()"


class ToCHWFloat:
    """HWC (or (H, W) gray, or PIL) -> CHW float32. uint8 is divided by 255 into [0, 1]; float
    input is only transposed and cast (assumed already in [0, 1])."""

    def __call__(
        self, image: np.ndarray | Image.Image, rng: np.random.Generator | None = None
    ) -> np.ndarray:
        arr = _as_array(image)
        if arr.ndim == 2:
            arr = arr[:, :, None]
        _check_ndim("ToCHWFloat", arr, "HWC")
        chw = np.ascontiguousarray(np.moveaxis(arr, -1, 0))
        if arr.dtype == np.uint8:
            return chw.astype(np.float32) / np.float32(255.0)
        if np.issubdtype(arr.dtype, np.floating):
            return chw.astype(np.float32)
        raise op_error(
            "ToCHWFloat",
            "expects a uint8 or float image",
            f"dtype {arr.dtype}",
            "convert it with load_image() or .astype(np.uint8)",
        )

    def __repr__(self) -> str:
        return "ToCHWFloat()"


class Normalize:
    """Per channel `(image - mean[c]) / std[c]` on a CHW image; `inverse` undoes it."""

    def __init__(self, mean: float | Sequence[float], std: float | Sequence[float]) -> None:
        self.mean = np.atleast_1d(np.asarray(mean, dtype=np.float32))
        self.std = np.atleast_1d(np.asarray(std, dtype=np.float32))
        if self.mean.ndim != 1 or self.std.ndim != 1 or np.any(self.std <= 0):
            raise op_error(
                "Normalize",
                "mean and std must be numbers or 1-D per-channel lists, std > 0",
                f"mean={mean}, std={std}",
                "pass e.g. Normalize(IMAGENET_MEAN, IMAGENET_STD)",
            )

    def _stats(self, image: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        _check_ndim("Normalize", image)
        c = image.shape[0]
        for name, v in (("mean", self.mean), ("std", self.std)):
            if len(v) not in (1, c):
                raise op_error(
                    "Normalize",
                    f"{name} has {len(v)} values but the image has {c} channels",
                    f"shape {image.shape}",
                    f"give one {name} per channel (or GrayToRGB() first)",
                )
        return self.mean[:, None, None], self.std[:, None, None]

    def __call__(self, image: np.ndarray, rng: np.random.Generator | None = None) -> np.ndarray:
        image = np.asarray(image, dtype=np.float32)
        mean, std = self._stats(image)
        return (image - mean) / std

    def inverse(self, image: np.ndarray) -> np.ndarray:
        """`image * std + mean`: back to [0, 1] pixels (for display)."""
        image = np.asarray(image, dtype=np.float32)
        mean, std = self._stats(image)
        return image * std + mean

    def __repr__(self) -> str:
        return f"Normalize(mean={self.mean.tolist()}, std={self.std.tolist()})"


# ----------------------------------------------------------------------------- ten-crop test


def ten_crop(image_chw: np.ndarray, size: Size) -> np.ndarray:
    """The AlexNet test-time crops of one CHW image: `(10, C, h, w)`.

    Order: top-left, top-right, bottom-left, bottom-right, centre (same position as
    `CenterCrop`), then the horizontal mirrors of those five in the same order.
    """
    image = np.asarray(image_chw)
    _check_ndim("ten_crop", image)
    hw = _pair("ten_crop", size)
    _check_crop_fits("ten_crop", image, hw, "CHW")
    h, w = image.shape[1], image.shape[2]
    corners = [
        (0, 0),
        (0, w - hw[1]),
        (h - hw[0], 0),
        (h - hw[0], w - hw[1]),
        ((h - hw[0]) // 2, (w - hw[1]) // 2),
    ]
    five = np.stack([_crop(image, top, left, hw, "CHW") for top, left in corners])
    return np.concatenate([five, five[:, :, :, ::-1]])


def _softmax(scores: np.ndarray) -> np.ndarray:
    z = scores - scores.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


def ten_crop_predict(
    predict_fn: Callable[[np.ndarray], np.ndarray],
    images: np.ndarray | Sequence[np.ndarray],
    size: Size,
    softmax: bool = True,
    batch_size: int = 16,
) -> np.ndarray:
    """Average a model's predictions over the ten crops of each image (the paper's test-time
    evaluation). Returns `(N, num_classes)` float32; take `.argmax(1)` for the class.

    `images`: an `(N, C, H, W)` array or a sequence of CHW images (each at least `size`).
    `predict_fn` maps a float32 `(B, C, h, w)` batch to `(B, num_classes)` scores (numpy, or
    anything with `.numpy()` such as a Tensor). With `softmax=True` (default) the scores are
    taken as logits and their softmax probabilities are averaged, as in the paper; pass
    `softmax=False` to average the raw outputs (e.g. when `predict_fn` already returns
    probabilities). `batch_size` images (10x as many crops) go to `predict_fn` per call.
    """
    if batch_size < 1:
        raise op_error("ten_crop_predict", "batch_size must be >= 1", batch_size, "pass 16")
    results = []
    for start in range(0, len(images), batch_size):
        chunk = [images[i] for i in range(start, min(start + batch_size, len(images)))]
        crops = np.concatenate([ten_crop(img, size) for img in chunk]).astype(np.float32)
        out = predict_fn(crops)
        out = np.asarray(out.numpy() if hasattr(out, "numpy") else out, dtype=np.float64)
        if out.ndim != 2 or out.shape[0] != len(crops):
            raise op_error(
                "ten_crop_predict",
                f"predict_fn must return (batch, num_classes) scores for {len(crops)} crops",
                f"output shape {out.shape} for input {crops.shape}",
                "return one row of class scores per input image",
            )
        if softmax:
            out = _softmax(out)
        results.append(out.reshape(len(chunk), 10, -1).mean(axis=1))
    if not results:
        raise op_error("ten_crop_predict", "no images", "0 images", "pass at least one image")
    return np.concatenate(results).astype(np.float32)


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
