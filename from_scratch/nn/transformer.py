"""The encoder-decoder Transformer, with cached incremental decoding.

Structure and parameter names follow ``torch.nn.Transformer`` (a final LayerNorm on both
stacks), plus the tutorials' shared ``token_embedding``, ``pos_encoding`` and ``final_linear``.
"""
from __future__ import annotations

from typing import Any, Callable

import numpy as np

from .. import backend
from ..autograd.tensor import Tensor, no_grad
from . import init
from .container import ModuleList
from .dropout import Dropout
from .embedding import Embedding
from .linear import Linear
from .module import Module
from .normalization import LayerNorm
from .transformer_layers import DecoderLayer, EncoderLayer, PositionalEncoding

# A decoding cache: one dict per decoder layer holding self_k, self_v (one more position per step)
# and memory_k, memory_v (the encoder output's keys and values), each (B, heads, T, H / heads).
Cache = list[dict[str, Tensor]]


def _hidden_states(name: str, x: Any, embed: Callable | None, start: int = 0) -> Tensor:
    # Integer input is token ids, embedded here; float input is already (B, T, H) hidden states.
    data = x.data if isinstance(x, Tensor) else x if backend.is_array(x) else np.asarray(x)  # host: a list
    if data.dtype.kind in "iu":
        if embed is None:
            raise TypeError(f"{name}: got token ids (dtype {data.dtype}) but has no embedding; pass hidden "
                            f"states (B, T, H) or use the one inside a Transformer")
        if data.ndim != 2:
            raise ValueError(f"{name}: token ids must have shape (B, T), got {data.shape}")
        return embed(data, start)
    return x if isinstance(x, Tensor) else Tensor(data)


class _LayerStack(Module):
    """``num_layers`` layers of ``layer_class`` and a final LayerNorm; ``embed`` embeds token ids."""

    layer_class: type

    def __init__(self, num_layers: int, hidden_size: int, num_heads: int, ff_size: int, dropout: float = 0.0,
                 norm_first: bool = False, embed: Callable | None = None):
        super().__init__()
        self.layers = ModuleList(self.layer_class(hidden_size, num_heads, ff_size, dropout, norm_first)
                                 for _ in range(num_layers))
        self.norm = LayerNorm(hidden_size)
        self.embed = embed  # a plain callable, not a sub-module: its weights belong to the Transformer


class Encoder(_LayerStack):
    """A stack of ``EncoderLayer``s and a final LayerNorm.

    Takes token ids (an integer array or Tensor, embedded with the Transformer's shared
    ``token_embedding`` and ``pos_encoding``) or already-embedded float hidden states.

    Shape: x (B, S) ids or (B, S, hidden_size), mask broadcastable to (B, heads, S, S)
    -> (B, S, hidden_size).
    """

    layer_class = EncoderLayer

    def forward(self, x: Any, mask: Any = None) -> Tensor:
        x = _hidden_states("Encoder", x, self.embed)
        for layer in self.layers:
            x = layer(x, mask)
        return self.norm(x)


class Decoder(_LayerStack):
    """A stack of ``DecoderLayer``s and a final LayerNorm.

    Takes target token ids (embedded like the ``Encoder``'s) or float hidden states. With a
    ``cache`` (``Transformer.init_cache()``), ``x`` holds only the newest positions, which
    are numbered after those already cached.

    Shape: x (B, T) ids or (B, T, hidden_size), encoder_output (B, S, hidden_size),
    src_mask broadcastable to (B, heads, T, S), tgt_mask to (B, heads, T, T) -> (B, T, hidden_size).
    """

    layer_class = DecoderLayer

    def forward(self, x: Any, encoder_output: Tensor, src_mask: Any = None, tgt_mask: Any = None,
                cache: Cache | None = None) -> Tensor:
        if cache is None:
            caches: list = [None] * len(self.layers)
            start = 0
        else:
            if len(cache) != len(self.layers):
                raise ValueError(f"Decoder: the cache has {len(cache)} layers, the decoder {len(self.layers)}")
            caches, start = cache, cache_length(cache)
        x = _hidden_states("Decoder", x, self.embed, start)
        for layer, layer_cache in zip(self.layers, caches):
            x = layer(x, encoder_output, src_mask, tgt_mask, layer_cache)
        return self.norm(x)


def cache_length(cache: Cache) -> int:
    """Return how many target positions a decoding cache holds."""
    return cache[0]["self_k"].shape[2] if cache and "self_k" in cache[0] else 0


