"""How the Tensor API takes its dim arguments, NumPy's way and PyTorch's.

``tensor.py`` and ``tensor_shape.py`` name axes NumPy's way (``axis=``, ``keepdims=``), ``tensor_api.py``
PyTorch's (``dim=``, ``keepdim=``). Two decorators let every method be called either way:

* ``dim_alias``: a method that names ``axis``/``keepdims`` also takes ``dim``/``keepdim``, and one that
  names ``dim``/``keepdim`` also takes ``axis``/``keepdims`` (PyTorch itself takes ``axis`` as an
  alias of ``dim``). Passing both spellings is an error.
* ``indices_by_dim``: ``x.max(dim=1)`` returns PyTorch's ``(values, indices)`` pair; ``x.max(1)`` and
  ``x.max(axis=1)`` keep NumPy's meaning (``amax``: the values alone, ties sharing the gradient).
"""
from __future__ import annotations

import functools
import inspect
from typing import TYPE_CHECKING, Any, Callable

import numpy as np

from . import return_types
from .index_ops import Gather
from .ops import check_axis

if TYPE_CHECKING:
    from .tensor import Tensor

__all__ = ["dim_alias", "indices_by_dim", "arg_reduce"]

_ALIASES = (("dim", "axis"), ("axis", "dim"), ("keepdim", "keepdims"), ("keepdims", "keepdim"))


def dim_alias(fn: Callable) -> Callable:
    """Let ``fn`` be called with either spelling of its dim arguments (``dim``/``axis``, ``keepdim``/
    ``keepdims``): the one ``fn`` does not name is renamed to the one it does. Both at once: TypeError."""
    params = inspect.signature(fn).parameters
    renames = [(alias, own) for own, alias in _ALIASES if own in params and alias not in params]
    name = fn.__name__

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        if kwargs:
            for alias, own in renames:
                if alias in kwargs:
                    if own in kwargs:
                        raise TypeError(f"{name}: got both {own}= and {alias}=; pass one "
                                        f"({alias} is another name for {own})")
                    kwargs[own] = kwargs.pop(alias)
        return fn(*args, **kwargs)
    return wrapper


def arg_reduce(name: str, fn: Callable, a: np.ndarray, axis: int | None, keepdims: bool) -> np.ndarray:
    """``fn`` (np.argmax or np.argmin) over ``axis`` as int64 indices; ValueError naming ``name`` for an empty axis."""
    try:
        out = fn(a, axis=axis, keepdims=keepdims).astype(np.int64, copy=False)
        return np.asarray(out) if isinstance(out, np.generic) else out  # host: NumPy's scalar (axis=None) as 0-d
    except ValueError:  # an empty reduced axis has no extreme
        raise ValueError(f"{name}: the tensor of shape {a.shape} is empty along the reduced dim") from None


def indices_by_dim(arg_fn: Callable) -> Callable:
    """Make ``x.max(dim=d)`` (with ``arg_fn=np.argmax``) or ``x.min(dim=d)`` return PyTorch's
    ``(values, indices)`` pair, the values taking their gradient at the index returned (the first
    extreme, as PyTorch's). Without ``dim=`` the decorated NumPy-style method runs: ``x.max()``,
    ``x.max(1)``, ``x.max(axis=(0, 1), keepdims=True)`` give the values alone, ties sharing the
    gradient (``torch.amax``'s rule), so existing code keeps its meaning."""
    def decorate(method: Callable) -> Callable:
        name = method.__name__

        @functools.wraps(method)
        def wrapper(self: "Tensor", *args: Any, dim: Any = None, keepdim: Any = None, **kwargs: Any) -> Any:
            if keepdim is not None:
                if "keepdims" in kwargs:
                    raise TypeError(f"{name}: got both keepdim= and keepdims=; pass one")
                kwargs["keepdims"] = keepdim
            if dim is None:
                return method(self, *args, **kwargs)
            if args or "axis" in kwargs:
                raise TypeError(f"{name}: got dim= and an axis too; pass one (dim= also returns the indices)")
            if isinstance(dim, (tuple, list)):
                raise TypeError(f"{name}: dim= takes one dim (it returns indices); use axis={tuple(dim)} "
                                f"to reduce over several")
            keep = kwargs.pop("keepdims", False)
            if kwargs:
                raise TypeError(f"{name}: unexpected arguments {sorted(kwargs)}")
            (axis,) = check_axis(name, self.shape, dim)
            order = arg_reduce(name, arg_fn, self.data, axis, True)
            values, indices = Gather.apply(self, index=order, axis=axis), self._make(order, False)
            if not keep:
                values, indices = values.squeeze(axis), indices.squeeze(axis)
            return getattr(return_types, name)(values, indices)
        return wrapper
    return decorate
