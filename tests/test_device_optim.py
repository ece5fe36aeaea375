"""Optimizers, schedules, clipping, checkpoints, data and a whole Transformer step on a device.

The device runs must give the CPU's numbers (float64, to 1e-10) and keep every parameter, gradient and
piece of optimizer state on the device; checkpoints go through the host (``save``/``load``) and come back
onto the parameters' device.
"""
import numpy as np
import pytest
import torch

import from_scratch as fs
from from_scratch import Tensor, backend, nn, optim
from from_scratch import functional as F
from from_scratch.data import DataLoader, TensorDataset, default_collate
from from_scratch.tasks.reverse import PAD, ReverseConfig, build_model, greedy_decode, make_batch
from from_scratch.tasks.reverse.train import make_optimizer
from conftest import assert_on_device

TOL = dict(rtol=1e-10, atol=1e-12)
X = np.random.default_rng(0).standard_normal((6, 3))

OPTIMIZERS = {
    "SGD momentum nesterov": lambda ps: optim.SGD(ps, lr=0.1, momentum=0.9, nesterov=True, weight_decay=0.01),
    "SGD momentum dampening": lambda ps: optim.SGD(ps, lr=0.1, momentum=0.9, dampening=0.1),
    "Adam": lambda ps: optim.Adam(ps, lr=0.05, weight_decay=0.01),
    "AdamW": lambda ps: optim.AdamW(ps, lr=0.05),
    "RMSprop centered momentum": lambda ps: optim.RMSprop(ps, lr=0.01, momentum=0.5, centered=True, weight_decay=0.1),
    "Adagrad": lambda ps: optim.Adagrad(ps, lr=0.1, lr_decay=0.01, weight_decay=0.01, initial_accumulator_value=0.1),
}


def _model(device):
    """A small float64 model on ``device``; ``extra`` gets a gradient on even steps only (a missed step)."""
    fs.manual_seed(0)
    model = nn.Sequential(nn.Linear(3, 4), nn.Tanh(), nn.Linear(4, 2))
    model.extra = nn.Parameter(np.linspace(-1, 1, 5), dtype=np.float64)
    for p in model.parameters():
        p.data = p.data.astype(np.float64)
    return model.to(device)


def _steps(model, opt, device, steps, start=0):
    for k in range(start, start + steps):
        opt.zero_grad()
        loss = (model(Tensor(X, dtype=np.float64, device=device)) ** 2).mean()
        if k % 2 == 0:
            loss = loss + (model.extra * model.extra).sum() * 0.1
        loss.backward()
        opt.step()


def _assert_same(model, ref, what, **tol):
    for (name, p), q in zip(model.named_parameters(), ref.parameters()):
        np.testing.assert_allclose(p.numpy(), q.numpy(), **{**TOL, **tol}, err_msg=f"{what}: {name}")


@pytest.mark.parametrize("name", OPTIMIZERS)
def test_five_steps_on_device_follow_the_cpu_trajectory(name, device):
    ref, model = _model("cpu"), _model(device)
    ref_opt, opt = OPTIMIZERS[name](ref.parameters()), OPTIMIZERS[name](model.parameters())
    _steps(ref, ref_opt, "cpu", 5)
    _steps(model, opt, device, 5)
    _assert_same(model, ref, name)
    assert opt.state, f"{name} kept no state"
    assert_on_device(device, model, opt)


@pytest.mark.parametrize("name", OPTIMIZERS)
def test_optimizer_state_round_trips_through_save_and_load_onto_the_device(name, device, tmp_path):
    ref, model = _model("cpu"), _model(device)
    ref_opt, opt = OPTIMIZERS[name](ref.parameters()), OPTIMIZERS[name](model.parameters())
    _steps(ref, ref_opt, "cpu", 5)
    _steps(model, opt, device, 3)
    state = opt.state_dict()
    assert_on_device(device, [v for k, v in state.items() if k.startswith("state.") and v.ndim])
    fs.save(state, tmp_path / "opt.safetensors")
    fs.save(model.state_dict(), tmp_path / "model.safetensors")
    # A fresh model and optimizer on the device continue from the checkpoint as if never stopped.
    model2 = _model(device)
    opt2 = OPTIMIZERS[name](model2.parameters())
    model2.load_state_dict(fs.load(tmp_path / "model.safetensors"))
    opt2.load_state_dict(fs.load(tmp_path / "opt.safetensors"))
    assert_on_device(device, model2, opt2)
    _steps(model2, opt2, device, 2, start=3)
    _assert_same(model2, ref, name)
    assert_on_device(device, model2, opt2)


