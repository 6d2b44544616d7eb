"""ONNX: export checked by onnx.checker and run by onnxruntime, import run by the DSL, round
trips, PyTorch's exports, and every kind of bad file."""

import numpy as np
import pytest
from hypothesis import HealthCheck, given, reject, settings
from hypothesis import strategies as st
from torchvision_compat import import_torchvision

import compiler
from compiler.testing import programs
from models import MLP, AlexNet, LogisticRegression
from tinygrad_edu import Tensor, manual_seed, nn
from tinygrad_edu.errors import OpError
from tinygrad_edu.tensor import cat
from tinygrad_edu.testing import index_expressions

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")


def run_ort(path, *inputs):
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    names = [i.name for i in session.get_inputs()]
    return session.run(None, dict(zip(names, inputs)))


def assert_close(got, want, rtol=1e-5, floor=0.0):
    """Equal to `rtol` relative to the output's scale (elementwise relative error is
    meaningless where a logit crosses zero); `floor` bounds the scale from below for outputs
    of random programs, whose float32 sums may cancel to near zero and keep the rounding
    error of their O(1) terms."""
    want = np.asarray(want)
    scale = max(float(np.abs(want).max()), floor, 1e-30) if want.size else 1.0
    np.testing.assert_allclose(got, want, rtol=rtol, atol=rtol * scale)


MODELS = {
    "alexnet-paper": (lambda: AlexNet(10, "paper"), (3, 227, 227)),
    "alexnet-torchvision": (lambda: AlexNet(10, "torchvision"), (3, 224, 224)),
    "alexnet-mini": (lambda: AlexNet(10, "mini"), (3, 32, 32)),
    "mlp": (lambda: MLP([64, 128, 64, 10]), (64,)),
    "logreg": (lambda: LogisticRegression(64, 10), (64,)),
}


@pytest.mark.parametrize(
    "name",
    # torchvision's layout runs with the slow tests: the torch export test below imports it too
    [
        pytest.param(n, marks=pytest.mark.slow) if n == "alexnet-torchvision" else n
        for n in sorted(MODELS)
    ],
)
def test_models_export_and_run_in_onnxruntime_like_eager_at_another_batch(tmp_path, name):
    make, shape = MODELS[name]
    manual_seed(0)
    model = make()
    path = tmp_path / f"{name}.onnx"
    proto = compiler.export_onnx(model, np.zeros((2, *shape), np.float32), path)
    assert model.training  # exported in eval mode, the mode restored
    onnx.checker.check_model(onnx.load(path), full_check=True)
    assert proto.opset_import[0].version >= 17
    assert [i.name for i in proto.graph.initializer] == list(model.state_dict())
    dims = proto.graph.input[0].type.tensor_type.shape.dim
    assert dims[0].dim_param == "batch" and [d.dim_value for d in dims[1:]] == list(shape)
    # layers as PyTorch's exporter writes them: Conv with its bias, Linear as one Gemm
    ops = [n.op_type for n in proto.graph.node]
    convs, linears = (5, 3) if name.startswith("alexnet") else (0, 3 if name == "mlp" else 1)
    assert ops.count("Conv") == convs and ops.count("Gemm") == linears and "MatMul" not in ops
    x = np.random.default_rng(1).standard_normal((3, *shape)).astype(np.float32)  # batch 3
    (got,) = run_ort(path, x)
    want = model.eval()(x).numpy()
    assert got.shape == want.shape == (3, 10)
    assert_close(got, want)


