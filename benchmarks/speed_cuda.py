"""The GPU half of ``benchmarks/speed.py``: ours (CuPy) against PyTorch CUDA eager on the same GPU.

    python benchmarks/speed.py --device cuda                 # the four sizes of the issue
    python benchmarks/speed.py --device cuda --sizes large xl

The same model (our weights copied into the torch twin) and the same batches, moved to the GPU before
the clock starts (a step's own copies are its loss's ``.item()``, in both libraries). A few warm-up steps
first (CuPy compiles its kernels on first use, PyTorch picks its own), then rounds that alternate the
two libraries; each round's steps are timed between two synchronisations of the GPU
(``backend.synchronize``, ``torch.cuda.synchronize``), so the clock sees finished work. Peak GPU memory:
the most CuPy's memory pool held in use over 10 steps (``used_bytes()``, read after every op through a
memory hook), against ``torch.cuda.max_memory_allocated``; both include the model and Adam's state.
A script, not a test; run where CuPy and a CUDA PyTorch see the same GPU.
"""
from __future__ import annotations

import statistics
import time
from typing import Any, Callable

import numpy as np

from from_scratch import Tensor, backend
from from_scratch.functional import create_causal_mask, create_padding_mask, cross_entropy

# The issue's four sizes (2 + 2 layers, 4 heads, vocabulary 20): hidden / ff / batch x length.
CUDA_SIZES = {"tutorial": dict(hidden=64, ff=128, batch=16, length=10),
              "medium": dict(hidden=128, ff=512, batch=32, length=16),
              "large": dict(hidden=256, ff=1024, batch=64, length=32),
              "xl": dict(hidden=512, ff=2048, batch=128, length=64)}


def our_batches(batches: list, device: Any) -> list[tuple[Tensor, ...]]:
    """Ids and masks on the device, made once before timing (a training loop would copy them per step)."""
    out = []
    for src, tgt, target in batches:
        masks = (create_padding_mask(src), create_padding_mask(tgt) + create_causal_mask(tgt.shape[1]))
        out.append((Tensor(src, device=device), Tensor(tgt, device=device), Tensor(target, device=device),
                    *(m.to(device) for m in masks)))
    return out


def our_step(model, optimizer, src, tgt, target, src_mask, tgt_mask, vocab: int) -> float:
    logits = model(src, tgt, src_mask, tgt_mask)
    loss = cross_entropy(logits.reshape(-1, vocab), target.reshape(-1))
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()
    return loss.item()


def torch_step(model, optimizer, src, tgt, target, vocab: int) -> float:
    import torch
    logits = model(src, tgt, src == 0, tgt == 0)
    loss = torch.nn.functional.cross_entropy(logits.reshape(-1, vocab), target.reshape(-1))
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()
    return loss.item()


def _timed_round(step: Callable[[int], Any], k: int, sync: Callable[[], None]) -> float:
    """Milliseconds per step over ``k`` steps, the GPU drained before both clock readings."""
    sync()
    start = time.perf_counter()
    for i in range(k):
        step(i)
    sync()
    return (time.perf_counter() - start) / k * 1e3


def _cupy_peak_bytes(step: Callable[[int], Any], steps: int) -> int:
    """The most bytes CuPy's default pool had in use while ``step`` ran ``steps`` times (a memory hook
    reads ``used_bytes()`` after every allocation)."""
    cupy = backend.device_module("cuda")
    pool = cupy.get_default_memory_pool()

    class Peak(cupy.cuda.MemoryHook):
        name = "bbml_peak"

        def __init__(self) -> None:
            super().__init__()
            self.peak = pool.used_bytes()

        def malloc_postprocess(self, **kwargs: Any) -> None:
            self.peak = max(self.peak, pool.used_bytes())

    try:
        hook = Peak()
        with hook:
            for i in range(steps):
                step(i)
        backend.synchronize("cuda")
        return hook.peak
    except Exception as e:  # no hooks in this CuPy: what the pool holds after the steps (it keeps freed blocks)
        print(f"(CuPy memory hook unavailable: {type(e).__name__}: {e}; reporting the pool's total bytes)")
        pool.free_all_blocks()
        for i in range(steps):
            step(i)
        backend.synchronize("cuda")
        return pool.total_bytes()


