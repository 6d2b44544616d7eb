"""A compiled training step split at the gradients, for data-parallel training.

`compile_train_step` fuses forward, backward and the optimizer's update into one graph; a
data-parallel step must stop between backward and update, because the gradients have to be
summed over the ranks first. So the step is split in two:

    grads = compile_gradient_step(model, loss_fn, opt, xb, yb)   # forward + backward
    update = compile_update_step(model, opt, dp.offsets, dp.flat)  # the optimizer's update
    loss = grads.reduce_into(dp, xb, yb, share)  # gradient kernels -> dp.flat, allreduced
    update(dp.flat, np.zeros((), dp.flat.dtype))               # update kernels

(`loss, g = grads(xb, yb); grads.set_grads(model, g); dp.reduce_gradients(share)` is the same
with a copy and without the overlap.) In `reduce_into` each gradient output is bound to its
parameter's view of the flat buffer, so the LLVM kernels write it there, and a callback after
the last kernel that touches a bucket's gradients starts that bucket's allreduce on the
communication thread while the remaining gradient kernels run (`tinygrad_edu.buckets`).

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
from tinygrad_edu.data_parallel import DataParallel

from . import (
    ModelGuard,
    TrainStep,
    _index_of,
    _model_state,
    _trained_index,
    build,
    compile_train_step,
    trace_loss,
)
from .passes import autodiff
from .runtime import CompiledFunction

__all__ = ["GradientStep", "compile_gradient_step", "compile_update_step"]


class GradientStep:
    """`step(x, y)` -> (loss, {parameter name: gradient array}); buffers updated in place.
    The arrays are the backend's output buffers, overwritten by the next call: copy them (the
    data-parallel flat buffer does) before calling again.

    `step.reduce_into(parallel, x, y, share)` is the data-parallel step without that copy and
    overlapped: see its docstring."""

    def __init__(self, compiled: CompiledFunction, names: list[str]) -> None:
        self.compiled, self.names = compiled, names
        self._flat: _FlatPlan | None = None
        #: gradients the last `reduce_into` had to copy into the flat buffer (a backend that
        #: cannot write outputs where it is told, or a gradient no kernel produces)
        self.copied = 0

    def __getattr__(self, name: str) -> Any:  # kernels, report(), summary(), ...
        return getattr(self.compiled, name)

    def __call__(self, x: Any, y: Any) -> tuple[float, dict[str, np.ndarray]]:
        outs = self.compiled.run(x, y, reuse_outputs=True)
        return float(outs["loss"]), {name: outs[f"grad:{name}"] for name in self.names}

    def reduce_into(self, parallel: DataParallel, x: Any, y: Any, scale: float) -> float:
        """Run the gradient kernels with each gradient output bound to its parameter's view
        of `parallel.flat` (the LLVM backend writes it there: no copy), and start each
        bucket's allreduce (scaled by this rank's `scale`, on the communication thread) as
        soon as the last kernel that writes or reads its gradients has run; wait for all of
        them. Returns this rank's loss; each parameter's `.grad` is then its view of the
        reduced buffer, as after `set_grads` and `parallel.reduce_gradients(scale)` (the same
        bits)."""
        if self.compiled.backend == "cuda":
            raise NotImplementedError(
                "reduce_into: binding CUDA gradient outputs to the device flat buffer is not "
                "written (docs/distributed.md, 'GPUs'). Fix: use backend='llvm', or eager "
                "device='cuda' tensors with DataParallel.backward (NCCL)"
            )
        plan = self._flat_plan(parallel)
        parallel.begin_reduction(scale)
        self.compiled.after_kernel = plan.callbacks
        try:
            plan.start()
            outs = self.compiled.run(x, y, reuse_outputs=True)
            plan.finish_leftovers(outs)
        except BaseException:
            parallel.abandon_reduction()
            raise
        finally:
            self.compiled.after_kernel = {}
        parallel.end_reduction()
        self.copied = plan.copied
        return float(outs["loss"])

    def _flat_plan(self, parallel: DataParallel) -> _FlatPlan:
        if self._flat is None or self._flat.parallel is not parallel:
            self._flat = _FlatPlan(self, parallel)
        return self._flat

    def set_grads(self, model: nn.Module, grads: dict[str, np.ndarray]) -> None:
        """Make each parameter's `.grad` the compiled gradient (what `backward()` would
        leave), so an optimizer or a gradient allreduce reads it."""
        params = dict(model.named_parameters())
        for name, g in grads.items():
            params[name].grad = Tensor._make(g)


class _FlatPlan:
    """Where each gradient output of a `GradientStep` goes in a `DataParallel`'s flat buffer
    and after which kernel it is final.

    A gradient is final after the last kernel that writes or reads it, or anything computed
    from it (a later kernel may read it, or a view of it: its bucket must not be scaled and
    reduced under that kernel). A gradient computed by no kernel (a constant zero: the loss
    does not depend on the parameter) is copied in after the run."""

    def __init__(self, step: GradientStep, parallel: DataParallel) -> None:
        import networkx as nx

        self.parallel = parallel
        compiled = step.compiled
        g = compiled.graph
        params = parallel.optimizer.params
        index = {name: _index_of(params, p) for name, p in parallel.model.named_parameters()}
        nodes = {name: g.outputs[g.output_names.index(f"grad:{name}")] for name in step.names}
        shared = {n for n in nodes.values() if list(nodes.values()).count(n) > 1}
        group_of = compiled.fusion.group_of
        by_kernel: dict[int, list[tuple[int, int, np.ndarray]]] = {}
        self.leftovers: list[tuple[int, str, np.ndarray]] = []
        for name, nid in nodes.items():
            i = index[name]
            assert i is not None  # compile_gradient_step keeps only the optimizer's parameters
            view = parallel.grad_view(i)
            if nid not in group_of:
                self.leftovers.append((i, f"grad:{name}", view))
                continue
            if nid not in shared:  # one output, one place: the backend writes it there
                compiled.recycle(f"grad:{name}", view)
            touched = {nid, *nx.descendants(g.nx, nid)}
            last = max(group_of[n] for n in touched if n in group_of)
            by_kernel.setdefault(last, []).append((i, nid, view))
        self.callbacks = {k: self._callback(items) for k, items in by_kernel.items()}
        # parameters the loss does not reach have no gradient output: known absent from the
        # start, so their buckets need not wait for the end of the step
        produced = {index[name] for name in nodes}
        self.absent = [i for i in range(len(params)) if i not in produced]
        self.copied = 0

    def start(self) -> None:
        """Before the kernels run: the parameters without a gradient are ready (as zeros)."""
        self.copied = 0
        for i in self.absent:
            self.parallel.grad_view(i)[...] = 0
            self.parallel.gradient_ready(i, present=False)

    def _callback(self, items: list[tuple[int, int, np.ndarray]]) -> Callable[[dict], None]:
        def gradients_final(env: dict[int, Any]) -> None:
            for _, nid, view in items:  # every copy first: a shared output feeds several
                value = env[nid]
                if value is not view:
                    np.copyto(view, value)
                    self.copied += 1
            for i, _, _ in items:
                self.parallel.gradient_ready(i)

        return gradients_final

    def finish_leftovers(self, outs: dict[str, np.ndarray]) -> None:
        """The gradients no kernel produced, copied in and made ready."""
        for i, name, view in self.leftovers:
            np.copyto(view, outs[name])
            self.copied += 1
            self.parallel.gradient_ready(i)


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
        name for name, p in model.named_parameters() if _trained_index(optimizer, p) is not None
    ]
    graph = autodiff(forward, None, trained=trained, backward_order=True)
    bindings, slots, cells = _model_state(model)
    names = [name for name in trained if f"grad:{name}" in graph.output_names]
    compiled = build(graph, backend, bindings, None, slots)
    compiled.before_call.append(ModelGuard(model, cells, "compiled gradient step", rebind=False))
    return GradientStep(compiled, names)


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