def test_schedule_state_round_trips_beside_a_device_optimizer(device, tmp_path):
    model = _model(device)
    opt = optim.Adam(model.parameters(), lr=0.1)
    sched = optim.WarmupCosineLR(opt, 2, 10)
    _steps(model, opt, device, 3)
    for _ in range(3):
        sched.step()
    fs.save(sched.state_dict(), tmp_path / "s.safetensors")
    opt2 = optim.Adam(_model(device).parameters(), lr=0.1)
    sched2 = optim.WarmupCosineLR(opt2, 2, 10)
    sched2.load_state_dict(fs.load(tmp_path / "s.safetensors"))
    assert sched2.last_epoch == 3 and opt2.lr == opt.lr


def test_clip_grad_norm_on_device_matches_the_cpu_and_stays_there(device):
    ref, model = _model("cpu"), _model(device)
    for m, dev in ((ref, "cpu"), (model, device)):
        (m(Tensor(X, dtype=np.float64, device=dev)) ** 2).sum().backward()
    expected = optim.clip_grad_norm_(ref.parameters(), 0.5)
    total = optim.clip_grad_norm_(model.parameters(), 0.5)
    assert isinstance(total, Tensor) and total.shape == () and total.dtype == np.float64
    assert total.item() == pytest.approx(expected.item(), rel=1e-12) and expected.item() > 0.5
    assert_on_device(device, model, total)
    for p, q in zip(model.parameters(), ref.parameters()):
        if q.grad is not None:
            np.testing.assert_allclose(backend.as_numpy(p.grad), q.grad, **TOL)



GRADS = [np.random.default_rng(3).standard_normal(shape) for shape in ((3, 4), (5,), (2, 2))]


def _clip_on(device: str, grads: list, max_norm: float, dtype=np.float64) -> tuple[Tensor, list]:
    params = [Tensor(np.zeros(g.shape), requires_grad=True, dtype=dtype, device=device) for g in grads]
    for p, g in zip(params, grads):
        p.grad = backend.to_device(g.astype(dtype), device)
    return optim.clip_grad_norm_(params, max_norm), params


@pytest.mark.parametrize("dtype, rtol", [(np.float64, 1e-12), (np.float32, 1e-6)])
@pytest.mark.parametrize("max_norm", [0.5, 100.0])  # clipping, and not
def test_clip_grad_norm_reads_nothing_back_and_scales_as_torch(host_copies, max_norm, dtype, rtol):
    """No host read on a device: the norm and the coefficient min(max_norm / (norm + 1e-6), 1) stay there; the
    gradients are scaled as torch.nn.utils.clip_grad_norm_ scales them, whose norm (a 0-d tensor) it returns."""
    tparams = [torch.zeros(g.shape, dtype=getattr(torch, np.dtype(dtype).name)) for g in GRADS]
    for tp, g in zip(tparams, GRADS):
        tp.grad = torch.tensor(g.astype(dtype))
    ref = torch.nn.utils.clip_grad_norm_(tparams, max_norm)
    for device in ("cpu", "strict"):
        host_copies.clear()
        total, params = _clip_on(device, GRADS, max_norm, dtype)
        assert not host_copies
        assert isinstance(total, Tensor) and total.shape == () and total.dtype == dtype
        assert_on_device(device, total, *params)
        assert total.item() == pytest.approx(ref.item(), rel=rtol)
        for p, tp in zip(params, tparams):
            assert p.grad.dtype == dtype
            np.testing.assert_allclose(backend.as_numpy(p.grad), tp.grad.numpy(), rtol=rtol, atol=0, err_msg=device)


@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_clip_grad_norm_skips_a_non_finite_norm_on_the_device(host_copies, bad):
    """Our convention (README "Conventions"): a NaN/inf norm is returned and every gradient is left exactly as
    it is (PyTorch multiplies them by NaN), decided on the device without a read."""
    grads = [g.copy() for g in GRADS]
    grads[1][2] = bad
    for device in ("cpu", "strict"):
        host_copies.clear()
        total, params = _clip_on(device, grads, 0.5)
        assert not host_copies
        np.testing.assert_array_equal(total.item(), bad)
        for p, g in zip(params, grads):
            np.testing.assert_array_equal(backend.as_numpy(p.grad), g, err_msg=device)


def test_clip_grad_norm_without_gradients_is_a_zero_tensor():
    p = Tensor(np.zeros(2), requires_grad=True)
    total = optim.clip_grad_norm_([p], 1.0)
    assert isinstance(total, Tensor) and total.shape == () and total.item() == 0.0 and p.grad is None


def test_default_collate_keeps_device_samples_on_their_device(device):
    xs = Tensor(np.arange(12.0).reshape(6, 2), device=device)
    ys = Tensor(np.arange(6), device=device)
    batches = list(DataLoader(TensorDataset(xs, ys), batch_size=4))
    assert [b[0].shape for b in batches] == [(4, 2), (2, 2)]
    assert_on_device(device, batches)
    np.testing.assert_array_equal(batches[1][1].numpy(), [4, 5])
    raw = default_collate([xs.data[0], xs.data[1]])  # bare device arrays too
    assert raw.shape == (2, 2) and raw.device == backend.device(device)


