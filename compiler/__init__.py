"""The compiler: a DSL model -> graph IR -> passes -> fused kernels you can read.

    import compiler
    g = compiler.trace(model, example_x)                  # Graph IR (g.nx is networkx)
    fwd = compiler.compile(model, example_x)              # inference
    step = compiler.compile_train_step(model, loss_fn, optimizer, example_x, example_y)
    loss = step(x_batch, y_batch)                         # forward + backward + SGD update
    fwd.kernels; print(fwd.explain_fusion()); fwd.report("model.html")

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

from . import tune as tile_search
from .graph import Graph, trace
from .kernel import Kernel
from .lower import lower
from .passes import SGDSpec, autodiff, fuse, plan_memory, simplify, verify
from .runtime import CompiledFunction, debug_level
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
) -> CompiledFunction:
    """Run the passes on a traced graph and return the compiled function (backend None:
    `default_backend()`)."""
    backend = _check_backend(backend)
    seconds = dict(pass_seconds or {})

    def timed(name: str, fn: Callable[..., Any], *args: Any) -> Any:
        t0 = time.perf_counter()
        out = fn(*args)
        seconds[name] = seconds.get(name, 0.0) + time.perf_counter() - t0
        return out

    timed("verify", verify, traced)
    graph = timed("simplify", simplify, traced)
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
        traced, graph, fusion, memory, kernels, backend, dict(bindings or {}), seconds
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
            for name, src in k.sources.items():
                if name != "asm" or level >= 5:
                    print(f"// {name} of {k.name}\n{src}", file=sys.stderr)
    if level >= 5:
        print(compiled.explain_fusion(), file=sys.stderr)
        print(graph, file=sys.stderr)
    return compiled


def _param_bindings(model: Any) -> dict[str, Callable[[], np.ndarray]]:
    if not isinstance(model, nn.Module):
        return {}
    return {name: (lambda p=p: p.data) for name, p in model.named_parameters()}


def compile(
    model: Callable[..., Any],
    *examples: Any,  # noqa: A001 (the natural name)
    backend: str | None = None,
) -> CompiledFunction:
    """Compile `model(*examples)` for inference. Parameters are read live at each call, so
    training the model eagerly and calling the compiled function agree."""
    t0 = time.perf_counter()
    traced = trace(model, *examples)
    return build(traced, backend, _param_bindings(model), {"trace": time.perf_counter() - t0})


class TrainStep:
    """`step(x, y)`: forward, backward and SGD update in one compiled graph; returns the loss.

    The model's parameters and the optimizer's momentum buffers (so `optimizer.state_dict()`
    stays valid) hold the updated values after each call, and the learning rate is read from
    `optimizer.lr` at every call (schedulers keep working). On host backends the step swaps
    arrays instead of copying them: each parameter's `.data` becomes the array the compiled
    step just wrote, and the previous one is handed back to be written next time (copying
    AlexNet's 61M parameters and momenta took ~8% of a step). Keep the Tensor, not its
    `.data` array, across steps."""

    def __init__(self, compiled: CompiledFunction, model: nn.Module, optimizer: optim.SGD) -> None:
        self.compiled, self.model, self.optimizer = compiled, model, optimizer
        self._params: dict[str, Tensor] | None = None
        self._slots: dict[str, int] = {}  # parameter name -> its index in the optimizer

    def __getattr__(self, name: str) -> Any:  # kernels, report(), explain_fusion(), ...
        return getattr(self.compiled, name)

    def __call__(self, x: Any, y: Any) -> float:
        outs = self.compiled.run(x, y, reuse_outputs=True)  # copied out below
        if self._params is None:
            self._params = dict(self.model.named_parameters())
        params = self._params
        for key, value in outs.items():
            kind, _, name = key.partition(":")
            if kind not in ("param", "momentum"):
                continue
            if kind == "param":
                old = params[name].data
            else:
                index = self._slots.get(name)
                if index is None:
                    index = self._slots[name] = _index_of(self.optimizer.params, params[name])
                old = self.optimizer.state[index]["momentum_buffer"]
            if (
                _recyclable(old)
                and isinstance(value, np.ndarray)
                and value.shape == old.shape
                and value.dtype == old.dtype
                and value.flags.c_contiguous
                and value is not old
            ):  # swap: `old` is written by the next call
                if kind == "param":
                    params[name].data = value
                else:
                    self.optimizer.state[index]["momentum_buffer"] = value
                self.compiled.recycle(key, old)
            elif isinstance(old, np.ndarray):
                old[...] = value.get() if hasattr(value, "get") else value  # device -> host
            else:
                old[...] = value  # device arrays are updated in place
        self.optimizer.step_count += 1
        for p in self.optimizer.params:
            p.grad = None
        return float(outs["loss"])


def _recyclable(old: Any) -> bool:
    """An array the compiled step may write its next output into: a plain, C-ordered,
    writeable array that owns its memory (not a view, memory map or Fortran-ordered copy)."""
    return (
        type(old) is np.ndarray
        and old.flags.c_contiguous
        and old.flags.writeable
        and old.base is None
    )


def _index_of(params: list[Tensor], p: Tensor) -> int:
    # by identity: Tensor.__eq__ is elementwise comparison
    return next(i for i, q in enumerate(params) if q is p)


def _sgd_spec(optimizer: Any) -> SGDSpec:
    if not isinstance(optimizer, optim.SGD) or optimizer.rule != "pytorch":
        raise TypeError(
            f"compile_train_step: supports optim.SGD (rule='pytorch'), got "
            f"{type(optimizer).__name__}. Fix: use SGD, or train eagerly"
        )
    if optimizer.dampening:
        raise ValueError("compile_train_step: SGD dampening is not supported; use dampening=0")
    return SGDSpec(optimizer.momentum, optimizer.weight_decay, optimizer.nesterov)


def compile_train_step(
    model: nn.Module,
    loss_fn: Callable[[Tensor, Tensor], Tensor],
    optimizer: optim.SGD,
    example_x: Any,
    example_y: Any,
    backend: str | None = None,
) -> TrainStep:
    """Compile one training step of `loss_fn(model(x), y)` with `optimizer`'s SGD rule
    (backend None: `default_backend()`)."""
    backend = _check_backend(backend)
    spec = _sgd_spec(optimizer)
    t0 = time.perf_counter()
    forward = trace(
        lambda x, y: loss_fn(model(x), y),
        example_x,
        example_y,
        module=model,
        input_names=["x", "y"],
    )
    t1 = time.perf_counter()
    train_graph = autodiff(forward, spec)
    t2 = time.perf_counter()
    params = dict(model.named_parameters())
    bindings = _param_bindings(model)
    bindings["lr"] = lambda: np.array(optimizer.lr, dtype=np.float32)
    if spec.momentum:
        for i, p in enumerate(optimizer.params):
            optimizer.state[i].setdefault("momentum_buffer", np.zeros_like(p.data))
        for name, p in params.items():
            index = _index_of(optimizer.params, p)
            bindings[f"momentum:{name}"] = lambda i=index: optimizer.state[i]["momentum_buffer"]
    compiled = build(train_graph, backend, bindings, {"trace": t1 - t0, "autodiff": t2 - t1})
    return TrainStep(compiled, model, optimizer)


__all__ = [
    "CompiledFunction", "Graph", "Kernel", "TrainStep", "autodiff", "build", "compile",
    "compile_train_step",
    "default_backend", "fuse", "lower", "plan_memory", "simplify", "trace", "verify",
]  # fmt: skip
