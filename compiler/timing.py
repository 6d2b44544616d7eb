"""Warm per-kernel timing: warm-up calls first, then the median of several calls per kernel,
sorted by time, with each kernel's share of the step and how close it comes to the machine's
peak (FLOP/s or bytes/s, whichever bounds it: `compiler.roofline`).

The first call of a compiled function pays for page faults on fresh buffers, lazily loaded
code and cold caches: AlexNet's slowest kernel took 1.7 s on its first call and 74 ms warm.
`profile` runs the warm-up, forgets those times and keeps the next `repeats` calls.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from .kernel import Kernel
from .roofline import Machine, standing
from .units import plural
from .units import seconds as format_seconds

if TYPE_CHECKING:
    from .runtime import CompiledFunction

HIGHLIGHT = 3  # the slowest kernels marked in tables and reports


def profile(
    compiled: CompiledFunction, call: Callable[[], Any], repeats: int = 3, warmup: int = 1
) -> None:
    """Time `compiled` warm: run `call` (which calls it) `warmup` times, forget those kernel
    times, then run it `repeats` times; medians then cover exactly those calls."""
    if repeats < 1 or warmup < 0:
        raise ValueError(
            f"profile: repeats must be >= 1 and warmup >= 0, got {repeats} and {warmup}. "
            "Fix: pass e.g. repeats=3, warmup=1"
        )
    for _ in range(warmup):
        call()
    for k in compiled.kernels:
        k.seconds.clear()
    for _ in range(repeats):
        call()
    compiled.warmup_calls = warmup


@dataclass(frozen=True)
class KernelTime:
    """One row of the timing table."""

    index: int  # position in execution order
    kernel: Kernel
    seconds: float  # median per call
    share: float  # of the whole call's time, 0..1
    gflop_per_s: float
    gbyte_per_s: float
    peak_pct: float | None  # the roofline floor over the measured time, in %
    bound: str  # "compute" | "memory" | "" (no machine figures)


def kernel_times(compiled: CompiledFunction, machine: Machine | None = None) -> list[KernelTime]:
    """Every kernel that ran, slowest first."""
    timed = [(i, k, float(np.median(k.seconds))) for i, k in enumerate(compiled.kernels)]
    timed = [(i, k, t) for i, k, t in timed if k.seconds]
    total = sum(t for _, _, t in timed) or 1.0
    rows = []
    for i, k, t in timed:
        moved = k.bytes_read + k.bytes_written
        s = standing(k, t, machine) if machine is not None and t > 0 else None
        rows.append(
            KernelTime(
                i,
                k,
                t,
                t / total,
                k.flops / t / 1e9 if t > 0 else 0.0,
                moved / t / 1e9 if t > 0 else 0.0,
                None if s is None else s.roofline_pct,
                "" if s is None else s.roofline,
            )
        )
    return sorted(rows, key=lambda r: -r.seconds)


def layer_times(rows: list[KernelTime]) -> list[tuple[str, float, float, int]]:
    """(layer, seconds, share, kernels) per layer over all its phases, slowest first."""
    by_layer: dict[str, list[KernelTime]] = {}
    for r in rows:
        by_layer.setdefault(r.kernel.layer or "(model)", []).append(r)
    total = sum(r.seconds for r in rows) or 1.0
    out = [
        (layer, sum(r.seconds for r in rs), sum(r.seconds for r in rs) / total, len(rs))
        for layer, rs in by_layer.items()
    ]
    return sorted(out, key=lambda t: -t[1])


def calls_described(compiled: CompiledFunction) -> str:
    """What the medians cover: "median of 5 calls after 1 warm-up call"."""
    calls = max((len(k.seconds) for k in compiled.kernels), default=0)
    warm = getattr(compiled, "warmup_calls", 0)
    if warm:
        return f"median of {plural(calls, 'call')} after {plural(warm, 'warm-up call')}"
    if calls:
        return f"median of {plural(calls, 'call')}, the first (cold) one included"
    return "not run"


def timing_table(compiled: CompiledFunction, machine: Machine | None = None) -> str:
    """The kernels slowest first: time, share of the call, rates and % of peak; the
    `HIGHLIGHT` slowest marked `*`."""
    rows = kernel_times(compiled, machine)
    total = sum(r.seconds for r in rows)
    unit, scale = ("ms", 1e3) if rows and rows[0].seconds >= 1e-3 else ("us", 1e6)
    wide = min(max((len(r.kernel.name) for r in rows), default=6), 60)
    head = (
        f"  {'kernel':{wide}s} {'layer':14s} {unit:>9s} {'share':>6s} {'GFLOP/s':>8s} {'GB/s':>7s}"
    )
    lines = [head + (f" {'% peak':>7s} bound" if machine is not None else "")]
    for n, r in enumerate(rows):
        mark = "*" if n < HIGHLIGHT and len(rows) > 1 else " "
        line = (
            f"{mark} {r.kernel.name[:wide]:{wide}s} {(r.kernel.layer or '-')[:14]:14s} "
            f"{r.seconds * scale:9.3f} {r.share:6.1%} {r.gflop_per_s:8.2f} {r.gbyte_per_s:7.2f}"
        )
        if machine is not None and r.peak_pct is not None:
            line += f" {r.peak_pct:6.1f}% {r.bound}"
        lines.append(line)
    lines.append(f"  total {format_seconds(total)} per call ({calls_described(compiled)})")
    layers = layer_times(rows)
    if len(layers) > 1:
        top = ", ".join(f"{layer} {share:.0%}" for layer, _, share, _ in layers[:5])
        lines.append(f"  slowest layers (all phases): {top}")
    if rows and len(rows) > 1:
        lines.append(f"  * the {min(HIGHLIGHT, len(rows))} slowest kernels")
    if machine is not None:
        lines.append(
            f"  % peak: the kernel's roofline floor (FLOPs at {machine.flops_per_s / 1e9:.0f} "
            f"GFLOP/s or bytes at {machine.bytes_per_s / 1e9:.1f} GB/s, whichever is longer; "
            f"{machine.name}) over its measured time; above 100%: its data sat in a cache"
        )
    return "\n".join(lines)
