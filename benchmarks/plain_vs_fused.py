"""Each fused fast path against its plain version, forward + backward at the tutorial's size.

    python benchmarks/plain_vs_fused.py              # 15 alternating rounds
    python benchmarks/plain_vs_fused.py --rounds 31

Sizes: a batch of 16 sequences of 10 tokens, hidden 64, feed-forward 128, 4 heads, 20 classes (the
reversal Transformer's). Each round times one batch of calls with the fast paths on, then the same with
``F.use_fused(False)``; the report gives the median and best per call, and their ratio. Adam's flat
fast path is timed against its per-parameter loop (``foreach=False``) on the whole Transformer's
parameters. A script, not a test: nothing here asserts a timing.
"""
from __future__ import annotations

import argparse
import os
import statistics
import time

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import numpy as np  # noqa: E402

import from_scratch.functional as F  # noqa: E402
from from_scratch import Tensor, manual_seed  # noqa: E402
from from_scratch.nn import Transformer  # noqa: E402
from from_scratch.optim import Adam  # noqa: E402

B, T, H, FF, HEADS, C = 16, 10, 64, 128, 4, 20
rng = np.random.default_rng(0)


def leaf(*shape: int) -> Tensor:
    return Tensor(rng.standard_normal(shape).astype(np.float32), requires_grad=True)


x, y, logits = leaf(B, T, H), leaf(B, T, H), leaf(B, T, C)
target = rng.integers(0, C, (B, T))
w, b = leaf(H), leaf(H)
w1, b1, w2, b2 = leaf(FF, H), leaf(FF), leaf(H, FF), leaf(H)
attn = [leaf(H, H) if i % 2 == 0 else leaf(H) for i in range(8)]
mask = F.create_padding_mask(np.where(np.arange(T) < 8, 1, 0)[None].repeat(B, 0))

CASES = {
    "softmax": lambda: F.softmax(logits),
    "log_softmax": lambda: F.log_softmax(logits),
    "cross_entropy": lambda: F.cross_entropy(logits, target),
    "layer_norm": lambda: F.layer_norm(x, w, b),
    "add_layer_norm": lambda: F.add_layer_norm(x, y, w, b),
    "linear": lambda: F.linear(x, w1, b1),
    "feed_forward": lambda: F.feed_forward(x, w1, b1, w2, b2),
    "self-attention": lambda: F.multi_head_attention(x, None, None, attn, HEADS, mask)[0],
    "cross-attention": lambda: F.multi_head_attention(x, y, None, attn, HEADS, mask)[0],
}


def time_case(fn, calls: int) -> float:
    start = time.perf_counter()
    for _ in range(calls):
        fn().sum().backward()
    return (time.perf_counter() - start) / calls


def time_adam(foreach: bool, model: Transformer, calls: int) -> float:
    opt = Adam(model.parameters(), lr=1e-9, foreach=foreach)
    opt.step()  # warm: state and flat buffers exist
    start = time.perf_counter()
    for _ in range(calls):
        opt.step()
    return (time.perf_counter() - start) / calls


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--calls", type=int, default=20, help="calls per case per round")
    args = parser.parse_args()
    times: dict[str, tuple[list, list]] = {name: ([], []) for name in [*CASES, "Adam step"]}
    manual_seed(0)
    model = Transformer(C, H, 2, HEADS, FF, 32)
    for p in model.parameters():
        p.grad = np.ones_like(p.data)
    for _ in range(args.rounds):
        for name, fn in CASES.items():
            for i, fused in enumerate((True, False)):
                with F.use_fused(fused):
                    times[name][i].append(time_case(fn, args.calls))
        for i, foreach in enumerate((True, False)):
            times["Adam step"][i].append(time_adam(foreach, model, args.calls))
    print(f"load average {os.getloadavg()[0]:.2f}; median (best) per call, fused vs plain")
    for name, (fast, plain) in times.items():
        mf, mp = statistics.median(fast), statistics.median(plain)
        print(f"{name:16s} {mf * 1e6:8.0f} us ({min(fast) * 1e6:6.0f})   {mp * 1e6:8.0f} us ({min(plain) * 1e6:6.0f})"
              f"   {mp / mf:5.2f}x")


if __name__ == "__main__":
    main()
