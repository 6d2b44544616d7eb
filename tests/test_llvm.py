"""LLVM backend: compiled kernels equal the numpy reference on random programs (outputs and
gradients, odd shapes and batch 1 included) and on the models; the disk cache is used, checked
and rebuilt when corrupt."""

import os
from unittest import mock

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

pytest.importorskip("llvmlite")

import compiler  # noqa: E402
from compiler.graph import trace  # noqa: E402
from compiler.passes import autodiff  # noqa: E402
from compiler.testing import VECTOR_LENGTHS, Program, Step, programs, scalar_loss  # noqa: E402
from models import MLP, AlexNet, LogisticRegression  # noqa: E402
from tinygrad_edu import Tensor, manual_seed, optim  # noqa: E402


def close(a, b, rtol=1e-5):
    scale = max(float(np.abs(b).max()), 1.0) if np.size(b) else 1.0
    np.testing.assert_allclose(a, b, rtol=rtol, atol=rtol * scale)


@settings(max_examples=25, deadline=None)
@given(program=programs(), seed=st.integers(0, 1000))
def test_llvm_random_programs_match_numpy_outputs_and_gradients(program, seed):
    check_random_program(program, seed)


@settings(max_examples=10, deadline=None)
@given(program=programs(), seed=st.integers(0, 1000))
def test_llvm_random_programs_stay_in_bounds(program, seed):
    """The same differential test with every generated access bounds-checked."""
    with mock.patch.dict(os.environ, {"TINYGRAD_EDU_CHECK_BOUNDS": "1"}):
        check_random_program(program, seed)


@pytest.mark.parametrize("length", VECTOR_LENGTHS)
def test_llvm_products_with_a_1d_operand_match_eager_at_every_length(length):
    """Matrix-vector, vector-matrix and dot products, as inputs and as parameters, with
    lengths below, at and above the vector widths and tile sizes (16 and over once raised
    IndexError in the lowering), forward and gradients."""
    m, v, v2, mt = 0, 1, 2, 3  # values: the matrix, two vectors, the transposed matrix
    steps = [
        Step("matmul", (m, v)),
        Step("matmul", (v, mt)),
        Step("matmul", (v2, v)),  # read in the other order than passed
        Step("matmul_param", (m,)),
        Step("matmul_param", (v2,)),
    ]
    program = Program((3, length), steps, 0, ((length,), (length,), (length, 3)))
    check_random_program(program, length)


def check_random_program(program, seed):
    xs = program.example_inputs(seed)
    eager = program(*(Tensor(x) for x in xs))
    ref = compiler.compile(program, *xs, backend="numpy").run(*xs)
    got = compiler.compile(program, *xs, backend="llvm").run(*xs)
    for name, want in zip(ref, eager):
        close(ref[name], want.numpy())
        close(got[name], ref[name])

    check_gradients(program, scalar_loss(program), *xs)


def check_gradients(module, loss, *xs, checked=False):
    """The gradients of `loss(*xs)` w.r.t. `module`'s parameters: llvm (bounds-checked when
    `checked`) against the numpy reference."""
    graph = autodiff(trace(loss, *xs, module=module))
    bindings = {n: (lambda p=p: p.data) for n, p in module.named_parameters()}
    ref = compiler.build(graph, "numpy", bindings).run(*xs)
    with mock.patch.dict(os.environ, {"TINYGRAD_EDU_CHECK_BOUNDS": "1" if checked else "0"}):
        got = compiler.build(graph, "llvm", bindings).run(*xs)
    for name in ref:
        close(got[name], ref[name], rtol=1e-4)


MODELS = {
    "alexnet-paper": (lambda: AlexNet(10, "paper"), (1, 3, 227, 227)),
    "alexnet-torchvision": (lambda: AlexNet(10, "torchvision"), (1, 3, 224, 224)),
    "mlp": (lambda: MLP([64, 33, 10]), (5, 64)),
    "logreg": (lambda: LogisticRegression(64, 10), (3, 64)),
}


@pytest.mark.parametrize(
    "name",
    # torchvision's AlexNet layout (12 s) runs with the slow tests: the paper layout has the
    # same layer kinds, and test_compiler checks the torchvision one against eager
    [
        pytest.param(n, marks=pytest.mark.slow) if n == "alexnet-torchvision" else n
        for n in sorted(MODELS)
    ],
)
def test_llvm_models_match_numpy_inference_and_training_step(name):
    check_model(name)


def lower_levels() -> list[str]:
    """The vector ISAs below the host's own that it can run and this project tunes for
    (an AVX-512 host runs the AVX2 code path too)."""
    from compiler.target import host_target, supported_levels

    native = host_target("native").isa
    return [lv for lv in supported_levels() if lv != native and lv in ("avx2", "avx512")]


@pytest.mark.parametrize("level", lower_levels())
@pytest.mark.parametrize("name", ["alexnet-paper", "mlp"])
def test_llvm_models_match_numpy_on_a_forced_lower_target(name, level, monkeypatch):
    monkeypatch.setenv("TINYGRAD_EDU_CPU", level)
    check_model(name)


