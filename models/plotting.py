"""Training curves as a PNG, drawn with Pillow (no plotting library needed).

Two panels side by side: loss per epoch (train, and test when given) and accuracy per epoch,
each with axis ticks and a legend.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence

from PIL import Image, ImageDraw

COLORS = [(31, 119, 180), (255, 127, 14), (44, 160, 44), (214, 39, 40)]


def _nice_range(values: Sequence[float]) -> tuple[float, float]:
    lo, hi = min(values), max(values)
    if hi - lo < 1e-12:
        lo, hi = lo - 0.5, hi + 0.5
    pad = 0.05 * (hi - lo)
    return lo - pad, hi + pad


def _panel(
    draw: ImageDraw.ImageDraw,
    box: tuple[int, int, int, int],
    title: str,
    series: Mapping[str, Sequence[float]],
) -> None:
    x0, y0, x1, y1 = box
    draw.rectangle(box, outline=(0, 0, 0))
    draw.text((x0, y0 - 16), title, fill=(0, 0, 0))
    points = [v for s in series.values() for v in s]
    if not points:
        return
    lo, hi = _nice_range(points)
    n = max(len(s) for s in series.values())
    for i in range(5):  # y ticks
        v = lo + (hi - lo) * i / 4
        y = y1 - (y1 - y0) * i / 4
        draw.line([(x0 - 4, y), (x0, y)], fill=(0, 0, 0))
        draw.text((x0 - 48, y - 6), f"{v:.3g}", fill=(0, 0, 0))
    for i in range(n):  # x ticks at each epoch (thinned to about 10 labels)
        if n > 10 and (i + 1) % max(1, n // 10):
            continue
        x = x0 + (x1 - x0) * (i / max(n - 1, 1))
        draw.line([(x, y1), (x, y1 + 4)], fill=(0, 0, 0))
        draw.text((x - 4, y1 + 6), str(i + 1), fill=(0, 0, 0))
    draw.text(((x0 + x1) // 2 - 16, y1 + 20), "epoch", fill=(0, 0, 0))
    for k, (name, values) in enumerate(series.items()):
        color = COLORS[k % len(COLORS)]
        xy = [
            (x0 + (x1 - x0) * (i / max(n - 1, 1)), y1 - (y1 - y0) * (v - lo) / (hi - lo))
            for i, v in enumerate(values)
        ]
        if len(xy) > 1:
            draw.line(xy, fill=color, width=2)
        for x, y in xy:
            draw.ellipse([x - 2, y - 2, x + 2, y + 2], fill=color)
        draw.line([(x1 - 110, y0 + 12 + 14 * k), (x1 - 90, y0 + 12 + 14 * k)], fill=color, width=2)
        draw.text((x1 - 85, y0 + 6 + 14 * k), name, fill=(0, 0, 0))


def plot_curves(
    history: Mapping[str, Sequence[float]], path: str | os.PathLike[str], title: str = ""
) -> None:
    """Write loss and accuracy curves from `history` (keys ending in `loss` or `acc`) to PNG."""
    losses = {k: v for k, v in history.items() if k.endswith("loss") and len(v)}
    accs = {k: v for k, v in history.items() if k.endswith("acc") and len(v)}
    img = Image.new("RGB", (1000, 420), "white")
    draw = ImageDraw.Draw(img)
    if title:
        draw.text((20, 8), title, fill=(0, 0, 0))
    _panel(draw, (70, 50, 470, 360), "loss", losses)
    _panel(draw, (570, 50, 970, 360), "accuracy", accs)
    tmp = os.fspath(path) + ".tmp.png"
    img.save(tmp)
    os.replace(tmp, path)
