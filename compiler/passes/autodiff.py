"""autodiff: forward graph -> training-step graph (loss, gradients, optimizer update).

The backward graph is built from the op table's VJPs: the forward graph is replayed
symbolically (trace mode: shapes only) with the parameters requiring grad, and
`backward(create_graph=True)` records every VJP op — which are ordinary DSL ops — so the result
is read back as an ordinary graph. The optimizer's update is appended in DSL ops too: an
`UpdateRule` is the optimizer's own `update` (the function its eager `step()` runs), traced
here with its state arrays as "state" leaves and its per-step numbers (learning rate, bias
corrections) as runtime inputs, so schedulers and step counts keep working.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass, field

import numpy as np

from tinygrad_edu import Tensor
from tinygrad_edu.autograd import FORWARD, UPDATE, scope, trace_mode
from tinygrad_edu.ops import OPS
from tinygrad_edu.tensor import MetaArray

from ..graph import Graph, Leaf, from_tensors

#: (w, g, state arrays, scalars) -> (new w, new state arrays), in DSL ops
UpdateFn = Callable[
    [Tensor, Tensor, dict[str, Tensor], dict[str, Tensor]], tuple[Tensor, dict[str, Tensor]]
]


@dataclass(frozen=True)
class UpdateRule:
    """The optimizer update appended to the graph: `update` per parameter, reading the state
    arrays named `state` (inputs and outputs "STATE:PARAM") and the 0-d scalars named
    `scalars` (inputs "SCALAR:PARAM", in the parameter's dtype). `per_param` gives some
    parameters a rule of their own (an optimizer's parameter groups differ in settings)."""

    update: UpdateFn
    state: tuple[str, ...] = ()
    scalars: tuple[str, ...] = ()
    per_param: Mapping[str, UpdateRule] = field(default_factory=dict)

    def for_param(self, name: str) -> UpdateRule:
        """The rule that updates parameter `name`."""
        return self.per_param.get(name, self)


def replay(g: Graph, leaf_tensors: dict[int, Tensor]) -> dict[int, Tensor]:
    """Run the graph's ops on the given leaf tensors (symbolically under trace_mode)."""
    env = dict(leaf_tensors)
    for nid in g.order():
        if nid in env:
            continue
        d = g.node(nid)
        if d["op"] == "const":
            env[nid] = Tensor._make(d["value"])
            continue
        with scope(d.get("layer", ""), d.get("phase", FORWARD)):  # keep the provenance
            env[nid] = Tensor.apply(OPS[d["op"]], [env[o] for o in g.operands(nid)], d["attrs"])
    return env


def _meta(g: Graph, nid: int, requires_grad: bool = False) -> Tensor:
    d = g.node(nid)
    return Tensor._make(MetaArray(d["shape"], d["dtype"]), requires_grad=requires_grad)


def autodiff(
    g: Graph,
    rule: UpdateRule | None = None,
    loss_output: int = 0,
    trained: Collection[str] | None = None,
    backward_order: bool = False,
) -> Graph:
    """Training-step graph from a forward graph whose output `loss_output` is a scalar loss.

    Outputs: "loss", then "grad:NAME" per parameter (rule None) or "param:NAME" (the updated
    parameter) and "STATE:NAME" (its new state arrays), then the forward graph's other outputs
    (e.g. "buffer:NAME", updated running statistics). A parameter the loss does not depend on
    gets a zero gradient, and no update (as an eager step skips a parameter whose grad is
    None); so does one not in `trained` (None: every parameter), which the optimizer does not
    hold. `backward_order` (rule None) lists the gradients last parameter first, the order
    backward finishes them, so the kernels computing them run in that order too (a
    data-parallel step reduces the last layer's gradients while the others are computed).
    """
    loss_id = g.outputs[loss_output]
    if g.node(loss_id)["shape"] not in ((), (1,)):
        raise ValueError(
            f"autodiff: the loss must be a scalar, got shape "
            f"{g.node(loss_id)['shape']}. Fix: reduce it with .mean() or .sum()"
        )
    leaves: dict[int, Leaf] = {}
    tensors: dict[int, Tensor] = {}
    params: list[tuple[str, Tensor]] = []
    input_names = list(g.input_names)
    with trace_mode():
        for nid in g.nx.nodes:
            d = g.node(nid)
            if d["op"] in ("input", "param", "state"):
                t = _meta(g, nid, requires_grad=d["op"] == "param")
                tensors[nid] = t
                leaves[id(t)] = Leaf(d["op"], d["name"])
                if d["op"] == "param":
                    params.append((d["name"], t))
        env = replay(g, tensors)
        loss = env[loss_id]
        if loss.requires_grad:  # else no parameter affects the loss: all gradients are zero
            loss.backward(create_graph=True)
        outputs, names = [loss], ["loss"]
        labels = {id(p.grad): f"grad:{name}" for name, p in params if p.grad is not None}
        if rule is None:
            for name, p in reversed(params) if backward_order else params:
                grad = p.grad if p.grad is not None else Tensor._make(np.zeros(p.shape, p.dtype))
                outputs.append(grad)
                names.append(f"grad:{name}")
        else:
            updated: list[tuple[str, Tensor, dict[str, Tensor]]] = []
            for name, p in params:
                if p.grad is None or (trained is not None and name not in trained):
                    continue
                own = rule.for_param(name)
                state = {
                    s: _leaf(leaves, "state", f"{s}:{name}", p.shape, p.dtype) for s in own.state
                }
                scalars = {}
                for s in own.scalars:
                    scalars[s] = _leaf(leaves, "input", f"{s}:{name}", (), p.dtype)
                    input_names.append(f"{s}:{name}")
                with scope(name.rpartition(".")[0], UPDATE):  # the parameter's layer
                    new_p, new_state = own.update(p, p.grad, state, scalars)
                updated.append((name, new_p, new_state))
            for name, new_p, _ in updated:
                outputs.append(new_p)
                names.append(f"param:{name}")
            for name, _, new_state in updated:
                for s in rule.for_param(name).state:
                    outputs.append(new_state[s])
                    names.append(f"{s}:{name}")
        for k, (nid, out_name) in enumerate(zip(g.outputs, g.output_names)):
            if k != loss_output:
                outputs.append(env[nid])
                names.append(out_name)
    out = from_tensors(outputs, names, leaves, input_names, labels)
    out.input_checks = list(g.input_checks)  # the inputs are the same: so are their checks
    out.output_checks = dict(g.output_checks)  # (passed through above as outputs)
    return out


def _leaf(
    leaves: dict[int, Leaf], role: str, name: str, shape: tuple[int, ...], dtype: np.dtype
) -> Tensor:
    t = Tensor._make(MetaArray(shape, dtype))
    leaves[id(t)] = Leaf(role, name)
    return t
