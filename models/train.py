"""Train a DSL model on the scikit-learn digits, or an image model on a folder of images,
from the command line.

    python -m models.train logreg|mlp|alexnet-mini [--epochs N] [--batch-size B] [--lr LR]
                           [--out DIR] [--resume] [--seed S]
    python -m models.train alexnet|alexnet-torchvision|alexnet-mini --data DIR [--val DIR]
                           [--val-fraction F] [--split-seed S] [--workers K] [...]

`--data DIR` trains any image model (one whose `Config` has an `image_size`) on an image folder
(`tinygrad_edu.data.ImageFolder`: one sub-folder per class). DIR is either the class folders
(a stratified `--val-fraction` of them, split with `--split-seed`, is the validation set, unless
`--val DIR` gives one) or holds `train/` and `val/` class folders. Training images go through
ResizeShorter(resize_size) -> RandomCrop(image_size) -> horizontal flip -> ToCHWFloat ->
Normalize(ImageNet); validation through ResizeShorter -> CenterCrop, evaluated on the paper's
ten crops (corners, centre, mirrors) for the AlexNets (`ten_crop`), on the centre crop
otherwise. `--workers K` decodes and augments in K processes (the numbers do not change).
`python -m tinygrad_edu.data write-digits DIR` writes a small folder to try it on.

(or a torchvision classic CNN by its function name: resnet18, resnet34, resnet50, vgg11_bn,
vgg16_bn, squeezenet1_1, mobilenet_v2, densenet121; see models/zoo.py)

Each epoch prints train loss, test loss, test accuracy and seconds, with a progress bar on
stderr while it runs. DIR receives `checkpoint.npz` (model, optimizer, scheduler, RNG and
history: written atomically, loaded without pickle), `model.npz` (weights only),
`metrics.csv`, `metrics.json` and `curves.png`. `--resume` continues from the checkpoint and
gives exactly the numbers an uninterrupted run would have given: batch order and dropout masks
are functions of (seed, epoch) and the saved generator state.

Launched by MPI (`mpiexec -n W python -m mpi4py -m models.train MODEL ...`) it trains
data-parallel with the same flags: `--batch-size` stays the global batch, each rank computes
its shard of every batch and the gradients are averaged over the ranks
(`tinygrad_edu.data_parallel`), so W ranks take the steps one process takes and reach the
same parameters; rank 0 alone prints and writes `--out`. See docs/distributed.md.
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import os
import sys
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, replace
from typing import Any

import numpy as np

import compiler
from compiler.grad_step import GradientStep, compile_gradient_step, compile_update_step
from tinygrad_edu import Tensor, distributed, manual_seed, nn, no_grad, optim, rng
from tinygrad_edu.data import DataLoader, GrayToRGB, Resize, load_digits, shard_bounds
from tinygrad_edu.data_parallel import DataParallel

from . import zoo
from .alexnet import AlexNet
from .image_data import FolderData, evaluate_folder, open_folders
from .logistic_regression import LogisticRegression
from .mlp import MLP


@dataclass(frozen=True)
class Config:
    """Hyperparameters of one run (defaults per model in CONFIGS)."""

    model: str
    epochs: int
    batch_size: int
    lr: float
    momentum: float = 0.9
    weight_decay: float = 0.0
    schedule: str = "plateau"  # "plateau": lr/10 when the train loss stalls; "step": every
    patience: int = 3  # epochs without improvement before a plateau cut
    step_size: int = 10  # epochs between step cuts
    seed: int = 0
    image_size: int | None = None  # an image model's input side (--data crops to it)
    resize_size: int | None = None  # --data: the shorter side before cropping (image_size*8/7)
    ten_crop: bool = False  # --data: evaluate on the paper's ten crops of resize_size images


CONFIGS = {
    "logreg": Config("logreg", epochs=20, batch_size=32, lr=0.05),
    "mlp": Config("mlp", epochs=40, batch_size=32, lr=0.1, weight_decay=1e-3),
    "alexnet-mini": Config(
        "alexnet-mini",
        18,
        32,
        lr=0.01,
        weight_decay=5e-4,
        schedule="step",
        step_size=12,
        image_size=32,
        resize_size=36,
    ),
    # the paper's schedule: batch 128, momentum 0.9, weight decay 5e-4, lr 0.01 cut by 10 on
    # plateaus, 90 epochs; images only (--data DIR)
    "alexnet": Config(
        "alexnet",
        90,
        128,
        lr=0.01,
        weight_decay=5e-4,
        image_size=227,
        resize_size=256,
        ten_crop=True,
    ),
    "alexnet-torchvision": Config(
        "alexnet-torchvision",
        90,
        128,
        lr=0.01,
        weight_decay=5e-4,
        image_size=224,
        resize_size=256,
        ten_crop=True,
    ),
}
# torchvision's classic CNNs (models/zoo.py) on the digits as 32x32 RGB, like alexnet-mini
CONFIGS.update(
    {
        name: Config(
            name,
            12,
            32,
            lr=0.01,
            weight_decay=1e-4,
            schedule="step",
            step_size=8,
            image_size=224,  # --data DIR: torchvision's ImageNet input
            resize_size=256,
        )
        for name in zoo.MODELS
    }
)

#: The models with a digits preparation (`prepare_digits`); the others need --data DIR.
DIGITS_MODELS = ("logreg", "mlp", "alexnet-mini", *zoo.MODELS)


def build_model(name: str, num_classes: int = 10) -> nn.Module:
    if name == "logreg":
        return LogisticRegression(64, num_classes)
    if name == "mlp":
        return MLP([64, 128, 64, num_classes])
    if name == "alexnet-mini":
        return AlexNet(num_classes=num_classes, variant="mini")
    if name == "alexnet":
        return AlexNet(num_classes=num_classes, variant="paper")
    if name == "alexnet-torchvision":
        return AlexNet(num_classes=num_classes, variant="torchvision")
    if name in zoo.MODELS:
        return zoo.MODELS[name](num_classes=num_classes)
    raise ValueError(f"unknown model {name!r}; choose one of {sorted(CONFIGS)}")


def prepare_digits(name: str) -> tuple[np.ndarray, ...]:
    """Digits as the model wants them, prepared once up front. The 80/20 split is fixed (split
    seed 0) whatever the run's seed, so runs are comparable.

    logreg/MLP: each pixel standardised with the training set's mean and std (the std floored
    at 0.1: corner pixels are blank in almost every image). Mini AlexNet: 32x32 RGB (bilinear
    upscaling, channel repeated), values in [0, 1]; the torchvision zoo models likewise (32x32
    is the smallest input their five stride-2 stages take)."""
    x_train, y_train, x_test, y_test = load_digits(seed=0)
    if name in ("logreg", "mlp"):
        mean = x_train.mean(axis=0, keepdims=True)
        std = np.maximum(x_train.std(axis=0, keepdims=True), 0.1)
        x_train, x_test = (x_train - mean) / std, (x_test - mean) / std
    if name == "alexnet-mini" or name in zoo.MODELS:
        resize, to_rgb = Resize(32), GrayToRGB()
        gen = np.random.default_rng(0)  # neither transform is random; the argument is unused

        def up(x: np.ndarray) -> np.ndarray:
            return np.stack([to_rgb(resize(img, gen), gen) for img in x]).astype(np.float32)

        x_train, x_test = up(x_train), up(x_test)
    return x_train, y_train, x_test, y_test


class ProgressBar:
    """One epoch's progress on stderr through tqdm: steps, rate, the epoch's ETA and, in the
    postfix, the running loss and the whole run's ETA (only when stderr is a terminal)."""

    def __init__(
        self, total: int, prefix: str, stream: Any = sys.stderr, run_eta: float | None = None
    ) -> None:
        self.total, self.prefix, self.stream = total, prefix, stream
        self.enabled = hasattr(stream, "isatty") and stream.isatty()
        self.run_eta = run_eta  # seconds the epochs after this one will take, when known
        self.start = time.perf_counter()
        self._bar: Any = None

    def update(self, done: int, loss: float) -> None:
        if not self.enabled:
            return
        if self._bar is None:
            from tqdm import tqdm

            self._bar = tqdm(
                total=self.total, desc=self.prefix, unit="step", file=self.stream, leave=False
            )
        self._bar.update(done - self._bar.n)
        postfix = {"loss": f"{loss:.4f}"}
        if self.run_eta is not None:
            left = (time.perf_counter() - self.start) / done * (self.total - done)
            postfix["run ETA"] = _clock(left + self.run_eta)
        self._bar.set_postfix(postfix, refresh=False)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()


