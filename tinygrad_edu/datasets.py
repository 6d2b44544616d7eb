"""Datasets on disk: `ImageFolder` (torchvision's one-sub-folder-per-class convention), `Subset`
and `stratified_split` for a validation split, and `write_digits_folder`, which writes the
scikit-learn digits as a PNG image folder so folder training can be tried without a download.

    python -m tinygrad_edu.data write-digits DIR [--per-class N] [--size S]

Bad folders get errors that name the path and the fix: a missing or empty root, a class
folder without images (an error, as torchvision; `allow_empty=True` makes it a warning),
files that are not images by extension (ignored, listed in one warning), files that cannot be
decoded (`on_error="raise"`: an error naming the file; `"skip"`: left out or replaced, counted
in a warning). A folder with one class loads (for inference); training refuses it.
"""

from __future__ import annotations

import argparse
import os
import warnings
from collections import Counter
from collections.abc import Callable, Sequence
from typing import Any, Literal

import numpy as np
from PIL import Image

from .errors import op_error

__all__ = [
    "IMG_EXTENSIONS",
    "ImageFolder",
    "Subset",
    "pil_loader",
    "stratified_split",
    "write_digits_folder",
]

#: The file extensions `ImageFolder` takes as images (compared lower-cased), torchvision's.
IMG_EXTENSIONS = (".jpg", ".jpeg", ".png", ".ppm", ".bmp", ".pgm", ".tif", ".tiff", ".webp")

# What Pillow raises for a file it cannot read: not an image, truncated, corrupt, too large.
_DECODE_ERRORS = (OSError, SyntaxError, ValueError, EOFError, Image.DecompressionBombError)
_SHOWN = 5  # paths listed in a warning or error before "and N more"


def pil_loader(path: str) -> Image.Image:
    """Open and fully decode an image file as an RGB PIL image: grayscale, CMYK, palette
    (transparency included) and RGBA files are converted (alpha dropped, as torchvision)."""
    with open(path, "rb") as f:
        image = Image.open(f)
        if image.mode == "P" and "transparency" in image.info:
            image = image.convert("RGBA")  # Pillow's advice for palette transparency
        return image.convert("RGB")  # also decodes the whole file, while it is open


def _listing(paths: Sequence[str]) -> str:
    shown = ", ".join(repr(p) for p in paths[:_SHOWN])
    return shown + (f" and {len(paths) - _SHOWN} more" if len(paths) > _SHOWN else "")


def _check_file(path: str, decode: bool) -> str | None:
    """None if Pillow reads the file as an image, else why not: the header only, or the whole
    image with `decode` (which also finds files cut short)."""
    try:
        with Image.open(path) as image:
            if decode:
                image.load()
    except _DECODE_ERRORS as e:
        return f"{type(e).__name__}: {e}"
    return None


