"""LLVM backend benchmark: compiled `backend="llvm"` next to the numpy backend, eager and PyTorch.

Run from the repository root:

    python bench/llvm.py                # full run (~2 min on an idle 2-core box)
    python bench/llvm.py --quick        # conv1 block N=16, MLP epoch, GEMM only (~1 min)
    python bench/llvm.py --skip-train   # full run without the AlexNet training-step row

It prints ONE JSON line on stdout (progress goes to stderr). Every row runs, side by side in
one process and one after the other, up to five implementations of the same work, each timed
as the median of `--repeats` calls after one untimed warm-up call (`time.perf_counter`):

- `llvm`: the model compiled with `compiler.compile(..., backend="llvm")` (or
  `compile_train_step(..., backend="llvm")`); compile time is not in the timed calls and is
  reported separately as `*_llvm_compile_s` (JIT from an empty disk cache: the run uses a
  fresh `TINYGRAD_EDU_CACHE` temp dir, deleted at the end);
- `numpy`: the same compile with the reference backend (`backend="numpy"`);
- `eager`: tinygrad_edu eager, `model(Tensor(x))` under `no_grad` for inference, the step of
  `models/train.py` (forward, cross-entropy, zero_grad, backward, SGD step) for training;
- `torch`: PyTorch eager on CPU (default thread count), the same layers loaded with our
  weights (the twins of `bench/train.py`), `torch.no_grad` for inference;
- `torch_compile`: `torch.compile(torch_model)` (inductor), inference rows only, each in a
  child process killed after `--torch-compile-timeout` s (its keys are then null and
  `torch_compile_status` says why); `*_torch_compile_first_call_s` is the compile plus the
  first call (inductor's on-disk cache under /tmp may make repeat runs faster).

Per row and implementation: a time (`*_ms`, or `*_s` for the epoch) and a throughput
(`*_gflops` or `*_images_per_s`); `{row}_speedup_vs_{impl}` = llvm throughput / that
implementation's throughput (its time / llvm's time): above 1.0 the llvm backend is faster.
Keys of implementations or rows that were not run are null, so the schema is fixed.

Rows (N = batch size, float32 throughout):

1. `conv1_n16`, `conv1_n1`: the AlexNet conv1 block `nn.Sequential(nn.Conv2d(3, 96, 11,
   stride=4), nn.ReLU(), nn.MaxPool2d(3, 2))` in eval mode on (N, 3, 227, 227) -> (N, 96, 27,
   27). GFLOP/s counts only the conv: 2*N*96*55*55*363 FLOPs. `*_llvm_max_abs_diff` is the
   largest |llvm - eager| of the outputs. Default 5 repeats.
2. `alexnet_tv_fwd_n16`: `AlexNet(1000, "torchvision")` forward on (16, 3, 224, 224), eval
   mode: images/s. Default 3 repeats. `*_llvm_max_abs_diff` as above, on the logits.
3. `alexnet_paper_train_n16`: one training step of `AlexNet(1000, "paper")` on a fixed
   synthetic batch (16, 3, 227, 227) with random labels: `compile_train_step(model, lambda o,
   t: o.cross_entropy(t), optim.SGD(lr=0.01, momentum=0.9, weight_decay=5e-4), x, y)`,
   dropout on; images/s. Every implementation starts from the same initial weights (its own
   copy, `manual_seed(0)`); `*_first_loss` is the loss of its warm-up step (about ln 1000 =
   6.9; dropout masks differ, so they agree only roughly). Always 2 repeats unless
   `--repeats` is given; `--skip-train` nulls the row (compile times are still measured).
4. `mlp_epoch`: one training epoch of `MLP([64, 128, 64, 10])` on digits-sized synthetic data
   (1437 samples x 64 features, 10 learnable classes, as `bench/eager.py`), batch 32 (45
   steps, the last one of 29 samples: the compiled implementations compile one step per batch
   shape), SGD lr 0.1, momentum 0.9, weight decay 1e-3 (`models/train.py`'s MLP config); same
   initial weights and the same shuffled batches everywhere, so the `*_final_loss` values
   (mean loss of the last timed epoch) should agree to a few decimals. Seconds per epoch.
   Default 3 repeats. PyTorch is also timed with `torch.set_num_threads(1)`
   (`mlp_epoch_torch_1thread_s`, `mlp_epoch_speedup_vs_torch_1thread`): on these tiny ops its
   default thread pool waits on the other core, which any other busy process makes 10-100x
   slower; the target is still read against the default thread count.
5. `gemm_1024`: `compiler.compile(lambda a, b: a @ b, a, b)` on two 1024x1024 float32
   matrices (2*1024**3 FLOPs), GFLOP/s; `gemm_1024_numpy_matmul_gflops` is plain numpy `a @ b`
   timed right before, and `gemm_1024_llvm_pct_of_numpy_matmul` / `_pct_of_peak` put the llvm
   rate against it and against `machine_peak_gflops`: this machine's float32 peak for the
   target, measured at the start of the run by `compiler.backends.llvm.measure_peak_gflops`
   (a JIT-compiled loop of independent vector FMAs on every usable core; `--peak-gflops`
   overrides it). Default 3 repeats.
6. Compile time of the paper AlexNet training step (N=16) on llvm, the issue's "cold <= 10 s,
   warm <= 1 s": `alexnet_paper_train_cold_compile_s` is the whole `compile_train_step` call
   in this process with an empty disk cache (a fresh `TINYGRAD_EDU_CACHE` and
   `compiler.backends.llvm._Target.reset()`, so the target machine and the JIT
   engine are rebuilt and every kernel is compiled; it is the first llvm compile of the run,
   so it also pays llvmlite's import); `*_cold_jit_s` is its JIT part and `*_cold_kernels_
   compiled` the number of LLVM compilations. `alexnet_paper_train_warm_compile_s` is the
   same call in a second process (`python -c`, same cache dir: every object loads from disk),
   timed inside that process around the call only; `*_warm_process_s` is that process's
   whole wall time (imports and building the 61M-parameter model included) and
   `*_warm_cache_hits` / `_misses` its cache counters. `--quick` skips this row.

7. `resnet18_fwd_n16`: `models.resnet18()` (1000 classes) forward on (16, 3, 224, 224), eval
   mode: images/s, against torchvision's `resnet18` loaded with the same weights (the
   `torchvision::nms` schema shim of tests/torchvision_compat.py lets it import beside a CPU
   torch; without torchvision the torch keys are null). `*_llvm_max_abs_diff` (vs eager) and
   `*_llvm_max_abs_diff_vs_torch` on the logits. No torch.compile. Default 3 repeats.
8. `resnet18_train_n16`: one training step of `models.resnet18()` in train mode (BatchNorm
   batch statistics and running-stat updates) on a fixed synthetic batch with random labels,
   SGD lr 0.01, momentum 0.9, weight decay 1e-4 (torchvision's recipe): llvm
   (`compile_train_step`), eager and torch, each from the same initial weights;
   `*_first_loss` is each warm-up step's loss (no dropout: they agree to ~1e-5).
   `*_llvm_compile_s` is the compile (JIT cache as the run left it). No numpy-backend
   column. Default 2 repeats. `--skip-resnet` (and `--quick`) null both ResNet rows;
   `--resnet-size S` runs them on SxS images instead (a smoke run: `resnet18_image_size`
   records it, the keys keep their names).

Targets (`{row}_target`, `{row}_meets_target`; null when not measured): conv1 N=16 >= 1.5x
PyTorch eager, conv1 N=1 >= 1.2x, torchvision forward >= 1.3x, paper training step >= 1.3x,
ResNet-18 forward and training step >= 1.2x each,
MLP epoch >= 1.5x, GEMM >= 85% of `machine_peak_gflops`, cold compile <= 5 s
(`alexnet_paper_train_cold_compile_under_5s`), warm compile <= 0.5 s (`..._warm_compile_
under_0_5s`). `targets_met` counts the true ones among `targets_measured`.

The line names the machine: `cpu_name` (from /proc/cpuinfo), `target` (the CPU target the
kernels were built for: ISA, lanes, registers, caches, cores, the GEMM and dot tiles, and
whether `TINYGRAD_EDU_CPU` forced it), so runs on different CPUs are never compared by
accident. `TINYGRAD_EDU_CPU=avx2 python bench/llvm.py` measures the AVX2 code path on an
AVX-512 machine, with PyTorch held to AVX2 too (`ATEN_CPU_CAPABILITY=avx2`,
`ONEDNN_MAX_CPU_ISA=AVX2`, recorded as `torch_isa_limits`).

Timings are only as good as the machine is idle: numpy's BLAS, torch and the llvm backend's
thread pool all use every core, so one other busy process on a 2-core box slows a row 2-5x.
`load_avg_1min_at_start` / `_at_end` and `numpy_matmul_gflops` (1024^3 float32 `a @ b`,
measured at the start and again at the end) show contention: compare runs by the ratios.
"""

