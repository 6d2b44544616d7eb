"""Helpers every benchmark script shares: progress on stderr, medians, ratios, the JSON line."""

from __future__ import annotations

import json
import statistics
import sys
import time
from collections.abc import Callable
from typing import Any


def log(message: str) -> None:
    print(f"[bench] {message}", file=sys.stderr, flush=True)


def rounded(value: float | None, digits: int = 3) -> float | None:
    return None if value is None else round(value, digits)


def ratio(ours: float | None, theirs: float | None) -> float | None:
    """ours / theirs rounded to 3 digits, or None when either side is missing."""
    if ours is None or theirs is None or theirs == 0:
        return None
    return round(ours / theirs, 3)


def median_seconds(fn: Callable[[], Any], repeats: int, warmup: int = 1) -> float:
    """Median wall time of `repeats` calls of `fn`, after `warmup` untimed calls."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def print_result(run: Callable[[Any], dict[str, Any]], args: Any) -> None:
    """Run the benchmark, add its wall time, print the one JSON line on stdout."""
    start = time.perf_counter()
    result = run(args)
    result["total_wall_s"] = round(time.perf_counter() - start, 2)
    log(f"done in {result['total_wall_s']} s")
    print(json.dumps(result))
