"""More of torch.nn for image networks: channel dropout, padding layers, pixel shuffles,
instance norm, 1-d pools and embeddings, each against PyTorch where it is installed (and
gradchecked in float64)."""

import numpy as np
import pytest

import compiler
import tinygrad_edu as tg
import tinygrad_edu.nn.functional as F  # noqa: N812 (PyTorch users write F)
from tinygrad_edu import OpError, Tensor, gradcheck, nn


def _torch():
    return pytest.importorskip("torch")


def test_pixel_shuffles_instance_norm_and_pads_match_torch():
    torch = _torch()
    tf = torch.nn.functional
    x = np.random.default_rng(0).standard_normal((2, 8, 6, 6))
    t, tx = Tensor(x, dtype=np.float64), torch.tensor(x)
    np.testing.assert_array_equal(F.pixel_shuffle(t, 2).numpy(), tf.pixel_shuffle(tx, 2).numpy())
    np.testing.assert_array_equal(
        F.pixel_unshuffle(t, 2).numpy(), tf.pixel_unshuffle(tx, 2).numpy()
    )
    np.testing.assert_allclose(F.instance_norm(t).numpy(), tf.instance_norm(tx).numpy(), rtol=1e-12)
    mean, var = Tensor(np.zeros(8), dtype=np.float64), Tensor(np.ones(8), dtype=np.float64)
    t_mean, t_var = torch.zeros(8, dtype=torch.float64), torch.ones(8, dtype=torch.float64)
    F.instance_norm(t, mean, var)
    tf.instance_norm(tx, t_mean, t_var)
    np.testing.assert_allclose(mean.numpy(), t_mean.numpy(), rtol=1e-12)
    np.testing.assert_allclose(var.numpy(), t_var.numpy(), rtol=1e-12)
    for ours, theirs in [
        (nn.ZeroPad2d(1), torch.nn.ZeroPad2d(1)),
        (nn.ConstantPad2d((1, 0, 2, 1), 3.5), torch.nn.ConstantPad2d((1, 0, 2, 1), 3.5)),
        (nn.ReflectionPad2d((1, 2, 0, 1)), torch.nn.ReflectionPad2d((1, 2, 0, 1))),
        (nn.ReplicationPad2d(2), torch.nn.ReplicationPad2d(2)),
    ]:
        np.testing.assert_array_equal(ours(t).numpy(), theirs(tx).numpy())
    assert gradcheck(lambda a: F.pixel_shuffle(F.instance_norm(a), 2), [x[:1, :4, :3, :3]])
    with pytest.raises(OpError, match=r"pixel_shuffle: the channel count must be divisible"):
        F.pixel_shuffle(t, 3)


def test_one_dimensional_pools_match_torch():
    torch = _torch()
    tf = torch.nn.functional
    x = np.random.default_rng(1).standard_normal((2, 3, 11))
    t, tx = Tensor(x, dtype=np.float64), torch.tensor(x)
    pairs = [
        (nn.MaxPool1d(3, 2, 1)(t), tf.max_pool1d(tx, 3, 2, 1)),
        (
            nn.AvgPool1d(3, 2, 1, count_include_pad=False)(t),
            tf.avg_pool1d(tx, 3, 2, 1, False, False),
        ),
        (nn.AdaptiveAvgPool1d(4)(t), tf.adaptive_avg_pool1d(tx, 4)),
        (F.adaptive_max_pool1d(t, 4), tf.adaptive_max_pool1d(tx, 4)),
        (F.max_pool1d(t, 2, ceil_mode=True), tf.max_pool1d(tx, 2, ceil_mode=True)),
    ]
    for got, want in pairs:
        np.testing.assert_allclose(got.numpy(), want.numpy(), rtol=1e-12)


def test_embedding_matches_torch_with_a_frozen_padding_row_and_compiles():
    torch = _torch()
    w = np.random.default_rng(2).standard_normal((5, 3))
    idx = np.array([[0, 4], [2, 0]])
    t, tt = Tensor(w, dtype=np.float64, requires_grad=True), torch.tensor(w, requires_grad=True)
    out, want = (
        F.embedding(Tensor(idx), t, padding_idx=0),
        torch.nn.functional.embedding(torch.tensor(idx), tt, padding_idx=0),
    )
    (out * 2.0).sum().backward()
    (want * 2.0).sum().backward()
    np.testing.assert_array_equal(out.numpy(), want.detach().numpy())
    np.testing.assert_array_equal(t.grad.numpy(), tt.grad.numpy())
    layer = nn.Embedding(10, 4, padding_idx=-1)
    assert layer.padding_idx == 9 and not layer.weight.numpy()[9].any()
    assert list(layer.state_dict()) == list(torch.nn.Embedding(10, 4).state_dict())
    w32 = w.astype(np.float32)
    compiled = compiler.compile(lambda a, i: F.embedding(i, a), w32, idx, backend="llvm")
    np.testing.assert_array_equal(compiled(w32, idx), w32[idx])
    with pytest.raises(IndexError, match=r"gather: index 5 is out of bounds"):
        compiled(w32, np.array([[5, 0], [0, 0]]))