from __future__ import annotations

import argparse
import gc
import importlib.util
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # run from a checkout
sys.path.insert(0, str(ROOT / "bench"))
sys.path.insert(0, str(ROOT / "tests"))  # torchvision_compat: torchvision beside a CPU torch
from common import (  # noqa: E402
    add_timing_options,
    cpu_name,
    log,
    parse_timing_args,
    rounded,
    wall_times,
)
from torchvision_compat import load_torchvision  # noqa: E402

import compiler  # noqa: E402
from compiler.backends import llvm as llvm_backend  # noqa: E402
from compiler.target import host_target  # noqa: E402
from models import MLP, AlexNet, resnet18  # noqa: E402
from tinygrad_edu import Tensor, manual_seed, nn, no_grad, optim  # noqa: E402

# With TINYGRAD_EDU_CPU forcing AVX2 on an AVX-512 machine, PyTorch is held to AVX2 as well
# (its own kernels and oneDNN's), so both sides run the code an AVX2 CPU would run. Set before
# torch is imported; recorded in the JSON line.
TORCH_ISA_LIMITS = {"ATEN_CPU_CAPABILITY": "avx2", "ONEDNN_MAX_CPU_ISA": "AVX2"}
if host_target().forced and host_target().isa == "avx2":
    for _name, _value in TORCH_ISA_LIMITS.items():
        os.environ.setdefault(_name, _value)

try:
    import torch
except ImportError:  # torch is optional (the `bench` extra)
    torch = None


