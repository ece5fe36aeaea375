"""The PyTorch twin of ``from_scratch.nn.Transformer``, for side-by-side benchmarks (torch is a test extra).

``TorchTransformer`` is ``torch.nn.Transformer`` plus the tutorial's shared token embedding, sinusoidal
positional table and output layer; ``twin_of`` builds one with our model's weights.
"""
from __future__ import annotations

import re
import warnings

import numpy as np
import torch


def ours_name(torch_name: str) -> str:
    """Map a torch.nn.Transformer parameter name to ours (``in_proj_*`` maps to a ``{}`` for q, k or v)."""
    name = "pos_encoding.pe" if torch_name == "pe" else torch_name.removeprefix("transformer.")
    name = name.replace("multihead_attn", "cross_attn").replace("out_proj", "fc")
    name = re.sub(r"\blinear([12])\.", r"feed_forward.linear\1.", name)
    if "in_proj_" in name:
        base, kind = name.split(".in_proj_")
        return f"{base}.{{}}_linear.{kind}"
    return name


class TorchTransformer(torch.nn.Module):
    """torch.nn.Transformer with the tutorial's embedding, positional encoding and ``final_linear``."""

    def __init__(self, vocab: int, hidden: int, layers: int, heads: int, ff: int, norm_first: bool,
                 pe: np.ndarray, dtype: torch.dtype = torch.float32):
        super().__init__()
        self.token_embedding = torch.nn.Embedding(vocab, hidden, dtype=dtype)
        self.register_buffer("pe", torch.tensor(pe, dtype=dtype))
        with warnings.catch_warnings():  # nested-tensor notice for norm_first
            warnings.simplefilter("ignore")
            self.transformer = torch.nn.Transformer(hidden, heads, layers, layers, ff, dropout=0.0, batch_first=True,
                                                    norm_first=norm_first, dtype=dtype)
        self.final_linear = torch.nn.Linear(hidden, vocab, dtype=dtype)

    def embed(self, ids: torch.Tensor) -> torch.Tensor:
        return self.token_embedding(ids) + self.pe[:ids.shape[1]]

    def encode(self, src: torch.Tensor, src_pad: torch.Tensor) -> torch.Tensor:
        return self.transformer.encoder(self.embed(src), src_key_padding_mask=src_pad)

    def decode(self, tgt: torch.Tensor, memory: torch.Tensor, src_pad: torch.Tensor,
               tgt_pad: torch.Tensor | None = None) -> torch.Tensor:
        causal = torch.ones(tgt.shape[1], tgt.shape[1], dtype=torch.bool).triu(1)  # True: a future position
        return self.transformer.decoder(self.embed(tgt), memory, tgt_mask=causal, tgt_key_padding_mask=tgt_pad,
                                        memory_key_padding_mask=src_pad)

    def forward(self, src: torch.Tensor, tgt: torch.Tensor, src_pad: torch.Tensor,
                tgt_pad: torch.Tensor | None = None) -> torch.Tensor:
        return self.final_linear(self.decode(tgt, self.encode(src, src_pad), src_pad, tgt_pad))


def twin_of(model, norm_first: bool) -> TorchTransformer:
    """Build the torch twin of our ``Transformer`` ``model`` with the same weights and dtype."""
    dtype = {np.dtype(np.float32): torch.float32, np.dtype(np.float64): torch.float64}[model.final_linear.weight.dtype]
    enc = model.encoder.layers[0]
    twin = TorchTransformer(model.vocab_size, model.hidden_size, len(model.encoder.layers),
                            enc.self_attn.num_heads, enc.feed_forward.linear1.out_features, norm_first,
                            model.pos_encoding.pe.data[:model.max_len], dtype)
    ours = model.state_dict()
    state = {}
    for name, value in twin.state_dict().items():
        key = ours_name(name)
        arr = np.concatenate([ours[key.format(p)] for p in "qkv"]) if "{}" in key else ours[key]
        assert arr.shape == tuple(value.shape), (name, arr.shape, value.shape)
        state[name] = torch.from_numpy(np.array(arr))
    twin.load_state_dict(state)
    return twin
