"""Compiler benchmark: how long the passes take and what they produce, for the models of `models/`.

Run from the repository root:

    python bench/compile.py             # full run (~30 s on an idle 2-core box)
    python bench/compile.py --quick     # 1 timed compile per workload, no timed calls (~5 s)
    python bench/compile.py --no-run    # compile statistics only

It prints ONE JSON line on stdout (progress goes to stderr). Three models are compiled, each
for inference and for one training step:

- `alexnet_paper`: `AlexNet(1000, "paper")` on (N, 3, 227, 227) float32, N = `--batch` (16);
- `alexnet_torchvision`: `AlexNet(1000, "torchvision")` on (N, 3, 224, 224);
- `mlp`: `MLP([64, 128, 64, 10])` on (32, 64).

Inference (`{model}_fwd_*`) is `compiler.compile(model, x)` with `model.eval()`. The training
step (`{model}_train_*`) is `compiler.compile_train_step(model, cross_entropy, SGD(lr 0.01,
momentum 0.9, weight decay 5e-4), x, y)` with `model.train()` (dropout on) and a fresh
optimizer per compile (its momentum buffers are allocated inside the compile call, as on a
first compile); its `.compiled` is the CompiledFunction read below. Per (model, mode):

- `*_compile_s`: wall time of the whole compile call, median of `--repeats` compiles (default
  5) after one untimed warm-up compile; `*_first_compile_s` is that warm-up (the first compile
  of the process for `alexnet_paper_fwd`, so it includes lazy imports and cold caches).
- `*_passes_s`: median over the same compiles of the sum of `pass_seconds` (trace, autodiff,
  verify, simplify, fuse, plan_memory, lower: the Python the compiler runs); `*_pass_s` holds
  the median of each pass (`autodiff` is null for inference). `*_compile_s - *_passes_s` is
  the rest: parameter bindings and, for training, allocating the momentum buffers.
- `*_traced_nodes`, `*_simplified_nodes` (graph sizes before and after `simplify`),
  `*_kernels`, `*_gflop_per_call` (the kernels' FLOP count: a multiply-add is 2 FLOPs).
- `*_memory_planned_bytes` (intermediate buffers after reuse), `*_memory_unplanned_bytes`
  (one buffer per intermediate), `*_memory_saved_fraction` (1 - planned / unplanned) and
  `*_memory_peak_live_bytes` (largest total of intermediates alive at once). Parameters,
  inputs and outputs are not intermediates and are not counted.

`compiles_deterministic` is true when every repeat of every workload produced the same
node, kernel, FLOP and memory counts. The issue's target is "under 1 s of Python for all
passes on the paper AlexNet training step": `alexnet_paper_train_passes_s` and
`alexnet_paper_train_passes_under_1s`.

Unless `--no-run` or `--quick` is given, the compiled paper-AlexNet forward is also called on
the numpy backend next to eager `model(Tensor(x))` under `no_grad` (eval mode, same input,
same weights): one warm-up call each, then the median of `--run-repeats` (3) calls, in
`alexnet_paper_fwd_run_compiled_s`, `..._eager_s` and `..._ratio_vs_eager` (compiled time /
eager time: below 1.0 means the compiled function is faster), with
`alexnet_paper_fwd_run_max_abs_diff` between the two outputs as a correctness check. Those
keys are null when not run, so the schema is fixed.

Timings are only as good as the machine is idle (`load_avg_1min_at_start` / `_at_end`): BLAS
is multi-threaded, and the passes are single-threaded Python that another busy process slows.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run from a checkout
from common import log, median_seconds, print_result, ratio  # noqa: E402
from common import rounded as _rounded  # noqa: E402

import compiler  # noqa: E402
from compiler import CompiledFunction  # noqa: E402
from models import MLP, AlexNet  # noqa: E402
from tinygrad_edu import Tensor, nn, no_grad, optim  # noqa: E402

PASSES: tuple[str, ...] = (
    "trace",
    "autodiff",
    "verify",
    "simplify",
    "fuse",
    "plan_memory",
    "lower",
)
MODES: tuple[str, ...] = ("fwd", "train")
MLP_SIZES: tuple[int, ...] = (64, 128, 64, 10)
MLP_BATCH = 32
NUM_CLASSES = 1000
LR, MOMENTUM, WEIGHT_DECAY = 0.01, 0.9, 5e-4
TARGET_S = 1.0  # the budget for all passes of the paper AlexNet training step
SEED = 0


def rounded(value: float | None, digits: int = 4) -> float | None:
    return _rounded(value, digits)


@dataclass
class Workload:
    """A model, its example batch and the key prefix its numbers are reported under."""

    name: str
    build: Callable[[], nn.Module]
    x_shape: tuple[int, ...]
    num_classes: int


def workloads(batch: int) -> list[Workload]:
    return [
        Workload(
            "alexnet_paper",
            lambda: AlexNet(NUM_CLASSES, "paper"),
            (batch, 3, 227, 227),
            NUM_CLASSES,
        ),
        Workload(
            "alexnet_torchvision",
            lambda: AlexNet(NUM_CLASSES, "torchvision"),
            (batch, 3, 224, 224),
            NUM_CLASSES,
        ),
        Workload("mlp", lambda: MLP(list(MLP_SIZES)), (MLP_BATCH, MLP_SIZES[0]), MLP_SIZES[-1]),
    ]


def example_batch(work: Workload) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(SEED)
    x = rng.standard_normal(work.x_shape, dtype=np.float32)
    y = rng.integers(0, work.num_classes, work.x_shape[0]).astype(np.int64)
    return x, y


def compile_once(
    model: nn.Module, mode: str, x: np.ndarray, y: np.ndarray
) -> tuple[float, CompiledFunction]:
    """(wall seconds of the compile call, the CompiledFunction) for one fresh compile."""
    if mode == "fwd":
        model.eval()
        start = time.perf_counter()
        compiled = compiler.compile(model, x)
        return time.perf_counter() - start, compiled
    model.train()
    sgd = optim.SGD(model.parameters(), lr=LR, momentum=MOMENTUM, weight_decay=WEIGHT_DECAY)
    start = time.perf_counter()
    step = compiler.compile_train_step(model, lambda o, t: o.cross_entropy(t), sgd, x, y)
    return time.perf_counter() - start, step.compiled


def shape_stats(compiled: CompiledFunction) -> dict[str, Any]:
    """What the passes produced (identical across compiles of the same model and mode)."""
    memory = compiled.memory
    saved = 1 - memory.planned_bytes / memory.unplanned_bytes if memory.unplanned_bytes else None
    return {
        "traced_nodes": len(compiled.traced),
        "simplified_nodes": len(compiled.graph),
        "kernels": len(compiled.kernels),
        "gflop_per_call": round(sum(k.flops for k in compiled.kernels) / 1e9, 4),
        "memory_planned_bytes": int(memory.planned_bytes),
        "memory_unplanned_bytes": int(memory.unplanned_bytes),
        "memory_saved_fraction": rounded(saved, 3),
        "memory_peak_live_bytes": int(memory.peak_live_bytes),
    }


def bench_compile(
    model: nn.Module, mode: str, x: np.ndarray, y: np.ndarray, repeats: int
) -> tuple[dict[str, Any], bool]:
    """(the keys of one (model, mode), whether every repeat produced the same statistics)."""
    first_s, compiled = compile_once(model, mode, x, y)
    stats = shape_stats(compiled)
    walls: list[float] = []
    per_pass: dict[str, list[float]] = {name: [] for name in PASSES}
    totals: list[float] = []
    same = True
    for _ in range(repeats):
        wall, compiled = compile_once(model, mode, x, y)
        walls.append(wall)
        totals.append(sum(compiled.pass_seconds.values()))
        for name in PASSES:
            if name in compiled.pass_seconds:
                per_pass[name].append(compiled.pass_seconds[name])
        unknown = set(compiled.pass_seconds) - set(PASSES)
        if unknown:
            log(f"  note: passes not in the schema (counted in passes_s): {sorted(unknown)}")
        same = same and shape_stats(compiled) == stats
    return {
        "compile_s": rounded(statistics.median(walls)),
        "first_compile_s": rounded(first_s),
        "passes_s": rounded(statistics.median(totals)),
        "pass_s": {
            name: rounded(statistics.median(v)) if v else None for name, v in per_pass.items()
        },
        **stats,
    }, same


def bench_run(model: nn.Module, x: np.ndarray, repeats: int) -> dict[str, Any]:
    """Compiled forward vs eager forward of the same eval-mode model on the same input."""
    model.eval()
    forward = compiler.compile(model, x)

    def eager() -> np.ndarray:
        with no_grad():
            return model(Tensor(x)).numpy()

    log("  compiled call")
    compiled_s = median_seconds(lambda: forward(x), repeats)
    log("  eager call")
    eager_s = median_seconds(eager, repeats)
    diff = float(np.max(np.abs(np.asarray(forward(x)) - eager())))
    return {
        "run_compiled_s": rounded(compiled_s),
        "run_eager_s": rounded(eager_s),
        "run_ratio_vs_eager": ratio(compiled_s, eager_s),
        "run_max_abs_diff": diff,
    }


# -- driver ---------------------------------------------------------------------------------


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--quick", action="store_true", help="1 timed compile per workload and no timed calls"
    )
    parser.add_argument("--batch", type=int, default=16, help="AlexNet batch size N (16)")
    parser.add_argument(
        "--repeats", type=int, default=None, help="timed compiles per workload (default 5)"
    )
    parser.add_argument(
        "--run-repeats", type=int, default=3, help="timed calls of compiled/eager forward (3)"
    )
    parser.add_argument(
        "--no-run", action="store_true", help="skip the timed compiled-vs-eager AlexNet calls"
    )
    args = parser.parse_args(argv)
    for name in ("batch", "repeats", "run_repeats"):
        value = getattr(args, name)
        if value is not None and value < 1:
            parser.error(f"--{name.replace('_', '-')} must be at least 1")
    return args


def run(args: argparse.Namespace) -> dict[str, Any]:
    repeats = args.repeats or (1 if args.quick else 5)
    timed_calls = not (args.quick or args.no_run)
    result: dict[str, Any] = {
        "benchmark": "tinygrad_edu compiler",
        "mode": "quick" if args.quick else "full",
        "backend": "numpy",
        "batch": args.batch,
        "mlp_batch": MLP_BATCH,
        "compile_repeats": repeats,
        "run_repeats": args.run_repeats if timed_calls else None,
        "numpy_version": np.__version__,
        "cpu_count": os.cpu_count(),
        "load_avg_1min_at_start": round(os.getloadavg()[0], 2),
        "python_version": platform.python_version(),
        "platform": platform.platform(),
    }
    deterministic = True
    for work in workloads(args.batch):
        log(f"{work.name}: building the model")
        model = work.build()
        x, y = example_batch(work)
        for mode in MODES:
            log(f"{work.name} {mode}: {repeats} compile(s) after a warm-up")
            keys, same = bench_compile(model, mode, x, y, repeats)
            deterministic = deterministic and same
            if not same:
                log(f"  WARNING: {work.name} {mode} compiles differ between repeats")
            for key, value in keys.items():
                result[f"{work.name}_{mode}_{key}"] = value
        if work.name == "alexnet_paper":
            run_keys: dict[str, Any] = dict.fromkeys(
                ("run_compiled_s", "run_eager_s", "run_ratio_vs_eager", "run_max_abs_diff")
            )
            if timed_calls:
                log(f"alexnet_paper fwd: compiled vs eager call, N={args.batch}")
                run_keys = bench_run(model, x, args.run_repeats)
            for key, value in run_keys.items():
                result[f"alexnet_paper_fwd_{key}"] = value
        del model
    result["compiles_deterministic"] = deterministic
    passes = result["alexnet_paper_train_passes_s"]
    result["alexnet_paper_train_passes_target_s"] = TARGET_S
    result["alexnet_paper_train_passes_under_1s"] = passes < TARGET_S
    result["load_avg_1min_at_end"] = round(os.getloadavg()[0], 2)
    return result


def main(argv: list[str] | None = None) -> None:
    print_result(run, parse_args(argv))


if __name__ == "__main__":
    main()
