"""Sequence reversal: the token layout, random data, batches with padding masks, input validation.

Token ids, for a vocabulary of size V::

    0         PAD   fills the tail of shorter sequences; the loss ignores it
    1 .. V-3        content: the numbers a user types are the ids
    V-2       SOS   the decoder's first input
    V-1       EOS   ends every target, so the model learns when to stop

For the content ``5 12 7``: source ``5 12 7``, decoder input ``SOS 7 12 5``, target ``7 12 5 EOS``.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np

from ...autograd.tensor import Tensor
from ...functional import create_causal_mask, create_padding_mask

__all__ = ["PAD", "LENGTH_SAMPLING", "TokenLayout", "Batch", "random_sequences", "make_batch", "target_mask",
           "batch_for_step", "parse_tokens"]

PAD = 0


@dataclass(frozen=True)
class TokenLayout:
    """Where PAD, content, SOS and EOS sit in a vocabulary of ``vocab_size`` ids."""

    vocab_size: int = 20

    def __post_init__(self) -> None:
        if self.vocab_size < 4:
            raise ValueError(f"TokenLayout: vocab_size must be at least 4 (PAD, one content id, SOS, EOS), "
                             f"got {self.vocab_size}")

    pad = PAD
    sos = property(lambda self: self.vocab_size - 2)
    eos = property(lambda self: self.vocab_size - 1)
    max_content = property(lambda self: self.vocab_size - 3)

    def to_dict(self) -> dict[str, int]:
        return {"vocab_size": self.vocab_size, "pad": self.pad, "content": [1, self.max_content],
                "sos": self.sos, "eos": self.eos}


@dataclass
class Batch:
    """One padded batch. Shapes: ``src`` (B, S); ``tgt_in`` and ``tgt_out`` (B, S + 1);
    ``src_mask`` (B, 1, 1, S); ``tgt_mask`` (B, 1, S + 1, S + 1): causal and padding together.

    Batches are made on the host from the seeded data (``make_batch``: NumPy ids, CPU mask tensors);
    ``to(device)`` copies the ids and masks to a device once, as Tensors. ``lengths`` stays on the host.
    """

    src: np.ndarray | Tensor
    tgt_in: np.ndarray | Tensor
    tgt_out: np.ndarray | Tensor
    src_mask: Tensor
    tgt_mask: Tensor
    lengths: np.ndarray

    def to(self, device: Any) -> "Batch":
        """This batch with its ids and masks as Tensors on ``device``: five host-to-device copies (none on the CPU)."""
        ids = [Tensor(a, device=device) for a in (self.src, self.tgt_in, self.tgt_out)]
        return Batch(*ids, self.src_mask.to(device), self.tgt_mask.to(device), self.lengths)


LENGTH_SAMPLING = ("uniform", "proportional")


def random_sequences(rng: np.random.Generator, n: int, min_len: int, max_len: int, layout: TokenLayout,
                     length_sampling: str = "uniform") -> list[np.ndarray]:
    """Draw ``n`` content sequences with tokens uniform in 1..V-3 and lengths in [min_len, max_len].

    Lengths are uniform, or with ``"proportional"`` drawn with probability proportional to the length.
    """
    if not 1 <= min_len <= max_len:
        raise ValueError(f"random_sequences: need 1 <= min_len <= max_len, got min_len={min_len}, "
                         f"max_len={max_len}")
    if length_sampling == "uniform":
        lengths = rng.integers(min_len, max_len + 1, size=n)
    elif length_sampling == "proportional":
        choices = np.arange(min_len, max_len + 1)  # host: the data is made on the host
        lengths = rng.choice(choices, size=n, p=choices / choices.sum())
    else:
        raise ValueError(f"random_sequences: length_sampling must be one of {LENGTH_SAMPLING}, "
                         f"got {length_sampling!r}")
    tokens = rng.integers(1, layout.max_content + 1, size=(n, max_len))
    return [tokens[i, :length] for i, length in enumerate(lengths)]


def pad_sources(seqs: Sequence[Sequence[int]]) -> np.ndarray:
    """Stack content sequences into one (n, longest) int64 array, padded with PAD on the right."""
    src = np.full((len(seqs), max(len(s) for s in seqs)), PAD, dtype=np.int64)  # host: token ids
    for i, s in enumerate(seqs):
        src[i, :len(s)] = s
    return src


def make_batch(seqs: Sequence[Sequence[int]], layout: TokenLayout) -> Batch:
    """Pad content sequences into source, decoder input and target arrays, with their masks."""
    lengths = np.array([len(s) for s in seqs])  # host: batch bookkeeping
    if len(seqs) == 0 or lengths.min() == 0:
        raise ValueError("make_batch: every sequence needs at least one token")
    n, width = len(seqs), int(lengths.max())
    src = pad_sources(seqs)
    tgt_out = np.full((n, width + 1), PAD, dtype=np.int64)  # host: token ids
    for i, s in enumerate(seqs):
        tgt_out[i, :len(s)] = s[::-1]
        tgt_out[i, len(s)] = layout.eos
    # Teacher forcing: the decoder sees SOS and the target shifted right by one.
    tgt_in = np.concatenate([np.full((n, 1), layout.sos, dtype=np.int64), tgt_out[:, :-1]], axis=1)  # host
    tgt_in[tgt_in == layout.eos] = PAD
    return Batch(src, tgt_in, tgt_out, create_padding_mask(src, PAD), target_mask(tgt_in), lengths)


def target_mask(tgt_in: np.ndarray) -> Tensor:
    """Additive decoder self-attention mask (B, 1, T, T): no future positions, no padding keys."""
    causal = create_causal_mask(tgt_in.shape[1]).data
    padding = create_padding_mask(tgt_in, PAD).data
    return Tensor(np.minimum(causal, padding))  # -1e9 where either hides a key, never -2e9


def batch_for_step(seed: int, step: int, batch_size: int, min_len: int, max_len: int, layout: TokenLayout,
                   length_sampling: str = "uniform") -> Batch:
    """The training batch of ``step``: a pure function of (seed, step), so a resumed run sees the same data."""
    rng = np.random.default_rng([seed, 0, step])  # host: the data's own generator; held-out: [seed, 1, stream]
    return make_batch(random_sequences(rng, batch_size, min_len, max_len, layout, length_sampling), layout)


def _whole_number(part: object) -> int | None:
    """``part`` as an int if it is an integer or ASCII digits with an optional sign, else None.

    ``int()`` alone would also take 2.5 as 2, True as 1, "1_0" as 10 and "٣" as 3.
    """
    if isinstance(part, (int, np.integer)) and not isinstance(part, (bool, np.bool_)):
        return int(part)
    if isinstance(part, str) and part.strip().isascii() and part.strip().lstrip("+-").isdigit():
        try:
            return int(part)
        except ValueError:  # "+-5", or more digits than int() accepts
            return None
    return None


def parse_tokens(text: str | Sequence[str | int], layout: TokenLayout, max_len: int) -> np.ndarray:
    """Turn ``"5 12 7"`` (or a list of ids) into content ids, or raise a one-line ValueError."""
    parts = text.split() if isinstance(text, str) else list(text)
    if not parts:
        raise ValueError("empty input: give at least one token")
    ids = []
    for part in parts:
        value = _whole_number(part)
        if value is None:
            raise ValueError(f"unknown token {str(part)!r}: tokens are whole numbers in 1..{layout.max_content}")
        if not 1 <= value <= layout.max_content:
            raise ValueError(f"unknown token {value}: tokens are whole numbers in 1..{layout.max_content} "
                             f"(0 is PAD, {layout.sos} is SOS, {layout.eos} is EOS)")
        ids.append(value)
    if len(ids) > max_len:
        raise ValueError(f"sequence of {len(ids)} tokens is longer than this model's maximum of {max_len}")
    return np.array(ids, dtype=np.int64)  # host: parsed user input