def _load_bench(name: str) -> ModuleType:
    """A sibling benchmark script as a module (its helpers and torch twins are reused)."""
    spec = importlib.util.spec_from_file_location(f"bench_{name}", ROOT / "bench" / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


EAGER = _load_bench("eager")  # mlp_data, epoch_orders
TRAIN = _load_bench("train")  # torch_model, torch_twin, ours_step, torch_step

IMPLS: tuple[str, ...] = ("llvm", "numpy", "eager", "torch", "torch_compile")
OTHERS: tuple[str, ...] = IMPLS[1:]
SEED = 0
CONV_OUT_HW = 55  # (227 - 11) / 4 + 1
FULL_BATCH, FULL_CLASSES = 16, 1000
LR, MOMENTUM, WEIGHT_DECAY = 0.01, 0.9, 5e-4
MLP_SIZES: tuple[int, ...] = (64, 128, 64, 10)
MLP_SAMPLES, MLP_BATCH = 1437, 32
MLP_LR, MLP_MOMENTUM, MLP_WEIGHT_DECAY = 0.1, 0.9, 1e-3
GEMM_SIZE = 1024
COLD_TARGET_S, WARM_TARGET_S = 5.0, 0.5
RESNET_SIZE, RESNET_WEIGHT_DECAY = 224, 1e-4
WARM_TIMEOUT_S = 180

Fn = Callable[[], Any]


SETTLE_S = 0.5


def timed(fn: Fn, repeats: int, warmup: int = 1) -> tuple[float, Any]:
    """(median wall seconds of `repeats` calls of `fn` after `warmup` untimed calls, the
    result of the first call). Starts after SETTLE_S idle: OpenBLAS and OpenMP (numpy,
    PyTorch) keep their worker threads spinning for a while after a call, and on two cores
    that halves whatever runs next (measured: the llvm GEMM 220 -> 111 GFLOP/s right after
    numpy's matmul)."""
    time.sleep(SETTLE_S)
    times, first = wall_times(fn, repeats, warmup)
    return statistics.median(times), first


def release() -> None:
    gc.collect()


def numpy_matmul_gflops(repeats: int = 5) -> float:
    rng = np.random.default_rng(SEED)
    a = rng.standard_normal((GEMM_SIZE, GEMM_SIZE), dtype=np.float32)
    b = rng.standard_normal((GEMM_SIZE, GEMM_SIZE), dtype=np.float32)
    seconds, _ = timed(lambda: a @ b, repeats, warmup=2)
    return 2 * GEMM_SIZE**3 / seconds / 1e9


def row_keys(
    row: str,
    seconds: dict[str, float | None],
    time_key: str,
    time_scale: float,
    rate_key: str,
    work: float,
    digits: int = 3,
) -> dict[str, Any]:
    """Time, throughput (`work` / seconds) and llvm speedups for every implementation."""
    out: dict[str, Any] = {}
    for impl in IMPLS:
        s = seconds.get(impl)
        out[f"{row}_{impl}_{time_key}"] = rounded(s * time_scale if s else None, digits)
        out[f"{row}_{impl}_{rate_key}"] = rounded(work / s if s else None, 2)
    ours = seconds.get("llvm")
    for impl in OTHERS:
        theirs = seconds.get(impl)
        speedup = theirs / ours if ours and theirs else None
        out[f"{row}_speedup_vs_{impl}"] = rounded(speedup, 3)
    return out


# Per row: (time key, throughput key, extra key suffixes), for the null keys of a skipped row.
ROW_SCHEMA: dict[str, tuple[str, str, tuple[str, ...]]] = {
    "conv1_n16": ("ms", "gflops", ("torch_compile_first_call_s", "llvm_compile_s",
                                   "llvm_max_abs_diff", "llvm_max_abs_diff_vs_torch")),
    "conv1_n1": ("ms", "gflops", ("torch_compile_first_call_s", "llvm_compile_s",
                                  "llvm_max_abs_diff", "llvm_max_abs_diff_vs_torch")),
    f"alexnet_tv_fwd_n{FULL_BATCH}": (
        "ms", "images_per_s", ("torch_compile_first_call_s", "llvm_compile_s", "llvm_max_abs_diff")
    ),
    f"alexnet_paper_train_n{FULL_BATCH}": (
        "step_ms", "images_per_s", tuple(f"{impl}_first_loss" for impl in IMPLS)
    ),
    f"resnet18_fwd_n{FULL_BATCH}": (
        "ms", "images_per_s", ("llvm_compile_s", "llvm_max_abs_diff", "llvm_max_abs_diff_vs_torch")
    ),
    f"resnet18_train_n{FULL_BATCH}": (
        "step_ms", "images_per_s",
        ("llvm_compile_s", *(f"{impl}_first_loss" for impl in IMPLS)),
    ),
}  # fmt: skip
COMPILE_KEYS: tuple[str, ...] = tuple(
    f"alexnet_paper_train_{k}"
    for k in (
        "cold_compile_s", "cold_jit_s", "cold_passes_s", "cold_kernels_compiled", "kernels",
        "llvm_kernels", "warm_compile_s", "warm_jit_s", "warm_process_s", "warm_cache_hits",
        "warm_cache_misses", "cold_compile_under_5s", "warm_compile_under_0_5s",
    )
)  # fmt: skip


def null_row(row: str) -> dict[str, Any]:
    """The keys of a row that was not run, all null."""
    time_key, rate_key, extras = ROW_SCHEMA[row]
    keys = row_keys(row, {}, time_key, 1.0, rate_key, 1.0)
    keys.update({f"{row}_{extra}": None for extra in extras})
    return keys


def max_abs_diff(a: Any, b: Any) -> float:
    return float(f"{float(np.max(np.abs(np.asarray(a) - np.asarray(b)))):.3g}")


# -- torch.compile, in a child process ------------------------------------------------------


def conv_inputs(n: int) -> tuple[nn.Sequential, np.ndarray]:
    """The conv1 block (eval mode, weights from `manual_seed(SEED)`) and its input."""
    manual_seed(SEED)
    block = nn.Sequential(nn.Conv2d(3, 96, 11, stride=4), nn.ReLU(), nn.MaxPool2d(3, 2))
    block.eval()
    x = np.random.default_rng(SEED + n).standard_normal((n, 3, 227, 227), dtype=np.float32)
    return block, x


def torch_conv_block(block: nn.Sequential) -> Any:
    assert torch is not None
    tnn = torch.nn
    twin = tnn.Sequential(tnn.Conv2d(3, 96, 11, stride=4), tnn.ReLU(), tnn.MaxPool2d(3, 2))
    twin.load_state_dict({k: torch.from_numpy(v.copy()) for k, v in block.state_dict().items()})
    return twin.eval()


def tv_inputs() -> tuple[AlexNet, np.ndarray]:
    manual_seed(SEED)
    model = AlexNet(FULL_CLASSES, "torchvision")
    model.eval()
    x = np.random.default_rng(SEED).standard_normal((FULL_BATCH, 3, 224, 224), dtype=np.float32)
    return model, x


def torch_compile_child(kind: str, repeats: int, sizes: list[int]) -> None:
    """Child process: time `torch.compile` of the conv1 block or the torchvision AlexNet and
    print one JSON object {key: seconds}."""
    assert torch is not None
    out: dict[str, float] = {}
    cases: list[tuple[str, Any, np.ndarray]] = []
    if kind == "conv1":
        for n in sizes:
            block, x = conv_inputs(n)
            cases.append((f"n{n}", torch_conv_block(block), x))
    else:
        model, x = tv_inputs()
        cases.append(("tv", TRAIN.torch_twin("torchvision", FULL_CLASSES, model).eval(), x))
    for name, module, x in cases:
        tx = torch.from_numpy(x)
        fn = torch.compile(module)
        with torch.no_grad():
            start = time.perf_counter()
            got = fn(tx)
            out[f"{name}_first_call_s"] = time.perf_counter() - start
            out[f"{name}_s"], _ = timed(lambda f=fn, t=tx: f(t), repeats, warmup=1)
            out[f"{name}_max_abs_diff_vs_torch"] = max_abs_diff(got.numpy(), module(tx).numpy())
    print(json.dumps(out))


def run_torch_compile(
    kind: str, repeats: int, sizes: list[int], timeout: float, status: dict[str, str]
) -> dict[str, Any] | None:
    """Run `torch_compile_child` in a subprocess; None (and a status line) on error or timeout."""
    cmd = [sys.executable, str(Path(__file__).resolve()), "--torch-compile-child", kind]
    cmd += ["--repeats", str(repeats), "--child-sizes", ",".join(map(str, sizes))]
    log(f"  torch.compile ({kind}) in a child process, timeout {timeout:.0f} s")
    start = time.perf_counter()
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, check=False)
    except subprocess.TimeoutExpired:
        status[kind] = f"timeout after {timeout:.0f} s"
        log(f"  torch.compile ({kind}): {status[kind]}, skipped")
        return None
    if proc.returncode != 0 or not proc.stdout.strip():
        tail = (proc.stderr.strip().splitlines() or ["no output"])[-1]
        status[kind] = f"error (exit {proc.returncode}): {tail[:300]}"
        log(f"  torch.compile ({kind}): {status[kind]}")
        return None
    status[kind] = f"ok in {time.perf_counter() - start:.1f} s"
    return json.loads(proc.stdout.strip().splitlines()[-1])


