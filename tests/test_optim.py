"""Optimizers and clipping against torch.optim, state_dict round trips, dtypes, errors (schedules: own file)."""
import copy
import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import from_scratch as fs
from from_scratch import Tensor, optim

STEPS = 20
F64 = np.float64


# ------------------------------------------------------------------ a small MLP regression problem
def make_init(seed=0):
    """Initial arrays: w1, b1, w2, b2, and a last parameter the loss never uses (its grad stays None)."""
    rng = np.random.default_rng(seed)
    return [rng.standard_normal((4, 8)) * 0.5, rng.standard_normal(8) * 0.1, rng.standard_normal((8, 1)) * 0.5,
            rng.standard_normal(1) * 0.1, rng.standard_normal(3)]


_rng = np.random.default_rng(123)
X, Y = _rng.standard_normal((16, 4)), _rng.standard_normal((16, 1))


def fs_loss(params):
    w1, b1, w2, b2, _ = params
    h = (Tensor(X, dtype=F64) @ w1 + b1).tanh()
    return ((h @ w2 + b2 - Tensor(Y, dtype=F64)) ** 2).mean()


def torch_loss(params):
    w1, b1, w2, b2, _ = params
    h = torch.tanh(torch.from_numpy(X) @ w1 + b1)
    return ((h @ w2 + b2 - torch.from_numpy(Y)) ** 2).mean()


def fs_params(init):
    return [Tensor(a.copy(), requires_grad=True, dtype=F64) for a in init]


def fs_train(opt, params, steps, clip=None, sched=None):
    """Run ``steps`` updates; return per step the parameter values and clip's returned norm."""
    out = []
    for _ in range(steps):
        opt.zero_grad()
        fs_loss(params).backward()
        norm = optim.clip_grad_norm_(params, clip).item() if clip else None
        opt.step()
        if sched is not None:
            sched.step()
        out.append(([p.data.copy() for p in params], norm))
    return out


def torch_train(opt, params, steps, clip=None):
    out = []
    for _ in range(steps):
        opt.zero_grad()
        torch_loss(params).backward()
        norm = torch.nn.utils.clip_grad_norm_(params, clip).item() if clip else None
        opt.step()
        out.append(([p.detach().numpy().copy() for p in params], norm))
    return out


CONFIGS = [
    ("SGD", dict(lr=0.1)),
    ("SGD", dict(lr=0.1, momentum=0.9)),
    ("SGD", dict(lr=0.1, momentum=0.9, nesterov=True)),
    ("SGD", dict(lr=0.1, weight_decay=0.05)),
    ("SGD", dict(lr=0.05, momentum=0.8, dampening=0.3, weight_decay=0.05)),
    ("SGD", dict(lr=0.05, momentum=0.9, nesterov=True, weight_decay=0.05)),
    ("Adam", dict(lr=0.02)),
    ("Adam", dict(lr=0.02, weight_decay=0.1)),
    ("Adam", dict(lr=0.02, betas=(0.8, 0.95), eps=1e-6)),
    ("AdamW", dict(lr=0.02)),
    ("AdamW", dict(lr=0.02, betas=(0.85, 0.99), weight_decay=0.3)),
]


@pytest.mark.parametrize("clip", [None, 0.3])
@pytest.mark.parametrize("name,kwargs", CONFIGS)
def test_trajectory_matches_torch(name, kwargs, clip):
    init = make_init()
    params, tparams = fs_params(init), [torch.tensor(a, requires_grad=True) for a in init]
    ours = fs_train(getattr(optim, name)(params, **kwargs), params, STEPS, clip)
    theirs = torch_train(getattr(torch.optim, name)(tparams, **kwargs), tparams, STEPS, clip)
    for step, ((ps, norm), (tps, tnorm)) in enumerate(zip(ours, theirs)):
        for p, tp in zip(ps, tps):
            np.testing.assert_allclose(p, tp, rtol=1e-6, atol=1e-6, err_msg=f"{name} {kwargs} step {step}")
        if clip:
            assert isinstance(norm, float) and norm == pytest.approx(tnorm, rel=1e-9)
    if clip:  # the clipping really happened, so the test covers it
        assert max(norm for _, norm in ours) > clip
    assert np.array_equal(ours[-1][0][4], init[4])  # the parameter without a gradient never moved
    assert not np.allclose(ours[-1][0][0], init[0])


