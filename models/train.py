"""Train a DSL model on the scikit-learn digits from the command line.

    python -m models.train logreg|mlp|alexnet-mini [--epochs N] [--batch-size B] [--lr LR]
                           [--out DIR] [--resume] [--seed S]

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
import os
import sys
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, replace
from typing import Any

import numpy as np

import compiler
from compiler.grad_step import GradientStep, compile_gradient_step, compile_update_step
from tinygrad_edu import Tensor, distributed, manual_seed, nn, no_grad, optim, rng
from tinygrad_edu.data import DataLoader, GrayToRGB, Resize, load_digits, shard_bounds
from tinygrad_edu.data_parallel import DataParallel

from .alexnet import AlexNet
from .logistic_regression import LogisticRegression
from .mlp import MLP
from .plotting import plot_curves


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


CONFIGS = {
    "logreg": Config("logreg", epochs=20, batch_size=32, lr=0.05),
    "mlp": Config("mlp", epochs=40, batch_size=32, lr=0.1, weight_decay=1e-3),
    "alexnet-mini": Config(
        "alexnet-mini", 18, 32, lr=0.01, weight_decay=5e-4, schedule="step", step_size=12
    ),
}


def build_model(name: str) -> nn.Module:
    if name == "logreg":
        return LogisticRegression(64, 10)
    if name == "mlp":
        return MLP([64, 128, 64, 10])
    if name == "alexnet-mini":
        return AlexNet(num_classes=10, variant="mini")
    raise ValueError(f"unknown model {name!r}; choose one of {sorted(CONFIGS)}")


def prepare_digits(name: str) -> tuple[np.ndarray, ...]:
    """Digits as the model wants them, prepared once up front. The 80/20 split is fixed (split
    seed 0) whatever the run's seed, so runs are comparable.

    logreg/MLP: each pixel standardised with the training set's mean and std (the std floored
    at 0.1: corner pixels are blank in almost every image). Mini AlexNet: 32x32 RGB (bilinear
    upscaling, channel repeated), values in [0, 1]."""
    x_train, y_train, x_test, y_test = load_digits(seed=0)
    if name in ("logreg", "mlp"):
        mean = x_train.mean(axis=0, keepdims=True)
        std = np.maximum(x_train.std(axis=0, keepdims=True), 0.1)
        x_train, x_test = (x_train - mean) / std, (x_test - mean) / std
    if name == "alexnet-mini":
        resize, to_rgb = Resize(32), GrayToRGB()
        gen = np.random.default_rng(0)  # neither transform is random; the argument is unused

        def up(x: np.ndarray) -> np.ndarray:
            return np.stack([to_rgb(resize(img, gen), gen) for img in x]).astype(np.float32)

        x_train, x_test = up(x_train), up(x_test)
    return x_train, y_train, x_test, y_test


class ProgressBar:
    """A one-line progress bar on stderr (only when stderr is a terminal)."""

    def __init__(self, total: int, prefix: str, stream: Any = sys.stderr) -> None:
        self.total, self.prefix, self.stream = total, prefix, stream
        self.enabled = hasattr(stream, "isatty") and stream.isatty()
        self.start = time.perf_counter()

    def update(self, done: int, loss: float) -> None:
        if not self.enabled:
            return
        width = 30
        filled = int(width * done / max(self.total, 1))
        rate = done / max(time.perf_counter() - self.start, 1e-9)
        self.stream.write(
            f"\r{self.prefix} [{'#' * filled}{'.' * (width - filled)}] "
            f"{done}/{self.total} loss {loss:.4f} {rate:.1f} it/s"
        )
        self.stream.flush()

    def close(self) -> None:
        if self.enabled:
            self.stream.write("\r" + " " * 90 + "\r")
            self.stream.flush()


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


def write_metrics(out: str, history: dict[str, list[float]], title: str) -> None:
    rows = list(zip(*history.values()))
    tmp = os.path.join(out, ".metrics.csv.tmp")
    with open(tmp, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["epoch", *history.keys()])
        for i, row in enumerate(rows):
            writer.writerow([i + 1, *(f"{v:.6g}" for v in row)])
    os.replace(tmp, os.path.join(out, "metrics.csv"))
    tmp = os.path.join(out, ".metrics.json.tmp")
    with open(tmp, "w") as f:
        json.dump(history, f, indent=1)
    os.replace(tmp, os.path.join(out, "metrics.json"))
    plot_curves(history, os.path.join(out, "curves.png"), title)


def train(
    config: Config,
    out: str,
    resume: bool = False,
    log: Callable[[str], None] = print,
    compiled: bool = False,
    backend: str | None = None,
) -> dict[str, list[float]]:
    """Train `config.model` on digits; return the per-epoch history.

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
    manual_seed(config.seed)
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

    ckpt = os.path.join(out, "checkpoint.npz")
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
    log(
        f"{config.model}: {model.num_parameters():,} parameters, {len(x_train)} train / "
        f"{len(x_test)} test images, {config.epochs} epochs{ranks}"
    )
    for epoch in range(start, config.epochs):
        t0 = time.perf_counter()
        loader.set_epoch(epoch)
        bar = ProgressBar(len(loader), f"epoch {epoch + 1}/{config.epochs}")
        bar.enabled = bar.enabled and world.is_root
        losses = []
        # each batch's loss summed over its samples on this rank (adds up over the ranks)
        loss_sums = np.zeros(len(loader), dtype=np.float64)
        for i, (xb, yb) in enumerate(loader):
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
        test_loss, test_acc = evaluate_sharded(model, x_test, y_test, world)
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
            write_metrics(out, history, f"{config.model} on digits")
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


def parse_args(argv: Sequence[str] | None) -> tuple[Config, str, bool, bool, str]:
    p = argparse.ArgumentParser(prog="python -m models.train", description=__doc__.split("\n")[0])
    p.add_argument("model", choices=sorted(CONFIGS))
    p.add_argument("--epochs", type=int)
    p.add_argument("--batch-size", type=int)
    p.add_argument("--lr", type=float)
    p.add_argument("--momentum", type=float)
    p.add_argument("--weight-decay", type=float)
    p.add_argument("--seed", type=int)
    p.add_argument("--schedule", choices=["plateau", "step"])
    p.add_argument("--step-size", type=int)
    p.add_argument("--patience", type=int)
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
    args = p.parse_args(argv)
    overrides = {
        k: v
        for k, v in vars(args).items()
        if k in Config.__dataclass_fields__ and k != "model" and v is not None
    }
    config = replace(CONFIGS[args.model], **overrides)
    for name in ("epochs", "batch_size"):
        if getattr(config, name) < 1:
            p.error(f"--{name.replace('_', '-')} must be >= 1")
    if config.lr <= 0:
        p.error("--lr must be > 0")
    if args.backend is not None and not args.compiled:
        p.error("--backend applies to --compiled runs; add --compiled")
    out = args.out or os.path.join("runs", args.model)
    return config, out, args.resume, args.compiled, args.backend


def main(argv: Iterable[str] | None = None) -> None:
    config, out, resume, compiled, backend = parse_args(None if argv is None else list(argv))
    train(config, out, resume, compiled=compiled, backend=backend)


if __name__ == "__main__":
    main()
