"""Stateless functions: activations, softmax family, losses, dropout, attention and masks.

Classes are on the last axis (``axis=-1``) throughout, NumPy style.
"""
from __future__ import annotations

import math
from typing import Any, Sequence

import numpy as np

from .autograd import fused, fused_attention, fused_blocks
from .autograd.ops import _check_axis
from .autograd.special import Erfc
from .autograd.tensor import Tensor, get_default_dtype, where
from .random import dropout_scale

__all__ = ["relu", "gelu", "sigmoid", "tanh", "softmax", "log_softmax", "dropout", "linear", "embedding",
           "layer_norm", "add_layer_norm", "scaled_dot_product_attention", "multi_head_attention", "feed_forward",
           "cross_entropy", "nll_loss", "mse_loss", "binary_cross_entropy", "binary_cross_entropy_with_logits",
           "create_padding_mask", "create_causal_mask", "where"]

MASK_VALUE = fused_attention.MASK_VALUE  # the tutorials' additive mask value for hidden positions


# ---------------------------------------------------------------- activations

def relu(x: Tensor) -> Tensor:
    return x.relu()


def sigmoid(x: Tensor) -> Tensor:
    return x.sigmoid()


def tanh(x: Tensor) -> Tensor:
    return x.tanh()


def gelu(x: Tensor, approximate: str = "none") -> Tensor:
    """GELU: x * Phi(x) with the exact normal CDF, or PyTorch's ``"tanh"`` approximation."""
    if approximate == "tanh":
        inner = (x + 0.044715 * x ** 3) * math.sqrt(2 / math.pi)
        return 0.5 * x * (1 + inner.tanh())
    if approximate != "none":
        raise ValueError(f"gelu: approximate must be 'none' or 'tanh', got {approximate!r}")
    # Phi(x) = erfc(-x / sqrt(2)) / 2, which stays accurate where Phi is tiny (1 + erf would round to 0)
    return (0.5 * x) * Erfc.apply(x * (-1 / math.sqrt(2)))


def softmax(x: Tensor, axis: int = -1) -> Tensor:
    _check_axis("softmax", x.shape, axis)
    return fused.Softmax.apply(x, axis=axis)


def log_softmax(x: Tensor, axis: int = -1) -> Tensor:
    _check_axis("log_softmax", x.shape, axis)
    return fused.LogSoftmax.apply(x, axis=axis)


# ---------------------------------------------------------------- layers as functions

def dropout(x: Tensor, p: float = 0.5, training: bool = True) -> Tensor:
    """Zero each element with probability ``p`` and scale the rest by 1/(1-p) (inverted dropout)."""
    if not 0 <= p <= 1:
        raise ValueError(f"dropout: p must be in [0, 1], got {p}")
    if not training or p == 0:
        return x
    if p == 1:
        return x * 0
    return x * dropout_scale(x.shape, p, x.dtype)


def linear(x: Tensor, weight: Tensor, bias: Tensor | None = None) -> Tensor:
    """x @ weight.T + bias, with ``weight`` of shape (out_features, in_features)."""
    xs, ws = x.data.shape, weight.data.shape
    if not xs or len(ws) != 2 or xs[-1] != ws[-1]:
        raise ValueError(f"linear: input of shape {xs} has {xs[-1] if xs else 'no'} features, "
                         f"weight of shape {ws} expects {ws[-1] if ws else '?'}")
    return fused.Linear.apply(x, weight) if bias is None else fused.Linear.apply(x, weight, bias)


def feed_forward(x: Tensor, w1: Tensor, b1: Tensor, w2: Tensor, b2: Tensor, dropout_p: float = 0.0,
                 training: bool = True) -> Tensor:
    """linear(dropout(relu(linear(x, w1, b1))), w2, b2) as one node: the Transformer's feed-forward block."""
    if x.shape[-1:] != w1.shape[1:] or w2.shape[1:] != w1.shape[:1]:
        raise ValueError(f"feed_forward: input of shape {x.shape}, w1 of shape {w1.shape} and w2 of shape "
                         f"{w2.shape} do not chain (x (..., H), w1 (F, H), w2 (H_out, F))")
    return fused_blocks.FeedForward.apply(x, w1, b1, w2, b2, dropout_p=dropout_p if training else 0.0)


