"""CUDA backend. Without a GPU: every kernel the compiler emits for AlexNet (both variants,
forward and training step), the MLP, logistic regression and random programs renders to CUDA C
that `nvcc --ptx -arch=sm_90` compiles. With CuPy and a device (tests marked `gpu`; `-m gpu`
selects them, bench/gpu_check.sh runs them): every kernel's results equal the numpy backend
for those models and random programs, forward and training step, and eager CUDA tensors equal
CPU ones."""

import shutil
import subprocess

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import compiler
from compiler.backends.cuda import render_module
from compiler.graph import trace
from compiler.passes import autodiff
from compiler.testing import programs
from models import MLP, AlexNet, LogisticRegression
from tinygrad_edu import Tensor, manual_seed, nn, optim


def _device_reason() -> str | None:
    try:
        import cupy
    except ImportError:
        return "no cupy (pip install -e '.[cuda]')"
    try:
        if cupy.cuda.runtime.getDeviceCount() < 1:
            return "cupy is installed but no CUDA device is visible"
    except Exception as e:  # noqa: BLE001
        return f"cupy is installed but no CUDA device is usable ({type(e).__name__})"
    return None


NO_DEVICE = _device_reason()


def needs_gpu(test):
    """Marked `gpu`; skipped, saying why, without CuPy or a device."""
    skip = pytest.mark.skipif(NO_DEVICE is not None, reason=f"no GPU/CuPy: {NO_DEVICE}")
    return pytest.mark.gpu(skip(test))


needs_nvcc = pytest.mark.skipif(shutil.which("nvcc") is None, reason="nvcc is not on PATH")

MODELS = {
    "alexnet-paper": (lambda: AlexNet(10, "paper"), (2, 3, 227, 227)),
    "alexnet-torchvision": (lambda: AlexNet(10, "torchvision"), (2, 3, 224, 224)),
    "alexnet-mini": (lambda: AlexNet(10, "mini"), (2, 3, 32, 32)),
    "mlp": (lambda: MLP([64, 32, 10]), (4, 64)),
    "logreg": (lambda: LogisticRegression(64, 10), (4, 64)),
}


def nvcc_ptx(source: str, tmp_path, name: str) -> None:
    cu = tmp_path / f"{name}.cu"
    cu.write_text(source)
    result = subprocess.run(
        ["nvcc", "--ptx", "-arch=sm_90", "-o", str(tmp_path / f"{name}.ptx"), str(cu)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-4000:]


def compiled_for(name, train, backend="cuda"):
    make, shape = MODELS[name]
    manual_seed(0)
    model = make()
    x = np.random.default_rng(0).standard_normal(shape).astype(np.float32)
    y = np.arange(shape[0]) % 10
    if train:
        opt = optim.SGD(model.parameters(), lr=0.01, momentum=0.9, weight_decay=5e-4)
        step = compiler.compile_train_step(
            model, lambda o, t: o.cross_entropy(t), opt, x, y, backend=backend
        )
        return step, model, x, y
    return compiler.compile(model.eval(), x, backend=backend), model, x, y


@needs_nvcc
@pytest.mark.parametrize("train", [False, True], ids=["forward", "train-step"])
@pytest.mark.parametrize("name", sorted(MODELS))
def test_generated_cuda_compiles_with_nvcc(name, train, tmp_path):
    compiled, *_ = compiled_for(name, train)
    kernels = compiled.kernels
    source, rendered = render_module(kernels)
    assert len(rendered) >= len(kernels) - 6  # only runtime-helper kernels fall back
    assert all("cuda" in k.sources for k in kernels if k.name in rendered)
    nvcc_ptx(source, tmp_path, f"{name}-{train}")


@needs_nvcc
@settings(max_examples=8, deadline=None)
@given(program=programs(), seed=st.integers(0, 10))
def test_generated_cuda_for_random_programs_compiles(program, seed, tmp_path_factory):
    xs = program.example_inputs(seed)
    source, _ = render_module(compiler.compile(program, *xs, backend="cuda").kernels)
    nvcc_ptx(source, tmp_path_factory.mktemp("cu"), f"random{seed}")


def test_conv1_block_is_one_shared_memory_tiled_kernel():
    from test_compiler import Conv1Block

    compiled = compiler.compile(
        Conv1Block(), np.zeros((2, 3, 227, 227), np.float32), backend="cuda"
    )
    (kernel,) = compiled.kernels
    src = kernel.sources["cuda"]
    assert "__shared__" in src and "__syncthreads" in src and "conv-tile" in src
    (out,) = kernel.outputs
    assert out.shape == (2, 96, 27, 27)
    assert src.count(f"{out.name}[") == 1  # one global store: the pooled value


@pytest.mark.skipif(NO_DEVICE is None, reason="a device is present")
def test_running_without_a_device_says_why():
    compiled = compiler.compile(MLP([8, 4]), np.zeros((2, 8), np.float32), backend="cuda")
    with pytest.raises(RuntimeError, match="cupy|CUDA device"):
        compiled(np.zeros((2, 8), np.float32))
    with pytest.raises(RuntimeError, match="cupy|CUDA device"):
        Tensor(np.zeros(3), device="cuda")


@needs_gpu
def test_eager_cuda_tensors_match_cpu():
    r = np.random.default_rng(0)
    x, w = r.standard_normal((2, 3, 17, 17)), r.standard_normal((4, 3, 3, 3))
    results = []
    for device in ("cpu", "cuda"):
        xt = Tensor(x, requires_grad=True, device=device)
        wt = Tensor(w, requires_grad=True, device=device)
        loss = xt.conv2d(wt, padding=1).relu().max_pool2d(2).logsumexp(1).mean()
        loss.backward()
        results.append((loss.item(), xt.grad.numpy(), wt.grad.numpy()))
        assert xt.grad.device == device
    for a, b in zip(*results):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5)


