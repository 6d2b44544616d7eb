"""Neural-network modules in the DSL, with PyTorch's names, layouts and initialisation.

A `Module` finds its parameters (Tensors with `requires_grad=True`), buffers (registered with
`register_buffer`) and sub-modules from its attributes, in assignment order, so parameter
names match PyTorch's (`features.0.weight`) and a `state_dict` maps one-to-one onto a
PyTorch model's. `state_dict()` holds plain numpy arrays; `save`/`load` write them to `.npz`
or `.safetensors` atomically and read them back without pickle (`serialization`).
"""

from __future__ import annotations

import importlib
import math
import os
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from typing import Any, NamedTuple

import numpy as np

from .. import losses, rng, serialization
from ..autograd import module_scope, note_write, tracing
from ..errors import op_error, user_location
from ..tensor import Tensor


def Parameter(  # noqa: N802 (PyTorch's name)
    data: Any = None, requires_grad: bool = True, dtype: Any = None
) -> Tensor:
    """A trainable tensor: float data with `requires_grad=True` (a copy of `data`; no data:
    an empty one, as `nn.Parameter()`). A float Tensor keeps its dtype, as PyTorch's (a
    float64 tensor stays float64); arrays and other data become float32 unless `dtype`
    says otherwise."""
    if dtype is None:
        floating = isinstance(data, Tensor) and data.dtype.kind == "f"
        dtype = data.dtype if floating else np.float32
    array = np.zeros((0,)) if data is None else np.asarray(data)
    return Tensor(array, dtype=dtype, requires_grad=requires_grad)


def _uniform(shape: tuple[int, ...], bound: float) -> Tensor:
    return Parameter(rng.generator().uniform(-bound, bound, shape))


def _as_tensor(value: Any) -> Any:
    return Tensor(value) if isinstance(value, np.ndarray) else value


class IncompatibleKeys(NamedTuple):
    """What `load_state_dict` did not match: keys the module has that the state lacked, and
    keys the state had that the module lacks (both empty after a strict load)."""

    missing_keys: list[str]
    unexpected_keys: list[str]


def _refuse_plain_container(module: Any, name: str, value: Any) -> None:
    """A Python list/tuple/dict of Modules or parameters assigned to a Module would be invisible
    to parameters(), state_dict(), optimizers and the compiler: refuse it, naming the fix."""
    if isinstance(value, (list, tuple)):
        items = list(value)
    elif isinstance(value, dict):
        items = list(value.values())
    else:
        return
    modules = any(isinstance(v, Module) for v in items)
    params = any(isinstance(v, Tensor) and v.requires_grad for v in items)
    if not (modules or params):
        return
    kind = type(value).__name__
    if modules:
        fix = (
            f"self.{name} = nn.ModuleDict({{...}})"
            if kind == "dict"
            else f"self.{name} = nn.ModuleList([...]) (or nn.Sequential(*layers) to chain them)"
        )
    else:
        fix = f"self.{name} = nn.Parameter{'Dict' if kind == 'dict' else 'List'}(...)"
    raise TypeError(
        f"{type(module).__name__}.{name}: a Python {kind} of "
        f"{'modules' if modules else 'parameters'} is not registered, so parameters(), "
        f"state_dict(), optimizers and the compiler would not see what it holds. Fix: {fix} "
        f"[at {user_location()}]"
    )


def _dtype_family(dtype: np.dtype) -> str:
    return {"f": "float", "i": "int", "u": "int", "b": "bool"}.get(dtype.kind, dtype.kind)


# bumped whenever a module gains, replaces or drops a child, parameter or buffer, or changes
# mode: a compiled model re-checks what it was compiled with only after a change
_structure_version = [0]


def structure_version() -> int:
    """A number that changes whenever any module's children, tensors or mode may have."""
    return _structure_version[0]


