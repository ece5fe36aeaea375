"""Decoding a trained reversal model: batched greedy and beam search, both with the decoder's KV cache.

The encoder runs once per batch. Each decoding step feeds only the newest token; the decoder keeps
every layer's keys and values from earlier steps in ``cache``, so step t costs one position, not t.
Rows that have produced EOS are dropped from the batch (``model.reorder_cache``), so a batch costs
as many steps as its longest output, with ever fewer rows.

Devices: decoding runs where the model's parameters are. The source ids and their mask go to the
device once per batch; the model's work, the argmax (greedy) and the top-2k candidates (beam) stay there.
Each step copies back only what the host's bookkeeping needs: greedy, the batch's B new tokens (one
copy per step, not per row); beam, the 2k best candidates and their scores per source (and sends up the
k scores and tokens it keeps). Rows dropped when they finish are chosen on the host, and their index
goes up in one copy.
"""
from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from ... import backend
from ...autograd.function import no_grad
from ...autograd.tensor import Tensor, cat
from ...functional import create_causal_mask, create_padding_mask
from .data import PAD, TokenLayout, pad_sources

__all__ = ["greedy_decode", "beam_search", "decode_limit", "predict"]


def decode_limit(model: Any, src_len: int, max_new_tokens: int | None = None) -> int:
    """How many tokens to generate at most: twice the source plus EOS, within the positional table."""
    limit = max_new_tokens if max_new_tokens is not None else 2 * src_len + 1
    return max(1, min(limit, model.max_len))


def model_device(model: Any) -> backend.Device:
    """The device a model's parameters live on (the CPU for a model without any)."""
    params = model.parameters() if hasattr(model, "parameters") else []
    return params[0].device if params else backend.device("cpu")


def _encode(model: Any, src: np.ndarray, device: backend.Device) -> tuple[Tensor, Tensor]:
    """Move host ids ``src`` (B, S) and their padding mask to the device (two copies); run the encoder."""
    src_mask = create_padding_mask(src, PAD).to(device)
    return model.encode(Tensor(src, device=device), src_mask), src_mask


def greedy_decode(model: Any, src: np.ndarray, layout: TokenLayout, max_new_tokens: int | None = None,
                  use_cache: bool = True, return_logits: bool = False) -> Any:
    """Decode a padded batch ``src`` (B, S) greedily; each row stops at its own EOS.

    Returns a list of B int arrays (the output tokens, EOS included when produced). With
    ``return_logits`` also returns the logits (B, steps, V) of every step, NaN after a row stopped.
    ``use_cache=False`` recomputes the whole prefix at every step (the slow reference).
    """
    src = np.asarray(src)  # host: the caller's ids
    dev = model_device(model)
    n, limit = len(src), decode_limit(model, src.shape[1], max_new_tokens)
    out = np.full((n, limit), PAD, dtype=np.int64)  # host: the outputs, filled one step at a time
    lengths = np.full(n, limit)  # host: bookkeeping
    all_logits = (np.full((n, limit, layout.vocab_size), np.nan, dtype=np.float32)  # host: asked for
                  if return_logits else None)
    with no_grad():
        memory, src_mask = _encode(model, src, dev)
        alive = np.arange(n)  # host: original row of each row still decoding
        tokens = Tensor(np.full((n, 1), layout.sos, dtype=np.int64), device=dev)  # host: SOS, copied once
        cache = model.init_cache() if use_cache else None
        for t in range(limit):
            if use_cache:
                logits = model.decode_step(tokens[:, -1:], memory, src_mask, cache)
            else:  # the reference: run the decoder over the whole prefix again
                causal = create_causal_mask(tokens.shape[1]).to(dev)
                logits = model.final_linear(model.decode(tokens, memory, src_mask, causal)[:, -1])
            nxt_dev = logits.argmax(-1)
            nxt = nxt_dev.numpy()  # the step's one copy to the host: B token ids
            out[alive, t] = nxt
            if return_logits:
                all_logits[alive, t] = logits.numpy()
            done = nxt == layout.eos
            lengths[alive[done]] = t + 1
            tokens = cat([tokens, nxt_dev.reshape(-1, 1)], axis=1)
            if done.any():
                keep = np.flatnonzero(~done)
                if keep.size == 0:
                    break
                alive, rows = alive[keep], Tensor(keep, device=dev)  # the kept rows, sent up once
                tokens, memory, src_mask = tokens[rows], memory[rows], src_mask[rows]
                if use_cache:
                    model.reorder_cache(cache, rows)
    seqs = [out[i, :lengths[i]] for i in range(n)]
    return (seqs, all_logits) if return_logits else seqs


def _log_softmax(x: Any) -> Any:
    """log softmax over the last axis of an array of any device, in float64 (NumPy's functions dispatch to
    the device's array module)."""
    x = x.astype(np.float64)  # beam scores sum many log-probs: keep them in float64
    x = x - x.max(axis=-1, keepdims=True)
    return x - np.log(np.exp(x).sum(axis=-1, keepdims=True))


