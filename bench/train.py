"""Training-throughput CPU benchmark: the models of `models/` trained eagerly, next to PyTorch.

Run from the repository root:

    python bench/train.py            # full run (~1 min on an idle 2-core box)
    python bench/train.py --quick    # fewer repeats, no full-size torchvision AlexNet

It prints ONE JSON line on stdout (progress goes to stderr). Every training step is the step
of `models/train.py`: forward, mean cross-entropy, `zero_grad`, backward, SGD step (PyTorch
form, `optim.SGD` / `torch.optim.SGD`), `loss.item()`. No evaluation and no checkpointing are
timed, and the learning-rate scheduler is not stepped (the rate stays at its initial value).
Times are `time.perf_counter` medians after untimed warm-up; float32 throughout.

1. Digits, `logreg` and `mlp` (`{model}_epoch_s`): seconds per epoch with exactly the setup of
   `models/train.py`: `build_model`, `prepare_digits`, `CONFIGS` (batch 32, lr, momentum 0.9,
   weight decay), its shuffled `DataLoader` (1,438 images, 45 steps, the last one short) and
   `manual_seed(seed)`. One warm-up epoch, then the median of `--repeats` epochs (default 10).
   The time includes the DataLoader's batching. The torch model has the same layers and starts
   from our initial weights (copied through `state_dict`) and gets the same batches from the
   same DataLoader, so `{model}_final_loss` and `{model}_final_loss_torch` (mean training loss
   of the last timed epoch) should agree to a few decimals: a cheap correctness check.
2. `alexnet_mini_n32_*`: `AlexNet(10, variant="mini")` on the upscaled 32x32 RGB digits
   (`prepare_digits("alexnet-mini")`, its config: batch 32, lr 0.01, momentum 0.9, wd 5e-4),
   full batches from the DataLoader. Two warm-up steps, then the median step time over
   `--repeats` steps (default 30); images/s = 32 / median step time.
3. `alexnet_{paper,torchvision}_n16_*`: full-size AlexNet, 1000 classes, one training step on a
   fixed synthetic batch of 16 images ((16, 3, 227, 227) for `"paper"`, 224x224 for
   `"torchvision"`, standard normal pixels, random labels), SGD lr 0.01, momentum 0.9, weight
   decay 5e-4, dropout on. One warm-up step, then the median of `--repeats` steps (default 5);
   images/s = 16 / median step time. `--quick` skips the torchvision variant (its keys null).

PyTorch (when `import torch` works and `--no-torch` is not given) runs the same workloads in
eager mode on CPU with its default thread count: hand-built `torch.nn` models with the same
layers and parameter names as ours (torchvision itself is not needed), loaded from our initial
`state_dict`; dropout masks differ (each library draws its own). `*_ratio_vs_torch` =
tinygrad_edu time / torch time for that row (for images/s rows: torch images/s / ours), so
1.0 is as fast as torch and 3.0 three times slower. `*_logits_max_abs_diff_vs_torch` is the
largest |difference| of eval-mode logits of both models from the shared initial weights (8
test digits for mini, 2 of the synthetic images for full size): it checks that the torch model
really is the same network. Without torch those keys are null; the schema is fixed.

Timings are only as good as the machine is idle: numpy's BLAS and torch are multi-threaded,
so one other busy process on a 2-core box can slow a row down 2-5x. `load_avg_1min_at_start`
/ `_at_end` and `numpy_matmul_gflops` (1024^3 float32 `a @ b`, measured before and after the
workloads) show contention; compare runs by the ratios rather than by absolute times.
"""

from __future__ import annotations

import argparse
import gc
import os
import platform
import sys
from collections import OrderedDict
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run from a checkout
from common import (  # noqa: E402
    add_timing_options,
    log,
    median_seconds,
    parse_timing_args,
    print_result,
    ratio,
    rounded,
)

from models.alexnet import PAPER_LRN, AlexNet  # noqa: E402
from models.train import CONFIGS, Config, build_model, prepare_digits  # noqa: E402
from tinygrad_edu import Tensor, manual_seed, nn, no_grad, optim  # noqa: E402
from tinygrad_edu.data import DataLoader  # noqa: E402

try:
    import torch
except ImportError:  # torch is optional (the `bench` extra)
    torch = None

DIGIT_MODELS: tuple[str, ...] = ("logreg", "mlp")
FULL_VARIANTS: tuple[str, ...] = ("paper", "torchvision")
FULL_BATCH, FULL_CLASSES = 16, 1000
FULL_LR, FULL_MOMENTUM, FULL_WEIGHT_DECAY = 0.01, 0.9, 5e-4
MINI_CHECK_IMAGES, FULL_CHECK_IMAGES = 8, 2
SEED = 0

Step = Callable[[], float]  # one training step; returns the loss


