"""Side-by-side speed against PyTorch: training steps at three sizes, greedy decoding, peak memory.

    python benchmarks/speed.py                      # everything, both libraries on 1 thread
    python benchmarks/speed.py --threads 1 default  # training at 1 thread each and at each library's defaults
    python benchmarks/speed.py --threads 2          # set_num_threads(2) in both libraries
    python benchmarks/speed.py --only train         # or: decode, memory
    python benchmarks/speed.py --ckpt runs/reverse  # decode with a trained run instead of training one
    python benchmarks/speed.py --device cuda        # on a GPU: ours (CuPy) against PyTorch CUDA eager

Both libraries get the identical model (our weights copied into ``torch.nn.Transformer``), the same
batches and the same thread setting: a count N is ``set_num_threads(N)`` in each (ours still runs
products below its size threshold on one thread, see from_scratch/threads.py), ``default`` leaves
each library as it comes (NumPy is imported before the library here, as in the tutorial). The
script checks that the losses agree for the first steps, then times steady-state steps in rounds
that alternate ours and theirs (and the thread settings), and reports medians: on a shared machine
the absolute numbers drift, the ratio much less. A script, not a test: nothing here asserts a
timing. PyTorch is the test extra's (``pip install -e '.[test]'``). ``--device cuda`` runs the GPU
table instead (benchmarks/speed_cuda.py: the issue's four sizes, time and peak GPU memory).
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


def _thread_setting(text: str) -> str:
    if text != "default" and not (text.isdigit() and int(text) > 0):
        raise argparse.ArgumentTypeError(f"a positive count or 'default', got {text!r}")
    return text


def _parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--threads", nargs="+", default=["1"], type=_thread_setting,
                        help="thread settings to compare: counts, or 'default' (each library's own); default 1")
    parser.add_argument("--only", choices=["train", "decode", "memory"], action="append",
                        help="run only these parts (repeatable)")
    parser.add_argument("--sizes", nargs="+", default=None, help="training sizes to run (default: all)")
    parser.add_argument("--rounds", type=int, default=7, help="alternating timing rounds per size")
    parser.add_argument("--ckpt", help="a `bbml reverse train` run folder to decode with (default: train one)")
    parser.add_argument("--sequences", type=int, default=10_000, help="sequences to decode")
    parser.add_argument("--device", default="cpu", help="cpu, or cuda / cuda:N for the GPU table (needs CuPy and "
                                                        "a CUDA build of PyTorch); default cpu")
    parser.add_argument("--memory-probe", nargs=2, metavar=("LIBRARY", "SIZE"), help=argparse.SUPPRESS)
    return parser.parse_args(argv)


ARGS = _parse_args()
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import numpy as np  # noqa: E402
from threadpoolctl import threadpool_limits  # noqa: E402

from from_scratch import manual_seed, set_num_threads, threads  # noqa: E402
from from_scratch.functional import create_causal_mask, create_padding_mask, cross_entropy  # noqa: E402
from from_scratch.nn import Transformer  # noqa: E402
from from_scratch.optim import Adam  # noqa: E402

if ARGS.memory_probe is None or ARGS.memory_probe[0] == "torch":  # our memory probe runs without torch loaded
    import torch

    from torch_twin import twin_of
    TORCH_DEFAULT_THREADS = torch.get_num_threads()


def use_threads(setting: str) -> None:
    """Apply a thread setting ("default" or a count) to both libraries."""
    set_num_threads(None if setting == "default" else int(setting))
    if "torch" in sys.modules:
        torch.set_num_threads(TORCH_DEFAULT_THREADS if setting == "default" else int(setting))

# Transformer sizes (2 encoder + 2 decoder layers, 4 heads, vocabulary 20) and the batches they train on.
SIZES = {
    # almost no arithmetic: what each library's step costs in Python and per-op dispatch alone
    "overhead": dict(hidden=8, ff=8, batch=1, length=2, steps_per_round=50),
    "tutorial": dict(hidden=64, ff=128, batch=16, length=10, steps_per_round=20),
    "medium": dict(hidden=128, ff=512, batch=32, length=16, steps_per_round=6),
    "large": dict(hidden=256, ff=1024, batch=64, length=32, steps_per_round=2),
}
VOCAB, LAYERS, HEADS, SOS = 20, 2, 4, 1


# ---------------------------------------------------------------- one training step in each library

def make_batches(size: dict, n: int, seed: int = 0) -> list[tuple[np.ndarray, ...]]:
    """The tutorial's reversal batches: random tokens 2..V-1, the decoder sees SOS + the reversal."""
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        src = rng.integers(2, VOCAB, (size["batch"], size["length"]))
        target = np.ascontiguousarray(src[:, ::-1])
        tgt = np.concatenate([np.full((size["batch"], 1), SOS), target[:, :-1]], axis=1)
        out.append((src, tgt, target))
    return out


