"""Tensor factories: zeros, ones, full, arange, and random draws from the library's generator."""
from __future__ import annotations

from typing import Any

import numpy as np

from .autograd.tensor import Tensor, get_default_dtype
from .random import get_rng


def _shape(shape: tuple) -> tuple:
    return tuple(shape[0]) if len(shape) == 1 and isinstance(shape[0], (tuple, list)) else shape


def zeros(*shape: Any, requires_grad: bool = False, dtype: Any = None) -> Tensor:
    return Tensor(np.zeros(_shape(shape)), requires_grad, dtype or get_default_dtype())


def ones(*shape: Any, requires_grad: bool = False, dtype: Any = None) -> Tensor:
    return Tensor(np.ones(_shape(shape)), requires_grad, dtype or get_default_dtype())


def full(shape: Any, value: float, requires_grad: bool = False, dtype: Any = None) -> Tensor:
    return Tensor(np.full(shape, value), requires_grad, dtype or get_default_dtype())


def arange(*args: Any, dtype: Any = None) -> Tensor:
    return Tensor(np.arange(*args, dtype=dtype))


def randn(*shape: Any, requires_grad: bool = False, dtype: Any = None) -> Tensor:
    """Standard normal draws from the seeded generator (see ``manual_seed``)."""
    data = get_rng().standard_normal(_shape(shape))
    return Tensor(data, requires_grad, dtype or get_default_dtype())


def rand(*shape: Any, requires_grad: bool = False, dtype: Any = None) -> Tensor:
    """Uniform [0, 1) draws from the seeded generator."""
    data = get_rng().random(_shape(shape))
    return Tensor(data, requires_grad, dtype or get_default_dtype())
