"""safetensors weights: round trips by extension, torchvision's AlexNet weights, bad files."""

import numpy as np
import pytest
from torchvision_compat import import_torchvision

from models import AlexNet
from tinygrad_edu import Tensor, manual_seed, nn

safetensors_numpy = pytest.importorskip("safetensors.numpy")


class Net(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3)
        self.bn = nn.BatchNorm2d(4)
        self.fc = nn.Linear(4, 2)

    def forward(self, x: Tensor) -> Tensor:
        return self.fc(self.bn(self.conv(x)).relu().mean(axis=(2, 3)))


def test_state_dict_round_trips_through_safetensors_exactly(tmp_path):
    manual_seed(0)
    a, b = Net(), Net()
    x = Tensor.randn(2, 3, 6, 6)
    a(x)  # running statistics and num_batches_tracked (a 0-d int64) move
    nn.save(a.state_dict(), tmp_path / "w.safetensors")
    loaded = nn.load(tmp_path / "w.safetensors")
    assert loaded["bn.num_batches_tracked"].shape == () and loaded["bn.num_batches_tracked"] == 1
    b.load_state_dict(loaded)
    a.eval(), b.eval()
    np.testing.assert_array_equal(a(x).numpy(), b(x).numpy())
    assert list(b.state_dict()) == list(a.state_dict())


def test_safetensors_keeps_dtypes_and_writes_strided_views_in_order(tmp_path):
    grid = np.arange(12, dtype=np.float64).reshape(3, 4)
    state = {
        "view": grid[:, ::2],  # not contiguous: the raw buffer would be the wrong numbers
        "t": grid.T,
        "i": np.array([-3, 7], np.int64),
        "b": np.array([True, False]),
        "h": np.array([1.5], np.float16),
        "s": np.array(2.5, np.float32),
    }
    nn.save(state, tmp_path / "m.safetensors")
    back = nn.load(tmp_path / "m.safetensors")
    assert set(back) == set(state)
    for k, v in state.items():
        assert back[k].dtype == v.dtype and back[k].shape == v.shape, k
        np.testing.assert_array_equal(back[k], v)
    # a file any safetensors reader understands
    np.testing.assert_array_equal(
        safetensors_numpy.load_file(tmp_path / "m.safetensors")["view"], grid[:, ::2]
    )


def test_torchvision_alexnet_weights_load_from_safetensors_and_give_torchs_logits(tmp_path):
    torch, torchvision = import_torchvision()
    safetensors_torch = pytest.importorskip("safetensors.torch")
    torch.manual_seed(0)
    reference = torchvision.models.alexnet().eval()
    path = tmp_path / "alexnet.safetensors"
    safetensors_torch.save_file(reference.state_dict(), str(path))
    state = nn.load(path)
    assert list(state) != [] and set(state) == set(reference.state_dict())
    ours = AlexNet(variant="torchvision").eval()
    ours.load_state_dict(state)
    assert list(ours.state_dict()) == list(reference.state_dict())
    x = np.random.default_rng(0).standard_normal((2, 3, 224, 224)).astype(np.float32)
    with torch.no_grad():
        want = reference(torch.from_numpy(x)).numpy()
    got = ours(x).numpy()
    # float32 sums in a different order (im2col GEMMs vs oneDNN): agree to rounding
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("ext", [".npz", ".safetensors"])
def test_a_file_that_does_not_fit_names_the_file_and_every_problem(tmp_path, ext):
    state = Net().state_dict()
    state.pop("conv.bias")
    state["extra"] = np.zeros(1, np.float32)
    state["fc.weight"] = np.zeros((2, 5), np.float32)
    state["bn.running_mean"] = np.zeros(4, np.int64)  # integers where floats belong
    path = tmp_path / f"w{ext}"
    nn.save(state, path)
    with pytest.raises(ValueError) as info:
        Net().load_state_dict(nn.load(path))
    msg = str(info.value)
    assert str(path) in msg
    assert "missing keys ['conv.bias']" in msg and "unexpected keys ['extra']" in msg
    assert "fc.weight: expected (2, 4), got (2, 5)" in msg
    assert "bn.running_mean: expected float32, got int64" in msg
    assert "Fix:" in msg


def test_float_precision_may_differ_like_pytorch_casting(tmp_path):
    net = Net()
    state = {
        k: v.astype(np.float64) if v.dtype == np.float32 else v for k, v in net.state_dict().items()
    }
    nn.save(state, tmp_path / "w.safetensors")
    other = Net()
    other.load_state_dict(nn.load(tmp_path / "w.safetensors"))
    assert other.conv.weight.dtype == np.float32
    np.testing.assert_array_equal(other.conv.weight.numpy(), net.conv.weight.numpy())


@pytest.mark.parametrize("ext", [".npz", ".safetensors"])
@pytest.mark.parametrize("keep", [0, 7, 100, -1])
def test_a_truncated_file_is_a_clear_error_naming_it(tmp_path, ext, keep):
    path = tmp_path / f"w{ext}"
    nn.save({"w": np.arange(64, dtype=np.float32)}, path)
    data = path.read_bytes()
    path.write_bytes(data[: keep if keep >= 0 else len(data) - 3])
    with pytest.raises(ValueError) as info:
        nn.load(path)
    assert str(path) in str(info.value) and "Fix:" in str(info.value)


def test_garbage_and_missing_files(tmp_path):
    path = tmp_path / "junk.safetensors"
    path.write_bytes(b"\xff" * 40)
    with pytest.raises(ValueError, match="not a readable .safetensors"):
        nn.load(path)
    with pytest.raises(FileNotFoundError, match="nothere.safetensors"):
        nn.load(tmp_path / "nothere.safetensors")


def test_unknown_extension_is_refused_on_save_and_load(tmp_path):
    for call in (lambda p: nn.save({"w": np.ones(2)}, p), nn.load):
        with pytest.raises(ValueError, match=r"unknown extension '\.pt'.*Fix: name the file"):
            call(tmp_path / "w.pt")
    assert list(tmp_path.iterdir()) == []


def test_bfloat16_tensors_get_a_fix_instead_of_a_crash(tmp_path):
    torch = pytest.importorskip("torch")
    safetensors_torch = pytest.importorskip("safetensors.torch")
    path = tmp_path / "half.safetensors"
    safetensors_torch.save_file({"w": torch.ones(3, dtype=torch.bfloat16)}, str(path))
    with pytest.raises(ValueError, match=r"'w'.*half\.safetensors.*Fix: save it as float32"):
        nn.load(path)


def test_safetensors_save_is_atomic_when_writing_fails(tmp_path, monkeypatch):
    path = tmp_path / "w.safetensors"
    nn.save({"w": np.ones(3, np.float32)}, path)

    def torn_write(tensors, filename, metadata=None):
        with open(filename, "wb") as f:
            f.write(b"\x10\x00")  # a partial header, then the process dies
        raise KeyboardInterrupt

    monkeypatch.setattr(safetensors_numpy, "save_file", torn_write)
    with pytest.raises(KeyboardInterrupt):
        nn.save({"w": np.zeros(3, np.float32)}, path)
    np.testing.assert_array_equal(nn.load(path)["w"], np.ones(3))
    assert [p.name for p in tmp_path.iterdir()] == ["w.safetensors"]


def test_object_arrays_are_refused_rather_than_pickled(tmp_path):
    for ext in (".npz", ".safetensors"):
        with pytest.raises(ValueError, match="cannot hold without pickle"):
            nn.save({"w": np.array([{"a": 1}], dtype=object)}, tmp_path / f"w{ext}")
    assert list(tmp_path.iterdir()) == []
