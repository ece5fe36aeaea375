"""LayerNorm: normalise each position's features, then scale and shift."""
from __future__ import annotations

import numpy as np

from .. import functional as F
from ..autograd.tensor import Tensor, get_default_dtype
from ..functional.inputs import as_tensor
from .module import Module, Parameter


class LayerNorm(Module):
    """Normalise over the trailing ``normalized_shape`` axes: (x - mean) / sqrt(var + eps) * weight + bias.

    Shape: input (*, *normalized_shape) -> output of the same shape.
    """

    def __init__(self, normalized_shape: int | tuple, eps: float = 1e-5, elementwise_affine: bool = True,
                 bias: bool = True):
        super().__init__()
        self.normalized_shape = (normalized_shape,) if isinstance(normalized_shape, int) else tuple(normalized_shape)
        self.eps, self.elementwise_affine = eps, elementwise_affine
        dtype = get_default_dtype()
        self.weight = Parameter(np.ones(self.normalized_shape, dtype)) if elementwise_affine else None
        self.bias = Parameter(np.zeros(self.normalized_shape, dtype)) if elementwise_affine and bias else None

    def forward(self, x: Tensor) -> Tensor:
        x = as_tensor(x, "LayerNorm")
        if x.shape[x.ndim - len(self.normalized_shape):] != self.normalized_shape:
            raise ValueError(f"LayerNorm: input of shape {x.shape} does not end in {self.normalized_shape}")
        return F.layer_norm(x, self.weight, self.bias, self.eps, normalized_ndim=len(self.normalized_shape))

    def extra_repr(self) -> str:
        return (f"{self.normalized_shape}, eps={self.eps}, elementwise_affine={self.elementwise_affine}, "
                f"bias={self.bias is not None}")
