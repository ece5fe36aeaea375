"""Normalisation: layer norm, and layer norm with the residual add fused in."""
from __future__ import annotations

from ..autograd import fused
from ..autograd.tensor import Tensor
from .inputs import as_tensor

__all__ = ["layer_norm", "add_layer_norm"]


def layer_norm(x: Tensor, weight: Tensor | None = None, bias: Tensor | None = None, eps: float = 1e-5,
               normalized_ndim: int | None = None) -> Tensor:
    """Normalise over the trailing axes that ``weight`` covers (the last axis if no weight)."""
    x = as_tensor(x, "layer_norm")
    params, ndim = _layer_norm_params("layer_norm", weight, bias, normalized_ndim)
    return fused.LayerNorm.apply(x, *params, ndim=ndim, eps=eps)


def add_layer_norm(x: Tensor, y: Tensor, weight: Tensor | None = None, bias: Tensor | None = None,
                   eps: float = 1e-5, normalized_ndim: int | None = None) -> Tensor:
    """``layer_norm(x + y)`` as one op: the residual add and norm of a post-norm Transformer layer."""
    x, y = as_tensor(x, "add_layer_norm"), as_tensor(y, "add_layer_norm", "y")
    if x.shape != y.shape:
        raise ValueError(f"add_layer_norm: x of shape {x.shape} and y of shape {y.shape} must have the same shape")
    params, ndim = _layer_norm_params("add_layer_norm", weight, bias, normalized_ndim)
    return fused.AddLayerNorm.apply(x, y, *params, ndim=ndim, eps=eps)


def _layer_norm_params(name: str, weight: Tensor | None, bias: Tensor | None,
                       normalized_ndim: int | None) -> tuple[list, int]:
    """The parameters to pass on (weight, then bias, where given) and the number of normalised axes."""
    if bias is not None and weight is None:
        raise ValueError(f"{name}: a bias needs a weight")
    ndim = normalized_ndim or (weight.ndim if weight is not None else 1)
    return [t for t in (weight, bias) if t is not None], ndim