@pytest.mark.parametrize("level", lower_levels())
@settings(max_examples=10, deadline=None)
@given(program=programs(), seed=st.integers(0, 1000))
def test_llvm_random_programs_match_numpy_on_a_forced_lower_target(level, program, seed):
    with mock.patch.dict(os.environ, {"TINYGRAD_EDU_CPU": level}):
        check_random_program(program, seed)


def check_model(name):
    """Inference and one training step on llvm equal the numpy reference."""
    make, shape = MODELS[name]
    x = np.random.default_rng(0).standard_normal(shape).astype(np.float32)
    y = np.arange(shape[0]) % 10
    models = []
    for backend in ("numpy", "llvm"):
        manual_seed(0)
        model = make().eval()
        fwd = compiler.compile(model, x, backend=backend)
        opt = optim.SGD(model.parameters(), lr=0.01, momentum=0.9, weight_decay=5e-4)
        step = compiler.compile_train_step(
            model, lambda o, t: o.cross_entropy(t), opt, x, y, backend=backend
        )
        models.append((model, fwd(x), step(x, y)))
    (m0, out0, loss0), (m1, out1, loss1) = models
    close(out1, out0)
    assert loss1 == pytest.approx(loss0, rel=1e-5)
    for p, q in zip(m1.parameters(), m0.parameters()):
        close(p.numpy(), q.numpy(), rtol=1e-4)


def test_llvm_disk_cache_is_used_and_corrupt_entries_are_rebuilt(tmp_path, monkeypatch):
    from compiler.backends import llvm as backend

    monkeypatch.setenv("TINYGRAD_EDU_CACHE", str(tmp_path))
    backend._Target.reset()
    x = np.ones((2, 8), np.float32)
    model = MLP([8, 3])
    want = compiler.compile(model, x, backend="numpy")(x)
    compiler.compile(model, x, backend="llvm")(x)
    files = [f for f in os.listdir(tmp_path) if f.endswith(".o")]
    assert files
    for f in files:  # corrupt every cached object
        (tmp_path / f).write_bytes(b"TGEDUOBJ" + b"\0" * 40)
    backend._Target.reset()  # a "new process"
    got = compiler.compile(model, x, backend="llvm")(x)
    np.testing.assert_allclose(got, want, rtol=1e-6)
    target = backend._Target.get()
    assert target.misses >= 1  # corrupt entries were compiled again, not loaded
    backend._Target.reset()
    compiler.compile(model, x, backend="llvm")(x)
    assert backend._Target.get().hits >= 1 and backend._Target.get().misses == 0


def test_a_kernel_seen_before_is_not_rendered_and_its_ir_renders_when_read(tmp_path, monkeypatch):
    """A warm compile finds each object through a reference keyed by the kernel IR and the
    renderer's code, without rendering; `kernel.llvm_ir` renders on demand, the same text. A
    missing object, a corrupt reference or a changed renderer means rendering again."""
    from compiler.backends import llvm as backend

    monkeypatch.setenv("TINYGRAD_EDU_CACHE", str(tmp_path))
    x = np.random.default_rng(0).standard_normal((8, 16)).astype(np.float32)
    model = MLP([16, 12, 3])
    want = compiler.compile(model, x, backend="numpy")(x)
    rendered: list[str] = []
    real_render = backend.render

    def counting_render(kernel, checked=False):
        rendered.append(kernel.name)
        return real_render(kernel, checked)

    monkeypatch.setattr(backend, "render", counting_render)

    def fresh_compile():  # as a new process would: no engine, nothing in memory
        backend._Target.reset()
        rendered.clear()
        fn = compiler.compile(model, x, backend="llvm")
        np.testing.assert_allclose(fn(x), want, rtol=1e-5)
        return fn

    cold = fresh_compile()
    names = [k.name for k in cold.kernels if k.llvm_ir]
    assert rendered == names and len(names) >= 2
    first_ir = {k.name: k.llvm_ir for k in cold.kernels}
    warm = fresh_compile()
    assert rendered == []  # every object found by reference
    assert backend._Target.get().misses == 0
    assert {k.name: k.llvm_ir for k in warm.kernels} == first_ir  # rendered when read
    assert sorted(rendered) == sorted(names)

    refs = sorted(tmp_path.glob("*.ref"))
    assert len(refs) == len(names)
    refs[0].write_text("{not json")
    fresh_compile()
    assert len(rendered) == 1  # the unreadable reference: that kernel alone rendered again
    for obj in tmp_path.glob("*.o"):
        obj.unlink()
    fresh_compile()
    assert sorted(rendered) == sorted(names)  # references without objects: all rendered
    assert backend._Target.get().misses == len(names)
    monkeypatch.setattr(backend, "_RENDERER_DIGEST", "another renderer")
    fresh_compile()
    assert sorted(rendered) == sorted(names)  # a changed renderer renders everything again
    backend._Target.reset()


