"""Optimizers (SGD, Adam, AdamW) and learning-rate schedulers (StepLR, ReduceLROnPlateau).

Every update works on the raw arrays: it reads `p.grad.data` and writes `p.data` in place, in
the parameter's own dtype, so no autograd graph is recorded and arrays held elsewhere (views,
the model's references) stay valid. A parameter whose `.grad` is None is skipped, as in
PyTorch. Below, w is a parameter, g its gradient, lr the learning rate, wd the weight decay,
t the number of updates this parameter has had (1 on its first).

Each rule is written once, as `update(w, g, state, scalars)` in DSL ops (see `Optimizer`): an
eager `step()` runs it on the arrays, and `compiler.compile_train_step` traces the very same
function into the compiled step, so eager and compiled training agree step for step. A new
optimizer is a subclass with its `update` (and `prepare` for per-step numbers such as bias
corrections); it compiles with no compiler change.

SGD, `rule="pytorch"` (exactly `torch.optim.SGD`)::

    g   <- g + wd * w
    buf <- g                                      on the first step
    buf <- momentum * buf + (1 - dampening) * g   afterwards
    g   <- g + momentum * buf   if nesterov, else   g <- buf      (only when momentum > 0)
    w   <- w - lr * g

SGD, `rule="alexnet"` (Krizhevsky, Sutskever & Hinton 2012, section 5; they used
momentum 0.9 and weight decay 0.0005)::

    v <- momentum * v - wd * lr * w - lr * dL/dw          (v starts at 0)
    w <- w + v

How the two relate: substitute v = -lr * buf in the paper's rule and it becomes PyTorch's. So
with a constant lr (and dampening 0, no nesterov) both rules produce identical weights, and
the velocity is v = -lr * buf. They differ only after lr changes: the paper's velocity still
carries the steps taken with the old lr, while PyTorch's buffer holds raw gradients and is
multiplied by the new lr. One step after a change from lr_old to lr_new (same weights and
velocity v_old = -lr_old * buf before it): w_paper - w_pytorch = momentum * v_old *
(1 - lr_new / lr_old), so after an lr drop the paper keeps more of the old momentum.

Adam (exactly `torch.optim.Adam` with amsgrad=False; weight decay is L2, added to g)::

    g <- g + wd * w
    m <- beta1 * m + (1 - beta1) * g
    s <- beta2 * s + (1 - beta2) * g * g
    w <- w - lr / (1 - beta1**t) * m / (sqrt(s) / sqrt(1 - beta2**t) + eps)

AdamW (exactly `torch.optim.AdamW` with amsgrad=False; Loshchilov & Hutter's decoupled weight
decay: the weights shrink directly and g is left alone, so the decay is not rescaled by the
adaptive denominator)::

    w <- w * (1 - lr * wd)
    then Adam's m, s and w updates above, with wd = 0

StepLR (call `step()` once per epoch): lr = base_lr * gamma ** (epoch // step_size).

ReduceLROnPlateau (call `step(metric)` once per epoch; PyTorch semantics): a metric is an
improvement when it beats the best so far by the threshold (mode "min", "rel": metric <
best * (1 - threshold); "abs": metric < best - threshold; mode "max" mirrors this). After
more than `patience` epochs in a row without improvement, lr <- max(lr * factor, min_lr)
(skipped when that changes lr by eps or less), then `cooldown` epochs are ignored. This is
the AlexNet recipe: divide the learning rate by 10 when the validation error stops improving.

`state_dict()` of every optimizer and scheduler is a flat `dict[str, np.ndarray]` (scalars as
0-d arrays, strings as 0-d unicode arrays), so `np.savez(path, **opt.state_dict())` saves it and
`opt.load_state_dict(np.load(path))` restores it exactly. Optimizer keys: `lr`, `step_count`,
`num_params`, the hyperparameters, and per-parameter state `<name>.<index>`, e.g.
`momentum_buffer.0`, `velocity.2`, `exp_avg.3`, `exp_avg_sq.3`, `step.3`.
"""

from __future__ import annotations

import math
import numbers
import re
from abc import ABC, abstractmethod
from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np

from .autograd import no_grad
from .errors import op_error
from .tensor import Tensor

__all__ = ["SGD", "Adam", "AdamW", "LRScheduler", "Optimizer", "ReduceLROnPlateau", "StepLR"]

_CHUNK = 1 << 15  # elements per chunk of an eager elementwise update (temporaries fit in L2)
_STATE_KEY = re.compile(r"^([A-Za-z_]+)\.(\d+)$")


