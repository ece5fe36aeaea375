"""gradcheck: compare a function's autograd gradients with central finite differences."""
from __future__ import annotations

from typing import Callable, Sequence

import numpy as np

from . import backend
from .autograd.function import no_grad
from .autograd.tensor import Tensor


def gradcheck(fn: Callable[..., Tensor], inputs: Sequence[Tensor], eps: float = 1e-6,
              atol: float = 1e-6, rtol: float = 1e-5, seed: int = 0) -> bool:
    """Check d(sum(w * fn(*inputs)))/d(input) against finite differences for every float64 input.

    ``w`` is a fixed random weighting so that every output element matters. Raises
    ``AssertionError`` naming the input and the worst element on a mismatch; returns True.
    """
    for i, x in enumerate(inputs):
        if x.requires_grad and x.dtype != np.float64:
            raise TypeError(f"gradcheck: input {i} is {x.dtype}; finite differences need float64")
    out = fn(*inputs)
    # a fixed weighting, drawn on the host and copied to the output's device
    w = backend.to_device(np.random.default_rng(seed).standard_normal(out.shape), out.device)  # host: drawn here

    @no_grad()
    def objective() -> float:
        return float((fn(*inputs).data * w).sum())

    for x in inputs:
        x.grad = None
    (out * Tensor(w, dtype=out.dtype, device=out.device)).sum().backward()
    for i, x in enumerate(inputs):
        if not x.requires_grad:
            continue
        numeric = np.zeros_like(x.data)
        for k in np.ndindex(x.shape):  # index x.data itself: a reshape of a strided array would be a copy
            orig = x.data[k]
            x.data[k] = orig + eps
            up = objective()
            x.data[k] = orig - eps
            down = objective()
            x.data[k] = orig
            numeric[k] = (up - down) / (2 * eps)
        analytic = backend.as_numpy(x.grad if x.grad is not None else np.zeros_like(x.data))
        numeric = backend.as_numpy(numeric)  # compared on the host: this is a test, not a training step
        if not np.allclose(analytic, numeric, atol=atol, rtol=rtol):
            k = np.unravel_index(np.argmax(np.abs(analytic - numeric)), x.shape)
            raise AssertionError(f"gradcheck: input {i} {x.shape} at {k}: autograd {analytic[k]:.10g} "
                                 f"vs finite difference {numeric[k]:.10g}")
    return True
