"""autodiff: forward graph -> training-step graph (loss, gradients, optimizer update).

The backward graph is built from the op table's VJPs: the forward graph is replayed
symbolically (trace mode: shapes only) with the parameters requiring grad, and
`backward(create_graph=True)` records every VJP op — which are ordinary DSL ops — so the result
is read back as an ordinary graph. The SGD update (PyTorch's rule: weight decay, momentum,
Nesterov) is appended in DSL ops too, with the learning rate as a runtime input so schedulers
keep working.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from tinygrad_edu import Tensor
from tinygrad_edu.autograd import trace_mode
from tinygrad_edu.ops import OPS
from tinygrad_edu.tensor import MetaArray

from ..graph import Graph, Leaf, from_tensors


@dataclass(frozen=True)
class SGDSpec:
    """The update rule appended to the graph (hyperparameters fixed at compile time, except
    the learning rate, which is an input named "lr")."""

    momentum: float = 0.0
    weight_decay: float = 0.0
    nesterov: bool = False


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
        env[nid] = Tensor.apply(OPS[d["op"]], [env[o] for o in g.operands(nid)], d["attrs"])
    return env


def _meta(g: Graph, nid: int, requires_grad: bool = False) -> Tensor:
    d = g.node(nid)
    return Tensor._make(MetaArray(d["shape"], d["dtype"]), requires_grad=requires_grad)


def autodiff(g: Graph, sgd: SGDSpec | None = SGDSpec(), loss_output: int = 0) -> Graph:
    """Training-step graph from a forward graph whose output `loss_output` is a scalar loss.

    Outputs: "loss", then "grad:NAME" (sgd=None) or "param:NAME" (the updated parameters)
    and "momentum:NAME" (the new momentum buffers; inputs of the same name hold the old ones).
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
        grads = [
            p.grad if p.grad is not None else Tensor._make(np.zeros(p.shape, p.dtype))
            for _, p in params
        ]
        outputs, names = [loss], ["loss"]
        if sgd is None:
            outputs += grads
            names += [f"grad:{n}" for n, _ in params]
        else:
            lr = Tensor._make(MetaArray((), np.float32))
            leaves[id(lr)] = Leaf("input", "lr")
            new_params, new_buffers = [], []
            for (name, p), grad in zip(params, grads):
                step = grad + p * sgd.weight_decay if sgd.weight_decay else grad
                if sgd.momentum:
                    buf = Tensor._make(MetaArray(p.shape, p.dtype))
                    leaves[id(buf)] = Leaf("state", f"momentum:{name}")
                    buf_new = buf * sgd.momentum + step
                    new_buffers.append((name, buf_new))
                    step = step + buf_new * sgd.momentum if sgd.nesterov else buf_new
                new_params.append((name, p - lr * step))
            outputs += [t for _, t in new_params] + [t for _, t in new_buffers]
            names += [f"param:{n}" for n, _ in new_params]
            names += [f"momentum:{n}" for n, _ in new_buffers]
    return from_tensors(outputs, names, leaves, g.input_names)