def embedding(ids: Any, weight: Tensor, padding_idx: int | None = None) -> Tensor:
    """Look up rows of ``weight``; repeated ids get their gradients summed, ``padding_idx``'s row none."""
    ids = np.asarray(ids.data if isinstance(ids, Tensor) else ids)
    if ids.dtype.kind not in "iu":
        raise TypeError(f"embedding: ids must be integers, got dtype {ids.dtype}")
    n = weight.shape[0]
    if ids.size and (ids.min() < 0 or ids.max() >= n):
        bad = ids.min() if ids.min() < 0 else ids.max()
        raise IndexError(f"embedding: id {bad} is outside the table of {n} rows [0, {n})")
    return fused.Embedding.apply(weight, ids=ids, padding_idx=padding_idx)


def layer_norm(x: Tensor, weight: Tensor | None = None, bias: Tensor | None = None, eps: float = 1e-5,
               normalized_ndim: int | None = None) -> Tensor:
    """Normalise over the trailing axes that ``weight`` covers (the last axis if no weight)."""
    params, ndim = _layer_norm_params("layer_norm", weight, bias, normalized_ndim)
    return fused.LayerNorm.apply(x, *params, ndim=ndim, eps=eps)


def add_layer_norm(x: Tensor, y: Tensor, weight: Tensor | None = None, bias: Tensor | None = None,
                   eps: float = 1e-5, normalized_ndim: int | None = None) -> Tensor:
    """``layer_norm(x + y)`` as one op: the residual add and norm of a post-norm Transformer layer."""
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


# ---------------------------------------------------------------- attention and masks

def scaled_dot_product_attention(q: Tensor, k: Tensor, v: Tensor, mask: Any = None, dropout_p: float = 0.0,
                                 training: bool = True, return_weights: bool = False,
                                 num_heads: int | None = None) -> Any:
    """softmax(q k^T / sqrt(d) + mask) v.

    ``mask`` is additive (0 where allowed, -1e9 where hidden, as the tutorials build it)
    or boolean (True where allowed, like PyTorch); it must broadcast to the scores
    ``(..., T_q, T_k)``. With ``return_weights`` the attention weights come back too.
    With ``num_heads``, q (B, T_q, H), k and v (B, T_k, H) are split into that many heads of
    size d = H / num_heads (k and v may come already split, (B, heads, T_k, d)), the scores are
    (B, heads, T_q, T_k) and the heads' outputs are concatenated back to (B, T_q, H).
    """
    qs, ks, vs = (_heads_shape(name, t, num_heads) for name, t in (("queries", q), ("keys", k), ("values", v)))
    if qs[-1] != ks[-1] or ks[-2] != vs[-2] or (num_heads and not qs[0] == ks[0] == vs[0]):
        raise ValueError(f"attention: queries {q.shape}, keys {k.shape} and values {v.shape} need the same "
                         f"feature size for queries and keys, the same length for keys and values"
                         f"{' and the same batch size' if num_heads else ''}")
    batch = _broadcast_shapes(qs[:-2], ks[:-2])
    if batch is None:
        raise ValueError(f"attention: the batch axes of queries {q.shape} and keys {k.shape} cannot broadcast")
    inputs, constant = [q, k], _attention_mask(mask, batch + (qs[-2], ks[-2]))
    if _mask_needs_grad(mask):
        inputs.append(mask)
        constant = None
    weights = fused_attention.AttentionWeights.apply(*inputs, mask=constant, scale=1 / math.sqrt(qs[-1]),
                                                     heads=num_heads)
    dropped = dropout(weights, dropout_p, training)
    out = dropped @ v if num_heads is None else fused_attention.AttendValues.apply(dropped, v, heads=num_heads)
    return (out, weights) if return_weights else out