# -- rows -----------------------------------------------------------------------------------


def time_inference(
    row: str, model: nn.Module, x: np.ndarray, repeats: int
) -> tuple[dict[str, float | None], np.ndarray, np.ndarray, float]:
    """Compile `model` on llvm (timed) and numpy, then time llvm, numpy and eager inference:
    (seconds by implementation, the llvm output, the eager output, llvm compile seconds)."""
    seconds: dict[str, float | None] = dict.fromkeys(IMPLS)
    log(f"{row}: llvm compile")
    start = time.perf_counter()
    fwd_llvm = compiler.compile(model, x, backend="llvm")
    compile_s = time.perf_counter() - start
    fwd_numpy = compiler.compile(model, x, backend="numpy")

    def eager() -> np.ndarray:
        with no_grad():
            return model(Tensor(x)).numpy()

    log(f"{row}: llvm")
    seconds["llvm"], out_llvm = timed(lambda: fwd_llvm(x), repeats)
    log(f"{row}: numpy backend")
    seconds["numpy"], _ = timed(lambda: fwd_numpy(x), repeats)
    log(f"{row}: eager")
    seconds["eager"], out_eager = timed(eager, repeats)
    return seconds, out_llvm, out_eager, compile_s


def bench_conv(n: int, repeats: int, use_torch: bool, tc: dict[str, Any] | None) -> dict:
    row = f"conv1_n{n}"
    block, x = conv_inputs(n)
    seconds, out_llvm, out_eager, compile_s = time_inference(row, block, x, repeats)
    diff_torch = None
    if use_torch:
        assert torch is not None
        log(f"{row}: torch")
        twin, tx = torch_conv_block(block), torch.from_numpy(x)
        with torch.no_grad():
            seconds["torch"], out_torch = timed(lambda: twin(tx), repeats)
        diff_torch = max_abs_diff(out_llvm, out_torch.numpy())
    if tc is not None:
        seconds["torch_compile"] = tc.get(f"n{n}_s")
    flops = 2 * n * 96 * CONV_OUT_HW * CONV_OUT_HW * 3 * 11 * 11
    keys = row_keys(row, seconds, "ms", 1e3, "gflops", flops / 1e9)
    keys[f"{row}_torch_compile_first_call_s"] = rounded(
        tc.get(f"n{n}_first_call_s") if tc else None
    )
    keys[f"{row}_llvm_compile_s"] = rounded(compile_s)
    keys[f"{row}_llvm_max_abs_diff"] = max_abs_diff(out_llvm, out_eager)
    keys[f"{row}_llvm_max_abs_diff_vs_torch"] = diff_torch
    return keys


def bench_tv_forward(repeats: int, use_torch: bool, tc: dict[str, Any] | None) -> dict:
    row = f"alexnet_tv_fwd_n{FULL_BATCH}"
    log(f"{row}: building the model")
    model, x = tv_inputs()
    seconds, out_llvm, out_eager, compile_s = time_inference(row, model, x, repeats)
    if use_torch:
        assert torch is not None
        log(f"{row}: torch")
        twin = TRAIN.torch_twin("torchvision", FULL_CLASSES, model).eval()
        tx = torch.from_numpy(x)
        with torch.no_grad():
            seconds["torch"], _ = timed(lambda: twin(tx), repeats)
    if tc is not None:
        seconds["torch_compile"] = tc.get("tv_s")
    keys = row_keys(row, seconds, "ms", 1e3, "images_per_s", FULL_BATCH)
    keys[f"{row}_torch_compile_first_call_s"] = rounded(tc.get("tv_first_call_s") if tc else None)
    keys[f"{row}_llvm_compile_s"] = rounded(compile_s)
    keys[f"{row}_llvm_max_abs_diff"] = max_abs_diff(out_llvm, out_eager)
    return keys


def paper_batch() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(SEED)
    x = rng.standard_normal((FULL_BATCH, 3, 227, 227), dtype=np.float32)
    y = rng.integers(0, FULL_CLASSES, FULL_BATCH).astype(np.int64)
    return x, y


def paper_model() -> tuple[AlexNet, optim.SGD]:
    """A fresh paper AlexNet (same initial weights every time) in train mode, and its SGD."""
    manual_seed(SEED)
    model = AlexNet(FULL_CLASSES, "paper")
    model.train()
    sgd = optim.SGD(model.parameters(), lr=LR, momentum=MOMENTUM, weight_decay=WEIGHT_DECAY)
    return model, sgd


def cross_entropy(out: Tensor, target: Tensor) -> Tensor:
    return out.cross_entropy(target)


WARM_CHILD = """
import json, sys, time
sys.path.insert(0, {root!r})
import numpy as np
import compiler
from compiler.backends import llvm
from models import AlexNet
from tinygrad_edu import manual_seed, optim
manual_seed({seed})
model = AlexNet({classes}, "paper")
model.train()
sgd = optim.SGD(model.parameters(), lr={lr}, momentum={momentum}, weight_decay={wd})
x = np.zeros(({batch}, 3, 227, 227), dtype=np.float32)
y = np.zeros({batch}, dtype=np.int64)
start = time.perf_counter()
step = compiler.compile_train_step(
    model, lambda o, t: o.cross_entropy(t), sgd, x, y, backend="llvm"
)
elapsed = time.perf_counter() - start
target = llvm._Target.get()
print(json.dumps(dict(compile_s=elapsed, jit_s=step.compiled.pass_seconds.get("jit"),
                      hits=target.hits, misses=target.misses, cache_dir=target.cache_dir)))
"""


