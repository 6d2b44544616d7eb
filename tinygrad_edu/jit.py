"""The `torch.jit` names that model code calls outside TorchScript, so torchvision's model
files port unchanged (`@torch.jit.unused`, `if torch.jit.is_scripting(): ...`). Nothing here
is scripted: `compiler.compile` is this project's way to a compiled program, and while it
traces a model `is_tracing()` is True, as torch.jit's is inside `torch.jit.trace`."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from .autograd import tracing


def is_scripting() -> bool:
    """False: no code runs as TorchScript here."""
    return False


def is_tracing() -> bool:
    """True while `compiler.compile` (or `compiler.trace`) records the model."""
    return tracing()


def unused(fn: Callable[..., Any]) -> Callable[..., Any]:
    """A decorator that marks a method the scripter should skip: the method itself."""
    return fn


def ignore(fn: Callable[..., Any] | None = None, **_: Any) -> Any:
    """`@torch.jit.ignore` (or `@torch.jit.ignore(drop=True)`): the function itself."""
    return fn if fn is not None else (lambda f: f)


def _overload_method(fn: Callable[..., Any]) -> Callable[..., Any]:
    """torchvision declares typed overloads with this; the last definition is the one used."""
    return fn