# -- validation helpers ------------------------------------------------------------------------
def _is_real(value: Any) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def _real(
    owner: str,
    name: str,
    value: Any,
    fix: str,
    *,
    low: float = 0.0,
    low_open: bool = False,
    high: float = math.inf,
    high_open: bool = False,
) -> float:
    """`value` as a finite float in [low, high] (open ends where asked), else a ValueError."""
    lo = "(" if low_open else "["
    hi = ")" if high_open or high == math.inf else "]"
    interval = f"{lo}{low:g}, {high:g}{hi}"
    if not _is_real(value) or math.isnan(float(value)):
        raise op_error(owner, f"{name} must be a real number in {interval}", repr(value), fix)
    v = float(value)
    too_low = v <= low if low_open else v < low
    too_high = v >= high if high_open else v > high
    if too_low or too_high or (math.isinf(v) and high == math.inf):
        raise op_error(owner, f"{name} must be in {interval}", f"{name}={value!r}", fix)
    return v


def _int(owner: str, name: str, value: Any, fix: str, *, low: int = 0) -> int:
    if not isinstance(value, numbers.Integral) or isinstance(value, bool) or value < low:
        raise op_error(owner, f"{name} must be an int >= {low}", f"{name}={value!r}", fix)
    return int(value)


def _choice(owner: str, name: str, value: Any, choices: tuple[str, ...]) -> str:
    if value not in choices:
        options = " or ".join(repr(c) for c in choices)
        raise op_error(owner, f"{name} must be {options}", f"{name}={value!r}", f"pass {options}")
    return str(value)


def _to_python(value: np.ndarray) -> Any:
    """A saved 0-d array back to a Python scalar/str; a 1-d array to a tuple."""
    return value.item() if value.ndim == 0 else tuple(value.tolist())


def _as_arrays(owner: str, state: Mapping[str, Any]) -> dict[str, np.ndarray]:
    if not isinstance(state, Mapping):
        raise op_error(
            owner,
            "load_state_dict expects a mapping of names to arrays",
            type(state).__name__,
            "pass the dict from state_dict() or np.load(path) of a file saved with np.savez",
        )
    return {str(k): np.asarray(state[k]) for k in state.keys()}


def _check_keys(owner: str, got: Iterable[str], required: Iterable[str]) -> None:
    missing = sorted(set(required) - set(got))
    if missing:
        raise op_error(
            owner,
            f"state dict is missing keys {missing}",
            f"keys {sorted(got)}",
            f"pass a state dict saved by {owner}.state_dict()",
        )


def _param_list(params: Any, owner: str) -> list[Tensor]:
    example = f"{owner}([w, b], lr=0.01)"
    if isinstance(params, Tensor):
        raise op_error(
            owner,
            "params must be an iterable of Tensors, got a single Tensor",
            f"shape {params.shape}",
            f"wrap it in a list: {owner}([w], ...)",
        )
    if isinstance(params, Mapping):
        raise op_error(
            owner,
            "params must be an iterable of Tensors, got a mapping",
            type(params).__name__,
            f"pass its values: {owner}(list(d.values()), ...)",
        )
    try:
        items = list(params)
    except TypeError:
        raise op_error(
            owner, "params must be an iterable of Tensors", type(params).__name__, example
        ) from None
    if not items:
        raise op_error(
            owner,
            "params is empty: there is nothing to optimise",
            "[]",
            f"pass the parameters, e.g. {example} (a generator can be consumed only once)",
        )
    seen: set[int] = set()
    for k, p in enumerate(items):
        if not isinstance(p, Tensor):
            raise op_error(
                owner, f"params[{k}] is not a Tensor", type(p).__name__, f"pass Tensors: {example}"
            )
        if not p.requires_grad:
            raise op_error(
                owner,
                f"params[{k}] does not require grad, so it would never be updated",
                f"shape {p.shape}, dtype {p.dtype}",
                "create it with Tensor(data, requires_grad=True) or call p.requires_grad_()",
            )
        if not p.is_leaf:
            raise op_error(
                owner,
                f"params[{k}] is the result of an op ({p.op_name}), not a leaf; "
                "it gets no .grad and its data is recomputed",
                f"shape {p.shape}",
                "optimise the leaf tensors the result was computed from",
            )
        if id(p) in seen:
            raise op_error(
                owner,
                f"params[{k}] appears more than once; it would be updated twice per step",
                f"shape {p.shape}",
                "pass each parameter once",
            )
        seen.add(id(p))
    return items


def _check_lr(owner: str, lr: Any) -> float:
    return _real(owner, "lr", lr, "pass a finite learning rate >= 0, e.g. lr=0.01")


