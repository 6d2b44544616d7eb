"""Helpers every benchmark script shares: progress on stderr, medians, ratios, the JSON line."""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import time
from collections.abc import Callable
from typing import Any


def cpu_name() -> str:
    """The CPU's marketing name (Linux /proc/cpuinfo), else what `platform` knows."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def log(message: str) -> None:
    print(f"[bench] {message}", file=sys.stderr, flush=True)


def rounded(value: float | None, digits: int = 3) -> float | None:
    return None if value is None else round(value, digits)


def ratio(ours: float | None, theirs: float | None) -> float | None:
    """ours / theirs rounded to 3 digits, or None when either side is missing."""
    if ours is None or theirs is None or theirs == 0:
        return None
    return round(ours / theirs, 3)


def wall_times(fn: Callable[[], Any], repeats: int, warmup: int = 1) -> tuple[list[float], Any]:
    """(wall times of `repeats` calls of `fn` after `warmup` untimed calls, the result of the
    first call)."""
    first: Any = None
    called = False
    for _ in range(warmup):
        out = fn()
        if not called:
            first, called = out, True
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - start)
        if not called:
            first, called = out, True
    return times, first


def median_seconds(fn: Callable[[], Any], repeats: int, warmup: int = 1) -> float:
    """Median wall time of `repeats` calls of `fn`, after `warmup` untimed calls."""
    return statistics.median(wall_times(fn, repeats, warmup)[0])


def print_result(run: Callable[[Any], dict[str, Any]], args: Any) -> None:
    """Run the benchmark, add its wall time, print the one JSON line on stdout."""
    start = time.perf_counter()
    result = run(args)
    result["total_wall_s"] = round(time.perf_counter() - start, 2)
    log(f"done in {result['total_wall_s']} s")
    print(json.dumps(result))


def add_timing_options(parser: argparse.ArgumentParser, repeats_default: str) -> None:
    """`--repeats N` (timed repeats per workload; `repeats_default` says what None means)
    and `--no-torch`, as every benchmark that compares with PyTorch takes them."""
    parser.add_argument(
        "--repeats",
        type=int,
        default=None,
        help=f"timed repeats for every workload (default: {repeats_default})",
    )
    parser.add_argument(
        "--no-torch",
        action="store_true",
        help="skip PyTorch even when it is installed (torch keys are null)",
    )


def parse_timing_args(parser: argparse.ArgumentParser, argv: list[str] | None) -> Any:
    """Parse, rejecting a --repeats below 1."""
    args = parser.parse_args(argv)
    if args.repeats is not None and args.repeats < 1:
        parser.error("--repeats must be at least 1")
    return args
