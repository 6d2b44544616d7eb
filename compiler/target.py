"""target: the CPU that generated code is for, described once.

Every hardware fact the CPU schedules and the LLVM backend use lives here, and only here:
float32 lanes per vector register, how many vector registers there are, whether there is a
fused multiply-add, the cache sizes and the cores this process may use. The shapes the
schedules need are derived from those facts, in the spirit of BLIS's one table of block sizes
per architecture:

- the GEMM micro-kernel tile (rows x vectors of C) is the largest that fits the register file
  without spills: rows*vectors accumulators, the vectors of B loaded once per step and one
  broadcast of A, with one register to spare;
- the dot-product tile of `x @ W.T` the same way (at most 4 x 4 partial sums);
- cache blocking (how large a packed panel may be) from the per-core L2.

The target is read from llvmlite (the host CPU's name and features) and the OS (sysfs cache
sizes, the affinity mask). `TINYGRAD_EDU_CPU` forces a lower vector ISA on a machine that has
a higher one (`avx512`, `avx2`, `sse`; `native` is the host's own), so every machine can build
and run every code path below its own. A target the host cannot execute (AVX-512 code on an
AVX2 machine, NEON code on x86) can still be compiled to assembly and inspected
(`cross_target`), never run.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from functools import cache

# vector ISA -> (float32 lanes, vector registers), from the architecture manuals: AVX-512 has
# 32 zmm registers of 16 floats, AVX/AVX2 16 ymm of 8, SSE 16 xmm of 4 (x86-64), and AArch64's
# Advanced SIMD (NEON) 32 v registers of 4.
ISAS: dict[str, tuple[int, int]] = {
    "avx512": (16, 32),
    "avx2": (8, 16),
    "sse": (4, 16),
    "neon": (4, 32),
}
X86_LEVELS = ("sse", "avx2", "avx512")  # lowest first: what TINYGRAD_EDU_CPU may force
# CPUs whose code is compiled, never run, when a target is only inspected (`cross_target`)
CROSS_CPUS = {
    "avx512": ("x86_64-unknown-linux-gnu", "znver4"),
    "avx2": ("x86_64-unknown-linux-gnu", "znver3"),
    "sse": ("x86_64-unknown-linux-gnu", "x86-64"),
    "neon": ("aarch64-unknown-linux-gnu", "neoverse-n1"),
}
# Used only when the OS does not say (no sysfs): typical per-core sizes of current x86 parts.
FALLBACK_CACHES = {"l1d": 32 << 10, "l2": 512 << 10, "l3": 8 << 20}
ENV_VAR = "TINYGRAD_EDU_CPU"


class TargetError(ValueError):
    """A requested CPU target this machine cannot run, or a name that is not one."""


@dataclass(frozen=True)
class Tile:
    """A register tile of C: `rows` rows x `vectors` vectors of `lanes` float32 values."""

    rows: int
    vectors: int
    lanes: int

    @property
    def cols(self) -> int:
        return self.vectors * self.lanes

    def __str__(self) -> str:
        return f"{self.rows}x{self.cols}"


@dataclass(frozen=True)
class CPUTarget:
    """One CPU to generate code for (see the module doc)."""

    isa: str  # "avx512", "avx2", "sse" or "neon"
    triple: str  # LLVM target triple
    cpu: str  # LLVM CPU name (scheduling model)
    features: str  # LLVM feature string ("+avx2,-avx512f,...")
    fma: bool
    l1d: int  # bytes, per core
    l2: int
    l3: int
    cores: int  # the cores this process may use
    runnable: bool = True  # False: compiled and inspected only (another CPU's code)
    forced: bool = field(default=False, compare=False)  # chosen by TINYGRAD_EDU_CPU

    @property
    def lanes(self) -> int:
        """float32 values per vector register."""
        return ISAS[self.isa][0]

    @property
    def registers(self) -> int:
        """Vector registers the register allocator can use."""
        return ISAS[self.isa][1]

    @property
    def vector_bits(self) -> int:
        return self.lanes * 32

    @property
    def gemm_tile(self) -> Tile:
        """The micro-kernel tile of GEMMs and implicit-GEMM convolutions: the most
        accumulators (rows x vectors) such that they, the `vectors` loads of B of one step
        and one broadcast of A fit the register file with one register to spare; ties go to
        the wider tile (fewer broadcasts per FMA). Without FMA each product needs a register
        of its own too. AVX-512 gets 6 x 4 zmm, AVX2 6 x 2 ymm."""
        return _best_tile(self.registers, self.lanes, 8, 4, self.fma)

    @property
    def wide_tiles(self) -> list[Tile]:
        """Tiles wider than `gemm_tile` (more vectors, as many rows as then fit the same way)
        that keep at least 3/4 of its accumulators, e.g. AVX-512's 5 x 5 and 3 x 7 zmm: a
        convolution whose whole output rows fill one of them exactly (two rows of 56 pixels
        in 7 zmm) wastes no column, where the default tile pads them (56 of 64)."""
        best = self.gemm_tile
        out = []
        for vectors in range(best.vectors + 1, 2 * best.vectors + 1):
            products = 0 if self.fma else 2 * vectors + 1
            rows = (self.registers - 2 - vectors - products) // vectors  # `_best_tile`'s rule
            if 4 * rows * vectors >= 3 * best.rows * best.vectors:
                out.append(Tile(rows, vectors, self.lanes))
        return out

    @property
    def masked_remainders(self) -> bool:
        """Whether a vector loop's last, partial vector runs as one masked vector (AVX-512's
        mask registers make a masked load or store as cheap as a plain one) rather than lane
        by lane. AVX2's masked moves (vmaskmov) are kept out: their stores are slow on AMD
        cores before Zen 4, and no Zen 3 was at hand to measure them."""
        return self.isa == "avx512"

    @property
    def dot_tile(self) -> Tile:
        """The x @ W.T tile: rows x vectors partial-sum vectors (one per element of a block
        of C), each step loading `vectors` vectors of W and a broadcast-free vector of x per
        row; at most 4 x 4 (larger blocks re-read too little to pay for their sums)."""
        return _best_tile(self.registers, self.lanes, 4, 4, self.fma)

    @property
    def panel_bytes(self) -> int:
        """A packed GEMM panel of B is reused from the L2 of the core that packed it."""
        return self.l2

    @property
    def conv_panel_bytes(self) -> int:
        """An implicit-GEMM convolution's packed panel, re-read by every block of output
        channels, stays in half the L2 (the weights stream through the other half)."""
        return self.l2 // 2

    @property
    def chunk_bytes(self) -> int:
        """The part of an implicit-GEMM convolution's panel that every block of output
        channels runs over before the next (`conv_gemm.micro_kernel`): a quarter of L2, so
        it stays there beside the weights and partial sums while the blocks re-read it."""
        return self.l2 // 4

    @property
    def scatter_band_bytes(self) -> int:
        """The rows of an image plane a scatter adds into on chip (max-pool's backward): a
        quarter of L2. Its windows walk the band row by row, so L2 serves it; a smaller band
        would search more windows twice, at the bands' edges."""
        return self.l2 // 4

    @property
    def wide_chunk_bytes(self) -> int:
        """The same for a wide tile (`wide_tiles`): half of L1. Its 7 vectors a tap for 21
        FMAs ask more of the panel per cycle than L2 delivers (the 6 x 4 tile's 4 for 24
        do not): measured on Zen 5, AlexNet's 27x27 conv2 ran 19.5 ms on 6 x 4 and 23-27
        on 3 x 7 with L2-sized chunks, 19.9 with L1-sized ones."""
        return self.l1d // 2

    @property
    def row_panel_bytes(self) -> int:
        """The largest row panel (`conv_gemm.RowBlocks`) a convolution task packs before it
        runs the panel's column blocks one after another: L2. Measured on Zen 3 (AVX2, 512
        KiB L2) at N=16, against one block a panel: 56-pixel rows two a panel (258 KiB)
        ran 31.7 -> 28.8 ms, 28-pixel rows four a panel (516 KiB) 31.8 -> 28.6 ms, a 5x5
        layer's 27-pixel rows four a panel 30.7 -> 28.5 ms with 32 channels in (350 KiB)
        but 56.2 -> 60.9 ms with 64 (700 KiB)."""
        return self.l2

    @property
    def band_bytes(self) -> int:
        """The weight gradient's packed band of pixels: an eighth of L2 (it shares L2 with
        the streamed output gradient and the input)."""
        return self.l2 // 8

    @property
    def arch(self) -> str:
        return self.triple.split("-")[0]

    def describe(self) -> str:
        """One line: what the code is built for (shown by the pseudo-C, DEBUG and reports)."""
        how = "forced by TINYGRAD_EDU_CPU" if self.forced else "host"
        if not self.runnable:
            how = "cross-compiled, not runnable here"
        reg = {"avx512": "zmm", "avx2": "ymm", "sse": "xmm", "neon": "v"}[self.isa]
        return (
            f"{self.isa} ({self.cpu}, {how}): {self.lanes} float lanes x {self.registers} "
            f"{reg} registers{', FMA' if self.fma else ''}; L1d {_size(self.l1d)}, "
            f"L2 {_size(self.l2)}, L3 {_size(self.l3)}; {self.cores} cores; "
            f"GEMM tile {self.gemm_tile}, dot tile {self.dot_tile.rows}x"
            f"{self.dot_tile.vectors} vectors"
        )

    def as_dict(self) -> dict[str, object]:
        """The facts a benchmark line carries, so runs on different CPUs are never compared
        by accident."""
        return {
            "isa": self.isa,
            "cpu": self.cpu,
            "lanes": self.lanes,
            "registers": self.registers,
            "fma": self.fma,
            "l1d": self.l1d,
            "l2": self.l2,
            "l3": self.l3,
            "cores": self.cores,
            "gemm_tile": str(self.gemm_tile),
            "dot_tile": f"{self.dot_tile.rows}x{self.dot_tile.vectors}",
            "forced": self.forced,
        }


def _best_tile(registers: int, lanes: int, max_rows: int, max_vectors: int, fma: bool) -> Tile:
    best: tuple[int, int, int] | None = None
    for vectors in range(1, max_vectors + 1):
        products = 0 if fma else 2 * vectors + 1  # mul, then add: products and copies
        for rows in range(1, max_rows + 1):
            if rows * vectors + vectors + 1 + products > registers - 1:
                continue
            key = (rows * vectors, vectors, rows)
            if best is None or key > best:
                best = key
    assert best is not None
    return Tile(best[2], best[1], lanes)


def _size(n: int) -> str:
    return f"{n >> 20} MiB" if n >= 1 << 20 and n % (1 << 20) == 0 else f"{n >> 10} KiB"


# -- detection ------------------------------------------------------------------------------
def parse_features(features: str | dict[str, bool]) -> dict[str, bool]:
    """LLVM's feature string ("+avx2,-avx512f,...") or llvmlite's FeatureMap as a dict."""
    if isinstance(features, dict):
        return {str(k): bool(v) for k, v in features.items()}
    out: dict[str, bool] = {}
    for item in features.split(","):
        item = item.strip()
        if item:
            out[item[1:]] = item[0] == "+"
    return out


def vector_isa(triple: str, features: str | dict[str, bool]) -> str:
    """The widest vector ISA that `features` allow on `triple`'s architecture."""
    feats = parse_features(features)
    arch = triple.split("-")[0]
    if arch in ("aarch64", "arm64"):
        return "neon"
    if feats.get("avx512f") and feats.get("avx512vl") and feats.get("avx512dq"):
        return "avx512"
    if feats.get("avx2") and feats.get("fma"):
        return "avx2"
    return "sse"


def restrict_features(features: str | dict[str, bool], isa: str) -> str:
    """The feature string with everything above `isa` switched off (LLVM may not use
    instructions or registers the lower target lacks: no zmm, no ymm16-31, no mask
    registers for AVX2)."""
    feats = parse_features(features)

    def above(name: str) -> bool:
        if isa == "avx2":
            return name.startswith(("avx512", "avx10", "amx", "evex512"))
        if isa == "sse":
            return name.startswith(("avx", "amx", "evex512", "fma", "f16c", "vaes", "vpclmul"))
        return False

    return ",".join(f"{'-' if above(k) or not v else '+'}{k}" for k, v in sorted(feats.items()))


def _cache_sizes(root: str = "/sys/devices/system/cpu/cpu0/cache") -> dict[str, int]:
    """Per-core data cache sizes from sysfs (L3 is shared: its whole size)."""
    sizes = dict(FALLBACK_CACHES)
    try:
        entries = sorted(os.listdir(root))
    except OSError:
        return sizes
    for entry in entries:
        path = os.path.join(root, entry)
        try:
            with open(os.path.join(path, "level")) as f:
                level = int(f.read())
            with open(os.path.join(path, "type")) as f:
                kind = f.read().strip()
            with open(os.path.join(path, "size")) as f:
                text = f.read().strip()
        except (OSError, ValueError):
            continue
        if kind == "Instruction" or not text:
            continue
        scale = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30}.get(text[-1].upper(), 1)
        number = text[:-1] if text[-1].isalpha() else text
        try:
            size = int(number) * scale
        except ValueError:
            continue
        sizes[{1: "l1d", 2: "l2", 3: "l3"}.get(level, f"l{level}")] = size
    return sizes


