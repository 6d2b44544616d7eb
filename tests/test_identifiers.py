"""Names in generated code: whatever a model's modules and attributes are called (digits first
as in nn.Sequential, dots, dashes, unicode, C/CUDA keywords, the compiler's own local names,
two names that clean to the same string), every kernel's identifiers are valid and unique:
LLVM kernels run and equal the numpy backend, CUDA sources compile with `nvcc --ptx`."""

import re
import shutil
import subprocess

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import compiler
from compiler.backends.cuda import render_module
from compiler.kernel import Buffer, Kernel, Let, Load, Loop, Store, Var
from compiler.names import RESERVED, check_kernel_names, identifier
from tinygrad_edu import Tensor, manual_seed, nn, optim

needs_nvcc = pytest.mark.skipif(shutil.which("nvcc") is None, reason="nvcc is not on PATH")
C_IDENTIFIER = re.compile(r"[A-Za-z][A-Za-z0-9_]*")

# Attribute names that broke, or could break, generated code: C/CUDA keywords and builtins,
# the compiler's own local and temporary names, digits first, punctuation, unicode, and pairs
# that clean to the same identifier ("a.b" / "a_b", "é" / "e").
AWKWARD = [
    "0", "1", "10", "a.b", "a_b", "a-b", "a b", "a__b", "int", "float", "return", "__global__",
    "threadIdx", "blockIdx", "INFINITY", "expf", "n", "oc", "acc", "tile", "w", "g", "s",
    "t0", "t7", "c3", "v2", "tid", "As", "x", "in_x", "p_a_b", "é", "e", "λ", "ö.ö", "", "_",
]  # fmt: skip
NAMES = st.one_of(st.sampled_from(AWKWARD), st.text(max_size=5))
WIDTH = 3


def nvcc_ptx(source: str, tmp_path, name: str) -> None:
    cu = tmp_path / f"{name}.cu"
    cu.write_text(source)
    result = subprocess.run(
        ["nvcc", "--ptx", "-arch=sm_90", "-o", str(tmp_path / f"{name}.ptx"), str(cu)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr[-4000:]


class Tree(nn.Module):
    """A module built from a spec: (attribute name, "matrix" | "bias" | "seq" | sub-spec)."""

    def __init__(self, spec: list, rng: np.random.Generator) -> None:
        super().__init__()
        order = []
        for name, kind in spec:
            if kind == "matrix":
                value = Tensor(rng.standard_normal((WIDTH, WIDTH)), requires_grad=True)
            elif kind == "bias":
                value = Tensor(rng.standard_normal(WIDTH), requires_grad=True)
            elif kind == "seq":
                value = nn.Sequential(nn.Linear(WIDTH, WIDTH), nn.Tanh())
            else:
                value = Tree(kind, rng)
            setattr(self, name, value)
            order.append(name)
        object.__setattr__(self, "order", order)

    def forward(self, x):
        for name in self.order:
            value = getattr(self, name)
            if isinstance(value, nn.Module):
                x = value(x)
            elif value.ndim == 2:
                x = (x @ value).tanh()
            else:
                x = x + value
        return x


def specs(depth: int) -> st.SearchStrategy:
    kinds = st.sampled_from(["matrix", "bias", "seq"])
    if depth:
        kinds = st.one_of(kinds, specs(depth - 1))
    # names Module itself uses ("training", "forward", ...) are not free for attributes
    free = NAMES.filter(lambda s: s not in ("_buffers", "order") and not hasattr(Tree, s))
    return st.lists(
        st.tuples(free, kinds),
        min_size=1,
        max_size=4,
        unique_by=lambda t: t[0],
    )


def model_for(spec: list) -> Tree:
    manual_seed(0)  # nn.Linear draws from the global generator
    return Tree(spec, np.random.default_rng(0))


def assert_identifiers_valid_and_unique(kernels: list[Kernel]) -> None:
    for k in kernels:
        names = [b.name for b in k.buffers]
        assert all(C_IDENTIFIER.fullmatch(n) and n not in RESERVED for n in names), names
        assert len(set(names)) == len(names), names
        assert C_IDENTIFIER.fullmatch(k.name), k.name


@given(st.text())
def test_identifier_is_ascii_words_joined_by_single_underscores(text):
    out = identifier(text)
    assert re.fullmatch(r"([A-Za-z0-9]+(_[A-Za-z0-9]+)*)?", out), out
    assert identifier(out) == out  # already clean names are kept as they are


def test_leaf_names_become_prefixed_identifiers_that_keep_the_original_visible():
    names = ["a.b", "a_b", "int"]  # two that clean alike, and a C keyword

    class Awkward(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            for i, name in enumerate(names):
                setattr(self, name, Tensor(np.full(WIDTH, float(i)), requires_grad=True))

        def forward(self, x):
            for name in names:
                x = x + getattr(self, name)
            return x

    (kernel,) = compiler.compile(Awkward(), np.zeros((2, WIDTH)), backend="numpy").kernels
    assert [b.name for b in kernel.inputs] == ["in_x0", "p_a_b", "p_a_b_2", "p_int"]
    assert [b.label for b in kernel.inputs] == ["x0", "a.b", "a_b", "int"]
    assert "p_a_b = 'a.b', p_a_b_2 = 'a_b'" in kernel.pseudo_c()


def test_sequential_conv_relu_pool_runs_on_llvm_like_numpy():
    x = np.random.default_rng(1).standard_normal((2, 3, 8, 8)).astype(np.float32)
    model = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2))
    ours = compiler.compile(model, x, backend="llvm")
    ref = compiler.compile(model, x, backend="numpy")
    assert "p_0_weight" in ours.kernels[0].pseudo_c()
    np.testing.assert_allclose(ours(x), ref(x), rtol=1e-5, atol=1e-6)


@needs_nvcc
def test_sequential_conv_relu_pool_cuda_source_compiles_with_nvcc(tmp_path):
    """Regression: `0.weight` was rendered as the C identifier `0_weight`."""
    model = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2))
    compiled = compiler.compile(model, np.zeros((2, 3, 8, 8), np.float32), backend="cuda")
    source, rendered = render_module(compiled.kernels)
    assert rendered and "p_0_weight" in source
    nvcc_ptx(source, tmp_path, "sequential")


