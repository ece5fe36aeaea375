"""Attention and its masks: scaled dot-product attention, fused multi-head attention, padding and causal masks."""
from __future__ import annotations

import math
from typing import Any, Sequence

import numpy as np

from .. import backend
from ..autograd import fused_attention, fused_blocks
from ..autograd.tensor import Tensor, get_default_dtype
from .inputs import as_tensor, constant
from .linear import dropout

__all__ = ["scaled_dot_product_attention", "multi_head_attention", "create_padding_mask", "create_causal_mask",
           "MASK_VALUE"]

MASK_VALUE = fused_attention.MASK_VALUE  # the tutorials' additive mask value for hidden positions


def scaled_dot_product_attention(q: Tensor, k: Tensor, v: Tensor, mask: Any = None, dropout_p: float = 0.0,
                                 training: bool = True, return_weights: bool = False,
                                 num_heads: int | None = None) -> Any:
    """softmax(q k^T / sqrt(d) + mask) v.

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
    weights = fused_attention.AttentionWeights.apply(*inputs, mask=fixed, scale=1 / math.sqrt(qs[-1]),
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
    same = memory is x
    x = as_tensor(x, "multi_head_attention")
    memory = x if same else as_tensor(memory, "multi_head_attention", "memory")
    h = params[0].shape[1]
    if x.ndim != 3 or memory.ndim != 3 or x.shape[0] != memory.shape[0] or x.shape[2] != h or memory.shape[2] != h:
        raise ValueError(f"multi_head_attention: queries of shape {x.shape} and keys/values of shape {memory.shape} "
                         f"need (B, T, {h}) with the same B")
    if _mask_needs_grad(mask):
        raise ValueError("multi_head_attention: the mask must be a constant (use scaled_dot_product_attention "
                         "for a mask that needs a gradient)")
    fixed = _attention_mask(x, mask, (x.shape[0], num_heads, x.shape[1], memory.shape[1]))
    inputs = (x,) if memory is x else (x, memory)
    out, ctx = fused_blocks.MultiHeadAttention.apply_with_ctx(
        *inputs, *params, mask=fixed, heads=num_heads, dropout_p=dropout_p if training else 0.0)
    return out, ctx.weights


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
