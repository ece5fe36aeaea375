"""The convolution as one node: the fast path of ``functional.conv2d`` / ``conv1d`` (groups = 1).

The plain version (``functional/conv.py``) is ``weight @ Unfold(x)`` with the columns channels first,
(C kh kw, N OH OW): one 2-D product, whose (C_out, N OH OW) result is a permuted view of the images,
so the backward first copies the incoming (N, C_out, OH, OW) gradient back into that order, and every
step runs about ten nodes. Here the columns are laid out image by image, (N, C kh kw, OH OW), so that
the forward and weight-gradient products are batched over the images and write and read NCHW directly.
The input gradient still goes through channels-first columns (one transposed copy of the gradient),
as ``fold``'s strided adds run ~1.7x faster over them. Measured side by side on one thread, 64 images,
forward + backward (a shared 2-core EPYC): 1x28x28 -> 32 channels 3x3 2.1 ms here against 7.2 ms
composed; 32x16x16 -> 64 channels no faster (33 against 32 ms): there the three products are ~23 ms.
"""
from __future__ import annotations

import numpy as np

from ..threads import matmul
from .function import Function
from .window import fold, padded, windows


class Conv2d(Function):
    """Cross-correlation of images x (N, C, H, W) with weight (O, C, kh, kw), plus bias (O,) if given,
    -> (N, O, OH, OW). Keywords: ``stride``, ``padding`` ((top, bottom), (left, right)), ``dilation``."""

    saved_inputs, saves_output = (1,), False  # the backward reads the weight and its own copy of the columns
    fresh_grads = True

    def forward(self, x, weight, bias=None, stride=(1, 1), padding=((0, 0), (0, 0)), dilation=(1, 1)):
        view = windows(padded(x, padding), weight.shape[2:], stride, dilation)  # (N, C, kh, kw, OH, OW)
        n, oh, ow = x.shape[0], view.shape[4], view.shape[5]
        k = view.shape[1] * view.shape[2] * view.shape[3]  # sizes spelled out: -1 fails on an empty batch
        self.cols = view.reshape(n, k, oh * ow)  # im2col, image by image: the one copy
        self.w2 = weight.reshape(weight.shape[0], k)
        self.args, self.size, self.w_shape = (weight.shape[2:], stride, padding, dilation), x.shape[2:], weight.shape
        out = np.empty_like(x, shape=(n, weight.shape[0], oh * ow))
        matmul(self.w2, self.cols, out=out)  # (O, K) @ (N, K, L) -> (N, O, L): NCHW already
        if bias is not None:
            out += bias[:, None]
        return out.reshape(n, weight.shape[0], oh, ow)

    def backward(self, g):
        g = g.reshape(g.shape[0], g.shape[1], g.shape[2] * g.shape[3])  # (N, O, L)
        gx = gw = gb = None
        if self.needs_input_grad[0]:  # d/dcols = W^T g, then added back onto the images
            # channels first, (O, N L): the one transposed copy (small beside the columns), paid because
            # fold's strided adds run ~1.7x faster over (C kh kw, N L) columns than over (N, C kh kw, L)
            g_rows = g.transpose(1, 0, 2).reshape(g.shape[1], g.shape[0] * g.shape[2])
            gx = fold(matmul(self.w2.T, g_rows), self.size, *self.args)
        if self.needs_input_grad[1]:  # d/dW = sum_n g_n cols_n^T
            gw = matmul(g, self.cols.transpose(0, 2, 1)).sum(axis=0).reshape(self.w_shape)
        if len(self.needs_input_grad) > 2 and self.needs_input_grad[2]:
            gb = g.sum(axis=(0, 2))
        return (gx, gw, gb)[:len(self.needs_input_grad)]