def test_param_groups_match_torch():
    init = make_init(1)
    params, tparams = fs_params(init), [torch.tensor(a, requires_grad=True) for a in init]
    groups = lambda ps: [{"params": ps[:2]}, {"params": ps[2:], "lr": 0.05, "momentum": 0.5}]  # noqa: E731
    opt = optim.SGD(groups(params), lr=0.1, momentum=0.9)
    ours = fs_train(opt, params, STEPS)
    theirs = torch_train(torch.optim.SGD(groups(tparams), lr=0.1, momentum=0.9), tparams, STEPS)
    for p, tp in zip(ours[-1][0], theirs[-1][0]):
        np.testing.assert_allclose(p, tp, rtol=1e-6, atol=1e-6)
    assert [g["lr"] for g in opt.param_groups] == [0.1, 0.05]


def test_params_may_be_a_generator_and_zero_grad_sets_none():
    params = fs_params(make_init())
    opt = optim.Adam(p for p in params)
    fs_loss(params).backward()
    assert params[0].grad is not None
    opt.zero_grad()
    assert all(p.grad is None for p in params)
    opt.step()  # nothing has a gradient: nothing moves, no state is made
    assert opt.state == {}


def test_setting_lr_takes_effect():
    p = Tensor(np.array([1.0, 2.0]), requires_grad=True, dtype=F64)
    opt = optim.SGD([p], lr=0.1)
    opt.lr = np.float64(0.5)
    assert opt.lr == 0.5 and type(opt.lr) is float  # a NumPy scalar would upcast float32 updates
    p.grad = np.array([1.0, -2.0])
    opt.step()
    np.testing.assert_array_equal(p.data, [0.5, 3.0])


# ------------------------------------------------------------------ clip_grad_norm_
def test_clip_below_max_norm_leaves_grads_alone():
    a, b, c = (Tensor(np.zeros(3), requires_grad=True, dtype=F64) for _ in range(3))
    a.grad, b.grad = np.array([3.0, 0.0, 0.0]), np.array([0.0, 4.0, 0.0])
    assert optim.clip_grad_norm_([a, b, c], 10.0) == 5.0
    np.testing.assert_array_equal(a.grad, [3.0, 0, 0])
    assert c.grad is None
    assert optim.clip_grad_norm_([a, b], 1.0) == 5.0  # above: scaled by 1 / (5 + 1e-6), as torch
    np.testing.assert_allclose(b.grad, [0.0, 4.0 / (5 + 1e-6), 0.0], rtol=1e-15)


def test_clip_single_tensor_and_zero_grad():
    a = Tensor(np.zeros(4), requires_grad=True, dtype=F64)
    a.grad = np.zeros(4)
    assert optim.clip_grad_norm_(a, 1.0) == 0.0
    assert np.array_equal(a.grad, np.zeros(4))


@settings(max_examples=30, deadline=None)
@given(st.lists(st.floats(-100, 100), min_size=1, max_size=12), st.floats(0.01, 50))
def test_clip_property(values, max_norm):
    ps = [Tensor(np.zeros(len(values)), requires_grad=True, dtype=F64) for _ in range(2)]
    ps[0].grad, ps[1].grad = np.array(values), np.array(values[::-1]) * 0.5
    tp = [torch.zeros(len(values), dtype=torch.float64) for _ in range(2)]
    tp[0].grad = torch.tensor(values, dtype=torch.float64)
    tp[1].grad = torch.tensor(values[::-1], dtype=torch.float64) * 0.5
    total = optim.clip_grad_norm_(ps, max_norm).item()
    assert total == pytest.approx(torch.nn.utils.clip_grad_norm_(tp, max_norm).item(), rel=1e-12, abs=1e-12)
    after = math.sqrt(sum(float(np.sum(p.grad ** 2)) for p in ps))
    assert after <= max_norm * (1 + 1e-12)
    assert after == pytest.approx(total * min(1.0, max_norm / (total + 1e-6)), rel=1e-12, abs=1e-12)
    for p, t in zip(ps, tp):
        np.testing.assert_allclose(p.grad, t.grad.numpy(), rtol=1e-12, atol=1e-12)


