"""Convolution layers: Conv1d, Conv2d, ConvTranspose2d, thin over ``functional/conv.py``."""
from __future__ import annotations

import contextlib
import math
from typing import Any, Iterator

from .. import functional as F
from ..autograd.tensor import Tensor
from ..functional.conv import ntuple
from . import init
from .module import Module, Parameter


@contextlib.contextmanager
def named_errors(layer: Module) -> Iterator[None]:
    """Put the layer in front of a bad-input error from its functional call: ``Conv2d(1, 8, ...): conv2d: ...``."""
    try:
        yield
    except ValueError as e:
        raise ValueError(f"{layer!r}: {e}") from None


class _ConvNd(Module):
    """What every convolution holds: sizes, the weight and bias, PyTorch's init and repr."""

    def __init__(self, spatial: int, in_channels: int, out_channels: int, kernel_size: Any, stride: Any,
                 padding: Any, dilation: Any, groups: int, bias: bool, padding_mode: str, transposed: bool,
                 output_padding: Any = 0):
        super().__init__()
        name = type(self).__name__

        def tup(what: str, value: Any, minimum: int) -> tuple:
            return ntuple(name, what, value, spatial, minimum)

        if not isinstance(groups, int) or groups < 1 or in_channels % groups or out_channels % groups:
            raise ValueError(f"{name}: in_channels ({in_channels}) and out_channels ({out_channels}) must be "
                             f"divisible by groups ({groups})")
        if padding_mode != "zeros":
            raise ValueError(f"{name}: padding_mode {padding_mode!r} is not implemented (only 'zeros')")
        self.in_channels, self.out_channels, self.groups = in_channels, out_channels, groups
        self.kernel_size, self.stride = tup("kernel_size", kernel_size, 1), tup("stride", stride, 1)
        self.dilation, self.output_padding = tup("dilation", dilation, 1), tup("output_padding", output_padding, 0)
        if isinstance(padding, str):
            if padding not in ("same", "valid"):
                raise ValueError(f"{name}: padding must be 'same', 'valid', an int or a tuple, got {padding!r}")
            if padding == "same" and any(s != 1 for s in self.stride):
                raise ValueError(f"{name}: padding='same' is not supported for strided convolutions")
            self.padding = padding
        else:
            self.padding = tup("padding", padding, 0)
        self.padding_mode, self.transposed = padding_mode, transposed
        shape = (in_channels, out_channels // groups) if transposed else (out_channels, in_channels // groups)
        self.weight = Parameter(init.empty(*shape, *self.kernel_size))
        self.bias = Parameter(init.empty(out_channels)) if bias else None
        self.reset_parameters()

    def reset_parameters(self) -> None:
        # PyTorch's default: kaiming-uniform with a = sqrt(5), i.e. U(-1/sqrt(fan_in), 1/sqrt(fan_in)) for the
        # weight, and the bias from the same range; fan_in = weight.shape[1] * kernel area.
        init.kaiming_uniform_(self.weight, a=math.sqrt(5))
        if self.bias is not None:
            fan_in = self.weight.shape[1] * math.prod(self.kernel_size)
            bound = 1 / math.sqrt(fan_in) if fan_in else 0.0
            init.uniform_(self.bias, -bound, bound)

    def extra_repr(self) -> str:
        s = f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, stride={self.stride}"
        if self.padding != (0,) * len(self.kernel_size):
            s += f", padding={self.padding}"
        if self.dilation != (1,) * len(self.dilation):
            s += f", dilation={self.dilation}"
        if self.output_padding != (0,) * len(self.output_padding):
            s += f", output_padding={self.output_padding}"
        if self.groups != 1:
            s += f", groups={self.groups}"
        if self.bias is None:
            s += ", bias=False"
        return s


class Conv1d(_ConvNd):
    """1-D convolution (cross-correlation) over (N, C_in, L) or (C_in, L) -> (N, C_out, L_out).

    Weight (out_channels, in_channels / groups, kernel_size), bias (out_channels,). See ``F.conv1d``.
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: Any, stride: Any = 1, padding: Any = 0,
                 dilation: Any = 1, groups: int = 1, bias: bool = True, padding_mode: str = "zeros"):
        super().__init__(1, in_channels, out_channels, kernel_size, stride, padding, dilation, groups, bias,
                         padding_mode, transposed=False)

    def forward(self, x: Tensor) -> Tensor:
        with named_errors(self):
            return F.conv1d(x, self.weight, self.bias, self.stride, self.padding, self.dilation, self.groups)


class Conv2d(_ConvNd):
    """2-D convolution (cross-correlation) over (N, C_in, H, W) or (C_in, H, W) -> (N, C_out, OH, OW).

    Weight (out_channels, in_channels / groups, kh, kw), bias (out_channels,). See ``F.conv2d`` for the
    output size and the errors raised.
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: Any, stride: Any = 1, padding: Any = 0,
                 dilation: Any = 1, groups: int = 1, bias: bool = True, padding_mode: str = "zeros"):
        super().__init__(2, in_channels, out_channels, kernel_size, stride, padding, dilation, groups, bias,
                         padding_mode, transposed=False)

    def forward(self, x: Tensor) -> Tensor:
        with named_errors(self):
            return F.conv2d(x, self.weight, self.bias, self.stride, self.padding, self.dilation, self.groups)


class ConvTranspose2d(_ConvNd):
    """Transposed 2-D convolution (N, C_in, H, W) -> (N, C_out, OH, OW), OH = (H - 1) sh - 2 ph + dh (kh - 1) + oph + 1.

    Weight (in_channels, out_channels / groups, kh, kw), bias (out_channels,). See ``F.conv_transpose2d``.
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: Any, stride: Any = 1, padding: Any = 0,
                 output_padding: Any = 0, groups: int = 1, bias: bool = True, dilation: Any = 1,
                 padding_mode: str = "zeros"):
        if isinstance(padding, str):
            raise ValueError(f"ConvTranspose2d: padding must be an int or a tuple, got {padding!r}")
        super().__init__(2, in_channels, out_channels, kernel_size, stride, padding, dilation, groups, bias,
                         padding_mode, transposed=True, output_padding=output_padding)

    def forward(self, x: Tensor) -> Tensor:
        with named_errors(self):
            return F.conv_transpose2d(x, self.weight, self.bias, self.stride, self.padding, self.output_padding,
                                      self.groups, self.dilation)
