"""The named (values, indices) pairs that ``max(dim=)``, ``min(dim=)``, ``sort`` and ``topk`` return.

Named and shaped as PyTorch's ``torch.return_types``: they unpack like a tuple (``v, i = x.sort()``)
and name their fields (``x.max(dim=1).indices``).
"""
from __future__ import annotations

from typing import Any, NamedTuple

__all__ = ["max", "min", "sort", "topk"]


class max(NamedTuple):  # noqa: A001 (PyTorch's name)
    values: Any
    indices: Any


class min(NamedTuple):  # noqa: A001 (PyTorch's name)
    values: Any
    indices: Any


class sort(NamedTuple):
    values: Any
    indices: Any


class topk(NamedTuple):
    values: Any
    indices: Any
