"""Learning-rate schedulers under PyTorch's names and semantics (`torch.optim.lr_scheduler`).

Each scheduler sets `group["lr"]` of every parameter group of its optimizer: call `step()` once
per epoch (OneCycleLR: once per batch) after `optimizer.step()`. As in PyTorch, construction
takes the first step (`last_epoch` becomes 0) and records each group's starting lr as
`group["initial_lr"]` (the `base_lrs`); `get_last_lr()` is the list of the groups' lrs after the
latest step. The chainable schedulers (StepLR, MultiStepLR, ExponentialLR, CosineAnnealingLR)
compute the new lr from the current one, as PyTorch does, so an lr changed by hand between
steps carries on; `step(epoch)` uses the closed form instead. A compiled training step reads
the lr at every call, so schedules work there too (SGD's momentum and Adam's beta1, which
OneCycleLR cycles, are runtime inputs as well).

    StepLR             lr * gamma every step_size epochs
    MultiStepLR        lr * gamma at each milestone (a milestone listed k times: gamma**k)
    ExponentialLR      lr * gamma every epoch
    CosineAnnealingLR  eta_min + (base_lr - eta_min) * (1 + cos(pi * epoch / T_max)) / 2
    LambdaLR           base_lr * lr_lambda(epoch)
    ReduceLROnPlateau  lr * factor after more than `patience` epochs without improvement
    OneCycleLR         warm up to max_lr, anneal to max_lr / div_factor / final_div_factor

`state_dict()` is a flat dict of numpy arrays (np.savez-able), like the optimizers'; it holds
the scheduler only (the lrs themselves are restored by the optimizer's `load_state_dict`, as in
PyTorch). LambdaLR's functions are not saved (they are code). Older StepLR and
ReduceLROnPlateau state dicts (one lr: `base_lr`, `last_lr`, `min_lr`) still load.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import numpy as np

from ..errors import op_error
from ..tensor import Tensor
from . import (
    Optimizer,
    _as_arrays,
    _check_keys,
    _check_lr,
    _choice,
    _int,
    _is_real,
    _real,
    _to_python,
)

__all__ = [
    "CosineAnnealingLR", "ExponentialLR", "LRScheduler", "LambdaLR", "MultiStepLR",
    "OneCycleLR", "ReduceLROnPlateau", "StepLR",
]  # fmt: skip

#: state every scheduler saves besides its own settings
_COMMON = ("base_lrs", "last_epoch", "step_count", "last_lr")


def _per_group(owner: str, name: str, value: Any, groups: int) -> list[Any]:
    """A setting given once or once per group, as a list with one entry per group."""
    if isinstance(value, (list, tuple)):
        if len(value) != groups:
            raise op_error(
                owner,
                f"expected {groups} values of {name}, one per parameter group",
                f"{name}={value!r}",
                f"pass one {name}, or a list of {groups}",
            )
        return list(value)
    return [value] * groups


def _gamma(owner: str, gamma: Any) -> float:
    return _real(owner, "gamma", gamma, "pass a factor > 0, e.g. gamma=0.1", low_open=True)


class LRScheduler(ABC):
    """Base class (PyTorch's `LRScheduler`): `get_lr()` gives the groups' lrs at
    `last_epoch`; `step()` advances one epoch and sets them. Subclasses list their saved
    settings in `_settings` and validate them in `_validate`."""

    #: the subclass's settings, saved by state_dict and validated by `_validate` on load
    _settings: tuple[str, ...] = ()
    #: counters and other state besides the settings, saved as they are
    _extra_state: tuple[str, ...] = ()

    def __init__(self, optimizer: Optimizer, last_epoch: int = -1) -> None:
        owner = type(self).__name__
        if not isinstance(optimizer, Optimizer):
            raise op_error(
                owner,
                "optimizer must be a tinygrad_edu.optim Optimizer",
                type(optimizer).__name__,
                f"pass e.g. {owner}(SGD(params, lr=0.01), ...)",
            )
        if not isinstance(last_epoch, int) or last_epoch < -1:
            raise op_error(owner, "last_epoch must be an int >= -1", last_epoch, "pass -1")
        self.optimizer = optimizer
        if last_epoch == -1:
            for group in optimizer.param_groups:
                group.setdefault("initial_lr", group["lr"])
        for k, group in enumerate(optimizer.param_groups):
            if "initial_lr" not in group:
                raise KeyError(
                    f"{owner}: param_groups[{k}] has no 'initial_lr', needed to resume at "
                    f"last_epoch={last_epoch}. Fix: pass last_epoch=-1, or load the "
                    "optimizer's state_dict saved with the scheduler first"
                )
        self.base_lrs: list[float] = [g["initial_lr"] for g in optimizer.param_groups]
        self.last_epoch = last_epoch
        self._step_count = 0
        self.step()  # PyTorch's initial step: last_epoch -1 -> 0, the lrs of epoch 0

    @abstractmethod
    def get_lr(self) -> list[float]:
        """The groups' lrs at `last_epoch` (chainable: from their current lrs)."""

    def _closed_form_lr(self) -> list[float] | None:
        """The lrs at `last_epoch` from base_lrs alone (None: no closed form)."""
        return None

    def get_last_lr(self) -> list[float]:
        """Each group's lr as set by the latest `step()`."""
        return list(self._last_lr)

    def step(self, epoch: int | None = None) -> None:
        """Advance one epoch (or jump to `epoch`, with the closed form where there is one)
        and set every group's lr."""
        self._step_count += 1
        if epoch is None:
            self.last_epoch += 1
            lrs = self.get_lr()
        else:
            self.last_epoch = _int(type(self).__name__, "epoch", epoch, "pass an epoch >= 0")
            lrs = self._closed_form_lr() or self.get_lr()
        for group, lr in zip(self.optimizer.param_groups, lrs):
            group["lr"] = lr
        self._last_lr = [g["lr"] for g in self.optimizer.param_groups]

    def _lrs(self) -> list[float]:
        return [g["lr"] for g in self.optimizer.param_groups]

    # -- saving and restoring ----------------------------------------------------------------
    def state_dict(self) -> dict[str, np.ndarray]:
        """The scheduler's state as a flat dict of numpy arrays (np.savez-able)."""
        d = {
            "base_lrs": np.array(self.base_lrs, dtype=np.float64),
            "last_epoch": np.array(self.last_epoch, dtype=np.int64),
            "step_count": np.array(self._step_count, dtype=np.int64),
            "last_lr": np.array(self._last_lr, dtype=np.float64),
        }
        for name in self._settings + self._extra_state:
            d[name] = np.array(getattr(self, name))
        return d

    def _legacy(self, d: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """A state dict from before parameter groups (one lr): its keys under today's names."""
        d = dict(d)
        if "base_lr" in d and "base_lrs" not in d:
            d["base_lrs"] = d.pop("base_lr").reshape(1)
        if "last_lr" in d and d["last_lr"].ndim == 0:
            d["last_lr"] = d["last_lr"].reshape(1)
        if "base_lrs" not in d and "last_lr" in d:
            d["base_lrs"] = np.array(self.base_lrs)
        if "step_count" not in d and "last_epoch" in d:
            d["step_count"] = np.array(int(d["last_epoch"]) + 1)
        return d

    def load_state_dict(self, state_dict: Mapping[str, Any]) -> None:
        """Restore a `state_dict()`; everything is validated before anything changes."""
        owner = f"{type(self).__name__}.load_state_dict"
        d = self._legacy(_as_arrays(owner, state_dict))
        expected = (*_COMMON, *self._settings, *self._extra_state)
        _check_keys(owner, d, expected)
        extra = sorted(set(d) - set(expected))
        if extra:
            raise op_error(
                owner,
                f"unexpected keys {extra}",
                f"expected {list(expected)}",
                f"pass a state dict saved by {type(self).__name__}.state_dict()",
            )
        groups = len(self.optimizer.param_groups)
        lrs = {}
        for name in ("base_lrs", "last_lr"):
            values = d[name].reshape(-1).tolist()
            if len(values) != groups:
                raise op_error(
                    owner,
                    f"{name} has one lr per group of the optimizer it was saved with",
                    f"{len(values)} saved, this optimizer has {groups} groups",
                    "build the optimizer with the same parameter groups",
                )
            lrs[name] = [_check_lr(owner, v) for v in values]
        counters = {
            "last_epoch": _int(owner, "last_epoch", _to_python(d["last_epoch"]), "save again"),
            "_step_count": _int(owner, "step_count", _to_python(d["step_count"]), "save again"),
        }
        values = {name: _to_python(d[name]) for name in self._settings + self._extra_state}
        settings = self._validate(owner, values)
        self.__dict__.update(settings, base_lrs=lrs["base_lrs"], _last_lr=lrs["last_lr"])
        self.__dict__.update(counters)

    def _validate(self, owner: str, values: dict[str, Any]) -> dict[str, Any]:
        """The saved settings and extra state, validated (subclasses check theirs)."""
        return values


class StepLR(LRScheduler):
    """Multiply each group's lr by `gamma` every `step_size` epochs (PyTorch's StepLR):
    lr = base_lr * gamma ** (epoch // step_size) while nobody else changes it."""

    _settings = ("step_size", "gamma")

    def __init__(
        self, optimizer: Optimizer, step_size: int, gamma: float = 0.1, last_epoch: int = -1
    ) -> None:
        settings = dict(step_size=step_size, gamma=gamma)
        self.__dict__.update(self._validate(type(self).__name__, settings))
        super().__init__(optimizer, last_epoch)

    def _validate(self, owner: str, values: dict[str, Any]) -> dict[str, Any]:
        fix = "pass the epochs between decays, e.g. 30"
        return {
            "step_size": _int(owner, "step_size", values["step_size"], fix, low=1),
            "gamma": _gamma(owner, values["gamma"]),
        }

    def get_lr(self) -> list[float]:
        if self.last_epoch == 0 or self.last_epoch % self.step_size:
            return self._lrs()
        return [lr * self.gamma for lr in self._lrs()]

    def _closed_form_lr(self) -> list[float]:
        return [b * self.gamma ** (self.last_epoch // self.step_size) for b in self.base_lrs]


class MultiStepLR(LRScheduler):
    """Multiply each group's lr by `gamma` at each epoch in `milestones` (PyTorch's
    MultiStepLR; a milestone given k times multiplies by gamma**k)."""

    _settings = ("milestones", "gamma")

    def __init__(
        self,
        optimizer: Optimizer,
        milestones: Iterable[int],
        gamma: float = 0.1,
        last_epoch: int = -1,
    ) -> None:
        owner = type(self).__name__
        settings = self._validate(owner, dict(milestones=tuple(milestones), gamma=gamma))
        self.__dict__.update(settings)
        super().__init__(optimizer, last_epoch)

    def _validate(self, owner: str, values: dict[str, Any]) -> dict[str, Any]:
        milestones = values["milestones"]
        milestones = (milestones,) if isinstance(milestones, int) else tuple(milestones)
        fix = "pass epochs >= 0, e.g. milestones=[30, 80]"
        return {
            "milestones": tuple(sorted(_int(owner, "milestones", m, fix) for m in milestones)),
            "gamma": _gamma(owner, values["gamma"]),
        }

    def get_lr(self) -> list[float]:
        hits = Counter(self.milestones)[self.last_epoch]
        if not hits:
            return self._lrs()
        return [lr * self.gamma**hits for lr in self._lrs()]

    def _closed_form_lr(self) -> list[float]:
        passed = sum(1 for m in self.milestones if m <= self.last_epoch)
        return [b * self.gamma**passed for b in self.base_lrs]


class ExponentialLR(LRScheduler):
    """Multiply each group's lr by `gamma` every epoch (PyTorch's ExponentialLR)."""

    _settings = ("gamma",)

    def __init__(self, optimizer: Optimizer, gamma: float, last_epoch: int = -1) -> None:
        self.gamma = _gamma(type(self).__name__, gamma)
        super().__init__(optimizer, last_epoch)

    def _validate(self, owner: str, values: dict[str, Any]) -> dict[str, Any]:
        return {"gamma": _gamma(owner, values["gamma"])}

    def get_lr(self) -> list[float]:
        if self.last_epoch == 0:
            return self._lrs()
        return [lr * self.gamma for lr in self._lrs()]

    def _closed_form_lr(self) -> list[float]:
        return [b * self.gamma**self.last_epoch for b in self.base_lrs]


class CosineAnnealingLR(LRScheduler):
    """Cosine annealing from each base lr down to `eta_min` over `T_max` epochs, then back
    up (PyTorch's CosineAnnealingLR, the SGDR schedule without restarts):
    lr = eta_min + (base_lr - eta_min) * (1 + cos(pi * epoch / T_max)) / 2, computed as
    PyTorch does from the previous lr (chainable), so the numbers are PyTorch's."""

    _settings = ("T_max", "eta_min")

    def __init__(
        self,
        optimizer: Optimizer,
        T_max: int,  # noqa: N803 (PyTorch's name)
        eta_min: float = 0.0,
        last_epoch: int = -1,
    ) -> None:
        settings = dict(T_max=T_max, eta_min=eta_min)
        self.__dict__.update(self._validate(type(self).__name__, settings))
        super().__init__(optimizer, last_epoch)

    def _validate(self, owner: str, values: dict[str, Any]) -> dict[str, Any]:
        return {
            "T_max": _int(owner, "T_max", values["T_max"], "pass the epochs to anneal", low=1),
            "eta_min": _real(owner, "eta_min", values["eta_min"], "pass eta_min >= 0"),
        }

    def get_lr(self) -> list[float]:
        t, big_t, low = self.last_epoch, self.T_max, self.eta_min
        if t == 0:
            return self._lrs()
        if self._step_count == 1 and t > 0:  # made with last_epoch > -1: jump there
            return [
                low + (b - low) * (1 + math.cos(t * math.pi / big_t)) / 2 for b in self.base_lrs
            ]
        if (t - 1 - big_t) % (2 * big_t) == 0:  # at the bottom the ratio below is 0/0
            rise = (1 - math.cos(math.pi / big_t)) / 2
            return [lr + (b - low) * rise for lr, b in zip(self._lrs(), self.base_lrs)]
        ratio = (1 + math.cos(math.pi * t / big_t)) / (1 + math.cos(math.pi * (t - 1) / big_t))
        return [ratio * (lr - low) + low for lr in self._lrs()]

    def _closed_form_lr(self) -> list[float]:
        t, big_t, low = self.last_epoch, self.T_max, self.eta_min
        return [low + (b - low) * (1 + math.cos(math.pi * t / big_t)) / 2 for b in self.base_lrs]


class LambdaLR(LRScheduler):
    """lr = base_lr * lr_lambda(epoch), one function for every group or one per group
    (PyTorch's LambdaLR). The functions are not in the state dict."""

    def __init__(
        self,
        optimizer: Optimizer,
        lr_lambda: Callable[[int], float] | list[Callable[[int], float]],
        last_epoch: int = -1,
    ) -> None:
        owner = type(self).__name__
        groups = len(optimizer.param_groups) if isinstance(optimizer, Optimizer) else 1
        self.lr_lambdas = _per_group(owner, "lr_lambda", lr_lambda, groups)
        if not all(callable(f) for f in self.lr_lambdas):
            raise op_error(owner, "lr_lambda must be callable", lr_lambda, "pass a function")
        super().__init__(optimizer, last_epoch)

    def get_lr(self) -> list[float]:
        return [b * f(self.last_epoch) for b, f in zip(self.base_lrs, self.lr_lambdas)]


class ReduceLROnPlateau(LRScheduler):
    """Multiply each group's lr by `factor` when a metric stops improving (PyTorch's
    ReduceLROnPlateau). Call `step(metric)` once per epoch with e.g. the validation error
    (mode "min") or accuracy (mode "max"). A metric improves when it beats the best so far
    by `threshold` (threshold_mode "rel": metric < best * (1 - threshold) in mode "min";
    "abs": metric < best - threshold; mode "max" mirrors this). After more than `patience`
    epochs without improvement, lr <- max(lr * factor, min_lr) (skipped when that changes it
    by `eps` or less), then `cooldown` epochs pass before bad epochs count again. A NaN
    metric counts as a bad epoch. The AlexNet recipe: divide lr by 10 on a plateau.
    """

    _settings = (
        "mode", "factor", "patience", "threshold", "threshold_mode", "cooldown", "min_lrs",
        "eps",
    )  # fmt: skip
    _extra_state = ("best", "num_bad_epochs", "cooldown_counter")

    def __init__(
        self,
        optimizer: Optimizer,
        mode: str = "min",
        factor: float = 0.1,
        patience: int = 10,
        threshold: float = 1e-4,
        threshold_mode: str = "rel",
        cooldown: int = 0,
        min_lr: float | list[float] = 0.0,
        eps: float = 1e-8,
    ) -> None:
        owner = type(self).__name__
        groups = len(optimizer.param_groups) if isinstance(optimizer, Optimizer) else 1
        settings = self._check(
            owner,
            mode=mode,
            factor=factor,
            patience=patience,
            threshold=threshold,
            threshold_mode=threshold_mode,
            cooldown=cooldown,
            min_lrs=_per_group(owner, "min_lr", min_lr, groups),
            eps=eps,
        )
        self.__dict__.update(settings)
        self.best = math.inf if self.mode == "min" else -math.inf
        self.num_bad_epochs = 0
        self.cooldown_counter = 0
        super().__init__(optimizer)

    @staticmethod
    def _check(owner: str, **s: Any) -> dict[str, Any]:
        fix_min = "pass a floor >= 0, e.g. min_lr=1e-6"
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
            "min_lrs": [_real(owner, "min_lr", v, fix_min) for v in s["min_lrs"]],
            "eps": _real(owner, "eps", s["eps"], "pass eps >= 0, e.g. eps=1e-8"),
        }

    def get_lr(self) -> list[float]:
        return self._lrs()  # only step(metric) changes the lrs

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

    def step(self, metrics: float | Tensor | None = None, epoch: int | None = None) -> None:  # type: ignore[override]
        """Record one epoch's metric (a number or a one-element Tensor); maybe reduce lr."""
        if metrics is None:  # the construction step: nothing measured yet
            self._step_count += 1
            self.last_epoch += 1
            self._last_lr = self._lrs()
            return
        current = float(metrics.item() if isinstance(metrics, Tensor) else metrics)
        self._step_count += 1
        self.last_epoch = self.last_epoch + 1 if epoch is None else epoch
        if self.is_better(current, self.best):
            self.best = current
            self.num_bad_epochs = 0
        else:
            self.num_bad_epochs += 1
        if self.in_cooldown:
            self.cooldown_counter -= 1
            self.num_bad_epochs = 0  # bad epochs in cooldown do not count
        if self.num_bad_epochs > self.patience:
            for group, min_lr in zip(self.optimizer.param_groups, self.min_lrs):
                old_lr = float(group["lr"])
                new_lr = max(old_lr * self.factor, min_lr)
                if old_lr - new_lr > self.eps:
                    group["lr"] = new_lr
            self.cooldown_counter = self.cooldown
            self.num_bad_epochs = 0
        self._last_lr = self._lrs()

    def _legacy(self, d: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        d = super()._legacy(d)
        if "min_lr" in d and "min_lrs" not in d:
            d["min_lrs"] = np.full(len(self.optimizer.param_groups), float(d.pop("min_lr")))
        return d

    def _validate(self, owner: str, values: dict[str, Any]) -> dict[str, Any]:
        settings = {k: values[k] for k in self._settings}
        min_lrs = settings["min_lrs"]
        settings["min_lrs"] = list(min_lrs) if isinstance(min_lrs, tuple) else [min_lrs]
        checked = self._check(owner, **settings)
        if len(checked["min_lrs"]) != len(self.optimizer.param_groups):
            raise op_error(
                owner,
                "min_lrs has one floor per parameter group",
                f"{len(checked['min_lrs'])} saved, {len(self.optimizer.param_groups)} groups",
                "build the optimizer with the same parameter groups",
            )
        best = values["best"]
        if not _is_real(best):
            raise op_error(owner, "best must be a number", repr(best), "save it again")
        counters = {
            name: _int(owner, name, values[name], "save it again")
            for name in ("num_bad_epochs", "cooldown_counter")
        }
        return {**checked, "best": float(best), **counters}


class OneCycleLR(LRScheduler):
    """The 1cycle policy (Smith & Topin 2018; PyTorch's OneCycleLR): call `step()` after
    every batch. lr rises from max_lr / div_factor to max_lr over the first pct_start of
    `total_steps` (or epochs * steps_per_epoch), then anneals to initial_lr / final_div_factor
    ("cos" or "linear"); with `three_phase`, it first comes back down to initial_lr and then
    anneals. With `cycle_momentum`, SGD's momentum (Adam's beta1) moves the other way, from
    max_momentum to base_momentum and back."""

    _settings = (
        "total_steps", "pct_start", "anneal_strategy", "cycle_momentum", "three_phase",
        "use_beta1",
    )  # fmt: skip

    def __init__(
        self,
        optimizer: Optimizer,
        max_lr: float | list[float],
        total_steps: int | None = None,
        epochs: int | None = None,
        steps_per_epoch: int | None = None,
        pct_start: float = 0.3,
        anneal_strategy: str = "cos",
        cycle_momentum: bool = True,
        base_momentum: float | list[float] = 0.85,
        max_momentum: float | list[float] = 0.95,
        div_factor: float = 25.0,
        final_div_factor: float = 1e4,
        three_phase: bool = False,
        last_epoch: int = -1,
    ) -> None:
        owner = type(self).__name__
        if not isinstance(optimizer, Optimizer):
            super().__init__(optimizer)  # raises, naming the fix
        if total_steps is None:
            if epochs is None or steps_per_epoch is None:
                raise op_error(
                    owner,
                    "the schedule's length is not given",
                    f"total_steps=None, epochs={epochs}, steps_per_epoch={steps_per_epoch}",
                    "pass total_steps, or epochs and steps_per_epoch",
                )
            fix = "pass a positive int"
            total_steps = _int(owner, "epochs", epochs, fix, low=1) * _int(
                owner, "steps_per_epoch", steps_per_epoch, fix, low=1
            )
        use_beta1 = "betas" in optimizer.defaults
        if cycle_momentum and not use_beta1 and "momentum" not in optimizer.defaults:
            raise op_error(
                owner,
                "cycle_momentum needs an optimizer with momentum or betas",
                type(optimizer).__name__,
                "pass cycle_momentum=False",
            )
        settings = self._validate(
            owner,
            dict(
                total_steps=total_steps, pct_start=pct_start, anneal_strategy=anneal_strategy,
                cycle_momentum=cycle_momentum, three_phase=three_phase, use_beta1=use_beta1,
            ),
        )  # fmt: skip
        self.__dict__.update(settings)
        groups = optimizer.param_groups
        fix = "pass a positive number"
        div = _real(owner, "div_factor", div_factor, fix, low_open=True)
        final_div = _real(owner, "final_div_factor", final_div_factor, fix, low_open=True)
        if last_epoch == -1:
            for group, top in zip(groups, _per_group(owner, "max_lr", max_lr, len(groups))):
                top = _check_lr(owner, top)
                group["initial_lr"] = top / div
                group["max_lr"] = top
                group["min_lr"] = group["initial_lr"] / final_div
        if cycle_momentum and last_epoch == -1:
            lows = _per_group(owner, "base_momentum", base_momentum, len(groups))
            highs = _per_group(owner, "max_momentum", max_momentum, len(groups))
            for group, low, high in zip(groups, lows, highs):
                self._set_momentum(group, high)
                group["max_momentum"], group["base_momentum"] = high, low
        super().__init__(optimizer, last_epoch)

    def _validate(self, owner: str, values: dict[str, Any]) -> dict[str, Any]:
        pct = _real(owner, "pct_start", values["pct_start"], "pass 0 <= pct_start <= 1", high=1)
        flags = {}
        for name in ("cycle_momentum", "three_phase", "use_beta1"):
            if not isinstance(values[name], (bool, np.bool_)):
                raise op_error(owner, f"{name} must be True or False", values[name], "pass a bool")
            flags[name] = bool(values[name])
        return {
            "total_steps": _int(owner, "total_steps", values["total_steps"], "pass > 0", low=1),
            "pct_start": pct,
            "anneal_strategy": _choice(
                owner, "anneal_strategy", values["anneal_strategy"], ("cos", "linear")
            ),
            **flags,
        }

    def _set_momentum(self, group: Any, value: float) -> None:
        if self.use_beta1:
            group["betas"] = (value, *group["betas"][1:])
        else:
            group["momentum"] = value

    def _phases(self) -> list[tuple[float, str, str, str, str]]:
        """(last step, start lr key, end lr key, start momentum key, end momentum key)."""
        up = float(self.pct_start * self.total_steps) - 1
        last = self.total_steps - 1
        if self.three_phase:
            return [
                (up, "initial_lr", "max_lr", "max_momentum", "base_momentum"),
                (2 * up, "max_lr", "initial_lr", "base_momentum", "max_momentum"),
                (last, "initial_lr", "min_lr", "max_momentum", "max_momentum"),
            ]
        return [
            (up, "initial_lr", "max_lr", "max_momentum", "base_momentum"),
            (last, "max_lr", "min_lr", "base_momentum", "max_momentum"),
        ]

    def _anneal(self, start: float, end: float, pct: float) -> float:
        if self.anneal_strategy == "cos":
            return end + (start - end) / 2.0 * (math.cos(math.pi * pct) + 1)
        return (end - start) * pct + start

    def get_lr(self) -> list[float]:
        step = self.last_epoch
        if step > self.total_steps:
            raise op_error(
                type(self).__name__,
                f"stepped {step} times, past the schedule's total_steps",
                f"total_steps={self.total_steps}",
                "make total_steps (or epochs * steps_per_epoch) cover every step() call",
            )
        phases = self._phases()
        lrs = []
        for group in self.optimizer.param_groups:
            begin = 0.0
            for k, (end, lr0, lr1, m0, m1) in enumerate(phases):
                if step <= end or k == len(phases) - 1:
                    pct = (step - begin) / (end - begin)
                    lrs.append(self._anneal(group[lr0], group[lr1], pct))
                    if self.cycle_momentum:
                        self._set_momentum(group, self._anneal(group[m0], group[m1], pct))
                    break
                begin = end
        return lrs
