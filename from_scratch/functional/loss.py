"""Losses: cross-entropy, negative log-likelihood, mean squared and absolute error, binary cross-entropy.

Arguments, defaults and formulas follow ``torch.nn.functional``. One difference of layout: the
classification losses take class scores on the last axis, (..., C), with targets (...), unless
``class_axis`` says otherwise; ``class_axis=1`` is PyTorch's layout (N, C, d1, ...) with targets
(N, d1, ...). The loss modules in ``nn/loss.py`` always use PyTorch's layout.

Targets, class weights and ``pos_weight`` must be on the input's device, as in PyTorch: one on another
device is a RuntimeError naming both (``inputs.constant``), never a silent copy.
"""
from __future__ import annotations

from typing import Any

import numpy as np

from ..autograd import fused
from ..autograd.ops import check_axis
from ..autograd.tensor import Tensor
from .. import backend
from .activation import log_softmax, log_softmax_simple
from .fastpath import fused_enabled
from .inputs import as_tensor, constant

__all__ = ["cross_entropy", "cross_entropy_simple", "nll_loss", "mse_loss", "l1_loss", "binary_cross_entropy",
           "binary_cross_entropy_with_logits"]


def _check_reduction(name: str, reduction: str) -> None:
    if reduction not in ("mean", "sum", "none"):
        raise ValueError(f"{name}: reduction must be 'mean', 'sum' or 'none', got {reduction!r}")


def _classes_last(name: str, input: Any, target: Any, class_axis: int) -> tuple[Tensor, np.ndarray]:
    """Return the scores with classes moved to the last axis, and the targets as an integer array of
    the matching shape (scores (..., C) -> targets (...)); raise naming both shapes if they differ."""
    x = as_tensor(input, name)
    t = constant(x, target, name, "target")
    if x.ndim == 0:
        raise ValueError(f"{name}: input must have a class axis, got a scalar")
    (axis,) = check_axis(name, x.shape, class_axis)
    shape = x.shape
    if axis != x.ndim - 1:
        x = x.permute(*[d for d in range(x.ndim) if d != axis], axis)
    if x.shape[:-1] != t.shape:
        noun = "logits" if name == "cross_entropy" else "log-probabilities"
        layout = "" if axis == x.ndim - 1 else f" (classes on axis {axis})"
        raise ValueError(f"{name}: {noun} of shape {shape}{layout} need targets of shape {x.shape[:-1]}, "
                         f"got {t.shape}")
    return x, t


def _check_targets(name: str, target: np.ndarray, num_classes: int, ignore_index: int | None,
                   reduction: str) -> None:
    _check_reduction(name, reduction)
    if target.dtype.kind not in "iu":
        raise TypeError(f"{name}: targets must be integers, got dtype {target.dtype}")
    bad = (target < 0) | (target >= num_classes)
    if ignore_index is not None:
        bad &= target != ignore_index
    if bad.any():
        raise IndexError(f"{name}: target value {target[bad].ravel()[0].item()} is outside [0, {num_classes})")


def _class_weight(name: str, weight: Any, num_classes: int, x: Tensor) -> np.ndarray | None:
    """The per-class rescaling weight as a constant array on x's device, in its dtype (PyTorch does not
    differentiate it either)."""
    if weight is None:
        return None
    w = constant(x, weight, name, "weight", x.dtype)
    if w.shape != (num_classes,):
        raise ValueError(f"{name}: weight of shape {w.shape} must have one entry per class, ({num_classes},)")
    return w


def _target_weights(target: np.ndarray, weight: np.ndarray | None, ignore_index: int | None,
                    dtype: np.dtype) -> tuple[np.ndarray, np.ndarray]:
    """Each target's weight w[t] (1 without class weights, 0 where ignored) and the targets to index with."""
    valid = np.ones_like(target, dtype=bool) if ignore_index is None else target != ignore_index
    safe = np.where(valid, target, 0)
    scale = valid.astype(dtype) if weight is None else np.where(valid, weight[safe], 0).astype(dtype)
    return scale, safe


def _weighted_reduce(losses: Tensor, scale: np.ndarray, reduction: str) -> Tensor:
    # PyTorch's weighted mean: sum_i w[t_i] loss_i / sum_i w[t_i] over the targets not ignored. When
    # nothing counts it is NaN with a zero gradient, as PyTorch's: + NaN, not * NaN, keeps the gradient 0.
    if reduction == "none":
        return losses
    total = losses.sum()
    if reduction != "mean":
        return total
    count = scale.sum()
    return total * (1 / count) if count else total + np.nan