def _clock(seconds: float) -> str:
    minutes, secs = divmod(int(seconds + 0.5), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes:02d}:{secs:02d}"


def evaluate(
    model: nn.Module, x: np.ndarray, y: np.ndarray, batch_size: int = 256
) -> tuple[float, float]:
    """(mean cross-entropy, accuracy) in eval mode, without recording a graph."""
    total_loss, correct = evaluation_sums(model, x, y, batch_size)
    return total_loss / len(x), correct / len(x)


def evaluation_sums(
    model: nn.Module, x: np.ndarray, y: np.ndarray, batch_size: int = 256
) -> tuple[float, int]:
    """(summed cross-entropy, number correct) over `x` in eval mode (sums add up over the
    ranks' shards of a test set)."""
    model.eval()
    total_loss, correct = 0.0, 0
    with no_grad():
        for i in range(0, len(x), batch_size):
            logits = model(Tensor(x[i : i + batch_size]))
            yb = y[i : i + batch_size]
            total_loss += logits.cross_entropy(yb).item() * len(yb)
            correct += int((logits.numpy().argmax(axis=1) == yb).sum())
    model.train()
    return total_loss, correct


def evaluate_sharded(
    model: nn.Module, x: np.ndarray, y: np.ndarray, world: distributed.World
) -> tuple[float, float]:
    """`evaluate` with each rank on its shard of the test set and the sums added up."""
    lo, hi = shard_bounds(len(x), world.rank, world.size)
    loss_sum, correct = world.allreduce_sum(evaluation_sums(model, x[lo:hi], y[lo:hi]))
    return float(loss_sum) / len(x), float(correct) / len(x)


