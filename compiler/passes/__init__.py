"""Graph passes, each a pure function: verify, autodiff, simplify, fuse, plan_memory."""

from .autodiff import UpdateRule, autodiff
from .fuse import Decision, Fusion, Group, fuse
from .memory import MemoryPlan, plan_memory
from .simplify import simplify
from .verify import GraphError, verify

__all__ = [
    "Decision", "Fusion", "GraphError", "Group", "MemoryPlan", "UpdateRule", "autodiff", "fuse",
    "plan_memory", "simplify", "verify",
]  # fmt: skip
