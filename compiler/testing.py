"""A hypothesis strategy for random DSL programs (DAGs) to test the compiler differentially.

`programs()` draws a `Program`: a list of steps, each applying one op to earlier values
(conv2d with random stride/padding/groups, relu, max/avg pooling, broadcasting binary ops,
unary ops, linear, reshape/permute, reductions, products with a 1-D operand). Parameters are
drawn too, and so are several inputs of equal and unequal shapes, read in any order (a
compiled call must bind them by argument position, not by the order the tracer met them) or
not at all. The 1-D products' lengths straddle the vector widths and tile sizes (8, 16, 64).
A Program is an `nn.Module`, so it can be traced, compiled and trained; its `repr` lists the
steps, which is what hypothesis prints (shrunk) when a differential test fails.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from hypothesis import strategies as st

from tinygrad_edu import Tensor, nn
from tinygrad_edu.ops import window_out_size


@dataclass(frozen=True)
class Step:
    op: str
    args: tuple[int, ...]  # indices of earlier values
    params: tuple[Any, ...] = ()

    def __repr__(self) -> str:
        extra = f", {self.params}" if self.params else ""
        return f"{self.op}({', '.join(f'v{a}' for a in self.args)}{extra})"


class Program(nn.Module):
    """Values 0..n-1 are the inputs (value 0 the (N, C, H, W) one, then `extra_inputs`);
    step k makes value n + k; the output is a tuple of the step values nothing else read."""

    def __init__(
        self,
        x_shape: tuple[int, ...],
        steps: list[Step],
        seed: int,
        extra_inputs: tuple[tuple[int, ...], ...] = (),
    ) -> None:
        super().__init__()
        self.x_shape, self.steps = x_shape, steps
        self.input_shapes = (x_shape, *extra_inputs)
        rng = np.random.default_rng(seed)
        self._weights: list[str] = []
        shapes = list(self.input_shapes)
        for k, s in enumerate(steps):
            shapes.append(_out_shape(s, shapes))
            for j, shape in enumerate(_param_shapes(s, shapes)):
                name = f"w{k}_{j}"
                setattr(self, name, nn.Parameter(rng.uniform(-1, 1, shape)))
        self.shapes = shapes

    def __repr__(self) -> str:
        inputs = ", ".join(f"v{i} = input{s}" for i, s in enumerate(self.input_shapes))
        lines = [f"Program({inputs}):"]
        n = len(self.input_shapes)
        lines += [f"  v{n + k} = {s!r}" for k, s in enumerate(self.steps)]
        return "\n".join(lines)

    def example_inputs(self, seed: int, dtype: Any = np.float32) -> list[np.ndarray]:
        """Standard-normal arrays for every input, in argument order."""
        rng = np.random.default_rng(seed)
        return [rng.standard_normal(s).astype(dtype) for s in self.input_shapes]

    def forward(self, *xs: Tensor) -> tuple[Tensor, ...]:
        values = list(xs)
        for k, s in enumerate(self.steps):
            w = [getattr(self, f"w{k}_{j}") for j in range(len(_param_shapes(s, self.shapes)))]
            values.append(_apply(s, [values[a] for a in s.args], w))
        used = {a for s in self.steps for a in s.args}
        n = len(xs)
        return tuple(v for i, v in enumerate(values) if i not in used and i >= n) or (xs[0],)


def scalar_loss(program: Program) -> Any:
    """A scalar of every output of `program` (the first summed, the rest mean-squared), for
    differentiating a random program as a whole."""

    def loss(*xs: Tensor) -> Tensor:
        outs = program(*xs)
        total = outs[0].sum()
        for o in outs[1:]:
            total = total + (o * o).mean()
        return total

    return loss


def _param_shapes(s: Step, shapes: list[tuple[int, ...]]) -> list[tuple[int, ...]]:
    x = shapes[s.args[0]]
    if s.op == "conv2d":
        out_c, k, _, _, _, groups = s.params
        return [(out_c, x[1] // groups, k[0], k[1]), (out_c,)]
    if s.op == "linear":
        return [(s.params[0], int(np.prod(x[1:]))), (s.params[0],)]
    if s.op == "scale":
        return [tuple(1 if i != 1 else n for i, n in enumerate(x))]
    if s.op == "matmul_param":  # x @ w with w a vector parameter
        return [(x[-1],)]
    return []


def _out_shape(s: Step, shapes: list[tuple[int, ...]]) -> tuple[int, ...]:
    x = shapes[s.args[0]]
    if s.op == "conv2d":
        out_c, k, stride, pad, dil, _ = s.params
        return (
            x[0],
            out_c,
            *(window_out_size(x[2 + i], k[i], stride[i], pad[i], dil[i]) for i in range(2)),
        )
    if s.op in ("max_pool2d", "avg_pool2d"):
        k, stride, pad = s.params
        return (*x[:2], *(window_out_size(x[2 + i], k[i], stride[i], pad[i], 1) for i in range(2)))
    if s.op == "linear":
        return (x[0], s.params[0])
    if s.op == "sum":
        axis, keepdim = s.params
        return x[:axis] + ((1,) if keepdim else ()) + x[axis + 1 :]
    if s.op == "permute":
        return tuple(x[d] for d in s.params[0])
    if s.op == "flatten":
        return (x[0], int(np.prod(x[1:])))
    if s.op in ("add", "mul", "sub", "maximum"):
        return tuple(np.broadcast_shapes(x, shapes[s.args[1]]))
    if s.op == "matmul":
        return _matmul_1d_shape(x, shapes[s.args[1]])
    if s.op == "matmul_param":
        return x[:-1]
    return x


def _matmul_1d_shape(a: tuple[int, ...], b: tuple[int, ...]) -> tuple[int, ...]:
    """The shape of a @ b where one operand is 1-D (matrix-vector, vector-matrix or a dot)."""
    return a[:-1] + b[1:]


def _apply(s: Step, xs: list[Tensor], w: list[Tensor]) -> Tensor:
    x = xs[0]
    if s.op == "conv2d":
        _, _, stride, pad, dil, groups = s.params
        return x.conv2d(w[0], w[1], stride, pad, dil, groups)
    if s.op == "max_pool2d":
        return x.max_pool2d(*s.params)
    if s.op == "avg_pool2d":
        return x.avg_pool2d(*s.params)
    if s.op == "linear":
        return x.flatten(1).linear(w[0], w[1])
    if s.op == "scale":
        return x * w[0]
    if s.op == "sum":
        return x.sum(axis=s.params[0], keepdim=s.params[1])
    if s.op == "permute":
        return x.permute(*s.params[0])
    if s.op == "flatten":
        return x.flatten(1)
    if s.op == "matmul":
        return x @ xs[1]
    if s.op == "matmul_param":
        return x @ w[0]
    if s.op in ("add", "mul", "sub", "maximum"):
        other = xs[1]
        return getattr(
            x, {"add": "__add__", "mul": "__mul__", "sub": "__sub__", "maximum": "maximum"}[s.op]
        )(other)
    return getattr(x, s.op)()


UNARY = ("relu", "tanh", "sigmoid", "exp_neg")


# 1-D product lengths below, at and above the vector widths (8, 16) and a tile size (64)
VECTOR_LENGTHS = (1, 3, 7, 8, 9, 15, 16, 17, 63, 64, 65)


@st.composite
def programs(draw: Any, max_steps: int = 6) -> Program:
    """Random valid programs over an (N, C, H, W) input and up to three more inputs: one of
    the same shape, one that broadcasts against it, and 1-D / 2-D operands of products."""
    n, c = draw(st.integers(1, 2)), draw(st.sampled_from([2, 4]))
    h, w = draw(st.integers(4, 9)), draw(st.integers(4, 9))
    extra = draw(_extra_inputs((n, c, h, w)))
    shapes: list[tuple[int, ...]] = [(n, c, h, w), *extra]
    steps: list[Step] = []
    for _ in range(draw(st.integers(1, max_steps))):
        k = draw(st.integers(0, len(shapes) - 1))
        x = shapes[k]
        choices = ["relu", "tanh", "sigmoid", "scale"]
        if len(x) >= 1:
            choices += ["sum", "matmul_param"]
        if len(x) == 4:
            choices += ["conv2d", "conv2d", "max_pool2d", "avg_pool2d", "permute", "flatten"]
        if len(x) >= 2:
            choices += ["linear"]
        partners = [j for j, s in enumerate(shapes) if _broadcasts(s, x)]
        if partners:
            choices += ["add", "mul", "sub", "maximum"]
        factors = [j for j, s in enumerate(shapes) if _is_1d_product(x, s)]
        if factors:  # often: the products' operands are inputs drawn for them
            choices += ["matmul"] * 4
        op = draw(st.sampled_from(choices))
        step = _draw_step(draw, op, k, x, partners if op != "matmul" else factors)
        if step is None:
            continue
        steps.append(step)
        shapes.append(_out_shape(step, shapes))
    return Program(shapes[0], steps, draw(st.integers(0, 2**16)), tuple(extra))


@st.composite
def _extra_inputs(draw: Any, x: tuple[int, ...]) -> list[tuple[int, ...]]:
    """Inputs besides x, each present or not: x's shape, a shape that broadcasts against
    it, and a matrix and vectors whose products have a 1-D operand."""
    extra: list[tuple[int, ...]] = []
    if draw(st.booleans()):
        extra.append(x)
    if draw(st.booleans()):
        extra.append(draw(st.sampled_from([(1, x[1], 1, 1), (x[1], 1, 1), (x[3],)])))
    if draw(st.booleans()):
        length, rows = draw(st.sampled_from(VECTOR_LENGTHS)), draw(st.integers(1, 5))
        extra.append((length,))
        extra += draw(
            st.lists(st.sampled_from([(rows, length), (length, rows), (length,)]), max_size=2)
        )
    return draw(st.permutations(extra)) if extra else extra


def _is_1d_product(a: tuple[int, ...], b: tuple[int, ...]) -> bool:
    """a @ b is a matrix-vector, vector-matrix or vector-vector product."""
    if len(a) == 2 and len(b) == 1:
        return a[1] == b[0]
    if len(a) == 1 and len(b) in (1, 2):
        return a[0] == b[0]
    return False


def _broadcasts(a: tuple[int, ...], b: tuple[int, ...]) -> bool:
    try:
        return tuple(np.broadcast_shapes(a, b)) == tuple(b) or tuple(
            np.broadcast_shapes(a, b)
        ) == tuple(a)
    except ValueError:
        return False


def _draw_step(draw: Any, op: str, k: int, x: tuple[int, ...], partners: list[int]) -> Step | None:
    if op == "conv2d":
        groups = draw(st.sampled_from([g for g in (1, 2) if x[1] % g == 0]))
        kernel = (draw(st.integers(1, 3)), draw(st.integers(1, 3)))
        stride = (draw(st.integers(1, 2)), draw(st.integers(1, 2)))
        pad = (draw(st.integers(0, 1)), draw(st.integers(0, 1)))
        dil = (draw(st.integers(1, 2)), 1)
        if any(
            window_out_size(x[2 + i], kernel[i], stride[i], pad[i], dil[i]) < 1 for i in range(2)
        ):
            return None
        return Step(op, (k,), (groups * draw(st.integers(1, 3)), kernel, stride, pad, dil, groups))
    if op in ("max_pool2d", "avg_pool2d"):
        kernel = (draw(st.integers(1, 3)), draw(st.integers(1, 3)))
        stride = (draw(st.integers(1, 2)), draw(st.integers(1, 2)))
        pad = (draw(st.integers(0, kernel[0] // 2)), draw(st.integers(0, kernel[1] // 2)))
        if any(window_out_size(x[2 + i], kernel[i], stride[i], pad[i], 1) < 1 for i in range(2)):
            return None
        return Step(op, (k,), (kernel, stride, pad))
    if op == "linear":
        return Step(op, (k,), (draw(st.integers(1, 5)),))
    if op == "sum":
        return Step(op, (k,), (draw(st.integers(0, len(x) - 1)), draw(st.booleans())))
    if op == "matmul":
        return Step(op, (k, draw(st.sampled_from(partners))))
    if op == "permute":
        return Step(op, (k,), (tuple(draw(st.permutations(range(4)))),))
    if op in ("add", "mul", "sub", "maximum"):
        return Step(op, (k, draw(st.sampled_from(partners))))
    if op == "exp_neg":
        return None
    return Step(op, (k,))


def assert_step_matches_eager(
    model: nn.Module,
    loss_fn: Any,
    optimizer: Any,
    x: np.ndarray,
    y: np.ndarray,
    backend: str = "llvm",
    rtol: float = 1e-5,
    atol: float = 1e-6,
) -> None:
    """One compiled training step, then one eager step from the same parameters: the losses
    agree within 1e-5 and every parameter within (rtol, atol), else AssertionError."""
    from . import compile_train_step

    start = [p.numpy().copy() for p in model.parameters()]
    step = compile_train_step(model, loss_fn, optimizer, x, y, backend=backend)
    compiled_loss = step(x, y)
    compiled = [p.numpy().copy() for p in model.parameters()]
    for p, v in zip(model.parameters(), start):
        p.data[...] = v
    loss = loss_fn(model(Tensor(x)), Tensor(y))
    loss.backward()
    optimizer.step()
    assert abs(compiled_loss - loss.item()) < 1e-5, (compiled_loss, loss.item())
    for (name, p), want in zip(model.named_parameters(), compiled):
        np.testing.assert_allclose(p.numpy(), want, rtol=rtol, atol=atol, err_msg=name)
