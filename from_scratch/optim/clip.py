"""Gradient clipping by global norm."""
from __future__ import annotations

from typing import Any, Iterable

import numpy as np

from ..autograd.tensor import Tensor

__all__ = ["clip_grad_norm_"]


def clip_grad_norm_(parameters: Iterable[Any] | Any, max_norm: float) -> Tensor:
    """Scale all gradients together, in place, so their joint L2 norm is at most ``max_norm``.

    Return the total norm before clipping as a 0-d Tensor on the gradients' device, in their dtype (a
    0-d float CPU tensor when no parameter has a gradient), as ``torch.nn.utils.clip_grad_norm_``; reading
    it (``.item()``, ``float()``) waits for a device, so read it only to log it. It is nan or inf when some
    gradient is not finite, and then the step should be skipped. Parameters whose grad is None are
    skipped; a single Tensor may be passed. Raises ValueError for a negative ``max_norm``.

    Convention: with a NaN/inf norm the gradients are left as they are (a coefficient of 1);
    ``torch.nn.utils.clip_grad_norm_`` instead multiplies every gradient by NaN.
    """
    if not max_norm >= 0:  # a negative norm would flip every gradient's sign
        raise ValueError(f"clip_grad_norm_: max_norm must be >= 0, got {max_norm}")
    params = [parameters] if hasattr(parameters, "data") else parameters
    grads = [p.grad for p in params if p.grad is not None]
    if not grads:
        return Tensor(0.0)
    # ||g|| = sqrt(sum over every gradient entry of g^2), each square sum in float64 on its gradient's device,
    # where the norm and the coefficient stay: nothing is read back, so a device never waits here.
    total = np.sqrt(sum(np.vdot(g, g).astype(np.float64) for g in grads))
    # PyTorch's coefficient min(max_norm / (||g|| + 1e-6), 1) (the 1e-6 keeps a zero norm from dividing by
    # zero), or 1 where the norm is NaN/inf: multiplying by 1 leaves the gradients exactly as they are.
    coef = np.where(np.isfinite(total), np.minimum(float(max_norm) / (total + 1e-6), 1.0), 1.0)
    # On the host the test costs no wait and spares a multiply per gradient; a device multiplies by 1 instead.
    dtypes = {g.dtype for g in grads}
    if type(grads[0]) is not np.ndarray or coef < 1:
        coefs = {dtype: coef.astype(dtype) for dtype in dtypes}  # in the gradients' dtype, as PyTorch's
        for g in grads:
            g *= coefs[g.dtype]
    return Tensor(total, dtype=np.result_type(*dtypes))
