"""PyTorch's habits: tensor shape queries, nn containers, module traversal, buffers, state_dict
keys and errors, compared with torch where it is installed."""

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from tinygrad_edu import OpError, OpIndexError, Tensor, manual_seed, nn, optim
from tinygrad_edu.testing import shapes


# -- tensor habits ---------------------------------------------------------------------------
@given(shapes(min_dims=1, max_dims=4), st.data())
def test_size_and_dim_follow_pytorch(shape, data):
    x = Tensor(np.zeros(shape))
    assert x.size() == shape and isinstance(x.size(), tuple)
    assert x.dim() == len(shape) and x.numel() == int(np.prod(shape))
    assert x.size == int(np.prod(shape))  # numpy's element count still works
    d = data.draw(st.integers(-len(shape), len(shape) - 1))
    assert x.size(d) == shape[d] == x.shape[d]
    assert x.size().numel() == x.numel()


def test_size_out_of_range_is_an_index_error_naming_the_dims():
    x = Tensor(np.zeros((2, 3)))
    with pytest.raises(IndexError, match=r"dim 2 is out of range for a 2-D tensor"):
        x.size(2)
    with pytest.raises(IndexError, match="0-d tensor has no dims"):
        Tensor(np.float32(1)).size(0)


def test_item_tolist_and_reshape_minus_one():
    x = Tensor(np.arange(6.0).reshape(2, 3))
    assert x.reshape(-1).shape == (6,) and x.view(3, -1).shape == (3, 2)
    assert x.tolist() == [[0.0, 1.0, 2.0], [3.0, 4.0, 5.0]]
    assert x.sum().item() == 15.0 and isinstance(x.sum().item(), float)
    with pytest.raises(ValueError, match="6 elements"):
        x.item()


def test_view_as_type_as_and_new_constructors():
    x = Tensor(np.arange(6.0).reshape(2, 3))
    double = Tensor(np.zeros((3, 2)), dtype=np.float64)
    assert x.view_as(double).shape == (3, 2) and x.reshape_as(double).shape == (3, 2)
    assert x.type_as(double).dtype == np.float64 and x.type_as(x) is x
    assert x[:1].expand_as(x).tolist() == [[0.0, 1.0, 2.0]] * 2
    z = double.new_zeros(2, 4)
    assert z.shape == (2, 4) and z.dtype == np.float64 and not z.numpy().any()
    assert x.new_ones((3,)).tolist() == [1.0] * 3 and x.new_ones(3).dtype == np.float32
    assert x.new_full((2,), 7.0).tolist() == [7.0, 7.0]
    assert x.new_tensor([1, 2]).dtype == np.float32
    assert x.new_zeros(2, dtype=np.int64, requires_grad=False).dtype == np.int64
    with pytest.raises(OpError, match="view_as: expects a Tensor"):
        x.view_as((3, 2))


def test_tensor_habits_match_torch():
    torch = pytest.importorskip("torch")
    a = np.random.default_rng(0).standard_normal((2, 3, 4)).astype(np.float32)
    x, t = Tensor(a), torch.tensor(a)
    assert tuple(x.size()) == tuple(t.size()) and x.size(-2) == t.size(-2)
    assert x.dim() == t.dim() and x.numel() == t.numel()
    assert x.new_zeros(2, 3).shape == tuple(t.new_zeros(2, 3).shape)
    np.testing.assert_array_equal(x.view(-1, 4).numpy(), t.view(-1, 4).numpy())


# -- tinygrad_edu.nn.functional ----------------------------------------------------------------
def test_functional_is_importable_under_pytorchs_path():
    import tinygrad_edu.nn.functional as F  # noqa: N812 (PyTorch's alias)
    from tinygrad_edu import functional

    assert F.relu is functional.relu and "cross_entropy" in F.__all__


