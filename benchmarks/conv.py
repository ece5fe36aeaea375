"""Side-by-side speed and peak memory against PyTorch CPU eager: Conv2d, BatchNorm2d and the pools.

    python benchmarks/conv.py                 # every case, 1 thread each (the library's default)
    python benchmarks/conv.py --threads 2 --only conv_1_32 conv_32_64

Each case is one layer's forward and backward on a fixed batch (the gradient of a fixed random weighting
of the output), identical weights in both libraries. Timing: rounds alternate ours and PyTorch's, each
round several steps; the medians are reported, and their ratio, which drifts far less than the absolute
numbers on a shared machine. Peak memory: one fresh process per library and case, peak resident memory
(VmHWM) above the resident memory just before the steps. A script, not a test: nothing here asserts a
timing. PyTorch is the test extra's (``pip install -e '.[test]'``).
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

# (layer, its arguments, input shape, whether the input needs a gradient: not for a first layer)
CASES = {
    "conv_1_32": ("Conv2d", (1, 32, 3), {"padding": 1}, (64, 1, 28, 28), False),
    "conv_32_64": ("Conv2d", (32, 64, 3), {"padding": 1}, (64, 32, 16, 16), True),
    "batchnorm": ("BatchNorm2d", (32,), {}, (64, 32, 28, 28), True),
    "maxpool": ("MaxPool2d", (2,), {}, (64, 32, 28, 28), True),
    "avgpool": ("AvgPool2d", (2,), {}, (64, 32, 28, 28), True),
    "adaptive": ("AdaptiveAvgPool2d", ((5, 5),), {}, (64, 64, 16, 16), True),
}


def _parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--threads", type=int, default=1, help="set_num_threads in both libraries (default 1)")
    parser.add_argument("--only", nargs="+", choices=list(CASES), help="run only these cases")
    parser.add_argument("--rounds", type=int, default=7, help="alternating timing rounds per case")
    parser.add_argument("--steps", type=int, default=5, help="forward+backward steps per round")
    parser.add_argument("--memory-probe", nargs=2, metavar=("LIBRARY", "CASE"), help=argparse.SUPPRESS)
    return parser.parse_args()


ARGS = _parse_args()

import numpy as np  # noqa: E402

import from_scratch as fs  # noqa: E402
from from_scratch import nn  # noqa: E402
from from_scratch.threads import matmul  # noqa: E402

fs.set_num_threads(ARGS.threads)  # products below the library's size threshold still run on one thread

if ARGS.memory_probe is None or ARGS.memory_probe[0] == "torch":  # our memory probe runs without torch loaded
    import torch
    torch.set_num_threads(ARGS.threads)


def build(case: str, library: str) -> tuple:
    """The layer, input and output gradient of a case in one library (same weights and data in both)."""
    layer_name, args, kwargs, shape, input_grad = CASES[case]
    fs.manual_seed(0)
    layer = getattr(nn, layer_name)(*args, **kwargs)
    rng = np.random.default_rng(0)
    x = rng.standard_normal(shape, dtype=np.float32)
    g = rng.standard_normal(layer(fs.Tensor(x)).shape, dtype=np.float32)
    if library == "ours":
        return layer, fs.Tensor(x, requires_grad=input_grad), g
    twin = getattr(torch.nn, layer_name)(*args, **kwargs)
    twin.load_state_dict({k: torch.from_numpy(np.array(v)) for k, v in layer.state_dict().items()})
    return twin, torch.from_numpy(x).requires_grad_(input_grad), torch.from_numpy(g)


def step(layer, x, g) -> None:
    out = layer(x)
    out.backward(g)
    x.grad = None
    for p in layer.parameters():
        p.grad = None


def bench(case: str) -> dict:
    ours, theirs = build(case, "ours"), build(case, "torch")
    ours_ms, torch_ms = [], []
    for _ in range(2):  # warm-up
        step(*ours), step(*theirs)
    for _ in range(ARGS.rounds):
        for setup, times in ((ours, ours_ms), (theirs, torch_ms)):
            start = time.perf_counter()
            for _ in range(ARGS.steps):
                step(*setup)
            times.append((time.perf_counter() - start) / ARGS.steps * 1e3)
    return {"ours_ms": statistics.median(ours_ms), "torch_ms": statistics.median(torch_ms),
            "ours_range": (min(ours_ms), max(ours_ms)), "torch_range": (min(torch_ms), max(torch_ms))}


def products_ms(case: str) -> float | None:
    """For a convolution: milliseconds for just its matrix products (forward, weight gradient and, if the
    input needs one, input gradient) on ready arrays, the same shapes as the layer's. Our step cannot beat
    this on this BLAS; PyTorch's (oneDNN) convolution needs no im2col and runs its own kernels."""
    layer_name, args, _, (n, _, h, w), input_grad = CASES[case]
    if layer_name != "Conv2d":
        return None
    c_in, c_out, k = args
    rng = np.random.default_rng(0)
    weight = rng.standard_normal((c_out, c_in * k * k), dtype=np.float32)
    cols = rng.standard_normal((c_in * k * k, n * h * w), dtype=np.float32)
    g = rng.standard_normal((c_out, n * h * w), dtype=np.float32)

    def products() -> None:
        matmul(weight, cols), matmul(g, cols.T)
        if input_grad:
            matmul(weight.T, g)

    products()
    times = []
    for _ in range(ARGS.rounds):
        start = time.perf_counter()
        products()
        times.append((time.perf_counter() - start) * 1e3)
    return statistics.median(times)


