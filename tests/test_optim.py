"""Optimizers and schedulers: parity with torch.optim, the AlexNet rule, state dicts, errors,
and convergence on a quadratic. Parity tests skip without torch; the rest run anywhere."""

from __future__ import annotations

import io
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from tinygrad_edu import Tensor
from tinygrad_edu.optim import SGD, Adam, AdamW, Optimizer, ReduceLROnPlateau, StepLR

SHAPES = [(3, 4), (5,), (), (2, 1, 3)]
RTOL, ATOL = 1e-10, 1e-12


@pytest.fixture(scope="module")
def torch() -> Any:
    """torch, or a skip (module scope, so hypothesis tests may use it)."""
    return pytest.importorskip("torch")


def make_params(seed: int, dtype: Any = np.float64) -> list[Tensor]:
    rng = np.random.default_rng(seed)
    return [Tensor(rng.standard_normal(s), requires_grad=True, dtype=dtype) for s in SHAPES]


def grad_script(seed: int, steps: int) -> list[list[np.ndarray | None]]:
    """Random gradients per step and parameter; params[1] has no gradient on step 1."""
    rng = np.random.default_rng(seed + 1)
    script: list[list[np.ndarray | None]] = []
    for k in range(steps):
        script.append([None if (k == 1 and i == 1) else rng.standard_normal(s)
                       for i, s in enumerate(SHAPES)])  # fmt: skip
    return script


def assign_grads(params: list[Tensor], grads: list[np.ndarray | None]) -> None:
    for p, g in zip(params, grads):
        p.grad = None if g is None else Tensor(g, dtype=np.float64)


def run_parity(
    torch: Any,
    make_ours: Callable[[list[Tensor]], Optimizer],
    make_theirs: Callable[[list[Any]], Any],
    seed: int,
    steps: int = 6,
) -> None:
    ours = make_params(seed)
    theirs = [torch.tensor(p.data.copy(), requires_grad=True) for p in ours]
    opt, topt = make_ours(ours), make_theirs(theirs)
    for grads in grad_script(seed, steps):
        assign_grads(ours, grads)
        for tp, g in zip(theirs, grads):
            tp.grad = None if g is None else torch.tensor(g)
        opt.step()
        topt.step()
        for p, tp in zip(ours, theirs):
            np.testing.assert_allclose(p.data, tp.detach().numpy(), rtol=RTOL, atol=ATOL)


# -- parity with torch.optim -------------------------------------------------------------------
SGD_CASES = [
    dict(lr=0.1),
    dict(lr=0.05, momentum=0.9),
    dict(lr=0.05, weight_decay=0.01),
    dict(lr=0.05, momentum=0.9, weight_decay=5e-4),
    dict(lr=0.05, momentum=0.9, nesterov=True),
    dict(lr=0.05, momentum=0.8, nesterov=True, weight_decay=0.1),
    dict(lr=0.05, momentum=0.9, dampening=0.5),
    dict(lr=0.05, momentum=0.7, dampening=0.3, weight_decay=0.02),
]


@pytest.mark.parametrize("kwargs", SGD_CASES, ids=str)
def test_sgd_matches_torch(torch: Any, kwargs: dict[str, Any]) -> None:
    run_parity(torch, lambda ps: SGD(ps, **kwargs), lambda ps: torch.optim.SGD(ps, **kwargs), 0)


@given(
    lr=st.floats(0.0, 1.0),
    momentum=st.floats(0.0, 0.99),
    weight_decay=st.floats(0.0, 0.5),
    dampening=st.floats(0.0, 1.0),
    nesterov=st.booleans(),
    seed=st.integers(0, 2**16),
)
def test_sgd_matches_torch_random_hyperparameters(
    torch: Any,
    lr: float,
    momentum: float,
    weight_decay: float,
    dampening: float,
    nesterov: bool,
    seed: int,
) -> None:
    if nesterov:
        momentum, dampening = max(momentum, 0.1), 0.0
    kw = dict(lr=lr, momentum=momentum, weight_decay=weight_decay, dampening=dampening,
              nesterov=nesterov)  # fmt: skip
    run_parity(torch, lambda ps: SGD(ps, **kw), lambda ps: torch.optim.SGD(ps, **kw), seed)