class Transformer(Module):
    """The encoder-decoder Transformer of "Attention Is All You Need" over one shared vocabulary.

    Source and target share ``token_embedding``, added to the sinusoidal ``pos_encoding``;
    ``final_linear`` maps decoder states to logits. Every matrix, the embedding table included,
    starts Xavier-uniform, so it trains well with Adam at lr 1e-3 and no warmup.
    ``norm_first=True`` gives the pre-norm variant.

    Masks are additive (0 allowed, -1e9 hidden), e.g. ``create_padding_mask(src)`` (B, 1, 1, S)
    and ``create_padding_mask(tgt) + create_causal_mask(T)`` (B, 1, T, T), or boolean with True
    where attending is allowed (see ``MultiHeadAttention``: the opposite of ``torch.nn.Transformer``'s
    boolean masks). A query with every key hidden by False or -inf gets attention output 0.

    Shape: src (B, S), tgt (B, T) integer ids -> logits (B, T, vocab_size).
    """

    def __init__(self, vocab_size: int, hidden_size: int, num_layers: int, num_heads: int, ff_size: int,
                 max_len: int, dropout: float = 0.0, norm_first: bool = False):
        super().__init__()
        self.vocab_size, self.hidden_size, self.max_len = vocab_size, hidden_size, max_len
        self.token_embedding = Embedding(vocab_size, hidden_size)
        self.pos_encoding = PositionalEncoding(hidden_size, max_len)
        self.dropout = Dropout(dropout)
        args = (num_layers, hidden_size, num_heads, ff_size, dropout, norm_first)
        self.encoder = Encoder(*args, embed=self.embed)
        self.decoder = Decoder(*args, embed=self.embed)
        self.final_linear = Linear(hidden_size, vocab_size)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        # Xavier-uniform on every matrix, as torch.nn.Transformer does, and on the embedding table
        # too, which is used unscaled. Measured on the tutorial's reversal program (3,000 Adam steps
        # at lr 1e-3): the Annotated Transformer's "* sqrt(H)" scale, or N(0, 1) embeddings, let the
        # loss spike above 0.01 on 10-30% of the late steps; small unscaled embeddings reach 0.01 by
        # step ~270 and stay there. Biases and LayerNorms keep their defaults.
        for p in self.parameters():
            if p.ndim > 1:
                init.xavier_uniform_(p)

    def embed(self, ids: Any, start: int = 0) -> Tensor:
        """Embed token ids (B, T): token_embedding + positions start .. start + T - 1, then dropout."""
        return self.dropout(self.pos_encoding(self.token_embedding(ids), start))

    def encode(self, src: Any, src_mask: Any = None) -> Tensor:
        """Run the encoder: src ids (B, S) -> memory (B, S, H)."""
        return self.encoder(src, mask=src_mask)

    def decode(self, tgt: Any, memory: Tensor, src_mask: Any = None, tgt_mask: Any = None) -> Tensor:
        """Run the decoder over a whole target: tgt ids (B, T) -> hidden states (B, T, H)."""
        return self.decoder(tgt, memory, src_mask=src_mask, tgt_mask=tgt_mask)

    def forward(self, src: Any, tgt: Any, src_mask: Any = None, tgt_mask: Any = None) -> Tensor:
        return self.final_linear(self.decode(tgt, self.encode(src, src_mask), src_mask, tgt_mask))

    # ------------------------------------------------------------ incremental decoding
    def init_cache(self) -> Cache:
        """Return an empty decoding cache: one dict per decoder layer, filled by ``decode_step``."""
        return [{} for _ in self.decoder.layers]

    @no_grad()
    def decode_step(self, tokens: Any, memory: Tensor, src_mask: Any, cache: Cache) -> Tensor:
        """Decode one position: tokens (B, 1), the newest token of each row -> logits (B, vocab_size).

        Runs without recording a graph. Each call costs one position: the new token's keys and
        values are appended to ``cache`` and the encoder output's are projected on the first call
        only. The logits equal ``model(src, tgt)[:, -1]`` for the target seen so far.
        """
        shape = np.shape(tokens.data if isinstance(tokens, Tensor) else tokens)
        if len(shape) != 2 or shape[1] != 1:
            raise ValueError(f"decode_step: tokens must have shape (B, 1), got {shape}")
        hidden = self.decoder(tokens, memory, src_mask=src_mask, cache=cache)
        return self.final_linear(hidden[:, -1])

    @staticmethod
    def reorder_cache(cache: Cache, index: Any) -> None:
        """Keep (and reorder) the cache's batch rows ``index`` in place, e.g. for beam search.

        The caller reorders ``memory`` and ``src_mask`` the same way.
        """
        index = index.data if isinstance(index, Tensor) else index
        index = index if backend.is_array(index) else np.asarray(index)  # host: a list of rows
        for layer in cache:
            for key, t in layer.items():  # (the rows, from the host if need be, go where the cache is)
                layer[key] = Tensor._make(t.data[backend.to_device(index, t.device)], False)

    def extra_repr(self) -> str:
        return f"vocab_size={self.vocab_size}, hidden_size={self.hidden_size}, max_len={self.max_len}"
