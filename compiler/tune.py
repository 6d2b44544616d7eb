"""tune: a bounded, cached measurement where the model of the machine cannot decide.

The target's register tile (`CPUTarget.gemm_tile`) is the analytic choice: the most
accumulators that fit the register file. Two tiles that both fit can still differ in speed
on a given CPU (load ports, how LLVM schedules the loop), and no model here knows that. So for
the hottest register-tiled kernels of a compiled function, a handful of candidate tiles that
also fit are compiled and timed on random data of the kernel's shapes, and a candidate
replaces the analytic tile only when it is clearly faster (by `MARGIN`): timing noise never
flips a choice. The tile changes only the loop structure, never the order of a sum over k,
so every candidate computes bit-identical results.

Bounded: at most `MAX_KERNELS` kernels (those with the most FLOPs), `ROUNDS` timed calls per
candidate (interleaved; the fastest of each candidate's calls counts, since another busy
process only ever adds time), and a time budget (`TINYGRAD_EDU_TUNE_SECONDS`, default 5 s)
after which the rest keep the analytic tile. The candidates of all hot kernels compile at
once, in parallel. Cached: the choice is stored in the LLVM disk cache (`tuning.json`), keyed
by the CPU target and the kernel, so it is measured once per machine. Recorded: each tuned
kernel's `tuning` says what was tried and chosen (pseudo-C header, HTML report).

Off unless `TINYGRAD_EDU_TUNE=1`: measured on a Zen 5 (AVX-512, and forced to AVX2), the
analytic tiles were within timing noise of the best candidate for GEMM and convolutions
(e.g. conv1 11.9 ms with 6x64 against 12.0 / 12.6 ms with 4x64 / 5x64; AVX2 6x16 15.2 ms,
4x24 15.2-15.6 ms), while compiling the candidates of the AlexNet training step costs
several seconds on a cold cache.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from dataclasses import dataclass, field

import numpy as np

from .kernel import Kernel, Local, Loop, Stmt
from .passes import Fusion
from .target import CPUTarget, Tile

MAX_KERNELS = 8
MIN_FLOPS = 20_000_000  # smaller kernels are not worth a measurement
ROUNDS = 3
MARGIN = 0.08  # a candidate must be this much faster than the analytic tile to replace it


def enabled() -> bool:
    """`TINYGRAD_EDU_TUNE=1` turns the search on (see the module doc for why it is off)."""
    return os.environ.get("TINYGRAD_EDU_TUNE", "0").strip() not in ("0", "")


def budget_seconds() -> float:
    raw = os.environ.get("TINYGRAD_EDU_TUNE_SECONDS", "").strip()
    if not raw:
        return 5.0
    try:
        return max(0.0, float(raw))
    except ValueError as e:
        raise ValueError(
            f"TINYGRAD_EDU_TUNE_SECONDS={raw!r} is not a number of seconds; set it to the "
            "time the tile search may take per compiled function (or unset it: 5 s)"
        ) from e


def candidates(target: CPUTarget) -> list[Tile]:
    """The analytic tile first, then the two others with the most accumulators that fit the
    register file without the spare register the analytic rule keeps (e.g. 8x3 and 5x4
    vectors next to AVX-512's 6x4; 4x3 and 5x2 next to AVX2's 6x2)."""
    best = target.gemm_tile
    others = []
    for vectors in range(1, 5):
        extra = 0 if target.fma else 2 * vectors + 1
        for rows in range(2, 9):
            t = Tile(rows, vectors, best.lanes)
            if t != best and rows * vectors + vectors + 1 + extra <= target.registers:
                others.append((rows * vectors, vectors, t))
    others.sort(key=lambda x: (x[0], x[1]), reverse=True)
    return [best] + [t for _, _, t in others[:2]]


@dataclass
class Tuning:
    """What one search decided: group index -> chosen tile, and a line per tuned kernel."""

    tiles: dict[int, Tile] = field(default_factory=dict)
    notes: dict[int, str] = field(default_factory=dict)
    seconds: float = 0.0
    measured: int = 0  # kernels timed now (not from the cache)


def _uses_register_tile(body: list[Stmt]) -> bool:
    for s in body:
        if isinstance(s, Local) and s.name == "acc_tile":
            return True
        if isinstance(s, Loop) and _uses_register_tile(s.body):
            return True
    return False


def _key(engine_tag: str, kernel: Kernel) -> str:
    return hashlib.sha256((engine_tag + "\n" + kernel.identity()).encode()).hexdigest()


def _load(path: str) -> dict[str, dict]:
    try:
        with open(path) as f:
            data = json.load(f)
        return data if isinstance(data, dict) else {}
    except (OSError, ValueError):
        return {}  # missing or corrupt: measure again


def _store(path: str, data: dict[str, dict]) -> None:
    try:
        os.makedirs(os.path.dirname(path), exist_ok=True)
        tmp = f"{path}.{os.getpid()}.tmp"
        with open(tmp, "w") as f:
            json.dump(data, f, indent=0, sort_keys=True)
        os.replace(tmp, path)
    except OSError:
        pass  # a read-only cache only costs measuring again next time


def _note(record: dict) -> str:
    tried = ", ".join(f"{t} {ms:.3g} ms" for t, ms in record["tried"].items())
    return f"tried {tried}; chose {record['chosen']}"


def tune(fusion: Fusion, kernels: list[Kernel], target: CPUTarget) -> Tuning:
    """Measure candidate tiles for the hottest register-tiled kernels (see the module doc)."""
    from .backends.llvm import LLVMExecutor, _Target, render
    from .lower import lower

    out = Tuning()
    if not enabled() or len(candidates(target)) < 2:
        return out
    start = time.perf_counter()
    engine = _Target.get(target)
    path = os.path.join(engine.cache_dir, "tuning.json")
    cache = _load(path)
    hot = sorted(
        (
            (k.flops, i)
            for i, k in enumerate(kernels)
            if k.flops >= MIN_FLOPS and _uses_register_tile(k.body)
        ),
        reverse=True,
    )[:MAX_KERNELS]
    budget = budget_seconds()
    tiles = candidates(target)
    todo = [i for _, i in hot if _key(engine.tag, kernels[i]) not in cache]
    variants = {i: [lower(fusion, "cpu", target, {i: t})[i] for t in tiles] for i in todo}
    if variants:  # compile every candidate at once (worker processes when many are cold)
        engine.compile_many(
            [render(v)[:2] for vs in variants.values() for v in vs], "tile candidates"
        )
    changed = False
    rng = np.random.default_rng(0)
    for _, index in hot:
        kernel = kernels[index]
        key = _key(engine.tag, kernel)
        record = cache.get(key)
        if record is None:
            if time.perf_counter() - start > budget:
                continue  # over budget: the analytic tile
            runs = [_Runner(fusion, index, v, rng, LLVMExecutor) for v in variants[index]]
            best = [float("inf")] * len(runs)
            for _ in range(ROUNDS):
                for c, run in enumerate(runs):
                    best[c] = min(best[c], run())
            tried = {str(t): round(b * 1e3, 4) for t, b in zip(tiles, best)}
            first = str(tiles[0])
            fastest = min(tried, key=tried.__getitem__)
            chosen = fastest if tried[fastest] < tried[first] * (1 - MARGIN) else first
            record = cache[key] = {"tried": tried, "chosen": chosen}
            changed = True
            out.measured += 1
        chosen_tile = next((t for t in tiles if str(t) == record["chosen"]), tiles[0])
        if chosen_tile != target.gemm_tile:
            out.tiles[index] = chosen_tile
        out.notes[index] = _note(record)
    if changed:
        _store(path, cache)
    out.seconds = time.perf_counter() - start
    return out


class _Runner:
    """One candidate kernel, ready to run on random inputs of its shapes; a call returns its
    wall time in seconds (the first call, untimed, happens here)."""

    def __init__(
        self, fusion: Fusion, index: int, kernel: Kernel, rng: np.random.Generator, executor: type
    ) -> None:
        self.graph, self.group, self.kernel = fusion.graph, fusion.groups[index], kernel
        self.run = executor([kernel])
        self.env = {}
        for b in kernel.inputs:
            if np.dtype(b.dtype).kind == "f":
                self.env[b.node] = rng.standard_normal(b.shape).astype(b.dtype)
            else:
                self.env[b.node] = np.zeros(b.shape, b.dtype)
        self()

    def __call__(self) -> float:
        t0 = time.perf_counter()
        self.run.run_group(self.graph, self.group, self.kernel, dict(self.env))
        return time.perf_counter() - t0
