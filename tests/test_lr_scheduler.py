"""optim.param_groups and optim.lr_scheduler against PyTorch: lr (and momentum) sequences of
every scheduler, per-group training equal to torch's SGD/Adam, eager and compiled, and state
dicts that resume a run exactly."""

from typing import Any

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import compiler
from tinygrad_edu import OpError, Tensor, manual_seed, nn, optim
from tinygrad_edu.optim import lr_scheduler


@pytest.fixture(scope="module")
def torch() -> Any:
    return pytest.importorskip("torch")


LRS = (0.1, 0.03)  # two parameter groups with different lrs


def our_opt(kind: str = "sgd", lrs: tuple[float, ...] = LRS) -> optim.Optimizer:
    groups = [{"params": [Tensor(np.zeros(2), requires_grad=True)], "lr": lr} for lr in lrs]
    if kind == "adam":
        return optim.Adam(groups)
    return optim.SGD(groups, momentum=0.9 if kind == "sgd-momentum" else 0.0)


def torch_opt(torch: Any, kind: str = "sgd", lrs: tuple[float, ...] = LRS) -> Any:
    groups = [{"params": [torch.zeros(2, requires_grad=True)], "lr": lr} for lr in lrs]
    if kind == "adam":
        return torch.optim.Adam(groups)
    return torch.optim.SGD(groups, momentum=0.9 if kind == "sgd-momentum" else 0.0)


def assert_same_run(ours, theirs, steps: int, metrics=None, momentum: str | None = None):
    """Step both schedulers; after each step the groups' lrs (and momenta) must agree."""
    assert ours.get_last_lr() == pytest.approx(theirs.get_last_lr(), rel=1e-12)
    for k in range(steps):
        ours.optimizer.step(), theirs.optimizer.step()
        if metrics is None:
            ours.step(), theirs.step()
        else:
            ours.step(metrics[k]), theirs.step(metrics[k])
        assert ours.get_last_lr() == pytest.approx(theirs.get_last_lr(), rel=1e-12, abs=1e-15)
        for g, tg in zip(ours.optimizer.param_groups, theirs.optimizer.param_groups):
            assert g["lr"] == pytest.approx(tg["lr"], rel=1e-12, abs=1e-15)
            if momentum == "momentum":
                assert g["momentum"] == pytest.approx(tg["momentum"], rel=1e-12)
            if momentum == "betas":
                assert g["betas"] == pytest.approx(tg["betas"], rel=1e-12)
    assert ours.last_epoch == theirs.last_epoch


# -- lr sequences vs torch -------------------------------------------------------------------
@given(step_size=st.integers(1, 5), gamma=st.floats(0.05, 1.2), steps=st.integers(1, 25))
def test_steplr_matches_torch(torch, step_size, gamma, steps):
    opt, topt = our_opt(), torch_opt(torch)
    assert_same_run(
        lr_scheduler.StepLR(opt, step_size, gamma),
        torch.optim.lr_scheduler.StepLR(topt, step_size, gamma),
        steps,
    )


@given(
    milestones=st.lists(st.integers(1, 20), min_size=1, max_size=5),
    gamma=st.floats(0.05, 1.0),
)
def test_multisteplr_matches_torch_with_repeated_milestones(torch, milestones, gamma):
    opt, topt = our_opt(), torch_opt(torch)
    assert_same_run(
        lr_scheduler.MultiStepLR(opt, milestones, gamma),
        torch.optim.lr_scheduler.MultiStepLR(topt, milestones, gamma),
        25,
    )


@given(gamma=st.floats(0.5, 1.0), steps=st.integers(1, 30))
def test_exponentiallr_matches_torch(torch, gamma, steps):
    opt, topt = our_opt(), torch_opt(torch)
    assert_same_run(
        lr_scheduler.ExponentialLR(opt, gamma),
        torch.optim.lr_scheduler.ExponentialLR(topt, gamma),
        steps,
    )


@given(t_max=st.integers(1, 12), eta_min=st.sampled_from([0.0, 1e-3, 0.02]))
def test_cosine_annealing_matches_torch_past_t_max(torch, t_max, eta_min):
    opt, topt = our_opt(), torch_opt(torch)
    assert_same_run(
        lr_scheduler.CosineAnnealingLR(opt, T_max=t_max, eta_min=eta_min),
        torch.optim.lr_scheduler.CosineAnnealingLR(topt, T_max=t_max, eta_min=eta_min),
        3 * t_max + 2,  # down, up again, down: the recursion's special step included
    )


