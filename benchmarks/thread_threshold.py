"""Find the product size from which more BLAS threads pay: ``from_scratch.threads.PARALLEL_MIN_WORK``.

    python benchmarks/thread_threshold.py               # 1 thread against every core
    python benchmarks/thread_threshold.py --threads 2 --rounds 9

Times the float32 products a Transformer training step makes (x W^T forward, g W and g^T x
backward, for q/k/v, feed-forward and output projections) over a range of widths and token counts,
on one thread and on ``--threads`` threads, in alternating rounds, each call timed on its own, and
reports two speed-ups: of the fastest calls (what more threads give while the other cores are free,
which is when the library's default uses them) and of the median calls (what they gave under this
run's load). The suggested threshold is the smallest work (multiply-adds m k n) from which every
measured product's fastest call ran at least ``--gain`` times faster on more threads. A script,
not a test.
"""
from __future__ import annotations

import argparse
import os
import statistics
import time

import numpy as np
from threadpoolctl import threadpool_limits

import from_scratch.threads as threads


def shapes(widths: list[int], tokens: list[int]) -> list[tuple[int, int, int]]:
    """(m, k, n) of the step's products: per width h, the q/k/v projection (h -> 3h) and the
    feed-forward's two (h -> 4h, 4h -> h), each forward (rows x k @ k x n) and as its weight
    gradient (g^T x: n x rows @ rows x k)."""
    out = set()
    for h in widths:
        for rows in tokens:
            for k, n in ((h, 3 * h), (h, 4 * h), (4 * h, h)):
                out.add((rows, k, n))
                out.add((n, rows, k))
    return sorted(out, key=lambda s: (s[0] * s[1] * s[2], s))


def time_product(a: np.ndarray, b: np.ndarray, budget: float = 0.02) -> list[float]:
    """Seconds of each ``a @ b`` in about ``budget`` seconds of calls, timed one by one."""
    times, end = [], time.perf_counter() + budget
    a @ b
    while len(times) < 5 or time.perf_counter() < end:
        start = time.perf_counter()
        a @ b
        times.append(time.perf_counter() - start)
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--threads", type=int, default=threads.get_num_threads(),
                        help="threads to compare with one (default: the library's get_num_threads())")
    parser.add_argument("--rounds", type=int, default=5, help="alternating rounds per product")
    parser.add_argument("--gain", type=float, default=1.1, help="speed-up that counts as paying")
    parser.add_argument("--widths", type=int, nargs="+", default=[32, 64, 128, 256, 512])
    parser.add_argument("--tokens", type=int, nargs="+", default=[160, 512, 2048, 8192])
    args = parser.parse_args()
    print(f"{os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f}; NumPy {np.__version__}; "
          f"1 thread against {args.threads}; median of {args.rounds} alternating rounds; "
          f"threshold now {threads.PARALLEL_MIN_WORK:,} multiply-adds\n")
    print("| m x k x n | multiply-adds | 1 thread us | more threads us | speed-up, fastest call | "
          "speed-up, median call |")
    print("|---|---:|---:|---:|---:|---:|")
    rng = np.random.default_rng(0)
    results = []
    for m, k, n in shapes(args.widths, args.tokens):
        a = rng.standard_normal((m, k), dtype=np.float32)
        b = rng.standard_normal((k, n), dtype=np.float32)
        one, many = [], []
        for r in range(args.rounds):  # alternate which goes first, so drifting load hits both alike
            for count, out in ([(1, one), (args.threads, many)] if r % 2 == 0 else [(args.threads, many), (1, one)]):
                with threadpool_limits(count, user_api="blas"):
                    out.extend(time_product(a, b))
        # The fastest call is what more threads give when the other cores are free (the policy's
        # default only uses the cores other processes leave idle); the median, what they gave here.
        fast, typical = min(one) / min(many), statistics.median(one) / statistics.median(many)
        results.append((m * k * n, fast))
        print(f"| {m} x {k} x {n} | {m * k * n:,} | {min(one) * 1e6:.1f} | {min(many) * 1e6:.1f} | {fast:.2f}x | "
              f"{typical:.2f}x |", flush=True)
    # the smallest work from which every product (that size and up) gained at least args.gain
    paying = [work for i, (work, _) in enumerate(results) if all(s >= args.gain for _, s in results[i:])]
    print(f"\nload average {os.getloadavg()[0]:.1f}; " + (
        f"every product from {paying[0]:,} multiply-adds up gained >= {args.gain}x (fastest calls)" if paying
        else f"no size from which every larger product gained >= {args.gain}x (fastest calls)"))


if __name__ == "__main__":
    main()
