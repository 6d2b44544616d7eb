"""PyTorch's `x.size()` next to numpy's `x.size`, on one attribute.

numpy code (and this project) reads `x.size` as the element count; PyTorch code calls
`x.size()` for the shape and `x.size(dim)` for one extent. `SizeAttr` is both: an `int` (the
element count) that is also callable with PyTorch's signature, so neither habit breaks.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from .errors import OpIndexError, op_error


def is_int(value: Any) -> bool:
    """A whole number for a dim, size or count: a Python or numpy int, not a bool."""
    return isinstance(value, (int, np.integer)) and not isinstance(value, bool)


class Size(tuple):
    """A shape: a tuple of ints, as `torch.Size` is (`x.size()` returns one)."""

    def numel(self) -> int:
        """The number of elements a tensor of this shape has."""
        return math.prod(self)

    def __repr__(self) -> str:
        return f"Size({list(self)})"


class SizeAttr(int):
    """`x.size`: the element count, callable as `x.size()` (the shape, a `Size`) or
    `x.size(dim)` (one extent, negative dims counted from the end)."""

    _shape: tuple[int, ...]

    def __new__(cls, shape: tuple[int, ...]) -> SizeAttr:
        obj = super().__new__(cls, math.prod(shape))
        obj._shape = tuple(shape)
        return obj

    def __call__(self, dim: Any = None) -> Any:
        if dim is None:
            return Size(self._shape)
        n = len(self._shape)
        if not isinstance(dim, int) or isinstance(dim, bool):
            raise op_error("size", f"dim must be an int, got {dim!r}", self._shape, "pass an int")
        if n == 0 or not -n <= dim < n:
            raise op_error(
                "size",
                f"dim {dim} is out of range for a {n}-D tensor",
                self._shape,
                f"use a dim in [-{n}, {n - 1}]" if n else "a 0-d tensor has no dims: use size()",
                OpIndexError,
            )
        return self._shape[dim]
