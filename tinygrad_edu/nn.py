"""Neural-network modules in the DSL, with PyTorch's names, layouts and initialisation.

A `Module` finds its parameters (Tensors with `requires_grad=True`), buffers (registered with
`register_buffer`) and sub-modules from its attributes, in assignment order, so parameter
names match PyTorch's (`features.0.weight`) and a `state_dict` maps one-to-one onto a
PyTorch model's. `state_dict()` holds plain numpy arrays; `save`/`load` write them to `.npz`
atomically and read them back without pickle.
"""

from __future__ import annotations

import math
import os
import tempfile
from collections.abc import Iterator, Mapping
from typing import Any

import numpy as np

from . import rng
from .autograd import module_scope, tracing
from .errors import op_error
from .tensor import Tensor


def Parameter(data: Any, dtype: Any = np.float32) -> Tensor:  # noqa: N802 (PyTorch's name)
    """A trainable tensor: float data with `requires_grad=True`."""
    return Tensor(np.asarray(data), dtype=dtype, requires_grad=True)


def _uniform(shape: tuple[int, ...], bound: float) -> Tensor:
    return Parameter(rng.generator().uniform(-bound, bound, shape))


def _as_tensor(value: Any) -> Any:
    return Tensor(value) if isinstance(value, np.ndarray) else value


