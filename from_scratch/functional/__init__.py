"""Stateless functions: activations, softmax family, losses, dropout, attention and masks, one_hot and pad.

One family per file, as ``from_scratch.nn`` has them; ``import from_scratch.functional as F`` sees all
of them. Classes are on the last axis (``axis=-1``) throughout, NumPy style (the losses take
``class_axis=1`` for PyTorch's (N, C, d1, ...) layout).
"""
from ..autograd.tensor import where
from .activation import gelu, log_softmax, relu, sigmoid, softmax, tanh
from .attention import (MASK_VALUE, create_causal_mask, create_padding_mask, multi_head_attention,
                        scaled_dot_product_attention)
from .linear import dropout, embedding, feed_forward, linear
from .loss import binary_cross_entropy, binary_cross_entropy_with_logits, cross_entropy, mse_loss, nll_loss
from .loss import l1_loss
from .arrays import one_hot, pad
from .normalization import add_layer_norm, batch_norm, batch_norm_composed, layer_norm

__all__ = ["relu", "gelu", "sigmoid", "tanh", "softmax", "log_softmax", "dropout", "linear", "embedding",
           "layer_norm", "add_layer_norm", "scaled_dot_product_attention", "multi_head_attention", "feed_forward",
           "cross_entropy", "nll_loss", "mse_loss", "binary_cross_entropy", "binary_cross_entropy_with_logits",
           "create_padding_mask", "create_causal_mask", "where", "MASK_VALUE"]
__all__ += ["l1_loss", "one_hot", "pad"]
from .conv import conv1d, conv2d, conv_transpose2d, fold, unfold
from .pooling import adaptive_avg_pool2d, avg_pool2d, max_pool2d

__all__ += ["batch_norm", "batch_norm_composed", "conv1d", "conv2d", "conv_transpose2d", "unfold", "fold",
            "max_pool2d", "avg_pool2d", "adaptive_avg_pool2d"]
