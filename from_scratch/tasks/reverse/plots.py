"""Pictures of a reversal run: the training curve and the decoder's cross-attention (need matplotlib)."""
from __future__ import annotations

import io
import os
from typing import Any

import numpy as np

from ... import backend
from ...autograd.function import no_grad
from ...autograd.tensor import Tensor
from ...functional import create_causal_mask, create_padding_mask
from ...serialization import atomic_write
from .data import PAD, TokenLayout
from .decode import greedy_decode, model_device

__all__ = ["image_format", "plot_metrics", "cross_attention", "plot_attention"]


def _figure(**kwargs: Any) -> Any:
    from matplotlib.figure import Figure  # no pyplot: a notebook's backend is left alone
    return Figure(**kwargs)


def image_format(path: str) -> str:
    """The image type matplotlib writes for ``path``'s extension (``png``, ``pdf``, ``svg``, ...).

    Raises ValueError for an extension matplotlib cannot write: a PNG named ``a.txt`` helps no one.
    """
    ext = os.path.splitext(path)[1].lstrip(".").lower()
    known = _figure().canvas.get_supported_filetypes()
    if ext not in known:
        raise ValueError(f"cannot write an image to {path!r}: {f'.{ext}' if ext else 'no extension'} is not an "
                         f"image type; end the name in one of {', '.join('.' + k for k in sorted(known))}")
    return ext


def _save(fig: Any, path: str) -> None:
    buf = io.BytesIO()
    fig.savefig(buf, format=image_format(path), dpi=100)
    atomic_write(path, buf.getvalue())


def plot_metrics(rows: list[dict[str, Any]], path: str) -> None:
    """Draw the loss curve (log scale) with held-out exact match on a second axis."""
    fig = _figure(figsize=(7, 4), layout="tight")
    ax = fig.subplots()
    ax.plot([r["step"] for r in rows], [r["loss"] for r in rows], color="tab:blue", lw=1)
    ax.set_yscale("log")
    ax.set_xlabel("step")
    ax.set_ylabel("training loss", color="tab:blue")
    evals = [r for r in rows if r["exact_match"] is not None]
    ax2 = ax.twinx()
    ax2.plot([r["step"] for r in evals], [100 * r["exact_match"] for r in evals], "o-", color="tab:orange")
    ax2.set_ylim(0, 101)
    ax2.set_ylabel("held-out exact match (%)", color="tab:orange")
    ax.set_title("bbml reverse train")
    _save(fig, path)


def cross_attention(model: Any, tokens: np.ndarray, layout: TokenLayout) -> tuple[np.ndarray, list[np.ndarray]]:
    """Decode one sequence greedily, then return its output and each decoder layer's cross-attention.

    The weights of layer l have shape (heads, output length, source length): row t is where the
    decoder looked in the source while producing output token t. On a device, the ids and masks go
    there and the weights come back to the host (NumPy arrays) for drawing.
    """
    model.eval()
    dev = model_device(model)
    src = np.asarray(tokens, dtype=np.int64)[None]  # host: the user's ids
    output = greedy_decode(model, src, layout)[0]
    tgt_in = np.concatenate([[layout.sos], output[:-1]])[None].astype(np.int64)
    with no_grad():  # teacher-force the decoder on its own output to read every step's weights at once
        src_mask = create_padding_mask(src, PAD).to(dev)
        memory = model.encode(Tensor(src, device=dev), src_mask)
        model.decode(Tensor(tgt_in, device=dev), memory, src_mask, create_causal_mask(tgt_in.shape[1]).to(dev))
    return output, [backend.as_numpy(layer.cross_attn.attn_weights[0]) for layer in model.decoder.layers]


def _label(token: int, layout: TokenLayout) -> str:
    return "EOS" if token == layout.eos else str(int(token))


def plot_attention(model: Any, tokens: np.ndarray, layout: TokenLayout, path: str) -> np.ndarray:
    """Draw every decoder layer's and head's cross-attention as labelled heatmaps; return the output."""
    output, weights = cross_attention(model, tokens, layout)
    layers, heads = len(weights), weights[0].shape[0]
    fig = _figure(figsize=(2.6 * heads + 1, 2.6 * layers + 0.6), layout="constrained")
    axes = np.atleast_2d(fig.subplots(layers, heads, squeeze=False))
    src_labels = [_label(t, layout) for t in tokens]
    out_labels = [_label(t, layout) for t in output]
    for layer in range(layers):
        for head in range(heads):
            ax = axes[layer, head]
            image = ax.imshow(weights[layer][head], cmap="viridis", vmin=0, vmax=1)
            ax.set_title(f"layer {layer + 1}, head {head + 1}", fontsize=9)
            ax.set_xticks(range(len(src_labels)), src_labels, fontsize=7)
            ax.set_yticks(range(len(out_labels)), out_labels, fontsize=7)
            if layer == layers - 1:
                ax.set_xlabel("source")
            if head == 0:
                ax.set_ylabel("output")
    fig.colorbar(image, ax=axes, shrink=0.6, label="attention weight")
    fig.suptitle("decoder cross-attention: " + " ".join(src_labels) + " -> " + " ".join(out_labels))
    _save(fig, path)
    return output
