"""RMSprop: divide each gradient by a running root mean square of its recent values."""
from __future__ import annotations

from typing import Any, Iterable

import numpy as np

from .optimizer import Optimizer, check_hyperparameter

__all__ = ["RMSprop"]


class RMSprop(Optimizer):
    """RMSprop (Hinton's lecture 6e; centered form from Graves, 2013), as ``torch.optim.RMSprop``.

    Per parameter, with g = grad + weight_decay * p:
    v = alpha * v + (1 - alpha) * g^2; centered also keeps m = alpha * m + (1 - alpha) * g and uses
    v - m^2 (a variance) in place of v; d = sqrt(v) + eps. Without momentum p = p - lr * g / d, with it
    b = momentum * b + g / d and p = p - lr * b. State keys are PyTorch's: ``step``, ``square_avg``,
    ``grad_avg`` (centered), ``momentum_buffer`` (momentum > 0).
    """

    def __init__(self, params: Iterable[Any], lr: float = 1e-2, alpha: float = 0.99, eps: float = 1e-8,
                 weight_decay: float = 0.0, momentum: float = 0.0, centered: bool = False):
        super().__init__(params, dict(lr=lr, alpha=alpha, eps=eps, weight_decay=weight_decay, momentum=momentum,
                                      centered=centered))

    def _check_group(self, group: dict[str, Any]) -> None:
        super()._check_group(group)
        for key in ("alpha", "eps", "weight_decay", "momentum"):
            check_hyperparameter(group[key] >= 0, "RMSprop", key, group[key], ">= 0")

    def step(self) -> None:
        """Update every parameter that has a gradient."""
        for group in self.param_groups:
            lr, alpha, eps, momentum, centered = (group[k] for k in ("lr", "alpha", "eps", "momentum", "centered"))
            for p, state, g in self._counted_grads(group, lambda p: {"square_avg": np.zeros_like(p.data)}):
                v = state["square_avg"]
                v *= alpha
                v += (1 - alpha) * (g * g)
                if centered:  # v - m^2 estimates the gradient's variance rather than its second moment
                    m = state.setdefault("grad_avg", np.zeros_like(p.data))
                    m *= alpha
                    m += (1 - alpha) * g
                    denom = np.sqrt(v - m * m)
                else:
                    denom = np.sqrt(v)
                denom += eps
                if momentum:
                    buf = state.setdefault("momentum_buffer", np.zeros_like(p.data))
                    buf *= momentum
                    buf += g / denom
                    p.data -= lr * buf
                else:
                    p.data -= lr * (g / denom)
