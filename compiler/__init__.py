"""The compiler: a DSL model -> graph IR -> passes -> fused kernels you can read.

    import compiler
    g = compiler.trace(model, example_x)                  # Graph IR (g.nx is networkx)
    fwd = compiler.compile(model, example_x)              # inference
    step = compiler.compile_train_step(model, loss_fn, optimizer, example_x, example_y)
    loss = step(x_batch, y_batch)          # forward + backward + optimizer update, buffers too
    fwd.kernels; print(fwd.explain_fusion()); fwd.report("model.html")
    compiler.export_onnx(model, example_x, "model.onnx"); compiler.import_onnx("model.onnx")

Pipeline (each pass a pure function, in `compiler.passes`): trace → verify → [autodiff] →
simplify → verify → fuse → plan_memory → lower (kernel IR) → backend.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable
from typing import Any

import numpy as np

from tinygrad_edu import Tensor, nn, optim
from tinygrad_edu.autograd import LOSS, note_write, scope
from tinygrad_edu.errors import op_error

from . import tune as tile_search
from .graph import Graph, buffers_of, trace
from .kernel import Kernel
from .lower import lower
from .onnx_export import export_onnx
from .onnx_import import import_onnx
from .passes import UpdateRule, autodiff, fuse, plan_memory, simplify, verify
from .runtime import CompiledFunction, debug_level
from .state import Slot
from .target import host_target

BACKENDS = ("numpy", "llvm", "cuda")


def default_backend() -> str:
    """The backend used when none is named: `$TINYGRAD_EDU_BACKEND` when set, else "llvm"
    (kernels JIT-compiled for this CPU: the fastest way to run a model here). "numpy" is the
    reference every backend is tested against; "cuda" needs CuPy and a GPU."""
    return os.environ.get("TINYGRAD_EDU_BACKEND", "").strip() or "llvm"


def _check_backend(backend: str | None) -> str:
    backend = default_backend() if backend is None else backend
    if backend not in BACKENDS:
        raise ValueError(
            f"compile: unknown backend {backend!r} (from the backend argument or "
            f"$TINYGRAD_EDU_BACKEND); available: {BACKENDS}. Fix: use one of those"
        )
    return backend


def build(
    traced: Graph,
    backend: str | None = None,
    bindings: dict[str, Callable[[], np.ndarray]] | None = None,
    pass_seconds: dict[str, float] | None = None,
    state_slots: dict[str, Slot] | None = None,
) -> CompiledFunction:
    """Run the passes on a traced graph and return the compiled function (backend None:
    `default_backend()`). `bindings` read inputs live at each call (parameters, state);
    `state_slots` say where outputs that are new state values are written back."""
    backend = _check_backend(backend)
    seconds = dict(pass_seconds or {})

    def timed(name: str, fn: Callable[..., Any], *args: Any) -> Any:
        t0 = time.perf_counter()
        out = fn(*args)
        seconds[name] = seconds.get(name, 0.0) + time.perf_counter() - t0
        return out

    timed("verify", verify, traced)
    # the reference computes what eager mode computes, bit for bit: no reassociating rewrites
    graph = timed("simplify", simplify, traced, backend == "numpy")
    timed("verify", verify, graph)
    fusion = timed("fuse", fuse, graph)
    memory = timed("plan_memory", plan_memory, fusion)
    target = host_target() if backend == "llvm" else None
    kernels = timed("lower", lower, fusion, "cpu" if backend == "llvm" else "default", target)
    if target is not None:  # measured tiles where the analytic choice may not be the best
        tuning = timed("tune", tile_search.tune, fusion, kernels, target)
        if tuning.tiles:
            kernels = timed("lower", lower, fusion, "cpu", target, tuning.tiles)
        for index, note in tuning.notes.items():
            kernels[index].tuning = note
    if backend == "cuda":  # rendering needs no GPU: sources are inspectable anywhere
        from .backends.cuda import render_module

        timed("render", render_module, kernels)
    compiled = CompiledFunction(
        traced,
        graph,
        fusion,
        memory,
        kernels,
        backend,
        dict(bindings or {}),
        seconds,
        dict(state_slots or {}),
    )
    if backend == "llvm":  # JIT now, so compile time is paid here and sources are readable
        t0 = time.perf_counter()
        compiled.executor()
        compiled.pass_seconds["jit"] = time.perf_counter() - t0
    level = debug_level()
    if level >= 1:
        print(f"[compiler] {compiled.summary()}", file=sys.stderr)
    if level >= 3:
        for k in kernels:
            print(k.pseudo_c(), file=sys.stderr)
    if level >= 4:
        for k in kernels:
            for name in list(k.sources):  # read only what is shown: reading renders
                if name != "asm" or level >= 5:
                    print(f"// {name} of {k.name}\n{k.sources[name]}", file=sys.stderr)
    if level >= 5:
        print(compiled.explain_fusion(), file=sys.stderr)
        print(graph, file=sys.stderr)
    return compiled


def _model_state(
    model: Any,
) -> tuple[dict[str, Callable[[], Any]], dict[str, Slot], dict[str, list[Tensor]]]:
    """Bindings that read the model's parameters and buffers live, the slots that write the
    parameters ("param:NAME") and updated buffers ("buffer:NAME") back, and the one-element
    cells both read the tensors through (by leaf name: `ModelGuard` refills them)."""
    if not isinstance(model, nn.Module):
        return {}, {}, {}
    bindings: dict[str, Callable[[], Any]] = {}
    slots: dict[str, Slot] = {}
    cells: dict[str, list[Tensor]] = {}
    for leaf, t in _model_tensors(model).items():
        output = leaf if leaf.startswith("buffer:") else f"param:{leaf}"
        cell = cells[leaf] = [t]
        bindings[leaf] = lambda c=cell: c[0].data
        slots[output] = Slot(lambda c=cell: c[0].data, lambda a, c=cell: setattr(c[0], "data", a))
    return bindings, slots, cells


def _model_tensors(model: nn.Module) -> dict[str, Tensor]:
    """The model's parameters (by state_dict name) and buffers ("buffer:NAME"): the leaves a
    compiled model reads, by leaf name."""
    out = dict(model.named_parameters())
    out.update((f"buffer:{b.name}", b.tensor) for b in buffers_of(model))
    return out


def _modes(model: nn.Module) -> dict[str, bool]:
    return {name or "(model)": m.training for name, m in model.named_modules()}


class ModelGuard:
    """Before each call of a compiled model: are its parameters, buffers and mode still
    those it was compiled with? Checked only after some module changed
    (`nn.structure_version`), so a training loop pays nothing. A parameter or buffer replaced
    by a tensor of the same shape and dtype is read from then on (`rebind`; a training step
    refuses: its optimizer still holds the old one); a changed mode (`train()`/`eval()`, which
    decide dropout and BatchNorm's statistics), a tensor of another shape and a tensor added
    or removed raise, saying to compile again."""

    def __init__(
        self, model: nn.Module, cells: dict[str, list[Tensor]], what: str, rebind: bool
    ) -> None:
        self.model, self.cells, self.what, self.rebind = model, cells, what, rebind
        self.modes = _modes(model)
        self.version = nn.structure_version()

    def __call__(self) -> None:
        if nn.structure_version() == self.version:
            return
        modes = _modes(self.model)
        if modes.keys() != self.modes.keys():
            raise op_error(
                self.what,
                "the model's modules changed since it was compiled",
                f"{len(self.modes)} modules then, {len(modes)} now",
                "compile the model again",
            )
        changed = [name for name, mode in modes.items() if mode != self.modes[name]]
        if changed:
            then, now_mode = (
                ("training", "eval") if self.modes[changed[0]] else ("eval", "training")
            )
            raise op_error(
                self.what,
                f"the model was compiled in {then} mode and module {changed[0]!r} is now in "
                f"{now_mode} mode (dropout and BatchNorm's statistics are compiled in)",
                f"{len(changed)} of {len(modes)} modules changed mode",
                f"call model.{'train' if then == 'training' else 'eval'}() back, or compile "
                f"again in {now_mode} mode",
            )
        now = _model_tensors(self.model)
        gone = sorted(set(self.cells) - set(now))
        added = sorted(set(now) - set(self.cells))
        if gone or added:
            raise op_error(
                self.what,
                "the model's parameters or buffers changed since it was compiled",
                f"added {added}, removed {gone}",
                "compile the model again",
            )
        for name, cell in self.cells.items():
            new = now[name]
            if new is cell[0]:
                continue
            old = cell[0]
            if new.shape != old.shape or new.dtype != old.dtype:
                raise op_error(
                    self.what,
                    f"{name!r} was replaced by a tensor of another shape or dtype",
                    f"compiled {old.shape} {old.dtype}, now {new.shape} {new.dtype}",
                    "compile the model again",
                )
            if not self.rebind:
                raise op_error(
                    self.what,
                    f"{name!r} was replaced by another tensor, which the optimizer does not "
                    "hold (it still updates the old one)",
                    f"{new.shape} {new.dtype}",
                    "write the values in place (load_state_dict, or p.data[...] = values), "
                    "or create the optimizer and compile the step again",
                )
            cell[0] = new
        self.version = nn.structure_version()


def compile(
    model: Callable[..., Any],
    *examples: Any,  # noqa: A001 (the natural name)
    backend: str | None = None,
) -> CompiledFunction:
    """Compile `model(*examples)` for inference. Parameters and buffers are read live at each
    call, so training the model eagerly and calling the compiled function agree; a module in
    training mode updates its buffers (BatchNorm's running statistics) at each call, as it
    does eagerly. Call it with the inputs by position, or by name (`input_names`)."""
    t0 = time.perf_counter()
    traced = trace(model, *examples)
    bindings, slots, cells = _model_state(model)
    compiled = build(traced, backend, bindings, {"trace": time.perf_counter() - t0}, slots)
    if isinstance(model, nn.Module):
        compiled.before_call.append(ModelGuard(model, cells, "compiled model", rebind=True))
    return compiled


class TrainStep:
    """`step(x, y)`: forward, backward and the optimizer's update in one compiled graph;
    returns the loss.

    Every optimizer in `tinygrad_edu.optim` compiles: the graph's update is traced from the
    optimizer's own `update` (the definition its eager `step()` runs), so compiled and eager
    steps agree step for step and can be interleaved. The model's parameters and buffers
    (BatchNorm's running statistics) and the optimizer's state (momentum buffers, Adam's
    moments and step counts: `optimizer.state_dict()` stays valid) hold the updated values
    after each call. The per-step numbers (each parameter group's learning rate, SGD's
    momentum, Adam's beta1 and bias corrections) are runtime inputs computed by
    `optimizer.prepare` at every call, so schedulers and `param_groups[k]["lr"] = x` keep
    working; the other hyperparameters are compiled in per group (changing one raises:
    compile again). On host
    backends the step swaps arrays instead of copying them: each parameter's, buffer's and
    state array's holder gets the array the compiled step just wrote, and the previous one is
    handed back to be written next time (copying AlexNet's 61M parameters and momenta took
    ~8% of a step). Keep the Tensor (or `optimizer.state`), not its arrays, across steps."""

    def __init__(
        self,
        compiled: CompiledFunction,
        model: nn.Module,
        optimizer: optim.Optimizer,
        updated: list[tuple[str, int]],
        scalars: dict[str, dict[str, float]],
    ) -> None:
        self.compiled, self.model, self.optimizer = compiled, model, optimizer
        self._updated = updated  # (parameter name, its index in the optimizer)
        self._scalars = scalars  # parameter name -> this call's numbers (bindings read it)
        self._hyperparameters = optimizer.hyperparameters()
        # the step writes the buffers it was traced with (BatchNorm's statistics): a model
        # without any then needs no walk of its module tree per call (~10% of an MLP step)
        self._writes_buffers = next(iter(model.buffers()), None) is not None

    def __getattr__(self, name: str) -> Any:  # kernels, report(), explain_fusion(), ...
        return getattr(self.compiled, name)

    def __call__(self, x: Any, y: Any) -> float:
        opt = self.optimizer
        if opt.hyperparameters() != self._hyperparameters:
            raise op_error(
                "compiled train step",
                "the optimizer's hyperparameters changed since the step was compiled",
                f"compiled {self._hyperparameters}, now {opt.hyperparameters()}",
                "compile the step again (lr, SGD's momentum and Adam's beta1 may change "
                "between calls, e.g. by a scheduler; other settings are compiled in)",
            )
        before = [dict(opt.state[i]) for _, i in self._updated]
        try:
            for name, i in self._updated:
                self._scalars[name] = opt.prepare(opt.state[i], opt.params[i].data, opt.group_of(i))
            outs = self.compiled.run(x, y, reuse_outputs=True)  # state written back there
        except BaseException:
            for (_, i), state in zip(self._updated, before):  # a failed call changes nothing
                opt.state[i].clear()
                opt.state[i].update(state)
            raise
        opt.step_count += 1
        for _, i in self._updated:  # written in place by the kernels
            note_write(opt.params[i].data)
        if self._writes_buffers:
            for b in self.model.buffers():
                note_write(b.data)
        for p in opt.params:
            p.grad = None
        return float(outs["loss"])


def _index_of(params: list[Tensor], p: Tensor) -> int | None:
    # by identity: Tensor.__eq__ is elementwise comparison
    return next((i for i, q in enumerate(params) if q is p), None)


def _trained_index(optimizer: optim.Optimizer, p: Tensor) -> int | None:
    """p's index among the optimizer's parameters if the step trains it: a frozen parameter
    (requires_grad False when the step is compiled) gets no gradient and no update, as an
    eager step skips a parameter whose grad is None."""
    return _index_of(optimizer.params, p) if p.requires_grad else None


def _state_array(optimizer: optim.Optimizer, i: int, name: str) -> Any:
    """Parameter i's state array `name`; zeros before its first step (`prepare` creates it
    when a step runs)."""
    array = optimizer.state[i].get(name)
    return np.zeros_like(optimizer.params[i].data) if array is None else array


def _update_rule(optimizer: Any, index: dict[str, int | None]) -> UpdateRule:
    """The optimizer's update for each parameter (`index`: name -> its index in the
    optimizer), with its group's settings: each group's rule is traced with that group."""
    if not isinstance(optimizer, optim.Optimizer):
        raise op_error(
            "compile_train_step",
            "optimizer must be a tinygrad_edu.optim Optimizer",
            type(optimizer).__name__,
            "pass e.g. optim.SGD(model.parameters(), lr=0.01) or optim.Adam(...)",
        )
    rules = [_group_rule(optimizer, group) for group in optimizer.param_groups]
    per_param = {name: rules[optimizer._group_of[i]] for name, i in index.items() if i is not None}
    return UpdateRule(rules[0].update, rules[0].state, rules[0].scalars, per_param)


def _group_rule(optimizer: optim.Optimizer, group: Any) -> UpdateRule:
    state = optimizer.state_arrays(group)
    probe = {name: np.zeros(1, np.float32) for name in state}
    # the scalars' names, from the rule itself (on a scratch state: nothing changes)
    scalars = tuple(optimizer.prepare(probe, np.zeros(1, np.float32), group))

    def update(w: Tensor, g: Tensor, s: dict, sc: dict) -> tuple[Tensor, dict]:
        return optimizer.update(w, g, s, sc, group)

    return UpdateRule(update, state, scalars)


def trace_loss(
    model: nn.Module, loss_fn: Callable[[Tensor, Tensor], Tensor], example_x: Any, example_y: Any
) -> Graph:
    """The forward graph of `loss_fn(model(x), y)` with the inputs named "x" and "y" (what
    training steps compile)."""

    def forward_and_loss(x: Tensor, y: Tensor) -> Tensor:
        out = model(x)
        with scope(LOSS, LOSS):  # the loss's ops read as their own layer, "loss"
            return loss_fn(out, y)

    return trace(
        forward_and_loss,
        example_x,
        example_y,
        module=model,
        input_names=["x", "y"],
    )


def compile_train_step(
    model: nn.Module,
    loss_fn: Callable[[Tensor, Tensor], Tensor],
    optimizer: optim.Optimizer,
    example_x: Any,
    example_y: Any,
    backend: str | None = None,
) -> TrainStep:
    """Compile one training step of `loss_fn(model(x), y)` with `optimizer`'s update rule
    (backend None: `default_backend()`): see `TrainStep`."""
    backend = _check_backend(backend)
    if not isinstance(model, nn.Module):
        raise op_error(
            "compile_train_step",
            "model must be a tinygrad_edu.nn Module",
            type(model).__name__,
            "pass the nn.Module whose parameters the optimizer trains",
        )
    params = dict(model.named_parameters())
    index = {name: _trained_index(optimizer, p) for name, p in params.items()}
    rule = _update_rule(optimizer, index)
    t0 = time.perf_counter()
    forward = trace_loss(model, loss_fn, example_x, example_y)
    t1 = time.perf_counter()
    trained = {name for name, i in index.items() if i is not None}
    train_graph = autodiff(forward, rule, trained=trained)
    t2 = time.perf_counter()
    bindings, slots, cells = _model_state(model)
    updated = [
        (name, index[name])
        for name in params
        if f"param:{name}" in train_graph.output_names and index[name] is not None
    ]
    # this call's numbers per parameter, set by TrainStep.__call__; until the first call, a
    # preview of the next step's (prepared on a copy: the optimizer is not changed), so the
    # compiled function can be run on its own for inspection
    scalars: dict[str, dict[str, float]] = {
        name: optimizer.prepare(
            dict(optimizer.state[i]), optimizer.params[i].data, optimizer.group_of(i)
        )
        for name, i in updated
    }
    for name, i in updated:
        for s in rule.for_param(name).scalars:
            bindings[f"{s}:{name}"] = lambda n=name, s=s: float(scalars[n][s])
        for s in rule.for_param(name).state:
            bindings[f"{s}:{name}"] = lambda i=i, s=s: _state_array(optimizer, i, s)
            slots[f"{s}:{name}"] = Slot(
                lambda i=i, s=s: optimizer.state[i].get(s),
                lambda a, i=i, s=s: optimizer.state[i].__setitem__(s, a),
            )
    compiled = build(train_graph, backend, bindings, {"trace": t1 - t0, "autodiff": t2 - t1}, slots)
    compiled.before_call.append(ModelGuard(model, cells, "compiled train step", rebind=False))
    return TrainStep(compiled, model, optimizer, updated, scalars)


__all__ = [
    "CompiledFunction", "Graph", "Kernel", "TrainStep", "autodiff", "build", "compile",
    "compile_train_step",
    "default_backend", "export_onnx", "fuse", "import_onnx", "lower", "plan_memory",
    "simplify", "trace", "verify",
]  # fmt: skip
