"""Compiled training is eager training: whole runs of compiled steps (every optimizer, models
with BatchNorm) give the eager parameters, buffers and optimizer state; compiled inference
reads parameters and buffers live; eager and compiled steps can be interleaved."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import compiler
from models import MLP, AlexNet
from tinygrad_edu import Tensor, manual_seed, nn, optim

OPTIMIZERS = {
    "sgd": lambda ps: optim.SGD(ps, lr=0.01),
    "sgd-momentum-wd": lambda ps: optim.SGD(ps, lr=0.01, momentum=0.9, weight_decay=1e-3),
    "sgd-nesterov": lambda ps: optim.SGD(ps, lr=0.01, momentum=0.9, nesterov=True),
    "sgd-dampening": lambda ps: optim.SGD(ps, lr=0.01, momentum=0.8, dampening=0.3),
    "sgd-alexnet": lambda ps: optim.SGD(
        ps, lr=0.01, momentum=0.9, weight_decay=5e-4, rule="alexnet"
    ),
    "adam": lambda ps: optim.Adam(ps, lr=1e-3),
    "adam-wd": lambda ps: optim.Adam(ps, lr=1e-3, betas=(0.8, 0.95), weight_decay=1e-2),
    "adamw": lambda ps: optim.AdamW(ps, lr=1e-3, weight_decay=5e-2),
}


class AlexNetMiniBN(nn.Module):
    """AlexNet "mini" with BatchNorm after its first two convolutions, dropout off."""

    def __init__(self) -> None:
        super().__init__()
        net = AlexNet(10, "mini")
        f = list(net.features)
        for conv in (f[0], f[4]):
            # a bias before BatchNorm has a zero gradient up to rounding, which Adam's
            # normalised step would amplify into noise: no bias, as usual before BatchNorm
            conv.bias = None
        self.features = nn.Sequential(
            f[0], nn.BatchNorm2d(24), *f[1:4], f[4], nn.BatchNorm2d(64), *f[5:]
        )
        self.classifier = net.classifier
        for m in self.classifier:
            if isinstance(m, nn.Dropout):
                m.p = 0.0

    def forward(self, x: Tensor) -> Tensor:
        return self.classifier(self.features(x).flatten(1))


MODELS = {
    "mlp": (lambda: MLP([12, 16, 10]), (6, 12)),
    "alexnet-mini-bn": (AlexNetMiniBN, (2, 3, 32, 32)),
}


def to_float64(model: nn.Module) -> nn.Module:
    for p in model.parameters():
        p.data = p.data.astype(np.float64)
    for _, b in model.named_buffers():
        if b.dtype.kind == "f":
            b.data = b.data.astype(np.float64)
    return model


def eager_step(model, opt, x, y, loss_fn) -> float:
    loss = loss_fn(model(Tensor(x, dtype=x.dtype)), y)
    opt.zero_grad()
    loss.backward()
    opt.step()
    return loss.item()


def cross_entropy(o, t):
    return o.cross_entropy(t)


def assert_same_state(model, eager_model, opt, eager_opt, rtol):
    for (name, a), (_, b) in zip(
        list(model.named_parameters()) + list(model.named_buffers()),
        list(eager_model.named_parameters()) + list(eager_model.named_buffers()),
    ):
        scale = max(float(np.abs(b.data).max()), 1.0)
        np.testing.assert_allclose(a.data, b.data, rtol=rtol, atol=rtol * scale, err_msg=name)
    got, want = opt.state_dict(), eager_opt.state_dict()
    assert sorted(got) == sorted(want)
    for key in want:
        if want[key].dtype.kind in "fiu":
            np.testing.assert_allclose(got[key], want[key], rtol=rtol, atol=rtol, err_msg=key)
        else:
            assert got[key] == want[key], key


def batches(shape, steps, seed=0):
    rng = np.random.default_rng(seed)
    return [
        (rng.standard_normal(shape), rng.integers(0, 10, shape[0]).astype(np.int64))
        for _ in range(steps)
    ]


# AlexNet-mini runs of two optimizers (SGD and Adam, weight decay and state each) are in the
# default run; the rest of that matrix (seconds each) runs with the slow tests
DEFAULT_ALEXNET = ("adam-wd", "sgd-momentum-wd")
RUNS = [
    pytest.param(
        model,
        opt,
        marks=[] if model == "mlp" or opt in DEFAULT_ALEXNET else [pytest.mark.slow],
    )
    for model in sorted(MODELS)
    for opt in sorted(OPTIMIZERS)
]


@pytest.mark.parametrize("backend", ["numpy", "llvm"])
@pytest.mark.parametrize("model_name,opt_name", RUNS)
def test_twenty_compiled_steps_equal_twenty_eager_steps(model_name, opt_name, backend):
    """Float64, 20 steps with a learning-rate change half way: parameters, buffers (running
    statistics, batch counts) and the optimizer's state dict agree to 1e-10."""
    if backend == "llvm":
        pytest.importorskip("llvmlite")
    make, shape = MODELS[model_name]
    manual_seed(0)
    eager_model = to_float64(make())
    manual_seed(0)
    model = to_float64(make())
    eager_opt = OPTIMIZERS[opt_name](eager_model.parameters())
    opt = OPTIMIZERS[opt_name](model.parameters())
    data = batches(shape, 20)
    step = compiler.compile_train_step(model, cross_entropy, opt, *data[0], backend=backend)
    for k, (x, y) in enumerate(data):
        if k == 10:  # a scheduler's change: lr is read at every call
            eager_opt.lr, opt.lr = eager_opt.lr * 0.5, opt.lr * 0.5
        want = eager_step(eager_model, eager_opt, x, y, cross_entropy)
        assert step(x, y) == pytest.approx(want, rel=1e-10)
    assert_same_state(model, eager_model, opt, eager_opt, rtol=1e-10)
    if model_name == "alexnet-mini-bn":
        bn = model.features[1]
        assert int(bn.num_batches_tracked.data) == 20
        assert not np.allclose(bn.running_var.data, 1.0)


