"""Adagrad: per-coordinate step sizes that shrink with the sum of every squared gradient seen."""
from __future__ import annotations

from typing import Any, Iterable

import numpy as np

from .optimizer import Optimizer, check_hyperparameter

__all__ = ["Adagrad"]


class Adagrad(Optimizer):
    """Adagrad (Duchi, Hazan & Singer, 2011), as ``torch.optim.Adagrad``.

    Per parameter, at step t (counted from 1) with g = grad + weight_decay * p:
    s = s + g^2 (s starts at ``initial_accumulator_value``) and
    p = p - lr / (1 + (t - 1) * lr_decay) * g / (sqrt(s) + eps). State keys are PyTorch's: ``step``, ``sum``.
    """

    def __init__(self, params: Iterable[Any], lr: float = 1e-2, lr_decay: float = 0.0, weight_decay: float = 0.0,
                 initial_accumulator_value: float = 0.0, eps: float = 1e-10):
        super().__init__(params, dict(lr=lr, lr_decay=lr_decay, weight_decay=weight_decay,
                                      initial_accumulator_value=initial_accumulator_value, eps=eps))

    def _check_group(self, group: dict[str, Any]) -> None:
        super()._check_group(group)
        for key in ("lr_decay", "weight_decay", "initial_accumulator_value", "eps"):
            check_hyperparameter(group[key] >= 0, "Adagrad", key, group[key], ">= 0")

    def step(self) -> None:
        """Update every parameter that has a gradient."""
        for group in self.param_groups:
            lr, lr_decay, eps, init = group["lr"], group["lr_decay"], group["eps"], group["initial_accumulator_value"]
            for p, state, g in self._counted_grads(group, lambda p: {"sum": np.full_like(p.data, init)}):
                s = state["sum"]
                s += g * g
                denom = np.sqrt(s)
                denom += eps
                p.data -= lr / (1 + (state["step"] - 1) * lr_decay) * (g / denom)