def multi_head_attention(x: Tensor, memory: Tensor, params: Sequence[Tensor], num_heads: int, mask: Any = None,
                         dropout_p: float = 0.0, training: bool = True) -> tuple[Tensor, np.ndarray]:
    """Multi-head attention as one node: queries from x, keys and values from memory (pass the same
    tensor for self-attention), ``params`` = (wq, bq, wk, bk, wv, bv, wo, bo) of the four projections.

    ``mask`` is a constant additive or boolean mask as for ``scaled_dot_product_attention``. Returns
    the output (B, T_q, H) and the attention weights (B, num_heads, T_q, T_k) as an ndarray.
    """
    h = params[0].shape[1]
    if x.ndim != 3 or memory.ndim != 3 or x.shape[0] != memory.shape[0] or x.shape[2] != h or memory.shape[2] != h:
        raise ValueError(f"multi_head_attention: queries of shape {x.shape} and keys/values of shape {memory.shape} "
                         f"need (B, T, {h}) with the same B")
    if _mask_needs_grad(mask):
        raise ValueError("multi_head_attention: the mask must be a constant (use scaled_dot_product_attention "
                         "for a mask that needs a gradient)")
    constant = _attention_mask(mask, (x.shape[0], num_heads, x.shape[1], memory.shape[1]))
    inputs = (x,) if memory is x else (x, memory)
    out, ctx = fused_blocks.MultiHeadAttention.apply_with_ctx(
        *inputs, *params, mask=constant, heads=num_heads, dropout_p=dropout_p if training else 0.0)
    return out, ctx.weights


def _attention_mask(mask: Any, scores_shape: tuple) -> np.ndarray | None:
    """The mask as an array, checked to broadcast to the scores' shape."""
    if mask is None:
        return None
    m = mask.data if isinstance(mask, Tensor) else np.asarray(mask)
    if _broadcast_shapes(m.shape, scores_shape) != scores_shape:
        raise ValueError(f"attention: mask of shape {m.shape} does not broadcast to scores of shape {scores_shape}")
    return m


def _mask_needs_grad(mask: Any) -> bool:
    # An additive float mask can be trained; any other mask is a constant, added in the scores' dtype.
    return getattr(mask, "requires_grad", False) and mask.dtype != bool


def _broadcast_shapes(a: tuple, b: tuple) -> tuple | None:
    """The shape that arrays of shapes ``a`` and ``b`` broadcast to, or None (np.broadcast_shapes, 5x faster)."""
    n = max(len(a), len(b))
    out = []
    for x, y in zip((1,) * (n - len(a)) + a, (1,) * (n - len(b)) + b):
        if x != y and x != 1 and y != 1:
            return None
        out.append(y if x == 1 else x)
    return tuple(out)


def _heads_shape(name: str, t: Tensor, num_heads: int | None) -> tuple:
    """The shape ``t`` has as attention sees it: (B, heads, T, d) when split into ``num_heads`` heads."""
    if num_heads is None:
        if t.ndim < 2:
            raise ValueError(f"attention: {name} of shape {t.shape} need at least 2 dimensions (..., T, d)")
        return t.shape
    if t.ndim == 4 and t.shape[1] == num_heads:
        return t.shape
    if t.ndim != 3 or t.shape[-1] % num_heads:
        raise ValueError(f"attention: {name} of shape {t.shape} cannot be split into {num_heads} heads: "
                         f"(B, T, H) with H divisible by {num_heads}, or (B, {num_heads}, T, d), expected")
    b, n, h = t.shape
    return b, num_heads, n, h // num_heads


def create_padding_mask(seq: Any, pad_token_id: int = 0) -> Tensor:
    """Additive mask (B, 1, 1, T): -1e9 at padding positions, 0 elsewhere."""
    seq = np.asarray(seq.data if isinstance(seq, Tensor) else seq)
    mask = (seq == pad_token_id)[:, None, None, :]
    return Tensor(np.where(mask, MASK_VALUE, 0.0).astype(get_default_dtype()))


def create_causal_mask(size: int) -> Tensor:
    """Additive mask (1, 1, size, size): -1e9 above the diagonal (future positions), 0 elsewhere."""
    upper = np.triu(np.ones((size, size), dtype=bool), k=1)
    return Tensor(np.where(upper, MASK_VALUE, 0.0).astype(get_default_dtype())[None, None])


# ---------------------------------------------------------------- losses

def _check_reduction(name: str, reduction: str) -> None:
    if reduction not in ("mean", "sum", "none"):
        raise ValueError(f"{name}: reduction must be 'mean', 'sum' or 'none', got {reduction!r}")