def test_batchnorm_running_statistics_are_updated_by_a_compiled_step():
    """The issue's small CNN: one compiled epoch left running_var at [1, 1, 1]."""

    class Net(nn.Module):
        def __init__(self, momentum):
            super().__init__()
            self.conv = nn.Conv2d(1, 3, 3)
            self.bn = nn.BatchNorm2d(3, momentum=momentum)
            self.fc = nn.Linear(3 * 6 * 6, 10)

        def forward(self, x):
            return self.fc(self.bn(self.conv(x)).relu().flatten(1))

    for momentum in (0.1, None):  # None: the cumulative average
        runs = []
        for compiled in (False, True):
            manual_seed(0)
            model = Net(momentum)
            opt = optim.SGD(model.parameters(), lr=0.1)
            data = [(x.astype(np.float32), y) for x, y in batches((4, 1, 8, 8), 5)]
            step = compiler.compile_train_step(model, cross_entropy, opt, *data[0], backend="numpy")
            for x, y in data:
                step(x, y) if compiled else eager_step(model, opt, x, y, cross_entropy)
            runs.append({k: v.copy() for k, v in model.state_dict().items()})
        eager, got = runs
        assert got["bn.num_batches_tracked"] == 5
        assert not np.allclose(got["bn.running_var"], 1.0)
        for key in eager:
            np.testing.assert_allclose(got[key], eager[key], rtol=1e-5, atol=1e-6, err_msg=key)


@pytest.mark.parametrize("backend", ["numpy", "llvm"])
def test_compiled_inference_reads_buffers_live(backend):
    """Compile in eval mode, then train eagerly (running statistics change): the compiled
    function follows, as it does for parameters."""
    if backend == "llvm":
        pytest.importorskip("llvmlite")
    manual_seed(0)
    model = nn.Sequential(nn.Conv2d(2, 3, 3), nn.BatchNorm2d(3), nn.ReLU())
    x = np.random.default_rng(0).standard_normal((4, 2, 6, 6)).astype(np.float32)
    forward = compiler.compile(model.eval(), x, backend=backend)
    model.train()
    opt = optim.SGD(model.parameters(), lr=0.1)
    for _ in range(3):
        loss = (model(Tensor(x * 3 + 1)) ** 2).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    want = model.eval()(Tensor(x)).numpy()
    np.testing.assert_allclose(forward(x), want, rtol=1e-5, atol=1e-5)