# ---------------------------------------------------------------- the reversal Transformer

CONFIG = ReverseConfig(hidden_size=16, num_layers=1, num_heads=2, ff_size=32, max_positions=16, max_len=5,
                       dropout=0.0, lr=1e-2, warmup=2, steps=4)
SEQS = [np.array([3, 1, 4, 1, 5]), np.array([9, 2]), np.array([6, 5, 3])]


def _reverse_model(device):
    fs.manual_seed(0)
    model = build_model(CONFIG)
    for p in model.parameters():
        p.data = p.data.astype(np.float64)
    model.pos_encoding.pe.data = model.pos_encoding.pe.data.astype(np.float64)
    return model.to(device)


def _on(device, *arrays):
    return [Tensor(a.data if isinstance(a, Tensor) else a, dtype=(a.data if isinstance(a, Tensor) else a).dtype,
                   device=device) for a in arrays]


def _train_steps(model, device, steps=2):
    optimizer, scheduler = make_optimizer(model, CONFIG)
    batch = make_batch(SEQS, CONFIG.layout)
    src, tgt_in, tgt_out, src_mask, tgt_mask = _on(device, batch.src, batch.tgt_in, batch.tgt_out, batch.src_mask,
                                                   batch.tgt_mask)
    for _ in range(steps):
        logits = model(src, tgt_in, src_mask, tgt_mask)
        loss = F.cross_entropy(logits, tgt_out, ignore_index=PAD, label_smoothing=CONFIG.label_smoothing)
        optimizer.zero_grad()
        loss.backward()
        optim.clip_grad_norm_(model.parameters(), CONFIG.clip_norm)
        optimizer.step()
        scheduler.step()
    return loss, optimizer


def test_transformer_training_steps_on_device_equal_the_cpu(device):
    ref, model = _reverse_model("cpu"), _reverse_model(device)
    ref_loss, _ = _train_steps(ref, "cpu")
    loss, optimizer = _train_steps(model, device)
    assert_on_device(device, model, optimizer, loss)
    assert loss.item() == pytest.approx(ref_loss.item(), rel=1e-10)
    # The attention's key biases get no true gradient (softmax ignores a constant added to a row of scores):
    # what they get is rounding noise of ~1e-11, which the device path (each row shifted by its own max,
    # the CPU's by the overall max) rounds differently. Hence an absolute tolerance far below the weights' 0.1.
    _assert_same(model, ref, "Transformer", atol=1e-9)


def _greedy_on(model, src, layout, device):
    """Greedy decoding with the KV cache on ``device``; the bookkeeping (which rows are done) on the host."""
    src_mask = F.create_padding_mask(src, PAD)
    src_t, src_mask = _on(device, src, src_mask)
    out = [[] for _ in src]
    alive = np.arange(len(src))
    with fs.no_grad():
        memory = model.encode(src_t, src_mask)
        cache = model.init_cache()
        tokens = Tensor(np.full((len(src), 1), layout.sos), device=device)
        for _ in range(2 * src.shape[1] + 1):
            logits = model.decode_step(tokens, memory, src_mask, cache)
            assert_on_device(device, logits, *[t for layer in cache for t in layer.values()])
            nxt = logits.data.argmax(axis=-1)
            host = backend.as_numpy(nxt)
            for row, tok in zip(alive, host):
                out[row].append(int(tok))
            keep = np.flatnonzero(host != layout.eos)
            if keep.size == 0:
                break
            alive, tokens = alive[keep], Tensor(nxt[:, None]) [backend.to_device(keep, device)]
            memory, src_mask = memory[backend.to_device(keep, device)], src_mask[backend.to_device(keep, device)]
            model.reorder_cache(cache, keep)  # host rows into a device cache
    return [np.array(o) for o in out]


def test_greedy_decode_with_the_kv_cache_on_device_equals_the_cpu(device):
    ref, model = _reverse_model("cpu"), _reverse_model(device)
    _train_steps(ref, "cpu", steps=3)
    _train_steps(model, device, steps=3)
    src = make_batch(SEQS, CONFIG.layout).src
    expected = greedy_decode(ref, src, CONFIG.layout, max_new_tokens=2 * src.shape[1] + 1)
    got = _greedy_on(model, src, CONFIG.layout, device)
    assert [list(g) for g in got] == [list(e) for e in expected]
    # and the logits of one cached step equal the full forward's last position, on the device
    fs.manual_seed(0)
    tgt = np.array([[CONFIG.layout.sos, 4, 2]] * 3)
    full = model(*_on(device, src, tgt))[:, -1]
    src_t, tgt_t = _on(device, src, tgt)
    cache = model.init_cache()
    memory = model.encode(src_t)
    for t in range(3):
        step = model.decode_step(tgt_t[:, t:t + 1], memory, None, cache)
    np.testing.assert_allclose(step.numpy(), full.numpy(), **TOL)
