"""Activations and the softmax family, on the last axis by default (``axis=-1``)."""
from __future__ import annotations

import math

from ..autograd import fused
from ..autograd.ops import _check_axis
from ..autograd.special import Erfc
from ..autograd.tensor import Tensor
from .fastpath import fused_enabled
from .inputs import as_tensor

__all__ = ["relu", "gelu", "sigmoid", "tanh", "softmax", "log_softmax", "softmax_simple", "log_softmax_simple"]


def relu(x: Tensor) -> Tensor:
    return as_tensor(x, "relu").relu()


def sigmoid(x: Tensor) -> Tensor:
    return as_tensor(x, "sigmoid").sigmoid()


def tanh(x: Tensor) -> Tensor:
    return as_tensor(x, "tanh").tanh()


def gelu(x: Tensor, approximate: str = "none") -> Tensor:
    """GELU: x * Phi(x) with the exact normal CDF, or PyTorch's ``"tanh"`` approximation."""
    x = as_tensor(x, "gelu")
    if approximate == "tanh":
        inner = (x + 0.044715 * x ** 3) * math.sqrt(2 / math.pi)
        return 0.5 * x * (1 + inner.tanh())
    if approximate != "none":
        raise ValueError(f"gelu: approximate must be 'none' or 'tanh', got {approximate!r}")
    # Phi(x) = erfc(-x / sqrt(2)) / 2, which stays accurate where Phi is tiny (1 + erf would round to 0)
    return (0.5 * x) * Erfc.apply(x * (-1 / math.sqrt(2)))


def softmax_simple(x: Tensor, axis: int = -1) -> Tensor:
    """softmax(x)_i = exp(x_i) / sum_j exp(x_j) along ``axis``: the plain version, from primitive ops."""
    # Subtracting each row's max changes nothing (the factor exp(-max) cancels) but keeps exp from
    # overflowing; the max is a constant here, so no gradient flows through it.
    e = (x - x.max(axis, keepdims=True).detach()).exp()
    return e / e.sum(axis, keepdims=True)


def log_softmax_simple(x: Tensor, axis: int = -1) -> Tensor:
    """log softmax(x)_i = x_i - log sum_j exp(x_j) along ``axis``: the plain version, from primitive ops."""
    shifted = x - x.max(axis, keepdims=True).detach()  # as in softmax_simple: exp never overflows
    return shifted - shifted.exp().sum(axis, keepdims=True).log()


def softmax(x: Tensor, axis: int = -1) -> Tensor:
    """Softmax along ``axis``; ``softmax_simple`` is the definition. Shape: any -> the same.

    Fast path (``fused.Softmax``): one node with the backward s * (g - sum(g * s)) instead of five.
    """
    x = as_tensor(x, "softmax")
    _check_axis("softmax", x.shape, axis)
    return fused.Softmax.apply(x, axis=axis) if fused_enabled() else softmax_simple(x, axis)


def log_softmax(x: Tensor, axis: int = -1) -> Tensor:
    """Log-softmax along ``axis``; ``log_softmax_simple`` is the definition. Shape: any -> the same.

    Fast path (``fused.LogSoftmax``): one node with the backward g - softmax * sum(g) instead of six.
    """
    x = as_tensor(x, "log_softmax")
    _check_axis("log_softmax", x.shape, axis)
    return fused.LogSoftmax.apply(x, axis=axis) if fused_enabled() else log_softmax_simple(x, axis)