class Module:
    """Base class: subclasses set attributes in `__init__` and define `forward`.

    An attribute that is a Module is a child, a Tensor that requires grad (or one given to
    `register_parameter`) a parameter, one given to `register_buffer` a buffer; names,
    order and state_dict keys are PyTorch's. A plain list, tuple or dict of Modules or
    parameters is refused (it would hide them): use ModuleList, ModuleDict or ParameterList.
    """

    def __init__(self) -> None:
        object.__setattr__(self, "training", True)
        object.__setattr__(self, "_buffers", [])
        object.__setattr__(self, "_non_persistent_buffers", set())
        object.__setattr__(self, "_parameter_names", set())

    def __setattr__(self, name: str, value: Any) -> None:
        registry = self.__dict__.get("_parameter_names")
        if registry is None and isinstance(value, (Module, Tensor)):
            raise AttributeError(
                f"{type(self).__name__}: cannot assign {name!r} before Module.__init__() ran. "
                f"Fix: call super().__init__() first in {type(self).__name__}.__init__ "
                f"[at {user_location()}]"
            )
        _refuse_plain_container(self, name, value)
        if registry is not None and isinstance(value, Tensor) and value.requires_grad:
            if name not in self._buffers:
                registry.add(name)  # stays a parameter if it is frozen later
        if isinstance(value, (Module, Tensor)) or name == "training":
            _structure_version[0] += 1
        object.__setattr__(self, name, value)

    def __delattr__(self, name: str) -> None:
        _structure_version[0] += 1
        object.__delattr__(self, name)
        if name in self.__dict__.get("_buffers", ()):
            self._buffers.remove(name)
            self._non_persistent_buffers.discard(name)
        self.__dict__.get("_parameter_names", set()).discard(name)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        """Run `forward`. numpy arrays among the arguments (a DataLoader batch, say) become
        Tensors first, with `Tensor()`'s dtype rule (float data to float32, ints to int64)."""
        args = tuple(_as_tensor(a) for a in args)
        kwargs = {k: _as_tensor(v) for k, v in kwargs.items()}
        try:
            with module_scope(self):  # while tracing, the ops inside are this module's
                return self.forward(*args, **kwargs)
        except AttributeError as e:  # a Python list or number where a Tensor was meant
            bad = next((a for a in args if isinstance(a, (list, tuple, int, float))), None)
            if bad is None or f"'{type(bad).__name__}' object has no attribute" not in str(e):
                raise
            raise TypeError(
                f"{type(self).__name__}: the input must be a Tensor, got a "
                f"{type(bad).__name__}. Fix: wrap it: Tensor(data) [at {user_location()}]"
            ) from None

    def forward(self, *args: Any, **kwargs: Any) -> Any:
        raise TypeError(f"{type(self).__name__} has no forward(); define one in the subclass")

    # -- registration -------------------------------------------------------------------------
    def _check_new_name(self, kind: str, name: Any, existing: Iterable[str] = ()) -> None:
        who = f"{type(self).__name__}.{kind}"
        if not isinstance(name, str):
            raise TypeError(f"{who}: name must be a str, got {type(name).__name__}")
        if not name or "." in name:
            raise KeyError(f"{who}: name {name!r} must be non-empty and contain no '.'")
        if hasattr(self, name) and name not in existing:
            raise KeyError(f"{who}: attribute {name!r} already exists; pick another name")

    def register_buffer(self, name: str, tensor: Tensor | None, persistent: bool = True) -> None:
        """A tensor that is saved in the state_dict but not trained (e.g. running means);
        `persistent=False` keeps it out of the state_dict. `tensor` may be None (a buffer
        not in use: skipped by state_dict and named_buffers, as in PyTorch)."""
        self._check_new_name("register_buffer", name, self._buffers)
        if isinstance(tensor, np.ndarray):
            tensor = Tensor(tensor)
        if tensor is not None and not isinstance(tensor, Tensor):
            raise TypeError(
                f"register_buffer: buffer {name!r} must be a Tensor or None, got "
                f"{type(tensor).__name__}"
            )
        self._parameter_names.discard(name)
        if name not in self._buffers:
            self._buffers.append(name)
        if persistent:
            self._non_persistent_buffers.discard(name)
        else:
            self._non_persistent_buffers.add(name)
        _structure_version[0] += 1
        object.__setattr__(self, name, tensor)

    def register_parameter(self, name: str, param: Tensor | None) -> None:
        """Add a parameter (a Tensor that requires grad, e.g. `nn.Parameter(data)`), or None
        for an optional one such as a missing bias."""
        self._check_new_name("register_parameter", name, self._parameter_names)
        if param is not None and not (isinstance(param, Tensor) and param.requires_grad):
            raise TypeError(
                f"register_parameter: {name!r} must be a Tensor that requires grad or None, got "
                f"{type(param).__name__}. Fix: wrap it: nn.Parameter(data)"
            )
        self._parameter_names.add(name)
        _structure_version[0] += 1
        object.__setattr__(self, name, param)

    def add_module(self, name: str, module: Module | None) -> None:
        """Add a child module under `name` (what `self.name = module` does, for names that are
        computed or not Python identifiers)."""
        self._check_new_name("add_module", name, [n for n, _ in self._child_items()])
        if module is not None and not isinstance(module, Module):
            raise TypeError(f"add_module: {name!r} must be a Module or None, got {module!r}")
        setattr(self, name, module)

    register_module = add_module

    def get_submodule(self, target: str) -> Module:
        """The module at dotted path `target` ("" is this module), e.g. "features.0"."""
        module: Module = self
        for part in target.split(".") if target else []:
            child = getattr(module, part, None)
            if not isinstance(child, Module):
                raise AttributeError(
                    f"get_submodule: {type(module).__name__} has no submodule {part!r} "
                    f"(looking up {target!r}); it has {[n for n, _ in module._child_items()]}"
                )
            module = child
        return module

    # -- traversal ----------------------------------------------------------------------------
    def _child_items(self) -> list[tuple[str, Module]]:
        """Every child by attribute, in assignment order, repeats included."""
        return [(n, v) for n, v in vars(self).items() if isinstance(v, Module)]

    def named_children(self) -> Iterator[tuple[str, Module]]:
        """(name, module) for each direct child, each module once, in assignment order."""
        seen: set[int] = set()
        for name, value in self._child_items():
            if id(value) not in seen:
                seen.add(id(value))
                yield name, value

    def children(self) -> Iterator[Module]:
        return (m for _, m in self.named_children())

    def named_modules(
        self, memo: set[Module] | None = None, prefix: str = "", remove_duplicate: bool = True
    ) -> Iterator[tuple[str, Module]]:
        """This module ("" or `prefix`) and every descendant, depth first in assignment order,
        named by dotted path; a module reachable twice is listed once (remove_duplicate)."""
        if memo is None:
            memo = set()
        if remove_duplicate:
            if self in memo:
                return
            memo.add(self)
        yield prefix, self
        for name, child in self.named_children():
            path = f"{prefix}.{name}" if prefix else name
            yield from child.named_modules(memo, path, remove_duplicate)

    def modules(self) -> Iterator[Module]:
        return (m for _, m in self.named_modules())

    def apply(self, fn: Callable[[Module], Any]) -> Module:
        """Call `fn` on every child (recursively), then on this module; returns self. The
        PyTorch way to initialise weights: `model.apply(init_fn)`."""
        for child in self.children():
            child.apply(fn)
        fn(self)
        return self

    def _own_tensors(self) -> Iterator[tuple[str, Tensor, bool]]:
        for name, value in vars(self).items():
            if isinstance(value, Tensor):
                is_buffer = name in self._buffers
                if is_buffer or value.requires_grad or name in self._parameter_names:
                    yield name, value, is_buffer

    def _named_tensors(
        self, buffers: bool, prefix: str, recurse: bool, seen: set[int] | None
    ) -> Iterator[tuple[str, Tensor]]:
        for name, value, is_buffer in self._own_tensors():
            if is_buffer == buffers and (seen is None or id(value) not in seen):
                if seen is not None:
                    seen.add(id(value))
                yield f"{prefix}{name}", value
        if recurse:
            for name, child in self.named_children():
                yield from child._named_tensors(buffers, f"{prefix}{name}.", True, seen)

    def named_parameters(
        self, prefix: str = "", recurse: bool = True, remove_duplicate: bool = True
    ) -> Iterator[tuple[str, Tensor]]:
        """(dotted name, tensor) for every parameter, PyTorch's order and names (a shared
        parameter once, under its first name, unless remove_duplicate=False)."""
        start = f"{prefix}." if prefix else ""
        return self._named_tensors(False, start, recurse, set() if remove_duplicate else None)

    def named_buffers(
        self, prefix: str = "", recurse: bool = True, remove_duplicate: bool = True
    ) -> Iterator[tuple[str, Tensor]]:
        """(dotted name, tensor) for every buffer (running statistics), PyTorch's order."""
        start = f"{prefix}." if prefix else ""
        return self._named_tensors(True, start, recurse, set() if remove_duplicate else None)

    def buffers(self, recurse: bool = True) -> list[Tensor]:
        return [b for _, b in self.named_buffers(recurse=recurse)]

    def update_buffer(self, name: str, value: Tensor) -> None:
        """Give buffer `name` its new value, computed in DSL ops from the old one (running
        statistics). Eagerly the buffer's array is written in place (in the buffer's dtype),
        so arrays held elsewhere stay valid. While the compiler traces, the buffer attribute
        becomes the symbolic new value, which the tracer reads back as a graph output (and
        restores): a compiled step updates buffers exactly as an eager one does."""
        old = getattr(self, name)
        if name not in self._buffers:
            raise op_error(
                "update_buffer",
                f"{name!r} is not a buffer of {type(self).__name__}",
                f"buffers {self._buffers}",
                "register it first with register_buffer(name, tensor)",
            )
        value = value.detach().cast(old.dtype)
        if value.shape != old.shape:
            raise op_error(
                "update_buffer",
                f"the new value of {name!r} has the wrong shape",
                f"new {value.shape}, buffer {old.shape}",
                "compute the new value with the buffer's shape",
            )
        if tracing():
            object.__setattr__(self, name, value)
        else:
            old.data[...] = value.data
            note_write(old.data)

    def parameters(self, recurse: bool = True) -> list[Tensor]:
        return [p for _, p in self.named_parameters(recurse=recurse)]

    def num_parameters(self) -> int:
        return sum(p.size for p in self.parameters())

    def _named_state(self, prefix: str = "") -> Iterator[tuple[str, Tensor]]:
        # PyTorch's state_dict order: own parameters, own buffers, then each child.
        own = list(self._own_tensors())
        for name, value, is_buffer in own:
            if not is_buffer:
                yield f"{prefix}{name}", value
        for name, value, is_buffer in own:
            if is_buffer and name not in self._non_persistent_buffers:
                yield f"{prefix}{name}", value
        for name, child in self.named_children():
            yield from child._named_state(f"{prefix}{name}.")

    # -- modes and gradients --------------------------------------------------------------------
    def train(self, mode: bool = True) -> Module:
        _structure_version[0] += 1
        for _, module in self.named_modules():
            object.__setattr__(module, "training", mode)
        return self

    def eval(self) -> Module:
        """Inference mode: dropout off, batch norm uses running statistics."""
        return self.train(False)

    def zero_grad(self, set_to_none: bool = True) -> None:
        """Forget every parameter's gradient (`grad = None`; zeros with set_to_none=False)."""
        for p in self.parameters():
            if set_to_none or p.grad is None:
                p.grad = None
            else:
                p.grad = Tensor._make(np.zeros_like(p.grad.data))

    def requires_grad_(self, requires_grad: bool = True) -> Module:
        """Freeze (False) or unfreeze every parameter; frozen ones stay parameters (in the
        state_dict and parameters()) but get no gradient."""
        for p in self.parameters():
            p.requires_grad_(requires_grad)
        return self

    # -- dtypes and devices ---------------------------------------------------------------------
    def to(self, *args: Any, device: Any = None, dtype: Any = None) -> Module:
        """PyTorch's `module.to(...)`: `to(np.float64)` / `to(dtype=...)` casts every floating
        parameter and buffer (and gradient), `to("cpu")` / `to("cuda")` moves them; the
        Tensor objects stay the same (an optimizer holding them sees the change). Returns
        self."""
        for a in args:
            if isinstance(a, Tensor):
                device, dtype = a.device, a.dtype
            elif isinstance(a, str) and a.split(":")[0] in ("cpu", "cuda"):
                device = a
            else:
                dtype = a
        want = None if dtype is None else np.dtype(dtype)
        if want is not None and want.kind != "f":
            raise TypeError(f"{type(self).__name__}.to: dtype must be floating, got {want}")
        for _, t in self._named_state():
            for holder in (t, t.grad):
                if holder is None:
                    continue
                moved = holder
                if want is not None and moved.dtype.kind == "f" and moved.dtype != want:
                    moved = moved.detach().cast(want)
                if device is not None and moved.device != device:
                    moved = moved.detach().to(device)
                if moved is not holder:
                    holder.data = moved.data
        _structure_version[0] += 1
        return self

    def double(self) -> Module:
        return self.to(np.float64)

    def float(self) -> Module:
        return self.to(np.float32)

    def half(self) -> Module:
        return self.to(np.float16)

    def type(self, dst_type: Any) -> Module:
        return self.to(dst_type)

    def cpu(self) -> Module:
        return self.to("cpu")

    def cuda(self, device: Any = None) -> Module:
        return self.to("cuda")  # (one GPU: the index is not used)

    # -- state ----------------------------------------------------------------------------------
    def state_dict(self) -> dict[str, np.ndarray]:
        """Copies of every parameter and buffer as numpy arrays, keyed by dotted name."""
        return {name: np.array(t.numpy(), copy=True) for name, t in self._named_state()}

    def load_state_dict(self, state: Mapping[str, Any], strict: bool = True) -> IncompatibleKeys:
        """Copy arrays into the parameters and buffers in place; returns the missing and
        unexpected keys (PyTorch's `(missing_keys, unexpected_keys)` named tuple).

        Shapes must match exactly; with `strict`, so must the set of keys. Every problem is
        reported at once, naming the keys and the expected and given shapes.
        """
        own = dict(self._named_state())
        missing = [k for k in own if k not in state]
        unexpected = [k for k in state if k not in own]
        wrong = [
            f"{k}: expected {own[k].shape}, got {tuple(np.shape(state[k]))}"
            for k in own
            if k in state and tuple(np.shape(state[k])) != own[k].shape
        ]
        # precision may differ (cast as PyTorch does); ints for a float weight is a wrong file
        kinds = [
            f"{k}: expected {own[k].dtype}, got {np.asarray(state[k]).dtype}"
            for k in own
            if k in state
            and _dtype_family(np.asarray(state[k]).dtype) != _dtype_family(own[k].dtype)
        ]
        problems = []
        if strict and missing:
            problems.append(f"missing keys {missing}")
        if strict and unexpected:
            problems.append(f"unexpected keys {unexpected}")
        if wrong:
            problems.append("shape mismatch " + "; ".join(wrong))
        if kinds:
            problems.append("dtype mismatch " + "; ".join(kinds))
        if problems:
            source = getattr(state, "source", "")  # set by nn.load: name the file
            raise op_error(
                "load_state_dict",
                f"state_dict{f' from {source}' if source else ''} does not fit "
                f"{type(self).__name__}: " + ", ".join(problems),
                f"{len(state)} given keys vs {len(own)} expected",
                "load weights saved from the same architecture (or pass strict=False to "
                "skip missing/unexpected keys)",
            )
        for key, tensor in own.items():
            if key in state:
                tensor.data[...] = np.asarray(state[key], dtype=tensor.dtype)
                note_write(tensor.data)
        return IncompatibleKeys(missing, unexpected)

    def __repr__(self) -> str:
        children = [f"  ({n}): " + repr(m).replace("\n", "\n  ") for n, m in self.named_children()]
        extra = self.extra_repr()
        if not children:
            return f"{type(self).__name__}({extra})"
        return f"{type(self).__name__}(\n" + "\n".join(children) + "\n)"

    def extra_repr(self) -> str:
        return ""


