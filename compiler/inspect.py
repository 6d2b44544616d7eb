"""`report()`: one self-contained HTML page showing what the compiler did.

The page opens on the kernel graph (`compiler.kernel_graph`): one box per kernel, labelled
with the layer it computes, its ops and its share of the call's time, coloured by phase
(forward, loss, backward, update), the slowest outlined in red; edges are the buffers between
kernels with their shapes and bytes. It pans and zooms (drag, wheel), fits the window, finds
kernels by layer, op or name, and a click (or zooming in on a kernel) opens that kernel's op
graph, figures and IR in a side panel. Below: the timing table (warm medians, slowest first,
% of the machine's peak), every kernel's loop-nest IR and backend sources, every fusion decision
with its reason, the memory plan, the time each pass took and the graph listing.

No external files, scripts or fonts: the viewer's few lines of JavaScript and CSS
(`report.js`, `report.css`, written for this page) are inlined, and the backend sources
(LLVM IR, assembly: megabytes for AlexNet) are stored deflated, inflated by the browser when
opened, so the paper AlexNet training step's page stays under 3 MB.
"""

from __future__ import annotations

import base64
import html
import os
import zlib
from pathlib import Path
from typing import TYPE_CHECKING

import networkx as nx

from .kernel import Kernel
from .kernel_graph import BOX_H, BOX_W, GAP_Y, PHASES, kernel_graph, layout
from .roofline import Machine
from .timing import HIGHLIGHT, KernelTime, calls_described, kernel_times, layer_times
from .units import plural, si
from .units import seconds as format_seconds

if TYPE_CHECKING:
    from .runtime import CompiledFunction

PHASE_COLORS = {
    "forward": "#dbe9f6",
    "loss": "#e6dcf0",
    "backward": "#fde2c8",
    "update": "#d9f0d3",
}
MARGIN = 110  # px left of the graph for the phase labels
HERE = Path(__file__).parent


def _esc(text: object) -> str:
    return html.escape(str(text), quote=True)


def _shape(shape: tuple[int, ...]) -> str:
    return "×".join(map(str, shape)) or "scalar"


def _ops_text(k: Kernel, limit: int = 34) -> str:
    text = " · ".join(dict.fromkeys(k.ops))
    return text if len(text) <= limit else text[: limit - 1] + "…"


# -- the kernel graph -------------------------------------------------------------------------
def _edge_svg(kg: nx.DiGraph, pos: dict, a: tuple, b: tuple, lane: int, side: set) -> str:
    """A buffer between two boxes: a curve from the bottom of one to the top of the next;
    one that passes other rows (a forward activation the backward pass reads) leaves by the
    side and runs down a lane beside the boxes, so it crosses none of them."""
    (x1, y1), (x2, y2) = pos[a], pos[b]
    flows = kg.edges[a, b]["flows"]
    first = flows[0]
    label = f"{_shape(first.shape)} · {si(first.nbytes, 'B')}"
    if len(flows) > 1:
        label += f" (+{len(flows) - 1})"
    title = "\n".join(f"%{f.node}: {_shape(f.shape)}, {si(f.nbytes, 'B')}" for f in flows)
    if y2 - y1 <= BOX_H + GAP_Y + 1:  # the next row
        sx, sy = x1 + BOX_W / 2 + MARGIN, y1 + BOX_H
        ex, ey = x2 + BOX_W / 2 + MARGIN, y2
        bend = max(16.0, (ey - sy) / 2)
        d = (
            f"M{sx:.0f},{sy:.0f} C{sx:.0f},{sy + bend:.0f} {ex:.0f},{ey - bend:.0f} "
            f"{ex:.0f},{ey:.0f}"
        )
        # fanned-out labels go by their reader, fanned-in ones by their writer: apart
        near_reader = kg.out_degree(a) > 1
        lx, ly = (ex + 4, ey - 6) if near_reader else (sx + 4, sy + 12)
    else:
        right = max(x1, x2) + BOX_W + MARGIN
        x = right + 14 + 5 * (lane % 6)
        sx, sy = x1 + BOX_W + MARGIN, y1 + BOX_H / 2
        ex, ey = x2 + BOX_W + MARGIN, y2 + BOX_H / 2
        d = (
            f"M{sx:.0f},{sy:.0f} L{x - 8:.0f},{sy:.0f} Q{x:.0f},{sy:.0f} {x:.0f},{sy + 8:.0f} "
            f"L{x:.0f},{ey - 8:.0f} Q{x:.0f},{ey:.0f} {x - 8:.0f},{ey:.0f} L{ex:.0f},{ey:.0f}"
        )
        lx, ly = sx + 4, sy - 4
        if a in side:  # one label where several side edges leave a box (they would overlap)
            label = ""
        side.add(a)
    text = f'<text x="{lx:.0f}" y="{ly:.0f}">{_esc(label)}</text>' if label else ""
    return (
        f'<g class="edge"><title>{_esc(title)}</title><path d="{d}" marker-end="url(#arrow)"/>'
        f"{text}</g>"
    )


