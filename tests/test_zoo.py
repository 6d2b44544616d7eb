"""torchvision's classic CNNs in the DSL (models/resnet.py, vgg.py, mobilenet.py, densenet.py,
squeezenet.py) are torchvision's networks: the same parameter counts (checked against the
numbers torchvision 0.28 gives, without torch), the same state_dict keys in the same order,
the same eval-mode logits with torchvision's weights loaded (eager and compiled on llvm), and
the same parameters, BatchNorm running statistics and momentum buffers after SGD steps in
train mode (eager and compiled).

Tolerances. Logits: float32, max |ours - torchvision| <= 1e-4 * max |torchvision| (the
brief's bound; measured 5e-7..3e-6). Training: float64 on both sides, every parameter and
buffer within 1e-8 of torch's relative to that tensor's largest |value|, or to 1e-3 where
that is smaller. Most tensors agree to ~1e-13; BatchNorm biases at 4x4 maps and batch 2 (32
values per channel) get gradients that are sums of nearly cancelling terms and agree to only
~1e-10 of their size (float64 rounding amplified; a real error is many orders larger). A
BatchNorm feeding a convolution and another BatchNorm (MobileNetV2's projections) has a bias
whose gradient is exactly 0 in exact arithmetic: its value and momentum buffer hold only
rounding noise (~1e-16) on both sides, hence the floor (momentum buffers are held to the same
bound).
Training is compared in float64 because in float32 the steps agree only as well as float32
rounding lets them: at batch 2 and 2x2 feature maps the gradients of BatchNorm biases are
sums of terms that nearly cancel, and those parameters differ from torch's by up to 3% of
their (tiny) size after two steps, however the sums are ordered. Dropout is set to p=0 on
both sides for the training comparison: the two libraries draw different masks.

Inputs are small so the default run stays fast: 64x64 (VGG 32x32: its five pools reach 1x1
and the adaptive pool spreads it to 7x7), batch 2. Tests that need over ~20 s on a busy
2-core machine (the 100M-parameter VGG classifiers, cold LLVM compiles of 300-500 kernels)
are marked slow; ResNet-18's eager and compiled logits and its eager training step run by
default.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest
from torchvision_compat import import_torchvision

import compiler
import models
from tinygrad_edu import Tensor, manual_seed, nn, optim

# parameter counts torchvision 0.28.0 gives (sum of p.numel() over parameters()), for the
# default 1000 classes and for num_classes=10
COUNTS_1000 = {
    "resnet18": 11_689_512,
    "resnet34": 21_797_672,
    "resnet50": 25_557_032,
    "vgg11_bn": 132_868_840,
    "vgg16_bn": 138_365_992,
    "squeezenet1_1": 1_235_496,
    "mobilenet_v2": 3_504_872,
    "densenet121": 7_978_856,
}
COUNTS_10 = {
    "resnet18": 11_181_642,
    "resnet34": 21_289_802,
    "resnet50": 23_528_522,
    "vgg11_bn": 128_812_810,
    "vgg16_bn": 134_309_962,
    "squeezenet1_1": 727_626,
    "mobilenet_v2": 2_236_682,
    "densenet121": 6_964_106,
}
NAMES = [n for n in COUNTS_1000 if hasattr(models, n)]
SIZE = {"vgg11_bn": 32, "vgg16_bn": 32}  # image side; 64 for the others
CLASSES = 10
LOGITS_RTOL = 1e-4
TRAIN_RTOL = 1e-8
SLOW = pytest.mark.slow

# which (model, check) pairs run by default: the rest are slow (see the module docstring)
DEFAULT_LOGITS = {
    ("resnet18", "eager"),
    ("resnet18", "compiled"),
    ("vgg11_bn", "eager"),
    ("mobilenet_v2", "eager"),
    ("mobilenet_v2", "compiled"),
    ("densenet121", "eager"),
    ("squeezenet1_1", "eager"),
    ("squeezenet1_1", "compiled"),
}
DEFAULT_TRAIN = {("resnet18", "eager"), ("mobilenet_v2", "eager")}


def cases(default: set[tuple[str, str]]) -> list:
    return [
        pytest.param(name, mode, marks=[] if (name, mode) in default else [SLOW])
        for name in NAMES
        for mode in ("eager", "compiled")
    ]


def build(name: str, **kwargs: object) -> nn.Module:
    return getattr(models, name)(**kwargs)


def assert_relative(
    got: np.ndarray, want: np.ndarray, rtol: float, what: str, floor: float = 0.0
) -> None:
    """max |got - want| <= rtol * max(max |want|, floor): a relative bound that zero entries
    cannot break; `floor` keeps it from shrinking to nothing for tensors that are all
    rounding noise."""
    got, want = np.asarray(got), np.asarray(want)
    assert got.shape == want.shape, what
    scale = float(np.abs(want).max()) if want.size else 0.0
    err = float(np.abs(got - want).max()) if want.size else 0.0
    assert err <= rtol * max(scale, floor, 1e-30), f"{what}: max error {err:.3g}, scale {scale:.3g}"


def images(name: str, batch: int = 2, seed: int = 0, dtype: type = np.float32) -> np.ndarray:
    side = SIZE.get(name, 64)
    return np.random.default_rng(seed).standard_normal((batch, 3, side, side)).astype(dtype)


def torchvision_twin(name: str) -> tuple[object, nn.Module]:
    """torchvision's model (seeded, with running statistics from one train-mode batch so that
    eval-mode BatchNorm is not the identity) and ours with its state_dict loaded."""
    torch, torchvision = import_torchvision()
    torch.manual_seed(0)
    theirs = getattr(torchvision.models, name)(num_classes=CLASSES)
    theirs.train()
    with torch.no_grad():
        theirs(torch.from_numpy(images(name, batch=4, seed=1)))
    state = {k: v.numpy() for k, v in theirs.state_dict().items()}
    ours = build(name, num_classes=CLASSES)
    assert list(ours.state_dict()) == list(state)  # same keys, same order
    ours.load_state_dict(state)
    return theirs, ours


# -- structure (no torch needed) ----------------------------------------------------------------
@pytest.mark.parametrize(
    "name", [pytest.param(n, marks=[SLOW] if n.startswith("vgg") else []) for n in NAMES]
)
def test_parameter_count_equals_torchvisions(name):
    assert build(name).num_parameters() == COUNTS_1000[name]
    assert build(name, num_classes=CLASSES).num_parameters() == COUNTS_10[name]


def test_state_dict_names_follow_torchvision():
    keys = list(models.resnet18().state_dict())
    assert keys[:6] == [
        "conv1.weight",
        "bn1.weight",
        "bn1.bias",
        "bn1.running_mean",
        "bn1.running_var",
        "bn1.num_batches_tracked",
    ]
    assert "layer2.0.downsample.0.weight" in keys and "layer2.0.downsample.1.running_var" in keys
    assert "layer1.0.downsample.0.weight" not in keys  # layer1 keeps shape: no downsample
    assert keys[-2:] == ["fc.weight", "fc.bias"]
    assert len(keys) == 122
    assert "layer4.2.conv3.weight" in models.resnet50().state_dict()
    dense = models.densenet121().state_dict()
    assert "features.denseblock1.denselayer1.norm1.weight" in dense
    assert "features.denseblock4.denselayer16.conv2.weight" in dense
    assert "features.transition3.conv.weight" in dense and "features.norm5.bias" in dense
    mobile = models.mobilenet_v2().state_dict()
    assert mobile["features.0.0.weight"].shape == (32, 3, 3, 3)
    assert mobile["features.2.conv.1.0.weight"].shape == (96, 1, 3, 3)  # depthwise
    assert mobile["classifier.1.weight"].shape == (1000, 1280)


def test_initialisation_follows_torchvision_schemes():
    """He-normal over fan_out for ResNet/MobileNet convolutions (over fan_in for DenseNet's),
    BatchNorm 1/0; the same seed gives the same weights."""
    manual_seed(0)
    resnet = models.resnet18()
    w = resnet.conv1.weight.data  # (64, 3, 7, 7): fan_out 64*49
    assert w.std() == pytest.approx(np.sqrt(2 / (64 * 49)), rel=0.05)
    assert abs(w.mean()) < 0.1 * w.std()
    assert np.all(resnet.bn1.weight.data == 1) and np.all(resnet.bn1.bias.data == 0)
    manual_seed(0)
    assert np.array_equal(models.resnet18().conv1.weight.data, w)
    zeroed = models.resnet50(zero_init_residual=True)
    assert np.all(zeroed.layer1[0].bn3.weight.data == 0)
    assert np.all(zeroed.layer1[0].bn2.weight.data == 1)
    dense = models.densenet121()
    w = dense.features.conv0.weight.data  # (64, 3, 7, 7): fan_in 3*49
    assert w.std() == pytest.approx(np.sqrt(2 / (3 * 49)), rel=0.05)
    assert np.all(dense.classifier.bias.data == 0)
    mobile = models.mobilenet_v2()
    depthwise = mobile.features[2].conv[1][0].weight.data  # (96, 1, 3, 3): fan_out 96*9
    assert depthwise.std() == pytest.approx(np.sqrt(2 / (96 * 9)), rel=0.05)
    head = mobile.classifier[1].weight.data
    assert head.std() == pytest.approx(0.01, rel=0.05) and np.all(
        mobile.classifier[1].bias.data == 0
    )


def test_weights_argument_names_the_way_to_load_converted_weights():
    with pytest.raises(ValueError, match=r"load_state_dict.*torchvision\.models\.resnet18"):
        models.resnet18(weights="IMAGENET1K_V1")


@pytest.mark.parametrize("name", ["resnet18", "mobilenet_v2", "densenet121"])
def test_bad_input_shape_names_the_model_and_the_fix(name):
    model = build(name, num_classes=CLASSES).eval()
    with pytest.raises(ValueError, match=r"\(N, 3, H, W\).*RGB NCHW"):
        model(Tensor(np.zeros((3, 64, 64), np.float32)))
    with pytest.raises(ValueError, match="H, W >= 32"):
        model(Tensor(np.zeros((1, 3, 16, 16), np.float32)))


# -- against torchvision --------------------------------------------------------------------
@pytest.mark.parametrize("name,mode", cases(DEFAULT_LOGITS))
def test_eval_logits_equal_torchvisions(name, mode):
    torch, _ = import_torchvision()
    theirs, ours = torchvision_twin(name)
    theirs.eval()
    ours.eval()
    x = images(name)
    with torch.no_grad():
        want = theirs(torch.from_numpy(x)).numpy()
    if mode == "eager":
        got = ours(Tensor(x)).numpy()
    else:
        got = compiler.compile(ours, x, backend="llvm")(x)
    assert_relative(got, want, LOGITS_RTOL, f"{name} {mode} logits")


def to_float64(model: nn.Module) -> nn.Module:
    for p in model.parameters():
        p.data = p.data.astype(np.float64)
    for _, b in model.named_buffers():
        if b.dtype.kind == "f":
            b.data = b.data.astype(np.float64)
    return model


def no_dropout(model: nn.Module) -> None:
    for _, m in model.named_modules():
        if isinstance(m, nn.Dropout):
            m.p = 0.0


def sgd_steps(ours: nn.Module, batches: list, compiled: bool) -> tuple[list[float], optim.SGD]:
    opt = optim.SGD(ours.parameters(), lr=0.01, momentum=0.9, weight_decay=1e-4)

    def loss_fn(out: Tensor, target: Tensor) -> Tensor:
        return out.cross_entropy(target)

    step: Callable[[np.ndarray, np.ndarray], float]
    if compiled:
        step = compiler.compile_train_step(ours, loss_fn, opt, *batches[0], backend="llvm")
    else:

        def step(x: np.ndarray, y: np.ndarray) -> float:
            loss = loss_fn(ours(Tensor(x, dtype=x.dtype)), y)
            opt.zero_grad()
            loss.backward()
            opt.step()
            return loss.item()

    return [step(x, y) for x, y in batches], opt


@pytest.mark.parametrize("name,mode", cases(DEFAULT_TRAIN))
def test_sgd_training_steps_equal_torchs(name, mode):
    """Two SGD steps (lr 0.01, momentum 0.9, weight decay 1e-4; two, so the momentum buffer
    carries over) in train mode: losses, parameters, BatchNorm running statistics and batch
    counts, and momentum buffers equal torch's (float64: see the module docstring)."""
    torch, _ = import_torchvision()
    theirs, ours = torchvision_twin(name)
    theirs.double().train()
    to_float64(ours).train()
    for m in theirs.modules():
        if isinstance(m, torch.nn.Dropout):
            m.p = 0.0
    no_dropout(ours)
    rng = np.random.default_rng(2)
    batches = [
        (images(name, seed=s, dtype=np.float64), rng.integers(0, CLASSES, 2)) for s in (3, 4)
    ]
    t_opt = torch.optim.SGD(theirs.parameters(), lr=0.01, momentum=0.9, weight_decay=1e-4)
    want_losses = []
    for x, y in batches:
        loss = torch.nn.functional.cross_entropy(theirs(torch.from_numpy(x)), torch.from_numpy(y))
        t_opt.zero_grad()
        loss.backward()
        t_opt.step()
        want_losses.append(loss.item())
    losses, opt = sgd_steps(ours, batches, compiled=mode == "compiled")
    np.testing.assert_allclose(losses, want_losses, rtol=TRAIN_RTOL)
    want = {k: v.numpy() for k, v in theirs.state_dict().items()}
    for key, value in ours.state_dict().items():
        if value.dtype.kind == "f":
            assert_relative(value, want[key], TRAIN_RTOL, key, floor=1e-3)
        else:
            assert value == want[key] == 3, key  # num_batches_tracked: 1 + 2 steps
    momenta = [t_opt.state[p]["momentum_buffer"].numpy() for p in theirs.parameters()]
    for i, want_buffer in enumerate(momenta):
        assert_relative(
            opt.state[i]["momentum_buffer"], want_buffer, TRAIN_RTOL, f"momentum {i}", 1e-3
        )


# -- command lines --------------------------------------------------------------------------
def test_train_cli_accepts_every_zoo_model():
    """`python -m models.train resnet18 ...`: the model table builds 10-class nets for the
    digits at 32x32 RGB."""
    from models import train

    config, out = train.parse_args(["resnet18", "--epochs", "1"])[:2]
    assert (config.model, config.epochs, out) == ("resnet18", 1, "runs/resnet18")
    assert set(models.zoo.MODELS) <= set(train.CONFIGS) and set(NAMES) <= set(models.zoo.MODELS)
    assert train.build_model("resnet18").num_parameters() == COUNTS_10["resnet18"]
    x_train, y_train, _, _ = train.prepare_digits("resnet18")
    assert x_train.shape[1:] == (3, 32, 32) and x_train.dtype == np.float32
    model = train.build_model("resnet18")
    assert model(Tensor(x_train[:4])).shape == (4, 10)


@pytest.mark.parametrize("train", [False, True])
def test_compiler_inspect_knows_the_zoo(train, capsys):
    """`python -m compiler inspect resnet18 [--train]` (here compiled on the numpy reference
    and not run, to stay fast; the llvm step is what test_sgd_training_steps_equal_torchs
    compiles)."""
    from compiler.__main__ import MODELS, main

    assert set(models.zoo.MODELS) <= set(MODELS)
    flags = ["--train"] if train else []
    main(["inspect", "resnet18", *flags, "--backend", "numpy", "--batch", "2", "--no-run"])
    out = capsys.readouterr().out
    what = "training step" if train else "inference"
    assert f"== resnet18 {what}, batch 2, backend numpy" in out
    assert "kernels" in out
