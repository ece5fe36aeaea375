"""Activations and the softmax family, on the last axis by default (``axis=-1``)."""
from __future__ import annotations

import math

from ..autograd import fused
from ..autograd.ops import _check_axis
from ..autograd.special import Erfc
from ..autograd.tensor import Tensor
from .inputs import as_tensor

__all__ = ["relu", "gelu", "sigmoid", "tanh", "softmax", "log_softmax"]


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


def softmax(x: Tensor, axis: int = -1) -> Tensor:
    x = as_tensor(x, "softmax")
    _check_axis("softmax", x.shape, axis)
    return fused.Softmax.apply(x, axis=axis)


def log_softmax(x: Tensor, axis: int = -1) -> Tensor:
    x = as_tensor(x, "log_softmax")
    _check_axis("log_softmax", x.shape, axis)
    return fused.LogSoftmax.apply(x, axis=axis)
