"""The compiled program users call: binds inputs and parameters, runs kernels, reports.

`CompiledFunction` holds every stage's output — the traced graph, the simplified graph, the
fusion (groups and decisions), the memory plan and the kernels — and runs the kernels with a
backend. The `numpy` backend is the reference: each kernel evaluates its group's ops with the
op table's own forwards (the definitions eager mode uses), in the group's order, and drops each
intermediate after its last reader (the memory plan's liveness).

`DEBUG` (environment variable) levels: 1 kernel count and total time per call; 2 a table per
call (kernel, fused ops, time, GFLOP/s, GB/s); 3 the kernel IR (pseudo-C) at compile time;
4 backend source (LLVM IR, CUDA C); 5 also assembly, the fusion decisions and the graph.
"""

from __future__ import annotations

import json
import os
import sys
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import partial
from typing import Any

import numpy as np

from tinygrad_edu import Tensor
from tinygrad_edu.anomaly import is_anomaly_enabled
from tinygrad_edu.errors import op_error

from .anomaly import check_kernel
from .backends.numpy import NumpyExecutor
from .graph import Graph
from .kernel import Kernel
from .passes import Fusion, MemoryPlan
from .state import Slot, write_back
from .units import plural, si

KEEP_TIMINGS = 100  # per-kernel call times kept for medians and reports


def debug_level() -> int:
    try:
        return int(os.environ.get("DEBUG", "0"))
    except ValueError:
        return 0


def _leaf_array(value: Any, role: str, name: str, shape: tuple[int, ...], dtype: np.dtype) -> Any:
    """A leaf's value as the compiled program takes it (a Tensor's array, a cast to the
    compiled dtype), or a clear error when its shape or kind differs from the compiled one."""
    if isinstance(value, Tensor):
        value = value.data  # host or device array, as it is
    arr = value if type(value).__module__.startswith("cupy") else np.asarray(value)
    if tuple(arr.shape) != shape:
        raise op_error(
            "compiled call",
            f"{role} {name!r} has shape {tuple(arr.shape)} "
            f"but the function was compiled for {shape}",
            tuple(arr.shape),
            "call with the compiled shapes, or compile again for the new shape",
        )
    if arr.dtype != dtype:
        # integers are traced as int64: any integer data that int64 holds exactly (the uint8
        # image the function was compiled with) is taken, as floats of another width are
        integers = arr.dtype.kind in "iu" and dtype.kind in "iu" and np.can_cast(arr.dtype, dtype)
        if arr.dtype.kind != dtype.kind and not integers:
            raise op_error(
                "compiled call",
                f"{role} {name!r} has dtype {arr.dtype} but the function was compiled for {dtype}",
                arr.shape,
                f"pass {dtype} data (e.g. .astype(np.{dtype}))",
            )
        arr = arr.astype(dtype)
    return arr


def _host_values(value: Any) -> np.ndarray:
    """An argument's numbers as a numpy array (a Tensor's, a device array's, a list's)."""
    if isinstance(value, Tensor):
        return value.numpy()
    if type(value).__module__.startswith("cupy"):
        return value.get()
    return np.asarray(value)


