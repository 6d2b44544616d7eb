"""In-place tensor methods (`x.add_(y)`, `x.normal_()`, ...), the version check that keeps
them from silently corrupting a backward pass, and `nn.init` (PyTorch's initialisers, as
torchvision's model code calls them)."""

import math

import numpy as np
import pytest

import compiler
import tinygrad_edu as tg
from tinygrad_edu import OpError, Tensor, nn, no_grad


def _torch():
    return pytest.importorskip("torch")


# -- in-place methods ------------------------------------------------------------------------
def test_in_place_methods_write_into_the_same_array_and_return_self():
    t = Tensor(np.array([1.0, -2.0, 3.0]))
    array = t.data
    assert t.add_(Tensor([1.0, 1.0, 1.0]), alpha=2) is t and t.data is array
    np.testing.assert_array_equal(t.numpy(), [3.0, 0.0, 5.0])
    np.testing.assert_array_equal(t.sub_(1.0).numpy(), [2.0, -1.0, 4.0])
    np.testing.assert_array_equal(t.mul_(Tensor([2.0])).numpy(), [4.0, -2.0, 8.0])
    np.testing.assert_array_equal(t.div_(3.0, rounding_mode="trunc").numpy(), [1.0, -0.0, 2.0])
    np.testing.assert_array_equal(t.clamp_(0.5, 1.5).numpy(), [1.0, 0.5, 1.5])
    np.testing.assert_array_equal(t.copy_(Tensor([7.0])).numpy(), [7.0, 7.0, 7.0])
    np.testing.assert_array_equal(t.fill_(2).numpy(), [2.0, 2.0, 2.0])
    np.testing.assert_array_equal(t.zero_().numpy(), [0.0, 0.0, 0.0])
    ints = Tensor(np.zeros(2, np.int64)).fill_(2.7)  # fill_ casts, as PyTorch's
    assert ints.dtype == np.int64 and ints.tolist() == [2, 2]


def test_random_fills_follow_the_global_seed_and_their_distribution():
    tg.manual_seed(7)
    a = Tensor(np.zeros((200, 300))).normal_(1.0, 0.5)
    tg.manual_seed(7)
    b = Tensor(np.zeros((200, 300))).normal_(1.0, 0.5)
    np.testing.assert_array_equal(a.numpy(), b.numpy())
    # 60,000 draws: the sample mean and std are within 1% of 1 and 0.5 (many sigmas)
    assert abs(a.numpy().mean() - 1.0) < 0.01 and abs(a.numpy().std() - 0.5) < 0.005
    u = Tensor(np.zeros(60_000)).uniform_(-2.0, 3.0, generator=np.random.default_rng(1))
    assert -2.0 <= u.numpy().min() and u.numpy().max() < 3.0
    assert abs(u.numpy().mean() - 0.5) < 0.05
    assert a.dtype == np.float32


def test_in_place_mistakes_say_how_to_fix():
    w = Tensor(np.ones(3), requires_grad=True)
    with pytest.raises(OpError, match=r"mul_: a tensor that requires grad cannot change.*no_grad"):
        w.mul_(2.0)
    with no_grad():
        w.mul_(2.0)  # allowed here, as in PyTorch
    np.testing.assert_array_equal(w.numpy(), [2.0, 2.0, 2.0])
    ints = Tensor(np.arange(3))
    with pytest.raises(OpError, match=r"add_: the float32 result cannot be stored in this int64"):
        ints.add_(0.5)
    with pytest.raises(OpError, match=r"copy_: a \(2,\) value does not broadcast.*Fix"):
        Tensor(np.zeros(3)).copy_(Tensor([1.0, 2.0]))
    with pytest.raises(OpError, match=r"add_: this tensor's array cannot be written.*clone"):
        Tensor._make(np.broadcast_to(np.float32(1.0), (3,))).add_(1.0)


def test_in_place_ops_cannot_be_compiled_and_say_so():
    def fn(t):
        t.add_(1.0)
        return t

    with pytest.raises(OpError, match=r"add_: in-place ops cannot be compiled.*x = x.add"):
        compiler.compile(fn, np.zeros(3, np.float32), backend="numpy")


# -- the version check -------------------------------------------------------------------------
def test_backward_refuses_an_input_changed_in_place_after_the_op():
    w = Tensor(np.array([1.0, 2.0]), requires_grad=True)
    x = Tensor(np.array([3.0, 4.0]))
    loss = (w * x).sum()
    x.mul_(10.0)  # w's gradient is x as the product saw it: now gone
    with pytest.raises(RuntimeError, match=r"input 1 of the 'mul' op.*changed in place.*clone"):
        loss.backward()


