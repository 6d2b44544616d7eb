"""The numpy backend: the reference every other backend is tested against.

Each kernel evaluates its group's ops with the op table's own array-module-generic forwards
(the definitions eager mode uses), in the group's order. Backends are leaves: the runtime
picks an executor, and no backend imports the runtime (the LLVM and CUDA executors build on
this one and fall back to `run_ops` for kernels they leave to the op table).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from tinygrad_edu.ops import OPS

from ..graph import Graph
from ..kernel import Kernel


def run_ops(xp: Any, g: Graph, nodes: list[int], env: dict[int, Any]) -> None:
    """Evaluate nodes in order with the op table's array-module-generic forwards, each
    result in its node's dtype (as eager mode keeps float32 results float32 where numpy
    would promote, e.g. int / int)."""
    for nid in nodes:
        d = g.node(nid)
        out = OPS[d["op"]].forward(xp, *(env[o] for o in g.operands(nid)), **d["attrs"])
        env[nid] = out if out.dtype == d["dtype"] else out.astype(d["dtype"])


class NumpyExecutor:
    """The reference: each kernel runs its group's ops with the op table's forwards."""

    xp = np

    @staticmethod
    def to_device(value: Any) -> Any:
        return value

    @staticmethod
    def to_host(value: Any) -> Any:
        return value

    @staticmethod
    def run_group(g: Graph, group: Any, kernel: Kernel, env: dict[int, Any]) -> None:
        run_ops(np, g, group.nodes, env)
