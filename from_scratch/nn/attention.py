"""Attention: scaled dot-product attention and multi-head attention."""
from __future__ import annotations

from typing import Any

from .. import functional as F
from ..autograd.tensor import Tensor
from . import init
from .linear import Linear
from .module import Module


class ScaledDotProductAttention(Module):
    """softmax(q k^T / sqrt(d) + mask) v, with dropout on the attention weights while training.

    ``mask`` is additive (0 where allowed, -1e9 or -inf where hidden) or boolean (True where
    allowed). A query with every key hidden (False or -inf) gets output 0 and gradient 0.

    Shape: q (..., T_q, d), k (..., T_k, d), v (..., T_k, d_v) -> (..., T_q, d_v).
    """

    def __init__(self, dropout: float = 0.0):
        super().__init__()
        self.dropout = dropout

    def forward(self, q: Tensor, k: Tensor, v: Tensor, mask: Any = None, return_weights: bool = False) -> Any:
        return F.scaled_dot_product_attention(q, k, v, mask, self.dropout, self.training, return_weights)

    def extra_repr(self) -> str:
        return f"dropout={self.dropout}"


class MultiHeadAttention(Module):
    """Attend with ``num_heads`` heads in parallel, each on its own hidden_size / num_heads slice:
    ``F.multi_head_attention`` with the parameters of ``q_linear``, ``k_linear``, ``v_linear`` and ``fc``.

    Leave out ``k`` and ``v`` for self-attention (keys and values from ``q``), or ``v`` alone for
    attention over an encoder's output (values from ``k``): the fast path then packs the projections
    of the shared input into one product.

    ``mask`` must broadcast to (B, num_heads, T_q, T_k): the tutorials' additive padding mask
    (B, 1, 1, T_k), causal mask (1, 1, T_q, T_k) or their sum (B, 1, T_q, T_k) (0 where allowed,
    -1e9 or -inf where hidden), or a boolean mask with **True where a query MAY attend**, as in
    PyTorch's ``F.scaled_dot_product_attention``. This is the opposite of ``torch.nn.MultiheadAttention``,
    whose ``attn_mask``/``key_padding_mask`` take True where attending is NOT allowed: pass ``~mask``
    for a mask written for that layer. A query with every key hidden (False or -inf) gets output
    0 and gradient 0 (PyTorch's SDPA rule), on the fused path and the unfused one alike.
    The attention weights of the last call are kept in ``attn_weights`` (an array of shape
    (B, num_heads, T_q, T_k), on the layer's device); ``return_weights=True`` also returns them as a
    differentiable Tensor.

    Shape: q (B, T_q, hidden_size), k and v (B, T_k, hidden_size) -> (B, T_q, hidden_size).
    """

    def __init__(self, hidden_size: int, num_heads: int, dropout: float = 0.0):
        super().__init__()
        if num_heads <= 0 or hidden_size % num_heads:
            raise ValueError(f"MultiHeadAttention: hidden_size {hidden_size} is not divisible by "
                             f"num_heads {num_heads}")
        self.hidden_size, self.num_heads, self.dropout = hidden_size, num_heads, dropout
        self.head_dim = hidden_size // num_heads
        self.q_linear = Linear(hidden_size, hidden_size)
        self.k_linear = Linear(hidden_size, hidden_size)
        self.v_linear = Linear(hidden_size, hidden_size)
        self.fc = Linear(hidden_size, hidden_size)
        self.attn_weights: Any = None  # an array on the layer's device
        self.reset_parameters()

    def reset_parameters(self) -> None:
        # As torch.nn.MultiheadAttention: Xavier-uniform input projections, zero biases.
        for lin in (self.q_linear, self.k_linear, self.v_linear):
            init.xavier_uniform_(lin.weight)
        for lin in (self.q_linear, self.k_linear, self.v_linear, self.fc):
            init.zeros_(lin.bias)

    def forward(self, q: Tensor, k: Tensor | None = None, v: Tensor | None = None, mask: Any = None,
                return_weights: bool = False) -> Any:
        params = [p for lin in (self.q_linear, self.k_linear, self.v_linear, self.fc) for p in (lin.weight, lin.bias)]
        out, weights = F.multi_head_attention(q, k, v, params, self.num_heads, mask, self.dropout, self.training,
                                              need_weights=return_weights)
        self.attn_weights = weights.data
        return (out, weights) if return_weights else out

    # ------------------------------------------------------------ incremental decoding
    def project_kv(self, k: Tensor, v: Tensor) -> tuple[Tensor, Tensor]:
        """Project keys and values and split them into heads: (B, T_k, H) -> (B, heads, T_k, H / heads).

        Incremental decoding caches these, so each key/value position is projected once.
        """
        if k.shape[:2] != v.shape[:2]:
            raise ValueError(f"MultiHeadAttention: keys of shape {k.shape} and values of shape {v.shape} "
                             f"differ in batch or length")
        return F.split_heads(self.k_linear(k), self.num_heads), F.split_heads(self.v_linear(v), self.num_heads)

    def attend(self, q: Tensor, k_proj: Tensor, v_proj: Tensor, mask: Any = None) -> Tensor:
        """Attend from queries q (B, T_q, H) to keys and values already projected by ``project_kv``."""
        if q.ndim != 3 or q.shape[0] != k_proj.shape[0]:
            raise ValueError(f"MultiHeadAttention: queries of shape {q.shape} need (B, T_q, {self.hidden_size}) "
                             f"with the keys' batch size {k_proj.shape[0]}")
        out, weights = F.scaled_dot_product_attention(self.q_linear(q), k_proj, v_proj, mask, self.dropout,
                                                      self.training, return_weights=True, num_heads=self.num_heads)
        self.attn_weights = weights.data
        return self.fc(out)

    def extra_repr(self) -> str:
        return f"hidden_size={self.hidden_size}, num_heads={self.num_heads}"
