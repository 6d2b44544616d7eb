"""Anomaly mode, like `torch.autograd.detect_anomaly`: find the first op that makes a NaN or an
infinity out of finite numbers.

    with tinygrad_edu.detect_anomaly():
        loss = model(x).cross_entropy(y)
        loss.backward()

or `tinygrad_edu.set_detect_anomaly(True)` for the rest of the program. While it is on, every
eager op application (Tensor and Value) checks its result: an op whose forward gives a non-finite
value from finite inputs, or whose VJP gives a non-finite gradient from a finite upstream gradient
and finite forward values, raises an `OpError` naming the op, forward or backward, the shapes
and the user's line (for backward, also the line that ran the op's forward). Checking costs a
pass over every result, so it is off by default. The compiler's traced ops are not checked here.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np

from .errors import op_error, user_location

_enabled = False  # process-wide, as in PyTorch: worker threads see the same mode
_local = threading.local()  # per thread: inside a VJP, whose own ops are checked as a whole


def is_anomaly_enabled() -> bool:
    """Whether anomaly mode is on."""
    return _enabled


def set_detect_anomaly(mode: bool) -> None:
    """Turn anomaly mode on or off for the whole program."""
    global _enabled
    _enabled = bool(mode)


@contextlib.contextmanager
def detect_anomaly() -> Iterator[None]:
    """Context manager: anomaly mode inside the block, the previous mode after it."""
    previous = _enabled
    set_detect_anomaly(True)
    try:
        yield
    finally:
        set_detect_anomaly(previous)


def checking_forward() -> bool:
    """Whether op results must be checked now (on, and not inside a VJP being checked)."""
    return _enabled and not getattr(_local, "in_vjp", False)


def _finite(data: Any) -> bool:
    if isinstance(data, float):
        return data == data and abs(data) != float("inf")
    if not hasattr(data, "dtype") or data.dtype.kind not in "fc":
        return True  # ints and bools are always finite
    return bool(np.isfinite(data).all())


def _what(data: Any) -> str:
    values = np.asarray(data.get() if hasattr(data, "get") else data, dtype=np.float64)
    return "NaN" if np.isnan(values).any() else "an infinity"


def check_forward(op_name: str, inputs: Sequence[Any], out: Any) -> None:
    """Raise when `out` (a node) is not finite although every input is."""
    if _finite(out.data) or not all(_finite(i.data) for i in inputs):
        return
    raise op_error(
        op_name,
        f"forward produced {_what(out.data)} from finite inputs (anomaly mode)",
        ", ".join(str(i.shape) for i in inputs) + f" -> {out.shape}",
        "keep the inputs in the op's domain (log/sqrt of positives, no division by zero, "
        "no overflow in exp or pow)",
    )


@contextlib.contextmanager
def checked_vjp() -> Iterator[None]:
    """Run a VJP with the forward checks of its own ops off: its result is checked whole."""
    previous = getattr(_local, "in_vjp", False)
    _local.in_vjp = True
    try:
        yield
    finally:
        _local.in_vjp = previous


def forward_location() -> str:
    """Where an op ran, remembered on its node so a backward anomaly can point at it."""
    return user_location()


def check_backward(node: Any, grad: Any, input_grads: Sequence[Any]) -> None:
    """Raise when the VJP of `node` gave a non-finite gradient from finite values."""
    if not _finite(grad.data) or not _finite(node.data):
        return
    if not all(_finite(i.data) for i in node._inputs):
        return
    for k, g in enumerate(input_grads):
        if g is None or _finite(g.data):
            continue
        made_at = getattr(node, "_made_at", "") or "<unknown>"
        raise op_error(
            node.op_name,
            f"backward produced {_what(g.data)} in the gradient of input {k} from finite "
            f"values (anomaly mode; the forward ran at {made_at})",
            ", ".join(str(i.shape) for i in node._inputs) + f" -> {node.shape}",
            "keep the inputs away from the op's singular points (sqrt or log at 0, "
            "pow with a zero base), or clamp them first",
        )