# -- optimizers --------------------------------------------------------------------------------
class Optimizer(ABC):
    """Base class: holds the parameters, the learning rate and per-parameter state.

    A subclass describes its rule once, and both eager `step()` and a compiled training step
    (`compiler.compile_train_step`) run that description:

    - `update(w, g, state, scalars)`: one parameter's new value and new state arrays, in DSL
      ops (Tensors). Eagerly it runs on the arrays themselves and the results are written
      back in place; compiled, it is traced into the step's graph.
    - `prepare(state, w)`: host-side work before each update of one parameter: create missing
      state arrays (zeros), advance counters (Adam's `step`), and return the per-step numbers
      the update reads (`scalars`: the learning rate, Adam's bias corrections). Compiled, they
      are runtime inputs, so schedulers and step counts keep working.
    - `state_arrays()`: the names of the arrays `update` reads and returns (shaped like w).
    - `_configure(**hyper)`: validates every hyperparameter before setting any.
    """

    #: names of per-parameter state arrays shaped like the parameter
    _state_arrays: tuple[str, ...] = ()
    #: names of per-parameter scalar state (ints)
    _state_scalars: tuple[str, ...] = ()
    #: hyperparameters besides lr, saved and restored by the state dict
    _hyperparams: tuple[str, ...] = ()
    #: settings saved by the state dict that must match on load (they change the state's form)
    _fixed: tuple[str, ...] = ()
    #: whether `update` is elementwise (each element's new values depend on that element
    #: only), so eager steps may run it over chunks of a parameter
    _elementwise: bool = True

    def __init__(self, params: Iterable[Tensor], lr: float) -> None:
        self.params: list[Tensor] = _param_list(params, self._name)
        self.lr = lr
        self.step_count = 0
        self.state: list[dict[str, Any]] = [{} for _ in self.params]

    @property
    def _name(self) -> str:
        return type(self).__name__

    @property
    def lr(self) -> float:
        """The learning rate; schedulers (and you) may assign it between steps."""
        return self._lr

    @lr.setter
    def lr(self, value: float) -> None:
        self._lr = _check_lr(self._name, value)

    def zero_grad(self) -> None:
        """Forget the gradients (`p.grad = None`), so the next backward starts afresh."""
        for p in self.params:
            p.grad = None

    def step(self) -> None:
        """Update every parameter that has a gradient; those with `grad` None are skipped.

        All gradients are checked before any parameter changes, so a bad one leaves the
        parameters as they were."""
        grads = [
            None if p.grad is None else self._grad_array(i, p) for i, p in enumerate(self.params)
        ]
        with no_grad():
            for state, p, g in zip(self.state, self.params, grads):
                if g is not None:
                    self._apply(state, p.data, g)
        self.step_count += 1

    def _apply(self, state: dict[str, Any], w: np.ndarray, g: np.ndarray) -> None:
        """The rule on one parameter's arrays: `update` run eagerly, results written in place
        (so arrays held elsewhere, like the model's, stay valid). An elementwise rule runs
        over cache-sized chunks of a large parameter: its temporaries stay in cache instead
        of being fresh arrays the parameter's size (about 2x faster on 16M-element weights)."""
        scalars = {
            name: Tensor._make(np.array(v, dtype=w.dtype))
            for name, v in self.prepare(state, w).items()
        }
        names = self.state_arrays()
        arrays = [w, *(state[name] for name in names)]
        if self._elementwise and w.size > _CHUNK and all(a.flags.c_contiguous for a in arrays):
            flat_w, flat_g = w.reshape(-1), g.reshape(-1)
            flat_state = [state[name].reshape(-1) for name in names]
            for start in range(0, w.size, _CHUNK):
                part = slice(start, start + _CHUNK)
                self._apply_part(
                    flat_w[part], flat_g[part], names, [a[part] for a in flat_state], scalars
                )
        else:
            self._apply_part(w, g, names, [state[name] for name in names], scalars)

    def _apply_part(
        self,
        w: np.ndarray,
        g: np.ndarray,
        names: tuple[str, ...],
        state: list[np.ndarray],
        scalars: dict[str, Tensor],
    ) -> None:
        new_w, new_state = self.update(
            Tensor._make(w),
            Tensor._make(g),
            {name: Tensor._make(a) for name, a in zip(names, state)},
            scalars,
        )
        w[...] = new_w.data
        for name, a in zip(names, state):
            a[...] = new_state[name].data

    def state_arrays(self) -> tuple[str, ...]:
        """Names of the per-parameter state arrays `update` reads and returns, with the
        current hyperparameters (SGD without momentum has none)."""
        return self._state_arrays

    def prepare(self, state: dict[str, Any], w: np.ndarray) -> dict[str, float]:
        """Before one parameter's update: create its missing state arrays (zeros like w) and
        return the numbers the update reads besides w, g and the state (the learning rate
        here). Subclasses that count steps advance their counters here."""
        for name in self.state_arrays():
            if name not in state:
                state[name] = np.zeros_like(w)
        return {"lr": self.lr}

    @abstractmethod
    def update(
        self, w: Tensor, g: Tensor, state: dict[str, Tensor], scalars: dict[str, Tensor]
    ) -> tuple[Tensor, dict[str, Tensor]]:
        """One parameter's rule in DSL ops: (new w, new state arrays by name), given w, its
        gradient g, its state arrays and the numbers `prepare` returned (0-d, w's dtype)."""

    def hyperparameters(self) -> dict[str, Any]:
        """The settings `update` reads besides the scalars (a compiled step fixes them)."""
        return {name: getattr(self, name) for name in self._fixed + self._hyperparams}

    def _grad_array(self, i: int, p: Tensor) -> np.ndarray:
        grad = p.grad
        g = grad.data if isinstance(grad, Tensor) else np.asarray(grad)
        if g.shape != p.data.shape:
            raise op_error(
                f"{self._name}.step",
                f"the gradient of params[{i}] has the wrong shape",
                f"grad {tuple(g.shape)}, param {p.shape}",
                "assign p.grad a tensor of the parameter's shape (or let backward() fill it)",
            )
        return g.astype(p.data.dtype, copy=False)

    @abstractmethod
    def _configure(self, **hyper: Any) -> None:
        """Validate and set the rule's hyperparameters."""

    # -- saving and restoring ----------------------------------------------------------------
    def state_dict(self) -> dict[str, np.ndarray]:
        """A flat dict of numpy arrays (copies), ready for `np.savez(path, **d)`."""
        d: dict[str, np.ndarray] = {
            "lr": np.array(self.lr, dtype=np.float64),
            "step_count": np.array(self.step_count, dtype=np.int64),
            "num_params": np.array(len(self.params), dtype=np.int64),
        }
        for name in self._fixed + self._hyperparams:
            d[name] = np.array(getattr(self, name))
        for i, state in enumerate(self.state):
            for name in self._state_arrays:
                if name in state:
                    d[f"{name}.{i}"] = np.array(state[name], copy=True)
            for name in self._state_scalars:
                if name in state:
                    d[f"{name}.{i}"] = np.array(state[name], dtype=np.int64)
        return d

    def load_state_dict(self, state_dict: Mapping[str, Any]) -> None:
        """Restore a `state_dict()` (or `np.load` of a saved one) exactly: lr, step count,
        hyperparameters and per-parameter state. Everything is validated before anything
        changes, so a failed load leaves the optimizer as it was."""
        owner = f"{self._name}.load_state_dict"
        d = _as_arrays(owner, state_dict)
        _check_keys(owner, d, ("lr", "step_count", "num_params", *self._fixed, *self._hyperparams))
        if int(d["num_params"]) != len(self.params):
            raise op_error(
                owner,
                "the state was saved from an optimizer with a different number of parameters",
                f"saved {int(d['num_params'])}, this optimizer has {len(self.params)}",
                "build the optimizer over the same parameters, in the same order",
            )
        for name in self._fixed:
            saved, mine = _to_python(d[name]), getattr(self, name)
            if saved != mine:
                raise op_error(
                    owner,
                    f"the state was saved with {name}={saved!r} but this optimizer has "
                    f"{name}={mine!r}",
                    f"{name}",
                    f"construct the optimizer with {name}={saved!r}",
                )
        new_state = self._parse_param_state(owner, d)
        lr = _check_lr(self._name, _to_python(d["lr"]))
        step_count = _int(owner, "step_count", _to_python(d["step_count"]), "save it again")
        self._configure(**{name: _to_python(d[name]) for name in self._hyperparams})
        self.lr, self.step_count, self.state = lr, step_count, new_state

    def _parse_param_state(self, owner: str, d: dict[str, np.ndarray]) -> list[dict[str, Any]]:
        top = {"lr", "step_count", "num_params", *self._fixed, *self._hyperparams}
        names = self._state_arrays + self._state_scalars
        new_state: list[dict[str, Any]] = [{} for _ in self.params]
        for key, value in d.items():
            if key in top:
                continue
            match = _STATE_KEY.match(key)
            if match is None or match.group(1) not in names:
                raise op_error(
                    owner,
                    f"unexpected key {key!r}",
                    f"{self._name} saves per-parameter state named {list(names)}",
                    f"pass a state dict saved by {self._name}.state_dict()",
                )
            name, i = match.group(1), int(match.group(2))
            if i >= len(self.params):
                raise op_error(
                    owner,
                    f"key {key!r} names parameter {i}",
                    f"this optimizer has {len(self.params)} parameters",
                    "build the optimizer over the same parameters, in the same order",
                )
            p = self.params[i]
            if name in self._state_arrays:
                if value.shape != p.shape:
                    raise op_error(
                        owner,
                        f"{key!r} does not have the shape of params[{i}]",
                        f"saved {value.shape}, param {p.shape}",
                        "build the optimizer over the same parameters, in the same order",
                    )
                new_state[i][name] = value.astype(p.data.dtype, copy=True)
            else:
                if value.ndim != 0 or value.dtype.kind not in "iu" or int(value) < 0:
                    raise op_error(
                        owner,
                        f"{key!r} must be a non-negative integer scalar",
                        f"shape {value.shape}, dtype {value.dtype}",
                        f"pass a state dict saved by {self._name}.state_dict()",
                    )
                new_state[i][name] = int(value)
        for i, state in enumerate(new_state):
            if state and set(state) != set(names):
                raise op_error(
                    owner,
                    f"incomplete state for params[{i}]",
                    f"has {sorted(state)}, needs all of {sorted(names)}",
                    f"pass a state dict saved by {self._name}.state_dict()",
                )
        return new_state

    def __repr__(self) -> str:
        hyper = ", ".join(f"{n}={getattr(self, n)!r}" for n in self._hyperparams + self._fixed)
        sep = ", " if hyper else ""
        return f"{self._name}({len(self.params)} params, lr={self.lr!r}{sep}{hyper})"