def test_channel_dropout_drops_whole_channels_and_is_identity_in_eval():
    tg.manual_seed(0)
    layer = nn.Dropout2d(0.5)
    out = layer(Tensor(np.ones((8, 32, 3, 3), np.float32))).numpy()
    assert set(np.unique(out)) == {0.0, 2.0}
    assert (out == out[:, :, :1, :1]).all()  # one draw per (example, channel)
    assert 0.3 < (out[:, :, 0, 0] == 0).mean() < 0.7
    x = Tensor(np.ones((2, 4, 5), np.float32))
    assert nn.Dropout1d(0.5).eval()(x) is x
    with pytest.raises(OpError, match=r"dropout2d: expects an \(N, C, H, W\) input"):
        F.dropout2d(x, 0.5)
    with pytest.raises(OpError, match=r"dropout2d: p must be in \[0, 1\]"):
        F.dropout2d(Tensor(np.ones((1, 1, 2, 2), np.float32)), 1.5)


def test_instance_norm_module_tracks_and_uses_running_statistics():
    x = np.random.default_rng(3).standard_normal((4, 3, 5, 5)).astype(np.float32) * 2 + 1
    layer = nn.InstanceNorm2d(3, affine=True, track_running_stats=True)
    assert [k for k in layer.state_dict()] == [
        "weight", "bias", "running_mean", "running_var", "num_batches_tracked"
    ]  # fmt: skip
    layer(Tensor(x))
    np.testing.assert_allclose(layer.running_mean.numpy(), 0.1 * x.mean((0, 2, 3)), rtol=1e-5)
    layer.eval()
    mean = layer.running_mean.numpy().reshape(1, 3, 1, 1)
    var = layer.running_var.numpy().reshape(1, 3, 1, 1)
    np.testing.assert_allclose(
        layer(Tensor(x)).numpy(), (x - mean) / np.sqrt(var + 1e-5), rtol=1e-5, atol=1e-6
    )


def test_ported_model_code_finds_torchs_names():
    """What torchvision's model files reach for: `tinygrad_edu.nn.functional` after a plain
    import, `nn.BatchNorm3d` (a default argument in torchvision.ops.misc), torch.jit's
    decorators and queries, `_assert`; every public layer is in `nn.__all__`."""
    import subprocess
    import sys

    code = "import tinygrad_edu as tg; print(tg.nn.functional.interpolate.__name__)"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.stdout.strip() == "interpolate", done.stderr
    assert tg.nn.BatchNorm3d(2)(Tensor(np.ones((2, 2, 3, 3, 3), np.float32))).shape == (
        2,
        2,
        3,
        3,
        3,
    )
    assert not tg.jit.is_scripting() and tg.jit.unused(len) is len
    with pytest.raises(AssertionError, match="image size"):
        tg._assert(False, "wrong image size")
    layers = [
        name
        for name, value in vars(nn).items()
        if isinstance(value, type) and issubclass(value, nn.Module) and not name.startswith("_")
    ]
    assert sorted(set(layers) - set(nn.__all__)) == []


def test_module_to_casts_and_moves_parameters_buffers_and_gradients_in_place():
    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4))
    weight = model[0].weight
    opt = tg.optim.SGD(model.parameters(), lr=0.1)
    out = model(Tensor(np.ones((2, 3, 5, 5), np.float32))).sum()
    out.backward()
    assert model.double() is model and model[0].weight is weight  # the same Tensor objects
    assert weight.dtype == weight.grad.dtype == np.float64 and opt.params[0] is weight
    state = model.state_dict()
    assert state["1.running_mean"].dtype == np.float64
    assert state["1.num_batches_tracked"].dtype == np.int64  # integers stay
    y = model(Tensor(np.ones((2, 3, 5, 5)), dtype=np.float64))
    assert y.dtype == np.float64
    assert model.to("cpu").float()[0].weight.dtype == np.float32
    assert model.to(dtype=np.float64)[1].weight.dtype == np.float64
    with pytest.raises(TypeError, match="dtype must be floating"):
        model.to(np.int64)


@pytest.mark.parametrize(
    "kw",
    [
        {"scale_factor": 2},
        {"size": (5, 11)},
        {"size": (5, 11), "align_corners": True},
        {"scale_factor": 1.7},
        {"scale_factor": 0.5},
    ],
)
def test_bicubic_interpolation_matches_torch_values_and_gradients(kw):
    torch = _torch()
    x = np.random.default_rng(7).standard_normal((2, 3, 6, 8))
    t, tt = Tensor(x, dtype=np.float64, requires_grad=True), torch.tensor(x, requires_grad=True)
    got = F.interpolate(t, mode="bicubic", **kw)
    want = torch.nn.functional.interpolate(tt, mode="bicubic", **kw)
    np.testing.assert_allclose(got.numpy(), want.detach().numpy(), rtol=1e-12, atol=1e-12)
    seed = np.random.default_rng(8).standard_normal(want.shape)
    (got * Tensor(seed, dtype=np.float64)).sum().backward()
    (want * torch.tensor(seed)).sum().backward()
    np.testing.assert_allclose(t.grad.numpy(), tt.grad.numpy(), rtol=1e-12, atol=1e-12)
    up = nn.Upsample(scale_factor=2, mode="bicubic")(Tensor(x.astype(np.float32)))
    assert up.shape == (2, 3, 12, 16)
