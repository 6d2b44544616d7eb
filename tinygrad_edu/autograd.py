"""The one autograd mechanism shared by the scalar `Value` and the array `Tensor`.

Every op application records a node: the op (from `ops.OPS`), its input nodes and its attributes.
`backward` walks those nodes in reverse topological order (found iteratively, so a chain of
100,000 nodes needs no recursion) and asks each op for its vector-Jacobian product. A VJP is
written in DSL ops, so with `create_graph=True` the backward pass is itself a recorded graph and
a gradient can be differentiated again.
"""

from __future__ import annotations

import contextlib
import threading
import weakref
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator, Sequence
from typing import TYPE_CHECKING, Any

from . import anomaly
from .errors import user_location
from .hooks import RemovableHandle

if TYPE_CHECKING:
    from .ops import Op

_state = threading.local()


def grad_enabled() -> bool:
    """Whether new op applications are recorded for backward."""
    return getattr(_state, "enabled", True)


@contextlib.contextmanager
def no_grad() -> Iterator[None]:
    """Context manager: ops inside it record nothing (inference, optimizer updates)."""
    previous = grad_enabled()
    _state.enabled = False
    try:
        yield
    finally:
        _state.enabled = previous


def inference_mode(mode: bool = True) -> contextlib.AbstractContextManager[None]:
    """PyTorch's `inference_mode` (a context manager or decorator): `no_grad` here, since
    a tensor made without recording is already free of autograd bookkeeping; with
    mode=False, gradients are recorded or not as outside it."""
    if callable(mode):  # the bare decorator: @inference_mode
        return no_grad()(mode)
    return no_grad() if mode else _as_outside()


@contextlib.contextmanager
def _as_outside() -> Iterator[None]:
    yield


def tracing() -> bool:
    """Whether ops run symbolically (shapes and dtypes only) and every op is recorded."""
    return getattr(_state, "tracing", False)


@contextlib.contextmanager
def trace_mode() -> Iterator[None]:
    """Context manager used by the compiler: inside it, ops compute no numbers (each result
    holds only a shape and a dtype, from the op table's rules) and every op application is
    recorded, gradients or not, so the whole program can be read back as a graph."""
    previous = tracing()
    _state.tracing = True
    try:
        yield
    finally:
        _state.tracing = previous


def record_input_check(tensor: Any, check: Callable[[Any], None]) -> None:
    """While tracing: a compiled program must run `check(array)` on the value that `tensor`
    (one of its inputs) has at each call, because the check needs numbers that tracing does
    not have (a loss's class labels must be in range). `check` raises a clear error. The
    compiler collects these with `input_checks()`; outside it, nothing is recorded."""
    checks = getattr(_state, "input_checks", None)
    if checks is not None:
        checks.append((tensor, check))


@contextlib.contextmanager
def input_checks() -> Iterator[list[tuple[Any, Callable[[Any], None]]]]:
    """Collect the `record_input_check` calls made inside (the compiler's tracer)."""
    previous = getattr(_state, "input_checks", None)
    _state.input_checks = []
    try:
        yield _state.input_checks
    finally:
        _state.input_checks = previous


# -- provenance: which module (and which phase of a step) an op was recorded in ---------------
FORWARD, LOSS, BACKWARD, UPDATE = "forward", "loss", "backward", "update"
NO_SCOPE = ("", FORWARD)


def current_scope() -> tuple[str, str]:
    """(module path, phase) that ops recorded now are attributed to while tracing: the
    innermost module being called (`features.3`; "" for the root module and for code outside
    any module) and the phase ("forward", "loss", "backward" or "update")."""
    return getattr(_state, "scope", NO_SCOPE)


@contextlib.contextmanager
def scope(layer: str, phase: str) -> Iterator[None]:
    """Attribute the ops recorded inside to `layer` in `phase` (the compiler's tracer uses it
    for losses, backward passes and optimizer updates)."""
    previous = current_scope()
    _state.scope = (layer, phase)
    try:
        yield
    finally:
        _state.scope = previous


@contextlib.contextmanager
def module_paths(root: Any) -> Iterator[None]:
    """While tracing `root`, let each of its sub-modules' calls attribute their ops to the
    module's qualified name (as PyTorch FX records `nn_module_stack`)."""
    previous = getattr(_state, "paths", None)
    _state.paths = {id(m): name for name, m in root.named_modules()}
    try:
        yield
    finally:
        _state.paths = previous