def _kernel_svg(
    k: Kernel, index: int, x: float, y: float, row: KernelTime | None, top: bool
) -> str:
    x += MARGIN
    layer = k.layer or "(model)"
    share = f"{row.share:.1%} · {format_seconds(row.seconds)}" if row else "not run"
    tag = {"backward": " ∂", "update": " ↻"}.get(k.phase, "")
    search = " ".join([k.name, f"k{index}", layer, *k.layers, *k.ops, k.phase]).lower()
    bar = ""
    if row is not None:
        bar = (
            f'<rect x="{x:.0f}" y="{y + BOX_H - 5:.0f}" width="{BOX_W * row.share:.1f}" '
            'height="5" fill="#c0392b"/>'
        )
    title = f"{k.name}\nlayers: {', '.join(k.layers) or '-'}\n{' → '.join(k.ops)}\n{share}"
    return (
        f'<g class="kernel{" top" if top else ""}" data-k="{index}" data-x="{x + BOX_W / 2:.0f}" '
        f'data-y="{y + BOX_H / 2:.0f}" data-search="{_esc(search)}"><title>{_esc(title)}</title>'
        f'<rect class="box" x="{x:.0f}" y="{y:.0f}" width="{BOX_W}" height="{BOX_H}" rx="5" '
        f'fill="{PHASE_COLORS.get(k.phase, "#eee")}"/>{bar}'
        f'<text class="name" x="{x + 7:.0f}" y="{y + 17:.0f}">k{index} {_esc(layer[:20])}'
        f"{tag}</text>"
        f'<text class="ops" x="{x + 7:.0f}" y="{y + 33:.0f}">{_esc(_ops_text(k))}</text>'
        f'<text class="time" x="{x + 7:.0f}" y="{y + 48:.0f}">{_esc(share)}</text></g>'
    )


def kernel_graph_svg(
    compiled: CompiledFunction, times: dict[int, KernelTime]
) -> tuple[str, str, tuple[float, float]]:
    """(SVG of the kernel graph, what laid it out, its (width, height) in px)."""
    kg = kernel_graph(compiled)
    pos, how = layout(kg)
    width = max((x for x, _ in pos.values()), default=0) + BOX_W + MARGIN + 60
    height = max((y for _, y in pos.values()), default=0) + BOX_H + 20
    slowest = sorted(times.values(), key=lambda r: -r.seconds)[:HIGHLIGHT]
    top = {r.index for r in slowest} if len(times) > 1 else set()
    parts = [
        f'<svg id="graph" xmlns="http://www.w3.org/2000/svg" data-width="{width:.0f}" '
        f'data-height="{height:.0f}">',
        '<defs><marker id="arrow" markerWidth="8" markerHeight="8" refX="7" refY="4" '
        'orient="auto"><path d="M0,0 L8,4 L0,8 z" fill="#8a8a8a"/></marker></defs>',
        '<g id="viewport">',
    ]
    # phase bands: a rule and a label where each phase's first kernel row begins
    starts: dict[str, tuple[float, float]] = {}  # phase -> (y, x) of its first box
    for n, (x, y) in pos.items():
        phase = kg.nodes[n]["phase"]
        if phase in PHASES and phase != "update":
            starts[phase] = min(starts.get(phase, (y, x)), (y, x))
    row_left: dict[float, float] = {}
    for x, y in pos.values():
        row_left[y] = min(row_left.get(y, x), x)
    for phase, (y, _) in sorted(starts.items(), key=lambda kv: kv[1]):
        x = row_left[y]
        parts.append(  # left of the row where the phase begins: on screen wherever that is
            f'<g class="phase"><line x1="0" y1="{y - 12:.0f}" x2="{width:.0f}" '
            f'y2="{y - 12:.0f}"/><text x="{x + MARGIN - 12:.0f}" y="{y + 18:.0f}" '
            f'text-anchor="end">{phase}</text></g>'
        )
    side: set[tuple[str, int]] = set()
    parts += [_edge_svg(kg, pos, a, b, lane, side) for lane, (a, b) in enumerate(kg.edges)]
    for n, (x, y) in pos.items():
        d = kg.nodes[n]
        if n[0] == "in":
            parts.append(
                f'<g class="input"><title>input {_esc(d["name"])} {_shape(d["shape"])}</title>'
                f'<rect x="{x + MARGIN:.0f}" y="{y + 10:.0f}" width="{BOX_W}" '
                f'height="{BOX_H - 20}" rx="16"/><text x="{x + MARGIN + 12:.0f}" '
                f'y="{y + BOX_H / 2 + 4:.0f}" font-size="12">input {_esc(d["name"])}: '
                f"{_esc(_shape(d['shape']))}</text></g>"
            )
        else:
            i = d["index"]
            parts.append(_kernel_svg(d["kernel"], i, x, y, times.get(i), i in top))
    parts += ["</g></svg>"]
    return "\n".join(parts), how, (width, height)