def test_lambdalr_matches_torch_with_one_function_per_group(torch):
    lambdas = [lambda e: 0.95**e, lambda e: 1.0 / (1 + e)]
    opt, topt = our_opt(), torch_opt(torch)
    assert_same_run(
        lr_scheduler.LambdaLR(opt, lambdas),
        torch.optim.lr_scheduler.LambdaLR(topt, lambdas),
        12,
    )
    with pytest.raises(OpError, match="expected 2 values of lr_lambda"):
        lr_scheduler.LambdaLR(our_opt(), [lambda e: 1.0])


PLATEAU_METRICS = [
    1.0, 0.9, 0.9, 0.9, 0.9, 0.85, 0.85, 0.85, 0.85, 0.85, 0.84999, 0.7, 0.7, 0.7, 0.7,
    float("nan"), 0.7, 0.7, 0.7, 0.7, 0.7, 0.69, 0.69, 0.69, 0.69, 0.69, 0.69, 0.69,
]  # fmt: skip


@pytest.mark.parametrize(
    "kwargs",
    [
        dict(patience=2),
        dict(patience=1, cooldown=2, factor=0.5, min_lr=[0.01, 0.001]),
        dict(mode="max", patience=1, threshold=0.05, threshold_mode="abs"),
        dict(patience=0, factor=0.3, min_lr=0.02, eps=1e-3),
    ],
)
def test_reduce_on_plateau_matches_torch_per_group(torch, kwargs):
    metrics = PLATEAU_METRICS if kwargs.get("mode") != "max" else [-m for m in PLATEAU_METRICS]
    opt, topt = our_opt(), torch_opt(torch)
    ours = lr_scheduler.ReduceLROnPlateau(opt, **kwargs)
    theirs = torch.optim.lr_scheduler.ReduceLROnPlateau(topt, **kwargs)
    assert_same_run(ours, theirs, len(metrics), metrics)
    assert (ours.num_bad_epochs, ours.cooldown_counter) == (
        theirs.num_bad_epochs,
        theirs.cooldown_counter,
    )


@pytest.mark.parametrize("kind", ["sgd-momentum", "adam"])
@given(
    total=st.integers(5, 40),
    pct_start=st.floats(0.1, 0.5),
    anneal=st.sampled_from(["cos", "linear"]),
    three_phase=st.booleans(),
    div=st.sampled_from([25.0, 4.0]),
    final_div=st.sampled_from([1e4, 10.0]),
)
def test_one_cycle_matches_torch_lr_and_momentum(
    torch, kind, total, pct_start, anneal, three_phase, div, final_div
):
    kw = dict(
        max_lr=[0.5, 0.2], total_steps=total, pct_start=pct_start, anneal_strategy=anneal,
        three_phase=three_phase, div_factor=div, final_div_factor=final_div,
    )  # fmt: skip
    opt, topt = our_opt(kind), torch_opt(torch, kind)
    assert_same_run(
        lr_scheduler.OneCycleLR(opt, **kw),
        torch.optim.lr_scheduler.OneCycleLR(topt, **kw),
        total - 1,
        momentum="betas" if kind == "adam" else "momentum",
    )


def test_one_cycle_length_and_momentum_errors():
    with pytest.raises(OpError, match="schedule's length is not given"):
        lr_scheduler.OneCycleLR(our_opt(), max_lr=0.1, epochs=3)
    sched = lr_scheduler.OneCycleLR(our_opt(), max_lr=0.1, epochs=2, steps_per_epoch=2)
    for _ in range(4):
        sched.step()
    with pytest.raises(OpError, match="past the schedule's total_steps"):
        sched.step()
    assert lr_scheduler.OneCycleLR(our_opt(), 0.1, 10, cycle_momentum=False).total_steps == 10


def test_chainable_schedulers_keep_an_lr_changed_by_hand(torch):
    opt, topt = our_opt(), torch_opt(torch)
    ours = lr_scheduler.ExponentialLR(opt, 0.5)
    theirs = torch.optim.lr_scheduler.ExponentialLR(topt, 0.5)
    topt.step()  # torch warns about a scheduler stepped before its optimizer
    ours.step(), theirs.step()
    opt.param_groups[1]["lr"] = topt.param_groups[1]["lr"] = 1.0
    ours.step(), theirs.step()
    assert ours.get_last_lr() == theirs.get_last_lr() == [0.025, 0.5]