def test_functional_forms_match_torch_functional():
    torch = pytest.importorskip("torch")
    import torch.nn.functional as TF  # noqa: N812

    import tinygrad_edu.nn.functional as F  # noqa: N812

    rng = np.random.default_rng(0)
    x = rng.standard_normal((2, 3, 6, 6)).astype(np.float32)
    w = rng.standard_normal((4, 3, 3, 3)).astype(np.float32)
    b = rng.standard_normal(4).astype(np.float32)
    logits = rng.standard_normal((5, 4)).astype(np.float32)
    labels = np.array([0, 3, 1, 1, 2])
    xt, xtorch = Tensor(x), torch.tensor(x)
    pairs = [
        (F.relu(xt), TF.relu(xtorch)),
        (F.sigmoid(xt), torch.sigmoid(xtorch)),
        (F.tanh(xt), torch.tanh(xtorch)),
        (F.softmax(xt, dim=1), TF.softmax(xtorch, dim=1)),
        (F.log_softmax(xt, dim=-1), TF.log_softmax(xtorch, dim=-1)),
        (
            F.conv2d(xt, Tensor(w), Tensor(b), padding=1, stride=2),
            TF.conv2d(xtorch, torch.tensor(w), torch.tensor(b), padding=1, stride=2),
        ),
        (F.max_pool2d(xt, 2), TF.max_pool2d(xtorch, 2)),
        (F.avg_pool2d(xt, 3, stride=2, padding=1), TF.avg_pool2d(xtorch, 3, stride=2, padding=1)),
        (F.adaptive_avg_pool2d(xt, (4, 5)), TF.adaptive_avg_pool2d(xtorch, (4, 5))),
        (F.dropout(xt, 0.5, training=False), TF.dropout(xtorch, 0.5, training=False)),
        (
            F.linear(Tensor(logits), Tensor(w.reshape(4, -1)[:, :4])),
            TF.linear(torch.tensor(logits), torch.tensor(w.reshape(4, -1)[:, :4])),
        ),
        (
            F.cross_entropy(Tensor(logits), Tensor(labels)),
            TF.cross_entropy(torch.tensor(logits), torch.tensor(labels)),
        ),
        (F.one_hot(Tensor(labels)), TF.one_hot(torch.tensor(labels))),
    ]
    for reduction in ("mean", "sum", "none"):
        pairs.append(
            (
                F.mse_loss(xt, Tensor(x[::-1].copy()), reduction=reduction),
                TF.mse_loss(xtorch, torch.tensor(x[::-1].copy()), reduction=reduction),
            )
        )
    for ours, theirs in pairs:
        assert ours.shape == tuple(theirs.shape) and ours.dtype == theirs.numpy().dtype
        np.testing.assert_allclose(ours.numpy(), theirs.numpy(), rtol=1e-5, atol=1e-6)


def test_functional_names_the_op_when_given_a_non_tensor():
    import tinygrad_edu.nn.functional as F  # noqa: N812

    with pytest.raises(TypeError, match="relu: input must be a Tensor"):
        F.relu(np.zeros(3))
    x = Tensor(np.arange(25.0).reshape(1, 1, 5, 5))
    assert F.max_pool2d(x, 2, ceil_mode=True).shape == (1, 1, 3, 3)


# -- containers, traversal, buffers, state_dict ----------------------------------------------
class Zoo(nn.Module):
    """Every container nested: ModuleList in Sequential, ModuleDict, BatchNorm1d, Identity,
    a ParameterList and a shared layer (listed once, as PyTorch does)."""

    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Sequential(nn.Linear(4, 6), nn.BatchNorm1d(6), nn.ReLU())
        self.blocks = nn.ModuleList([nn.Linear(6, 6), nn.Identity()])
        self.blocks.append(nn.Linear(6, 6))
        self.heads = nn.ModuleDict({"cls": nn.Linear(6, 3), "aux": nn.Linear(6, 2)})
        self.scales = nn.ParameterList([nn.Parameter(np.ones(3))])
        self.tied = self.heads["cls"]

    def forward(self, x):
        x = self.stem(x)
        for block in self.blocks:
            x = block(x)
        return self.heads["cls"](x) * self.scales[0] + self.heads["aux"](x).sum()


