"""PyTorch's method forms of the Tensor ops: `x.add(y, alpha=2)`, `x.t()`, `x.flip(0)`,
`x.max(1)` giving (values, indices), ...

Every method here is a composition of ops that `Tensor` already has (and so of the op
table's primitives): it adds no forward and no gradient rule of its own, so the eager, scalar
and compiled paths all run the same definitions. `Tensor` inherits them from `MethodForms`;
keeping them here keeps `tensor.py` about the ops themselves.

Where PyTorch's method differs from numpy's function of the same name, PyTorch's wins:
`x.max(dim)` returns `(values, indices)` (`x.amax(dim)` the values alone), `x.round()` rounds
halves to even, `x.div(y, rounding_mode="trunc")` truncates toward zero.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, NamedTuple

import numpy as np

from . import rng
from .autograd import grad_enabled, note_write, tracing
from .errors import OpIndexError, op_error
from .shape import is_int

if TYPE_CHECKING:
    from .tensor import Tensor

_LN2 = math.log(2.0)
_LN10 = math.log(10.0)


def _in_float(method: Callable[..., Any]) -> Callable[..., Any]:
    """Integer and bool inputs compute in the default float (float32), as PyTorch's
    floating-point functions do, instead of failing inside numpy (-bool) or rounding."""

    @functools.wraps(method)
    def floated(self: Tensor, *args: Any, **kwargs: Any) -> Any:
        if self.dtype.kind not in "fc":
            self = self.cast(np.float32)
        return method(self, *args, **kwargs)

    return floated


# above this |x|, x^2 + 1 == x^2 in float64 (and x^2 would overflow float32 soon after):
# asinh(x) and acosh(x) are log(2x) there, to the last bit
_LARGE = 1e8


class ValuesIndices(NamedTuple):
    """What `x.max(dim)`, `x.min(dim)`, `x.sort()` and `x.topk(k)` return, as PyTorch's
    `torch.return_types`: unpack it (`values, indices = x.max(1)`) or read `.values` and
    `.indices`."""

    values: Tensor
    indices: Tensor


class MinMax(NamedTuple):
    """What `x.aminmax()` returns, as torch.return_types.aminmax."""

    min: Tensor
    max: Tensor


class MethodForms:
    """Mixin of `Tensor`: PyTorch's method names over the DSL's ops (see the module doc)."""

    __slots__ = ()

    # -- arithmetic under PyTorch's method names ---------------------------------------------
    def add(self: Tensor, other: Any, *, alpha: Any = 1) -> Tensor:
        """self + alpha * other."""
        return self + (other if alpha == 1 else self._lift(other) * alpha)

    def sub(self: Tensor, other: Any, *, alpha: Any = 1) -> Tensor:
        """self - alpha * other."""
        return self - (other if alpha == 1 else self._lift(other) * alpha)

    subtract = sub

    def mul(self: Tensor, other: Any) -> Tensor:
        return self * other

    multiply = mul

    def div(self: Tensor, other: Any, *, rounding_mode: str | None = None) -> Tensor:
        """self / other; `rounding_mode` "trunc" rounds the quotient toward zero, "floor"
        toward minus infinity (integers stay integers for both, as in PyTorch)."""
        if rounding_mode is None:
            return self / other
        if rounding_mode == "floor":
            return self.floor_divide(other)
        if rounding_mode == "trunc":
            other = self._lift(other)
            wide = self._integer_quotient(other, "div")
            return (self / other).trunc() if wide is None else wide.trunc().cast(np.int64)
        raise op_error(
            "div",
            f"rounding_mode must be None, 'trunc' or 'floor', got {rounding_mode!r}",
            self.shape,
            "pass rounding_mode='trunc' or 'floor' (or leave it out: true division)",
        )

    divide = div

    def true_divide(self: Tensor, other: Any) -> Tensor:
        return self / other

    def pow(self: Tensor, exponent: Any) -> Tensor:
        return self**exponent

    def neg(self: Tensor) -> Tensor:
        return -self

    negative = neg

    def square(self: Tensor) -> Tensor:
        return self * self

    # -- comparisons (bool tensors, no gradient) ----------------------------------------------
    def eq(self: Tensor, other: Any) -> Tensor:
        return self == other

    def ne(self: Tensor, other: Any) -> Tensor:
        return self != other

    def lt(self: Tensor, other: Any) -> Tensor:
        return self < other

    def le(self: Tensor, other: Any) -> Tensor:
        return self <= other

    def gt(self: Tensor, other: Any) -> Tensor:
        return self > other

    def ge(self: Tensor, other: Any) -> Tensor:
        return self >= other

    def equal(self: Tensor, other: Any) -> bool:
        """True when both have the same shape and every element is equal (PyTorch's
        `torch.equal`: a Python bool, not a tensor)."""
        other = self._lift(other)
        return tuple(self.shape) == tuple(other.shape) and bool((self == other).all().item())

    def clamp_min(self: Tensor, min: Any) -> Tensor:  # noqa: A002 (PyTorch's name)
        return self.clamp(min=min)

    def clamp_max(self: Tensor, max: Any) -> Tensor:  # noqa: A002
        return self.clamp(max=max)

    # -- elementary functions ----------------------------------------------------------------
    @_in_float
    def tan(self: Tensor) -> Tensor:
        return self.sin() / self.cos()

    @_in_float
    def sinh(self: Tensor) -> Tensor:
        return (self.exp() - (-self).exp()) * 0.5

    @_in_float
    def cosh(self: Tensor) -> Tensor:
        return (self.exp() + (-self).exp()) * 0.5

    @_in_float
    def asinh(self: Tensor) -> Tensor:
        """log(x + sqrt(x^2 + 1)), written log1p(u + u^2 / (1 + sqrt(1 + u^2))) of u = |x|
        (accurate near 0) with x's sign; u is chosen by a where, so the gradient at 0 is 1."""
        from .tensor import where

        positive = self >= 0
        u = where(positive, self, -self)
        big = u > _LARGE  # u^2 would overflow: asinh(u) = log(2u) to float precision there
        small = where(big, 1.0, u)
        f = where(
            big,
            where(big, u, 1.0).log() + math.log(2.0),
            (small + small * small / ((small * small + 1.0).sqrt() + 1.0)).log1p(),
        )
        return where(positive, f, -f)

    @_in_float
    def acosh(self: Tensor) -> Tensor:
        """log(x + sqrt(x^2 - 1)) as log1p(t + sqrt(t (x + 1))), t = x - 1 (accurate near 1;
        NaN below 1, as PyTorch's)."""
        from .tensor import where

        big = self > _LARGE  # log(2x) there (x^2 would overflow)
        x = where(big, 2.0, self)  # a value inside the domain: no NaN in the gradient
        t = x - 1.0
        t = where(t < 0.0, math.nan, t)  # below 1: NaN (t (x + 1) can be positive there)
        return where(
            big, where(big, self, 1.0).log() + math.log(2.0), (t + (t * (x + 1.0)).sqrt()).log1p()
        )

    @_in_float
    def atanh(self: Tensor) -> Tensor:
        """log((1 + x) / (1 - x)) / 2, as log1p(2x / (1 - x)) / 2."""
        return (self * 2.0 / (1.0 - self)).log1p() * 0.5

    def arcsin(self: Tensor) -> Tensor:
        return self.asin()

    def arccos(self: Tensor) -> Tensor:
        return self.acos()

    def arctan(self: Tensor) -> Tensor:
        return self.atan()

    @_in_float
    def exp2(self: Tensor) -> Tensor:
        """2 ** x, as exp(x ln 2)."""
        return (self * _LN2).exp()

    @_in_float
    def log2(self: Tensor) -> Tensor:
        return self.log() * (1.0 / _LN2)

    @_in_float
    def log10(self: Tensor) -> Tensor:
        return self.log() * (1.0 / _LN10)

    def ceil(self: Tensor) -> Tensor:
        """The smallest whole number >= x: -floor(-x) (gradient 0, as PyTorch's)."""
        return -((-self).floor())

    def trunc(self: Tensor) -> Tensor:
        """x rounded toward zero."""
        from .tensor import where

        return where(self < 0, self.ceil(), self.floor())

    fix = trunc

    def frac(self: Tensor) -> Tensor:
        """x - trunc(x), with x's sign."""
        return self - self.trunc()

    def round(self: Tensor, *, decimals: int = 0) -> Tensor:
        """x rounded to the nearest whole number, halves to the even one (as PyTorch's and
        numpy's); `decimals` rounds to that many decimal places (x * 10^d, rounded, / 10^d)."""
        from .tensor import where

        if decimals:
            scale = 10.0**decimals
            return (self * scale).round() / scale
        if self.dtype.kind != "f":
            return self.clone()  # a new tensor, as torch's
        down = self.floor()
        rest = self - down
        # below a half: down; above: up; exactly a half: whichever of the two is even
        up_at_half = (down * 0.5).floor() * 2.0 != down
        go_up = (rest > 0.5).logical_or((rest == 0.5).logical_and(up_at_half))
        return where(go_up, down + 1.0, down)

    def isnan(self: Tensor) -> Tensor:
        return self != self

    def isinf(self: Tensor) -> Tensor:
        return self.abs() == np.inf

    def isfinite(self: Tensor) -> Tensor:
        return self.abs() < np.inf  # False for NaN too

    def nan_to_num(
        self: Tensor, nan: float = 0.0, posinf: float | None = None, neginf: float | None = None
    ) -> Tensor:
        """NaN -> `nan`, +-inf -> `posinf`/`neginf` (default: the dtype's largest finite
        values), as PyTorch's; the gradient passes where the value is kept."""
        from .tensor import where

        if self.dtype.kind != "f":
            return self
        big = float(np.finfo(self.dtype).max)
        out = where(self.isnan(), nan, self)
        out = where(out == np.inf, big if posinf is None else posinf, out)
        return where(out == -np.inf, -big if neginf is None else neginf, out)

    def fmod(self: Tensor, other: Any) -> Tensor:
        """The remainder with the dividend's sign (C's fmod): self - trunc(self / other) * other."""
        from .tensor import where

        other = self._lift(other)
        out = self - self.div(other, rounding_mode="trunc") * other
        if out.dtype.kind != "f":
            return out
        return where(other.isinf().logical_and(self.isfinite()), self, out)  # fmod(x, inf) = x

    @_in_float
    def logaddexp(self: Tensor, other: Any) -> Tensor:
        """log(exp(self) + exp(other)) without overflow: max + log1p(exp(-|self - other|))."""
        other = self._lift(other)
        both_inf = (self == other).logical_and(self.isinf())  # inf - inf would be NaN
        from .tensor import where

        gap = where(both_inf, 0.0, self - other)
        return self.maximum(other) + where(both_inf, 0.0, (-gap.abs()).exp().log1p())

    @_in_float
    def copysign(self: Tensor, other: Any) -> Tensor:
        """|self| with other's sign (a -0.0 counts as negative, as in PyTorch)."""
        from .tensor import where

        other = self._lift(other)
        # f32 with f64: f64, as torch's (an integer sign source does not widen)
        wide = np.result_type(self.dtype, other.dtype) if other.dtype.kind == "f" else self.dtype
        x = self.cast(wide) if wide != self.dtype else self
        with np.errstate(divide="ignore"):  # 1 / -0.0 tells the zeros' signs apart
            negative = (other < 0).logical_or((other == 0).logical_and(1.0 / other < 0))
        magnitude = x.abs()
        return where(negative, -magnitude, magnitude)

    # -- more of PyTorch's names, each composed of the ops above -----------------------------

    def diff(
        self: Tensor, n: int = 1, dim: int = -1, prepend: Any = None, append: Any = None
    ) -> Tensor:
        """The n-th forward difference along `dim` (x[i+1] - x[i], n times), with `prepend`
        / `append` joined along `dim` first, as torch.diff."""
        from .tensor import cat

        d = self._dim(dim, "diff")
        if not is_int(n) or n < 0:
            raise op_error("diff", f"n must be an int >= 0, got {n!r}", self.shape, "pass n=1")
        x = self
        parts = [self._lift(prepend), x] if prepend is not None else [x]
        if append is not None:
            parts.append(self._lift(append))
        x = cat(parts, d) if len(parts) > 1 else x
        for _ in range(n):
            length = x.shape[d]
            if length == 0:
                break
            later, earlier = x.narrow(d, 1, length - 1), x.narrow(d, 0, length - 1)
            # bools differ by xor, as torch's
            x = later.logical_xor(earlier) if x.dtype == np.bool_ else later - earlier
        return x

    def absolute(self: Tensor) -> Tensor:
        return self.abs()

    def greater(self: Tensor, other: Any) -> Tensor:
        return self > other

    def greater_equal(self: Tensor, other: Any) -> Tensor:
        return self >= other

    def less(self: Tensor, other: Any) -> Tensor:
        return self < other

    def less_equal(self: Tensor, other: Any) -> Tensor:
        return self <= other

    def not_equal(self: Tensor, other: Any) -> Tensor:
        return self != other

    def broadcast_to(self: Tensor, *shape: Any) -> Tensor:
        return self.expand(*shape)

    @_in_float
    def rad2deg(self: Tensor) -> Tensor:
        return self * (180.0 / math.pi)

    @_in_float
    def deg2rad(self: Tensor) -> Tensor:
        return self * (math.pi / 180.0)

    def count_nonzero(self: Tensor, dim: Any = None) -> Tensor:
        return (self != 0).sum(dim).cast(np.int64)

    def isposinf(self: Tensor) -> Tensor:
        return self == np.inf

    def isneginf(self: Tensor) -> Tensor:
        return self == -np.inf

    def signbit(self: Tensor) -> Tensor:
        """Whether the sign bit is set: True for negatives and -0.0 (a NaN counts as
        positive here: the comparisons it is built from cannot see a NaN's sign)."""
        if self.dtype.kind not in "f":
            return self < 0
        from .tensor import ones_like

        return ones_like(self).copysign(self.detach()) < 0

    def sgn(self: Tensor) -> Tensor:
        return self.sign()

    def fmax(self: Tensor, other: Any) -> Tensor:
        """The larger of the two, a NaN losing to a number (numpy's fmax; maximum keeps it)."""
        from .tensor import where

        other = self._lift(other)
        return where(self.isnan(), other, where(other.isnan(), self, self.maximum(other)))

    def fmin(self: Tensor, other: Any) -> Tensor:
        from .tensor import where

        other = self._lift(other)
        return where(self.isnan(), other, where(other.isnan(), self, self.minimum(other)))

    def nansum(self: Tensor, dim: Any = None, keepdim: bool = False) -> Tensor:
        """The sum with NaNs counted as 0."""
        from .tensor import where

        if self.dtype.kind != "f":  # integers hold no NaN (and keep their dtype)
            return self.sum(dim, keepdim=keepdim)
        return where(self.isnan(), 0.0, self).sum(dim, keepdim=keepdim)

    def nanmean(self: Tensor, dim: Any = None, keepdim: bool = False) -> Tensor:
        """The mean of the values that are not NaN (NaN where every value is)."""
        if self.dtype.kind != "f":
            raise op_error(
                "nanmean", f"expects a float tensor, got {self.dtype}", self.shape, "x.float()"
            )
        kept = (~self.isnan()).sum(dim, keepdim=keepdim)
        with np.errstate(invalid="ignore"):  # 0 / 0 where every value is NaN: NaN
            return (self.nansum(dim, keepdim) / kept).cast(self.dtype)

    def xlogy(self: Tensor, other: Any) -> Tensor:
        """self * log(other), 0 where self is 0 (and other is not NaN), as torch.xlogy."""
        from .tensor import where

        other = self._lift(other)
        zero = (self == 0).logical_and(~other.isnan())
        # log of 1 where the answer is 0, so neither side of the where is NaN (its
        # gradient would be: 0 * inf)
        with np.errstate(divide="ignore", invalid="ignore"):
            product = self * where(zero, 1.0, other).log()
        return where(zero, 0.0, product)

    def float_power(self: Tensor, exponent: Any) -> Tensor:
        """self ** exponent in float64, as torch.float_power."""
        exponent = exponent.double() if hasattr(exponent, "double") else exponent
        return self.double() ** exponent

    def heaviside(self: Tensor, values: Any) -> Tensor:
        """0 below zero, 1 above, `values` at zero (no gradient: the step is flat)."""
        from .tensor import where

        values = self._lift(values)
        step = (self > 0).cast(self.dtype)
        return where(self == 0, values.cast(self.dtype), step).detach()

    def aminmax(self: Tensor, *, dim: Any = None, keepdim: bool = False) -> MinMax:
        """(min, max) at once, as torch.aminmax (`.min` and `.max`)."""
        return MinMax(self.amin(dim, keepdim), self.amax(dim, keepdim))

    def ravel(self: Tensor) -> Tensor:
        return self.reshape(-1)

    def tensor_split(self: Tensor, indices_or_sections: Any, dim: int = 0) -> tuple[Tensor, ...]:
        """Pieces along `dim`: `sections` nearly equal ones (the first n % sections one
        longer), or cut before each listed index, as torch.tensor_split."""
        d = self._dim(dim, "tensor_split")
        n = self.shape[d]
        if getattr(indices_or_sections, "ndim", None) == 0:  # a 0-d tensor: a count
            indices_or_sections = int(indices_or_sections.item())
        if is_int(indices_or_sections):
            k = int(indices_or_sections)
            if k < 1:
                raise op_error(
                    "tensor_split", f"sections must be >= 1, got {k}", self.shape, "pass 2"
                )
            sizes = [n // k + (1 if i < n % k else 0) for i in range(k)]
            cuts = [sum(sizes[:i]) for i in range(1, k)]
        else:
            cuts = [int(c) for c in indices_or_sections]
        bounds = [0, *(min(max(c + n if c < 0 else c, 0), n) for c in cuts), n]
        return tuple(self.narrow(d, a, max(b - a, 0)) for a, b in zip(bounds[:-1], bounds[1:]))

    def hsplit(self: Tensor, sections: Any) -> tuple[Tensor, ...]:
        return self._even_split("hsplit", sections, 1 if self.ndim > 1 else 0, 1)

    def vsplit(self: Tensor, sections: Any) -> tuple[Tensor, ...]:
        return self._even_split("vsplit", sections, 0, 2)

    def _even_split(
        self: Tensor, op: str, sections: Any, dim: int, min_dims: int
    ) -> tuple[Tensor, ...]:
        """torch's hsplit/vsplit: tensor_split, but a count must divide the dim evenly."""
        if self.ndim < min_dims:
            raise op_error(op, f"needs at least {min_dims} dims", self.shape, "reshape first")
        if is_int(sections) and (sections < 1 or self.shape[dim] % sections):
            raise op_error(
                op,
                f"dim {dim} of length {self.shape[dim]} does not split into {sections} equal parts",
                self.shape,
                "pass a count that divides it, or the indices to cut at",
            )
        return self.tensor_split(sections, dim)

    def take_along_dim(self: Tensor, indices: Any, dim: int | None = None) -> Tensor:
        """Values at `indices` along `dim` (indices broadcast against self elsewhere), or at
        flat `indices` when dim is None, as torch.take_along_dim."""
        from .tensor import Tensor

        idx = indices if isinstance(indices, Tensor) else Tensor(np.asarray(indices))
        if dim is None:
            flat = self.reshape(-1)
            return flat.gather(0, _wrapped(idx.reshape(-1), flat.shape[0]))
        d = self._dim(dim, "take_along_dim")
        if idx.ndim != self.ndim:
            raise op_error(
                "take_along_dim",
                f"indices need as many dims as the input ({self.ndim}), got {idx.ndim}",
                (self.shape, idx.shape),
                "add size-1 dims to the indices (unsqueeze)",
            )
        idx = _wrapped(idx, self.shape[d])
        shape = list(
            np.broadcast_shapes(
                tuple(1 if i == d else s for i, s in enumerate(self.shape)),
                tuple(1 if i == d else s for i, s in enumerate(idx.shape)),
            )
        )
        source = self.expand(*[self.shape[d] if i == d else s for i, s in enumerate(shape)])
        index = idx.expand(*[idx.shape[d] if i == d else s for i, s in enumerate(shape)])
        return source.gather(d, index)

    def dist(self: Tensor, other: Any, p: float = 2) -> Tensor:
        return (self - other).norm(p)

    def addmm(self: Tensor, mat1: Any, mat2: Any, *, beta: Any = 1, alpha: Any = 1) -> Tensor:
        """beta * self + alpha * (mat1 @ mat2), as torch.addmm."""
        return _scaled_sum(self, self._lift(mat1) @ mat2, beta, alpha)

    def baddbmm(self: Tensor, batch1: Any, batch2: Any, *, beta: Any = 1, alpha: Any = 1) -> Tensor:
        """beta * self + alpha * (batch1 @ batch2) per batch, as torch.baddbmm."""
        return _scaled_sum(self, self._lift(batch1).bmm(batch2), beta, alpha)

    def kron(self: Tensor, other: Any) -> Tensor:
        """The Kronecker product, as torch.kron: blocks self[i] * other."""
        other = self._lift(other)
        nd = max(self.ndim, other.ndim)
        a = self.reshape(*([1] * (nd - self.ndim)), *self.shape)
        b = other.reshape(*([1] * (nd - other.ndim)), *other.shape)
        # interleave: a's dims become (..., a_i, 1, ...) and b's (..., 1, b_i, ...)
        a_shape = [v for s in a.shape for v in (s, 1)]
        b_shape = [v for s in b.shape for v in (1, s)]
        out = a.reshape(*a_shape) * b.reshape(*b_shape)
        return out.reshape(*(x * y for x, y in zip(a.shape, b.shape)))

    def tensordot(self: Tensor, other: Any, dims: Any = 2) -> Tensor:
        """Sum over self's last / other's first `dims` dims (an int), or over the paired
        dims listed ([dims of self], [dims of other]), as torch.tensordot."""
        other = self._lift(other)
        if is_int(dims):
            k = int(dims)
            mine, theirs = list(range(self.ndim - k, self.ndim)), list(range(k))
        else:
            mine, theirs = (
                ([dims[0]] if is_int(dims[0]) else list(dims[0])),
                ([dims[1]] if is_int(dims[1]) else list(dims[1])),
            )
            mine = [self._dim(d, "tensordot") for d in mine]
            theirs = [other._dim(d, "tensordot") for d in theirs]
        if [self.shape[d] for d in mine] != [other.shape[d] for d in theirs]:
            raise op_error(
                "tensordot",
                f"contracted dims {mine} of {self.shape} and {theirs} of {other.shape} differ",
                (self.shape, other.shape),
                "pair dims of equal length",
            )
        keep_a = [d for d in range(self.ndim) if d not in mine]
        keep_b = [d for d in range(other.ndim) if d not in theirs]

        def count(shape: Sequence[int], dims: list[int]) -> int:
            return int(np.prod([shape[d] for d in dims], dtype=np.int64))

        size = count(self.shape, mine)
        a = self.permute(*keep_a, *mine).reshape(count(self.shape, keep_a), size)
        b = other.permute(*theirs, *keep_b).reshape(size, count(other.shape, keep_b))
        return (a @ b).reshape(*[self.shape[d] for d in keep_a], *[other.shape[d] for d in keep_b])

    def cross(self: Tensor, other: Any, dim: int | None = None) -> Tensor:
        """The 3-vector cross product along `dim` (default: the first dim of length 3)."""
        from .tensor import stack

        other = self._lift(other)
        try:  # the two broadcast against each other, as torch's
            shape = np.broadcast_shapes(tuple(self.shape), tuple(other.shape))
        except ValueError:
            shape = None
        a_full = self.expand(*shape) if shape is not None else self
        other = other.expand(*shape) if shape is not None else other
        if dim is None:
            dim = next((i for i, s in enumerate(a_full.shape) if s == 3), -1)
        d = a_full._dim(dim, "cross")
        if shape is None or a_full.shape[d] != 3:
            raise op_error(
                "cross",
                f"needs two tensors of one shape with length 3 along dim {d}",
                (self.shape, other.shape),
                "pass 3-vectors (and dim=)",
            )
        a = [a_full.select(d, i) for i in range(3)]
        b = [other.select(d, i) for i in range(3)]
        parts = [a[1] * b[2] - a[2] * b[1], a[2] * b[0] - a[0] * b[2], a[0] * b[1] - a[1] * b[0]]
        return stack(parts, d)

    def masked_select(self: Tensor, mask: Any) -> Tensor:
        """The 1-D tensor of the elements where `mask` (broadcast to self) is true; its
        length depends on the mask's values, so it runs eagerly, not compiled."""
        from .tensor import Tensor

        m = mask if isinstance(mask, Tensor) else Tensor(np.asarray(mask))
        shape = np.broadcast_shapes(tuple(self.shape), tuple(m.shape))
        return self.expand(shape)[m.expand(shape)]

    def nonzero(self: Tensor, *, as_tuple: bool = False) -> Any:
        """The indices of the non-zero elements: an (n, ndim) int64 tensor, or one 1-D tensor
        per dim (`as_tuple`); no gradient, and eager only (n depends on the values)."""
        from .tensor import Tensor

        if tracing():
            raise op_error(
                "nonzero",
                "the number of non-zero elements is only known at run time",
                self.shape,
                "use a mask (x != 0) with where/sum instead, or run this part eagerly",
            )
        found = np.argwhere(self.numpy() != 0).astype(np.int64)
        if as_tuple:
            return tuple(Tensor(found[:, k]) for k in range(self.ndim))
        return Tensor(found)

    def lerp(self: Tensor, end: Any, weight: Any) -> Tensor:
        """self + weight * (end - self)."""
        return self + (self._lift(end) - self) * weight

    # -- reductions with PyTorch's return types ------------------------------------------------
    def std_mean(
        self: Tensor, dim: Any = None, *, correction: float = 1, keepdim: bool = False
    ) -> tuple[Tensor, Tensor]:
        """(std, mean) over `dim`, as `torch.std_mean`."""
        return self.std(dim, keepdim=keepdim, correction=correction), self.mean(dim, keepdim)

    def var_mean(
        self: Tensor, dim: Any = None, *, correction: float = 1, keepdim: bool = False
    ) -> tuple[Tensor, Tensor]:
        """(var, mean) over `dim`, as `torch.var_mean`."""
        return self.var(dim, keepdim=keepdim, correction=correction), self.mean(dim, keepdim)

    def amax(self: Tensor, dim: Any = None, keepdim: bool = False) -> Tensor:
        """The largest values over `dim` (an int, a tuple, or None for all); gradient split
        evenly between tied maxima, as PyTorch's `amax`."""
        return self._reduce_values("max", dim, keepdim)

    def amin(self: Tensor, dim: Any = None, keepdim: bool = False) -> Tensor:
        return self._reduce_values("min", dim, keepdim)

    def max(  # type: ignore[override]
        self: Tensor, dim: Any = None, keepdim: bool = False, *, axis: Any = None
    ) -> Any:
        """PyTorch's three forms: `x.max()` the largest value; `x.max(other)` the elementwise
        maximum; `x.max(dim)` (an int; `axis=` is its alias) the named pair
        `(values, indices)` along dim. A tuple of dims gives the values alone, as `amax`."""
        return self._max_min("max", dim, keepdim, axis)

    def min(  # type: ignore[override]
        self: Tensor, dim: Any = None, keepdim: bool = False, *, axis: Any = None
    ) -> Any:
        """As `max`, for the smallest value (indices: the first of tied minima)."""
        return self._max_min("min", dim, keepdim, axis)

    def _max_min(self: Tensor, op: str, dim: Any, keepdim: bool, axis: Any) -> Any:
        from .tensor import Tensor

        if isinstance(dim, Tensor):
            return self.maximum(dim) if op == "max" else self.minimum(dim)
        if axis is not None:
            dim = axis
        if not is_int(dim):
            return self._reduce_values(op, dim, keepdim)
        if self.ndim == 0:
            return ValuesIndices(self._reduce_values(op, dim, keepdim), self.argmax(dim))
        # the values are read at the indices, so the whole gradient goes to the element
        # returned (torch's rule for this form; amax splits it between ties)
        (dim,) = self._axes(dim, op)  # (an error names this op, not argmax)
        pick = self.argmax if op == "max" else self.argmin
        indices = pick(dim, keepdim=True)
        values = self.gather(dim, indices)
        if not keepdim:
            values, indices = values.squeeze(dim), indices.squeeze(dim)
        return ValuesIndices(values, indices)

    def _reduce_values(self: Tensor, op: str, dim: Any, keepdim: bool) -> Tensor:
        from . import ops

        prim = ops.MAX if op == "max" else ops.MIN
        return self._call(prim, axis=self._axes(dim, op), keepdim=keepdim)

    # -- running reductions (scans) ------------------------------------------------------------
    def _scan(self: Tensor, dim: int, op: str, combine: Any, identity: Any) -> Tensor:
        """Running `combine` along `dim` by doubling (Hillis-Steele): after step k each
        element has combined the 2^k before it, so log2(n) shifted combines (a pad with
        `identity`, a slice, `combine`) give the result, its gradient and compiled kernels."""
        d = self._dim(dim, op)
        if self.ndim == 0:
            return self * 1
        n, shift, out = self.shape[d], 1, self
        while shift < n:
            pads = [(0, 0)] * self.ndim
            pads[d] = (shift, 0)
            earlier = out.pad(pads, value=identity)[(slice(None),) * d + (slice(0, n),)]
            out, shift = combine(out, earlier), shift * 2
        return out if out is not self else self * 1

    def cumprod(self: Tensor, dim: int, *, dtype: Any = None) -> Tensor:
        """Running products along `dim` (integers and bools give int64, as in PyTorch); the
        gradient is exact with zeros in the input (no division)."""
        x = self if dtype is None else self.cast(dtype)
        if x.dtype.kind in "biu":
            x = x.cast(np.int64)
        return x._scan(dim, "cumprod", lambda a, b: a * b, 1)

    def prod(
        self: Tensor, dim: int | None = None, keepdim: bool = False, *, dtype: Any = None
    ) -> Tensor:
        """The product over `dim` (all elements when None): the last running product, so
        its gradient is exact with zeros in the input (no division)."""
        if dim is None and self.size == 0:  # the empty product is one
            return (
                self.reshape(-1)
                .prod(0, keepdim=keepdim, dtype=dtype)
                .reshape((1,) * self.ndim if keepdim else ())
            )
        if dim is None:
            out = (
                self.reshape(-1).cumprod(0, dtype=dtype)[-1]
                if self.ndim
                else self.cumprod(0, dtype=dtype)
            )
            return out.reshape((1,) * self.ndim) if keepdim else out
        d = self._dim(dim, "prod")
        if self.ndim == 0:
            return self.cumprod(0, dtype=dtype)
        if self.shape[d] == 0:  # the empty product is one
            # built from the (empty, 0) sum so it stays in the graph: backward() from it
            # reaches the input (a zero gradient), as PyTorch's
            x = self if dtype is None else self.cast(dtype)
            return x.sum(d, keepdim=keepdim) * 0 + 1
        last = self.cumprod(d, dtype=dtype).narrow(d, self.shape[d] - 1, 1)
        return last if keepdim else last.squeeze(d)

    def logcumsumexp(self: Tensor, dim: int) -> Tensor:
        """log(cumsum(exp(x))) without overflow (running `logaddexp`)."""
        return self._scan(dim, "logcumsumexp", lambda a, b: a.logaddexp(b), -np.inf)

    def cummax(self: Tensor, dim: int) -> ValuesIndices:
        """(running maxima, the index of each: the latest that reached it), as torch's."""
        return self._running_extreme(dim, "cummax")

    def cummin(self: Tensor, dim: int) -> ValuesIndices:
        return self._running_extreme(dim, "cummin")

    def _running_extreme(self: Tensor, dim: int, op: str) -> ValuesIndices:
        from .tensor import Tensor, where

        biggest = op == "cummax"
        if self.dtype.kind == "f":
            identity: Any = -np.inf if biggest else np.inf
        elif self.dtype.kind == "b":
            identity = not biggest
        else:
            info = np.iinfo(self.dtype)
            identity = int(info.min if biggest else info.max)
        pick = (lambda a, b: a.maximum(b)) if biggest else (lambda a, b: a.minimum(b))
        values = self._scan(dim, op, pick, identity)
        if self.ndim == 0:
            return ValuesIndices(values, Tensor._make(np.zeros((), np.int64)))
        d = self._dim(dim, op)
        position = np.arange(self.shape[d]).reshape([-1 if i == d else 1 for i in range(self.ndim)])
        # where the element is (or ties) the running extreme (NaN: it is, from there on),
        # its position, else -1; the running maximum of those is the latest such position
        reached = (
            (self == values).logical_or(self.isnan()) if self.dtype.kind == "f" else self == values
        )
        candidates = where(reached, Tensor._make(position.astype(np.int64)), -1)
        indices = candidates._scan(dim, op, lambda a, b: a.maximum(b), -1)
        # read at the indices: each running extreme's gradient goes to the element it names
        return ValuesIndices(self.gather(d, indices), indices)

    # -- norms, order statistics, two-argument elementary functions ---------------------------
    def norm(
        self: Tensor, p: Any = "fro", dim: Any = None, keepdim: bool = False, dtype: Any = None
    ) -> Tensor:
        """The vector p-norm over `dim` (all elements when None): "fro" and 2 Euclidean,
        inf / -inf the largest / smallest |x|, 0 the count of nonzeros, as PyTorch's
        `x.norm`. At a zero vector the gradient is 0 (not NaN), as PyTorch's."""
        from .tensor import where

        x = self if dtype is None else self.cast(dtype)
        if x.dtype.kind not in "fc":
            x = x.cast(np.float32)
        if isinstance(p, str) and p != "fro":
            raise op_error(
                "norm", f"p must be a number, 'fro' or inf, got {p!r}", self.shape, "pass p=2"
            )
        if p == "fro":
            p = 2
        a = x.abs()
        if p == math.inf:
            return a.amax(dim, keepdim=keepdim)
        if p == -math.inf:
            return a.amin(dim, keepdim=keepdim)
        if p == 0:
            return (a != 0.0).cast(x.dtype).sum(dim, keepdim=keepdim)
        if p == 1:
            return a.sum(dim, keepdim=keepdim)
        s = (x * x if p == 2 else a**p).sum(dim, keepdim=keepdim)
        zero = s == 0.0
        root = where(zero, 1.0, s)  # a safe operand: no NaN in the unused branch's gradient
        return where(zero, 0.0, root.sqrt() if p == 2 else root ** (1.0 / p))

    def _sorted_at(self: Tensor, dim: int, position: Any, keepdim: bool) -> Any:
        """(values, indices) of the `position`-th smallest along `dim` (an int, or an int64
        tensor with a 1 at dim); the values' gradient goes to the element picked."""
        from .tensor import Tensor

        if self.ndim == 0:
            return ValuesIndices(self * 1, Tensor._make(np.zeros((), np.int64)))
        values, indices = self.sort(dim)
        if isinstance(position, int):
            v, i = values.narrow(dim, position, 1), indices.narrow(dim, position, 1)
        else:
            v, i = values.gather(dim, position), indices.gather(dim, position)
        return ValuesIndices(v, i) if keepdim else ValuesIndices(v.squeeze(dim), i.squeeze(dim))

    def median(self: Tensor, dim: Any = None, keepdim: bool = False) -> Any:
        """The lower median (the ((n - 1) // 2)-th smallest), NaN where a NaN is present, as
        PyTorch's: a 0-d tensor of all elements when dim is None, else `(values, indices)`
        along `dim`."""
        from .tensor import Tensor, where

        if dim is None:
            flat = self.reshape(-1)
            if flat.shape[0] == 0:
                return Tensor.full((), math.nan, dtype=np.result_type(self.dtype, np.float32))
            return flat.median(0).values
        axes = self._axes(dim, "median")  # (a 0-d input takes dim 0 or -1: no axes)
        if not axes:
            return self._sorted_at(0, 0, keepdim)
        (d,) = axes
        n = self.shape[d]
        if n == 0:
            raise op_error("median", f"dim {d} is empty", self.shape, "use a non-empty dim")
        if self.dtype.kind != "f":
            return self._sorted_at(d, (n - 1) // 2, keepdim)
        nans = self.isnan().cast(np.int64).sum(d, keepdim=True)
        # NaN sorts last: where one is present, the first NaN (its value and index, as torch)
        position = where(nans > 0, n - nans, (n - 1) // 2)
        return self._sorted_at(d, position, keepdim)

    def kthvalue(self: Tensor, k: int, dim: int = -1, keepdim: bool = False) -> ValuesIndices:
        """(values, indices) of the k-th smallest (k from 1) along `dim`, as PyTorch's."""
        axes = self._axes(dim, "kthvalue")
        d, n = (axes[0], self.shape[axes[0]]) if axes else (0, 1)
        if not is_int(k) or not 1 <= k <= n:
            raise op_error(
                "kthvalue", f"k must be in [1, {n}], got {k!r}", self.shape, "pick a k in range"
            )
        return self._sorted_at(d, int(k) - 1, keepdim)

    @_in_float
    def atan2(self: Tensor, other: Any) -> Tensor:
        """The angle of the point (x=other, y=self), in [-pi, pi], with numpy's and
        PyTorch's signed zeros: atan(y / x) (plus or minus pi for x < 0) where |x| >= |y|,
        +-pi/2 - atan(x / y) elsewhere, so nothing is divided by zero and the gradient is
        finite everywhere but the origin."""
        from .tensor import where

        y, x = self, self._lift(other)
        if x.dtype.kind not in "fc":
            x = x.cast(y.dtype)
        both_inf = y.isinf().logical_and(x.isinf())  # the angle of (+-1, +-1): inf/inf is NaN
        y, x = where(both_inf, y.sign(), y), where(both_inf, x.sign(), x)
        with np.errstate(divide="ignore"):  # 1 / -0.0 tells the zeros' signs apart
            y_negative = (y < 0.0).logical_or((y == 0.0).logical_and(1.0 / y < 0.0))
            x_negative = (x < 0.0).logical_or((x == 0.0).logical_and(1.0 / x < 0.0))
        by_x = x.abs() >= y.abs()
        # at the origin y / inf: 0 with gradient 0, as torch's
        near_x_axis = (y / where(by_x.logical_and(x != 0.0), x, math.inf)).atan()
        pi = y._lift(math.pi)  # in y's dtype (two bare numbers would make float32)
        half_turn = where(y_negative, -pi, pi)
        near_x_axis = where(x_negative, near_x_axis + half_turn, near_x_axis)
        near_y_axis = half_turn * 0.5 - (x / where(by_x, 1.0, y)).atan()
        return where(by_x, near_x_axis, near_y_axis)

    def arctan2(self: Tensor, other: Any) -> Tensor:
        return self.atan2(other)

    @_in_float
    def hypot(self: Tensor, other: Any) -> Tensor:
        """sqrt(x^2 + y^2) without overflow: the larger |.| times sqrt(1 + (smaller /
        larger)^2); 0 at the origin (gradient 0 there), inf if either is inf."""
        from .tensor import where

        a, b = self.abs(), self._lift(other).abs()
        big, small = a.maximum(b), a.minimum(b)
        zero = big == 0.0
        ratio = small / where(zero, 1.0, big)
        out = big * (ratio * ratio + 1.0).sqrt()
        infinite = a.isinf().logical_or(b.isinf())  # inf even beside a NaN (IEEE's hypot)
        return where(infinite, math.inf, where(zero, 0.0, out))

    @_in_float
    def expm1(self: Tensor) -> Tensor:
        """exp(x) - 1, accurate near 0: (u - 1) x / log(u) with u = exp(x) rounded cancels
        u's rounding error (Kahan's trick); x itself where u == 1; u - 1 where u is 0 or
        inf."""
        from .tensor import where

        u = self.exp()
        one = u == 1.0
        plain = one.logical_or(u == 0.0).logical_or(u.isinf())
        log_u = where(plain, 2.0, u).log()  # safe operands: no NaN from the unused branch
        return where(
            one, self, where(plain, u - 1.0, (u - 1.0) * (where(plain, 1.0, self) / log_u))
        )

    @property
    def mT(self: Tensor) -> Tensor:  # noqa: N802 (PyTorch's name)
        """The last two dims swapped (a batch of matrices transposed)."""
        if self.ndim < 2:
            raise op_error("mT", "needs at least 2 dims", self.shape, "use a (..., m, n) tensor")
        return self.transpose(-2, -1)

    def argwhere(self: Tensor) -> Tensor:
        """The (count, ndim) int64 indices of the nonzero elements (eager: the count depends
        on the values)."""
        return self.nonzero()

    # -- sorting ------------------------------------------------------------------------------
    def argsort(
        self: Tensor, dim: int = -1, descending: bool = False, stable: bool = False
    ) -> Tensor:
        """The indices that sort self along `dim`. Always stable (ties keep their order, so
        `stable` changes nothing); NaN sorts as the largest value, as in PyTorch."""
        from . import ops

        d = self._dim(dim, "argsort")
        if self.ndim == 0:
            return self._lift(0).cast(np.int64)
        return self._call(ops.ARGSORT, dim=d, descending=bool(descending))

    def sort(
        self: Tensor, dim: int = -1, descending: bool = False, stable: bool = False
    ) -> ValuesIndices:
        """(values, indices) of self sorted along `dim` (see `argsort`); the values' gradient
        goes back to the positions they came from."""
        if self.ndim == 0:
            self._axes(dim, "sort")  # 0 or -1 only, as PyTorch
            return ValuesIndices(self, self.argsort())
        indices = self.argsort(dim, descending)
        return ValuesIndices(self.gather(dim, indices), indices)

    def topk(
        self: Tensor, k: int, dim: int = -1, largest: bool = True, sorted: bool = True
    ) -> ValuesIndices:
        """(values, indices) of the k largest (or smallest) entries along `dim`, best first
        (ties: the lower index first)."""
        d = self._dim(dim, "topk")
        n = self.shape[d] if self.ndim else 1
        if not is_int(k) or not 0 <= k <= n:
            raise op_error(
                "topk",
                f"k={k!r} must be a whole number in [0, {n}] (the size of dim {d})",
                self.shape,
                f"pass k <= {n}",
            )
        indices = self.argsort(d, descending=largest)
        if self.ndim:
            indices = indices.narrow(d, 0, k)
        return ValuesIndices(self.gather(d, indices) if self.ndim else self, indices)

    def msort(self: Tensor) -> Tensor:
        return self.sort(0).values

    # -- matrix products ---------------------------------------------------------------------
    def t(self: Tensor) -> Tensor:
        """The transpose of a matrix (a 0-D or 1-D tensor is returned as it is)."""
        if self.ndim > 2:
            raise op_error(
                "t",
                f"expects a tensor of at most 2 dims, got {self.ndim}",
                self.shape,
                "use transpose(dim0, dim1) or permute for more dims",
            )
        return self.transpose(0, 1) if self.ndim == 2 else self

    def mm(self: Tensor, other: Any) -> Tensor:
        """Matrix product of two 2-D tensors."""
        return self._checked_product("mm", other, 2, 2)

    def bmm(self: Tensor, other: Any) -> Tensor:
        """Batched matrix product: (b, n, m) @ (b, m, p)."""
        other = self._lift(other)
        if self.ndim == 3 and other.ndim == 3 and self.shape[0] != other.shape[0]:
            raise op_error(
                "bmm",
                "batch sizes differ",
                f"{self.shape} and {other.shape}",
                "give both operands the same first dim",
            )
        return self._checked_product("bmm", other, 3, 3)

    def mv(self: Tensor, vec: Any) -> Tensor:
        """Matrix times vector: (n, m) @ (m,)."""
        return self._checked_product("mv", vec, 2, 1)

    def dot(self: Tensor, other: Any) -> Tensor:
        """The inner product of two 1-D tensors of equal length."""
        return self._checked_product("dot", other, 1, 1)

    def outer(self: Tensor, other: Any) -> Tensor:
        """(n,) x (m,) -> (n, m): every product of an element of self and one of other."""
        other = self._lift(other)
        if self.ndim != 1 or other.ndim != 1:
            raise op_error(
                "outer",
                "expects two 1-D tensors",
                f"{self.shape} and {other.shape}",
                "flatten the operands first",
            )
        return self.reshape(-1, 1) * other.reshape(1, -1)

    def _checked_product(self: Tensor, op: str, other: Any, a_dims: int, b_dims: int) -> Tensor:
        other = self._lift(other)
        if self.ndim != a_dims or other.ndim != b_dims:
            raise op_error(
                op,
                f"expects {a_dims}-D and {b_dims}-D operands, got {self.ndim}-D and {other.ndim}-D",
                f"{self.shape} and {other.shape}",
                "use matmul (@) for other ranks",
            )
        return self.matmul(other)

    # -- copies, casts and views -------------------------------------------------------------
    def clone(self: Tensor) -> Tensor:
        """A new tensor with the same values; gradients flow back to self."""
        from . import ops

        return self._call(ops.CAST, dtype=self.dtype.name)

    def unfold(self: Tensor, dimension: int, size: int, step: int) -> Tensor:
        """Every window of `size` elements along `dimension`, `step` apart, as a new last dim
        (PyTorch's `Tensor.unfold`; `unfold2d` is im2col)."""
        from .tensor import Tensor

        d = self._dim(dimension, "unfold")
        n = self.shape[d] if self.ndim else 1
        if not (is_int(size) and is_int(step)) or size < 0 or step < 1 or size > n:
            raise op_error(
                "unfold",
                f"size {size!r} must be in [0, {n}] and step {step!r} >= 1",
                self.shape,
                f"pass a size <= the dim's length {n} and a positive step",
            )
        windows = (n - size) // step + 1
        index = np.arange(windows)[:, None] * step + np.arange(size)[None, :]
        moved = self.movedim(d, -1) if self.ndim else self.reshape(1)
        picked = moved[(Ellipsis, Tensor._make(index.astype(np.int64)))]
        return picked.movedim(-2, d) if self.ndim else picked.reshape(windows, size)[0]

    def swapaxes(self: Tensor, axis0: int, axis1: int) -> Tensor:
        return self.transpose(axis0, axis1)

    swapdims = swapaxes

    def movedim(self: Tensor, source: Any, destination: Any) -> Tensor:
        """Move dims `source` to positions `destination` (ints or equal-length sequences);
        the other dims keep their order."""
        src = (source,) if is_int(source) else tuple(source)
        dst = (destination,) if is_int(destination) else tuple(destination)
        if len(src) != len(dst):
            raise op_error(
                "movedim",
                f"{len(src)} source dims but {len(dst)} destinations",
                self.shape,
                "pass as many destinations as sources",
            )
        src = tuple(self._dim(d, "movedim") for d in src)
        dst = tuple(self._dim(d, "movedim") for d in dst)
        if len(set(src)) != len(src) or len(set(dst)) != len(dst):
            raise op_error(
                "movedim", "repeated dims", f"{source} -> {destination}", "name each dim once"
            )
        rest = iter(d for d in range(self.ndim) if d not in src)
        placed = dict(zip(dst, src))
        order = tuple(placed[i] if i in placed else next(rest) for i in range(self.ndim))
        return self.permute(order)

    moveaxis = movedim

    def narrow(self: Tensor, dim: int, start: int, length: int) -> Tensor:
        """Elements start .. start + length - 1 along `dim` (a view, as a slice)."""
        d = self._dim(dim, "narrow")
        n = self.shape[d]
        begin = start + n if start < 0 else start
        if not 0 <= begin <= n or length < 0 or begin + length > n:
            raise op_error(
                "narrow",
                f"start {start} and length {length} run outside dim {d} of length {n}",
                self.shape,
                "keep start + length within the dim",
                OpIndexError,
            )
        index = [slice(None)] * self.ndim
        index[d] = slice(begin, begin + length)
        return self[tuple(index)]

    def index_select(self: Tensor, dim: int, index: Any) -> Tensor:
        """The entries at the 1-D integer `index` along `dim` (in that order, repeats
        allowed); the gradient adds back into the picked positions."""
        from .tensor import Tensor

        idx = index if isinstance(index, Tensor) else Tensor(np.asarray(index))
        if idx.ndim > 1 or (idx.dtype.kind not in "iu" and idx.size):
            raise op_error(
                "index_select",
                f"index must be a 1-D integer tensor, got {idx.dtype} of shape {idx.shape}",
                self.shape,
                "pass e.g. Tensor([0, 2]) (int64)",
            )
        d = self._dim(dim, "index_select")
        picker = [slice(None)] * self.ndim
        picker[d] = idx.reshape(-1).cast(np.int64)
        return self[tuple(picker)]

    def flip(self: Tensor, *dims: Any) -> Tensor:
        """The elements in reverse order along each of `dims`."""
        if len(dims) == 1 and not is_int(dims[0]):
            dims = tuple(dims[0])
        named = [self._dim(d, "flip") for d in dims]
        axes = set(named)
        if len(axes) != len(named):
            raise op_error("flip", f"dims {dims} repeat a dim", self.shape, "name each dim once")
        if not axes:
            return self.clone()
        reverse, keep = slice(None, None, -1), slice(None)
        # a copy, as torch's flip: the reversed slice alone would be a view of self
        return self[tuple(reverse if i in axes else keep for i in range(self.ndim))].clone()

    def fliplr(self: Tensor) -> Tensor:
        return self.flip(1)

    def flipud(self: Tensor) -> Tensor:
        return self.flip(0)

    def roll(self: Tensor, shifts: Any, dims: Any = None) -> Tensor:
        """Elements shifted `shifts` places along `dims`, those pushed off the end coming
        back at the start; without dims, along the flattened tensor."""
        from .tensor import cat

        if dims is None:
            if not is_int(shifts) and len(tuple(shifts)) == 1:
                shifts = tuple(shifts)[0]
            if not is_int(shifts):
                raise op_error(
                    "roll", "without dims, shifts must be one int", self.shape, "pass dims too"
                )
            return self.reshape(-1).roll(shifts, 0).reshape(self.shape)
        shift_list = (shifts,) if is_int(shifts) else tuple(shifts)
        dim_list = (dims,) if is_int(dims) else tuple(dims)
        if len(shift_list) != len(dim_list):
            raise op_error(
                "roll",
                f"{len(shift_list)} shifts for {len(dim_list)} dims",
                self.shape,
                "pass one shift per dim",
            )
        out = self
        for s, d in zip(shift_list, dim_list):
            d = self._dim(d, "roll")
            n = self.shape[d]
            k = int(s) % n if n else 0
            if k:
                out = cat([out.narrow(d, n - k, k), out.narrow(d, 0, n - k)], dim=d)
        return out

    def unflatten(self: Tensor, dim: int, sizes: Sequence[int]) -> Tensor:
        """Dim `dim` split into `sizes` (one may be -1)."""
        d = self._dim(dim, "unflatten")
        return self.reshape(self.shape[:d] + tuple(sizes) + self.shape[d + 1 :])

    def repeat_interleave(self: Tensor, repeats: int, dim: int | None = None) -> Tensor:
        """Each element repeated `repeats` times in place along `dim` (the flattened tensor
        without one): [1, 2] -> [1, 1, 2, 2]."""
        if not is_int(repeats) or repeats < 0:
            raise op_error(
                "repeat_interleave",
                f"repeats must be a whole number >= 0, got {repeats!r}",
                self.shape,
                "pass an int (per-element repeat counts are not supported)",
            )
        if dim is None:
            return self.reshape(-1).repeat_interleave(repeats, 0)
        d = self._dim(dim, "repeat_interleave")
        spread = self.unsqueeze(d + 1)
        wide = spread.expand(*spread.shape[: d + 1], repeats, *spread.shape[d + 2 :])
        return wide.reshape(*self.shape[:d], self.shape[d] * repeats, *self.shape[d + 1 :])

    def diag(self: Tensor, diagonal: int = 0) -> Tensor:
        """A 1-D tensor -> the square matrix with it on diagonal `diagonal`; a matrix -> that
        diagonal, as PyTorch's `diag`."""
        from .tensor import Tensor, where

        if self.ndim == 2:
            return self.diagonal(diagonal)
        if self.ndim != 1:
            raise op_error("diag", "expects a 1-D or 2-D tensor", self.shape, "flatten first")
        n = self.shape[0] + abs(diagonal)
        rows, cols = np.arange(n)[:, None], np.arange(n)[None, :]
        on = Tensor._make(cols - rows == diagonal)
        # the entry of row i is self[i] (diagonal >= 0) or self[i + diagonal]
        k = np.arange(n) if diagonal >= 0 else np.arange(n) + diagonal
        k = np.clip(k, 0, self.shape[0] - 1)
        values = self[Tensor._make(k)].reshape(n, 1).expand(n, n)
        return where(on, values, self._lift(0).cast(self.dtype))

    def tile(self: Tensor, *dims: Any) -> Tensor:
        """`repeat` with PyTorch's `tile` rule: fewer reps than dims are padded with ones in
        front."""
        reps = tuple(dims[0]) if len(dims) == 1 and not is_int(dims[0]) else dims
        reps = (1,) * (self.ndim - len(reps)) + tuple(reps)
        return self.repeat(*reps)

    def unbind(self: Tensor, dim: int = 0) -> tuple[Tensor, ...]:
        """The slices along `dim`, that dim removed."""
        d = self._dim(dim, "unbind")
        return tuple(self.select(d, i) for i in range(self.shape[d]))

    def select(self: Tensor, dim: int, index: int) -> Tensor:
        """The slice at `index` along `dim`, that dim removed."""
        d = self._dim(dim, "select")
        picker: list[Any] = [slice(None)] * self.ndim
        picker[d] = index
        return self[tuple(picker)]

    def triu(self: Tensor, diagonal: int = 0) -> Tensor:
        """The last two dims' upper triangle (j - i >= diagonal), zeros below."""
        return self._triangle("triu", diagonal)

    def tril(self: Tensor, diagonal: int = 0) -> Tensor:
        """The last two dims' lower triangle (j - i <= diagonal), zeros above."""
        return self._triangle("tril", diagonal)

    def _triangle(self: Tensor, op: str, diagonal: int) -> Tensor:
        from .tensor import Tensor, where

        if self.ndim < 2:
            raise op_error(op, "needs at least 2 dims", self.shape, "reshape to a matrix first")
        rows, cols = self.shape[-2:]
        offset = np.arange(cols)[None, :] - np.arange(rows)[:, None]
        keep = offset >= diagonal if op == "triu" else offset <= diagonal
        return where(Tensor._make(keep), self, self._lift(0).cast(self.dtype))

    def diagonal(self: Tensor, offset: int = 0, dim1: int = 0, dim2: int = 1) -> Tensor:
        """The entries (i, i + offset) of dims dim1 and dim2, as a last dim."""
        from .tensor import Tensor

        a, b = self._dim(dim1, "diagonal"), self._dim(dim2, "diagonal")
        if a == b:
            raise op_error("diagonal", "dim1 and dim2 are the same", self.shape, "pick two dims")
        moved = self.movedim((a, b), (-2, -1))
        rows, cols = moved.shape[-2:]
        i = np.arange(max(0, -offset), min(rows, cols - offset)) if rows and cols else np.arange(0)
        lead = (slice(None),) * (moved.ndim - 2)
        return moved[lead + (Tensor._make(i), Tensor._make(i + offset))]

    def trace(self: Tensor) -> Tensor:
        """The sum of a matrix's diagonal."""
        if self.ndim != 2:
            raise op_error("trace", "expects a 2-D tensor", self.shape, "index one matrix")
        return self.diagonal().sum()

    # -- in place (PyTorch's trailing underscore) ---------------------------------------------
    # Each computes its result with the ops above and writes it into self's array (the same
    # array: a module, optimizer or compiled function holding it sees the new values). As in
    # PyTorch, a tensor that requires grad may only change in place while no gradient is
    # recorded (`with no_grad():`, as `nn.init` does), and a tensor an op saved for its
    # backward pass makes that backward raise if changed after (its version is checked).
    def fill_(self: Tensor, value: Any) -> Tensor:
        """Every element set to `value` (cast to self's dtype, as PyTorch's)."""
        return self._write("fill_", self._lift(value), cast=True)

    def zero_(self: Tensor) -> Tensor:
        return self._write("zero_", self._lift(0), cast=True)

    def copy_(self: Tensor, src: Any) -> Tensor:
        return self._write("copy_", self._lift(src), cast=True)

    def add_(self: Tensor, other: Any, *, alpha: Any = 1) -> Tensor:
        return self._write("add_", self.add(other, alpha=alpha))

    def sub_(self: Tensor, other: Any, *, alpha: Any = 1) -> Tensor:
        return self._write("sub_", self.sub(other, alpha=alpha))

    def mul_(self: Tensor, other: Any) -> Tensor:
        return self._write("mul_", self * other)

    def div_(self: Tensor, other: Any, *, rounding_mode: str | None = None) -> Tensor:
        return self._write("div_", self.div(other, rounding_mode=rounding_mode))

    def clamp_(self: Tensor, min: Any = None, max: Any = None) -> Tensor:  # noqa: A002
        return self._write("clamp_", self.clamp(min, max))

    def bernoulli_(self: Tensor, p: Any = 0.5, *, generator: Any = None) -> Tensor:
        """Fill with 1 where a uniform draw is below `p` (a number or a tensor of
        probabilities broadcast to self), else 0 (the generator as `uniform_`'s)."""
        gen = generator if generator is not None else rng.generator()
        prob = p.numpy() if hasattr(p, "numpy") else np.asarray(p)
        return self._write("bernoulli_", self._lift(gen.random(self.shape) < prob), cast=True)

    def bernoulli(self: Tensor, *, generator: Any = None) -> Tensor:
        """0/1 draws (self's dtype) with probabilities self, as torch.bernoulli (no
        gradient: the draw is not differentiable)."""
        from .tensor import Tensor

        gen = generator if generator is not None else rng.generator()
        draws = gen.random(self.shape) < self.detach().numpy()
        return Tensor._make(draws.astype(self.dtype))

    def uniform_(self: Tensor, a: float = 0.0, b: float = 1.0, *, generator: Any = None) -> Tensor:
        """Fill with U(a, b) from the global generator (`tinygrad_edu.manual_seed`) or the
        numpy `generator` given."""
        gen = generator if generator is not None else rng.generator()
        return self._write("uniform_", self._lift(gen.uniform(a, b, self.shape)), cast=True)

    def normal_(
        self: Tensor, mean: float = 0.0, std: float = 1.0, *, generator: Any = None
    ) -> Tensor:
        """Fill with N(mean, std^2) (see `uniform_` for the generator)."""
        gen = generator if generator is not None else rng.generator()
        return self._write("normal_", self._lift(gen.normal(mean, std, self.shape)), cast=True)

    def __setitem__(self: Tensor, index: Any, value: Any) -> None:
        """`x[index] = value`, PyTorch's indexing (as `x[index]` reads: ints, slices, None,
        ..., int and bool index arrays) and assignment rules: the value (a number, array or
        tensor) broadcasts to the indexed part and is cast to x's dtype; views of x see the
        write. An in-place write, so the rules of the `_` methods hold (not while x
        requires grad and gradients are recorded, nor with a value that requires grad)."""
        from .tensor import Tensor, _normalize_index, _split_index

        lifted = value if isinstance(value, Tensor) else None
        # while the compiler traces, a constant built from numbers (a mask, an index table)
        # may still be filled in: neither side is symbolic
        concrete = isinstance(self.data, np.ndarray | np.generic) and (
            lifted is None or isinstance(lifted.data, np.ndarray | np.generic)
        )
        self._check_writable("setitem", lifted, concrete)
        source = lifted.data if lifted is not None else np.asarray(value)
        _check_fits("setitem", source, self.dtype, self.shape)
        basic, advanced = _split_index(_normalize_index(index, "setitem"))
        if not isinstance(self.data, np.ndarray) and np.isscalar(self.data):
            self.data = np.asarray(self.data)  # a reduction's numpy scalar: make it writable
        # PyTorch's order: the basic items' view, then the index arrays in it
        target = self.data if advanced is None else self.data[basic]
        where = basic if advanced is None else advanced
        try:
            # torch also drops a value's leading 1-dims (a (1,) tensor into one element)
            ndim = np.ndim(target[where]) if np.ndim(source) else 0
            while np.ndim(source) > ndim and np.shape(source)[0] == 1:
                source = source[0]
            target[where] = source
        except IndexError as e:
            raise op_error(
                "setitem", str(e), self.shape, "index within the tensor's shape", OpIndexError
            ) from None
        except (ValueError, TypeError) as e:  # broadcast, read-only, NaN into an int
            raise op_error(
                "setitem",
                f"cannot write a {np.shape(source)} {np.asarray(source).dtype} value there ({e})",
                self.shape,
                "give the value the indexed part's shape (or one that broadcasts to it) and "
                "a dtype this tensor can hold; a read-only array needs x = x.clone() first",
            ) from None
        note_write(self.data)

    def _check_writable(
        self: Tensor, op: str, value: Tensor | None, concrete: bool = False
    ) -> None:
        """The in-place rules (see the section): not while tracing (unless both sides hold
        numbers: `concrete`), not into a tensor that requires grad while gradients are
        recorded, not from a value that requires grad."""
        if tracing() and not concrete:
            raise op_error(
                op,
                "in-place ops cannot be compiled (a traced tensor has no array to write)",
                self.shape,
                f"write the out-of-place form, {_out_of_place(op)}",
            )
        if self.requires_grad and grad_enabled():
            raise op_error(
                op,
                "a tensor that requires grad cannot change in place while gradients are "
                "recorded (its gradient would no longer match its values)",
                self.shape,
                f"wrap the call in `with tinygrad_edu.no_grad():` (as nn.init does), or "
                f"write {_out_of_place(op)}",
            )
        if value is not None and value.requires_grad and grad_enabled():
            raise op_error(
                op,
                "the value written requires grad, and an in-place write is not recorded for "
                "backward, so its gradient would be silently lost",
                self.shape,
                f"write the out-of-place form, {_out_of_place(op)}, to keep the gradient, or "
                "pass value.detach() if no gradient should flow",
            )

    def _write(self: Tensor, op: str, value: Tensor, cast: bool = False) -> Tensor:
        """Write `value` (broadcast to self's shape) into self's array; see the section."""
        self._check_writable(op, value)
        if not cast and np.result_type(value.dtype, self.dtype) != self.dtype:
            raise op_error(
                op,
                f"the {value.dtype} result cannot be stored in this {self.dtype} tensor",
                self.shape,
                f"cast first (x = x.float()), or use the out-of-place {_out_of_place(op)}",
            )
        try:
            target = np.broadcast_shapes(tuple(value.shape), tuple(self.shape))
        except ValueError:
            target = None
        if target != tuple(self.shape):
            raise op_error(
                op,
                f"a {tuple(value.shape)} value does not broadcast to this tensor's shape",
                self.shape,
                "give the value this shape, or one that broadcasts to it",
            )
        if not isinstance(self.data, np.ndarray) and np.isscalar(self.data):
            self.data = np.asarray(self.data)  # a reduction's numpy scalar: make it writable
        try:
            self.data[...] = value.data
        except ValueError as e:  # numpy: "assignment destination is read-only"
            raise op_error(
                op,
                f"this tensor's array cannot be written ({e})",
                self.shape,
                f"make a writable copy first: x = x.clone(), then x.{op}(...)",
            ) from None
        note_write(self.data)
        return self

    # last in the class: from here on these names mean the methods, not the builtins
    def int(self: Tensor) -> Tensor:
        return self.cast(np.int32)

    def long(self: Tensor) -> Tensor:
        return self.cast(np.int64)

    def bool(self: Tensor) -> Tensor:
        return self.cast(np.bool_)

    def type(self: Tensor, dtype: Any = None) -> Any:
        """With a dtype, self cast to it (`x.type(tg.float64)`); without, the dtype's name."""
        return np.dtype(self.dtype).name if dtype is None else self.cast(dtype)

    def half(self: Tensor) -> Tensor:
        """float16 (eager; compiled kernels run it with numpy)."""
        return self.cast(np.float16)


# PyTorch's other in-place variants: x.relu_() writes x.relu() into x's array (see `_write`)
_IN_PLACE_OF = (
    "abs", "neg", "exp", "exp2", "expm1", "log", "log1p", "log2", "log10", "sqrt", "rsqrt",
    "sigmoid", "tanh", "relu", "sin", "cos", "tan", "erf", "floor", "ceil", "round", "trunc",
    "frac", "sign", "reciprocal", "square", "pow", "fmod", "remainder", "clamp_min",
    "clamp_max", "clip", "masked_fill", "lerp", "nan_to_num", "tril", "triu", "hardtanh",
    "leaky_relu", "atan2", "hypot", "copysign", "logical_not",
)  # fmt: skip


def _in_place_form(name: str) -> Callable[..., Any]:
    def in_place(self: Tensor, *args: Any, **kwargs: Any) -> Tensor:
        return self._write(f"{name}_", getattr(self, name)(*args, **kwargs))

    in_place.__name__ = in_place.__qualname__ = f"{name}_"
    in_place.__doc__ = f"`x.{name}(...)` written into x's own array (see the in-place section)."
    return in_place


for _name in _IN_PLACE_OF:
    if not hasattr(MethodForms, f"{_name}_"):
        setattr(MethodForms, f"{_name}_", _in_place_form(_name))

# what each in-place method's error suggests instead
_OUT_OF_PLACE = {
    "fill_": "x = tinygrad_edu.full_like(x, value)",
    "zero_": "x = tinygrad_edu.zeros_like(x)",
    "copy_": "x = value.clone()",
    "uniform_": "x = tinygrad_edu.rand(*x.shape) * (b - a) + a",
    "normal_": "x = tinygrad_edu.randn(*x.shape) * std + mean",
    "setitem": "x = tinygrad_edu.where(mask, value, x) (or build x with tinygrad_edu.cat)",
}


def _check_fits(op: str, source: Any, dtype: np.dtype, shape: Any) -> None:
    """Integers written into a narrower integer tensor must fit: numpy's cast would wrap
    them silently (2**40 into int32 is 0), where torch refuses."""
    kind = getattr(source, "dtype", np.dtype(object)).kind
    if dtype.kind not in "iu" or kind not in "iu" or np.can_cast(source.dtype, dtype):
        return
    if not isinstance(source, np.ndarray) or source.size == 0:
        return
    info = np.iinfo(dtype)
    low, high = int(source.min()), int(source.max())
    if low < info.min or high > info.max:
        raise op_error(
            op,
            f"values {low} .. {high} do not fit this {dtype} tensor ({info.min} .. {info.max})",
            shape,
            "cast the tensor to a wider integer type first (x = x.long())",
        )


def _scaled_sum(base: Tensor, product: Tensor, beta: Any, alpha: Any) -> Tensor:
    """beta * base + alpha * product; with beta 0 the base is not read (torch's rule: NaN or
    inf there, as in an `empty` buffer, does not leak in), only broadcast against."""
    scaled = product * alpha if alpha != 1 else product
    if beta == 0:
        shape = np.broadcast_shapes(tuple(scaled.shape), tuple(base.shape))
        return scaled if tuple(scaled.shape) == shape else scaled.expand(*shape).clone()
    return base * beta + scaled


def _wrapped(index: Tensor, length: int) -> Tensor:
    """Negative indices counted from the end, as torch's."""
    from .tensor import where

    return where(index < 0, index + length, index)


def _out_of_place(op: str) -> str:
    return _OUT_OF_PLACE.get(op, f"x = x.{op[:-1]}(...)")


def functions(names: Sequence[str]) -> dict[str, Any]:
    """`torch.exp(x)`-style functions for the named Tensor methods: each lifts a non-tensor
    first argument (a list, an array, a number) to a Tensor and calls the method."""
    from .tensor import Tensor

    def function_of(name: str) -> Any:
        method = getattr(Tensor, name)

        def fn(input: Any, *args: Any, **kwargs: Any) -> Any:  # noqa: A002 (PyTorch's name)
            x = input if isinstance(input, Tensor) else Tensor(input)
            return method(x, *args, **kwargs)

        fn.__name__ = fn.__qualname__ = name
        fn.__doc__ = f"`{name}(input, ...)` is `input.{name}(...)` (PyTorch's function form)."
        return fn

    return {name: function_of(name) for name in names}
