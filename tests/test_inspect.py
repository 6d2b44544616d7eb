"""Inspection: provenance (every kernel named by the layer it computes), warm timing, the
HTML report and its first screen in a real browser."""

from __future__ import annotations

import base64
import io
import os
import re
import sys
import zlib
from typing import Any

import numpy as np
import pytest

import compiler
from compiler.kernel_graph import kernel_graph, layout
from compiler.names import identifier
from compiler.roofline import Machine
from compiler.screenshot import find_browser, screenshot
from compiler.timing import kernel_times, layer_times
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


@pytest.mark.parametrize("variant,side", [("paper", 227), ("torchvision", 224)])
def test_inference_kernels_of_the_full_alexnets_are_named_by_layer(variant, side):
    manual_seed(0)
    model = AlexNet(1000, variant).eval()
    compiled = compiler.compile(model, np.zeros((1, 3, side, side), np.float32), backend="numpy")
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
    # layers "0" and "2" of the Sequential name their kernels
    assert re.search(r"\bk\d+_0_", out) and "_2_bwd_" in out


def test_inspect_explains_a_bad_factory_name():
    from compiler.__main__ import main

    with pytest.raises(SystemExit, match="neither a built-in model"):
        main(["inspect", "no_such_model", "--no-run"])
    with pytest.raises(SystemExit, match="cannot load 'no_such_module_xyz:make'"):
        main(["inspect", "no_such_module_xyz:make", "--no-run"])


# -- the report ---------------------------------------------------------------------------------
def _profiled_report(tmp_path, name: str = "mlp", backend: str = "numpy") -> tuple[Any, str]:
    step = _train_step(name, backend=backend)
    x = np.zeros((2, *MODELS[name][1]), np.float32)
    y = np.array([1, 2])
    step.compiled.profile(lambda: step(x, y), repeats=3)
    path = step.compiled.report(str(tmp_path / f"{name}.html"), Machine("test", 1e11, 1e10))
    return step, open(path, encoding="utf-8").read()


def test_kernel_graph_runs_top_to_bottom_in_phase_order():
    step = _train_step("alexnet-mini")
    kg = kernel_graph(step.compiled)
    pos, how = layout(kg)
    assert how in ("networkx multipartite_layout", "graphviz dot")
    for a, b in kg.edges:  # data flows down the page
        assert pos[b][1] > pos[a][1], (a, b)
    tops = {}
    for n, (_, y) in pos.items():
        tops.setdefault(kg.nodes[n]["phase"], []).append(y)
    assert min(tops["forward"]) < min(tops["loss"]) < min(tops["backward"])
    # work of a later phase that needs nothing of it (one_hot of the labels) may sit beside
    # the last row of the earlier one
    assert max(tops["forward"]) <= min(tops["loss"]) < max(tops["backward"])
    assert len(set(pos.values())) == len(pos)  # no two boxes in one place
    assert {n[0] for n in kg.nodes} == {"k", "in"}
    flows = [f for _, _, d in kg.edges(data=True) for f in d["flows"]]
    g = step.compiled.graph
    assert all(f.nbytes == g.node(f.node)["dtype"].itemsize * np.prod(f.shape) for f in flows)


def test_report_is_self_contained_and_speaks_in_layers(tmp_path):
    step, page = _profiled_report(tmp_path, "mlp", "llvm")
    assert "<link" not in page and " src=" not in page
    assert "https://" not in page and page.count("http://") == page.count(
        "http://www.w3.org/2000/svg"
    )  # only the SVG namespace, nothing fetched
    assert page.count('class="kernel') == len(step.kernels)
    assert page.count('<template id="kt-') == len(step.kernels)
    for k in step.kernels:
        assert k.name in page
    assert 'data-search="' in page and "layers.0" in page
    assert "median of 3 calls after 1 warm-up call" in page
    assert page.count('<tr class="top">') == 3
    # backend sources are stored deflated and come back exactly
    blobs = re.findall(r'data-z="([A-Za-z0-9+/=]+)"', page)
    texts = {zlib.decompress(base64.b64decode(b)).decode() for b in blobs}
    assert step.kernels[0].sources["llvm_ir"] in texts
    assert len(page) < 2_000_000


@pytest.mark.slow
def test_the_paper_alexnet_training_step_report_stays_under_3_mb(tmp_path):
    manual_seed(0)
    model = AlexNet(1000, "paper")
    x = np.zeros((2, 3, 227, 227), np.float32)
    y = np.array([3, 7])
    opt = optim.SGD(model.parameters(), lr=0.01, momentum=0.9, weight_decay=5e-4)
    step = compiler.compile_train_step(model, lambda o, t: o.cross_entropy(t), opt, x, y)
    step.compiled.profile(lambda: step(x, y), repeats=3)
    path = step.compiled.report(str(tmp_path / "alexnet.html"))
    size = os.path.getsize(path)
    assert 200_000 < size < 3_000_000, size
    assert all(k.layer for k in step.kernels[:5])


def _box_regions(png: str, rgb: tuple[int, int, int]) -> list[int]:
    """Areas of the separate regions of colour `rgb` (a kernel box's fill) in an image."""
    from PIL import Image

    ndimage = pytest.importorskip("scipy.ndimage")
    pixels = np.asarray(Image.open(png).convert("RGB")).astype(int)
    mask = np.abs(pixels - np.array(rgb)).sum(axis=2) <= 6
    labels, count = ndimage.label(mask)
    return [int((labels == i).sum()) for i in range(1, count + 1)]


