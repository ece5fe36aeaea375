"""The primitive movement ops: reshape, permute, expand, indexing, concatenation and where.

They move or select elements without arithmetic, so each backward routes the gradient back to where
its element came from: reshaped or transposed back, summed over what ``expand`` repeated, scattered
back into place (indexing), split (concatenation), or sent to the side ``where`` picked.
Reshape, permute, expand and basic indexing return views of their input (``returns_view``).
"""
from __future__ import annotations

import itertools
from typing import Any

import numpy as np

from .. import backend
from .function import Function
from .ops import check_axis, unbroadcast


class Reshape(Function):
    saved_inputs, saves_output = (), False
    returns_view = True

    def forward(self, a, shape=()):
        self.shape = a.shape
        try:
            return a.reshape(shape)
        except ValueError:
            raise ValueError(f"reshape: cannot reshape {a.shape} ({a.size} elements) to {tuple(shape)}") from None
        except TypeError:
            raise TypeError(f"reshape: sizes must be integers, got {tuple(shape)}") from None

    def backward(self, g):
        return g.reshape(self.shape)


class Permute(Function):
    saved_inputs, saves_output = (), False
    returns_view = True

    def forward(self, a, dims=()):
        if sorted(d + a.ndim if d < 0 else d for d in dims) != list(range(a.ndim)):
            raise ValueError(f"permute: {tuple(dims)} is not a permutation of the {a.ndim} axes of {a.shape}")
        self.dims = dims
        try:
            return a.transpose(dims)
        except TypeError:
            raise TypeError(f"permute: axes must be integers, got {tuple(dims)}") from None

    def backward(self, g):
        inverse = sorted(range(g.ndim), key=lambda i: self.dims[i] % g.ndim)
        return g.transpose(inverse)


class Expand(Function):
    saved_inputs, saves_output = (), False
    returns_view = True

    def forward(self, a, shape=()):
        self.shape = a.shape
        try:
            return np.broadcast_to(a, shape)
        except ValueError:
            raise ValueError(f"expand: cannot broadcast {a.shape} to {tuple(shape)}") from None

    def backward(self, g):
        return unbroadcast(g, self.shape)


def _is_basic(index: Any) -> bool:
    items = index if isinstance(index, tuple) else (index,)
    return all(i is None or i is Ellipsis or isinstance(i, (int, np.integer, slice)) for i in items)


class GetItem(Function):
    saved_inputs, saves_output = (), False
    returns_view = property(lambda self: _is_basic(self.index))  # basic indexing gives a view, fancy a copy

    def forward(self, a, index=None):
        self.shape, self.dtype, self.index = a.shape, a.dtype, index
        try:
            return a[index]
        except IndexError as e:
            raise IndexError(f"getitem: {e} (tensor shape {a.shape})") from None

    def backward(self, g):
        grad = np.zeros_like(g, shape=self.shape, dtype=self.dtype)  # made from g: on g's device
        if _is_basic(self.index):
            grad[self.index] = g  # a view: each element is picked at most once
        else:
            backend.scatter_add(grad, self.index, g)  # repeated indices add up (embedding lookups)
        return grad


class Cat(Function):
    saved_inputs, saves_output = (), False

    def forward(self, *arrays, axis=0):
        if not arrays:
            raise ValueError("cat: got no tensors")
        check_axis("cat", arrays[0].shape, axis)
        self.axis = axis
        self.splits = list(itertools.accumulate(a.shape[axis] for a in arrays))[:-1]
        try:
            return np.concatenate(arrays, axis=axis)
        except ValueError:
            shapes = ", ".join(str(a.shape) for a in arrays)
            raise ValueError(f"cat: shapes {shapes} differ outside axis {axis}") from None

    def backward(self, g):
        return tuple(np.split(g, self.splits, axis=self.axis))


class Where(Function):
    saved_inputs, saves_output = (), False

    def forward(self, a, b, cond=None):
        self.cond, self.a_shape, self.b_shape = cond, a.shape, b.shape
        try:
            return np.where(cond, a, b)
        except ValueError:
            raise ValueError(f"where: condition {cond.shape}, {a.shape}, {b.shape}: shapes cannot broadcast") from None

    def backward(self, g):
        zero = g.dtype.type(0)
        return (unbroadcast(np.where(self.cond, g, zero), self.a_shape) if self.needs_input_grad[0] else None,
                unbroadcast(np.where(self.cond, zero, g), self.b_shape) if self.needs_input_grad[1] else None)