def usable_cores() -> int:
    """The cores this process may run on (its affinity mask), else the machine's count."""
    if hasattr(os, "sched_getaffinity"):
        return max(1, len(os.sched_getaffinity(0)))
    return os.cpu_count() or 1


def target_from(
    triple: str,
    cpu: str,
    features: str | dict[str, bool],
    caches: dict[str, int] | None = None,
    cores: int = 1,
    isa: str | None = None,
    runnable: bool = True,
    forced: bool = False,
) -> CPUTarget:
    """A target from recorded facts (what detection and the tests use). `isa` below the
    features' own restricts the features to it."""
    own = vector_isa(triple, features)
    isa = isa or own
    if isa not in ISAS:
        raise TargetError(f"unknown vector ISA {isa!r}; known: {sorted(ISAS)}")
    feats = parse_features(features)
    if isa != own:
        feature_string = restrict_features(feats, isa)
    else:
        feature_string = ",".join(f"{'+' if v else '-'}{k}" for k, v in sorted(feats.items()))
    c = dict(FALLBACK_CACHES, **(caches or {}))
    fma = isa in ("avx512", "neon") or (isa == "avx2" and feats.get("fma", False))
    return CPUTarget(
        isa=isa,
        triple=triple,
        cpu=cpu,
        features=feature_string,
        fma=fma,
        l1d=c["l1d"],
        l2=c["l2"],
        l3=c["l3"],
        cores=cores,
        runnable=runnable,
        forced=forced,
    )