def save(state: Mapping[str, np.ndarray] | Module, path: str | os.PathLike[str]) -> None:
    """Write a state_dict (or any name -> array mapping; a Module: its state_dict) to `.npz`
    or `.safetensors` (by extension) atomically: a temporary file is written, fsynced and
    renamed over `path`, so a crash mid-write leaves the previous file intact, never a torn
    one. Load it back with `model.load_state_dict(nn.load(path))` (no pickle: the model's
    code is not saved, only its numbers)."""
    serialization.save_state(state.state_dict() if isinstance(state, Module) else state, path)


def load(path: str | os.PathLike[str]) -> dict[str, np.ndarray]:
    """Read a `.npz` or `.safetensors` file (no pickle: object arrays are refused). The dict
    remembers its file, so a `load_state_dict` that does not fit names it."""
    return serialization.load_state(path)


# -------------------------------------------------------------------------------------------
# layers
# -------------------------------------------------------------------------------------------
class Linear(Module):
    """y = x Wᵀ + b, weight (out_features, in_features), PyTorch's U(±1/√in) initialisation."""

    def __init__(self, in_features: int, out_features: int, bias: bool = True) -> None:
        super().__init__()
        if (
            not all(
                isinstance(v, int) and not isinstance(v, bool) for v in (in_features, out_features)
            )
            or in_features < 1
            or out_features < 1
        ):
            raise ValueError(
                f"Linear: features must be >= 1, got in={in_features}, out={out_features}"
            )
        self.in_features, self.out_features = in_features, out_features
        bound = 1 / math.sqrt(in_features)
        self.weight = _uniform((out_features, in_features), bound)
        self.bias = _uniform((out_features,), bound) if bias else None

    def forward(self, x: Tensor) -> Tensor:
        return x.linear(self.weight, self.bias)

    def extra_repr(self) -> str:
        return f"in_features={self.in_features}, out_features={self.out_features}"


def _pair(v: int | tuple[int, int]) -> tuple[int, int]:
    if isinstance(v, int) and not isinstance(v, bool):
        return (v, v)
    if (
        isinstance(v, (tuple, list))
        and len(v) == 2
        and all(isinstance(i, int) and not isinstance(i, bool) for i in v)
    ):
        return (int(v[0]), int(v[1]))
    raise ValueError(f"expected an int or a pair of ints, got {v!r}")


def _check_ints(layer: str, **values: object) -> None:
    for name, v in values.items():
        if not isinstance(v, int) or isinstance(v, bool) or v < 1:
            raise ValueError(f"{layer}: {name} must be a positive int, got {v!r}")


