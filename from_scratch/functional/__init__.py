"""Stateless functions: activations, softmax family, losses, dropout, attention and masks, one_hot and pad.

One family per file, as ``from_scratch.nn`` has them; ``import from_scratch.functional as F`` sees all
of them. Classes are on the last axis (``axis=-1``) throughout, NumPy style (the losses take
``class_axis=1`` for PyTorch's (N, C, d1, ...) layout).

Plain first: softmax, log_softmax, cross_entropy, layer_norm, add_layer_norm, linear, feed_forward and
attention each stand beside their plain version ``<name>_simple``, a few lines composed from primitive
ops; the public function runs a fused fast path unless ``use_fused(False)`` (see ``fastpath.py``).
"""
from ..autograd.tensor import where
from .activation import gelu, log_softmax, log_softmax_simple, relu, sigmoid, softmax, softmax_simple, tanh
from .attention import (MASK_VALUE, create_causal_mask, create_padding_mask, merge_heads, multi_head_attention,
                        multi_head_attention_simple, scaled_dot_product_attention,
                        scaled_dot_product_attention_simple, split_heads)
from .fastpath import fused_enabled, use_fused
from .linear import dropout, embedding, feed_forward, feed_forward_simple, linear, linear_simple
from .loss import binary_cross_entropy, binary_cross_entropy_with_logits, cross_entropy, mse_loss, nll_loss
from .loss import cross_entropy_simple, l1_loss
from .arrays import one_hot, pad
from .normalization import add_layer_norm, add_layer_norm_simple, batch_norm, batch_norm_simple, layer_norm
from .normalization import layer_norm_simple

__all__ = ["relu", "gelu", "sigmoid", "tanh", "softmax", "log_softmax", "dropout", "linear", "embedding",
           "layer_norm", "add_layer_norm", "scaled_dot_product_attention", "multi_head_attention", "feed_forward",
           "cross_entropy", "nll_loss", "mse_loss", "binary_cross_entropy", "binary_cross_entropy_with_logits",
           "create_padding_mask", "create_causal_mask", "where", "MASK_VALUE"]
__all__ += ["l1_loss", "one_hot", "pad"]
__all__ += ["use_fused", "fused_enabled", "softmax_simple", "log_softmax_simple", "cross_entropy_simple",
            "layer_norm_simple", "add_layer_norm_simple", "linear_simple", "feed_forward_simple",
            "scaled_dot_product_attention_simple", "multi_head_attention_simple", "split_heads", "merge_heads"]
from .conv import conv1d, conv2d, conv_transpose2d, fold, unfold
from .pooling import adaptive_avg_pool2d, avg_pool2d, max_pool2d

__all__ += ["batch_norm", "batch_norm_simple", "conv1d", "conv2d", "conv_transpose2d", "unfold", "fold",
            "max_pool2d", "avg_pool2d", "adaptive_avg_pool2d"]