def choose_isa(own: str, arch: str, requested: str | None) -> str:
    """The ISA to build for: the host's own, or the lower one `requested` names."""
    if requested is None or requested.strip().lower() in ("", "native", "host"):
        return own
    want = requested.strip().lower()
    if want not in ISAS:
        raise TargetError(
            f"{ENV_VAR}={requested!r} is not a CPU target. Fix: use one of native, "
            f"{', '.join(X86_LEVELS if arch.startswith('x86') else ('neon',))}"
        )
    if not arch.startswith("x86") or want not in X86_LEVELS or own not in X86_LEVELS:
        if want != own:
            raise TargetError(f"{ENV_VAR}={requested!r}: this {arch} CPU runs {own} only")
        return own
    if X86_LEVELS.index(want) > X86_LEVELS.index(own):
        raise TargetError(
            f"{ENV_VAR}={requested!r}: this CPU's widest vectors are {own}, so {want} code "
            f"cannot run here. Fix: unset {ENV_VAR} or choose a lower target; to read {want} "
            f"assembly without running it, use compiler.target.cross_target({want!r})"
        )
    return want


@cache
def _host_facts() -> tuple[str, str, tuple[tuple[str, bool], ...]]:
    import llvmlite.binding as llvm

    llvm.initialize_native_target()
    llvm.initialize_native_asmprinter()
    feats = parse_features(llvm.get_host_cpu_features())
    return llvm.get_default_triple(), llvm.get_host_cpu_name(), tuple(sorted(feats.items()))


