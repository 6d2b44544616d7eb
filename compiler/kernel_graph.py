"""The kernel graph of a compiled function, and where to draw it.

One node per kernel (and one per graph input: the batch, the labels); an edge per pair of
kernels that a buffer flows between, carrying every such buffer with its shape and bytes.
Parameters, optimizer state and constants are not drawn: each kernel lists the ones it reads.

`layout` places it top to bottom in data-flow order: rows are networkx's topological layering
(each kernel one row below the last of its producers; a kernel or input that reads nothing
computed, a dropout mask or the labels, sits just above its first reader), so the forward, the
loss and the backward pass follow one another down the page, and each row's boxes are ordered
by where their producers are (fewer crossings), the optimizer's updates at the right.
`networkx.multipartite_layout` places the rows. With Graphviz installed, `dot` places the
kernels instead (its crossing minimisation is better), and the page is drawn the same way.
"""

from __future__ import annotations

import shutil
import subprocess
from dataclasses import dataclass
from typing import TYPE_CHECKING

import networkx as nx
import numpy as np

if TYPE_CHECKING:
    from .runtime import CompiledFunction

PHASES = ("forward", "loss", "backward", "update")
BOX_W, BOX_H = 200, 58  # px of one kernel box
GAP_X, GAP_Y = 28, 44  # px between boxes and between rows


@dataclass(frozen=True)
class Flow:
    """A buffer that one kernel (or input) writes and another reads."""

    node: int  # graph node id
    shape: tuple[int, ...]
    nbytes: int


def kernel_graph(compiled: CompiledFunction) -> nx.DiGraph:
    """Nodes `("k", i)` per kernel (attrs kernel, index, phase) and `("in", nid)` per input
    leaf that a kernel reads (attrs name, shape, phase); edges carry `flows`, a list of Flow."""
    g, fusion = compiled.graph, compiled.fusion
    arguments = set(compiled.input_names)  # the call's inputs, not bound scalars such as lr
    kg = nx.DiGraph()
    for i, k in enumerate(compiled.kernels):
        kg.add_node(("k", i), kernel=k, index=i, phase=k.phase)
    for i, k in enumerate(compiled.kernels):
        for b in k.inputs:
            d = g.node(b.node)
            if d["op"] == "input" and d["name"] in arguments:
                src = ("in", b.node)
                kg.add_node(src, name=d["name"], shape=d["shape"], phase="input")
            elif b.node in fusion.group_of and fusion.group_of[b.node] != i:
                src = ("k", fusion.group_of[b.node])
            else:
                continue  # a parameter, state or constant
            nbytes = int(np.prod(d["shape"])) * d["dtype"].itemsize
            if not kg.has_edge(src, ("k", i)):
                kg.add_edge(src, ("k", i), flows=[])
            kg.edges[src, ("k", i)]["flows"].append(Flow(b.node, tuple(d["shape"]), nbytes))
    return kg


def ranks(kg: nx.DiGraph) -> dict[tuple[str, int], int]:
    """Row of each node: one below its lowest producer; but as late as its first reader
    allows for a source (an input, a dropout mask) and for a backward or update kernel that
    reads only forward values (a max-pool's argmax), so it sits by its use, not among the
    forward rows."""
    rank: dict[tuple[str, int], int] = {}
    for depth, generation in enumerate(nx.topological_generations(kg)):
        for n in generation:
            rank[n] = depth
    order = list(nx.topological_sort(kg))
    early: set[tuple[str, int]] = set()  # backward work that needs no gradient yet
    for n in order:
        if kg.nodes[n]["phase"] in ("backward", "update") and all(
            kg.nodes[p]["phase"] in ("forward", "input") or p in early for p in kg.predecessors(n)
        ):
            early.add(n)
    for n in reversed(order):
        succ = list(kg.successors(n))
        if succ and (kg.in_degree(n) == 0 or n in early):
            rank[n] = min(rank[s] for s in succ) - 1
    low = min(rank.values(), default=0)
    return {n: r - low for n, r in rank.items()}


