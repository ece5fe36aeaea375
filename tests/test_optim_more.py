"""RMSprop, Adagrad, StepLR, MultiStepLR, ExponentialLR and ReduceLROnPlateau against torch.optim."""
import numpy as np
import pytest
import torch
from test_lr_scheduler import lr_sequence, one_param_pair, torch_lrs
from test_optim import STEPS, fs_params, fs_train, make_init, torch_train

import from_scratch as fs
from from_scratch import Tensor, optim

CONFIGS = [
    ("RMSprop", dict()),
    ("RMSprop", dict(lr=0.02, alpha=0.9)),
    ("RMSprop", dict(lr=0.01, momentum=0.9)),
    ("RMSprop", dict(lr=0.01, centered=True)),
    ("RMSprop", dict(lr=0.01, centered=True, momentum=0.8)),
    ("RMSprop", dict(lr=0.01, weight_decay=0.1)),
    ("RMSprop", dict(lr=0.005, alpha=0.95, eps=1e-4, weight_decay=0.05, momentum=0.5, centered=True)),
    ("Adagrad", dict()),
    ("Adagrad", dict(lr=0.1)),
    ("Adagrad", dict(lr=0.1, lr_decay=0.05)),
    ("Adagrad", dict(lr=0.1, initial_accumulator_value=0.5)),
    ("Adagrad", dict(lr=0.1, weight_decay=0.1)),
    ("Adagrad", dict(lr=0.2, lr_decay=0.02, weight_decay=0.05, initial_accumulator_value=0.1, eps=1e-4)),
]


def assert_same_trajectory(ours, theirs, what):
    for step, ((ps, _), (tps, _)) in enumerate(zip(ours, theirs)):
        for p, tp in zip(ps, tps):
            np.testing.assert_allclose(p, tp, rtol=1e-10, atol=1e-12, err_msg=f"{what} step {step}")


@pytest.mark.parametrize("clip", [None, 0.3])
@pytest.mark.parametrize("name,kwargs", CONFIGS)
def test_trajectory_matches_torch(name, kwargs, clip):
    init = make_init()
    params, tparams = fs_params(init), [torch.tensor(a, requires_grad=True) for a in init]
    opt = getattr(optim, name)(params, **kwargs)
    ours = fs_train(opt, params, STEPS, clip)
    theirs = torch_train(getattr(torch.optim, name)(tparams, **kwargs), tparams, STEPS, clip)
    assert_same_trajectory(ours, theirs, f"{name} {kwargs}")
    assert np.array_equal(ours[-1][0][4], init[4]) and params[4] not in opt.state  # no gradient: untouched
    assert not np.allclose(ours[-1][0][0], init[0])


def test_param_groups_match_torch():
    init = make_init(1)
    params, tparams = fs_params(init), [torch.tensor(a, requires_grad=True) for a in init]
    for name, second in [("RMSprop", dict(centered=True, momentum=0.5)), ("Adagrad", dict(lr=0.3, lr_decay=0.1))]:
        groups = lambda ps: [{"params": ps[:2]}, {"params": ps[2:], **second}]  # noqa: E731
        ours = fs_train(getattr(optim, name)(groups(params), lr=0.05), params, STEPS)
        theirs = torch_train(getattr(torch.optim, name)(groups(tparams), lr=0.05), tparams, STEPS)
        assert_same_trajectory(ours, theirs, f"{name} groups")


@pytest.mark.parametrize("name,kwargs,keys", [
    ("RMSprop", dict(momentum=0.9, centered=True), {"step", "square_avg", "momentum_buffer", "grad_avg"}),
    ("RMSprop", dict(), {"step", "square_avg"}),
    ("Adagrad", dict(initial_accumulator_value=0.5), {"step", "sum"}),
])
def test_state_has_torchs_names_and_values(name, kwargs, keys):
    init = make_init()
    params, tparams = fs_params(init), [torch.tensor(a, requires_grad=True) for a in init]
    opt, topt = getattr(optim, name)(params, **kwargs), getattr(torch.optim, name)(tparams, **kwargs)
    fs_train(opt, params, 3)
    torch_train(topt, tparams, 3)
    theirs = topt.state_dict()["state"][0]
    assert set(opt.state[params[0]]) == set(theirs) == keys
    assert opt.state[params[0]]["step"] == int(theirs["step"]) == 3
    for key in keys - {"step"}:
        np.testing.assert_allclose(opt.state[params[0]][key], theirs[key].numpy(), rtol=1e-10, atol=1e-14)