def host_target(requested: str | None = None) -> CPUTarget:
    """The target code is built for on this machine: the host CPU, or the lower ISA that
    `requested` (default: $TINYGRAD_EDU_CPU) names."""
    if requested is None:
        requested = os.environ.get(ENV_VAR)
    return _host_target((requested or "").strip().lower())


@cache
def _host_target(requested: str) -> CPUTarget:
    triple, cpu, feats = _host_facts()
    features = dict(feats)
    own = vector_isa(triple, features)
    isa = choose_isa(own, triple.split("-")[0], requested)
    return target_from(
        triple,
        cpu,
        features,
        _cache_sizes(),
        usable_cores(),
        isa=isa,
        forced=isa != own,
    )


def cross_target(isa: str) -> CPUTarget:
    """A target to compile and inspect, not to run (unless it is the host's or below)."""
    if isa not in CROSS_CPUS:
        raise TargetError(f"cross_target: unknown ISA {isa!r}; known: {sorted(CROSS_CPUS)}")
    triple, cpu = CROSS_CPUS[isa]
    features = {
        "avx512": "+avx512f,+avx512vl,+avx512dq,+avx512bw,+avx2,+fma,+avx",
        "avx2": "+avx2,+fma,+avx,-avx512f",
        "sse": "+sse4.2,-avx,-avx2,-fma",
        "neon": "+neon",
    }[isa]
    host_triple, _, feats = _host_facts()
    runnable = False
    if triple.split("-")[0] == host_triple.split("-")[0] and isa in X86_LEVELS:
        own = vector_isa(host_triple, dict(feats))
        runnable = own in X86_LEVELS and X86_LEVELS.index(isa) <= X86_LEVELS.index(own)
    return target_from(triple, cpu, features, None, 1, isa=isa, runnable=runnable)


def supported_levels() -> list[str]:
    """The host's ISA and every lower one it can run (what the tests force in turn)."""
    triple, _, feats = _host_facts()
    own = vector_isa(triple, dict(feats))
    if own not in X86_LEVELS:
        return [own]
    return list(X86_LEVELS[: X86_LEVELS.index(own) + 1])