# -- one kernel's op graph --------------------------------------------------------------------
OP_W, OP_H, OP_GX, OP_GY = 150, 36, 14, 30


def op_graph_svg(compiled: CompiledFunction, index: int) -> str:
    """The ops of kernel `index` and the buffers it reads, top to bottom (networkx layers)."""
    g = compiled.graph
    group = compiled.fusion.groups[index]
    members = set(group.nodes)
    sub = nx.DiGraph()
    for n in group.nodes:
        sub.add_node(n)
        for o in g.operands(n):
            sub.add_edge(o, n)
    rows = [sorted(r) for r in nx.topological_generations(sub)]
    pos: dict[int, tuple[float, float]] = {}
    widest = max(len(r) for r in rows)
    width = widest * (OP_W + OP_GX) + OP_GX
    for r, row in enumerate(rows):
        left = (width - len(row) * (OP_W + OP_GX)) / 2
        for c, n in enumerate(row):
            pos[n] = (left + c * (OP_W + OP_GX) + OP_GX / 2, OP_GY / 2 + r * (OP_H + OP_GY))
    height = len(rows) * (OP_H + OP_GY)
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width:.0f} {height:.0f}" '
        'font-family="system-ui, sans-serif" font-size="11">'
    ]
    for a, b in sub.edges:
        (x1, y1), (x2, y2) = pos[a], pos[b]
        parts.append(
            f'<line x1="{x1 + OP_W / 2:.0f}" y1="{y1 + OP_H:.0f}" x2="{x2 + OP_W / 2:.0f}" '
            f'y2="{y2:.0f}" stroke="#999" marker-end="url(#arrow)"/>'
        )
    for n, (x, y) in pos.items():
        d = g.node(n)
        inside = n in members
        producer = compiled.fusion.group_of.get(n)
        label = d["op"] if inside else (d["name"] or f"from k{producer}")
        fill = PHASE_COLORS.get(g.phase(n), "#eee") if inside else "#fff"
        title = f"{g.describe(n)} {d['shape']} {d['dtype']}  layer {g.layer(n) or '-'}"
        parts.append(
            f'<g><title>{_esc(title)}</title><rect x="{x:.0f}" y="{y:.0f}" '
            f'width="{OP_W}" height="{OP_H}" rx="{3 if inside else 14}" fill="{fill}" '
            f'stroke="#666"/><text x="{x + 6:.0f}" y="{y + 15:.0f}">%{n} '
            f"{_esc(label[:18])}</text>"
            f'<text x="{x + 6:.0f}" y="{y + 29:.0f}" fill="#555">{_esc(_shape(d["shape"]))}'
            "</text></g>"
        )
    parts.append("</svg>")
    return "".join(parts)


