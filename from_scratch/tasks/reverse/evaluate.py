"""Held-out evaluation: exact match and token accuracy per length, and the table the CLI prints."""
from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from .data import TokenLayout, random_sequences
from .decode import predict

__all__ = ["heldout_sequences", "evaluate", "format_table"]

_HELDOUT_STREAM = 1  # training batches draw from [seed, 0, step]; held-out sets from [seed, 1, stream]


def heldout_sequences(seed: int, n: int, min_len: int, max_len: int, layout: TokenLayout,
                      stream: int = 0) -> list[np.ndarray]:
    """Fresh random sequences from a generator stream that no training batch uses."""
    rng = np.random.default_rng([seed, _HELDOUT_STREAM, stream])  # host: the data's own generator
    return random_sequences(rng, n, min_len, max_len, layout)


def evaluate(model: Any, seqs: Sequence[np.ndarray], layout: TokenLayout, beam_size: int = 1,
             trained_max_len: int | None = None) -> dict[str, Any]:
    """Decode ``seqs`` and score them against their reversals (EOS included).

    Exact match counts an output only if every token up to and including EOS is right.
    Token accuracy is the share of target positions (EOS included) where the output is right.
    Returns ``{"exact_match", "token_accuracy", "n", "by_length": [{"length", "n", "exact_match",
    "token_accuracy", "beyond_training"}, ...], "groups": [...]}``. ``groups`` summarises the lengths
    trained on and, with ``trained_max_len``, the longer ones separately (``{"lengths": [lo, hi],
    "beyond_training", "n", "exact_match", "token_accuracy"}``): a mean over both would mix two questions.
    """
    outputs = predict(model, seqs, layout, beam_size=beam_size)  # on the model's device; outputs on the host
    lengths = np.array([len(s) for s in seqs])  # host: scoring is bookkeeping
    exact = np.zeros(len(seqs), dtype=bool)  # host
    token_acc = np.zeros(len(seqs))  # host
    for i, (s, out) in enumerate(zip(seqs, outputs)):
        target = np.append(s[::-1], layout.eos)
        m = min(len(out), len(target))
        exact[i] = len(out) == len(target) and bool((out == target).all())
        token_acc[i] = (out[:m] == target[:m]).sum() / len(target)
    rows = []
    for length in np.unique(lengths):
        sel = lengths == length
        rows.append({"length": int(length), "n": int(sel.sum()), "exact_match": float(exact[sel].mean()),
                     "token_accuracy": float(token_acc[sel].mean()),
                     "beyond_training": bool(trained_max_len is not None and length > trained_max_len)})
    beyond = lengths > (trained_max_len if trained_max_len is not None else lengths.max())
    groups = [{"lengths": [int(lengths[sel].min()), int(lengths[sel].max())], "beyond_training": bool(flag),
               "n": int(sel.sum()), "exact_match": float(exact[sel].mean()),
               "token_accuracy": float(token_acc[sel].mean())}
              for flag, sel in ((False, ~beyond), (True, beyond)) if sel.any()]
    return {"exact_match": float(exact.mean()), "token_accuracy": float(token_acc.mean()), "n": len(seqs),
            "by_length": rows, "groups": groups}


def format_table(result: dict[str, Any]) -> str:
    """Render ``evaluate``'s result as a per-length text table, then one summary row per group:
    the lengths trained on, and (marked) the longer ones."""
    lines = ["length      n   exact match   token accuracy"]
    for row in result["by_length"]:
        note = "   (longer than trained on)" if row["beyond_training"] else ""
        lines.append(f"{row['length']:>6} {row['n']:>6} {100 * row['exact_match']:>12.2f}% "
                     f"{100 * row['token_accuracy']:>14.2f}%{note}")
    for group in result["groups"]:
        lo, hi = group["lengths"]
        note = "   (longer than trained on)" if group["beyond_training"] else ""
        lines.append(f"{f'{lo}..{hi}':>6} {group['n']:>6} {100 * group['exact_match']:>12.2f}% "
                     f"{100 * group['token_accuracy']:>14.2f}%{note}")
    return "\n".join(lines)