class _ModuleScope:
    """`with module_scope(m):` around a module's forward; nothing unless tracing."""

    __slots__ = ("path", "previous")

    def __init__(self, module: Any) -> None:
        paths = getattr(_state, "paths", None) if tracing() else None
        self.path = None if paths is None else paths.get(id(module))
        self.previous = NO_SCOPE

    def __enter__(self) -> None:
        if self.path is not None:
            self.previous = current_scope()
            _state.scope = (self.path, self.previous[1])

    def __exit__(self, *exc: object) -> None:
        if self.path is not None:
            _state.scope = self.previous


def module_scope(module: Any) -> _ModuleScope:
    """Context for one call of `module` (see `module_paths`)."""
    return _ModuleScope(module)


@contextlib.contextmanager
def eager_mode() -> Iterator[None]:
    """The opposite of `trace_mode`, inside it: ops on tensors that hold numbers compute them
    (constant folding, e.g. an imported ONNX graph's shape arithmetic while the compiler
    traces the model). Results are constants of the traced graph."""
    previous = tracing()
    _state.tracing = False
    try:
        yield
    finally:
        _state.tracing = previous


@contextlib.contextmanager
def enable_grad() -> Iterator[None]:
    """Context manager: record ops even inside `no_grad` (used by `create_graph=True`)."""
    previous = grad_enabled()
    _state.enabled = True
    try:
        yield
    finally:
        _state.enabled = previous


