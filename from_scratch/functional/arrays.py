"""Array helpers PyTorch keeps in ``torch.nn.functional``: ``one_hot`` and ``pad``."""
from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from .. import backend
from ..autograd.tensor import Tensor, cat
from .inputs import as_tensor

__all__ = ["one_hot", "pad"]

_PAD_MODES = ("constant", "reflect", "replicate", "circular")


def one_hot(tensor: Any, num_classes: int = -1) -> Tensor:
    """Integer class ids (...) -> int64 one-hot rows (..., num_classes), as ``torch.nn.functional.one_hot``.

    ``num_classes=-1`` means the largest id + 1. Raises TypeError for non-integer ids, ValueError for
    a negative id or one >= num_classes. The result is a constant (no gradient), on the ids' device (a list
    or NumPy array: the CPU).
    """
    ids = tensor.data if isinstance(tensor, Tensor) else tensor
    ids = ids if backend.is_array(ids) else np.asarray(ids)  # host: a list
    if ids.dtype.kind not in "iu":
        raise TypeError(f"one_hot: class ids must be integers, got dtype {ids.dtype}")
    if ids.size and ids.min() < 0:
        raise ValueError(f"one_hot: class id {ids.min().item()} is negative")
    if num_classes == -1:
        if not ids.size:
            raise ValueError("one_hot: cannot infer num_classes from an empty tensor; pass num_classes")
        num_classes = int(ids.max()) + 1
    if ids.size and ids.max() >= num_classes:
        raise ValueError(f"one_hot: class id {ids.max().item()} is outside [0, {num_classes})")
    return Tensor(backend.get_array_module(ids).arange(num_classes) == ids[..., None], dtype=np.int64)


def pad(input: Any, pad: Sequence[int], mode: str = "constant", value: float | None = None) -> Tensor:
    """Pad (or, with negative amounts, crop) the last len(pad) // 2 axes, as ``torch.nn.functional.pad``.

    ``pad`` lists (before, after) amounts from the LAST axis backwards, PyTorch's order:
    (left, right) pads the last axis, (left, right, top, bottom) the last two. Modes: ``constant``
    (``value``, default 0), ``reflect`` (mirror without repeating the edge, amounts < the axis
    length), ``replicate`` (repeat the edge), ``circular`` (wrap around, amounts <= the axis length).
    Differentiable in every mode (reflect, replicate and circular gather with an index array, whose
    backward adds up the gradients of repeated elements). PyTorch limits the non-constant modes to
    the trailing 1-3 axes of a batched input; this one pads any axes. Raises ValueError for an odd
    or too long ``pad``, an unknown mode, or amounts the mode cannot take.
    """
    x = as_tensor(input, "pad")
    amounts = [int(p) for p in pad]
    if len(amounts) % 2 or len(amounts) // 2 > x.ndim:
        raise ValueError(f"pad: pad {tuple(pad)} must hold a (before, after) pair for each of at most "
                         f"{x.ndim} axes (input of shape {x.shape})")
    if mode not in _PAD_MODES:
        raise ValueError(f"pad: mode must be one of {', '.join(_PAD_MODES)}, got {mode!r}")
    if value is not None and mode != "constant":
        raise ValueError(f"pad: value applies to mode 'constant' only, not {mode!r}")
    for i in range(len(amounts) // 2):
        axis, before, after = x.ndim - 1 - i, amounts[2 * i], amounts[2 * i + 1]
        if mode == "constant":
            x = _pad_constant(x, axis, before, after, 0.0 if value is None else value)
        else:
            x = x[(slice(None),) * axis + (_pad_index(mode, x.shape[axis], before, after, x),)]
    return x


def _pad_constant(x: Tensor, axis: int, before: int, after: int, value: float) -> Tensor:
    n = x.shape[axis]
    if before < 0 or after < 0:  # negative amounts crop
        if -min(before, 0) - min(after, 0) > n:
            raise ValueError(f"pad: cropping {-min(before, 0)} and {-min(after, 0)} from axis {axis} of length {n}")
        x = x[(slice(None),) * axis + (slice(-min(before, 0), n + min(after, 0)),)]
    blocks = [x]
    for amount, where in ((before, 0), (after, 1)):
        if amount > 0:
            shape = x.shape[:axis] + (amount,) + x.shape[axis + 1:]
            blocks.insert(where * len(blocks), Tensor._make(np.full_like(x.data, value, shape=shape), False))
    return cat(blocks, axis) if len(blocks) > 1 else x


def _pad_index(mode: str, n: int, before: int, after: int, x: Tensor) -> np.ndarray:
    """The source position of each output position along one axis of length n, on ``x``'s device."""
    shape = x.shape
    idx = backend.get_array_module(x.data).arange(-before, n + after)
    limit = {"reflect": n - 1, "circular": n}.get(mode, np.inf)  # replicate pads any amount
    if n == 0 or max(before, after) > limit or n + before + after < 0:
        raise ValueError(f"pad: {mode} padding of ({before}, {after}) does not fit an axis of length {n} "
                         f"(input of shape {shape}; reflect needs amounts < the length, circular <=)")
    if mode == "reflect":  # mirror at both edges: ..., 2, 1 | 0, 1, ..., n-1 | n-2, n-3, ...
        return (n - 1) - np.abs((n - 1) - np.abs(idx))
    if mode == "replicate":
        return np.clip(idx, 0, n - 1)
    return idx % n  # circular