class SGD(Optimizer):
    """Stochastic gradient descent with optional momentum, weight decay and Nesterov.

    `rule="pytorch"` (default) is exactly `torch.optim.SGD`; `rule="alexnet"` is the
    AlexNet paper's velocity form, identical to PyTorch's while lr is constant (see the module
    docstring). Paper settings: `SGD(params, lr=0.01, momentum=0.9, weight_decay=5e-4,
    rule="alexnet")`.
    """

    _hyperparams = ("momentum", "weight_decay", "nesterov", "dampening")
    _fixed = ("rule",)

    def __init__(
        self,
        params: Iterable[Tensor],
        lr: float,
        momentum: float = 0.0,
        weight_decay: float = 0.0,
        nesterov: bool = False,
        dampening: float = 0.0,
        rule: str = "pytorch",
    ) -> None:
        self.rule = _choice(type(self).__name__, "rule", rule, ("pytorch", "alexnet"))
        self._state_arrays = ("velocity",) if self.rule == "alexnet" else ("momentum_buffer",)
        super().__init__(params, lr)
        self._configure(
            momentum=momentum, weight_decay=weight_decay, nesterov=nesterov, dampening=dampening
        )

    def _configure(self, **hyper: Any) -> None:
        owner = self._name
        momentum = _real(
            owner,
            "momentum",
            hyper["momentum"],
            "pass 0 <= momentum < 1, e.g. momentum=0.9",
            high=1.0,
            high_open=True,
        )
        weight_decay = _real(
            owner, "weight_decay", hyper["weight_decay"], "pass weight_decay >= 0, e.g. 5e-4"
        )
        dampening = _real(
            owner,
            "dampening",
            hyper["dampening"],
            "pass 0 <= dampening <= 1 (0 is the usual choice)",
            high=1.0,
        )
        nesterov = hyper["nesterov"]
        if not isinstance(nesterov, (bool, np.bool_)):
            raise op_error(
                owner,
                "nesterov must be True or False",
                repr(nesterov),
                "pass nesterov=True or nesterov=False",
            )
        nesterov = bool(nesterov)
        if nesterov and (momentum <= 0 or dampening != 0):
            raise op_error(
                owner,
                "nesterov=True requires momentum > 0 and dampening == 0 (PyTorch's rule)",
                f"momentum={momentum}, dampening={dampening}",
                "set momentum, e.g. momentum=0.9, and leave dampening=0, or drop nesterov",
            )
        if self.rule == "alexnet" and (nesterov or dampening != 0):
            raise op_error(
                owner,
                "rule='alexnet' is the paper's plain momentum rule: it has no nesterov or "
                "dampening",
                f"nesterov={nesterov}, dampening={dampening}",
                "drop nesterov/dampening, or use rule='pytorch'",
            )
        self.momentum, self.weight_decay = momentum, weight_decay
        self.nesterov, self.dampening = nesterov, dampening

    def state_arrays(self) -> tuple[str, ...]:
        return self._state_arrays if self.momentum else ()

    def prepare(self, state: dict[str, Any], w: np.ndarray) -> dict[str, float]:
        scalars = {"lr": self.lr}
        if self.dampening and self.rule == "pytorch":
            # PyTorch's buffer starts as g itself: undamped on a parameter's first step
            first = "momentum_buffer" not in state
            scalars["grad_scale"] = 1.0 if first else 1.0 - self.dampening
        super().prepare(state, w)
        return scalars

    def update(
        self, w: Tensor, g: Tensor, state: dict[str, Tensor], scalars: dict[str, Tensor]
    ) -> tuple[Tensor, dict[str, Tensor]]:
        lr, momentum = scalars["lr"], self.momentum
        if self.weight_decay != 0:
            g = w * self.weight_decay + g
        if momentum == 0:
            return w - g * lr, {}
        if self.rule == "alexnet":
            v = state["velocity"] * momentum - g * lr  # v = momentum*v - wd*lr*w - lr*dL/dw
            return w + v, {"velocity": v}
        # the buffer starts at zero: momentum * 0 + g is PyTorch's first buffer, g
        damped = g * scalars["grad_scale"] if self.dampening else g
        buf = state["momentum_buffer"] * momentum + damped
        direction = buf * momentum + g if self.nesterov else buf
        return w - direction * lr, {"momentum_buffer": buf}


