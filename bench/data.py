"""Input-pipeline benchmark: images/s of the AlexNet paper's training pipeline from a folder of
JPEGs, ours (`ImageFolder` + `DataLoader(num_workers=K)`) against torchvision's (`ImageFolder`
+ `torch.utils.data.DataLoader`) on the same folder, and the compiled AlexNet training step it
has to keep busy.

    python bench/data.py                 # 256 JPEGs of 500x375, batch 32, workers 0 1 2
    python bench/data.py --quick         # 48 JPEGs, 2 repeats, a batch-4 training step
    python bench/data.py --folder DIR    # an existing image folder instead of generated JPEGs

It prints ONE JSON line on stdout (progress on stderr).

1. The folder: `--images` JPEGs (quality 90, `--width` x `--height`, ImageNet's typical
   500x375) of smooth random colour fields with noise, in 4 class folders, written to a
   temporary directory (deleted at the end), unless `--folder` is given.
2. The pipeline, both sides: decode (Pillow) -> RGB -> resize the shorter side to 256
   (bilinear) -> random 227x227 crop -> random horizontal mirror -> CHW float32 in [0, 1] ->
   normalise with the ImageNet mean/std -> batches of `--batch-size` (shuffled, the last one
   short). Ours: `Compose([ResizeShorter(256), RandomCrop(227), RandomHorizontalFlip(),
   ToCHWFloat(), Normalize(...)])`; torchvision's: `Compose([Resize(256), RandomCrop(227),
   RandomHorizontalFlip(), ToTensor(), Normalize(...)])`.
3. `data_ours_w{K}_images_per_s` / `data_torch_w{K}_images_per_s`: images / the median wall
   time of one whole epoch (worker start-up included: both loaders start their workers per
   epoch), after one untimed epoch; `data_ratio_w{K}` = ours / torch (>= 1.0 is the target).
4. `alexnet_paper_train_step_images_per_s`: `compiler.compile_train_step` of
   `AlexNet(num_classes=4, variant="paper")` on llvm (SGD lr 0.01, momentum 0.9, weight decay
   5e-4) at batch `--step-batch` (default 16), median of `--repeats` steps after a warm-up;
   `*_compile_s` its compile time. `feeds_step_w{K}` = ours at K workers / that rate (>= 1.0:
   the loader keeps the step busy, when the two do not share the same cores).

The machine is named (`cpu_name`, `cpu_count`, `load_avg_1min_at_start` / `_at_end`): on a
shared box, compare ratios rather than absolute rates.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run from a checkout
from common import cpu_name, log, print_result, ratio, rounded  # noqa: E402

from tinygrad_edu.data import (  # noqa: E402
    IMAGENET_MEAN,
    IMAGENET_STD,
    Compose,
    DataLoader,
    ImageFolder,
    Normalize,
    RandomCrop,
    RandomHorizontalFlip,
    ResizeShorter,
    ToCHWFloat,
)

CLASSES = 4


def write_jpegs(root: str, count: int, width: int, height: int) -> None:
    """`count` JPEGs in CLASSES class folders: smooth random colour fields plus noise (JPEG
    decodes them at about the cost of photos of that size)."""
    rng = np.random.default_rng(0)
    for i in range(count):
        coarse = rng.integers(0, 256, (4, 4, 3), dtype=np.uint8)
        field = np.asarray(Image.fromarray(coarse).resize((width, height), Image.BILINEAR))
        noise = rng.integers(-12, 13, field.shape)
        pixels = np.clip(field.astype(np.int64) + noise, 0, 255).astype(np.uint8)
        folder = os.path.join(root, f"class{i % CLASSES}")
        os.makedirs(folder, exist_ok=True)
        Image.fromarray(pixels).save(os.path.join(folder, f"{i:05d}.jpg"), quality=90)


def epoch_rate(make_loader: Any, count: int, repeats: int) -> float:
    """Images/s: `count` / median wall time of one full epoch (after one untimed epoch)."""
    loader = make_loader()
    times = []
    for r in range(repeats + 1):
        start = time.perf_counter()
        seen = sum(len(batch[1]) for batch in loader)
        if r:
            times.append(time.perf_counter() - start)
        assert seen == count, (seen, count)
    return count / statistics.median(times)


def ours(root: str, batch: int, workers: int) -> Any:
    transform = Compose(
        [
            ResizeShorter(256),
            RandomCrop(227),
            RandomHorizontalFlip(),
            ToCHWFloat(),
            Normalize(IMAGENET_MEAN, IMAGENET_STD),
        ]
    )
    data = ImageFolder(root, transform=transform, verify=False)
    return lambda: DataLoader(data, batch_size=batch, shuffle=True, num_workers=workers)


def import_torchvision() -> Any:
    """torchvision beside a CPU torch: its C++ ops' schemas must exist before the import."""
    import torch

    for name in ("nms", "qnms"):
        try:
            schema = "(Tensor dets, Tensor scores, float iou_threshold) -> Tensor"
            torch.library.define(f"torchvision::{name}", schema)
        except RuntimeError:
            pass
    import torchvision

    return torchvision