class Node(ABC):
    """What `Value` and `Tensor` share: data, a gradient, and how the data was made.

    Subclasses say how raw data is wrapped (`_wrap`), how a constant operand becomes a node
    (`_const`), how gradients are stored on the user-facing object (`_store_grad`) and how the
    seed gradient of `backward()` looks (`_seed_grad`).
    """

    __slots__ = (
        "data", "grad", "requires_grad", "_op", "_inputs", "_attrs", "_retain", "_released",
        "_made_at", "label", "_scope", "_hooks", "_post_hooks", "_saved_versions",
    )  # fmt: skip

    def __init__(self, data: Any, requires_grad: bool = False) -> None:
        self.data = data
        self.grad: Any = None
        self.requires_grad = requires_grad
        self._op: Op | None = None
        self._inputs: tuple[Node, ...] = ()
        self._attrs: dict[str, Any] = {}
        self._retain = False
        self._released = False  # set once backward has run this node's VJP and let go
        self._made_at = ""  # the user's line that ran the op (recorded in anomaly mode)
        self.label = ""
        self._scope = NO_SCOPE  # (module path, phase) it was traced in; see `current_scope`
        self._hooks: dict[int, Callable[[Any], Any]] | None = None  # register_hook
        self._post_hooks: dict[int, Callable[[Any], None]] | None = None
        # (own, inputs') storage versions when recorded (see `storage_version`): a VJP that
        # reads one of them after it changed in place raises instead of using the new values
        self._saved_versions: tuple[tuple[int, int], ...] = ()

    # -- subclass hooks ---------------------------------------------------------------------
    @classmethod
    @abstractmethod
    def _wrap(cls, data: Any) -> Node:
        """Turn raw data (a number or an array) into a node of this class."""

    @abstractmethod
    def _seed_grad(self) -> Node:
        """The gradient `backward()` starts from when none is given (a one)."""

    @abstractmethod
    def _store_grad(self, grad: Node) -> None:
        """Accumulate `grad` into the user-facing `.grad`."""

    @classmethod
    @abstractmethod
    def _forward(
        cls, op: Op, inputs: Sequence[Node], attrs: dict[str, Any], shape: tuple[int, ...]
    ) -> Node:
        """Run `op.forward` on the inputs' raw data and wrap the result (no recording).
        `shape` is what the op's shape rule gave."""

    @property
    @abstractmethod
    def shape(self) -> tuple[int, ...]:
        """The node's shape (`()` for a scalar)."""

    @property
    def _version(self) -> int:
        """In-place writes so far to this node's storage (shared with its views and its
        `detach()`, as PyTorch's version counter is)."""
        return storage_version(self.data)[1]

    @classmethod
    def apply(cls, op: Op, inputs: Sequence[Node], attrs: dict[str, Any]) -> Node:
        """Apply a primitive op: check shapes by its rule, run its forward, record the node.

        The shape rule runs first so a bad call fails here, on the user's line, with a
        message naming the op and the shapes, before any array work is done.
        """
        if _backwards_running[0]:  # (one list read when no backward runs: the hot path)
            vjp_of = getattr(_state, "vjp_of", None)
            if vjp_of is not None:
                _check_unchanged(vjp_of, inputs)
        shape = op.shape(*(i.shape for i in inputs), **attrs)
        out = cls._forward(op, inputs, attrs, shape)
        if anomaly.checking_forward() and not tracing():
            anomaly.check_forward(op.name, inputs, out)
            out._made_at = anomaly.forward_location()
        return record(out, op, inputs, attrs)

    # -- graph ------------------------------------------------------------------------------
    @property
    def is_leaf(self) -> bool:
        return self._op is None

    @property
    def op_name(self) -> str:
        """The op that produced this node ('' for a leaf); the same name as in the op table."""
        return self._op.name if self._op is not None else ""

    def topological_order(self) -> list[Node]:
        """Nodes reachable from this one that need gradients, inputs before their users.

        Iterative depth-first search with an explicit stack: no recursion limit.
        """
        order: list[Node] = []
        visited: set[int] = set()
        stack: list[tuple[Node, bool]] = [(self, False)]
        while stack:
            node, expanded = stack.pop()
            if expanded:
                order.append(node)
                continue
            if id(node) in visited:
                continue
            visited.add(id(node))
            stack.append((node, True))
            for parent in reversed(node._inputs):
                if parent.requires_grad and id(parent) not in visited:
                    stack.append((parent, False))
        return order

    def backward(
        self,
        gradient: Any = None,
        retain_graph: bool | None = None,
        create_graph: bool = False,
    ) -> None:
        """Accumulate d(self)/d(leaf) into `.grad` of every leaf that requires grad.

        `gradient` is the upstream gradient (required unless self has one element).
        Each node's saved context is released once its VJP has run, as in PyTorch, so a
        second `backward()` through the same graph raises instead of adding the gradients
        twice; `retain_graph=True` keeps the graph for another backward. With
        `create_graph=True` the backward ops are recorded, so gradients can be differentiated
        again; it retains the graph unless `retain_graph=False` is given.
        """
        if not self.requires_grad:
            raise RuntimeError(
                "backward: this value does not require grad; create the inputs with "
                "requires_grad=True (and do not compute it under no_grad())"
            )
        retain = create_graph if retain_graph is None else retain_graph
        order = self.topological_order()
        _check_not_released(order)
        seed = self._seed_grad() if gradient is None else self._coerce_seed(gradient)
        grads: dict[int, Node] = {id(self): seed}
        mode = enable_grad() if create_graph else no_grad()
        previous = getattr(_state, "vjp_of", None)  # a backward() inside a hook
        with _count_lock:
            _backwards_running[0] += 1
        try:
            with mode:
                for node in reversed(order):
                    grad = grads.pop(id(node), None)
                    if grad is None:
                        continue
                    if node._hooks:
                        grad = _run_gradient_hooks(node, grad)
                    if node.is_leaf or node._retain:
                        node._store_grad(grad)
                    if node.is_leaf:
                        if node._post_hooks:
                            _run_post_accumulate_hooks(node)
                        continue
                    assert node._op is not None
                    if tracing():  # backward ops belong to the layer they differentiate
                        with scope(node._scope[0], BACKWARD):
                            input_grads = node._op.vjp(grad, node, *node._inputs, **node._attrs)
                            _accumulate(grads, node, input_grads)
                    elif anomaly.is_anomaly_enabled():
                        _state.vjp_of = node
                        with anomaly.checked_vjp():
                            input_grads = node._op.vjp(grad, node, *node._inputs, **node._attrs)
                        _state.vjp_of = None
                        anomaly.check_backward(node, grad, input_grads)
                        _accumulate(grads, node, input_grads)
                    else:
                        _state.vjp_of = node  # see `_check_unchanged`
                        input_grads = node._op.vjp(grad, node, *node._inputs, **node._attrs)
                        _state.vjp_of = None
                        _accumulate(grads, node, input_grads)
                    if not retain:
                        node._release()
        finally:
            with _count_lock:
                _backwards_running[0] -= 1
            _state.vjp_of = previous

    def _release(self) -> None:
        """Forget what this node's VJP needed (its inputs and attributes), so the
        intermediate arrays can be freed; the op name stays for display."""
        self._inputs = ()
        self._attrs = {}
        self._released = True

    def _coerce_seed(self, gradient: Any) -> Node:
        return gradient if isinstance(gradient, Node) else type(self)._wrap(gradient)

    def retain_grad(self) -> None:
        """Keep the gradient of this intermediate node after backward (leaves always keep it)."""
        self._retain = True

    # -- hooks ------------------------------------------------------------------------------
    def register_hook(self, hook: Callable[[Any], Any]) -> RemovableHandle:
        """Call `hook(grad)` each time backward computes the gradient with respect to this
        node, before it is accumulated into `.grad` (a leaf) or passed on to the inputs (an
        intermediate); a non-None result replaces the gradient (same shape). Hooks run in
        registration order, each given the previous one's result, and before `retain_grad`
        keeps the gradient, as in PyTorch. Returns a handle: `handle.remove()`.

        Hooks run in eager backward passes; a compiled step replays the graph without them."""
        self._check_hookable("register_hook")
        if self._hooks is None:
            self._hooks = {}
        return RemovableHandle(self._hooks, hook)

    def register_post_accumulate_grad_hook(self, hook: Callable[[Any], None]) -> RemovableHandle:
        """Call `hook(self)` once per backward pass, after every contribution to this leaf's
        gradient has been summed into `.grad` (so `.grad` is final for this pass: the moment
        data-parallel training can start reducing it). Leaves only; the hook returns None.
        Returns a handle: `handle.remove()`."""
        self._check_hookable("register_post_accumulate_grad_hook")
        if not self.is_leaf:
            raise RuntimeError(
                f"register_post_accumulate_grad_hook: post accumulate grad hooks cannot be "
                f"registered on non-leaf tensors (this one is the output of "
                f"'{self.op_name}', shape {self.shape}). Fix: register it on the leaf (a "
                "parameter), or use register_hook for an intermediate's gradient"
            )
        if self._post_hooks is None:
            self._post_hooks = {}
        return RemovableHandle(self._post_hooks, hook)

    def _check_hookable(self, method: str) -> None:
        if not self.requires_grad:
            raise RuntimeError(
                f"{method}: cannot register a hook on a tensor that doesn't require gradient "
                f"(shape {self.shape}). Fix: create it with requires_grad=True"
            )


