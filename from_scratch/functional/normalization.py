"""Normalisation: layer norm, layer norm with the residual add before it (post-norm's "Add & Norm"), batch norm."""
from __future__ import annotations

import numpy as np

from ..autograd import fused, fused_norm
from ..autograd.tensor import Tensor
from .fastpath import fused_enabled
from .inputs import as_tensor

__all__ = ["layer_norm", "add_layer_norm", "layer_norm_simple", "add_layer_norm_simple", "batch_norm",
           "batch_norm_simple"]


def layer_norm_simple(x: Tensor, weight: Tensor | None = None, bias: Tensor | None = None, eps: float = 1e-5,
                      normalized_ndim: int = 1) -> Tensor:
    """(x - mean) / sqrt(var + eps) * weight + bias over the last ``normalized_ndim`` axes: the plain
    version, from primitive ops (Ba, Kiros & Hinton, 2016; the variance is the biased one, as PyTorch's)."""
    axes = tuple(range(-normalized_ndim, 0))
    centred = x - x.mean(axes, keepdims=True)
    var = (centred * centred).mean(axes, keepdims=True)
    out = centred / (var + eps).sqrt()
    if weight is not None:
        out = out * weight
    return out if bias is None else out + bias


def add_layer_norm_simple(x: Tensor, y: Tensor, weight: Tensor | None = None, bias: Tensor | None = None,
                          eps: float = 1e-5, normalized_ndim: int = 1) -> Tensor:
    """layer_norm(x + y): the plain version of ``add_layer_norm``."""
    return layer_norm_simple(x + y, weight, bias, eps, normalized_ndim)


def layer_norm(x: Tensor, weight: Tensor | None = None, bias: Tensor | None = None, eps: float = 1e-5,
               normalized_ndim: int | None = None) -> Tensor:
    """Normalise over the trailing axes that ``weight`` covers (the last axis if no weight);
    ``layer_norm_simple`` is the definition. Shape: any -> the same.

    Fast path (``fused.LayerNorm``): one node instead of nine, row sums as BLAS products; forward +
    backward 58 us against 141 us plain (16x10x64).
    """
    x = as_tensor(x, "layer_norm")
    params, ndim = _layer_norm_params("layer_norm", weight, bias, normalized_ndim)
    if not fused_enabled():
        return layer_norm_simple(x, weight, bias, eps, ndim)
    return fused.LayerNorm.apply(x, *params, ndim=ndim, eps=eps)


def add_layer_norm(x: Tensor, y: Tensor, weight: Tensor | None = None, bias: Tensor | None = None,
                   eps: float = 1e-5, normalized_ndim: int | None = None) -> Tensor:
    """``layer_norm(x + y)``: the residual add and norm of a post-norm Transformer layer;
    ``add_layer_norm_simple`` is the definition. Shape: x and y alike -> the same.

    Fast path (``fused.AddLayerNorm``): the add joins the layer norm's node; forward + backward
    59 us against 143 us plain (16x10x64).
    """
    x, y = as_tensor(x, "add_layer_norm"), as_tensor(y, "add_layer_norm", "y")
    if x.shape != y.shape:
        raise ValueError(f"add_layer_norm: x of shape {x.shape} and y of shape {y.shape} must have the same shape")
    params, ndim = _layer_norm_params("add_layer_norm", weight, bias, normalized_ndim)
    if not fused_enabled():
        return add_layer_norm_simple(x, y, weight, bias, eps, ndim)
    return fused.AddLayerNorm.apply(x, y, *params, ndim=ndim, eps=eps)


def _layer_norm_params(name: str, weight: Tensor | None, bias: Tensor | None,
                       normalized_ndim: int | None) -> tuple[list, int]:
    """The parameters to pass on (weight, then bias, where given) and the number of normalised axes."""
    if bias is not None and weight is None:
        raise ValueError(f"{name}: a bias needs a weight")
    ndim = normalized_ndim or (weight.ndim if weight is not None else 1)
    return [t for t in (weight, bias) if t is not None], ndim


