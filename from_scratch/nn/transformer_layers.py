"""The Transformer's building blocks: positional encoding, feed-forward, encoder and decoder layers.

The layers follow ``torch.nn.TransformerEncoderLayer``/``TransformerDecoderLayer`` (ReLU
feed-forward, the same dropout placement and sub-layer names), so weights copy across by name.
"""
from __future__ import annotations

import math
from typing import Any, Callable

import numpy as np

from .. import functional as F
from ..autograd.tensor import Tensor, get_default_dtype
from ..functional.inputs import as_tensor
from .attention import MultiHeadAttention
from .dropout import Dropout
from .linear import Linear
from .module import Module
from .normalization import LayerNorm


class PositionalEncoding(Module):
    """Add the sinusoidal position signal of "Attention Is All You Need" (a buffer, never trained).

    pe[pos, 2i] = sin(pos / 10000^(2i / H)),  pe[pos, 2i + 1] = cos(pos / 10000^(2i / H)).

    Shape: x (..., T, hidden_size) -> same, positions ``start .. start + T - 1``.
    """

    def __init__(self, hidden_size: int, max_len: int = 5000):
        super().__init__()
        self.hidden_size, self.max_len = hidden_size, max_len
        # Built once on the host in float64, like every layer's state (it moves with .to(device)).
        pos = np.arange(max_len)[:, None]  # host
        inv_freq = np.exp(np.arange(0, hidden_size, 2) * (-math.log(10000.0) / hidden_size))  # host
        pe = np.zeros((max_len, hidden_size))  # host
        pe[:, 0::2] = np.sin(pos * inv_freq)
        pe[:, 1::2] = np.cos(pos * inv_freq)[:, :hidden_size // 2]
        self.register_buffer("pe", Tensor(pe.astype(get_default_dtype())))

    def forward(self, x: Tensor, start: int = 0) -> Tensor:
        x = as_tensor(x, "PositionalEncoding")
        end = start + x.shape[-2]
        if end > self.max_len:
            raise ValueError(f"PositionalEncoding: a sequence of length {end} is longer than "
                             f"max_len {self.max_len}")
        return x + self.pe.data[start:end]

    def extra_repr(self) -> str:
        return f"{self.hidden_size}, max_len={self.max_len}"


class FeedForward(Module):
    """Position-wise feed-forward: linear2(dropout(relu(linear1(x)))).

    Shape: (..., hidden_size) -> (..., hidden_size).
    """

    def __init__(self, hidden_size: int, ff_size: int, dropout: float = 0.0):
        super().__init__()
        self.linear1 = Linear(hidden_size, ff_size)
        self.linear2 = Linear(ff_size, hidden_size)
        self.dropout = dropout  # on the hidden units, after the ReLU

    def forward(self, x: Tensor) -> Tensor:
        return F.feed_forward(x, self.linear1.weight, self.linear1.bias, self.linear2.weight, self.linear2.bias,
                              self.dropout, self.training)

    def extra_repr(self) -> str:
        return f"dropout={self.dropout}"


def _sublayer(x: Tensor, norm: LayerNorm, dropout: Dropout, fn: Callable[[Tensor], Tensor],
              norm_first: bool) -> Tensor:
    # The residual "Add & Norm" around a sub-layer: pre-norm x + f(norm(x)), post-norm norm(x + f(x)),
    # the latter's add and norm fused into one op.
    if norm_first:
        return x + dropout(fn(norm(x)))
    return F.add_layer_norm(x, dropout(fn(x)), norm.weight, norm.bias, norm.eps, len(norm.normalized_shape))


class _ResidualLayer(Module):
    """What an encoder and a decoder layer hold, in PyTorch's order: their attentions (``attentions``
    names them), the feed-forward block, then ``norm1``, ``norm2``, ... and ``dropout1``, ``dropout2``,
    ..., one of each per sub-layer (the attentions and the feed-forward block)."""

    attentions: tuple[str, ...] = ()

    def __init__(self, hidden_size: int, num_heads: int, ff_size: int, dropout: float = 0.0,
                 norm_first: bool = False):
        super().__init__()
        self.norm_first = norm_first
        for name in self.attentions:
            setattr(self, name, MultiHeadAttention(hidden_size, num_heads, dropout))
        self.feed_forward = FeedForward(hidden_size, ff_size, dropout)
        sublayers = range(1, len(self.attentions) + 2)
        for i in sublayers:
            setattr(self, f"norm{i}", LayerNorm(hidden_size))
        for i in sublayers:
            setattr(self, f"dropout{i}", Dropout(dropout))


class EncoderLayer(_ResidualLayer):
    """Self-attention, then feed-forward, each wrapped in a residual connection and LayerNorm.

    ``norm_first=True`` normalises before each sub-layer (pre-norm) instead of after (post-norm).

    Shape: x (B, S, hidden_size), mask broadcastable to (B, heads, S, S) -> (B, S, hidden_size).
    """

    attentions = ("self_attn",)

    def forward(self, x: Tensor, mask: Any = None) -> Tensor:
        x = _sublayer(x, self.norm1, self.dropout1, lambda h: self.self_attn(h, mask=mask), self.norm_first)
        return _sublayer(x, self.norm2, self.dropout2, self.feed_forward, self.norm_first)


class DecoderLayer(_ResidualLayer):
    """Masked self-attention, attention over the encoder output (``cross_attn``), then feed-forward.

    With a ``cache`` dict (one per layer, see ``Transformer.init_cache``) ``x`` holds only the
    newest target positions: their keys and values are appended to ``cache["self_k"/"self_v"]``
    and the encoder output is projected once into ``cache["memory_k"/"memory_v"]``.

    Shape: x (B, T, hidden_size), memory (B, S, hidden_size), tgt_mask broadcastable to
    (B, heads, T, T), src_mask to (B, heads, T, S) -> (B, T, hidden_size).
    """

    attentions = ("self_attn", "cross_attn")

    def _self_attend(self, h: Tensor, mask: Any, cache: dict | None) -> Tensor:
        if cache is None:  # the whole target at once
            return self.self_attn(h, mask=mask)
        k, v = self.self_attn.project_kv(h, h)  # the newest positions only
        if "self_k" in cache:  # they join the keys and values of those before
            k, v = Tensor.cat([cache["self_k"], k], axis=2), Tensor.cat([cache["self_v"], v], axis=2)
        cache["self_k"], cache["self_v"] = k, v
        return self.self_attn.attend(h, k, v, mask=mask)

    def _cross_attend(self, h: Tensor, memory: Tensor, mask: Any, cache: dict | None) -> Tensor:
        if cache is None:
            return self.cross_attn(h, memory, mask=mask)
        if "memory_k" not in cache:  # the encoder output is fixed: project it once
            cache["memory_k"], cache["memory_v"] = self.cross_attn.project_kv(memory, memory)
        return self.cross_attn.attend(h, cache["memory_k"], cache["memory_v"], mask=mask)

    def forward(self, x: Tensor, memory: Tensor, src_mask: Any = None, tgt_mask: Any = None,
                cache: dict | None = None) -> Tensor:
        x = _sublayer(x, self.norm1, self.dropout1, lambda h: self._self_attend(h, tgt_mask, cache), self.norm_first)
        x = _sublayer(x, self.norm2, self.dropout2, lambda h: self._cross_attend(h, memory, src_mask, cache),
                      self.norm_first)
        return _sublayer(x, self.norm3, self.dropout3, self.feed_forward, self.norm_first)