def _run_gradient_hooks(node: Node, grad: Node) -> Node:
    """`node`'s register_hook hooks in order, each on the previous one's result."""
    assert node._hooks is not None
    for hook in list(node._hooks.values()):  # a hook may remove itself
        result = hook(grad)
        if result is None:
            continue
        if not isinstance(result, Node):
            result = type(node)._wrap(result)
        if result.shape != grad.shape:
            # RuntimeError, as PyTorch raises for a hook that changes the gradient's size
            raise RuntimeError(
                f"register_hook: hook {getattr(hook, '__name__', hook)!r} has changed the size "
                f"of the gradient (gradient {grad.shape}, hook returned {result.shape}). Fix: "
                f"return a gradient of the same shape, or None to keep it [at {user_location()}]"
            )
        grad = result
    return grad


def _run_post_accumulate_hooks(node: Node) -> None:
    """`node`'s post-accumulate-grad hooks in order, each given the leaf itself."""
    assert node._post_hooks is not None
    for hook in list(node._post_hooks.values()):
        if hook(node) is not None:
            raise RuntimeError(
                f"register_post_accumulate_grad_hook: hook {getattr(hook, '__name__', hook)!r} "
                "returned a value; post accumulate grad hooks must return None. Fix: change "
                "the leaf's .grad in place instead of returning a new one"
            )


def _accumulate(grads: dict[int, Node], node: Node, input_grads: Sequence[Any]) -> None:
    """Add each input's gradient contribution (fan-out contributions are summed)."""
    for parent, parent_grad in zip(node._inputs, input_grads, strict=True):
        if parent_grad is None or not parent.requires_grad:
            continue
        key = id(parent)
        grads[key] = parent_grad if key not in grads else grads[key] + parent_grad


