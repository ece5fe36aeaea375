"""What a function accepts where it expects a Tensor: a Tensor, or array-like data taken as a constant."""
from __future__ import annotations

from typing import Any

import numpy as np

from ..autograd.tensor import Tensor

__all__ = ["as_tensor"]


def as_tensor(x: Any, name: str, what: str = "input") -> Tensor:
    """Return ``x`` if it is a Tensor; a NumPy array, list, tuple or number becomes a constant Tensor
    (floats in the default dtype, as ``Tensor(x)`` makes them). Anything else is a TypeError naming
    ``name`` (the function or layer) and ``what`` (the argument)."""
    if isinstance(x, Tensor):
        return x
    if isinstance(x, (np.ndarray, np.generic, list, tuple, int, float, bool)):
        try:
            return Tensor(x)
        except (TypeError, ValueError) as e:
            raise TypeError(f"{name}: {what} of type {type(x).__name__} cannot become a Tensor ({e})") from None
    raise TypeError(f"{name}: {what} must be a Tensor, a NumPy array or a (nested) list of numbers, "
                    f"got {type(x).__name__}")