def batch_norm(input: Tensor, running_mean: Tensor | None, running_var: Tensor | None, weight: Tensor | None = None,
               bias: Tensor | None = None, training: bool = False, momentum: float = 0.1, eps: float = 1e-5) -> Tensor:
    """Normalise each channel (axis 1) of ``input`` (N, C, ...) over the batch and all other axes, then
    scale by ``weight`` (C,) and shift by ``bias`` (C,), as ``torch.nn.functional.batch_norm``.

    Training: the batch's mean and biased variance normalise (``batch_norm_simple`` is the plain
    version of the math; ``fused_norm.BatchNorm`` runs it unless ``use_fused(False)``); the running statistics (C,), if given, move ``momentum``
    of the way to the batch mean and the *unbiased* batch variance (PyTorch's convention), in place.
    Otherwise the running statistics normalise: a per-channel affine map.
    Raises ValueError for fewer than two values per channel in training, for missing running statistics
    in evaluation, and for statistics or parameters that are not of shape (C,).
    """
    input = as_tensor(input, "batch_norm")
    if input.ndim < 2:
        raise ValueError(f"batch_norm: expected input (N, C, ...), got shape {input.shape}")
    c, stat_shape = input.shape[1], (1, input.shape[1]) + (1,) * (input.ndim - 2)
    for what, t in (("running_mean", running_mean), ("running_var", running_var), ("weight", weight), ("bias", bias)):
        if t is not None and t.shape != (c,):
            raise ValueError(f"batch_norm: {what} of shape {t.shape} for input of shape {input.shape} ({c} channels)")
    if not training:
        if running_mean is None or running_var is None:
            raise ValueError("batch_norm: evaluation (training=False) needs running_mean and running_var")
        inv_std = 1 / np.sqrt(running_var.data.astype(input.dtype) + eps)
        out = (input - running_mean.data.astype(input.dtype).reshape(stat_shape)) * inv_std.reshape(stat_shape)
        out = out if weight is None else out * weight.reshape(stat_shape)
        return out if bias is None else out + bias.reshape(stat_shape)
    count = input.size // max(c, 1)
    if count <= 1:
        raise ValueError(f"batch_norm: expected more than 1 value per channel when training, "
                         f"got input of shape {input.shape}")
    if fused_enabled():
        params = [t for t in (weight, bias) if t is not None]
        out, op = fused_norm.BatchNorm.apply_with_ctx(input, *params, has_weight=weight is not None,
                                                      has_bias=bias is not None, eps=eps)
        mean, var = op.mean, op.var
    else:
        out = batch_norm_simple(input, weight, bias, eps)
        axes = (0,) + tuple(range(2, input.ndim))
        mean, var = input.data.mean(axis=axes), input.data.var(axis=axes)
    if running_mean is not None and running_var is not None:
        unbiased = var * (count / (count - 1))
        running_mean.data = (1 - momentum) * running_mean.data + momentum * mean.astype(running_mean.dtype)
        running_var.data = (1 - momentum) * running_var.data + momentum * unbiased.astype(running_var.dtype)
    return out


def batch_norm_simple(input: Tensor, weight: Tensor | None = None, bias: Tensor | None = None,
                        eps: float = 1e-5) -> Tensor:
    """Training-mode ``batch_norm`` (batch statistics) composed from Tensor ops: the plain version of the math
    that ``autograd/fused_norm.BatchNorm`` runs as one op (Ioffe & Szegedy 2015)."""
    axes, stat_shape = (0,) + tuple(range(2, input.ndim)), (1, input.shape[1]) + (1,) * (input.ndim - 2)
    centered = input - input.mean(axis=axes, keepdims=True)
    var = (centered * centered).mean(axis=axes, keepdims=True)  # biased: the batch's own spread
    out = centered * (var + eps) ** -0.5
    out = out if weight is None else out * weight.reshape(stat_shape)
    return out if bias is None else out + bias.reshape(stat_shape)
