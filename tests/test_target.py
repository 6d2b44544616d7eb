"""The CPU target: detection from recorded CPUs, forcing a lower ISA, the register tiles
derived from it, and the assembly each target's micro-kernels compile to (the target's
registers, no gathers, no spills), including targets this host can only inspect."""

import numpy as np
import pytest

pytest.importorskip("llvmlite")

import compiler  # noqa: E402
from compiler.asm import hot_loop  # noqa: E402
from compiler.target import (  # noqa: E402
    TargetError,
    _cache_sizes,
    choose_isa,
    cross_target,
    restrict_features,
    supported_levels,
    target_from,
    vector_isa,
)
from models import MLP  # noqa: E402
from tinygrad_edu import nn  # noqa: E402

X86 = "x86_64-unknown-linux-gnu"
BASE = (
    "+64bit,+adx,+aes,+avx,+bmi,+bmi2,+cx16,+cx8,+f16c,+fsgsbase,+fxsr,+lzcnt,+mmx,+movbe,"
    "+pclmul,+popcnt,+prfchw,+rdrnd,+rdseed,+sahf,+sse,+sse2,+sse3,+sse4.1,+sse4.2,+ssse3,"
    "+xsave,+xsavec,+xsaveopt,+xsaves"
)
# feature strings as llvmlite reports them (trimmed to the features that matter here)
ZEN3 = BASE + ",+avx2,+fma,+clzero,+sse4a,+sha,+vaes,+vpclmulqdq,-avx512f,-avx512vl,-avx512dq"
ZEN4 = ZEN3.replace("-avx512f,-avx512vl,-avx512dq", "") + (
    ",+avx512f,+avx512vl,+avx512dq,+avx512bw,+avx512cd,+avx512ifma,+avx512vbmi,+avx512bf16"
)
HASWELL = BASE + ",+avx2,+fma,-avx512f,-sse4a,-sha"
SANDY_BRIDGE = BASE.replace("+bmi,+bmi2,", "") + ",-avx2,-fma"

RECORDED = [
    # name, triple, cpu, features, isa, lanes, registers, GEMM tile
    ("zen3", X86, "znver3", ZEN3, "avx2", 8, 16, "6x16"),
    ("zen4", X86, "znver4", ZEN4, "avx512", 16, 32, "6x64"),
    ("intel-haswell", X86, "haswell", HASWELL, "avx2", 8, 16, "6x16"),
    ("intel-sandybridge", X86, "sandybridge", SANDY_BRIDGE, "sse", 4, 16, "8x4"),
    ("neoverse-n1", "aarch64-unknown-linux-gnu", "neoverse-n1", "+neon", "neon", 4, 32, "6x16"),
]


@pytest.mark.parametrize("case", RECORDED, ids=lambda c: c[0])
def test_target_detection_from_recorded_cpus(case):
    _, triple, cpu, features, isa, lanes, registers, tile = case
    t = target_from(triple, cpu, features, {"l1d": 32 << 10, "l2": 512 << 10}, cores=2)
    assert (t.isa, t.lanes, t.registers, str(t.gemm_tile)) == (isa, lanes, registers, tile)
    tile_regs = t.gemm_tile.rows * t.gemm_tile.vectors + t.gemm_tile.vectors + 1
    assert tile_regs < registers  # accumulators, B vectors and a broadcast fit, one spare
    assert t.dot_tile.rows <= 4 and t.dot_tile.vectors <= 4
    assert t.panel_bytes == 512 << 10 and t.cores == 2
    assert isa in t.describe() and cpu in t.describe()


def test_a_zen4_forced_to_avx2_loses_every_avx512_feature():
    t = target_from(X86, "znver4", ZEN4, isa="avx2", forced=True)
    assert t.isa == "avx2" and t.lanes == 8 and t.registers == 16
    enabled = {f[1:] for f in t.features.split(",") if f.startswith("+")}
    assert "avx2" in enabled and "fma" in enabled
    assert not any(f.startswith("avx512") for f in enabled)
    assert "-avx512f" in restrict_features(ZEN4, "avx2").split(",")
    assert vector_isa(X86, restrict_features(ZEN4, "sse")) == "sse"


def test_forcing_a_higher_or_unknown_target_is_a_clear_error():
    assert choose_isa("avx512", "x86_64", "avx2") == "avx2"
    assert choose_isa("avx2", "x86_64", "native") == "avx2"
    assert choose_isa("avx2", "x86_64", None) == "avx2"
    with pytest.raises(TargetError, match="cannot run here.*cross_target"):
        choose_isa("avx2", "x86_64", "avx512")
    with pytest.raises(TargetError, match="not a CPU target"):
        choose_isa("avx2", "x86_64", "avx1024")
    with pytest.raises(TargetError, match="runs neon only"):
        choose_isa("neon", "aarch64", "avx2")


def test_cache_sizes_are_read_from_sysfs(tmp_path):
    for i, (level, kind, size) in enumerate(
        [
            (1, "Data", "32K"),
            (1, "Instruction", "32K"),
            (2, "Unified", "512K"),
            (3, "Unified", "32768K"),
        ]
    ):
        d = tmp_path / f"index{i}"
        d.mkdir()
        (d / "level").write_text(f"{level}\n")
        (d / "type").write_text(f"{kind}\n")
        (d / "size").write_text(f"{size}\n")
    assert _cache_sizes(str(tmp_path)) == {"l1d": 32 << 10, "l2": 512 << 10, "l3": 32 << 20}
    assert _cache_sizes(str(tmp_path / "missing"))["l2"] > 0  # no sysfs: a typical size


