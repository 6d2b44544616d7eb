"""nn: parameter discovery and names, state_dict round trips and errors, layers vs PyTorch."""

import numpy as np
import pytest

from tinygrad_edu import Tensor, manual_seed, nn


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3, padding=1)
        self.bn = nn.BatchNorm2d(4)
        self.head = nn.Sequential(nn.Flatten(), nn.Dropout(0.5), nn.Linear(4 * 4 * 4, 5))

    def forward(self, x):
        return self.head(self.bn(self.conv(x)).relu().max_pool2d(2))


def test_named_parameters_follow_pytorch_names_and_order():
    names = [n for n, _ in Net().named_parameters()]
    assert names == [
        "conv.weight",
        "conv.bias",
        "bn.weight",
        "bn.bias",
        "head.2.weight",
        "head.2.bias",
    ]
    state = Net().state_dict()
    assert list(state)[:7] == [
        "conv.weight",
        "conv.bias",
        "bn.weight",
        "bn.bias",
        "bn.running_mean",
        "bn.running_var",
        "bn.num_batches_tracked",
    ]


def test_state_dict_round_trip_through_npz(tmp_path):
    manual_seed(1)
    a, b = Net(), Net()
    x = Tensor.randn(2, 3, 8, 8)
    a(x)  # updates batch-norm running stats
    nn.save(a.state_dict(), tmp_path / "w.npz")
    b.load_state_dict(nn.load(tmp_path / "w.npz"))
    a.eval(), b.eval()
    np.testing.assert_array_equal(a(x).numpy(), b(x).numpy())


def test_load_state_dict_reports_missing_unexpected_and_shape_errors():
    state = Net().state_dict()
    state.pop("conv.bias")
    state["extra"] = np.zeros(1)
    state["head.2.weight"] = np.zeros((5, 3))
    with pytest.raises(ValueError) as info:
        Net().load_state_dict(state)
    msg = str(info.value)
    assert "missing keys ['conv.bias']" in msg and "unexpected keys ['extra']" in msg
    assert "head.2.weight: expected (5, 64), got (5, 3)" in msg


def test_load_refuses_pickled_object_arrays(tmp_path):
    path = tmp_path / "evil.npz"
    np.savez(path, w=np.array([{"a": 1}], dtype=object))
    with pytest.raises(ValueError, match="not a readable .npz"):
        nn.load(path)


def test_save_is_atomic_when_writing_fails(tmp_path, monkeypatch):
    path = tmp_path / "ckpt.npz"
    nn.save({"w": np.ones(3)}, path)

    def boom(*args, **kwargs):
        raise KeyboardInterrupt  # killed mid-write

    monkeypatch.setattr(np, "savez", boom)
    with pytest.raises(KeyboardInterrupt):
        nn.save({"w": np.zeros(3)}, path)
    np.testing.assert_array_equal(nn.load(path)["w"], np.ones(3))
    assert [p.name for p in tmp_path.iterdir()] == ["ckpt.npz"]  # no temp file left behind


def test_dropout_is_off_in_eval_and_eval_is_deterministic():
    manual_seed(0)
    net = Net()
    x = Tensor.randn(2, 3, 8, 8)
    net.eval()
    np.testing.assert_array_equal(net(x).numpy(), net(x).numpy())
    net.train()
    assert not np.array_equal(net(x).numpy(), net(x).numpy())


def test_layers_match_pytorch_given_the_same_weights():
    torch = pytest.importorskip("torch")
    manual_seed(3)
    ours = Net()
    conv = torch.nn.Conv2d(3, 4, 3, padding=1)
    bn = torch.nn.BatchNorm2d(4)
    lin = torch.nn.Linear(64, 5)
    state = ours.state_dict()
    conv.load_state_dict({k[5:]: torch.tensor(v) for k, v in state.items() if k[:5] == "conv."})
    bn.load_state_dict({k[3:]: torch.tensor(v) for k, v in state.items() if k[:3] == "bn."})
    lin.load_state_dict({k[7:]: torch.tensor(v) for k, v in state.items() if k[:7] == "head.2."})
    x = np.random.default_rng(0).standard_normal((3, 3, 8, 8)).astype(np.float32)
    tx = torch.tensor(x)
    # training mode: batch statistics, and one running-stat update on each side
    ours_bn = ours.bn(ours.conv(Tensor(x))).numpy()
    np.testing.assert_allclose(ours_bn, bn(conv(tx)).detach().numpy(), rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(ours.bn.running_var.numpy(), bn.running_var.numpy(), rtol=1e-5)
    np.testing.assert_allclose(
        ours.bn.running_mean.numpy(), bn.running_mean.numpy(), rtol=1e-5, atol=1e-7
    )
    # eval mode: running statistics, dropout off: the whole network agrees
    ours.eval()
    bn.eval()
    want = lin(torch.nn.functional.max_pool2d(bn(conv(tx)).relu(), 2).flatten(1))
    np.testing.assert_allclose(ours(Tensor(x)).numpy(), want.detach().numpy(), rtol=1e-4, atol=1e-5)


def test_default_init_bounds_match_pytorch_rule():
    manual_seed(0)
    lin, conv = nn.Linear(100, 50), nn.Conv2d(8, 6, 3, groups=2)
    assert np.abs(lin.weight.numpy()).max() <= 1 / np.sqrt(100)
    assert np.abs(conv.weight.numpy()).max() <= 1 / np.sqrt(4 * 9)
    assert lin.weight.numpy().std() > 0.5 / np.sqrt(3 * 100)  # not degenerate


def test_conv2d_rejects_channels_not_divisible_by_groups():
    with pytest.raises(ValueError, match="divisible by groups=2"):
        nn.Conv2d(3, 4, 3, groups=2)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_modules_accept_numpy_arrays_like_tensors(dtype):
    from models import MLP

    rng = np.random.default_rng(0)
    x = rng.standard_normal((2, 3, 6, 6)).astype(dtype)
    conv = nn.Conv2d(3, 4, 3)
    seq = nn.Sequential(nn.Conv2d(3, 2, 3), nn.ReLU(), nn.Flatten(), nn.Linear(32, 5))
    lin = nn.Linear(6, 2)
    mlp = MLP([108, 7, 3])
    for module, arr in ((conv, x), (seq, x), (lin, x[:, 0, 0]), (mlp, x)):
        out = module(arr)  # a DataLoader batch, as it comes
        want = module(Tensor(arr))
        assert isinstance(out, Tensor) and out.dtype == np.float32  # float data -> float32
        np.testing.assert_array_equal(out.numpy(), want.numpy())


def test_module_wraps_numpy_keyword_arguments_and_leaves_other_values():
    class Scale(nn.Module):
        def forward(self, x, *, by, note):
            assert isinstance(by, Tensor) and note == "kept"
            return x * by

    out = Scale()(np.array([1.0, 2.0]), by=np.array([3.0, 4.0]), note="kept")
    assert out.dtype == np.float32
    np.testing.assert_array_equal(out.numpy(), [3.0, 8.0])