class _AdamBase(Optimizer):
    """What Adam and AdamW share: the two moment estimates with bias correction. They differ
    only in `_decay` (and the weight_decay default); neither is a subclass of the other, so
    `isinstance(opt, Adam)` never mistakes AdamW's decoupled decay for Adam's L2 decay."""

    _state_arrays = ("exp_avg", "exp_avg_sq")
    _state_scalars = ("step",)
    _hyperparams = ("betas", "eps", "weight_decay")

    def __init__(
        self,
        params: Iterable[Tensor],
        lr: float,
        betas: tuple[float, float],
        eps: float,
        weight_decay: float,
    ) -> None:
        super().__init__(params, lr)
        self._configure(betas=betas, eps=eps, weight_decay=weight_decay)

    def _configure(self, **hyper: Any) -> None:
        owner = self._name
        betas = hyper["betas"]
        try:
            beta1, beta2 = betas
        except (TypeError, ValueError):
            raise op_error(
                owner,
                "betas must be a pair (beta1, beta2)",
                repr(betas),
                "pass e.g. betas=(0.9, 0.999)",
            ) from None
        fix = "pass betas with 0 <= beta < 1, e.g. betas=(0.9, 0.999)"
        beta1 = _real(owner, "betas[0]", beta1, fix, high=1.0, high_open=True)
        beta2 = _real(owner, "betas[1]", beta2, fix, high=1.0, high_open=True)
        eps = _real(owner, "eps", hyper["eps"], "pass eps >= 0, e.g. eps=1e-8")
        weight_decay = _real(
            owner, "weight_decay", hyper["weight_decay"], "pass weight_decay >= 0, e.g. 1e-4"
        )
        self.betas, self.eps, self.weight_decay = (beta1, beta2), eps, weight_decay

    def prepare(self, state: dict[str, Any], w: np.ndarray) -> dict[str, float]:
        if "step" not in state:
            state["step"] = 0
        super().prepare(state, w)
        state["step"] += 1
        t = state["step"]
        beta1, beta2 = self.betas
        scalars = {
            "step_size": self.lr / (1 - beta1**t),
            "bias_correction2_sqrt": math.sqrt(1 - beta2**t),
        }
        scalars.update(self._decay_scalars())
        return scalars

    def update(
        self, w: Tensor, g: Tensor, state: dict[str, Tensor], scalars: dict[str, Tensor]
    ) -> tuple[Tensor, dict[str, Tensor]]:
        beta1, beta2 = self.betas
        w, g = self._decay(w, g, scalars)
        m = state["exp_avg"] + (g - state["exp_avg"]) * (1 - beta1)  # torch's lerp
        s = state["exp_avg_sq"] * beta2 + g * (1 - beta2) * g
        denom = s.sqrt() / scalars["bias_correction2_sqrt"] + self.eps
        return w - (m / denom) * scalars["step_size"], {"exp_avg": m, "exp_avg_sq": s}

    def _decay_scalars(self) -> dict[str, float]:
        """Runtime scalars the weight decay needs (they change with the learning rate)."""
        return {}

    @abstractmethod
    def _decay(self, w: Tensor, g: Tensor, scalars: dict[str, Tensor]) -> tuple[Tensor, Tensor]:
        """Apply weight decay before the moments: (the weights the step starts from, the
        gradient the moments see)."""


