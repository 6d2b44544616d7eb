"""Anomaly mode in compiled functions: the first kernel that makes a NaN or an infinity from
finite inputs raises an OpError naming it, its ops, the op that made the value, the layer, the
shapes and the caller's line; off by default, and nothing is checked when off."""

import numpy as np
import pytest

import compiler
import compiler.runtime
from tinygrad_edu import OpError, Tensor, detect_anomaly, nn, optim, set_detect_anomaly
from tinygrad_edu.anomaly import is_anomaly_enabled

BACKENDS = ["numpy", pytest.param("llvm", marks=pytest.mark.filterwarnings("ignore"))]


@pytest.fixture(autouse=True)
def anomaly_off_after():
    yield
    set_detect_anomaly(False)


def backend_or_skip(backend):
    if backend == "llvm":
        pytest.importorskip("llvmlite")
    return backend


class LogNet(nn.Module):
    """fc -> log: the log of a negative pre-activation is NaN from finite inputs."""

    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(3, 4)

    def forward(self, x):
        return self.fc(x).log().sum(1)


def test_anomaly_mode_is_off_by_default():
    assert not is_anomaly_enabled()
    with detect_anomaly():
        assert is_anomaly_enabled()
    assert not is_anomaly_enabled()


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_forward_nan_from_finite_inputs_names_the_kernel_ops_layer_and_line(backend):
    model = LogNet()
    x = np.array([[1.0, -2.0, 3.0], [-1.0, 0.5, 2.0]], np.float32)
    f = compiler.compile(model, x, backend=backend_or_skip(backend))
    with np.errstate(invalid="ignore"):
        assert np.isnan(f(x)).any()  # off: the NaN comes out, nothing is checked
        with detect_anomaly():
            with pytest.raises(OpError) as info:
                f(x)  # the caller's line
    message = str(info.value)
    assert "NaN" in message and "from finite inputs" in message
    assert "log" in message and f"backend {backend}" in message
    assert "fc.weight" in message and "layers ['fc']" in message
    assert "(2, 3)" in message  # the input's shape
    assert "test_compiled_anomaly.py:" in message  # [at file:line] of the call
    kernel = next(k for k in f.kernels if "log" in k.ops)
    assert kernel.name in message


@pytest.mark.parametrize("backend", BACKENDS)
def test_an_infinite_gradient_names_the_backward_op_and_the_parameter(backend):
    """sqrt at 0: the forward is finite (0), the VJP 0.5 / sqrt(0) is inf."""

    class SqrtNet(nn.Module):
        def __init__(self):
            super().__init__()
            self.scale = Tensor(np.zeros(4, np.float32), requires_grad=True)

        def forward(self, x):
            return (x * self.scale).sqrt()

    model = SqrtNet()
    x, y = np.ones((2, 4), np.float32), np.array([0, 3])
    opt = optim.SGD(model.parameters(), lr=0.1)
    step = compiler.compile_train_step(
        model, lambda o, t: o.cross_entropy(t), opt, x, y, backend=backend_or_skip(backend)
    )
    set_detect_anomaly(True)
    with pytest.raises(OpError, match="inf") as info, np.errstate(all="ignore"):
        step(x, y)
    message = str(info.value)
    assert "div" in message or "pow" in message  # the sqrt's VJP
    assert "scale" in message
    assert "test_compiled_anomaly.py:" in message
    np.testing.assert_array_equal(model.scale.data, 0.0)  # the failed step wrote nothing


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_nan_fed_in_by_the_caller_is_not_blamed_on_a_kernel(backend):
    model = nn.Linear(3, 2)
    x = np.array([[np.nan, 1.0, 2.0]], np.float32)
    f = compiler.compile(model, x, backend=backend_or_skip(backend))
    with detect_anomaly():
        out = f(x)
    assert np.isnan(out).all()


@pytest.mark.parametrize("backend", BACKENDS)
def test_finite_programs_run_unchanged_in_anomaly_mode(backend):
    model = LogNet()
    x = np.abs(np.random.default_rng(0).standard_normal((5, 3))).astype(np.float32)
    with np.errstate(invalid="ignore"):
        model.fc.weight.data = np.abs(model.fc.weight.data)
        model.fc.bias.data = np.abs(model.fc.bias.data) + 0.1
    f = compiler.compile(model, x, backend=backend_or_skip(backend))
    want = f(x).copy()
    with detect_anomaly():
        np.testing.assert_array_equal(f(x), want)


def test_nothing_is_checked_when_anomaly_mode_is_off(monkeypatch):
    calls = []
    monkeypatch.setattr(compiler.runtime, "check_kernel", lambda *a: calls.append(a))
    model = LogNet()
    x = np.ones((2, 3), np.float32)
    f = compiler.compile(model, x, backend="numpy")
    with np.errstate(invalid="ignore"):
        f(x)
        assert calls == []
        with detect_anomaly():
            f(x)
    assert len(calls) == len(f.kernels)