@pytest.mark.parametrize("name", ["alexnet-mini", "mlp", "logreg"])
def test_imported_exports_give_the_same_outputs_gradients_and_compiled_results(tmp_path, name):
    make, shape = MODELS[name]
    manual_seed(0)
    model = make().eval()
    path = tmp_path / "m.onnx"
    compiler.export_onnx(model, np.zeros((2, *shape), np.float32), path)
    imported = compiler.import_onnx(path)
    assert list(imported.state_dict()) == list(model.state_dict())
    for (k, a), b in zip(model.state_dict().items(), imported.state_dict().values()):
        np.testing.assert_array_equal(a, b, err_msg=k)
    x = np.random.default_rng(2).standard_normal((4, *shape)).astype(np.float32)
    out_model, out_imported = model(Tensor(x)), imported(Tensor(x))
    np.testing.assert_array_equal(out_imported.numpy(), out_model.numpy())  # same ops, same order
    (out_model * out_model).sum().backward()
    (out_imported * out_imported).sum().backward()
    grads = dict(imported.named_parameters())
    for k, p in model.named_parameters():
        np.testing.assert_allclose(grads[k].grad.numpy(), p.grad.numpy(), rtol=1e-6, atol=1e-7)
    compiled = compiler.compile(imported, x, backend="numpy")
    np.testing.assert_array_equal(compiled(x), out_model.numpy())


def test_imported_state_dict_round_trips_and_loads_new_weights(tmp_path):
    manual_seed(0)
    a, b = MLP([8, 5, 3]).eval(), MLP([8, 5, 3]).eval()
    compiler.export_onnx(a, np.zeros((1, 8), np.float32), tmp_path / "a.onnx")
    imported = compiler.import_onnx(tmp_path / "a.onnx")
    imported.load_state_dict(b.state_dict())  # same keys, so another model's weights fit
    x = np.random.default_rng(0).standard_normal((2, 8)).astype(np.float32)
    np.testing.assert_array_equal(imported(x).numpy(), b(x).numpy())


def test_imported_model_trains_like_the_original(tmp_path):
    from tinygrad_edu import optim

    manual_seed(3)
    model = MLP([6, 7, 3])
    compiler.export_onnx(model, np.zeros((2, 6), np.float32), tmp_path / "m.onnx")
    imported = compiler.import_onnx(tmp_path / "m.onnx")
    rng = np.random.default_rng(0)
    x, y = rng.standard_normal((5, 6)).astype(np.float32), rng.integers(0, 3, 5)
    for net in (model, imported):
        opt = optim.SGD(net.parameters(), lr=0.1, momentum=0.9)
        for _ in range(3):
            opt.zero_grad()
            net(x).cross_entropy(y).backward()
            opt.step()
    after = imported.state_dict()
    for k, v in model.state_dict().items():
        np.testing.assert_allclose(after[k], v, rtol=1e-6, atol=1e-7)


@settings(max_examples=15, suppress_health_check=[HealthCheck.too_slow])
@given(program=programs(), seed=st.integers(0, 1000))
def test_random_programs_export_to_onnxruntime_and_import_back(tmp_path_factory, program, seed):
    path = tmp_path_factory.mktemp("p") / "p.onnx"
    xs = program.example_inputs(seed)
    compiler.export_onnx(program, tuple(xs), path, dynamic_batch=False)
    want = [o.numpy() for o in program(*[Tensor(x) for x in xs])]
    got = run_ort(path, *xs)
    assert len(got) == len(want)
    for g, w in zip(got, want):
        assert g.shape == w.shape
        assert_close(g, w, floor=1.0)
    back = compiler.import_onnx(path)(*xs)
    back = back if isinstance(back, tuple) else (back,)
    for g, w in zip(back, want):
        assert_close(g.numpy(), w, floor=1.0)


@settings(max_examples=15, suppress_health_check=[HealthCheck.too_slow])
@given(program=programs(), seed=st.integers(0, 1000))
def test_random_programs_with_a_dynamic_batch_run_at_another_batch(tmp_path_factory, program, seed):
    path = tmp_path_factory.mktemp("p") / "p.onnx"
    xs = program.example_inputs(seed)
    first = "input" if len(xs) == 1 else "input0"
    try:
        proto = compiler.export_onnx(program, tuple(xs), path)
    except OpError as e:  # an input of the batch's size that is not batched: say which is
        assert "batch" in str(e)
        try:
            proto = compiler.export_onnx(program, tuple(xs), path, dynamic_batch=[first])
        except OpError as e:
            assert "batch" in str(e)  # a program that does not generalise says so
            reject()
    batched = [i.type.tensor_type.shape.dim[0].dim_param == "batch" for i in proto.graph.input]
    assert batched[0]
    rng = np.random.default_rng(seed)
    bigger = [
        rng.standard_normal((x.shape[0] + 2, *x.shape[1:])).astype(np.float32) if b else x
        for x, b in zip(xs, batched)
    ]
    want = [o.numpy() for o in program(*[Tensor(x) for x in bigger])]
    for g, w in zip(run_ort(path, *bigger), want):
        assert g.shape == w.shape
        assert_close(g, w, floor=1.0)