def test_backward_refuses_a_result_changed_in_place():
    w = Tensor(np.array([0.5, 1.0]), requires_grad=True)
    e = w.exp()  # exp's VJP multiplies by its own result
    loss = (e * 2.0).sum()
    with no_grad():
        e.add_(1.0)
    with pytest.raises(RuntimeError, match=r"its result of the 'exp' op"):
        loss.backward()


def test_changes_before_the_forward_or_after_backward_are_fine():
    w = Tensor(np.array([1.0, 2.0]), requires_grad=True)
    x = Tensor(np.array([3.0, 4.0])).mul_(2.0)
    loss = (w * x).sum()
    loss.backward()
    np.testing.assert_array_equal(w.grad.numpy(), [6.0, 8.0])
    x.zero_()
    with no_grad():
        w.sub_(w.grad, alpha=0.1)  # a hand-written SGD step
    np.testing.assert_allclose(w.numpy(), [0.4, 1.2])
    (w * w).sum().backward()  # a new graph sees the new values
    np.testing.assert_allclose(w.grad.numpy(), [6.0 + 0.8, 8.0 + 2.4])


def test_a_change_no_vjp_reads_is_fine_as_in_torch():
    w = Tensor(np.array([1.0, 2.0]), requires_grad=True)
    x = Tensor(np.array([3.0, 4.0]))
    loss = (w + x).sum()  # add's VJP reads neither operand
    x.mul_(2.0)
    loss.backward()
    np.testing.assert_array_equal(w.grad.numpy(), [1.0, 1.0])


def test_views_and_detached_tensors_share_the_version_of_their_storage():
    w = Tensor(np.array([1.0, 2.0, 3.0]), requires_grad=True)
    x = Tensor(np.arange(6.0))
    loss = (w * x.reshape(2, 3)[0]).sum()  # a view of x's array
    x.mul_(2.0)
    with pytest.raises(RuntimeError, match=r"'mul' op.*changed in place"):
        loss.backward()
    e = w.exp()
    loss = (e * e).sum()
    with no_grad():
        e.detach().add_(1.0)  # the same array as e's
    with pytest.raises(RuntimeError, match=r"'mul' op.*changed in place"):
        loss.backward()


def test_optimizer_steps_and_load_state_dict_count_as_in_place_changes():
    x = Tensor(np.ones((1, 3)), requires_grad=True)
    layer = nn.Linear(3, 2)
    opt = tg.optim.SGD(layer.parameters(), lr=0.1)
    first, second = layer(x).sum(), (layer(x) ** 2).sum()
    first.backward()
    opt.step()  # the weight second's graph read is now different
    with pytest.raises(RuntimeError, match=r"'matmul' op.*changed in place"):
        second.backward()
    third = layer(x).sum()
    layer.load_state_dict({k: v * 2 for k, v in layer.state_dict().items()})
    with pytest.raises(RuntimeError, match=r"'matmul' op.*changed in place"):
        third.backward()


def test_an_in_place_write_of_a_value_that_requires_grad_is_refused():
    w = Tensor(np.array([1.0, 2.0]), requires_grad=True)
    buf = Tensor(np.zeros(2))
    with pytest.raises(OpError, match=r"add_: the value written requires grad.*x = x.add"):
        buf.add_(w * 2.0)
    with pytest.raises(OpError, match=r"copy_: the value written requires grad.*clone"):
        buf.copy_(w)
    buf.copy_(w.detach())  # no gradient wanted: say so
    np.testing.assert_array_equal(buf.numpy(), [1.0, 2.0])
    with no_grad():
        buf.add_(w)
    np.testing.assert_array_equal(buf.numpy(), [2.0, 4.0])


# -- nn.init -----------------------------------------------------------------------------------
def test_calculate_gain_matches_torch():
    torch = _torch()
    for name, param in [
        ("linear", None),
        ("conv2d", None),
        ("sigmoid", None),
        ("tanh", None),
        ("relu", None),
        ("leaky_relu", None),
        ("leaky_relu", 0.2),
        ("selu", None),
    ]:
        assert nn.init.calculate_gain(name, param) == pytest.approx(
            torch.nn.init.calculate_gain(name, param), rel=1e-12
        )
    with pytest.raises(OpError, match=r"calculate_gain: unsupported nonlinearity 'swish'.*Fix"):
        nn.init.calculate_gain("swish")


