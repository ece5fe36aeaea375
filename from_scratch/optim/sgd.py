"""SGD: stochastic gradient descent with optional momentum, Nesterov momentum and L2 weight decay."""
from __future__ import annotations

from typing import Any, Iterable

from .optimizer import Optimizer, check_hyperparameter

__all__ = ["SGD"]


class SGD(Optimizer):
    """Stochastic gradient descent, as ``torch.optim.SGD``."""

    def __init__(self, params: Iterable[Any], lr: float = 1e-3, momentum: float = 0.0, dampening: float = 0.0,
                 weight_decay: float = 0.0, nesterov: bool = False):
        super().__init__(params, dict(lr=lr, momentum=momentum, dampening=dampening, weight_decay=weight_decay,
                                      nesterov=nesterov))

    def _check_group(self, group: dict[str, Any]) -> None:
        super()._check_group(group)
        check_hyperparameter(group["momentum"] >= 0, "SGD", "momentum", group["momentum"], ">= 0")
        check_hyperparameter(group["weight_decay"] >= 0, "SGD", "weight_decay", group["weight_decay"], ">= 0")
        check_hyperparameter(not group["nesterov"] or (group["momentum"] > 0 and group["dampening"] == 0), "SGD",
               "nesterov", group["nesterov"], "False unless momentum > 0 and dampening == 0")

    def step(self) -> None:
        """Update every parameter that has a gradient."""
        for group in self.param_groups:
            lr, momentum, dampening = group["lr"], group["momentum"], group["dampening"]
            weight_decay, nesterov = group["weight_decay"], group["nesterov"]
            for p in group["params"]:
                if p.grad is None:
                    continue
                g = p.grad
                if weight_decay:
                    g = p.data * weight_decay  # g = grad + wd * p  (L2 penalty wd/2 * |p|^2)
                    g += p.grad
                if momentum:
                    state = self.state.get(p)
                    if state is None:  # first step: b = g
                        buf = g.copy()
                        self.state[p] = {"momentum_buffer": buf}
                    else:  # b = momentum * b + (1 - dampening) * g
                        buf = state["momentum_buffer"]
                        buf *= momentum
                        buf += (1 - dampening) * g if dampening else g
                    g = g + momentum * buf if nesterov else buf  # Nesterov looks ahead: g + momentum * b
                p.data -= lr * g  # p = p - lr * g