def bench_compile_times(cache_dir: str) -> tuple[dict[str, Any], compiler.TrainStep]:
    """Cold compile here (empty cache, fresh target), warm compile in a second process."""
    pre = "alexnet_paper_train"
    x, y = paper_batch()
    model, sgd = paper_model()
    os.environ["TINYGRAD_EDU_CACHE"] = cache_dir
    llvm_backend._Target.reset()
    log(f"{pre}: cold llvm compile (empty cache {cache_dir})")
    start = time.perf_counter()
    step = compiler.compile_train_step(model, cross_entropy, sgd, x, y, backend="llvm")
    cold_s = time.perf_counter() - start
    target = llvm_backend._Target.get()
    keys: dict[str, Any] = {
        f"{pre}_cold_compile_s": rounded(cold_s),
        f"{pre}_cold_jit_s": rounded(step.compiled.pass_seconds.get("jit")),
        f"{pre}_cold_passes_s": rounded(
            sum(v for k, v in step.compiled.pass_seconds.items() if k != "jit")
        ),
        f"{pre}_cold_kernels_compiled": target.misses,
        f"{pre}_kernels": len(step.compiled.kernels),
        f"{pre}_llvm_kernels": len(step.compiled.executor().compiled),
    }
    log(f"{pre}: warm llvm compile in a second process (same cache)")
    code = WARM_CHILD.format(
        root=str(ROOT),
        seed=SEED,
        classes=FULL_CLASSES,
        lr=LR,
        momentum=MOMENTUM,
        wd=WEIGHT_DECAY,
        batch=FULL_BATCH,
    )
    env = dict(os.environ, TINYGRAD_EDU_CACHE=cache_dir)
    warm: dict[str, Any] = {}
    start = time.perf_counter()
    try:
        proc = subprocess.run(
            [sys.executable, "-c", code],
            capture_output=True,
            text=True,
            env=env,
            timeout=WARM_TIMEOUT_S,
            check=False,
        )
        if proc.returncode == 0 and proc.stdout.strip():
            warm = json.loads(proc.stdout.strip().splitlines()[-1])
        else:
            log(f"  warm compile child failed (exit {proc.returncode}):\n{proc.stderr}")
    except subprocess.TimeoutExpired:
        log(f"  warm compile child timed out after {WARM_TIMEOUT_S} s")
    process_s = time.perf_counter() - start
    warm_s = warm.get("compile_s")
    keys.update(
        {
            f"{pre}_warm_compile_s": rounded(warm_s),
            f"{pre}_warm_jit_s": rounded(warm.get("jit_s")),
            f"{pre}_warm_process_s": rounded(process_s) if warm else None,
            f"{pre}_warm_cache_hits": warm.get("hits"),
            f"{pre}_warm_cache_misses": warm.get("misses"),
            f"{pre}_cold_compile_target_s": COLD_TARGET_S,
            f"{pre}_warm_compile_target_s": WARM_TARGET_S,
            f"{pre}_cold_compile_under_5s": cold_s <= COLD_TARGET_S,
            f"{pre}_warm_compile_under_0_5s": None if warm_s is None else warm_s <= WARM_TARGET_S,
        }
    )
    return keys, step