@pytest.mark.parametrize(
    "kwargs",
    [dict(), dict(lr=0.01, weight_decay=0.1), dict(lr=0.1, betas=(0.5, 0.9), eps=1e-3)],
    ids=str,
)
def test_adam_matches_torch(torch: Any, kwargs: dict[str, Any]) -> None:
    run_parity(
        torch, lambda ps: Adam(ps, **kwargs), lambda ps: torch.optim.Adam(ps, **kwargs), 1, 8
    )


@given(
    lr=st.floats(1e-4, 0.5),
    beta1=st.floats(0.0, 0.99),
    beta2=st.floats(0.5, 0.9999),
    eps=st.floats(1e-10, 1e-2),
    weight_decay=st.floats(0.0, 0.5),
    seed=st.integers(0, 2**16),
)
def test_adam_matches_torch_random_hyperparameters(
    torch: Any, lr: float, beta1: float, beta2: float, eps: float, weight_decay: float, seed: int
) -> None:
    kw = dict(lr=lr, betas=(beta1, beta2), eps=eps, weight_decay=weight_decay)
    run_parity(torch, lambda ps: Adam(ps, **kw), lambda ps: torch.optim.Adam(ps, **kw), seed)


@pytest.mark.parametrize(
    "kwargs",
    [
        dict(),
        dict(lr=0.01, weight_decay=0.1),
        dict(lr=0.1, betas=(0.5, 0.9), eps=1e-3, weight_decay=0.0),
        dict(lr=0.3, weight_decay=0.5),
    ],
    ids=str,
)
def test_adamw_matches_torch(torch: Any, kwargs: dict[str, Any]) -> None:
    run_parity(
        torch, lambda ps: AdamW(ps, **kwargs), lambda ps: torch.optim.AdamW(ps, **kwargs), 3, 8
    )


@given(
    lr=st.floats(1e-4, 0.5),
    beta1=st.floats(0.0, 0.99),
    beta2=st.floats(0.5, 0.9999),
    eps=st.floats(1e-10, 1e-2),
    weight_decay=st.floats(0.0, 0.5),
    seed=st.integers(0, 2**16),
)
def test_adamw_matches_torch_random_hyperparameters(
    torch: Any, lr: float, beta1: float, beta2: float, eps: float, weight_decay: float, seed: int
) -> None:
    kw = dict(lr=lr, betas=(beta1, beta2), eps=eps, weight_decay=weight_decay)
    run_parity(torch, lambda ps: AdamW(ps, **kw), lambda ps: torch.optim.AdamW(ps, **kw), seed)


def test_adamw_defaults_are_pytorchs_and_it_is_not_an_adam() -> None:
    opt = AdamW(make_params(0))
    assert (opt.lr, opt.betas, opt.eps, opt.weight_decay) == (1e-3, (0.9, 0.999), 1e-8, 1e-2)
    assert not isinstance(opt, Adam)  # code dispatching on Adam must not apply L2 decay to it


def test_adamw_decay_is_decoupled_from_the_gradient() -> None:
    # With a zero gradient Adam's moments stay zero, so the only change is the decay itself:
    # w <- w * (1 - lr * wd) exactly (Adam's L2 decay would instead move w by ~lr).
    w = Tensor(np.array([2.0, -4.0]), requires_grad=True, dtype=np.float64)
    opt = AdamW([w], lr=0.1, weight_decay=0.5)
    w.grad = Tensor(np.zeros(2), dtype=np.float64)
    opt.step()
    np.testing.assert_allclose(w.data, [2.0 * 0.95, -4.0 * 0.95], rtol=0, atol=1e-15)


def test_sgd_with_lr_changed_between_steps_matches_torch(torch: Any) -> None:
    ours = make_params(3)
    theirs = [torch.tensor(p.data.copy(), requires_grad=True) for p in ours]
    opt = SGD(ours, lr=0.1, momentum=0.9, weight_decay=5e-4)
    topt = torch.optim.SGD(theirs, lr=0.1, momentum=0.9, weight_decay=5e-4)
    for k, grads in enumerate(grad_script(3, 8)):
        if k == 4:
            opt.lr = 0.01
            topt.param_groups[0]["lr"] = 0.01
        assign_grads(ours, grads)
        for tp, g in zip(theirs, grads):
            tp.grad = None if g is None else torch.tensor(g)
        opt.step()
        topt.step()
    for p, tp in zip(ours, theirs):
        np.testing.assert_allclose(p.data, tp.detach().numpy(), rtol=RTOL, atol=ATOL)


