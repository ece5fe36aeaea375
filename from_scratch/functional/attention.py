"""Attention and its masks: scaled dot-product and multi-head attention, padding and causal masks.

Read ``scaled_dot_product_attention_simple`` and ``multi_head_attention_simple`` first: attention as the
paper writes it, composed from primitive ops. The public functions check their inputs and run the fused
fast paths (``autograd/fused_attention.py``, ``autograd/fused_blocks.py``) unless ``use_fused(False)``.
"""
from __future__ import annotations

import math
from typing import Any, Sequence

import numpy as np

from .. import backend
from ..autograd import fused_attention, fused_blocks
from ..autograd.tensor import Tensor, get_default_dtype, where
from ..random import dropout_scale
from .activation import softmax_simple
from .fastpath import fused_enabled
from .inputs import as_tensor, constant
from .linear import dropout, linear_simple

__all__ = ["scaled_dot_product_attention", "multi_head_attention", "scaled_dot_product_attention_simple",
           "multi_head_attention_simple", "split_heads", "merge_heads", "create_padding_mask",
           "create_causal_mask", "MASK_VALUE"]

MASK_VALUE = fused_attention.MASK_VALUE  # the tutorials' additive mask value for hidden positions


def split_heads(x: Tensor, num_heads: int) -> Tensor:
    """(B, T, H) -> (B, heads, T, H / heads): each head sees its own slice of the features."""
    b, t, h = x.shape
    return x.reshape(b, t, num_heads, h // num_heads).permute(0, 2, 1, 3)


def merge_heads(x: Tensor) -> Tensor:
    """(B, heads, T, d) -> (B, T, heads * d): the heads' outputs side by side, the inverse of ``split_heads``."""
    b, n, t, d = x.shape
    return x.permute(0, 2, 1, 3).reshape(b, t, n * d)


def scaled_dot_product_attention_simple(q: Tensor, k: Tensor, v: Tensor, mask: Any = None, dropout_p: float = 0.0,
                                        training: bool = True) -> tuple[Tensor, Tensor]:
    """softmax(q k^T / sqrt(d) + mask) v, and the weights: the plain version (Vaswani et al., 2017, eq. 1).

    Shapes: q (..., T_q, d), k (..., T_k, d), v (..., T_k, d_v), mask broadcasting to (..., T_q, T_k)
    -> (..., T_q, d_v) and weights (..., T_q, T_k).
    """
    # Dot products grow like sqrt(d): dividing by it keeps the softmax out of its flat, gradient-less tails.
    scores = q @ k.transpose(-2, -1) * (1 / math.sqrt(q.shape[-1]))
    if mask is not None and mask.dtype == bool:  # True where allowed: hidden scores become -inf
        scores = where(mask, scores, -np.inf)
    elif mask is not None:  # additive: 0 where allowed, -inf (or the tutorials' -1e9) where hidden
        scores = scores + mask
    # A query that may see no key (every score -inf) gets weights 0, so output and gradients 0
    # (PyTorch's rule): its softmax runs on zeros instead of 0/0, and is then replaced by 0.
    blind = None if mask is None else (scores.data == -np.inf).all(axis=-1, keepdims=True)
    if blind is not None and blind.any():
        weights = where(blind, 0.0, softmax_simple(where(blind, 0.0, scores), -1))
    else:
        weights = softmax_simple(scores, -1)  # each query's weights over the keys sum to 1
    return dropout(weights, dropout_p, training) @ v, weights


def multi_head_attention_simple(query: Tensor, key: Tensor | None, value: Tensor | None, params: Sequence[Tensor],
                                num_heads: int, mask: Any = None, dropout_p: float = 0.0,
                                training: bool = True) -> tuple[Tensor, Tensor]:
    """Multi-head attention, the plain version: ``params`` = (wq, bq, wk, bk, wv, bv, wo, bo).
    ``key=None``: keys and values come from ``query`` (self-attention); ``value=None``: values from ``key``.

    Shapes: query (B, T_q, H), key and value (B, T_k, H) -> (B, T_q, H) and weights (B, heads, T_q, T_k).
    """
    key = query if key is None else key
    value = key if value is None else value
    wq, bq, wk, bk, wv, bv, wo, bo = params
    # 1) Project queries, keys and values, and split each into heads of H / heads features.
    q, k, v = (split_heads(linear_simple(x, w, b), num_heads) for x, w, b in
               ((query, wq, bq), (key, wk, bk), (value, wv, bv)))
    # 2) Scaled dot-product attention in every head at once: (B, heads, T_q, d).
    out, weights = scaled_dot_product_attention_simple(q, k, v, mask, dropout_p, training)
    # 3) Concatenate the heads and mix them with the output projection.
    return linear_simple(merge_heads(out), wo, bo), weights


def scaled_dot_product_attention(q: Tensor, k: Tensor, v: Tensor, mask: Any = None, dropout_p: float = 0.0,
                                 training: bool = True, return_weights: bool = False,
                                 num_heads: int | None = None) -> Any:
    """softmax(q k^T / sqrt(d) + mask) v; ``scaled_dot_product_attention_simple`` is the definition.

    ``mask`` is additive (0 where allowed, -1e9 or -inf where hidden, as the tutorials build it)
    or boolean (True where allowed, as in PyTorch's ``scaled_dot_product_attention``); it must
    broadcast to the scores ``(..., T_q, T_k)``. With ``return_weights`` the attention weights
    come back too.

    Fully masked rows, on every attention path (this function, ``nn.MultiHeadAttention`` fused or
    not, the cached decoder): a query whose keys are all hidden by False or -inf gets weights 0,
    output 0 and gradients 0, never NaN (PyTorch's SDPA rule). -1e9 is a finite score: a row
    hidden only by -1e9 is not zeroed (softmax ignores a common shift), as in PyTorch.
    With ``num_heads``, q (B, T_q, H), k and v (B, T_k, H) are split into that many heads of
    size d = H / num_heads (k and v may come already split, (B, heads, T_k, d)), the scores are
    (B, heads, T_q, T_k) and the heads' outputs are concatenated back to (B, T_q, H).

    Fast path (``fused_attention.AttentionWeights`` and ``AttendValues``): the weights one node and
    weights @ values another, heads split and merged as views, instead of about ten nodes.
    """
    q, k, v = (as_tensor(t, "attention", name) for t, name in ((q, "queries"), (k, "keys"), (v, "values")))
    qs, ks, vs = (_heads_shape(name, t, num_heads) for name, t in (("queries", q), ("keys", k), ("values", v)))
    if qs[-1] != ks[-1] or ks[-2] != vs[-2] or (num_heads and not qs[0] == ks[0] == vs[0]):
        raise ValueError(f"attention: queries {q.shape}, keys {k.shape} and values {v.shape} need the same "
                         f"feature size for queries and keys, the same length for keys and values"
                         f"{' and the same batch size' if num_heads else ''}")
    batch = _broadcast_shapes(qs[:-2], ks[:-2])
    if batch is None:
        raise ValueError(f"attention: the batch axes of queries {q.shape} and keys {k.shape} cannot broadcast")
    if _mask_needs_grad(mask):
        inputs, fixed = [q, k, mask], None
    else:
        inputs, fixed = [q, k], _attention_mask(q, mask, batch + (qs[-2], ks[-2]))
    if not fused_enabled():
        if num_heads is not None:
            q, k, v = (split_heads(t, num_heads) if t.ndim == 3 else t for t in (q, k, v))
        out, weights = scaled_dot_product_attention_simple(q, k, v, mask if fixed is None else fixed,
                                                           dropout_p, training)
        out = out if num_heads is None else merge_heads(out)
        return (out, weights) if return_weights else out
    weights = fused_attention.AttentionWeights.apply(*inputs, mask=fixed, scale=1 / math.sqrt(qs[-1]),
                                                     heads=num_heads)
    dropped = dropout(weights, dropout_p, training)
    out = dropped @ v if num_heads is None else fused_attention.AttendValues.apply(dropped, v, heads=num_heads)
    return (out, weights) if return_weights else out


def multi_head_attention(query: Tensor, key: Tensor | None, value: Tensor | None, params: Sequence[Tensor],
                         num_heads: int, mask: Any = None, dropout_p: float = 0.0, training: bool = True,
                         need_weights: bool = False) -> tuple[Tensor, Tensor]:
    """Multi-head attention; ``multi_head_attention_simple`` is the definition. ``params`` = (wq, bq,
    wk, bk, wv, bv, wo, bo) of the four projections; ``key=None`` is self-attention (keys and values
    from ``query``), ``value=None`` takes the values from ``key`` (attention over an encoder's output).

    ``mask`` is additive or boolean as for ``scaled_dot_product_attention``, broadcasting to
    (B, num_heads, T_q, T_k). Returns the output (B, T_q, H) and the weights (B, heads, T_q, T_k):
    differentiable with ``need_weights=True``, else a constant Tensor.

    Fast path (``fused_blocks.MultiHeadAttention``): one node instead of about fifteen, the projections
    of a shared input packed into one product (which is what ``key=None``/``value=None`` tell it); one
    self-attention forward + backward 0.40 ms against 0.67 ms plain (16x10x64, 4 heads). It serves
    every call except ``need_weights=True`` and a mask that needs a gradient.
    """
    query = as_tensor(query, "multi_head_attention", "query")
    key = None if key is None else as_tensor(key, "multi_head_attention", "key")
    value = None if value is None else as_tensor(value, "multi_head_attention", "value")
    memory = query if key is None else key
    h = params[0].shape[1]
    given = [t for t in (query, key, value) if t is not None]
    if any(t.ndim != 3 or t.shape[0] != query.shape[0] or t.shape[2] != h for t in given):
        raise ValueError(f"multi_head_attention: queries of shape {query.shape}, keys of shape "
                         f"{memory.shape} and values of shape {(memory if value is None else value).shape} "
                         f"need (B, T, {h}) with one B")
    if value is not None and value.shape[1] != memory.shape[1]:
        raise ValueError(f"multi_head_attention: keys of shape {memory.shape} and values of shape {value.shape} "
                         f"differ in length")
    fixed = _attention_mask(query, mask, (query.shape[0], num_heads, query.shape[1], memory.shape[1]))
    if need_weights or _mask_needs_grad(mask) or not fused_enabled():
        out, weights = multi_head_attention_simple(query, key, value, params, num_heads,
                                                   mask if _mask_needs_grad(mask) else fixed, dropout_p, training)
        return out, (weights if need_weights else weights.detach())
    sources, groups = ((query,), (3,)) if key is None else ((query, key), (1, 2)) if value is None else \
        ((query, key, value), (1, 1, 1))
    weights_shape = (query.shape[0], num_heads, query.shape[1], memory.shape[1])
    keep = dropout_scale(weights_shape, dropout_p, query.dtype, query.data) if training else None
    out, ctx = fused_blocks.MultiHeadAttention.apply_with_ctx(*sources, *params, groups=groups, mask=fixed,
                                                              heads=num_heads, keep=keep)
    return out, Tensor(ctx.weights, dtype=ctx.weights.dtype)


def _attention_mask(q: Tensor, mask: Any, scores_shape: tuple) -> np.ndarray | None:
    """The mask as an array on the queries' device (RuntimeError if it is on another), checked to broadcast
    to the scores' shape."""
    if mask is None:
        return None
    m = constant(q, mask, "attention", "mask")
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


def create_padding_mask(seq: Any, pad_token_id: int = 0, device: Any = None) -> Tensor:
    """Additive mask (B, 1, 1, T) from token ids ``seq`` (B, T): -1e9 at padding positions, 0 elsewhere.
    Made on ``seq``'s device (a list or NumPy array: the CPU), or on ``device`` if given (a copy of ``seq``
    goes there first)."""
    ids = seq.data if isinstance(seq, Tensor) else seq
    ids = ids if backend.is_array(ids) else np.asarray(ids)  # host: a list, moved to ``device`` if given
    if device is not None:
        ids = backend.to_device(ids, device)
    mask = (ids == pad_token_id)[:, None, None, :]
    return Tensor(np.where(mask, MASK_VALUE, 0.0).astype(get_default_dtype()))


def create_causal_mask(size: int, device: Any = None) -> Tensor:
    """Additive mask (1, 1, size, size): -1e9 above the diagonal (future positions), 0 elsewhere, made on
    ``device`` (the CPU by default)."""
    xp = backend.device_module(device or "cpu")
    upper = xp.triu(xp.ones((size, size), dtype=bool), k=1)
    return Tensor(xp.where(upper, MASK_VALUE, 0.0).astype(get_default_dtype())[None, None])
