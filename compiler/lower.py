"""lower: each fused group -> a `Kernel` (loop nest over buffers, FLOPs, bytes).

The anchor op decides the loop structure (elementwise: the output's index space; reduction:
kept dims outside, reduced dims inside; matmul: i, j outside, k inside; conv2d: n, oc, oh, ow
outside, ic, kh, kw inside; pooling: the window inside; movement: a gather per output
element). Every elementwise op of the group becomes a register `Let` on the anchor's value, so
a fused epilogue costs no memory traffic. A conv2d group with a pooling epilogue computes a
row tile of conv outputs into an on-chip `Local` and pools from it: only pooled values are
written.

Two schedules of the same computations: "default" (one output element per iteration: GPUs
and the printer) and "cpu" (what the LLVM backend runs): matmul as register-tiled GEMM with
packed B panels or, for `x @ W.T`, blocked dot products; conv2d, its input gradient (strided:
one GEMM per phase of input pixels) and its weight gradient as implicit GEMMs over packed
panels (`conv_gemm.py`); constant
quarter powers as square roots. Shapes a CPU schedule cannot hold on chip fall back to
row-wise loops.
"""

from __future__ import annotations

import weakref
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from tinygrad_edu.ops import FLOAT_RESULT, OPS

from .conv_gemm import (
    ConvGeometry,
    Phase,
    conv_gemm_direct,
    conv_gemm_phases,
    conv_gemm_tiled,
    fit_row_panels,
    over_tile,
    rank1_update,
    weight_grad_channels,
    weight_grad_gemm,
)
from .graph import Graph
from .kernel import (
    Accumulate,
    Bin,
    Buffer,
    Call,
    Comment,
    Const,
    Expr,
    Kernel,
    Let,
    Load,
    Local,
    Loop,
    Select,
    Stmt,
    Store,
    Var,
    add,
    clamp,
    in_image,
    in_range,
    mul,
    substitute,
    vectorize,
    walk,
)
from .names import buffer_names, kernel_name, label
from .passes.fuse import Fusion, Group, is_view
from .target import CPUTarget, Tile, host_target

UNARY_CALLS = {
    "exp": "expf",
    "log": "logf",
    "sqrt": "sqrtf",
    "tanh": "tanhf",
    "abs": "fabsf",
    "sign": "signf",
    "floor": "floorf",
    "sigmoid": "sigmoid",
    "erf": "erff",
    "sin": "sinf",
    "cos": "cosf",
    "asin": "asinf",
    "acos": "acosf",
    "atan": "atanf",
}
BINARY_OPS = {
    "add": "+",
    "sub": "-",
    "mul": "*",
    "div": "/",
    "maximum": "max",
    "minimum": "min",
    "bitwise_and": "&",
    "bitwise_or": "|",
    "bitwise_xor": "^",
    "eq": "==",
    "ne": "!=",
    "lt": "<",
    "le": "<=",
    "gt": ">",
    "ge": ">=",
}


def buffer_name(g: Graph, nid: int) -> str:
    """The node's identifier in generated code: valid and unique in `g` (compiler/names.py)."""
    return buffer_names(g)[nid]


def _buffer(g: Graph, nid: int, role: str) -> Buffer:
    d = g.node(nid)
    return Buffer(buffer_name(g, nid), d["shape"], d["dtype"].name, role, nid, label(g, nid))


def _nbytes(g: Graph, nid: int) -> int:
    d = g.node(nid)
    return int(np.prod(d["shape"])) * d["dtype"].itemsize


def _numel(shape: tuple[int, ...]) -> int:
    return int(np.prod(shape))


def op_flops(g: Graph, nid: int) -> int:
    """Floating-point operations of one node (a multiply-add counts 2)."""
    d = g.node(nid)
    op, attrs, shape = d["op"], d["attrs"], d["shape"]
    operands = [g.node(o)["shape"] for o in g.operands(nid)]
    kind = OPS[op].kind if op in OPS else ""
    if op == "conv2d":
        w = operands[1]
        return 2 * _numel(shape) * w[1] * w[2] * w[3]
    if op == "conv2d_grad_input":
        g_shape, w = operands
        return 2 * _numel(g_shape) * w[1] * w[2] * w[3]
    if op == "conv2d_grad_weight":
        g_shape = operands[1]
        return 2 * _numel(g_shape) * shape[1] * shape[2] * shape[3]
    if op == "matmul":
        return 2 * _numel(shape) * operands[0][-1]
    if kind == "pool":
        return _numel(shape) * attrs["kernel"][0] * attrs["kernel"][1]
    if op == "max_pool2d_grad":  # a comparison per window tap
        return _numel(operands[1]) * attrs["kernel"][0] * attrs["kernel"][1]
    if kind == "reduce":
        return _numel(operands[0])
    if kind in ("elementwise", "compare") and op not in ("detach", "cast"):
        return _numel(shape)
    return 0


