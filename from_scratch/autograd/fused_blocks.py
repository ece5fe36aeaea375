"""Whole Transformer sub-layers as single nodes: multi-head attention, and the feed-forward block.

At the tutorial's size (160 rows of 64 features) a NumPy call costs about as much as the arithmetic
it does, and a training step runs these sub-layers a dozen times. Composed, multi-head attention
is six nodes (four projections, the weights, weights @ values) and the feed-forward block three;
here each is one node with a hand-written backward, and the q, k and v projections are one matrix
product with the three weight matrices stacked ("packed", as in ``torch.nn.MultiheadAttention``)
when they share their input. ``nn.MultiHeadAttention`` and ``nn.FeedForward`` use these when they
can; the tests check both against the composed ops, finite differences and PyTorch.
"""
from __future__ import annotations

import math

import numpy as np

from ..random import dropout_scale
from ..threads import matmul
from .function import Function
from .fused import linear_grads
from .fused_attention import attention_weights, softmax_backward
from .ops import as_rows


def _project(x2: np.ndarray, w: np.ndarray, b: np.ndarray, parts: int, batch: int, length: int,
             heads: int) -> np.ndarray:
    """x2 (B * T, H) @ w.T + b with w the ``parts`` stacked (H, H) matrices -> (parts, B, heads, T, d) views
    (B and T given: B * T may be 0)."""
    out = matmul(x2, w.T)
    out += b
    return out.reshape(batch, length, parts, heads, w.shape[1] // heads).transpose(2, 0, 3, 1, 4)


class MultiHeadAttention(Function):
    """All of multi-head attention: fc(concat_h softmax(q_h k_h^T * scale + mask) v_h) with
    q = x Wq^T + bq and k, v projected alike from ``memory`` (from x itself for self-attention).

    Inputs: x (B, T_q, H), then memory (B, T_k, H) unless keys and values come from x, then
    wq, bq, wk, bk, wv, bv, wo, bo. Keywords: a constant ``mask`` (additive, or boolean True where
    allowed) broadcasting to (B, heads, T_q, T_k), ``heads``, and ``dropout_p`` on the weights (drawn
    from the library's generator, as ``functional.dropout`` draws). ``self.weights`` keeps the weights
    (before dropout).
    """

    saved_inputs, saves_output = None, False
    fresh_grads = True

    def forward(self, x, *arrays, mask=None, heads=1, dropout_p=0.0):
        self.self_attention = len(arrays) == 8
        wq, bq, wk, bk, wv, bv, self.wo, bo = arrays[-8:]
        b, t, h = x.shape
        self.x2 = x.reshape(-1, h)
        if self.self_attention:  # one product for q, k and v: x (B T, H) @ [Wq; Wk; Wv]^T
            self.w_in = np.concatenate((wq, wk, wv))
            self.q, self.k, self.v = _project(self.x2, self.w_in, np.concatenate((bq, bk, bv)), 3, b, t, heads)
        else:  # queries from x, keys and values (one product) from the memory
            self.m2, self.wq, self.w_kv = arrays[0].reshape(-1, h), wq, np.concatenate((wk, wv))
            (self.q,) = _project(self.x2, wq, bq, 1, b, t, heads)
            self.k, self.v = _project(self.m2, self.w_kv, np.concatenate((bk, bv)), 2, b, arrays[0].shape[1], heads)
        self.scale = x.dtype.type(1 / math.sqrt(h // heads))
        self.weights, self.hidden = attention_weights(self.q, self.k, mask, self.scale)
        self.keep = dropout_scale(self.weights.shape, dropout_p, x.dtype, x)
        self.dropped = self.weights if self.keep is None else self.weights * self.keep
        # weights @ values, written straight into the heads-side-by-side layout (B, T_q, heads, d)
        context = np.empty_like(x, shape=(b, t, heads, h // heads))
        np.matmul(self.dropped, self.v, out=context.transpose(0, 2, 1, 3))
        self.context = context.reshape(b * t, h)
        out = matmul(self.context, self.wo.T)
        out += bo
        return out.reshape(b, t, h)

    def backward(self, g):
        needs, b, heads = self.needs_input_grad, self.q.shape[0], self.q.shape[1]
        g2 = g.reshape(-1, g.shape[-1])
        # Output projection, then back into the heads: d context (B, heads, T_q, d).
        d_context, dwo, dbo = linear_grads(g2, self.context, self.wo, True)
        d_context = d_context.reshape(b, g.shape[1], heads, self.q.shape[-1]).transpose(0, 2, 1, 3)
        # context = dropped @ v: d dropped = d context v^T, dv = dropped^T d context.
        d_weights = d_context @ self.v.swapaxes(-1, -2)
        if self.keep is not None:
            d_weights *= self.keep
        ds = softmax_backward(d_weights, self.weights, self.hidden)
        ds *= self.scale  # scores = q k^T * scale: dq = ds k * scale, dk = ds^T q * scale
        # The q, k, v gradients are written straight into the layout of the packed projection's output,
        # (B, T, parts, heads, d), so each projection's backward is again one product per gradient.
        parts = 3 if self.self_attention else 2
        d_in = np.empty_like(g, shape=(b, self.v.shape[2], parts, heads, self.v.shape[3]))
        dk, dv = d_in.transpose(2, 0, 3, 1, 4)[-2:]
        np.matmul(ds.swapaxes(-1, -2), self.q, out=dk)
        np.matmul(self.dropped.swapaxes(-1, -2), d_context, out=dv)
        if self.self_attention:
            np.matmul(ds, self.k, out=d_in.transpose(2, 0, 3, 1, 4)[0])
            dx, dw_in, db_in = linear_grads(_packed_rows(d_in), self.x2, self.w_in, needs[0])
            return (_shaped(dx, g.shape), *_interleave(dw_in, db_in, 3), dwo, dbo)
        dq = np.empty_like(g, shape=(b, g.shape[1], heads, self.q.shape[3]))
        np.matmul(ds, self.k, out=dq.transpose(0, 2, 1, 3))
        dx, dwq, dbq = linear_grads(dq.reshape(g2.shape), self.x2, self.wq, needs[0])
        dm, dw_kv, db_kv = linear_grads(_packed_rows(d_in), self.m2, self.w_kv, needs[1])
        return (_shaped(dx, g.shape), _shaped(dm, (b, self.v.shape[2], g.shape[-1])), dwq, dbq,
                *_interleave(dw_kv, db_kv, 2), dwo, dbo)


def _packed_rows(d_in: np.ndarray) -> np.ndarray:
    """(B, T, parts, heads, d) -> (B * T, parts * heads * d): the packed projection's output gradient as rows."""
    return d_in.reshape(math.prod(d_in.shape[:2]), math.prod(d_in.shape[2:]))


def _shaped(dx: np.ndarray | None, shape: tuple) -> np.ndarray | None:
    return None if dx is None else dx.reshape(shape)


def _interleave(dw: np.ndarray, db: np.ndarray, parts: int) -> list:
    """Split the packed gradients back per projection: [dw_q, db_q, dw_k, db_k, ...] (views)."""
    n = len(db) // parts
    return [a for i in range(0, len(db), n) for a in (dw[i:i + n], db[i:i + n])]


class FeedForward(Function):
    """linear2(dropout(relu(linear1(x)))) as one node.

    Inputs: x (..., H), w1 (F, H), b1 (F,), w2 (H, F), b2 (H,). Keyword: ``dropout_p``.
    """

    saved_inputs, saves_output = (0, 1, 3), False
    fresh_grads = True

    def forward(self, x, w1, b1, w2, b2, dropout_p=0.0):
        self.shape, self.w1, self.w2 = x.shape, w1, w2
        self.x2 = as_rows(x)
        hidden = matmul(self.x2, w1.T)
        hidden += b1
        # ReLU as a product with its 0/1 mask, which is also its gradient (faster than np.maximum(h, 0)).
        self.mask = (hidden > 0).astype(hidden.dtype)
        keep = dropout_scale(hidden.shape, dropout_p, x.dtype, x)
        if keep is not None:
            self.mask *= keep  # dropout after the ReLU: one multiplier for both
        self.act = hidden
        self.act *= self.mask
        out = matmul(self.act, w2.T)
        out += b2
        return out.reshape(x.shape[:-1] + (w2.shape[0],))

    def backward(self, g):
        g2 = as_rows(g)
        d_act, dw2, db2 = linear_grads(g2, self.act, self.w2, True)
        d_act *= self.mask
        dx, dw1, db1 = linear_grads(d_act, self.x2, self.w1, self.needs_input_grad[0])
        return _shaped(dx, self.shape), dw1, db1, dw2, db2
