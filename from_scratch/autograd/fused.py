"""Fused ops: composite functions with a hand-written backward, the fast paths of ``functional``.

Each is composed from the primitives in ``ops.py`` by its plain version in ``functional``
(``softmax_simple``, ``cross_entropy_simple``, ``layer_norm_simple``, ``linear_simple``: read
those first); these exist because they sit on the hot path of every training step, where one
fused op replaces 5-10 graph nodes and their temporaries (the measured gains are in each
functional's docstring, from ``benchmarks/plain_vs_fused.py``). ``functional`` runs them unless
``F.use_fused(False)``; tests/test_plain_vs_fused.py checks each against its plain version.
"""
from __future__ import annotations

import math

import numpy as np

from .. import backend
from ..threads import matmul
from .function import Function
from .fused_attention import softmax_backward
from .ops import as_rows, max_or_neg_inf, mean_vector, ones_vector, sigmoid


def shifted_exp(x: np.ndarray, axis: int = -1) -> tuple[np.ndarray, np.ndarray]:
    """x - max(x) along ``axis``, and its exp: the start of softmax, log-softmax and cross-entropy.
    Subtracting the max changes none of them and keeps exp from overflowing (an empty axis's max is
    -inf, ``max_or_neg_inf``)."""
    shifted = x - max_or_neg_inf(x, axis, keepdims=True)
    return shifted, np.exp(shifted)


class Softmax(Function):
    saved_inputs, saves_output = (), True

    def forward(self, x, axis=-1):
        self.axis = axis
        _, e = shifted_exp(x, axis)
        self.out = e / e.sum(axis=axis, keepdims=True)
        return self.out

    def backward(self, g):
        # d softmax: s * (g - sum(g * s)), along the softmax's axis (moved last if it is not: a moveaxis costs µs)
        if self.axis in (-1, g.ndim - 1):
            return softmax_backward(g, self.out)
        g, s = np.moveaxis(g, self.axis, -1), np.moveaxis(self.out, self.axis, -1)
        return np.moveaxis(softmax_backward(g, s), -1, self.axis)


class LogSoftmax(Function):
    saved_inputs, saves_output = (), True

    def forward(self, x, axis=-1):
        self.axis = axis
        shifted, e = shifted_exp(x, axis)
        self.out = shifted - np.log(e.sum(axis=axis, keepdims=True))
        return self.out

    def backward(self, g):
        # d log_softmax: g - softmax * sum(g)
        return g - np.exp(self.out) * g.sum(axis=self.axis, keepdims=True)


class CrossEntropy(Function):
    """Softmax cross-entropy over the last axis with integer targets.

    The "mean" of no targets (an empty batch, or every target ``ignore_index``) is NaN with a zero
    gradient, as in PyTorch.
    """

    saved_inputs, saves_output = (), False

    def forward(self, logits, target=None, ignore_index=None, label_smoothing=0.0, reduction="mean"):
        c = logits.shape[-1]
        x = logits.reshape(-1, c)
        t = target.reshape(-1)
        self.valid = None if ignore_index is None else t != ignore_index
        self.t = t if self.valid is None else np.where(self.valid, t, 0)
        self.rows = backend.get_array_module(t).arange(len(t))  # on the targets' device
        self.eps, self.reduction, self.shape = label_smoothing, reduction, logits.shape
        # log softmax = shifted - lse with shifted = x - rowmax and lse = log(sum(exp(shifted))): stable at any scale
        shifted, self.e = shifted_exp(x, 1)
        ones = ones_vector(c, x)
        self.sums = self.e @ ones
        # loss_i = -(1 - eps) logp[i, t_i] - eps / C sum_c logp[i, c]
        #        = lse_i - (1 - eps) shifted[i, t_i] - eps / C sum_c shifted[i, c]
        loss = np.log(self.sums)
        loss -= (1 - label_smoothing) * shifted[self.rows, self.t]
        if label_smoothing:
            loss -= (label_smoothing / c) * (shifted @ ones)
        if self.valid is not None:
            loss *= self.valid
        if reduction == "none":
            return loss.reshape(target.shape)
        total = loss.sum()
        if reduction == "sum":
            return total
        if self.valid is None:
            self.denominator = max(len(t), 1)
            return total / logits.dtype.type(len(t)) if len(t) else np.full_like(total, np.nan, shape=())
        # The targets not ignored are counted where they are, in a 0-d array: int() would wait on a device
        # every step. Dividing by max(count, 1) avoids 0/0; the mean of no targets is then made NaN.
        count = self.valid.sum()
        self.denominator = np.maximum(count, 1).astype(logits.dtype)
        return np.where(count > 0, total / self.denominator, logits.dtype.type(np.nan))

    def backward(self, g):
        # d loss_i / d logits_i = softmax_i - (1 - eps) * onehot(t_i) - eps / C, times each row's weight w_i
        # (the incoming gradient, over the count for "mean", zero for ignored targets)
        w = g.reshape(-1) if self.reduction == "none" else (g / self.denominator if self.reduction == "mean" else g)
        if self.valid is not None:
            w = w * self.valid
        grad = self.e * (w / self.sums)[:, None]  # softmax * w, with one division per row
        grad[self.rows, self.t] -= (1 - self.eps) * w
        if self.eps:
            grad -= (self.eps / self.e.shape[1]) * np.reshape(w, (-1, 1))
        return grad.reshape(self.shape)


