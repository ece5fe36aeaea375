"""Fused ops: composite functions with a hand-written backward.

Each could be composed from the primitives in ``ops.py``; these exist because they sit
on the hot path of every training step (softmax in attention, cross-entropy, layer norm),
where one fused op replaces 5-10 graph nodes and their temporaries, and because a single
forward can be made stable at extreme logits. Every one is gradient-checked in the tests
exactly like the primitives.
"""
from __future__ import annotations

import numpy as np

from .function import Function


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

    def forward(self, x, weight=None, bias=None, ndim=1, eps=1e-5):
        self.axes = tuple(range(x.ndim - ndim, x.ndim))
        mu = x.mean(axis=self.axes, keepdims=True)
        xc = x - mu
        var = (xc * xc).mean(axis=self.axes, keepdims=True)
        self.rstd = 1.0 / np.sqrt(var + np.asarray(eps, dtype=x.dtype))
        self.xhat = xc * self.rstd
        self.weight = weight
        out = self.xhat * weight if weight is not None else self.xhat
        return out + bias if bias is not None else out

    def backward(self, g):
        lead = tuple(range(g.ndim - len(self.axes)))
        dw = (g * self.xhat).sum(axis=lead) if self.needs_input_grad[1:2] == (True,) else None
        db = g.sum(axis=lead) if len(self.needs_input_grad) > 2 and self.needs_input_grad[2] else None
        dx = None
        if self.needs_input_grad[0]:
            # dx = rstd * (dxhat - mean(dxhat) - xhat * mean(dxhat * xhat))
            dxhat = g * self.weight if self.weight is not None else g
            m1 = dxhat.mean(axis=self.axes, keepdims=True)
            m2 = (dxhat * self.xhat).mean(axis=self.axes, keepdims=True)
            dx = self.rstd * (dxhat - m1 - self.xhat * m2)
        return (dx, dw, db)[:len(self.needs_input_grad)]


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
