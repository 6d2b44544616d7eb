"""A compiled training step split at the gradients, for data-parallel training.

`compile_train_step` fuses forward, backward and the optimizer's update into one graph; a
data-parallel step must stop between backward and update, because the gradients have to be
summed over the ranks first. So the step is split in two:

    grads = compile_gradient_step(model, loss_fn, opt, xb, yb)   # forward + backward
    update = compile_update_step(model, opt, dp.offsets, dp.flat)  # the optimizer's update
    loss, g = grads(xb, yb)            # gradient kernels: loss and "grad:NAME" arrays
    grads.set_grads(model, g); dp.reduce_gradients(share)     # into dp.flat, allreduced
    update(dp.flat, np.zeros((), dp.flat.dtype))               # update kernels

The first half is the autodiff graph without an update rule (`autodiff(g, rule=None)`: outputs
"loss" and "grad:NAME"), compiled by the same passes and backends as every other graph;
BatchNorm's running statistics ("buffer:NAME" outputs) are written back as in
`compile_train_step`.

The second half, `compile_update_step`, compiles the optimizer's own `update()` over all
parameters, reading the (reduced) gradients from one flat buffer. It needs no new compiler
machinery: it is `compile_train_step` of the loss sum_i <p_i, flat_i>, whose gradient with
respect to each parameter p_i is exactly its slice flat_i of the buffer (1 x flat_i: no
rounding), so the compiled step's update kernels apply the optimizer to those gradients, with
its state, scalars and schedulers handled as in any compiled step.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from tinygrad_edu import Tensor, nn, optim

from . import TrainStep, _index_of, _model_state, build, compile_train_step, trace_loss
from .passes import autodiff
from .runtime import CompiledFunction

__all__ = ["GradientStep", "compile_gradient_step", "compile_update_step"]


class GradientStep:
    """`step(x, y)` -> (loss, {parameter name: gradient array}); buffers updated in place.
    The arrays are the backend's output buffers, overwritten by the next call: copy them (the
    data-parallel flat buffer does) before calling again."""

    def __init__(self, compiled: CompiledFunction, names: list[str]) -> None:
        self.compiled, self.names = compiled, names

    def __getattr__(self, name: str) -> Any:  # kernels, report(), summary(), ...
        return getattr(self.compiled, name)

    def __call__(self, x: Any, y: Any) -> tuple[float, dict[str, np.ndarray]]:
        outs = self.compiled.run(x, y, reuse_outputs=True)
        return float(outs["loss"]), {name: outs[f"grad:{name}"] for name in self.names}

    def set_grads(self, model: nn.Module, grads: dict[str, np.ndarray]) -> None:
        """Make each parameter's `.grad` the compiled gradient (what `backward()` would
        leave), so an optimizer or a gradient allreduce reads it."""
        params = dict(model.named_parameters())
        for name, g in grads.items():
            params[name].grad = Tensor._make(g)


def compile_gradient_step(
    model: nn.Module,
    loss_fn: Callable[[Tensor, Tensor], Tensor],
    optimizer: optim.Optimizer,
    example_x: Any,
    example_y: Any,
    backend: str | None = None,
) -> GradientStep:
    """Compile forward + backward of `loss_fn(model(x), y)`: the gradients of the parameters
    `optimizer` trains, no update (see the module docstring)."""
    forward = trace_loss(model, loss_fn, example_x, example_y)
    trained = [
        name for name, p in model.named_parameters() if _index_of(optimizer.params, p) is not None
    ]
    graph = autodiff(forward, None, trained=trained)
    bindings, slots = _model_state(model)
    names = [name for name in trained if f"grad:{name}" in graph.output_names]
    return GradientStep(build(graph, backend, bindings, None, slots), names)


class _FlatGradientLoss(nn.Module):
    """loss(flat) = sum_i <p_i, flat[lo_i : lo_i + size_i]>: its gradient with respect to
    parameter p_i is that slice of `flat`, exactly."""

    def __init__(self, model: nn.Module, slices: list[tuple[Tensor, int]]) -> None:
        super().__init__()
        self.model = model  # a child, so the parameters keep their names
        self._slices = slices

    def forward(self, flat: Tensor) -> Tensor:
        terms = [(p * flat[lo : lo + p.size].reshape(p.shape)).sum() for p, lo in self._slices]
        total = terms[0]
        for term in terms[1:]:
            total = total + term
        return total


def compile_update_step(
    model: nn.Module,
    optimizer: optim.Optimizer,
    offsets: list[int],
    flat_example: np.ndarray,
    backend: str | None = None,
) -> TrainStep:
    """Compile `optimizer`'s update of every parameter it holds, parameter i's gradient read
    from `flat[offsets[i] : offsets[i] + size]` (see the module docstring). Call the result as
    `step(flat, zero)` with `zero = np.zeros((), flat.dtype)`; it updates the parameters and
    the optimizer's state as `optimizer.step()` does when every parameter has a gradient."""
    slices = list(zip(optimizer.params, offsets))
    zero = np.zeros((), flat_example.dtype)
    return compile_train_step(
        _FlatGradientLoss(model, slices),
        lambda loss, unused: loss + unused,
        optimizer,
        flat_example,
        zero,
        backend=backend,
    )
