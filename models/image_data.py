"""`models.train --data DIR`: an image folder as training and validation sets for any image
model, with the AlexNet paper's augmentation and ten-crop evaluation.

Everything model-specific comes from the model's `Config` (`image_size`, `resize_size`,
`ten_crop`), never from its name, so a model added to `CONFIGS` with an `image_size` trains on
folders as it is.
"""

from __future__ import annotations

import copy
import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from tinygrad_edu import Tensor, distributed, nn, no_grad
from tinygrad_edu.data import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    CenterCrop,
    Compose,
    DataLoader,
    ImageFolder,
    Normalize,
    RandomCrop,
    RandomHorizontalFlip,
    ResizeShorter,
    Subset,
    ToCHWFloat,
    stratified_split,
    ten_crop_predict,
)

# ten-crop evaluation: images per model call (x10 crops), to bound the eager activations
_TEN_CROP_IMAGES = 8


@dataclass(frozen=True)
class FolderData:
    """Where the images are and how to read them (the CLI's --data options)."""

    root: str
    val: str | None = None  # a separate validation folder; else split root (or root/val)
    val_fraction: float = 0.2  # the stratified validation share when splitting
    split_seed: int = 0  # the split's seed: fixed whatever the run's --seed, as for digits
    workers: int = 0  # DataLoader worker processes (the numbers do not depend on it)


@dataclass
class Folders:
    """The opened folders: datasets yielding (CHW float32 image, class index)."""

    train: Any
    val: Any
    classes: list[str]
    description: str  # for the log: where train and validation images come from


def input_sizes(config: Any) -> tuple[int, int]:
    """(crop side, resize-shorter side) of `config`'s model, or an error saying what to set."""
    if not config.image_size:
        raise ValueError(
            f"--data: {config.model} is not an image model here (its Config in "
            "models/train.py CONFIGS has no image_size). Fix: pick an image model such as "
            "alexnet, or give the model's Config an image_size (e.g. 224)"
        )
    size = int(config.image_size)
    return size, int(config.resize_size or round(size * 8 / 7))  # 224 -> 256, as torchvision


def folder_transforms(config: Any) -> tuple[Compose, Compose]:
    """(train, validation) transforms for `config`'s input size: PIL in, CHW float32 out.

    Train: ResizeShorter(resize) -> RandomCrop(size) -> mirror with p=0.5 -> ToCHWFloat ->
    Normalize(ImageNet mean/std). Validation: ResizeShorter(resize) -> CenterCrop(resize)
    when the model is evaluated on ten crops (they are cut later), else CenterCrop(size)."""
    size, resize = input_sizes(config)
    normalize = Normalize(IMAGENET_MEAN, IMAGENET_STD)
    train = Compose(
        [ResizeShorter(resize), RandomCrop(size), RandomHorizontalFlip(), ToCHWFloat(), normalize]
    )
    side = resize if config.ten_crop else size
    val = Compose([ResizeShorter(resize), CenterCrop(side), ToCHWFloat(), normalize])
    return train, val


def _split_layout(root: str) -> tuple[str, str | None] | None:
    """(root/train, root/val or None) when root holds train/ (and val/) rather than classes."""
    train = os.path.join(root, "train")
    if not os.path.isdir(train):
        return None
    subfolders = {e.name for e in os.scandir(root) if e.is_dir() and not e.name.startswith(".")}
    if not subfolders <= {"train", "val"}:
        return None
    val = os.path.join(root, "val")
    return train, (val if os.path.isdir(val) else None)


def open_folders(config: Any, options: FolderData) -> Folders:
    """The training and validation sets of `options`, with `config`'s transforms."""
    train_tf, val_tf = folder_transforms(config)
    train_root, val_root = options.root, options.val
    if val_root is None and (layout := _split_layout(options.root)) is not None:
        train_root, val_root = layout
    folder = ImageFolder(train_root, on_error="skip")
    if len(folder.classes) < 2:
        raise ValueError(
            f"--data: {train_root!r} has {len(folder.classes)} class folder "
            f"({folder.classes}); classification training needs >= 2 classes. Fix: add a "
            "sub-folder of images for each other class"
        )
    if val_root is not None:
        val = ImageFolder(val_root, transform=val_tf, on_error="skip", allow_empty=True)
        if val.classes != folder.classes:
            raise ValueError(
                f"--val: the classes of {val_root!r} ({val.classes}) differ from those of "
                f"{train_root!r} ({folder.classes}). Fix: give both folders the same class "
                "sub-folders"
            )
        folder.transform = train_tf
        return Folders(folder, val, folder.classes, f"{train_root} / {val_root}")
    train_idx, val_idx = stratified_split(folder.targets, options.val_fraction, options.split_seed)
    if len(val_idx) == 0:
        raise ValueError(
            f"--data: {train_root!r} has too few images to split off a validation set "
            f"({len(folder)} images). Fix: add images, or pass --val DIR"
        )
    val_view = copy.copy(folder)  # the same file list, the validation transform
    folder.transform, val_view.transform = train_tf, val_tf
    where = f"{train_root} (validation: a stratified {options.val_fraction:g} split)"
    return Folders(Subset(folder, train_idx), Subset(val_view, val_idx), folder.classes, where)


def evaluate_folder(
    model: nn.Module,
    loader: DataLoader,
    config: Any,
    world: distributed.World,
) -> tuple[float, float]:
    """(mean cross-entropy, accuracy) on the validation loader (each rank its shard, sums
    added up). With `config.ten_crop`, the paper's evaluation: the softmax averaged over the
    ten crops, and the loss is the negative log of the averaged probability of the class."""
    size, _ = input_sizes(config)
    model.eval()
    loss_sum, correct = 0.0, 0
    predict: Callable[[np.ndarray], np.ndarray] = lambda xb: model(Tensor(xb)).numpy()  # noqa: E731
    with no_grad():
        for xb, yb in loader:
            if len(yb) == 0:
                continue
            if config.ten_crop:
                probs = ten_crop_predict(predict, xb, size, batch_size=_TEN_CROP_IMAGES)
                picked = probs[np.arange(len(yb)), yb].astype(np.float64)
                loss_sum += float(-np.log(np.maximum(picked, 1e-12)).sum())
                correct += int((probs.argmax(axis=1) == yb).sum())
            else:
                logits = model(Tensor(xb))
                loss_sum += logits.cross_entropy(yb).item() * len(yb)
                correct += int((logits.numpy().argmax(axis=1) == yb).sum())
    model.train()
    loss_sum, correct = world.allreduce_sum((loss_sum, correct))
    return float(loss_sum) / loader.num_samples, float(correct) / loader.num_samples
