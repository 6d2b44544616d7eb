"""GPU benchmark: the compiled `cuda` backend vs PyTorch eager (cuDNN) on the same GPU.

Prints one JSON line: images/s for the AlexNet conv1 block (conv 96@11x11/4 + bias + ReLU +
max-pool 3/2) forward at N=128 and for the paper AlexNet training step at N=128, each on our
compiled CUDA kernels and on PyTorch eager, with ratios (ours / PyTorch throughput; the target
is >= 0.5 for the conv1 block). For each workload it also gives every kernel's achieved FLOP/s
and bytes/s against the device's limits (default: the H200's ~67 TFLOP/s fp32 without tensor
cores and 4.8 TB/s) and, for the slowest five, what bounds them (compiler/roofline.py), plus
how much of the call is not kernel time (binding parameters, host-device copies).
Medians over --repeats calls after a warm-up; each call ends with a device synchronisation.
Without CuPy or a device the JSON line says so (`"error"`) and the exit status is 2; a
SIGTERM (e.g. from `timeout`) prints what was measured so far.
"""

from __future__ import annotations

import argparse
import json
import signal
import statistics
import sys
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # run from a checkout

from common import add_timing_options, log, parse_timing_args, ratio  # noqa: E402

import compiler  # noqa: E402
from compiler.roofline import H200, Machine, standing  # noqa: E402
from models import AlexNet  # noqa: E402
from tinygrad_edu import manual_seed, nn, optim  # noqa: E402


class Conv1Block(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 96, 11, stride=4)

    def forward(self, x: Any) -> Any:
        return self.conv(x).relu().max_pool2d(3, 2)


class TerminatedError(Exception):
    """SIGTERM arrived (the caller's timeout): report what was measured so far."""


def _on_sigterm(signum: int, frame: Any) -> None:
    raise TerminatedError


def median_seconds(
    fn: Callable[[], Any], sync: Callable[[], None], repeats: int, budget_s: float = 60.0
) -> float:
    """Median of `repeats` synchronised calls after a warm-up; fewer (at least one) when
    the warm-up says they would take longer than `budget_s`."""
    t0 = time.perf_counter()
    fn()
    sync()
    warm = time.perf_counter() - t0
    times = []
    for _ in range(max(1, min(repeats, int(budget_s / max(warm, 1e-9))))):
        t0 = time.perf_counter()
        fn()
        sync()
        times.append(time.perf_counter() - t0)
    return round(statistics.median(times), 6)


def device_missing() -> str | None:
    """Why this machine cannot run the benchmark, or None."""
    try:
        import cupy
    except ImportError:
        return "no CuPy: install cupy-cuda13x (pip install -e '.[cuda]')"
    try:
        count = cupy.cuda.runtime.getDeviceCount()
    except Exception as e:  # noqa: BLE001 (any driver/runtime failure means: no device)
        return f"CuPy is installed but no CUDA device is usable ({type(e).__name__}: {e})"
    return None if count else "CuPy is installed but no CUDA device is visible"


def device_machine(props: dict[str, Any], args: Any) -> Machine:
    """The limits to compare with: the H200's (or --peak-*), with the device's own SM count."""
    resident = props.get("multiProcessorCount", 0) * props.get("maxThreadsPerMultiProcessor", 0)
    return Machine(
        f"{props['name'].decode()} (peaks: {args.peak_tflops:g} TFLOP/s, {args.peak_tbs:g} TB/s)",
        args.peak_tflops * 1e12,
        args.peak_tbs * 1e12,
        resident or H200.resident_threads,
    )


