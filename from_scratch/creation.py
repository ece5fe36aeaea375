"""Tensor factories: zeros, ones, full, arange, random draws from the library's generator, ``tensor`` and
the ``*_like`` family (shaped and typed after another tensor, as PyTorch's).

Each takes ``device=`` (``"cpu"`` by default; ``"cuda"``, ``"cuda:N"``): the array is made there by that
device's array module (``from_scratch.backend``), never on the host and copied; the ``*_like`` family
makes it on ``input``'s device unless told otherwise. Random draws come from the device's generator."""
from __future__ import annotations

from typing import Any

import numpy as np

from . import backend
from .autograd.tensor import Tensor, get_default_dtype
from .random import get_rng


def _shape(shape: tuple) -> tuple:
    return tuple(shape[0]) if len(shape) == 1 and isinstance(shape[0], (tuple, list)) else shape


def zeros(*shape: Any, requires_grad: bool = False, dtype: Any = None, device: Any = None) -> Tensor:
    xp = backend.device_module(device or "cpu")
    dtype = dtype or get_default_dtype()
    return Tensor(xp.zeros(_shape(shape), dtype), requires_grad, dtype)


def ones(*shape: Any, requires_grad: bool = False, dtype: Any = None, device: Any = None) -> Tensor:
    xp = backend.device_module(device or "cpu")
    dtype = dtype or get_default_dtype()
    return Tensor(xp.ones(_shape(shape), dtype), requires_grad, dtype)


def full(shape: Any, value: float, requires_grad: bool = False, dtype: Any = None, device: Any = None) -> Tensor:
    xp = backend.device_module(device or "cpu")
    dtype = dtype or get_default_dtype()
    return Tensor(xp.full(shape, value, dtype), requires_grad, dtype)


def arange(*args: Any, dtype: Any = None, device: Any = None) -> Tensor:
    """``numpy.arange``'s values (integers stay int64; floats become the default dtype unless ``dtype``)."""
    xp = backend.device_module(device or "cpu")
    return Tensor(xp.arange(*args, dtype=dtype), dtype=dtype)


def randn(*shape: Any, requires_grad: bool = False, dtype: Any = None, device: Any = None) -> Tensor:
    """Standard normal draws from the device's seeded generator (see ``manual_seed``)."""
    data = get_rng(device).standard_normal(_shape(shape))
    return Tensor(data, requires_grad, dtype or get_default_dtype())


def rand(*shape: Any, requires_grad: bool = False, dtype: Any = None, device: Any = None) -> Tensor:
    """Uniform [0, 1) draws from the device's seeded generator."""
    data = get_rng(device).random(_shape(shape))
    return Tensor(data, requires_grad, dtype or get_default_dtype())


def tensor(data: Any, dtype: Any = None, requires_grad: bool = False, device: Any = None) -> Tensor:
    """A new tensor holding a copy of ``data``, as ``torch.tensor``: Python floats become the default
    dtype, Python ints int64, bools bool; an ndarray (or Tensor) keeps its dtype, float64 included.
    That last rule is where ``Tensor(data)`` differs: like ``torch.Tensor`` it turns float data into the
    default dtype. A Tensor's data is copied and cut from its graph. ``device``: where the copy goes
    (by default where ``data`` is: the CPU for lists and NumPy arrays)."""
    data = data.data if isinstance(data, Tensor) else data
    keeps_dtype = isinstance(data, np.generic) or backend.is_array(data)
    array = data.copy() if backend.is_array(data) else np.array(data, copy=True)  # host: a list, moved below
    if dtype is None and keeps_dtype:
        dtype = array.dtype
    return Tensor(array, requires_grad, dtype, device)


def _like(name: str, input: Any, dtype: Any, device: Any, floating: bool = False) -> tuple:
    """The array of ``input`` (a Tensor or array-like) on ``device`` (input's own by default) and the dtype
    to make: ``dtype`` or input's own."""
    array = input.data if isinstance(input, Tensor) else input
    array = array if backend.is_array(array) else np.asarray(array)  # host: a list (only its shape is used)
    if device is not None and backend.device(device) != backend.device_of(array):
        array = backend.device_module(device).empty(array.shape, array.dtype)  # only its shape and dtype are used
    dtype = np.dtype(dtype) if dtype is not None else array.dtype
    if floating and dtype.kind != "f":
        raise TypeError(f"{name}: random draws need a floating dtype, got {dtype}")
    return array, dtype


def zeros_like(input: Any, dtype: Any = None, requires_grad: bool = False, device: Any = None) -> Tensor:
    """Zeros of ``input``'s shape and dtype (or ``dtype``), on its device (or ``device``)."""
    array, dtype = _like("zeros_like", input, dtype, device)
    return Tensor(np.zeros_like(array, dtype=dtype), requires_grad, dtype)


def ones_like(input: Any, dtype: Any = None, requires_grad: bool = False, device: Any = None) -> Tensor:
    """Ones of ``input``'s shape and dtype (or ``dtype``), on its device (or ``device``)."""
    array, dtype = _like("ones_like", input, dtype, device)
    return Tensor(np.ones_like(array, dtype=dtype), requires_grad, dtype)


def full_like(input: Any, fill_value: float, dtype: Any = None, requires_grad: bool = False,
              device: Any = None) -> Tensor:
    """``fill_value`` in ``input``'s shape and dtype (or ``dtype``); an integer dtype truncates it."""
    array, dtype = _like("full_like", input, dtype, device)
    return Tensor(np.full_like(array, fill_value, dtype=dtype), requires_grad, dtype)


def rand_like(input: Any, dtype: Any = None, requires_grad: bool = False, device: Any = None) -> Tensor:
    """Uniform [0, 1) draws in ``input``'s shape and floating dtype, from its device's seeded generator."""
    array, dtype = _like("rand_like", input, dtype, device, floating=True)
    return Tensor(get_rng(backend.device_of(array)).random(array.shape), requires_grad, dtype)


def randn_like(input: Any, dtype: Any = None, requires_grad: bool = False, device: Any = None) -> Tensor:
    """Standard normal draws in ``input``'s shape and floating dtype, from its device's seeded generator."""
    array, dtype = _like("randn_like", input, dtype, device, floating=True)
    return Tensor(get_rng(backend.device_of(array)).standard_normal(array.shape), requires_grad, dtype)
