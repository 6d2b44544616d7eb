"""Training curves as a PNG, drawn by matplotlib (the Agg backend: no display needed).

Two panels side by side: loss per epoch (train, and test when given) and accuracy per epoch
in percent. Ticks are matplotlib's rounded ones (whole epochs only), each legend goes where it
covers the fewest points, and the file is written atomically (temp file, rename).
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Mapping, Sequence

import matplotlib

matplotlib.use("Agg")  # before pyplot: files only, no window

import matplotlib.pyplot as plt  # noqa: E402 (the backend must be chosen first)
from matplotlib.ticker import MaxNLocator, PercentFormatter  # noqa: E402

LABELS = {"train_loss": "train", "test_loss": "test", "test_acc": "test", "train_acc": "train"}


def _panel(ax: plt.Axes, series: Mapping[str, Sequence[float]], percent: bool) -> None:
    for name, values in series.items():
        epochs = range(1, len(values) + 1)
        ys = [100 * v for v in values] if percent else list(values)
        ax.plot(
            epochs, ys, marker="o" if len(ys) < 30 else None, ms=3, label=LABELS.get(name, name)
        )
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel("epoch")
    ax.grid(alpha=0.3)
    if percent:
        ax.yaxis.set_major_formatter(PercentFormatter(decimals=0))
    if series:
        ax.legend(loc="best", frameon=False)


def plot_curves(
    history: Mapping[str, Sequence[float]], path: str | os.PathLike[str], title: str = ""
) -> None:
    """Write loss and accuracy curves from `history` (keys ending in `loss` or `acc`) to PNG."""
    losses = {k: v for k, v in history.items() if k.endswith("loss") and len(v)}
    accs = {k: v for k, v in history.items() if k.endswith("acc") and len(v)}
    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 4), layout="constrained")
    try:
        _panel(left, losses, percent=False)
        left.set_title("loss (cross-entropy)")
        _panel(right, accs, percent=True)
        right.set_title("accuracy")
        if title:
            fig.suptitle(title)
        path = os.fspath(path)
        directory = os.path.dirname(os.path.abspath(path))
        fd, tmp = tempfile.mkstemp(dir=directory, prefix=".tmp-", suffix=".png")
        try:
            with os.fdopen(fd, "wb") as f:
                fig.savefig(f, format="png", dpi=100)
            os.replace(tmp, path)
        except BaseException:
            if os.path.exists(tmp):
                os.unlink(tmp)
            raise
    finally:
        plt.close(fig)
