"""drift: where a compiled training step's numbers first differ from eager mode's, and why.

    python -m compiler drift alexnet-mini --backend numpy [--dtype float32] [--steps 5]

`compare` runs the same training steps eagerly and compiled, side by side, from the same
weights, data and random-generator state. The eager step runs with a tape of every op the op
table executes (forward, VJPs, optimizer update); the compiled step is watched kernel by
kernel (`CompiledFunction.watch`). Values are matched by what they compute, not by position:
a value's key is its op, attributes and its operands' keys, down to leaves keyed by their
contents (inputs, parameters, constants), and the n-th random draw of a step is keyed by n.
The compiled graph is keyed through the traced graph (the eager program as recorded) and each
simplified node's `origin`, so a node that simplify rewrote is still compared with the eager
value it replaces.

A `StepReport` lists every compiled value that differs from its eager twin, in execution
order, marking the roots: values whose kernel read only inputs equal to eager's, so the
difference was made there (a reassociated sum, a rewritten product, a different mask...)
rather than carried in. It also compares the loss, each parameter's gradient (nodes labelled
"grad:NAME" by autodiff, where the kernel materialises it) and the state after the step
(parameters, buffers, optimizer state) and whether both steps drew the same random numbers.
"""

from __future__ import annotations

import contextlib
import hashlib
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from tinygrad_edu import Tensor, nn, optim, rng
from tinygrad_edu.tensor import MetaArray

from .graph import Graph

RANDOM_OPS = ("bernoulli",)
SAME_VALUE_OPS = ("detach",)  # the forward returns its operand itself: the same value, key


# -- keys: what a value computes ------------------------------------------------------------
def _digest(*parts: Any) -> str:
    return hashlib.sha1(repr(parts).encode()).hexdigest()[:20]


def _attr_repr(value: Any) -> Any:
    if isinstance(value, np.ndarray):
        return ("array", value.shape, value.dtype.str, hashlib.sha1(value.tobytes()).hexdigest())
    if isinstance(value, (tuple, list)):
        return (type(value).__name__, *(_attr_repr(v) for v in value))
    if isinstance(value, dict):
        return tuple(sorted((k, _attr_repr(v)) for k, v in value.items()))
    return repr(value)


def leaf_key(array: Any) -> str:
    arr = np.ascontiguousarray(array)
    return _digest("leaf", arr.shape, arr.dtype.str, hashlib.sha1(arr.tobytes()).hexdigest())


def op_key(op: str, attrs: dict[str, Any], operands: Sequence[str | None], draw: int) -> str | None:
    if any(k is None for k in operands):
        return None
    if op in SAME_VALUE_OPS:
        return operands[0]
    return _digest(op, _attr_repr(attrs), tuple(operands), draw if op in RANDOM_OPS else -1)


# -- the eager side: a tape of every op executed ------------------------------------------------
@dataclass
class TapeEntry:
    op: str
    key: str
    value: np.ndarray  # a copy: views of parameters change when the optimizer writes


class EagerTape:
    """Inside `with tape.recording():` every eager op application is keyed and its value
    kept. The arrays stay referenced until the tape is dropped, so ids are not reused. The
    block replaces `Tensor._forward` for the whole process: record one run at a time."""

    def __init__(self) -> None:
        self.entries: list[TapeEntry] = []
        self._keys: dict[int, str] = {}
        self._alive: list[Any] = []
        self._draws = 0

    def key_of(self, array: Any) -> str:
        key = self._keys.get(id(array))
        if key is None:  # not made by a recorded op: a leaf, keyed by its contents now
            key = self._keys[id(array)] = leaf_key(array)
            self._alive.append(array)
        return key

    def alias(self, arrays: Sequence[Any]) -> None:
        """Key each array (a copy made outside the op table, like a leaf's stored `.grad`)
        as the recorded value with the same contents, if there is one."""
        by_contents = {leaf_key(e.value): e.key for e in self.entries}
        for array in arrays:
            key = by_contents.get(leaf_key(array))
            if key is not None:
                self._keys[id(array)] = key
                self._alive.append(array)

    def by_key(self) -> dict[str, np.ndarray]:
        out: dict[str, np.ndarray] = {}
        for e in self.entries:
            out.setdefault(e.key, e.value)
        return out

    @contextlib.contextmanager
    def recording(self) -> Iterator[EagerTape]:
        original = Tensor.__dict__["_forward"]
        tape = self

        def forward(cls: type, op: Any, inputs: Sequence[Any], attrs: dict, shape: tuple) -> Any:
            out = original.__func__(cls, op, inputs, attrs, shape)
            if isinstance(out.data, MetaArray):
                return out
            operands = [tape.key_of(i.data) for i in inputs]
            if any(out.data is i.data for i in inputs):
                return out  # the operand itself (detach): same value, same key
            key = op_key(op.name, attrs, operands, tape._draws)
            if op.name in RANDOM_OPS:
                tape._draws += 1
            assert key is not None
            tape._keys[id(out.data)] = key
            tape._alive.append(out.data)
            tape.entries.append(TapeEntry(op.name, key, np.array(out.data, copy=True)))
            return out

        Tensor._forward = classmethod(forward)  # type: ignore[method-assign]
        try:
            yield self
        finally:
            Tensor._forward = original  # type: ignore[method-assign]


