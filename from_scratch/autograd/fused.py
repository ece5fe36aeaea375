"""Fused ops: composite functions with a hand-written backward.

Each could be composed from the primitives in ``ops.py``; these exist because they sit
on the hot path of every training step (softmax in attention, cross-entropy, layer norm),
where one fused op replaces 5-10 graph nodes and their temporaries, and because a single
forward can be made stable at extreme logits. Every one is gradient-checked in the tests
exactly like the primitives.
"""
from __future__ import annotations

import math

import numpy as np

from .function import Function
from .ops import ones_vector


class Softmax(Function):
    def forward(self, x, axis=-1):
        self.axis = axis
        e = np.exp(x - x.max(axis=axis, keepdims=True))
        self.out = e / e.sum(axis=axis, keepdims=True)
        return self.out

    def backward(self, g):
        # d softmax: s * (g - sum(g * s))
        s = self.out
        return s * (g - (g * s).sum(axis=self.axis, keepdims=True))


class LogSoftmax(Function):
    def forward(self, x, axis=-1):
        self.axis = axis
        shifted = x - x.max(axis=axis, keepdims=True)
        self.out = shifted - np.log(np.exp(shifted).sum(axis=axis, keepdims=True))
        return self.out

    def backward(self, g):
        # d log_softmax: g - softmax * sum(g)
        return g - np.exp(self.out) * g.sum(axis=self.axis, keepdims=True)


class CrossEntropy(Function):
    """Softmax cross-entropy over the last axis with integer targets."""

    def forward(self, logits, target=None, ignore_index=None, label_smoothing=0.0, reduction="mean"):
        c = logits.shape[-1]
        x = logits.reshape(-1, c)
        t = target.reshape(-1)
        self.valid = np.ones(t.shape, dtype=bool) if ignore_index is None else t != ignore_index
        t = np.where(self.valid, t, 0)
        shifted = x - x.max(axis=1, keepdims=True)
        logp = shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))
        rows = np.arange(len(t))
        # loss_i = -(1 - eps) * logp[i, t_i] - eps / C * sum_c logp[i, c]
        loss = -(1 - label_smoothing) * logp[rows, t]
        if label_smoothing:
            loss = loss - (label_smoothing / c) * logp.sum(axis=1)
        loss = loss * self.valid
        self.logp, self.t, self.eps, self.reduction = logp, t, label_smoothing, reduction
        self.shape, self.count = logits.shape, max(int(self.valid.sum()), 1)
        if reduction == "none":
            return loss.reshape(target.shape)
        total = loss.sum()
        return total / np.asarray(self.count, dtype=logits.dtype) if reduction == "mean" else total

    def backward(self, g):
        # d loss_i / d logits_i = softmax_i - (1 - eps) * onehot(t_i) - eps / C
        c = self.logp.shape[1]
        grad = np.exp(self.logp)
        grad[np.arange(len(self.t)), self.t] -= 1 - self.eps
        if self.eps:
            grad -= self.eps / c
        if self.reduction == "none":
            scale = g.reshape(-1, 1) * self.valid[:, None]
        else:
            scale = self.valid[:, None] * (g / self.count if self.reduction == "mean" else g)
        return (grad * scale).astype(self.logp.dtype, copy=False).reshape(self.shape)


class LayerNorm(Function):
    """Normalise over the trailing ``ndim`` axes, then scale and shift."""

    fresh_grads = True

    def forward(self, x, weight=None, bias=None, ndim=1, eps=1e-5):
        # On a (rows, features) view, every sum over the features is a matrix-vector product with a
        # vector of ones: one BLAS call, several times faster than NumPy's reduction over short rows.
        self.shape, self.weight = x.shape, weight
        x = x.reshape(-1, math.prod(x.shape[x.ndim - ndim:]))
        self.inv_n = inv_n = x.dtype.type(1 / max(x.shape[1], 1))
        self.ones = ones_vector(x.shape[1], x.dtype)
        mean = x @ self.ones
        mean *= inv_n
        xc = x - mean[:, None]
        var = np.einsum("ij,ij->i", xc, xc) * inv_n
        var += x.dtype.type(eps)
        self.rstd = rstd = np.sqrt(var, out=var)[:, None]
        np.divide(1, rstd, out=rstd)
        self.xhat = xhat = np.multiply(xc, rstd, out=xc)
        if weight is None:
            return xhat.reshape(self.shape)
        out = xhat * weight.reshape(-1)
        if bias is not None:
            out += bias.reshape(-1)
        return out.reshape(self.shape)

    def backward(self, g):
        needs, xhat, w = self.needs_input_grad, self.xhat, self.weight
        g = g.reshape(xhat.shape)
        dw = np.einsum("ij,ij->j", g, xhat).reshape(w.shape) if len(needs) > 1 and needs[1] else None
        db = (ones_vector(len(g), g.dtype) @ g).reshape(w.shape) if len(needs) > 2 and needs[2] else None
        dx = None
        if needs[0]:
            # dx = rstd * (dxhat - mean(dxhat) - xhat * mean(dxhat * xhat))
            dxhat = g * w.reshape(-1) if w is not None else g.copy()
            m1 = dxhat @ self.ones
            m1 *= self.inv_n
            m2 = np.einsum("ij,ij->i", dxhat, xhat) * self.inv_n
            dxhat -= xhat * m2[:, None]
            dxhat -= m1[:, None]
            dxhat *= self.rstd
            dx = dxhat.reshape(self.shape)
        return (dx, dw, db)[:len(needs)]


