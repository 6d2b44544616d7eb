"""Where each kernel stands against a machine's limits (the roofline model).

A kernel that does F FLOPs and moves B bytes cannot finish faster than
max(F / peak FLOP/s, B / peak bytes/s): the larger term names its roofline bound, compute or
memory (F/B against the machine's ridge point peak FLOP/s / peak bytes/s). Its measured time
against that floor says how much of the bound it reaches; when it reaches little, the limiter
is something else, and `standing` names what the figures show: a call too short to be more
than launch cost, too few threads to fill the device, a kernel that is no generated code at all
(run by array-library calls), or its own code (the schedule). FLOPs and bytes are the
compiler's counts (`Kernel.flops`, `bytes_read + bytes_written`: each buffer once, so caches
are assumed perfect and the bound is optimistic).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from .kernel import Kernel


@dataclass(frozen=True)
class Machine:
    name: str
    flops_per_s: float  # peak arithmetic rate for the kernels' dtype (fp32 FMA = 2 FLOPs)
    bytes_per_s: float  # peak main-memory bandwidth
    resident_threads: int | None = None  # GPU: SMs x resident threads per SM
    launch_s: float = 5e-6  # a call shorter than a few launches is launch cost

    @property
    def ridge(self) -> float:
        """FLOPs per byte where a kernel stops being memory-bound."""
        return self.flops_per_s / self.bytes_per_s


# NVIDIA H200 SXM: 132 SMs, fp32 FFMA without tensor cores ~67 TFLOP/s, HBM3e 4.8 TB/s,
# 2048 resident threads per SM.
H200 = Machine("NVIDIA H200 (fp32, no tensor cores)", 67e12, 4.8e12, 132 * 2048)


@dataclass
class Standing:
    kernel: str
    ms: float
    gflop_per_s: float
    gbyte_per_s: float
    flops_pct_of_peak: float
    bytes_pct_of_peak: float
    flop_per_byte: float | None
    roofline: str  # "compute" | "memory"
    roofline_pct: float  # the roofline floor as a percentage of the measured time
    threads: int | None
    limiter: str

    def as_dict(self) -> dict[str, Any]:
        return {k: round(v, 3) if isinstance(v, float) else v for k, v in asdict(self).items()}


def standing(
    kernel: Kernel,
    seconds: float,
    machine: Machine,
    threads: int | None = None,
    generated: bool = True,
) -> Standing:
    """`kernel`'s achieved rates over `seconds` (one call) against `machine`, and what limits
    it. `threads`: how many threads its launch has (GPU); `generated`: False when the kernel
    ran as array-library calls instead of generated code."""
    moved = kernel.bytes_read + kernel.bytes_written
    intensity = kernel.flops / moved if moved else None
    compute_s, memory_s = kernel.flops / machine.flops_per_s, moved / machine.bytes_per_s
    roofline = "compute" if compute_s >= memory_s else "memory"
    reached = max(compute_s, memory_s) / seconds if seconds > 0 else 0.0
    peak = machine.flops_per_s if roofline == "compute" else machine.bytes_per_s
    unit = "FLOP/s" if roofline == "compute" else "B/s"
    at = f"{reached:.1%} of its {roofline} roofline ({peak / 1e12:g} T{unit})"
    resident = machine.resident_threads
    if not generated:
        limiter = f"no generated kernel: array-library calls (a runtime helper); {at}"
    elif reached >= 0.5:
        limiter = f"{roofline} bandwidth" if roofline == "memory" else "arithmetic"
        limiter += f": {at}"
    elif seconds < 4 * machine.launch_s:
        limiter = f"launch latency: {seconds * 1e6:.1f} us per call; {at}"
    elif threads is not None and resident and threads < resident // 2:
        limiter = (
            f"parallelism: {threads:,} threads for {resident:,} resident slots, so each "
            f"thread runs long serial loops; {at}"
        )
    else:
        limiter = f"the kernel's own code (its schedule): {at}"
    return Standing(
        kernel=kernel.name,
        ms=seconds * 1e3,
        gflop_per_s=kernel.flops / seconds / 1e9 if seconds else 0.0,
        gbyte_per_s=moved / seconds / 1e9 if seconds else 0.0,
        flops_pct_of_peak=100 * kernel.flops / seconds / machine.flops_per_s if seconds else 0.0,
        bytes_pct_of_peak=100 * moved / seconds / machine.bytes_per_s if seconds else 0.0,
        flop_per_byte=intensity,
        roofline=roofline,
        roofline_pct=100 * reached,
        threads=threads,
        limiter=limiter,
    )


def measure_copy_bandwidth(megabytes: int = 64, repeats: int = 10) -> float:
    """Main-memory bytes/s of this machine, measured: the best of `repeats` copies of an
    array larger than the caches (read + write counted, as kernels' byte counts are). One
    thread copies, so on a many-core machine the true peak is higher and "% of peak" errs on
    the generous side."""
    import time

    import numpy as np

    src = np.ones(megabytes << 18, np.float32)
    dst = np.empty_like(src)
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        np.copyto(dst, src)
        best = min(best, time.perf_counter() - start)
    return 2 * src.nbytes / best


_HOST: list[Machine] = []


def host_machine() -> Machine | None:
    """This CPU, measured once per process: its float32 FMA peak
    (`backends.llvm.measure_peak_gflops`) and its copy bandwidth; None without llvmlite."""
    if not _HOST:
        try:
            from .backends.llvm import measure_peak_gflops
            from .target import host_target
        except ImportError:
            return None
        target = host_target()
        flops = measure_peak_gflops(target, seconds=0.1) * 1e9
        name = f"measured on this {target.cpu} ({target.isa})"
        _HOST.append(Machine(name, flops, measure_copy_bandwidth()))
    return _HOST[0]


def machine_for(backend: str) -> Machine | None:
    """The machine whose peak a backend's kernels are compared with: the H200 figures for
    "cuda", this CPU measured otherwise."""
    return H200 if backend == "cuda" else host_machine()