def test_llvm_kernels_use_the_hosts_vector_registers_and_no_gathers(tmp_path, monkeypatch):
    """zmm registers where the target in force (the host's, or the one TINYGRAD_EDU_CPU
    forces) is AVX-512, ymm where it is AVX2: the kernels are built for that CPU."""
    from compiler.backends import llvm as backend
    from compiler.target import host_target

    register = {"avx512": "zmm", "avx2": "ymm", "sse": "xmm"}[host_target().isa]

    monkeypatch.setenv("TINYGRAD_EDU_CACHE", str(tmp_path))  # a fresh cache: compiled here
    backend._Target.reset()
    mm = compiler.compile(MLP([256, 256]), np.ones((64, 256), np.float32), backend="llvm")
    ew = compiler.compile(
        lambda a: (a * 2.0).relu().exp(), np.ones(4096, np.float32), backend="llvm"
    )
    conv = compiler.compile(
        AlexNet(10, "mini").eval(), np.zeros((1, 3, 32, 32), np.float32), backend="llvm"
    )
    for kernel in (mm.kernels[0], ew.kernels[0]):
        assert kernel.llvm_ir.startswith("declare") or "define void" in kernel.llvm_ir
        assert register in kernel.asm
    for kernel in (mm.kernels[0], conv.kernels[0]):
        assert "gather" not in kernel.asm and "scatter" not in kernel.asm


# (rows, k, cols, packed) in units of the host target's GEMM tile: in-place B, packed B
# panels, and sizes the tile does not divide (the last blocks overlap their neighbours)
GEMM_CASES = [((2, 0), 96, (3, 0), False), ((8, 0), 70, (4, 0), True), ((4, 1), 33, (4, 5), False)]


@pytest.mark.parametrize("rows,k,cols,packed", GEMM_CASES, ids=str)
def test_llvm_blocked_gemm_matches_numpy_and_uses_fma(rows, k, cols, packed):
    from compiler.target import host_target

    tile = host_target().gemm_tile
    m, n = rows[0] * tile.rows + rows[1], cols[0] * tile.cols + cols[1]
    r = np.random.default_rng(0)
    a = r.standard_normal((m, k)).astype(np.float32)
    b = r.standard_normal((k, n)).astype(np.float32)
    with mock.patch.dict(os.environ, {"TINYGRAD_EDU_CHECK_BOUNDS": "1"}):
        compiled = compiler.compile(lambda x, y: (x @ y).relu(), a, b, backend="llvm")
        got = compiled(a, b)
    np.testing.assert_allclose(got, np.maximum(a @ b, 0), rtol=1e-4, atol=1e-4)
    source = compiled.kernels[0].pseudo_c()
    assert "acc_tile" in source
    assert ("b_panel" in source) == packed  # B packed when enough row blocks reuse it


# (in, out, kernel, stride, padding, dilation, groups, hw, batch, pool): the implicit-GEMM
# convolution's corner cases — fewer channels than a tile row block, fewer pixels than a
# column block, overlapping remainder blocks, groups, padding wider than the kernel reach,
# dilation, batch 1 (channel split across cores) and pooled epilogues with padding; forward,
# input gradient and weight gradient.
CONV_CASES = [
    (3, 8, 3, 1, 1, 1, 1, 9, 2, None),
    (3, 5, 3, 1, 0, 1, 1, 7, 1, None),
    (2, 3, 1, 1, 0, 1, 1, 4, 1, None),
    (4, 6, 3, 2, 2, 1, 2, 11, 3, None),
    (3, 7, 5, 1, 2, 2, 1, 12, 1, (2, 2, 0)),
    (3, 10, 11, 4, 0, 1, 1, 35, 1, (3, 2, 0)),
    (6, 12, 3, 1, 1, 1, 3, 10, 2, (3, 2, 1)),
    (4, 16, 2, 1, 3, 1, 1, 6, 1, (3, 1, 1)),
    (8, 9, 3, 1, 1, 1, 1, 13, 2, (3, 2, 0)),
    # many taps (and many source channels for the input gradient)
    (64, 8, 3, 1, 1, 1, 1, 9, 3, None),
    (8, 64, 3, 1, 1, 1, 2, 9, 2, None),
]


@pytest.mark.parametrize("case", CONV_CASES, ids=str)
def test_llvm_convolution_schedules_match_numpy(case):
    from tinygrad_edu import nn

    cin, cout, k, s, p, d, groups, hw, batch, pool = case
    manual_seed(1)
    # a 1x1 conv in front: the gradient then flows through the case's conv to its input too
    layers = [
        nn.Conv2d(cin, cin, 1),
        nn.Conv2d(cin, cout, k, stride=s, padding=p, dilation=d, groups=groups),
        nn.ReLU(),
    ]
    if pool:
        layers.append(nn.MaxPool2d(pool[0], pool[1], padding=pool[2]))
    net = nn.Sequential(*layers)
    x = np.random.default_rng(2).standard_normal((batch, cin, hw, hw)).astype(np.float32)
    close(compiler.compile(net, x, backend="llvm")(x), compiler.compile(net, x, backend="numpy")(x))

    def loss(inp):
        out = net(inp)
        return (out * out).sum()

    check_gradients(net, loss, x)


@pytest.mark.parametrize("axis", [None, 0, 1])
def test_llvm_argmax_takes_the_first_largest_value_and_the_first_nan_like_numpy(axis):
    x = np.array([[1.0, 3.0, 3.0, -1.0], [2.0, np.nan, 5.0, np.nan], [0.0, 0.0, 0.0, 0.0]])
    x = x.astype(np.float32)
    got = compiler.compile(lambda t: t.argmax(axis=axis), x, backend="llvm")(x)
    np.testing.assert_array_equal(got, np.argmax(x, axis=axis))