def _rows(kg: nx.DiGraph, rank: dict[tuple[str, int], int]) -> dict[int, list[tuple[str, int]]]:
    """Each row's nodes in drawing order: by the mean position of their producers (a
    barycentre sweep down the page), updates last."""
    rows: dict[int, list[tuple[str, int]]] = {}
    for n in sorted(kg.nodes, key=lambda n: (n[0] != "in", n[1])):
        rows.setdefault(rank[n], []).append(n)
    position: dict[tuple[str, int], float] = {}
    for r in sorted(rows):

        def key(n: tuple[str, int]) -> tuple[bool, float, int]:
            above = [position[p] for p in kg.predecessors(n) if p in position]
            centre = float(np.mean(above)) if above else float(n[1])
            return kg.nodes[n]["phase"] == "update", centre, n[1]

        rows[r].sort(key=key)
        for col, n in enumerate(rows[r]):
            position[n] = col - (len(rows[r]) - 1) / 2
    return rows


def _dot_positions(kg: nx.DiGraph) -> dict[tuple[str, int], tuple[float, float]] | None:
    """Box centres in px from Graphviz `dot -Tplain`, or None without Graphviz."""
    dot = shutil.which("dot")
    if dot is None:
        return None
    ids = {n: f"n{i}" for i, n in enumerate(kg.nodes)}
    inches_w, inches_h = BOX_W / 72, BOX_H / 72
    lines = [
        "digraph k {",
        f"  rankdir=TB; nodesep={GAP_X / 72:.2f}; ranksep={GAP_Y / 72:.2f};",
        f"  node [shape=box, fixedsize=true, width={inches_w:.2f}, "
        f'height={inches_h:.2f}, label=""];',
    ]
    lines += [f"  {ids[n]};" for n in kg.nodes]
    lines += [f"  {ids[a]} -> {ids[b]};" for a, b in kg.edges]
    lines.append("}")
    try:
        out = subprocess.run(
            [dot, "-Tplain"], input="\n".join(lines), text=True, capture_output=True,
            timeout=60, check=True,
        ).stdout  # fmt: skip
    except (subprocess.SubprocessError, OSError):
        return None
    by_id = {v: n for n, v in ids.items()}
    pos: dict[tuple[str, int], tuple[float, float]] = {}
    height = 0.0
    for line in out.splitlines():
        parts = line.split()
        if parts and parts[0] == "graph" and len(parts) >= 4:
            height = float(parts[3])
        elif parts and parts[0] == "node" and len(parts) >= 4 and parts[1] in by_id:
            pos[by_id[parts[1]]] = (float(parts[2]) * 72, (height - float(parts[3])) * 72)
    return pos if len(pos) == len(kg) else None


def layout(kg: nx.DiGraph) -> tuple[dict[tuple[str, int], tuple[float, float]], str]:
    """(top-left corner of each box in px, with the smallest at 0, what placed them:
    "graphviz dot" or "networkx multipartite_layout")."""
    if len(kg) == 0:
        return {}, "none"
    centres = _dot_positions(kg)
    how = "graphviz dot"
    if centres is None:
        rank = ranks(kg)
        rows = _rows(kg, rank)
        grid = nx.multipartite_layout(
            kg, subset_key={r: rows[r] for r in sorted(rows)}, align="horizontal"
        )
        # multipartite_layout spaces rows one unit apart and a row's nodes one unit apart,
        # then scales every coordinate alike: find the unit, and rows go down the page
        ys = sorted({round(float(y), 9) for _, y in grid.values()})
        xs = sorted({round(float(x), 9) for x, _ in grid.values()})
        unit = ys[1] - ys[0] if len(ys) > 1 else (xs[1] - xs[0] if len(xs) > 1 else 1.0)
        down = 1.0
        if len(rows) > 1 and grid[rows[min(rows)][0]][1] > grid[rows[max(rows)][0]][1]:
            down = -1.0
        centres = {
            n: (float(x) / unit * (BOX_W + GAP_X), down * float(y) / unit * (BOX_H + GAP_Y))
            for n, (x, y) in grid.items()
        }
        how = "networkx multipartite_layout"
    x0 = min(x for x, _ in centres.values()) - BOX_W / 2
    y0 = min(y for _, y in centres.values()) - BOX_H / 2
    return {
        n: (round(x - BOX_W / 2 - x0, 1), round(y - BOX_H / 2 - y0, 1))
        for n, (x, y) in centres.items()
    }, how
