"""Attention's fused ops: the softmax weights of scaled dot-product attention, and weights @ values.

Composed from primitives, one multi-head attention is about twelve nodes (split q, k and v into
heads, transpose, matmul, scale, mask, softmax, matmul, merge the heads), each with its own
temporary; at the tutorial's sizes their Python and NumPy call overhead costs more than the
products. Here the weights are one node and weights @ values another (so the weights stay a
differentiable output of their own). With ``heads``, (B, T, H) inputs are split into heads as
views and the output merged back once; 4-D inputs are taken as already split (cached keys).
"""
from __future__ import annotations

import numpy as np

from .function import Function
from .ops import as_rows, ones_vector, unbroadcast

MASK_VALUE = -1e9  # the tutorials' additive mask value for hidden positions


def split_heads(x: np.ndarray, heads: int | None) -> np.ndarray:
    """(B, T, H) -> a (B, heads, T, H / heads) view; other inputs are returned as they are."""
    if heads is None or x.ndim != 3:
        return x
    b, t, h = x.shape
    return x.reshape(b, t, heads, h // heads).transpose(0, 2, 1, 3)


def merge_heads(x: np.ndarray) -> np.ndarray:
    """(B, heads, T, d) -> (B, T, heads * d): the inverse of ``split_heads``."""
    b, n, t, d = x.shape
    return x.transpose(0, 2, 1, 3).reshape(b, t, n * d)


def _row_sums(x: np.ndarray) -> np.ndarray:
    # As one 2-D matrix-vector product: a stacked (4-D) one loops over the leading axes, ~1.5x slower.
    return (as_rows(x) @ ones_vector(x.shape[-1], x)).reshape(x.shape[:-1])


def _max_ignoring_nan(x: np.ndarray) -> np.ndarray:
    """The largest entry of ``x``, NaN skipped. ``fmax.reduce`` is NumPy's fastest; CuPy's ufuncs reduce only
    add and multiply, so a device uses its ``nanmax``."""
    return np.fmax.reduce(x, axis=None) if type(x) is np.ndarray else np.nanmax(x)


def softmax_last_axis(scores: np.ndarray) -> np.ndarray:
    """Softmax over the last axis, overwriting ``scores``.

    Softmax is unchanged by subtracting a constant; the usual constant is each row's max, but a max
    over a short axis is slow. The overall max is cheap and keeps exp from overflowing; a row far
    below it (row sum under e^-20, so terms below e^-60 of its max could underflow) is redone with
    its own max, as is a fully masked row. ``fmax`` skips NaN, so a NaN row stays NaN on its own.

    A row whose every score is -inf (every key hidden) gets weights 0, not 0/0: PyTorch's rule for
    ``scaled_dot_product_attention``, which makes such a query's output 0 and its gradients 0.
    """
    if scores.size == 0:
        return scores
    if type(scores) is not np.ndarray:
        return _softmax_own_max(scores)
    e = np.subtract(scores, _max_ignoring_nan(scores))
    np.exp(e, out=e)
    sums = _row_sums(e)
    if not sums.min() >= 2e-9:  # (NaN fails this test too)
        low = ~(sums >= 2e-9)
        rows = scores[low]
        top = rows.max(axis=-1, keepdims=True)
        hidden = top == -np.inf  # fully masked rows: exp(-inf - -inf) would be NaN
        rows = np.exp(rows - np.where(hidden, 0, top))
        e[low] = rows
        row_sums = _row_sums(rows)
        row_sums[hidden[..., 0]] = 1  # their weights are all exp(-inf) = 0 already
        sums[low] = row_sums
    e /= sums[..., None]
    return e


def _softmax_own_max(scores: np.ndarray) -> np.ndarray:
    """The device path of ``softmax_last_axis``: each row shifted by its own max, the textbook way. On a GPU
    the row max is one more kernel, while the CPU path's test of the sums would read a value back from the
    device (a wait for its queue) at every call. Same rules: a fully masked row gets weights 0, NaN stays."""
    top = scores.max(axis=-1, keepdims=True)
    e = np.exp(scores - np.where(top == -np.inf, 0, top))  # all -inf: exp(-inf) = 0, not exp(-inf - -inf) = NaN
    sums = _row_sums(e)[..., None]
    return e / np.where(sums == 0, 1, sums)


def attention_weights(q: np.ndarray, k: np.ndarray, mask: np.ndarray | None,
                      scale: np.floating) -> tuple[np.ndarray, np.ndarray | None]:
    """softmax(q k^T * scale + mask), and where a boolean mask hides scores (None if it hides none).

    The one rule of every attention path: a hidden key (boolean False, or additive -inf) gets weight
    exactly 0, and a query that may see no key at all gets weights 0, so its output and gradients are
    0 (PyTorch's ``scaled_dot_product_attention``). A finite additive value such as the tutorials'
    -1e9 is an ordinary, very low score: a row of them only is not zeroed, as in PyTorch.
    """
    scores = q @ k.swapaxes(-1, -2)
    scores *= scale
    hidden = None
    if mask is not None and mask.dtype == bool:
        hidden = ~mask
        np.copyto(scores, -np.inf, where=hidden)
    elif mask is not None:
        scores += mask
    return softmax_last_axis(scores), hidden


def softmax_backward(g: np.ndarray, w: np.ndarray, hidden: np.ndarray | None = None) -> np.ndarray:
    """The gradient of the scores from that of the weights w = softmax(scores) over the last axis:
    w * (g - sum(g * w)); the one softmax backward (``fused.Softmax`` uses it too)."""
    ds = g * w
    ds -= w * _row_sums(ds)[..., None]
    if hidden is not None:  # a boolean mask replaced those scores by a constant
        np.copyto(ds, 0, where=hidden)
    return ds


class AttentionWeights(Function):
    """softmax(q k^T * scale + mask) over the keys: attention's weights, (..., T_q, T_k).

    A constant ``mask`` (additive, or boolean True where allowed) is a keyword; an additive mask
    that needs a gradient is a third input.
    """

    saved_inputs, saves_output = (0, 1), True
    fresh_grads = True

    def forward(self, q, k, mask_tensor=None, mask=None, scale=1.0, heads=None):
        self.merge_q, self.merge_k = heads is not None and q.ndim == 3, heads is not None and k.ndim == 3
        self.q, self.k = q, k = split_heads(q, heads), split_heads(k, heads)
        self.scale = q.dtype.type(scale)
        self.out, self.hidden = attention_weights(q, k, mask_tensor if mask is None else mask, self.scale)
        return self.out

    def backward(self, g):
        # d softmax: s * (g - sum(g * s)), then through scores = q k^T * scale (+ mask)
        needs = self.needs_input_grad
        ds = softmax_backward(g, self.out, self.hidden)
        dmask = unbroadcast(ds, self.parents[2].shape) if len(needs) > 2 and needs[2] else None
        dq = dk = None
        if needs[0]:
            dq = ds @ self.k
            dq *= self.scale
            dq = merge_heads(dq) if self.merge_q else unbroadcast(dq, self.q.shape)
        if needs[1]:
            dk = ds.swapaxes(-1, -2) @ self.q
            dk *= self.scale
            dk = merge_heads(dk) if self.merge_k else unbroadcast(dk, self.k.shape)
        return (dq, dk) if len(needs) == 2 else (dq, dk, dmask)


class AttendValues(Function):
    """weights (B, heads, T_q, T_k) @ values split into heads, merged back to (B, T_q, H)."""

    saved_inputs, saves_output = (0, 1), False
    fresh_grads = True

    def forward(self, weights, v, heads=1):
        self.merge_v, self.weights, self.heads = v.ndim == 3, weights, heads
        self.v = split_heads(v, heads)
        return merge_heads(weights @ self.v)

    def backward(self, g):
        g = split_heads(g, self.heads)
        dw = g @ self.v.swapaxes(-1, -2) if self.needs_input_grad[0] else None
        dv = None
        if self.needs_input_grad[1]:
            dv = self.weights.swapaxes(-1, -2) @ g
            dv = merge_heads(dv) if self.merge_v else dv
        return dw, dv