def everything(x, y):
    """Most DSL ops in one function (the rest are in the models and random programs)."""
    h = x.leaky_relu(0.1) + y.abs().sqrt() - (x * 0.5).exp().log() / (y * y + 1.0)
    h = h.maximum(y.sign()).minimum(3.0) ** 2.0
    s = h.softmax(axis=1) + h.log_softmax(axis=-1) + h.tanh() + h.sigmoid()
    r = s.sum(axis=(2, 3), keepdim=True) + s.amax(1, keepdim=True) - s.amin(3, keepdim=True)
    p = r.pad((1, 2, 0, 1), value=0.25).avg_pool2d(2, stride=1, padding=1)
    a = h.adaptive_avg_pool2d((3, 2))  # uneven windows: slices, means and cat
    c = x.where(x > 0, -y) + (x <= y).cast(np.float32) + (x != y).float()
    return {
        "p": p,
        "a": a,
        "lrn": c.local_response_norm(3, alpha=1e-2, k=1.5),
        "cat": cat([x, y[:, :2] * 2.0, h], axis=1),
        "idx": c[:, 1:, ::2, -3:][:, None, 0],
        "argmax": h.flatten(1).argmax(axis=1),
        "mean": h.mean(axis=1) - h.var(axis=1),
        "trig": x.sin() * y.cos() + x.tan(),
        "mat": h.reshape(-1, 3, 35) @ h.reshape(-1, 35, 3).permute(0, 2, 1).permute(0, 2, 1),
    }


def test_a_mean_over_the_batch_exports_for_its_batch_only(tmp_path):
    def loss(p, y):
        return p.sigmoid().binary_cross_entropy(y)

    rng = np.random.default_rng(0)
    p, y = rng.standard_normal(4).astype(np.float32), rng.uniform(0, 1, 4).astype(np.float32)
    with pytest.raises(OpError, match=r"at batch 4 but .* at batch 5.*dynamic_batch=False"):
        compiler.export_onnx(loss, (p, y), tmp_path / "bce.onnx")
    compiler.export_onnx(loss, (p, y), tmp_path / "bce.onnx", dynamic_batch=False)
    assert_close(run_ort(tmp_path / "bce.onnx", p, y)[0], loss(Tensor(p), Tensor(y)).numpy())


def test_most_ops_export_and_import_with_their_values(tmp_path):
    rng = np.random.default_rng(0)
    x = rng.standard_normal((2, 3, 5, 7)).astype(np.float32)
    y = rng.standard_normal((2, 3, 5, 7)).astype(np.float32)
    path = tmp_path / "all.onnx"
    compiler.export_onnx(everything, (x, y), path)
    want = {k: v.numpy() for k, v in everything(Tensor(x), Tensor(y)).items()}
    got = run_ort(path, x, y)
    imported = compiler.import_onnx(path)(x, y)
    for (k, w), g, i in zip(want.items(), got, imported):
        assert g.shape == w.shape, k
        assert_close(g, w), k
        assert_close(i.numpy(), w)