def _check_targets(name: str, target: np.ndarray, num_classes: int, ignore_index: int | None,
                   reduction: str) -> None:
    _check_reduction(name, reduction)
    if target.dtype.kind not in "iu":
        raise TypeError(f"{name}: targets must be integers, got dtype {target.dtype}")
    bad = (target < 0) | (target >= num_classes)
    if ignore_index is not None:
        bad &= target != ignore_index
    if bad.any():
        raise IndexError(f"{name}: target value {target[bad].flat[0]} is outside [0, {num_classes})")


def cross_entropy(logits: Tensor, target: Any, ignore_index: int | None = None, label_smoothing: float = 0.0,
                  reduction: str = "mean") -> Tensor:
    """Softmax cross-entropy of logits (..., C) against integer targets (...)."""
    t = np.asarray(target.data if isinstance(target, Tensor) else target)
    if logits.shape[:-1] != t.shape:
        raise ValueError(f"cross_entropy: logits of shape {logits.shape} need targets of shape "
                         f"{logits.shape[:-1]}, got {t.shape}")
    _check_targets("cross_entropy", t, logits.shape[-1], ignore_index, reduction)
    return fused.CrossEntropy.apply(logits, target=t, ignore_index=ignore_index,
                                    label_smoothing=label_smoothing, reduction=reduction)


def nll_loss(log_probs: Tensor, target: Any, ignore_index: int | None = None, reduction: str = "mean") -> Tensor:
    """Negative log-likelihood of log-probabilities (..., C) at integer targets (...)."""
    t = np.asarray(target.data if isinstance(target, Tensor) else target)
    if log_probs.shape[:-1] != t.shape:
        raise ValueError(f"nll_loss: log-probabilities of shape {log_probs.shape} need targets of shape "
                         f"{log_probs.shape[:-1]}, got {t.shape}")
    _check_targets("nll_loss", t, log_probs.shape[-1], ignore_index, reduction)
    valid = np.ones(t.shape, bool) if ignore_index is None else t != ignore_index
    picked = log_probs.reshape(-1, log_probs.shape[-1])[np.arange(t.size), np.where(valid, t, 0).ravel()]
    losses = -picked * valid.ravel().astype(log_probs.dtype)
    if reduction == "none":
        return losses.reshape(t.shape)
    return losses.sum() * (1 / max(int(valid.sum()), 1)) if reduction == "mean" else losses.sum()


def _reduce(name: str, loss: Tensor, reduction: str) -> Tensor:
    _check_reduction(name, reduction)
    return loss.mean() if reduction == "mean" else (loss.sum() if reduction == "sum" else loss)


def mse_loss(input: Tensor, target: Any, reduction: str = "mean") -> Tensor:
    target = input._lift(target)
    if input.shape != target.shape:
        raise ValueError(f"mse_loss: input of shape {input.shape} and target of shape {target.shape} differ")
    diff = input - target
    return _reduce("mse_loss", diff * diff, reduction)


def binary_cross_entropy(input: Tensor, target: Any, reduction: str = "mean") -> Tensor:
    """Binary cross-entropy of probabilities ``input`` in [0, 1]."""
    target = input._lift(target)
    if input.shape != target.shape:
        raise ValueError(f"binary_cross_entropy: input of shape {input.shape} and target of shape "
                         f"{target.shape} differ")
    if ((input.data < 0) | (input.data > 1)).any():
        raise ValueError("binary_cross_entropy: input probabilities must lie in [0, 1]")
    _check_reduction("binary_cross_entropy", reduction)
    return fused.BinaryCrossEntropy.apply(input, target, reduction=reduction)


def binary_cross_entropy_with_logits(input: Tensor, target: Any, reduction: str = "mean") -> Tensor:
    """Binary cross-entropy on logits (sigmoid folded in, stable at any magnitude)."""
    target = input._lift(target)
    if input.shape != target.shape:
        raise ValueError(f"binary_cross_entropy_with_logits: input of shape {input.shape} and target of "
                         f"shape {target.shape} differ")
    _check_reduction("binary_cross_entropy_with_logits", reduction)
    return fused.BCEWithLogits.apply(input, target, reduction=reduction)