@pytest.mark.parametrize("name,kwargs", CONFIGS)
def test_float32_params_stay_float32_and_update_in_place(name, kwargs):
    rng = np.random.default_rng(0)
    params = [Tensor(rng.standard_normal((3, 4)).astype(np.float32), requires_grad=True) for _ in range(2)]
    arrays = [p.data.copy() for p in params]
    opt = getattr(optim, name)(params, **kwargs)
    for _ in range(3):
        for p in params:
            p.grad = rng.standard_normal(p.shape).astype(np.float32)
        opt.step()
    assert all(p.data.dtype == np.float32 for p in params)
    assert all(v.dtype == np.float32 for s in opt.state.values() for v in s.values() if isinstance(v, np.ndarray))
    assert not np.allclose(params[0].data, arrays[0])


def p1():
    return [Tensor(np.zeros(2), requires_grad=True)]


@pytest.mark.parametrize("make,match", [
    (lambda: optim.RMSprop(p1(), lr=-0.1), "RMSprop: invalid learning rate -0.1"),
    (lambda: optim.RMSprop(p1(), alpha=-0.5), "RMSprop: invalid alpha -0.5"),
    (lambda: optim.RMSprop(p1(), eps=-1.0), "RMSprop: invalid eps -1.0"),
    (lambda: optim.RMSprop(p1(), momentum=-0.9), "RMSprop: invalid momentum -0.9"),
    (lambda: optim.RMSprop(p1(), weight_decay=-1e-3), "RMSprop: invalid weight_decay -0.001"),
    (lambda: optim.Adagrad(p1(), lr_decay=-0.1), "Adagrad: invalid lr_decay -0.1"),
    (lambda: optim.Adagrad(p1(), initial_accumulator_value=-1), "Adagrad: invalid initial_accumulator_value -1"),
    (lambda: optim.Adagrad(p1(), eps=-1e-10), "Adagrad: invalid eps"),
    (lambda: optim.Adagrad(p1(), weight_decay=-1), "Adagrad: invalid weight_decay"),
])
def test_bad_hyperparameters(make, match):
    with pytest.raises(ValueError, match=match):
        make()


# ------------------------------------------------------------------ step-count schedules
def two_group_pair():
    def groups(zeros):
        return [{"params": [zeros(2)]}, {"params": [zeros(1)], "lr": 0.3}]
    return (optim.SGD(groups(lambda n: Tensor(np.zeros(n), requires_grad=True)), lr=0.1),
            torch.optim.SGD(groups(lambda n: torch.zeros(n, requires_grad=True)), lr=0.1))


@pytest.mark.parametrize("name,kwargs", [("StepLR", dict(step_size=3)), ("StepLR", dict(step_size=1, gamma=0.9)),
                                         ("StepLR", dict(step_size=7, gamma=0.5)),
                                         ("MultiStepLR", dict(milestones=[5, 12, 13])),
                                         ("MultiStepLR", dict(milestones=[20, 4, 4], gamma=0.5)),
                                         ("ExponentialLR", dict(gamma=0.9)), ("ExponentialLR", dict(gamma=0.5))])
def test_step_schedules_match_torch(name, kwargs):
    opt, topt = two_group_pair()
    ours = lr_sequence(getattr(optim, name)(opt, **kwargs), opt, 30)
    theirs = torch_lrs(getattr(torch.optim.lr_scheduler, name)(topt, **kwargs), topt, 30)
    # torch multiplies step by step, we use the closed form: equal up to rounding
    assert np.allclose(ours, theirs, rtol=1e-13, atol=0)
    assert ours[0] == [0.1, 0.3] and len({tuple(lrs) for lrs in ours}) > 1


def test_multistep_milestone_listed_twice_counts_twice():
    opt, _ = one_param_pair(1.0)
    lrs = [lrs[0] for lrs in lr_sequence(optim.MultiStepLR(opt, [3, 1, 3], gamma=0.5), opt, 5)]
    assert lrs == [1.0, 0.5, 0.5, 0.125, 0.125]


@pytest.mark.parametrize("make,match", [
    (lambda o: optim.StepLR(o, step_size=0), "StepLR: invalid step_size 0"),
    (lambda o: optim.StepLR(o, step_size=2.5), "StepLR: invalid step_size 2.5"),
    (lambda o: optim.StepLR(o, 2, gamma=-0.1), "StepLR: invalid gamma -0.1"),
    (lambda o: optim.MultiStepLR(o, [2, -1]), "MultiStepLR: invalid milestone -1"),
    (lambda o: optim.ExponentialLR(o, gamma=-1), "ExponentialLR: invalid gamma -1"),
    (lambda o: optim.ReduceLROnPlateau(o, mode="avg"), "ReduceLROnPlateau: invalid mode 'avg'"),
    (lambda o: optim.ReduceLROnPlateau(o, threshold_mode="x"), "invalid threshold_mode 'x'"),
    (lambda o: optim.ReduceLROnPlateau(o, factor=1.0), "invalid factor 1.0"),
    (lambda o: optim.ReduceLROnPlateau(o, patience=-1), "invalid patience -1"),
    (lambda o: optim.ReduceLROnPlateau(o, cooldown=1.5), "invalid cooldown 1.5"),
    (lambda o: optim.ReduceLROnPlateau(o, threshold=-1e-4), "invalid threshold"),
    (lambda o: optim.ReduceLROnPlateau(o, min_lr=[0.1, 0.2]), "got 2 min_lrs for 1 parameter groups"),
])
def test_schedule_errors(make, match):
    with pytest.raises(ValueError, match=match):
        make(one_param_pair(0.1)[0])