def torch_zoo(torch):
    tnn = torch.nn

    class TorchZoo(tnn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.stem = tnn.Sequential(tnn.Linear(4, 6), tnn.BatchNorm1d(6), tnn.ReLU())
            self.blocks = tnn.ModuleList([tnn.Linear(6, 6), tnn.Identity()])
            self.blocks.append(tnn.Linear(6, 6))
            self.heads = tnn.ModuleDict({"cls": tnn.Linear(6, 3), "aux": tnn.Linear(6, 2)})
            self.scales = tnn.ParameterList([tnn.Parameter(torch.ones(3))])
            self.tied = self.heads["cls"]

        def forward(self, x):
            x = self.stem(x)
            for block in self.blocks:
                x = block(x)
            return self.heads["cls"](x) * self.scales[0] + self.heads["aux"](x).sum()

    return TorchZoo()


def test_names_and_state_dict_keys_equal_pytorchs_for_nested_containers():
    torch = pytest.importorskip("torch")
    ours, theirs = Zoo(), torch_zoo(torch)
    assert [n for n, _ in ours.named_modules()] == [n for n, _ in theirs.named_modules()]
    assert [n for n, _ in ours.named_children()] == [n for n, _ in theirs.named_children()]
    assert [n for n, _ in ours.named_parameters()] == [n for n, _ in theirs.named_parameters()]
    assert [n for n, _ in ours.named_buffers()] == [n for n, _ in theirs.named_buffers()]
    assert list(ours.state_dict()) == list(theirs.state_dict())
    assert ours.num_parameters() == sum(p.numel() for p in theirs.parameters())
    # torch's weights load by key and give torch's outputs, train and eval mode
    ours.load_state_dict({k: v.numpy() for k, v in theirs.state_dict().items()})
    x = np.random.default_rng(0).standard_normal((5, 4)).astype(np.float32)
    for mode in (True, False):
        ours.train(mode), theirs.train(mode)
        with torch.no_grad():
            expected = theirs(torch.tensor(x)).numpy()
        np.testing.assert_allclose(ours(Tensor(x)).numpy(), expected, rtol=1e-5, atol=1e-6)
    for key, value in theirs.state_dict().items():  # running stats after the training call
        np.testing.assert_allclose(ours.state_dict()[key], value.numpy(), rtol=1e-5, atol=1e-6)


def test_module_list_behaves_like_a_list_and_renumbers_its_keys():
    a, b, c, d = (nn.Linear(2, 2) for _ in range(4))
    ml = nn.ModuleList([a, b])
    ml.extend([c])
    ml.insert(0, d)
    assert len(ml) == 4 and list(ml) == [d, a, b, c] and ml[-1] is c and ml[1] is a
    assert isinstance(ml[1:3], nn.ModuleList) and list(ml[1:3]) == [a, b]
    assert [n for n, _ in ml.named_children()] == ["0", "1", "2", "3"]
    del ml[0]
    assert list(ml) == [a, b, c] and ml.pop() is c and len(ml) == 2
    assert list(ml.state_dict()) == ["0.weight", "0.bias", "1.weight", "1.bias"]
    ml[1] = d
    assert ml[1] is d and len(ml.parameters()) == 4
    with pytest.raises(IndexError, match="index 2 is out of range for length 2"):
        ml[2]
    with pytest.raises(TypeError, match="items must be Modules"):
        ml.append(np.zeros(2))
    with pytest.raises(TypeError, match="has no forward"):
        ml(Tensor(np.zeros(2)))


def test_sequential_slices_and_named_children():
    from collections import OrderedDict

    seq = nn.Sequential(OrderedDict(fc=nn.Linear(2, 3), act=nn.ReLU(), out=nn.Linear(3, 1)))
    assert list(seq.state_dict()) == ["fc.weight", "fc.bias", "out.weight", "out.bias"]
    head = seq[1:]
    assert isinstance(head, nn.Sequential) and list(head) == [seq[1], seq[2]]
    assert head(Tensor(np.ones((1, 3)))).shape == (1, 1) and len(seq.append(nn.Tanh())) == 4


def test_module_and_parameter_dicts():
    md = nn.ModuleDict({"b": nn.Linear(2, 2)})
    md["a"] = nn.Linear(2, 1)
    assert md.keys() == ["b", "a"] and "a" in md and len(md) == 2 and list(md) == ["b", "a"]
    assert list(md.state_dict())[:2] == ["b.weight", "b.bias"]
    assert md.pop("b") is not None and md.keys() == ["a"]
    with pytest.raises(KeyError, match="no key 'zz'"):
        md["zz"]
    with pytest.raises(KeyError, match="'training' already exists"):
        md["training"] = nn.ReLU()
    pd = nn.ParameterDict({"scale": Tensor(np.ones(2))})
    pl = nn.ParameterList([Tensor(np.ones(1)), Tensor(np.zeros(2))])
    assert pd["scale"].requires_grad and list(pd.state_dict()) == ["scale"]
    assert [tuple(p.shape) for p in pl] == [(1,), (2,)] and list(pl.state_dict()) == ["0", "1"]


def test_plain_python_containers_of_layers_are_refused_with_the_fix():
    class Forgetful(nn.Module):
        def __init__(self, kind):
            super().__init__()
            layers = [nn.Linear(2, 2), nn.ReLU()]
            if kind == "dict":
                self.layers = dict(enumerate(layers))
            elif kind == "params":
                self.layers = [nn.Parameter(np.ones(2))]
            else:
                self.layers = layers if kind == "list" else tuple(layers)

    with pytest.raises(TypeError, match=r"Forgetful\.layers: a Python list of modules .*nn\.Mo"):
        Forgetful("list")
    with pytest.raises(TypeError, match=r"tuple of modules .* nn\.ModuleList"):
        Forgetful("tuple")
    with pytest.raises(TypeError, match=r"dict of modules .* nn\.ModuleDict"):
        Forgetful("dict")
    with pytest.raises(TypeError, match=r"list of parameters .* nn\.ParameterList"):
        Forgetful("params")

    class Early(nn.Module):
        def __init__(self):
            self.fc = nn.Linear(2, 2)
            super().__init__()

    with pytest.raises(AttributeError, match=r"call super\(\)\.__init__\(\) first"):
        Early()


def test_register_buffer_parameter_and_module():
    m = nn.Module()
    m.register_buffer("stat", Tensor(np.zeros(2)))
    m.register_buffer("scratch", Tensor(np.ones(1)), persistent=False)
    m.register_buffer("unused", None)
    m.register_parameter("w", nn.Parameter(np.ones(3)))
    m.register_parameter("b", None)
    m.add_module("child", nn.Linear(3, 1))
    assert [n for n, _ in m.named_buffers()] == ["stat", "scratch"]
    assert list(m.state_dict()) == ["w", "stat", "child.weight", "child.bias"]
    assert [n for n, _ in m.named_parameters()] == ["w", "child.weight", "child.bias"]
    assert m.get_submodule("child") is m.child and m.b is None
    with pytest.raises(KeyError, match="already exists"):
        m.register_buffer("w", Tensor(np.zeros(1)))
    with pytest.raises(KeyError, match="contain no '.'"):
        m.add_module("a.b", nn.ReLU())
    with pytest.raises(TypeError, match=r"nn\.Parameter\(data\)"):
        m.register_parameter("v", Tensor(np.ones(2)))
    with pytest.raises(AttributeError, match="no submodule 'nope'"):
        m.get_submodule("child.nope")


def test_frozen_parameters_stay_in_the_state_dict():
    net = nn.Sequential(nn.Linear(2, 3), nn.Linear(3, 1))
    net[0].requires_grad_(False)
    assert list(net.state_dict()) == ["0.weight", "0.bias", "1.weight", "1.bias"]
    assert len(net.parameters()) == 4 and not net[0].weight.requires_grad
    net.requires_grad_()
    assert all(p.requires_grad for p in net.parameters())


def test_apply_visits_children_first_then_the_module():
    torch = pytest.importorskip("torch")
    ours, theirs = Zoo(), torch_zoo(torch)
    seen, torch_seen = [], []
    ours.apply(lambda m: seen.append(type(m).__name__))
    theirs.apply(lambda m: torch_seen.append(type(m).__name__.removeprefix("Torch")))
    assert seen == torch_seen
    # the tied layer is a direct child too (named_modules lists it once, under heads.cls)
    assert [type(m).__name__ for m in ours.children()] == [
        "Sequential", "ModuleList", "ModuleDict", "ParameterList", "Linear",
    ]  # fmt: skip
    assert len(list(ours.modules())) == len(list(theirs.modules()))


def test_apply_initialises_weights():
    net = nn.Sequential(nn.Linear(2, 3), nn.ReLU(), nn.Linear(3, 1))

    def init(m):
        if isinstance(m, nn.Linear):
            m.weight.data[...] = 0.5

    assert net.apply(init) is net
    assert all((p.numpy() == 0.5).all() for n, p in net.named_parameters() if "weight" in n)


def test_load_state_dict_non_strict_returns_missing_and_unexpected_keys():
    net = nn.Sequential(nn.Linear(2, 3), nn.BatchNorm1d(3))
    state = net.state_dict()
    del state["1.running_var"]
    state["1.extra"] = np.zeros(1)
    result = nn.Sequential(nn.Linear(2, 3), nn.BatchNorm1d(3)).load_state_dict(state, False)
    assert result.missing_keys == ["1.running_var"] and result.unexpected_keys == ["1.extra"]
    state["0.weight"] = np.zeros((2, 2))
    with pytest.raises(OpError, match=r"0\.weight: expected \(3, 2\), got \(2, 2\)"):
        net.load_state_dict(state, strict=False)  # a shape mismatch is an error either way


# -- BatchNorm1d -----------------------------------------------------------------------------
@pytest.mark.parametrize("shape", [(6, 3), (4, 3, 5)])
@pytest.mark.parametrize("momentum", [0.1, None])
def test_batchnorm1d_matches_torch_in_train_and_eval(shape, momentum):
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(1)
    ours, theirs = nn.BatchNorm1d(3, momentum=momentum), torch.nn.BatchNorm1d(3, momentum=momentum)
    with torch.no_grad():
        theirs.weight.uniform_(0.5, 1.5), theirs.bias.uniform_(-1, 1)
    ours.load_state_dict({k: v.numpy() for k, v in theirs.state_dict().items()})
    for _ in range(2):
        x = rng.standard_normal(shape).astype(np.float32) * 3 + 1
        out = ours(Tensor(x)).numpy()
        np.testing.assert_allclose(out, theirs(torch.tensor(x)).detach().numpy(), atol=1e-5)
    for key, value in theirs.state_dict().items():
        np.testing.assert_allclose(ours.state_dict()[key], value.numpy(), rtol=1e-6)
    ours.eval(), theirs.eval()
    x = rng.standard_normal(shape).astype(np.float32)
    np.testing.assert_allclose(
        ours(Tensor(x)).numpy(), theirs(torch.tensor(x)).detach().numpy(), atol=1e-5
    )


def test_batchnorm_without_affine_or_running_stats_matches_torch():
    torch = pytest.importorskip("torch")
    x = np.random.default_rng(2).standard_normal((4, 3, 2, 2)).astype(np.float32)
    ours = nn.BatchNorm2d(3, affine=False, track_running_stats=False).eval()
    theirs = torch.nn.BatchNorm2d(3, affine=False, track_running_stats=False).eval()
    assert list(ours.state_dict()) == list(theirs.state_dict()) == []
    np.testing.assert_allclose(ours(Tensor(x)).numpy(), theirs(torch.tensor(x)).numpy(), atol=1e-5)


def test_batchnorm1d_rejects_wrong_inputs():
    bn = nn.BatchNorm1d(3)
    with pytest.raises(OpError, match=r"expected \(N, 3\) or \(N, 3, L\)"):
        bn(Tensor(np.zeros((2, 3, 4, 4))))
    with pytest.raises(OpError, match="more than 1 value per channel"):
        bn(Tensor(np.zeros((1, 3))))


def test_batchnorm1d_compiled_training_updates_running_stats_like_eager():
    import compiler

    def net():
        manual_seed(0)
        return nn.Sequential(nn.Linear(4, 5), nn.BatchNorm1d(5), nn.ReLU(), nn.Linear(5, 3))

    rng = np.random.default_rng(3)
    x = rng.standard_normal((8, 4)).astype(np.float32)
    y = rng.integers(0, 3, 8)
    eager, model = net(), net()
    eager_opt = optim.SGD(eager.parameters(), lr=0.1, momentum=0.9)
    opt = optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    step = compiler.compile_train_step(
        model, lambda o, t: o.cross_entropy(t), opt, x, y, backend="numpy"
    )
    for _ in range(3):
        loss = eager(Tensor(x)).cross_entropy(y)
        eager_opt.zero_grad(), loss.backward(), eager_opt.step()
        step(x, y)
    for key, value in eager.state_dict().items():
        np.testing.assert_allclose(model.state_dict()[key], value, rtol=1e-5, atol=1e-6)
    assert int(model.state_dict()["1.num_batches_tracked"]) == 3


def test_frozen_layers_in_the_optimizer_stay_put_eager_and_compiled():
    """PyTorch's fine-tuning habit: freeze a layer, pass every parameter to the optimizer. A
    frozen parameter gets no grad, so the step skips it (weight decay and momentum included),
    eagerly and in a compiled step; the trained ones agree between the two."""
    import compiler

    def make() -> nn.Module:
        manual_seed(0)
        net = nn.Sequential(nn.Linear(4, 5), nn.ReLU(), nn.Linear(5, 3))
        net[0].requires_grad_(False)
        return net

    x = np.random.default_rng(1).normal(size=(6, 4)).astype(np.float32)
    y = np.array([0, 1, 2, 0, 1, 2])
    eager, compiled = make(), make()
    frozen = eager[0].weight.numpy().copy()
    opt_e = optim.SGD(eager.parameters(), lr=0.1, momentum=0.9, weight_decay=0.01)
    opt_c = optim.SGD(compiled.parameters(), lr=0.1, momentum=0.9, weight_decay=0.01)
    step = compiler.compile_train_step(
        compiled, lambda o, t: o.cross_entropy(t), opt_c, x, y, backend="llvm"
    )
    for _ in range(2):
        opt_e.zero_grad()
        eager(Tensor(x)).cross_entropy(y).backward()
        opt_e.step()
        step(x, y)
    for net in (eager, compiled):
        assert np.array_equal(net[0].weight.numpy(), frozen)
    assert not np.allclose(eager[2].weight.numpy(), make()[2].weight.numpy())
    np.testing.assert_allclose(compiled[2].weight.numpy(), eager[2].weight.numpy(), atol=1e-6)


# -- what the differential fuzzing against PyTorch found -------------------------------------
@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.int64])
def test_a_tensor_owns_its_numbers_as_torch_tensor_does(dtype):
    user = np.ones(3, dtype=dtype)
    t = Tensor(user, dtype=dtype)
    assert not np.shares_memory(t.numpy(), user)
    if dtype != np.int64:  # an optimizer's in-place step leaves the caller's array alone
        p = Tensor(user, dtype=dtype, requires_grad=True)
        opt = optim.SGD([p], lr=0.5)
        (p * p).sum().backward()
        opt.step()
        np.testing.assert_array_equal(p.numpy(), np.zeros(3))
    np.testing.assert_array_equal(user, np.ones(3))