# -- the compiled side: every kernel's outputs ------------------------------------------------
def _traced_keys(traced: Graph, leaf_values: dict[int, np.ndarray], draws: dict[int, int]) -> dict:
    """Key of every traced node: leaves from `leaf_values` (traced id -> array) or their
    constant value, ops from their operands; random ops by their draw index."""
    keys: dict[int, str | None] = {}
    for nid in traced.order():
        d = traced.node(nid)
        if d["op"] == "const":
            keys[nid] = leaf_key(d["value"])
        elif traced.is_leaf(nid):
            keys[nid] = leaf_key(leaf_values[nid]) if nid in leaf_values else None
        else:
            operands = [keys[o] for o in traced.operands(nid)]
            keys[nid] = op_key(d["op"], d["attrs"], operands, draws.get(nid, -1))
    return keys


@dataclass
class NodeDiff:
    """A compiled value that differs from eager's (or has no eager twin)."""

    node: int
    op: str
    shape: tuple[int, ...]
    kernel: str
    label: str  # "grad:NAME", "output loss", or ""
    max_abs: float
    max_rel: float
    differing: int  # elements that differ
    size: int
    root: bool  # the kernel's inputs all equal eager's: the difference was made here
    note: str = ""
    kernel_ops: tuple[str, ...] = ()

    def __str__(self) -> str:
        what = f"%{self.node} {self.op} {self.shape}" + (f" [{self.label}]" if self.label else "")
        where = f"in {self.kernel}" + (
            f" (ROOT: its inputs equal eager's; it fused {list(self.kernel_ops)})"
            if self.root
            else ""
        )
        return (
            f"{what} {where}: {self.differing}/{self.size} elements differ, max abs "
            f"{self.max_abs:.3g}, max rel {self.max_rel:.3g}"
            + (f"; {self.note}" if self.note else "")
        )


@dataclass
class StepReport:
    step: int
    loss_eager: float
    loss_compiled: float
    compared: int  # compiled values that had an eager twin
    unmatched: int = 0  # compiled values with no eager twin (eager computed them otherwise)
    diffs: list[NodeDiff] = field(default_factory=list)
    grads: dict[str, float | None] = field(default_factory=dict)  # max abs; None: fused away
    state: dict[str, float] = field(default_factory=dict)  # max abs after the step
    same_random_draws: bool = True

    @property
    def identical(self) -> bool:
        return (
            not self.diffs
            and self.loss_eager == self.loss_compiled
            and all(v == 0 for v in self.state.values())
            and self.same_random_draws
        )

    @property
    def roots(self) -> list[NodeDiff]:
        return [d for d in self.diffs if d.root]

    def __str__(self) -> str:
        state_max = max(self.state.values(), default=0.0)
        worst = max(self.state, key=lambda k: self.state[k]) if self.state else ""
        lines = [
            f"step {self.step}: loss eager {self.loss_eager!r} compiled {self.loss_compiled!r} "
            f"(diff {self.loss_compiled - self.loss_eager:+.3g}); {self.compared} values "
            f"compared, {len(self.diffs)} differ ({len(self.roots)} roots), {self.unmatched} "
            f"without an eager twin; state after the step: max abs diff {state_max:.3g}"
            + (f" ({worst})" if state_max else "")
        ]
        if not self.same_random_draws:
            lines.append("  the compiled step drew different random numbers than eager")
        for d in (self.roots or self.diffs)[:8]:
            lines.append(f"  {d}")
        grads = {k: v for k, v in self.grads.items() if v}
        if grads:
            shown = ", ".join(f"{k} {v:.3g}" for k, v in list(grads.items())[:6])
            lines.append(f"  gradients that differ (max abs): {shown}")
        return "\n".join(lines)


