"""fuse: partition the graph's ops into groups; each group becomes one kernel.

Rules, applied greedily in topological order (every decision is recorded with its reason):
1. conv2d, conv2d_grad_*, matmul, pooling, reductions and movement ops start a group (anchors).
2. An elementwise op joins the group of an operand's producer when that operand has the same
   shape (same iteration space: the op becomes an epilogue evaluated on values still in
   registers; if others read the operand too, the kernel also writes it) — so conv → bias
   add → ReLU is one group, and in the backward graph ReLU-mask × upstream gradient joins the
   kernel that produced the gradient.
3. max_pool2d / avg_pool2d joins a conv2d group whose ops after the conv are elementwise and
   whose output only the pool reads: conv → bias → ReLU → max-pool is ONE kernel that writes
   only the pooled output.
4. A reduction joins a purely elementwise group that only it reads (map-reduce in one pass).
5. A view (reshape, permute, expand, constant pad, slicing) read by one op is folded into that
   op's kernel: it only changes the index expression of a load (a transposed weight feeding
   matmul, or the shifted channel windows of local response normalisation, cost nothing);
   except a convolution's weight: its kernel reads each weight row as one run of taps, so a
   transposed weight (an input gradient's, see simplify) is written once, in that order.
6. Once every op has a group, an elementwise op a kernel writes out only for one reader in
   another kernel moves into that reader's kernel when the values it reads are in memory
   anyway (`_sink_into_readers`): BatchNorm's backward no longer has the input-gradient
   convolution write dy * x_hat and dy * gamma / sigma beside dy.
Legality: merging must keep the graph of groups acyclic; when an op reads several groups this
is checked directly: no group downstream of the merged one may lead back to it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

import networkx as nx

from tinygrad_edu.ops import OPS

from ..graph import Graph

ANCHOR_KINDS = ("conv", "matmul", "pool", "reduce", "movement")
VIEW_OPS = ("reshape", "permute", "expand", "pad", "getitem")  # index remaps (see is_view)


def is_view(g: Graph, nid: int) -> bool:
    """An op whose output element is one input element at a remapped index (or a pad value):
    it can be folded into its reader's loads instead of running as a kernel."""
    d = g.node(nid)
    if d["op"] == "getitem":
        return all(
            isinstance(i, (int, slice, type(None), type(Ellipsis))) for i in d["attrs"]["index"]
        )
    return d["op"] in VIEW_OPS


@dataclass
class Group:
    """Ops that run as one kernel. `anchor` heads it (None for a pure elementwise chain)."""

    gid: int
    nodes: list[int] = field(default_factory=list)
    anchor: int | None = None

    def kind(self, g: Graph) -> str:
        return "elementwise" if self.anchor is None else OPS[g.node(self.anchor)["op"]].kind

    def op_names(self, g: Graph) -> list[str]:
        return [g.node(n)["op"] for n in self.nodes]


@dataclass(frozen=True)
class Decision:
    """Why node `node` did or did not join group `group`."""

    node: int
    op: str
    group: int
    fused: bool
    reason: str


@dataclass
class Fusion:
    """The fuse pass's result: the graph, its groups in execution order, and the decisions."""

    graph: Graph
    groups: list[Group]
    decisions: list[Decision]
    group_of: dict[int, int]

    def group_outputs(self, group: Group) -> list[int]:
        """Nodes of the group that something outside it reads (or that are graph outputs)."""
        g = self.graph
        members = set(group.nodes)
        return [
            n
            for n in group.nodes
            if n in g.outputs or any(c not in members for c in g.consumers(n))
        ]

    def group_inputs(self, group: Group) -> list[int]:
        g = self.graph
        members = set(group.nodes)
        seen: list[int] = []
        for n in group.nodes:
            for o in g.operands(n):
                if o not in members and o not in seen:
                    seen.append(o)
        return seen

    def explain(self) -> str:
        lines = [f"{len(self.groups)} kernels from {sum(len(gr.nodes) for gr in self.groups)} ops"]
        for d in self.decisions:
            mark = "fused " if d.fused else "kernel"
            lines.append(f"  [{mark}] %{d.node} {d.op:20s} -> k{d.group}: {d.reason}")
        return "\n".join(lines)


