"""Gradient clipping by global norm."""
from __future__ import annotations

import math
from typing import Any, Iterable

import numpy as np

__all__ = ["clip_grad_norm_"]


def clip_grad_norm_(parameters: Iterable[Any] | Any, max_norm: float) -> float:
    """Scale all gradients together, in place, so their joint L2 norm is at most ``max_norm``.

    Return the total norm before clipping; it is nan or inf when some gradient is not finite, and then
    the step should be skipped. Parameters whose grad is None are skipped; a single Tensor may be passed.

    Convention: with a NaN/inf norm the gradients are left as they are (``coef < 1`` is false for NaN);
    ``torch.nn.utils.clip_grad_norm_`` instead multiplies every gradient by NaN.
    """
    if not max_norm >= 0:  # a negative norm would flip every gradient's sign
        raise ValueError(f"clip_grad_norm_: max_norm must be >= 0, got {max_norm}")
    params = [parameters] if hasattr(parameters, "data") else parameters
    grads = [p.grad for p in params if p.grad is not None]
    # ||g|| = sqrt(sum over every gradient entry of g^2), each square sum in float64 on its gradient's device;
    # float() then waits for them once (a device's one copy to the host here, not one per parameter).
    total = math.sqrt(float(sum(np.vdot(g, g).astype(np.float64) for g in grads)))
    coef = float(max_norm) / (total + 1e-6)  # PyTorch's 1e-6 keeps a zero norm from dividing by zero
    if coef < 1:
        for g in grads:
            g *= coef
    return total