def test_float_int_and_to_a_dtype():
    assert float(Tensor(2.5)) == 2.5 and int(Tensor(7)) == 7
    with pytest.raises(ValueError, match="item: tensor has 2 elements"):
        float(Tensor([1.0, 2.0]))
    for dtype in (np.float64, "float64", np.dtype("float64")):
        y = Tensor([1.0, 2.0]).to(dtype)
        assert y.dtype == np.float64 and y.numpy().tolist() == [1.0, 2.0]
    assert Tensor([1.0]).to("cpu").dtype == np.float32


def test_nn_save_takes_a_module(tmp_path):
    manual_seed(0)
    model = nn.Linear(3, 2)
    nn.save(model, tmp_path / "m.safetensors")
    other = nn.Linear(3, 2)
    other.load_state_dict(nn.load(tmp_path / "m.safetensors"))
    np.testing.assert_array_equal(other.weight.numpy(), model.weight.numpy())


def test_probability_targets_get_their_gradient():
    # d/dp of mean_i(-sum_c p_ic log q_ic) is -log q / N, where torch also has one
    rng = np.random.default_rng(0)
    x = rng.standard_normal((2, 3))
    p = Tensor(np.full((2, 3), 1 / 3), dtype="float64", requires_grad=True)
    Tensor(x, dtype="float64").cross_entropy(p).backward()
    log_q = x - np.log(np.exp(x).sum(1, keepdims=True))
    np.testing.assert_allclose(p.grad.numpy(), -log_q / 2, rtol=1e-12)


