"""A compiled training step split at the gradients, for data-parallel training.

`compile_train_step` fuses forward, backward and the optimizer's update into one graph; a
data-parallel step must stop between backward and update, because the gradients have to be
summed over the ranks first. So the step is split in two:

    grads = compile_gradient_step(model, loss_fn, opt, xb, yb)   # compiled: forward + backward
    loss, g = grads(xb, yb)            # compiled kernels: loss and "grad:NAME" arrays
    ... allreduce g (tinygrad_edu.data_parallel) ...
    opt.step()                         # the optimizer's own update() definition, eagerly

The first half is the autodiff graph without an update rule (`autodiff(g, rule=None)`: outputs
"loss" and "grad:NAME"), compiled by the same passes and backends as every other graph;
BatchNorm's running statistics ("buffer:NAME" outputs) are written back as in
`compile_train_step`. The update runs the optimizer's `update()` eagerly: the same definition
the fused step traces, on arrays the size of the parameters (elementwise; ~1% of an AlexNet
step).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from tinygrad_edu import Tensor, nn, optim

from . import _index_of, _model_state, build, trace
from .passes import autodiff
from .runtime import CompiledFunction

__all__ = ["GradientStep", "compile_gradient_step"]


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
    forward = trace(
        lambda x, y: loss_fn(model(x), y),
        example_x,
        example_y,
        module=model,
        input_names=["x", "y"],
    )
    trained = [
        name for name, p in model.named_parameters() if _index_of(optimizer.params, p) is not None
    ]
    graph = autodiff(forward, None, trained=trained)
    bindings, slots = _model_state(model)
    names = [name for name in trained if f"grad:{name}" in graph.output_names]
    return GradientStep(build(graph, backend, bindings, None, slots), names)