def train_seconds(impl: str, repeats: int, x: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    """(median step seconds, warm-up loss) of the numpy backend, eager or torch on a fresh
    paper AlexNet; the model is dropped on return."""
    if impl == "torch":
        assert torch is not None
        twin = TRAIN.torch_twin("paper", FULL_CLASSES, paper_model()[0])
        tsgd = torch.optim.SGD(
            twin.parameters(), lr=LR, momentum=MOMENTUM, weight_decay=WEIGHT_DECAY
        )
        return timed(lambda: TRAIN.torch_step(twin, tsgd, x, y), repeats)
    model, sgd = paper_model()
    if impl == "numpy":
        step = compiler.compile_train_step(model, cross_entropy, sgd, x, y, backend="numpy")
        return timed(lambda: step(x, y), repeats)
    return timed(lambda: TRAIN.ours_step(model, sgd, x, y), repeats)


def bench_train(repeats: int, use_torch: bool, llvm_step: compiler.TrainStep) -> dict[str, Any]:
    """Training step of the paper AlexNet, N=16, per implementation (each its own copy)."""
    row = f"alexnet_paper_train_n{FULL_BATCH}"
    x, y = paper_batch()
    seconds: dict[str, float | None] = dict.fromkeys(IMPLS)
    first: dict[str, float | None] = dict.fromkeys(IMPLS)
    log(f"{row}: llvm (1 warm-up + {repeats} steps)")
    seconds["llvm"], first["llvm"] = timed(lambda: llvm_step(x, y), repeats)
    for impl in ("numpy", "eager", "torch"):
        if impl == "torch" and not use_torch:
            continue
        log(f"{row}: {impl}")
        seconds[impl], first[impl] = train_seconds(impl, repeats, x, y)
        release()
    keys = row_keys(row, seconds, "step_ms", 1e3, "images_per_s", FULL_BATCH)
    for impl in IMPLS:
        keys[f"{row}_{impl}_first_loss"] = rounded(first[impl], 4)
    return keys


def resnet_inputs(size: int) -> tuple[nn.Module, np.ndarray, np.ndarray]:
    """A fresh `resnet18()` (same initial weights every time, train mode), a fixed
    (FULL_BATCH, 3, size, size) batch and random labels."""
    manual_seed(SEED)
    model = resnet18(num_classes=FULL_CLASSES)
    rng = np.random.default_rng(SEED)
    x = rng.standard_normal((FULL_BATCH, 3, size, size), dtype=np.float32)
    y = rng.integers(0, FULL_CLASSES, FULL_BATCH).astype(np.int64)
    return model, x, y


def torch_resnet18(ours: nn.Module) -> Any:
    """torchvision's resnet18 with our model's weights and buffers (None without
    torchvision), in our model's mode."""
    torchvision = load_torchvision()
    if torch is None or torchvision is None:
        return None
    torch.manual_seed(SEED)
    twin = torchvision.models.resnet18(num_classes=FULL_CLASSES)
    twin.load_state_dict({k: torch.from_numpy(v.copy()) for k, v in ours.state_dict().items()})
    return twin.train(ours.training)


def resnet_sgd(model: nn.Module) -> optim.SGD:
    return optim.SGD(model.parameters(), lr=LR, momentum=MOMENTUM, weight_decay=RESNET_WEIGHT_DECAY)


def bench_resnet_forward(repeats: int, use_torch: bool, size: int) -> dict[str, Any]:
    """ResNet-18 inference, N=16: llvm, numpy backend, eager and torchvision's eager."""
    row = f"resnet18_fwd_n{FULL_BATCH}"
    model, x, _ = resnet_inputs(size)
    model.eval()
    seconds, out_llvm, out_eager, compile_s = time_inference(row, model, x, repeats)
    diff_torch = None
    twin = torch_resnet18(model) if use_torch else None
    if twin is not None:
        log(f"{row}: torch")
        tx = torch.from_numpy(x)
        with torch.no_grad():
            seconds["torch"], out_torch = timed(lambda: twin(tx), repeats)
        diff_torch = max_abs_diff(out_llvm, out_torch.numpy())
    keys = row_keys(row, seconds, "ms", 1e3, "images_per_s", FULL_BATCH)
    keys[f"{row}_llvm_compile_s"] = rounded(compile_s)
    keys[f"{row}_llvm_max_abs_diff"] = max_abs_diff(out_llvm, out_eager)
    keys[f"{row}_llvm_max_abs_diff_vs_torch"] = diff_torch
    return keys


def resnet_llvm_step(
    row: str, repeats: int, size: int, x: np.ndarray, y: np.ndarray
) -> tuple[float, float, float]:
    """(compile seconds, median step seconds, warm-up loss) of the compiled llvm step; the
    model and step are dropped on return."""
    model = resnet_inputs(size)[0]
    sgd = resnet_sgd(model)
    log(f"{row}: llvm compile")
    start = time.perf_counter()
    step = compiler.compile_train_step(model, cross_entropy, sgd, x, y, backend="llvm")
    compile_s = time.perf_counter() - start
    log(f"{row}: llvm (1 warm-up + {repeats} steps)")
    seconds, first = timed(lambda: step(x, y), repeats)
    return compile_s, seconds, first


def bench_resnet_train(repeats: int, use_torch: bool, size: int) -> dict[str, Any]:
    """ResNet-18 training step, N=16: llvm, eager and torchvision's eager, each on its own
    copy of the same initial weights."""
    row = f"resnet18_train_n{FULL_BATCH}"
    seconds: dict[str, float | None] = dict.fromkeys(IMPLS)
    first: dict[str, float | None] = dict.fromkeys(IMPLS)
    _, x, y = resnet_inputs(size)
    compile_s, seconds["llvm"], first["llvm"] = resnet_llvm_step(row, repeats, size, x, y)
    release()
    log(f"{row}: eager")
    model = resnet_inputs(size)[0]
    sgd = resnet_sgd(model)
    seconds["eager"], first["eager"] = timed(lambda: TRAIN.ours_step(model, sgd, x, y), repeats)
    twin = torch_resnet18(resnet_inputs(size)[0]) if use_torch else None
    if twin is not None:
        log(f"{row}: torch")
        tsgd = torch.optim.SGD(
            twin.parameters(), lr=LR, momentum=MOMENTUM, weight_decay=RESNET_WEIGHT_DECAY
        )
        seconds["torch"], first["torch"] = timed(
            lambda: TRAIN.torch_step(twin, tsgd, x, y), repeats
        )
    keys = row_keys(row, seconds, "step_ms", 1e3, "images_per_s", FULL_BATCH)
    keys[f"{row}_llvm_compile_s"] = rounded(compile_s)
    for impl in IMPLS:
        keys[f"{row}_{impl}_first_loss"] = rounded(first[impl], 4)
    return keys


def bench_mlp(repeats: int, use_torch: bool) -> dict[str, Any]:
    """Seconds per MLP training epoch, compiled (llvm, numpy), eager and torch."""
    row = "mlp_epoch"
    features, labels = EAGER.mlp_data()[:2]
    starts = range(0, MLP_SAMPLES, MLP_BATCH)
    epochs = [
        [(features[order[i : i + MLP_BATCH]], labels[order[i : i + MLP_BATCH]]) for i in starts]
        for order in EAGER.epoch_orders(repeats + 1)
    ]

    def fresh() -> tuple[MLP, optim.SGD]:
        manual_seed(SEED)
        model = MLP(list(MLP_SIZES))
        model.train()
        sgd = optim.SGD(
            model.parameters(), lr=MLP_LR, momentum=MLP_MOMENTUM, weight_decay=MLP_WEIGHT_DECAY
        )
        return model, sgd

    def run_epochs(step: Callable[[np.ndarray, np.ndarray], float]) -> tuple[float, float]:
        it = iter(epochs)
        last = [float("nan")]

        def epoch() -> None:
            total = 0.0
            for xb, yb in next(it):
                total += step(xb, yb) * len(yb)
            last[0] = total / MLP_SAMPLES

        seconds, _ = timed(epoch, repeats)
        return seconds, last[0]

    seconds: dict[str, float | None] = dict.fromkeys(IMPLS)
    losses: dict[str, float | None] = dict.fromkeys(IMPLS)
    compile_s = None
    for backend in ("llvm", "numpy"):
        model, sgd = fresh()
        shapes = sorted({len(yb) for xb, yb in epochs[0]})
        start = time.perf_counter()
        compiled = {
            n: compiler.compile_train_step(
                model, cross_entropy, sgd, features[:n], labels[:n], backend=backend
            )
            for n in shapes
        }
        if backend == "llvm":
            compile_s = time.perf_counter() - start
        log(f"{row}: {backend} backend ({len(shapes)} compiled steps: batch {shapes})")
        seconds[backend], losses[backend] = run_epochs(
            lambda xb, yb, steps=compiled: steps[len(yb)](xb, yb)
        )
    log(f"{row}: eager")
    model, sgd = fresh()
    seconds["eager"], losses["eager"] = run_epochs(
        lambda xb, yb: TRAIN.ours_step(model, sgd, xb, yb)
    )
    one_thread_s = None
    if use_torch:
        assert torch is not None
        threads = torch.get_num_threads()
        for impl, count in (("torch", threads), ("torch_1thread", 1)):
            log(f"{row}: {impl}")
            twin = TRAIN.torch_twin("mlp", MLP_SIZES[-1], fresh()[0])
            tsgd = torch.optim.SGD(
                twin.parameters(), lr=MLP_LR, momentum=MLP_MOMENTUM, weight_decay=MLP_WEIGHT_DECAY
            )
            torch.set_num_threads(count)
            try:
                seconds[impl], losses[impl] = run_epochs(
                    lambda xb, yb, m=twin, o=tsgd: TRAIN.torch_step(m, o, xb, yb)
                )
            finally:
                torch.set_num_threads(threads)
        one_thread_s = seconds.pop("torch_1thread")
    keys = row_keys(row, seconds, "s", 1.0, "epochs_per_s", 1.0, digits=4)
    for impl in IMPLS:
        keys[f"{row}_{impl}_final_loss"] = rounded(losses[impl], 5)
    ours = seconds["llvm"]
    keys[f"{row}_torch_1thread_s"] = rounded(one_thread_s, 4)
    keys[f"{row}_speedup_vs_torch_1thread"] = rounded(
        one_thread_s / ours if one_thread_s and ours else None
    )
    keys[f"{row}_steps"] = len(starts)
    keys[f"{row}_llvm_compile_s"] = rounded(compile_s)
    return keys


def bench_gemm(repeats: int, use_torch: bool, peak: float) -> dict[str, Any]:
    row = f"gemm_{GEMM_SIZE}"
    rng = np.random.default_rng(SEED)
    a = rng.standard_normal((GEMM_SIZE, GEMM_SIZE), dtype=np.float32)
    b = rng.standard_normal((GEMM_SIZE, GEMM_SIZE), dtype=np.float32)
    flops = 2 * GEMM_SIZE**3
    seconds: dict[str, float | None] = dict.fromkeys(IMPLS)
    log(f"{row}: numpy a @ b")
    blas_s, reference = timed(lambda: a @ b, max(repeats, 3), warmup=2)
    log(f"{row}: llvm compile")
    start = time.perf_counter()
    mm_llvm = compiler.compile(lambda p, q: p @ q, a, b, backend="llvm")
    compile_s = time.perf_counter() - start
    mm_numpy = compiler.compile(lambda p, q: p @ q, a, b, backend="numpy")
    log(f"{row}: llvm")
    seconds["llvm"], out_llvm = timed(lambda: mm_llvm(a, b), repeats)
    log(f"{row}: numpy backend, eager")
    seconds["numpy"], _ = timed(lambda: mm_numpy(a, b), repeats)

    def eager() -> np.ndarray:
        with no_grad():
            return (Tensor(a) @ Tensor(b)).numpy()

    seconds["eager"], _ = timed(eager, repeats)
    if use_torch:
        assert torch is not None
        log(f"{row}: torch")
        ta, tb = torch.from_numpy(a), torch.from_numpy(b)
        seconds["torch"], _ = timed(lambda: ta @ tb, max(repeats, 3), warmup=2)
    keys = row_keys(row, seconds, "ms", 1e3, "gflops", flops / 1e9)
    blas = flops / blas_s / 1e9
    llvm_gflops = flops / seconds["llvm"] / 1e9
    keys[f"{row}_numpy_matmul_gflops"] = rounded(blas, 2)
    keys[f"{row}_llvm_pct_of_numpy_matmul"] = rounded(100 * llvm_gflops / blas, 2)
    keys[f"{row}_llvm_pct_of_peak"] = rounded(100 * llvm_gflops / peak, 2)
    keys[f"{row}_llvm_compile_s"] = rounded(compile_s)
    keys[f"{row}_llvm_max_abs_diff"] = max_abs_diff(out_llvm, reference)
    return keys


# -- driver ---------------------------------------------------------------------------------

ROW_TARGETS: tuple[tuple[str, str, float], ...] = (
    ("conv1_n16", "conv1_n16_speedup_vs_torch", 1.5),
    ("conv1_n1", "conv1_n1_speedup_vs_torch", 1.2),
    ("alexnet_tv_fwd_n16", "alexnet_tv_fwd_n16_speedup_vs_torch", 1.3),
    ("alexnet_paper_train_n16", "alexnet_paper_train_n16_speedup_vs_torch", 1.3),
    ("resnet18_fwd_n16", "resnet18_fwd_n16_speedup_vs_torch", 1.2),
    ("resnet18_train_n16", "resnet18_train_n16_speedup_vs_torch", 1.2),
    ("mlp_epoch", "mlp_epoch_speedup_vs_torch", 1.5),
    ("gemm_1024", "gemm_1024_llvm_pct_of_peak", 85.0),
)
COMPILE_TARGETS: tuple[str, ...] = (
    "alexnet_paper_train_cold_compile_under_5s",
    "alexnet_paper_train_warm_compile_under_0_5s",
)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--quick", action="store_true", help="conv1 N=16, MLP epoch and GEMM, 2 repeats"
    )
    add_timing_options(parser, "per row")
    parser.add_argument(
        "--skip-train", action="store_true", help="skip the paper AlexNet training-step row"
    )
    parser.add_argument(
        "--skip-resnet", action="store_true", help="skip the ResNet-18 forward and training rows"
    )
    parser.add_argument(
        "--resnet-size",
        type=int,
        default=RESNET_SIZE,
        help="image side of the ResNet-18 rows (224; smaller only for a smoke run)",
    )
    parser.add_argument(
        "--no-torch-compile", action="store_true", help="skip torch.compile (always in --quick)"
    )
    parser.add_argument(
        "--torch-compile-timeout",
        type=float,
        default=75.0,
        help="seconds before a torch.compile child process is killed (75)",
    )
    parser.add_argument(
        "--peak-gflops",
        type=float,
        default=None,
        help="machine float32 peak for the GEMM target (default: measured with an FMA loop)",
    )
    parser.add_argument("--torch-compile-child", choices=("conv1", "tv"), help=argparse.SUPPRESS)
    parser.add_argument("--child-sizes", default="16,1", help=argparse.SUPPRESS)
    return parse_timing_args(parser, argv)