def test_cat_one_hot_bce_and_batch_norm_export(tmp_path):
    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = nn.Conv2d(2, 4, 3, padding=1)
            self.bn = nn.BatchNorm2d(4)

        def forward(self, x, labels):
            h = self.bn(self.conv(x)).relu()
            joined = cat([h, x], axis=1)
            probs = joined.mean(axis=(1, 2, 3)).sigmoid()
            return joined, probs * labels.one_hot(3).sum(axis=1)

    manual_seed(0)
    net = Net()
    rng = np.random.default_rng(0)
    x = rng.standard_normal((2, 2, 5, 5)).astype(np.float32)
    labels = np.array([0, 2])
    net(x, labels)  # move the running statistics off their initial values
    path = tmp_path / "bn.onnx"
    proto = compiler.export_onnx(net, (x, labels), path)
    buffers = [i.name for i in proto.graph.initializer if i.doc_string == "buffer"]
    assert buffers == ["bn.running_mean", "bn.running_var", "bn.num_batches_tracked"]
    net.eval()
    x3 = rng.standard_normal((3, 2, 5, 5)).astype(np.float32)
    labels3 = np.array([1, 0, 2])
    want = [t.numpy() for t in net(x3, labels3)]
    for g, w in zip(run_ort(path, x3, labels3), want):
        assert_close(g, w)
    imported = compiler.import_onnx(path)
    assert [n for n, _ in imported.named_buffers()] == buffers
    assert list(imported.state_dict()) == list(net.state_dict())
    for g, w in zip(imported(x3, labels3), want):
        assert_close(g.numpy(), w)


@settings(max_examples=40)
@given(data=st.data())
def test_indexing_exports_like_pytorch_indexing(tmp_path_factory, data):
    shape = data.draw(st.sampled_from([(4,), (3, 5), (2, 3, 4), (2, 1, 3, 4)]))
    index = data.draw(index_expressions(shape))
    x = np.arange(np.prod(shape), dtype=np.float32).reshape(shape)
    want = Tensor(x)[index].numpy()
    path = tmp_path_factory.mktemp("i") / "i.onnx"
    try:
        compiler.export_onnx(lambda t: t[index], x, path, dynamic_batch=False)
    except OpError as e:
        assert "no ONNX rule" in str(e)  # several index arrays or a mask: refused by name
        reject()
    (got,) = run_ort(path, x)
    np.testing.assert_array_equal(got, want)
    np.testing.assert_array_equal(compiler.import_onnx(path)(x).numpy(), want)


def test_negative_indices_and_slices_follow_the_batch(tmp_path):
    path = tmp_path / "last.onnx"
    compiler.export_onnx(
        lambda t: t[-1] * 2 + t[-2:].sum(axis=0), np.ones((3, 4), np.float32), path
    )
    x = np.arange(20, dtype=np.float32).reshape(5, 4)
    (got,) = run_ort(path, x)
    np.testing.assert_array_equal(got, x[-1] * 2 + x[-2:].sum(axis=0))


def test_expand_to_the_batch_reads_the_batch_at_run_time(tmp_path):
    def spread(x):
        row = x[:1].sum(axis=1, keepdim=True)  # (1, 1): expanded back to (N, 4)
        return row.expand(x.shape[0], 4) * x + x.reshape(x.shape[0], 2, 2).reshape(-1, 4)

    path = tmp_path / "spread.onnx"
    proto = compiler.export_onnx(spread, np.ones((2, 4), np.float32), path)
    assert "Shape" in [n.op_type for n in proto.graph.node]
    x = np.random.default_rng(0).standard_normal((5, 4)).astype(np.float32)
    (got,) = run_ort(path, x)
    assert_close(got, spread(Tensor(x)).numpy())
    assert_close(compiler.import_onnx(path)(x).numpy(), spread(Tensor(x)).numpy())


def test_command_line_export_writes_a_runnable_model(tmp_path, capsys):
    from compiler.__main__ import main

    manual_seed(0)
    model = MLP([64, 128, 64, 10])
    weights = tmp_path / "w.safetensors"
    nn.save(model.state_dict(), weights)
    out = tmp_path / "mlp.onnx"
    main(["export", "mlp", str(out), "--weights", str(weights)])
    assert "wrote" in capsys.readouterr().out
    x = np.random.default_rng(0).standard_normal((7, 64)).astype(np.float32)
    assert_close(run_ort(out, x)[0], model.eval()(x).numpy())


def make_small_net():
    """module:function for the command line: a module and its example input."""
    manual_seed(0)
    return MLP([4, 3]), np.zeros((2, 4), np.float32)