def test_llvm_bounds_check_mode_reports_an_out_of_bounds_kernel_instead_of_corrupting(
    monkeypatch,
):
    from compiler.backends.llvm import LLVMExecutor, OutOfBoundsError
    from compiler.kernel import Buffer, Kernel, Load, Loop, Store, Var

    # a deliberately wrong loop nest: 5 iterations over 4-element buffers
    body = [Loop("i", 5, [Store("y", (Var("i"),), Load("x", (Var("i"),)))])]
    kernel = Kernel(
        "k_oob",
        ["copy"],
        [0, 1],
        [Buffer("x", (4,), "float32", "in", 0), Buffer("y", (4,), "float32", "out", 1)],
        body,
        0,
        16,
        16,
        "elementwise",
    )
    monkeypatch.setenv("TINYGRAD_EDU_CHECK_BOUNDS", "1")
    ex = LLVMExecutor([kernel])
    env = {0: np.arange(4, dtype=np.float32)}
    with pytest.raises(OutOfBoundsError, match=r"k_oob.*'x' \(\(4,\)\) at flat index 4"):
        ex.run_group(None, None, kernel, env)
    np.testing.assert_array_equal(env[1], [0, 1, 2, 3])  # the in-bounds part ran


@pytest.fixture
def bounds_checked(monkeypatch):
    monkeypatch.setenv("TINYGRAD_EDU_CHECK_BOUNDS", "1")


@pytest.mark.parametrize("case", CONV_CASES[:5], ids=str)
def test_llvm_convolution_schedules_stay_in_bounds(case, bounds_checked):
    test_llvm_convolution_schedules_match_numpy(case)


@pytest.mark.parametrize("m,k,n", [(1, 16, 1), (3, 17, 5), (7, 40, 9), (16, 100, 33), (2, 9, 3)])
def test_llvm_linear_layers_match_numpy_for_remainder_shapes(m, k, n):
    """x @ W.T (the dot-product schedule): batch, features and the reduction not multiples of
    the 4 x 4 block or the 16 lanes; forward and gradients."""
    from tinygrad_edu import nn

    manual_seed(3)
    net = nn.Sequential(nn.Linear(k, n), nn.ReLU(), nn.Linear(n, 3))
    x = np.random.default_rng(4).standard_normal((m, k)).astype(np.float32)
    close(compiler.compile(net, x, backend="llvm")(x), compiler.compile(net, x, backend="numpy")(x))
    check_gradients(net, lambda t: (net(t) ** 2).sum(), x, checked=True)


@pytest.mark.parametrize("exponent", [0.75, -0.25, -1.75, 2.0, 0.5, 0.0, 3.25, -1.0, 3.0])
def test_llvm_quarter_powers_by_square_roots_match_numpy(exponent):
    """Constant exponents in quarter steps become sqrt and multiplies (vectorised); the
    values, infinities at 0 and NaNs for negative bases match numpy's power."""
    x = np.array([0.0, 1e-3, 0.3, 1.0, 2.5, 1e3, -2.0, -0.5, -0.0, -np.inf, np.inf, np.nan] * 4)
    x = x.astype(np.float32)
    got = compiler.compile(lambda t: t**exponent, x, backend="llvm")(x)
    with np.errstate(all="ignore"):
        want = np.power(x, np.float32(exponent))
    np.testing.assert_allclose(got, want, rtol=2e-6)


def test_llvm_outputs_are_reused_only_when_the_caller_dropped_them():
    x = np.ones((4, 8), np.float32)
    f = compiler.compile(lambda t: t.relu() * 2, x, backend="llvm")
    first = f(x)
    second = f(x)  # `first` is still referenced: a new array
    assert not np.shares_memory(first, second)
    address = second.ctypes.data
    del first, second
    third = f(x * 3)  # nobody holds the last output: its memory is written again
    assert third.ctypes.data == address
    np.testing.assert_array_equal(third, 6)
    view = third[:2]
    fourth = f(x)  # a view keeps `third` alive
    np.testing.assert_array_equal(view, 6)
    np.testing.assert_array_equal(fourth, 2)
    del third, fourth
    part = f(x * 5)[1:3]  # only a slice of the output is kept
    f(x)
    np.testing.assert_array_equal(part, 10)
    np.testing.assert_array_equal(view, 6)


@pytest.mark.parametrize(
    "fn",
    [
        lambda t: t.permute(0, 2, 3, 1).reshape(2, -1) * 2,  # NHWC flatten
        lambda t: t.T.reshape(-1) * 2 if t.ndim == 2 else t[:, 1:3].reshape(-1) + 1,
        lambda t: t.pad(((0, 0), (0, 0), (1, 1), (0, 0))).reshape(2, -1) * 1,
        lambda t: t.reshape(2, 3, 20).sum(axis=2),
    ],
    ids=["permute", "slice", "pad", "reshape-sum"],
)
def test_llvm_reshape_of_a_folded_view_reads_the_right_elements(fn):
    """A reshape whose source is itself a view (permute, slice, pad) or whose gradient
    broadcasts back (reshape -> sum): forward and gradients equal the reference."""
    from tinygrad_edu import nn

    x = np.random.default_rng(5).standard_normal((2, 3, 4, 5)).astype(np.float32)
    close(compiler.compile(fn, x, backend="llvm")(x), compiler.compile(fn, x, backend="numpy")(x))

    class Scaled(nn.Module):
        def __init__(self):
            super().__init__()
            self.w = Tensor(np.linspace(0.5, 2, 120, dtype=np.float32).reshape(2, 3, 4, 5))

        def forward(self, t):
            return fn(t * self.w)

    net = Scaled()
    net.w.requires_grad = True
    check_gradients(net, lambda t: (net(t) ** 2).sum(), x, checked=True)


