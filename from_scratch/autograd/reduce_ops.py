"""The primitive reductions and scans: sum, max (and min), cumsum, prod and the p-norm.

Sum and max are the two every composed reduction is built from (mean, var, logsumexp, softmax).
Cumsum, prod and the norm are primitives too because their gradients need care a composition lacks:
the product's gradient must stay exact where an input is zero (``out / x`` would divide by it), and
the norm's is taken as 0 at the zero vector, as PyTorch's is (``x / ||x||`` would be 0 / 0).
"""
from __future__ import annotations

import numpy as np

from .function import Function
from .ops import check_axis


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


class Sum(Function):
    saved_inputs, saves_output = (), False

    def forward(self, a, axis=None, keepdims=False, name="sum"):
        self.shape, self.axis, self.keepdims = a.shape, check_axis(name, a.shape, axis), keepdims
        return np.sum(a, axis=self.axis, keepdims=keepdims)

    def backward(self, g):
        # every input element adds into its output once: each gets the output's gradient
        return np.broadcast_to(_expand_reduced(g, self.axis, self.keepdims), self.shape)


class Max(Function):
    """amax over axes, or amin with ``largest=False`` (one op: min is max with the comparison turned
    round); ties share the gradient equally (PyTorch's amax rule)."""
    saved_inputs, saves_output = (), False

    def forward(self, a, axis=None, keepdims=False, largest=True):
        name = "max" if largest else "min"
        self.axis, self.keepdims = check_axis(name, a.shape, axis), keepdims
        if a.size == 0 and (self.axis is None or not all(a.shape[i] for i in self.axis)):
            raise ValueError(f"{name}: cannot reduce over an empty axis (tensor shape {a.shape}, axis {axis}): "
                             f"the {name} of nothing is undefined, as in PyTorch")
        out = (np.amax if largest else np.amin)(a, axis=self.axis, keepdims=True)
        self.mask = a == out
        return out if keepdims else (out.reshape(()) if self.axis is None else np.squeeze(out, self.axis))

    def backward(self, g):
        g = _expand_reduced(g, self.axis, self.keepdims)
        count = self.mask.sum(axis=self.axis, keepdims=True, dtype=g.dtype)
        return self.mask * (g / count)


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