class Conv2d(Module):
    """2-D convolution, weight (out, in/groups, kh, kw), PyTorch's U(±1/√fan_in) init."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int | tuple[int, int],
        stride: int | tuple[int, int] = 1,
        padding: int | tuple[int, int] = 0,
        dilation: int | tuple[int, int] = 1,
        groups: int = 1,
        bias: bool = True,
    ) -> None:
        super().__init__()
        _check_ints("Conv2d", in_channels=in_channels, out_channels=out_channels, groups=groups)
        if groups < 1 or in_channels % groups or out_channels % groups:
            raise ValueError(
                f"Conv2d: in_channels={in_channels} and out_channels={out_channels} must both "
                f"be divisible by groups={groups}"
            )
        kh, kw = _pair(kernel_size)
        for name, v in (
            ("kernel_size", (kh, kw)),
            ("stride", _pair(stride)),
            ("dilation", _pair(dilation)),
        ):
            if min(v) < 1:
                raise ValueError(f"Conv2d: {name} must be >= 1, got {v}")
        if not isinstance(padding, str) and min(_pair(padding)) < 0:
            raise ValueError(f"Conv2d: padding must be >= 0, got {padding}")
        self.in_channels, self.out_channels, self.groups = in_channels, out_channels, groups
        self.kernel_size, self.stride = (kh, kw), _pair(stride)
        self.padding = padding if isinstance(padding, str) else _pair(padding)
        self.dilation = _pair(dilation)
        bound = 1 / math.sqrt(in_channels // groups * kh * kw)
        self.weight = _uniform((out_channels, in_channels // groups, kh, kw), bound)
        self.bias = _uniform((out_channels,), bound) if bias else None

    def forward(self, x: Tensor) -> Tensor:
        return x.conv2d(
            self.weight, self.bias, self.stride, self.padding, self.dilation, self.groups
        )

    def extra_repr(self) -> str:
        g = f", groups={self.groups}" if self.groups != 1 else ""
        return (
            f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, "
            f"stride={self.stride}, padding={self.padding}{g}"
        )


class ConvTranspose2d(Module):
    """torch.nn.ConvTranspose2d: weight (in, out/groups, kh, kw), bias (out,), PyTorch's
    U(±1/√fan_in) init with fan_in = out/groups * kh * kw (the weight's dim 1 and kernel)."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int | tuple[int, int],
        stride: int | tuple[int, int] = 1,
        padding: int | tuple[int, int] = 0,
        output_padding: int | tuple[int, int] = 0,
        groups: int = 1,
        bias: bool = True,
        dilation: int | tuple[int, int] = 1,
        padding_mode: str = "zeros",
    ) -> None:
        super().__init__()
        layer = "ConvTranspose2d"
        _check_ints(layer, in_channels=in_channels, out_channels=out_channels, groups=groups)
        if in_channels % groups or out_channels % groups:
            raise ValueError(
                f"{layer}: in_channels={in_channels} and out_channels={out_channels} must "
                f"both be divisible by groups={groups}"
            )
        if padding_mode != "zeros":
            raise ValueError(f"{layer}: only padding_mode='zeros' exists (as in PyTorch)")
        kh, kw = _pair(kernel_size)
        for name, v in (("kernel_size", (kh, kw)), ("stride", stride), ("dilation", dilation)):
            if min(_pair(v)) < 1:
                raise ValueError(f"{layer}: {name} must be >= 1, got {v}")
        if min(_pair(padding)) < 0 or min(_pair(output_padding)) < 0:
            raise ValueError(f"{layer}: padding and output_padding must be >= 0")
        self.in_channels, self.out_channels, self.groups = in_channels, out_channels, groups
        self.kernel_size, self.stride, self.padding = (kh, kw), _pair(stride), _pair(padding)
        self.output_padding, self.dilation = _pair(output_padding), _pair(dilation)
        bound = 1 / math.sqrt(out_channels // groups * kh * kw)
        self.weight = _uniform((in_channels, out_channels // groups, kh, kw), bound)
        self.bias = _uniform((out_channels,), bound) if bias else None

    def forward(self, x: Tensor, output_size: Any = None) -> Tensor:
        from .. import image

        extra = self.output_padding
        if output_size is not None:
            extra = self._output_padding_for(x, output_size)
        return image.conv_transpose2d(
            x, self.weight, self.bias, self.stride, self.padding, extra, self.groups,
            self.dilation,
        )  # fmt: skip

    def _output_padding_for(self, x: Tensor, output_size: Any) -> tuple[int, int]:
        """PyTorch's `output_size=`: the output_padding that gives that (H, W)."""
        size = tuple(int(v) for v in output_size)[-2:]
        extra = []
        for i in range(2):
            least = (
                (x.shape[-2 + i] - 1) * self.stride[i]
                - 2 * self.padding[i]
                + self.dilation[i] * (self.kernel_size[i] - 1)
                + 1
            )
            top = least + max(self.stride[i], self.dilation[i]) - 1
            if not least <= size[i] <= top:
                raise op_error(
                    "ConvTranspose2d",
                    f"output_size {size} is not reachable: dim {i} must be in [{least}, {top}]",
                    x.shape,
                    "pick an output_size this stride can produce, or none",
                )
            extra.append(size[i] - least)
        return extra[0], extra[1]

    def extra_repr(self) -> str:
        g = f", groups={self.groups}" if self.groups != 1 else ""
        return (
            f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, "
            f"stride={self.stride}, padding={self.padding}, "
            f"output_padding={self.output_padding}{g}"
        )


class Upsample(Module):
    """torch.nn.Upsample: `interpolate` with fixed size or scale_factor, mode, align_corners."""

    def __init__(
        self,
        size: Any = None,
        scale_factor: Any = None,
        mode: str = "nearest",
        align_corners: bool | None = None,
        recompute_scale_factor: bool | None = None,
    ) -> None:
        super().__init__()
        self.size, self.scale_factor, self.mode = size, scale_factor, mode
        self.align_corners, self.recompute_scale_factor = align_corners, recompute_scale_factor

    def forward(self, x: Tensor) -> Tensor:
        from .. import image

        return image.interpolate(
            x,
            self.size,
            self.scale_factor,
            self.mode,
            self.align_corners,
            self.recompute_scale_factor,
        )

    def extra_repr(self) -> str:
        what = f"size={self.size}" if self.size is not None else f"scale_factor={self.scale_factor}"
        return f"{what}, mode={self.mode!r}"


class UpsamplingNearest2d(Upsample):
    """torch.nn.UpsamplingNearest2d: Upsample(mode='nearest')."""

    def __init__(self, size: Any = None, scale_factor: Any = None) -> None:
        super().__init__(size, scale_factor, "nearest")


class UpsamplingBilinear2d(Upsample):
    """torch.nn.UpsamplingBilinear2d: Upsample(mode='bilinear', align_corners=True)."""

    def __init__(self, size: Any = None, scale_factor: Any = None) -> None:
        super().__init__(size, scale_factor, "bilinear", True)


class Conv1d(Module):
    """torch.nn.Conv1d: weight (out, in/groups, k), bias (out,), PyTorch's U(±1/√fan_in)
    init with fan_in = in/groups * k."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int | tuple[int],
        stride: int | tuple[int] = 1,
        padding: int | tuple[int] | str = 0,
        dilation: int | tuple[int] = 1,
        groups: int = 1,
        bias: bool = True,
        padding_mode: str = "zeros",
    ) -> None:
        super().__init__()
        _check_ints("Conv1d", in_channels=in_channels, out_channels=out_channels, groups=groups)
        if in_channels % groups or out_channels % groups:
            raise ValueError(
                f"Conv1d: in_channels={in_channels} and out_channels={out_channels} must both "
                f"be divisible by groups={groups}"
            )
        if padding_mode != "zeros":
            raise ValueError("Conv1d: only padding_mode='zeros' is offered; pad with F.pad")

        def one(v: Any) -> int:
            return int(v[0]) if isinstance(v, (tuple, list)) and len(v) == 1 else v

        k, st, dil = one(kernel_size), one(stride), one(dilation)
        _check_ints("Conv1d", kernel_size=k, stride=st, dilation=dil)
        pad = padding if isinstance(padding, str) else one(padding)
        if not isinstance(pad, str) and (not isinstance(pad, int) or pad < 0):
            raise ValueError(f"Conv1d: padding must be an int >= 0 or a string, got {padding}")
        self.in_channels, self.out_channels, self.groups = in_channels, out_channels, groups
        self.kernel_size, self.stride, self.dilation = (k,), (st,), (dil,)
        self.padding = pad if isinstance(pad, str) else (pad,)
        bound = 1 / math.sqrt(in_channels // groups * k)
        self.weight = _uniform((out_channels, in_channels // groups, k), bound)
        self.bias = _uniform((out_channels,), bound) if bias else None

    def forward(self, x: Tensor) -> Tensor:
        from .. import image

        return image.conv1d(
            x, self.weight, self.bias, self.stride, self.padding, self.dilation, self.groups
        )

    def extra_repr(self) -> str:
        return (
            f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, "
            f"stride={self.stride}, padding={self.padding}"
        )


class AdaptiveMaxPool2d(Module):
    """torch.nn.AdaptiveMaxPool2d(output_size, return_indices=False)."""

    def __init__(self, output_size: Any, return_indices: bool = False):
        super().__init__()
        self.output_size, self.return_indices = output_size, return_indices

    def forward(self, x: Tensor) -> Any:
        from .. import image

        return image.adaptive_max_pool2d(x, self.output_size, self.return_indices)


class MaxPool2d(Module):
    """torch.nn.MaxPool2d: kernel_size, stride (default kernel_size), padding, dilation,
    return_indices, ceil_mode."""

    def __init__(
        self,
        kernel_size: Any,
        stride: Any = None,
        padding: Any = 0,
        dilation: Any = 1,
        return_indices: bool = False,
        ceil_mode: bool = False,
    ):
        super().__init__()
        if min(_pair(kernel_size)) < 1 or (stride is not None and min(_pair(stride)) < 1):
            raise ValueError(
                f"MaxPool2d: kernel_size and stride must be >= 1, got {kernel_size}, {stride}"
            )
        self.kernel_size, self.stride, self.padding = kernel_size, stride, padding
        self.dilation, self.return_indices, self.ceil_mode = dilation, return_indices, ceil_mode

    def forward(self, x: Tensor) -> Any:
        return x.max_pool2d(
            self.kernel_size,
            self.stride,
            self.padding,
            self.dilation,
            self.ceil_mode,
            self.return_indices,
        )

    def extra_repr(self) -> str:
        return (
            f"kernel_size={self.kernel_size}, stride={self.stride or self.kernel_size}, "
            f"padding={self.padding}, dilation={self.dilation}, ceil_mode={self.ceil_mode}"
        )


class AvgPool2d(Module):
    """torch.nn.AvgPool2d: kernel_size, stride (default kernel_size), padding, ceil_mode,
    count_include_pad, divisor_override."""

    def __init__(
        self,
        kernel_size: Any,
        stride: Any = None,
        padding: Any = 0,
        ceil_mode: bool = False,
        count_include_pad: bool = True,
        divisor_override: int | None = None,
    ):
        super().__init__()
        if min(_pair(kernel_size)) < 1 or (stride is not None and min(_pair(stride)) < 1):
            raise ValueError(
                f"AvgPool2d: kernel_size and stride must be >= 1, got {kernel_size}, {stride}"
            )
        self.kernel_size, self.stride, self.padding = kernel_size, stride, padding
        self.ceil_mode, self.count_include_pad = ceil_mode, count_include_pad
        self.divisor_override = divisor_override

    def forward(self, x: Tensor) -> Tensor:
        return x.avg_pool2d(
            self.kernel_size,
            self.stride,
            self.padding,
            self.ceil_mode,
            self.count_include_pad,
            self.divisor_override,
        )


class AdaptiveAvgPool2d(Module):
    def __init__(self, output_size: Any):
        super().__init__()
        self.output_size = output_size

    def forward(self, x: Tensor) -> Tensor:
        return x.adaptive_avg_pool2d(self.output_size)


class ReLU(Module):
    def __init__(self, inplace: bool = False):  # inplace accepted for PyTorch compatibility
        super().__init__()

    def forward(self, x: Tensor) -> Tensor:
        return x.relu()


class Sigmoid(Module):
    def forward(self, x: Tensor) -> Tensor:
        return x.sigmoid()


class Tanh(Module):
    def forward(self, x: Tensor) -> Tensor:
        return x.tanh()


class Dropout(Module):
    """Inverted dropout while training; identity in eval mode."""

    def __init__(self, p: float = 0.5, inplace: bool = False):
        super().__init__()
        if not 0.0 <= p <= 1.0:
            raise ValueError(f"Dropout: p must be in [0, 1], got {p}")
        self.p = p

    def forward(self, x: Tensor) -> Tensor:
        return x.dropout(self.p, self.training)

    def extra_repr(self) -> str:
        return f"p={self.p}"


class LocalResponseNorm(Module):
    """torch.nn.LocalResponseNorm: alpha is divided by `size` (see Tensor.local_response_norm)."""

    def __init__(self, size: int, alpha: float = 1e-4, beta: float = 0.75, k: float = 1.0):
        super().__init__()
        _check_ints("LocalResponseNorm", size=size)
        self.size, self.alpha, self.beta, self.k = size, alpha, beta, k

    def forward(self, x: Tensor) -> Tensor:
        return x.local_response_norm(self.size, self.alpha, self.beta, self.k)

    def extra_repr(self) -> str:
        return f"{self.size}, alpha={self.alpha}, beta={self.beta}, k={self.k}"


class Flatten(Module):
    def __init__(self, start_dim: int = 1, end_dim: int = -1):
        super().__init__()
        self.start_dim, self.end_dim = start_dim, end_dim

    def forward(self, x: Tensor) -> Tensor:
        return x.flatten(self.start_dim, self.end_dim)


class Unflatten(Module):
    """`Unflatten(dim, unflattened_size)`: dim split into the given sizes (`x.unflatten`)."""

    def __init__(self, dim: int, unflattened_size: Sequence[int]):
        super().__init__()
        self.dim, self.unflattened_size = dim, tuple(unflattened_size)

    def forward(self, x: Tensor) -> Tensor:
        return x.unflatten(self.dim, self.unflattened_size)


class Sequential(Module):
    """Modules applied in order; children are named "0", "1", ... as in PyTorch (or by the
    keys of one OrderedDict/dict argument). Indexing with a slice gives a Sequential."""

    def __init__(self, *modules: Module | Mapping[str, Module]):
        super().__init__()
        if len(modules) == 1 and isinstance(modules[0], Mapping):
            named = list(modules[0].items())
        else:
            named = [(str(i), m) for i, m in enumerate(modules)]
        for i, (name, m) in enumerate(named):
            if not isinstance(m, Module):
                raise TypeError(f"Sequential: item {i} is a {type(m).__name__}, not a Module")
            setattr(self, name, m)

    def __iter__(self) -> Iterator[Module]:
        return (m for _, m in self._child_items())

    def __len__(self) -> int:
        return len(self._child_items())

    def __getitem__(self, i: int | slice) -> Module:
        items = self._child_items()
        if isinstance(i, slice):
            return Sequential(dict(items[i]))
        if not -len(items) <= i < len(items):
            raise IndexError(f"Sequential: index {i} is out of range for length {len(items)}")
        return items[i][1]

    def __setitem__(self, i: int, module: Module) -> None:
        """`seq[i] = module` replaces the i-th child, keeping its name (PyTorch's)."""
        items = self._child_items()
        if not isinstance(i, int) or not -len(items) <= i < len(items):
            raise IndexError(f"Sequential: index {i!r} is out of range for length {len(items)}")
        if not isinstance(module, Module):
            raise TypeError(f"Sequential: item {i} must be a Module, got {type(module).__name__}")
        setattr(self, items[i][0], module)

    def append(self, module: Module) -> Sequential:
        if not isinstance(module, Module):
            raise TypeError(f"Sequential.append: expects a Module, got {type(module).__name__}")
        setattr(self, str(len(self)), module)
        return self

    def forward(self, x: Any) -> Any:
        for m in self:
            x = m(x)
        return x


class Identity(Module):
    """Returns its input unchanged (arguments are accepted and ignored, as in PyTorch): the
    placeholder for a layer removed from a model, e.g. `model.fc = nn.Identity()`."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__()

    def forward(self, x: Any) -> Any:
        return x


def _per_channel_state(
    module: Module,
    num_features: int,
    eps: float,
    momentum: float | None,
    affine: bool,
    track_running_stats: bool,
) -> None:
    """What batch and instance norm hold, under PyTorch's names: the settings, a weight
    (ones) and bias (zeros) per channel when affine, and the running statistics (mean
    zeros, variance ones, a batch count) when tracked."""
    module.num_features, module.eps, module.momentum = num_features, eps, momentum
    module.affine, module.track_running_stats = affine, track_running_stats
    module.register_parameter("weight", Parameter(np.ones(num_features)) if affine else None)
    module.register_parameter("bias", Parameter(np.zeros(num_features)) if affine else None)
    stats = track_running_stats
    zeros, ones = np.zeros(num_features, np.float32), np.ones(num_features, np.float32)
    module.register_buffer("running_mean", Tensor(zeros) if stats else None)
    module.register_buffer("running_var", Tensor(ones) if stats else None)
    batches = Tensor(np.zeros((), np.int64)) if stats else None
    module.register_buffer("num_batches_tracked", batches)


class _BatchNorm(Module):
    """Batch normalisation per channel (dim 1), over every other dim; PyTorch's semantics:
    training uses the batch's biased variance and updates running stats with the unbiased
    one: an exponential average with weight `momentum` (0.1), or with momentum=None the
    cumulative average over the batches seen (num_batches_tracked counts them). The update is
    written in DSL ops (`update_buffer`), so a compiled training step updates the statistics
    the same way. `affine=False`: no weight and bias; `track_running_stats=False`: no running
    statistics, batch statistics in eval mode too. Subclasses say which input ranks fit."""

    #: input ranks accepted, and how the error message describes them
    _ranks: tuple[int, ...] = ()
    _layout = ""

    def __init__(
        self,
        num_features: int,
        eps: float = 1e-5,
        momentum: float | None = 0.1,
        affine: bool = True,
        track_running_stats: bool = True,
    ):
        super().__init__()
        name = type(self).__name__
        _check_ints(name, num_features=num_features)
        if not eps > 0 or not (momentum is None or 0 <= momentum <= 1):
            raise ValueError(
                f"{name}: need eps > 0 and momentum in [0, 1] or None, got eps={eps}, "
                f"momentum={momentum}"
            )
        _per_channel_state(self, num_features, eps, momentum, affine, track_running_stats)

    def forward(self, x: Tensor) -> Tensor:
        name = type(self).__name__
        if x.ndim not in self._ranks or x.shape[1] != self.num_features:
            raise op_error(
                name,
                "expected " + self._layout.format(C=self.num_features),
                x.shape,
                "match num_features to the channel count",
            )
        shape = (1, self.num_features) + (1,) * (x.ndim - 2)
        axes = (0, *range(2, x.ndim))
        if self.training or not self.track_running_stats:
            count = x.size // self.num_features
            if count < 2 and self.training:
                raise op_error(
                    name,
                    "training needs more than 1 value per channel",
                    x.shape,
                    "use a larger batch, or call .eval() for inference",
                )
            mean = x.mean(axis=axes, keepdim=True)
            var = x.var(axis=axes, keepdim=True, correction=0)
            if self.training and self.track_running_stats:
                mean_c, var_c = mean.detach().reshape(-1), var.detach().reshape(-1)
                self._update_running_stats(mean_c, var_c, count)
        else:
            mean = self.running_mean.reshape(shape).cast(x.dtype)
            var = self.running_var.reshape(shape).cast(x.dtype)
        x_hat = (x - mean) / (var + self.eps).sqrt()
        if not self.affine:
            return x_hat
        return x_hat * self.weight.reshape(shape) + self.bias.reshape(shape)

    def _update_running_stats(self, mean: Tensor, var: Tensor, count: int) -> None:
        batches = self.num_batches_tracked + 1
        self.update_buffer("num_batches_tracked", batches)
        if self.momentum is None:  # cumulative average: weight 1/batches seen
            factor: Any = 1.0 / batches.cast(mean.dtype)
            keep: Any = 1.0 - factor
        else:
            factor, keep = self.momentum, 1 - self.momentum
        unbiased = var * (count / (count - 1))
        self.update_buffer("running_mean", self.running_mean * keep + mean * factor)
        self.update_buffer("running_var", self.running_var * keep + unbiased * factor)

    def extra_repr(self) -> str:
        return (
            f"{self.num_features}, eps={self.eps}, momentum={self.momentum}, "
            f"affine={self.affine}, track_running_stats={self.track_running_stats}"
        )


class BatchNorm2d(_BatchNorm):
    """Batch normalisation of (N, C, H, W) over (N, H, W) per channel (see `_BatchNorm`)."""

    _ranks = (4,)
    _layout = "(N, {C}, H, W)"


class BatchNorm3d(_BatchNorm):
    """Batch normalisation of (N, C, D, H, W) over (N, D, H, W) per channel."""

    _ranks = (5,)
    _layout = "(N, {C}, D, H, W)"


class BatchNorm1d(_BatchNorm):
    """Batch normalisation of (N, C) or (N, C, L) over N (and L) per channel (see
    `_BatchNorm`)."""

    _ranks = (2, 3)
    _layout = "(N, {C}) or (N, {C}, L)"


class LayerNorm(Module):
    """`LayerNorm(normalized_shape, eps=1e-5, elementwise_affine=True, bias=True)`:
    `F.layer_norm` over the last dims, with a learnt weight (ones) and bias (zeros) of
    `normalized_shape`, as PyTorch's."""

    def __init__(
        self,
        normalized_shape: Any,
        eps: float = 1e-5,
        elementwise_affine: bool = True,
        bias: bool = True,
    ):
        super().__init__()
        shape = (
            (normalized_shape,) if isinstance(normalized_shape, int) else tuple(normalized_shape)
        )
        _check_ints("LayerNorm", **{f"normalized_shape[{i}]": n for i, n in enumerate(shape)})
        if not shape or not eps > 0:
            raise ValueError("LayerNorm: need a non-empty normalized_shape and eps > 0")
        self.normalized_shape, self.eps = shape, eps
        self.elementwise_affine = elementwise_affine
        affine = elementwise_affine
        self.register_parameter("weight", Parameter(np.ones(shape)) if affine else None)
        self.register_parameter("bias", Parameter(np.zeros(shape)) if affine and bias else None)

    def forward(self, x: Tensor) -> Tensor:
        from .. import functional

        return functional.layer_norm(x, self.normalized_shape, self.weight, self.bias, self.eps)

    def extra_repr(self) -> str:
        return (
            f"{self.normalized_shape}, eps={self.eps}, elementwise_affine={self.elementwise_affine}"
        )


class GroupNorm(Module):
    """`GroupNorm(num_groups, num_channels, eps=1e-5, affine=True)`: `F.group_norm` with a
    learnt per-channel weight (ones) and bias (zeros), as PyTorch's."""

    def __init__(self, num_groups: int, num_channels: int, eps: float = 1e-5, affine: bool = True):
        super().__init__()
        _check_ints("GroupNorm", num_groups=num_groups, num_channels=num_channels)
        if num_channels % num_groups or not eps > 0:
            raise ValueError(
                f"GroupNorm: num_channels ({num_channels}) must be divisible by num_groups "
                f"({num_groups}), and eps > 0"
            )
        self.num_groups, self.num_channels, self.eps, self.affine = (
            num_groups, num_channels, eps, affine
        )  # fmt: skip
        self.register_parameter("weight", Parameter(np.ones(num_channels)) if affine else None)
        self.register_parameter("bias", Parameter(np.zeros(num_channels)) if affine else None)

    def forward(self, x: Tensor) -> Tensor:
        if x.ndim < 2 or x.shape[1] != self.num_channels:
            raise op_error(
                "GroupNorm",
                f"expected (N, {self.num_channels}, ...)",
                x.shape,
                "match num_channels to the channel count",
            )
        from .. import functional

        return functional.group_norm(x, self.num_groups, self.weight, self.bias, self.eps)

    def extra_repr(self) -> str:
        return f"{self.num_groups}, {self.num_channels}, eps={self.eps}, affine={self.affine}"


class Dropout2d(Module):
    """Whole channels of (N, C, H, W) zeroed with probability p while training
    (`F.dropout2d`); identity in eval mode."""

    _spatial = 2

    def __init__(self, p: float = 0.5, inplace: bool = False):
        super().__init__()
        if not 0.0 <= p <= 1.0:
            raise ValueError(f"{type(self).__name__}: p must be in [0, 1], got {p}")
        self.p = p

    def forward(self, x: Tensor) -> Tensor:
        from .. import functional

        drop = functional.dropout2d if self._spatial == 2 else functional.dropout1d
        return drop(x, self.p, self.training)


class Dropout1d(Dropout2d):
    """Whole channels of (N, C, L) zeroed with probability p while training."""

    _spatial = 1


class _Pad2d(Module):
    """Pad the last two dims by `padding` (an int, or (left, right, top, bottom))."""

    _mode = "constant"

    def __init__(self, padding: Any, value: float = 0.0):
        super().__init__()
        p = (padding,) * 4 if isinstance(padding, int) else tuple(padding)
        if len(p) != 4:
            raise ValueError(
                f"{type(self).__name__}: padding must be an int or (left, right, top, bottom), "
                f"got {padding!r}"
            )
        self.padding, self.value = p, value

    def forward(self, x: Tensor) -> Tensor:
        from .. import functional

        value = self.value if self._mode == "constant" else None
        return functional.pad(x, self.padding, self._mode, value)

    def extra_repr(self) -> str:
        return f"{self.padding}"


class ZeroPad2d(_Pad2d):
    def __init__(self, padding: Any):
        super().__init__(padding)


class ConstantPad2d(_Pad2d):
    def __init__(self, padding: Any, value: float):
        super().__init__(padding, value)


class ReflectionPad2d(_Pad2d):
    _mode = "reflect"

    def __init__(self, padding: Any):
        super().__init__(padding)


class ReplicationPad2d(_Pad2d):
    _mode = "replicate"

    def __init__(self, padding: Any):
        super().__init__(padding)


class PixelShuffle(Module):
    def __init__(self, upscale_factor: int):
        super().__init__()
        self.upscale_factor = upscale_factor

    def forward(self, x: Tensor) -> Tensor:
        from .. import functional

        return functional.pixel_shuffle(x, self.upscale_factor)


class PixelUnshuffle(Module):
    def __init__(self, downscale_factor: int):
        super().__init__()
        self.downscale_factor = downscale_factor

    def forward(self, x: Tensor) -> Tensor:
        from .. import functional

        return functional.pixel_unshuffle(x, self.downscale_factor)


class InstanceNorm2d(Module):
    """`InstanceNorm2d(num_features, eps=1e-5, momentum=0.1, affine=False,
    track_running_stats=False)`: `F.instance_norm` per example and channel, as PyTorch's
    (with running statistics, eval mode uses them)."""

    def __init__(
        self,
        num_features: int,
        eps: float = 1e-5,
        momentum: float = 0.1,
        affine: bool = False,
        track_running_stats: bool = False,
    ):
        super().__init__()
        _check_ints("InstanceNorm2d", num_features=num_features)
        _per_channel_state(self, num_features, eps, momentum, affine, track_running_stats)

    def forward(self, x: Tensor) -> Tensor:
        from .. import functional

        if x.ndim != 4 or x.shape[1] != self.num_features:
            raise op_error(
                "InstanceNorm2d",
                f"expected (N, {self.num_features}, H, W)",
                x.shape,
                "match num_features to the channel count",
            )
        # training, or no running statistics: each instance's own (updating the running
        # ones when tracked); eval with running statistics: those
        own = self.training or not self.track_running_stats
        return functional.instance_norm(
            x,
            self.running_mean,
            self.running_var,
            self.weight,
            self.bias,
            use_input_stats=own,
            momentum=self.momentum,
            eps=self.eps,
        )


class _Pool1d(Module):
    def __init__(self, kernel_size: int, stride: int | None = None, padding: int = 0, **kw: Any):
        super().__init__()
        self.kernel_size, self.stride, self.padding, self.kw = kernel_size, stride, padding, kw


class MaxPool1d(_Pool1d):
    def __init__(
        self,
        kernel_size: int,
        stride: int | None = None,
        padding: int = 0,
        dilation: int = 1,
        ceil_mode: bool = False,
    ):
        super().__init__(kernel_size, stride, padding, dilation=dilation, ceil_mode=ceil_mode)

    def forward(self, x: Tensor) -> Tensor:
        from .. import functional

        return functional.max_pool1d(x, self.kernel_size, self.stride, self.padding, **self.kw)


class AvgPool1d(_Pool1d):
    def __init__(
        self,
        kernel_size: int,
        stride: int | None = None,
        padding: int = 0,
        ceil_mode: bool = False,
        count_include_pad: bool = True,
    ):
        super().__init__(
            kernel_size, stride, padding, ceil_mode=ceil_mode, count_include_pad=count_include_pad
        )

    def forward(self, x: Tensor) -> Tensor:
        from .. import functional

        return functional.avg_pool1d(x, self.kernel_size, self.stride, self.padding, **self.kw)


class AdaptiveAvgPool1d(Module):
    def __init__(self, output_size: int):
        super().__init__()
        self.output_size = output_size

    def forward(self, x: Tensor) -> Tensor:
        from .. import functional

        return functional.adaptive_avg_pool1d(x, self.output_size)


class Embedding(Module):
    """`Embedding(num_embeddings, embedding_dim, padding_idx=None)`: a learnt table of
    rows, N(0, 1) at first (the padding row zeros and never updated), as PyTorch's."""

    def __init__(self, num_embeddings: int, embedding_dim: int, padding_idx: int | None = None):
        super().__init__()
        _check_ints("Embedding", num_embeddings=num_embeddings, embedding_dim=embedding_dim)
        if padding_idx is not None and not -num_embeddings <= padding_idx < num_embeddings:
            raise ValueError(f"Embedding: padding_idx {padding_idx} is out of range")
        self.num_embeddings, self.embedding_dim = num_embeddings, embedding_dim
        self.padding_idx = None if padding_idx is None else padding_idx % num_embeddings
        table = rng.generator().normal(0.0, 1.0, (num_embeddings, embedding_dim))
        if self.padding_idx is not None:
            table[self.padding_idx] = 0.0
        self.weight = Parameter(table)

    def forward(self, x: Tensor) -> Tensor:
        from .. import functional

        return functional.embedding(x, self.weight, self.padding_idx)

    def extra_repr(self) -> str:
        return f"{self.num_embeddings}, {self.embedding_dim}"


class MultiheadAttention(Module):
    """`MultiheadAttention(embed_dim, num_heads, dropout=0.0, bias=True, batch_first=False)`
    with PyTorch's parameters (`in_proj_weight` (3E, E) Xavier-uniform, `in_proj_bias`
    zeros, `out_proj` a Linear with zero bias) and call: `out, weights = mha(query, key,
    value, key_padding_mask=None, need_weights=True, attn_mask=None,
    average_attn_weights=True, is_causal=False)`. As in torch, a bool mask is True where
    attention is NOT allowed (the opposite of `F.scaled_dot_product_attention`'s), a float
    mask is added; weights are averaged over heads unless asked not to."""

    def __init__(
        self,
        embed_dim: int,
        num_heads: int,
        dropout: float = 0.0,
        bias: bool = True,
        add_bias_kv: bool = False,
        add_zero_attn: bool = False,
        kdim: int | None = None,
        vdim: int | None = None,
        batch_first: bool = False,
    ):
        super().__init__()
        _check_ints("MultiheadAttention", embed_dim=embed_dim, num_heads=num_heads)
        if embed_dim % num_heads:
            raise ValueError(
                f"MultiheadAttention: embed_dim ({embed_dim}) must be divisible by num_heads "
                f"({num_heads})"
            )
        if add_bias_kv or add_zero_attn:
            raise ValueError(
                "MultiheadAttention: add_bias_kv and add_zero_attn are not offered; append "
                "the extra key/value rows to key and value yourself"
            )
        self.embed_dim, self.num_heads, self.dropout = embed_dim, num_heads, dropout
        self.batch_first, self.head_dim = batch_first, embed_dim // num_heads
        self.kdim = embed_dim if kdim is None else kdim
        self.vdim = embed_dim if vdim is None else vdim
        self._qkv_same_embed_dim = self.kdim == embed_dim and self.vdim == embed_dim
        if self._qkv_same_embed_dim:
            bound = math.sqrt(6.0 / (embed_dim + 3 * embed_dim))  # xavier_uniform_, (3E, E)
            self.in_proj_weight = Parameter(
                rng.generator().uniform(-bound, bound, (3 * embed_dim, embed_dim))
            )
        else:  # torch's separate projections (its names) when key/value widths differ
            for name, width in (("q", embed_dim), ("k", self.kdim), ("v", self.vdim)):
                bound = math.sqrt(6.0 / (embed_dim + width))
                weight = rng.generator().uniform(-bound, bound, (embed_dim, width))
                self.register_parameter(f"{name}_proj_weight", Parameter(weight))
            self.register_parameter("in_proj_weight", None)
        self.register_parameter(
            "in_proj_bias", Parameter(np.zeros(3 * embed_dim)) if bias else None
        )
        self.out_proj = Linear(embed_dim, embed_dim, bias=bias)
        if bias:
            self.out_proj.bias = Parameter(np.zeros(embed_dim))

    def forward(
        self,
        query: Tensor,
        key: Tensor,
        value: Tensor,
        key_padding_mask: Tensor | None = None,
        need_weights: bool = True,
        attn_mask: Tensor | None = None,
        average_attn_weights: bool = True,
        is_causal: bool = False,
    ) -> tuple[Tensor, Tensor | None]:
        from ..tensor import where

        unbatched = query.ndim == 2
        if unbatched:
            query, key, value = (
                t.unsqueeze(0 if self.batch_first else 1) for t in (query, key, value)
            )
        if query.ndim != 3 or query.shape[-1] != self.embed_dim:
            raise op_error(
                "MultiheadAttention",
                f"expected (L, N, {self.embed_dim}) inputs, or (N, L, {self.embed_dim}) with "
                "batch_first=True",
                f"query {query.shape}, key {key.shape}, value {value.shape}",
                "match embed_dim to the inputs' last dim",
            )
        if not self.batch_first:
            query, key, value = (t.transpose(0, 1) for t in (query, key, value))
        n, length, e = query.shape
        source = key.shape[1]
        b = self.in_proj_bias
        if self._qkv_same_embed_dim:
            w = self.in_proj_weight
            weights = [w[i * e : (i + 1) * e] for i in range(3)]
        else:
            weights = [self.q_proj_weight, self.k_proj_weight, self.v_proj_weight]
        parts = [
            t.linear(weights[i], None if b is None else b[i * e : (i + 1) * e])
            for i, t in enumerate((query, key, value))
        ]
        q, k, v = (p.reshape(n, -1, self.num_heads, self.head_dim).transpose(1, 2) for p in parts)
        scores = (q @ k.transpose(-2, -1)) * (1.0 / math.sqrt(self.head_dim))
        if is_causal and attn_mask is None:
            attn_mask = Tensor(~np.tril(np.ones((length, source), dtype=bool)))
        if attn_mask is not None:
            m = (
                attn_mask
                if attn_mask.ndim == 2
                else attn_mask.reshape(n, self.num_heads, length, source)
            )
            scores = where(m, -np.inf, scores) if m.dtype == np.bool_ else scores + m
        if key_padding_mask is not None:
            pad = key_padding_mask.reshape(n, 1, 1, source)
            scores = where(pad, -np.inf, scores) if pad.dtype == np.bool_ else scores + pad
        weights = scores.softmax(-1)
        if self.training and self.dropout > 0:
            weights = weights.dropout(self.dropout)
        out = (weights @ v).transpose(1, 2).reshape(n, length, e)
        out = self.out_proj(out)
        if not self.batch_first:
            out = out.transpose(0, 1)
        if unbatched:
            out = out.squeeze(0 if self.batch_first else 1)
        if not need_weights:
            return out, None
        shown = weights.mean(1) if average_attn_weights else weights
        return out, shown.squeeze(0) if unbatched else shown


class TransformerEncoderLayer(Module):
    """`TransformerEncoderLayer(d_model, nhead, dim_feedforward=2048, dropout=0.1,
    activation="relu", layer_norm_eps=1e-5, batch_first=False, norm_first=False,
    bias=True)`: self-attention and a feed-forward block, each with a residual and a
    LayerNorm (after, or before with norm_first), torch's submodule names."""

    def __init__(
        self,
        d_model: int,
        nhead: int,
        dim_feedforward: int = 2048,
        dropout: float = 0.1,
        activation: Any = "relu",
        layer_norm_eps: float = 1e-5,
        batch_first: bool = False,
        norm_first: bool = False,
        bias: bool = True,
    ):
        super().__init__()
        self.self_attn = MultiheadAttention(
            d_model, nhead, dropout, bias=bias, batch_first=batch_first
        )
        self.linear1 = Linear(d_model, dim_feedforward, bias=bias)
        self.dropout = Dropout(dropout)
        self.linear2 = Linear(dim_feedforward, d_model, bias=bias)
        self.norm_first = norm_first
        self.norm1 = LayerNorm(d_model, eps=layer_norm_eps, bias=bias)
        self.norm2 = LayerNorm(d_model, eps=layer_norm_eps, bias=bias)
        self.dropout1, self.dropout2 = Dropout(dropout), Dropout(dropout)
        if activation in ("relu", "gelu"):
            self._activation = activation
        elif callable(activation):
            self._activation = activation
        else:
            raise ValueError(
                f"TransformerEncoderLayer: activation must be 'relu', 'gelu' or a callable, "
                f"got {activation!r}"
            )

    def _act(self, x: Tensor) -> Tensor:
        if self._activation == "relu":
            return x.relu()
        if self._activation == "gelu":
            return x.gelu()
        return self._activation(x)

    def forward(
        self,
        src: Tensor,
        src_mask: Tensor | None = None,
        src_key_padding_mask: Tensor | None = None,
        is_causal: bool = False,
    ) -> Tensor:
        def attend(x: Tensor) -> Tensor:
            out, _ = self.self_attn(
                x, x, x, src_key_padding_mask, False, src_mask, is_causal=is_causal
            )
            return self.dropout1(out)

        def feed_forward(x: Tensor) -> Tensor:
            return self.dropout2(self.linear2(self.dropout(self._act(self.linear1(x)))))

        x = src
        if self.norm_first:
            x = x + attend(self.norm1(x))
            return x + feed_forward(self.norm2(x))
        x = self.norm1(x + attend(x))
        return self.norm2(x + feed_forward(x))


class TransformerEncoder(Module):
    """`TransformerEncoder(encoder_layer, num_layers, norm=None)`: num_layers copies of the
    layer (`layers.0`, `layers.1`, ... as torch's), then `norm` if given."""

    def __init__(self, encoder_layer: Module, num_layers: int, norm: Module | None = None):
        super().__init__()
        import copy

        _check_ints("TransformerEncoder", num_layers=num_layers)
        self.layers = ModuleList([copy.deepcopy(encoder_layer) for _ in range(num_layers)])
        self.num_layers = num_layers
        self.norm = norm

    def forward(
        self,
        src: Tensor,
        mask: Tensor | None = None,
        src_key_padding_mask: Tensor | None = None,
        is_causal: bool = False,
    ) -> Tensor:
        x = src
        for layer in self.layers:
            x = layer(x, mask, src_key_padding_mask, is_causal)
        return x if self.norm is None else self.norm(x)


from .containers import ModuleDict, ModuleList, ParameterDict, ParameterList  # noqa: E402


# ---------------------------------------------------------------------------------------------
# activations (PyTorch's names and arguments; `inplace` is accepted and ignored: the DSL has
# no in-place ops, so the result is the same)
# ---------------------------------------------------------------------------------------------
class Hardtanh(Module):
    """Clamp to [min_val, max_val]; gradient 0 at the ends (`Tensor.hardtanh`)."""

    def __init__(self, min_val: float = -1.0, max_val: float = 1.0, inplace: bool = False):
        super().__init__()
        if not min_val <= max_val:
            raise ValueError(f"Hardtanh: need min_val <= max_val, got {min_val} > {max_val}")
        self.min_val, self.max_val = float(min_val), float(max_val)

    def forward(self, x: Tensor) -> Tensor:
        return x.hardtanh(self.min_val, self.max_val)

    def extra_repr(self) -> str:
        return f"min_val={self.min_val}, max_val={self.max_val}"


class ReLU6(Hardtanh):
    """min(max(x, 0), 6): MobileNet's activation (a Hardtanh(0, 6), as in PyTorch)."""

    def __init__(self, inplace: bool = False):
        super().__init__(0.0, 6.0)

    def extra_repr(self) -> str:
        return ""


class LeakyReLU(Module):
    def __init__(self, negative_slope: float = 0.01, inplace: bool = False):
        super().__init__()
        self.negative_slope = float(negative_slope)

    def forward(self, x: Tensor) -> Tensor:
        return x.leaky_relu(self.negative_slope)

    def extra_repr(self) -> str:
        return f"negative_slope={self.negative_slope}"


class GELU(Module):
    """x * Phi(x), exact (erf) or approximate="tanh"."""

    def __init__(self, approximate: str = "none"):
        super().__init__()
        if approximate not in ("none", "tanh"):
            raise ValueError(f"GELU: approximate must be 'none' or 'tanh', got {approximate!r}")
        self.approximate = approximate

    def forward(self, x: Tensor) -> Tensor:
        return x.gelu(self.approximate)

    def extra_repr(self) -> str:
        return f"approximate={self.approximate!r}"


class _Elementwise(Module):
    """An activation without parameters: `forward` calls the Tensor method `_method`."""

    _method = ""

    def __init__(self, inplace: bool = False):
        super().__init__()

    def forward(self, x: Tensor) -> Tensor:
        return getattr(x, self._method)()


class SiLU(_Elementwise):
    _method = "silu"


class Hardswish(_Elementwise):
    _method = "hardswish"


class Hardsigmoid(_Elementwise):
    _method = "hardsigmoid"


class SELU(_Elementwise):
    _method = "selu"


class Mish(_Elementwise):
    _method = "mish"


class LogSigmoid(_Elementwise):
    _method = "logsigmoid"


class Softsign(_Elementwise):
    _method = "softsign"


class Tanhshrink(_Elementwise):
    _method = "tanhshrink"


class ELU(Module):
    def __init__(self, alpha: float = 1.0, inplace: bool = False):
        super().__init__()
        self.alpha = float(alpha)

    def forward(self, x: Tensor) -> Tensor:
        return x.elu(self.alpha)

    def extra_repr(self) -> str:
        return f"alpha={self.alpha}"


class CELU(ELU):
    def forward(self, x: Tensor) -> Tensor:
        return x.celu(self.alpha)


class Softplus(Module):
    def __init__(self, beta: float = 1.0, threshold: float = 20.0):
        super().__init__()
        self.beta, self.threshold = float(beta), float(threshold)

    def forward(self, x: Tensor) -> Tensor:
        return x.softplus(self.beta, self.threshold)

    def extra_repr(self) -> str:
        return f"beta={self.beta}, threshold={self.threshold}"


class Hardshrink(Module):
    def __init__(self, lambd: float = 0.5):
        super().__init__()
        self.lambd = float(lambd)

    def forward(self, x: Tensor) -> Tensor:
        return x.hardshrink(self.lambd)


class Softshrink(Hardshrink):
    def forward(self, x: Tensor) -> Tensor:
        return x.softshrink(self.lambd)


class Threshold(Module):
    def __init__(self, threshold: float, value: float, inplace: bool = False):
        super().__init__()
        self.threshold, self.value = float(threshold), float(value)

    def forward(self, x: Tensor) -> Tensor:
        return x.threshold(self.threshold, self.value)


class PReLU(Module):
    """x where x > 0, else a * x, with a learnable `weight` a: one shared value or one per
    channel (num_parameters=C), initialised to `init`."""

    def __init__(self, num_parameters: int = 1, init: float = 0.25):
        super().__init__()
        _check_ints("PReLU", num_parameters=num_parameters)
        self.num_parameters = num_parameters
        self.weight = Parameter(np.full(num_parameters, init))

    def forward(self, x: Tensor) -> Tensor:
        return x.prelu(self.weight)

    def extra_repr(self) -> str:
        return f"num_parameters={self.num_parameters}"


class Softmax(Module):
    def __init__(self, dim: int | None = None):
        super().__init__()
        self.dim = dim

    def forward(self, x: Tensor) -> Tensor:
        from .. import functional

        return functional.softmax(x, self.dim)

    def extra_repr(self) -> str:
        return f"dim={self.dim}"


class LogSoftmax(Softmax):
    def forward(self, x: Tensor) -> Tensor:
        from .. import functional

        return functional.log_softmax(x, self.dim)


class Softmin(Softmax):
    def forward(self, x: Tensor) -> Tensor:
        from .. import functional

        return functional.softmin(x, self.dim)


# ---------------------------------------------------------------------------------------------
# losses (`tinygrad_edu.losses` has the definitions; `size_average`/`reduce` are PyTorch's
# deprecated spellings of `reduction`, honoured the same way)
# ---------------------------------------------------------------------------------------------
class _Loss(Module):
    def __init__(
        self, size_average: bool | None = None, reduce: bool | None = None, reduction: str = "mean"
    ):
        super().__init__()
        self.reduction = losses.legacy_reduction(size_average, reduce, reduction)
        losses.check_reduction(self.reduction, type(self).__name__)

    def extra_repr(self) -> str:
        return f"reduction={self.reduction!r}"


class _WeightedLoss(_Loss):
    """A loss with an optional per-class `weight`, kept as a buffer (as PyTorch does)."""

    def __init__(
        self,
        weight: Any = None,
        size_average: bool | None = None,
        reduce: bool | None = None,
        reduction: str = "mean",
    ):
        super().__init__(size_average, reduce, reduction)
        if weight is None:
            self.weight = None
        else:
            self.register_buffer("weight", _as_tensor(np.asarray(weight, np.float32)))


class CrossEntropyLoss(_WeightedLoss):
    def __init__(
        self,
        weight: Any = None,
        size_average: bool | None = None,
        ignore_index: int = -100,
        reduce: bool | None = None,
        reduction: str = "mean",
        label_smoothing: float = 0.0,
    ):
        super().__init__(weight, size_average, reduce, reduction)
        self.ignore_index, self.label_smoothing = ignore_index, label_smoothing

    def forward(self, input: Tensor, target: Any) -> Tensor:
        return losses.cross_entropy(
            input, target, self.weight, self.ignore_index, self.reduction, self.label_smoothing
        )


class NLLLoss(_WeightedLoss):
    def __init__(
        self,
        weight: Any = None,
        size_average: bool | None = None,
        ignore_index: int = -100,
        reduce: bool | None = None,
        reduction: str = "mean",
    ):
        super().__init__(weight, size_average, reduce, reduction)
        self.ignore_index = ignore_index

    def forward(self, input: Tensor, target: Any) -> Tensor:
        return losses.nll_loss(input, target, self.weight, self.ignore_index, self.reduction)


class MSELoss(_Loss):
    def forward(self, input: Tensor, target: Any) -> Tensor:
        return losses.mse_loss(input, target, self.reduction)


class L1Loss(_Loss):
    def forward(self, input: Tensor, target: Any) -> Tensor:
        return losses.l1_loss(input, target, self.reduction)


class SmoothL1Loss(_Loss):
    def __init__(
        self,
        size_average: bool | None = None,
        reduce: bool | None = None,
        reduction: str = "mean",
        beta: float = 1.0,
    ):
        super().__init__(size_average, reduce, reduction)
        self.beta = beta

    def forward(self, input: Tensor, target: Any) -> Tensor:
        return losses.smooth_l1_loss(input, target, self.reduction, self.beta)


class HuberLoss(_Loss):
    def __init__(self, reduction: str = "mean", delta: float = 1.0):
        super().__init__(reduction=reduction)
        self.delta = delta

    def forward(self, input: Tensor, target: Any) -> Tensor:
        return losses.huber_loss(input, target, self.reduction, self.delta)


class BCELoss(_WeightedLoss):
    def forward(self, input: Tensor, target: Any) -> Tensor:
        return losses.binary_cross_entropy(input, target, self.weight, self.reduction)


class BCEWithLogitsLoss(_WeightedLoss):
    def __init__(
        self,
        weight: Any = None,
        size_average: bool | None = None,
        reduce: bool | None = None,
        reduction: str = "mean",
        pos_weight: Any = None,
    ):
        super().__init__(weight, size_average, reduce, reduction)
        if pos_weight is None:
            self.pos_weight = None
        else:
            self.register_buffer("pos_weight", _as_tensor(np.asarray(pos_weight, np.float32)))

    def forward(self, input: Tensor, target: Any) -> Tensor:
        return losses.binary_cross_entropy_with_logits(
            input, target, self.weight, self.reduction, self.pos_weight
        )


__all__ = [
    "AdaptiveAvgPool2d", "AvgPool2d", "BatchNorm2d", "Conv2d", "Dropout", "Flatten", "Linear",
    "LocalResponseNorm", "MaxPool2d", "Module", "Parameter", "ReLU", "Sequential", "Sigmoid",
    "Tanh", "load", "save",
    # activations
    "CELU", "ELU", "GELU", "Hardshrink", "Hardsigmoid", "Hardswish", "Hardtanh", "LeakyReLU",
    "LogSigmoid", "LogSoftmax", "Mish", "PReLU", "ReLU6", "SELU", "SiLU", "Softmax", "Softmin",
    "Softplus", "Softshrink", "Softsign", "Tanhshrink", "Threshold",
    # losses
    "BCELoss", "BCEWithLogitsLoss", "CrossEntropyLoss", "HuberLoss", "L1Loss", "MSELoss",
    "NLLLoss", "SmoothL1Loss",
]  # fmt: skip
__all__ += [
    "BatchNorm1d", "Identity", "ModuleDict", "ModuleList", "ParameterDict", "ParameterList",
]  # fmt: skip
__all__ += [
    "AdaptiveMaxPool2d",
    "Conv1d",
    "ConvTranspose2d",
    "Upsample",
    "UpsamplingBilinear2d",
    "UpsamplingNearest2d",
]  # image ops (tinygrad_edu.image)

# PyTorch's nn.init (it fills tensors in place; last, so nothing above is shadowed by it)
from . import init  # noqa: E402

__all__ += ["init"]
__all__ += [
    "AdaptiveAvgPool1d", "AvgPool1d", "BatchNorm3d", "ConstantPad2d", "Dropout1d", "Dropout2d",
    "Embedding", "GroupNorm", "InstanceNorm2d", "LayerNorm", "MaxPool1d", "MultiheadAttention",
    "PixelShuffle", "PixelUnshuffle", "ReflectionPad2d", "ReplicationPad2d",
    "TransformerEncoder", "TransformerEncoderLayer", "Unflatten", "ZeroPad2d",
]  # fmt: skip

# `nn.parameter.Parameter`, torch's module path of the same function
from . import parameter  # noqa: E402

__all__ += ["parameter"]

# `import tinygrad_edu` then `tinygrad_edu.nn.functional.relu` works, as torch.nn.functional
# (importing the submodule sets the package's attribute; the layers above import
# tinygrad_edu.functional under that name locally)
importlib.import_module(f"{__name__}.functional")
