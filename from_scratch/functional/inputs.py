"""What a function accepts where it expects a Tensor: a Tensor, or array-like data taken as a constant.

Devices: constants that go with an input (integer targets and ids, masks, class weights, indices) must be
on the input's device, as in PyTorch: an array or Tensor of another device is a RuntimeError naming both
devices (``constant``), never a silent copy; a list or number is made on the input's device.

Reads back from a device: checking integer inputs reads one flag (or their min and max) back to the host,
a wait for the device's queue, in ``cross_entropy``/``nll_loss`` (targets; also the count of ignored ones),
``embedding`` (ids), ``one_hot``, ``gather``/``scatter_add``/``index_add``/``index_select`` (indices);
so do ``binary_cross_entropy``'s range check, ``max_pool2d``'s NaN test, ``gelu``'s erfc (which branch of
the approximation each element takes) and a weighted ``cross_entropy`` mean (its total weight). Everything
else stays on the device: attention's softmax takes each row's own max there instead of the CPU's test."""
from __future__ import annotations

from typing import Any

import numpy as np

from .. import backend
from ..autograd.tensor import Tensor

__all__ = ["as_tensor", "constant"]


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


def constant(x: Tensor, value: Any, name: str, what: str, dtype: Any = None) -> Any:
    """``value`` (a Tensor, an array, a list or a number) as a constant array on ``x``'s device, in ``dtype``
    if given. Raises RuntimeError, naming ``name``, ``what`` and both devices, for an array or Tensor on
    another device than ``x`` (see the module docstring)."""
    return backend.on_device_of(x.data, value.data if isinstance(value, Tensor) else value, name, what, dtype)