class _Lowerer:
    def __init__(
        self,
        fusion: Fusion,
        group: Group,
        index: int,
        schedule: str = "default",
        target: CPUTarget | None = None,
        tile: Tile | None = None,
    ) -> None:
        self.schedule = schedule
        # the CPU schedules take every shape from the target: vector width, register tiles,
        # cache blocking (`tile`: a measured choice overriding the target's register tile)
        self.target = target
        self.lanes = target.lanes if target is not None else 0
        self.gemm_tile = tile or (target.gemm_tile if target is not None else None)
        self.tuned = tile is not None  # a measured tile: no analytic choice overrides it
        self.g = fusion.graph
        self.fusion = fusion
        self.group = group
        self.members = set(group.nodes)
        self.outputs = fusion.group_outputs(group)
        self.inputs = fusion.group_inputs(group)
        self.index = index
        self.views = {n for n in group.nodes if is_view(self.g, n) and n != group.anchor}
        self.compute = [n for n in group.nodes if n not in self.views]

    # -- values -----------------------------------------------------------------------------
    def load(self, nid: int, idx: tuple[Expr, ...], out_shape: tuple[int, ...]) -> Expr:
        """Read operand `nid` at the index of a result of `out_shape` (broadcasting)."""
        shape = self.g.node(nid)["shape"]
        lead = len(out_shape) - len(shape)
        bidx = tuple(
            Const(0) if n == 1 and out_shape[lead + i] != 1 else idx[lead + i]
            for i, n in enumerate(shape)
        )
        if nid in self.views:  # a folded view: remap the index, read its source
            _, value = gather_value(self.g, nid, bidx, self.g.operands(nid)[0] in self.views)
            src = self.g.operands(nid)[0]
            return _relink(
                value,
                buffer_name(self.g, src),
                lambda index: self.load(src, index, self.g.node(src)["shape"]),
            )
        return Load(buffer_name(self.g, nid), bidx)

    def operand(self, nid: int, idx: tuple[Expr, ...], out_shape: tuple[int, ...]) -> Expr:
        if nid in self.members and nid not in self.views:
            shape = self.g.node(nid)["shape"]
            if shape == out_shape:
                return Var(f"v{nid}")
        return self.load(nid, idx, out_shape)

    def elementwise(self, nid: int, idx: tuple[Expr, ...]) -> Expr:
        d = self.g.node(nid)
        op, attrs, shape = d["op"], d["attrs"], d["shape"]
        args = [self.operand(o, idx, shape) for o in self.g.operands(nid)]
        if op in FLOAT_RESULT and np.dtype(d["dtype"]).kind == "f":
            # integers and bools are converted before the op, as eager does: a C `/` of
            # two integers would truncate (int64 -3 / 4 is -0.75, not 0)
            kinds = [np.dtype(self.g.node(o)["dtype"]).kind for o in self.g.operands(nid)]
            cast = f"({d['dtype']})"
            args = [a if k == "f" else Call(cast, (a,)) for a, k in zip(args, kinds, strict=True)]
        if op in BINARY_OPS:
            return Bin(BINARY_OPS[op], args[0], args[1])
        if op in UNARY_CALLS:
            return Call(UNARY_CALLS[op], (args[0],))
        if op == "neg":
            return Bin("-", Const(0.0), args[0])
        if op == "bitwise_not":  # ~x is x ^ -1 (all bits set) in two's complement
            return Bin("^", args[0], Const(-1))
        if op == "relu":
            return Bin("max", args[0], Const(0.0))
        if op == "leaky_relu":
            return Select(
                Bin(">", args[0], Const(0.0)),
                args[0],
                Bin("*", args[0], Const(float(attrs["slope"]))),
            )
        if op == "pow":
            exponent = self.constant_scalar(self.g.operands(nid)[1])
            if exponent is not None and self.schedule == "cpu":
                by_roots = _pow_by_roots(args[0], exponent)
                if by_roots is not None:
                    return by_roots
            return Call("powf", (args[0], args[1]))
        if op == "where":
            return Select(args[0], args[1], args[2])
        if op in ("detach",):
            return args[0]
        if op == "cast":
            return Call(f"({attrs['dtype']})", (args[0],))
        if op == "bernoulli":
            return Call("dropout_mask", (Const(float(attrs["p"])), *idx))
        if op == "one_hot":
            labels = self.load(self.g.operands(nid)[0], idx[:-1], shape[:-1])
            return Select(Bin("==", labels, idx[-1]), Const(1.0), Const(0.0))
        return Call(op, tuple(args))

    def constant_scalar(self, nid: int) -> float | None:
        """The value of a one-element constant operand (e.g. LRN's exponent), else None."""
        d = self.g.node(nid)
        if d["op"] != "const" or int(np.prod(d["shape"])) != 1:
            return None
        return float(np.asarray(d["value"]).reshape(-1)[0])

    def epilogue(self, nodes: list[int], idx: tuple[Expr, ...]) -> list[Stmt]:
        """Lets for the group's elementwise `nodes`, then stores of those that are outputs."""
        nodes = [n for n in nodes if n not in self.views]
        body: list[Stmt] = [Let(f"v{n}", self.elementwise(n, idx)) for n in nodes]
        return body + self.stores(nodes, idx)

    def stores(self, nodes: list[int], idx: tuple[Expr, ...]) -> list[Stmt]:
        return [
            Store(buffer_name(self.g, n), idx, Var(f"v{n}")) for n in nodes if n in self.outputs
        ]

    def loops(
        self,
        names: list[str],
        extents: tuple[int, ...],
        body: list[Stmt],
        parallel: bool = True,
        vectorize: bool = True,
    ) -> list[Stmt]:
        """Nest loops (outermost first) with default schedule tags (vectors only for a CPU
        target: as wide as its registers)."""
        stmts = body
        for k in reversed(range(len(names))):
            tags = []
            if k == 0 and parallel and extents[k] > 1:
                tags.append("parallel")
            if k == len(names) - 1 and vectorize and self.lanes and extents[k] >= self.lanes:
                tags.append(f"vectorize({self.lanes})")
            stmts = [Loop(names[k], int(extents[k]), stmts, tags)]
        return stmts

    def flat_loops(
        self, names: list[str], extents: tuple[int, ...], body: list[Stmt], parallel: bool = True
    ) -> list[Stmt]:
        """`loops`, with the longest trailing run of axes that every access of `body` indexes
        the same row-major way merged into one (`_flat_ok`): on a CPU a 4-D elementwise or
        reduction nest over (N, C, 7, 7) then runs one vectorised loop of 49, not 7 loops of
        7 too short for a vector. A parallel nest keeps its first axis to split over cores."""
        first = 1 if parallel else 0
        if self.schedule == "cpu":
            views = {buffer_name(self.g, v) for v in self.views}
            for start in range(first, len(names) - 1):
                run = tuple(names[start:])
                dims = tuple(int(e) for e in extents[start:])
                if _flat_ok(self.g, body, run, dims, views=views):
                    zero = {n: Const(0) for n in run[:-1]}
                    body = _map_stmts(body, lambda e, zero=zero: substitute(e, zero))
                    names = [*names[:start], run[-1]]
                    extents = (*extents[:start], _numel(dims))
                    break
        return self.loops(names, extents, body, parallel)

    # -- structures -----------------------------------------------------------------------------
    def lower(self) -> list[Stmt]:
        """The loop nest, with every load of a folded view resolved to its source."""
        body = self.structure()
        views = {buffer_name(self.g, v): v for v in self.views}
        if not views:
            return body

        def resolve(e: Expr) -> Expr:
            for name, v in views.items():
                e = _relink(
                    e, name, lambda index, v=v: self.load(v, index, self.g.node(v)["shape"])
                )
            return e

        return _map_stmts(body, resolve)

    def structure(self) -> list[Stmt]:
        g, group = self.g, self.group
        anchor = group.anchor
        if anchor is None:
            reduce_nodes = [n for n in self.compute if OPS[g.node(n)["op"]].kind == "reduce"]
            if reduce_nodes:
                return self.reduction(reduce_nodes[0])
            shape = g.node(self.compute[0])["shape"]
            idx = tuple(Var(f"i{k}") for k in range(len(shape)))
            return self.flat_loops(
                [f"i{k}" for k in range(len(shape))], shape, self.epilogue(self.compute, idx)
            )
        op = g.node(anchor)["op"]
        kind = OPS[op].kind
        if kind == "reduce":
            return self.reduction(anchor)
        if op == "matmul":
            return self.matmul(anchor)
        if op == "conv2d":
            return self.conv2d(anchor)
        if kind == "pool":
            return self.pool(anchor)
        return self.gather(anchor)

    def after(self, nid: int) -> list[int]:
        i = self.compute.index(nid)
        return self.compute[i + 1 :]

    def reduction(self, red: int) -> list[Stmt]:
        g = self.g
        d = g.node(red)
        x = g.operands(red)[0]
        in_shape = g.node(x)["shape"]
        axes = d["attrs"].get("axis")
        axes = (
            tuple(range(len(in_shape)))
            if axes is None
            else ((axes,) if isinstance(axes, int) else tuple(axes))
        )
        keep = [k for k in range(len(in_shape)) if k not in axes]
        full = tuple(Var(f"i{k}") for k in range(len(in_shape)))
        prologue = self.compute[: self.compute.index(red)]
        inner: list[Stmt] = [Let(f"v{n}", self.elementwise(n, full)) for n in prologue]
        inner += self.stores(prologue, full)  # prologue values other kernels also read
        value = self.operand(x, full, in_shape)
        out_idx = tuple(Var(f"i{k}") if k in keep else Const(0) for k in range(len(in_shape)))
        if not d["attrs"].get("keepdim", False):
            out_idx = tuple(Var(f"i{k}") for k in keep)
        if self.schedule == "cpu" and d["op"] == "sum" and _streams_better(in_shape, keep):
            return self.reduction_streamed(red, in_shape, keep, inner, value, out_idx)
        if d["op"] == "argmax":
            position: Expr = Const(0)
            for k in axes:  # the flat position within the reduced axes (row-major)
                position = add(mul(position, in_shape[k]), Var(f"i{k}"))
            inner += [
                Comment("track the first index of the largest value"),
                Accumulate("acc", "argmax", value, position),
            ]
        else:
            inner.append(
                Accumulate("acc", {"sum": "+", "max": "max", "min": "min"}[d["op"]], value)
            )
        red_loops = self.flat_loops(
            [f"i{k}" for k in axes], tuple(in_shape[k] for k in axes), inner, parallel=False
        )
        init = {"sum": 0.0, "max": -np.inf, "min": np.inf, "argmax": 0}[d["op"]]
        body: list[Stmt] = [Let("acc", Const(init))]
        if d["op"] == "argmax":  # the largest value so far, in the source's own type
            source = g.node(x)["dtype"]
            if source.kind == "f":
                lowest: Expr = Call(f"({source.name})", (Const(-np.inf),))
            else:  # integers and bools compare as int64
                lowest = Const(int(np.iinfo(np.int64).min))
            body.append(Let("acc_max", lowest))
        body += [*red_loops, Let(f"v{red}", Var("acc"))]
        body += self.epilogue(self.after(red), out_idx) + self.stores([red], out_idx)
        return self.loops([f"i{k}" for k in keep], tuple(in_shape[k] for k in keep), body)

    def reduction_streamed(
        self,
        red: int,
        in_shape: tuple[int, ...],
        keep: list[int],
        inner: list[Stmt],
        value: Expr,
        out_idx: tuple[Expr, ...],
    ) -> list[Stmt]:
        """CPU schedule of a sum whose kept axes sit between reduced ones, as BatchNorm's
        per-channel sums over (N, H, W): memory is [outer][kept][inner], and the default
        nest (each kept element on its own, reading one inner run per outer index) jumps by
        a whole kept row between runs, which defeats the prefetchers once the data has left
        the caches (measured on Zen 5: 5 ms against numpy's 0.7 ms for 16x64x56x56 read from
        DRAM). Here each task owns a block of kept elements with their partial sums in an
        on-chip `racc` and walks memory in order: for each outer index, its block's inner
        runs one after another (vectorised along the run, or along the block when there is
        no inner run)."""
        k0, k1 = keep[0], keep[-1] + 1
        kept = _numel(in_shape[k0:k1])
        inner_axes = list(range(k1, len(in_shape)))
        assert self.target is not None
        tasks = min(kept, max(self.target.cores, -(-kept // STREAM_BLOCK)))
        block = -(-kept // tasks)
        # the kept axes' indices from the flat position
        flat = _unravel(add(Var("kb0"), Var("kk")), tuple(in_shape[k] for k in keep))
        kept_vars: list[Stmt] = [Let(f"i{k}", e) for k, e in zip(keep, flat, strict=True)]
        vector = [vectorize(self.lanes)] if self.lanes and block >= self.lanes else []
        at = (Var("kk"),)
        if inner_axes:
            run_loops = self.flat_loops(
                [f"i{k}" for k in inner_axes],
                tuple(in_shape[k] for k in inner_axes),
                [*inner, Accumulate("acc", "+", value)],
                parallel=False,
            )
            per_kept: list[Stmt] = [
                *kept_vars,
                Let("acc", Const(0.0)),
                *run_loops,
                Store("racc", at, Bin("+", Load("racc", at), Var("acc"))),
            ]
            block_loop = Loop("kk", block, per_kept)
        else:
            step = [*kept_vars, *inner, Store("racc", at, Bin("+", Load("racc", at), value))]
            block_loop = Loop("kk", block, step, vector)
        walk_outer: list[Stmt] = [block_loop]
        for k in reversed(range(k0)):
            walk_outer = [Loop(f"i{k}", in_shape[k], walk_outer)]
        finish = [
            *kept_vars,
            Let(f"v{red}", Load("racc", at)),
            *self.epilogue(self.after(red), out_idx),
            *self.stores([red], out_idx),
        ]
        body: list[Stmt] = [
            Local("racc", (block,)),
            Let("kb0", Bin("min", mul(Var("task"), block), Const(kept - block))),
            Loop("kk", block, [Store("racc", at, Const(0.0))], vector),
            *walk_outer,
            Loop("kk", block, finish),
        ]
        return [Loop("task", tasks, body, ["parallel"] if tasks > 1 else [])]

    def matmul(self, mm: int) -> list[Stmt]:
        g = self.g
        a, b = g.operands(mm)
        shape = g.node(mm)["shape"]
        k_extent = g.node(a)["shape"][-1]
        names = [f"b{k}" for k in range(len(shape) - 2)] + ["i", "j"]
        idx = tuple(Var(n) for n in names)
        a_idx = idx[:-1] + (Var("k"),)
        b_idx = idx[:-2] + (Var("k"), idx[-1])
        a_load = self.load(a, a_idx, shape[:-1] + (k_extent,))
        b_load = self.load(b, b_idx, shape[:-2] + (k_extent, shape[-1]))
        # (a folded transpose of b shows up here as swapped load indices)
        # (a 1-D operand, or a folded size-1 one, has fewer indices than B's two)
        contiguous_j = isinstance(b_load, Load) and b_load.index[-1:] == (Var("j"),)
        tile = self.gemm_tile  # set exactly when lowering for a CPU target
        # x @ W.T with a W small enough to sit in L1 and rows enough to reuse it: transposed
        # into the GEMM's packed panels (a few microseconds) instead of dot products, whose
        # lane sums cost more than the products at these sizes (an MLP's 32x64 @ 64x128
        # layer: 12 -> 4 us on Zen 5)
        small_transposed_b = (
            tile is not None
            and isinstance(b_load, Load)
            and b_load.index == (Var("j"), Var("k"))
            and shape[0] >= 2 * tile.rows
            and k_extent * shape[1] * 4 <= self.target.l1d
        )
        if (
            tile is not None
            and (contiguous_j or small_transposed_b)
            and len(shape) == 2
            and _blocks_cover(shape[0], tile.rows)
            and _blocks_cover(shape[1], tile.cols)
        ):
            return self.matmul_blocked(
                mm, shape, k_extent, a_load, b_load, pack_b=small_transposed_b
            )
        if self.schedule == "cpu" and contiguous_j and shape[-1] > 1:
            return self.matmul_rows(mm, names, shape, k_extent, a_load, b_load)
        if (
            self.schedule == "cpu"
            and len(shape) == 2
            and k_extent >= self.lanes
            and _rows_along_k(a_load)
            and _rows_along_k(b_load)
            and isinstance(b_load, Load)
            # a row of B per j, or one vector (a 1-D right operand) shared by every j
            and b_load.index[:-1] in ((Var("j"),), ())
        ):
            return self.matmul_dots(mm, shape, k_extent, a_load, b_load)
        body: list[Stmt] = [
            Let("acc", Const(0.0)),
            Loop(
                "k",
                k_extent,
                [Accumulate("acc", "+", Bin("*", a_load, b_load))],
                ["unroll(4)"] if k_extent >= 4 else [],
            ),
            Let(f"v{mm}", Var("acc")),
        ]
        body += self.epilogue(self.after(mm), idx) + self.stores([mm], idx)
        if self.schedule == "cpu" and len(shape) == 2:
            # B is read along k (a transposed weight, as in linear layers): with j outside,
            # each row of B is streamed once while the few rows of A stay in cache
            return self.loops(["j", "i"], (shape[1], shape[0]), body)
        return self.loops(names, shape, body)

    def matmul_blocked(
        self,
        mm: int,
        shape: tuple[int, ...],
        k_extent: int,
        a_load: Expr,
        b_load: Expr,
        pack_b: bool = False,
    ) -> list[Stmt]:
        """CPU schedule: a BI x BJ tile of C (the target's `gemm_tile`) accumulates over all of
        k before it is stored (a register-blocked micro-kernel once LLVM keeps the tile in
        vector registers): per k, BI broadcasts of A times BJ/L vectors of B. Where BI or BJ
        does not divide C, the last block overlaps its neighbour (recomputing, and storing
        again, the same values) instead of running past the edge. `pack_b`: always pack B's
        column panels (B is read transposed, not along its rows)."""
        assert self.target is not None
        tile_shape = self.gemm_tile
        assert tile_shape is not None
        tile_i, tile_j, lanes = tile_shape.rows, tile_shape.cols, self.lanes
        ii = add(Var("ib"), Var("ii"))
        jj = add(Var("jb"), Var("jj"))
        tile = (Var("ii"), Var("jj"))
        row_start = Let("ib", _block_start(Var("i0"), tile_i, shape[0]))
        col_start = Let("jb", _block_start(Var("j0"), tile_j, shape[1]))

        def sub(e: Expr) -> Expr:  # i -> ib + ii, j -> jb + jj
            return substitute(e, {"i": ii, "j": jj})

        i_blocks, j_blocks = -(-shape[0] // tile_i), -(-shape[1] // tile_j)
        # Column panels of B (k_extent x tile_j) are packed contiguously and reused by
        # every row block when there are enough of both (one task per panel); otherwise
        # tasks are row blocks reading B in place.
        packed = pack_b or (
            j_blocks >= 4 and i_blocks >= 8 and k_extent * tile_j * 4 <= self.target.panel_bytes
        )
        b_value = Load("b_panel", (Var("k"), Var("jj"))) if packed else sub(b_load)
        epilogue: list[Stmt] = [Let(f"v{mm}", Load("done_tile", tile))]
        epilogue += [
            _map_one(s, sub)
            for s in self.epilogue(self.after(mm), (Var("i"), Var("j")))
            + self.stores([mm], (Var("i"), Var("j")))
        ]
        body: list[Stmt] = [
            Local("acc_tile", (tile_i, tile_j)),
            Local("done_tile", (tile_i, tile_j)),
            row_start,
            *([] if packed else [col_start]),
            over_tile(tile_i, tile_j, [Store("acc_tile", tile, Const(0.0))], lanes),
            Loop("k", k_extent, [rank1_update(tile_i, tile_j, sub(a_load), b_value, lanes)]),
            # a copy with constant offsets keeps acc_tile in registers
            over_tile(tile_i, tile_j, [Store("done_tile", tile, Load("acc_tile", tile))], lanes),
            over_tile(tile_i, tile_j, epilogue, lanes, unroll=False),
        ]
        if packed:
            pack = Loop(
                "k",
                k_extent,
                [
                    Loop(
                        "jj",
                        tile_j,
                        [Store("b_panel", (Var("k"), Var("jj")), sub(b_load))],
                        [vectorize(lanes)],
                    )
                ],
            )
            per_panel: list[Stmt] = [
                Local("b_panel", (k_extent, tile_j)),
                col_start,
                Comment("pack this column panel of B: contiguous, reused by every row block"),
                pack,
                Loop("i0", i_blocks, body),
            ]
            return [Loop("j0", j_blocks, per_panel, ["parallel"])]
        if j_blocks >= 4 and i_blocks < 8:
            # few rows (a batch through a linear layer's backward): column panels outside,
            # so each panel of B is read from memory once and reused by the row blocks
            return self.loops(["j0", "i0"], (j_blocks, i_blocks), body, vectorize=False)
        return self.loops(["i0", "j0"], (i_blocks, j_blocks), body, vectorize=False)

    def matmul_dots(
        self, mm: int, shape: tuple[int, ...], k_extent: int, a_load: Load, b_load: Load
    ) -> list[Stmt]:
        """CPU schedule for A @ B with B read along k (x @ W.T, a linear layer): C[i, j] is a
        dot product of two contiguous rows. A dot_i x dot_j block of C (the target's
        `dot_tile`) keeps one partial-sum vector of L lanes per element: per L values of k,
        dot_i vectors of A and dot_j of B feed dot_i * dot_j fused multiply-adds; lanes are
        summed once at the end. Blocks over the last rows/columns overlap their neighbours
        (recomputing the same sums) instead of running past the edge."""
        assert self.target is not None
        dot = self.target.dot_tile
        dot_i, dot_j, dot_lanes = dot.rows, dot.vectors, self.lanes
        m_n, n_n = shape
        bi, bj = min(dot_i, m_n), min(dot_j, n_n)
        full = k_extent // dot_lanes
        i = add(Var("ib"), Var("a"))
        j = add(Var("jb"), Var("b"))
        tile = (Var("a"), Var("b"), Var("l"))
        kk = add(mul(Var("kc"), dot_lanes), Var("l"))
        prod = Bin(
            "*",
            substitute(a_load, {"i": i, "k": kk}),
            substitute(b_load, {"j": j, "k": kk}),
        )
        rest = Bin(
            "*",
            substitute(a_load, {"i": i, "k": add(Var("kr"), Const(full * dot_lanes))}),
            substitute(b_load, {"j": j, "k": add(Var("kr"), Const(full * dot_lanes))}),
        )

        def per_pair(body: list[Stmt], unroll: bool = True) -> Loop:
            tags = ["unroll"] if unroll else []
            return Loop("a", bi, [Loop("b", bj, body, tags)], tags)

        idx = (i, j)
        finish: list[Stmt] = [
            Let("acc", Const(0.0)),
            Loop("l", dot_lanes, [Accumulate("acc", "+", Load("dots_done", tile))]),
        ]
        if k_extent > full * dot_lanes:
            finish.append(Loop("kr", k_extent - full * dot_lanes, [Accumulate("acc", "+", rest)]))
        finish.append(Let(f"v{mm}", Var("acc")))
        finish += [
            _map_one(st, lambda e: substitute(e, {"i": i, "j": j}))
            for st in self.epilogue(self.after(mm), (Var("i"), Var("j")))
            + self.stores([mm], (Var("i"), Var("j")))
        ]
        del idx
        lanes = lambda body: Loop("l", dot_lanes, body, [vectorize(dot_lanes)])  # noqa: E731
        body: list[Stmt] = [
            Local("dots", (bi, bj, dot_lanes)),
            Local("dots_done", (bi, bj, dot_lanes)),
            Let("jb", Bin("min", mul(Var("j0"), bj), Const(n_n - bj))),
            Loop(
                "i0",
                -(-m_n // bi),
                [
                    Let("ib", Bin("min", mul(Var("i0"), bi), Const(m_n - bi))),
                    per_pair([lanes([Store("dots", tile, Const(0.0))])]),
                    Loop(
                        "kc",
                        full,
                        [
                            per_pair(
                                [lanes([Store("dots", tile, Bin("+", Load("dots", tile), prod))])]
                            )
                        ],
                    ),
                    # constant-offset copy: `dots` stays in registers
                    per_pair([lanes([Store("dots_done", tile, Load("dots", tile))])]),
                    per_pair(finish, unroll=False),
                ],
            ),
        ]
        return self.loops(["j0"], (-(-n_n // bj),), body, vectorize=False)

    def matmul_rows(
        self,
        mm: int,
        names: list[str],
        shape: tuple[int, ...],
        k_extent: int,
        a_load: Expr,
        b_load: Expr,
    ) -> list[Stmt]:
        """CPU schedule (i, k, j): a row of C accumulates in a local buffer while j, the
        innermost loop, walks B and C contiguously: one broadcast a[i][k] times a vector of B,
        so the j loop vectorises with fused multiply-adds (no gathers)."""
        j_extent = shape[-1]
        row_j = (Var("j"),)
        idx = tuple(Var(n) for n in names)
        update = Store("row", row_j, Bin("+", Load("row", row_j), Bin("*", Var("aik"), b_load)))
        epilogue = [Let(f"v{mm}", Load("row", row_j))]
        epilogue += self.epilogue(self.after(mm), idx) + self.stores([mm], idx)
        body: list[Stmt] = [
            Local("row", (j_extent,)),
            Loop("j", j_extent, [Store("row", row_j, Const(0.0))], [vectorize(self.lanes)]),
            Loop(
                "k",
                k_extent,
                [Let("aik", a_load), Loop("j", j_extent, [update], [vectorize(self.lanes)])],
            ),
            Loop("j", j_extent, epilogue, [vectorize(self.lanes)]),
        ]
        return self.loops(names[:-1], shape[:-1], body, vectorize=False)

    def conv_value(self, conv: int, n: Expr, oc: Expr, oh: Expr, ow: Expr) -> list[Stmt]:
        """Statements leaving conv2d's output element (n, oc, oh, ow) in register `acc`."""
        g = self.g
        x, w = g.operands(conv)
        attrs = g.node(conv)["attrs"]
        (sh, sw), (ph, pw), (dh, dw) = attrs["stride"], attrs["padding"], attrs["dilation"]
        groups = attrs["groups"]
        out_c, cg, kh, kw = g.node(w)["shape"]
        h, wd = g.node(x)["shape"][2:]
        ih = add(mul(oh, sh), Const(-ph) if ph else Const(0), mul(Var("kh"), dh))
        iw = add(mul(ow, sw), Const(-pw) if pw else Const(0), mul(Var("kw"), dw))
        chan = _input_channel(oc, out_c, groups, cg, Var("ic"))
        x_load: Expr = Load(buffer_name(g, x), (n, chan, ih, iw))
        if ph or pw:
            inside = in_image(ih, iw, (h, wd))
            x_load = Select(inside, x_load, Const(0.0))
        w_load = Load(buffer_name(g, w), (oc, Var("ic"), Var("kh"), Var("kw")))
        mac: list[Stmt] = [Accumulate("acc", "+", Bin("*", x_load, w_load))]
        return [
            Let("acc", Const(0.0)),
            Loop("ic", cg, [Loop("kh", kh, [Loop("kw", kw, mac, ["unroll"])])]),
            Let(f"v{conv}", Var("acc")),
        ]

    def conv2d(self, conv: int) -> list[Stmt]:
        g = self.g
        shape = g.node(conv)["shape"]
        tail = self.after(conv)
        pools = [n for n in tail if OPS[g.node(n)["op"]].kind == "pool"]
        cpu = self.schedule == "cpu"
        if cpu:
            gemm = self.conv2d_gemm(conv, tail, pools)
            if gemm is not None:
                return gemm
        if not pools:
            idx = (Var("n"), Var("oc"), Var("oh"), Var("ow"))
            if cpu:
                finish = self.epilogue(tail, idx) + self.stores([conv], idx)
                rows = self.conv_rows(conv, finish)
                return self.loops(["oc", "n"], (shape[1], shape[0]), rows, vectorize=False)
            body = self.conv_value(conv, *idx)
            body += self.epilogue(tail, idx) + self.stores([conv], idx)
            return self.loops(["n", "oc", "oh", "ow"], shape, body)
        pool = pools[0]
        pre = tail[: tail.index(pool)]
        post = tail[tail.index(pool) + 1 :]
        tile_idx = (Var("n"), Var("oc"), Var("oh"), Var("ow"))
        fill = self.conv_value(conv, *tile_idx) + [
            Let(f"v{n}", self.elementwise(n, tile_idx)) for n in pre
        ]
        last = f"v{pre[-1]}" if pre else f"v{conv}"
        fill.append(Store("tile", (Var("oh"), Var("ow")), Var(last)))
        if cpu:
            finish = [Let(f"v{n}", self.elementwise(n, tile_idx)) for n in pre]
            finish.append(Store("tile", (Var("oh"), Var("ow")), Var(last)))
            fill_loops = self.conv_rows(conv, finish)
        else:
            fill_loops = self.loops(["oh", "ow"], shape[2:], fill, parallel=False)
        pd = g.node(pool)["attrs"]
        pool_shape = g.node(pool)["shape"]
        is_max = g.node(pool)["op"] == "max_pool2d"
        th, tw = shape[2:]
        # pool padding: outside the tile the window sees -inf (max) or 0 (avg)
        window = _pool_window(
            pool,
            pd,
            is_max,
            ("ph", "pw"),
            (th, tw),
            lambda r, c: Load("tile", (r, c)),
            pd["padding"] != (0, 0),
        )
        out_idx = (Var("n"), Var("oc"), Var("ph"), Var("pw"))
        pooled: list[Stmt] = window + self.epilogue(post, out_idx) + self.stores([pool], out_idx)
        body: list[Stmt] = [
            Local("tile", shape[2:]),
            Comment("conv + epilogue into the on-chip tile: never written to memory"),
            *fill_loops,
            Comment(f"{g.node(pool)['op']} from the tile: the only store of this kernel"),
            *self.loops(["ph", "pw"], pool_shape[2:], pooled, parallel=False),
        ]
        if cpu:
            return self.loops(["oc", "n"], (shape[1], shape[0]), body, vectorize=False)
        return self.loops(["n", "oc"], shape[:2], body, vectorize=False)

    def fit_tile(self, geo: ConvGeometry, batch: int, channels: int) -> ConvGeometry:
        """A convolution's tile: the target's, or a wider one its rows (of `batch` images,
        `channels` output channels per group) fill better (`conv_gemm.fit_row_panels`),
        unless a measured tile was given."""
        if self.tuned or self.target is None:
            return geo
        wide, budget = self.target.wide_tiles, self.target.conv_panel_bytes
        return fit_row_panels(
            geo, wide, budget, batch, channels, self.target.wide_chunk_bytes, self.target.cores
        )

    def gemm_blocking(self) -> tuple[Tile, int, int, int]:
        """The target's micro-kernel tile, weight-gradient band budget, panel chunk and row
        panel budget (`ConvGeometry`)."""
        assert self.target is not None
        assert self.gemm_tile is not None
        target = self.target
        return self.gemm_tile, target.band_bytes, target.chunk_bytes, target.row_panel_bytes

    def conv2d_gemm(self, conv: int, tail: list[int], pools: list[int]) -> list[Stmt] | None:
        """CPU schedule of conv2d as an implicit GEMM (see `conv_gemm`), the group's
        elementwise epilogue applied to each finished element and a pooling epilogue read
        from an on-chip tile; None when the on-chip buffers would not fit."""
        g = self.g
        x, w = g.operands(conv)
        attrs = g.node(conv)["attrs"]
        batch, out_c, oh_n, ow_n = g.node(conv)["shape"]
        _, cg, kh, kw = g.node(w)["shape"]
        groups = attrs["groups"]
        rows = out_c // groups
        geo = ConvGeometry(
            buffer_name(g, x),
            g.node(x)["shape"][2:],
            (oh_n, ow_n),
            cg,
            (kh, kw),
            attrs["stride"],
            attrs["padding"],
            attrs["dilation"],
            *self.gemm_blocking(),
        )
        geo = self.fit_tile(geo, 1 if pools else batch, rows)  # a pooled tile holds one image
        wname = buffer_name(g, w)

        def a_load(oc: Expr, ic: Expr, r: Expr, q: Expr) -> Expr:
            return Load(wname, (oc, ic, r, q))

        idx = (Var("n"), Var("oc"), Var("oh"), Var("ow"))
        if not pools:
            if geo.taps * geo.block_cols * 4 > GEMM_LOCAL_BYTES:
                return None

            finish, flat = self.gemm_finish(conv, tail, (oh_n, ow_n))
            cores = self.target.cores if self.target is not None else 1
            return conv_gemm_direct(geo, batch, groups, rows, a_load, finish, flat, cores)
        pool = pools[0]
        pre = tail[: tail.index(pool)]
        post = tail[tail.index(pool) + 1 :]
        splits = 1
        # one image and one group would leave a core idle: split its channels in two
        if batch * groups < 2 and rows % 2 == 0 and rows // 2 >= geo.tile.rows:
            splits = 2
        while (
            rows // splits * geo.pixels * 4 > GEMM_TILE_BYTES
            and rows % (2 * splits) == 0
            and rows // (2 * splits) >= geo.tile.rows
        ):
            splits *= 2
        part = rows // splits
        local_bytes = (part * geo.pixels + geo.taps * geo.block_cols) * 4
        if local_bytes > GEMM_LOCAL_BYTES:
            return None

        last = f"v{pre[-1]}" if pre else f"v{conv}"
        pre_stmts: list[Stmt] = [Let(f"v{m}", self.elementwise(m, idx)) for m in pre]
        pre_stmts.append(Store("tile", (Var("r"), Var("oh"), Var("ow")), Var(last)))
        flat = _flat_pixels_ok(self.g, pre_stmts, (oh_n, ow_n))

        def to_tile(n: Expr, oc: Expr, oh: Expr, ow: Expr) -> list[Stmt]:
            pixel = {"oh": oh, "ow": ow}
            return [
                Let("oc", oc),
                Let(f"v{conv}", Var("acc_v")),
                *_map_stmts(pre_stmts, lambda e: substitute(e, pixel)),
            ]

        pd = g.node(pool)["attrs"]
        window = _pool_window(
            pool,
            pd,
            g.node(pool)["op"] == "max_pool2d",
            ("ph", "pw"),
            (oh_n, ow_n),
            lambda r, c: Load("tile", (Var("tc"), r, c)),
            pd["padding"] != (0, 0),
        )
        out_idx = (Var("n"), Var("oc"), Var("ph"), Var("pw"))
        pooled = window + self.epilogue(post, out_idx) + self.stores([pool], out_idx)
        from_tile: list[Stmt] = [
            Comment(f"{g.node(pool)['op']} from the tile: the only store of this kernel"),
            Loop(
                "tc",
                part,
                [
                    Let("oc", add(mul(Var("g"), rows), mul(Var("s"), part), Var("tc"))),
                    *self.loops(["ph", "pw"], g.node(pool)["shape"][2:], pooled, parallel=False),
                ],
            ),
        ]
        return conv_gemm_tiled(
            geo, batch, groups, rows, splits, a_load, to_tile, from_tile, flat=flat
        )

    def conv_rows(self, conv: int, finish: list[Stmt]) -> list[Stmt]:
        """CPU schedule of conv2d for one (n, oc): per output row, a local row accumulates
        x-row × w-tap products over (ic, kh, kw) with ow innermost (vectorisable: one broadcast
        weight times a run of x), then `finish` runs per output element with v{conv} set.
        Padding: out-of-range tap rows are masked (weight times 0, row index clamped) and each
        tap's in-bounds column range is computed here, so the inner loop has no branches."""
        g = self.g
        x, w = g.operands(conv)
        attrs = g.node(conv)["attrs"]
        (sh, sw), (ph, pw), (dh, dw) = attrs["stride"], attrs["padding"], attrs["dilation"]
        groups = attrs["groups"]
        out_c, cg, kh, kw = g.node(w)["shape"]
        h, wd = g.node(x)["shape"][2:]
        oh_n, ow_n = g.node(conv)["shape"][2:]
        n, oc, oh, ow = Var("n"), Var("oc"), Var("oh"), Var("ow")
        ih = add(mul(oh, sh), Const(-ph), mul(Var("kh"), dh))
        chan = _input_channel(oc, out_c, groups, cg, Var("ic"))

        # Rows: a tap row outside the input contributes 0 (mask the weight, clamp the row).
        # Columns: for each kw the in-bounds range of ow is computed here, statically, so the
        # inner loop reads x contiguously (stride 1) with no per-element test.
        row_in = in_range(ih, h)
        row_idx = clamp(ih, h) if ph else ih
        row = (ow,)
        per_kw: list[Stmt] = []
        for k in range(kw):
            lo, hi = _column_range(k, ow_n, wd, sw, pw, dw)
            if hi <= lo:
                continue
            col = add(mul(add(Var("owr"), Const(lo)), sw), Const(k * dw - pw))
            x_val = Load(buffer_name(g, x), (n, chan, row_idx, col))
            at = (add(Var("owr"), Const(lo)),)
            update = Store("row", at, Bin("+", Load("row", at), Bin("*", x_val, Var("wv"))))
            per_kw += [
                Let(
                    "wv",
                    Bin(
                        "*",
                        Load(buffer_name(g, w), (oc, Var("ic"), Var("kh"), Const(k))),
                        Var("rm"),
                    )
                    if ph
                    else Load(buffer_name(g, w), (oc, Var("ic"), Var("kh"), Const(k))),
                ),
                Loop("owr", hi - lo, [update], [vectorize(self.lanes)]),
            ]
        head: list[Stmt] = [Let("rm", Select(row_in, Const(1.0), Const(0.0)))] if ph else []
        taps = Loop("ic", cg, [Loop("kh", kh, [*head, *per_kw])])
        per_row: list[Stmt] = [
            Local("row", (ow_n,)),
            Loop("ow", ow_n, [Store("row", row, Const(0.0))], [vectorize(self.lanes)]),
            taps,
            Loop("ow", ow_n, [Let(f"v{conv}", Load("row", row)), *finish]),
        ]
        return [Loop("oh", oh_n, per_row)]

    def pool(self, pool: int) -> list[Stmt]:
        g = self.g
        d = g.node(pool)
        x = g.operands(pool)[0]
        h, w = g.node(x)["shape"][2:]
        pd = d["attrs"]
        is_max = d["op"] == "max_pool2d"
        idx = (Var("n"), Var("c"), Var("oh"), Var("ow"))
        body = _pool_window(
            pool,
            pd,
            is_max,
            ("oh", "ow"),
            (h, w),
            lambda r, c: Load(buffer_name(g, x), (Var("n"), Var("c"), r, c)),
            True,
        )
        body += self.epilogue(self.after(pool), idx) + self.stores([pool], idx)
        return self.loops(["n", "c", "oh", "ow"], d["shape"], body)

    def gather(self, node: int) -> list[Stmt]:
        """Movement and scatter-like ops, written as a gather per output element."""
        g = self.g
        d = g.node(node)
        shape = d["shape"]
        if d["op"] == "max_pool2d_grad" and self.target is not None:
            return self.max_pool_scatter(node)
        if self.schedule == "cpu" and d["op"] == "conv2d_grad_weight":
            return self.grad_weight_gemm(node) or self.grad_weight_rows(node)
        if self.schedule == "cpu" and d["op"] == "conv2d_grad_input":
            if d["attrs"]["stride"] == (1, 1):
                return self.grad_input_gemm(node) or self.grad_input_rows(node)
            strided = self.grad_input_phases(node)
            if strided is not None:
                return strided
        names = [f"i{k}" for k in range(len(shape))]
        idx = tuple(Var(n) for n in names)
        if d["op"] in ("gather_along", "put_along", "argsort"):
            pre, value = self.along(node, idx)
        else:
            pre, value = gather_value(g, node, idx, g.operands(node)[0] in self.views)
        body = [*pre, Let(f"v{node}", value)]
        body += self.epilogue(self.after(node), idx) + self.stores([node], idx)
        return self.loops(names, shape, body)

    def along(self, node: int, idx: tuple[Expr, ...]) -> tuple[list[Stmt], Expr]:
        """Output element `idx` of the ops with a tensor of indices along one dim: gather
        loads the source at the index it reads (clamped into the dim: memory is never read
        outside the source, and eager runs and compiled inputs check the range); put_along
        (scatter-add) sums, over the index's entries along dim, those that point at this
        element. argsort has no loop-nest form here: its kernel runs with numpy."""
        g = self.g
        d = g.node(node)
        dim = d["attrs"]["dim"]
        operands = g.operands(node)
        if d["op"] == "argsort":
            return [], Call("argsort", (self.load(operands[0], idx, d["shape"]),))
        source, index = operands
        index_shape = g.node(index)["shape"]
        if d["op"] == "gather_along":
            size = g.node(source)["shape"][dim]
            at = self.load(index, idx, index_shape)
            at = Bin("min", Bin("max", at, Const(0)), Const(size - 1))
            source_idx = idx[:dim] + (at,) + idx[dim + 1 :]
            return [], self.load(source, source_idx, g.node(source)["shape"])
        k_idx = idx[:dim] + (Var("k_along"),) + idx[dim + 1 :]
        hit = Bin("==", self.load(index, k_idx, index_shape), idx[dim])
        zero = Const(0.0 if np.dtype(g.node(source)["dtype"]).kind == "f" else 0)
        picked = Select(hit, self.load(source, k_idx, index_shape), zero)
        pre: list[Stmt] = [
            Let("acc_along", zero),
            Loop("k_along", index_shape[dim], [Accumulate("acc_along", "+", picked)]),
        ]
        return pre, Var("acc_along")

    def max_pool_scatter(self, node: int) -> list[Stmt]:
        """CPU schedule of max_pool2d's input gradient: a scatter, where the default schedule
        gathers (each pixel searches every window that can reach it: 4 searches of 9 taps for
        a 3x3 stride-2 pool, against 9 taps per window here; in DSL ops it was unfold, argmax,
        one-hot and fold, four tensors of KH*KW times the pooled size: 45-55 ms of ResNet-18's
        training step). A task owns a band of rows of one (n, c) plane, on chip. Each window
        that reaches the band finds its first maximum again from x (`_window_search`) and adds
        its gradient there when that falls in the band; the band is then read once through
        the epilogue (ReLU's mask, usually). Windows across two bands are searched by both."""
        g = self.g
        assert self.target is not None
        d = g.node(node)
        x, gout = g.operands(node)
        attrs = d["attrs"]
        (sh, _), (ph, _), (dh, _) = attrs["stride"], attrs["padding"], attrs["dilation"]
        kh = attrs["kernel"][0]
        batch, chans, h, w = d["shape"]
        oh_n, ow_n = g.node(gout)["shape"][2:]
        rows = max(1, min(h, self.target.scatter_band_bytes // (d["dtype"].itemsize * w)))
        bands = -(-h // rows)
        rows = -(-h // bands)  # balanced; the last band may overlap the one before it
        reach = (kh - 1) * dh  # a window's first tap row to its last
        # the windows that can reach rows [r0, r0 + rows): from the first whose last tap row
        # is >= r0 (rounded down: at most one more), `count` of them
        count = min(oh_n, (rows - 1 + reach) // sh + 2)
        r0 = Var("r0")
        first = (
            Bin("/", Bin("max", add(r0, Const(ph - reach)), Const(0)), Const(sh))
            if count < oh_n
            else Const(0)
        )
        n, c, oh, ow = Var("n"), Var("c"), Var("oh"), Var("ow")
        # per row of windows: find every window's maximum first (loads and selects only,
        # which LLVM vectorises across windows), then add the gradients one by one (two
        # neighbouring windows can pick the same pixel: no vector may do both)
        bi, bj = _tap_position(g, node, oh, ow, Var("best"))
        local = Bin("-", bi, r0)
        lands = Bin(
            "&&",
            Bin("&&", Bin("<", oh, Const(oh_n)), Bin("<=", r0, bi)),
            Bin("&&", Bin("<", local, Const(rows)), in_range(bj, w)),
        )
        # the band's element the window's gradient goes to; one past the band where it
        # lands elsewhere (a spare element no one reads)
        slot = Select(lands, add(mul(clamp(local, rows), w), clamp(bj, w)), Const(rows * w))
        search = _window_search(g, node, n, c, oh, ow)
        routes = self.loops(["ow"], (ow_n,), [*search, Store("route", (ow,), slot)], False)
        grad = Load(buffer_name(g, gout), (n, c, clamp(oh, oh_n), ow))
        at = (Var("slot"),)
        scatter = Loop(
            "ow",
            ow_n,
            [
                Let("slot", Call("(int64)", (Load("route", (ow,)),))),
                Store("band", at, Bin("+", Load("band", at), grad)),
            ],
        )
        windows = Loop("t", count, [Let("oh", add(first, Var("t"))), *routes, scatter])
        lr, lc = Var("lr"), Var("lc")
        at_band = (add(mul(lr, w), lc),)
        out_idx = (n, c, add(r0, lr), lc)
        back = [Let(f"v{node}", Load("band", at_band))]
        back += self.epilogue(self.after(node), out_idx) + self.stores([node], out_idx)
        body: list[Stmt] = [
            Let("n", Bin("/", Var("task"), Const(chans * bands))),
            Let("c", Bin("%", Bin("/", Var("task"), Const(bands)), Const(chans))),
            Let("r0", Bin("min", mul(Bin("%", Var("task"), Const(bands)), rows), Const(h - rows))),
            Local("band", (rows * w + 1,)),  # row-major, and the spare element
            Local("route", (ow_n,)),  # where each window of a row sends its gradient
            *self.loops(["lr", "lc"], (rows, w), [Store("band", at_band, Const(0.0))], False),
            windows,
            *self.loops(["lr", "lc"], (rows, w), back, False),
        ]
        return [Loop("task", batch * chans * bands, body, ["parallel"])]

    def grad_input_gemm(self, node: int) -> list[Stmt] | None:
        """CPU schedule of a stride-1 input gradient: the full correlation of the output
        gradient with the flipped, transposed weight, as an implicit GEMM (`conv_gemm`)."""
        g = self.g
        gout, wt = g.operands(node)
        attrs = g.node(node)["attrs"]
        batch, _, h, w = g.node(node)["shape"]
        out_c, cg, kh, kw = g.node(wt)["shape"]
        groups = attrs["groups"]
        og = out_c // groups
        (ph, pw), (dh, dw) = attrs["padding"], attrs["dilation"]
        geo = ConvGeometry(
            buffer_name(g, gout),
            g.node(gout)["shape"][2:],
            (h, w),
            og,
            (kh, kw),
            (1, 1),
            (dh * (kh - 1) - ph, dw * (kw - 1) - pw),
            (dh, dw),
            *self.gemm_blocking(),
        )
        geo = self.fit_tile(geo, batch, cg)
        if geo.taps * geo.block_cols * 4 > GEMM_LOCAL_BYTES:
            return None
        wname = buffer_name(g, wt)

        def a_load(c: Expr, o: Expr, r: Expr, q: Expr) -> Expr:
            group = Var("g")
            return Load(
                wname,
                (
                    add(mul(group, og), o),
                    Bin("-", c, mul(group, cg)),
                    add(Const(kh - 1), mul(r, -1)),
                    add(Const(kw - 1), mul(q, -1)),
                ),
            )

        finish, flat = self.gemm_finish(node, self.after(node), (h, w))
        cores = self.target.cores if self.target is not None else 1
        return conv_gemm_direct(geo, batch, groups, cg, a_load, finish, flat, cores)

    def grad_input_phases(self, node: int) -> list[Stmt] | None:
        """CPU schedule of a strided input gradient: one stride-1 implicit GEMM per phase of
        input pixels (`conv_gemm.conv_gemm_phases`); None when the panel would not fit."""
        g = self.g
        gout, wt = g.operands(node)
        attrs = g.node(node)["attrs"]
        batch, _, h, w = g.node(node)["shape"]
        out_c, cg, kh, kw = g.node(wt)["shape"]
        groups = attrs["groups"]
        og = out_c // groups
        stride = attrs["stride"]
        tile, band, chunk, group = self.gemm_blocking()
        per_axis = zip((h, w), (kh, kw), stride, attrs["padding"], attrs["dilation"], strict=True)
        rows_axis, cols_axis = (
            [_phase_taps(a, size, k, s, p, d) for a in range(s)] for size, k, s, p, d in per_axis
        )
        phases = []
        for a, (hq, row_taps) in enumerate(rows_axis):
            for b, (wq, col_taps) in enumerate(cols_axis):
                if not hq or not wq:
                    continue
                if row_taps is None or col_taps is None:
                    phases.append(Phase((a, b), (hq, wq), None))
                    continue
                mh, pad_h, dil_h, row0, rstep = row_taps
                mw, pad_w, dil_w, col0, cstep = col_taps
                geo = ConvGeometry(
                    buffer_name(g, gout),
                    g.node(gout)["shape"][2:],
                    (hq, wq),
                    og,
                    (mh, mw),
                    (1, 1),
                    (pad_h, pad_w),
                    (dil_h, dil_w),
                    tile,
                    band,
                    chunk,
                    group,
                )
                if geo.taps * geo.block_cols * 4 > GEMM_LOCAL_BYTES:
                    return None
                phases.append(Phase((a, b), (hq, wq), geo, (row0, rstep, col0, cstep)))
        wname = buffer_name(g, wt)

        def a_load(phase: Phase, c: Expr, o: Expr, r: Expr, q: Expr) -> Expr:
            group = Var("g")
            row0, rstep, col0, cstep = phase.taps
            return Load(
                wname,
                (
                    add(mul(group, og), o),
                    Bin("-", c, mul(group, cg)),
                    add(Const(row0), mul(r, rstep)),
                    add(Const(col0), mul(q, cstep)),
                ),
            )

        finish, _ = self.gemm_finish(node, self.after(node), (h, w))
        return conv_gemm_phases(phases, stride, tile, batch, groups, cg, a_load, finish, w)

    def gemm_finish(
        self, node: int, tail: list[int], hw: tuple[int, int]
    ) -> tuple[Callable[[Expr, Expr, Expr, Expr], list[Stmt]], bool]:
        """The per-element end of an implicit-GEMM kernel whose anchor `node` is followed by
        the elementwise `tail`: `finish(n, oc, oh, ow)` (the sum in `acc_v`), and whether it
        may address pixels flat (`_flat_pixels_ok`)."""
        idx = (Var("n"), Var("oc"), Var("oh"), Var("ow"))
        stmts = self.epilogue(tail, idx) + self.stores([node], idx)

        def finish(n: Expr, oc: Expr, oh: Expr, ow: Expr) -> list[Stmt]:
            pixel = {"n": n, "oh": oh, "ow": ow}
            return [
                Let("oc", oc),
                Let(f"v{node}", Var("acc_v")),
                *_map_stmts(stmts, lambda e: substitute(e, pixel)),
            ]

        return finish, _flat_pixels_ok(self.g, stmts, hw)

    def grad_weight_gemm(self, node: int) -> list[Stmt] | None:
        """CPU schedule of conv2d's weight gradient as a GEMM over packed pixel bands
        (`conv_gemm.weight_grad_gemm`)."""
        g = self.g
        x, gout = g.operands(node)
        attrs = g.node(node)["attrs"]
        out_c, cg, kh, kw = g.node(node)["shape"]
        batch = g.node(gout)["shape"][0]
        groups = attrs["groups"]
        rows = out_c // groups
        geo = ConvGeometry(
            buffer_name(g, x),
            g.node(x)["shape"][2:],
            g.node(gout)["shape"][2:],
            cg,
            (kh, kw),
            attrs["stride"],
            attrs["padding"],
            attrs["dilation"],
            *self.gemm_blocking(),
        )
        band = geo.band_rows * geo.out_hw[1]
        if (rows + band) * min(geo.tile.cols, geo.taps) * 4 > GEMM_LOCAL_BYTES:
            return None
        idx = (Var("oc"), Var("ic"), Var("kh"), Var("kw"))

        def finish(value: Expr) -> list[Stmt]:
            return [
                Let(f"v{node}", value),
                *self.epilogue(self.after(node), idx),
                *self.stores([node], idx),
            ]

        gname = buffer_name(g, gout)
        assert self.target is not None
        # enough output channels to fill the vectors, more taps than channels and images of
        # more than two panels of pixels (measured on Zen 5: 1.14x slower at 7x7, faster
        # from 14x14 up; see `weight_grad_channels`)
        if geo.taps > rows >= geo.tile.cols and geo.pixels >= 2 * geo.tile.cols:
            channels = weight_grad_channels(
                geo,
                batch,
                groups,
                rows,
                gname,
                finish,
                self.target.cores,
                self.target.conv_panel_bytes,
                GEMM_LOCAL_BYTES,
            )
            if channels is not None:
                return channels
        return weight_grad_gemm(geo, batch, groups, rows, gname, finish)

    def grad_weight_rows(self, node: int) -> list[Stmt]:
        """CPU schedule of conv2d's weight gradient: for each (oc, ic, kh) and each static kw,
        a dot product along output rows, the ow loop innermost over contiguous x and g."""
        g = self.g
        x, gout = g.operands(node)
        attrs = g.node(node)["attrs"]
        (sh, sw), (ph, pw), (dh, dw) = attrs["stride"], attrs["padding"], attrs["dilation"]
        groups = attrs["groups"]
        out_c, cg, kh_n, kw_n = g.node(node)["shape"]
        n_n, _, oh_n, ow_n = g.node(gout)["shape"]
        h, wd = g.node(x)["shape"][2:]
        oc, ic, kh = Var("oc"), Var("ic"), Var("kh")
        chan = _input_channel(oc, out_c, groups, cg, ic)
        ih = add(mul(Var("oh"), sh), Const(-ph), mul(kh, dh))
        row_in = in_range(ih, h)
        row_idx = clamp(ih, h) if ph else ih
        per_kw: list[Stmt] = []
        for k in range(kw_n):
            lo, hi = _column_range(k, ow_n, wd, sw, pw, dw)
            idx = (oc, ic, kh, Const(k))
            if hi <= lo:
                per_kw += [
                    Let(f"v{node}", Const(0.0)),
                    *self.epilogue(self.after(node), idx),
                    *self.stores([node], idx),
                ]
                continue
            ow = add(Var("owr"), Const(lo))
            col = add(mul(ow, sw), Const(k * dw - pw))
            prod = Bin(
                "*",
                Load(buffer_name(g, x), (Var("n"), chan, row_idx, col)),
                Load(buffer_name(g, gout), (Var("n"), oc, Var("oh"), ow)),
            )
            # partial sums stay in a vector of columns across all (n, oh) rows; one horizontal
            # sum at the end (a per-row reduction would pay it n * oh times)
            at = (Var("owr"),)
            scaled = Bin("*", prod, Var("rm")) if ph else prod
            row_sum: list[Stmt] = [
                *([Let("rm", Select(row_in, Const(1.0), Const(0.0)))] if ph else []),
                Loop(
                    "owr",
                    hi - lo,
                    [Store("cols", at, Bin("+", Load("cols", at), scaled))],
                    [vectorize(self.lanes)],
                ),
            ]
            per_kw += [
                Loop("owr", hi - lo, [Store("cols", at, Const(0.0))]),
                Loop("n", n_n, [Loop("oh", oh_n, row_sum)]),
                Let("acc", Const(0.0)),
                Loop("owr", hi - lo, [Accumulate("acc", "+", Load("cols", at))]),
                Let(f"v{node}", Var("acc")),
                *self.epilogue(self.after(node), idx),
                *self.stores([node], idx),
            ]
        body: list[Stmt] = [Local("cols", (ow_n,)), *per_kw]
        return self.loops(["oc", "ic", "kh"], (out_c, cg, kh_n), body, vectorize=False)

    def grad_input_rows(self, node: int) -> list[Stmt]:
        """CPU schedule of conv2d's input gradient (stride 1): each input row accumulates
        g-row × weight-tap products with w innermost over contiguous g (a full correlation)."""
        g = self.g
        gout, wt = g.operands(node)
        attrs = g.node(node)["attrs"]
        (ph, pw), (dh, dw) = attrs["padding"], attrs["dilation"]
        groups = attrs["groups"]
        n_n, c_n, h_n, w_n = g.node(node)["shape"]
        out_c, cg, kh_n, kw_n = g.node(wt)["shape"]
        oh_n, ow_n = g.node(gout)["shape"][2:]
        og = out_c // groups
        n, c, hh = Var("n"), Var("c"), Var("h")
        o_abs = add(mul(Bin("/", c, Const(cg)), og), Var("o")) if groups > 1 else Var("o")
        oh = add(hh, Const(ph), mul(Var("kh"), -dh))
        row_in = in_range(oh, oh_n)
        oh_idx = clamp(oh, oh_n)
        c_in = Bin("%", c, Const(cg)) if groups > 1 else c
        per_kw: list[Stmt] = [Let("rm", Select(row_in, Const(1.0), Const(0.0)))]
        for k in range(kw_n):
            lo = max(0, k * dw - pw)
            hi = min(w_n, ow_n + k * dw - pw)
            if hi <= lo:
                continue
            ww = add(Var("wr"), Const(lo))
            at = (ww,)
            term = Bin(
                "*",
                Load(buffer_name(g, gout), (n, o_abs, oh_idx, add(ww, Const(pw - k * dw)))),
                Var("wv"),
            )
            per_kw += [
                Let(
                    "wv",
                    Bin(
                        "*", Load(buffer_name(g, wt), (o_abs, c_in, Var("kh"), Const(k))), Var("rm")
                    ),
                ),
                Loop(
                    "wr",
                    hi - lo,
                    [Store("row", at, Bin("+", Load("row", at), term))],
                    [vectorize(self.lanes)],
                ),
            ]
        idx = (n, c, hh, Var("w"))
        per_row: list[Stmt] = [
            Local("row", (w_n,)),
            Loop("w", w_n, [Store("row", (Var("w"),), Const(0.0))], [vectorize(self.lanes)]),
            Loop("o", og, [Loop("kh", kh_n, per_kw)]),
            Loop(
                "w",
                w_n,
                [
                    Let(f"v{node}", Load("row", (Var("w"),))),
                    *self.epilogue(self.after(node), idx),
                    *self.stores([node], idx),
                ],
            ),
        ]
        return self.loops(["n", "c", "h"], (n_n, c_n, h_n), per_row, vectorize=False)


def _pow_by_roots(x: Expr, exponent: float) -> Expr | None:
    """x ** exponent for exponents in quarter steps (LRN's 0.75 and its derivative's -0.25)
    as multiplies and square roots: hardware instructions that vectorise, where powf is a
    libm call per element. Negative exponents are 1 / x ** |exponent| (so 0 gives inf like
    powf); a negative base gives NaN through sqrt, like powf with a fractional exponent."""
    quarters = 4 * abs(exponent)
    if quarters != int(quarters) or quarters > 32:
        return None
    if exponent == 0.5:  # numpy computes x ** 0.5 as sqrt (-0 stays -0, -inf gives NaN)
        return Call("sqrtf", (x,))
    whole, rest = divmod(int(quarters), 4)
    if rest:
        # powf with a fractional exponent: pow(-0, y) is +0 and pow(-inf, y) is +inf, where
        # sqrt gives -0 and NaN: adding +0 turns -0 into +0, and -inf becomes +inf
        x = Select(Bin("==", x, Const(-np.inf)), Const(np.inf), Bin("+", x, Const(0.0)))
    factors: list[Expr] = [x] * whole
    if rest:
        root = Call("sqrtf", (x,))
        fourth = Call("sqrtf", (root,))
        factors += {1: [fourth], 2: [root], 3: [root, fourth]}[rest]
    value: Expr = Const(1.0)
    for f in factors:
        value = f if value == Const(1.0) else Bin("*", value, f)
    return Bin("/", Const(1.0), value) if exponent < 0 else value


def _operands(e: Bin | Select | Call) -> tuple[Expr, ...]:
    if isinstance(e, Bin):
        return (e.a, e.b)
    if isinstance(e, Select):
        return (e.cond, e.a, e.b)
    return e.args


def _mentions(e: Expr, name: str) -> bool:
    return any(x == Var(name) for x in walk(e))


def _unit_step(e: Expr, name: str) -> bool:
    """`e` is variable `name` plus terms that do not depend on it."""
    if e == Var(name):
        return True
    if isinstance(e, Bin) and e.op == "+":
        return (_unit_step(e.a, name) and not _mentions(e.b, name)) or (
            _unit_step(e.b, name) and not _mentions(e.a, name)
        )
    return False


def _rows_along_k(load: Expr) -> bool:
    """A plain load whose consecutive k are consecutive in memory."""
    return (
        isinstance(load, Load)
        and _unit_step(load.index[-1], "k")
        and not any(_mentions(i, "k") for i in load.index[:-1])
    )


def _flat_pixels_ok(g: Graph, stmts: list[Stmt], hw: tuple[int, int]) -> bool:
    """Whether an epilogue indexing (oh, ow) may address pixel p as (0, p) (`_flat_ok`;
    the pooled epilogue's `tile` is an (..., H, W) buffer too)."""
    return _flat_ok(g, stmts, ("oh", "ow"), hw, {"tile": (1, *hw)})


_SHAPES: weakref.WeakKeyDictionary[Graph, tuple[int, dict[str, tuple[int, ...]]]] = (
    weakref.WeakKeyDictionary()
)


def _buffer_shapes(g: Graph) -> dict[str, tuple[int, ...]]:
    """Identifier -> shape of every node of `g`, cached per graph as `buffer_names` is."""
    hit = _SHAPES.get(g)
    if hit is None or hit[0] != g._next:
        names = buffer_names(g)
        hit = (g._next, {names[n]: tuple(g.node(n)["shape"]) for n in g.nx.nodes})
        _SHAPES[g] = hit
    return hit[1]


def _flat_ok(
    g: Graph,
    stmts: list[Stmt],
    names: tuple[str, ...],
    dims: tuple[int, ...],
    extra: dict[str, tuple[int, ...]] | None = None,
    views: set[str] | frozenset[str] = frozenset(),
) -> bool:
    """Whether statements indexing trailing axes `names` (extents `dims`) may address them
    as one flat position (0, ..., 0, p) instead, the same row-major address: every access
    that uses them must use exactly them as its last indices into a buffer whose trailing
    shape is `dims`, and nothing else (a helper call, arithmetic) may use them. Loads of
    `views` (folded views, whose indices are mapped to their source's later) must not use
    them: a permuted source is not row-major in the view's axes."""
    pixel = tuple(Var(n) for n in names)
    tail = len(names)
    known, extra = _buffer_shapes(g), extra or {}

    def shape_of(buffer: str) -> tuple[int, ...] | None:
        return extra.get(buffer, known.get(buffer))

    def uses(e: Expr) -> bool:
        return any(x in pixel for x in walk(e))

    def access_ok(buffer: str, index: tuple[Expr, ...]) -> bool:
        if not any(uses(i) for i in index):
            return True
        shape = shape_of(buffer)
        return (
            shape is not None
            and buffer not in views
            and tuple(shape[-tail:]) == tuple(dims)
            and tuple(index[-tail:]) == pixel
            and not any(uses(i) for i in index[:-tail])
        )

    def expr_ok(e: Expr) -> bool:
        # loads only through access_ok's pattern, and the pixel never used as a value
        for x in walk(e):
            if isinstance(x, Load) and not access_ok(x.buffer, x.index):
                return False
            if isinstance(x, Bin | Select | Call) and any(part in pixel for part in _operands(x)):
                return False
        return e not in pixel

    for s in stmts:
        if isinstance(s, Store) and not (access_ok(s.buffer, s.index) and expr_ok(s.value)):
            return False
        if isinstance(s, Let | Accumulate) and not expr_ok(s.value):
            return False
        if isinstance(s, Accumulate) and s.index is not None and uses(s.index):
            return False
        if not isinstance(s, (Store, Let, Accumulate, Comment)):
            return False
    return True


def _column_range(
    k: int, out_n: int, in_n: int, stride: int, pad: int, dil: int
) -> tuple[int, int]:
    """Output columns [lo, hi) whose tap k reads inside the input: 0 <= o*s - p + k*d < n."""
    lo = -((k * dil - pad) // stride) if k * dil < pad else 0
    top = in_n - 1 + pad - k * dil
    hi = min(out_n, top // stride + 1) if top >= 0 else 0
    return max(0, lo), hi


def _phase_taps(
    a: int, size: int, kernel: int, stride: int, pad: int, dil: int
) -> tuple[int, tuple[int, int, int, int, int] | None]:
    """One axis of a strided input gradient's phase a: how many input positions a + s*q it
    has, and (taps m, padding, dilation, first weight tap, weight tap step) of the stride-1
    correlation that computes them, or None when no tap reaches them. Position a + s*q takes
    output-gradient position q + (a + p - k*d) / s from every tap k that divides exactly; those
    k step by s / gcd(s, d), the offset falling by d / gcd each step, so listed from the last
    tap first they are a dilated window starting at the last one's offset."""
    count = len(range(a, size, stride))
    ks = [k for k in range(kernel) if (a + pad - k * dil) % stride == 0]
    if not ks:
        return count, None
    last = (a + pad - ks[-1] * dil) // stride
    step = ks[1] - ks[0] if len(ks) > 1 else 1
    window_dil = step * dil // stride if len(ks) > 1 else 1
    return count, (len(ks), -last, window_dil, ks[-1], -step)


def _streams_better(shape: tuple[int, ...], keep: list[int]) -> bool:
    """Whether a reduction keeps one run of axes with reduced axes before it (and maybe
    after): the case `reduction_streamed` walks in memory order."""
    return (
        bool(keep)
        and keep == list(range(keep[0], keep[-1] + 1))
        and _numel(shape[: keep[0]]) > 1
        and _numel(tuple(shape[k] for k in keep)) > 1
    )


# kept elements one task of `reduction_streamed` sums at most (its on-chip partial sums)
STREAM_BLOCK = 4096


# On-chip budgets of the implicit-GEMM convolution (stack memory of the kernel's thread): the
# pooled epilogue's tile of conv outputs splits its channels to stay under GEMM_TILE_BYTES,
# and larger layers fall back to the row schedule.
GEMM_TILE_BYTES = 2 << 20
GEMM_LOCAL_BYTES = 6 << 20


def _blocks_cover(extent: int, block: int) -> bool:
    """Whether blocks of `block` cover `extent` with little recomputation: the last block
    overlaps its neighbour, so at most a quarter of the work is done twice."""
    return extent >= block and -(-extent // block) * block * 4 <= extent * 5


def _block_start(index: Expr, block: int, extent: int) -> Expr:
    """First element of block `index`; the last is pulled back to end at `extent`."""
    if extent % block == 0:
        return mul(index, block)
    return Bin("min", mul(index, block), Const(extent - block))


def _map_one(s: Stmt, fn: Any) -> Stmt:
    return _map_stmts([s], fn)[0]


def _pool_window(
    pool: int,
    pd: dict[str, Any],
    is_max: bool,
    out_vars: tuple[str, str],
    bounds: tuple[int, int],
    source: Any,
    guard: bool,
) -> list[Stmt]:
    """Statements leaving pooled value v{pool} for output position `out_vars`: loop the
    window taps (i, j) over `source(row, col)`, reading -inf/0 outside `bounds` when `guard`."""
    r = add(
        mul(Var(out_vars[0]), pd["stride"][0]),
        Const(-pd["padding"][0]),
        mul(Var("i"), pd["dilation"][0]),
    )
    c = add(
        mul(Var(out_vars[1]), pd["stride"][1]),
        Const(-pd["padding"][1]),
        mul(Var("j"), pd["dilation"][1]),
    )
    fill = Const(-np.inf if is_max else 0.0)
    tap: Expr = source(r, c)
    per_tap: list[Stmt] = []
    if guard:  # read at a clamped position, then choose: no branch per tap (LLVM vectorises
        # the window loop; a guarded load made it branch, or gather, per tap)
        per_tap.append(Let("pv", source(clamp(r, bounds[0]), clamp(c, bounds[1]))))
        tap = Select(in_image(r, c, bounds), Var("pv"), fill)
    op = "max" if is_max else "+"
    scale = 1.0 / (pd["kernel"][0] * pd["kernel"][1])
    return [
        Let("m", fill),
        Loop(
            "i",
            pd["kernel"][0],
            [Loop("j", pd["kernel"][1], [*per_tap, Accumulate("m", op, tap)])],
            ["unroll"],
        ),
        Let(f"v{pool}", Var("m") if is_max else Bin("*", Var("m"), Const(scale))),
    ]


def _input_channel(oc: Expr, out_c: int, groups: int, cg: int, ic: Expr) -> Expr:
    """The input channel that output channel `oc`'s tap `ic` reads (grouped convolution)."""
    if groups == 1:
        return ic
    return add(mul(Bin("/", oc, Const(out_c // groups)), cg), ic)


def _map_stmts(stmts: list[Stmt], fn: Any) -> list[Stmt]:
    """Apply `fn` to every expression in a statement tree."""
    out: list[Stmt] = []
    for s in stmts:
        if isinstance(s, Loop):
            out.append(Loop(s.var, s.extent, _map_stmts(s.body, fn), list(s.tags)))
        elif isinstance(s, Let):
            out.append(Let(s.var, fn(s.value)))
        elif isinstance(s, Store):
            out.append(Store(s.buffer, tuple(fn(i) for i in s.index), fn(s.value)))
        elif isinstance(s, Accumulate):
            index = None if s.index is None else fn(s.index)
            out.append(Accumulate(s.target, s.op, fn(s.value), index))
        else:
            out.append(s)
    return out


def _relink(expr: Expr, buffer: str, load: Any) -> Expr:
    """Replace every Load of `buffer` in `expr` by `load(index)` (resolving folded views)."""
    if isinstance(expr, Load):
        return load(expr.index) if expr.buffer == buffer else expr
    if isinstance(expr, Bin):
        return Bin(expr.op, _relink(expr.a, buffer, load), _relink(expr.b, buffer, load))
    if isinstance(expr, Select):
        return Select(
            _relink(expr.cond, buffer, load),
            _relink(expr.a, buffer, load),
            _relink(expr.b, buffer, load),
        )
    if isinstance(expr, Call):
        return Call(expr.fn, tuple(_relink(a, buffer, load) for a in expr.args))
    return expr


def _unravel(flat: Expr, shape: tuple[int, ...]) -> tuple[Expr, ...]:
    out = []
    stride = 1
    for n in reversed(shape):
        part: Expr = Bin("/", flat, Const(stride)) if stride != 1 else flat
        out.append(Bin("%", part, Const(n)) if n != 1 else Const(0))
        stride *= n
    return tuple(reversed(out))


def gather_value(
    g: Graph, node: int, idx: tuple[Expr, ...], source_is_view: bool = True
) -> tuple[list[Stmt], Expr]:
    """(setup statements, value) of output element `idx` of a movement-like node.
    `source_is_view`: the node's source is itself a folded view, whose index mapping needs
    the source's own coordinates (not only a row-major position)."""
    d = g.node(node)
    op, attrs, shape = d["op"], d["attrs"], d["shape"]
    operands = g.operands(node)
    src = operands[0]
    src_shape = g.node(src)["shape"]
    name = buffer_name(g, src)
    if op == "reshape":
        strides = [int(np.prod(shape[k + 1 :])) for k in range(len(shape))]
        flat = add(*(mul(i, s) for i, s in zip(idx, strides)))
        if source_is_view:  # a view maps each coordinate: give it the source's own ones
            return [], Load(name, _unravel(flat, src_shape))
        # a buffer: the same element in row-major order (buffers are addressed row-major,
        # so the flat position goes in the last index, with no division)
        return [], Load(name, (*(Const(0) for _ in src_shape[1:]), flat))
    if op == "max_pool2d_grad":
        return _max_pool_gather(g, node, idx)
    if op == "permute":
        inv = [0] * len(shape)
        for k, dim in enumerate(attrs["dims"]):
            inv[dim] = k
        return [], Load(name, tuple(idx[inv[k]] for k in range(len(src_shape))))
    if op == "expand":
        lead = len(shape) - len(src_shape)
        return [], Load(
            name,
            tuple(
                Const(0) if n == 1 and shape[lead + k] != 1 else idx[lead + k]
                for k, n in enumerate(src_shape)
            ),
        )
    if op == "pad":
        src_idx = tuple(add(i, Const(-lo)) for i, (lo, _) in zip(idx, attrs["pads"]))
        conds: Expr = Const(True)
        for e, n in zip(src_idx, src_shape):
            conds = Bin("&&", conds, in_range(e, n))
        return [], Select(conds, Load(name, src_idx), Const(float(attrs["value"])))
    if op == "cat":
        axis = attrs["axis"]
        value: Expr = Const(0.0)
        start = 0
        pieces = []
        for o in operands:
            n = g.node(o)["shape"][axis]
            sub = tuple(add(i, Const(-start)) if k == axis else i for k, i in enumerate(idx))
            pieces.append((start + n, Load(buffer_name(g, o), sub)))
            start += n
        for stop, load in reversed(pieces):
            value = Select(Bin("<", idx[axis], Const(stop)), load, value)
        return [], value
    if op == "unfold2d":
        n, c, i, j, oh, ow = idx
        (sh, sw), (ph, pw), (dh, dw) = attrs["stride"], attrs["padding"], attrs["dilation"]
        r = add(mul(oh, sh), Const(-ph), mul(i, dh))
        col = add(mul(ow, sw), Const(-pw), mul(j, dw))
        inside = in_image(r, col, src_shape[2:])
        return [], Select(inside, Load(name, (n, c, r, col)), Const(float(attrs["pad_value"])))
    if op in ("fold2d", "conv2d_grad_input"):
        return _transposed_window(g, node, idx)
    if op == "conv2d_grad_weight":
        x, gout = operands
        oc, ic, kh, kw = idx
        (sh, sw), (ph, pw), (dh, dw) = attrs["stride"], attrs["padding"], attrs["dilation"]
        groups = attrs["groups"]
        gshape = g.node(gout)["shape"]
        chan = (
            add(mul(Bin("/", oc, Const(gshape[1] // groups)), shape[1]), ic) if groups > 1 else ic
        )
        r = add(mul(Var("oh"), sh), Const(-ph), mul(kh, dh))
        col = add(mul(Var("ow"), sw), Const(-pw), mul(kw, dw))
        xs = g.node(x)["shape"]
        inside = in_image(r, col, xs[2:])
        prod = Bin(
            "*",
            Select(inside, Load(buffer_name(g, x), (Var("n"), chan, r, col)), Const(0.0)),
            Load(buffer_name(g, gout), (Var("n"), oc, Var("oh"), Var("ow"))),
        )
        loops: list[Stmt] = [
            Let("acc", Const(0.0)),
            Loop(
                "n",
                gshape[0],
                [Loop("oh", gshape[2], [Loop("ow", gshape[3], [Accumulate("acc", "+", prod)])])],
            ),
        ]
        return loops, Var("acc")
    if op == "index_put" and all(
        isinstance(i, (int, slice, type(None), type(Ellipsis))) for i in attrs["index"]
    ):
        cond, src_idx = _scatter_index(attrs["index"], shape, idx)
        return [], Select(cond, Load(name, src_idx), Const(0.0))
    if op == "getitem" and all(
        isinstance(i, (int, slice, type(None), type(Ellipsis))) for i in attrs["index"]
    ):
        return [], Load(name, _basic_index(attrs["index"], src_shape, idx))
    return (
        [Comment(f"{op}: data-dependent indexing, done by a runtime helper")],
        Call(op, (Var(name), *idx)),
    )


def _basic_index(
    index: tuple[Any, ...], src_shape: tuple[int, ...], idx: tuple[Expr, ...]
) -> tuple[Expr, ...]:
    items = list(index)
    if any(i is Ellipsis for i in items):
        k = items.index(Ellipsis)
        used = sum(1 for i in items if i is not None and i is not Ellipsis)
        items[k : k + 1] = [slice(None)] * (len(src_shape) - used)
    items += [slice(None)] * (len(src_shape) - sum(1 for i in items if i is not None))
    out: list[Expr] = []
    pos = 0
    dim = 0
    for item in items:
        if item is None:
            pos += 1
            continue
        if isinstance(item, int):
            out.append(Const(item % src_shape[dim]))
        else:
            start, _, step = item.indices(src_shape[dim])
            out.append(add(Const(start), mul(idx[pos], step)))
            pos += 1
        dim += 1
    return tuple(out)


def _scatter_index(
    index: tuple[Any, ...], out_shape: tuple[int, ...], idx: tuple[Expr, ...]
) -> tuple[Expr, tuple[Expr, ...]]:
    """For index_put (the adjoint of basic indexing): whether output element `idx` was
    written, and which source element it came from."""
    items = list(index)
    used = sum(1 for i in items if i is not None and i is not Ellipsis)
    if any(i is Ellipsis for i in items):
        k = items.index(Ellipsis)
        items[k : k + 1] = [slice(None)] * (len(out_shape) - used)
    items += [slice(None)] * (len(out_shape) - sum(1 for i in items if i is not None))
    cond: Expr = Const(True)
    src: list[Expr] = []
    dim = 0
    for item in items:
        if item is None:
            src.append(Const(0))
            continue
        i, n = idx[dim], out_shape[dim]
        if isinstance(item, int):
            cond = Bin("&&", cond, Bin("==", i, Const(item % n)))
        else:
            start, stop, step = item.indices(n)
            if step > 0:
                inside = Bin("&&", Bin(">=", i, Const(start)), Bin("<", i, Const(stop)))
                offset = add(i, Const(-start))
            else:
                inside = Bin("&&", Bin("<=", i, Const(start)), Bin(">", i, Const(stop)))
                offset = add(Const(start), Bin("*", Const(-1), i))
            k = abs(step)
            if k != 1:
                inside = Bin("&&", inside, Bin("==", Bin("%", offset, Const(k)), Const(0)))
                offset = Bin("/", offset, Const(k))
            cond = Bin("&&", cond, inside)
            src.append(offset)
        dim += 1
    return cond, tuple(src)


def _window_search(g: Graph, node: int, n: Expr, c: Expr, oh: Expr, ow: Expr) -> list[Stmt]:
    """Statements leaving in `best` the tap (i * KW + j) of window (oh, ow)'s first maximum
    of max_pool2d_grad's input x: row-major taps, a NaN first (argmax's rule, by which eager
    routes the gradient). Every load is at a clamped, in-bounds index, its value replaced by
    -inf outside the image, so the search has no branches; a window out of range is
    searched at a clamped position (its callers ignore it)."""
    attrs = g.node(node)["attrs"]
    (kh, kw), (dh, dw) = attrs["kernel"], attrs["dilation"]
    x = g.operands(node)[0]
    h, w = g.node(x)["shape"][2:]
    row0, col0 = _window_origin(g, node, oh, ow)
    row, col = add(row0, mul(Var("i"), dh)), add(col0, mul(Var("j"), dw))
    value = Load(buffer_name(g, x), (n, c, clamp(row, h), clamp(col, w)))
    tap = Select(in_image(row, col, (h, w)), Var("xv"), Const(-np.inf))
    position = add(mul(Var("i"), kw), Var("j"))
    return [
        Let("best", Const(0)),
        Let("best_max", Call(f"({g.node(x)['dtype'].name})", (Const(-np.inf),))),
        Loop(
            "i",
            kh,
            [Loop("j", kw, [Let("xv", value), Accumulate("best", "argmax", tap, position)])],
            ["unroll"],
        ),
    ]


def _window_origin(g: Graph, node: int, oh: Expr, ow: Expr) -> tuple[Expr, Expr]:
    """x's (row, column) of window (oh, ow)'s tap (0, 0), the window clamped into range."""
    attrs = g.node(node)["attrs"]
    (sh, sw), (ph, pw) = attrs["stride"], attrs["padding"]
    oh_n, ow_n = g.node(g.operands(node)[1])["shape"][2:]
    return add(mul(clamp(oh, oh_n), sh), Const(-ph)), add(mul(clamp(ow, ow_n), sw), Const(-pw))


def _tap_position(g: Graph, node: int, oh: Expr, ow: Expr, tap: Expr) -> tuple[Expr, Expr]:
    """x's (row, column) of window (oh, ow)'s tap number `tap` (row-major)."""
    attrs = g.node(node)["attrs"]
    kw, (dh, dw) = attrs["kernel"][1], attrs["dilation"]
    row0, col0 = _window_origin(g, node, oh, ow)
    return (
        add(row0, mul(Bin("/", tap, Const(kw)), dh)),
        add(col0, mul(Bin("%", tap, Const(kw)), dw)),
    )


def _max_pool_gather(g: Graph, node: int, idx: tuple[Expr, ...]) -> tuple[list[Stmt], Expr]:
    """The default schedule of max_pool2d_grad (no scratch memory, every pixel on its own:
    a GPU thread each): input pixel (n, c, h, w) sums the gradient of each window that can
    reach it (`_window_taps`) whose first maximum it is."""
    attrs = g.node(node)["attrs"]
    (kh, kw), (sh, sw) = attrs["kernel"], attrs["stride"]
    (ph, pw), (dh, dw) = attrs["padding"], attrs["dilation"]
    n, c, h, w = idx
    gout = g.operands(node)[1]
    oh_n, ow_n = g.node(gout)["shape"][2:]
    rows, _, oh, valid_h = _window_taps(h, ph, sh, dh, kh, oh_n, "a")
    cols, _, ow, valid_w = _window_taps(w, pw, sw, dw, kw, ow_n, "b")
    woh, wow = Var("woh"), Var("wow")
    bi, bj = _tap_position(g, node, woh, wow, Var("best"))
    hit = Bin("&&", Bin("&&", valid_h, valid_w), Bin("&&", Bin("==", bi, h), Bin("==", bj, w)))
    grad = Load(buffer_name(g, gout), (n, c, clamp(woh, oh_n), clamp(wow, ow_n)))
    body: list[Stmt] = [
        Let("woh", oh),
        Let("wow", ow),
        *_window_search(g, node, n, c, woh, wow),
        Let("gv", grad),
        Accumulate("acc", "+", Select(hit, Var("gv"), Const(0.0))),
    ]
    return [Let("acc", Const(0.0)), Loop("a", rows, [Loop("b", cols, body)])], Var("acc")


def _window_taps(
    pos: Expr, pad: int, stride: int, dilation: int, k: int, windows: int, var: str
) -> tuple[int, Expr, Expr, Expr]:
    """Along one axis, the taps of a transposed window that reach input position `pos`:
    (loop extent, tap index, window index, valid) with `var` the loop's variable.

    With dilation 1, tap t reaches pos from window (pos + pad - t) / stride exactly when
    t = (pos + pad) mod stride (mod stride): only those ceil(k / stride) taps are walked, with
    no divisibility test (a 3x3 stride-2 max-pool's backward visits 4 taps a pixel, not 9;
    a global average pool's, 1 instead of 49). Otherwise every tap, testing divisibility."""
    shifted = add(pos, Const(pad))
    if dilation == 1 and stride > 1:
        tap = add(Bin("%", shifted, Const(stride)), mul(Var(var), stride))
        window = add(Bin("/", shifted, Const(stride)), mul(Var(var), -1))
        valid = Bin("&&", Bin("<", tap, Const(k)), in_range(window, windows))
        return -(-k // stride), tap, window, valid
    reach = add(shifted, Bin("*", Const(-dilation), Var(var)))
    window = Bin("/", reach, Const(stride)) if stride > 1 else reach
    valid = in_range(window, windows)
    if stride > 1:
        valid = Bin("&&", Bin("==", Bin("%", reach, Const(stride)), Const(0)), valid)
    return k, Var(var), window, valid


def _transposed_window(g: Graph, node: int, idx: tuple[Expr, ...]) -> tuple[list[Stmt], Expr]:
    """fold2d / conv2d_grad_input as a gather: input pixel (n, c, h, w) sums every window
    position (oh, ow) and tap (kh, kw) with h = oh*s - p + kh*d (`_window_taps`: only the
    taps that can reach it)."""
    d = g.node(node)
    attrs = d["attrs"]
    (sh, sw), (ph, pw), (dh, dw) = attrs["stride"], attrs["padding"], attrs["dilation"]
    n, c, h, w = idx
    operands = g.operands(node)
    src = operands[0]
    src_shape = g.node(src)["shape"]
    if d["op"] == "fold2d":
        kh_n, kw_n, oh_n, ow_n = src_shape[2:]
    else:
        wshape = g.node(operands[1])["shape"]
        kh_n, kw_n = wshape[2:]
        oh_n, ow_n = src_shape[2:]
    rows, kh, oh, valid_h = _window_taps(h, ph, sh, dh, kh_n, oh_n, "kh")
    cols, kw, ow, valid_w = _window_taps(w, pw, sw, dw, kw_n, ow_n, "kw")
    valid = Bin("&&", valid_h, valid_w)
    if d["op"] == "fold2d":
        term: Expr = Load(buffer_name(g, src), (n, c, kh, kw, oh, ow))
        inner: list[Stmt] = [Accumulate("acc", "+", Select(valid, term, Const(0.0)))]
    else:
        groups = attrs["groups"]
        wshape = g.node(operands[1])["shape"]
        og = wshape[0] // groups
        cg = wshape[1]
        oc = add(mul(Bin("/", c, Const(cg)), og), Var("o")) if groups > 1 else Var("o")
        term = Bin(
            "*",
            Load(buffer_name(g, src), (n, oc, oh, ow)),
            Load(buffer_name(g, operands[1]), (oc, Bin("%", c, Const(cg)), kh, kw)),
        )
        inner = [Loop("o", og, [Accumulate("acc", "+", Select(valid, term, Const(0.0)))])]
    loops: list[Stmt] = [
        Let("acc", Const(0.0)),
        Loop("kh", rows, [Loop("kw", cols, inner, ["unroll"])]),
    ]
    return loops, Var("acc")


def _provenance(g: Graph, nodes: Sequence[int]) -> tuple[str, str, list[str]]:
    """(layer, phase) of a group's main op (the one with the most FLOPs, the first on ties)
    and every layer its ops come from, in order."""
    ops = [n for n in nodes if not g.is_leaf(n)]
    if not ops:
        return "", "forward", []
    main = max(ops, key=lambda n: (op_flops(g, n), -ops.index(n)))
    layers = list(dict.fromkeys(g.layer(n) for n in ops if g.layer(n)))
    # a main op outside every sub-module (a root-level reshape): name it by its neighbours
    return g.layer(main) or (layers[0] if layers else ""), g.phase(main), layers


def lower(
    fusion: Fusion,
    schedule: str = "default",
    target: CPUTarget | None = None,
    tiles: dict[int, Tile] | None = None,
) -> list[Kernel]:
    """One Kernel per group, in execution order. `schedule` picks how loops are ordered where
    targets differ: "default" (one output element per iteration: GPUs, the printer) or "cpu"
    (register-tiled GEMMs and convolutions, vectors as wide as `target`'s, default: the host
    CPU, or the one $TINYGRAD_EDU_CPU forces). `tiles` overrides the register tile of some
    groups (by index): what `compiler.tune` measured to be faster."""
    g = fusion.graph
    if schedule == "cpu" and target is None:
        target = host_target()
    if schedule != "cpu":
        target = None
    kernels = []
    for k, group in enumerate(fusion.groups):
        low = _Lowerer(fusion, group, k, schedule, target, (tiles or {}).get(k))
        body = low.lower()
        ops = group.op_names(g)
        layer, phase, layers = _provenance(g, group.nodes)
        buffers = [_buffer(g, n, "in") for n in low.inputs]
        buffers += [_buffer(g, n, "out") for n in low.outputs]
        kernels.append(
            Kernel(
                name=kernel_name(k, ops, layer, phase),
                ops=ops,
                nodes=list(group.nodes),
                buffers=buffers,
                body=body,
                flops=sum(op_flops(g, n) for n in group.nodes),
                bytes_read=sum(_nbytes(g, n) for n in low.inputs),
                bytes_written=sum(_nbytes(g, n) for n in low.outputs),
                kind=group.kind(g),
                target=target,
                layer=layer,
                phase=phase,
                layers=layers,
            )
        )
    return kernels
