"""Data-parallel training over MPI: the sampler and the gradient hooks in this process, DDP and the
collectives in 2-process jobs started with the launcher the ``distributed`` extra installs.

Each launch costs about a second, so many checks share one launch (tests/mpi_scripts/ddp_checks.py).
"""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

import from_scratch as fs
from from_scratch import distributed as dist
from from_scratch import nn

ROOT = Path(__file__).resolve().parents[1]
SCRIPTS = ROOT / "tests" / "mpi_scripts"


def _mpiexec() -> str | None:
    beside = Path(sys.executable).parent / "mpiexec"  # the mpich wheel puts it beside python
    return str(beside) if beside.exists() else shutil.which("mpiexec")


def _has_mpi4py() -> bool:
    try:
        import mpi4py  # noqa: F401
    except ImportError:
        return False
    return True


needs_mpi = pytest.mark.skipif(_mpiexec() is None or not _has_mpi4py(),
                               reason="needs mpi4py and mpiexec: pip install 'bare-bones-ml[distributed]'")


def run_mpi(*args: str, n: int = 2, timeout: float = 120) -> subprocess.CompletedProcess:
    """Run ``mpiexec -n n python args...`` (or a console script given as a path) from the repository root."""
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]),
               OPENBLAS_NUM_THREADS="1", MPLBACKEND="Agg")
    cmd = [_mpiexec(), "-n", str(n)] + (list(args) if args[0].endswith("bbml") else [sys.executable, *args])
    return subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout)


# ------------------------------------------------------------------ without MPI
def test_importing_the_library_does_not_import_mpi():
    code = ("import sys, from_scratch, from_scratch.nn, from_scratch.distributed; "
            "assert 'mpi4py' not in sys.modules, 'mpi4py was imported'")
    subprocess.run([sys.executable, "-c", code], check=True, cwd=ROOT, env=dict(os.environ, PYTHONPATH=str(ROOT)))


def test_process_group_functions_need_init():
    assert not dist.is_initialized()
    for fn in (dist.get_rank, dist.get_world_size, dist.barrier, lambda: dist.all_reduce(np.zeros(2)),
               lambda: dist.DistributedDataParallel(nn.Linear(2, 2))):
        with pytest.raises(RuntimeError, match="init_process_group"):
            fn()
    with pytest.raises(ValueError, match="only the 'mpi' backend"):
        dist.init_process_group("nccl")


@pytest.mark.parametrize("n", [0, 1, 7, 8, 10, 13])
@pytest.mark.parametrize("replicas", [1, 3, 4])
@pytest.mark.parametrize("drop_last", [False, True])
def test_sampler_matches_torch_in_order(n, replicas, drop_last):
    data = list(range(n))
    for rank in range(replicas):
        ours = dist.DistributedSampler(data, replicas, rank, shuffle=False, drop_last=drop_last)
        theirs = torch.utils.data.DistributedSampler(data, replicas, rank, shuffle=False, drop_last=drop_last)
        assert list(ours) == list(theirs) and len(ours) == len(theirs), (rank, list(ours), list(theirs))


