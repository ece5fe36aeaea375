"""Linear: the affine layer y = x W^T + b; Identity, the layer that changes nothing."""
from __future__ import annotations

import math
from typing import Any

from .. import functional as F
from ..autograd.tensor import Tensor
from . import init
from .module import Module, Parameter


class Linear(Module):
    """Apply y = x W^T + b.

    Shape: input (..., in_features) -> output (..., out_features).
    """

    def __init__(self, in_features: int, out_features: int, bias: bool = True):
        super().__init__()
        self.in_features, self.out_features = in_features, out_features
        self.weight = Parameter(init.empty(out_features, in_features))
        self.bias = Parameter(init.empty(out_features)) if bias else None
        self.reset_parameters()

    def reset_parameters(self) -> None:
        # PyTorch's default: kaiming-uniform weight, bias U(-1/sqrt(fan_in), 1/sqrt(fan_in)).
        init.kaiming_uniform_(self.weight)
        if self.bias is not None:
            bound = 1 / math.sqrt(self.in_features) if self.in_features else 0.0
            init.uniform_(self.bias, -bound, bound)

    def forward(self, x: Tensor) -> Tensor:
        return F.linear(x, self.weight, self.bias)

    def extra_repr(self) -> str:
        return f"in_features={self.in_features}, out_features={self.out_features}, bias={self.bias is not None}"


class Identity(Module):
    """Return the input unchanged; any constructor arguments are ignored (as in PyTorch), so it can
    stand in for a layer that takes some.

    Shape: any -> the same.
    """

    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__()

    def forward(self, x: Any) -> Any:
        return x
