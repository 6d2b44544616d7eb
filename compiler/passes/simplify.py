"""simplify: dead-code elimination, constant folding, removal of no-op movement ops, and two
algebraic rewrites: permute(permute(x)) = one permute, and permute(A @ B) = B^T @ A^T.

Every rewrite but the last gives bit-identical values (views, and folds computed with the op
table's own forwards). B^T @ A^T computes the same product with the operands swapped, which
BLAS (and any blocked GEMM) sums in a different order, so it changes the last bits: the
numpy reference backend asks for `exact=True`, which leaves products as traced so it computes
what eager mode computes, bit for bit. Each new node records in `origin` the traced node whose
value it holds (`compiler.drift` compares compiled values with eager ones through it).
"""

from __future__ import annotations

import networkx as nx
import numpy as np

from tinygrad_edu.ops import OPS

from ..graph import Graph, copy_provenance

NO_OP_WHEN_SAME_SHAPE = ("reshape", "expand")
FOLD_LIMIT = 1 << 16  # elements: fold small constant subgraphs, never bake in big arrays
NOT_FOLDABLE = ("bernoulli",)  # random: must run every call


def _is_noop(g: Graph, nid: int) -> bool:
    d = g.node(nid)
    if d["op"] == "detach":
        return True
    operands = g.operands(nid)
    if d["op"] in NO_OP_WHEN_SAME_SHAPE:
        return g.node(operands[0])["shape"] == d["shape"]
    if d["op"] == "permute":
        return tuple(d["attrs"]["dims"]) == tuple(range(len(d["shape"])))
    if d["op"] == "cast":
        return g.node(operands[0])["dtype"] == d["dtype"]
    return False


def _permute(g: Graph, src: int, dims: tuple[int, ...]) -> int:
    """permute(src, dims), composing with a permute that produced src; identity is src."""
    if g.node(src)["op"] == "permute":
        inner = tuple(g.node(src)["attrs"]["dims"])
        dims = tuple(inner[d] for d in dims)
        src = g.operands(src)[0]
    if dims == tuple(range(len(dims))):
        return src
    d = g.node(src)
    shape = tuple(d["shape"][k] for k in dims)
    return g.add("permute", [src], {"dims": dims}, shape, d["dtype"])


def simplify(g: Graph, exact: bool = False) -> Graph:
    """A new graph computing the same outputs with fewer nodes. `exact`: only rewrites that
    keep every value bit-identical (no permute(A @ B) = B^T @ A^T)."""
    live = set(g.outputs)
    for out in g.outputs:
        live |= nx.ancestors(g.nx, out)
    new = Graph()
    remap: dict[int, int] = {}
    for nid in g.order():
        if nid not in live:
            continue  # dead code
        d = g.node(nid)
        if g.is_leaf(nid):
            remap[nid] = new.add(
                d["op"], (), d["attrs"], d["shape"], d["dtype"], d["name"], d["value"]
            )
            continue
        operands = [remap[o] for o in g.operands(nid)]
        if _is_noop(g, nid) and new.node(operands[0])["dtype"] == d["dtype"]:
            remap[nid] = operands[0]
            continue
        op, attrs = d["op"], d["attrs"]
        if op == "reshape" and new.node(operands[0])["op"] == "reshape":
            operands = new.operands(operands[0])  # reshape(reshape(x)) = reshape(x)
        if op == "permute":
            src = g.operands(nid)[0]
            if (
                not exact
                and g.node(src)["op"] == "matmul"
                and len(g.node(src)["shape"]) == 2
                and g.consumers(src) == [nid]
                and src not in g.outputs
            ):
                # (A B)^T = B^T A^T: the product comes out in the layout its reader wants
                # (weight gradients of linear layers), and the transposes fold into loads
                a, b = new.operands(operands[0])
                remap[nid] = new.add(
                    "matmul",
                    [_permute(new, b, (1, 0)), _permute(new, a, (1, 0))],
                    {},
                    d["shape"],
                    d["dtype"],
                )
                continue
            remap[nid] = _permute(new, operands[0], tuple(attrs["dims"]))
            continue
        size = int(np.prod(d["shape"]))
        if (
            op not in NOT_FOLDABLE
            and operands
            and size <= FOLD_LIMIT
            and all(new.node(o)["op"] == "const" for o in operands)
        ):
            value = OPS[op].forward(np, *(new.node(o)["value"] for o in operands), **attrs)
            value = np.asarray(value, dtype=d["dtype"])
            remap[nid] = new.add("const", (), {}, d["shape"], d["dtype"], f"folded{nid}", value)
            continue
        remap[nid] = new.add(op, operands, attrs, d["shape"], d["dtype"])
    for nid, new_id in remap.items():  # the first traced node a value came from
        new.node(new_id).setdefault("origin", nid)
        if not new.is_leaf(new_id):
            copy_provenance(g.node(nid), new.node(new_id))
    for nid in reversed(new.order()):  # transposes added by rewrites: their reader's layer
        if "layer" not in new.node(nid) and not new.is_leaf(nid) and new.consumers(nid):
            copy_provenance(new.node(new.consumers(nid)[0]), new.node(nid))
    new.outputs = [remap[o] for o in g.outputs]
    new.output_names = list(g.output_names)
    new.input_names = list(g.input_names)  # inputs DCE removed are still arguments
    # DCE again: folding and reshape merging can orphan nodes
    live = set(new.outputs)
    for out in new.outputs:
        live |= nx.ancestors(new.nx, out)
    new.nx.remove_nodes_from([n for n in list(new.nx.nodes) if n not in live])
    return new
