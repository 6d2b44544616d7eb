"""Gradient hooks: `register_hook` (sees and may replace a gradient) and
`register_post_accumulate_grad_hook` (a leaf's `.grad` is final for this backward pass), with
PyTorch's order, removal and fan-out rules, checked against PyTorch where it is installed."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from tinygrad_edu import Tensor, Value, nn


def _x() -> Tensor:
    return Tensor(np.array([1.0, -2.0, 3.0]), requires_grad=True, dtype="float64")


def test_a_leaf_hook_sees_the_gradient_and_its_result_replaces_it() -> None:
    x = _x()
    seen = []
    x.register_hook(lambda g: seen.append(g.numpy().copy()) or g * 3)
    (x * x).sum().backward()
    np.testing.assert_array_equal(seen[0], [2.0, -4.0, 6.0])
    np.testing.assert_array_equal(x.grad.numpy(), [6.0, -12.0, 18.0])


def test_hooks_run_in_registration_order_each_on_the_previous_result() -> None:
    x = _x()
    calls = []
    x.register_hook(lambda g: calls.append(("double", g.numpy()[0])) or g * 2)
    x.register_hook(lambda g: calls.append(("keep", g.numpy()[0])))  # None: keep
    x.register_hook(lambda g: calls.append(("add", g.numpy()[0])) or g + 1)
    x.sum().backward()
    assert calls == [("double", 1.0), ("keep", 2.0), ("add", 2.0)]
    np.testing.assert_array_equal(x.grad.numpy(), [3.0, 3.0, 3.0])


def test_a_removed_hook_is_not_called_and_removing_twice_does_nothing() -> None:
    x = _x()
    calls = []
    first = x.register_hook(lambda g: calls.append("first"))
    x.register_hook(lambda g: calls.append("second"))
    x.sum().backward()
    first.remove()
    first.remove()
    x.sum().backward()
    assert calls == ["first", "second", "second"]
    with x.register_hook(lambda g: g * 0):  # a context manager removes it on exit
        x.grad = None
        x.sum().backward()
        np.testing.assert_array_equal(x.grad.numpy(), [0.0, 0.0, 0.0])
    x.grad = None
    x.sum().backward()
    np.testing.assert_array_equal(x.grad.numpy(), [1.0, 1.0, 1.0])


def test_an_intermediate_hook_changes_what_flows_on_and_what_retain_grad_keeps() -> None:
    x = _x()
    y = x * 2
    y.retain_grad()
    y.register_hook(lambda g: g * 10)
    (y * y).sum().backward()
    # d/dy = 2y = [4, -8, 12], hooked x10; retain_grad keeps the hooked one (it runs last)
    np.testing.assert_array_equal(y.grad.numpy(), [40.0, -80.0, 120.0])
    np.testing.assert_array_equal(x.grad.numpy(), [80.0, -160.0, 240.0])


def test_post_accumulate_hook_fires_once_after_every_fan_out_contribution() -> None:
    x = _x()
    grads_at_call = []
    x.register_post_accumulate_grad_hook(lambda t: grads_at_call.append(t.grad.numpy().copy()))
    # x reaches the loss along three paths: the hook must see their sum, once
    (x * 2 + x * x + x.exp()).sum().backward()
    expected = 2 + 2 * x.numpy() + np.exp(x.numpy())
    assert len(grads_at_call) == 1
    np.testing.assert_allclose(grads_at_call[0], expected, rtol=1e-12)
    (x * 2).sum().backward()  # a second pass: fires again, with the accumulated .grad
    assert len(grads_at_call) == 2
    np.testing.assert_allclose(grads_at_call[1], expected + 2, rtol=1e-12)


def test_post_accumulate_hook_runs_after_the_gradient_hooks_and_can_be_removed() -> None:
    x = _x()
    order = []
    x.register_hook(lambda g: order.append("grad") or g * 2)
    handle = x.register_post_accumulate_grad_hook(
        lambda t: order.append(("post", t.grad.numpy()[0]))
    )
    x.sum().backward()
    handle.remove()
    x.sum().backward()
    assert order == ["grad", ("post", 2.0), "grad"]


def test_post_accumulate_hooks_fire_last_layer_first() -> None:
    # data-parallel training reduces the gradients in the order they become final: a layer's
    # parameters must be final before the parameters of the layer below it
    model = nn.Sequential(nn.Linear(4, 5), nn.ReLU(), nn.Linear(5, 3), nn.ReLU(), nn.Linear(3, 2))
    names = dict((id(p), n) for n, p in model.named_parameters())
    fired: list[str] = []
    for p in model.parameters():
        p.register_post_accumulate_grad_hook(lambda t: fired.append(names[id(t)]))
    model(Tensor(np.ones((2, 4), np.float32))).sum().backward()
    layers = [int(name.split(".")[0]) for name in fired]
    assert sorted(fired) == sorted(names.values())
    assert layers == sorted(layers, reverse=True), fired


def test_hooks_on_scalar_values() -> None:
    a = Value(3.0, requires_grad=True)
    a.register_hook(lambda g: g * 2)
    finals = []
    a.register_post_accumulate_grad_hook(lambda v: finals.append(v.grad))
    (a * a + a).backward()
    assert a.grad == 14.0 and finals == [14.0]


def test_hook_errors_name_the_problem_and_the_fix() -> None:
    with pytest.raises(RuntimeError, match="doesn't require gradient.*requires_grad=True"):
        Tensor(np.ones(2)).register_hook(lambda g: g)
    x = _x()
    with pytest.raises(RuntimeError, match="non-leaf tensors.*'mul'"):
        (x * 2).register_post_accumulate_grad_hook(lambda t: None)
    x.register_hook(lambda g: g.sum())
    with pytest.raises(RuntimeError, match=r"changed the size.*\(3,\).*\(\)"):
        x.sum().backward()
    y = _x()
    y.register_post_accumulate_grad_hook(lambda t: t.grad)
    with pytest.raises(RuntimeError, match="must return None"):
        y.sum().backward()


@given(st.lists(st.floats(-3, 3), min_size=1, max_size=6), st.floats(-4, 4))
def test_hooks_agree_with_pytorch(values: list[float], scale: float) -> None:
    torch = pytest.importorskip("torch")
    data = np.array(values)
    ours = Tensor(data, requires_grad=True, dtype="float64")
    theirs = torch.tensor(data, requires_grad=True)
    seen = {"ours": [], "theirs": []}
    for t, key in ((ours, "ours"), (theirs, "theirs")):
        mid = t * t
        mid.register_hook(lambda g: g * scale)
        t.register_hook(lambda g, k=key: seen[k].append(np.array(g.detach().numpy())) or g + 1)
        t.register_post_accumulate_grad_hook(
            lambda leaf, k=key: seen[k].append(np.array(leaf.grad.detach().numpy()))
        )
        (mid.sum() + (t * 3).sum()).backward()
    assert len(seen["ours"]) == len(seen["theirs"]) == 2
    for a, b in zip(seen["ours"], seen["theirs"]):
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(ours.grad.numpy(), theirs.grad.numpy(), rtol=1e-12, atol=1e-12)