REGISTER = {"avx512": "zmm", "avx2": "ymm", "neon": "v"}


def micro_kernels():
    """The kernels whose inner loops are register-tiled micro-kernels: a blocked GEMM (B in
    place and packed), x @ W.T dot products, and a convolution's forward, input gradient and
    weight gradient (implicit GEMMs), as (what, function, example inputs)."""
    r = np.random.default_rng(0)
    big = r.standard_normal((384, 256)).astype(np.float32)
    cases = [
        ("gemm", lambda a, b: a @ b, (big, big.T.copy())),
        ("linear", MLP([256, 96]), (big[:64],)),
    ]
    conv = nn.Conv2d(16, 32, 3, padding=1)
    # 16x16: each phase of the stride-2 conv's input gradient is 8x8, a whole panel of vectors
    x = r.standard_normal((2, 16, 16, 16)).astype(np.float32)
    # a 1x1 conv in front: the gradient flows through the 3x3 conv to its input too; a
    # stride-2 conv behind: its input gradient is the phase-decomposed schedule
    # the 64-channel conv's weight gradient puts output channels across the vectors
    net = nn.Sequential(
        nn.Conv2d(16, 16, 1),
        conv,
        nn.Conv2d(32, 64, 3, padding=1),
        nn.Conv2d(64, 32, 3, stride=2, padding=1),
    )

    def conv_grads(inp):
        out = net(inp)
        return (out * out).sum()

    cases.append(("conv", conv, (x,)))
    return cases, (net, conv_grads, x)


def hot_loops(level, monkeypatch, tmp_path):
    monkeypatch.setenv("TINYGRAD_EDU_CPU", level)
    monkeypatch.setenv("TINYGRAD_EDU_CACHE", str(tmp_path))  # a fresh cache: compiled here
    from compiler.backends import llvm as backend
    from compiler.graph import trace
    from compiler.passes import autodiff

    backend._Target.reset()
    cases, (conv, conv_grads, x) = micro_kernels()
    found = {}
    for what, fn, args in cases:
        kernel = compiler.compile(fn, *args, backend="llvm").kernels[0]
        assert kernel.target.isa == level
        found[what] = hot_loop(kernel.asm)
    graph = autodiff(trace(conv_grads, x, module=conv))
    bindings = {n: (lambda p=p: p.data) for n, p in conv.named_parameters()}
    grads = compiler.build(graph, "llvm", bindings)
    for k in grads.kernels:
        if "conv2d_grad_weight" in k.ops:
            channels = "gT" in k.pseudo_c()  # `weight_grad_channels`
            found["conv weight gradient" + (" (channels across)" if channels else "")] = hot_loop(
                k.asm
            )
        if "conv2d" in k.ops and "_bwd_" in k.name:  # stride 1: simplify made it a conv2d
            found["conv input gradient"] = hot_loop(k.asm)
        if "conv2d_grad_input" in k.ops:
            strided = any(
                grads.fusion.graph.node(n)["attrs"].get("stride", (1, 1)) != (1, 1)
                for n in k.nodes
                if grads.fusion.graph.node(n)["op"] == "conv2d_grad_input"
            )
            found["strided conv input gradient" if strided else "conv input gradient"] = hot_loop(
                k.asm
            )
    backend._Target.reset()
    return found


@pytest.mark.parametrize("level", [lv for lv in supported_levels() if lv in REGISTER])
def test_micro_kernels_use_the_targets_registers_without_spills_or_gathers(
    level, monkeypatch, tmp_path
):
    """For the host's ISA and every lower one it can run (forced with TINYGRAD_EDU_CPU): each
    micro-kernel's inner loop is FMAs on that ISA's registers, with no stack access (no
    spilled accumulator), no store and no gather."""
    found = hot_loops(level, monkeypatch, tmp_path)
    assert set(found) == {
        "gemm",
        "linear",
        "conv",
        "conv weight gradient",
        "conv weight gradient (channels across)",
        "conv input gradient",
        "strided conv input gradient",
    }
    for what, loop in found.items():
        assert loop is not None, what
        assert loop.fmas >= 4, (what, loop)
        assert loop.registers == {REGISTER[level]}, (what, loop)
        assert loop.stack_accesses == 0 and loop.vector_stores == 0, (what, loop)
        assert loop.gathers == 0, (what, loop)


@pytest.mark.parametrize("isa", ["avx512", "neon"])
def test_targets_the_host_cannot_run_are_compiled_and_inspected(isa):
    """AVX-512 code on any x86 host, NEON code anywhere: lowered for that target's tile and
    compiled to assembly, never run."""
    from compiler.backends.llvm import assembly

    target = cross_target(isa)
    big = np.ones((384, 256), np.float32)
    traced = compiler.compile(lambda a, b: a @ b, big, big.T.copy(), backend="numpy")
    kernel = compiler.lower(traced.fusion, "cpu", target)[0]
    assert kernel.target == target and "acc_tile" in kernel.pseudo_c()
    loop = hot_loop(assembly(kernel))
    assert loop is not None and loop.fmas >= 8
    assert loop.registers == {REGISTER[isa]}
    assert loop.stack_accesses == 0 and loop.vector_stores == 0
