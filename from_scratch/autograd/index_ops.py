"""Primitive ops that move elements by an index, and the dtype-changing copy.

``Gather`` (``x.gather``) and ``ScatterAdd`` (``x.scatter_add``) are each other's backward; ``IndexAdd``
adds whole slices at given positions. ``sort``, ``topk`` and ``max(dim=)`` are a ``Gather`` of the input
at the indices they pick, so their values are differentiable through it. Index arrays are never
differentiable; they arrive as keyword arguments, already checked by ``check_index``.
"""
from __future__ import annotations

from typing import Any

import numpy as np

from .. import backend
from .function import Function


def check_index(name: str, index: Any, n: int, axis: int, like: Any) -> np.ndarray:
    """Return ``index`` (an array or list) as an integer array on ``like``'s device whose entries address one
    of the ``n`` positions along ``axis``, or raise naming the op. Negative entries are an error, as in
    PyTorch's gather and scatter; so is an index array on another device than ``like`` (PyTorch's rule: no
    copy is made behind the caller's back; a list is made on ``like``'s device)."""
    index = backend.on_device_of(like, index, name, "index")
    if index.dtype.kind not in "iu":
        raise TypeError(f"{name}: index must hold integers, got dtype {index.dtype}")
    if index.size and (index.min() < 0 or index.max() >= n):
        bad = (index.min() if index.min() < 0 else index.max()).item()
        raise IndexError(f"{name}: index {bad} is out of bounds for dim {axis} of size {n}")
    return index


def check_index_shape(name: str, index: np.ndarray, shape: tuple, axis: int | None, what: str = "self") -> None:
    """PyTorch's gather/scatter rule: ``index`` has as many dims as ``shape`` and is no longer on any dim
    but ``axis`` (on any dim at all when ``axis`` is None, as against scatter's ``src``)."""
    if index.ndim != len(shape) or any(index.shape[d] > shape[d] for d in range(len(shape)) if d != axis):
        where = "on any dim" if axis is None else f"outside dim {axis}"
        raise ValueError(f"{name}: index of shape {index.shape} does not fit {what} of shape {shape} "
                         f"(it needs as many dims, and no larger {where})")


def scatter_index(index: np.ndarray, axis: int) -> tuple:
    """The fancy index that pairs each entry of ``index`` with its own position on the other axes:
    ``a[scatter_index(index, 1)][i, j, k] == a[i, index[i, j, k], k]`` (PyTorch's gather for dim=1)."""
    xp = backend.get_array_module(index)  # the positions are made on the index's device
    positions = [xp.arange(n).reshape((1,) * d + (n,) + (1,) * (index.ndim - d - 1)) for d, n in enumerate(index.shape)]
    positions[axis] = index
    return tuple(positions)


def _leading(shape: tuple) -> tuple:
    """The slice of the first ``shape`` entries of an array with at least that many on every axis."""
    return tuple(slice(0, n) for n in shape)


class Gather(Function):
    """out[i][j][k] = a[i][index[i][j][k]][k] for dim=1; the backward adds g back at the same places."""

    fresh_grads = True

    def forward(self, a, index=None, axis=0):
        self.shape, self.where = a.shape, scatter_index(index, axis)
        return a[self.where]

    def backward(self, g):
        grad = np.zeros_like(g, shape=self.shape)  # made from g: on g's device
        backend.scatter_add(grad, self.where, g)  # an index repeated along dim adds up
        return grad


class ScatterAdd(Function):
    """out = a, then out[i][index[i][j][k]][k] += src[i][j][k] for dim=1 (``torch.scatter_add``)."""

    def forward(self, a, src, index=None, axis=0):
        self.src_shape, self.used = src.shape, _leading(index.shape)
        self.where = scatter_index(index, axis)
        out = a.copy()
        backend.scatter_add(out, self.where, src[self.used])
        return out

    def backward(self, g):
        # d out / d a = identity; d out / d src = the gradient gathered at the places src was added to
        gsrc = None
        if self.needs_input_grad[1]:
            gsrc = np.zeros_like(g, shape=self.src_shape)
            gsrc[self.used] = g[self.where]
        return g, gsrc


class IndexAdd(Function):
    """out = a, then out[..., index[i], ...] += alpha * source[..., i, ...] along ``axis`` (``torch.index_add``).
    The embedding backward in ``fused.Embedding`` is this op on axis 0 with a zero ``a``; it keeps its
    own sorted-run sum there, which is faster on large vocabularies than ``np.add.at``."""

    def forward(self, a, source, index=None, axis=0, alpha=1):
        self.where, self.alpha = (slice(None),) * axis + (index,), alpha
        out = a.copy()
        backend.scatter_add(out, self.where, source * alpha if alpha != 1 else source)
        return out

    def backward(self, g):
        gsrc = g[self.where] if self.needs_input_grad[1] else None
        return g, (gsrc * self.alpha if self.alpha != 1 and gsrc is not None else gsrc)


class Cast(Function):
    """A copy in another dtype (``x.double()``, ``x.to(dtype)``, ``x.clone()``); the gradient is cast back."""

    fresh_grads = True

    def forward(self, a, dtype=None):
        self.dtype = a.dtype
        return a.astype(dtype, copy=True)

    def backward(self, g):
        return g.astype(self.dtype, copy=True)


class ToDevice(Function):
    """A copy on another device (``x.to("cuda")``, ``x.cpu()``); the gradient is copied back."""

    fresh_grads = True

    def forward(self, a, device=None):
        self.source = backend.device_of(a)
        return backend.to_device(a, device)

    def backward(self, g):
        return backend.to_device(g, self.source)