def test_step_with_an_epoch_uses_the_closed_form():
    sched = lr_scheduler.StepLR(our_opt(lrs=(1.0,)), step_size=3, gamma=0.5)
    sched.step(7)
    assert sched.get_last_lr() == [0.25] and sched.last_epoch == 7
    cos = lr_scheduler.CosineAnnealingLR(our_opt(lrs=(1.0,)), T_max=4)
    cos.step(2)
    assert cos.get_last_lr() == [pytest.approx(0.5)]


# -- state dicts -----------------------------------------------------------------------------
def savez_roundtrip(d, tmp_path):
    np.savez(tmp_path / "s.npz", **d)
    with np.load(tmp_path / "s.npz", allow_pickle=False) as f:
        return {k: f[k] for k in f.files}


@pytest.mark.parametrize(
    "make",
    [
        lambda o: lr_scheduler.StepLR(o, 2, 0.5),
        lambda o: lr_scheduler.MultiStepLR(o, [2, 5, 5], 0.3),
        lambda o: lr_scheduler.CosineAnnealingLR(o, 6, 1e-3),
        lambda o: lr_scheduler.ReduceLROnPlateau(o, patience=1, min_lr=[0.0, 1e-3]),
        lambda o: lr_scheduler.OneCycleLR(o, [0.5, 0.2], total_steps=20, three_phase=True),
    ],
    ids=["step", "multistep", "cosine", "plateau", "onecycle"],
)
def test_scheduler_and_optimizer_state_dicts_resume_a_run_exactly(make, tmp_path):
    def run(sched, ks):
        for k in ks:
            if isinstance(sched, lr_scheduler.ReduceLROnPlateau):
                sched.step(PLATEAU_METRICS[k])
            else:
                sched.step()

    opt = our_opt("sgd-momentum")
    sched = make(opt)
    run(sched, range(7))
    saved_opt = savez_roundtrip(opt.state_dict(), tmp_path)
    saved_sched = savez_roundtrip(sched.state_dict(), tmp_path)
    opt2 = our_opt("sgd-momentum", lrs=(9.0, 9.0))
    sched2 = make(opt2)
    opt2.load_state_dict(saved_opt)
    sched2.load_state_dict(saved_sched)
    assert [dict(g, params=None) for g in opt2.param_groups] == [
        dict(g, params=None) for g in opt.param_groups
    ]
    run(sched, range(7, 15)), run(sched2, range(7, 15))
    assert sched2.get_last_lr() == sched.get_last_lr() and sched2.last_epoch == 15
    assert [g["momentum"] for g in opt2.param_groups] == [g["momentum"] for g in opt.param_groups]


def test_scheduler_state_saved_before_parameter_groups_still_loads():
    # the keys models/train.py checkpoints held: one lr, scalars
    old_step = {
        "base_lr": np.array(0.1), "last_epoch": np.array(4), "step_size": np.array(3),
        "gamma": np.array(0.1), "last_lr": np.array(0.01),
    }  # fmt: skip
    sched = optim.StepLR(our_opt(lrs=(0.5,)), step_size=10)
    sched.load_state_dict(old_step)
    assert (sched.base_lrs, sched.last_epoch, sched.step_size) == ([0.1], 4, 3)
    old_plateau = {
        "mode": np.array("min"), "factor": np.array(0.1), "patience": np.array(2),
        "threshold": np.array(1e-4), "threshold_mode": np.array("rel"),
        "cooldown": np.array(0), "min_lr": np.array(1e-5), "eps": np.array(1e-8),
        "best": np.array(0.3), "num_bad_epochs": np.array(1), "cooldown_counter": np.array(0),
        "last_epoch": np.array(6), "last_lr": np.array(0.01),
    }  # fmt: skip
    plateau = optim.ReduceLROnPlateau(our_opt(lrs=(0.01,)))
    plateau.load_state_dict(old_plateau)
    assert (plateau.best, plateau.min_lrs, plateau.patience) == (0.3, [1e-5], 2)
    with pytest.raises(ValueError, match="base_lrs has one lr per group"):
        optim.StepLR(our_opt(), step_size=2).load_state_dict(old_step)