# ------------------------------------------------------------------ ReduceLROnPlateau
# Improvements, ties, gains too small for the threshold, and long plateaus, then random stalls.
SCRIPT = [1.0, 0.8, 0.8, 0.79995, 0.79, 0.85, 0.7, 0.7, 0.7, 0.7, 0.69999, 0.69, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5,
          0.4, 0.45, 0.45, 0.45, 0.45, 0.45, 0.45, 0.45, 0.45, 0.39996, 0.39, 0.39]
SCRIPT += np.round(np.random.default_rng(0).uniform(0.3, 0.4, 40), 2).tolist()

PLATEAU_CONFIGS = [
    dict(),
    dict(patience=0),
    dict(patience=2, factor=0.5),
    dict(patience=1, cooldown=2, factor=0.5),
    dict(patience=2, threshold=0.02),
    dict(patience=2, threshold=0.05, threshold_mode="abs"),
    dict(patience=1, threshold=0.0, threshold_mode="abs", cooldown=1),
    dict(patience=1, factor=0.5, min_lr=0.02),
    dict(patience=1, factor=0.5, min_lr=[0.01, 0.2]),
    dict(patience=0, factor=0.9, eps=0.02),  # cuts smaller than eps are skipped
    dict(mode="max", patience=1, factor=0.5),
    dict(mode="max", patience=2, threshold=0.03, threshold_mode="abs", cooldown=1, factor=0.5),
]


@pytest.mark.parametrize("kwargs", PLATEAU_CONFIGS)
def test_reduce_on_plateau_matches_torch(kwargs):
    opt, topt = two_group_pair()
    sched = optim.ReduceLROnPlateau(opt, **kwargs)
    tsched = torch.optim.lr_scheduler.ReduceLROnPlateau(topt, **kwargs)
    sign = -1 if kwargs.get("mode") == "max" else 1  # max mode sees the mirrored script
    cuts = 0
    for step, metric in enumerate(SCRIPT):
        before = sched.get_last_lr()
        sched.step(sign * metric)
        tsched.step(sign * metric)
        assert sched.get_last_lr() == tsched.get_last_lr() == [g["lr"] for g in opt.param_groups], f"step {step}"
        assert (sched.best, sched.num_bad_epochs, sched.cooldown_counter, sched.last_epoch) == \
               (tsched.best, tsched.num_bad_epochs, tsched.cooldown_counter, tsched.last_epoch), f"step {step}"
        cuts += sched.get_last_lr() != before
    assert cuts >= 2  # the script really exercises the cuts


def test_reduce_on_plateau_takes_tensors_and_round_trips_mid_run(tmp_path):
    def make():
        opt, _ = two_group_pair()
        return opt, optim.ReduceLROnPlateau(opt, patience=1, cooldown=2, factor=0.5)

    opt, sched = make()
    assert isinstance(sched, optim.LRScheduler) and sched.get_last_lr() == [0.1, 0.3]
    for metric in SCRIPT:
        sched.step(Tensor(metric))
    expected = sched.get_last_lr()

    opt, sched = make()
    for metric in SCRIPT[:25]:
        sched.step(np.float64(metric))
    fs.save({**{f"o.{k}": v for k, v in opt.state_dict().items()},
             **{f"s.{k}": v for k, v in sched.state_dict().items()}}, tmp_path / "c.safetensors")
    loaded = fs.load(tmp_path / "c.safetensors")
    opt, sched = make()
    opt.load_state_dict({k[2:]: v for k, v in loaded.items() if k.startswith("o.")})
    sched.load_state_dict({k[2:]: v for k, v in loaded.items() if k.startswith("s.")})
    assert sched.last_epoch == 25 and sched.get_last_lr() == [g["lr"] for g in opt.param_groups] != [0.1, 0.3]
    for metric in SCRIPT[25:]:
        sched.step(metric)
    assert sched.get_last_lr() == expected
    with pytest.raises(ValueError, match=r"ReduceLROnPlateau.load_state_dict: missing \['best'\]"):
        sched.load_state_dict({k[2:]: v for k, v in loaded.items() if k.startswith("s.") and k != "s.best"})