class BinaryCrossEntropy(Function):
    """Mean/sum binary cross-entropy on probabilities; logs clamped at -100 like PyTorch."""

    def forward(self, p, t, reduction="mean"):
        self.p, self.t, self.reduction = p, t, reduction
        with np.errstate(divide="ignore"):
            loss = -(t * np.maximum(np.log(p), -100) + (1 - t) * np.maximum(np.log1p(-p), -100))
        return loss if reduction == "none" else (loss.mean() if reduction == "mean" else loss.sum())

    def backward(self, g):
        # dL/dp = (p - t) / (p (1 - p)), the denominator clamped away from zero
        p, t = self.p, self.t
        grad = g * (p - t) / np.maximum(p * (1 - p), 1e-12)
        if self.reduction == "mean":
            grad = grad / p.size
        gt = None
        if self.needs_input_grad[1]:  # dL/dt = log(1 - p) - log(p)
            with np.errstate(divide="ignore"):
                gt = g * (np.maximum(np.log1p(-p), -100) - np.maximum(np.log(p), -100))
            gt = gt / p.size if self.reduction == "mean" else gt
        return grad.astype(p.dtype, copy=False), gt


class BCEWithLogits(Function):
    """Binary cross-entropy on logits, stable at any magnitude."""

    def forward(self, x, t, reduction="mean"):
        self.x, self.t, self.reduction = x, t, reduction
        # max(x, 0) - x t + log(1 + exp(-|x|))
        loss = np.maximum(x, 0) - x * t + np.log1p(np.exp(-np.abs(x)))
        return loss if reduction == "none" else (loss.mean() if reduction == "mean" else loss.sum())

    def backward(self, g):
        # dL/dx = sigmoid(x) - t ; dL/dt = -x
        e = np.exp(-np.abs(self.x))
        sig = np.where(self.x >= 0, 1 / (1 + e), e / (1 + e))
        scale = g / self.x.size if self.reduction == "mean" else g
        return ((sig - self.t) * scale,
                -self.x * scale if self.needs_input_grad[1] else None)


class Linear(Function):
    """x @ W^T + b over any leading axes, folded into one 2-D matrix product.

    Composed, this is three nodes (transpose, a batched matmul that calls BLAS once per leading
    index, add); folded it is one BLAS call each way, 5x faster at the tutorial's sizes.
    """

    fresh_grads = True

    def forward(self, x, weight, bias=None):
        self.shape, self.weight = x.shape, weight
        self.x = x.reshape(-1, x.shape[-1])  # a view when x is contiguous
        out = self.x @ weight.T
        if bias is not None:
            out += bias
        return out.reshape(x.shape[:-1] + weight.shape[:1])

    def backward(self, g):
        needs = self.needs_input_grad
        g = g.reshape(-1, g.shape[-1])
        dx = (g @ self.weight).reshape(self.shape) if needs[0] else None  # dL/dx = g W
        dw = g.T @ self.x if needs[1] else None  # dL/dW = g^T x, summed over every leading index at once
        db = ones_vector(len(g), g.dtype) @ g if len(needs) > 2 and needs[2] else None  # sum over rows
        return dx, dw, db


class Embedding(Function):
    """Rows ``weight[ids]``; the backward sums the gradients of repeated ids without ``np.add.at``."""

    fresh_grads = True

    def forward(self, weight, ids=None, padding_idx=None):
        self.ids, self.shape, self.padding_idx = ids.reshape(-1), weight.shape, padding_idx
        return weight[ids]

    def backward(self, g):
        ids, n = self.ids, self.shape[0]
        g = g.reshape(len(ids), -1)
        if n <= 64:  # a small table (a vocabulary of 20): one-hot(ids)^T @ g is one cheap BLAS call
            onehot = np.zeros((len(ids), n), g.dtype)
            onehot[np.arange(len(ids)), ids] = 1
            grad = onehot.T @ g
        else:  # sort the ids, then add up each run of equal ids in one call
            order = np.argsort(ids, kind="stable")
            sorted_ids = ids[order]
            starts = np.flatnonzero(np.concatenate(([True], sorted_ids[1:] != sorted_ids[:-1])))
            grad = np.zeros((n, g.shape[1]), g.dtype)
            grad[sorted_ids[starts]] = np.add.reduceat(g[order], starts, axis=0)
        if self.padding_idx is not None:
            grad[self.padding_idx] = 0  # the padding row never learns (PyTorch's rule)
        return grad.reshape(self.shape)
