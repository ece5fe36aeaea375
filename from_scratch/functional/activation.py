"""Activations and the softmax family, on the last dim by default (``dim=-1``; ``axis=`` is the same)."""
from __future__ import annotations

import math

from ..autograd.special import Erfc
from ..autograd.tensor import Tensor
from ..autograd.tensor_api import dim_alias
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


@dim_alias
def softmax(x: Tensor, dim: int = -1) -> Tensor:
    """exp(x) / sum(exp(x)) along ``dim`` (or ``axis=``); the last dim by default, where PyTorch's
    ``F.softmax`` without a dim guesses one and warns."""
    return as_tensor(x, "softmax").softmax(dim)


@dim_alias
def log_softmax(x: Tensor, dim: int = -1) -> Tensor:
    """x - logsumexp(x) along ``dim`` (or ``axis=``); the last dim by default."""
    return as_tensor(x, "log_softmax").log_softmax(dim)