def test_command_line_takes_module_colon_function(tmp_path):
    from compiler.__main__ import main

    out = tmp_path / "small.onnx"
    main(["export", "test_onnx:make_small_net", str(out), "--static"])
    model, _ = make_small_net()
    x = np.ones((2, 4), np.float32)
    assert_close(run_ort(out, x)[0], model(x).numpy())
    with pytest.raises(SystemExit, match="--shape"):
        main(["export", "models:AlexNet", str(tmp_path / "a.onnx")])


# -- PyTorch's exports -------------------------------------------------------------------------
def test_torch_alexnet_export_imports_with_torchs_names_and_outputs(tmp_path):
    torch, torchvision = import_torchvision()
    torch.manual_seed(0)
    reference = torchvision.models.alexnet().eval()
    path = tmp_path / "tv.onnx"
    example = torch.randn(1, 3, 224, 224)
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the TorchScript exporter's deprecation notice
        # dynamo=False: the TorchScript exporter needs no onnxscript
        torch.onnx.export(
            reference,
            (example,),
            str(path),
            dynamo=False,
            input_names=["x"],
            dynamic_axes={"x": {0: "batch"}},
        )
    imported = compiler.import_onnx(path)
    assert list(imported.state_dict()) == list(reference.state_dict())
    x = np.random.default_rng(0).standard_normal((2, 3, 224, 224)).astype(np.float32)
    with torch.no_grad():
        want = reference(torch.from_numpy(x)).numpy()
    assert_close(imported(x).numpy(), want)  # (compiled: in the next test, on a small net)
    # and our own AlexNet takes the imported weights
    ours = AlexNet(variant="torchvision").eval()
    ours.load_state_dict(imported.state_dict())
    assert_close(ours(x).numpy(), want)


def test_torch_exported_ops_beyond_alexnet_import(tmp_path):
    torch = pytest.importorskip("torch")

    class Net(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = torch.nn.Conv2d(3, 6, 3, stride=2, padding=(1, 0))
            self.bn = torch.nn.BatchNorm2d(6)
            self.fc = torch.nn.Linear(12, 4)

        def forward(self, x):
            # batch norm after an activation: the exporter cannot fold it into the conv
            h = self.bn(torch.nn.functional.leaky_relu(self.conv(x), 0.2))
            h = torch.cat([h, torch.nn.functional.pad(h, (1, 0, 0, 1))[:, :, 1:, :-1]], dim=1)
            h = torch.nn.functional.pad(h, (1, 1, 2, 0), mode="reflect")
            h = torch.nn.functional.max_pool2d(h, 2, stride=2, ceil_mode=True) + h.erf().mean()
            h = torch.nn.functional.avg_pool2d(h, 2, padding=1, count_include_pad=False)
            h = torch.nn.functional.adaptive_avg_pool2d(h, 1).flatten(1)
            return torch.softmax(self.fc(h), dim=1), h.view(h.shape[0], -1).max(dim=1).values

    torch.manual_seed(0)
    net = Net()
    net(torch.randn(4, 3, 9, 9))
    net.eval()
    path = tmp_path / "net.onnx"
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            net, (torch.randn(2, 3, 9, 9),), str(path), dynamo=False, opset_version=17,
            input_names=["x"], dynamic_axes={"x": {0: "batch"}},
        )  # fmt: skip
    imported = compiler.import_onnx(path)
    x = np.random.default_rng(0).standard_normal((3, 3, 9, 9)).astype(np.float32)
    with torch.no_grad():
        want = [t.numpy() for t in net(torch.from_numpy(x))]
    for g, w in zip(imported(x), want):
        assert_close(g.numpy(), w)
    for g, w in zip(compiler.compile(imported, x, backend="numpy")(x).values(), want):
        assert_close(g, w)
    assert {"bn.running_mean", "bn.running_var"} <= {n for n, _ in imported.named_buffers()}


# -- bad input -------------------------------------------------------------------------------
def _tiny_model(op_type="Relu", opset=18, domain=""):
    h = onnx.helper
    node = h.make_node(op_type, ["x"], ["y"], name="the_node", domain=domain)
    graph = h.make_graph(
        [node],
        "g",
        [h.make_tensor_value_info("x", onnx.TensorProto.FLOAT, [2])],
        [h.make_tensor_value_info("y", onnx.TensorProto.FLOAT, [2])],
    )
    opsets = [h.make_opsetid("", opset)] + ([h.make_opsetid(domain, 1)] if domain else [])
    return h.make_model(graph, opset_imports=opsets)