@dataclass
class CompiledFunction:
    """A compiled graph. Call it with the inputs' arrays (or Tensors), by position in
    argument order (`input_names`) or by name."""

    traced: Graph
    graph: Graph
    fusion: Fusion
    memory: MemoryPlan
    kernels: list[Kernel]
    backend: str
    bindings: dict[str, Callable[[], np.ndarray]] = field(default_factory=dict)
    pass_seconds: dict[str, float] = field(default_factory=dict)
    #: outputs that are new values of state (parameters, buffers, optimizer state): written
    #: back where the state lives after each call, and not returned
    state_slots: dict[str, Slot] = field(default_factory=dict)
    calls: int = 0
    #: calls before the timed ones that `compiler.timing.profile` ran and forgot
    warmup_calls: int = 0
    #: called as watch(group, kernel, env) after each kernel runs, before its dead values are
    #: dropped (`compiler.drift` reads every kernel's outputs through it); None: nothing
    watch: Callable[[Any, Kernel, dict[int, Any]], None] | None = None
    #: called as after_kernel[k](env) once kernel k (0-based, in run order) has run, before
    #: the next starts (data-parallel training starts a gradient bucket's allreduce there)
    after_kernel: dict[int, Callable[[dict[int, Any]], None]] = field(default_factory=dict)
    #: called with no arguments before each call binds its inputs (a compiled model's check
    #: that its parameters, buffers and mode are still those it was compiled with)
    before_call: list[Callable[[], None]] = field(default_factory=list)
    _executor: Any = None
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)
    #: a scalar leaf's last value and its 0-d array (kernels only read inputs: reused)
    _scalars: dict[int, tuple[float, np.ndarray]] = field(default_factory=dict, repr=False)
    _input_names: list[str] | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        g = self.graph
        # what every call binds and returns, sorted out once (calls are hot in training):
        # the constants' values, the other leaves as (node, role, name, shape, dtype), and
        # the outputs as (name, node, dtype)
        leaves = [(nid, g.node(nid)) for nid in g.nx.nodes if g.is_leaf(nid)]
        self._consts = {nid: d["value"] for nid, d in leaves if d["op"] == "const"}
        self._leaves = [
            (nid, d["op"], d["name"], d["shape"], d["dtype"])
            for nid, d in leaves
            if d["op"] != "const"
        ]
        self._outputs = [
            (name, nid, g.node(nid)["dtype"])
            for name, nid in zip(g.output_names, g.outputs)
            if name not in g.output_checks
        ]
        self._output_checks = [
            (g.outputs[g.output_names.index(name)], check)
            for name, check in g.output_checks.items()
        ]
        keep = self._output_nodes = set(g.outputs)
        last_use = self.memory.last_use
        # liveness: after kernel k, drop the values nothing reads any more (its group's
        # internal values at once)
        self._dead_after: list[list[int]] = [
            [n for n in group.nodes if n not in last_use and n not in keep]
            for group in self.fusion.groups
        ]
        for nid, k in last_use.items():
            if nid not in keep and not self.graph.is_leaf(nid):
                self._dead_after[k].append(nid)

    # -- running ------------------------------------------------------------------------------
    @property
    def input_names(self) -> list[str]:
        """The inputs a call passes, in argument order (the rest are bound parameters and
        state). Inputs the program never reads are still arguments."""
        g = self.graph
        # a binding serves the parameter or state of that name when there is one (a module may
        # call a parameter "x", like an input), else an input leaf (the learning rate)
        owned = {g.node(n)["name"] for n in g.nx.nodes if g.node(n)["op"] in ("param", "state")}
        bound = {n for n in self.bindings if n not in owned}
        return [n for n in g.argument_names() if n not in bound]

    def _bind(self, args: Sequence[Any], kwargs: dict[str, Any] | None = None) -> dict[int, Any]:
        if self._input_names is None:
            self._input_names = self.input_names
        given = _arguments(self._input_names, args, kwargs or {})
        for check in self.before_call:
            check()
        for name, check_values in self.traced.input_checks:  # e.g. class labels in range
            if name in given:
                check_values(_host_values(given[name]))
        env: dict[int, Any] = dict(self._consts)
        bindings = self.bindings
        for nid, role, name, shape, dtype in self._leaves:
            if role == "input" and name in given:
                value = given[name]
            else:
                binding = bindings.get(name)
                value = binding() if binding is not None else given[name]
            if type(value) is np.ndarray and value.shape == shape and value.dtype == dtype:
                env[nid] = value  # the common case, checked in one line
                continue
            if type(value) is float and shape == () and nid not in self._output_nodes:
                # a learning rate, a momentum...: one 0-d array while the number holds (an
                # output is handed to the caller, so it is never shared between calls)
                cached = self._scalars.get(nid)
                if cached is None or cached[0] != value:
                    cached = self._scalars[nid] = (value, np.array(value, dtype))
                env[nid] = cached[1]
                continue
            env[nid] = _leaf_array(value, role, name, shape, dtype)
        return env

    def values(self, *args: Any, **kwargs: Any) -> dict[int, np.ndarray]:
        """Every node's value (reference backend, nothing freed): for checking kernels."""
        from .backends.numpy import run_ops

        env = self._bind(args, kwargs)
        for group in self.fusion.groups:
            run_ops(np, self.graph, group.nodes, env)
            for nid in group.nodes:
                env[nid] = np.asarray(env[nid])
        return env

    def executor(self) -> Any:
        """The backend's executor, created on first use (a GPU is only needed to run)."""
        if self._executor is None:
            if self.backend == "numpy":
                from .backends.numpy import NumpyExecutor

                self._executor = NumpyExecutor()
            elif self.backend == "llvm":
                from .backends.llvm import LLVMExecutor

                self._executor = LLVMExecutor(self.kernels, self.memory)
            elif self.backend == "cuda":
                from .backends.cuda import CudaExecutor

                self._executor = CudaExecutor(self.kernels)
            else:
                raise RuntimeError(f"unknown backend {self.backend!r}")
        return self._executor

    def recycle(self, name: str, array: np.ndarray) -> None:
        """Hand `array` back for the backend to write output `name` into on the next call
        with `reuse_outputs` (a caller that keeps the returned array swaps it for its old
        one instead of copying). Backends without reusable outputs ignore it."""
        recycle = getattr(self.executor(), "recycle", None)
        if recycle is not None:
            recycle(self.graph.outputs[self.graph.output_names.index(name)], array)

    def run(self, *args: Any, reuse_outputs: bool = False, **kwargs: Any) -> dict[str, np.ndarray]:
        """Execute; return every output by name (numpy arrays, or device arrays when the
        inputs were device arrays). Inputs bind by position in argument order
        (`input_names`) or by name as keywords. With `reuse_outputs` the backend may write
        outputs into the arrays it returned last call (for callers that copy them at once, like
        `TrainStep`). Calls are serialised: intermediates live in buffers kept across calls."""
        with self._lock:
            return self._run(args, kwargs, reuse_outputs)

    def _run(
        self, args: Sequence[Any], kwargs: dict[str, Any], reuse_outputs: bool
    ) -> dict[str, np.ndarray]:
        g = self.graph
        ex = self.executor()
        if hasattr(ex, "reuse_outputs"):
            ex.reuse_outputs = reuse_outputs
        on_host = not any(type(a).__module__.startswith("cupy") for a in (*args, *kwargs.values()))
        env = self._bind(args, kwargs)
        if not isinstance(ex, NumpyExecutor):  # the host executors run on these arrays as given
            env = {nid: ex.to_device(v) for nid, v in env.items()}
        level = debug_level()
        total = 0.0
        clock = time.perf_counter
        check = is_anomaly_enabled()  # read once per call: nothing per kernel when off
        watch = self.watch
        after = self.after_kernel
        run_group = ex.run_group
        for k, (group, kernel, dead) in enumerate(
            zip(self.fusion.groups, self.kernels, self._dead_after)
        ):
            t0 = clock()
            run_group(g, group, kernel, env)
            dt = clock() - t0
            if check:
                check_kernel(self, group, kernel, env)
            if watch is not None:
                watch(group, kernel, env)
            if after and k in after:
                after[k](env)
            seconds = kernel.seconds
            seconds.append(dt)
            if len(seconds) > 2 * KEEP_TIMINGS:  # a long training run keeps the recent ones
                del seconds[:-KEEP_TIMINGS]
            total += dt
            for nid in dead:
                env.pop(nid, None)
        self.calls += 1
        if level >= 1:
            print(
                f"[compiler] {plural(len(self.kernels), 'kernel')}, {total * 1e3:.2f} ms",
                file=sys.stderr,
            )
        if level >= 2:
            print(self.timing_table(last_only=True), file=sys.stderr)
        for nid, check_values in self._output_checks:  # before any state is written back
            check_values(np.asarray(ex.to_host(env[nid])))
        out = {}
        recycle = getattr(ex, "recycle", None)
        slots = self.state_slots
        swap = reuse_outputs and on_host
        for name, nid, dtype in self._outputs:
            value = env[nid]
            if on_host:
                value = np.asarray(ex.to_host(value), dtype=dtype)
            slot = slots.get(name)
            if slot is None:
                out[name] = value
                continue
            write_back(
                slot,
                value,
                swap=swap,
                recycle=None if recycle is None else partial(recycle, nid),
            )
        return out

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        outs = self.run(*args, **kwargs)
        values = list(outs.values())
        return values[0] if len(values) == 1 else outs

    # -- inspecting ---------------------------------------------------------------------------
    def explain_fusion(self) -> str:
        """Every fusion decision and its reason."""
        return self.fusion.explain()

    def profile(
        self, call: Callable[[], Any] | None = None, repeats: int = 3, warmup: int = 1
    ) -> None:
        """Time every kernel warm (`compiler.timing.profile`): `call` (default: this function
        on its example shapes, zeros) runs `warmup` times untimed, then `repeats` times."""
        from .timing import profile

        profile(self, call or self._call_with_zeros, repeats, warmup)

    def _call_with_zeros(self) -> None:
        g = self.graph
        zeros = {}
        for n in g.leaves("input"):
            d = g.node(n)
            if d["name"] in self.input_names:
                zeros[d["name"]] = np.zeros(d["shape"], d["dtype"])
        self.run(**{name: zeros[name] for name in self.input_names if name in zeros})

    def timing_table(self, last_only: bool = False, machine: Any = None) -> str:
        """Kernels slowest first with warm medians, shares and % of `machine`'s peak
        (`compiler.timing`); `last_only`: the last call's times in execution order."""
        if not last_only:
            from .timing import timing_table

            return timing_table(self, machine)
        rows = [f"{'kernel':44s} {'ops':>4s} {'ms':>9s} {'GFLOP/s':>9s} {'GB/s':>8s}"]
        for k in self.kernels:
            if not k.seconds:
                t = float("nan")
            else:
                t = k.seconds[-1] if last_only else float(np.median(k.seconds))
            gflops = k.flops / t / 1e9 if t and t == t else float("nan")
            gbs = (k.bytes_read + k.bytes_written) / t / 1e9 if t and t == t else float("nan")
            rows.append(
                f"{k.name[:44]:44s} {len(k.ops):4d} {t * 1e3:9.3f} {gflops:9.2f} {gbs:8.2f}"
            )
        return "\n".join(rows)

    def summary(self) -> str:
        flops = sum(k.flops for k in self.kernels)
        moved = sum(k.bytes_read + k.bytes_written for k in self.kernels)
        passes = ", ".join(f"{k} {v * 1e3:.1f} ms" for k, v in self.pass_seconds.items())
        return (
            f"{plural(len(self.traced), 'traced node')} -> {len(self.graph):,} after simplify "
            f"-> {plural(len(self.kernels), 'kernel')} ({si(flops, 'FLOP')} and "
            f"{si(moved, 'B')} moved per call)\n"
            f"{self.memory.summary()}\npasses: {passes}"
        )

    def to_dot(self) -> str:
        """Graphviz source: one cluster per kernel, nodes labelled op and shape."""
        g = self.graph
        lines = ["digraph compiled {", "  rankdir=TB; node [shape=box, fontsize=10];"]
        for k, group in enumerate(self.fusion.groups):
            lines.append(
                f'  subgraph cluster_{k} {{ label="{self.kernels[k].name}"; '
                f'style=filled; color="{_color(self.kernels[k])}";'
            )
            for n in group.nodes:
                lines.append(f'    n{n} [label="%{n} {g.node(n)["op"]}\\n{g.node(n)["shape"]}"];')
            lines.append("  }")
        for n in g.nx.nodes:
            if g.is_leaf(n):
                d = g.node(n)
                lines.append(
                    f'  n{n} [shape=ellipse, label="{d["op"]} {d["name"]}\\n{d["shape"]}"];'
                )
        for src, dst, key in g.nx.edges(keys=True):
            lines.append(f"  n{src} -> n{dst} [label={key}];")
        lines.append("}")
        return "\n".join(lines)

    def to_json(self) -> str:
        """Graph, kernels and fusion decisions as JSON."""
        g = self.graph
        nodes = [
            {
                "id": n,
                "op": g.node(n)["op"],
                "name": g.node(n)["name"],
                "shape": list(g.node(n)["shape"]),
                "dtype": g.node(n)["dtype"].name,
                "attrs": {k: repr(v) for k, v in g.node(n)["attrs"].items()},
                "operands": g.operands(n),
                "kernel": self.fusion.group_of.get(n),
                "layer": g.layer(n),
                "phase": g.phase(n),
            }
            for n in g.order()
        ]
        kernels = [
            {
                "name": k.name,
                "layer": k.layer,
                "phase": k.phase,
                "layers": k.layers,
                "ops": k.ops,
                "nodes": k.nodes,
                "flops": k.flops,
                "bytes_read": k.bytes_read,
                "bytes_written": k.bytes_written,
                "median_seconds": k.median_seconds,
                "ir": k.pseudo_c(),
            }
            for k in self.kernels
        ]
        decisions = [vars(d) for d in self.fusion.decisions]
        return json.dumps(
            {
                "outputs": dict(zip(g.output_names, g.outputs)),
                "nodes": nodes,
                "kernels": kernels,
                "decisions": decisions,
                "memory": vars(self.memory),
            },
            indent=1,
            default=str,
        )

    def report(self, path: str, machine: Any = None) -> str:
        """Write a self-contained HTML page (the kernel graph, kernels, timing, decisions);
        return path. `machine` (a `compiler.roofline.Machine`): show % of its peak."""
        from .inspect import write_report

        return write_report(self, path, machine)


def _arguments(names: list[str], args: Sequence[Any], kwargs: dict[str, Any]) -> dict[str, Any]:
    """Match a call's positional and keyword arguments to the input names, as Python binds
    a function's parameters."""
    signature = f"the compiled function takes {len(names)} inputs {names}"
    if len(args) > len(names):
        raise TypeError(f"{signature}, got {len(args)} positional arguments")
    given = dict(zip(names, args))
    for name, value in kwargs.items():
        if name not in names:
            raise TypeError(f"{signature}, got an unexpected keyword argument {name!r}")
        if name in given:
            raise TypeError(f"{signature}, got input {name!r} both by position and by keyword")
        given[name] = value
    missing = [n for n in names if n not in given]
    if missing:
        raise TypeError(f"{signature}, missing {missing}")
    return given


def _color(kernel: Kernel) -> str:
    """The report's colour of the kernel's phase (forward, loss, backward, update)."""
    from .inspect import PHASE_COLORS

    return PHASE_COLORS.get(kernel.phase, "#eeeeee")