def _acyclic_after_merge(
    g: Graph,
    group_of: dict[int, int],
    groups: dict[int, Group],
    moving: set[int],
    target: int,
) -> bool:
    """Whether the graph of groups stays acyclic with the `moving` nodes placed in `target`.

    The groups form a DAG before the merge (every merge keeps it one), so the only cycle the
    merge can make passes through `target`: search the groups reachable from it (edges
    between grouped nodes only, as a kernel reads only what kernels wrote) and report a
    cycle when one of them leads back. Only the groups downstream of `target` are visited,
    which in topological-order fusion are few; contracting the whole graph for every check
    made fusion quadratic (minutes for a DenseNet-121 or MobileNetV2 training step)."""

    def gid(n: int) -> int | None:
        return target if n in moving else group_of.get(n)

    def downstream(nodes: list[int] | set[int]) -> list[int]:
        return [b for n in nodes for c in g.consumers(n) if (b := gid(c)) is not None]

    start = [*groups[target].nodes, *moving]
    frontier = [b for b in downstream(start) if b != target]
    seen = set(frontier)
    while frontier:
        group = frontier.pop()
        for b in downstream([n for n in groups[group].nodes if n not in moving]):
            if b == target:
                return False
            if b not in seen:
                seen.add(b)
                frontier.append(b)
    return True