def test_import_names_an_unsupported_op_and_its_node(tmp_path):
    path = tmp_path / "det.onnx"
    onnx.save(_tiny_model("Det"), path)
    with pytest.raises(ValueError, match=r"op 'Det' \(node 'the_node'\) has no rule.*Fix:"):
        compiler.import_onnx(path)
    onnx.save(_tiny_model("Fancy", domain="com.example"), path)
    with pytest.raises(ValueError, match=r"'com.example::Fancy' \(node 'the_node'\)"):
        compiler.import_onnx(path)


@pytest.mark.parametrize("opset", [9, 12, 99])
def test_import_refuses_an_opset_outside_its_rules(tmp_path, opset):
    path = tmp_path / "old.onnx"
    model = _tiny_model(opset=opset)
    model.ir_version = 8
    onnx.save(model, path)
    with pytest.raises(ValueError, match=rf"{path}.*opset {opset}.*Fix: convert it"):
        compiler.import_onnx(path)


def test_import_runs_a_hand_made_model_at_the_lowest_opset(tmp_path):
    path = tmp_path / "ok.onnx"
    onnx.save(_tiny_model(opset=13), path)
    np.testing.assert_array_equal(
        compiler.import_onnx(path)(np.array([-1.0, 2.0], np.float32)).numpy(), [0.0, 2.0]
    )


@pytest.mark.parametrize("keep", [0, 10, 0.5, -5])
def test_import_of_a_truncated_file_names_it(tmp_path, keep):
    manual_seed(0)
    full = tmp_path / "full.onnx"
    compiler.export_onnx(MLP([8, 4]), np.zeros((1, 8), np.float32), full)
    data = full.read_bytes()
    cut = int(len(data) * keep) if isinstance(keep, float) else keep
    path = tmp_path / "cut.onnx"
    path.write_bytes(data[:cut])
    with pytest.raises(ValueError, match=rf"{path}.*Fix: .*export it again"):
        compiler.import_onnx(path)


def test_import_checks_the_input_shape(tmp_path):
    manual_seed(0)
    compiler.export_onnx(MLP([8, 4]), np.zeros((1, 8), np.float32), tmp_path / "m.onnx")
    imported = compiler.import_onnx(tmp_path / "m.onnx")
    with pytest.raises(ValueError, match=r"input 'input'.*shape \('N', 8\)"):
        imported(np.zeros((2, 9), np.float32))


def test_a_run_time_error_names_the_onnx_node(tmp_path):
    h = onnx.helper
    graph = h.make_graph(
        [h.make_node("Add", ["x", "y"], ["z"], name="adder")],
        "g",
        [h.make_tensor_value_info(n, onnx.TensorProto.FLOAT, [d]) for n, d in ("xa", "yb")],
        [h.make_tensor_value_info("z", onnx.TensorProto.FLOAT, ["c"])],
    )
    path = tmp_path / "add.onnx"
    onnx.save(h.make_model(graph, opset_imports=[h.make_opsetid("", 18)]), path)
    with pytest.raises(OpError, match=r"ONNX node 'adder' \(Add\).*cannot be broadcast"):
        compiler.import_onnx(path)(np.ones(3, np.float32), np.ones(4, np.float32))


