"""`report()`: one self-contained HTML page showing what the compiler did.

The page holds the graph drawn as SVG (nodes coloured by kernel; laid out by Graphviz `dot`
when it is installed, else by a small layered layout written here), every kernel with its ops,
FLOPs, bytes, measured time and loop-nest IR, every fusion decision with its reason, the memory
plan and the time each pass took. No external files, scripts or fonts.
"""

from __future__ import annotations

import html
import os
import shutil
import subprocess
from typing import TYPE_CHECKING

import networkx as nx

if TYPE_CHECKING:
    from .runtime import CompiledFunction

PALETTE = [
    "#dbe9f6",
    "#fde2c8",
    "#d9f0d3",
    "#f6d5d5",
    "#e6dcf0",
    "#f0e6d2",
    "#d8eeee",
    "#f3dbea",
    "#e8e8c8",
    "#d0e0f0",
]
BOX_W, BOX_H, GAP_X, GAP_Y = 150, 34, 18, 36


def _layered_svg(compiled: CompiledFunction) -> str:
    """Layers = topological generations; boxes left to right in each layer."""
    g = compiled.graph
    layers = [sorted(layer) for layer in nx.topological_generations(g.nx)]
    pos: dict[int, tuple[float, float]] = {}
    width = max((len(layer) for layer in layers), default=1) * (BOX_W + GAP_X) + GAP_X
    for row, layer in enumerate(layers):
        offset = (width - len(layer) * (BOX_W + GAP_X)) / 2
        for col, nid in enumerate(layer):
            pos[nid] = (offset + col * (BOX_W + GAP_X) + GAP_X / 2, GAP_Y + row * (BOX_H + GAP_Y))
    height = len(layers) * (BOX_H + GAP_Y) + GAP_Y
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width:.0f}" height="{height:.0f}" '
        f'font-family="monospace" font-size="10">',
        '<defs><marker id="arrow" markerWidth="8" markerHeight="8" refX="8" refY="4" '
        'orient="auto"><path d="M0,0 L8,4 L0,8 z" fill="#777"/></marker></defs>',
    ]
    for src, dst in g.nx.edges():
        x1, y1 = pos[src]
        x2, y2 = pos[dst]
        parts.append(
            f'<line x1="{x1 + BOX_W / 2:.0f}" y1="{y1 + BOX_H:.0f}" '
            f'x2="{x2 + BOX_W / 2:.0f}" y2="{y2:.0f}" stroke="#999" '
            'marker-end="url(#arrow)"/>'
        )
    for nid, (x, y) in pos.items():
        d = g.node(nid)
        k = compiled.fusion.group_of.get(nid)
        fill = "#ffffff" if k is None else PALETTE[k % len(PALETTE)]
        label = d["name"] if g.is_leaf(nid) else d["op"]
        kernel = "" if k is None else f" k{k}"
        title = html.escape(f"{g.describe(nid)} {d['shape']} {d['dtype']}{kernel}")
        rx = 14 if g.is_leaf(nid) else 3
        parts.append(
            f'<g><title>{title}</title><rect x="{x:.0f}" y="{y:.0f}" width="{BOX_W}" '
            f'height="{BOX_H}" rx="{rx}" fill="{fill}" stroke="#555"/>'
            f'<text x="{x + 5:.0f}" y="{y + 14:.0f}">%{nid} '
            f"{html.escape(label[:16])}{kernel}</text>"
            f'<text x="{x + 5:.0f}" y="{y + 27:.0f}" fill="#555">'
            f"{html.escape(str(d['shape'])[:22])}</text></g>"
        )
    parts.append("</svg>")
    return "\n".join(parts)


def graph_svg(compiled: CompiledFunction) -> str:
    """The graph as SVG: Graphviz `dot` when present, else the built-in layered layout."""
    dot = shutil.which("dot")
    if dot:
        try:
            out = subprocess.run(
                [dot, "-Tsvg"],
                input=compiled.to_dot(),
                text=True,
                capture_output=True,
                timeout=60,
                check=True,
            ).stdout
            return out[out.find("<svg") :]
        except (subprocess.SubprocessError, OSError):
            pass
    return _layered_svg(compiled)


def write_report(compiled: CompiledFunction, path: str) -> str:
    kernels = []
    for k, kernel in enumerate(compiled.kernels):
        t = kernel.median_seconds
        timing = f"{t * 1e3:.3f} ms median over {len(kernel.seconds)} calls" if t else "not run"
        sources = "".join(
            f"<h4>{html.escape(name)}</h4><pre>{html.escape(src)}</pre>"
            for name, src in kernel.sources.items()
        )
        kernels.append(
            f'<details><summary style="background:{PALETTE[k % len(PALETTE)]}">'
            f"<b>{html.escape(kernel.name)}</b> — {html.escape(' → '.join(kernel.ops))} — "
            f"{kernel.flops:,} FLOPs, {kernel.bytes_read + kernel.bytes_written:,} bytes, "
            f"{timing}</summary><pre>{html.escape(kernel.pseudo_c())}</pre>{sources}"
            "</details>"
        )
    decisions = "".join(
        f"<tr><td>%{d.node}</td><td>{html.escape(d.op)}</td><td>k{d.group}</td>"
        f"<td>{'fused' if d.fused else 'new kernel'}</td><td>{html.escape(d.reason)}</td></tr>"
        for d in compiled.fusion.decisions
    )
    page = f"""<!doctype html>
<html><head><meta charset="utf-8"><title>tinygrad_edu compiler report</title>
<style>
body {{ font-family: system-ui, sans-serif; margin: 24px; max-width: 1400px; }}
pre {{ background: #f7f7f7; padding: 8px; overflow-x: auto; font-size: 12px; }}
table {{ border-collapse: collapse; font-size: 12px; }}
td, th {{ border: 1px solid #ddd; padding: 3px 6px; text-align: left; }}
summary {{ padding: 4px; cursor: pointer; font-size: 13px; }}
.graph {{ overflow: auto; border: 1px solid #ddd; max-height: 900px; }}
</style></head><body>
<h1>What the compiler did</h1>
<pre>{html.escape(compiled.summary())}</pre>
<h2>Graph ({len(compiled.graph)} nodes, colour = kernel)</h2>
<div class="graph">{graph_svg(compiled)}</div>
<h2>Kernels ({len(compiled.kernels)})</h2>
{"".join(kernels)}
<h2>Timing</h2><pre>{html.escape(compiled.timing_table())}</pre>
<h2>Fusion decisions</h2>
<table><tr><th>node</th><th>op</th><th>kernel</th><th>decision</th><th>reason</th></tr>
{decisions}</table>
<h2>Graph listing</h2><pre>{html.escape(str(compiled.graph))}</pre>
</body></html>
"""
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    tmp = path + ".tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        f.write(page)
    os.replace(tmp, path)
    return path