class ImageFolder:
    """Images in one sub-folder per class, as torchvision's `ImageFolder`:

        root/cat/001.jpg, root/cat/002.png, root/dog/a.webp, ...

    `classes` are the sub-folder names sorted (hidden ones, such as `.ipynb_checkpoints`,
    left out), `class_to_idx` maps them to 0, 1, ... (`find_classes(root)` gives both);
    `samples` is the list of `(path, class_index)` (class by class, each class's folder walked
    recursively in sorted order), `targets` the class indices, `imgs` the same as `samples`.
    `dataset[i]` is `(image, target)`: `loader(path)` (default `pil_loader`: an RGB PIL image),
    then `transform(image)` and `target_transform(target)` if given. Our transforms take the PIL
    image (`Compose([ResizeShorter(256), RandomCrop(227), ..., ToCHWFloat(), Normalize(...)])`);
    under `DataLoader` their random draws are seeded per (seed, epoch, index).

    Files count as images by extension (`IMG_EXTENSIONS`, any case; or `is_valid_file(path)`);
    others are ignored and listed in one warning (hidden files silently). With `verify=True`
    (default) every image's header is read once here, so a file that is not an image at all is
    found before training starts: `on_error="raise"` raises naming the files, `"skip"` leaves
    them out with a warning (`skipped` lists them). A file whose data is cut short only shows
    when decoded: `"raise"` raises an error naming it; `"skip"` warns and serves the next
    readable sample in its place, so an epoch never stops half-way. `verify="decode"` decodes
    every file here instead (slower; then "raise" can only fail before training starts), and
    `verify=False` skips the pass (for very large folders).
    """

    def __init__(
        self,
        root: str | os.PathLike[str],
        transform: Callable[..., Any] | None = None,
        target_transform: Callable[[int], Any] | None = None,
        loader: Callable[[str], Any] = pil_loader,
        is_valid_file: Callable[[str], bool] | None = None,
        allow_empty: bool = False,
        on_error: Literal["raise", "skip"] = "raise",
        verify: bool | Literal["decode"] = True,
    ) -> None:
        if on_error not in ("raise", "skip"):
            raise op_error(
                "ImageFolder", "on_error must be 'raise' or 'skip'", repr(on_error), "pick one"
            )
        self.root = os.fspath(root)
        self.transform, self.target_transform = transform, target_transform
        self.loader, self.on_error = loader, on_error
        self.classes, self.class_to_idx = self.find_classes(self.root)
        samples, ignored = self._scan(is_valid_file, allow_empty)
        self.skipped: list[tuple[str, str]] = []  # (path, why) of files left out
        if verify not in (True, False, "decode"):
            raise op_error(
                "ImageFolder", "verify must be True, False or 'decode'", repr(verify), "pick one"
            )
        if verify:
            samples = self._verify(samples, decode=verify == "decode")
        if ignored:
            kinds = Counter(os.path.splitext(p)[1].lower() or "(no extension)" for p in ignored)
            warnings.warn(
                f"ImageFolder: ignored {len(ignored)} file(s) in {self.root!r} that are not "
                f"images by extension ({', '.join(f'{k}: {n}' for k, n in kinds.items())}): "
                f"{_listing(ignored)}. Images end in {', '.join(IMG_EXTENSIONS)}",
                stacklevel=2,
            )
        self.samples: list[tuple[str, int]] = samples
        self.imgs = self.samples
        self.targets = [target for _, target in samples]
        self._unreadable: dict[int, str] = {}  # index -> why, found while decoding ("skip")

    def find_classes(self, directory: str | os.PathLike[str]) -> tuple[list[str], dict[str, int]]:
        """(sorted class folder names of `directory`, name -> index), as torchvision's."""
        root = os.fspath(directory)
        if not os.path.exists(root):
            raise FileNotFoundError(
                f"ImageFolder: no such folder {root!r}. Fix: pass the folder that holds "
                "one sub-folder per class (python -m tinygrad_edu.data write-digits DIR "
                "writes an example)"
            )
        if not os.path.isdir(root):
            raise NotADirectoryError(
                f"ImageFolder: {root!r} is a file, not a folder. Fix: pass the folder "
                "that holds one sub-folder per class"
            )
        entries = sorted(os.scandir(root), key=lambda e: e.name)
        classes = [e.name for e in entries if e.is_dir() and not e.name.startswith(".")]
        if not classes:
            loose = [e.name for e in entries if e.is_file() and _is_image_name(e.name)]
            hint = (
                f" (it holds {len(loose)} image file(s) directly: move them into one "
                "sub-folder per class)"
                if loose
                else ""
            )
            raise FileNotFoundError(
                f"ImageFolder: {root!r} has no class sub-folders{hint}. Fix: arrange "
                "the images as root/<class name>/<image file>, e.g. root/cat/1.jpg, "
                "root/dog/2.jpg"
            )
        return classes, {name: i for i, name in enumerate(classes)}

    def _scan(
        self, is_valid_file: Callable[[str], bool] | None, allow_empty: bool
    ) -> tuple[list[tuple[str, int]], list[str]]:
        samples: list[tuple[str, int]] = []
        ignored: list[str] = []
        empty: list[str] = []
        for name in self.classes:
            found = 0
            folder = os.path.join(self.root, name)
            for dirpath, dirnames, filenames in sorted(os.walk(folder, followlinks=True)):
                dirnames[:] = [d for d in dirnames if not d.startswith(".")]
                for filename in sorted(filenames):
                    path = os.path.join(dirpath, filename)
                    if filename.startswith("."):
                        continue  # .DS_Store and friends: not worth a warning
                    ok = is_valid_file(path) if is_valid_file else _is_image_name(filename)
                    if ok:
                        samples.append((path, self.class_to_idx[name]))
                        found += 1
                    else:
                        ignored.append(path)
            if not found:
                empty.append(name)
        if empty and not allow_empty:
            raise FileNotFoundError(
                f"ImageFolder: class folder(s) with no image files in {self.root!r}: "
                f"{_listing(empty)}. Fix: add images ({', '.join(IMG_EXTENSIONS)}), delete "
                "the folder, or pass allow_empty=True to keep the class with no samples"
            )
        if empty:
            warnings.warn(
                f"ImageFolder: class folder(s) with no images in {self.root!r}: "
                f"{_listing(empty)} (kept as classes with no samples: allow_empty=True)",
                stacklevel=3,
            )
        return samples, ignored

    def _verify(self, samples: list[tuple[str, int]], decode: bool) -> list[tuple[str, int]]:
        checked = ((path, _check_file(path, decode)) for path, _ in samples)
        bad = [(path, why) for path, why in checked if why is not None]
        if not bad:
            return samples
        described = [f"{path} ({why})" for path, why in bad]
        if self.on_error == "raise":
            raise ValueError(
                f"ImageFolder: {len(bad)} file(s) in {self.root!r} cannot be read as images: "
                f"{_listing(described)}. Fix: delete or replace them, or pass "
                "on_error='skip' to leave them out"
            )
        self.skipped.extend(bad)
        warnings.warn(
            f"ImageFolder: skipped {len(bad)} unreadable file(s) in {self.root!r}: "
            f"{_listing(described)}",
            stacklevel=3,
        )
        left_out = {path for path, _ in bad}
        return [s for s in samples if s[0] not in left_out]

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, index: int) -> tuple[Any, Any]:
        index = int(index)
        if not -len(self) <= index < len(self):
            raise IndexError(f"ImageFolder: index {index} out of range for {len(self)} samples")
        index %= len(self)
        path, target = self.samples[index]
        image = self._load(index)
        if image is None:  # unreadable and on_error="skip": the next readable sample
            path, target, image = self._substitute(index)
        if self.transform is not None:
            image = self.transform(image)
        if self.target_transform is not None:
            target = self.target_transform(target)
        return image, target

    def _load(self, index: int) -> Any:
        path, target = self.samples[index]
        if index in self._unreadable:
            return None
        try:
            return self.loader(path)
        except _DECODE_ERRORS as e:
            why = f"{type(e).__name__}: {e}"
            if self.on_error == "raise":
                raise ValueError(
                    f"ImageFolder: cannot decode {path!r} (sample {index}, class "
                    f"{self.classes[target]!r}): {why}. Fix: delete or replace the file, or "
                    "pass on_error='skip' to serve another image in its place"
                ) from e
            self._unreadable[index] = why
            warnings.warn(
                f"ImageFolder: skipped unreadable {path!r} ({why}); "
                f"{len(self._unreadable)} unreadable so far in this process",
                stacklevel=4,
            )
            return None

    def _substitute(self, index: int) -> tuple[str, int, Any]:
        for step in range(1, len(self)):
            other = (index + step) % len(self)
            image = self._load(other)
            if image is not None:
                path, target = self.samples[other]
                return path, target, image
        raise ValueError(
            f"ImageFolder: no file in {self.root!r} could be decoded. Fix: check the images"
        )

    def __repr__(self) -> str:
        return (
            f"ImageFolder(root={self.root!r}, {len(self)} samples, {len(self.classes)} "
            f"classes, transform={self.transform!r})"
        )


