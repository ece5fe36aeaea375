"""Autograd basics: gradients of scalar and tensor expressions, checked by finite differences, and the graph drawn.

    python examples/autograd_basics.py            # writes runs/autograd_basics/graph.dot (and graph.png)

Every Tensor made by an op remembers the op (``t._ctx``) and its inputs (``t._ctx.parents``);
``backward()`` walks that graph from the output back to the leaves, applying the chain rule.
"""
from __future__ import annotations

import shutil
import subprocess
import sys
from typing import Callable, Sequence

import numpy as np
from _common import make_parser, setup

import from_scratch as fs
from from_scratch.viz import to_dot


def finite_difference(f: Callable[[], fs.Tensor], x: fs.Tensor, eps: float = 1e-6) -> np.ndarray:
    """Estimate d f / d x one element at a time: (f(x + eps) - f(x - eps)) / (2 eps)."""
    grad = np.zeros_like(x.data)  # on x's device
    for i in np.ndindex(x.shape):
        orig = x.data[i]
        x.data[i] = orig + eps
        up = f().item()
        x.data[i] = orig - eps
        down = f().item()
        x.data[i] = orig
        grad[i] = (up - down) / (2 * eps)
    return grad


def check(title: str, f: Callable[[], fs.Tensor], inputs: Sequence[tuple[str, fs.Tensor]]) -> float:
    """Run backward on f() and compare every input's .grad with finite differences; return the worst gap."""
    for _, x in inputs:
        x.grad = None
    out = f()
    out.backward()
    print(f"\n{title}: output = {out.item():.6f}")
    worst = 0.0
    for name, x in inputs:
        numeric = finite_difference(f, x)
        gap = float(np.abs(x.grad - numeric).max())
        worst = max(worst, gap)
        shown = f"{x.grad.item():+.6f}" if x.size == 1 else f"shape {x.shape}"
        print(f"  d out / d {name}: autograd {shown}, max |autograd - finite difference| = {gap:.1e}")
    return worst


def main(argv: Sequence[str] | None = None) -> dict:
    args = make_parser("autograd_basics", __doc__.splitlines()[0]).parse_args(argv)
    out_dir = setup(args)
    dev = args.device
    f64 = np.float64  # finite differences need float64: in float32 the rounding error swamps eps

    # 1. Scalars, micrograd style: L = tanh(a * b + c) * f
    a, b, c, f = (fs.Tensor(v, requires_grad=True, dtype=f64, device=dev) for v in (2.0, -3.0, 10.0, -2.0))
    worst = check("scalars: L = tanh((a * b + c) / 4) * f",
                  lambda: ((a * b + c) / 4).tanh() * f, [("a", a), ("b", b), ("c", c), ("f", f)])

    # 2. Tensors: one layer and a loss. Broadcasting (the bias) and matmul have their own backward rules:
    #    d(x W)/dW = x^T g, and the bias gradient sums g over the batch axis that broadcasting added.
    # Drawn on the CPU and moved, so every device starts from the same numbers.
    x = fs.randn(4, 3, dtype=f64).to(dev)
    W = fs.randn(3, 2, dtype=f64).to(dev).requires_grad_()
    bias = fs.zeros(2, requires_grad=True, dtype=f64, device=dev)
    target = fs.randn(4, 2, dtype=f64).to(dev)

    def loss_fn() -> fs.Tensor:
        y = (x @ W + bias).tanh()
        return ((y - target) ** 2).mean()

    worst = max(worst, check("tensors: loss = mean((tanh(x W + bias) - target)^2)", loss_fn,
                             [("W", W), ("bias", bias)]))

    # 3. The graph behind the loss, read from _ctx/_ctx.parents without running backward.
    dot = to_dot(loss_fn(), names={"x": x, "W": W, "bias": bias, "target": target})
    (out_dir / "graph.dot").write_text(dot)
    print(f"\nwrote {out_dir / 'graph.dot'} ({dot.count('shape=ellipse')} ops)")
    png = None
    if shutil.which("dot"):
        png = out_dir / "graph.png"
        subprocess.run(["dot", "-Tpng", str(out_dir / "graph.dot"), "-o", str(png)], check=True)
        print(f"wrote {png}")
    else:
        print("Graphviz `dot` not found: render later with  dot -Tpng graph.dot -o graph.png")

    print(f"max |autograd - finite difference| over all inputs: {worst:.1e}")
    return {"max_error": worst, "dot": dot, "png": png}


if __name__ == "__main__":
    main(sys.argv[1:])