@dataclass
class DriftReport:
    backend: str
    dtype: str
    steps: list[StepReport]

    @property
    def first_difference(self) -> StepReport | None:
        return next((s for s in self.steps if not s.identical), None)

    def __str__(self) -> str:
        head = f"eager vs compiled ({self.backend}, {self.dtype}), {len(self.steps)} steps"
        first = self.first_difference
        if first is None:
            return f"{head}: bit-identical (losses, every compared value, the state)"
        lines = [head, f"first difference at step {first.step}:", str(first)]
        later = [s for s in self.steps if s.step > first.step]
        if later:
            lines.append("later steps (loss diff, state max abs diff):")
            for s in later:
                state_max = max(s.state.values(), default=0.0)
                lines.append(
                    f"  step {s.step}: {s.loss_compiled - s.loss_eager:+.3g}, {state_max:.3g}"
                )
        return "\n".join(lines)


def _difference(a: np.ndarray, b: np.ndarray) -> tuple[int, float, float]:
    """(elements that differ, max abs, max rel) between same-shape arrays; NaNs equal NaNs."""
    if a.shape != b.shape or a.dtype != b.dtype:
        return a.size, float("inf"), float("inf")
    if a.dtype.kind not in "fc":
        n = int((a != b).sum())
        return n, float(n > 0), float(n > 0)
    differ = ~((a == b) | (np.isnan(a) & np.isnan(b)))
    if not differ.any():
        return 0, 0.0, 0.0
    x, y = a[differ].astype(np.float64), b[differ].astype(np.float64)
    diff = np.abs(x - y)
    rel = diff / np.maximum(np.abs(y), np.finfo(a.dtype).tiny)
    return int(differ.sum()), float(np.nanmax(diff)), float(np.nanmax(rel))


class _Watch:
    """Copies of every value a compiled call leaves in its environment, kernel by kernel."""

    def __init__(self) -> None:
        self.values: dict[int, np.ndarray] = {}
        self.kernel_of: dict[int, str] = {}
        self.group_of: dict[int, Any] = {}
        self.order: list[int] = []

    def __call__(self, group: Any, kernel: Any, env: dict[int, Any]) -> None:
        for nid, value in env.items():
            if nid in self.values or nid in self.kernel_of:
                continue
            arr = value.get() if hasattr(value, "get") else np.asarray(value)
            self.values[nid] = np.array(arr, copy=True)
            if nid in group.nodes:
                self.kernel_of[nid] = kernel.name
                self.group_of[nid] = group
                self.order.append(nid)


def _compare_step(
    step: Any,
    watch: _Watch,
    tape: EagerTape,
    eager_grads: dict[str, np.ndarray],
) -> tuple[list[NodeDiff], dict[str, float | None], int, int]:
    compiled = step.compiled
    g, traced = compiled.graph, compiled.traced
    origin = {n: g.node(n).get("origin") for n in g.nx.nodes}
    leaf_values = {
        origin[n]: watch.values[n] for n in g.nx.nodes if g.is_leaf(n) and n in watch.values
    }
    execution = [n for group in compiled.fusion.groups for n in group.nodes]
    random_nodes = [n for n in execution if g.node(n)["op"] in RANDOM_OPS]
    draws = {origin[n]: k for k, n in enumerate(random_nodes)}
    keys = _traced_keys(traced, leaf_values, draws)
    eager = tape.by_key()
    same: dict[int, bool] = {}  # compiled node -> equals eager
    for n in g.nx.nodes:
        if g.is_leaf(n):
            same[n] = True
    diffs: list[NodeDiff] = []
    twinned: set[int] = set()  # compared with an eager value
    compared = unmatched = 0
    for n in watch.order:
        d = g.node(n)
        o = origin[n]
        key = keys.get(o) if o is not None else None
        label = traced.node(o).get("label", "") if o is not None else ""
        if n in g.outputs:
            label = label or f"output {g.output_names[g.outputs.index(n)]}"
        want = eager.get(key) if key is not None else None
        group = watch.group_of[n]
        inputs = compiled.fusion.group_inputs(group)
        # and its operands inside the kernel agree too: a kernel with an epilogue (a weight
        # gradient with the optimizer's update fused in) makes its difference at one op
        root = all(same.get(i, False) for i in inputs) and all(
            same[o] for o in g.operands(n) if o in twinned and watch.group_of.get(o) == group
        )
        if want is None:  # e.g. an update eager ran on chunks of a large parameter
            same[n] = False
            unmatched += 1
            continue
        compared += 1
        twinned.add(n)
        count, max_abs, max_rel = _difference(watch.values[n], np.asarray(want))
        same[n] = count == 0
        if count:
            note = ""
            if o is not None and traced.node(o)["op"] != d["op"]:
                note = f"simplify rewrote {traced.node(o)['op']} as {d['op']}"
            ops = tuple(g.node(m)["op"] for m in group.nodes)
            size = watch.values[n].size
            diffs.append(
                NodeDiff(
                    n, d["op"], d["shape"], watch.kernel_of[n], label, max_abs, max_rel, count,
                    size, root, note, ops,
                )
            )  # fmt: skip
    grads: dict[str, float | None] = {}
    by_label = {traced.node(origin[n]).get("label"): n for n in g.nx.nodes if origin[n] is not None}
    for name, want in eager_grads.items():
        n = by_label.get(f"grad:{name}")
        if n is None or n not in watch.values:
            grads[name] = None  # fused into its update: never written to memory
        else:
            grads[name] = _difference(watch.values[n], want)[1]
    return diffs, grads, compared, unmatched