def release() -> None:
    """Drop the previous workload's models and graphs before timing the next one."""
    gc.collect()


def numpy_matmul_gflops() -> float:
    rng = np.random.default_rng(SEED)
    a = rng.standard_normal((1024, 1024), dtype=np.float32)
    b = rng.standard_normal((1024, 1024), dtype=np.float32)
    return 2 * 1024**3 / median_seconds(lambda: a @ b, 5, warmup=2) / 1e9


# -- training steps -------------------------------------------------------------------------


def ours_step(model: nn.Module, opt: optim.SGD, xb: np.ndarray, yb: np.ndarray) -> float:
    """The step of `models/train.py`."""
    loss = model(Tensor(xb)).cross_entropy(yb)
    opt.zero_grad()
    loss.backward()
    opt.step()
    return loss.item()


def torch_step(model: Any, opt: Any, xb: np.ndarray, yb: np.ndarray) -> float:
    assert torch is not None
    loss = torch.nn.functional.cross_entropy(model(torch.from_numpy(xb)), torch.from_numpy(yb))
    opt.zero_grad()
    loss.backward()
    opt.step()
    return loss.item()


def median_step_s(
    step: Callable[[Any, Any, np.ndarray, np.ndarray], float],
    model: Any,
    opt: Any,
    x: np.ndarray,
    y: np.ndarray,
    repeats: int,
) -> float:
    """Median seconds of `step(model, opt, x, y)` on one fixed batch, after one warm-up."""
    return median_seconds(lambda: step(model, opt, x, y), repeats, warmup=1)


def ours_sgd(model: nn.Module, config: Config) -> optim.SGD:
    return optim.SGD(
        model.parameters(), lr=config.lr, momentum=config.momentum, weight_decay=config.weight_decay
    )


def torch_sgd(model: Any, config: Config) -> Any:
    assert torch is not None
    return torch.optim.SGD(
        model.parameters(), lr=config.lr, momentum=config.momentum, weight_decay=config.weight_decay
    )


def make_loader(config: Config, x: np.ndarray, y: np.ndarray) -> DataLoader:
    return DataLoader(x, y, config.batch_size, shuffle=True, seed=config.seed)


def full_batches(loader: DataLoader) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """The loader's full batches, epoch after epoch, forever."""
    while True:
        for xb, yb in loader:
            if len(yb) == loader.batch_size:
                yield xb, yb


# -- torch twins of our models --------------------------------------------------------------


def torch_model(name: str, num_classes: int) -> Any:
    """A torch.nn model with our layers and our parameter names (`features.0.weight`, ...)."""
    assert torch is not None
    tnn = torch.nn
    if name == "logreg":
        return tnn.Sequential(OrderedDict(flatten=tnn.Flatten(), linear=tnn.Linear(64, 10)))
    if name == "mlp":
        layers = tnn.Sequential(
            tnn.Linear(64, 128), tnn.ReLU(), tnn.Linear(128, 64), tnn.ReLU(), tnn.Linear(64, 10)
        )
        return tnn.Sequential(OrderedDict(flatten=tnn.Flatten(), layers=layers))
    if name == "torchvision":
        features = tnn.Sequential(
            tnn.Conv2d(3, 64, 11, stride=4, padding=2),
            tnn.ReLU(),
            tnn.MaxPool2d(3, 2),
            tnn.Conv2d(64, 192, 5, padding=2),
            tnn.ReLU(),
            tnn.MaxPool2d(3, 2),
            tnn.Conv2d(192, 384, 3, padding=1),
            tnn.ReLU(),
            tnn.Conv2d(384, 256, 3, padding=1),
            tnn.ReLU(),
            tnn.Conv2d(256, 256, 3, padding=1),
            tnn.ReLU(),
            tnn.MaxPool2d(3, 2),
        )
        c, fc, pool = (64, 192, 384, 256, 256), 4096, 6
    else:  # the paper layout, full size or mini (models/alexnet.py `_paper_layers`)
        mini = name == "mini"
        c = (24, 64, 96, 96, 64) if mini else (96, 256, 384, 384, 256)
        fc, pool = (256, 3) if mini else (4096, 6)
        conv1 = dict(kernel_size=5, padding=2) if mini else dict(kernel_size=11, stride=4)
        lrn = dict(alpha=PAPER_LRN["alpha"], beta=PAPER_LRN["beta"], k=PAPER_LRN["k"])
        features = tnn.Sequential(
            tnn.Conv2d(3, c[0], **conv1),
            tnn.ReLU(),
            tnn.LocalResponseNorm(int(PAPER_LRN["size"]), **lrn),
            tnn.MaxPool2d(3, 2),
            tnn.Conv2d(c[0], c[1], 5, padding=2, groups=2),
            tnn.ReLU(),
            tnn.LocalResponseNorm(int(PAPER_LRN["size"]), **lrn),
            tnn.MaxPool2d(3, 2),
            tnn.Conv2d(c[1], c[2], 3, padding=1),
            tnn.ReLU(),
            tnn.Conv2d(c[2], c[3], 3, padding=1, groups=2),
            tnn.ReLU(),
            tnn.Conv2d(c[3], c[4], 3, padding=1, groups=2),
            tnn.ReLU(),
            tnn.MaxPool2d(3, 2),
        )
    classifier = tnn.Sequential(
        tnn.Dropout(0.5),
        tnn.Linear(c[4] * pool * pool, fc),
        tnn.ReLU(),
        tnn.Dropout(0.5),
        tnn.Linear(fc, fc),
        tnn.ReLU(),
        tnn.Linear(fc, num_classes),
    )
    parts: OrderedDict[str, Any] = OrderedDict(features=features)
    if name == "torchvision":
        parts["avgpool"] = tnn.AdaptiveAvgPool2d((pool, pool))
    parts["flatten"] = tnn.Flatten()
    parts["classifier"] = classifier
    return tnn.Sequential(parts)