# -- parameter groups ------------------------------------------------------------------------
class Tiny(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.body = nn.Linear(4, 5)
        self.head = nn.Linear(5, 3)

    def forward(self, x):
        return self.head(self.body(x).tanh())


def torch_tiny(torch: Any, model: Tiny) -> Any:
    t = torch.nn.Sequential(torch.nn.Linear(4, 5), torch.nn.Tanh(), torch.nn.Linear(5, 3))
    with torch.no_grad():
        for tp, p in zip(t.parameters(), model.parameters()):
            tp.copy_(torch.tensor(p.numpy(), dtype=torch.float64))
    return t.double()


GROUPS = {
    "sgd": (
        lambda b, h: optim.SGD(
            [{"params": b}, {"params": h, "lr": 0.05, "momentum": 0.5, "weight_decay": 1e-2}],
            lr=0.1,
            momentum=0.9,
            nesterov=False,
        ),  # fmt: skip
        lambda torch, b, h: torch.optim.SGD(
            [{"params": b}, {"params": h, "lr": 0.05, "momentum": 0.5, "weight_decay": 1e-2}],
            lr=0.1,
            momentum=0.9,
        ),  # fmt: skip
    ),
    "adam": (
        lambda b, h: optim.Adam(
            [{"params": b, "weight_decay": 1e-2}, {"params": h, "lr": 3e-3, "betas": (0.8, 0.9)}],
            lr=1e-2,
        ),
        lambda torch, b, h: torch.optim.Adam(
            [{"params": b, "weight_decay": 1e-2}, {"params": h, "lr": 3e-3, "betas": (0.8, 0.9)}],
            lr=1e-2,
        ),
    ),
}


def tiny_data(seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    return rng.standard_normal((6, 4)), rng.integers(0, 3, 6)


def float64_tiny() -> Tiny:
    manual_seed(0)
    model = Tiny()
    for p in model.parameters():
        p.data = p.data.astype(np.float64)
    return model


@pytest.mark.parametrize("name", list(GROUPS))
def test_param_groups_train_like_torch_with_lr_changed_mid_run(torch, name):
    ours_make, torch_make = GROUPS[name]
    model = float64_tiny()
    tmodel = torch_tiny(torch, model)
    opt = ours_make(model.body.parameters(), model.head.parameters())
    tparams = list(tmodel.parameters())
    topt = torch_make(torch, tparams[:2], tparams[2:])
    # torch's groups also hold its implementation switches (foreach, fused, ...)
    assert all(set(g) <= set(tg) for g, tg in zip(opt.param_groups, topt.param_groups))
    for g, tg in zip(opt.param_groups, topt.param_groups):  # defaults filled in
        assert {k: g[k] for k in opt.defaults} == pytest.approx({k: tg[k] for k in opt.defaults})
    x, y = tiny_data()
    for k in range(6):
        if k == 3:
            opt.param_groups[1]["lr"] = topt.param_groups[1]["lr"] = 0.2
        loss = model(Tensor(x, dtype=np.float64)).cross_entropy(y)
        opt.zero_grad(), loss.backward(), opt.step()
        tloss = torch.nn.functional.cross_entropy(tmodel(torch.tensor(x)), torch.tensor(y))
        topt.zero_grad(), tloss.backward(), topt.step()
        assert loss.item() == pytest.approx(tloss.item(), rel=1e-10)
    for p, tp in zip(model.parameters(), tmodel.parameters()):
        np.testing.assert_allclose(p.numpy(), tp.detach().numpy(), rtol=1e-10, atol=1e-12)


def test_add_param_group_fills_defaults_and_trains_like_torch(torch):
    model = float64_tiny()
    tmodel = torch_tiny(torch, model)
    tparams = list(tmodel.parameters())
    opt = optim.SGD(model.body.parameters(), lr=0.1, momentum=0.9)
    topt = torch.optim.SGD(tparams[:2], lr=0.1, momentum=0.9)
    x, y = tiny_data(1)
    for k in range(4):
        if k == 2:  # unfreeze the head with its own lr
            opt.add_param_group({"params": model.head.parameters(), "lr": 0.01})
            topt.add_param_group({"params": tparams[2:], "lr": 0.01})
        loss = model(Tensor(x, dtype=np.float64)).cross_entropy(y)
        opt.zero_grad(), loss.backward(), opt.step()
        tloss = torch.nn.functional.cross_entropy(tmodel(torch.tensor(x)), torch.tensor(y))
        topt.zero_grad(), tloss.backward(), topt.step()
        if k < 2:  # the head is not optimised yet (its grads are dropped, like torch's)
            for p in model.head.parameters():
                p.grad = None
            for tp in tparams[2:]:
                tp.grad = None
    assert opt.param_groups[1]["momentum"] == 0.9 and len(opt.params) == 4
    for p, tp in zip(model.parameters(), tmodel.parameters()):
        np.testing.assert_allclose(p.numpy(), tp.detach().numpy(), rtol=1e-10, atol=1e-12)


def test_param_group_errors_name_the_problem():
    w, b = Tensor(np.ones(2), requires_grad=True), Tensor(np.ones(1), requires_grad=True)
    with pytest.raises(OpError, match="more than one parameter group"):
        optim.SGD([{"params": [w]}, {"params": [w, b]}], lr=0.1)
    with pytest.raises(OpError, match="mixes Tensors and parameter-group dicts"):
        optim.SGD([w, {"params": [b]}], lr=0.1)
    with pytest.raises(OpError, match='dict with a "params" entry'):
        optim.SGD([w], lr=0.1).add_param_group({"lr": 0.1})
    opt = optim.SGD([{"params": [w]}, {"params": b, "lr": 0.5}], lr=0.1)
    with pytest.raises(OpError, match="lr must be in"):
        opt.param_groups[1]["lr"] = -1.0
    with pytest.raises(OpError, match="momentum must be in"):
        opt.param_groups[0]["momentum"] = 1.5
    assert [g["lr"] for g in opt.param_groups] == [0.1, 0.5]
    opt.lr = 0.2  # the one-group shorthand sets every group
    assert [g["lr"] for g in opt.param_groups] == [0.2, 0.2]
    with pytest.raises(ValueError, match="different parameter groups"):
        optim.SGD([w, b], lr=0.1).load_state_dict(opt.state_dict())


# -- compiled steps ----------------------------------------------------------------------------
@pytest.mark.parametrize("name", list(GROUPS))
def test_compiled_steps_follow_param_groups_and_a_one_cycle_schedule(name):
    """Per-group settings compiled per group; the lr (and momentum/beta1, which OneCycleLR
    cycles) set at every call: compiled and eager runs agree step for step."""
    ours_make, _ = GROUPS[name]
    eager, model = float64_tiny(), float64_tiny()
    eager_opt = ours_make(eager.body.parameters(), eager.head.parameters())
    opt = ours_make(model.body.parameters(), model.head.parameters())
    scheds = [lr_scheduler.OneCycleLR(o, [0.3, 0.1], total_steps=8) for o in (eager_opt, opt)]
    x, y = tiny_data(2)
    step = compiler.compile_train_step(
        model, lambda o, t: o.cross_entropy(t), opt, x, y, backend="numpy"
    )
    for k in range(7):
        if k == 4:
            for o in (eager_opt, opt):
                o.param_groups[0]["lr"] = 0.02
        loss = eager(Tensor(x, dtype=np.float64)).cross_entropy(y)
        eager_opt.zero_grad(), loss.backward(), eager_opt.step()
        compiled_loss = step(x, y)
        assert compiled_loss == pytest.approx(loss.item(), rel=1e-12)
        for s in scheds:
            s.step()
    for p, q in zip(model.parameters(), eager.parameters()):
        np.testing.assert_allclose(p.numpy(), q.numpy(), rtol=1e-12, atol=1e-14)


def test_compiled_step_refuses_a_changed_compiled_in_setting():
    model = float64_tiny()
    opt = optim.SGD([{"params": model.body.parameters()}, {"params": model.head.parameters()}], 0.1)
    x, y = tiny_data()
    step = compiler.compile_train_step(
        model, lambda o, t: o.cross_entropy(t), opt, x, y, backend="numpy"
    )
    step(x, y)
    opt.param_groups[1]["weight_decay"] = 1e-3
    with pytest.raises(ValueError, match="hyperparameters changed.*compile the step again"):
        step(x, y)