def _state_arrays(model: nn.Module, opt: optim.Optimizer) -> dict[str, np.ndarray]:
    out = {f"param:{n}": p.data for n, p in model.named_parameters()}
    out.update({f"buffer:{n}": b.data for n, b in model.named_buffers()})
    for key, value in opt.state_dict().items():
        if value.dtype.kind == "f" and value.ndim:
            out[f"optimizer:{key}"] = value
    return out


def _to_dtype(model: nn.Module, dtype: np.dtype) -> nn.Module:
    for p in model.parameters():
        p.data = p.data.astype(dtype)
    for _, b in model.named_buffers():
        if b.dtype.kind == "f":
            b.data = b.data.astype(dtype)
    return model


def compare(
    make_model: Callable[[], nn.Module],
    loss_fn: Callable[[Tensor, Any], Tensor],
    make_optimizer: Callable[[list[Tensor]], optim.Optimizer],
    batches: Sequence[tuple[np.ndarray, np.ndarray]],
    backend: str = "numpy",
    dtype: Any = np.float32,
    seed: int = 0,
    detail_steps: int | None = None,
) -> DriftReport:
    """Train two copies of `make_model()` (both built after `manual_seed(seed)`) on `batches`,
    one eagerly and one with a compiled step on `backend`, and report per step where their
    values differ. Node-by-node comparison runs until the first step that differs (or for
    `detail_steps` steps); after that only losses and state are compared."""
    import compiler

    dtype = np.dtype(dtype)
    rng.manual_seed(seed)
    eager_model = _to_dtype(make_model(), dtype)
    rng.manual_seed(seed)
    model = _to_dtype(make_model(), dtype)
    eager_opt = make_optimizer(eager_model.parameters())
    opt = make_optimizer(model.parameters())
    data = [(np.asarray(x, dtype=dtype), np.asarray(y)) for x, y in batches]
    step = compiler.compile_train_step(model, loss_fn, opt, *data[0], backend=backend)
    reports: list[StepReport] = []
    detailed = True
    for k, (x, y) in enumerate(data):
        limit = detail_steps is not None and k >= detail_steps
        detail = detailed and not limit
        random_state = rng.get_state()
        tape = EagerTape()
        eager_grads: dict[str, np.ndarray] = {}
        with tape.recording() if detail else contextlib.nullcontext():
            loss = loss_fn(eager_model(Tensor(x, dtype=dtype)), y)
            eager_opt.zero_grad()
            loss.backward()
            grads = [
                (n, p.grad.data) for n, p in eager_model.named_parameters() if p.grad is not None
            ]
            eager_grads = {name: np.array(g, copy=True) for name, g in grads}
            if detail:  # a leaf's .grad is a copy of the last VJP result: the same value
                tape.alias([g for _, g in grads])
            eager_opt.step()
        eager_loss = loss.item()
        eager_random = rng.get_state()
        rng.set_state(random_state)  # the compiled step draws the same numbers
        watch = _Watch()
        step.compiled.watch = watch if detail else None
        try:
            compiled_loss = step(x, y)
        finally:
            step.compiled.watch = None
        report = StepReport(k + 1, float(eager_loss), float(compiled_loss), 0)
        report.same_random_draws = rng.get_state() == eager_random
        if detail:
            report.diffs, report.grads, report.compared, report.unmatched = _compare_step(
                step, watch, tape, eager_grads
            )
        want, got = _state_arrays(eager_model, eager_opt), _state_arrays(model, opt)
        report.state = {name: _difference(got[name], want[name])[1] for name in want}
        if not report.identical:
            detailed = False
        rng.set_state(eager_random)
        reports.append(report)
    return DriftReport(backend, dtype.name, reports)
