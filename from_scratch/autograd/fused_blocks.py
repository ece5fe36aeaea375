"""Whole Transformer sub-layers as single nodes: multi-head attention, and the feed-forward block.

The fast paths of ``functional.multi_head_attention`` and ``functional.feed_forward``, whose plain
versions (``multi_head_attention_simple``, ``feed_forward_simple``) are the definitions to read.
At the tutorial's size (160 rows of 64 features) a NumPy call costs about as much as the arithmetic
it does, and a training step runs these sub-layers a dozen times. Composed, multi-head attention
is about fifteen nodes and the feed-forward block five; here each is one node with a hand-written
backward, and projections that share an input are one matrix product with their weight matrices
stacked ("packed", as in ``torch.nn.MultiheadAttention``). Dropout masks are drawn by the caller
and passed in (``keep``), so these nodes drop exactly what the plain versions drop.
"""
from __future__ import annotations

import math

import numpy as np

from .function import Function
from .fused import linear_forward, linear_grads
from .fused_attention import attention_weights, softmax_backward, split_heads
from .ops import as_rows


class MultiHeadAttention(Function):
    """All of multi-head attention: fc(concat_h softmax(q_h k_h^T * scale + mask) v_h) with
    q = query Wq^T + bq, k = key Wk^T + bk, v = value Wv^T + bv.

    Inputs: the sources, then wq, bq, wk, bk, wv, bv, wo, bo. ``groups`` says how the sources feed
    the q, k and v projections, in that order: ``(3,)``, one source for all three (self-attention:
    one product with [Wq; Wk; Wv]); ``(1, 2)``, queries from the first, keys and values from the
    second (attention over an encoder's output: one product with [Wk; Wv]); ``(1, 1, 1)``, three
    sources. Keywords: a constant ``mask`` (additive, or boolean True where allowed) broadcasting to
    (B, heads, T_q, T_k), ``heads``, and ``keep``, inverted dropout's multiplier on the weights
    (None for no dropout). ``self.weights`` keeps the weights (before dropout).
    """

    saved_inputs, saves_output = None, False
    fresh_grads = True

    def forward(self, *arrays, groups=(1, 1, 1), mask=None, heads=1, keep=None):
        sources, (wq, bq, wk, bk, wv, bv, self.wo, bo) = arrays[:len(groups)], arrays[len(groups):]
        b, t, h = sources[0].shape
        self.groups, self.heads, self.keep = groups, heads, keep
        # Each source's projections as one product, x (B T, H) @ [W_1; ...]^T; the heads are views.
        self.inputs, self.packed_w, projections, start = [], [], [], 0
        for x, n in zip(sources, groups):
            x2, w = as_rows(x), _stack((wq, wk, wv)[start:start + n])
            out = linear_forward(x2, w, _stack((bq, bk, bv)[start:start + n])).reshape(b, x.shape[1], n * h)
            projections += [split_heads(out[..., i * h:(i + 1) * h], heads) for i in range(n)]
            self.inputs.append(x2)
            self.packed_w.append(w)
            start += n
        self.q, self.k, self.v = projections
        self.scale = self.q.dtype.type(1 / math.sqrt(h // heads))
        self.weights, self.hidden = attention_weights(self.q, self.k, mask, self.scale)
        self.dropped = self.weights if keep is None else self.weights * keep
        # weights @ values, written straight into the heads-side-by-side layout (B, T_q, H)
        context = np.empty_like(self.q, shape=(b, t, h))
        np.matmul(self.dropped, self.v, out=split_heads(context, heads))
        self.context = context.reshape(b * t, h)
        return linear_forward(self.context, self.wo, bo).reshape(b, t, h)

    def backward(self, g):
        needs, heads, h = self.needs_input_grad, self.heads, self.wo.shape[0]
        # Output projection, then back into the heads: d context (B, heads, T_q, d).
        d_context, dwo, dbo = linear_grads(as_rows(g), self.context, self.wo, True)
        d_context = split_heads(d_context.reshape(g.shape), heads)
        # context = dropped @ v: d dropped = d context v^T, dv = dropped^T d context.
        d_weights = d_context @ self.v.swapaxes(-1, -2)
        if self.keep is not None:
            d_weights *= self.keep
        ds = softmax_backward(d_weights, self.weights, self.hidden)
        ds *= self.scale  # scores = q k^T * scale: dq = ds k * scale, dk = ds^T q * scale
        # The q, k, v gradients are written straight into the layout of each packed product's output,
        # so each source's projection backward is again one product per gradient.
        b, lengths = g.shape[0], [k.shape[2] for k in (self.q, self.k, self.v)]
        lengths = [lengths[sum(self.groups[:i])] for i in range(len(self.groups))]  # each source's length
        d_packed = [np.empty_like(g, shape=(len(x2), n * h)) for x2, n in zip(self.inputs, self.groups)]
        d_qkv = [split_heads(d.reshape(b, t, n * h)[..., i * h:(i + 1) * h], heads)
                 for d, t, n in zip(d_packed, lengths, self.groups) for i in range(n)]
        np.matmul(ds, self.k, out=d_qkv[0])
        np.matmul(ds.swapaxes(-1, -2), self.q, out=d_qkv[1])
        np.matmul(self.dropped.swapaxes(-1, -2), d_context, out=d_qkv[2])
        d_sources, d_params = [], []
        for i, (d, x2, w, t, n) in enumerate(zip(d_packed, self.inputs, self.packed_w, lengths, self.groups)):
            dx, dw, db = linear_grads(d, x2, w, needs[i])
            d_sources.append(None if dx is None else dx.reshape(b, t, h))
            d_params += [a for j in range(n) for a in (dw[j * h:(j + 1) * h], db[j * h:(j + 1) * h])]
        return (*d_sources, *d_params, dwo, dbo)


def _stack(arrays: tuple) -> np.ndarray:
    return arrays[0] if len(arrays) == 1 else np.concatenate(arrays)


class FeedForward(Function):
    """linear2(dropout(relu(linear1(x)))) as one node.

    Inputs: x (..., H), w1 (F, H), b1 (F,), w2 (H, F), b2 (H,). Keyword: ``keep``, inverted
    dropout's multiplier on the hidden units (None for no dropout).
    """

    saved_inputs, saves_output = (0, 1, 3), False
    fresh_grads = True

    def forward(self, x, w1, b1, w2, b2, keep=None):
        self.shape, self.w1, self.w2 = x.shape, w1, w2
        self.x2 = as_rows(x)
        hidden = linear_forward(self.x2, w1, b1)
        # ReLU as a product with its 0/1 mask, which is also its gradient (faster than np.maximum(h, 0)).
        self.mask = (hidden > 0).astype(hidden.dtype)
        if keep is not None:
            self.mask *= keep.reshape(self.mask.shape)  # dropout after the ReLU: one multiplier for both
        self.act = hidden
        self.act *= self.mask
        return linear_forward(self.act, w2, b2).reshape(x.shape[:-1] + (w2.shape[0],))

    def backward(self, g):
        d_act, dw2, db2 = linear_grads(as_rows(g), self.act, self.w2, True)
        d_act *= self.mask
        dx, dw1, db1 = linear_grads(d_act, self.x2, self.w1, self.needs_input_grad[0])
        return None if dx is None else dx.reshape(self.shape), dw1, db1, dw2, db2