def _memory_mb(field: str) -> float:
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith(field + ":")) / 1024


def memory_probe(library: str, case: str) -> None:
    setup = build(case, library)
    before = _memory_mb("VmRSS")
    for _ in range(3):
        step(*setup)
    print(json.dumps({"peak_mb": _memory_mb("VmHWM"), "step_mb": _memory_mb("VmHWM") - before}))


def bench_memory(case: str) -> dict:
    out = {}
    for library in ("ours", "torch"):
        cmd = [sys.executable, os.path.abspath(__file__), "--threads", str(ARGS.threads),
               "--memory-probe", library, case]
        out[library] = json.loads(subprocess.run(cmd, check=True, capture_output=True, text=True).stdout)["step_mb"]
    return out


def main() -> None:
    if ARGS.memory_probe:
        memory_probe(*ARGS.memory_probe)
        return
    cpu = platform.processor() or "?"
    with open("/proc/cpuinfo") as f:
        cpu = next((line.split(":", 1)[1].strip() for line in f if line.startswith("model name")), cpu)
    print(f"{cpu}, {os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f} at start; NumPy {np.__version__}, "
          f"torch {torch.__version__}; {ARGS.threads} thread(s) each; median of {ARGS.rounds} alternating rounds "
          f"of {ARGS.steps} steps (min-max in brackets)\n")
    print("| case | input | ours ms | PyTorch ms | ours / PyTorch | our products alone ms | peak MB ours | "
          "peak MB PyTorch |")
    print("|---|---|---:|---:|---:|---:|---:|---:|")
    for case in ARGS.only or CASES:
        layer_name, args, kwargs, shape, _ = CASES[case]
        r, m, products = bench(case), bench_memory(case), products_ms(case)
        print(f"| {layer_name}{args} | {'x'.join(map(str, shape))} | {r['ours_ms']:.2f} "
              f"({r['ours_range'][0]:.1f}-{r['ours_range'][1]:.1f}) | {r['torch_ms']:.2f} "
              f"({r['torch_range'][0]:.1f}-{r['torch_range'][1]:.1f}) | {r['ours_ms'] / r['torch_ms']:.2f} | "
              f"{'-' if products is None else f'{products:.2f}'} | {m['ours']:.1f} | {m['torch']:.1f} |", flush=True)
    print(f"\nload average {os.getloadavg()[0]:.1f} at the end")


if __name__ == "__main__":
    main()