def fuse(g: Graph) -> Fusion:
    groups: dict[int, Group] = {}
    group_of: dict[int, int] = {}
    decisions: list[Decision] = []

    def new_group(nid: int, anchor: int | None, reason: str) -> None:
        gid = len(groups)
        groups[gid] = Group(gid, [nid], anchor)
        group_of[nid] = gid
        decisions.append(Decision(nid, g.node(nid)["op"], gid, False, reason))
        place_views(nid)

    def join(nid: int, gid: int, reason: str) -> None:
        groups[gid].nodes.append(nid)
        group_of[nid] = gid
        decisions.append(Decision(nid, g.node(nid)["op"], gid, True, reason))
        place_views(nid)

    def tail_shape(gid: int) -> tuple[int, ...]:
        # the index space the group's last op iterates over; epilogues must share it
        last = [n for n in groups[gid].nodes if n not in view_of]
        return g.node(last[-1])["shape"]

    def has_reduction(gid: int) -> bool:
        return any(OPS[g.node(n)["op"]].kind == "reduce" for n in groups[gid].nodes)

    def views_of(nid: int) -> list[int]:
        out = []
        for v in pending.get(nid, []):
            out += [v, *views_of(v)]
        return out

    def can_join(nid: int, gid: int, producers: list[int]) -> str:
        """'' if nid (with its folded views) may join group gid, else the reason not."""
        views = views_of(nid)
        if any(group_of.get(source(v)) == gid for v in views):
            return f"it reads k{gid} through a view (a reordered index is not in registers)"
        others = {group_of[p] for p in producers if group_of[p] != gid}
        if others and not _acyclic_after_merge(g, group_of, groups, {nid, *views}, gid):
            return f"joining k{gid} would make a cycle between kernels"
        return ""

    def outside_readers(operand: int, nid: int, gid: int) -> list[int]:
        return [c for c in g.consumers(operand) if c != nid and group_of.get(c) != gid]

    # consumer -> views (and deferred elementwise ops, `is_deferred`) waiting to join it
    pending: dict[int, list[int]] = {}

    def is_foldable_view(nid: int) -> bool:
        readers = g.consumers(nid)
        return (
            is_view(g, nid)
            and len(readers) == 1
            and nid not in g.outputs
            and g.operands(readers[0]).count(nid) == 1
            and not (g.node(readers[0])["op"] == "conv2d" and g.operands(readers[0])[1] == nid)
        )

    def is_deferred(nid: int) -> bool:
        """An elementwise op of graph inputs only, read once by one elementwise op of its
        shape: it runs where that reader runs, in registers. Placed first, it opened a kernel
        of its own, and the reader then joined one of its two producers' kernels, the other
        writing its value out: an SGD step's momentum * buffer and weight_decay * weight
        were two kernels per parameter, with the sum between them written and read back."""
        readers = g.consumers(nid)
        if len(readers) != 1 or nid in g.outputs:
            return False
        reader = readers[0]
        elementwise = ("elementwise", "compare")
        return (
            OPS[g.node(nid)["op"]].kind in elementwise
            and OPS[g.node(reader)["op"]].kind in elementwise
            and all(g.is_leaf(o) for o in g.operands(nid))
            and g.node(reader)["shape"] == g.node(nid)["shape"]
            and g.operands(reader).count(nid) == 1
        )

    def place_views(nid: int) -> None:
        # fold the views (and deferred elementwise ops) feeding nid into nid's group, ahead
        # of nid: views only remap indices, a deferred op is one more value in registers
        gid = group_of[nid]
        nodes = groups[gid].nodes
        for waiting in pending.pop(nid, []):
            nodes.insert(nodes.index(nid), waiting)
            group_of[waiting] = gid
            why = (
                f"view folded into the loads of %{nid} in k{gid}"
                if waiting in view_of
                else f"computed where its one reader %{nid} runs, in k{gid} (its operands "
                "are graph inputs)"
            )
            decisions.append(Decision(waiting, g.node(waiting)["op"], gid, True, why))
            place_views(waiting)

    def source(o: int) -> int:
        while o in view_of:
            o = view_of[o]
        return o

    view_of: dict[int, int] = {}
    for nid in g.order():
        if g.is_leaf(nid):
            continue
        d = g.node(nid)
        op = OPS[d["op"]]
        if is_foldable_view(nid):
            pending.setdefault(g.consumers(nid)[0], []).append(nid)
            view_of[nid] = g.operands(nid)[0]
            continue
        if is_deferred(nid):
            pending.setdefault(g.consumers(nid)[0], []).append(nid)
            continue
        producers = [source(o) for o in g.operands(nid)]
        producers = [o for o in producers if o in group_of]  # groups read, through views too
        direct = [o for o in g.operands(nid) if o in group_of]  # values usable in registers
        if op.kind in ("elementwise", "compare"):
            reasons = []
            placed = False
            for o in direct:
                gid = group_of[o]
                producer = g.describe(o).split(" = ")[1].split("(")[0]
                if tail_shape(gid) != d["shape"]:
                    reasons.append(
                        f"k{gid} iterates over {tail_shape(gid)}, not {d['shape']} (different "
                        "index pattern)"
                    )
                    continue
                if g.node(o)["shape"] != d["shape"]:
                    reasons.append(
                        f"%{o} ({producer}) has shape {g.node(o)['shape']}, "
                        f"not {d['shape']} (different index pattern)"
                    )
                    continue
                readers = outside_readers(o, nid, gid)
                blocked = can_join(nid, gid, producers)
                if blocked:
                    reasons.append(blocked)
                    continue
                kind = groups[gid].kind(g)
                also = (
                    f"; %{o} is still written, for {len(readers)} other reader(s)"
                    if readers
                    else f"; %{o} is still written: a graph output"
                    if o in g.outputs
                    else f", so %{o} never leaves registers"
                )
                join(nid, gid, f"epilogue of k{gid} ({kind}): same shape as %{o}{also}")
                placed = True
                break
            if not placed:
                why = "; ".join(reasons) if reasons else "its operands are all graph inputs"
                new_group(nid, None, f"new elementwise kernel: {why}")
            continue
        if op.kind == "pool" and direct:
            o = direct[0]
            gid = group_of[o]
            grp = groups[gid]
            conv_headed = grp.anchor is not None and g.node(grp.anchor)["op"] == "conv2d"
            tail_ok = (
                all(
                    OPS[g.node(n)["op"]].kind in ("elementwise", "compare") or is_view(g, n)
                    for n in grp.nodes[grp.nodes.index(grp.anchor) + 1 :]
                )
                if (conv_headed)
                else False
            )
            others_written = [
                n
                for n in grp.nodes
                if n != o
                and (n in g.outputs or any(group_of.get(c) != gid for c in g.consumers(n)))
            ]
            if (
                conv_headed
                and tail_ok
                and not others_written
                and o == [n for n in grp.nodes if n not in view_of][-1]
                and not outside_readers(o, nid, gid)
                and (o not in g.outputs)
                and not can_join(nid, gid, producers)
            ):
                join(
                    nid,
                    gid,
                    f"pooling epilogue of the conv2d kernel k{gid}: the kernel "
                    "writes only the pooled output",
                )
                continue
            why = (
                "producer is not a conv2d kernel"
                if not conv_headed
                else "the conv kernel's values are read elsewhere (it must write them)"
                if tail_ok
                else "the conv kernel already has a non-elementwise epilogue"
            )
            new_group(nid, nid, f"new {d['op']} kernel ({why})")
            continue
        if op.kind == "reduce" and direct and d["op"] != "argmax":
            o = direct[0]
            gid = group_of[o]
            readers = outside_readers(o, nid, gid)
            if groups[gid].anchor is not None:
                why = f"its input comes from a {groups[gid].kind(g)} kernel"
            elif has_reduction(gid) or tail_shape(gid) != g.node(o)["shape"]:
                why = f"k{gid} already reduces (one reduction per kernel)"
            elif readers or o in g.outputs:
                why = (
                    f"its input %{o} is read by {len(readers)} other op(s)"
                    if readers
                    else f"its input %{o} is a graph output"
                )
            else:
                why = can_join(nid, gid, producers)
                if not why:
                    join(
                        nid,
                        gid,
                        f"reduction over the elementwise kernel k{gid} (map-reduce in one pass)",
                    )
                    continue
            new_group(nid, nid, f"new reduce kernel: not fused with k{gid}: {why}")
            continue
        new_group(nid, nid, f"new {op.kind} kernel: {d['op']} is an anchor op")
    emptied = _sink_into_readers(g, groups, group_of, decisions)
    # Number kernels in execution order (a group can gain ops that depend on later groups).
    ordered = _execution_order(g, groups, group_of)
    renumber = {grp.gid: i for i, grp in enumerate(ordered)}
    for gone, target in emptied.items():  # decisions about an emptied kernel name the next
        while target in emptied:
            target = emptied[target]
        renumber[gone] = renumber[target]
    for grp in ordered:
        grp.gid = renumber[grp.gid]
    decisions = [
        Decision(d.node, d.op, renumber[d.group], d.fused, _renumber_text(d.reason, renumber))
        for d in decisions
    ]
    group_of = {n: renumber[gid] for n, gid in group_of.items()}
    return Fusion(g, ordered, decisions, group_of)