class LayerNorm(Function):
    """Normalise over the trailing ``ndim`` axes, then scale and shift.

    Written for many short rows (a Transformer's (batch * length, hidden) activations), where each
    NumPy call costs more than its arithmetic: the rows' sums are matrix-vector products (one BLAS
    call, several times faster than NumPy's reduction over short rows), and stretching a vector
    across the matrix (x - mean[:, None], x * w), which costs about two elementwise ops, is done
    as rarely as possible: the outer product rstd_i w_j is one BLAS call. The backward makes that
    product again rather than keep it, so only one array of the input's size is saved (x - mean).
    """

    saved_inputs, saves_output = (1,), False
    fresh_grads = True

    def forward(self, x, weight=None, bias=None, ndim=1, eps=1e-5):
        return self._normalize(x, weight, bias, ndim, eps, owned=False)

    def _normalize(self, x, weight, bias, ndim, eps, owned):
        """layer_norm(x); ``owned``: x is the caller's own new array, which may be centred in place."""
        self.shape = x.shape
        x = x.reshape(math.prod(x.shape[:x.ndim - ndim]), math.prod(x.shape[x.ndim - ndim:]))
        self.avg = avg = mean_vector(x.shape[1], x)
        self.xc = xc = np.subtract(x, x.dot(avg)[:, None], out=x if owned else None)
        out = np.square(xc)
        var = out.dot(avg)
        var += eps
        self.rstd2 = np.reciprocal(var, out=var)  # 1 / (var + eps), and its square root:
        self.rstd = rstd = np.sqrt(var)
        self.wshape = None if weight is None else weight.shape
        self.w = w = ones_vector(x.shape[1], x) if weight is None else weight.reshape(-1)
        np.multiply(xc, np.dot(rstd[:, None], w[None]), out=out)  # xc_ij * rstd_i w_j
        if bias is not None:
            out += bias.reshape(-1)
        return out.reshape(self.shape)

    def backward(self, g):
        needs = self.needs_input_grad
        return self._grads(g, *needs)[:len(needs)]

    def _grads(self, g, need_x, need_weight=False, need_bias=False):
        """The gradients of the normalised input, the weight and the bias (None where not needed)."""
        xc, rstd, w = self.xc, self.rstd, self.w
        g = g.reshape(xc.shape)
        gxc = g * xc
        dx = dw = db = None
        if need_weight:  # sum over rows of g * xhat, with xhat = xc * rstd
            dw = rstd.dot(gxc).reshape(self.wshape)
        if need_bias:
            db = ones_vector(len(g), g).dot(g).reshape(self.wshape)
        if need_x:
            # dx = rstd (dxhat - mean(dxhat) - xhat mean(dxhat xhat)) with dxhat = g w and xhat = xc rstd,
            # that is dx = g rstd w - mean(g rstd w) - xc rstd^3 mean(g w xc)
            dx = np.dot(rstd[:, None], w[None])
            dx *= g
            mean = dx.dot(self.avg)
            c = gxc.dot(w * self.avg)
            c *= rstd
            c *= self.rstd2
            dx -= np.multiply(xc, c[:, None], out=gxc)
            dx -= mean[:, None]
            dx = dx.reshape(self.shape)
        return dx, dw, db


class AddLayerNorm(LayerNorm):
    """``layer_norm(x + y)`` as one node: the residual "Add & Norm" of a post-norm Transformer layer."""

    saved_inputs, saves_output = (2,), False
    fresh_grads = False  # x and y get the same gradient array: the engine must not add into it in place

    def forward(self, x, y, weight=None, bias=None, ndim=1, eps=1e-5):
        return self._normalize(np.add(x, y), weight, bias, ndim, eps, owned=True)

    def backward(self, g):
        needs = self.needs_input_grad  # d(x + y)/dx = d(x + y)/dy = 1
        dx, dw, db = self._grads(g, needs[0] or needs[1], *needs[2:])
        return (dx, dx, dw, db)[:len(needs)]


def _reduce(loss: np.ndarray, reduction: str) -> np.ndarray:
    """The elementwise ``loss`` reduced; the mean of no elements is NaN (as PyTorch's), without NumPy's warning."""
    if reduction == "none":
        return loss
    if reduction == "sum" or loss.size:
        return loss.sum() if reduction == "sum" else loss.mean()
    return np.full_like(loss, np.nan, shape=())


