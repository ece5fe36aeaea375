"""Sliding-window primitives: unfold (im2col), its adjoint fold (col2im), and the window maximum.

Convolutions and pools are composed from these (``functional/conv.py``, ``functional/pooling.py``):
a convolution is ``weight @ unfold(x)``, a transposed convolution ``fold(weight^T @ x)``, an average
pool the mean of ``unfold(x)`` over each window.

All work on images (N, C, H, W) with a per-axis ``kernel``, ``stride``, ``dilation`` and a padding of
((top, bottom), (left, right)). Window (y, x) of an image covers the padded pixels
``(y * stride + i * dilation, x * stride + j * dilation)`` for kernel offsets (i, j). No loop runs over
pixels: the windows are a strided view of the padded image (no copy), unfold copies that view once,
and fold and the max-pool backward add back in a loop over the kh * kw kernel offsets, each a whole
strided slice.
"""
from __future__ import annotations

import numpy as np

from .. import backend
from .function import Function

Pair = tuple  # (along H, along W)


def padded(x: np.ndarray, padding: tuple, value: float = 0) -> np.ndarray:
    """``x`` (..., H, W) with ((top, bottom), (left, right)) cells of ``value`` around it."""
    (top, bottom), (left, right) = padding
    if not (top or bottom or left or right):
        return x
    h, w = x.shape[-2:]
    shape = x.shape[:-2] + (top + h + bottom, left + w + right)
    out = np.zeros_like(x, shape=shape) if value == 0 else np.full_like(x, value, shape=shape)  # zeros: no fill pass
    out[..., top:top + h, left:left + w] = x
    return out


def window_count(size: int, kernel: int, stride: int, dilation: int) -> int:
    """How many windows fit in ``size`` (padded) cells: floor((size - dilation (kernel - 1) - 1) / stride) + 1."""
    return (size - dilation * (kernel - 1) - 1) // stride + 1


def windows(xp: np.ndarray, kernel: Pair, stride: Pair, dilation: Pair) -> np.ndarray:
    """The read-only strided view (N, C, kh, kw, OH, OW) of padded images ``xp`` (N, C, Hp, Wp):
    ``view[n, c, i, j, y, x] = xp[n, c, y * sh + i * dh, x * sw + j * dw]``. No copy."""
    (kh, kw), (sh, sw), (dh, dw) = kernel, stride, dilation
    oh, ow = window_count(xp.shape[2], kh, sh, dh), window_count(xp.shape[3], kw, sw, dw)
    s_n, s_c, s_h, s_w = xp.strides
    shape, strides = xp.shape[:2] + (kh, kw, oh, ow), (s_n, s_c, s_h * dh, s_w * dw, s_h * sh, s_w * sw)
    if type(xp) is np.ndarray:
        return np.lib.stride_tricks.as_strided(xp, shape, strides, writeable=False)
    # as_strided is no NumPy array function (nothing dispatches it): the device's own, which has no writeable=
    return backend.get_array_module(xp).lib.stride_tricks.as_strided(xp, shape, strides)


def _offset_slice(i: int, j: int, out_size: Pair, stride: Pair, dilation: Pair) -> tuple:
    """The cells of the padded image that kernel offset (i, j) reads, one per window, as basic slices."""
    (oh, ow), (sh, sw), (dh, dw) = out_size, stride, dilation
    return (Ellipsis, slice(i * dh, i * dh + sh * (oh - 1) + 1, sh), slice(j * dw, j * dw + sw * (ow - 1) + 1, sw))


def _cropped(xp: np.ndarray, padding: tuple) -> np.ndarray:
    (top, bottom), (left, right) = padding
    return xp[..., top:xp.shape[-2] - bottom, left:xp.shape[-1] - right]


def unfold(x: np.ndarray, kernel: Pair, stride: Pair, padding: tuple, dilation: Pair) -> np.ndarray:
    """im2col: images (N, C, H, W) -> columns (C * kh * kw, N * OH * OW), rows ordered (c, i, j) as in PyTorch's
    ``unfold``, columns (n, y, x). Channels first, so that a convolution is one plain 2-D matrix product."""
    view = windows(padded(x, padding), kernel, stride, dilation)
    n, c, kh, kw, oh, ow = view.shape
    return view.transpose(1, 2, 3, 0, 4, 5).reshape(c * kh * kw, n * oh * ow)  # the one copy


