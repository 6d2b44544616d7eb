"""Optimizers (SGD, Adam, AdamW) with PyTorch's parameter groups; learning-rate schedulers
live in `optim.lr_scheduler` (StepLR and ReduceLROnPlateau are also importable from here).

Every update works on the raw arrays: it reads `p.grad.data` and writes `p.data` in place, in
the parameter's own dtype, so no autograd graph is recorded and arrays held elsewhere (views,
the model's references) stay valid. A parameter whose `.grad` is None is skipped, as in
PyTorch. Below, w is a parameter, g its gradient, lr the learning rate, wd the weight decay,
t the number of updates this parameter has had (1 on its first).

Each rule is written once, as `update(w, g, state, scalars, group)` in DSL ops (see `Optimizer`): an
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

Parameter groups (PyTorch's): `SGD([{"params": backbone}, {"params": head, "lr": 0.1}],
lr=0.01, momentum=0.9)` gives each group its own settings, the constructor's arguments filling
in the rest; `opt.param_groups[k]["lr"] = x` takes effect at the next step, eager or compiled
(the lr is a runtime input of a compiled step, never baked in).

`state_dict()` of every optimizer and scheduler is a flat `dict[str, np.ndarray]` (scalars as
0-d arrays, strings as 0-d unicode arrays), so `np.savez(path, **opt.state_dict())` saves it and
`opt.load_state_dict(np.load(path))` restores it exactly. Optimizer keys: `lr`, `step_count`,
`num_params`, group 0's hyperparameters, `group_sizes`, the other groups' settings as
`param_groups.<k>.<name>`, and per-parameter state `<name>.<index>` (index into `params`, every
group's parameters in order), e.g. `momentum_buffer.0`, `velocity.2`, `exp_avg.3`, `step.3`.
"""

from __future__ import annotations

import math
import numbers
import re
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import numpy as np

from ..autograd import enable_grad, no_grad, note_write
from ..errors import op_error
from ..tensor import Tensor

__all__ = [
    "SGD", "Adam", "AdamW", "LRScheduler", "Optimizer", "ParamGroup", "ReduceLROnPlateau",
    "StepLR", "lr_scheduler",
]  # fmt: skip

_CHUNK = 1 << 15  # elements per chunk of an eager elementwise update (temporaries fit in L2)
_STATE_KEY = re.compile(r"^([A-Za-z_]+)\.(\d+)$")
_GROUP_KEY = re.compile(r"^param_groups\.(\d+)\.(.+)$")


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


def _split_groups(params: Any, owner: str) -> list[dict[str, Any]]:
    """`params` as a list of group dicts: an iterable of Tensors is one group; an iterable of
    dicts (each with "params") is one group per dict, as in PyTorch."""
    if isinstance(params, (Tensor, Mapping)):
        _param_list(params, owner)  # raises, naming the fix
    try:
        items = list(params)
    except TypeError:
        items = params  # _param_list names the problem
    if isinstance(items, list) and items and all(isinstance(g, Mapping) for g in items):
        return [dict(g) for g in items]
    if isinstance(items, list) and any(isinstance(g, Mapping) for g in items):
        raise op_error(
            owner,
            "params mixes Tensors and parameter-group dicts",
            [type(g).__name__ for g in items],
            f'pass either Tensors or dicts: {owner}([{{"params": [w]}}, {{"params": [b]}}], ...)',
        )
    return [{"params": items}]


class ParamGroup(dict):
    """One parameter group: "params" (a list of Tensors) and its settings ("lr",
    "momentum", ...), a dict as in PyTorch. Assigning a setting the optimizer knows is
    validated at once (`opt.param_groups[0]["lr"] = -1` raises on that line); other keys
    (a scheduler's "initial_lr", say) are kept as given."""

    def __init__(self, optimizer: Optimizer, values: Mapping[str, Any]) -> None:
        super().__init__(values)
        self._optimizer = optimizer

    def __setitem__(self, key: str, value: Any) -> None:
        opt = self._optimizer
        if key == "params":
            raise op_error(
                f"{opt._name}.param_groups",
                "a group's params cannot be replaced",
                f"{len(self['params'])} params",
                "make a new optimizer, or add_param_group for new parameters",
            )
        if key in opt.defaults:
            value = opt._check_group({**self, key: value})[key]
        super().__setitem__(key, value)