def kernel_figures(compiled: Any, wall_s: float, machine: Machine, top: int) -> dict:
    """Per-kernel standing of one compiled function after its warm-up and timed calls."""
    rendered = compiled.executor().rendered
    rows = []
    for k in compiled.kernels:
        timed = k.seconds[1:] or k.seconds  # without the warm-up call
        seconds = statistics.median(timed) if timed else 0.0
        ck = rendered.get(k.name)
        threads = int(np.prod(ck.launch.grid) * np.prod(ck.launch.block)) if ck else None
        rows.append((seconds, standing(k, seconds, machine, threads, generated=ck is not None)))
    rows.sort(key=lambda r: -r[0])
    total = sum(s for s, _ in rows)
    flops = sum(k.flops for k in compiled.kernels)
    moved = sum(k.bytes_read + k.bytes_written for k in compiled.kernels)
    return {
        "kernels": len(rows),
        "generated": sum(1 for k in compiled.kernels if k.name in rendered),
        "kernel_sum_ms": round(total * 1e3, 3),
        "not_kernel_ms": round(max(0.0, wall_s - total) * 1e3, 3),
        "achieved_tflop_per_s": round(flops / total / 1e12, 3) if total else None,
        "achieved_tbyte_per_s": round(moved / total / 1e12, 3) if total else None,
        "flops_pct_of_peak": round(100 * flops / total / machine.flops_per_s, 2) if total else None,
        "slowest": [s.as_dict() for _, s in rows[:top]],
    }


def measure(args: Any, result: dict[str, Any]) -> None:
    import cupy

    sync = cupy.cuda.Stream.null.synchronize
    props = cupy.cuda.runtime.getDeviceProperties(0)
    machine = device_machine(props, args)
    result["device"] = props["name"].decode()
    result["compute_capability"] = f"{props['major']}.{props['minor']}"
    result["limits"] = {
        "fp32_tflop_per_s": args.peak_tflops,
        "tbyte_per_s": args.peak_tbs,
        "resident_threads": machine.resident_threads,
    }
    n, repeats = args.batch, args.repeats
    rng = np.random.default_rng(0)
    x = rng.standard_normal((n, 3, 227, 227)).astype(np.float32)
    y = rng.integers(0, 1000, n)
    xd, yd = cupy.asarray(x), cupy.asarray(y)

    result["section"] = "PyTorch"  # first: the baseline survives a timeout in ours
    torch_times(x, y, repeats, result, args.no_torch)

    result["section"] = "conv1 compile"
    manual_seed(0)
    t0 = time.perf_counter()
    fwd = compiler.compile(Conv1Block(), x, backend="cuda")
    fwd.executor()  # NVRTC compilation happens here
    result["conv1_compile_s"] = round(time.perf_counter() - t0, 2)
    result["section"] = "conv1 run"
    result["conv1_ours_s"] = median_seconds(lambda: fwd(xd), sync, repeats)
    result["conv1_kernels"] = kernel_figures(fwd, result["conv1_ours_s"], machine, args.top)
    log(f"conv1 block ours: {result['conv1_ours_s'] * 1e3:.2f} ms")

    result["section"] = "AlexNet compile"
    manual_seed(0)
    model = AlexNet(1000, "paper")
    opt = optim.SGD(model.parameters(), lr=0.01, momentum=0.9, weight_decay=5e-4)
    t0 = time.perf_counter()
    step = compiler.compile_train_step(
        model, lambda o, t: o.cross_entropy(t), opt, x, y, backend="cuda"
    )
    step.compiled.executor()
    result["alexnet_train_compile_s"] = round(time.perf_counter() - t0, 2)
    result["section"] = "AlexNet run"
    result["alexnet_train_ours_s"] = median_seconds(lambda: step(xd, yd), sync, repeats)
    result["alexnet_train_kernels"] = kernel_figures(
        step.compiled, result["alexnet_train_ours_s"], machine, args.top
    )
    log(f"AlexNet step ours: {result['alexnet_train_ours_s'] * 1e3:.1f} ms")

    for key in ("conv1", "alexnet_train"):
        ours, theirs = result.get(f"{key}_ours_s"), result.get(f"{key}_torch_s")
        result[f"{key}_images_per_s_ours"] = round(n / ours, 1) if ours else None
        result[f"{key}_images_per_s_torch"] = round(n / theirs, 1) if theirs else None
        result[f"{key}_throughput_ratio_vs_torch"] = ratio(theirs, ours)
    conv1_ratio = result["conv1_throughput_ratio_vs_torch"]
    result["conv1_target_met"] = None if conv1_ratio is None else conv1_ratio >= 0.5
    del result["section"]


