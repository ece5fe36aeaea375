"""Tensor factories: zeros, ones, full, arange, random draws from the library's generator, ``tensor`` and
the ``*_like`` family (shaped and typed after another tensor, as PyTorch's)."""
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


def tensor(data: Any, dtype: Any = None, requires_grad: bool = False) -> Tensor:
    """A new tensor holding a copy of ``data``, as ``torch.tensor``: Python floats become the default
    dtype, Python ints int64, bools bool; an ndarray (or Tensor) keeps its dtype, float64 included.
    That last rule is where ``Tensor(data)`` differs: like ``torch.Tensor`` it turns float data into the
    default dtype. A Tensor's data is copied and cut from its graph."""
    keeps_dtype = isinstance(data, (np.ndarray, np.generic, Tensor))
    array = np.array(data.data if isinstance(data, Tensor) else data, copy=True)
    if dtype is None and keeps_dtype:
        dtype = array.dtype
    return Tensor(array, requires_grad, dtype)


def _like(name: str, input: Any, dtype: Any, floating: bool = False) -> tuple:
    """The array of ``input`` (a Tensor or array-like) and the dtype to make: ``dtype`` or input's own."""
    array = np.asarray(input.data if isinstance(input, Tensor) else input)
    dtype = np.dtype(dtype) if dtype is not None else array.dtype
    if floating and dtype.kind != "f":
        raise TypeError(f"{name}: random draws need a floating dtype, got {dtype}")
    return array, dtype


def zeros_like(input: Any, dtype: Any = None, requires_grad: bool = False) -> Tensor:
    """Zeros of ``input``'s shape and dtype (or ``dtype``)."""
    array, dtype = _like("zeros_like", input, dtype)
    return Tensor(np.zeros_like(array, dtype=dtype), requires_grad, dtype)


def ones_like(input: Any, dtype: Any = None, requires_grad: bool = False) -> Tensor:
    """Ones of ``input``'s shape and dtype (or ``dtype``)."""
    array, dtype = _like("ones_like", input, dtype)
    return Tensor(np.ones_like(array, dtype=dtype), requires_grad, dtype)


def full_like(input: Any, fill_value: float, dtype: Any = None, requires_grad: bool = False) -> Tensor:
    """``fill_value`` in ``input``'s shape and dtype (or ``dtype``); an integer dtype truncates it."""
    array, dtype = _like("full_like", input, dtype)
    return Tensor(np.full_like(array, fill_value, dtype=dtype), requires_grad, dtype)


def rand_like(input: Any, dtype: Any = None, requires_grad: bool = False) -> Tensor:
    """Uniform [0, 1) draws in ``input``'s shape and floating dtype, from the seeded generator."""
    array, dtype = _like("rand_like", input, dtype, floating=True)
    return Tensor(get_rng().random(array.shape), requires_grad, dtype)


def randn_like(input: Any, dtype: Any = None, requires_grad: bool = False) -> Tensor:
    """Standard normal draws in ``input``'s shape and floating dtype, from the seeded generator."""
    array, dtype = _like("randn_like", input, dtype, floating=True)
    return Tensor(get_rng().standard_normal(array.shape), requires_grad, dtype)