def beam_search(model: Any, src: np.ndarray, layout: TokenLayout, beam_size: int = 4,
                max_new_tokens: int | None = None, length_penalty: float = 1.0) -> list[np.ndarray]:
    """Beam search over a padded batch ``src`` (B, S); returns each row's best finished hypothesis.

    A hypothesis of n tokens (EOS included) with summed log-probability s scores s / n**length_penalty,
    so long outputs are not crowded out just for being long. Each step keeps, per source, the
    ``beam_size`` best unfinished continuations; a candidate ending in EOS among the top ``beam_size``
    finishes. A source stops once its best finished hypothesis scores at least as well as every
    unfinished beam would if it ended now (or at the length limit, where an unfinished beam is returned
    if nothing finished). With ``beam_size=1`` this is exactly greedy decoding: the one beam finishes
    when EOS is the top token, and then nothing unfinished can score higher.
    """
    if beam_size < 1:
        raise ValueError(f"beam_search: beam_size must be at least 1, got {beam_size}")
    src = np.asarray(src)  # host: the caller's ids
    dev = model_device(model)
    n, k, vocab = len(src), beam_size, layout.vocab_size
    limit = decode_limit(model, src.shape[1], max_new_tokens)
    best_score = np.full(n, -np.inf)  # host: bookkeeping, as are the scores and hypotheses below
    best_seq: list[np.ndarray | None] = [None] * n
    with no_grad():
        memory, src_mask = _encode(model, src, dev)
        rows = Tensor(np.repeat(np.arange(n), k), device=dev)  # host: row a*k + j is beam j of source a
        memory, src_mask = memory[rows], src_mask[rows]
        cache = model.init_cache()
        active = np.arange(n)  # host: sources still searching
        scores = np.full((n, k), -np.inf)  # host
        scores[:, 0] = 0.0  # at the start only one beam is live: the others would be copies
        hyps = np.zeros((n, k, 0), dtype=np.int64)  # host
        tokens = Tensor(np.full((n * k, 1), layout.sos, dtype=np.int64), device=dev)  # host: SOS, copied once
        for t in range(limit):
            logp = _log_softmax(model.decode_step(tokens, memory, src_mask, cache).data)  # on the device
            m = len(active)
            cand = (backend.to_device(scores, dev)[:, :, None] + logp.reshape(m, k, vocab)).reshape(m, k * vocab)
            # 2k candidates always hold k that do not end in EOS: each beam adds at most one EOS.
            # Ties keep the lower index: NumPy's sort is stable when asked, CuPy's always is (and takes no kind=).
            order = np.argsort(-cand, axis=1, kind="stable") if dev.type == "cpu" else np.argsort(-cand, axis=1)
            top = order[:, :2 * k]
            top_score = backend.as_numpy(np.take_along_axis(cand, top, axis=1))  # the step's copies to the host:
            top = backend.as_numpy(top)                                           # 2k candidates per source
            beam, tok = top // vocab, top % vocab
            is_eos = tok == layout.eos
            finishing = is_eos & (np.arange(2 * k) < k) & np.isfinite(top_score)  # host
            norm = np.where(finishing, top_score / (t + 1) ** length_penalty, -np.inf)
            best_new = norm.argmax(axis=1)
            for a in np.flatnonzero(norm[np.arange(m), best_new] > best_score[active]):  # host
                src_row, j = active[a], best_new[a]
                best_score[src_row] = norm[a, j]
                best_seq[src_row] = np.append(hyps[a, beam[a, j]], layout.eos)
            # Continue with the first k candidates that do not end in EOS.
            cont = ~is_eos & (np.cumsum(~is_eos, axis=1) <= k)
            parent, tok, scores = (x[cont].reshape(m, k) for x in (beam, tok, top_score))
            hyps = np.concatenate([np.take_along_axis(hyps, parent[:, :, None], axis=1), tok[:, :, None]], axis=2)
            # Done when no unfinished beam, scored at its current length, beats the best finished one.
            still = scores.max(axis=1) / (t + 1) ** length_penalty > best_score[active]
            if t == limit - 1 or not still.any():
                break
            index = Tensor((np.arange(m)[:, None] * k + parent)[still].ravel(), device=dev)  # host: rows kept
            model.reorder_cache(cache, index)
            memory, src_mask = memory[index], src_mask[index]
            active, scores, hyps = active[still], scores[still], hyps[still]
            tokens = Tensor(tok[still].reshape(-1, 1), device=dev)  # the kept beams' newest tokens, sent up
        for a, src_row in enumerate(active):  # sources that hit the limit: keep their best unfinished beam
            if best_seq[src_row] is None:
                best_seq[src_row] = hyps[a, scores[a].argmax()]
    return best_seq  # type: ignore[return-value]


def predict(model: Any, seqs: Sequence[np.ndarray], layout: TokenLayout, beam_size: int = 1,
            batch_size: int = 500, max_new_tokens: int | None = None) -> list[np.ndarray]:
    """Decode many content sequences in length-sorted batches; returns outputs in the input order."""
    model.eval()
    order = np.argsort([len(s) for s in seqs], kind="stable")  # similar lengths share a batch: less padding
    results: list[Any] = [None] * len(seqs)
    for start in range(0, len(seqs), batch_size):
        idx = order[start:start + batch_size]
        src = pad_sources([seqs[i] for i in idx])
        if beam_size == 1:
            outs = greedy_decode(model, src, layout, max_new_tokens)
        else:
            outs = beam_search(model, src, layout, beam_size, max_new_tokens)
        for row, i in enumerate(idx):
            results[i] = outs[row]
    return results
