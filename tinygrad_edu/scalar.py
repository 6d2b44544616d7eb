"""`Value`: a scalar that records its history, micrograd-sized, on the shared autograd.

Its ops are the op table's (`ops.OPS`): the same forward formula and the same
vector-Jacobian product as `Tensor`, run on Python floats. `explain()` prints the chain rule
node by node from those same VJPs.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from . import ops
from .autograd import Node, no_grad
from .errors import op_error
from .ops import Op

Number = int | float


class Value(Node):
    """A scalar with a gradient. `Value(2.0) * Value(3.0)` records a `mul` node."""

    __slots__ = ()

    def __init__(self, data: Number, requires_grad: bool = True, label: str = "") -> None:
        if isinstance(data, Value):
            data = data.data
        try:
            value = float(data)
        except (TypeError, ValueError):
            raise TypeError(
                f"Value: expected a real number, got {type(data).__name__} {data!r}. "
                "Fix: use Tensor for arrays; Value holds one float"
            ) from None
        super().__init__(value, requires_grad)
        self.label = label
        self._retain = True  # like micrograd, every Value keeps its gradient after backward

    # -- Node hooks -------------------------------------------------------------------------
    @classmethod
    def _wrap(cls, data: Any) -> Value:
        return cls(data, requires_grad=False)

    @classmethod
    def _forward(
        cls, op: Op, inputs: Sequence[Node], attrs: dict[str, Any], shape: tuple[int, ...]
    ) -> Value:
        values = [i.data for i in inputs]
        try:
            with np.errstate(all="ignore"):
                result = float(op.forward(np, *(np.float64(v) for v in values), **attrs))
        except ZeroDivisionError:
            result = math.nan
        if math.isnan(result) and not any(math.isnan(v) for v in values):
            raise op_error(
                op.name,
                "the result is not a number",
                values,
                "keep inputs in the op's domain (no log/sqrt of negatives, 0/0, "
                "0**negative, inf - inf)",
            )
        return cls(result, requires_grad=False)

    def _seed_grad(self) -> Value:
        return Value(1.0, requires_grad=False)

    def _store_grad(self, grad: Node) -> None:
        self.grad = (self.grad or 0.0) + float(grad.data)

    def _release(self) -> None:
        # A scalar graph is small, and explain() reads it after backward: keep the inputs,
        # only mark the node, so a second backward still raises as it does for a Tensor.
        self._released = True

    @property
    def shape(self) -> tuple[int, ...]:
        return ()

    def _lift(self, other: Any) -> Value:
        return other if isinstance(other, Value) else Value(other, requires_grad=False)

    def _binary(self, op: Op, other: Any, reverse: bool = False) -> Value:
        a, b = (self._lift(other), self) if reverse else (self, self._lift(other))
        return self.apply(op, (a, b), {})  # type: ignore[return-value]

    # -- arithmetic ---------------------------------------------------------------------------
    def __add__(self, other: Any) -> Value:
        return self._binary(ops.ADD, other)

    def __radd__(self, other: Any) -> Value:
        return self._binary(ops.ADD, other, reverse=True)

    def __sub__(self, other: Any) -> Value:
        return self._binary(ops.SUB, other)

    def __rsub__(self, other: Any) -> Value:
        return self._binary(ops.SUB, other, reverse=True)

    def __mul__(self, other: Any) -> Value:
        return self._binary(ops.MUL, other)

    def __rmul__(self, other: Any) -> Value:
        return self._binary(ops.MUL, other, reverse=True)

    def __truediv__(self, other: Any) -> Value:
        return self._binary(ops.DIV, other)

    def __rtruediv__(self, other: Any) -> Value:
        return self._binary(ops.DIV, other, reverse=True)

    def __pow__(self, other: Any) -> Value:
        return self._binary(ops.POW, other)

    def __rpow__(self, other: Any) -> Value:
        return self._binary(ops.POW, other, reverse=True)

    def __neg__(self) -> Value:
        return self.apply(ops.NEG, (self,), {})  # type: ignore[return-value]

    # Comparisons give 0.0/1.0 Values with no gradient (used by relu's and abs' VJPs).
    def __gt__(self, other: Any) -> Value:
        return self._binary(ops.GT, other)

    def __lt__(self, other: Any) -> Value:
        return self._binary(ops.LT, other)

    def __ge__(self, other: Any) -> Value:
        return self._binary(ops.GE, other)

    def __le__(self, other: Any) -> Value:
        return self._binary(ops.LE, other)

    __hash__ = object.__hash__

    def _unary(self, op: Op, **attrs: Any) -> Value:
        return self.apply(op, (self,), attrs)  # type: ignore[return-value]

    def exp(self) -> Value:
        return self._unary(ops.EXP)

    def log(self) -> Value:
        return self._unary(ops.LOG)

    def sqrt(self) -> Value:
        return self._unary(ops.SQRT)

    def abs(self) -> Value:
        return self._unary(ops.ABS)

    def sign(self) -> Value:
        return self._unary(ops.SIGN)

    def tanh(self) -> Value:
        return self._unary(ops.TANH)

    def sin(self) -> Value:
        return self._unary(ops.SIN)

    def cos(self) -> Value:
        return self._unary(ops.COS)

    def sigmoid(self) -> Value:
        return self._unary(ops.SIGMOID)

    def relu(self) -> Value:
        return self._unary(ops.RELU)

    def leaky_relu(self, negative_slope: float = 0.01) -> Value:
        return self._unary(ops.LEAKY_RELU, slope=negative_slope)

    def where(self, condition: Any, other: Any) -> Value:
        """`condition ? self : other` (condition a 0/1 Value from a comparison)."""
        return self.apply(ops.WHERE, (self._lift(condition), self, self._lift(other)), {})  # type: ignore[return-value]

    def detach(self) -> Value:
        return Value(self.data, requires_grad=False)

    # -- display ------------------------------------------------------------------------------
    def __repr__(self) -> str:
        grad = "" if self.grad is None else f", grad={self.grad:.6g}"
        return f"Value({self.data:.6g}{grad})"

    def __float__(self) -> float:
        return self.data

    def explain(self) -> str:
        """The chain-rule ledger of the last `backward()` through this value.

        One block per node, outputs first: its op and value, and for each input the local
        derivative (the op table's VJP applied to an upstream gradient of 1) times this node's
        gradient. When an input feeds several nodes (fan-out), its gradient is the sum of the
        contributions, and the ledger shows that sum. Call `backward()` first.
        """
        order = list(reversed(self.topological_order()))
        names = {id(n): n.label or f"v{i}" for i, n in enumerate(order)}
        grads: dict[int, float] = {id(self): 1.0}
        parts: dict[int, list[str]] = {}
        lines = [
            f"chain-rule ledger for {names[id(self)]} = {self.data:.6g} "
            f"(d{names[id(self)]}/d{names[id(self)]} = 1)"
        ]
        for node in order:
            up = grads.get(id(node), 0.0)
            if id(node) in parts and len(parts[id(node)]) > 1:
                lines.append(
                    f"  fan-out: d/d{names[id(node)]} = {' + '.join(parts[id(node)])} = {up:.6g}"
                )
            if node.is_leaf:
                lines.append(f"{names[id(node)]} = {node.data:.6g}  (leaf)  grad = {up:.6g}")
                continue
            assert node._op is not None
            args = ", ".join(
                names[id(i)] if i.requires_grad else f"{i.data:.6g}" for i in node._inputs
            )
            lines.append(
                f"{names[id(node)]} = {node._op.name}({args}) = {node.data:.6g}  grad = {up:.6g}"
            )
            with no_grad():
                locals_ = node._op.vjp(
                    Value(1.0, requires_grad=False), node, *node._inputs, **node._attrs
                )
            for parent, local in zip(node._inputs, locals_, strict=True):
                if local is None or not parent.requires_grad:
                    continue
                contribution = float(local.data) * up
                lines.append(
                    f"  d{names[id(node)]}/d{names[id(parent)]} = "
                    f"{float(local.data):.6g} (local) x {up:.6g} (upstream) = "
                    f"{contribution:.6g}"
                )
                grads[id(parent)] = grads.get(id(parent), 0.0) + contribution
                parts.setdefault(id(parent), []).append(f"{contribution:.6g}")
        return "\n".join(lines)