def _kernel_template(
    compiled: CompiledFunction, index: int, row: KernelTime | None, machine: Machine | None
) -> str:
    k = compiled.kernels[index]
    facts = [
        ("layer", k.layer or "(model)"),
        ("layers", ", ".join(k.layers) or "-"),
        ("phase", k.phase),
        ("ops", " → ".join(k.ops)),
        ("work", f"{si(k.flops, 'FLOP')}, {si(k.bytes_read + k.bytes_written, 'B')} moved"),
    ]
    if row is not None:
        facts.append(("time", f"{format_seconds(row.seconds)} ({row.share:.1%} of the call)"))
        facts.append(("rate", f"{row.gflop_per_s:.2f} GFLOP/s, {row.gbyte_per_s:.2f} GB/s"))
        if row.peak_pct is not None:
            facts.append(("% peak", f"{row.peak_pct:.1f}% ({row.bound}-bound)"))
    reads = [f"{b.label or b.name} {_shape(b.shape)}" for b in k.inputs]
    facts.append(("reads", ", ".join(reads) or "-"))
    rows = "".join(f"<tr><th>{_esc(a)}</th><td>{_esc(b)}</td></tr>" for a, b in facts)
    return (
        f'<template id="kt-{index}"><h2>{_esc(k.name)}</h2><table>{rows}</table>'
        f"<h3>op graph</h3>{op_graph_svg(compiled, index)}"
        f'<p><a href="#kd-{index}" data-open="kd-{index}">loop nest and sources below</a></p>'
        f"<pre>{_esc(k.pseudo_c())}</pre></template>"
    )


# -- tables -----------------------------------------------------------------------------------
def _timing_html(
    compiled: CompiledFunction, rows: list[KernelTime], machine: Machine | None
) -> str:
    if not rows:
        return "<p>Not run: call the compiled function (or `profile()` it) first.</p>"
    head = (
        "<tr><th>kernel</th><th>layer</th><th>phase</th><th class=num>time</th>"
        "<th class=num>share</th><th class=num>GFLOP/s</th><th class=num>GB/s</th>"
        + ("<th class=num>% peak</th><th>bound</th>" if machine else "")
        + "</tr>"
    )
    body = []
    for n, r in enumerate(rows):
        k = r.kernel
        peak = ""
        if machine is not None:
            pct = "" if r.peak_pct is None else f"{r.peak_pct:.1f}%"
            peak = f"<td class=num>{pct}</td><td>{r.bound}</td>"
        body.append(
            f'<tr class="{"top" if n < HIGHLIGHT and len(rows) > 1 else ""}">'
            f'<td><a href="#kd-{r.index}" data-open="kd-{r.index}">{_esc(k.name)}</a></td>'
            f'<td>{_esc(k.layer or "-")}</td><td class="phase-{k.phase}">{k.phase}</td>'
            f"<td class=num>{format_seconds(r.seconds)}</td><td class=num>{r.share:.1%}</td>"
            f"<td class=num>{r.gflop_per_s:.2f}</td><td class=num>{r.gbyte_per_s:.2f}</td>"
            f"{peak}</tr>"
        )
    layers = "".join(
        f"<tr><td>{_esc(layer)}</td><td class=num>{format_seconds(t)}</td>"
        f"<td class=num>{share:.1%}</td><td class=num>{n}</td></tr>"
        for layer, t, share, n in layer_times(rows)
    )
    by_layer = (
        "<h3>By layer (forward, backward and update together)</h3><table><tr><th>layer</th>"
        f"<th class=num>time</th><th class=num>share</th><th class=num>kernels</th></tr>"
        f"{layers}</table>"
    )
    total = sum(r.seconds for r in rows)
    note = (
        f"<p>{format_seconds(total)} per call, {calls_described(compiled)}; the "
        f"{min(HIGHLIGHT, len(rows))} slowest kernels highlighted."
    )
    if machine is not None:
        note += (
            f" % peak: the kernel's roofline floor (its FLOPs at "
            f"{machine.flops_per_s / 1e9:.0f} GFLOP/s or its bytes at "
            f"{machine.bytes_per_s / 1e9:.1f} GB/s, whichever takes longer; {machine.name}) "
            "over its measured time; above 100%: its data sat in a cache."
        )
    return f"<table>{head}{''.join(body)}</table>{note}</p>{by_layer}"


def _deflated(name: str, text: str) -> str:
    data = base64.b64encode(zlib.compress(text.encode(), 9)).decode()
    return (
        f'<details data-z="{data}"><summary>{_esc(name)} ({si(len(text), "B")})</summary>'
        "<pre>inflating…</pre></details>"
    )


