"""simplify: dead-code elimination, constant folding, removal of no-op movement ops, common
subexpression elimination, and four algebraic rewrites: permute(permute(x)) = one permute,
permute(A @ B) = B^T @ A^T, factors constant along a sum's axes taken out of the sum, and a
stride-1 conv2d_grad_input as the conv2d of the flipped, transposed weight.

Every rewrite but the last three gives bit-identical values (views, merged duplicates, and
folds computed with the op table's own forwards). B^T @ A^T computes the same product with the
operands swapped, which BLAS (and any blocked GEMM) sums in a different order, sum(a * b) =
sum(a) * b rounds differently, and the convolution sums its taps in another order, so they
change the last bits: the numpy reference backend asks for `exact=True`, which leaves
products, sums and gradients as traced so it computes what eager mode computes, bit for bit.

Why the sum rewrite: autodiff of a normalisation (BatchNorm's (x - mean) / std * weight)
gives sums like sum(-(g * weight) * xhat / std) and sum(-(g * weight / std)), each over a
full-size tensor that the kernel producing g must then write. With the per-channel factors
outside, they are sum(g * (x - mean)) and sum(g) times per-channel numbers: the same two sums
the weight's and bias's gradients take, which CSE then computes once, and g is the only
full-size tensor left to write. Each new node records in `origin` the traced node whose
value it holds (`compiler.drift` compares compiled values with eager ones through it).
"""

from __future__ import annotations

from typing import Any

import networkx as nx
import numpy as np

from tinygrad_edu.ops import OPS, infer_dtype

from ..graph import Graph, copy_provenance

NO_OP_WHEN_SAME_SHAPE = ("reshape", "expand")
FOLD_LIMIT = 1 << 16  # elements: fold small constant subgraphs, never bake in big arrays
NOT_FOLDABLE = ("bernoulli",)  # random: must run every call (and two draws stay two)
FACTOR_OPS = ("mul", "div", "neg")  # a product's tree, flattened by the sum rewrite
FACTOR_DEPTH = 12  # how deep the rewrite looks into a product tree


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


def _attr_key(value: Any) -> Any:
    """A hashable stand-in for an attribute value, or None where there is none that is safe
    (arrays: two different index arrays must never look alike)."""
    if value is None or isinstance(value, (bool, int, float, str, np.dtype, type(Ellipsis))):
        return ("v", value)
    if isinstance(value, slice):
        return ("slice", value.start, value.stop, value.step)
    if isinstance(value, (tuple, list)):
        items = tuple(_attr_key(v) for v in value)
        return None if any(i is None for i in items) else ("seq", items)
    if isinstance(value, dict):
        items = tuple((k, _attr_key(v)) for k, v in sorted(value.items()))
        return None if any(i is None for _, i in items) else ("map", items)
    return None


class _Builder:
    """Adds nodes to the new graph, reusing an equal node already there (same op, operands,
    attributes, shape and dtype): common subexpression elimination as the graph is built."""

    def __init__(self, new: Graph):
        self.new = new
        self.seen: dict[tuple[Any, ...], int] = {}

    def add(
        self, op: str, operands: list[int], attrs: dict[str, Any], shape: Any, dtype: Any
    ) -> int:
        key = None
        if op not in NOT_FOLDABLE:
            attr_key = _attr_key(attrs)
            if attr_key is not None:
                key = (op, tuple(operands), attr_key, tuple(shape), np.dtype(dtype))
                if key in self.seen:
                    return self.seen[key]
        nid = self.new.add(op, operands, attrs, shape, dtype)
        if key is not None:
            self.seen[key] = nid
        return nid


def _constant_along(shape: tuple[int, ...], rank: int, axes: tuple[int, ...]) -> bool:
    """Whether a value of `shape`, broadcast (right-aligned) to `rank` dims, has one element
    along every axis in `axes`."""
    padded = (1,) * (rank - len(shape)) + tuple(shape)
    return len(padded) == rank and all(padded[a] == 1 for a in axes)


def _unexpanded(g: Graph, nid: int) -> int:
    """The value an expand broadcast (implicit broadcasting reads it the same way)."""
    while g.node(nid)["op"] == "expand":
        nid = g.operands(nid)[0]
    return nid