def build_pair(size: dict) -> tuple:
    """Our Transformer and Adam, and the torch twin (same weights) and torch's Adam."""
    manual_seed(0)
    ours = Transformer(VOCAB, size["hidden"], LAYERS, HEADS, size["ff"], max_len=64)
    theirs = twin_of(ours, norm_first=False)
    return ours, Adam(ours.parameters(), lr=1e-3), theirs, torch.optim.Adam(theirs.parameters(), lr=1e-3)


def our_step(model, optimizer, src, tgt, target) -> float:
    src_mask = create_padding_mask(src)
    tgt_mask = create_padding_mask(tgt) + create_causal_mask(tgt.shape[1])
    logits = model(src, tgt, src_mask, tgt_mask)
    loss = cross_entropy(logits.reshape(-1, VOCAB), target.reshape(-1))
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()
    return loss.item()


def torch_step(model, optimizer, src, tgt, target) -> float:
    logits = model(src, tgt, src == 0, tgt == 0)
    loss = torch.nn.functional.cross_entropy(logits.reshape(-1, VOCAB), target.reshape(-1))
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()
    return loss.item()


def train_flops(size: dict) -> float:
    """Matrix-product FLOPs of one training step: 2 m k n per product, backward twice the forward."""
    h, ff, b, n = size["hidden"], size["ff"], size["batch"], size["length"]
    tokens = b * n  # source and target have the same length here
    linear = 2 * tokens * h * h * 4 * 3 * LAYERS    # q, k, v, out in encoder self, decoder self and cross attention
    linear += 2 * tokens * 2 * h * ff * 2 * LAYERS  # feed-forward, encoder and decoder
    linear += 2 * tokens * h * VOCAB                # output layer
    attention = 2 * 2 * b * n * n * h * 3 * LAYERS  # q k^T and weights v, three attentions per layer pair
    return 3.0 * (linear + attention)


def products_only_ms(size: dict, repeats: int = 20) -> float:
    """Milliseconds per step for just the matrix products of our training step, back to back on ready arrays.

    The same products with the same shapes as the library's step: per attention the packed q/k/v (or q and
    packed k/v) projection, the per-head scores and weights @ values, the output projection; the two
    feed-forward products; the output layer; each projection with its two backward products, and the
    attention's four batched backward products. No framework can run the step faster than this on
    this BLAS, so PyTorch's time over it bounds the speed-up any NumPy library can reach.
    """
    h, ff, b, n = size["hidden"], size["ff"], size["batch"], size["length"]
    rng = np.random.default_rng(0)
    rows = b * n

    def linear(k: int, m: int) -> tuple:  # x (rows, k) @ W(m, k)^T, and its two backward products
        return rng.standard_normal((rows, k), dtype=np.float32), rng.standard_normal((m, k), dtype=np.float32), \
            rng.standard_normal((rows, m), dtype=np.float32)

    linears = [linear(h, 3 * h), linear(h, h), linear(h, ff), linear(ff, h)] * LAYERS  # encoder layers
    linears += [linear(h, 3 * h), linear(h, h), linear(h, h), linear(h, 2 * h), linear(h, h),
                linear(h, ff), linear(ff, h)] * LAYERS  # decoder layers: self, cross (q, then k/v), ff
    linears.append(linear(h, VOCAB))
    d = h // HEADS
    q = rng.standard_normal((b, HEADS, n, d), dtype=np.float32)
    w = rng.standard_normal((b, HEADS, n, n), dtype=np.float32)

    def step() -> None:
        for x, weight, g in linears:
            x @ weight.T
            g @ weight
            g.T @ x
        for _ in range(3 * LAYERS):  # three attentions per encoder + decoder layer pair
            q @ q.swapaxes(-1, -2), w @ q  # forward: scores, weights @ values
            q @ q.swapaxes(-1, -2), w.swapaxes(-1, -2) @ q, w.swapaxes(-1, -2) @ q, w @ q  # backward

    step()
    return min(_timed(step) for _ in range(repeats)) * 1e3


