"""Pooling as PyTorch has it: max_pool2d, avg_pool2d, adaptive_avg_pool2d.

Max pooling is the ``WindowMax`` primitive (its gradient goes to the first maximum of each window);
average pooling is the mean of ``unfold``'s windows; adaptive average pooling is two matrix products
with the bin-averaging matrices. Inputs are (N, C, H, W) or unbatched (C, H, W).
"""
from __future__ import annotations

from typing import Any

import numpy as np

from .. import backend
from ..autograd import window
from ..autograd.tensor import Tensor
from .conv import image_batch, ntuple, out_sizes

__all__ = ["max_pool2d", "avg_pool2d", "adaptive_avg_pool2d"]


def _pool_args(name: str, x: Tensor, kernel_size: Any, stride: Any, padding: Any, dilation: Any,
               ceil_mode: bool) -> tuple:
    """Check a pool's arguments against PyTorch's rules; return (kernel, stride, pads, dilation, out size)."""
    if ceil_mode:
        raise NotImplementedError(f"{name}: ceil_mode=True is not implemented (output sizes round down)")
    kernel = ntuple(name, "kernel_size", kernel_size, 2, 1)
    stride = kernel if stride is None or stride == () else ntuple(name, "stride", stride, 2, 1)
    dilation = ntuple(name, "dilation", dilation, 2, 1)
    pad = ntuple(name, "padding", padding, 2)
    if any(2 * p > k for p, k in zip(pad, kernel)):
        raise ValueError(f"{name}: padding {pad} should be at most half of the kernel size {kernel}")
    pads = tuple((p, p) for p in pad)
    return kernel, stride, pads, dilation, out_sizes(name, x.shape[2:], kernel, stride, pads, dilation)


def max_pool2d(input: Tensor, kernel_size: Any, stride: Any = None, padding: Any = 0, dilation: Any = 1,
               ceil_mode: bool = False, return_indices: bool = False) -> Tensor:
    """The maximum of each kh x kw window: (N, C, H, W) -> (N, C, OH, OW), stride defaulting to the kernel,
    padding with -inf (at most half the kernel, PyTorch's rule). The gradient goes to the first maximum of each window,
    as in PyTorch. Raises ValueError for bad sizes; NotImplementedError for ceil_mode / return_indices."""
    if return_indices:
        raise NotImplementedError("max_pool2d: return_indices=True is not implemented")
    x, unbatched = image_batch("max_pool2d", input, 2)
    kernel, stride, pads, dilation, _ = _pool_args("max_pool2d", x, kernel_size, stride, padding, dilation, ceil_mode)
    out = window.WindowMax.apply(x, kernel=kernel, stride=stride, padding=pads, dilation=dilation)
    return out[0] if unbatched else out


def avg_pool2d(input: Tensor, kernel_size: Any, stride: Any = None, padding: Any = 0, ceil_mode: bool = False,
               count_include_pad: bool = True, divisor_override: int | None = None) -> Tensor:
    """The mean of each kh x kw window: (N, C, H, W) -> (N, C, OH, OW), stride defaulting to the kernel,
    zero padding (at most half the kernel) counted in the mean unless ``count_include_pad=False``;
    ``divisor_override`` replaces the window size as divisor. Raises as ``max_pool2d``."""
    x, unbatched = image_batch("avg_pool2d", input, 2)
    kernel, stride, pads, dilation, (oh, ow) = _pool_args("avg_pool2d", x, kernel_size, stride, padding, 1, ceil_mode)
    n, c = x.shape[:2]
    cols = window.Unfold.apply(x, kernel=kernel, stride=stride, padding=pads, dilation=dilation)
    sums = cols.reshape(c, kernel[0] * kernel[1], n, oh, ow).sum(axis=1).permute(1, 0, 2, 3)  # (N, C, OH, OW)
    if divisor_override:
        divisor: Any = divisor_override
    elif count_include_pad or not any(p for pair in pads for p in pair):
        divisor = kernel[0] * kernel[1]
    else:  # the real (unpadded) cells of each window: per axis, its overlap with [0, size)
        xp = backend.get_array_module(x.data)  # made on the input's device
        per_axis = [np.minimum(xp.arange(o) * s - p + k, size) - np.maximum(xp.arange(o) * s - p, 0)
                    for o, s, (p, _), k, size in zip((oh, ow), stride, pads, kernel, x.shape[2:])]
        divisor = np.outer(*per_axis).astype(x.dtype)
    out = sums * (1 / divisor) if np.ndim(divisor) == 0 else sums / divisor
    return out[0] if unbatched else out


def adaptive_avg_pool2d(input: Tensor, output_size: Any) -> Tensor:
    """Average over PyTorch's adaptive bins: (N, C, H, W) -> (N, C, *output_size); output bin i along an
    axis of n cells averages cells floor(i n / out) .. ceil((i + 1) n / out) - 1. ``None`` in
    ``output_size`` keeps that axis's size. Computed as P_h @ x @ P_w^T with the bin-averaging matrices."""
    x, unbatched = image_batch("adaptive_avg_pool2d", input, 2)
    sizes = (output_size, output_size) if output_size is None or isinstance(output_size, int) else tuple(output_size)
    if len(sizes) != 2 or not all(s is None or (isinstance(s, int) and s >= 1) for s in sizes):
        raise ValueError(f"adaptive_avg_pool2d: output_size must be a positive int, None or two of them, "
                         f"got {output_size!r}")
    sizes = tuple(n if s is None else s for s, n in zip(sizes, x.shape[2:]))
    p_h, p_w = (_bin_means(out, n, x.data) for out, n in zip(sizes, x.shape[2:]))
    out = x._lift(p_h) @ (x @ x._lift(p_w.T))
    return out[0] if unbatched else out


def _bin_means(out: int, n: int, like: np.ndarray) -> np.ndarray:
    """(out, n) in ``like``'s dtype, on its device: row i holds 1 / len over bin i = [floor(i n / out),
    ceil((i + 1) n / out)), PyTorch's bins."""
    xp = backend.get_array_module(like)
    i = xp.arange(out)[:, None]
    start, end = (i * n) // out, -((-(i + 1) * n) // out)  # floor, and ceil by floor of the negation
    cells = xp.arange(n)[None, :]
    return (((cells >= start) & (cells < end)) / (end - start)).astype(like.dtype)