def _flatten_product(
    g: Graph, nid: int, rank: int, axes: tuple[int, ...], depth: int = 0
) -> tuple[int, list[tuple[int, int]]] | None:
    """(sign, [(factor, +1 or -1)]) of a tree of mul / div / neg whose leaves are its
    factors, descending only into products that contain something to take out (a factor
    constant along `axes`, or a negation); None when there is nothing to take out."""
    d = g.node(nid)
    if depth >= FACTOR_DEPTH or d["op"] not in FACTOR_OPS or d["dtype"].kind != "f":
        return None
    sign, factors, found = 1, [], d["op"] == "neg"
    for k, src in enumerate(g.operands(nid)):
        power = -1 if d["op"] == "div" and k == 1 else 1
        inner = None if power < 0 else _flatten_product(g, src, rank, axes, depth + 1)
        if inner is not None:
            sign *= inner[0]
            factors += inner[1]
            found = True
            continue
        small = _unexpanded(g, src)
        if _constant_along(g.node(small)["shape"], rank, axes):
            found, src = True, small
        factors.append((src, power))
    if d["op"] == "neg":
        sign = -sign
    return (sign, factors) if found else None


def _factored_sum(b: _Builder, src: int, attrs: dict[str, Any], out: dict[str, Any]) -> int | None:
    """sum(src) with the factors of src that are constant along the summed axes (and its
    sign) taken out: sum(a * w / s) = sum(a) * w / s. None where that changes nothing."""
    new = b.new
    shape = new.node(src)["shape"]
    rank, axes = len(shape), tuple(attrs["axis"])
    if new.node(src)["op"] in ("add", "sub"):
        return _distributed_sum(b, src, attrs, out)
    flat = _flatten_product(new, src, rank, axes)
    if flat is None:
        return None
    sign, factors = flat
    inside, outside = [], []
    for f, p in factors:
        (outside if _constant_along(new.node(f)["shape"], rank, axes) else inside).append((f, p))
    if not inside or inside[0][1] < 0 or (not outside and sign > 0):
        return None
    inner_shape = np.broadcast_shapes(*(new.node(f)["shape"] for f, _ in inside))
    if tuple(inner_shape) != tuple(shape):
        return None  # the factors left inside must still span the summed tensor
    kept = [i for i in range(rank) if i not in axes]
    outer = []
    for f, p in outside:
        fshape = (1,) * (rank - len(new.node(f)["shape"])) + tuple(new.node(f)["shape"])
        want = fshape if attrs["keepdim"] else tuple(fshape[i] for i in kept)
        outer.append((f, p, want))
    final = np.broadcast_shapes(out["shape"], *(w for _, _, w in outer))
    if tuple(final) != tuple(out["shape"]):
        return None

    # every new node's dtype from the op table, as verify will check it; factors of mixed
    # dtypes (float32 data times a float64 or bool one) may make the rewrite's result
    # another dtype than the traced sum's: then it is left alone
    def product(p: int, a: np.dtype, f: int) -> tuple[str, np.dtype]:
        op = "mul" if p > 0 else "div"
        return op, infer_dtype(OPS[op], [a, new.node(f)["dtype"]], {})

    inner = [new.node(inside[0][0])["dtype"]]
    for f, p in inside[1:]:
        inner.append(product(p, inner[-1], f)[1])
    summed = infer_dtype(OPS["sum"], [inner[-1]], attrs)
    outer_dtypes = [summed]
    for f, p, _ in outer:
        outer_dtypes.append(product(p, outer_dtypes[-1], f)[1])
    if outer_dtypes[-1] != out["dtype"]:
        return None
    acc, acc_shape = inside[0][0], tuple(shape)
    for (f, p), dtype in zip(inside[1:], inner[1:], strict=True):
        acc = b.add(product(p, dtype, f)[0], [acc, f], {}, acc_shape, dtype)
    acc = _sum(b, acc, attrs, {**out, "dtype": summed})
    for (f, p, want), dtype in zip(outer, outer_dtypes[1:], strict=True):
        if tuple(new.node(f)["shape"]) != want:
            f = b.add("reshape", [f], {"shape": want}, want, new.node(f)["dtype"])
        acc = b.add(product(p, dtype, f)[0], [acc, f], {}, out["shape"], dtype)
    return b.add("neg", [acc], {}, out["shape"], out["dtype"]) if sign < 0 else acc