# -- optimizers --------------------------------------------------------------------------------
class Optimizer(ABC):
    """Base class: parameter groups, per-parameter state, and the update rule.

    `param_groups` is PyTorch's list of dicts: each has "params" and every setting (lr and
    the subclass's hyperparameters, defaults filled in from the constructor's arguments);
    construct from a list of dicts for per-group settings, `add_param_group` adds one later.
    `params` is every parameter of every group, in order, and `state[i]` holds params[i]'s
    state. `opt.lr` reads group 0's lr and assigning it sets every group's (so do `opt.momentum`
    and the other settings): the one-group shorthand schedulers and old code use.

    A subclass describes its rule once, and both eager `step()` and a compiled training step
    (`compiler.compile_train_step`) run that description:

    - `update(w, g, state, scalars, group)`: one parameter's new value and new state arrays,
      in DSL ops (Tensors). Eagerly it runs on the arrays themselves and the results are
      written back in place; compiled, it is traced into the step's graph.
    - `prepare(state, w, group)`: host-side work before each update of one parameter: create
      missing state arrays (zeros), advance counters (Adam's `step`), and return the per-step
      numbers the update reads (`scalars`: the group's learning rate, SGD's momentum, Adam's
      bias corrections). Compiled, they are runtime inputs, so schedulers and step counts
      keep working.
    - `state_arrays(group)`: the names of the arrays `update` reads and returns.
    - `_check_hyper(settings)`: validates a group's hyperparameters (all before any is set).
    """

    #: names of per-parameter state arrays shaped like the parameter
    _state_arrays: tuple[str, ...] = ()
    #: names of per-parameter scalar state (ints)
    _state_scalars: tuple[str, ...] = ()
    #: hyperparameters besides lr, per group, saved and restored by the state dict
    _hyperparams: tuple[str, ...] = ()
    #: settings saved by the state dict that must match on load (they change the state's form)
    _fixed: tuple[str, ...] = ()
    #: whether `update` is elementwise (each element's new values depend on that element
    #: only), so eager steps may run it over chunks of a parameter
    _elementwise: bool = True

    def __init__(self, params: Iterable[Any], defaults: Mapping[str, Any]) -> None:
        self.defaults: dict[str, Any] = dict(defaults)
        self.param_groups: list[ParamGroup] = []
        self.params: list[Tensor] = []
        self.state: list[dict[str, Any]] = []
        self._group_of: list[int] = []  # params[i] is in param_groups[_group_of[i]]
        self.step_count = 0
        self._check_group(self.defaults)  # bad defaults fail even when every group sets its own
        for group in _split_groups(params, self._name):
            self.add_param_group(group)

    @property
    def _name(self) -> str:
        return type(self).__name__

    def _check_group(self, group: Mapping[str, Any]) -> dict[str, Any]:
        """The group's lr and hyperparameters, validated (a ValueError names the bad one)."""
        return {"lr": _check_lr(self._name, group["lr"]), **self._check_hyper(group)}

    @abstractmethod
    def _check_hyper(self, group: Mapping[str, Any]) -> dict[str, Any]:
        """Validate the rule's hyperparameters in `group`; return them normalised."""

    def add_param_group(self, param_group: Mapping[str, Any]) -> None:
        """Add a group: a dict with "params" (Tensors) and any settings; the rest come from
        the constructor's defaults (PyTorch's `add_param_group`, e.g. to unfreeze layers)."""
        if not isinstance(param_group, Mapping) or "params" not in param_group:
            raise op_error(
                self._name,
                'a parameter group must be a dict with a "params" entry',
                type(param_group).__name__,
                'pass e.g. {"params": model.fc.parameters(), "lr": 0.01}',
            )
        params = param_group["params"]
        params = _param_list([params] if isinstance(params, Tensor) else params, self._name)
        known = {id(p) for p in self.params}
        if any(id(p) in known for p in params):
            raise op_error(
                self._name,
                "some parameters appear in more than one parameter group",
                f"group {len(self.param_groups)}",
                "put each parameter in one group only",
            )
        group = {**self.defaults, **param_group}
        group.update(self._check_group(group), params=params)
        self.param_groups.append(ParamGroup(self, group))
        self._group_of += [len(self.param_groups) - 1] * len(params)
        self.params += params
        self.state += [{} for _ in params]

    def group_of(self, i: int) -> ParamGroup:
        """The parameter group params[i] belongs to."""
        return self.param_groups[self._group_of[i]]

    # the one-group shorthands: opt.lr, opt.momentum, ... read group 0 and set every group
    @property
    def lr(self) -> float:
        """Group 0's learning rate; assigning sets every group's (schedulers may assign it)."""
        return self.param_groups[0]["lr"]

    @lr.setter
    def lr(self, value: float) -> None:
        value = _check_lr(self._name, value)
        for group in self.param_groups:
            group["lr"] = value

    def __getattr__(self, name: str) -> Any:
        if name in type(self)._hyperparams and self.__dict__.get("param_groups"):
            return self.param_groups[0][name]
        raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")

    def __setattr__(self, name: str, value: Any) -> None:
        if name in type(self)._hyperparams and "param_groups" in self.__dict__:
            checked = [self._check_group({**g, name: value})[name] for g in self.param_groups]
            for group, v in zip(self.param_groups, checked):
                group[name] = v
        else:
            object.__setattr__(self, name, value)

    def zero_grad(self, set_to_none: bool = True) -> None:
        """Forget the gradients (`p.grad = None`), so the next backward starts afresh."""
        for p in self.params:
            if set_to_none or p.grad is None:
                p.grad = None
            else:
                p.grad = Tensor._make(np.zeros_like(p.grad.data))

    def step(self, closure: Callable[[], Any] | None = None) -> Any:
        """Update every parameter that has a gradient; those with `grad` None are skipped.
        `closure` (PyTorch's) re-evaluates the loss first; its value is returned.

        All gradients are checked before any parameter changes, so a bad one leaves the
        parameters as they were."""
        loss = None
        if closure is not None:
            with enable_grad():
                loss = closure()
        grads = [
            None if p.grad is None else self._grad_array(i, p) for i, p in enumerate(self.params)
        ]
        with no_grad():
            for i, (state, p, g) in enumerate(zip(self.state, self.params, grads)):
                if g is not None:
                    self._apply(state, p.data, g, self.group_of(i))
                    note_write(p.data)
        self.step_count += 1
        return loss

    def _apply(
        self, state: dict[str, Any], w: np.ndarray, g: np.ndarray, group: Mapping[str, Any]
    ) -> None:
        """The rule on one parameter's arrays: `update` run eagerly, results written in place
        (so arrays held elsewhere, like the model's, stay valid). An elementwise rule runs
        over cache-sized chunks of a large parameter: its temporaries stay in cache instead
        of being fresh arrays the parameter's size (about 2x faster on 16M-element weights)."""
        scalars = {
            name: Tensor._make(np.array(v, dtype=w.dtype))
            for name, v in self.prepare(state, w, group).items()
        }
        names = self.state_arrays(group)
        arrays = [w, *(state[name] for name in names)]
        if self._elementwise and w.size > _CHUNK and all(a.flags.c_contiguous for a in arrays):
            flat_w, flat_g = w.reshape(-1), g.reshape(-1)
            flat_state = [state[name].reshape(-1) for name in names]
            for start in range(0, w.size, _CHUNK):
                part = slice(start, start + _CHUNK)
                self._apply_part(
                    flat_w[part], flat_g[part], names, [a[part] for a in flat_state], scalars, group
                )
        else:
            self._apply_part(w, g, names, [state[name] for name in names], scalars, group)

    def _apply_part(
        self,
        w: np.ndarray,
        g: np.ndarray,
        names: tuple[str, ...],
        state: list[np.ndarray],
        scalars: dict[str, Tensor],
        group: Mapping[str, Any],
    ) -> None:
        new_w, new_state = self.update(
            Tensor._make(w),
            Tensor._make(g),
            {name: Tensor._make(a) for name, a in zip(names, state)},
            scalars,
            group,
        )
        w[...] = new_w.data
        for name, a in zip(names, state):
            a[...] = new_state[name].data

    def state_arrays(self, group: Mapping[str, Any] | None = None) -> tuple[str, ...]:
        """Names of the per-parameter state arrays `update` reads and returns, with the
        group's hyperparameters (group None: group 0; SGD without momentum has none)."""
        return self._state_arrays

    def prepare(
        self, state: dict[str, Any], w: np.ndarray, group: Mapping[str, Any] | None = None
    ) -> dict[str, float]:
        """Before one parameter's update: create its missing state arrays (zeros like w) and
        return the numbers the update reads besides w, g and the state (the group's learning
        rate here; group None: group 0). Subclasses that count steps advance them here."""
        group = self.param_groups[0] if group is None else group
        for name in self.state_arrays(group):
            if name not in state:
                state[name] = np.zeros_like(w)
        return {"lr": group["lr"]}

    @abstractmethod
    def update(
        self,
        w: Tensor,
        g: Tensor,
        state: dict[str, Tensor],
        scalars: dict[str, Tensor],
        group: Mapping[str, Any],
    ) -> tuple[Tensor, dict[str, Tensor]]:
        """One parameter's rule in DSL ops: (new w, new state arrays by name), given w, its
        gradient g, its state arrays, the numbers `prepare` returned (0-d, w's dtype) and its
        group's settings."""

    def compiled_settings(self, group: Mapping[str, Any]) -> dict[str, Any]:
        """The settings a compiled step fixes for `group` (all but the runtime scalars)."""
        return {name: group[name] for name in self._hyperparams}

    def hyperparameters(self) -> list[dict[str, Any]]:
        """Per group, the settings a compiled step fixes (changing one means compiling
        again); lr and the other `prepare` scalars are not among them."""
        fixed = {name: getattr(self, name) for name in self._fixed}
        return [{**fixed, **self.compiled_settings(g)} for g in self.param_groups]

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

    # -- saving and restoring ----------------------------------------------------------------
    def _settings(self) -> tuple[str, ...]:
        return ("lr", *self._hyperparams)

    def state_dict(self) -> dict[str, np.ndarray]:
        """A flat dict of numpy arrays (copies), ready for `np.savez(path, **d)`.

        Group 0's settings are top-level keys (`lr`, `momentum`, ...); `group_sizes` gives
        each group's parameter count; other groups' settings, and any extra numeric keys of
        a group (a scheduler's `initial_lr`), are `param_groups.K.NAME`."""
        group0 = self.param_groups[0]
        d: dict[str, np.ndarray] = {
            "lr": np.array(group0["lr"], dtype=np.float64),
            "step_count": np.array(self.step_count, dtype=np.int64),
            "num_params": np.array(len(self.params), dtype=np.int64),
            "group_sizes": np.array([len(g["params"]) for g in self.param_groups], np.int64),
        }
        for name in self._fixed:
            d[name] = np.array(getattr(self, name))
        for name in self._hyperparams:
            d[name] = np.array(group0[name])
        for k, group in enumerate(self.param_groups):
            for name, value in group.items():
                core = name in self._settings()
                if name == "params" or (k == 0 and core):
                    continue
                if core or _is_real(value) or _is_real_tuple(value):
                    d[f"param_groups.{k}.{name}"] = np.array(value)
        for i, state in enumerate(self.state):
            for name in self._state_arrays:
                if name in state:
                    d[f"{name}.{i}"] = np.array(state[name], copy=True)
            for name in self._state_scalars:
                if name in state:
                    d[f"{name}.{i}"] = np.array(state[name], dtype=np.int64)
        return d

    def load_state_dict(self, state_dict: Mapping[str, Any]) -> None:
        """Restore a `state_dict()` (or `np.load` of a saved one) exactly: every group's
        settings, the step count and per-parameter state. Everything is validated before
        anything changes, so a failed load leaves the optimizer as it was. A state saved
        before parameter groups existed (no `group_sizes`) loads into a one-group optimizer."""
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
        sizes = [len(g["params"]) for g in self.param_groups]
        saved_sizes = d["group_sizes"].tolist() if "group_sizes" in d else [len(self.params)]
        if saved_sizes != sizes:
            raise op_error(
                owner,
                "the state was saved with different parameter groups",
                f"saved group sizes {saved_sizes}, this optimizer has {sizes}",
                "build the optimizer with the same groups, in the same order",
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
        groups = self._parse_groups(owner, d)
        new_state = self._parse_param_state(owner, d)
        step_count = _int(owner, "step_count", _to_python(d["step_count"]), "save it again")
        for group, values in zip(self.param_groups, groups):
            dict.update(group, values)
        self.step_count, self.state = step_count, new_state

    def _parse_groups(self, owner: str, d: dict[str, np.ndarray]) -> list[dict[str, Any]]:
        """Each group's saved settings, validated (group 0's are the top-level keys)."""
        groups: list[dict[str, Any]] = [
            {name: _to_python(d[name]) for name in self._settings()}
        ] + [{} for _ in self.param_groups[1:]]
        for key, value in d.items():
            match = _GROUP_KEY.match(key)
            if match is None:
                continue
            k, name = int(match.group(1)), match.group(2)
            if k >= len(groups):
                raise op_error(
                    owner, f"key {key!r} names group {k}", f"{len(groups)} groups", "save again"
                )
            groups[k][name] = _to_python(value)
        for k, values in enumerate(groups):
            missing = [n for n in self._settings() if n not in values]
            if missing:
                raise op_error(
                    owner,
                    f"group {k} is missing settings {missing}",
                    f"has {sorted(values)}",
                    f"pass a state dict saved by {self._name}.state_dict()",
                )
            values.update(self._check_group(values))
        return groups

    def _parse_param_state(self, owner: str, d: dict[str, np.ndarray]) -> list[dict[str, Any]]:
        top = {"lr", "step_count", "num_params", "group_sizes", *self._fixed, *self._hyperparams}
        names = self._state_arrays + self._state_scalars
        new_state: list[dict[str, Any]] = [{} for _ in self.params]
        for key, value in d.items():
            if key in top or _GROUP_KEY.match(key):
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
        def settings(group: Mapping[str, Any]) -> str:
            return ", ".join(f"{n}={group[n]!r}" for n in self._settings())

        fixed = "".join(f", {n}={getattr(self, n)!r}" for n in self._fixed)
        if len(self.param_groups) == 1:
            return (
                f"{self._name}({len(self.params)} params, {settings(self.param_groups[0])}{fixed})"
            )
        groups = "; ".join(
            f"group {k}: {len(g['params'])} params, {settings(g)}"
            for k, g in enumerate(self.param_groups)
        )
        return f"{self._name}({groups}{fixed})"


def _is_real_tuple(value: Any) -> bool:
    return isinstance(value, tuple) and bool(value) and all(_is_real(v) for v in value)


class SGD(Optimizer):
    """Stochastic gradient descent with optional momentum, weight decay and Nesterov.

    `rule="pytorch"` (default) is exactly `torch.optim.SGD` (same arguments, same order);
    `rule="alexnet"` is the AlexNet paper's velocity form, identical to PyTorch's while lr
    is constant (see the module docstring). Paper settings: `SGD(params, lr=0.01,
    momentum=0.9, weight_decay=5e-4, rule="alexnet")`. lr and a nonzero momentum are runtime
    numbers of a compiled step (a scheduler may change them); whether momentum is zero,
    dampening, weight decay and nesterov are compiled in.
    """

    _hyperparams = ("momentum", "dampening", "weight_decay", "nesterov")
    _fixed = ("rule",)

    def __init__(
        self,
        params: Iterable[Any],
        lr: float = 1e-3,
        momentum: float = 0.0,
        dampening: float = 0.0,
        weight_decay: float = 0.0,
        nesterov: bool = False,
        *,
        rule: str = "pytorch",
    ) -> None:
        self.rule = _choice(type(self).__name__, "rule", rule, ("pytorch", "alexnet"))
        self._state_arrays = ("velocity",) if self.rule == "alexnet" else ("momentum_buffer",)
        defaults = dict(
            lr=lr, momentum=momentum, dampening=dampening, weight_decay=weight_decay,
            nesterov=nesterov,
        )  # fmt: skip
        super().__init__(params, defaults)

    def _check_hyper(self, hyper: Mapping[str, Any]) -> dict[str, Any]:
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
        return dict(
            momentum=momentum, dampening=dampening, weight_decay=weight_decay, nesterov=nesterov
        )

    def state_arrays(self, group: Mapping[str, Any] | None = None) -> tuple[str, ...]:
        group = self.param_groups[0] if group is None else group
        return self._state_arrays if group["momentum"] else ()

    def compiled_settings(self, group: Mapping[str, Any]) -> dict[str, Any]:
        settings = super().compiled_settings(group)
        settings["momentum"] = bool(group["momentum"])  # its value is a runtime scalar
        return settings

    def prepare(
        self, state: dict[str, Any], w: np.ndarray, group: Mapping[str, Any] | None = None
    ) -> dict[str, float]:
        group = self.param_groups[0] if group is None else group
        scalars = {"lr": group["lr"]}
        if group["momentum"]:
            scalars["momentum"] = group["momentum"]
        if group["dampening"] and self.rule == "pytorch":
            # PyTorch's buffer starts as g itself: undamped on a parameter's first step
            first = "momentum_buffer" not in state
            scalars["grad_scale"] = 1.0 if first else 1.0 - group["dampening"]
        super().prepare(state, w, group)
        return scalars

    def update(
        self,
        w: Tensor,
        g: Tensor,
        state: dict[str, Tensor],
        scalars: dict[str, Tensor],
        group: Mapping[str, Any],
    ) -> tuple[Tensor, dict[str, Tensor]]:
        lr = scalars["lr"]
        if group["weight_decay"] != 0:
            g = w * group["weight_decay"] + g
        if not group["momentum"]:
            return w - g * lr, {}
        momentum = scalars["momentum"]
        if self.rule == "alexnet":
            v = state["velocity"] * momentum - g * lr  # v = momentum*v - wd*lr*w - lr*dL/dw
            return w + v, {"velocity": v}
        # the buffer starts at zero: momentum * 0 + g is PyTorch's first buffer, g
        damped = g * scalars["grad_scale"] if group["dampening"] else g
        buf = state["momentum_buffer"] * momentum + damped
        direction = buf * momentum + g if group["nesterov"] else buf
        return w - direction * lr, {"momentum_buffer": buf}


class _AdamBase(Optimizer):
    """What Adam and AdamW share: the two moment estimates with bias correction. They differ
    only in `_decay` (and the weight_decay default); neither is a subclass of the other, so
    `isinstance(opt, Adam)` never mistakes AdamW's decoupled decay for Adam's L2 decay.
    lr and beta1 are runtime numbers of a compiled step (OneCycleLR cycles beta1); beta2,
    eps and weight decay are compiled in."""

    _state_arrays = ("exp_avg", "exp_avg_sq")
    _state_scalars = ("step",)
    _hyperparams = ("betas", "eps", "weight_decay")

    def __init__(
        self,
        params: Iterable[Any],
        lr: float,
        betas: tuple[float, float],
        eps: float,
        weight_decay: float,
    ) -> None:
        super().__init__(params, dict(lr=lr, betas=betas, eps=eps, weight_decay=weight_decay))

    def _check_hyper(self, hyper: Mapping[str, Any]) -> dict[str, Any]:
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
        return dict(betas=(beta1, beta2), eps=eps, weight_decay=weight_decay)

    def compiled_settings(self, group: Mapping[str, Any]) -> dict[str, Any]:
        return {
            "beta2": group["betas"][1],
            "eps": group["eps"],
            "weight_decay": group["weight_decay"],
        }

    def prepare(
        self, state: dict[str, Any], w: np.ndarray, group: Mapping[str, Any] | None = None
    ) -> dict[str, float]:
        group = self.param_groups[0] if group is None else group
        if "step" not in state:
            state["step"] = 0
        super().prepare(state, w, group)
        state["step"] += 1
        t = state["step"]
        beta1, beta2 = group["betas"]
        scalars = {
            "step_size": group["lr"] / (1 - beta1**t),
            "bias_correction2_sqrt": math.sqrt(1 - beta2**t),
            "one_minus_beta1": 1 - beta1,
        }
        scalars.update(self._decay_scalars(group))
        return scalars

    def update(
        self,
        w: Tensor,
        g: Tensor,
        state: dict[str, Tensor],
        scalars: dict[str, Tensor],
        group: Mapping[str, Any],
    ) -> tuple[Tensor, dict[str, Tensor]]:
        beta2 = group["betas"][1]
        w, g = self._decay(w, g, scalars, group)
        m = state["exp_avg"] + (g - state["exp_avg"]) * scalars["one_minus_beta1"]  # a lerp
        s = state["exp_avg_sq"] * beta2 + g * (1 - beta2) * g
        denom = s.sqrt() / scalars["bias_correction2_sqrt"] + group["eps"]
        return w - (m / denom) * scalars["step_size"], {"exp_avg": m, "exp_avg_sq": s}

    def _decay_scalars(self, group: Mapping[str, Any]) -> dict[str, float]:
        """Runtime scalars the weight decay needs (they change with the learning rate)."""
        return {}

    @abstractmethod
    def _decay(
        self, w: Tensor, g: Tensor, scalars: dict[str, Tensor], group: Mapping[str, Any]
    ) -> tuple[Tensor, Tensor]:
        """Apply weight decay before the moments: (the weights the step starts from, the
        gradient the moments see)."""


class Adam(_AdamBase):
    """Adam (Kingma & Ba 2015), exactly `torch.optim.Adam` with L2 weight decay added to the
    gradient (not AdamW's decoupled decay) and a bias correction per parameter."""

    def __init__(
        self,
        params: Iterable[Any],
        lr: float = 1e-3,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float = 0.0,
    ) -> None:
        super().__init__(params, lr, betas, eps, weight_decay)

    def _decay(
        self, w: Tensor, g: Tensor, scalars: dict[str, Tensor], group: Mapping[str, Any]
    ) -> tuple[Tensor, Tensor]:
        wd = group["weight_decay"]
        return w, (g + w * wd if wd != 0 else g)


class AdamW(_AdamBase):
    """AdamW (Loshchilov & Hutter 2019), exactly `torch.optim.AdamW` with amsgrad=False
    (amsgrad is not implemented): weight decay is decoupled, `w <- w * (1 - lr * wd)` before
    the Adam step on the undecayed gradient. PyTorch's defaults, weight_decay=1e-2 included.
    Same hyperparameters and state-dict keys as `Adam` (`exp_avg.i`, `exp_avg_sq.i`,
    `step.i`)."""

    def __init__(
        self,
        params: Iterable[Any],
        lr: float = 1e-3,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float = 1e-2,
    ) -> None:
        super().__init__(params, lr, betas, eps, weight_decay)

    def _decay_scalars(self, group: Mapping[str, Any]) -> dict[str, float]:
        wd = group["weight_decay"]
        return {"decay": 1 - group["lr"] * wd} if wd != 0 else {}

    def _decay(
        self, w: Tensor, g: Tensor, scalars: dict[str, Tensor], group: Mapping[str, Any]
    ) -> tuple[Tensor, Tensor]:
        return (w * scalars["decay"] if group["weight_decay"] != 0 else w), g


# the schedulers build on Optimizer, so they are imported after it
from . import lr_scheduler  # noqa: E402
from .lr_scheduler import LRScheduler, ReduceLROnPlateau, StepLR  # noqa: E402
