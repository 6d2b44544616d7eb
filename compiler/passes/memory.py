"""plan_memory: reuse intermediate buffers once their last reader has run.

Kernels run in the fusion's order. A kernel's outputs that the graph does not return are
intermediates: each is assigned a buffer, reusing the smallest free buffer large enough
(best fit), and its buffer is freed after the last kernel that reads it. The plan reports the
peak bytes of live intermediates versus giving every intermediate its own buffer.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ..units import plural, si
from .fuse import Fusion


@dataclass
class MemoryPlan:
    buffer_of: dict[int, int] = field(default_factory=dict)  # node id -> buffer index
    buffer_bytes: list[int] = field(default_factory=list)
    last_use: dict[int, int] = field(default_factory=dict)  # node id -> kernel index
    planned_bytes: int = 0  # sum of the reused buffers' sizes
    unplanned_bytes: int = 0  # one buffer per intermediate
    peak_live_bytes: int = 0

    def summary(self) -> str:
        if not self.buffer_of:
            return "memory plan: no intermediates (every value is an input or an output)"
        saved = 1 - self.planned_bytes / max(self.unplanned_bytes, 1)
        return (
            f"memory plan: {plural(len(self.buffer_of), 'intermediate')} in "
            f"{plural(len(self.buffer_bytes), 'buffer')}, {si(self.planned_bytes, 'B')} planned "
            f"vs {si(self.unplanned_bytes, 'B')} unplanned ({saved:.0%} saved); peak live "
            f"{si(self.peak_live_bytes, 'B')}"
        )


def _nbytes(fusion: Fusion, nid: int) -> int:
    d = fusion.graph.node(nid)
    return int(np.prod(d["shape"])) * d["dtype"].itemsize


def plan_memory(fusion: Fusion) -> MemoryPlan:
    g = fusion.graph
    plan = MemoryPlan()
    produced_by: dict[int, int] = {}
    for k, group in enumerate(fusion.groups):
        for n in fusion.group_outputs(group):
            produced_by[n] = k
        for n in fusion.group_inputs(group):
            plan.last_use[n] = k
    free: list[int] = []
    live = 0
    for k, group in enumerate(fusion.groups):
        for n in fusion.group_outputs(group):
            if n in g.outputs:
                continue
            size = _nbytes(fusion, n)
            plan.unplanned_bytes += size
            fits = [b for b in free if plan.buffer_bytes[b] >= size]
            if fits:
                b = min(fits, key=lambda i: plan.buffer_bytes[i])
                free.remove(b)
            else:
                b = len(plan.buffer_bytes)
                plan.buffer_bytes.append(size)
            plan.buffer_of[n] = b
            live += size
        plan.peak_live_bytes = max(plan.peak_live_bytes, live)
        for n, last in plan.last_use.items():
            if last == k and n in plan.buffer_of:
                free.append(plan.buffer_of[n])
                live -= _nbytes(fusion, n)
    plan.planned_bytes = sum(plan.buffer_bytes)
    return plan