# ------------------------------------------------------------------ state_dict round trip
@pytest.mark.parametrize("name,kwargs", [("SGD", dict(lr=0.05, momentum=0.9, nesterov=True, weight_decay=0.01)),
                                         ("Adam", dict(lr=0.02, weight_decay=0.1)),
                                         ("AdamW", dict(lr=0.02, betas=(0.8, 0.99))),
                                         ("RMSprop", dict(lr=0.01, momentum=0.9, centered=True, weight_decay=0.01)),
                                         ("Adagrad", dict(lr=0.1, lr_decay=0.01, initial_accumulator_value=0.1))])
def test_state_dict_round_trip_is_bit_identical(name, kwargs, tmp_path):
    def make(params):
        opt = getattr(optim, name)(params, **kwargs)
        return opt, optim.WarmupCosineLR(opt, 3, 20, min_lr=1e-3)

    params = fs_params(make_init())
    opt, sched = make(params)
    uninterrupted = fs_train(opt, params, 20, clip=0.5, sched=sched)

    params = fs_params(make_init())
    opt, sched = make(params)
    fs_train(opt, params, 10, clip=0.5, sched=sched)
    state = {**{f"optimizer.{k}": v for k, v in opt.state_dict().items()},
             **{f"scheduler.{k}": v for k, v in sched.state_dict().items()},
             **{f"param.{i}": p.data for i, p in enumerate(params)}}
    assert all(isinstance(v, np.ndarray) for v in state.values())
    fs.save(state, tmp_path / "checkpoint.safetensors")
    loaded = fs.load(tmp_path / "checkpoint.safetensors")

    params = [Tensor(loaded[f"param.{i}"].copy(), requires_grad=True, dtype=F64) for i in range(5)]
    opt, sched = make(params)  # fresh: no state, lr at the schedule's start
    opt.load_state_dict({k[10:]: v for k, v in loaded.items() if k.startswith("optimizer.")})
    sched.load_state_dict({k[10:]: v for k, v in loaded.items() if k.startswith("scheduler.")})
    resumed = fs_train(opt, params, 10, clip=0.5, sched=sched)
    for (ps, _), (qs, _) in zip(uninterrupted[10:], resumed):
        for p, q in zip(ps, qs):
            assert p.dtype == q.dtype and np.array_equal(p, q)


def test_state_dict_is_a_snapshot_with_documented_keys():
    params = fs_params(make_init())
    opt = optim.Adam(params, lr=0.01)
    fs_train(opt, params, 2)
    sd = opt.state_dict()
    assert sd["param_groups.0.betas"].tolist() == [0.9, 0.999] and sd["param_groups.0.lr"].ndim == 0
    assert sd["param_groups.0.params"].tolist() == [0, 1, 2, 3, 4]
    assert sd["state.0.step"] == 2 and sd["state.0.exp_avg"].shape == (4, 8)
    assert not any(k.startswith("state.4.") for k in sd)  # the unused parameter has no state
    before = sd["state.0.exp_avg"].copy()
    fs_train(opt, params, 1)
    assert np.array_equal(sd["state.0.exp_avg"], before)


# ------------------------------------------------------------------ dtypes and in-place updates
@pytest.mark.parametrize("name,kwargs", CONFIGS)
def test_float32_params_stay_float32_and_update_in_place(name, kwargs):
    rng = np.random.default_rng(0)
    params = [Tensor(rng.standard_normal((3, 4)).astype(np.float32), requires_grad=True) for _ in range(2)]
    arrays = [p.data for p in params]
    opt = getattr(optim, name)(params, **kwargs)
    sched = optim.LambdaLR(opt, lambda e: 0.9 ** e)
    for _ in range(3):
        for p in params:
            p.grad = rng.standard_normal(p.shape).astype(np.float32)
        optim.clip_grad_norm_(params, 1.0)
        opt.step()
        sched.step()
    assert all(p.data is a and p.data.dtype == np.float32 for p, a in zip(params, arrays))
    assert all(v.dtype == np.float32 for s in opt.state.values() for v in s.values() if isinstance(v, np.ndarray))
    assert not np.allclose(params[0].data, rng.standard_normal((3, 4)))
    assert all(type(g[k]) is float for g in opt.param_groups for k in ("lr", "weight_decay"))


# ------------------------------------------------------------------ errors
def p1():
    return [Tensor(np.zeros(2), requires_grad=True)]


@pytest.mark.parametrize("make", [lambda: optim.SGD([], lr=0.1), lambda: optim.Adam(iter([])),
                                  lambda: optim.AdamW([{"params": []}])])
def test_empty_parameter_list(make):
    with pytest.raises(ValueError, match="optimizer got an empty parameter list"):
        make()