def matmul_roofline(n: int = 2048) -> float:
    """GFLOP/s of one large float32 NumPy matrix product (best of 5): what BLAS can reach here."""
    rng = np.random.default_rng(0)
    a, b = rng.standard_normal((n, n), dtype=np.float32), rng.standard_normal((n, n), dtype=np.float32)
    a @ b
    best = min(_timed(lambda: a @ b) for _ in range(5))
    return 2 * n ** 3 / best / 1e9


def _timed(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def product_threads(step) -> dict[int, int]:
    """How many of our products ran on how many BLAS threads in one call of ``step``: the products
    that go through the library's thread policy (``threads.matmul``), traced with a profile hook."""
    counts: dict[int, int] = {}

    def hook(frame, event, arg) -> None:
        if event == "call" and frame.f_code is threads.matmul.__code__:
            n = threads.threads_for(frame.f_locals["a"], frame.f_locals["b"])
            counts[n] = counts.get(n, 0) + 1

    sys.setprofile(hook)
    try:
        step()
    finally:
        sys.setprofile(None)
    return dict(sorted(counts.items()))


def bench_training(name: str, size: dict, rounds: int, settings: list[str]) -> list[dict]:
    """Per thread setting: our and PyTorch's median ms per step, timed in rounds that alternate the
    libraries and the settings, and how many threads our products and PyTorch's pool used."""
    ours, opt, theirs, topt = build_pair(size)
    batches = make_batches(size, 8)
    torch_batches = [tuple(torch.from_numpy(a) for a in batch) for batch in batches]
    # The same model on the same batches: the losses must agree before the timings mean anything.
    for i in range(3):
        a, b = our_step(ours, opt, *batches[i]), torch_step(theirs, topt, *torch_batches[i])
        if not np.isclose(a, b, rtol=1e-4, atol=1e-5):
            raise SystemExit(f"{name}: step {i} loss {a:.6f} (ours) vs {b:.6f} (torch): the models differ")
    k = size["steps_per_round"]

    def run(step, model, optimizer, data) -> float:
        start = time.perf_counter()
        for i in range(k):
            step(model, optimizer, *data[i % len(data)])
        return (time.perf_counter() - start) / k * 1e3

    times = {(s, lib): [] for s in settings for lib in ("ours", "torch")}
    used = {}
    for setting in settings:
        use_threads(setting)
        used[setting] = (product_threads(lambda: our_step(ours, opt, *batches[0])), torch.get_num_threads())
    for r in range(rounds):  # alternate the order, so drifting load hits every run alike
        runs = [(s, lib) for s in settings for lib in ("ours", "torch")]
        for setting, lib in (runs if r % 2 == 0 else runs[::-1]):
            use_threads(setting)
            args = (our_step, ours, opt, batches) if lib == "ours" else (torch_step, theirs, topt, torch_batches)
            times[setting, lib].append(run(*args))
    use_threads(settings[0])
    with threadpool_limits(1, user_api="blas"):
        products_ms = products_only_ms(size)
    out = []
    for setting in settings:
        ours_ms, torch_ms = statistics.median(times[setting, "ours"]), statistics.median(times[setting, "torch"])
        out.append({"size": name, "setting": setting, "ours_ms": ours_ms, "torch_ms": torch_ms,
                    "ours_range": (min(times[setting, "ours"]), max(times[setting, "ours"])),
                    "torch_range": (min(times[setting, "torch"]), max(times[setting, "torch"])),
                    "ratio": torch_ms / ours_ms, "flops": train_flops(size), "products_ms": products_ms,
                    "ours_threads": used[setting][0], "torch_threads": used[setting][1]})
    return out


# ---------------------------------------------------------------- greedy decoding

def torch_greedy(twin, seqs, layout, batch_size: int = 500) -> list[np.ndarray]:
    """Greedy decoding as ``from_scratch.tasks.reverse.predict`` does it (length-sorted batches, finished
    rows dropped), but without a cache: every step runs the decoder over the whole prefix again."""
    from from_scratch.tasks.reverse.data import PAD, pad_sources
    from from_scratch.tasks.reverse.decode import decode_limit
    order = np.argsort([len(s) for s in seqs], kind="stable")
    results: list = [None] * len(seqs)
    with torch.inference_mode():
        for start in range(0, len(seqs), batch_size):
            idx = order[start:start + batch_size]
            src = pad_sources([seqs[i] for i in idx])
            n, limit = len(idx), decode_limit(twin, src.shape[1])
            out, lengths = np.full((n, limit), PAD, dtype=np.int64), np.full(n, limit)
            src_t = torch.from_numpy(src)
            src_pad = src_t == PAD
            memory = twin.encode(src_t, src_pad)
            alive = np.arange(n)
            tokens = torch.full((n, 1), layout.sos, dtype=torch.int64)
            for t in range(limit):
                nxt = twin.final_linear(twin.decode(tokens, memory, src_pad)[:, -1]).argmax(-1)
                out[alive, t] = nxt.numpy()
                done = (nxt == layout.eos).numpy()
                lengths[alive[done]] = t + 1
                tokens = torch.cat([tokens, nxt[:, None]], dim=1)
                if done.any():
                    keep = torch.from_numpy(np.flatnonzero(~done))
                    if len(keep) == 0:
                        break
                    alive, tokens = alive[keep.numpy()], tokens[keep]
                    memory, src_pad = memory[keep], src_pad[keep]
            for row, i in enumerate(idx):
                results[i] = out[row, :lengths[row]]
    return results


def bench_decoding(ckpt: str | None, n: int, rounds: int = 3) -> dict:
    from from_scratch.tasks.reverse import ReverseConfig, heldout_sequences, load_model, predict, train
    if ckpt:
        model, config = load_model(ckpt)
        trained = f"loaded from {ckpt}"
    else:
        config = ReverseConfig()
        result = train(config, log=lambda _: None)
        model, trained = result.model.eval(), f"trained here: {config.steps} steps in {result.seconds:.0f} s"
    layout = config.layout
    seqs = heldout_sequences(config.seed, n, config.min_len, config.max_len, layout, stream=3)
    twin = twin_of(model, norm_first=config.norm_first).eval()
    twin.max_len = model.max_len
    ours, theirs = predict(model, seqs, layout), torch_greedy(twin, seqs, layout)
    ours_s, torch_s = [], []
    for _ in range(rounds):  # alternating, as for training
        ours_s.append(_timed(lambda: predict(model, seqs, layout)))
        torch_s.append(_timed(lambda: torch_greedy(twin, seqs, layout)))
    ours_s, torch_s = statistics.median(ours_s), statistics.median(torch_s)
    same = np.mean([len(a) == len(b) and (a == b).all() for a, b in zip(ours, theirs)])
    exact = np.mean([len(o) == len(s) + 1 and (o[:-1] == s[::-1]).all() and o[-1] == layout.eos
                     for o, s in zip(ours, seqs)])
    return {"model": trained, "n": n, "ours_s": ours_s, "torch_s": torch_s, "ratio": torch_s / ours_s,
            "same_outputs": float(same), "exact_match": float(exact)}


# ---------------------------------------------------------------- peak memory, one process per library

def _memory_mb(field: str) -> float:
    """VmRSS (resident now) or VmHWM (peak resident) of this process, from /proc (Linux)."""
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith(field + ":")) / 1024