@pytest.mark.parametrize(
    "x",
    [
        np.array([[1.0, 1.0 + 1e-12, 0.5], [3.0, 2.0, 3.0 + 1e-10]]),  # float64 exactness
        np.array([[2**40 + 1, 2**40 + 3, 2**40 + 2], [-5, -5, -7]]),  # int64 beyond float32
        np.array([[False, True, True], [False, False, False]]),
    ],
    ids=["float64", "int64", "bool"],
)
def test_llvm_argmax_compares_in_the_source_type(x):
    got = compiler.compile(lambda t: t.argmax(axis=1), x, backend="llvm")(x)
    np.testing.assert_array_equal(got, np.argmax(x, axis=1))


@pytest.mark.parametrize("layout", ["fortran", "read-only", "view"])
def test_train_step_copies_into_parameters_it_cannot_swap(layout, tmp_path):
    """Parameters held as Fortran-ordered, read-only or view arrays are updated by copying
    (or refused with numpy's error), never written through as if they were C-ordered."""
    from tinygrad_edu import nn

    x = np.random.default_rng(6).standard_normal((4, 5)).astype(np.float32)
    y = np.array([0, 1, 2, 0])
    losses = {}
    for backend in ("numpy", "llvm"):
        manual_seed(0)
        model = nn.Linear(5, 3)
        w = model.weight.data.copy()
        if layout == "fortran":
            model.weight.data = np.asfortranarray(w)
        elif layout == "view":
            model.weight.data = np.concatenate([w, w])[:3]
        else:
            np.save(tmp_path / "w.npy", w)
            model.weight.data = np.load(tmp_path / "w.npy", mmap_mode="r")
        opt = optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
        step = compiler.compile_train_step(
            model, lambda o, t: o.cross_entropy(t), opt, x, y, backend=backend
        )
        if layout == "read-only":
            with pytest.raises(ValueError, match="read-only"):
                for _ in range(3):
                    step(x, y)
            continue
        losses[backend] = [step(x, y) for _ in range(4)] + [model.weight.numpy().copy()]
    if losses:
        np.testing.assert_allclose(losses["llvm"][:4], losses["numpy"][:4], rtol=1e-5)
        close(losses["llvm"][4], losses["numpy"][4])


@pytest.mark.parametrize(
    "variant,size",
    # the full-size step (~30 s on a Zen 3) with the slow tests; the mini one covers the same ops
    [pytest.param("paper", 227, marks=pytest.mark.slow), ("mini", 32)],
)
def test_llvm_alexnet_training_step_in_float64_equals_the_reference(variant, size):
    """In float64 every schedule agrees with the reference to rounding (1e-15 measured). In
    float32 early-layer gradients can differ by ~1%: where a max-pool window's two largest
    values differ by less than float32 rounding, a different summation order picks the other
    one, and its gradient goes to a different element (float64 shows no such flips)."""
    x = np.random.default_rng(0).standard_normal((2, 3, size, size))
    y = np.array([1, 7])
    states = []
    for backend in ("numpy", "llvm"):
        manual_seed(0)
        model = AlexNet(10, variant).eval()
        for p in model.parameters():
            p.data = p.data.astype(np.float64)
        opt = optim.SGD(model.parameters(), lr=0.01, momentum=0.9, weight_decay=5e-4)
        step = compiler.compile_train_step(
            model, lambda o, t: o.cross_entropy(t), opt, x, y, backend=backend
        )
        loss = step(x, y)
        states.append((loss, [s["momentum_buffer"].copy() for s in opt.state]))
    (loss0, grads0), (loss1, grads1) = states
    assert loss1 == pytest.approx(loss0, rel=1e-12)
    for a, b in zip(grads1, grads0):
        assert a.dtype == np.float64
        close(a, b, rtol=1e-10)


def test_the_llvm_walkthrough_in_docs_runs_and_shows_what_it_describes(capsys):
    """docs/llvm_backend.md: its snippet runs, and the kernel has the panel, the register tile,
    its copy and the pooling tile the text walks through."""
    import pathlib
    import re

    text = (pathlib.Path(__file__).parent.parent / "docs" / "llvm_backend.md").read_text()
    snippet = re.search(r"```python\n(.*?)```", text, re.S).group(1)
    scope: dict = {}
    exec(snippet, scope)  # noqa: S102 (the documentation's own example)
    source = scope["kernel"].pseudo_c()
    tile = scope["kernel"].target.gemm_tile  # 8 channels, 8 x 8 pixels, 27 taps
    cols, rows = min(tile.cols, 64), min(tile.rows, 8)
    names = (f"panel[27][{cols}]", f"acc_tile[{rows}][{cols}]", "done_tile", "tile[8][8][8]")
    for name in (*names, "pool", f"built for {scope['kernel'].target.isa}"):
        assert name in source
    assert f"<{tile.lanes} x float>" in scope["kernel"].llvm_ir
    capsys.readouterr()