def test_a_local_named_like_a_buffer_is_a_compile_error_not_a_wrong_number():
    buffers = [Buffer("w", (4,), "float32", "in", 0), Buffer("t1", (4,), "float32", "out", 1)]
    body = [Loop("w", 4, [Store("t1", (Var("w"),), Load("w", (Var("w"),)))])]
    kernel = Kernel("k0_copy", ["copy"], [1], buffers, body, 0, 16, 16, "elementwise")
    with pytest.raises(RuntimeError, match="'w' is both a buffer and a local"):
        check_kernel_names(kernel)
    kernel.body = [Loop("i", 4, [Let("int", Load("w", (Var("i"),)))])]
    with pytest.raises(RuntimeError, match="'int' is not a valid identifier or is reserved"):
        check_kernel_names(kernel)
    from compiler.backends import cuda, llvm

    for render in (llvm.render, cuda.render):  # the backends check before generating code
        with pytest.raises(RuntimeError, match="'int' is not a valid identifier"):
            render(kernel)


@settings(max_examples=6, deadline=None)
@given(spec=specs(2))
def test_random_module_trees_with_awkward_names_run_on_llvm_like_numpy(spec):
    model = model_for(spec)
    x = np.random.default_rng(2).standard_normal((2, WIDTH))
    ours = compiler.compile(model, x, backend="llvm")
    assert_identifiers_valid_and_unique(ours.kernels)
    ref = compiler.compile(model, x, backend="numpy")
    np.testing.assert_allclose(ours(x), ref(x), rtol=1e-6, atol=1e-9)


@settings(max_examples=3, deadline=None)
@given(spec=specs(1))
def test_random_module_trees_with_awkward_names_train_on_llvm_like_numpy(spec):
    x = np.random.default_rng(3).standard_normal((4, WIDTH))
    y = np.arange(4) % WIDTH
    losses, params = [], []
    for backend in ("llvm", "numpy"):
        model = model_for(spec)
        opt = optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
        step = compiler.compile_train_step(
            model, lambda o, t: o.cross_entropy(t), opt, x, y, backend=backend
        )
        assert_identifiers_valid_and_unique(step.kernels)
        losses.append([step(x, y) for _ in range(2)])
        params.append([p.numpy() for p in model.parameters()])
    np.testing.assert_allclose(losses[0], losses[1], rtol=1e-6)
    for a, b in zip(*params):
        np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-9)


@needs_nvcc
@settings(max_examples=4, deadline=None)
@given(spec=specs(2), train=st.booleans())
def test_random_module_trees_with_awkward_names_render_cuda_that_nvcc_compiles(
    spec, train, tmp_path_factory
):
    model = model_for(spec)
    x = np.zeros((4, WIDTH), np.float32)
    if train:
        opt = optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
        compiled = compiler.compile_train_step(
            model, lambda o, t: o.cross_entropy(t), opt, x, np.arange(4) % WIDTH, backend="cuda"
        )
    else:
        compiled = compiler.compile(model, x, backend="cuda")
    assert_identifiers_valid_and_unique(compiled.kernels)
    source, rendered = render_module(compiled.kernels)  # every kernel, one nvcc call
    assert rendered
    nvcc_ptx(source, tmp_path_factory.mktemp("cu"), "tree")