def memory_probe(library: str, size_name: str) -> None:
    """Train 10 steps in this process (one library only) and print the peak RSS above the model's."""
    size = SIZES[size_name]
    manual_seed(0)
    model = Transformer(VOCAB, size["hidden"], LAYERS, HEADS, size["ff"], max_len=64)
    batches = make_batches(size, 4)
    if library == "torch":
        model = twin_of(model, norm_first=False)
        batches = [tuple(torch.from_numpy(a) for a in b) for b in batches]
        step, optimizer = torch_step, torch.optim.Adam(model.parameters(), lr=1e-3)
    else:
        step, optimizer = our_step, Adam(model.parameters(), lr=1e-3)
    before = _memory_mb("VmRSS")
    for i in range(10):
        step(model, optimizer, *batches[i % len(batches)])
    peak = _memory_mb("VmHWM")  # not ru_maxrss: Linux carries that over from the parent process
    print(json.dumps({"peak_mb": peak, "training_mb": peak - before}))


def bench_memory(size_name: str) -> dict:
    out = {"size": size_name}
    for library in ("ours", "torch"):
        cmd = [sys.executable, os.path.abspath(__file__), "--threads", ARGS.threads[0],
               "--memory-probe", library, size_name]
        out[library] = json.loads(subprocess.run(cmd, check=True, capture_output=True, text=True).stdout)
    return out