def add_windows(xp: np.ndarray, cols: np.ndarray, stride: Pair, dilation: Pair) -> np.ndarray:
    """Add ``cols`` (..., kh, kw, OH, OW) in place onto the cells of the padded images ``xp`` (..., Hp, Wp)
    they were read from (``windows``' adjoint); returns ``xp``. Windows overlap, so one strided add per
    kernel offset, never per pixel; ``np.add(out=)`` adds in place (``view += x`` on a slice would also
    copy the sum back onto itself)."""
    kh, kw, oh, ow = cols.shape[-4:]
    for i in range(kh):
        for j in range(kw):
            cells = xp[_offset_slice(i, j, (oh, ow), stride, dilation)]
            np.add(cells, cols[..., i, j, :, :], out=cells)
    return xp


def fold(cols: np.ndarray, size: tuple, kernel: Pair, stride: Pair, padding: tuple, dilation: Pair) -> np.ndarray:
    """col2im, the adjoint of ``unfold``: add each column (C * kh * kw, N * OH * OW) back onto the image
    (N, C, *size) it came from. Returns a view (of a channels-first sum)."""
    (top, bottom), (left, right) = padding
    hp, wp = size[0] + top + bottom, size[1] + left + right
    out_size = (window_count(hp, kernel[0], stride[0], dilation[0]), window_count(wp, kernel[1], stride[1], dilation[1]))
    c = cols.shape[0] // (kernel[0] * kernel[1])
    cols = cols.reshape(c, kernel[0], kernel[1], -1, *out_size)
    out = np.zeros_like(cols, shape=(c, cols.shape[3], hp, wp))  # (C, N, ...): the same order as the columns
    add_windows(out, cols.transpose(0, 3, 1, 2, 4, 5), stride, dilation)
    return _cropped(out, padding).transpose(1, 0, 2, 3)


class Unfold(Function):
    """im2col as a differentiable op; its backward is ``fold``."""

    def forward(self, x, kernel=(1, 1), stride=(1, 1), padding=((0, 0), (0, 0)), dilation=(1, 1)):
        self.args, self.size = (kernel, stride, padding, dilation), x.shape[-2:]
        return unfold(x, kernel, stride, padding, dilation)

    def backward(self, g):
        return fold(g, self.size, *self.args)


class Fold(Function):
    """col2im as a differentiable op (the transposed convolution's last step); its backward is ``unfold``."""

    def forward(self, cols, size=(1, 1), kernel=(1, 1), stride=(1, 1), padding=((0, 0), (0, 0)), dilation=(1, 1)):
        self.args = (kernel, stride, padding, dilation)
        return fold(cols, size, *self.args)

    def backward(self, g):
        return unfold(g, *self.args)


def _lowest(dtype: np.dtype) -> float:
    return -np.inf if dtype.kind == "f" else np.iinfo(dtype).min


class WindowMax(Function):
    """The maximum of each window (max pooling). Its gradient goes to one element per window, the first
    maximum in (i, j) order, as PyTorch's max pool does; a NaN counts as the maximum (PyTorch's rule)."""

    def forward(self, x, kernel=(1, 1), stride=(1, 1), padding=((0, 0), (0, 0)), dilation=(1, 1)):
        xp = padded(x, padding, _lowest(x.dtype))
        view = windows(xp, kernel, stride, dilation)
        self.padded_shape, self.args = xp.shape, (view.shape[-2:], stride, dilation)
        self.padding, self.kernel = padding, kernel
        # windows that do not overlap (the usual kernel = stride) let the backward write instead of add
        self.disjoint = all(s >= d * (k - 1) + 1 for k, s, d in zip(kernel, stride, dilation))
        nan = x.dtype.kind == "f" and bool(np.isnan(x).any())
        best = view[:, :, 0, 0].copy()
        # which offset won, numbered i * kw + j. Masked copies with data-dependent masks are slow in NumPy
        # (a branch per element), so everything below is branch-free arithmetic.
        self.winner = winner = np.zeros_like(best, dtype=np.min_scalar_type(kernel[0] * kernel[1]))
        for k in range(1, kernel[0] * kernel[1]):
            candidate = view[:, :, k // kernel[1], k % kernel[1]]
            better = candidate > best  # strict: the first of equal maxima keeps the window
            if nan:
                better |= np.isnan(candidate)
            np.maximum(best, candidate, out=best)  # NaN wins here too, as in PyTorch
            # winner = k where better: k exceeds every earlier winner, so add better * (k - winner)
            jump = np.subtract(k, winner, dtype=winner.dtype)
            jump *= better.view(np.uint8)
            winner += jump
        return best

    def backward(self, g):
        gp = np.zeros_like(g, shape=self.padded_shape)
        for k in range(self.kernel[0] * self.kernel[1]):
            routed = (self.winner == k).astype(g.dtype)
            routed *= g
            cells = _offset_slice(k // self.kernel[1], k % self.kernel[1], *self.args)
            if self.disjoint:  # each cell is in one window at most
                gp[cells] = routed
            else:
                gp[cells] += routed
        return _cropped(gp, self.padding)