@pytest.mark.parametrize("n, replicas", [(10, 2), (11, 3), (6, 4)])
def test_sampler_shuffles_by_epoch_and_covers_every_sample(n, replicas):
    shards = [dist.DistributedSampler(range(n), replicas, r, seed=5) for r in range(replicas)]
    epoch0 = [list(s) for s in shards]
    together = sorted(i for shard in epoch0 for i in shard)
    assert set(together) == set(range(n)) and len(together) == -(-n // replicas) * replicas  # padded by repeats
    assert epoch0 == [list(s) for s in shards], "the same epoch must give the same order"
    for s in shards:
        s.set_epoch(1)
    assert [list(s) for s in shards] != epoch0, "a new epoch must shuffle anew"
    dropped = [list(dist.DistributedSampler(range(n), replicas, r, drop_last=True)) for r in range(replicas)]
    flat = [i for d in dropped for i in d]
    assert len(flat) == len(set(flat)) == n // replicas * replicas


def test_sampler_feeds_the_data_loader():
    from from_scratch.data import DataLoader, TensorDataset

    data = TensorDataset(fs.Tensor(np.arange(10.0)))
    seen = []
    for rank in range(2):
        sampler = dist.DistributedSampler(data, num_replicas=2, rank=rank, seed=3)
        sampler.set_epoch(2)
        batches = [batch[0].data.tolist() for batch in DataLoader(data, batch_size=2, sampler=sampler)]
        assert [len(b) for b in batches] == [2, 2, 1]
        seen += [x for b in batches for x in b]
    assert sorted(seen) == list(range(10))


def test_sampler_rejects_a_rank_outside_the_job():
    with pytest.raises(ValueError, match=r"rank 2 is not in \[0, 2\)"):
        dist.DistributedSampler(range(4), num_replicas=2, rank=2)


def test_post_accumulate_grad_hook_fires_once_with_the_final_gradient():
    net = nn.Sequential(nn.Linear(3, 4), nn.Tanh(), nn.Linear(4, 2))
    w = fs.Tensor(np.ones(3, dtype=np.float32), requires_grad=True)
    seen = []
    handles = [p.register_post_accumulate_grad_hook(lambda p, name=name: seen.append(
        (name, p.grad.copy(), net[0].weight.grad is None))) for name, p in [("first", net[0].weight),
                                                                               ("last", net[2].weight), ("w", w)]]
    x = fs.Tensor(np.ones((5, 3), dtype=np.float32))
    (net(x * w).sum() + (w * w).sum()).backward()  # w is used twice: its hook sees the sum of both
    names = [s[0] for s in seen]
    assert sorted(names) == ["first", "last", "w"], "each hook once per backward"
    assert seen[names.index("last")][2], "the last layer's hook runs before backward reaches the first layer"
    for name, grad, _ in seen:
        final = {"first": net[0].weight.grad, "last": net[2].weight.grad, "w": w.grad}[name]
        np.testing.assert_array_equal(grad, final)
    for h in handles:
        h.remove()
    seen.clear()
    net(x).sum().backward()
    assert seen == []
    with pytest.raises(RuntimeError, match="only a leaf tensor"):
        (w * 2).register_post_accumulate_grad_hook(print)


# ------------------------------------------------------------------ in 2-process jobs
@needs_mpi
def test_ddp_equals_one_process_on_the_global_batch_and_collectives():
    """MLP + SGD momentum, LSTM + Adam, Transformer + Adam + clipping (global norm), no_sync accumulation,
    unused parameters, overlap, the collectives and the error messages: see ddp_checks.py."""
    result = run_mpi(str(SCRIPTS / "ddp_checks.py"))
    assert result.returncode == 0, result.stdout + result.stderr
    passed = [line.split()[1] for line in result.stdout.splitlines() if line.startswith("ok ")]
    assert passed == ["collectives", "mlp_sgd_momentum", "lstm_adam", "transformer_adam_clip",
                      "no_sync_accumulation", "unused_parameters", "overlap", "errors", "device"], result.stdout


@needs_mpi
@pytest.mark.parametrize("how", ["raise", "die", "hang"])
def test_a_failing_process_ends_the_whole_job(how):
    result = run_mpi(str(SCRIPTS / "fault.py"), how, timeout=60)  # a hang would time out here
    assert result.returncode != 0
    assert "finished" not in result.stdout
    if how == "raise":
        assert "rank 1 of 2 failed, aborting the job" in result.stderr
        assert "injected failure at step 3" in result.stderr
    if how == "hang":
        assert ("rank 0 of 2: DistributedDataParallel's gradient reduction did not complete within 2 s"
                in result.stderr)



@needs_mpi
def test_bbml_reverse_train_on_two_processes_then_resume_and_predict(tmp_path):
    """2 processes on half-batches follow the 1-process run (the logged global loss, to float32 rounding;
    the weights themselves are compared in float64 in ddp_checks.py), --resume continues with the same N,
    rank 0 alone prints, and one process under mpiexec is the plain run bit for bit."""
    import csv

    from from_scratch.cli import main
    from from_scratch.serialization import load

    bbml = str(Path(sys.executable).parent / "bbml")
    tiny = ["--hidden-size", "32", "--layers", "1", "--heads", "2", "--ff-size", "64", "--max-len", "4",
            "--lr", "0.01", "--warmup", "4", "--batch-size", "32", "--eval-every", "6", "--checkpoint-every", "3"]
    two, one, plain = (str(tmp_path / name) for name in ("two", "one", "plain"))

    def losses(folder):
        with open(os.path.join(folder, "metrics.csv")) as f:
            return [float(row["loss"]) for row in csv.DictReader(f)]

    assert main(["reverse", "train", "--steps", "6", "--out", plain, *tiny]) == 0
    done = run_mpi(bbml, "reverse", "train", "--steps", "6", "--out", one, *tiny, n=1)
    assert done.returncode == 0, done.stderr
    for k, v in load(os.path.join(plain, "model.safetensors")).items():
        assert np.array_equal(v, load(os.path.join(one, "model.safetensors"))[k]), f"1 process under mpiexec: {k}"

    done = run_mpi(bbml, "reverse", "train", "--steps", "6", "--out", two, *tiny)
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.count("training a Transformer") == 1 and "over 2 processes" in done.stdout
    done = run_mpi(bbml, "reverse", "train", "--steps", "12", "--resume", "--out", two, *tiny)
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.count("resuming") == 1
    assert main(["reverse", "train", "--steps", "12", "--resume", "--out", plain, *tiny]) == 0
    np.testing.assert_allclose(losses(two), losses(plain), rtol=1e-5)
    assert len(losses(two)) == 3  # steps 6, 10, 12

    done = subprocess.run([bbml, "reverse", "predict", "--ckpt", two, "3", "1", "4"], capture_output=True,
                          text=True, timeout=60, env=dict(os.environ, PYTHONPATH=str(ROOT)))
    assert done.returncode == 0 and len(done.stdout.splitlines()) == 1, done.stderr


@needs_mpi
def test_bbml_mistakes_under_mpiexec_are_one_line_from_rank_0(tmp_path):
    """A mistake every process meets (a bad flag, a folder that holds a run) is reported once, by rank 0, and
    ends the job with status 1 without MPI_Abort (whose own message would follow)."""
    bbml = str(Path(sys.executable).parent / "bbml")
    done = run_mpi(bbml, "reverse", "train", "--batch-size", "0", "--out", str(tmp_path / "run"))
    assert done.returncode == 1 and "Abort" not in done.stdout + done.stderr
    assert done.stderr.strip().splitlines() == ["bbml: error: --batch-size must be in 1..65,536, got 0"]
    run = tmp_path / "held"
    run.mkdir()
    assert run_mpi(bbml, "reverse", "train", "--steps", "2", "--warmup", "1", "--hidden-size", "16", "--heads", "2",
                   "--ff-size", "16", "--layers", "1", "--out", str(run)).returncode == 0
    done = run_mpi(bbml, "reverse", "train", "--steps", "2", "--warmup", "1", "--out", str(run))
    assert done.returncode == 1 and "Abort" not in done.stdout + done.stderr
    assert [line for line in done.stderr.splitlines() if line.strip()] == [
        f"bbml: error: {str(run)!r} already holds a run: pass --resume to continue it, --force to start afresh, "
        "or choose another --out"]