def test_llvm_thread_count_follows_the_environment_and_rejects_nonsense(monkeypatch):
    from compiler.backends.llvm import thread_count

    monkeypatch.setenv("TINYGRAD_EDU_THREADS", "3")
    assert thread_count() == 3
    monkeypatch.setenv("TINYGRAD_EDU_THREADS", "many")
    with pytest.raises(ValueError, match="TINYGRAD_EDU_THREADS='many'"):
        thread_count()
    monkeypatch.delenv("TINYGRAD_EDU_THREADS")
    assert 1 <= thread_count() <= (os.cpu_count() or 1)


def test_cold_kernels_compile_in_worker_processes_and_load_from_the_cache(tmp_path, monkeypatch):
    """A cold compile of many kernels runs in worker processes (one per usable core) that
    write the disk cache; the results equal the in-process compile, and a new process loads
    every object with its assembly from the cache."""
    from compiler.backends import llvm as backend
    from compiler.target import usable_cores

    if usable_cores() < 2:
        pytest.skip("one usable core: no worker processes")
    monkeypatch.setenv("TINYGRAD_EDU_CACHE", str(tmp_path))
    x = np.random.default_rng(0).standard_normal((2, 3, 32, 32)).astype(np.float32)
    manual_seed(0)
    model = AlexNet(10, "mini").eval()
    backend._Target.reset()
    cold = compiler.compile(model, x, backend="llvm")
    engine = backend._Target.get()
    assert engine.processes_used >= 2 and engine.misses >= 8
    close(cold(x), compiler.compile(model, x, backend="numpy")(x))
    backend._Target.reset()  # a "new process": everything from the disk cache
    warm = compiler.compile(model, x, backend="llvm")
    assert backend._Target.get().misses == 0
    assert all(k.asm for k in warm.kernels if k.llvm_ir)  # assembly is cached too
    np.testing.assert_array_equal(warm(x), cold(x))


def test_a_failing_compile_worker_only_costs_time(tmp_path, monkeypatch):
    """Workers that cannot start (here: a Python that exits at once) leave their kernels to
    the calling process."""
    from compiler.backends import llvm as backend

    monkeypatch.setenv("TINYGRAD_EDU_CACHE", str(tmp_path))
    monkeypatch.setattr(backend.sys, "executable", "/bin/false")
    monkeypatch.setattr(backend._Target, "_instances", {})
    from compiler.target import usable_cores

    if usable_cores() < 2:
        pytest.skip("one usable core: no worker processes")
    x = np.random.default_rng(1).standard_normal((2, 3, 32, 32)).astype(np.float32)
    manual_seed(0)
    model = AlexNet(10, "mini").eval()
    got = compiler.compile(model, x, backend="llvm")(x)
    assert backend._Target.get().processes_used >= 2  # they were started, and failed
    close(got, compiler.compile(model, x, backend="numpy")(x))


def test_tile_search_measures_once_records_its_choice_and_keeps_results(tmp_path, monkeypatch):
    """TINYGRAD_EDU_TUNE=1: the hot register-tiled kernels are timed with each candidate
    tile, the choice is recorded on the kernel and cached (a second compile measures
    nothing), and the results equal the reference whatever tile won."""
    from compiler import tune
    from compiler.backends import llvm as backend
    from tinygrad_edu import nn

    monkeypatch.setenv("TINYGRAD_EDU_CACHE", str(tmp_path))
    monkeypatch.setenv("TINYGRAD_EDU_TUNE", "1")
    monkeypatch.setattr(tune, "MIN_FLOPS", 0)
    backend._Target.reset()
    manual_seed(0)
    net = nn.Sequential(nn.Conv2d(8, 16, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2))
    x = np.random.default_rng(0).standard_normal((2, 8, 12, 12)).astype(np.float32)
    first = compiler.compile(net, x, backend="llvm")
    conv = first.kernels[0]
    assert conv.tuning.startswith("tried ") and "; chose " in conv.tuning
    assert "// tuned: tried" in conv.pseudo_c()
    assert (tmp_path / "tuning.json").exists()
    close(first(x), compiler.compile(net, x, backend="numpy")(x))
    again = tune.tune(first.fusion, compiler.lower(first.fusion, "cpu"), conv.target)
    assert again.measured == 0 and again.notes  # from the cache
    monkeypatch.setenv("TINYGRAD_EDU_TUNE", "0")
    assert not compiler.compile(net, x, backend="llvm").kernels[0].tuning