class BinaryCrossEntropy(Function):
    """Mean/sum binary cross-entropy on probabilities; logs clamped at -100 like PyTorch."""

    saved_inputs, saves_output = (0, 1), False

    def forward(self, p, t, reduction="mean"):
        self.p, self.t, self.reduction = p, t, reduction
        with np.errstate(divide="ignore"):
            loss = -(t * np.maximum(np.log(p), -100) + (1 - t) * np.maximum(np.log1p(-p), -100))
        return _reduce(loss, reduction)

    def backward(self, g):
        # dL/dp = (p - t) / (p (1 - p)), the denominator clamped away from zero
        p, t = self.p, self.t
        grad = g * (p - t) / np.maximum(p * (1 - p), 1e-12)
        if self.reduction == "mean":
            grad = grad / max(p.size, 1)
        gt = None
        if self.needs_input_grad[1]:  # dL/dt = log(1 - p) - log(p)
            with np.errstate(divide="ignore"):
                gt = g * (np.maximum(np.log1p(-p), -100) - np.maximum(np.log(p), -100))
            gt = gt / max(p.size, 1) if self.reduction == "mean" else gt
        return grad.astype(p.dtype, copy=False), gt


class BCEWithLogits(Function):
    """Binary cross-entropy on logits, stable at any magnitude."""

    saved_inputs, saves_output = (0, 1), False

    def forward(self, x, t, reduction="mean"):
        self.x, self.t, self.reduction = x, t, reduction
        # max(x, 0) - x t + log(1 + exp(-|x|))
        loss = np.maximum(x, 0) - x * t + np.log1p(np.exp(-np.abs(x)))
        return _reduce(loss, reduction)

    def backward(self, g):
        # dL/dx = sigmoid(x) - t ; dL/dt = -x
        scale = g / max(self.x.size, 1) if self.reduction == "mean" else g
        return ((sigmoid(self.x) - self.t) * scale,
                -self.x * scale if self.needs_input_grad[1] else None)


class Linear(Function):
    """x @ W^T + b over any leading axes, folded into one 2-D matrix product.

    Composed, this is three nodes (transpose, a batched matmul that calls BLAS once per leading
    index, add); folded it is one BLAS call each way, 5x faster at the tutorial's sizes.
    """

    saved_inputs, saves_output = (0, 1), False
    fresh_grads = True

    def forward(self, x, weight, bias=None):
        self.shape, self.weight = x.shape, weight
        self.x = as_rows(x)
        return linear_forward(self.x, weight, bias).reshape(x.shape[:-1] + weight.shape[:1])

    def backward(self, g):
        needs = self.needs_input_grad
        dx, dw, db = linear_grads(as_rows(g), self.x, self.weight, *needs[:2],
                                  len(needs) > 2 and needs[2])
        return (None if dx is None else dx.reshape(self.shape)), dw, db


def linear_forward(x: np.ndarray, w: np.ndarray, b: np.ndarray | None = None) -> np.ndarray:
    """y = x @ w.T + b for x of shape (rows, in): one product, the bias added in place."""
    out = matmul(x, w.T)
    if b is not None:
        out += b
    return out


def linear_grads(g: np.ndarray, x: np.ndarray, w: np.ndarray, need_x: bool = True, need_w: bool = True,
                 need_b: bool = True) -> tuple:
    """The gradients of y = x @ w.T + b (x of shape (rows, in)) from g = dL/dy (None where not needed)."""
    dx = matmul(g, w) if need_x else None  # dL/dx = g W
    dw = matmul(g.T, x) if need_w else None  # dL/dW = g^T x, summed over every row at once
    db = ones_vector(len(g), g) @ g if need_b else None  # dL/db: the column sums of g
    return dx, dw, db


class Embedding(Function):
    """Rows ``weight[ids]``; the backward sums the gradients of repeated ids without ``np.add.at``."""

    saved_inputs, saves_output = (), False
    fresh_grads = True

    def forward(self, weight, ids=None, padding_idx=None):
        self.ids, self.shape, self.padding_idx = ids.reshape(-1), weight.shape, padding_idx
        return weight[ids]

    def backward(self, g):
        ids, n = self.ids, self.shape[0]
        g = g.reshape(len(ids), math.prod(self.shape[1:]))  # (not -1: there may be no ids)
        if n <= 64:  # a small table (a vocabulary of 20): one-hot(ids)^T @ g is one cheap BLAS call
            onehot = np.zeros_like(g, shape=(len(ids), n))
            onehot[backend.get_array_module(ids).arange(len(ids)), ids] = 1
            grad = matmul(onehot.T, g)
        elif type(g) is not np.ndarray:  # on a GPU: one scatter-add kernel (atomic adds), no sort
            grad = np.zeros_like(g, shape=(n, g.shape[1]))
            backend.scatter_add(grad, ids, g)
        elif len(ids):  # sort the ids, then add up each run of equal ids in one call
            order = np.argsort(ids, kind="stable")
            sorted_ids = ids[order]
            starts = np.flatnonzero(np.concatenate(([True], sorted_ids[1:] != sorted_ids[:-1])))
            grad = np.zeros_like(g, shape=(n, g.shape[1]))
            grad[sorted_ids[starts]] = np.add.reduceat(g[order], starts, axis=0)
        else:
            grad = np.zeros_like(g, shape=(n, g.shape[1]))
        if self.padding_idx is not None:
            grad[self.padding_idx] = 0  # the padding row never learns (PyTorch's rule)
        return grad.reshape(self.shape)