@pytest.mark.parametrize("make,match", [
    (lambda: optim.SGD(p1(), lr=-0.1), "learning rate -0.1"),
    (lambda: optim.SGD(p1(), lr=float("nan")), "learning rate nan"),
    (lambda: optim.SGD(p1(), lr=0.1, momentum=-0.5), "momentum -0.5"),
    (lambda: optim.SGD(p1(), lr=0.1, weight_decay=-1e-4), "weight_decay -0.0001"),
    (lambda: optim.SGD(p1(), lr=0.1, nesterov=True), "nesterov True"),
    (lambda: optim.Adam(p1(), lr=-1.0), "learning rate -1.0"),
    (lambda: optim.Adam(p1(), betas=(1.0, 0.999)), "beta at index 0: 1.0|beta at index 0 1.0"),
    (lambda: optim.Adam(p1(), betas=(0.9, -0.1)), "beta at index 1 -0.1"),
    (lambda: optim.AdamW(p1(), eps=-1e-8), "eps -1e-08"),
    (lambda: optim.AdamW(p1(), weight_decay=-0.01), "weight_decay -0.01"),
    (lambda: optim.Adam([{"params": p1(), "lr": -2.0}]), "learning rate -2.0"),
    (lambda: optim.Adam([{"params": p1(), "momentum": 0.9}]), "unknown hyperparameters \\['momentum'\\]"),
    (lambda: optim.WarmupCosineLR(optim.SGD(p1()), 10, 10), "total_steps 10"),
    (lambda: optim.WarmupCosineLR(optim.SGD(p1()), -1, 10), "warmup_steps -1"),
    (lambda: optim.NoamLR(optim.SGD(p1()), 0, 10), "d_model 0"),
    (lambda: optim.NoamLR(optim.SGD(p1()), 64, 0), "warmup_steps 0"),
    (lambda: optim.LambdaLR(optim.SGD(p1()), [abs, abs]), "2 lr_lambdas for 1 parameter groups"),
])
def test_bad_hyperparameters(make, match):
    with pytest.raises(ValueError, match=match):
        make()


def test_bad_parameters_and_lr_assignment():
    with pytest.raises(TypeError, match="got ndarray"):
        optim.SGD([np.zeros(3)], lr=0.1)
    p = p1()
    with pytest.raises(ValueError, match="more than once"):
        optim.SGD(p + p, lr=0.1)
    with pytest.raises(ValueError, match="more than once"):
        optim.SGD([{"params": p}, {"params": p}], lr=0.1)
    opt = optim.SGD(p, lr=0.1)
    with pytest.raises(ValueError, match="learning rate -3.0"):
        opt.lr = -3.0
    assert opt.lr == 0.1


def test_load_state_dict_rejects_mismatches_and_changes_nothing():
    params = fs_params(make_init())
    adam = optim.Adam(params, lr=0.01)
    fs_train(adam, params, 2)
    sd = adam.state_dict()
    sgd = optim.SGD(params, lr=0.1)
    with pytest.raises(ValueError, match="another optimizer"):
        sgd.load_state_dict(sd)
    with pytest.raises(ValueError, match="saved state has 1 parameter groups, this optimizer has 2"):
        optim.Adam([{"params": params[:2]}, {"params": params[2:]}]).load_state_dict(sd)
    with pytest.raises(ValueError, match="saved with 5 parameters, this optimizer has 4"):
        optim.Adam(params[:4]).load_state_dict(sd)
    fresh = optim.Adam(params, lr=0.5)
    bad = {**sd, "state.1.exp_avg": np.zeros(3)}
    with pytest.raises(ValueError, match=r"state.1.exp_avg has shape \(3,\), parameter 1 has shape \(8,\)"):
        fresh.load_state_dict(bad)
    with pytest.raises(ValueError, match="unexpected key 'momentum'"):
        fresh.load_state_dict({**sd, "momentum": np.zeros(1)})
    assert fresh.lr == 0.5 and fresh.state == {}


# ------------------------------------------------------------------ Adam's cached flat buffers
ADAM_CONFIGS = [("Adam", dict(lr=0.02)), ("Adam", dict(lr=0.02, weight_decay=0.1)),
                ("AdamW", dict(lr=0.02, weight_decay=0.3))]