def torch_twin(name: str, num_classes: int, ours: nn.Module) -> Any:
    """`torch_model(name)` loaded with our model's current weights."""
    assert torch is not None
    torch.manual_seed(SEED)
    model = torch_model(name, num_classes)
    model.load_state_dict({k: torch.from_numpy(v) for k, v in ours.state_dict().items()})
    return model.train()


def logits_diff(ours: nn.Module, theirs: Any, x: np.ndarray) -> float:
    """Largest |difference| of the two models' eval-mode logits on `x` (modes restored)."""
    assert torch is not None
    ours.eval()
    theirs.eval()
    with no_grad():
        a = ours(Tensor(x)).numpy()
    with torch.no_grad():
        b = theirs(torch.from_numpy(x)).numpy()
    ours.train()
    theirs.train()
    return float(np.max(np.abs(a - b)))


# -- workloads ------------------------------------------------------------------------------


def bench_digits(name: str, repeats: int, use_torch: bool) -> dict[str, Any]:
    """Seconds per training epoch of `name` on digits, ours and torch, as models/train.py."""
    config = CONFIGS[name]
    manual_seed(config.seed)
    model = build_model(name)
    x_train, y_train, _, _ = prepare_digits(name)
    twin = torch_twin(name, 10, model) if use_torch else None

    def run(step: Callable[[np.ndarray, np.ndarray], float]) -> tuple[float, float]:
        loader = make_loader(config, x_train, y_train)
        losses: list[float] = []

        def epoch() -> None:
            losses.clear()
            for xb, yb in loader:
                losses.append(step(xb, yb))

        seconds = median_seconds(epoch, repeats, warmup=1)
        return seconds, float(np.mean(losses))

    log(f"{name} epochs: tinygrad_edu")
    opt = ours_sgd(model, config)
    ours_s, ours_loss = run(lambda xb, yb: ours_step(model, opt, xb, yb))
    torch_s = torch_loss = None
    if twin is not None:
        log(f"{name} epochs: torch")
        topt = torch_sgd(twin, config)
        torch_s, torch_loss = run(lambda xb, yb: torch_step(twin, topt, xb, yb))
    return {
        f"{name}_steps_per_epoch": len(make_loader(config, x_train, y_train)),
        f"{name}_epoch_s": rounded(ours_s, 4),
        f"{name}_epoch_torch_s": rounded(torch_s, 4),
        f"{name}_epoch_ratio_vs_torch": ratio(ours_s, torch_s),
        f"{name}_final_loss": rounded(ours_loss, 5),
        f"{name}_final_loss_torch": rounded(torch_loss, 5),
    }


def throughput_row(
    key: str, batch: int, ours_s: float | None, torch_s: float | None, diff: float | None
) -> dict[str, Any]:
    return {
        f"{key}_images_per_s": rounded(batch / ours_s if ours_s else None, 2),
        f"{key}_torch_images_per_s": rounded(batch / torch_s if torch_s else None, 2),
        f"{key}_step_ms": rounded(ours_s * 1e3 if ours_s else None, 1),
        f"{key}_torch_step_ms": rounded(torch_s * 1e3 if torch_s else None, 1),
        f"{key}_ratio_vs_torch": ratio(ours_s, torch_s),
        f"{key}_logits_max_abs_diff_vs_torch": None if diff is None else float(f"{diff:.3g}"),
    }


