"""Activation modules, thin wrappers over ``functional``."""
from __future__ import annotations

from .. import functional as F
from ..autograd.tensor import Tensor
from ..autograd.dim_args import dim_alias
from .module import Module


class ReLU(Module):
    """max(0, x).

    ``inplace=True`` (PyTorch's memory saver, overwriting the input) is refused with a clear error: an
    in-place change to a tensor a pending backward needs is an error here (see the README's in-place rules),
    and the result is the same with the default ``inplace=False``."""

    def __init__(self, inplace: bool = False):
        super().__init__()
        if inplace:
            raise ValueError("ReLU(inplace=True) is not supported: use ReLU() (the same result, computed out of place)")
        self.inplace = False

    def forward(self, x: Tensor) -> Tensor:
        return F.relu(x)


class GELU(Module):
    """x * Phi(x), exact or with the ``"tanh"`` approximation."""

    def __init__(self, approximate: str = "none"):
        super().__init__()
        self.approximate = approximate

    def forward(self, x: Tensor) -> Tensor:
        return F.gelu(x, self.approximate)

    def extra_repr(self) -> str:
        return f"approximate={self.approximate!r}"


class Tanh(Module):
    """tanh(x)."""

    def forward(self, x: Tensor) -> Tensor:
        return F.tanh(x)


class Sigmoid(Module):
    """1 / (1 + exp(-x))."""

    def forward(self, x: Tensor) -> Tensor:
        return F.sigmoid(x)


class Softmax(Module):
    """softmax along ``dim`` (``axis=`` is the same, as everywhere in the library), the last by default."""

    @dim_alias
    def __init__(self, dim: int = -1):
        super().__init__()
        self.dim = dim

    def forward(self, x: Tensor) -> Tensor:
        return F.softmax(x, self.dim)

    def extra_repr(self) -> str:
        return f"dim={self.dim}"