def add_targets(result: dict[str, Any]) -> None:
    met = measured = 0
    for row, key, target in ROW_TARGETS:
        value = result.get(key)
        ok = None if value is None else value >= target
        result[f"{row}_target"] = target
        result[f"{row}_meets_target"] = ok
        measured += ok is not None
        met += ok is True
    for key in COMPILE_TARGETS:
        ok = result.get(key)
        measured += ok is not None
        met += ok is True
    result["targets_met"] = met
    result["targets_measured"] = measured


def run(args: argparse.Namespace) -> dict[str, Any]:
    use_torch = torch is not None and not args.no_torch
    use_tc = use_torch and not (args.quick or args.no_torch_compile)
    r = args.repeats
    conv_repeats = r or (2 if args.quick else 5)
    tv_repeats = r or 3
    train_repeats = r or 2
    mlp_repeats = r or (2 if args.quick else 3)
    gemm_repeats = r or (2 if args.quick else 3)
    sizes = [16] if args.quick else [16, 1]
    result: dict[str, Any] = {
        "benchmark": "tinygrad_edu llvm backend CPU",
        "mode": "quick" if args.quick else "full",
        "implementations": list(IMPLS),
        "repeats": {
            "conv1": conv_repeats,
            "alexnet_tv_fwd": None if args.quick else tv_repeats,
            "alexnet_paper_train": None if (args.quick or args.skip_train) else train_repeats,
            "resnet18_fwd": None if (args.quick or args.skip_resnet) else tv_repeats,
            "resnet18_train": None if (args.quick or args.skip_resnet) else train_repeats,
            "mlp_epoch": mlp_repeats,
            "gemm": gemm_repeats,
        },
        "numpy_version": np.__version__,
        "torch_version": torch.__version__ if torch is not None else None,
        "torch_used": use_torch,
        "torch_compile_used": use_tc,
        "torch_num_threads": torch.get_num_threads() if use_torch else None,
        "cpu_count": os.cpu_count(),
        "load_avg_1min_at_start": round(os.getloadavg()[0], 2),
        "python_version": platform.python_version(),
        "platform": platform.platform(),
        "cpu_name": cpu_name(),
        "target": host_target().as_dict(),
        "torch_isa_limits": {k: os.environ[k] for k in TORCH_ISA_LIMITS if k in os.environ} or None,
        "resnet18_image_size": args.resnet_size,
    }
    if args.peak_gflops is None:
        log("machine peak: a JIT-compiled FMA loop on every usable core")
        release()
        args.peak_gflops = round(llvm_backend.measure_peak_gflops(), 1)
        result["machine_peak_source"] = "measured (FMA loop, all usable cores)"
    else:
        result["machine_peak_source"] = "--peak-gflops"
    result["machine_peak_gflops"] = args.peak_gflops
    log("numpy 1024^3 float32 matmul")
    result["numpy_matmul_gflops"] = round(numpy_matmul_gflops(), 2)
    status: dict[str, str] = {}
    saved_cache = os.environ.get("TINYGRAD_EDU_CACHE")
    cache_root = tempfile.mkdtemp(prefix="tinygrad_edu_bench_llvm_")
    try:
        if not args.quick:  # first llvm work of the run: the cold compile is really cold
            keys, step = bench_compile_times(os.path.join(cache_root, "cold"))
            result.update(keys)
            result["llvm_cpu"] = llvm_backend._Target.get().cpu
            if not args.skip_train:
                result.update(bench_train(train_repeats, use_torch, step))
            del step
            release()
        else:
            os.environ["TINYGRAD_EDU_CACHE"] = os.path.join(cache_root, "cold")
            llvm_backend._Target.reset()
            result["llvm_cpu"] = llvm_backend._Target.get().cpu
            result.update(dict.fromkeys(COMPILE_KEYS))
        if f"alexnet_paper_train_n{FULL_BATCH}_llvm_step_ms" not in result:
            result.update(null_row(f"alexnet_paper_train_n{FULL_BATCH}"))
        tc = (
            run_torch_compile("conv1", conv_repeats, sizes, args.torch_compile_timeout, status)
            if use_tc
            else None
        )
        for n in (16, 1):
            if n in sizes:
                result.update(bench_conv(n, conv_repeats, use_torch, tc))
            else:
                result.update(null_row(f"conv1_n{n}"))
            release()
        if not args.quick:
            tc = (
                run_torch_compile("tv", tv_repeats, [], args.torch_compile_timeout, status)
                if use_tc
                else None
            )
            result.update(bench_tv_forward(tv_repeats, use_torch, tc))
            release()
        else:
            result.update(null_row(f"alexnet_tv_fwd_n{FULL_BATCH}"))
        if not (args.quick or args.skip_resnet):
            result.update(bench_resnet_forward(tv_repeats, use_torch, args.resnet_size))
            release()
            result.update(bench_resnet_train(train_repeats, use_torch, args.resnet_size))
            release()
        else:
            result.update(null_row(f"resnet18_fwd_n{FULL_BATCH}"))
            result.update(null_row(f"resnet18_train_n{FULL_BATCH}"))
        result.update(bench_mlp(mlp_repeats, use_torch))
        release()
        result.update(bench_gemm(gemm_repeats, use_torch, args.peak_gflops))
    finally:
        shutil.rmtree(cache_root, ignore_errors=True)
        if saved_cache is None:
            os.environ.pop("TINYGRAD_EDU_CACHE", None)
        else:
            os.environ["TINYGRAD_EDU_CACHE"] = saved_cache
    result["torch_compile_status"] = status or None
    log("numpy 1024^3 float32 matmul (again)")
    result["numpy_matmul_gflops_at_end"] = round(numpy_matmul_gflops(), 2)
    result["load_avg_1min_at_end"] = round(os.getloadavg()[0], 2)
    add_targets(result)
    return result


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    if args.torch_compile_child:
        sizes = [int(s) for s in args.child_sizes.split(",") if s]
        torch_compile_child(args.torch_compile_child, args.repeats or 3, sizes)
        return
    start = time.perf_counter()
    result = run(args)
    result["total_wall_s"] = round(time.perf_counter() - start, 2)
    log(f"done in {result['total_wall_s']} s")
    print(json.dumps(result))


if __name__ == "__main__":
    main()
