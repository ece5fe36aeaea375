"""Run under ``mpiexec -n 2``: DDP and the collectives against single-process values, in one launch.

Every rank also trains a reference replica on the whole global batch, so the comparison needs no
second launch: after every step the DDP replica (trained on this rank's half) must match it within
1e-10 (float64) and match the other rank exactly. Prints ``ok <check>`` (rank 0) for each check passed;
any failure raises, which aborts the job with a non-zero exit.
"""
import copy
import sys
from pathlib import Path

import numpy as np

import from_scratch as fs
import from_scratch.distributed as dist
from from_scratch import functional as F
from from_scratch import nn
from from_scratch.optim import SGD, Adam, clip_grad_norm_

fs.set_default_dtype(np.float64)
dist.init_process_group()
rank, world = dist.get_rank(), dist.get_world_size()
assert world == 2, "run me with mpiexec -n 2"
GLOBAL_BATCH = 8


def ok(name):
    dist.barrier()
    if rank == 0:
        print("ok", name, flush=True)


def same_on_all_ranks(arrays, what):
    for i, a in enumerate(arrays):
        got = dist.all_gather([], np.ascontiguousarray(a))
        for r in range(1, world):
            assert np.array_equal(got[0], got[r]), f"{what}: array {i} differs between rank 0 and rank {r}"


def check_collectives():
    x = fs.Tensor(np.arange(6.0).reshape(2, 3) + 10 * rank)
    all_vals = [np.arange(6.0).reshape(2, 3) + 10 * r for r in range(world)]
    for op, expected in [("sum", sum(all_vals)), ("mean", sum(all_vals) / world),
                         ("max", np.maximum(*all_vals)), ("min", np.minimum(*all_vals))]:
        t = fs.Tensor(x.data.copy())
        assert dist.all_reduce(t, op=op) is t
        np.testing.assert_array_equal(t.data, expected, err_msg=f"all_reduce {op}")
    arr = np.array([rank + 1], dtype=np.int64)
    dist.all_reduce(arr)
    assert arr.tolist() == [3] and arr.dtype == np.int64
    f32 = np.full(4, rank, dtype=np.float32)
    dist.all_reduce(f32, op="mean")
    assert f32.dtype == np.float32 and np.all(f32 == 0.5)
    b = fs.Tensor(np.full((3,), float(rank)))
    dist.broadcast(b, src=1)
    np.testing.assert_array_equal(b.data, np.ones(3))
    gathered = dist.all_gather([], fs.Tensor(np.full((2,), float(rank))))
    assert [g.tolist() for g in gathered] == [[0.0, 0.0], [1.0, 1.0]]
    try:
        dist.all_gather([], np.zeros(2 + rank))
    except ValueError as e:
        assert "rank 1 has shape (3,)" in str(e), e
    else:
        raise AssertionError("all_gather of different shapes did not raise")
    ok("collectives")