def _sinkable(g: Graph, groups: dict[int, Group], group_of: dict[int, int], nid: int) -> int | None:
    """The group that `nid` (an elementwise op written out for one reader in another kernel)
    can move into, or None. That reader must be an elementwise op iterating nid's shape in a
    kernel without an anchor, or a reduction heading its kernel and reducing nid itself: its
    kernel then computes nid from nid's own operands where it reads it."""
    if nid in g.outputs or OPS[g.node(nid)["op"]].kind not in ("elementwise", "compare"):
        return None
    gid = group_of[nid]
    readers = g.consumers(nid)
    if len(readers) != 1 or group_of.get(readers[0]) in (None, gid):
        return None
    reader = readers[0]
    if g.operands(reader).count(nid) != 1:
        return None
    target = groups[group_of[reader]]
    kind = OPS[g.node(reader)["op"]].kind
    shape = g.node(nid)["shape"]
    if target.anchor is None:
        ok = kind in ("elementwise", "compare") and g.node(reader)["shape"] == shape
        ok = ok and not any(OPS[g.node(n)["op"]].kind == "reduce" for n in target.nodes)
    else:
        ok = reader == target.anchor and g.node(reader)["op"] in ("sum", "max", "min")
    return target.gid if ok else None


def _sink_into_readers(
    g: Graph, groups: dict[int, Group], group_of: dict[int, int], decisions: list[Decision]
) -> dict[int, int]:
    """Move an elementwise op that a kernel writes out for one reader elsewhere into that
    reader's kernel (`_sinkable`), when every value it reads is written out anyway (a graph
    input, or another kernel's output for other readers too): the write, and the reader's
    read of it, become loads of values already in memory. BatchNorm's backward was the case:
    the input-gradient convolution's epilogue wrote dy, dy * x_hat and dy * gamma / sigma,
    three full tensors, where dy alone is needed (ResNet-18's layer1: 12.8 MB each, a batch of
    16). An op whose operands are its own kernel's values moves together with them when
    nothing else reads them. Returns the kernels left empty, each with the one it went to."""
    emptied: dict[int, int] = {}
    moved = True
    while moved:
        moved = False
        for grp in list(groups.values()):
            for nid in reversed(grp.nodes):
                target = _sinkable(g, groups, group_of, nid)
                if target is None:
                    continue
                chain = _sink_chain(g, groups, group_of, nid)
                if chain is None:
                    continue
                if not _acyclic_after_merge(g, group_of, groups, set(chain), target):
                    continue
                dest = groups[target].nodes
                at = dest.index(g.consumers(nid)[0])
                if any(o in dest[at:] for n in chain for o in g.operands(n)):
                    continue  # (the reader's kernel computes one of them after the reader)
                for n in chain:  # in their old kernel's order, ahead of the reader
                    grp.nodes.remove(n)
                    dest.insert(at, n)
                    at += 1
                    group_of[n] = target
                    decisions.append(
                        Decision(
                            n,
                            g.node(n)["op"],
                            target,
                            True,
                            f"moved from k{grp.gid} to its reader's kernel k{target}: its "
                            f"operands are in memory anyway, so k{grp.gid} need not write it",
                        )
                    )
                if not grp.nodes:
                    del groups[grp.gid]
                    emptied[grp.gid] = target
                moved = True
                break
    return emptied


