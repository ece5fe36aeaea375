"""Primitive reductions and scans beyond ``ops.Sum`` and ``ops.Max``: cumsum, prod and the p-norm.

Each is a primitive because its gradient needs care the composed version lacks: the product's
gradient must stay exact where an input is zero (``out / x`` would divide by it), and the norm's is
taken as 0 at the zero vector, as PyTorch's is (``x / ||x||`` would be 0 / 0).
"""
from __future__ import annotations

import numpy as np

from .function import Function


def _expand_reduced(g: np.ndarray, axis: tuple | None, keepdims: bool) -> np.ndarray:
    """Put back the reduced axes of an output gradient so it broadcasts against the input."""
    if keepdims:
        return g
    return g.reshape(()) if axis is None else np.expand_dims(g, axis)


def _exclusive_cumprod(a: np.ndarray, axis: int) -> np.ndarray:
    """out[..., i, ...] = a[..., 0, ...] * ... * a[..., i - 1, ...] along ``axis`` (1 at i = 0)."""
    out = np.ones_like(a)
    head, tail = [slice(None)] * a.ndim, [slice(None)] * a.ndim
    head[axis], tail[axis] = slice(1, None), slice(None, -1)
    out[tuple(head)] = np.cumprod(a, axis=axis)[tuple(tail)]
    return out


class Cumsum(Function):
    def forward(self, a, axis=0):
        self.axis = axis
        return np.cumsum(a, axis=axis)

    def backward(self, g):
        # out_j = sum_{i <= j} a_i, so dL/da_i = sum_{j >= i} g_j: a cumsum of g from the other end
        return np.flip(np.cumsum(np.flip(g, self.axis), axis=self.axis), self.axis)


class Prod(Function):
    """The product over one axis (``axis=None``: of every element), with PyTorch's gradient at zeros."""

    def forward(self, a, axis=None, keepdims=False):
        self.a, self.axis, self.keepdims = a, axis, keepdims
        return np.prod(a, axis=axis, keepdims=keepdims)

    def backward(self, g):
        a, axis = self.a, self.axis
        flat = a.reshape(-1) if axis is None else a
        along = 0 if axis is None else axis
        # d prod / d a_i = the product of all the others = (product before i) * (product after i):
        # exact with zeros in a, where out / a_i is 0 / 0 (PyTorch's prod_safe_zeros_backward does the same)
        others = _exclusive_cumprod(flat, along) * np.flip(_exclusive_cumprod(np.flip(flat, along), along), along)
        g = _expand_reduced(g, None if axis is None else (axis,), self.keepdims)
        return (g * others.reshape(a.shape)).astype(a.dtype, copy=False)


class Norm(Function):
    """The vector p-norm (sum |a|^p)^(1/p) over ``axis`` (a tuple, or None for all) for a finite p > 0."""

    def forward(self, a, p=2.0, axis=None, keepdims=False):
        self.a, self.p, self.axis, self.keepdims = a, p, axis, keepdims
        if p == 2:
            out = np.sqrt(np.sum(a * a, axis=axis, keepdims=True))
        elif p == 1:
            out = np.sum(np.abs(a), axis=axis, keepdims=True)
        else:
            out = np.sum(np.abs(a) ** p, axis=axis, keepdims=True) ** (1 / p)
        self.out = out
        if keepdims:
            return out
        return out.reshape(()) if axis is None else np.squeeze(out, axis)

    def backward(self, g):
        a, p, out = self.a, self.p, self.out
        g = _expand_reduced(g, self.axis, self.keepdims)
        # d ||a||_p / d a_i = sign(a_i) |a_i|^(p-1) / ||a||^(p-1); taken as 0 where a_i = 0 or the norm is 0
        # (PyTorch's rule: the zero vector's gradient is 0, and |a_i|^(p-1) is inf at 0 for p < 1)
        with np.errstate(divide="ignore", invalid="ignore"):
            scale = np.where(out > 0, g / out ** (p - 1), 0)
            if p == 2:
                return (a * scale).astype(a.dtype, copy=False)
            grad = np.where(a != 0, np.sign(a) * np.abs(a) ** (p - 1) * scale, 0)
        return grad.astype(a.dtype, copy=False)
