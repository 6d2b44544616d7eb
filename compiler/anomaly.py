"""Anomaly mode for compiled functions: the first kernel that makes a NaN or an infinity.

With `tinygrad_edu.set_detect_anomaly(True)` (or inside `tinygrad_edu.detect_anomaly()`), a
compiled call checks every kernel's outputs as it runs, on every backend. The first kernel
whose outputs hold a NaN or an infinity although all its inputs are finite raises an `OpError`
naming the kernel, the ops it fused, the op that first made the value (found by re-running the
kernel's ops with the op table's forwards on the same inputs), what that value is (a
parameter's gradient...), the parameters the kernel reads (its layer), the shapes and the
caller's line. Kernels fed a non-finite value are not blamed: the anomaly started earlier.
Off by default; when off, a call reads the flag once and checks nothing.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from tinygrad_edu.errors import op_error
from tinygrad_edu.ops import OPS

from .kernel import Kernel

if TYPE_CHECKING:
    from .runtime import CompiledFunction


def _host(value: Any) -> np.ndarray:
    return value.get() if hasattr(value, "get") else np.asarray(value)


def _finite(value: Any) -> bool:
    arr = _host(value)
    return arr.dtype.kind != "f" or bool(np.isfinite(arr).all())


def _what(value: Any) -> str:
    arr = _host(value)
    nan, inf = int(np.isnan(arr).sum()), int(np.isinf(arr).sum())
    parts = [f"{nan} NaN" if nan else "", f"{inf} inf" if inf else ""]
    return " and ".join(p for p in parts if p) + f" of {arr.size} values"


def check_kernel(
    compiled: CompiledFunction, group: Any, kernel: Kernel, env: dict[int, Any]
) -> None:
    """Raise if `kernel` (just run) wrote a non-finite value from finite inputs."""
    fusion = compiled.fusion
    outputs = [n for n in fusion.group_outputs(group) if n in env]
    bad = next((n for n in outputs if not _finite(env[n])), None)
    if bad is None:
        return
    inputs = fusion.group_inputs(group)
    if not all(_finite(env[n]) for n in inputs if n in env):
        return  # fed a NaN or inf: an earlier kernel (or the caller's data) made it
    raise _anomaly_error(compiled, group, kernel, env, bad, inputs)


def _first_bad_op(compiled: CompiledFunction, group: Any, env: dict[int, Any]) -> int | None:
    """The group's first op whose reference forward (on the kernel's inputs) is non-finite."""
    g = compiled.graph
    values = {n: _host(env[n]) for n in compiled.fusion.group_inputs(group) if n in env}
    for nid in group.nodes:
        d = g.node(nid)
        try:
            out = OPS[d["op"]].forward(np, *(values[o] for o in g.operands(nid)), **d["attrs"])
        except (KeyError, ValueError):  # an operand the kernel never had on the host
            return None
        values[nid] = np.asarray(out)
        if not _finite(values[nid]):
            return nid
    return None


def _label(compiled: CompiledFunction, nid: int) -> str:
    origin = compiled.graph.node(nid).get("origin")
    return compiled.traced.node(origin).get("label", "") if origin is not None else ""


def _feeds(compiled: CompiledFunction, nid: int, limit: int = 64) -> str:
    """The nearest labelled value `nid` flows into (a parameter's gradient), or ''."""
    g = compiled.graph
    queue, seen = [nid], {nid}
    while queue and len(seen) < limit:
        n = queue.pop(0)
        label = _label(compiled, n)
        if label:
            return label
        for c in g.consumers(n):
            if c not in seen:
                seen.add(c)
                queue.append(c)
    return ""


def _anomaly_error(
    compiled: CompiledFunction,
    group: Any,
    kernel: Kernel,
    env: dict[int, Any],
    bad: int,
    inputs: list[int],
) -> Exception:
    g = compiled.graph
    index = compiled.kernels.index(kernel)
    params = [g.node(n)["name"] for n in inputs if g.node(n)["op"] == "param"]
    layers = sorted({name.rsplit(".", 1)[0] for name in params})
    first = _first_bad_op(compiled, group, env)
    culprit = ""
    if first is not None:
        d = g.node(first)
        culprit = f"; {d['op']} (%{first}, shape {d['shape']}) made it first"
    feeds = _feeds(compiled, first if first is not None else bad)
    if feeds:
        culprit += f", on the way to {feeds}"
    read = f"; it reads parameters {params} (layers {layers})" if params else ""
    shapes = ", ".join(
        f"%{n} {tuple(_host(env[n]).shape)}" for n in inputs if n in env and not g.is_leaf(n)
    )
    leaves = ", ".join(
        f"{g.node(n)['name'] or g.node(n)['op']} {g.node(n)['shape']}"
        for n in inputs
        if g.is_leaf(n)
    )
    return op_error(
        f"kernel {index} {kernel.name}",
        f"wrote {_what(env[bad])} to %{bad} (shape {g.node(bad)['shape']}) from finite inputs "
        f"(anomaly mode, backend {compiled.backend}); the kernel fused {kernel.ops}"
        f"{culprit}{read}",
        f"inputs {', '.join(p for p in (shapes, leaves) if p)}",
        "look at what feeds these ops: a learning rate too high, a log, sqrt or division of "
        "zero, an overflow of exp; run the same step eagerly to see the values",
    )