class Adam(_AdamBase):
    """Adam (Kingma & Ba 2015), exactly `torch.optim.Adam` with L2 weight decay added to the
    gradient (not AdamW's decoupled decay) and a bias correction per parameter."""

    def __init__(
        self,
        params: Iterable[Tensor],
        lr: float = 1e-3,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float = 0.0,
    ) -> None:
        super().__init__(params, lr, betas, eps, weight_decay)

    def _decay(self, w: Tensor, g: Tensor, scalars: dict[str, Tensor]) -> tuple[Tensor, Tensor]:
        return w, (g + w * self.weight_decay if self.weight_decay != 0 else g)


class AdamW(_AdamBase):
    """AdamW (Loshchilov & Hutter 2019), exactly `torch.optim.AdamW` with amsgrad=False
    (amsgrad is not implemented): weight decay is decoupled, `w <- w * (1 - lr * wd)` before
    the Adam step on the undecayed gradient. PyTorch's defaults, weight_decay=1e-2 included.
    Same hyperparameters and state-dict keys as `Adam` (`exp_avg.i`, `exp_avg_sq.i`,
    `step.i`)."""

    def __init__(
        self,
        params: Iterable[Tensor],
        lr: float = 1e-3,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float = 1e-2,
    ) -> None:
        super().__init__(params, lr, betas, eps, weight_decay)

    def _decay_scalars(self) -> dict[str, float]:
        return {"decay": 1 - self.lr * self.weight_decay} if self.weight_decay != 0 else {}

    def _decay(self, w: Tensor, g: Tensor, scalars: dict[str, Tensor]) -> tuple[Tensor, Tensor]:
        return (w * scalars["decay"] if self.weight_decay != 0 else w), g