def cross_entropy(input: Any, target: Any, weight: Any = None, ignore_index: int | None = -100,
                  reduction: str = "mean", label_smoothing: float = 0.0, class_axis: int = -1) -> Tensor:
    """Softmax cross-entropy of class scores against integer targets, as ``torch.nn.functional.cross_entropy``.

    Shapes: scores (..., C) and targets (...) by default; with ``class_axis=1``, PyTorch's layout
    (N, C, d1, ...) and targets (N, d1, ...) (the same thing for 2-D scores). Nothing is guessed
    from the shapes. ``weight`` (C,) rescales each class (the mean divides by the summed weights of
    the counted targets); targets equal to ``ignore_index`` count for nothing; ``label_smoothing``
    eps mixes the one-hot target with the uniform distribution: loss = (1 - eps) nll + eps / C
    sum_c w_c (-log p_c). Raises ValueError on mismatched shapes, IndexError on a target outside
    [0, C), TypeError on float targets (class probabilities are not supported).
    ``cross_entropy_simple`` is the definition.

    With ``reduction="mean"`` and no target to average (every one ``ignore_index``, or none at all)
    the loss is NaN and its gradient 0, as in PyTorch (a NaN loss in training means such a batch got in).

    Fast path (``fused.CrossEntropy``, without class weights): one node that keeps exp(x - max) and its
    row sums for the backward, softmax - onehot, instead of about eight nodes; forward + backward 56 us
    against 136 us plain (16x10 targets, 20 classes).
    """
    x, t = _classes_last("cross_entropy", input, target, class_axis)
    c = x.shape[-1]
    _check_targets("cross_entropy", t, c, ignore_index, reduction)
    if not 0 <= label_smoothing <= 1:
        raise ValueError(f"cross_entropy: label_smoothing must be in [0, 1], got {label_smoothing}")
    w = _class_weight("cross_entropy", weight, c, x)
    if ignore_index is not None and type(t) is np.ndarray and not (t == ignore_index).any():
        ignore_index = None  # nothing to ignore: the same loss, without masking (on a device: masked, no wait)
    if w is None and fused_enabled():  # the fast path: one fused node (fused.CrossEntropy)
        return fused.CrossEntropy.apply(x, target=t, ignore_index=ignore_index, label_smoothing=label_smoothing,
                                        reduction=reduction)
    return _smoothed_nll(log_softmax(x, -1), t, w, ignore_index, reduction, label_smoothing)


def cross_entropy_simple(input: Tensor, target: Any, weight: Any = None, ignore_index: int | None = -100,
                         reduction: str = "mean", label_smoothing: float = 0.0) -> Tensor:
    """The plain version of ``cross_entropy`` on scores (..., C) and integer targets (...):
    -log softmax(x)[t], PyTorch's own composition of ``log_softmax`` and ``nll_loss``, plus smoothing."""
    x = as_tensor(input, "cross_entropy_simple")
    return _smoothed_nll(log_softmax_simple(x, -1), constant(x, target, "cross_entropy_simple", "target"), weight,
                         ignore_index, reduction, label_smoothing)


def _smoothed_nll(log_probs: Tensor, t: np.ndarray, weight: Any, ignore_index: int | None, reduction: str,
                  label_smoothing: float) -> Tensor:
    # (1 - eps) nll + eps / C sum_c w_c (-log p_c): the one-hot target mixed with the uniform distribution
    loss = nll_loss(log_probs, t, weight, ignore_index, reduction)
    if not label_smoothing:
        return loss
    c = log_probs.shape[-1]
    w = _class_weight("cross_entropy", weight, c, log_probs)
    scale, _ = _target_weights(t, w, ignore_index, log_probs.dtype)
    smooth = -(log_probs if w is None else log_probs * w).sum(axis=-1)
    if ignore_index is not None:
        smooth = smooth * (t != ignore_index).astype(log_probs.dtype)
    return (1 - label_smoothing) * loss + (label_smoothing / c) * _weighted_reduce(smooth, scale, reduction)


def nll_loss(input: Any, target: Any, weight: Any = None, ignore_index: int | None = -100,
             reduction: str = "mean", class_axis: int = -1) -> Tensor:
    """Negative log-likelihood: -w[t] * log_probs[..., t], as ``torch.nn.functional.nll_loss``.

    Shapes and ``class_axis``, ``weight``, ``ignore_index`` as in ``cross_entropy``: log-probabilities
    (..., C) and targets (...) by default, PyTorch's (N, C, d1, ...) with ``class_axis=1``.
    """
    x, t = _classes_last("nll_loss", input, target, class_axis)
    c = x.shape[-1]
    _check_targets("nll_loss", t, c, ignore_index, reduction)
    scale, safe = _target_weights(t, _class_weight("nll_loss", weight, c, x), ignore_index, x.dtype)
    picked = x.reshape(-1, c)[backend.get_array_module(t).arange(t.size), safe.ravel()]
    losses = (-picked * scale.ravel()).reshape(t.shape)
    return _weighted_reduce(losses, scale, reduction)