def test_compiled_inference_in_training_mode_updates_buffers_like_eager():
    manual_seed(0)
    eager = nn.BatchNorm2d(3)
    model = nn.BatchNorm2d(3)
    x = np.random.default_rng(1).standard_normal((4, 3, 5, 5)).astype(np.float32)
    forward = compiler.compile(model, x, backend="numpy")
    arrays = [b.data for _, b in model.named_buffers()]
    for _ in range(2):
        np.testing.assert_allclose(forward(x), eager(Tensor(x)).numpy(), rtol=1e-6, atol=1e-6)
    for (_, a), (_, b), arr in zip(model.named_buffers(), eager.named_buffers(), arrays):
        assert a.data is arr  # written in place
        np.testing.assert_allclose(a.data, b.data, rtol=1e-6)


@pytest.mark.parametrize("opt_name", ["sgd-dampening", "sgd-alexnet", "adam-wd"])
def test_eager_and_compiled_steps_interleave(opt_name):
    """Optimizer state lives in the optimizer: alternating eager and compiled steps is the
    same run as eager steps only, and the state dict stays valid throughout."""
    make, shape = MODELS["mlp"]
    manual_seed(0)
    eager_model = to_float64(make())
    manual_seed(0)
    model = to_float64(make())
    eager_opt = OPTIMIZERS[opt_name](eager_model.parameters())
    opt = OPTIMIZERS[opt_name](model.parameters())
    data = batches(shape, 8, seed=3)
    step = compiler.compile_train_step(model, cross_entropy, opt, *data[0], backend="numpy")
    for k, (x, y) in enumerate(data):
        eager_step(eager_model, eager_opt, x, y, cross_entropy)
        if k % 2:
            step(x, y)
        else:
            eager_step(model, opt, x, y, cross_entropy)
        assert_same_state(model, eager_model, opt, eager_opt, rtol=1e-12)


def test_compiled_step_refuses_changed_hyperparameters():
    model = nn.Linear(3, 2)
    opt = optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    x, y = np.ones((2, 3), np.float32), np.array([0, 1])
    step = compiler.compile_train_step(model, cross_entropy, opt, x, y, backend="numpy")
    step(x, y)
    opt.weight_decay = 0.5  # compiled in (lr and momentum are runtime inputs)
    with pytest.raises(ValueError, match="hyperparameters changed.*compile the step again"):
        step(x, y)


def test_compiled_step_leaves_parameters_the_optimizer_or_the_loss_does_not_touch():
    """As eagerly: a parameter outside the optimizer, or without a gradient, is not updated
    (weight decay and momentum would otherwise move it), and gets no optimizer state."""

    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.a, self.b, self.unused = nn.Linear(3, 3), nn.Linear(3, 2), nn.Linear(3, 3)

        def forward(self, x):
            return self.b(self.a(x))

    manual_seed(0)
    model = Net()
    opt = optim.SGD([*model.b.parameters(), *model.unused.parameters()], lr=0.1,
                    momentum=0.9, weight_decay=0.1)  # fmt: skip
    frozen = [p.data.copy() for p in (*model.a.parameters(), *model.unused.parameters())]
    x, y = np.ones((2, 3), np.float32), np.array([0, 1])
    step = compiler.compile_train_step(model, cross_entropy, opt, x, y, backend="numpy")
    before_b = model.b.weight.data.copy()
    step(x, y)
    for p, old in zip((*model.a.parameters(), *model.unused.parameters()), frozen):
        np.testing.assert_array_equal(p.data, old)
    assert not np.array_equal(model.b.weight.data, before_b)
    assert opt.state[2] == {} and opt.state[3] == {}


