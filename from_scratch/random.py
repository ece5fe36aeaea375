"""The library's random generator: one seeded NumPy Generator for init, dropout and data."""
from __future__ import annotations

from typing import Any

import numpy as np

_rng = [np.random.default_rng(0)]


def manual_seed(seed: int) -> None:
    """Seed the generator behind parameter init, dropout and the task data."""
    _rng[0] = np.random.default_rng(seed)


def get_rng() -> np.random.Generator:
    """Return the library's current generator."""
    return _rng[0]


def get_rng_state() -> dict[str, Any]:
    """Return the generator state as a JSON-serialisable dict (saved in checkpoints)."""
    return _rng[0].bit_generator.state


def set_rng_state(state: dict[str, Any]) -> None:
    """Restore a state from ``get_rng_state``."""
    _rng[0].bit_generator.state = state


def dropout_scale(shape: tuple, p: float, dtype: Any) -> np.ndarray | None:
    """Inverted dropout's multiplier for 0 <= p < 1: 0 with probability p, else 1 / (1 - p) (None when p is 0).

    Every dropout in the library draws here, so the fused blocks drop exactly what the composed ops would.
    """
    if not p:
        return None
    keep = _rng[0].random(shape) >= p
    return (keep * (1 / (1 - p))).astype(dtype)