def _reduce(name: str, loss: Tensor, reduction: str) -> Tensor:
    _check_reduction(name, reduction)
    return loss.mean() if reduction == "mean" else (loss.sum() if reduction == "sum" else loss)


def _pair(name: str, input: Any, target: Any) -> tuple[Tensor, Tensor]:
    """Input and target as Tensors of one shape (PyTorch would broadcast with a warning; we refuse)."""
    input = as_tensor(input, name)
    if isinstance(target, Tensor):  # it may need a gradient: only its device is checked
        constant(input, target, name, "target")
    else:
        target = input._lift(constant(input, target, name, "target"))
    if input.shape != target.shape:
        raise ValueError(f"{name}: input of shape {input.shape} and target of shape {target.shape} differ")
    return input, target


def mse_loss(input: Any, target: Any, reduction: str = "mean") -> Tensor:
    """Mean squared error (input - target)^2, reduced; both of one shape."""
    input, target = _pair("mse_loss", input, target)
    diff = input - target
    return _reduce("mse_loss", diff * diff, reduction)


def l1_loss(input: Any, target: Any, reduction: str = "mean") -> Tensor:
    """Mean absolute error |input - target|, reduced; the gradient at a tie is 0, as in PyTorch."""
    input, target = _pair("l1_loss", input, target)
    return _reduce("l1_loss", (input - target).abs(), reduction)


def _rescale(name: str, loss: Tensor, weight: Any, reduction: str) -> Tensor:
    """Multiply elementwise losses by ``weight`` (broadcast to the input's shape), then reduce."""
    w = constant(loss, weight, name, "weight", loss.dtype)
    try:
        np.broadcast_to(w, loss.shape)
    except ValueError:
        raise ValueError(f"{name}: weight of shape {w.shape} does not broadcast to the input's {loss.shape}") from None
    return _reduce(name, loss * w, reduction)


def binary_cross_entropy(input: Any, target: Any, weight: Any = None, reduction: str = "mean") -> Tensor:
    """Binary cross-entropy of probabilities ``input`` in [0, 1] (logs clamped at -100, as PyTorch does);
    ``weight`` rescales each element and broadcasts to the input's shape."""
    input, target = _pair("binary_cross_entropy", input, target)
    if ((input.data < 0) | (input.data > 1)).any():
        raise ValueError("binary_cross_entropy: input probabilities must lie in [0, 1]")
    _check_reduction("binary_cross_entropy", reduction)
    if weight is None:
        return fused.BinaryCrossEntropy.apply(input, target, reduction=reduction)
    loss = fused.BinaryCrossEntropy.apply(input, target, reduction="none")
    return _rescale("binary_cross_entropy", loss, weight, reduction)


def binary_cross_entropy_with_logits(input: Any, target: Any, weight: Any = None, reduction: str = "mean",
                                     pos_weight: Any = None) -> Tensor:
    """Binary cross-entropy on logits (sigmoid folded in, stable at any magnitude).

    ``weight`` rescales each element; ``pos_weight`` (broadcast over the last axis, e.g. one per
    class) multiplies the positive term: loss = -[pos_weight t log s(x) + (1 - t) log(1 - s(x))].
    """
    name = "binary_cross_entropy_with_logits"
    input, target = _pair(name, input, target)
    _check_reduction(name, reduction)
    if weight is None and pos_weight is None:
        return fused.BCEWithLogits.apply(input, target, reduction=reduction)
    if pos_weight is None:
        loss = fused.BCEWithLogits.apply(input, target, reduction="none")
    else:
        # -log s(x) = softplus(-x) = relu(-x) + log(1 + exp(-|x|)), and -log(1 - s(x)) = x + softplus(-x), so
        # loss = (1 - t) x + (1 + (pos_weight - 1) t) softplus(-x)
        pw = input._lift(constant(input, pos_weight, name, "pos_weight", input.dtype))
        softplus = (-input).relu() + ((-input.abs()).exp() + 1).log()
        loss = (1 - target) * input + (1 + (pw - 1) * target) * softplus
    return _reduce(name, loss, reduction) if weight is None else _rescale(name, loss, weight, reduction)
