"""Flatten: merge a range of axes into one, as ``torch.nn.Flatten``."""
from __future__ import annotations

from ..autograd.tensor import Tensor
from ..functional.inputs import as_tensor
from .module import Module


class Flatten(Module):
    """Merge axes ``start_dim`` .. ``end_dim`` (default: all but the batch axis): (N, C, H, W) -> (N, C*H*W)."""

    def __init__(self, start_dim: int = 1, end_dim: int = -1):
        super().__init__()
        self.start_dim, self.end_dim = start_dim, end_dim

    def forward(self, x: Tensor) -> Tensor:
        return as_tensor(x, "Flatten").flatten(self.start_dim, self.end_dim)

    def extra_repr(self) -> str:
        return f"start_dim={self.start_dim}, end_dim={self.end_dim}"
