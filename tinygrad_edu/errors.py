"""Errors that name the op, the shapes, the fix, and the user's line that made the mistake."""

from __future__ import annotations

import os
import traceback

_PACKAGE_DIR = os.path.dirname(os.path.abspath(__file__))
# The project's own packages: a mistake made through a model or a compiled function is still
# the caller's, so their frames are skipped too when looking for the user's line.
_PROJECT_DIRS = tuple(
    os.path.join(os.path.dirname(_PACKAGE_DIR), name) + os.sep
    for name in ("tinygrad_edu", "compiler", "models")
)


class OpError(ValueError, RuntimeError):
    """Bad input to a DSL op: wrong shapes, dtypes or parameters.

    A `ValueError`, so `except ValueError` catches it as users expect, and a
    `RuntimeError`, which PyTorch raises for the same mistakes (a matmul of mismatched
    shapes, a bad permutation), so `except RuntimeError` code ported from PyTorch catches it.
    """


class OpIndexError(OpError, IndexError):
    """An axis, dim or index out of range. Also an `IndexError`, as PyTorch raises there, so
    `except IndexError` code ported from PyTorch still catches it (and `except ValueError`
    or `except OpError` too)."""


def _in_project(filename: str) -> bool:
    return os.path.abspath(filename).startswith(_PROJECT_DIRS)


def user_location() -> str:
    """'file.py:LINE' of the innermost stack frame outside the project's packages
    (tinygrad_edu, compiler, models): the line of the user's code that made the call."""
    for frame in reversed(traceback.extract_stack()):
        if not _in_project(frame.filename):
            return f"{frame.filename}:{frame.lineno}"
    return "<unknown>"


def op_error(
    op: str, problem: str, shapes: object, fix: str, error: type[OpError] = OpError
) -> OpError:
    """Build the standard message: `op: problem (got shapes ...). Fix: ... [at file:line]`.
    `error` picks the class (`OpIndexError` where PyTorch raises an IndexError)."""
    return error(f"{op}: {problem} (got {shapes}). Fix: {fix} [at {user_location()}]")
