"""Data-parallel scaling: tokens per second of the reversal Transformer with 1 and 2 MPI processes.

    python benchmarks/distributed.py                  # medium and large, 1 and 2 processes
    python benchmarks/distributed.py --sizes medium --rounds 3

The script launches itself with the ``mpiexec`` of the ``distributed`` extra, one BLAS thread per
process, alternating 1- and 2-process jobs round by round. Each job times, alternating step by step:

* ``local``: forward, backward and Adam on this process's share of the global batch, inside
  ``no_sync()``: the step without any communication;
* ``local + barrier``: the same with a ``barrier()`` after backward: the processes wait for each other
  once per step, as a reduction makes them, but move no data;
* ``one bucket``: DDP with the default 25 MiB buckets, which hold the whole model here, so the single
  reduction starts when backward ends (no overlap);
* ``1 MiB buckets``: DDP whose buckets start reducing while backward goes on (overlap);

and a blocking ``Allreduce`` of all the gradients alone. The global batch is the same for 1 and 2
processes (each of 2 processes gets half), so tokens per second compare directly; the scaling
efficiency is tokens/s with 2 processes / (2 x tokens/s with 1). A script, not a test.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time

os.environ["OPENBLAS_NUM_THREADS"] = "1"  # before NumPy loads OpenBLAS: one BLAS thread per process

import numpy as np  # noqa: E402

# The sizes of benchmarks/speed.py (2 encoder + 2 decoder layers, 4 heads, vocabulary 20).
SIZES = {"medium": dict(hidden=128, ff=512, batch=32, length=16, steps=6),
         "large": dict(hidden=256, ff=1024, batch=64, length=32, steps=2)}
VOCAB, LAYERS, HEADS, SOS = 20, 2, 4, 1
MODES = {"local": None, "local + barrier": None, "one bucket": 25.0, "1 MiB buckets": 1.0}  # -> bucket_cap_mb


def worker(size_name: str, rounds: int) -> None:
    """Run inside mpiexec: time each mode on this rank's shard; rank 0 prints one JSON line."""
    import from_scratch.distributed as dist
    from from_scratch import manual_seed
    from from_scratch.functional import create_causal_mask, create_padding_mask, cross_entropy
    from from_scratch.nn import Transformer
    from from_scratch.optim import Adam

    dist.init_process_group()
    rank, world = dist.get_rank(), dist.get_world_size()
    size = SIZES[size_name]
    rng = np.random.default_rng(0)
    src = rng.integers(2, VOCAB, (size["batch"], size["length"]))
    target = np.ascontiguousarray(src[:, ::-1])
    tgt = np.concatenate([np.full((size["batch"], 1), SOS), target[:, :-1]], axis=1)
    shard = slice(rank * size["batch"] // world, (rank + 1) * size["batch"] // world)
    src, tgt, target = src[shard], tgt[shard], target[shard]
    src_mask, tgt_mask = create_padding_mask(src), create_padding_mask(tgt) + create_causal_mask(tgt.shape[1])
    runs = {}
    for mode, cap in MODES.items():
        manual_seed(0)
        model = Transformer(VOCAB, size["hidden"], LAYERS, HEADS, size["ff"], max_len=64)
        ddp = dist.DistributedDataParallel(model, bucket_cap_mb=cap or 25.0)
        runs[mode] = (ddp, Adam(ddp.parameters(), lr=1e-4), len(ddp._buckets))

    def step(mode: str) -> float:
        ddp, optimizer, _ = runs[mode]
        dist.barrier()  # start together: a step's time is the slowest rank's
        start = time.perf_counter()
        for _ in range(size["steps"]):
            optimizer.zero_grad()
            loss = cross_entropy(ddp(src, tgt, src_mask, tgt_mask).reshape(-1, VOCAB), target.reshape(-1))
            if mode.startswith("local"):
                with ddp.no_sync():
                    loss.backward()
                if mode == "local + barrier":
                    dist.barrier()
            else:
                loss.backward()
            optimizer.step()
        return (time.perf_counter() - start) / size["steps"]

    grads = np.ones(sum(p.data.size for p in runs["local"][0].parameters()), dtype=np.float32)

    def reduce() -> float:
        dist.barrier()
        start = time.perf_counter()
        dist.all_reduce(grads)
        return time.perf_counter() - start

    for mode in MODES:  # warm-up
        step(mode)
    times: dict[str, list[float]] = {mode: [] for mode in [*MODES, "reduce"]}
    for _ in range(rounds):
        for mode in MODES:
            times[mode].append(step(mode))
        times["reduce"].append(statistics.median(reduce() for _ in range(5)))
    if rank == 0:
        out = {mode: statistics.median(t) for mode, t in times.items()}
        out.update(world=world, mib=grads.nbytes / 2 ** 20, buckets={m: runs[m][2] for m in MODES})
        print(json.dumps(out), flush=True)


def launch(size_name: str, n: int, rounds: int) -> dict:
    mpiexec = os.path.join(os.path.dirname(sys.executable), "mpiexec")
    cmd = [mpiexec if os.path.exists(mpiexec) else "mpiexec", "-n", str(n), sys.executable,
           os.path.abspath(__file__), "--worker", size_name, "--rounds", str(rounds)]
    return json.loads(subprocess.run(cmd, check=True, capture_output=True, text=True).stdout.splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", nargs="+", default=list(SIZES), choices=list(SIZES))
    parser.add_argument("--rounds", type=int, default=3, help="alternating 1-/2-process jobs per size")
    parser.add_argument("--steps-per-job", type=int, default=3, help="timed rounds inside each job")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        worker(args.worker, args.steps_per_job)
        return
    loads = [os.getloadavg()[0]]
    print(f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores; one BLAS thread per process")
    print("\n| size | processes | tokens/s (1 MiB buckets) | scaling efficiency | local step ms | "
          "local step + barrier ms | step ms: one bucket / 1 MiB buckets | "
          "reduction share: one bucket / 1 MiB buckets | "
          "blocking all-reduce of all gradients |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    for name in args.sizes:
        results: dict[int, list[dict]] = {1: [], 2: []}
        for _ in range(args.rounds):
            for n in (1, 2):
                results[n].append(launch(name, n, args.steps_per_job))
                loads.append(os.getloadavg()[0])
        tokens = SIZES[name]["batch"] * SIZES[name]["length"]  # target tokens of one global batch
        base = None
        for n, rows in results.items():
            med = {k: statistics.median(r[k] for r in rows) for k in [*MODES, "reduce"]}
            speed = tokens / med["1 MiB buckets"]
            base = base or speed
            share = [max(0.0, (med[m] - med["local"]) / med[m]) for m in ("one bucket", "1 MiB buckets")]
            reduce = (f"{1e3 * med['reduce']:.1f} ms for {rows[0]['mib']:.1f} MiB "
                      f"({1e3 * med['reduce'] / rows[0]['mib']:.2f} ms/MiB)" if n > 1 else "-")
            shares = f"{share[0]:.0%} / {share[1]:.0%}" if n > 1 else "- (no reduction)"
            print(f"| {name} | {n} | {speed:,.0f} | {speed / (n * base):.0%} | {1e3 * med['local']:.0f} | "
                  f"{1e3 * med['local + barrier']:.0f} | "
                  f"{1e3 * med['one bucket']:.0f} / {1e3 * med['1 MiB buckets']:.0f} | {shares} | {reduce} |")
        print(f"buckets ({name}): {rows[0]['buckets']}", file=sys.stderr)
    print(f"\nload average during the run: {min(loads):.1f} .. {max(loads):.1f} (1-minute)")


if __name__ == "__main__":
    main()
