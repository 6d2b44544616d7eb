"""State a compiled program reads and updates: parameters, buffers, optimizer state.

A compiled call reads each piece of state live (a `Slot`'s `read`, bound as a graph input) and
returns its new value as a graph output of the same meaning, which `write_back` puts where the
state lives: by swapping arrays (the new array becomes the state, the old one is handed back
to the backend to be written next call: no copy) where that is safe, else by copying in place.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np


@dataclass(frozen=True)
class Slot:
    """Where one array of state lives: `read()` returns the current array (None when it does
    not exist yet), `write(a)` makes `a` the state (a parameter's `.data`, an optimizer's
    `state[i][key]`, ...)."""

    read: Callable[[], Any]
    write: Callable[[Any], None]


def write_back(
    slot: Slot, value: Any, swap: bool, recycle: Callable[[np.ndarray], None] | None = None
) -> None:
    """Make `value` the slot's state. With `swap`, a new host array of the same layout
    replaces the old one, which `recycle` hands back to the backend; otherwise (or when the
    old array is a view, read-only, Fortran-ordered, on a device...) the old array is
    written in place, so every reference to it sees the update."""
    old = slot.read()
    if old is None:  # state not created yet (an optimizer before its first step)
        slot.write(value.get() if hasattr(value, "get") else np.array(value, copy=True))
        return
    if (
        swap
        and type(value) is np.ndarray
        and value is not old
        and _recyclable(old)
        and value.shape == old.shape
        and value.dtype == old.dtype
        and value.flags.c_contiguous
    ):
        slot.write(value)
        if recycle is not None:
            recycle(old)
    elif isinstance(old, np.ndarray):
        old[...] = value.get() if hasattr(value, "get") else value  # device -> host
    else:
        old[...] = value  # device arrays are updated in place


def _recyclable(old: Any) -> bool:
    """An array the compiled step may write its next output into: a plain, C-ordered,
    writeable array that owns its memory (not a view, memory map or Fortran-ordered copy)."""
    if type(old) is not np.ndarray or old.base is not None:
        return False
    flags = old.flags  # one flags object, not one per test
    return flags.c_contiguous and flags.writeable
