"""Inspection: provenance (every kernel named by the layer it computes), warm timing, the
HTML report and its first screen in a real browser."""

from __future__ import annotations

import numpy as np
import pytest

import compiler
from compiler.names import identifier
from models import MLP, AlexNet, LogisticRegression
from tinygrad_edu import manual_seed, nn, optim

MODELS = {
    "logreg": (lambda: LogisticRegression(64, 10), (64,), 10),
    "mlp": (lambda: MLP([64, 32, 10]), (64,), 10),
    "alexnet-mini": (lambda: AlexNet(10, "mini"), (3, 32, 32), 10),
}


def _train_step(name: str, batch: int = 2, backend: str = "numpy") -> compiler.TrainStep:
    make, shape, classes = MODELS[name]
    manual_seed(0)
    model = make()
    x = np.random.default_rng(0).standard_normal((batch, *shape)).astype(np.float32)
    y = np.arange(batch) % classes
    opt = optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    return compiler.compile_train_step(
        model, lambda o, t: o.cross_entropy(t), opt, x, y, backend=backend
    )


def _layers_of(model: nn.Module) -> set[str]:
    return {name for name, _ in model.named_modules() if name}


@pytest.mark.parametrize("name", sorted(MODELS))
def test_every_kernel_of_a_training_step_is_named_by_its_layer(name):
    step = _train_step(name)
    known = _layers_of(step.model) | {"loss"}
    phases = set()
    for k in step.kernels:
        assert k.layer in known, (k.name, k.layer)
        assert k.name.startswith(f"k{step.kernels.index(k)}_{identifier(k.layer)}_"), k.name
        assert set(k.layers) <= known and k.layer in k.layers
        assert ("_bwd_" in k.name) == (k.phase == "backward")
        assert ("_upd_" in k.name) == (k.phase == "update")
        phases.add(k.phase)
    assert phases == {"forward", "loss", "backward", "update"}
    assert len({k.name for k in step.kernels}) == len(step.kernels)


def test_update_kernels_belong_to_the_layer_of_their_parameter():
    step = _train_step("mlp")
    g = step.compiled.graph
    for name, nid in zip(g.output_names, g.outputs):
        if name.startswith("param:"):
            assert g.layer(nid) == name[len("param:") :].rpartition(".")[0]
            assert g.phase(nid) == "update"


def test_backward_nodes_get_the_layer_of_the_forward_node_they_differentiate():
    step = _train_step("alexnet-mini")
    g = step.compiled.graph
    by_op = {g.node(n)["op"]: g.layer(n) for n in g.nx.nodes if not g.is_leaf(n)}
    conv_layers = {g.layer(n) for n in g.nx.nodes if g.node(n)["op"] == "conv2d"}
    grad_layers = {
        g.layer(n) for n in g.nx.nodes if g.node(n)["op"].startswith("conv2d_grad_weight")
    }
    assert grad_layers == conv_layers == {"features.0", "features.4", "features.8",
                                          "features.10", "features.12"}  # fmt: skip
    assert by_op["one_hot"] == "loss"


def test_inference_kernels_of_the_paper_alexnet_are_named_by_layer():
    manual_seed(0)
    model = AlexNet(1000, "paper").eval()
    compiled = compiler.compile(model, np.zeros((1, 3, 227, 227), np.float32), backend="numpy")
    known = _layers_of(model)
    assert all(k.layer in known for k in compiled.kernels)
    assert compiled.kernels[0].layer == "features.0"
    assert compiled.kernels[-1].layer == "classifier.6"
    assert all(k.phase == "forward" for k in compiled.kernels)