def test_a_failed_compiled_call_leaves_the_optimizer_as_it_was():
    model = nn.Linear(3, 2)
    opt = optim.Adam(model.parameters())
    x, y = np.ones((2, 3), np.float32), np.array([0, 1])
    step = compiler.compile_train_step(model, cross_entropy, opt, x, y, backend="numpy")
    step(x, y)
    before = opt.state_dict()
    with pytest.raises(ValueError, match="compiled for"):
        step(np.ones((5, 3), np.float32), y)
    after = opt.state_dict()
    assert sorted(after) == sorted(before)
    for key in before:
        np.testing.assert_array_equal(after[key], before[key])


# -- random small modules ------------------------------------------------------------------
class RandomNet(nn.Module):
    def __init__(self, channels, layers, dropout_eval):
        super().__init__()
        modules: list[nn.Module] = []
        c = 2
        for kind, out in zip(layers, channels):
            if kind == "conv":
                modules.append(nn.Conv2d(c, out, 3, padding=1))
                c = out
            elif kind == "bn":
                modules.append(nn.BatchNorm2d(c, momentum=None if out == 1 else 0.1 * out))
            elif kind == "relu":
                modules.append(nn.ReLU())
            else:  # dropout that drops nothing: p=0, or a module in eval mode
                d = nn.Dropout(0.5 if dropout_eval else 0.0)
                modules.append(d.eval() if dropout_eval else d)
        self.body = nn.Sequential(*modules)
        self.head = nn.Linear(c * 4 * 4, 3)

    def forward(self, x):
        return self.head(self.body(x).flatten(1))


@settings(max_examples=12, deadline=None)
@given(
    layers=st.lists(st.sampled_from(["conv", "bn", "relu", "dropout"]), min_size=1, max_size=5),
    channels=st.lists(st.integers(1, 4), min_size=5, max_size=5),
    dropout_eval=st.booleans(),
    opt_name=st.sampled_from(sorted(OPTIMIZERS)),
    seed=st.integers(0, 100),
)
def test_random_modules_compiled_steps_equal_eager_steps(
    layers, channels, dropout_eval, opt_name, seed
):
    runs = []
    data = batches((3, 2, 4, 4), 3, seed=seed)
    data = [(x, y % 3) for x, y in data]
    for compiled in (False, True):
        manual_seed(seed)
        model = to_float64(RandomNet(channels, layers, dropout_eval))
        opt = OPTIMIZERS[opt_name](model.parameters())
        step = compiler.compile_train_step(model, cross_entropy, opt, *data[0], backend="numpy")
        losses = [
            step(x, y) if compiled else eager_step(model, opt, x, y, cross_entropy) for x, y in data
        ]
        runs.append((model, opt, losses))
    (eager_model, eager_opt, want), (model, opt, got) = runs
    np.testing.assert_allclose(got, want, rtol=1e-10)
    assert_same_state(model, eager_model, opt, eager_opt, rtol=1e-10)


def test_a_step_without_buffers_does_not_walk_the_module_tree_per_call(monkeypatch):
    """A model traced without buffers (an MLP) has none for the step to write: its call
    skips the module-tree walk (~14% of an MLP step); one with BatchNorm still counts the
    step's writes into its statistics."""
    from tinygrad_edu.autograd import _storage, _writes

    manual_seed(0)
    mlp = MLP([4, 8, 3])
    sgd = optim.SGD(mlp.parameters(), lr=0.1)
    x, y = np.ones((2, 4), np.float32), np.array([0, 2])
    step = compiler.compile_train_step(mlp, lambda o, t: o.cross_entropy(t), sgd, x, y)
    before = step(x, y)
    monkeypatch.setattr(type(mlp), "buffers", lambda self: pytest.fail("walked the tree"))
    assert step(x, y) < before  # still trains
    monkeypatch.undo()
    net = nn.Sequential(nn.Linear(4, 8), nn.BatchNorm1d(8), nn.ReLU(), nn.Linear(8, 3))
    sgd = optim.SGD(net.parameters(), lr=0.1)
    step = compiler.compile_train_step(net, lambda o, t: o.cross_entropy(t), sgd, x, y)
    step(x, y)
    root = _storage(net[1].running_mean.data)
    entry = _writes.get(id(root))
    assert entry is not None and entry[0]() is root and entry[1] >= 1
