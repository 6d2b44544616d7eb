"""Inspection: provenance (every kernel named by the layer it computes), warm timing, the
HTML report and its first screen in a real browser."""

from __future__ import annotations

import numpy as np
import pytest

import compiler
from compiler.names import identifier
from compiler.roofline import Machine
from compiler.timing import kernel_times
from compiler.units import plural, si
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


# -- warm timing -----------------------------------------------------------------------------
def test_profile_times_three_warm_calls_per_kernel_and_the_table_is_sorted():
    step = _train_step("mlp")
    x = np.zeros((2, 64), np.float32)
    y = np.array([1, 2])
    calls = []
    step.compiled.profile(lambda: calls.append(step(x, y)), repeats=3, warmup=2)
    assert len(calls) == 5
    assert all(len(k.seconds) == 3 for k in step.kernels)
    rows = kernel_times(step.compiled, Machine("test", 1e11, 1e10))
    assert [r.seconds for r in rows] == sorted((r.seconds for r in rows), reverse=True)
    assert sum(r.share for r in rows) == pytest.approx(1.0)
    assert all(r.peak_pct is not None and r.bound in ("compute", "memory") for r in rows)
    table = step.compiled.timing_table(machine=Machine("test", 1e11, 1e10))
    assert "median of 3 calls after 2 warm-up calls" in table
    lines = table.splitlines()
    assert [line[0] for line in lines[1:5]] == ["*", "*", "*", " "]
    assert rows[0].kernel.name in lines[1]


def test_a_cold_call_is_said_to_be_included():
    step = _train_step("mlp")
    step(np.zeros((2, 64), np.float32), np.array([1, 2]))
    assert "median of 1 call, the first (cold) one included" in step.compiled.timing_table()


def test_summary_uses_adaptive_units_and_plurals():
    compiled = compiler.compile(MLP([64, 10]), np.zeros((1, 64), np.float32), backend="numpy")
    text = compiled.summary()
    assert "0.000" not in text and "kFLOP" in text
    assert "1 kernel " in text or "1 kernel (" in text


def test_units():
    assert si(4.2e7, "FLOP") == "42 MFLOP" and si(0, "B") == "0 B" and si(950, "B") == "950 B"
    assert plural(1, "call") == "1 call" and plural(3, "epoch") == "3 epochs"


# -- the command line ---------------------------------------------------------------------------
def test_inspect_accepts_a_users_factory(tmp_path, monkeypatch, capsys):
    (tmp_path / "my_nets.py").write_text(
        "import numpy as np\n"
        "from tinygrad_edu import nn\n"
        "def make():\n"
        "    net = nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Linear(16, 3))\n"
        "    return net, np.ones((4, 8), np.float32)\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    from compiler.__main__ import main

    main(["inspect", "my_nets:make", "--train", "--backend", "numpy", "--repeats", "4"])
    out = capsys.readouterr().out
    assert "== my_nets:make training step, batch 4" in out
    assert "median of 4 calls after 1 warm-up call" in out
    assert "k0_0_" in out and "_2_bwd_" in out  # layers "0" and "2" of the Sequential


def test_inspect_explains_a_bad_factory_name():
    from compiler.__main__ import main

    with pytest.raises(SystemExit, match="neither a built-in model"):
        main(["inspect", "no_such_model", "--no-run"])
    with pytest.raises(SystemExit, match="cannot load 'no_such_module_xyz:make'"):
        main(["inspect", "no_such_module_xyz:make", "--no-run"])
