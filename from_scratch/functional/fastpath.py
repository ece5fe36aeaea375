"""The one switch between the plain versions and the fused fast paths.

Every function here that has a fused fast path (``softmax``, ``log_softmax``, ``cross_entropy``,
``layer_norm``, ``add_layer_norm``, ``batch_norm``, ``linear``, ``feed_forward``,
``scaled_dot_product_attention``, ``multi_head_attention``) stands beside its plain version, ``<name>_simple``: a few lines composed
from the primitive Tensor ops, the definition to read. The public function checks its inputs, then
runs the fused node (``autograd/fused*.py``) while ``fused_enabled()``, else the plain version.
``conv2d`` and ``conv1d`` with one group have one too (``autograd/fused_conv.py``); their plain version,
the composition of ``Unfold`` and a product, is the same call under ``use_fused(False)``.
The fast paths are on by default; ``use_fused(False)`` switches them all off at once.
"""
from __future__ import annotations

from typing import Any

__all__ = ["use_fused", "fused_enabled"]


class _Switch:
    enabled = True


def fused_enabled() -> bool:
    """Whether ``functional`` runs its fused fast paths (True unless switched off by ``use_fused``)."""
    return _Switch.enabled


class use_fused:
    """Switch the fused fast paths on or off. Like ``torch.set_grad_enabled`` it takes effect at once,
    and in a ``with`` block it is undone at the end: ``with F.use_fused(False): loss = model(x)``."""

    def __init__(self, enabled: bool):
        self.prev, _Switch.enabled = _Switch.enabled, bool(enabled)

    def __enter__(self) -> "use_fused":
        return self

    def __exit__(self, *exc: Any) -> None:
        _Switch.enabled = self.prev
