"""Containers that register what they hold, under PyTorch's names and state_dict keys:
`ModuleList` and `ParameterList` (children "0", "1", ...), `ModuleDict` and `ParameterDict`
(children by key). Items are ordinary attributes of the container, so every traversal,
the state_dict and the compiler see them with no special case."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterable, Iterator, Mapping
from typing import Any

from ..tensor import Tensor
from . import Module


def _index(owner: str, index: Any, length: int) -> int:
    if not isinstance(index, int) or isinstance(index, bool):
        raise TypeError(f"{owner}: indices must be ints or slices, got {type(index).__name__}")
    if not -length <= index < length:
        raise IndexError(f"{owner}: index {index} is out of range for length {length}")
    return index % length


class _Sequence(Module, ABC):
    """What ModuleList and ParameterList share: items stored as attributes "0", "1", ..."""

    @abstractmethod
    def _items(self) -> list[Any]: ...

    @abstractmethod
    def _check(self, value: Any) -> Any: ...

    def _store(self, key: str, value: Any) -> None:
        setattr(self, key, value)

    def _reset(self, items: list[Any]) -> None:
        """Make `items` the contents, renumbered from "0" (after an insert or a delete)."""
        for k in range(len(self)):
            object.__delattr__(self, str(k))
        self._parameter_names.clear()
        for k, item in enumerate(items):
            self._store(str(k), item)

    def __len__(self) -> int:
        return len(self._items())

    def __iter__(self) -> Iterator[Any]:
        return iter(self._items())

    def __getitem__(self, index: int | slice) -> Any:
        items = self._items()
        if isinstance(index, slice):
            return type(self)(items[index])
        return items[_index(type(self).__name__, index, len(items))]

    def __setitem__(self, index: int, value: Any) -> None:
        k = _index(type(self).__name__, index, len(self))
        self._store(str(k), self._check(value))

    def __delitem__(self, index: int | slice) -> None:
        items = self._items()
        if isinstance(index, slice):
            del items[index]
        else:
            del items[_index(type(self).__name__, index, len(items))]
        self._reset(items)

    def append(self, value: Any) -> _Sequence:
        self._store(str(len(self)), self._check(value))
        return self

    def extend(self, values: Iterable[Any]) -> _Sequence:
        if isinstance(values, (Module, Tensor)) and not isinstance(values, _Sequence):
            raise TypeError(
                f"{type(self).__name__}.extend: expects an iterable, got a "
                f"{type(values).__name__}. Fix: use append for one item"
            )
        for value in list(values):
            self.append(value)
        return self

    def __iadd__(self, values: Iterable[Any]) -> _Sequence:
        return self.extend(values)

    def __add__(self, other: Iterable[Any]) -> _Sequence:
        return type(self)([*self, *other])


class ModuleList(_Sequence):
    """A list of modules, registered as children "0", "1", ... (PyTorch's `nn.ModuleList`):
    append, extend, insert, pop, indexing, slicing (a new ModuleList), len and iteration. It
    has no forward: iterate it in your module's forward."""

    def __init__(self, modules: Iterable[Module] | None = None) -> None:
        super().__init__()
        if modules is not None:
            self.extend(modules)

    def _items(self) -> list[Module]:
        return [m for _, m in self._child_items()]

    def _check(self, value: Any) -> Module:
        if not isinstance(value, Module):
            raise TypeError(
                f"ModuleList: items must be Modules, got {type(value).__name__}. "
                "Fix: wrap functions in a Module, or keep plain values in a Python list"
            )
        return value

    def insert(self, index: int, module: Module) -> None:
        """Insert `module` before position `index` (Python's list.insert rule)."""
        items = self._items()
        items.insert(index, self._check(module))
        self._reset(items)

    def pop(self, index: int = -1) -> Module:
        item = self[index]
        del self[index]
        return item

    def __repr__(self) -> str:
        return super().__repr__() if len(self) else "ModuleList()"


class ParameterList(_Sequence):
    """A list of parameters, registered as "0", "1", ... (PyTorch's `nn.ParameterList`).
    A float Tensor that does not require grad is made to require it, as PyTorch's wrapping
    in `nn.Parameter` does."""

    def __init__(self, values: Iterable[Tensor] | None = None) -> None:
        super().__init__()
        if values is not None:
            self.extend(values)

    def _items(self) -> list[Tensor]:
        return [t for _, t, _ in self._own_tensors()]

    def _check(self, value: Any) -> Tensor:
        return _as_parameter("ParameterList", value)

    def _store(self, key: str, value: Any) -> None:
        setattr(self, key, value)
        self._parameter_names.add(key)  # stays a parameter if it is frozen later

    def extra_repr(self) -> str:
        return ", ".join(f"({k}): shape {tuple(t.shape)}" for k, t in enumerate(self))


def _as_parameter(owner: str, value: Any) -> Tensor:
    if not isinstance(value, Tensor):
        raise TypeError(
            f"{owner}: items must be Tensors, got {type(value).__name__}. "
            "Fix: wrap the data: nn.Parameter(data)"
        )
    if not value.requires_grad:
        value.requires_grad_()  # raises for integer tensors, naming the dtype
    return value


class _Mapping(Module, ABC):
    """What ModuleDict and ParameterDict share: items stored as attributes named by key."""

    @abstractmethod
    def _items(self) -> list[tuple[str, Any]]: ...

    @abstractmethod
    def _set(self, key: str, value: Any) -> None: ...

    def __len__(self) -> int:
        return len(self._items())

    def __iter__(self) -> Iterator[str]:
        return iter(self.keys())

    def __contains__(self, key: object) -> bool:
        return key in self.keys()

    def __getitem__(self, key: str) -> Any:
        for k, v in self._items():
            if k == key:
                return v
        raise KeyError(f"{type(self).__name__}: no key {key!r}; keys are {self.keys()}")

    def __setitem__(self, key: str, value: Any) -> None:
        self._set(key, value)

    def __delitem__(self, key: str) -> None:
        self[key]  # noqa: B018 (raises KeyError naming the keys)
        delattr(self, key)

    def keys(self) -> list[str]:
        return [k for k, _ in self._items()]

    def values(self) -> list[Any]:
        return [v for _, v in self._items()]

    def items(self) -> list[tuple[str, Any]]:
        return self._items()

    def pop(self, key: str) -> Any:
        value = self[key]
        del self[key]
        return value

    def clear(self) -> None:
        for key in self.keys():
            del self[key]

    def update(self, values: Mapping[str, Any] | Iterable[tuple[str, Any]]) -> None:
        pairs = values.items() if isinstance(values, Mapping) else values
        for key, value in pairs:
            self[key] = value

    def _check_key(self, key: Any, existing: list[str]) -> None:
        self._check_new_name(f"{type(self).__name__}[{key!r}]", key, existing)


class ModuleDict(_Mapping):
    """Modules by name (PyTorch's `nn.ModuleDict`), registered as children under their keys
    in insertion order, so state_dict keys read "blocks.conv.weight"."""

    def __init__(self, modules: Mapping[str, Module] | None = None) -> None:
        super().__init__()
        if modules is not None:
            self.update(modules)

    def _items(self) -> list[tuple[str, Module]]:
        return self._child_items()

    def _set(self, key: str, value: Any) -> None:
        if not isinstance(value, Module):
            raise TypeError(f"ModuleDict[{key!r}]: values must be Modules, got {value!r}")
        self._check_key(key, self.keys())
        setattr(self, key, value)


class ParameterDict(_Mapping):
    """Parameters by name (PyTorch's `nn.ParameterDict`), state_dict keys "NAME.KEY"."""

    def __init__(self, parameters: Mapping[str, Tensor] | None = None) -> None:
        super().__init__()
        if parameters is not None:
            self.update(parameters)

    def _items(self) -> list[tuple[str, Tensor]]:
        return [(k, t) for k, t, _ in self._own_tensors()]

    def _set(self, key: str, value: Any) -> None:
        value = _as_parameter(f"ParameterDict[{key!r}]", value)
        self._check_key(key, self.keys())
        setattr(self, key, value)
        self._parameter_names.add(key)

    def extra_repr(self) -> str:
        return ", ".join(f"({k}): shape {tuple(t.shape)}" for k, t in self.items())


__all__ = ["ModuleDict", "ModuleList", "ParameterDict", "ParameterList"]