class Module:
    """Base class: subclasses set attributes in `__init__` and define `forward`."""

    def __init__(self) -> None:
        object.__setattr__(self, "training", True)
        object.__setattr__(self, "_buffers", [])

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        """Run `forward`. numpy arrays among the arguments (a DataLoader batch, say) become
        Tensors first, with `Tensor()`'s dtype rule (float data to float32, ints to int64)."""
        args = tuple(_as_tensor(a) for a in args)
        kwargs = {k: _as_tensor(v) for k, v in kwargs.items()}
        with module_scope(self):  # while tracing, the ops inside are this module's
            return self.forward(*args, **kwargs)

    def forward(self, *args: Any, **kwargs: Any) -> Any:
        raise TypeError(f"{type(self).__name__} has no forward(); define one in the subclass")

    def register_buffer(self, name: str, tensor: Tensor) -> None:
        """A tensor that is saved in the state_dict but not trained (e.g. running means)."""
        setattr(self, name, tensor)
        if name not in self._buffers:
            self._buffers.append(name)

    # -- traversal ----------------------------------------------------------------------------
    def named_children(self) -> Iterator[tuple[str, Module]]:
        for name, value in vars(self).items():
            if isinstance(value, Module):
                yield name, value

    def named_modules(self, prefix: str = "") -> Iterator[tuple[str, Module]]:
        yield prefix, self
        for name, child in self.named_children():
            yield from child.named_modules(f"{prefix}.{name}" if prefix else name)

    def _own_tensors(self) -> Iterator[tuple[str, Tensor, bool]]:
        for name, value in vars(self).items():
            if isinstance(value, Tensor):
                is_buffer = name in self._buffers
                if is_buffer or value.requires_grad:
                    yield name, value, is_buffer

    def named_parameters(self, prefix: str = "") -> Iterator[tuple[str, Tensor]]:
        """(dotted name, tensor) for every trainable tensor, PyTorch's order and names."""
        for name, value, is_buffer in self._own_tensors():
            if not is_buffer:
                yield (f"{prefix}{name}", value)
        for name, child in self.named_children():
            yield from child.named_parameters(f"{prefix}{name}.")

    def named_buffers(self, prefix: str = "", recurse: bool = True) -> Iterator[tuple[str, Tensor]]:
        """(dotted name, tensor) for every buffer (running statistics), PyTorch's order."""
        for name, value, is_buffer in self._own_tensors():
            if is_buffer:
                yield (f"{prefix}{name}", value)
        if recurse:
            for name, child in self.named_children():
                yield from child.named_buffers(f"{prefix}{name}.")

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

    def parameters(self) -> list[Tensor]:
        return [p for _, p in self.named_parameters()]

    def num_parameters(self) -> int:
        return sum(p.size for p in self.parameters())

    def _named_state(self, prefix: str = "") -> Iterator[tuple[str, Tensor]]:
        # PyTorch's state_dict order: own parameters, own buffers, then each child.
        own = list(self._own_tensors())
        for name, value, is_buffer in own:
            if not is_buffer:
                yield f"{prefix}{name}", value
        for name, value, is_buffer in own:
            if is_buffer:
                yield f"{prefix}{name}", value
        for name, child in self.named_children():
            yield from child._named_state(f"{prefix}{name}.")

    # -- modes and gradients --------------------------------------------------------------------
    def train(self, mode: bool = True) -> Module:
        for _, module in self.named_modules():
            object.__setattr__(module, "training", mode)
        return self

    def eval(self) -> Module:
        """Inference mode: dropout off, batch norm uses running statistics."""
        return self.train(False)

    def zero_grad(self) -> None:
        for p in self.parameters():
            p.grad = None

    # -- state ----------------------------------------------------------------------------------
    def state_dict(self) -> dict[str, np.ndarray]:
        """Copies of every parameter and buffer as numpy arrays, keyed by dotted name."""
        return {name: np.array(t.numpy(), copy=True) for name, t in self._named_state()}

    def load_state_dict(self, state: Mapping[str, Any], strict: bool = True) -> None:
        """Copy arrays into the parameters and buffers in place.

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
        problems = []
        if strict and missing:
            problems.append(f"missing keys {missing}")
        if strict and unexpected:
            problems.append(f"unexpected keys {unexpected}")
        if wrong:
            problems.append("shape mismatch " + "; ".join(wrong))
        if problems:
            raise op_error(
                "load_state_dict",
                f"state_dict does not fit {type(self).__name__}: " + ", ".join(problems),
                f"{len(state)} given keys vs {len(own)} expected",
                "load weights saved from the same architecture (or pass strict=False to "
                "skip missing/unexpected keys)",
            )
        for key, tensor in own.items():
            if key in state:
                tensor.data[...] = np.asarray(state[key], dtype=tensor.dtype)

    def __repr__(self) -> str:
        children = [f"  ({n}): " + repr(m).replace("\n", "\n  ") for n, m in self.named_children()]
        extra = self.extra_repr()
        if not children:
            return f"{type(self).__name__}({extra})"
        return f"{type(self).__name__}(\n" + "\n".join(children) + "\n)"

    def extra_repr(self) -> str:
        return ""


def save(state: Mapping[str, np.ndarray], path: str | os.PathLike[str]) -> None:
    """Write a state_dict (or any name -> array mapping) to `.npz` atomically.

    The arrays go to a temporary file in the same directory, which is flushed, fsynced and then
    renamed over `path`: a crash mid-write leaves the previous file intact, never a torn one.
    """
    path = os.fspath(path)
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=directory, prefix=".tmp-", suffix=".npz")
    try:
        with os.fdopen(fd, "wb") as f:
            np.savez(f, **{k: np.asarray(v) for k, v in state.items()})
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def load(path: str | os.PathLike[str]) -> dict[str, np.ndarray]:
    """Read a `.npz` written by `save` (no pickle: object arrays are refused)."""
    try:
        with np.load(os.fspath(path), allow_pickle=False) as f:
            return {k: f[k] for k in f.files}
    except FileNotFoundError:
        raise FileNotFoundError(f"load: no checkpoint at {path!s}") from None
    except (ValueError, OSError) as e:
        raise ValueError(f"load: {path!s} is not a readable .npz checkpoint ({e})") from None


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


class MaxPool2d(Module):
    def __init__(self, kernel_size: Any, stride: Any = None, padding: Any = 0, dilation: Any = 1):
        super().__init__()
        if min(_pair(kernel_size)) < 1 or (stride is not None and min(_pair(stride)) < 1):
            raise ValueError(
                f"MaxPool2d: kernel_size and stride must be >= 1, got {kernel_size}, {stride}"
            )
        self.kernel_size, self.stride, self.padding = kernel_size, stride, padding
        self.dilation = dilation

    def forward(self, x: Tensor) -> Tensor:
        return x.max_pool2d(self.kernel_size, self.stride, self.padding, self.dilation)

    def extra_repr(self) -> str:
        return f"kernel_size={self.kernel_size}, stride={self.stride or self.kernel_size}"


class AvgPool2d(Module):
    def __init__(self, kernel_size: Any, stride: Any = None, padding: Any = 0):
        super().__init__()
        if min(_pair(kernel_size)) < 1 or (stride is not None and min(_pair(stride)) < 1):
            raise ValueError(
                f"AvgPool2d: kernel_size and stride must be >= 1, got {kernel_size}, {stride}"
            )
        self.kernel_size, self.stride, self.padding = kernel_size, stride, padding

    def forward(self, x: Tensor) -> Tensor:
        return x.avg_pool2d(self.kernel_size, self.stride, self.padding)


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


class Sequential(Module):
    """Modules applied in order; children are named "0", "1", ... as in PyTorch."""

    def __init__(self, *modules: Module):
        super().__init__()
        for i, m in enumerate(modules):
            if not isinstance(m, Module):
                raise TypeError(f"Sequential: item {i} is a {type(m).__name__}, not a Module")
            setattr(self, str(i), m)

    def __iter__(self) -> Iterator[Module]:
        return (m for _, m in self.named_children())

    def __len__(self) -> int:
        return sum(1 for _ in self.named_children())

    def __getitem__(self, i: int) -> Module:
        return list(self)[i]

    def forward(self, x: Any) -> Any:
        for m in self:
            x = m(x)
        return x


class BatchNorm2d(Module):
    """Batch normalisation over (N, H, W) per channel, PyTorch's semantics: training uses the
    batch's biased variance and updates running stats with the unbiased one: an exponential
    average with weight `momentum` (0.1), or with momentum=None the cumulative average over
    the batches seen (num_batches_tracked counts them). The update is written in DSL ops
    (`update_buffer`), so a compiled training step updates the statistics the same way."""

    def __init__(self, num_features: int, eps: float = 1e-5, momentum: float | None = 0.1):
        super().__init__()
        _check_ints("BatchNorm2d", num_features=num_features)
        if not eps > 0 or not (momentum is None or 0 <= momentum <= 1):
            raise ValueError(
                f"BatchNorm2d: need eps > 0 and momentum in [0, 1] or None, got eps={eps}, "
                f"momentum={momentum}"
            )
        self.num_features, self.eps, self.momentum = num_features, eps, momentum
        self.weight = Parameter(np.ones(num_features))
        self.bias = Parameter(np.zeros(num_features))
        self.register_buffer("running_mean", Tensor(np.zeros(num_features, np.float32)))
        self.register_buffer("running_var", Tensor(np.ones(num_features, np.float32)))
        self.register_buffer("num_batches_tracked", Tensor(np.zeros((), np.int64)))

    def forward(self, x: Tensor) -> Tensor:
        if x.ndim != 4 or x.shape[1] != self.num_features:
            raise op_error(
                "BatchNorm2d",
                f"expected (N, {self.num_features}, H, W)",
                x.shape,
                "match num_features to the channel count",
            )
        shape = (1, self.num_features, 1, 1)
        if self.training:
            count = x.shape[0] * x.shape[2] * x.shape[3]
            if count < 2:
                raise op_error(
                    "BatchNorm2d",
                    "training needs more than 1 value per channel",
                    x.shape,
                    "use a larger batch, or call .eval() for inference",
                )
            mean = x.mean(axis=(0, 2, 3), keepdim=True)
            var = x.var(axis=(0, 2, 3), keepdim=True, correction=0)
            self._update_running_stats(mean.detach().reshape(-1), var.detach().reshape(-1), count)
        else:
            mean = self.running_mean.reshape(shape).cast(x.dtype)
            var = self.running_var.reshape(shape).cast(x.dtype)
        x_hat = (x - mean) / (var + self.eps).sqrt()
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


__all__ = [
    "AdaptiveAvgPool2d", "AvgPool2d", "BatchNorm2d", "Conv2d", "Dropout", "Flatten", "Linear",
    "LocalResponseNorm", "MaxPool2d", "Module", "Parameter", "ReLU", "Sequential", "Sigmoid",
    "Tanh", "load", "save",
]  # fmt: skip
