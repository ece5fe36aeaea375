"""LayerNorm, BatchNorm1d, BatchNorm2d: normalise, then scale and shift."""
from __future__ import annotations

import numpy as np

from .. import functional as F
from ..autograd.tensor import Tensor
from ..functional.inputs import as_tensor
from . import init
from .conv import named_errors
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
        self.weight = Parameter(init.empty(*self.normalized_shape)) if elementwise_affine else None
        self.bias = Parameter(init.empty(*self.normalized_shape)) if elementwise_affine and bias else None
        self.reset_parameters()

    def reset_parameters(self) -> None:
        if self.weight is not None:
            init.ones_(self.weight)
        if self.bias is not None:
            init.zeros_(self.bias)

    def forward(self, x: Tensor) -> Tensor:
        x = as_tensor(x, "LayerNorm")
        if x.shape[x.ndim - len(self.normalized_shape):] != self.normalized_shape:
            raise ValueError(f"LayerNorm: input of shape {x.shape} does not end in {self.normalized_shape}")
        return F.layer_norm(x, self.weight, self.bias, self.eps, normalized_ndim=len(self.normalized_shape))

    def extra_repr(self) -> str:
        return (f"{self.normalized_shape}, eps={self.eps}, elementwise_affine={self.elementwise_affine}, "
                f"bias={self.bias is not None}")


class _BatchNorm(Module):
    """Batch normalisation over channel axis 1: parameters, running-statistic buffers, PyTorch's momentum rule."""

    input_ndims: tuple = ()

    def __init__(self, num_features: int, eps: float = 1e-5, momentum: float | None = 0.1, affine: bool = True,
                 track_running_stats: bool = True):
        super().__init__()
        self.num_features, self.eps, self.momentum = num_features, eps, momentum
        self.affine, self.track_running_stats = affine, track_running_stats
        self.weight = Parameter(init.empty(num_features)) if affine else None
        self.bias = Parameter(init.empty(num_features)) if affine else None
        if track_running_stats:
            self.register_buffer("running_mean", Tensor(init.empty(num_features)))
            self.register_buffer("running_var", Tensor(init.empty(num_features)))
            self.register_buffer("num_batches_tracked", Tensor(init.empty(dtype=np.int64)))
        else:
            for name in ("running_mean", "running_var", "num_batches_tracked"):
                self.register_buffer(name, None)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        self.reset_running_stats()
        if self.affine:
            init.ones_(self.weight)
            init.zeros_(self.bias)

    def reset_running_stats(self) -> None:
        if self.track_running_stats:
            self.running_mean.data = np.zeros_like(self.running_mean.data)
            self.running_var.data = np.ones_like(self.running_var.data)
            self.num_batches_tracked.data = np.zeros_like(self.num_batches_tracked.data)

    def forward(self, x: Tensor) -> Tensor:
        name = type(self).__name__
        x = as_tensor(x, name)
        if x.ndim not in self.input_ndims:
            raise ValueError(f"{name}: expected {' or '.join(f'{n}D' for n in self.input_ndims)} input "
                             f"(N, C{', L' if name.endswith('1d') else ', H, W'}), got shape {x.shape}")
        if x.shape[1] != self.num_features:
            raise ValueError(f"{name}: input of shape {x.shape} has {x.shape[1]} channels, expected {self.num_features}")
        momentum = 0.0 if self.momentum is None else self.momentum
        update = self.training and self.track_running_stats
        if update and x.size > self.num_features:  # (a batch of one raises in batch_norm, counting nothing)
            self.num_batches_tracked.data = self.num_batches_tracked.data + 1
            if self.momentum is None:  # a cumulative average: batch k gets weight 1/k
                momentum = 1.0 / int(self.num_batches_tracked.data)
        # Batch statistics in training, and always when no running statistics are kept.
        use_batch = self.training or not self.track_running_stats
        with named_errors(self):
            return F.batch_norm(x, self.running_mean if not use_batch or update else None,
                                self.running_var if not use_batch or update else None,
                                self.weight, self.bias, use_batch, momentum, self.eps)

    def extra_repr(self) -> str:
        return (f"{self.num_features}, eps={self.eps}, momentum={self.momentum}, affine={self.affine}, "
                f"track_running_stats={self.track_running_stats}")


class BatchNorm1d(_BatchNorm):
    """Batch norm of features (N, C) or sequences (N, C, L): each channel normalised over N (and L).

    Running mean and unbiased variance are buffers ``running_mean``, ``running_var``, with
    ``num_batches_tracked``, as PyTorch names them. See ``F.batch_norm``.
    """

    input_ndims = (2, 3)


class BatchNorm2d(_BatchNorm):
    """Batch norm of images (N, C, H, W): each channel normalised over N, H and W. See ``BatchNorm1d``."""

    input_ndims = (4,)
