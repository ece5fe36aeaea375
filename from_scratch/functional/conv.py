"""Convolutions as PyTorch has them: unfold/fold, conv1d, conv2d, conv_transpose2d.

Each is composed from the window primitives in ``autograd/window.py`` and one matrix product:
a convolution is ``weight (O, C*kh*kw) @ columns (C*kh*kw, N*OH*OW)`` with the columns from ``Unfold``
(im2col). The backward is the same two ops run backwards: the weight gradient is one product with the
columns, the input gradient a product then ``fold``, which adds the columns back onto the image in a
loop over kernel offsets. All products are plain 2-D ones (or one per group), BLAS's fastest case.
That composition is the definition; with one group, while ``use_fused`` is on (the default), a single
node (``autograd/fused_conv.py``) runs the same math with the columns laid out image by image.
PyTorch's convolution is a cross-correlation (no kernel flip); so is ours.
"""
from __future__ import annotations

from typing import Any

from ..autograd import fused_conv, window
from ..autograd.tensor import Tensor
from .fastpath import fused_enabled
from .inputs import as_tensor

__all__ = ["unfold", "fold", "conv1d", "conv2d", "conv_transpose2d"]


def ntuple(name: str, what: str, value: Any, n: int, minimum: int = 0) -> tuple:
    """``value`` (an int or n ints) as a tuple of n ints of at least ``minimum``, or a ValueError naming ``name``."""
    values = (value,) * n if isinstance(value, int) else tuple(value)
    if len(values) != n or not all(isinstance(v, int) and v >= minimum for v in values):
        raise ValueError(f"{name}: {what} must be an int >= {minimum} or {n} of them, got {value!r}")
    return values