# ---------------------------------------------------------------- report

def machine() -> str:
    cpu = platform.processor() or "?"
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    return (f"{cpu}, {os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f}; Python "
            f"{platform.python_version()}, NumPy {np.__version__}, torch {torch.__version__}; "
            f"thread settings: {', '.join(ARGS.threads)}")


def main() -> None:
    if ARGS.memory_probe:
        memory_probe(*ARGS.memory_probe)
        return
    if ARGS.device != "cpu":
        import speed_cuda
        speed_cuda.main(ARGS.device, ARGS.sizes, ARGS.rounds, build_pair, make_batches, VOCAB)
        return
    parts = ARGS.only or ["train", "decode", "memory"]
    sizes = ARGS.sizes or list(SIZES)
    use_threads(ARGS.threads[0])
    print(machine())
    if "train" in parts:
        peak = matmul_roofline()
        print(f"\nTraining step (forward, backward, Adam), median of {ARGS.rounds} alternating rounds "
              f"(range in brackets); matmul roofline {peak:.0f} GFLOP/s (one 2048x2048 float32 product); "
              f"our products: how many ran on how many BLAS threads (threads x products)\n")
        print("| size | hidden / ff / batch x length | threads | ours ms/step | PyTorch ms/step | speed-up | "
              "our products | PyTorch threads | products alone, 1 thread, ms/step (bound on the speed-up) | "
              "ours GFLOP/s (% of roofline) | PyTorch GFLOP/s |")
        print("|---|---|---|---:|---:|---:|---|---:|---:|---:|---:|")
        for name in sizes:
            size = SIZES[name]
            for r in bench_training(name, size, ARGS.rounds, ARGS.threads):
                ours_g, torch_g = r["flops"] / r["ours_ms"] / 1e6, r["flops"] / r["torch_ms"] / 1e6
                used = ", ".join(f"{n} x {count}" for n, count in r["ours_threads"].items())
                print(f"| {name} | {size['hidden']} / {size['ff']} / {size['batch']}x{size['length']} | "
                      f"{r['setting']} | {r['ours_ms']:.2f} ({r['ours_range'][0]:.2f}-{r['ours_range'][1]:.2f}) | "
                      f"{r['torch_ms']:.2f} ({r['torch_range'][0]:.2f}-{r['torch_range'][1]:.2f}) | "
                      f"{r['ratio']:.2f}x | {used} | {r['torch_threads']} | "
                      f"{r['products_ms']:.2f} ({r['torch_ms'] / r['products_ms']:.1f}x) | "
                      f"{ours_g:.1f} ({100 * ours_g / peak:.0f}%) | {torch_g:.1f} |", flush=True)
    if "decode" in parts:
        d = bench_decoding(ARGS.ckpt, ARGS.sequences)
        print(f"\nGreedy decoding of {d['n']:,} reversal sequences (lengths 1-16, batches of 500), default model "
              f"({d['model']}), median of 3 alternating rounds:\n")
        print("| ours, KV cache | PyTorch, no cache | speed-up | identical outputs | exact match |")
        print("|---:|---:|---:|---:|---:|")
        print(f"| {d['ours_s']:.2f} s | {d['torch_s']:.2f} s | {d['ratio']:.1f}x | "
              f"{100 * d['same_outputs']:.1f}% | {100 * d['exact_match']:.1f}% |", flush=True)
    if "memory" in parts:
        print("\nPeak resident memory of 10 training steps, one process per library (MB above the process "
              "before training; total peak in brackets, which includes each library's import):\n")
        print("| size | ours | PyTorch |")
        print("|---|---:|---:|")
        for name in sizes:
            m = bench_memory(name)
            print(f"| {name} | {m['ours']['training_mb']:.1f} ({m['ours']['peak_mb']:.0f}) | "
                  f"{m['torch']['training_mb']:.1f} ({m['torch']['peak_mb']:.0f}) |", flush=True)


if __name__ == "__main__":
    main()