def train_pair(name, make_model, make_opt, make_batch, loss_fn, steps=5, clip=None, micro=1, cap=0.001, **ddp_kw):
    """Train a reference on the global batch and a DDP replica on this rank's half; compare every step."""
    fs.manual_seed(1234 + rank)  # different init per rank: DDP's broadcast must make them equal
    local = make_model()
    fs.manual_seed(1234)
    ref = make_model()
    ddp = dist.DistributedDataParallel(local, bucket_cap_mb=cap, **ddp_kw)  # tiny buckets: several of them
    assert len(ddp._buckets) > 1, "the checks want several buckets"
    for p, q in zip(local.parameters(), ref.parameters()):
        np.testing.assert_array_equal(p.data, q.data, err_msg=f"{name}: broadcast at wrap")
    opt, ref_opt = make_opt(local.parameters()), make_opt(ref.parameters())
    rng = np.random.default_rng(7)
    for step in range(steps):
        batches = [make_batch(rng, GLOBAL_BATCH) for _ in range(micro)]
        ref_opt.zero_grad()
        for inputs, target in batches:  # the reference: micro-batches of the global batch, summed
            (loss_fn(ref(*map(fs.Tensor, inputs)), target) / micro).backward()
        ref_norm = clip_grad_norm_(ref.parameters(), clip).item() if clip else None
        ref_opt.step()
        opt.zero_grad()
        half = slice(rank * GLOBAL_BATCH // world, (rank + 1) * GLOBAL_BATCH // world)
        for i, (inputs, target) in enumerate(batches):
            shard = [fs.Tensor(x[half]) for x in inputs], target[half]
            if i < micro - 1:
                with ddp.no_sync():
                    (loss_fn(ddp(*shard[0]), shard[1]) / micro).backward()
            else:
                (loss_fn(ddp(*shard[0]), shard[1]) / micro).backward()
        if clip:
            norm = clip_grad_norm_(ddp.parameters(), clip).item()
            assert abs(norm - ref_norm) <= 1e-10 * ref_norm, f"{name}: clip norm {norm} vs global {ref_norm}"
            assert norm > clip, f"{name}: clipping must be active for the check to mean something"
        opt.step()
        for (pname, p), q in zip(local.named_parameters(), ref.parameters()):
            np.testing.assert_allclose(p.data, q.data, rtol=0, atol=1e-10, err_msg=f"{name} step {step}: {pname}")
        same_on_all_ranks([p.data for p in local.parameters()], f"{name} step {step}")
    ok(name)


def mlp_batch(rng, n):
    return [rng.standard_normal((n, 5))], rng.standard_normal((n, 3))


def lstm_batch(rng, n):
    return [rng.standard_normal((n, 4, 3))], rng.standard_normal((n, 4, 6))


def transformer_batch(rng, n):
    return [rng.integers(1, 11, (n, 6)), rng.integers(1, 11, (n, 5))], rng.integers(0, 11, (n, 5))


class LastOutput(nn.Module):
    def __init__(self):
        super().__init__()
        self.lstm = nn.LSTM(3, 6, num_layers=2, batch_first=True)

    def forward(self, x):
        return self.lstm(x)[0]


class PartlyUsed(nn.Module):
    def __init__(self):
        super().__init__()
        self.used, self.unused = nn.Linear(5, 3), nn.Linear(5, 3)

    def forward(self, x):
        return self.used(x)


def mlp():
    return nn.Sequential(nn.Linear(5, 16), nn.ReLU(), nn.Linear(16, 16), nn.Tanh(), nn.Linear(16, 3))


def transformer():
    return nn.Transformer(11, 16, 2, 2, 32, 16, 0.0, True)


def ce(logits, target):
    return F.cross_entropy(logits.reshape(-1, logits.shape[-1]), target.reshape(-1))


def sgd(params):
    return SGD(params, lr=0.1, momentum=0.9)


def adam(params):
    return Adam(params, lr=0.01)


def check_errors():
    fs.manual_seed(0)
    other = nn.Linear(5, 3 + rank)
    try:
        dist.DistributedDataParallel(nn.Sequential(other))
    except ValueError as e:
        assert "'0.weight' has shape (3, 5)" in str(e) and "(4, 5)" in str(e) and "rank 1" in str(e), e
    else:
        raise AssertionError("different models did not raise")
    ddp = dist.DistributedDataParallel(PartlyUsed())
    x = fs.Tensor(np.ones((2, 5)))
    ddp(x).sum().backward()
    try:
        ddp(x)
    except RuntimeError as e:
        assert "no gradient to ['unused.weight', 'unused.bias']" in str(e), e
    else:
        raise AssertionError("a parameter without gradient did not raise")
    ok("errors")


def check_overlap():
    """The first bucket (the last layer's gradients) starts reducing before backward reaches the first layer."""
    model = mlp()
    ddp = dist.DistributedDataParallel(model, bucket_cap_mb=0.001)
    first_layer_done, start = [], ddp._start
    ddp._start = lambda bucket: (first_layer_done.append(model[0].weight.grad is not None), start(bucket))
    inputs, target = mlp_batch(np.random.default_rng(0), 4)
    F.mse_loss(ddp(fs.Tensor(inputs[0])), target).backward()
    assert first_layer_done[0] is False and first_layer_done[-1] is True, first_layer_done
    assert len(first_layer_done) == len(ddp._buckets) > 1
    ok("overlap")


class Affine(nn.Module):
    def __init__(self):
        super().__init__()
        self.w = nn.Parameter(fs.randn(5, 3).data)
        self.b = nn.Parameter(fs.randn(3).data)

    def forward(self, x):
        return (x @ self.w + self.b).tanh()


def check_device():
    """The collectives and DDP on the strict test device (tests/strict_device.py): reduced through host
    buffers, results back on the device, the numbers of a CPU model trained on the global batch."""
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from strict_device import StrictArray, strict, to_host
    fs.backend.register_device("strict", strict, StrictArray, strict.asarray, to_host)
    on_device = lambda *ts: all(fs.backend.device_of(t.data) == "strict" for t in ts)  # noqa: E731
    t = fs.Tensor(np.arange(6.0) + 10 * rank, device="strict")
    assert dist.all_reduce(t, op="mean") is t and on_device(t)
    np.testing.assert_array_equal(t.numpy(), np.arange(6.0) + 5)
    b = fs.Tensor(np.full(3, float(rank)), device="strict")
    assert dist.broadcast(b, src=1) is b and on_device(b) and b.tolist() == [1.0] * 3
    gathered = dist.all_gather([], fs.Tensor(np.full(2, float(rank)), device="strict"))
    assert on_device(*gathered) and [g.tolist() for g in gathered] == [[0.0, 0.0], [1.0, 1.0]]
    fs.manual_seed(1234 + rank)
    local = Affine().to("strict")
    fs.manual_seed(1234)
    ref = Affine()
    ddp = dist.DistributedDataParallel(local, bucket_cap_mb=0.0001)
    opt, ref_opt = sgd(local.parameters()), sgd(ref.parameters())
    rng = np.random.default_rng(7)
    for step in range(3):
        (x,), y = mlp_batch(rng, GLOBAL_BATCH)
        ref_opt.zero_grad()
        F.mse_loss(ref(fs.Tensor(x)), y).backward()
        ref_opt.step()
        half = slice(rank * GLOBAL_BATCH // world, (rank + 1) * GLOBAL_BATCH // world)
        opt.zero_grad()
        F.mse_loss(ddp(fs.Tensor(x[half], device="strict")), fs.Tensor(y[half], device="strict")).backward()
        assert on_device(*local.parameters()) and all(fs.backend.device_of(p.grad) == "strict"
                                                      for p in local.parameters())
        opt.step()
        for (pname, p), q in zip(local.named_parameters(), ref.parameters()):
            np.testing.assert_allclose(p.numpy(), q.data, rtol=0, atol=1e-10, err_msg=f"device step {step}: {pname}")
    ok("device")


CHECKS = {
    "collectives": check_collectives,
    "mlp_sgd_momentum": lambda: train_pair("mlp_sgd_momentum", mlp, sgd, mlp_batch, F.mse_loss),
    "lstm_adam": lambda: train_pair("lstm_adam", LastOutput, adam, lstm_batch, F.mse_loss),
    "transformer_adam_clip": lambda: train_pair("transformer_adam_clip", transformer, adam, transformer_batch, ce,
                                                clip=0.05),
    "no_sync_accumulation": lambda: train_pair("no_sync_accumulation", mlp, adam, mlp_batch, F.mse_loss, micro=3),
    "unused_parameters": lambda: train_pair("unused_parameters", PartlyUsed, sgd, mlp_batch, F.mse_loss,
                                            cap=0.0001, find_unused_parameters=True),
    "overlap": check_overlap,
    "errors": check_errors,
    "device": check_device,
}

if __name__ == "__main__":
    for name in sys.argv[1:] or CHECKS:
        CHECKS[name]()