def bench_mini(repeats: int, use_torch: bool) -> dict[str, Any]:
    """Median training-step time of the mini AlexNet on 32x32 digits, batch 32."""
    config = CONFIGS["alexnet-mini"]
    manual_seed(config.seed)
    model = build_model("alexnet-mini")
    x_train, y_train, x_test, _ = prepare_digits("alexnet-mini")
    twin = torch_twin("mini", 10, model) if use_torch else None
    diff = logits_diff(model, twin, x_test[:MINI_CHECK_IMAGES]) if twin is not None else None

    def run(step: Callable[[np.ndarray, np.ndarray], float]) -> float:
        batches = full_batches(make_loader(config, x_train, y_train))
        return median_seconds(lambda: step(*next(batches)), repeats, warmup=2)

    log("alexnet-mini steps: tinygrad_edu")
    opt = ours_sgd(model, config)
    ours_s = run(lambda xb, yb: ours_step(model, opt, xb, yb))
    torch_s = None
    if twin is not None:
        log("alexnet-mini steps: torch")
        topt = torch_sgd(twin, config)
        torch_s = run(lambda xb, yb: torch_step(twin, topt, xb, yb))
    return throughput_row(
        f"alexnet_mini_n{config.batch_size}", config.batch_size, ours_s, torch_s, diff
    )


def bench_full(variant: str, repeats: int, use_torch: bool) -> dict[str, Any]:
    """Median training-step time of a full-size AlexNet, batch 16, on synthetic images."""
    key = f"alexnet_{variant}_n{FULL_BATCH}"
    manual_seed(SEED)
    log(f"AlexNet {variant}: building")
    model = AlexNet(FULL_CLASSES, variant=variant)
    gen = np.random.default_rng(SEED)
    size = model.image_size
    x = gen.standard_normal((FULL_BATCH, 3, size, size), dtype=np.float32)
    y = gen.integers(0, FULL_CLASSES, FULL_BATCH).astype(np.int64)
    config = Config(
        key, 1, FULL_BATCH, FULL_LR, momentum=FULL_MOMENTUM, weight_decay=FULL_WEIGHT_DECAY
    )
    twin = torch_twin(variant, FULL_CLASSES, model) if use_torch else None
    diff = logits_diff(model, twin, x[:FULL_CHECK_IMAGES]) if twin is not None else None

    log(f"AlexNet {variant} N={FULL_BATCH} steps: tinygrad_edu")
    ours_s = median_step_s(ours_step, model, ours_sgd(model, config), x, y, repeats)
    del model  # with its optimizer state: make room for the torch run
    release()
    torch_s = None
    if twin is not None:
        log(f"AlexNet {variant} N={FULL_BATCH} steps: torch")
        torch_s = median_step_s(torch_step, twin, torch_sgd(twin, config), x, y, repeats)
    return throughput_row(key, FULL_BATCH, ours_s, torch_s, diff)


# -- driver ---------------------------------------------------------------------------------


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--quick",
        action="store_true",
        help="2 epochs / 5 mini steps / 2 full-size steps, no torchvision variant",
    )
    add_timing_options(parser, "10 epochs, 30 mini steps, 5 full-size steps")
    return parse_timing_args(parser, argv)


def run(args: argparse.Namespace) -> dict[str, Any]:
    use_torch = torch is not None and not args.no_torch
    epoch_repeats = args.repeats or (2 if args.quick else 10)
    mini_repeats = args.repeats or (5 if args.quick else 30)
    full_repeats = args.repeats or (2 if args.quick else 5)
    variants = ("paper",) if args.quick else FULL_VARIANTS
    result: dict[str, Any] = {
        "benchmark": "tinygrad_edu training CPU",
        "mode": "quick" if args.quick else "full",
        "epoch_repeats": epoch_repeats,
        "mini_step_repeats": mini_repeats,
        "full_step_repeats": full_repeats,
        "numpy_version": np.__version__,
        "torch_version": torch.__version__ if torch is not None else None,
        "torch_used": use_torch,
        "torch_num_threads": torch.get_num_threads() if use_torch else None,
        "cpu_count": os.cpu_count(),
        "load_avg_1min_at_start": round(os.getloadavg()[0], 2),
        "python_version": platform.python_version(),
        "platform": platform.platform(),
    }
    log("numpy 1024^3 float32 matmul")
    result["numpy_matmul_gflops"] = round(numpy_matmul_gflops(), 2)

    for name in DIGIT_MODELS:
        result.update(bench_digits(name, epoch_repeats, use_torch))
        release()
    result.update(bench_mini(mini_repeats, use_torch))
    release()
    for variant in FULL_VARIANTS:
        if variant in variants:
            result.update(bench_full(variant, full_repeats, use_torch))
        else:
            result.update(throughput_row(f"alexnet_{variant}_n{FULL_BATCH}", 1, None, None, None))
        release()

    log("numpy 1024^3 float32 matmul (again)")
    result["numpy_matmul_gflops_at_end"] = round(numpy_matmul_gflops(), 2)
    result["load_avg_1min_at_end"] = round(os.getloadavg()[0], 2)
    return result


def main(argv: list[str] | None = None) -> None:
    print_result(run, parse_args(argv))


if __name__ == "__main__":
    main()