def _is_image_name(filename: str) -> bool:
    return filename.lower().endswith(IMG_EXTENSIONS)


class Subset:
    """The samples `indices` of `dataset`, in that order, as PyTorch's `Subset`."""

    def __init__(self, dataset: Any, indices: Sequence[int]) -> None:
        self.dataset = dataset
        self.indices = [int(i) for i in indices]

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, index: int) -> Any:
        return self.dataset[self.indices[index]]

    @property
    def targets(self) -> list[int]:
        """The labels of the subset's samples (when the dataset has `targets`)."""
        return [self.dataset.targets[i] for i in self.indices]


def stratified_split(
    targets: Sequence[int], val_fraction: float = 0.2, seed: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """`(train_indices, val_indices)`, sorted: in each class (in label order) the indices are
    permuted with `np.random.default_rng(seed)` and the first `round(val_fraction * n)` go to
    validation, at least one when the class has two or more samples and never all of them."""
    if not 0.0 < val_fraction < 1.0:
        raise op_error(
            "stratified_split",
            "val_fraction must be in (0, 1)",
            f"val_fraction={val_fraction!r}",
            "pass e.g. 0.2, or give a separate validation folder (--val DIR)",
        )
    labels = np.asarray(targets, dtype=np.int64)
    rng = np.random.default_rng(seed)
    train, val = [], []
    for c in np.unique(labels):
        idx = rng.permutation(np.flatnonzero(labels == c))
        n_val = int(round(val_fraction * len(idx)))
        n_val = min(max(n_val, 1 if len(idx) >= 2 else 0), len(idx) - 1)
        val.append(idx[:n_val])
        train.append(idx[n_val:])
    return np.sort(np.concatenate(train)), np.sort(np.concatenate(val))


# ----------------------------------------------------------------------------- the digits demo


def write_digits_folder(
    root: str | os.PathLike[str],
    per_class: int | None = None,
    size: int = 32,
    val_fraction: float = 0.2,
    seed: int = 0,
) -> dict[str, int]:
    """Write scikit-learn's digits as grayscale PNGs: `root/train/<digit>/<n>.png` and
    `root/val/<digit>/<n>.png` (the stratified split of `load_digits(val_fraction, seed)`),
    each image upscaled bilinearly from 8x8 to `size` x `size`. `per_class` keeps only the
    first that many images of each class in each split (small demos and tests). Each file is
    written to a temporary name and renamed, so an interrupted run leaves no partial PNG.
    Returns the number of files written per split."""
    from .data import load_digits  # the digits module imports this one

    if per_class is not None and per_class < 1:
        raise op_error("write_digits_folder", "per_class must be >= 1", per_class, "pass 5")
    if size < 1:
        raise op_error("write_digits_folder", "size must be >= 1", size, "pass 32")
    x_train, y_train, x_val, y_val = load_digits(test_fraction=val_fraction, seed=seed)
    counts = {}
    for split, images, labels in (("train", x_train, y_train), ("val", x_val, y_val)):
        written = Counter()
        for image, label in zip(images, labels):
            if per_class is not None and written[int(label)] >= per_class:
                continue
            folder = os.path.join(os.fspath(root), split, str(int(label)))
            os.makedirs(folder, exist_ok=True)
            pixels = np.round(image[0] * 255).astype(np.uint8)
            png = Image.fromarray(pixels, mode="L").resize((size, size), Image.Resampling.BILINEAR)
            path = os.path.join(folder, f"{written[int(label)]:04d}.png")
            tmp = os.path.join(folder, f".{written[int(label)]:04d}.png.tmp")
            png.save(tmp, format="PNG")
            os.replace(tmp, path)
            written[int(label)] += 1
        counts[split] = sum(written.values())
    return counts


def main(argv: Sequence[str] | None = None) -> None:
    """`python -m tinygrad_edu.data write-digits DIR`: the digits as an image folder."""
    p = argparse.ArgumentParser(
        prog="python -m tinygrad_edu.data", description=__doc__.split("\n")[0]
    )
    sub = p.add_subparsers(dest="command", required=True)
    w = sub.add_parser("write-digits", help="write the digits as DIR/train and DIR/val PNGs")
    w.add_argument("dir")
    w.add_argument("--per-class", type=int, help="images per class and split (default: all)")
    w.add_argument("--size", type=int, default=32, help="side of the written PNGs (default 32)")
    w.add_argument("--val-fraction", type=float, default=0.2)
    w.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)
    counts = write_digits_folder(args.dir, args.per_class, args.size, args.val_fraction, args.seed)
    print(
        f"wrote {counts['train']} train and {counts['val']} val images of 10 classes to "
        f"{args.dir}/train and {args.dir}/val; train on them with: python -m models.train "
        f"alexnet --data {args.dir} --epochs 2"
    )
