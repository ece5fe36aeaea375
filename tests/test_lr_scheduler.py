"""Learning-rate schedules (LambdaLR, WarmupCosineLR, NoamLR) against torch.optim.lr_scheduler and closed forms."""
import math

import numpy as np
import pytest
import torch

from from_scratch import Tensor, optim


def lr_sequence(sched, opt, steps):
    """The lr each of ``steps`` updates uses: read before each scheduler step."""
    out = []
    for _ in range(steps):
        assert sched.get_last_lr()[0] == opt.lr
        out.append(sched.get_last_lr())
        opt.step()
        sched.step()
    return out


def one_param_pair(lr):
    """An optimizer of ours and torch's, each over one parameter, at learning rate ``lr``."""
    return (optim.SGD([Tensor(np.zeros(2), requires_grad=True)], lr=lr),
            torch.optim.SGD([torch.zeros(2, requires_grad=True)], lr=lr))


def torch_lrs(sched, opt, steps):
    out = []
    for _ in range(steps):
        out.append(sched.get_last_lr())
        opt.step()
        sched.step()
    return out


def test_lambda_lr_matches_torch_with_groups():
    fn, fn2 = (lambda e: 0.95 ** e), (lambda e: 1.0 / (1 + e))
    opt = optim.SGD([{"params": [Tensor(np.zeros(2), requires_grad=True)]},
                     {"params": [Tensor(np.zeros(1), requires_grad=True)], "lr": 0.3}], lr=0.1)
    topt = torch.optim.SGD([{"params": [torch.zeros(2, requires_grad=True)]},
                            {"params": [torch.zeros(1, requires_grad=True)], "lr": 0.3}], lr=0.1)
    ours = lr_sequence(optim.LambdaLR(opt, [fn, fn2]), opt, 30)
    assert ours == torch_lrs(torch.optim.lr_scheduler.LambdaLR(topt, [fn, fn2]), topt, 30)
    assert ours[10] == [0.1 * 0.95 ** 10, 0.3 / 11]


def warmup_cosine(t, base, warmup, total, min_lr):
    if t < warmup:
        return base * (t + 1) / warmup
    s = min(t - warmup, total - warmup) / (total - warmup)
    return min_lr + (base - min_lr) * 0.5 * (1 + math.cos(math.pi * s))


@pytest.mark.parametrize("warmup,total,min_lr", [(5, 30, 0.0), (10, 25, 0.01), (1, 8, 0.002)])
def test_warmup_cosine_matches_closed_form_and_torch(warmup, total, min_lr):
    opt, topt = one_param_pair(0.1)
    ours = [lrs[0] for lrs in lr_sequence(optim.WarmupCosineLR(opt, warmup, total, min_lr), opt, total + 10)]
    assert ours == pytest.approx([warmup_cosine(t, 0.1, warmup, total, min_lr) for t in range(total + 10)],
                                 rel=1e-14, abs=1e-15)
    assert ours[warmup - 1] == pytest.approx(0.1) and ours[warmup] == pytest.approx(0.1)  # the peak
    assert ours[total:] == [min_lr] * 10 and max(ours) <= 0.1 * (1 + 1e-15)
    # torch: linear warmup from base / warmup, then cosine annealing, switched at the milestone
    lr_s = torch.optim.lr_scheduler
    chain = lr_s.SequentialLR(topt, [lr_s.LinearLR(topt, 1 / warmup, 1.0, total_iters=max(warmup - 1, 1)),
                                     lr_s.CosineAnnealingLR(topt, T_max=total - warmup, eta_min=min_lr)],
                              milestones=[warmup])
    assert ours[:total + 1] == pytest.approx([lr[0] for lr in torch_lrs(chain, topt, total + 1)], rel=1e-10)


def test_cosine_without_warmup_matches_torch_cosine_annealing():
    opt, topt = one_param_pair(0.2)
    ours = [lr[0] for lr in lr_sequence(optim.WarmupCosineLR(opt, 0, 20, min_lr=0.01), opt, 21)]
    cos = torch.optim.lr_scheduler.CosineAnnealingLR(topt, T_max=20, eta_min=0.01)
    assert ours == pytest.approx([lr[0] for lr in torch_lrs(cos, topt, 21)], rel=1e-12)


def test_noam_matches_paper_formula_and_torch_lambda():
    d_model, warmup, factor = 64, 10, 2.0
    opt, topt = one_param_pair(1.0)
    ours = [lr[0] for lr in lr_sequence(optim.NoamLR(opt, d_model, warmup, factor), opt, 40)]
    rate = lambda n: factor * d_model ** -0.5 * min(n ** -0.5, n * warmup ** -1.5)  # noqa: E731 (the paper's)
    assert ours == [rate(n) for n in range(1, 41)]
    # The Annotated Transformer's setup: LambdaLR over lr=1.0 (here with the update counted from 1)
    tl = torch.optim.lr_scheduler.LambdaLR(topt, lambda e: rate(e + 1))
    assert ours == [lr[0] for lr in torch_lrs(tl, topt, 40)]
    assert max(ours) == ours[warmup - 1] == pytest.approx(factor * (d_model * warmup) ** -0.5)
    assert all(a < b for a, b in zip(ours[:warmup - 1], ours[1:warmup]))  # linear rise, then 1/sqrt decay
    assert all(a > b for a, b in zip(ours[warmup:], ours[warmup + 1:]))


@pytest.mark.parametrize("make", [lambda o: optim.LambdaLR(o, lambda e: 0.9 ** e),
                                  lambda o: optim.WarmupCosineLR(o, 4, 20, 1e-3),
                                  lambda o: optim.NoamLR(o, 32, 5)])
def test_scheduler_state_round_trip(make):
    opt, _ = one_param_pair(0.1)
    sched = make(opt)
    full = lr_sequence(sched, opt, 20)
    opt, _ = one_param_pair(0.1)
    sched = make(opt)
    first = lr_sequence(sched, opt, 8)
    state = {k: v.copy() for k, v in sched.state_dict().items()}
    assert all(isinstance(v, np.ndarray) for v in state.values())
    opt2, _ = one_param_pair(0.7)  # a fresh optimizer whose lr the loaded schedule must overwrite
    sched2 = make(opt2)
    sched2.load_state_dict(state)
    assert first + lr_sequence(sched2, opt2, 12) == full
