"""`gradcheck`: compare backward's gradients with central finite differences, in float64.

Full mode builds both Jacobians (one forward pair per input element, one backward per output
element). Fast mode compares the scalar vᵀJu for random u, v (two forwards, one backward), for
inputs too big for a full Jacobian. On a mismatch the error shows numerical and analytical
values side by side and names the first graph node whose own VJP disagrees with a finite
difference of its own forward: that node's op is where the bug is.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from .autograd import no_grad
from .tensor import Tensor


class GradcheckError(AssertionError):
    """Analytical and numerical gradients disagree beyond the tolerances."""


def _as_inputs(inputs: Sequence[Any]) -> list[Tensor]:
    out = []
    for x in inputs:
        data = x.numpy() if isinstance(x, Tensor) else np.asarray(x)
        wants = x.requires_grad if isinstance(x, Tensor) else data.dtype.kind == "f"
        if data.dtype.kind == "f":
            out.append(
                Tensor(np.array(data, dtype=np.float64), dtype=np.float64, requires_grad=wants)
            )
        else:
            out.append(Tensor(data))
    return out


def _flat_output(fn: Callable[..., Any], xs: list[Tensor]) -> Tensor:
    out = fn(*xs)
    if isinstance(out, (tuple, list)):
        from .tensor import cat

        return cat([o.reshape(-1) for o in out])
    if not isinstance(out, Tensor):
        raise TypeError(f"gradcheck: fn must return a Tensor, got {type(out).__name__}")
    return out.reshape(-1) if out.ndim != 1 else out


def _evaluate(fn: Callable[..., Any], xs: list[Tensor]) -> np.ndarray:
    # Recorded as usual (not under no_grad): fn may itself call backward, e.g. to check a
    # gradient of a gradient.
    return np.array(_flat_output(fn, xs).numpy(), dtype=np.float64)


def _numerical_jacobian(
    fn: Callable[..., Any], xs: list[Tensor], x: Tensor, eps: float
) -> np.ndarray:
    flat = x.data.reshape(-1)  # a view: perturb in place, restore after
    columns = []
    for j in range(flat.size):
        orig = flat[j]
        flat[j] = orig + eps
        plus = _evaluate(fn, xs)
        flat[j] = orig - eps
        minus = _evaluate(fn, xs)
        flat[j] = orig
        columns.append((plus - minus) / (2 * eps))
    return np.stack(columns, axis=1) if columns else np.zeros((0, 0))


def _analytical_jacobians(
    fn: Callable[..., Any], xs: list[Tensor], wrt: list[Tensor]
) -> list[np.ndarray]:
    out = _flat_output(fn, xs)
    rows: list[list[np.ndarray]] = [[] for _ in wrt]
    for k in range(out.size):
        for x in wrt:
            x.grad = None
        seed = np.zeros(out.shape)
        seed[k] = 1.0
        if out.requires_grad:
            out.backward(Tensor(seed, dtype=np.float64), retain_graph=True)  # one per row
        for i, x in enumerate(wrt):
            g = np.zeros(x.shape) if x.grad is None else x.grad.numpy()
            rows[i].append(np.asarray(g, dtype=np.float64).reshape(-1))
    return [np.stack(r) if r else np.zeros((0, x.size)) for r, x in zip(rows, wrt)]


def _describe_mismatch(
    name: str, num: np.ndarray, ana: np.ndarray, atol: float, rtol: float, limit: int = 6
) -> str:
    err = np.abs(num - ana) - (atol + rtol * np.abs(num))
    worst = np.argsort(err, axis=None)[::-1][:limit]
    lines = [
        f"{name}: max |numerical - analytical| = {np.abs(num - ana).max():.3e}",
        "  (output, input)   numerical      analytical",
    ]
    for flat in worst:
        if err.flat[flat] <= 0:
            break
        idx = np.unravel_index(flat, num.shape)
        lines.append(f"  {str(tuple(int(i) for i in idx)):16s}  {num[idx]: .6e}  {ana[idx]: .6e}")
    return "\n".join(lines)


def first_bad_node(
    out: Tensor, eps: float = 1e-6, atol: float = 1e-5, rtol: float = 1e-3, seed: int = 0
) -> str | None:
    """The first node (inputs first) whose VJP disagrees with central differences of its own
    forward, checked as vᵀJu for random u, v; None when every node agrees."""
    rand = np.random.default_rng(seed)
    for node in out.topological_order():
        if node.is_leaf or node._op is None:
            continue
        op, attrs, inputs = node._op, node._attrs, node._inputs
        v = rand.standard_normal(node.shape)
        with no_grad():
            grads = op.vjp(Tensor(v, dtype=np.float64), node, *inputs, **attrs)
        for j, (x, g) in enumerate(zip(inputs, grads)):
            if g is None or not x.requires_grad or x.data.dtype.kind != "f":
                continue
            u = rand.standard_normal(x.shape)
            arrays = [i.data for i in inputs]

            def f(
                delta: float,
                j: int = j,
                u: np.ndarray = u,
                arrays: list = arrays,
                op: Any = op,
                attrs: dict = attrs,
            ) -> Any:
                moved = list(arrays)
                moved[j] = arrays[j] + delta * u
                return np.asarray(op.forward(np, *moved, **attrs), dtype=np.float64)

            numerical = float(np.sum((f(eps) - f(-eps)) / (2 * eps) * v))
            analytical = float(np.sum(g.numpy() * u))
            if abs(numerical - analytical) > atol + rtol * abs(numerical):
                shapes = ", ".join(str(i.shape) for i in inputs)
                return (
                    f"node '{op.name}' (inputs {shapes}, attrs {attrs}): for input {j}, "
                    f"numerical vᵀJu = {numerical:.6e} but its VJP gives "
                    f"{analytical:.6e}"
                )
    return None


def gradcheck(
    fn: Callable[..., Any],
    inputs: Sequence[Any],
    eps: float = 1e-6,
    atol: float = 1e-5,
    rtol: float = 1e-3,
    fast: bool = False,
    seed: int = 0,
) -> bool:
    """Check backward's gradients of `fn(*inputs)` against central differences in float64.

    `inputs` are Tensors or arrays; float ones are copied to float64 (arrays and Tensors with
    requires_grad=True are checked, others held constant). `fn` returns a Tensor (any shape)
    or a tuple of them. Returns True, or raises `GradcheckError` with the disagreeing values and
    the first graph node whose own VJP is wrong.
    """
    xs = _as_inputs(inputs)
    wrt = [x for x in xs if x.requires_grad]
    if not wrt:
        raise ValueError(
            "gradcheck: no input requires grad. Fix: pass float arrays or "
            "Tensors created with requires_grad=True"
        )
    failures: list[str] = []
    if fast:
        rand = np.random.default_rng(seed)
        us = [rand.standard_normal(x.shape) for x in wrt]
        base = [x.data.copy() for x in wrt]

        def shifted(delta: float) -> np.ndarray:
            for x, b, u in zip(wrt, base, us):
                x.data[...] = b + delta * u
            return _evaluate(fn, xs)

        plus, minus = shifted(eps), shifted(-eps)
        shifted(0.0)
        v = rand.standard_normal(plus.shape)
        numerical = float(np.sum((plus - minus) / (2 * eps) * v))
        out = _flat_output(fn, xs)
        for x in wrt:
            x.grad = None
        if out.requires_grad:
            out.backward(Tensor(v, dtype=np.float64))
        analytical = float(
            sum(np.sum(x.grad.numpy() * u) for x, u in zip(wrt, us) if x.grad is not None)
        )
        if abs(numerical - analytical) > atol + rtol * abs(numerical):
            failures.append(
                f"vᵀJu for random u, v: numerical {numerical:.6e}, analytical {analytical:.6e}"
            )
    else:
        analytical_js = _analytical_jacobians(fn, xs, wrt)
        for i, (x, ana) in enumerate(zip(wrt, analytical_js)):
            num = _numerical_jacobian(fn, xs, x, eps)
            if num.shape != ana.shape:
                num = num.reshape(ana.shape)
            if not np.allclose(ana, num, atol=atol, rtol=rtol):
                failures.append(
                    _describe_mismatch(f"input {i} (shape {x.shape})", num, ana, atol, rtol)
                )
    if not failures:
        return True
    out = _flat_output(fn, xs)
    culprit = first_bad_node(out, eps, atol, rtol, seed) if out.requires_grad else None
    where = (
        f"first node whose own backward disagrees: {culprit}"
        if culprit
        else "every node's VJP agrees with its own finite difference: look for a kink "
        "(relu/max/abs near 0), an eps too large for the curvature, or a non-float input"
    )
    details = "\n".join(failures)
    raise GradcheckError(
        f"gradcheck failed (eps={eps:g}, atol={atol:g}, rtol={rtol:g})\n{details}\n{where}"
    )