# -- learning-rate schedulers ------------------------------------------------------------------
class LRScheduler(ABC):
    """Base class: changes `optimizer.lr`; saves its own state as a flat dict of arrays.

    A scheduler's state dict holds the scheduler only; the optimizer's lr is restored by the
    optimizer's own `load_state_dict` (as in PyTorch).
    """

    #: attributes saved by state_dict, in order
    _fields: tuple[str, ...] = ()

    def __init__(self, optimizer: Optimizer) -> None:
        if not isinstance(optimizer, Optimizer):
            raise op_error(
                type(self).__name__,
                "optimizer must be a tinygrad_edu.optim Optimizer",
                type(optimizer).__name__,
                f"pass e.g. {type(self).__name__}(SGD(params, lr=0.01), ...)",
            )
        self.optimizer = optimizer
        self.last_epoch = 0
        self.last_lr = optimizer.lr

    def get_last_lr(self) -> float:
        """The learning rate set by the last `step()` (the optimizer's lr at construction)."""
        return self.last_lr

    def state_dict(self) -> dict[str, np.ndarray]:
        return {name: np.array(getattr(self, name)) for name in self._fields}

    def load_state_dict(self, state_dict: Mapping[str, Any]) -> None:
        """Restore a `state_dict()`; everything is validated before anything changes."""
        owner = f"{type(self).__name__}.load_state_dict"
        d = _as_arrays(owner, state_dict)
        _check_keys(owner, d, self._fields)
        extra = sorted(set(d) - set(self._fields))
        if extra:
            raise op_error(
                owner,
                f"unexpected keys {extra}",
                f"expected {list(self._fields)}",
                f"pass a state dict saved by {type(self).__name__}.state_dict()",
            )
        values = {name: _to_python(d[name]) for name in self._fields}
        self._restore(owner, values)

    @abstractmethod
    def _restore(self, owner: str, values: dict[str, Any]) -> None:
        """Set the scheduler's own fields from validated saved values."""


