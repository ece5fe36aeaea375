"""Adam and AdamW: per-coordinate step sizes from running averages of the gradient and its square."""
from __future__ import annotations

import math
from typing import Any, Iterable

import numpy as np

from .optimizer import Optimizer, _check

__all__ = ["Adam", "AdamW"]


class Adam(Optimizer):
    """Adam (Kingma & Ba, 2015) with L2 weight decay folded into the gradient, as ``torch.optim.Adam``."""

    decoupled = False  # AdamW sets this: decay the weights directly instead of through the gradient

    def __init__(self, params: Iterable[Any], lr: float = 1e-3, betas: tuple[float, float] = (0.9, 0.999),
                 eps: float = 1e-8, weight_decay: float = 0.0):
        super().__init__(params, dict(lr=lr, betas=betas, eps=eps, weight_decay=weight_decay))

    def _check_group(self, group: dict[str, Any]) -> None:
        super()._check_group(group)
        name, betas = type(self).__name__, group["betas"]
        _check(len(betas) == 2, name, "betas", betas, "a pair (beta1, beta2)")
        for i, beta in enumerate(betas):
            _check(0 <= beta < 1, name, f"beta at index {i}", beta, "in [0, 1)")
        _check(group["eps"] >= 0, name, "eps", group["eps"], ">= 0")
        _check(group["weight_decay"] >= 0, name, "weight_decay", group["weight_decay"], ">= 0")

    def step(self) -> None:
        """Update every parameter that has a gradient."""
        for group in self.param_groups:
            lr, (beta1, beta2), eps, weight_decay = group["lr"], group["betas"], group["eps"], group["weight_decay"]
            for p in group["params"]:
                if p.grad is None:
                    continue
                state = self.state.get(p)
                if state is None:
                    state = self.state[p] = {"step": 0, "exp_avg": np.zeros_like(p.data),
                                             "exp_avg_sq": np.zeros_like(p.data)}
                state["step"] = t = state["step"] + 1
                m, v, g = state["exp_avg"], state["exp_avg_sq"], p.grad
                if weight_decay and self.decoupled:
                    p.data *= 1 - lr * weight_decay  # AdamW: p = p - lr * wd * p
                elif weight_decay:
                    g = p.data * weight_decay  # Adam: g = grad + wd * p
                    g += p.grad
                # m = beta1 * m + (1 - beta1) * g, computed as m + (1 - beta1) * (g - m) like torch's lerp
                tmp = np.subtract(g, m)  # the one scratch array, reused below
                tmp *= 1 - beta1
                m += tmp
                # v = beta2 * v + (1 - beta2) * g^2
                np.multiply(g, g, out=tmp)
                tmp *= 1 - beta2
                v *= beta2
                v += tmp
                # p = p - lr / (1 - beta1^t) * m / (sqrt(v) / sqrt(1 - beta2^t) + eps)   (bias-corrected)
                np.sqrt(v, out=tmp)
                tmp /= math.sqrt(1 - beta2 ** t)
                tmp += eps
                np.divide(m, tmp, out=tmp)
                tmp *= lr / (1 - beta1 ** t)
                p.data -= tmp


class AdamW(Adam):
    """Adam with decoupled weight decay (Loshchilov & Hutter, 2019), as ``torch.optim.AdamW``."""

    decoupled = True

    def __init__(self, params: Iterable[Any], lr: float = 1e-3, betas: tuple[float, float] = (0.9, 0.999),
                 eps: float = 1e-8, weight_decay: float = 1e-2):
        super().__init__(params, lr=lr, betas=betas, eps=eps, weight_decay=weight_decay)