@pytest.mark.parametrize("name,kwargs", ADAM_CONFIGS)
def test_adam_cache_follows_every_change_between_steps_like_torch(name, kwargs):
    # Adam keeps its flat buffers from step to step; each event below must be seen as torch sees it.
    init = make_init(2)
    params, tparams = fs_params(init), [torch.tensor(a, requires_grad=True) for a in init]
    groups = lambda ps: [{"params": ps[:2]}, {"params": ps[2:], "lr": 0.01}]  # noqa: E731
    opt, topt = getattr(optim, name)(groups(params), **kwargs), getattr(torch.optim, name)(groups(tparams), **kwargs)
    arrays = [p.data for p in params]
    for step in range(18):
        opt.zero_grad()
        topt.zero_grad()
        fs_loss(params).backward()
        torch_loss(tparams).backward()
        if step in (3, 4):  # w2 misses two steps (its step count and bias corrections lag) while the
            params[2].grad = tparams[2].grad = None  # unused parameter has one: as many gradients, not the same
            params[4].grad, tparams[4].grad = np.full(3, 0.5), torch.full((3,), 0.5, dtype=torch.float64)
        if step == 5:  # hyperparameters change between steps
            for o in (opt, topt):
                o.param_groups[1]["lr"] = 0.05
                o.param_groups[0]["betas"] = (0.8, 0.99)
        if step == 6:
            snapshot, tsnapshot = opt.state_dict(), copy.deepcopy(topt.state_dict())
        if step == 7:  # a new .data array, as Module.load_state_dict assigns
            params[2].data = params[2].data * 0.5
            tparams[2].data = tparams[2].data * 0.5
            arrays[2] = params[2].data
        if step == 9:  # moments rebound by hand
            opt.state[params[3]]["exp_avg"] = np.ones_like(params[3].data)
            topt.state[tparams[3]]["exp_avg"] = torch.ones_like(tparams[3])
            opt.state[params[1]]["exp_avg_sq"] = np.full_like(params[1].data, 0.01)
            topt.state[tparams[1]]["exp_avg_sq"] = torch.full_like(tparams[1], 0.01)
        if step == 11:
            opt.load_state_dict(snapshot)
            topt.load_state_dict(tsnapshot)
        if step == 13:  # a reset: every step count starts again from 1
            opt.state.clear()
            topt.state.clear()
        if step == 15:  # a non-contiguous gradient takes the np.concatenate path
            params[0].grad = np.asfortranarray(params[0].grad)
            assert not params[0].grad.flags.c_contiguous
        opt.step()
        topt.step()
        for i, (p, tp) in enumerate(zip(params, tparams)):
            np.testing.assert_allclose(p.data, tp.detach().numpy(), rtol=1e-6, atol=1e-6,
                                       err_msg=f"{name} {kwargs} step {step} parameter {i}")
            assert p.data is arrays[i]  # updated in place
        steps = [opt.state[p]["step"] for p in params[:4]]
        assert steps == [int(topt.state[tp]["step"]) for tp in tparams[:4]], f"step {step}"
    assert steps == [5, 5, 5, 5] and params[4] not in opt.state


def test_adam_gradients_of_another_dtype_are_cast_and_of_the_wrong_size_rejected():
    # Gradients are joined as raw bytes when they have the parameters' dtype, else cast by np.concatenate:
    # float64 and float16 gradients whose bytes add up to those of float32 ones must still be cast.
    pairs = [[Tensor(np.zeros(n, np.float32), requires_grad=True) for n in (2, 4)] for _ in range(2)]
    for (a, b), dtypes in zip(pairs, [(np.float32, np.float32), (np.float64, np.float16)]):
        a.grad, b.grad = np.array([1.0, -2.0], dtypes[0]), np.array([0.5, 1.0, -1.0, 3.0], dtypes[1])
        optim.Adam([a, b], lr=0.1).step()
    assert all(p.data.dtype == np.float32 and np.array_equal(p.data, q.data) for p, q in zip(*pairs))
    assert not np.array_equal(pairs[0][0].data, np.zeros(2))
    bad = Tensor(np.zeros(3, np.float32), requires_grad=True)
    bad.grad = np.ones(1, np.float32)  # the wrong size (and one that would broadcast)
    with pytest.raises(ValueError, match=r"Adam.step: the gradients \(shapes \[\(1,\)\]\) hold 1 values, the "
                                         r"optimizer's state 3"):
        optim.Adam([bad]).step()
