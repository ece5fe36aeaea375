"""Losses: cross-entropy, negative log-likelihood, mean squared error, binary cross-entropy."""
from __future__ import annotations

from typing import Any

import numpy as np

from ..autograd import fused
from ..autograd.tensor import Tensor

__all__ = ["cross_entropy", "nll_loss", "mse_loss", "binary_cross_entropy", "binary_cross_entropy_with_logits"]


def _check_reduction(name: str, reduction: str) -> None:
    if reduction not in ("mean", "sum", "none"):
        raise ValueError(f"{name}: reduction must be 'mean', 'sum' or 'none', got {reduction!r}")


def _check_targets(name: str, target: np.ndarray, num_classes: int, ignore_index: int | None,
                   reduction: str) -> None:
    _check_reduction(name, reduction)
    if target.dtype.kind not in "iu":
        raise TypeError(f"{name}: targets must be integers, got dtype {target.dtype}")
    bad = (target < 0) | (target >= num_classes)
    if ignore_index is not None:
        bad &= target != ignore_index
    if bad.any():
        raise IndexError(f"{name}: target value {target[bad].flat[0]} is outside [0, {num_classes})")


def cross_entropy(logits: Tensor, target: Any, ignore_index: int | None = None, label_smoothing: float = 0.0,
                  reduction: str = "mean") -> Tensor:
    """Softmax cross-entropy of logits (..., C) against integer targets (...).

    With ``reduction="mean"`` and no target to average (every one ``ignore_index``, or none at all) the
    loss is NaN and its gradient 0, as in PyTorch (a NaN loss in training means such a batch got in)."""
    t = np.asarray(target.data if isinstance(target, Tensor) else target)
    if logits.shape[:-1] != t.shape:
        raise ValueError(f"cross_entropy: logits of shape {logits.shape} need targets of shape "
                         f"{logits.shape[:-1]}, got {t.shape}")
    _check_targets("cross_entropy", t, logits.shape[-1], ignore_index, reduction)
    return fused.CrossEntropy.apply(logits, target=t, ignore_index=ignore_index,
                                    label_smoothing=label_smoothing, reduction=reduction)


def nll_loss(log_probs: Tensor, target: Any, ignore_index: int | None = None, reduction: str = "mean") -> Tensor:
    """Negative log-likelihood of log-probabilities (..., C) at integer targets (...)."""
    t = np.asarray(target.data if isinstance(target, Tensor) else target)
    if log_probs.shape[:-1] != t.shape:
        raise ValueError(f"nll_loss: log-probabilities of shape {log_probs.shape} need targets of shape "
                         f"{log_probs.shape[:-1]}, got {t.shape}")
    _check_targets("nll_loss", t, log_probs.shape[-1], ignore_index, reduction)
    valid = np.ones(t.shape, bool) if ignore_index is None else t != ignore_index
    picked = log_probs.reshape(-1, log_probs.shape[-1])[np.arange(t.size), np.where(valid, t, 0).ravel()]
    losses = -picked * valid.ravel().astype(log_probs.dtype)
    if reduction == "none":
        return losses.reshape(t.shape)
    if reduction == "sum":
        return losses.sum()
    n = int(valid.sum())
    # The mean of no targets is NaN with a zero gradient, as in PyTorch: + NaN, not * NaN, keeps the gradient 0.
    return losses.sum() * (1 / n) if n else losses.sum() + np.nan


def _reduce(name: str, loss: Tensor, reduction: str) -> Tensor:
    _check_reduction(name, reduction)
    return loss.mean() if reduction == "mean" else (loss.sum() if reduction == "sum" else loss)


def mse_loss(input: Tensor, target: Any, reduction: str = "mean") -> Tensor:
    target = input._lift(target)
    if input.shape != target.shape:
        raise ValueError(f"mse_loss: input of shape {input.shape} and target of shape {target.shape} differ")
    diff = input - target
    return _reduce("mse_loss", diff * diff, reduction)


def binary_cross_entropy(input: Tensor, target: Any, reduction: str = "mean") -> Tensor:
    """Binary cross-entropy of probabilities ``input`` in [0, 1]."""
    target = input._lift(target)
    if input.shape != target.shape:
        raise ValueError(f"binary_cross_entropy: input of shape {input.shape} and target of shape "
                         f"{target.shape} differ")
    if ((input.data < 0) | (input.data > 1)).any():
        raise ValueError("binary_cross_entropy: input probabilities must lie in [0, 1]")
    _check_reduction("binary_cross_entropy", reduction)
    return fused.BinaryCrossEntropy.apply(input, target, reduction=reduction)


def binary_cross_entropy_with_logits(input: Tensor, target: Any, reduction: str = "mean") -> Tensor:
    """Binary cross-entropy on logits (sigmoid folded in, stable at any magnitude)."""
    target = input._lift(target)
    if input.shape != target.shape:
        raise ValueError(f"binary_cross_entropy_with_logits: input of shape {input.shape} and target of "
                         f"shape {target.shape} differ")
    _check_reduction("binary_cross_entropy_with_logits", reduction)
    return fused.BCEWithLogits.apply(input, target, reduction=reduction)