def _sum(b: _Builder, src: int, attrs: dict[str, Any], out: dict[str, Any]) -> int:
    """sum(src) as `out` (the traced sum's node) describes it, factored where it can be."""
    factored = _factored_sum(b, src, attrs, out)
    return (
        factored if factored is not None else b.add("sum", [src], attrs, out["shape"], out["dtype"])
    )


def _distributed_sum(
    b: _Builder, src: int, attrs: dict[str, Any], out: dict[str, Any]
) -> int | None:
    """sum(a + b) = sum(a) + sum(b) (and for a - b), where that lets a factor out of a term:
    sum(w * x + w * x) is then w * sum(x) twice (one sum after CSE), and the full-size a + b
    need not be written for the sum. None where neither term factors."""
    new = b.new
    terms = new.operands(src)
    if any(new.node(t)["shape"] != new.node(src)["shape"] for t in terms):
        return None  # a broadcast term would be summed once per copy: leave it as traced
    factored = [_factored_sum(b, t, attrs, out) for t in terms]
    if all(f is None for f in factored):
        return None
    sums = [
        f if f is not None else _sum(b, t, attrs, out) for f, t in zip(factored, terms, strict=True)
    ]
    return b.add(new.node(src)["op"], sums, {}, out["shape"], out["dtype"])


def _grad_input_as_conv(
    b: _Builder, operands: list[int], attrs: dict[str, Any], out: dict[str, Any]
) -> int | None:
    """A stride-1 input gradient as the forward convolution it is: the output gradient
    correlated with the flipped weight, its channel axes swapped, padded by d * (k - 1) - p.
    The flipped, transposed weight is written once (fuse does not fold a view into a
    convolution's weight), so the GEMM reads each output channel's taps contiguously; read
    through the transpose, a 512-channel layer's weights came as 9-float runs 18 KiB apart
    and its input gradient took twice its forward's time (Zen 5). None where the gradient
    is strided or grouped, or the padding would be negative."""
    new = b.new
    gout, w = operands
    (kh, kw), (ph, pw), (dh, dw) = new.node(w)["shape"][2:], attrs["padding"], attrs["dilation"]
    padding = (dh * (kh - 1) - ph, dw * (kw - 1) - pw)
    if attrs["stride"] != (1, 1) or attrs["groups"] != 1 or min(padding) < 0:
        return None
    wshape, dtype = new.node(w)["shape"], new.node(w)["dtype"]
    flip = (slice(None), slice(None), slice(None, None, -1), slice(None, None, -1))
    flipped = b.add("getitem", [w], {"index": flip}, wshape, dtype)
    swapped = (wshape[1], wshape[0], kh, kw)
    weight = b.add("permute", [flipped], {"dims": (1, 0, 2, 3)}, swapped, dtype)
    conv = {"stride": (1, 1), "padding": padding, "dilation": (dh, dw), "groups": 1}
    return b.add("conv2d", [gout, weight], conv, out["shape"], out["dtype"])


def simplify(g: Graph, exact: bool = False) -> Graph:
    """A new graph computing the same outputs with fewer nodes. `exact`: only rewrites that
    keep every value bit-identical (no B^T @ A^T, no factored sums, no input gradient as a
    convolution)."""
    live = set(g.outputs)
    for out in g.outputs:
        live |= nx.ancestors(g.nx, out)
    new = Graph()
    build = _Builder(new)
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
        if not exact and op == "sum" and d["dtype"].kind == "f":
            factored = _factored_sum(build, operands[0], attrs, d)
            if factored is not None:
                remap[nid] = factored
                continue
        if not exact and op == "conv2d_grad_input":
            as_conv = _grad_input_as_conv(build, operands, attrs, d)
            if as_conv is not None:
                remap[nid] = as_conv
                continue
        if nid in g.outputs:  # outputs stay distinct nodes (each is written where it goes)
            remap[nid] = new.add(op, operands, attrs, d["shape"], d["dtype"])
        else:
            remap[nid] = build.add(op, operands, attrs, d["shape"], d["dtype"])
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
    new.input_checks = list(g.input_checks)
    new.output_checks = dict(g.output_checks)
    # DCE again: folding and reshape merging can orphan nodes
    live = set(new.outputs)
    for out in new.outputs:
        live |= nx.ancestors(new.nx, out)
    new.nx.remove_nodes_from([n for n in list(new.nx.nodes) if n not in live])
    return new
