"""Models: exact parameter counts, PyTorch names, forward shapes, one SGD step, bad input."""

import numpy as np
import pytest

from models import MLP, AlexNet, LogisticRegression
from tinygrad_edu import Tensor, manual_seed, nn, optim

TORCHVISION_KEYS = [f"features.{i}.{p}" for i in (0, 3, 6, 8, 10) for p in ("weight", "bias")] + [
    f"classifier.{i}.{p}" for i in (1, 4, 6) for p in ("weight", "bias")
]


def test_parameter_counts_are_exact():
    assert AlexNet(variant="paper").num_parameters() == 60_965_224
    assert AlexNet(variant="torchvision").num_parameters() == 61_100_840
    assert AlexNet(num_classes=10, variant="mini").num_parameters() == 361_834
    assert MLP([64, 128, 64, 10]).num_parameters() == 64 * 128 + 128 + 128 * 64 + 64 + 650
    assert LogisticRegression(64, 10).num_parameters() == 650


def test_torchvision_variant_names_and_shapes_match_torchvision():
    state = AlexNet(variant="torchvision").state_dict()
    assert list(state) == TORCHVISION_KEYS
    assert state["features.0.weight"].shape == (64, 3, 11, 11)
    assert state["classifier.1.weight"].shape == (4096, 9216)


def test_paper_initialisation():
    manual_seed(0)
    net = AlexNet(variant="paper")
    convs = [m for m in net.features if isinstance(m, nn.Conv2d)]
    fcs = [m for m in net.classifier if isinstance(m, nn.Linear)]
    assert [float(c.bias.numpy()[0]) for c in convs] == [0.0, 1.0, 0.0, 1.0, 1.0]
    assert [float(f.bias.numpy()[0]) for f in fcs] == [1.0, 1.0, 0.0]
    assert abs(fcs[0].weight.numpy().std() - 0.01) < 1e-4
    assert convs[1].groups == 2 and convs[2].groups == 1 and convs[3].groups == 2


def test_paper_lrn_layer_matches_the_papers_formula():
    net = AlexNet(variant="paper")
    lrn = net.features[2]
    a = np.random.default_rng(0).standard_normal((1, 7, 2, 2)) * 10
    got = lrn(Tensor(a, dtype=np.float64)).numpy()
    want = np.empty_like(a)
    for i in range(7):  # b_i = a_i / (k + alpha * sum_{j=max(0,i-2)}^{min(N-1,i+2)} a_j^2)^beta
        s = (a[:, max(0, i - 2) : min(6, i + 2) + 1] ** 2).sum(axis=1)
        want[:, i] = a[:, i] / (2.0 + 1e-4 * s) ** 0.75
    np.testing.assert_allclose(got, want, rtol=1e-12)


@pytest.mark.parametrize("variant,size", [("paper", 227), ("torchvision", 224)])
def test_full_alexnet_forward_and_one_sgd_step_lowers_loss(variant, size):
    manual_seed(0)
    net = AlexNet(num_classes=10, variant=variant)
    net.eval()  # no dropout so the loss comparison is exact
    x = Tensor.randn(2, 3, size, size)
    y = np.array([1, 7])
    out = net(x)
    assert out.shape == (2, 10)
    before = {n: p.numpy().copy() for n, p in net.named_parameters()}
    loss = out.cross_entropy(y)
    loss.backward()
    optim.SGD(net.parameters(), lr=0.01 if variant == "paper" else 0.001).step()
    assert all(not np.array_equal(before[n], p.numpy()) for n, p in net.named_parameters())
    assert net(x).cross_entropy(y).item() < loss.item()


@pytest.mark.parametrize(
    "shape,match",
    [
        ((2, 3, 224, 224), r"expected images of size 227"),
        ((2, 1, 227, 227), r"expected input \(N, 3, 227, 227\)"),
        ((3, 227, 227), r"expected input"),
    ],
)
def test_alexnet_rejects_wrong_image_shapes(shape, match):
    net = AlexNet(num_classes=10, variant="mini")
    net.image_size = 227  # reuse the small net: the check does not depend on the weights
    with pytest.raises(ValueError, match=match):
        net(Tensor(np.zeros(shape, np.float32)))


def test_labels_out_of_range_are_rejected():
    logits = LogisticRegression(64, 10)(Tensor(np.zeros((2, 64), np.float32)))
    with pytest.raises(ValueError, match=r"target values must be in \[0, 9\]"):
        logits.cross_entropy(np.array([3, 10]))


def test_mlp_rejects_unknown_activation():
    with pytest.raises(ValueError, match="activation must be one of"):
        MLP([4, 2], activation="gelu")
