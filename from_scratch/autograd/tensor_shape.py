"""Tensor's shape methods: reshape, flatten, permute, transpose, squeeze, unsqueeze, expand, indexing,
split and chunk, the front ends of the movement primitives in ``shape_ops.py``.

``Tensor`` inherits ``TensorShapeMixin``. The results of reshape, permute, expand and basic indexing
are views that share their input's version counter (``inplace.share_version``), so an in-place change
through either is seen by the backward of the other. Joining tensors (``cat``, ``stack``) is in
``tensor.py``.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any, Sequence

import numpy as np

from .. import backend
from . import inplace, shape_ops
from .dim_args import dim_alias
from .ops import check_axis, check_new_axis

if TYPE_CHECKING:
    from .tensor import Tensor

__all__ = ["TensorShapeMixin", "as_index"]


class TensorShapeMixin:
    """The shape methods of ``Tensor`` (see the module docstring); ``Tensor`` is the only subclass."""

    __slots__ = ()
    data: np.ndarray  # Tensor's slots, named here for readers
    shape: tuple
    ndim: int

    def reshape(self, *shape: Any) -> "Tensor":
        shape = tuple(shape[0]) if len(shape) == 1 and isinstance(shape[0], (tuple, list)) else shape
        return inplace.share_version(shape_ops.Reshape.apply(self, shape=shape), self)

    view = reshape

    def flatten(self, start_dim: int = 0, end_dim: int = -1) -> "Tensor":
        s = self.shape
        if not s:
            return self.reshape(1)
        (start,), (end,) = check_axis("flatten", s, start_dim), check_axis("flatten", s, end_dim)
        if start > end:
            raise ValueError(f"flatten: start_dim {start_dim} comes after end_dim {end_dim} (tensor shape {s})")
        return self.reshape(s[:start] + (-1,) + s[end + 1:])

    def permute(self, *dims: Any) -> "Tensor":
        dims = tuple(dims[0]) if len(dims) == 1 and isinstance(dims[0], (tuple, list)) else dims
        return inplace.share_version(shape_ops.Permute.apply(self, dims=dims), self)

    def transpose(self, dim0: int = -2, dim1: int = -1) -> "Tensor":
        (dim0,), (dim1,) = (check_axis("transpose", self.shape, d) for d in (dim0, dim1))
        dims = list(range(self.ndim))
        dims[dim0], dims[dim1] = dims[dim1], dims[dim0]
        return self.permute(*dims)

    swapaxes = transpose

    @dim_alias
    def squeeze(self, axis: int | tuple | None = None) -> "Tensor":
        """Drop the axes of length 1 (those of ``axis`` only, when given; others named stay, as in PyTorch)."""
        axes = range(self.ndim) if axis is None else check_axis("squeeze", self.shape, axis)
        drop = {a for a in axes if self.shape[a] == 1}
        return self.reshape(tuple(n for a, n in enumerate(self.shape) if a not in drop)) if drop else self

    @dim_alias
    def unsqueeze(self, axis: int) -> "Tensor":
        axis = check_new_axis("unsqueeze", self.shape, axis)
        return self.reshape(self.shape[:axis] + (1,) + self.shape[axis:])

    def expand(self, *shape: Any) -> "Tensor":
        shape = tuple(shape[0]) if len(shape) == 1 and isinstance(shape[0], (tuple, list)) else shape
        lead = len(shape) - self.ndim  # PyTorch's -1 keeps a size, and only an existing one
        if lead < 0 or -1 in shape[:lead]:
            raise ValueError(f"expand: cannot expand a tensor of shape {self.shape} to {shape}: "
                             f"{'fewer dimensions' if lead < 0 else '-1 in a new leading dimension'}")
        shape = tuple(self.shape[i - lead] if n == -1 else n for i, n in enumerate(shape))
        return self.broadcast_to(shape)

    def broadcast_to(self, shape: Sequence[int]) -> "Tensor":
        return inplace.share_version(shape_ops.Expand.apply(self, shape=tuple(shape)), self)

    def __getitem__(self, index: Any) -> "Tensor":
        out, ctx = shape_ops.GetItem.apply_with_ctx(self, index=as_index(index, self.data))
        return inplace.share_version(out, self) if ctx.returns_view else out


    @dim_alias
    def split(self, size_or_sections: int | Sequence[int], axis: int = 0) -> list["Tensor"]:
        """Split into pieces of ``size`` along ``axis`` (the last one smaller if need be), or of the given
        sizes, which must add up to the axis' length: ``torch.split``'s rules."""
        (axis,) = check_axis("split", self.shape, axis)
        n = self.shape[axis]
        if isinstance(size_or_sections, (int, np.integer)):
            size = int(size_or_sections)
            if size < 0 or (size == 0 and n):
                raise ValueError(f"split: size must be positive (or 0 for an empty axis), got {size} for an axis "
                                 f"of length {n} (tensor shape {self.shape})")
            sizes = [size] * max(-(-n // size), 1) if size else [0]
        elif isinstance(size_or_sections, (list, tuple)) and all(isinstance(s, (int, np.integer)) for s in size_or_sections):
            sizes = [int(s) for s in size_or_sections]
            if any(s < 0 for s in sizes) or sum(sizes) != n:
                raise ValueError(f"split: sizes {sizes} must be non-negative and add up to {n}, the length of "
                                 f"axis {axis} (tensor shape {self.shape})")
        else:
            raise TypeError(f"split: takes a piece size (int) or a list of sizes, got {size_or_sections!r}")
        idx = [slice(None)] * self.ndim
        out, start = [], 0
        for s in sizes:
            idx[axis] = slice(start, min(start + s, n))
            out.append(self[tuple(idx)])
            start += s
        return out

    @dim_alias
    def chunk(self, chunks: int, axis: int = 0) -> list["Tensor"]:
        """Split into ``chunks`` pieces of equal size (the last smaller, and fewer pieces if the axis is
        short), like ``torch.chunk``; an empty axis gives ``chunks`` empty pieces."""
        (axis,) = check_axis("chunk", self.shape, axis)
        if not isinstance(chunks, (int, np.integer)) or chunks <= 0:
            raise ValueError(f"chunk: chunks must be a positive integer, got {chunks!r}")
        n = self.shape[axis]
        return self.split(-(-n // chunks), axis) if n else self.split([0] * int(chunks), axis)


def as_index(index: Any, like: Any = None) -> Any:
    """An index as NumPy (or the device's array module, for a tensor ``like`` on a device) takes it:
    tensors by their arrays, lists and host arrays of integers or bools copied to the device."""
    if isinstance(index, tuple):
        return tuple(as_index(i, like) for i in index)
    if isinstance(index, list):
        index = np.asarray(index)  # host: a list, copied to like's device below
    index = index.data if isinstance(index, TensorShapeMixin) else index
    if like is not None and type(like) is not np.ndarray and type(index) is np.ndarray:
        index = backend.to_device(index, backend.device_of(like))
    return index
