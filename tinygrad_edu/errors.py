"""Errors that name the op, the shapes, the fix, and the user's line that made the mistake."""

from __future__ import annotations

import os
import traceback

_PACKAGE_DIR = os.path.dirname(os.path.abspath(__file__))


class OpError(ValueError):
    """Bad input to a DSL op: wrong shapes, dtypes or parameters.

    A `ValueError`, so `except ValueError` catches it as users expect.
    """


class OpIndexError(OpError, IndexError):
    """An axis, dim or index out of range. Also an `IndexError`, as PyTorch raises there, so
    `except IndexError` code ported from PyTorch still catches it (and `except ValueError`
    or `except OpError` too)."""


def user_location() -> str:
    """'file.py:LINE' of the innermost stack frame outside the tinygrad_edu package."""
    for frame in reversed(traceback.extract_stack()):
        if not os.path.abspath(frame.filename).startswith(_PACKAGE_DIR):
            return f"{frame.filename}:{frame.lineno}"
    return "<unknown>"


def op_error(
    op: str, problem: str, shapes: object, fix: str, error: type[OpError] = OpError
) -> OpError:
    """Build the standard message: `op: problem (got shapes ...). Fix: ... [at file:line]`.
    `error` picks the class (`OpIndexError` where PyTorch raises an IndexError)."""
    return error(f"{op}: {problem} (got {shapes}). Fix: {fix} [at {user_location()}]")