def close(a, b, rtol=1e-4):
    scale = max(float(np.abs(b).max()), 1.0) if np.size(b) else 1.0
    np.testing.assert_allclose(a, b, rtol=rtol, atol=rtol * scale)


def _squares(outputs):
    loss = None
    for o in outputs:
        term = (o * o).mean()
        loss = term if loss is None else loss + term
    return loss


@needs_gpu
@settings(max_examples=8, deadline=None)
@given(program=programs(), seed=st.integers(0, 1000))
def test_cuda_matches_numpy_backend_for_random_programs(program, seed):
    x = np.random.default_rng(seed).standard_normal(program.x_shape).astype(np.float32)
    ours, ref = (compiler.compile(program, x, backend=b).run(x) for b in ("cuda", "numpy"))
    for name in ref:
        close(ours[name], ref[name])
    graph = trace(lambda t: _squares(program(t)), x, module=program)
    bindings = {n: (lambda p=p: p.data) for n, p in program.named_parameters()}
    grads = [
        compiler.build(autodiff(graph, sgd=None), backend, bindings).run(x)
        for backend in ("cuda", "numpy")
    ]
    for name in grads[1]:
        close(grads[0][name], grads[1][name])


@needs_gpu
def test_cuda_runs_a_sequential_whose_parameters_start_with_digits():
    x = np.random.default_rng(1).standard_normal((2, 3, 8, 8)).astype(np.float32)
    model = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2))
    ours, ref = (compiler.compile(model, x, backend=b) for b in ("cuda", "numpy"))
    np.testing.assert_allclose(ours(x), ref(x), rtol=1e-4, atol=1e-5)


@needs_gpu
def test_cuda_takes_and_returns_device_arrays():
    import cupy

    x = np.random.default_rng(2).standard_normal((4, 64)).astype(np.float32)
    manual_seed(0)
    model = MLP([64, 32, 10])
    compiled = compiler.compile(model, x, backend="cuda")
    out = compiled(cupy.asarray(x))
    assert isinstance(out, cupy.ndarray)
    np.testing.assert_allclose(cupy.asnumpy(out), model(Tensor(x)).numpy(), rtol=1e-4, atol=1e-5)


@needs_gpu
def test_eager_cuda_training_steps_match_cpu():
    x = np.random.default_rng(3).standard_normal((8, 64)).astype(np.float32)
    y = np.arange(8) % 10
    runs = []
    for device in ("cpu", "cuda"):
        manual_seed(0)
        model = MLP([64, 32, 10])
        for p in model.parameters():
            p.data = p.to(device).data
        opt = optim.SGD(model.parameters(), lr=0.1, momentum=0.9, weight_decay=5e-4)
        losses = []
        for _ in range(3):
            loss = model(Tensor(x, device=device)).cross_entropy(Tensor(y, device=device))
            opt.zero_grad()
            loss.backward()
            opt.step()
            losses.append(loss.item())
        runs.append((losses, [p.numpy() for p in model.parameters()]))
    np.testing.assert_allclose(runs[0][0], runs[1][0], rtol=1e-5)
    for a, b in zip(runs[0][1], runs[1][1]):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6)


# last: the slowest GPU tests (a device-time limit cuts these, not the quick ones above)
@needs_gpu
@pytest.mark.parametrize("train", [False, True], ids=["forward", "train-step"])
@pytest.mark.parametrize("name", sorted(MODELS))
def test_cuda_matches_numpy_backend(name, train):
    ours, model, x, y = compiled_for(name, train)
    ref, ref_model, _, _ = compiled_for(name, train, backend="numpy")
    if train:
        model.eval(), ref_model.eval()
        np.testing.assert_allclose(ours(x, y), ref(x, y), rtol=1e-4)
        for p, q in zip(model.parameters(), ref_model.parameters()):
            np.testing.assert_allclose(p.numpy(), q.numpy(), rtol=1e-4, atol=1e-6)
    else:
        np.testing.assert_allclose(ours(x), ref(x), rtol=1e-4, atol=1e-5)
