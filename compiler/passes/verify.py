"""verify: re-infer every node's shape and dtype from the op table and compare."""

from __future__ import annotations

import numpy as np

from tinygrad_edu.ops import OPS, infer_dtype

from ..graph import Graph


class GraphError(ValueError):
    """A graph whose recorded shapes or dtypes disagree with the op table's rules."""


def verify(g: Graph) -> Graph:
    """Return `g` unchanged if consistent; raise `GraphError` naming the first bad node."""
    for nid in g.order():
        d = g.node(nid)
        if g.is_leaf(nid):
            if d["op"] == "const" and d["value"] is not None and d["value"].shape != d["shape"]:
                raise GraphError(
                    f"verify: constant {g.describe(nid)} holds shape "
                    f"{d['value'].shape} but is declared {d['shape']}"
                )
            continue
        if d["op"] not in OPS:
            raise GraphError(f"verify: node {g.describe(nid)} uses unknown op {d['op']!r}")
        op = OPS[d["op"]]
        operands = g.operands(nid)
        try:
            shape = tuple(op.shape(*(g.node(o)["shape"] for o in operands), **d["attrs"]))
        except (ValueError, TypeError) as e:
            raise GraphError(f"verify: node {g.describe(nid)}: {e}") from None
        dtype = infer_dtype(op, [g.node(o)["dtype"] for o in operands], d["attrs"])
        if shape != d["shape"] or np.dtype(dtype) != d["dtype"]:
            raise GraphError(
                f"verify: node {g.describe(nid)} is recorded as {d['shape']} {d['dtype']} but "
                f"the op table gives {shape} {np.dtype(dtype)} for operands "
                f"{[g.node(o)['shape'] for o in operands]}"
            )
    for out in g.outputs:
        if out not in g.nx:
            raise GraphError(f"verify: output %{out} is not a node of the graph")
    return g
