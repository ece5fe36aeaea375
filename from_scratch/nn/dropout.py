"""Dropout: randomly zero activations while training."""
from __future__ import annotations

from .. import functional as F
from ..autograd.tensor import Tensor
from .module import Module


class Dropout(Module):
    """Zero each element with probability p in training, scaling survivors by 1/(1-p); identity in eval.

    Shape: any -> same.
    """

    def __init__(self, p: float = 0.5):
        super().__init__()
        if not 0 <= p <= 1:
            raise ValueError(f"Dropout: p must be in [0, 1], got {p}")
        self.p = p

    def forward(self, x: Tensor) -> Tensor:
        return F.dropout(x, self.p, self.training)

    def extra_repr(self) -> str:
        return f"p={self.p}"