@pytest.mark.parametrize("a, b", [([7, -7, 6], [2, 2, -4]), ([7.5, -7.5, 0.25], [2.0, 2.0, -0.5])])
def test_floor_division_and_remainder_follow_python(a, b):
    x, y = Tensor(np.array(a)), Tensor(np.array(b))
    np.testing.assert_array_equal((x // y).numpy(), np.floor_divide(np.array(a), np.array(b)))
    np.testing.assert_allclose((x % y).numpy(), np.remainder(np.array(a), np.array(b)))
    assert (x // y).dtype == (np.int64 if isinstance(a[0], int) else np.float32)
    np.testing.assert_array_equal((x // 2).numpy(), np.floor_divide(np.array(a), 2))
    np.testing.assert_allclose((10 % y).numpy(), np.remainder(10, np.array(b)))
    with pytest.raises(ZeroDivisionError, match="floor_divide: integer division by zero"):
        Tensor(np.array([1, 2])) // 0


def test_remainder_gradients_and_compiled_floor():
    import compiler

    x = Tensor(np.array([3.7, -1.2, 5.5]), dtype="float64", requires_grad=True)
    (x % 2.0).sum().backward()
    np.testing.assert_array_equal(x.grad.numpy(), np.ones(3))  # d(x - 2 floor(x/2))/dx
    v = np.array([[-2.5, -0.5, 0.0, 0.5, 1.5, 2.0, 3.999, -7.0] * 3], dtype=np.float32)
    f = compiler.compile(lambda t: t.floor() + t % 1.5, Tensor(v), backend="llvm")
    np.testing.assert_allclose(f(v), np.floor(v) + np.remainder(v, 1.5), rtol=1e-6, atol=1e-6)


def test_std_of_constant_rows_has_a_zero_gradient():
    a = Tensor(np.ones((2, 3)), dtype="float64", requires_grad=True)
    a.std(1).sum().backward()
    np.testing.assert_array_equal(a.grad.numpy(), np.zeros((2, 3)))
    b = Tensor(np.array([[1.0, 2.0, 4.0]]), dtype="float64", requires_grad=True)
    b.std(1).sum().backward()  # elsewhere the gradient is (x - mean) / ((n - 1) * std)
    x = np.array([1.0, 2.0, 4.0])
    want = (x - x.mean()) / (2 * x.std(ddof=1))
    np.testing.assert_allclose(b.grad.numpy()[0], want, rtol=1e-12)
    assert np.isnan(Tensor(np.array([1.0, np.nan])).std().numpy())


def test_careless_inputs_get_errors_that_name_the_op():
    with pytest.raises(OpError, match="argmax: cannot take the index of the largest of no"):
        Tensor(np.zeros(0)).argmax()
    with pytest.raises(OpError, match="pow: integers to negative integer powers"):
        Tensor(np.array([2])) ** Tensor(np.array([-1]))
    with pytest.raises(OpError, match="pow: integers to negative integer powers"):
        2 ** Tensor(np.array([-1]))  # the reflected form runs the same op
    with pytest.raises(ValueError, match="Tensor: the nested list is ragged"):
        Tensor([[1.0, 2.0], [3.0]])
    with pytest.raises(TypeError, match=r"Linear: the input must be a Tensor, got a list"):
        nn.Linear(3, 2)([[1.0, 2.0, 3.0]])
    x = Tensor(np.ones((1, 1, 4, 6)))
    assert x.adaptive_avg_pool2d((None, 2)).shape == (1, 1, 4, 2)


def test_a_compiled_gather_takes_its_index_as_an_input_or_a_constant():
    import compiler

    x = np.arange(6.0, dtype=np.float32).reshape(2, 3)
    idx = np.array([[0, 2], [1, 0]])
    f = compiler.compile(lambda t, i: t.gather(1, i), Tensor(x), Tensor(idx), backend="llvm")
    np.testing.assert_array_equal(f(x, idx), np.take_along_axis(x, idx, 1))
    np.testing.assert_array_equal(f(x, idx[::-1]), np.take_along_axis(x, idx[::-1], 1))
    with pytest.raises(OpIndexError, match="gather: index 3 is out of bounds for dim 1"):
        f(x, np.array([[0, 3], [1, 0]]))
    f = compiler.compile(lambda t: t.gather(1, Tensor(idx)), Tensor(x), backend="llvm")
    np.testing.assert_array_equal(f(x), np.take_along_axis(x, idx, 1))


def test_sequential_item_assignment_replaces_a_child_under_its_name():
    manual_seed(0)
    seq = nn.Sequential(nn.Linear(3, 4), nn.ReLU(), nn.Linear(4, 2))
    seq[-1] = nn.Linear(4, 5)
    assert [n for n, _ in seq.named_parameters()] == ["0.weight", "0.bias", "2.weight", "2.bias"]
    assert seq(Tensor(np.ones((1, 3)))).shape == (1, 5)
    with pytest.raises(IndexError, match="Sequential: index 3 is out of range"):
        seq[3] = nn.ReLU()
    with pytest.raises(TypeError, match="must be a Module"):
        seq[0] = "relu"
