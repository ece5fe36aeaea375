"""Parameter initialisers (in place, drawing from the library's seeded generator).

Layers are built on the CPU and moved with ``Module.to(device)``, as in PyTorch; the random initialisers
draw on the host from the CPU's generator and copy the values onto the tensor's device, so one seed gives
the same weights on every device, however a layer got there.
"""
from __future__ import annotations

import math
from typing import Any

import numpy as np

from .. import backend
from ..autograd.tensor import Tensor, get_default_dtype
from ..random import get_rng


def empty(*shape: int, dtype: Any = None) -> np.ndarray:
    """An uninitialised host array for a new layer's parameter or buffer (``dtype``: the default dtype)."""
    return np.empty(shape, dtype or get_default_dtype())  # host: layers are built on the CPU (see above)


def _fans(t: Tensor) -> tuple[int, int]:
    if t.ndim < 2:
        raise ValueError(f"init: fan in and fan out need a tensor of at least 2 dimensions, got shape {t.shape}")
    receptive = int(np.prod(t.shape[2:])) if t.ndim > 2 else 1
    return t.shape[1] * receptive, t.shape[0] * receptive


def uniform_(t: Tensor, a: float = 0.0, b: float = 1.0) -> Tensor:
    t.data = backend.to_device(get_rng().uniform(a, b, t.shape).astype(t.dtype), t.device)
    return t


def normal_(t: Tensor, mean: float = 0.0, std: float = 1.0) -> Tensor:
    t.data = backend.to_device((get_rng().standard_normal(t.shape) * std + mean).astype(t.dtype), t.device)
    return t


def zeros_(t: Tensor) -> Tensor:
    t.data = np.zeros_like(t.data)
    return t


def ones_(t: Tensor) -> Tensor:
    t.data = np.ones_like(t.data)
    return t


def xavier_uniform_(t: Tensor, gain: float = 1.0) -> Tensor:
    """U(-a, a) with a = gain * sqrt(6 / (fan_in + fan_out)) (Glorot & Bengio)."""
    fan_in, fan_out = _fans(t)
    a = gain * math.sqrt(6.0 / (fan_in + fan_out))
    return uniform_(t, -a, a)


def kaiming_uniform_(t: Tensor, a: float = math.sqrt(5)) -> Tensor:
    """PyTorch's default Linear init: U(-b, b), b = sqrt(6 / ((1 + a^2) fan_in))."""
    fan_in, _ = _fans(t)
    bound = math.sqrt(6.0 / ((1 + a * a) * fan_in)) if fan_in else 0.0
    return uniform_(t, -bound, bound)