def theirs(root: str, batch: int, workers: int) -> Any:
    import torch

    tv = import_torchvision()
    t = tv.transforms
    transform = t.Compose(
        [
            t.Resize(256),
            t.RandomCrop(227),
            t.RandomHorizontalFlip(),
            t.ToTensor(),
            t.Normalize(IMAGENET_MEAN, IMAGENET_STD),
        ]
    )
    data = tv.datasets.ImageFolder(root, transform=transform)
    return lambda: torch.utils.data.DataLoader(
        data, batch_size=batch, shuffle=True, num_workers=workers
    )


def train_step_rate(batch: int, repeats: int) -> tuple[float, float]:
    """(images/s, compile seconds) of the compiled paper-AlexNet training step on llvm."""
    import compiler
    from models.alexnet import AlexNet
    from tinygrad_edu import manual_seed, optim

    manual_seed(0)
    model = AlexNet(num_classes=CLASSES, variant="paper")
    sgd = optim.SGD(model.parameters(), lr=0.01, momentum=0.9, weight_decay=5e-4)
    x = np.random.default_rng(0).standard_normal((batch, 3, 227, 227)).astype(np.float32)
    y = np.arange(batch, dtype=np.int64) % CLASSES
    start = time.perf_counter()
    step = compiler.compile_train_step(
        model, lambda o, t: o.cross_entropy(t), sgd, x, y, backend="llvm"
    )
    compile_s = time.perf_counter() - start
    step(x, y)  # warm-up
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        step(x, y)
        times.append(time.perf_counter() - start)
    return batch / statistics.median(times), compile_s


def run(args: argparse.Namespace) -> dict[str, Any]:
    result: dict[str, Any] = {
        "benchmark": "data",
        "cpu_name": cpu_name(),
        "cpu_count": os.cpu_count(),
        "python_version": platform.python_version(),
        "load_avg_1min_at_start": round(os.getloadavg()[0], 2),
        "batch_size": args.batch_size,
        "repeats": args.repeats,
    }
    with tempfile.TemporaryDirectory(prefix="bench_data_") as tmp:
        root = args.folder or tmp
        if args.folder is None:
            log(f"writing {args.images} JPEGs of {args.width}x{args.height} to {tmp}")
            write_jpegs(tmp, args.images, args.width, args.height)
        count = len(ImageFolder(root, verify=False))
        result["images"] = count
        torch_ok = not args.no_torch
        if torch_ok:
            try:
                import_torchvision()
            except Exception as e:  # not installed, or its C++ extension fails otherwise
                log(f"torchvision unavailable ({e}); its keys are null")
                torch_ok = False
        for k in args.workers:
            log(f"ours, {k} workers")
            mine = epoch_rate(ours(root, args.batch_size, k), count, args.repeats)
            other = None
            if torch_ok:
                log(f"torchvision, {k} workers")
                other = epoch_rate(theirs(root, args.batch_size, k), count, args.repeats)
            result[f"data_ours_w{k}_images_per_s"] = rounded(mine, 1)
            result[f"data_torch_w{k}_images_per_s"] = rounded(other, 1)
            result[f"data_ratio_w{k}"] = ratio(mine, other)
    step_rate = compile_s = None
    if not args.skip_step:
        log(f"compiled AlexNet training step, batch {args.step_batch}")
        step_rate, compile_s = train_step_rate(args.step_batch, args.repeats)
    result["alexnet_paper_train_step_batch"] = args.step_batch
    result["alexnet_paper_train_step_images_per_s"] = rounded(step_rate, 2)
    result["alexnet_paper_train_step_compile_s"] = rounded(compile_s, 2)
    for k in args.workers:
        result[f"feeds_step_w{k}"] = ratio(result[f"data_ours_w{k}_images_per_s"], step_rate)
    result["load_avg_1min_at_end"] = round(os.getloadavg()[0], 2)
    return result


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--quick", action="store_true", help="48 images, 2 repeats, step batch 4")
    p.add_argument("--folder", help="an existing image folder (one sub-folder per class)")
    p.add_argument("--images", type=int, help="generated JPEGs (default 256; --quick 48)")
    p.add_argument("--width", type=int, default=500)
    p.add_argument("--height", type=int, default=375)
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--workers", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--repeats", type=int, help="timed epochs / steps (default 3; --quick 2)")
    p.add_argument("--step-batch", type=int, help="training-step batch (default 16; quick 4)")
    p.add_argument("--skip-step", action="store_true", help="no compiled training step")
    p.add_argument("--no-torch", action="store_true", help="skip torchvision (keys null)")
    args = p.parse_args(argv)
    args.images = args.images or (48 if args.quick else 256)
    args.repeats = args.repeats or (2 if args.quick else 3)
    args.step_batch = args.step_batch or (4 if args.quick else 16)
    if min(args.images, args.repeats, args.step_batch, args.batch_size) < 1:
        p.error("--images, --repeats, --step-batch and --batch-size must be >= 1")
    if min(args.workers) < 0:
        p.error("--workers must be >= 0")
    return args


if __name__ == "__main__":
    print_result(run, parse_args())