def bench_size(name: str, size: dict, device: str, rounds: int, build_pair: Callable, make_batches: Callable,
               vocab: int) -> dict:
    """Ours and PyTorch's median ms per step and peak GPU memory at one size."""
    import torch
    dev = backend.device(device)
    on_gpu = dev.type == "cuda"  # (another device, e.g. the tests' strict one, only smoke-tests this script)
    torch_device = torch.device("cuda", dev.index) if on_gpu else torch.device("cpu")
    torch_sync = torch.cuda.synchronize if on_gpu else (lambda: None)
    ours, opt, theirs, topt = build_pair(size)  # built on the CPU: the twin copies our weights there
    ours.to(dev)
    theirs.to(torch_device)
    host = make_batches(size, 8)
    mine = our_batches(host, device)
    theirs_b = [tuple(torch.from_numpy(a).to(torch_device) for a in b) for b in host]
    note = ""
    for i in range(3):  # same model, same batches: the first losses must agree (also the warm-up)
        a = our_step(ours, opt, *mine[i], vocab)
        b = torch_step(theirs, topt, *theirs_b[i], vocab)
        if not np.isclose(a, b, rtol=1e-3, atol=1e-4):
            note = f"step {i} loss {a:.5f} (ours) vs {b:.5f} (torch)"
    k = 10  # steps per round

    def ours_step(i: int) -> float:
        return our_step(ours, opt, *mine[i % len(mine)], vocab)

    def torch_step_i(i: int) -> float:
        return torch_step(theirs, topt, *theirs_b[i % len(theirs_b)], vocab)

    def sync_ours() -> None:
        backend.synchronize(device)

    times: dict[str, list[float]] = {"ours": [], "torch": []}
    for r in range(rounds):  # alternate the order, so drifting clocks and temperature hit both alike
        pair = [("ours", ours_step, sync_ours), ("torch", torch_step_i, torch_sync)]
        for lib, step, sync in (pair if r % 2 == 0 else pair[::-1]):
            times[lib].append(_timed_round(step, k, sync))
    ours_peak = torch_peak = float("nan")
    if on_gpu:
        ours_peak = _cupy_peak_bytes(ours_step, 10)
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats(torch_device)
        for i in range(10):
            torch_step_i(i)
        torch.cuda.synchronize()
        torch_peak = torch.cuda.max_memory_allocated(torch_device)
    ours_ms, torch_ms = statistics.median(times["ours"]), statistics.median(times["torch"])
    return {"size": name, "ours_ms": ours_ms, "torch_ms": torch_ms, "ours_range": (min(times["ours"]),
            max(times["ours"])), "torch_range": (min(times["torch"]), max(times["torch"])),
            "ratio": ours_ms / torch_ms, "ours_mb": ours_peak / 2 ** 20, "torch_mb": torch_peak / 2 ** 20,
            "steps_per_round": k, "note": note}


def gpu_name(device: str) -> str:
    import torch
    cupy = backend.device_module(device)
    index = backend.device(device).index
    props = cupy.cuda.runtime.getDeviceProperties(index)
    name = props["name"].decode() if isinstance(props["name"], bytes) else props["name"]
    return (f"{name} (cuda:{index}), CuPy {cupy.__version__}, CUDA runtime {cupy.cuda.runtime.runtimeGetVersion()}, "
            f"torch {torch.__version__} (CUDA {torch.version.cuda})")


def main(device: str, sizes: list[str] | None, rounds: int, build_pair: Callable, make_batches: Callable,
         vocab: int) -> None:
    """Print the GPU table: one row per size, ours against PyTorch CUDA eager."""
    try:
        print(gpu_name(device))
    except (RuntimeError, ValueError) as e:  # no CuPy, no GPU, or a device name that is not one
        raise SystemExit(f"speed.py --device {device}: {e}") from None
    print(f"\nTraining step (forward, backward, Adam, the loss's .item()) on the GPU, median of {rounds} "
          f"alternating rounds (range in brackets); peak GPU memory over 10 steps\n")
    print("| size | hidden / ff / batch x length | ours ms/step | PyTorch CUDA eager ms/step | ours / PyTorch | "
          "ours peak MiB | PyTorch peak MiB |")
    print("|---|---|---:|---:|---:|---:|---:|")
    for name in sizes or list(CUDA_SIZES):
        size = {**CUDA_SIZES[name], "steps_per_round": 0}
        shape = f"{size['hidden']} / {size['ff']} / {size['batch']}x{size['length']}"
        try:
            r = bench_size(name, size, device, rounds, build_pair, make_batches, vocab)
        except Exception as e:  # one size failing (out of memory, a missing kernel) still prints the others
            print(f"| {name} | {shape} | failed: {type(e).__name__}: {' '.join(str(e).split())[:200]} | | | | |",
                  flush=True)
            continue
        print(f"| {name} | {shape} | {r['ours_ms']:.2f} ({r['ours_range'][0]:.2f}-{r['ours_range'][1]:.2f}) | "
              f"{r['torch_ms']:.2f} ({r['torch_range'][0]:.2f}-{r['torch_range'][1]:.2f}) | {r['ratio']:.2f}x | "
              f"{r['ours_mb']:.0f} | {r['torch_mb']:.0f} |" + (f" (losses differ: {r['note']})" if r["note"] else ""),
              flush=True)