# -- schedulers vs torch -----------------------------------------------------------------------
def torch_sgd(torch: Any, lr: float) -> Any:
    return torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=lr)


def our_sgd(lr: float) -> SGD:
    return SGD([Tensor(np.zeros(1), requires_grad=True)], lr=lr)


@given(
    lr=st.floats(1e-4, 1.0),
    step_size=st.integers(1, 7),
    gamma=st.floats(0.01, 1.5),
    epochs=st.integers(1, 40),
)
def test_steplr_matches_torch(
    torch: Any, lr: float, step_size: int, gamma: float, epochs: int
) -> None:
    opt, topt = our_sgd(lr), torch_sgd(torch, lr)
    sched = StepLR(opt, step_size, gamma)
    tsched = torch.optim.lr_scheduler.StepLR(topt, step_size, gamma)
    assert sched.get_last_lr() == tsched.get_last_lr() == [lr]  # a list, one lr per group
    for epoch in range(1, epochs + 1):
        opt.step()
        topt.step()
        sched.step()
        tsched.step()
        # chainable, as PyTorch's: the same floats, close to the closed form
        assert sched.get_last_lr() == tsched.get_last_lr()
        assert opt.lr == topt.param_groups[0]["lr"]
        assert opt.lr == pytest.approx(lr * gamma ** (epoch // step_size), rel=1e-12)


# validation error of an imagined AlexNet run: improves, plateaus, improves, plateaus ...
SCRIPTED_METRICS = [
    0.9, 0.8, 0.7, 0.7, 0.7, 0.7, 0.69999, 0.6, 0.6, 0.61, 0.62, 0.6, 0.6, 0.6, 0.5, 0.5,
    0.5, 0.5, 0.5, 0.5, float("nan"), 0.4, 0.4, 0.4, 0.4, 0.4, 0.4, 0.4, 0.4, 0.4,
]  # fmt: skip


def run_plateau_parity(torch: Any, metrics: list[float], **kwargs: Any) -> list[float]:
    opt, topt = our_sgd(0.01), torch_sgd(torch, 0.01)
    sched = ReduceLROnPlateau(opt, **kwargs)
    tsched = torch.optim.lr_scheduler.ReduceLROnPlateau(topt, **kwargs)
    lrs = []
    for m in metrics:
        sched.step(m)
        tsched.step(m)
        assert sched.get_last_lr() == tsched.get_last_lr()
        assert opt.lr == topt.param_groups[0]["lr"]
        assert (sched.num_bad_epochs, sched.cooldown_counter) == (
            tsched.num_bad_epochs,
            tsched.cooldown_counter,
        )
        assert sched.best == tsched.best or (np.isnan(sched.best) and np.isnan(tsched.best))
        lrs.append(opt.lr)
    return lrs


@pytest.mark.parametrize(
    "kwargs",
    [
        dict(patience=2),
        dict(patience=1, cooldown=2),
        dict(patience=0, threshold=0.05, threshold_mode="abs"),
        dict(patience=1, factor=0.5, min_lr=0.002),
        dict(mode="max", patience=2, threshold=0.01),
    ],
    ids=str,
)
def test_plateau_scripted_matches_torch(torch: Any, kwargs: dict[str, Any]) -> None:
    run_plateau_parity(torch, SCRIPTED_METRICS, **kwargs)


def test_plateau_divides_by_ten_when_error_stalls(torch: Any) -> None:
    lrs = run_plateau_parity(torch, SCRIPTED_METRICS, patience=2)
    assert lrs[:5] == [0.01] * 5  # epochs 4 and 5 are the first two bad epochs
    assert lrs[5] == pytest.approx(0.001)  # third bad epoch in a row: divided by 10
    assert min(lrs) < 1e-4  # further plateaus keep dividing


@given(
    metrics=st.lists(st.integers(0, 5).map(float), min_size=1, max_size=40),
    mode=st.sampled_from(["min", "max"]),
    threshold_mode=st.sampled_from(["rel", "abs"]),
    threshold=st.sampled_from([0.0, 1e-4, 0.5, 1.0]),
    factor=st.floats(0.05, 0.95),
    patience=st.integers(0, 4),
    cooldown=st.integers(0, 3),
    min_lr=st.sampled_from([0.0, 1e-4, 5e-3]),
)
def test_plateau_matches_torch_random(torch: Any, metrics: list[float], **kwargs: Any) -> None:
    run_plateau_parity(torch, metrics, **kwargs)


# -- the AlexNet rule --------------------------------------------------------------------------
def twin_runs(lr_schedule: Callable[[int], float], steps: int) -> tuple[list[Tensor], ...]:
    """Same init and gradients through SGD(rule='alexnet') and SGD(rule='pytorch')."""
    paper, torchlike = make_params(7), make_params(7)
    kw = dict(lr=lr_schedule(0), momentum=0.9, weight_decay=5e-4)
    opt_paper, opt_torch = SGD(paper, rule="alexnet", **kw), SGD(torchlike, **kw)
    for k, grads in enumerate(grad_script(7, steps)):
        opt_paper.lr = opt_torch.lr = lr_schedule(k)
        assign_grads(paper, grads)
        assign_grads(torchlike, grads)
        opt_paper.step()
        opt_torch.step()
    return paper, torchlike, opt_paper, opt_torch


def test_alexnet_rule_equals_pytorch_rule_with_constant_lr() -> None:
    paper, torchlike, opt_paper, opt_torch = twin_runs(lambda k: 0.01, 20)
    for p, q in zip(paper, torchlike):
        np.testing.assert_allclose(p.data, q.data, rtol=1e-12, atol=1e-14)
    for sp, st_ in zip(opt_paper.state, opt_torch.state):  # v_paper = -lr * buf_pytorch
        np.testing.assert_allclose(sp["velocity"], -0.01 * st_["momentum_buffer"], rtol=1e-12)


def test_alexnet_rule_by_hand() -> None:
    w = Tensor(np.array([1.0, -2.0]), requires_grad=True, dtype=np.float64)
    opt = SGD([w], lr=0.1, momentum=0.9, weight_decay=0.0005, rule="alexnet")
    v, w_ref = np.zeros(2), w.data.copy()
    for g in ([0.5, 0.25], [-1.0, 2.0], [0.0, 3.0]):
        w.grad = Tensor(np.array(g), dtype=np.float64)
        opt.step()
        v = 0.9 * v - 0.0005 * 0.1 * w_ref - 0.1 * np.array(g)
        w_ref = w_ref + v
        np.testing.assert_allclose(w.data, w_ref, rtol=1e-14)


def test_alexnet_rule_differs_after_lr_change_as_predicted() -> None:
    def lr_at(k: int) -> float:
        return 0.01 if k < 10 else 0.001

    before = twin_runs(lr_at, 10)
    for p, q in zip(before[0], before[1]):
        np.testing.assert_allclose(p.data, q.data, rtol=1e-12, atol=1e-14)
    v_old = [s["velocity"].copy() for s in before[2].state]
    paper, torchlike, _, _ = twin_runs(lr_at, 11)  # one step with the new lr
    for p, q, v in zip(paper, torchlike, v_old):
        assert not np.allclose(p.data, q.data, rtol=1e-9, atol=0)
        # paper is ahead of pytorch by momentum * v_old * (1 - lr_new / lr_old)
        np.testing.assert_allclose(p.data - q.data, 0.9 * v * (1 - 0.1), rtol=1e-7, atol=1e-15)


def test_alexnet_rule_matches_torch_with_constant_lr(torch: Any) -> None:
    kw = dict(lr=0.01, momentum=0.9, weight_decay=5e-4)
    run_parity(
        torch, lambda ps: SGD(ps, rule="alexnet", **kw), lambda ps: torch.optim.SGD(ps, **kw), 5
    )


# -- in-place, dtype, no graph -----------------------------------------------------------------
@pytest.mark.parametrize(
    "make",
    [
        lambda ps: SGD(ps, lr=0.1, momentum=0.9, weight_decay=1e-3, nesterov=True),
        lambda ps: SGD(ps, lr=0.1, momentum=0.9, weight_decay=1e-3, rule="alexnet"),
        lambda ps: Adam(ps, lr=0.1, weight_decay=1e-3),
        lambda ps: AdamW(ps, lr=0.1, weight_decay=1e-3),
    ],
    ids=["sgd", "alexnet", "adam", "adamw"],
)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_updates_in_place_keep_dtype_and_leave_grads(make: Any, dtype: Any) -> None:
    params = make_params(11, dtype=dtype)
    arrays = [p.data for p in params]
    opt = make(params)
    for grads in grad_script(11, 3):
        for p, g in zip(params, grads):
            p.grad = None if g is None else Tensor(g)  # float32 grads, even for float64 params
        before = [None if p.grad is None else p.grad.data.copy() for p in params]
        old = [p.data.copy() for p in params]
        opt.step()
        for p, a, b, o in zip(params, arrays, before, old):
            assert p.data is a and p.data.dtype == dtype and p.is_leaf
            if b is None:
                np.testing.assert_array_equal(p.data, o)  # no grad: skipped
            else:
                np.testing.assert_array_equal(p.grad.data, b)  # gradient not modified
                assert not np.array_equal(p.data, o)
    for state in opt.state:
        for value in state.values():
            assert not isinstance(value, np.ndarray) or value.dtype == dtype


def test_zero_grad_sets_none() -> None:
    params = make_params(0)
    opt = SGD(params, lr=0.1)
    assign_grads(params, grad_script(0, 1)[0])
    opt.zero_grad()
    assert all(p.grad is None for p in params)
    old = [p.data.copy() for p in params]
    opt.step()  # nothing to do
    for p, o in zip(params, old):
        np.testing.assert_array_equal(p.data, o)
    assert opt.step_count == 1


# -- state dicts -------------------------------------------------------------------------------
OPTIMIZERS = {
    "sgd": lambda ps: SGD(ps, lr=0.05, momentum=0.9, weight_decay=1e-3),
    "sgd-nesterov": lambda ps: SGD(ps, lr=0.05, momentum=0.9, nesterov=True),
    "sgd-plain": lambda ps: SGD(ps, lr=0.05),
    "alexnet": lambda ps: SGD(ps, lr=0.05, momentum=0.9, weight_decay=5e-4, rule="alexnet"),
    "adam": lambda ps: Adam(ps, lr=0.05, weight_decay=1e-2),
    "adamw": lambda ps: AdamW(ps, lr=0.05, weight_decay=1e-1),
}


def savez_roundtrip(d: dict[str, np.ndarray]) -> Any:
    buf = io.BytesIO()
    np.savez(buf, **d)
    buf.seek(0)
    return np.load(buf, allow_pickle=False)


@pytest.mark.parametrize("name", list(OPTIMIZERS))
@pytest.mark.parametrize("via_file", [False, True])
def test_state_dict_round_trip(name: str, via_file: bool) -> None:
    make = OPTIMIZERS[name]
    params = make_params(21)
    opt = make(params)
    script = grad_script(21, 7)
    for grads in script[:3]:  # includes a step where params[1] has no grad
        assign_grads(params, grads)
        opt.step()
    opt.lr = 0.02
    saved = opt.state_dict()
    assert all(isinstance(v, np.ndarray) for v in saved.values())
    assert saved["lr"].shape == () and int(saved["step_count"]) == 3
    if name in ("adam", "adamw"):
        assert int(saved["step.0"]) == 3 and int(saved["step.1"]) == 2
        assert {"exp_avg.3", "exp_avg_sq.3"} <= set(saved)
    copies = [Tensor(p.data.copy(), requires_grad=True, dtype=np.float64) for p in params]
    fresh = OPTIMIZERS[name](copies)
    fresh.lr = 0.5
    fresh.load_state_dict(savez_roundtrip(saved) if via_file else saved)
    assert fresh.lr == 0.02 and fresh.step_count == 3
    for grads in script[3:]:
        assign_grads(params, grads)
        assign_grads(copies, grads)
        opt.step()
        fresh.step()
    for p, c in zip(params, copies):
        np.testing.assert_array_equal(p.data, c.data)
    after, after_fresh = opt.state_dict(), fresh.state_dict()
    assert after.keys() == after_fresh.keys()
    for k in after:
        np.testing.assert_array_equal(after[k], after_fresh[k])


def test_state_dict_is_a_copy_and_restores_hyperparameters() -> None:
    params = make_params(2)
    opt = SGD(params, lr=0.1, momentum=0.9)
    assign_grads(params, grad_script(2, 1)[0])
    opt.step()
    d = opt.state_dict()
    d["momentum_buffer.0"][...] = 123.0
    assert not np.any(opt.state[0]["momentum_buffer"] == 123.0)
    other = SGD(make_params(2), lr=1.0, momentum=0.5, weight_decay=0.1)
    other.load_state_dict(opt.state_dict())
    assert (other.momentum, other.weight_decay, other.lr) == (0.9, 0.0, 0.1)


def test_scheduler_state_dict_round_trip() -> None:
    metrics = SCRIPTED_METRICS
    opt = our_sgd(0.01)
    sched = ReduceLROnPlateau(opt, patience=1, cooldown=1, factor=0.5, min_lr=1e-4)
    step_opt = our_sgd(0.1)
    step = StepLR(step_opt, step_size=3, gamma=0.5)
    for m in metrics[:12]:
        sched.step(m)
        step.step()
    saved = {
        "opt": savez_roundtrip(opt.state_dict()),
        "sched": savez_roundtrip(sched.state_dict()),
        "step_opt": step_opt.state_dict(),
        "step": step.state_dict(),
    }
    opt2, step_opt2 = our_sgd(1.0), our_sgd(1.0)
    sched2, step2 = ReduceLROnPlateau(opt2), StepLR(step_opt2, step_size=10)
    opt2.load_state_dict(saved["opt"])
    sched2.load_state_dict(saved["sched"])
    step_opt2.load_state_dict(saved["step_opt"])
    step2.load_state_dict(saved["step"])
    for m in metrics[12:]:
        for s in (sched, sched2):
            s.step(m)
        step.step()
        step2.step()
        assert opt.lr == opt2.lr and sched.get_last_lr() == sched2.get_last_lr()
        assert step_opt.lr == step_opt2.lr and step.get_last_lr() == step2.get_last_lr()
    assert sched.state_dict().keys() == sched2.state_dict().keys()


# -- errors ------------------------------------------------------------------------------------
def _w() -> Tensor:
    return Tensor(np.ones(3), requires_grad=True)


BAD_CALLS = [
    (lambda: SGD([], lr=0.1), "params is empty"),
    (lambda: SGD(_w(), lr=0.1), "got a single Tensor.*wrap it in a list"),
    (lambda: SGD([np.ones(3)], lr=0.1), r"params\[0\] is not a Tensor"),
    (lambda: SGD([_w() * 2], lr=0.1), "not a leaf"),
    (lambda: SGD([w := _w(), w], lr=0.1), "more than once"),
    (lambda: SGD(3, lr=0.1), "iterable of Tensors"),
    (lambda: SGD([_w()], lr=-0.1), r"lr must be in \[0, inf\).*Fix: pass a finite"),
    (lambda: SGD([_w()], lr=float("nan")), "lr must be a real number"),
    (lambda: SGD([_w()], lr=0.1, momentum=-0.5), r"momentum must be in \[0, 1\)"),
    (lambda: SGD([_w()], lr=0.1, weight_decay=-1), "weight_decay must be in"),
    (lambda: SGD([_w()], lr=0.1, nesterov=True), "nesterov=True requires momentum > 0"),
    (lambda: SGD([_w()], 0.1, momentum=0.9, nesterov=True, dampening=0.1), "dampening == 0"),
    (lambda: SGD([_w()], lr=0.1, rule="paper"), "rule must be 'pytorch' or 'alexnet'"),
    (lambda: SGD([_w()], 0.1, momentum=0.9, dampening=0.5, rule="alexnet"), "no nesterov or"),
    (lambda: Adam([_w()], lr=-1.0), "lr must be in"),
    (lambda: Adam([_w()], betas=(0.9, 1.0)), r"betas\[1\] must be in \[0, 1\)"),
    (lambda: Adam([_w()], betas=0.9), "betas must be a pair"),
    (lambda: Adam([_w()], eps=-1e-8), "eps must be in"),
    (lambda: StepLR(our_sgd(0.1), step_size=0), "step_size must be an int >= 1"),
    (lambda: StepLR(our_sgd(0.1), step_size=2.5), "step_size must be an int"),
    (lambda: StepLR(our_sgd(0.1), 2, gamma=0.0), r"gamma must be in \(0, inf\)"),
    (lambda: StepLR("sgd", 2), "optimizer must be a tinygrad_edu.optim Optimizer"),
    (lambda: ReduceLROnPlateau(our_sgd(0.1), factor=1.0), r"factor must be in \(0, 1\)"),
    (lambda: ReduceLROnPlateau(our_sgd(0.1), factor=2.0), "lr \\* factor"),
    (lambda: ReduceLROnPlateau(our_sgd(0.1), mode="lowest"), "mode must be 'min' or 'max'"),
    (lambda: ReduceLROnPlateau(our_sgd(0.1), threshold_mode="x"), "threshold_mode must be"),
    (lambda: ReduceLROnPlateau(our_sgd(0.1), patience=-1), "patience must be an int >= 0"),
    (lambda: ReduceLROnPlateau(our_sgd(0.1), min_lr=-1.0), "min_lr must be in"),
]


@pytest.mark.parametrize("call,match", BAD_CALLS, ids=[m for _, m in BAD_CALLS])
def test_bad_input_raises_clear_error(call: Callable[[], Any], match: str) -> None:
    with pytest.raises(ValueError, match=match):
        call()


def test_assigning_negative_lr_raises() -> None:
    opt = SGD([_w()], lr=0.1)
    with pytest.raises(ValueError, match="lr must be in"):
        opt.lr = -0.01
    assert opt.lr == 0.1


def test_gradient_of_wrong_shape_raises() -> None:
    w, v = _w(), _w()
    opt = Adam([w, v])
    w.grad, v.grad = Tensor(np.ones(3)), Tensor(np.ones(4))
    with pytest.raises(ValueError, match=r"gradient of params\[1\] has the wrong shape"):
        opt.step()
    np.testing.assert_array_equal(w.data, np.ones(3))  # nothing was updated
    assert opt.step_count == 0


def test_load_state_dict_errors_leave_optimizer_unchanged() -> None:
    params = make_params(4)
    opt = Adam(params, lr=0.01)
    assign_grads(params, grad_script(4, 1)[0])
    opt.step()
    good = opt.state_dict()
    target = Adam(make_params(4), lr=0.3)
    cases = [
        ({k: v for k, v in good.items() if k != "lr"}, r"missing keys \['lr'\]"),
        ({**good, "momentum_buffer.0": good["exp_avg.0"]}, "unexpected key 'momentum_buffer.0'"),
        ({**good, "exp_avg.9": good["exp_avg.0"]}, "names parameter 9"),
        ({**good, "exp_avg.0": np.zeros((4, 3))}, "does not have the shape of params"),
        ({k: v for k, v in good.items() if k != "exp_avg_sq.2"}, r"incomplete state.*\[2\]"),
        ({**good, "num_params": np.array(2)}, "different number of parameters"),
        ({**good, "betas": np.array([0.9, 1.5])}, r"betas\[1\] must be in"),
        ({**good, "lr": np.array(-1.0)}, "lr must be in"),
        ({**good, "step.0": np.array(1.5)}, "non-negative integer scalar"),
    ]
    for bad, match in cases:
        with pytest.raises(ValueError, match=match):
            target.load_state_dict(bad)
        assert target.lr == 0.3 and target.step_count == 0 and target.betas == (0.9, 0.999)
        assert all(not s for s in target.state)
    with pytest.raises(ValueError, match="saved with rule='pytorch'.*rule='alexnet'"):
        SGD(make_params(4), lr=0.1, rule="alexnet").load_state_dict(SGD(params, 0.1).state_dict())
    with pytest.raises(ValueError, match="expects a mapping"):
        target.load_state_dict([1, 2])


def test_scheduler_load_state_dict_errors() -> None:
    sched = ReduceLROnPlateau(our_sgd(0.1))
    good = sched.state_dict()
    with pytest.raises(ValueError, match=r"missing keys \['best'\]"):
        sched.load_state_dict({k: v for k, v in good.items() if k != "best"})
    with pytest.raises(ValueError, match=r"unexpected keys \['gamma'\]"):
        sched.load_state_dict({**good, "gamma": np.array(0.1)})
    with pytest.raises(ValueError, match=r"factor must be in \(0, 1\)"):
        sched.load_state_dict({**good, "factor": np.array(3.0)})
    with pytest.raises(ValueError, match="step_size must be an int >= 1"):
        StepLR(our_sgd(0.1), 2).load_state_dict({**StepLR(our_sgd(0.1), 2).state_dict(),
                                                 "step_size": np.array(0)})  # fmt: skip


# -- end to end --------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "make,steps",
    [
        (lambda ps: SGD(ps, lr=0.1), 300),
        (lambda ps: SGD(ps, lr=0.05, momentum=0.9, nesterov=True), 300),
        (lambda ps: SGD(ps, lr=0.05, momentum=0.9, rule="alexnet"), 300),
        (lambda ps: Adam(ps, lr=0.05), 1500),
    ],
    ids=["sgd", "nesterov", "alexnet", "adam"],
)
def test_minimises_least_squares(make: Callable[[list[Tensor]], Optimizer], steps: int) -> None:
    rng = np.random.default_rng(0)
    x = rng.standard_normal((20, 3))
    y = x @ np.array([1.5, -2.0, 0.5]) + 0.1 * rng.standard_normal(20) + 0.7
    w_star, *_ = np.linalg.lstsq(np.c_[x, np.ones(20)], y, rcond=None)  # known minimum
    w = Tensor(np.zeros(3), requires_grad=True, dtype=np.float64)
    b = Tensor(np.zeros(()), requires_grad=True, dtype=np.float64)
    opt = make([w, b])
    xt, yt = Tensor(x, dtype=np.float64), Tensor(y, dtype=np.float64)
    for _ in range(steps):
        loss = ((xt @ w + b - yt) ** 2).mean()
        loss.backward()
        opt.step()
        opt.zero_grad()
    np.testing.assert_allclose(np.r_[w.data, b.data], w_star, atol=1e-6)


def test_plateau_schedule_drives_training() -> None:
    """lr / 10 on a plateau, as AlexNet did: with lr=2 the loss 0.5*w^2 bounces between w=3 and
    w=-3 forever; the scheduler notices the plateau and the smaller lr converges."""
    w = Tensor(np.array([3.0]), requires_grad=True, dtype=np.float64)
    opt = SGD([w], lr=2.0)
    sched = ReduceLROnPlateau(opt, patience=2)
    lrs = []
    for _ in range(100):
        loss = (w * w).sum() * 0.5
        loss.backward()
        opt.step()
        opt.zero_grad()
        sched.step(loss)
        lrs.append(opt.lr)
    assert lrs[:3] == [2.0] * 3 and lrs[3] == pytest.approx(0.2)  # 3 bad epochs > patience 2
    assert lrs[-1] == pytest.approx(0.2) and abs(w.data[0]) < 1e-6


@pytest.mark.parametrize(
    "make",
    [
        lambda ps: SGD(ps, lr=0.1, momentum=0.9, weight_decay=1e-3, nesterov=True),
        lambda ps: Adam(ps, lr=0.1, weight_decay=1e-3),
    ],
    ids=["sgd", "adam"],
)
def test_chunked_eager_update_of_a_large_parameter_equals_the_whole_array_update(make):
    """Large parameters are updated chunk by chunk (temporaries stay in cache): the same
    numbers as one update over the whole array, in place."""
    rng = np.random.default_rng(0)
    w0 = rng.standard_normal((300, 251)).astype(np.float32)  # not a multiple of the chunk
    results = []
    for elementwise in (True, False):
        p = Tensor(w0.copy(), requires_grad=True)
        array = p.data
        opt = make([p])
        opt._elementwise = elementwise
        for k in range(3):
            p.grad = Tensor(np.random.default_rng(k).standard_normal(w0.shape).astype(np.float32))
            opt.step()
        assert p.data is array
        results.append((p.data.copy(), opt.state_dict()))
    (w_chunked, s_chunked), (w_whole, s_whole) = results
    np.testing.assert_array_equal(w_chunked, w_whole)
    for key in s_whole:
        np.testing.assert_array_equal(s_chunked[key], s_whole[key])
