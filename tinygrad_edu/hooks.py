"""Handles for registered hooks: `handle.remove()` takes the hook out again.

    handle = t.register_hook(lambda g: g * 2)      # tinygrad_edu.autograd.Node
    ...
    handle.remove()                                 # or: with t.register_hook(fn): ...

As PyTorch's `RemovableHandle`: each registration gets its own id, hooks run in registration
order, and removing a hook twice (or after the tensor is gone) does nothing.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from typing import Any

__all__ = ["RemovableHandle"]

_next_id = itertools.count()


class RemovableHandle:
    """Registers `hook` in `hooks` (an insertion-ordered dict) and removes it on `remove()`."""

    def __init__(self, hooks: dict[int, Callable[..., Any]], hook: Callable[..., Any]) -> None:
        self.id = next(_next_id)
        self._hooks = hooks  # the owner's dict, not the owner: no reference cycle
        hooks[self.id] = hook

    def remove(self) -> None:
        """Take the hook out; it is not called by later backward passes."""
        self._hooks.pop(self.id, None)

    def __enter__(self) -> RemovableHandle:
        return self

    def __exit__(self, *exc: object) -> None:
        self.remove()