def _kernel_details(compiled: CompiledFunction, index: int, row: KernelTime | None) -> str:
    k = compiled.kernels[index]
    timing = (
        f"{format_seconds(row.seconds)}, {row.share:.1%} ({calls_described(compiled)})"
        if row
        else "not run"
    )
    # the IR renders in milliseconds; assembly not yet made would cost an -O3 compile per
    # kernel here, at the end of every compiled training run: it is listed when at hand
    shown = [n for n in k.sources if n != "asm" or k.sources.ready(n)]
    sources = "".join(_deflated(name, k.sources[name]) for name in shown)
    if "asm" in k.sources and "asm" not in shown:
        sources += (
            "<p>assembly: made when first read (<code>kernel.asm</code>, <code>DEBUG=5</code>);"
            " a report written after that shows it</p>"
        )
    return (
        f'<details id="kd-{index}"><summary class="phase-{k.phase}"><b>{_esc(k.name)}</b> — '
        f"{_esc(k.layer or '-')} — {_esc(' → '.join(k.ops))} — {si(k.flops, 'FLOP')}, "
        f"{si(k.bytes_read + k.bytes_written, 'B')} — {timing}</summary>"
        f"<pre>{_esc(k.pseudo_c())}</pre>{sources}</details>"
    )


def write_report(compiled: CompiledFunction, path: str, machine: Machine | None = None) -> str:
    """Write the page (see the module docstring) atomically; return `path`. `machine`: the
    peak figures for the timing table's % of peak (`compiler.roofline.machine_for`)."""
    rows = kernel_times(compiled, machine)
    times = {r.index: r for r in rows}
    svg, how, _ = kernel_graph_svg(compiled, times)
    templates = "".join(
        _kernel_template(compiled, i, times.get(i), machine) for i in range(len(compiled.kernels))
    )
    details = "".join(
        _kernel_details(compiled, i, times.get(i)) for i in range(len(compiled.kernels))
    )
    decisions = "".join(
        f"<tr><td>%{d.node}</td><td>{_esc(d.op)}</td><td>k{d.group}</td>"
        f"<td>{'fused' if d.fused else 'new kernel'}</td><td>{_esc(d.reason)}</td></tr>"
        for d in compiled.fusion.decisions
    )
    total = sum(r.seconds for r in rows)
    facts = f"{plural(len(compiled.kernels), 'kernel')}, backend {compiled.backend}"
    if rows:
        facts += f", {format_seconds(total)} per call ({calls_described(compiled)})"
    legend = "".join(
        f'<span><i style="background:{c}"></i>{p}</span>' for p, c in PHASE_COLORS.items()
    )
    css = (HERE / "report.css").read_text()
    js = (HERE / "report.js").read_text()
    page = f"""<!doctype html>
<html><head><meta charset="utf-8"><title>tinygrad_edu compiler report</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<style>{css}</style></head><body>
<div id="screen"><header><h1>What the compiler did</h1><span class="facts">{_esc(facts)}</span>
<span id="legend">{legend}<span><i style="border:3px solid #c0392b"></i>slowest</span></span>
<span id="toolbar"><input id="search" type="search" placeholder="find layer, op or kernel"
 title="Enter jumps to the next match"><span id="count"></span>
<button id="fit-width">fit width</button><button id="fit-all">whole graph</button>
<button id="zoom-in">+</button><button id="zoom-out">−</button></span></header>
<div id="viewer">{svg}<div id="panel"></div>
<div id="hint">kernel graph ({_esc(how)}): drag to pan, wheel to zoom, click a kernel for
 its op graph; red bar = share of the call's time</div></div></div>
<main>
<h2>Summary</h2><pre>{_esc(compiled.summary())}</pre>
<h2>Timing (slowest first)</h2>{_timing_html(compiled, rows, machine)}
<h2>Kernels ({len(compiled.kernels)})</h2>{details}
<h2>Fusion decisions</h2>
<table><tr><th>node</th><th>op</th><th>kernel</th><th>decision</th><th>reason</th></tr>
{decisions}</table>
<h2>Graph listing</h2><pre>{_esc(str(compiled.graph))}</pre>
</main>{templates}
<script>{js}</script>
</body></html>
"""
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    tmp = os.path.join(directory, f".{os.path.basename(path)}.{os.getpid()}.tmp")
    try:
        with open(tmp, "w", encoding="utf-8") as f:
            f.write(page)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)
    return path
