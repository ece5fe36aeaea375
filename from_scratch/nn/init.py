"""Parameter initialisers (in place, drawing from the library's seeded generator)."""
from __future__ import annotations

import math

import numpy as np

from ..autograd.tensor import Tensor
from ..random import get_rng


def _fans(t: Tensor) -> tuple[int, int]:
    if t.ndim < 2:
        raise ValueError(f"init: fan in and fan out need a tensor of at least 2 dimensions, got shape {t.shape}")
    receptive = int(np.prod(t.shape[2:])) if t.ndim > 2 else 1
    return t.shape[1] * receptive, t.shape[0] * receptive


def uniform_(t: Tensor, a: float = 0.0, b: float = 1.0) -> Tensor:
    t.data = get_rng().uniform(a, b, t.shape).astype(t.dtype)
    return t


def normal_(t: Tensor, mean: float = 0.0, std: float = 1.0) -> Tensor:
    t.data = (get_rng().standard_normal(t.shape) * std + mean).astype(t.dtype)
    return t


def zeros_(t: Tensor) -> Tensor:
    t.data = np.zeros(t.shape, t.dtype)
    return t


def ones_(t: Tensor) -> Tensor:
    t.data = np.ones(t.shape, t.dtype)
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