def test_a_let_named_like_a_vector_loops_chunk_counter_does_not_shadow_it():
    """A long vectorised loop over i counts its vector chunks in a variable of its own. A
    kernel Let called i_v (what that counter was once named), left scalar by a previous
    loop's remainder, was read as the counter: wrong addresses, silently."""
    from compiler.backends.llvm import LLVMExecutor
    from compiler.kernel import Bin, Buffer, Const, Kernel, Let, Load, Loop, Store, Var, vectorize
    from compiler.target import host_target

    n = 25 * host_target().lanes + 3  # a chunk loop, then a scalar remainder
    at = (Var("i"),)

    def scaled(scale, out, plus=None):
        value = Var("i_v") if plus is None else Bin("+", Var("i_v"), Load(plus, at))
        body = [Let("i_v", Bin("*", Load("x", at), Const(scale))), Store(out, at, value)]
        return Loop("i", n, body, [vectorize(host_target().lanes)])

    buffers = [
        Buffer(name, (n,), "float32", role, k)
        for k, (name, role) in enumerate([("x", "in"), ("y", "out"), ("z", "out")])
    ]
    body = [scaled(2.0, "y"), scaled(3.0, "z", plus="y")]
    kernel = Kernel("k_shadow", ["mul"], [0, 1, 2], buffers, body, n, 4 * n, 8 * n, "elementwise")
    env = {0: np.arange(n, dtype=np.float32)}
    LLVMExecutor([kernel]).run_group(None, None, kernel, env)
    np.testing.assert_array_equal(env[2], 5 * np.arange(n, dtype=np.float32))


# (shape, axes): a sum over 7x7 pixels (ResNet's last BatchNorm), extents the target's lanes
# leave a remainder of, exactly one vector, and a whole-tensor reduction
REDUCTIONS = [((8, 32, 7, 7), (0, 2, 3)), ((3, 37), (1,)), ((5, 16), (1,)), ((2, 3, 49), (2,))]


@pytest.mark.parametrize("shape,axes", REDUCTIONS, ids=str)
def test_vector_loops_reduce_lane_wise_without_gathers(shape, axes, tmp_path, monkeypatch):
    """A register summed (or maxed) in a vector loop is carried as a vector and reduced across
    lanes once: LLVM was left a scalar loop before, and for 7x7 vectorised the loop around it
    with gathers (0.52 ms for ResNet's 16x512x7x7 statistics against 0.13 ms now)."""
    from compiler.backends import llvm as backend
    from compiler.target import host_target

    monkeypatch.setenv("TINYGRAD_EDU_CACHE", str(tmp_path))  # a fresh cache: compiled here
    backend._Target.reset()
    x = np.random.default_rng(0).standard_normal(shape).astype(np.float32)
    lanes = host_target().lanes
    for name, f in {
        "sum": lambda t: (t * t).sum(axis=axes),
        "max": lambda t: t.amax(axes),
        "min": lambda t: t.amin(axes),
    }.items():
        compiled = compiler.compile(f, x, backend="llvm")
        np.testing.assert_allclose(compiled(x), f(Tensor(x)).numpy(), rtol=1e-5, atol=1e-5)
        (kernel,) = compiled.kernels
        if name == "sum":  # (LLVM's SLP pass may still gather a max's last lanes, once a row)
            assert "gather" not in kernel.asm
        if shape[-1] >= lanes:
            reduce = "fadd" if name == "sum" else f"f{name}imum"
            assert f"llvm.vector.reduce.{reduce}.v{lanes}f32" in kernel.llvm_ir, name


NAN_CASES = {
    "relu": lambda t: t.relu(),
    "max_pool2d": lambda t: t.max_pool2d(3, 2, 1),
    "amax": lambda t: t.amax(1),
    "amin": lambda t: t.amin((0, 2, 3)),
    "maximum": lambda t: t.maximum(t.detach() * 0.0 + 0.25),
    "relu_conv_pool": lambda t: (t * 2.0 + 1.0).relu().max_pool2d(2),
}


@pytest.mark.parametrize("name", NAN_CASES)
def test_compiled_max_and_min_keep_a_nan_like_eager(name):
    """numpy and PyTorch let a NaN through max, min and ReLU; the compiled kernels did not
    (LLVM's maxnum, C's fmaxf): a NaN in training vanished where eager would have shown it."""
    f = NAN_CASES[name]
    x = np.random.default_rng(1).standard_normal((2, 3, 8, 8)).astype(np.float32)
    x[0, 1, 2, 3] = x[1, 2, 5, 5] = np.nan
    x[1, 0, 7, 7] = -np.inf
    want = f(Tensor(x)).numpy()
    assert np.isnan(want).any()
    got = compiler.compile(f, x, backend="llvm")(x)
    np.testing.assert_array_equal(np.isnan(got), np.isnan(want))
    np.testing.assert_allclose(got, want, rtol=1e-6)


def test_float64_erf_is_libm_accurate():
    # the float32 fit (1e-7) made exact GELU's float64 kernels differ from eager by 4e-9
    import math

    xs = np.linspace(-6.0, 6.0, 1201)
    f = compiler.compile(lambda v: v.erf(), Tensor(xs, dtype="float64"), backend="llvm")
    np.testing.assert_allclose(f(xs), [math.erf(v) for v in xs], rtol=1e-15, atol=1e-16)
    x32 = xs.astype(np.float32)
    f32 = compiler.compile(lambda v: v.erf(), Tensor(x32), backend="llvm")
    np.testing.assert_allclose(f32(x32), [math.erf(v) for v in x32], rtol=0, atol=3e-7)