def test_export_names_an_op_without_a_rule_and_its_layer(tmp_path):
    class Unfold(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = nn.Conv2d(1, 2, 3)

        def forward(self, x):
            return self.conv(x).unfold2d((2, 2), (1, 1), (0, 0), (1, 1))

    with pytest.raises(OpError, match=r"'unfold2d' has no ONNX export rule.*layer conv.*Fix:"):
        compiler.export_onnx(Unfold(), np.zeros((1, 1, 6, 6), np.float32), tmp_path / "u.onnx")


def test_a_failed_export_leaves_an_existing_file_untouched(tmp_path):
    path = tmp_path / "model.onnx"
    path.write_bytes(b"the previous model")

    def bad(x):
        return x.unfold2d((2, 2), (1, 1), (0, 0), (1, 1))

    with pytest.raises(OpError):
        compiler.export_onnx(bad, np.zeros((1, 1, 4, 4), np.float32), path)
    assert path.read_bytes() == b"the previous model"
    assert [p.name for p in tmp_path.iterdir()] == ["model.onnx"]


def test_a_write_that_dies_midway_leaves_the_old_file(tmp_path, monkeypatch):
    import builtins

    path = tmp_path / "model.onnx"
    manual_seed(0)
    compiler.export_onnx(MLP([8, 4]), np.zeros((1, 8), np.float32), path)
    before = path.read_bytes()
    real_open = builtins.open

    class Dies:
        def __init__(self, f):
            self.f = f

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            self.f.close()

        def write(self, data):
            self.f.write(data[: len(data) // 2])
            raise KeyboardInterrupt

    def torn_open(file, mode="r", *args, **kwargs):
        f = real_open(file, mode, *args, **kwargs)
        return Dies(f) if "w" in mode and str(file).endswith(".onnx") else f

    monkeypatch.setattr(builtins, "open", torn_open)
    with pytest.raises(KeyboardInterrupt):
        compiler.export_onnx(MLP([8, 2]), np.zeros((1, 8), np.float32), path)
    monkeypatch.undo()
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["model.onnx"]


def test_dynamic_batch_refuses_a_model_that_mixes_the_batch_into_other_dims(tmp_path):
    path = tmp_path / "flat.onnx"
    with pytest.raises(OpError, match=r"batch.*Fix: .*dynamic_batch=False"):
        compiler.export_onnx(lambda x: x.reshape(-1) * 2, np.ones((2, 3), np.float32), path)
    compiler.export_onnx(lambda x: x.reshape(-1) * 2, np.ones((2, 3), np.float32), path, False)
    (got,) = run_ort(path, np.ones((2, 3), np.float32))
    np.testing.assert_array_equal(got, np.full(6, 2.0, np.float32))


def test_export_refuses_an_old_opset(tmp_path):
    with pytest.raises(OpError, match="opset must be >= 17"):
        compiler.export_onnx(
            MLP([2, 2]), np.zeros((1, 2), np.float32), tmp_path / "m.onnx", opset=11
        )


def test_argsort_of_bools_exports_though_onnxruntime_cannot_sort_them(tmp_path):
    x = np.random.default_rng(3).standard_normal((2, 7)).astype(np.float32)
    path = tmp_path / "sort.onnx"
    compiler.export_onnx(lambda t: (t > 0).argsort(1), x, path)  # TopK on int32 keys
    np.testing.assert_array_equal(run_ort(path, x)[0], np.argsort(x > 0, 1, kind="stable"))


def test_gather_scatter_add_and_sorting_export(tmp_path):
    """The ops that take their index as data: GatherElements, ScatterElements(add), TopK."""
    rng = np.random.default_rng(11)
    x = rng.standard_normal((3, 6)).astype(np.float32)
    y = np.array([5, 0, 2])

    def fn(t, labels):
        picked = t.log_softmax(1).gather(1, labels.unsqueeze(1))
        spread = t.scatter_add(1, labels.unsqueeze(1), picked)
        top = t.topk(3, 1)
        return {"picked": picked, "spread": spread, "values": top.values, "order": t.argsort(0)}

    path = tmp_path / "along.onnx"
    compiler.export_onnx(fn, (x, y), path)
    want = fn(Tensor(x), Tensor(y))
    for got, name in zip(run_ort(path, x, y), ["picked", "spread", "values", "order"]):
        assert_close(got, want[name].numpy())
    bigger = rng.standard_normal((5, 6)).astype(np.float32), np.array([1, 1, 0, 5, 4])
    want = fn(Tensor(bigger[0]), Tensor(bigger[1]))
    for got, name in zip(run_ort(path, *bigger), ["picked", "spread", "values", "order"]):
        assert_close(got, want[name].numpy())