class StepLR(LRScheduler):
    """Multiply the learning rate by `gamma` every `step_size` epochs; call `step()` once per
    epoch, after that epoch's training. lr = base_lr * gamma ** (epoch // step_size), where
    base_lr is the optimizer's lr when the scheduler was made (the closed form: an lr you
    assign by hand is overwritten at the next step)."""

    _fields = ("base_lr", "last_epoch", "step_size", "gamma", "last_lr")

    def __init__(self, optimizer: Optimizer, step_size: int, gamma: float = 0.1) -> None:
        super().__init__(optimizer)
        self.step_size, self.gamma = self._check(type(self).__name__, step_size, gamma)
        self.base_lr = optimizer.lr

    @staticmethod
    def _check(owner: str, step_size: Any, gamma: Any) -> tuple[int, float]:
        step_size = _int(
            owner, "step_size", step_size, "pass the epochs between decays, e.g. 30", low=1
        )
        gamma = _real(owner, "gamma", gamma, "pass a factor > 0, e.g. gamma=0.1", low_open=True)
        return step_size, gamma

    def step(self) -> None:
        self.last_epoch += 1
        self.optimizer.lr = self.base_lr * self.gamma ** (self.last_epoch // self.step_size)
        self.last_lr = self.optimizer.lr

    def _restore(self, owner: str, values: dict[str, Any]) -> None:
        step_size, gamma = self._check(owner, values["step_size"], values["gamma"])
        base_lr = _check_lr(owner, values["base_lr"])
        last_lr = _check_lr(owner, values["last_lr"])
        last_epoch = _int(owner, "last_epoch", values["last_epoch"], "save it again")
        self.step_size, self.gamma, self.base_lr = step_size, gamma, base_lr
        self.last_epoch, self.last_lr = last_epoch, last_lr


class ReduceLROnPlateau(LRScheduler):
    """Divide the learning rate by 1/factor when a metric stops improving (PyTorch semantics).

    Call `step(metric)` once per epoch with e.g. the validation error (mode "min") or accuracy
    (mode "max"). After more than `patience` epochs without an improvement larger than
    `threshold` (relative or absolute), lr <- max(lr * factor, min_lr), unless that changes it
    by `eps` or less; then `cooldown` epochs pass before bad epochs count again. A NaN metric
    counts as a bad epoch, as in PyTorch.
    """

    _fields = (
        "mode", "factor", "patience", "threshold", "threshold_mode", "cooldown", "min_lr", "eps",
        "best", "num_bad_epochs", "cooldown_counter", "last_epoch", "last_lr",
    )  # fmt: skip

    def __init__(
        self,
        optimizer: Optimizer,
        mode: str = "min",
        factor: float = 0.1,
        patience: int = 10,
        threshold: float = 1e-4,
        threshold_mode: str = "rel",
        cooldown: int = 0,
        min_lr: float = 0.0,
        eps: float = 1e-8,
    ) -> None:
        super().__init__(optimizer)
        settings = self._check(
            type(self).__name__,
            mode=mode,
            factor=factor,
            patience=patience,
            threshold=threshold,
            threshold_mode=threshold_mode,
            cooldown=cooldown,
            min_lr=min_lr,
            eps=eps,
        )
        self.__dict__.update(settings)
        self.best = math.inf if self.mode == "min" else -math.inf
        self.num_bad_epochs = 0
        self.cooldown_counter = 0

    @staticmethod
    def _check(owner: str, **s: Any) -> dict[str, Any]:
        return {
            "mode": _choice(owner, "mode", s["mode"], ("min", "max")),
            "factor": _real(
                owner,
                "factor",
                s["factor"],
                "pass 0 < factor < 1: the new lr is lr * factor (factor=0.1 divides it by 10)",
                low_open=True,
                high=1.0,
                high_open=True,
            ),
            "patience": _int(owner, "patience", s["patience"], "pass e.g. patience=10"),
            "threshold": _real(owner, "threshold", s["threshold"], "pass e.g. threshold=1e-4"),
            "threshold_mode": _choice(owner, "threshold_mode", s["threshold_mode"], ("rel", "abs")),
            "cooldown": _int(owner, "cooldown", s["cooldown"], "pass e.g. cooldown=0"),
            "min_lr": _real(owner, "min_lr", s["min_lr"], "pass a floor >= 0, e.g. min_lr=1e-6"),
            "eps": _real(owner, "eps", s["eps"], "pass eps >= 0, e.g. eps=1e-8"),
        }

    @property
    def in_cooldown(self) -> bool:
        return self.cooldown_counter > 0

    def is_better(self, metric: float, best: float) -> bool:
        """Whether `metric` improves on `best` by more than the threshold."""
        if self.mode == "min" and self.threshold_mode == "rel":
            return metric < best * (1.0 - self.threshold)
        if self.mode == "min":
            return metric < best - self.threshold
        if self.threshold_mode == "rel":
            return metric > best * (self.threshold + 1.0)
        return metric > best + self.threshold

    def step(self, metric: float | Tensor) -> None:
        """Record one epoch's metric (a number or a one-element Tensor); maybe reduce lr."""
        current = float(metric.item() if isinstance(metric, Tensor) else metric)
        self.last_epoch += 1
        if self.is_better(current, self.best):
            self.best = current
            self.num_bad_epochs = 0
        else:
            self.num_bad_epochs += 1
        if self.in_cooldown:
            self.cooldown_counter -= 1
            self.num_bad_epochs = 0  # bad epochs in cooldown do not count
        if self.num_bad_epochs > self.patience:
            old_lr = self.optimizer.lr
            new_lr = max(old_lr * self.factor, self.min_lr)
            if old_lr - new_lr > self.eps:
                self.optimizer.lr = new_lr
            self.cooldown_counter = self.cooldown
            self.num_bad_epochs = 0
        self.last_lr = self.optimizer.lr

    def _restore(self, owner: str, values: dict[str, Any]) -> None:
        settings = self._check(owner, **{k: values[k] for k in self._fields[:8]})
        best = values["best"]
        if not _is_real(best):
            raise op_error(owner, "best must be a number", repr(best), "save it again")
        counters = {
            name: _int(owner, name, values[name], "save it again")
            for name in ("num_bad_epochs", "cooldown_counter", "last_epoch")
        }
        last_lr = _check_lr(owner, values["last_lr"])
        self.__dict__.update(settings, best=float(best), last_lr=last_lr, **counters)