@pytest.mark.skipif(find_browser() is None, reason="no Chromium installed")
def test_the_reports_first_screen_shows_kernel_boxes_in_a_real_browser(tmp_path):
    _, page = _profiled_report(tmp_path, "alexnet-mini")
    png = screenshot(str(tmp_path / "alexnet-mini.html"), str(tmp_path / "first.png"), 1200, 800)
    boxes = [a for a in _box_regions(png, (0xDB, 0xE9, 0xF6)) if a > 3000]  # forward fill
    assert len(boxes) >= 5, boxes  # several separate kernel boxes, readable size (not blank)
    assert all(a < 1.2**2 * 200 * 58 for a in boxes), boxes  # one box each, not a smear


def test_a_report_lists_assembly_once_it_is_made_and_never_compiles_it(tmp_path, monkeypatch):
    """Writing a report after a cold compile renders the IR (milliseconds) but compiles no
    assembly (an -O3 compile per kernel): it says how to get it, and shows it once read."""
    from compiler.backends import llvm as backend

    monkeypatch.setenv("TINYGRAD_EDU_CACHE", str(tmp_path / "cache"))
    backend._Target.reset()
    x = np.ones((4, 64), np.float32)
    compiled = compiler.compile(MLP([64, 10]), x, backend="llvm")
    compiled(x)
    before = (tmp_path / "before.html").name
    compiled.report(str(tmp_path / before))
    assert not list((tmp_path / "cache").glob("*.s"))  # writing it compiled nothing
    assert "assembly: made when first read" in (tmp_path / before).read_text()
    assert all("ret" in k.asm for k in compiled.kernels if k.llvm_ir)
    compiled.report(str(tmp_path / "after.html"))
    assert "assembly: made when first read" not in (tmp_path / "after.html").read_text()
    backend._Target.reset()


def test_debug_5_shows_assembly_for_kernels_from_the_disk_cache(tmp_path, monkeypatch, capsys):
    from compiler.backends import llvm as backend

    monkeypatch.setenv("TINYGRAD_EDU_CACHE", str(tmp_path))
    x = np.ones((4, 64), np.float32)
    backend._Target.reset()
    cold = compiler.compile(MLP([64, 10]), x, backend="llvm")  # cold: objects only
    assert not list(tmp_path.glob("*.s"))  # a cold compile emits no assembly...
    assert "ret" in cold.kernels[0].asm  # ...until it is read
    assert list(tmp_path.glob("*.s"))  # and then it is kept beside the object
    monkeypatch.setenv("DEBUG", "5")
    backend._Target.reset()  # a new process: kernels come from the disk cache
    compiler.compile(MLP([64, 10]), x, backend="llvm")
    err = capsys.readouterr().err
    assert backend._Target.get().misses == 0
    assert "// asm of k0_" in err and "ret" in err.split("// asm of k0_")[1]
    for s in tmp_path.glob("*.s"):  # a cache holding only the objects
        s.unlink()
    backend._Target.reset()
    compiled = compiler.compile(MLP([64, 10]), x, backend="llvm")
    err = capsys.readouterr().err
    assert "// asm of k0_" in err and "ret" in err.split("// asm of k0_")[1]
    assert compiled.kernels[0].asm == cold.kernels[0].asm


def test_graphviz_places_the_kernels_when_it_is_installed(tmp_path, monkeypatch):
    """A stand-in `dot` that answers -Tplain with node i at (1, i) inches: the layout takes
    dot's positions (flipped to run down the page) instead of networkx's."""
    fake = tmp_path / "dot"
    fake.write_text(
        f"#!{sys.executable}\n"
        "import re, sys\n"
        "ids = re.findall(r'^  (n\\d+);$', sys.stdin.read(), re.M)\n"
        "print(f'graph 1 4 {len(ids) + 1}')\n"
        "for i, n in enumerate(ids):\n"
        "    print(f'node {n} 1 {len(ids) - i} 2.78 0.81 \"\" solid box black lightgrey')\n"
        "print('stop')\n"
    )
    fake.chmod(0o755)
    monkeypatch.setenv("PATH", f"{tmp_path}{os.pathsep}{os.environ['PATH']}")
    step = _train_step("mlp")
    kg = kernel_graph(step.compiled)
    pos, how = layout(kg)
    assert how == "graphviz dot"
    ys = [pos[n][1] for n in kg.nodes]
    assert ys == sorted(ys) and ys[0] == 0 and len(set(ys)) == len(ys)


def test_time_per_layer_adds_up_the_layers_kernels():
    step = _train_step("mlp")
    step.compiled.profile(lambda: step(np.zeros((2, 64), np.float32), np.array([1, 2])))
    rows = kernel_times(step.compiled)
    layers = layer_times(rows)
    assert {layer for layer, _, _, _ in layers} == {"layers.0", "layers.2", "loss"}
    assert sum(n for _, _, _, n in layers) == len(step.kernels)
    assert sum(share for _, _, share, _ in layers) == pytest.approx(1.0)
    first = [r.seconds for r in rows if r.kernel.layer == layers[0][0]]
    assert layers[0][1] == pytest.approx(sum(first))
    assert "slowest layers (all phases): " + layers[0][0] in step.compiled.timing_table()


def test_a_cold_compile_shows_a_tqdm_bar_on_a_terminal(monkeypatch):
    from compiler.backends import llvm as backend
    from compiler.target import host_target

    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    err = Terminal()
    monkeypatch.setattr(sys, "stderr", err)
    progress = backend._Progress(6, "kernels", host_target())
    progress.start -= 2.0  # as if compiling had run for two seconds
    for _ in range(6):
        progress.step()
    progress.close()
    text = err.getvalue()
    assert f"[compiler] compiling 6 kernels for {host_target().isa}" in text
    assert "kernel/s" in text or "s/kernel" in text  # tqdm's rate
    assert text.rstrip().endswith("s") and "[compiler] compiled 6 kernels" in text