@pytest.mark.parametrize("checked", [False, True])
@pytest.mark.parametrize("width", [18, 37, 47])
def test_a_vector_loops_partial_last_vector_is_exact_and_stays_in_bounds(width, checked):
    """The last, partial vector of a row (masked on AVX-512, lane by lane elsewhere: the
    host target decides) computes what numpy does, reads and writes nothing past the row
    (bounds-checked), and adds the reduction's identity in its dead lanes: the rows are all
    negative, so a dead lane's 0 would win their max."""
    from compiler.target import host_target

    x = -1.0 - np.random.default_rng(width).random((3, width)).astype(np.float32)

    def f(v):
        return (v * 2.0 + 1.0).relu() - v, v.amax(1), (v * v).sum(axis=1)

    with mock.patch.dict(os.environ, {"TINYGRAD_EDU_CHECK_BOUNDS": "1" if checked else "0"}):
        compiled = compiler.compile(f, Tensor(x), backend="llvm")
        got = compiled(x)
    want = f(Tensor(x))
    for a, b in zip(got.values(), want, strict=True):
        np.testing.assert_allclose(a, b.numpy(), rtol=2e-6)
    ir = "".join(k.sources["llvm_ir"] for k in compiled.kernels)
    masked = "llvm.masked.store" in ir and "llvm.masked.load" in ir
    assert masked == host_target().masked_remainders, ir[-2000:]


def test_memory_bound_kernels_long_loops_are_left_rolled_and_stay_small(tmp_path, monkeypatch):
    """LLVM's unroller leaves the long loops of elementwise, reduce and movement kernels
    alone (`backends.llvm.ROLLED_KINDS`): a 16 x 1000 bias-gradient sum was fully unrolled
    into ~2,400 instructions and 0.2 s of compile time, for no speed."""
    from compiler import asm
    from compiler.backends import llvm as backend

    monkeypatch.setenv("TINYGRAD_EDU_CACHE", str(tmp_path))
    backend._Target.reset()
    g = np.random.default_rng(0).standard_normal((16, 1000)).astype(np.float32)
    compiled = compiler.compile(lambda t: t.sum(0), g, backend="llvm")
    np.testing.assert_allclose(compiled(g), g.sum(0), rtol=1e-5, atol=1e-5)
    (kernel,) = compiled.kernels
    assert kernel.kind in backend.ROLLED_KINDS
    assert '!"llvm.loop.unroll.disable"' in kernel.llvm_ir
    assert len(asm._instructions(kernel.asm)) < 1000


@pytest.mark.parametrize("caller_too", [True, False])
def test_parallel_slices_are_dealt_out_each_run_exactly_once(caller_too):
    """The parallel loop's slices go to whichever thread is free (`_Workers.run`): every
    slice runs once, on no more threads than there are workers, the caller among them only
    when `caller_too` (kernels with big on-chip tiles need the workers' big stacks)."""
    import threading
    import time

    from compiler.backends import llvm as backend

    workers = backend._Workers(2)
    ran: list[tuple[int, int, str]] = []
    lock = threading.Lock()

    def fn(args, start, end):
        time.sleep(0.002 if start % 3 == 0 else 0.0005)  # uneven slices
        with lock:
            ran.append((start, end, threading.current_thread().name))

    bounds = [(i, i + 1) for i in range(13)]
    workers.run(fn, None, bounds, caller_too)
    assert sorted((a, b) for a, b, _ in ran) == bounds
    threads = {name for *_, name in ran}
    assert len(threads) <= 2
    if not caller_too:
        assert threading.current_thread().name not in threads


@pytest.mark.parametrize("n", [3, 4, 5, 7, 12, 13, 15, 20, 31, 25 * 8 + 6])
def test_vector_loop_remainders_equal_numpy(n):
    """A vector loop's last partial vector: masked where the target masks cheaply (AVX-512),
    else a half-width vector for half of it or more and single lanes for the rest; a loop
    shorter than a vector but at least half of one is vectorised the same way (a row
    panel's pieces: 12 columns a ymm and an xmm, not a ymm and 4 lanes)."""
    from compiler import kernel as k
    from compiler.backends.llvm import LLVMExecutor
    from compiler.target import host_target

    target = host_target()
    at = (k.Var("i"),)
    # the row pack's copy: a load, then a select on a row test
    body = [
        k.Let("v", k.Bin("*", k.Load("x", at), k.Const(3.0))),
        k.Store("y", at, k.Select(k.Var("ok"), k.Var("v"), k.Const(0.0))),
    ]
    buffers = [k.Buffer("x", (n,), "float32", "in", 0), k.Buffer("y", (n,), "float32", "out", 1)]
    loop = k.Loop("i", n, body, [k.vectorize(target.lanes)])
    kernel = k.Kernel(
        "k_rest", ["mul"], [0, 1], buffers, [k.Let("ok", k.Const(1.0)), loop], n, 4 * n, 4 * n,
        "elementwise",
    )  # fmt: skip
    x = np.random.default_rng(n).standard_normal(n).astype(np.float32)
    env = {0: x}
    executor = LLVMExecutor([kernel])
    executor.run_group(None, None, kernel, env)
    np.testing.assert_array_equal(env[1], x * np.float32(3))
    half, rest = target.lanes // 2, n % target.lanes
    if not target.masked_remainders and half >= 4:
        assert (f"<{half} x float>" in kernel.llvm_ir) == (rest >= half)