@pytest.mark.parametrize("mode", ["fan_in", "fan_out"])
def test_kaiming_and_xavier_use_pytorchs_fans_and_bounds(mode):
    tg.manual_seed(0)
    w = nn.Conv2d(64, 128, 3).weight  # fan_in 64 * 9, fan_out 128 * 9
    fan = 64 * 9 if mode == "fan_in" else 128 * 9
    nn.init.kaiming_uniform_(w, a=math.sqrt(5), mode=mode)
    bound = math.sqrt(2.0 / (1 + 5)) * math.sqrt(3.0 / fan)
    assert np.abs(w.numpy()).max() <= bound * (1 + 1e-6)
    assert np.abs(w.numpy()).max() > 0.99 * bound  # 73,728 draws reach the edges
    nn.init.kaiming_normal_(w, mode=mode, nonlinearity="relu")
    assert w.numpy().std() == pytest.approx(math.sqrt(2.0 / fan), rel=0.02)
    assert abs(w.numpy().mean()) < 0.01 * math.sqrt(2.0 / fan) * 10
    lin = nn.Linear(300, 100).weight
    nn.init.xavier_uniform_(lin, gain=2.0)
    xb = 2.0 * math.sqrt(6.0 / 400)
    assert np.abs(lin.numpy()).max() <= xb * (1 + 1e-6) and np.abs(lin.numpy()).max() > 0.99 * xb
    nn.init.xavier_normal_(lin)
    assert lin.numpy().std() == pytest.approx(math.sqrt(2.0 / 400), rel=0.03)
    assert lin.requires_grad and lin.grad is None  # filled without a gradient


def test_other_initialisers_fill_what_their_names_say():
    tg.manual_seed(1)
    b = nn.Linear(4, 50).bias
    assert nn.init.constant_(b, 0.25) is b and (b.numpy() == 0.25).all()
    assert (nn.init.zeros_(b).numpy() == 0).all() and (nn.init.ones_(b).numpy() == 1).all()
    nn.init.normal_(b, 3.0, 0.0)
    assert (b.numpy() == 3.0).all()
    nn.init.uniform_(b, -0.1, 0.1)
    assert np.abs(b.numpy()).max() <= 0.1
    w = nn.Linear(400, 300).weight
    nn.init.trunc_normal_(w, std=1.0, a=-0.5, b=1.0)
    assert w.numpy().min() >= -0.5 and w.numpy().max() <= 1.0
    nn.init.orthogonal_(w, gain=2.0)
    np.testing.assert_allclose(w.numpy() @ w.numpy().T, 4.0 * np.eye(300), atol=1e-4)
    nn.init.eye_(w)
    np.testing.assert_array_equal(w.numpy(), np.eye(300, 400))


def test_dirac_weights_pass_the_input_through_a_convolution():
    conv = nn.Conv2d(6, 6, 3, padding=1, groups=2)
    nn.init.dirac_(conv.weight, groups=2)
    nn.init.zeros_(conv.bias)
    x = np.random.default_rng(0).standard_normal((2, 6, 5, 5)).astype(np.float32)
    np.testing.assert_allclose(conv(Tensor(x)).numpy(), x, atol=1e-6)


def test_initialiser_mistakes_say_how_to_fix():
    with pytest.raises(OpError, match=r"kaiming_normal_: fan in and fan out need.*2 dims"):
        nn.init.kaiming_normal_(nn.Linear(3, 4).bias)
    with pytest.raises(OpError, match=r"kaiming_uniform_: mode must be 'fan_in' or 'fan_out'"):
        nn.init.kaiming_uniform_(nn.Linear(3, 4).weight, mode="in")
    with pytest.raises(OpError, match=r"trunc_normal_: \[5.0, 6.0\] holds almost none"):
        nn.init.trunc_normal_(nn.Linear(3, 4).weight, a=5.0, b=6.0, std=0.01)
    with pytest.raises(OpError, match=r"dirac_: needs a 3-5-D weight"):
        nn.init.dirac_(nn.Linear(3, 4).weight)


def test_torchvision_style_init_code_runs_as_written_and_the_model_compiles():
    """The loop torchvision's ResNet runs in its constructor, verbatim but for the import."""

    class Tiny(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.conv = nn.Conv2d(3, 8, 3, padding=1, bias=False)
            self.bn = nn.BatchNorm2d(8)
            self.fc = nn.Linear(8, 4)
            for m in self.modules():
                if isinstance(m, nn.Conv2d):
                    nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
                elif isinstance(m, nn.BatchNorm2d):
                    nn.init.constant_(m.weight, 1)
                    nn.init.constant_(m.bias, 0)
                elif isinstance(m, nn.Linear):
                    nn.init.normal_(m.weight, 0, 0.01)
                    nn.init.zeros_(m.bias)

        def forward(self, x):
            h = self.bn(self.conv(x)).relu()
            return self.fc(h.mean((2, 3)))

    tg.manual_seed(0)
    model = Tiny().eval()
    assert (model.bn.weight.numpy() == 1).all() and (model.fc.bias.numpy() == 0).all()
    x = np.random.default_rng(2).standard_normal((2, 3, 8, 8)).astype(np.float32)
    got = compiler.compile(model, x, backend="llvm")(x)
    np.testing.assert_allclose(got, model(Tensor(x)).numpy(), rtol=1e-5, atol=1e-6)