def _sink_chain(
    g: Graph, groups: dict[int, Group], group_of: dict[int, int], nid: int
) -> list[int] | None:
    """nid and the ops of its kernel that only it (transitively) reads, in kernel order, when
    every other value they read stays in memory without them (a graph input, or a value its
    kernel writes for readers outside the chain); else None."""
    grp = groups[group_of[nid]]
    members = set(grp.nodes)
    chain = {nid}
    frontier = [nid]
    while frontier:
        n = frontier.pop()
        for o in g.operands(n):
            if o in chain or o not in members or o == grp.anchor:
                continue
            if (
                o not in g.outputs
                and OPS[g.node(o)["op"]].kind in ("elementwise", "compare")
                and all(c in chain for c in g.consumers(o))
            ):
                chain.add(o)
                frontier.append(o)
    for n in chain:
        for o in g.operands(n):
            if o in chain or g.is_leaf(o):
                continue
            if o not in group_of:  # a view folded elsewhere: not in memory on its own
                return None
            inside = group_of[o] == grp.gid
            written = o in g.outputs or any(
                c not in chain and group_of.get(c) != group_of[o] for c in g.consumers(o)
            )
            if not written or (inside and is_view(g, o)):
                return None
    return [n for n in grp.nodes if n in chain]


def _renumber_text(text: str, renumber: dict[int, int]) -> str:

    return re.sub(r"\bk(\d+)\b", lambda m: f"k{renumber[int(m.group(1))]}", text)


def _execution_order(g: Graph, groups: dict[int, Group], group_of: dict[int, int]) -> list[Group]:
    dag = nx.DiGraph()
    dag.add_nodes_from(groups)
    for src, dst in g.nx.edges():
        a, b = group_of.get(src), group_of.get(dst)
        if a is not None and b is not None and a != b:
            dag.add_edge(a, b)
    order = list(nx.lexicographical_topological_sort(dag))
    return [groups[i] for i in order]
