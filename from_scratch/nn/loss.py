"""Loss modules, named, laid out and reduced exactly as in ``torch.nn``; each forward is one functional call.

Layout: ``CrossEntropyLoss`` and ``NLLLoss`` take class scores on axis 1, as PyTorch does: input
(N, C) with target (N,), (N, C, d1, ...) with target (N, d1, ...), or unbatched (C,) with a
scalar target. (``F.cross_entropy`` and ``F.nll_loss`` default to classes on the last axis,
(..., C), the layout of a sequence model's logits; pass them ``class_axis=1`` for PyTorch's.)
Arguments after ``weight`` are keyword-only: PyTorch's deprecated ``size_average`` and ``reduce``
sit between them positionally, and are not taken here.
"""
from __future__ import annotations

from typing import Any

from .. import functional as F
from ..autograd.tensor import Tensor
from ..functional.inputs import as_tensor
from .module import Module

__all__ = ["CrossEntropyLoss", "NLLLoss", "MSELoss", "L1Loss", "BCELoss", "BCEWithLogitsLoss"]


class _Loss(Module):
    def __init__(self, reduction: str = "mean", **buffers: Any):
        super().__init__()
        if reduction not in ("mean", "sum", "none"):
            raise ValueError(f"{type(self).__name__}: reduction must be 'mean', 'sum' or 'none', got {reduction!r}")
        self.reduction = reduction
        # Rescaling weights are buffers, as in PyTorch: in the state dict, never trained.
        for name, value in buffers.items():
            self.register_buffer(name, None if value is None else as_tensor(value, type(self).__name__, name))


def _class_axis(input: Tensor) -> int:
    # PyTorch's rule: classes on axis 1 of a batched input, axis 0 of an unbatched (C,) one.
    return 1 if input.ndim >= 2 else -1


class CrossEntropyLoss(_Loss):
    """Softmax cross-entropy, as ``torch.nn.CrossEntropyLoss``: ``F.cross_entropy`` with classes on axis 1.

    Shape: input (N, C), (N, C, d1, ...) or (C,); target (N,), (N, d1, ...) or () of class ids ->
    a scalar, or the target's shape with ``reduction="none"``.
    """

    def __init__(self, weight: Any = None, *, ignore_index: int = -100, reduction: str = "mean",
                 label_smoothing: float = 0.0):
        super().__init__(reduction, weight=weight)
        self.ignore_index, self.label_smoothing = ignore_index, label_smoothing

    def forward(self, input: Tensor, target: Any) -> Tensor:
        input = as_tensor(input, "CrossEntropyLoss")
        return F.cross_entropy(input, target, self.weight, self.ignore_index, self.reduction, self.label_smoothing,
                               class_axis=_class_axis(input))


class NLLLoss(_Loss):
    """Negative log-likelihood of log-probabilities, as ``torch.nn.NLLLoss``: classes on axis 1.

    Shape: as ``CrossEntropyLoss``.
    """

    def __init__(self, weight: Any = None, *, ignore_index: int = -100, reduction: str = "mean"):
        super().__init__(reduction, weight=weight)
        self.ignore_index = ignore_index

    def forward(self, input: Tensor, target: Any) -> Tensor:
        input = as_tensor(input, "NLLLoss")
        return F.nll_loss(input, target, self.weight, self.ignore_index, self.reduction,
                          class_axis=_class_axis(input))


class MSELoss(_Loss):
    """Mean squared error. Shape: input and target of one shape -> a scalar (or that shape)."""

    def __init__(self, *, reduction: str = "mean"):
        super().__init__(reduction)

    def forward(self, input: Tensor, target: Any) -> Tensor:
        return F.mse_loss(input, target, self.reduction)


class L1Loss(_Loss):
    """Mean absolute error. Shape: input and target of one shape -> a scalar (or that shape)."""

    def __init__(self, *, reduction: str = "mean"):
        super().__init__(reduction)

    def forward(self, input: Tensor, target: Any) -> Tensor:
        return F.l1_loss(input, target, self.reduction)


class BCELoss(_Loss):
    """Binary cross-entropy of probabilities; ``weight`` rescales each element (broadcast to the input).

    Shape: input and target of one shape -> a scalar (or that shape).
    """

    def __init__(self, weight: Any = None, *, reduction: str = "mean"):
        super().__init__(reduction, weight=weight)

    def forward(self, input: Tensor, target: Any) -> Tensor:
        return F.binary_cross_entropy(input, target, self.weight, self.reduction)


class BCEWithLogitsLoss(_Loss):
    """Binary cross-entropy on logits; ``weight`` rescales each element, ``pos_weight`` the positive term
    (broadcast over the last axis: one per class).

    Shape: input and target of one shape -> a scalar (or that shape).
    """

    def __init__(self, weight: Any = None, *, reduction: str = "mean", pos_weight: Any = None):
        super().__init__(reduction, weight=weight, pos_weight=pos_weight)

    def forward(self, input: Tensor, target: Any) -> Tensor:
        return F.binary_cross_entropy_with_logits(input, target, self.weight, self.reduction, self.pos_weight)