def torch_times(x: Any, y: Any, repeats: int, result: dict[str, Any], skip: bool) -> None:
    try:
        import torch
    except ImportError:
        torch = None
    if skip or torch is None or not torch.cuda.is_available():
        result["torch"] = "skipped" if skip else "no PyTorch with CUDA"
        return
    result["torch"] = torch.__version__
    tsync = torch.cuda.synchronize
    conv = torch.nn.Conv2d(3, 96, 11, stride=4).cuda()
    tx = torch.tensor(x, device="cuda")
    with torch.no_grad():
        result["conv1_torch_s"] = median_seconds(
            lambda: torch.nn.functional.max_pool2d(conv(tx).relu(), 3, 2), tsync, repeats
        )
    tnet = torch.nn.Sequential(
        torch.nn.Conv2d(3, 96, 11, 4),
        torch.nn.ReLU(),
        torch.nn.LocalResponseNorm(5, 5e-4, 0.75, 2.0),
        torch.nn.MaxPool2d(3, 2),
        torch.nn.Conv2d(96, 256, 5, padding=2, groups=2),
        torch.nn.ReLU(),
        torch.nn.LocalResponseNorm(5, 5e-4, 0.75, 2.0),
        torch.nn.MaxPool2d(3, 2),
        torch.nn.Conv2d(256, 384, 3, padding=1),
        torch.nn.ReLU(),
        torch.nn.Conv2d(384, 384, 3, padding=1, groups=2),
        torch.nn.ReLU(),
        torch.nn.Conv2d(384, 256, 3, padding=1, groups=2),
        torch.nn.ReLU(),
        torch.nn.MaxPool2d(3, 2),
        torch.nn.Flatten(),
        torch.nn.Dropout(0.5),
        torch.nn.Linear(9216, 4096),
        torch.nn.ReLU(),
        torch.nn.Dropout(0.5),
        torch.nn.Linear(4096, 4096),
        torch.nn.ReLU(),
        torch.nn.Linear(4096, 1000),
    ).cuda()
    topt = torch.optim.SGD(tnet.parameters(), lr=0.01, momentum=0.9, weight_decay=5e-4)
    ty = torch.tensor(y, device="cuda")

    def torch_step() -> None:
        loss = torch.nn.functional.cross_entropy(tnet(tx), ty)
        topt.zero_grad()
        loss.backward()
        topt.step()

    result["alexnet_train_torch_s"] = median_seconds(torch_step, tsync, repeats)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--batch", type=int, default=128)
    p.add_argument("--top", type=int, default=5, help="slowest kernels to explain per workload")
    p.add_argument("--peak-tflops", type=float, default=H200.flops_per_s / 1e12)
    p.add_argument("--peak-tbs", type=float, default=H200.bytes_per_s / 1e12)
    add_timing_options(p, "3")
    args = parse_timing_args(p, argv)
    args.repeats = args.repeats or 3
    result: dict[str, Any] = {"benchmark": "tinygrad_edu cuda", "batch": args.batch}
    missing = device_missing()
    if missing is not None:
        result.update(device=None, error=missing)
        print(json.dumps(result))
        return 2
    signal.signal(signal.SIGTERM, _on_sigterm)
    start = time.perf_counter()
    status = 0
    try:
        measure(args, result)
    except TerminatedError:
        result["error"] = f"terminated (timeout?) during {result.pop('section', '?')}"
        status = 124
    except Exception as e:  # noqa: BLE001 (the JSON line must come out whatever failed)
        traceback.print_exc()
        result["error"] = f"{type(e).__name__} during {result.pop('section', '?')}: {e}"
        status = 1
    result["total_wall_s"] = round(time.perf_counter() - start, 2)
    print(json.dumps(result), flush=True)
    return status


if __name__ == "__main__":
    sys.exit(main())