def padding_pairs(name: str, padding: Any, kernel: tuple, stride: tuple, dilation: tuple) -> tuple:
    """Padding as ((before, after), ...) per spatial axis, from ints, a tuple, ``"valid"`` or ``"same"``.

    ``"same"`` pads d (k - 1) in total per axis, the extra cell after, as PyTorch does; it needs stride 1.
    """
    if padding == "valid":
        return tuple((0, 0) for _ in kernel)
    if padding == "same":
        if any(s != 1 for s in stride):
            raise ValueError(f"{name}: padding='same' is not supported for strided convolutions (stride {stride})")
        return tuple((d * (k - 1) // 2, d * (k - 1) - d * (k - 1) // 2) for k, d in zip(kernel, dilation))
    if isinstance(padding, str):
        raise ValueError(f"{name}: padding must be 'valid', 'same', an int or a tuple of ints, got {padding!r}")
    return tuple((p, p) for p in ntuple(name, "padding", padding, len(kernel)))


def out_sizes(name: str, shape: tuple, kernel: tuple, stride: tuple, pads: tuple, dilation: tuple) -> tuple:
    """The number of windows per spatial axis, or PyTorch's error when the kernel outgrows the padded input."""
    padded = tuple(n + a + b for n, (a, b) in zip(shape, pads))
    extent = tuple(d * (k - 1) + 1 for k, d in zip(kernel, dilation))
    if any(e > p for e, p in zip(extent, padded)):
        raise ValueError(f"{name}: input of shape {shape} padded to {padded} is smaller than the kernel "
                         f"{kernel} (dilated extent {extent}); the kernel can't be greater than the padded input")
    return tuple(window.window_count(p, k, s, d) for p, k, s, d in zip(padded, kernel, stride, dilation))


def image_batch(name: str, x: Any, spatial: int) -> tuple[Tensor, bool]:
    """``x`` as a batch (N, C, *spatial) and whether it came without the batch axis (PyTorch's unbatched input)."""
    x = as_tensor(x, name)
    if x.ndim == spatial + 1:
        return x.unsqueeze(0), True
    if x.ndim != spatial + 2:
        axes = "(N, C, L) or (C, L)" if spatial == 1 else "(N, C, H, W) or (C, H, W)"
        raise ValueError(f"{name}: expected input {axes}, got shape {x.shape}")
    return x, False


def unfold(input: Tensor, kernel_size: Any, dilation: Any = 1, padding: Any = 0, stride: Any = 1) -> Tensor:
    """Sliding windows (im2col): (N, C, H, W) -> (N, C * kh * kw, L), L windows, as ``torch.nn.functional.unfold``."""
    x, _ = image_batch("unfold", input, 2)
    kernel = ntuple("unfold", "kernel_size", kernel_size, 2, 1)
    stride, dilation = ntuple("unfold", "stride", stride, 2, 1), ntuple("unfold", "dilation", dilation, 2, 1)
    pads = padding_pairs("unfold", padding, kernel, stride, dilation)
    oh, ow = out_sizes("unfold", x.shape[2:], kernel, stride, pads, dilation)
    cols = window.Unfold.apply(x, kernel=kernel, stride=stride, padding=pads, dilation=dilation)
    return cols.reshape(cols.shape[0], x.shape[0], oh * ow).permute(1, 0, 2)  # (C k k, N L) -> (N, C k k, L)


def fold(input: Tensor, output_size: Any, kernel_size: Any, dilation: Any = 1, padding: Any = 0,
         stride: Any = 1) -> Tensor:
    """Add columns (N, C * kh * kw, L) back into images (N, C, *output_size), overlaps summed (col2im),
    as ``torch.nn.functional.fold``; the adjoint of ``unfold``."""
    input = as_tensor(input, "fold")
    size = ntuple("fold", "output_size", output_size, 2, 1)
    kernel = ntuple("fold", "kernel_size", kernel_size, 2, 1)
    stride, dilation = ntuple("fold", "stride", stride, 2, 1), ntuple("fold", "dilation", dilation, 2, 1)
    pads = padding_pairs("fold", padding, kernel, stride, dilation)
    blocks = out_sizes("fold", size, kernel, stride, pads, dilation)
    k = kernel[0] * kernel[1]
    if input.ndim != 3 or input.shape[1] % k or input.shape[2] != blocks[0] * blocks[1]:
        raise ValueError(f"fold: input of shape {input.shape} is not (N, C * {k}, {blocks[0] * blocks[1]}) "
                         f"for kernel {kernel} and output size {size} ({blocks[0]} x {blocks[1]} windows)")
    cols = input.permute(1, 0, 2).reshape(input.shape[1], -1)  # (N, C k k, L) -> the primitive's (C k k, N L)
    return window.Fold.apply(cols, size=size, kernel=kernel, stride=stride, padding=pads, dilation=dilation)


def conv2d(input: Tensor, weight: Tensor, bias: Tensor | None = None, stride: Any = 1, padding: Any = 0,
           dilation: Any = 1, groups: int = 1) -> Tensor:
    """2-D cross-correlation: input (N, C_in, H, W) or (C_in, H, W), weight (C_out, C_in / groups, kh, kw),
    bias (C_out,) -> (N, C_out, OH, OW), OH = floor((H + pad_top + pad_bottom - dh (kh - 1) - 1) / sh) + 1.

    ``padding``: int, pair, ``"valid"`` (none) or ``"same"`` (output size = input size, stride 1 only).
    Raises ValueError for a wrong number of axes, channels that do not match the weight or do not divide
    into ``groups``, and a kernel larger than the padded input.
    """
    return _conv("conv2d", input, weight, bias, stride, padding, dilation, groups, spatial=2)


def conv1d(input: Tensor, weight: Tensor, bias: Tensor | None = None, stride: Any = 1, padding: Any = 0,
           dilation: Any = 1, groups: int = 1) -> Tensor:
    """1-D cross-correlation: input (N, C_in, L) or (C_in, L), weight (C_out, C_in / groups, k) -> (N, C_out, L_out);
    ``conv2d`` on images one pixel high. Arguments and errors as ``conv2d``."""
    return _conv("conv1d", input, weight, bias, stride, padding, dilation, groups, spatial=1)


def _conv(name: str, input: Any, weight: Tensor, bias: Tensor | None, stride: Any, padding: Any, dilation: Any,
          groups: int, spatial: int) -> Tensor:
    x, unbatched = image_batch(name, input, spatial)
    weight = as_tensor(weight, name, "weight")
    bias = None if bias is None else as_tensor(bias, name, "bias")
    if weight.ndim != spatial + 2:
        raise ValueError(f"{name}: weight must have {spatial + 2} axes (C_out, C_in / groups, kernel...), "
                         f"got shape {weight.shape}")
    out_ch, in_per_group = weight.shape[:2]
    if not isinstance(groups, int) or groups < 1 or out_ch % groups or x.shape[1] % groups:
        raise ValueError(f"{name}: groups={groups} must divide both the input's {x.shape[1]} channels "
                         f"(input shape {x.shape}) and the weight's {out_ch} output channels")
    if x.shape[1] != in_per_group * groups:
        raise ValueError(f"{name}: input of shape {x.shape} has {x.shape[1]} channels, weight of shape "
                         f"{weight.shape} with groups={groups} expects {in_per_group * groups}")
    if bias is not None and bias.shape != (out_ch,):
        raise ValueError(f"{name}: bias of shape {bias.shape} for {out_ch} output channels")
    kernel = tuple(weight.shape[2:])
    stride, dilation = ntuple(name, "stride", stride, spatial, 1), ntuple(name, "dilation", dilation, spatial, 1)
    pads = padding_pairs(name, padding, kernel, stride, dilation)
    if spatial == 1:  # a 1-D signal is an image one pixel high
        x, weight = x.unsqueeze(2), weight.unsqueeze(2)
        kernel, stride, dilation, pads = (1,) + kernel, (1,) + stride, (1,) + dilation, ((0, 0),) + pads
    oh, ow = out_sizes(name, x.shape[2:], kernel, stride, pads, dilation)
    if groups == 1 and fused_enabled():  # the fast path: one node, NCHW throughout (autograd/fused_conv.py)
        out = fused_conv.Conv2d.apply(x, weight, *([] if bias is None else [bias]), stride=stride, padding=pads,
                                      dilation=dilation)
        out = out if spatial == 2 else out.squeeze(2)
        return out[0] if unbatched else out
    n, k = x.shape[0], in_per_group * kernel[0] * kernel[1]
    cols = window.Unfold.apply(x, kernel=kernel, stride=stride, padding=pads, dilation=dilation)  # (C k, N L)
    if groups == 1:  # (O, K) @ (K, N L): one 2-D product for the whole batch
        out = weight.reshape(out_ch, k) @ cols
    else:  # per group: (O/g, K/g) @ (K/g, N L), one batched product
        out = weight.reshape(groups, out_ch // groups, k) @ cols.reshape(groups, k, n * oh * ow)
    out = out.reshape(out_ch, n * oh * ow)
    if bias is not None:  # added to the (O, N L) matrix while it is contiguous: rows get one value each
        out = out + bias.reshape(out_ch, 1)
    # (O, N, ...) -> (N, O, ...): a view, no copy
    out = out.reshape(out_ch, n, oh, ow).permute(1, 0, 2, 3) if spatial == 2 else \
        out.reshape(out_ch, n, ow).permute(1, 0, 2)
    return out[0] if unbatched else out


def conv_transpose2d(input: Tensor, weight: Tensor, bias: Tensor | None = None, stride: Any = 1,
                     padding: Any = 0, output_padding: Any = 0, groups: int = 1, dilation: Any = 1) -> Tensor:
    """The transposed convolution (the gradient of ``conv2d`` with respect to its input): input (N, C_in, H, W),
    weight (C_in, C_out / groups, kh, kw) -> (N, C_out, OH, OW), OH = (H - 1) sh - 2 ph + dh (kh - 1) + oph + 1.

    Composed as ``fold(weight^T @ x)``. Raises ValueError as ``conv2d`` does, and for an output padding
    not smaller than the stride.
    """
    name = "conv_transpose2d"
    x, unbatched = image_batch(name, input, 2)
    weight = as_tensor(weight, name, "weight")
    if weight.ndim != 4:
        raise ValueError(f"{name}: weight must be (C_in, C_out / groups, kh, kw), got shape {weight.shape}")
    in_ch, out_per_group, kh, kw = weight.shape
    if not isinstance(groups, int) or groups < 1 or in_ch % groups or x.shape[1] != in_ch:
        raise ValueError(f"{name}: input of shape {x.shape} has {x.shape[1]} channels, weight of shape "
                         f"{weight.shape} expects {in_ch}, divisible by groups={groups}")
    stride, dilation = ntuple(name, "stride", stride, 2, 1), ntuple(name, "dilation", dilation, 2, 1)
    pad = ntuple(name, "padding", padding, 2)
    extra = ntuple(name, "output_padding", output_padding, 2)
    if any(e >= s for e, s in zip(extra, stride)):  # PyTorch also allows e < dilation; we do not
        raise ValueError(f"{name}: output_padding {extra} must be smaller than the stride {stride}")
    size = tuple((n - 1) * s - 2 * p + d * (k - 1) + e + 1
                 for n, s, p, d, k, e in zip(x.shape[2:], stride, pad, dilation, (kh, kw), extra))
    if min(size) < 1:
        raise ValueError(f"{name}: input of shape {x.shape} gives an empty output {size}")
    n, h, w = x.shape[0], x.shape[2], x.shape[3]
    cin, k = in_ch // groups, out_per_group * kh * kw
    # columns (g, K, N H W) = weight^T (g, K, C_in/g) @ x (g, C_in/g, N H W), then added back as images
    x_cols = x.permute(1, 0, 2, 3).reshape(groups, cin, n * h * w)
    cols = weight.reshape(groups, cin, k).transpose(1, 2) @ x_cols
    out = window.Fold.apply(cols.reshape(groups * k, n * h * w), size=size, kernel=(kh, kw), stride=stride,
                            padding=tuple((p, p) for p in pad), dilation=dilation)
    if bias is not None:
        out = out + bias.reshape(-1, 1, 1)
    return out[0] if unbatched else out