# -- in-place writes: one version counter per storage ----------------------------------------
# A VJP reads its result and inputs when it runs, long after the forward. If one of them was
# written in place in between, the gradient would silently use the new values; PyTorch refuses
# ("modified by an inplace operation"), and so do we. Versions count per *storage* (the array
# at the root of numpy's `.base` chain), so a view, a reshape or a `detach()` of a tensor sees
# the writes made through any of them. Only storages that were ever written have an entry.
_writes: dict[int, tuple[weakref.ref[Any], int]] = {}
_NUMBER = (0, 0)


def _storage(data: Any) -> Any:
    base = getattr(data, "base", None)
    while base is not None and hasattr(base, "shape"):  # an array's base array (numpy, cupy)
        data, base = base, getattr(base, "base", None)
    return data


def storage_version(data: Any) -> tuple[int, int]:
    """(which storage `data` lives in, how many in-place writes it has had). A node whose
    `.data` was replaced by another array gets another storage: that counts as a change."""
    if type(data) is float:  # a scalar Value's number: never written in place
        return _NUMBER
    root = data if getattr(data, "base", None) is None else _storage(data)
    key = id(root)
    entry = _writes.get(key)
    if entry is None or entry[0]() is not root:
        return (key, 0)
    return (key, entry[1])


def note_write(data: Any) -> None:
    """Count an in-place write into `data`'s storage (every path that writes a tensor's
    array in place calls this: in-place methods, optimizers, load_state_dict, buffers)."""
    root = _storage(data)
    key = id(root)
    entry = _writes.get(key)
    count = entry[1] if entry is not None and entry[0]() is root else 0
    try:
        _writes[key] = (weakref.ref(root), count + 1)
    except TypeError:  # not weak-referenceable (a Python number): nothing can view it
        return
    if len(_writes) > 4096 and len(_writes) & 1023 == 0:  # forget storages since freed
        for k in [k for k, (ref, _) in _writes.items() if ref() is None]:
            del _writes[k]


# backward() calls running in any thread; while one runs, the VJP it is running in this
# thread is `_state.vjp_of`, and every op applied checks the operands it reads against it
_backwards_running = [0]
_count_lock = threading.Lock()  # += is not atomic across threads


def _check_unchanged(node: Node, inputs: Sequence[Node]) -> None:
    """Raise if one of `inputs` is an operand of `node` (whose VJP is running) that changed
    in place since `node` was recorded: only the operands a VJP actually reads are checked
    (add's VJP reads none; mul's reads both), so a change nobody reads is fine, as in torch."""
    operands = (node, *node._inputs)
    for x in inputs:
        for k, operand in enumerate(operands):
            if x is operand and storage_version(x.data) != node._saved_versions[k]:
                what = "its result" if k == 0 else f"its input {k - 1}"
                raise RuntimeError(
                    f"backward: {what} of the '{node.op_name}' op {_shape_of(node)} was changed "
                    "in place after the op ran, and its gradient reads it, so it would be "
                    "computed from the new values. Fix: change a copy (x = x.clone()) or use "
                    "the out-of-place form (x = x.mul(2)), or make the change before the "
                    f"forward pass [at {user_location()}]"
                )


def _shape_of(node: Node) -> str:
    return f"(shape {tuple(node.shape)})"


def _check_not_released(order: Sequence[Node]) -> None:
    """Raise before any gradient is written when the walk would need a released node."""
    for node in reversed(order):  # name the released node nearest the output
        if node._released:
            raise RuntimeError(
                f"backward: trying to backward through the graph a second time: the saved "
                f"inputs of '{node.op_name}' (output shape {node.shape}) were released by "
                "the previous backward(). Fix: pass retain_graph=True to the first "
                "backward() if you need a second one, or recompute the forward pass "
                f"[at {user_location()}]"
            )


def record(out: Node, op: Op, inputs: Sequence[Node], attrs: dict[str, Any]) -> Node:
    """Attach the recipe (op, inputs, attrs) to `out` when any input needs a gradient (and
    always while tracing, so the compiler sees non-differentiable ops too)."""
    needs_grad = grad_enabled() and op.vjp is not None and any(i.requires_grad for i in inputs)
    if needs_grad or tracing():
        out.requires_grad = needs_grad
        out._op = op
        out._inputs = tuple(inputs)
        out._attrs = attrs
        if tracing():
            out._scope = current_scope()
        else:
            out._saved_versions = tuple(storage_version(x.data) for x in (out, *inputs))
    return out