def _pack(prefix: str, state: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    return {f"{prefix}/{k}": v for k, v in state.items()}


def _unpack(prefix: str, state: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    n = len(prefix) + 1
    return {k[n:]: v for k, v in state.items() if k.startswith(prefix + "/")}


def _json_array(obj: Any) -> np.ndarray:
    return np.array(json.dumps(obj))  # a 0-d unicode array: loads without pickle


def save_checkpoint(
    path: str,
    config: Config,
    epoch: int,
    model: nn.Module,
    opt: optim.Optimizer,
    sched: optim.LRScheduler,
    history: dict[str, list[float]],
) -> None:
    state = {
        **_pack("model", model.state_dict()),
        **_pack("optim", opt.state_dict()),
        **_pack("sched", sched.state_dict()),
        "meta/epoch": np.array(epoch),
        "meta/config": _json_array(asdict(config)),
        "meta/rng": _json_array(rng.get_state()),
        "meta/history": _json_array(history),
    }
    nn.save(state, path)


def load_checkpoint(
    path: str,
    config: Config,
    model: nn.Module,
    opt: optim.Optimizer,
    sched: optim.LRScheduler,
) -> tuple[int, dict[str, list[float]]]:
    return restore_checkpoint(nn.load(path), path, config, model, opt, sched)


def restore_checkpoint(
    state: dict[str, np.ndarray],
    path: str,
    config: Config,
    model: nn.Module,
    opt: optim.Optimizer,
    sched: optim.LRScheduler,
) -> tuple[int, dict[str, list[float]]]:
    """Load a checkpoint's arrays (read from `path`) into the run; returns (epoch, history)."""
    saved = json.loads(str(state["meta/config"]))
    if saved["model"] != config.model:
        raise ValueError(
            f"--resume: {path} holds a {saved['model']!r} run, not "
            f"{config.model!r}. Fix: pick another --out directory"
        )
    model.load_state_dict(_unpack("model", state))
    opt.load_state_dict(_unpack("optim", state))
    sched.load_state_dict(_unpack("sched", state))
    rng.set_state(json.loads(str(state["meta/rng"])))
    return int(state["meta/epoch"]), json.loads(str(state["meta/history"]))


def saved_config(path: str) -> dict[str, Any] | None:
    """The configuration a checkpoint was written with (None when there is no checkpoint:
    `train` then says so)."""
    if not os.path.exists(path):
        return None
    with np.load(path, allow_pickle=False) as f:
        return json.loads(str(f["meta/config"]))


def resumed_config(
    saved: dict[str, Any],
    config: Config,
    given: Mapping[str, Any],
    path: str,
    log: Callable[[str], None] = print,
) -> Config:
    """The configuration a resumed run trains with: the saved run's, except the flags given on
    the command line, which win; each flag that contradicts the saved value is warned about
    (on stderr, or through `log` when it is not `print`)."""
    fields = {k: v for k, v in saved.items() if k in Config.__dataclass_fields__}
    merged = replace(config, **{k: v for k, v in fields.items() if k != "model"})
    for name, value in given.items():
        if name == "model":
            continue
        if name in fields and fields[name] != value:
            flag = "--" + name.replace("_", "-")
            why = (
                "training continues to that epoch"
                if name == "epochs"
                else ("the run will no longer match an uninterrupted one")
            )
            message = (
                f"warning: {flag} {value} contradicts the saved run's {name}={fields[name]} "
                f"({path}); {flag} {value} wins ({why})"
            )
            if log is print:
                print(message, file=sys.stderr)
            else:
                log(message)
        merged = replace(merged, **{name: value})
    return merged


def _write_atomically(path: str, write: Callable[[Any], None], newline: str | None = None) -> None:
    """Write a text file through a temp file and a rename; the temp file never outlives a
    failure or an interrupt."""
    tmp = os.path.join(os.path.dirname(path), f".{os.path.basename(path)}.tmp")
    try:
        with open(tmp, "w", newline=newline) as f:
            write(f)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


# curves.png is redrawn at most this often (and after the last epoch): matplotlib takes
# ~0.7 s a drawing on a Zen 3, which was 85% of a 40-epoch compiled MLP run when drawn each epoch
PLOT_EVERY_S = 10.0


def write_metrics(out: str, history: dict[str, list[float]], title: str, plot: bool = True) -> None:
    """metrics.csv and metrics.json (every call), and curves.png when `plot`."""
    rows = list(zip(*history.values()))

    def table(f: Any) -> None:
        writer = csv.writer(f)
        writer.writerow(["epoch", *history.keys()])
        for i, row in enumerate(rows):
            writer.writerow([i + 1, *(f"{v:.6g}" for v in row)])

    _write_atomically(os.path.join(out, "metrics.csv"), table, newline="")
    _write_atomically(os.path.join(out, "metrics.json"), lambda f: json.dump(history, f, indent=1))
    if not plot:
        return
    # imported here: matplotlib is 0.4 s of the CLI's (and every MPI rank's) start
    from .plotting import plot_curves

    plot_curves(history, os.path.join(out, "curves.png"), title)


def train(
    config: Config,
    out: str,
    resume: bool = False,
    log: Callable[[str], None] = print,
    compiled: bool = False,
    backend: str | None = None,
    data: FolderData | None = None,
    given: Mapping[str, Any] | None = None,
    where: dict[str, int] | None = None,
) -> dict[str, list[float]]:
    """Train `config.model` on digits, or on the image folder `data`; return the per-epoch
    history (with `data`, "test" is the validation set).

    `given`: the hyperparameters set on the command line; resuming, they win over the saved
    run's (with a warning for each that contradicts it) and the saved run's values are kept
    for the rest (None: every field of `config` wins). `where` is kept at the current (epoch,
    step), 1-based, for the message of an interrupted run.

    With `compiled`, each step runs as one compiled graph (`compiler.compile_train_step`:
    forward, backward and the SGD update fused into kernels) on `backend`; the numbers are the
    eager ones. Launched by MPI with W > 1 ranks, the run is data-parallel (module docstring);
    a compiled step is then split: gradient kernels, the gradients' allreduce, update kernels
    (`compiler.grad_step`).
    """
    world = distributed.world()
    if world.is_root:
        os.makedirs(out, exist_ok=True)
    else:
        log = _silent
    ckpt = os.path.join(out, "checkpoint.npz")
    if resume:
        saved = world.broadcast_object(saved_config(ckpt) if world.is_root else None)
        if saved is not None:
            chosen = asdict(config) if given is None else given  # None: all of `config`
            config = resumed_config(saved, config, chosen, ckpt, log)
    where = {} if where is None else where
    manual_seed(config.seed)
    if data is None and config.model not in DIGITS_MODELS:
        raise ValueError(
            f"{config.model} trains on images: pass data=FolderData(DIR) (CLI: --data DIR). "
            "Fix: python -m tinygrad_edu.data write-digits DIR writes a small image folder"
        )
    if data is None:
        model = build_model(config.model)
        x_train, y_train, x_test, y_test = prepare_digits(config.model)
        loader = DataLoader(
            x_train,
            y_train,
            config.batch_size,
            shuffle=True,
            seed=config.seed,
            num_replicas=world.size,
            rank=world.rank,
        )
        evaluate_test = lambda: evaluate_sharded(model, x_test, y_test, world)  # noqa: E731
        num_test, source = len(x_test), "digits"
    else:
        folders = open_folders(config, data)
        model = build_model(config.model, num_classes=len(folders.classes))
        shared = dict(num_replicas=world.size, rank=world.rank, num_workers=data.workers)
        loader = DataLoader(
            folders.train, batch_size=config.batch_size, shuffle=True, seed=config.seed, **shared
        )
        val_loader = DataLoader(folders.val, batch_size=config.batch_size, **shared)
        evaluate_test = lambda: evaluate_folder(model, val_loader, config, world)  # noqa: E731
        num_test, source = len(folders.val), os.path.basename(os.path.normpath(data.root))
    opt = optim.SGD(
        model.parameters(), lr=config.lr, momentum=config.momentum, weight_decay=config.weight_decay
    )
    sched: optim.LRScheduler = (
        optim.StepLR(opt, step_size=config.step_size, gamma=0.1)
        if config.schedule == "step"
        else optim.ReduceLROnPlateau(opt, factor=0.1, patience=config.patience)
    )
    history: dict[str, list[float]] = {
        "train_loss": [],
        "test_loss": [],
        "test_acc": [],
        "lr": [],
        "seconds": [],
    }
    parallel = DataParallel(model, opt, world)
    loss_fn = lambda o, t: o.cross_entropy(t)  # noqa: E731
    steps: dict[tuple[int, ...], compiler.TrainStep | GradientStep] = {}
    updates: list[compiler.TrainStep] = []  # data-parallel --compiled: the update, compiled once

    def compiled_step(xb: np.ndarray, yb: np.ndarray) -> compiler.TrainStep | GradientStep:
        # one compiled graph per batch shape (the last batch of an epoch may be smaller)
        if xb.shape not in steps:
            if world.size == 1:
                steps[xb.shape] = compiler.compile_train_step(
                    model, loss_fn, opt, xb, yb, backend=backend
                )
            else:
                steps[xb.shape] = compile_gradient_step(model, loss_fn, opt, xb, yb, backend)
        return steps[xb.shape]

    def local_loss_and_grads(xb: np.ndarray, yb: np.ndarray, share: float) -> float:
        """This rank's mean loss on its shard; in the parameters' .grad the gradients summed
        over the ranks, each rank's scaled by its `share` of the global batch."""
        opt.zero_grad()
        if len(xb) == 0:  # a global batch smaller than the world: this rank has no rows
            parallel.reduce_gradients(share)
            return 0.0
        if compiled:
            step = compiled_step(xb, yb)
            assert isinstance(step, GradientStep)
            # the kernels write the gradients into the flat buffer; buckets overlap the rest
            return step.reduce_into(parallel, xb, yb, share)
        loss_t = loss_fn(model(Tensor(xb)), yb)
        parallel.backward(loss_t, share)  # each bucket's allreduce overlaps the rest of backward
        return loss_t.item()

    start = 0
    if resume:
        found = world.broadcast_object(os.path.exists(ckpt) if world.is_root else None)
        if not found:
            raise FileNotFoundError(
                f"--resume: no checkpoint at {ckpt}. Fix: run without "
                "--resume first, or point --out at an earlier run"
            )
        # rank 0 reads the file (other hosts may not see it) and sends its arrays
        state = world.broadcast_object(nn.load(ckpt) if world.is_root else None)
        start, history = restore_checkpoint(state, ckpt, config, model, opt, sched)
        log(f"resumed {config.model} from epoch {start}")
    parallel.broadcast_state()
    if world.size > 1:
        log(world.roll_call())
    ranks = f", {world.size} ranks data-parallel" if world.size > 1 else ""
    if data is not None:
        log(f"images: {len(folders.classes)} classes from {folders.description}")
    log(
        f"{config.model}: {model.num_parameters():,} parameters, {loader.num_samples} train / "
        f"{num_test} test images, {config.epochs} epochs{ranks}"
    )
    plotted_at = -math.inf  # the first epoch's curves are drawn at once
    for epoch in range(start, config.epochs):
        t0 = time.perf_counter()
        loader.set_epoch(epoch)
        done = history["seconds"]  # the epochs so far give the ETA of the ones after this
        run_eta = float(np.mean(done)) * (config.epochs - epoch - 1) if done else None
        bar = ProgressBar(len(loader), f"epoch {epoch + 1}/{config.epochs}", run_eta=run_eta)
        bar.enabled = bar.enabled and world.is_root
        losses = []
        # each batch's loss summed over its samples on this rank (adds up over the ranks)
        loss_sums = np.zeros(len(loader), dtype=np.float64)
        for i, (xb, yb) in enumerate(loader):
            where.update(epoch=epoch + 1, step=i + 1)
            if compiled and world.size == 1:
                losses.append(compiled_step(xb, yb)(xb, yb))
            else:
                total = loader.global_batch_len(i)
                parallel.sync_buffers()
                with parallel.shard(len(xb), total):
                    loss = local_loss_and_grads(xb, yb, len(xb) / total)
                if compiled and parallel.every_parameter_has_grad:
                    if not updates:
                        updates.append(
                            compile_update_step(
                                model, opt, parallel.offsets, parallel.flat, backend
                            )
                        )
                    updates[0](parallel.flat, np.zeros((), parallel.flat.dtype))
                else:
                    opt.step()
                losses.append(loss)
                loss_sums[i] = loss * len(xb)
            bar.update(i + 1, float(np.mean(losses)))
        bar.close()
        if world.size > 1:  # the mean over the global batches, as one process computes it
            sizes = [loader.global_batch_len(b) for b in range(len(loader))]
            losses = list(world.allreduce(loss_sums) / np.array(sizes))
        train_loss = float(np.mean(losses))
        if not np.isfinite(train_loss):
            raise FloatingPointError(
                f"epoch {epoch + 1}: training loss is {train_loss}. Fix: lower --lr"
            )
        test_loss, test_acc = evaluate_test()
        seconds = time.perf_counter() - t0
        for k, v in zip(history, (train_loss, test_loss, test_acc, opt.lr, seconds)):
            history[k].append(float(v))
        if isinstance(sched, optim.ReduceLROnPlateau):
            sched.step(train_loss)
        else:
            sched.step()
        log(
            f"epoch {epoch + 1:3d}  train loss {train_loss:.4f}  test loss {test_loss:.4f}  "
            f"test acc {test_acc:.2%}  lr {history['lr'][-1]:.3g}  {seconds:.1f}s"
        )
        if world.is_root:
            save_checkpoint(ckpt, config, epoch + 1, model, opt, sched, history)
            last = epoch + 1 == config.epochs
            plot = last or time.perf_counter() - plotted_at >= PLOT_EVERY_S
            write_metrics(out, history, f"{config.model} on {source}", plot=plot)
            if plot:
                plotted_at = time.perf_counter()
        world.barrier()  # the checkpoint is complete before any rank goes on (or stops)
    if world.is_root:
        nn.save(model.state_dict(), os.path.join(out, "model.npz"))
    world.barrier()
    if compiled and steps and world.is_root:
        step = max(steps.values(), key=lambda s: s.compiled.calls)
        what = (
            "forward + backward + SGD update"
            if world.size == 1
            else "forward + backward; then the gradients' allreduce, then the SGD update"
            f" ({len(updates[0].compiled.kernels) if updates else 0} more kernels)"
        )
        log(f"\nwhat the compiler did (the training step: {what}):")
        log(step.compiled.summary())
        log(step.compiled.timing_table())
        report = step.compiled.report(os.path.join(out, "compiler_report.html"))
        log(f"fusion decisions, kernel IR and the graph: {report}")
    if history["test_acc"]:
        log(f"final test accuracy {history['test_acc'][-1]:.2%}  (outputs in {out})")
    return history


def _silent(message: str) -> None:
    """The log of ranks other than 0: one voice per job."""


def _defaults(field: str) -> str:
    """Each model's default of a Config field, for --help: "logreg 20, mlp 40, ...", or
    "default 0.9" when every model has the same."""
    values = {name: getattr(c, field) for name, c in CONFIGS.items()}
    if len(set(values.values())) == 1:
        return f"default {next(iter(values.values())):g}"
    return ", ".join(f"{name} {v:g}" for name, v in values.items())


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m models.train",
        description=__doc__.split("\n")[0],
        epilog="Defaults differ per model; --resume keeps the saved run's values except "
        "the flags given (they win, with a warning where they contradict it). Ctrl-C stops "
        "with exit code 130; the last finished epoch's checkpoint resumes.",
    )
    p.add_argument("model", choices=sorted(CONFIGS), help="what to train")
    p.add_argument("--epochs", type=int, metavar="N", help=f"epochs ({_defaults('epochs')})")
    p.add_argument(
        "--batch-size", type=int, metavar="B", help=f"batch size ({_defaults('batch_size')})"
    )
    p.add_argument("--lr", type=float, help=f"SGD learning rate ({_defaults('lr')})")
    p.add_argument("--momentum", type=float, help=f"SGD momentum ({_defaults('momentum')})")
    p.add_argument(
        "--weight-decay",
        type=float,
        metavar="WD",
        help=f"L2 weight decay ({_defaults('weight_decay')})",
    )
    p.add_argument(
        "--seed",
        type=int,
        help=f"seed of the weights, batch order and dropout ({_defaults('seed')})",
    )
    p.add_argument(
        "--schedule",
        choices=["plateau", "step"],
        help="learning-rate schedule: plateau (lr/10 when the train loss stalls for PATIENCE "
        "epochs) or step (lr/10 every STEP_SIZE epochs) ("
        + ", ".join(f"{n} {c.schedule}" for n, c in CONFIGS.items())
        + ")",
    )
    p.add_argument(
        "--step-size", type=int, help=f"epochs between step cuts ({_defaults('step_size')})"
    )
    p.add_argument(
        "--patience",
        type=int,
        help=f"epochs without improvement before a plateau cut ({_defaults('patience')})",
    )
    p.add_argument("--out", help="output directory (default runs/MODEL)")
    p.add_argument("--resume", action="store_true", help="continue from OUT/checkpoint.npz")
    p.add_argument(
        "--compiled",
        action="store_true",
        help="run each training step as one compiled graph (and write a compiler "
        "report to OUT/compiler_report.html)",
    )
    p.add_argument(
        "--backend",
        choices=compiler.BACKENDS,
        default=None,
        help="backend for --compiled: llvm (JIT for this CPU; the default), numpy (the "
        "reference), cuda",
    )
    p.add_argument(
        "--data",
        metavar="DIR",
        help="train an image model on an image folder: DIR/<class>/<image> (a stratified "
        "split is the validation set) or DIR/train/<class>/... and DIR/val/<class>/...",
    )
    p.add_argument("--val", metavar="DIR", help="with --data: the validation image folder")
    p.add_argument(
        "--val-fraction",
        type=float,
        default=0.2,
        help="with --data and no val folder: the stratified validation share (default 0.2)",
    )
    p.add_argument(
        "--split-seed", type=int, default=0, help="seed of that split (default 0, any --seed)"
    )
    p.add_argument(
        "--workers",
        type=int,
        default=0,
        help="with --data: processes decoding and augmenting images (default 0: in this one)",
    )
    return p


def given_fields(argv: Sequence[str] | None) -> dict[str, Any]:
    """The Config fields set on the command line (what wins over a resumed run's)."""
    args = build_parser().parse_args(argv)
    return {
        k: v
        for k, v in vars(args).items()
        if k in Config.__dataclass_fields__ and k != "model" and v is not None
    }


def parse_args(
    argv: Sequence[str] | None,
) -> tuple[Config, str, bool, bool, str, FolderData | None]:
    p = build_parser()
    args = p.parse_args(argv)
    overrides = given_fields(argv)
    config = replace(CONFIGS[args.model], **overrides)
    for name in ("epochs", "batch_size"):
        if getattr(config, name) < 1:
            p.error(f"--{name.replace('_', '-')} must be >= 1")
    if config.lr <= 0:
        p.error("--lr must be > 0")
    if args.backend is not None and not args.compiled:
        p.error("--backend applies to --compiled runs; add --compiled")
    data = None
    if args.data is not None:
        if not config.image_size:
            p.error(f"--data needs an image model; {args.model} has no image_size in CONFIGS")
        if args.workers < 0:
            p.error("--workers must be >= 0")
        if not 0.0 < args.val_fraction < 1.0:
            p.error("--val-fraction must be in (0, 1)")
        data = FolderData(args.data, args.val, args.val_fraction, args.split_seed, args.workers)
    elif args.val is not None:
        p.error("--val goes with --data DIR")
    elif args.model not in DIGITS_MODELS:
        p.error(
            f"{args.model} trains on images: add --data DIR (python -m tinygrad_edu.data "
            "write-digits DIR writes a small example folder)"
        )
    out = args.out or os.path.join("runs", args.model)
    return config, out, args.resume, args.compiled, args.backend, data


def main(argv: Iterable[str] | None = None) -> None:
    args = None if argv is None else list(argv)
    config, out, resume, compiled, backend, data = parse_args(args)
    where: dict[str, int] = {}
    try:
        train(config, out, resume, compiled=compiled, backend=backend,
              data=data, given=given_fields(args), where=where)  # fmt: skip
    except KeyboardInterrupt:
        # one line instead of a traceback; every file was written atomically, so the last
        # finished epoch's checkpoint is intact and no temp file is left behind
        at = f"at epoch {where['epoch']}, step {where['step']}" if where else "before training"
        print(f"interrupted {at}; resume with --resume", file=sys.stderr)
        raise SystemExit(130) from None


if __name__ == "__main__":
    main()
