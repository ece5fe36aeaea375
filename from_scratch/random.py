"""The library's random generators: one seeded NumPy Generator for init, dropout and data on the CPU, and
one per other device (CuPy's own generator on a GPU), seeded by the same ``manual_seed``.

Parameters are initialised on the CPU (a model is built there and moved with ``.to(device)``, as in
PyTorch), so one seed gives the same initial weights on every device. Draws made on a device (dropout
masks, ``randn(..., device=)``) come from that device's generator: one seed on one device gives the same
run every time, but a GPU's draws differ from the CPU's. Checkpoints save the CPU generator's state only
(``get_rng_state``); a device generator is re-seeded from the last ``manual_seed`` when first used.
"""
from __future__ import annotations

from typing import Any

import numpy as np

from . import backend

_rng = [np.random.default_rng(0)]  # host: the CPU's generator
_seed = [0]
_device_rngs: dict = {}  # Device -> that device's generator, made on first use


def manual_seed(seed: int) -> None:
    """Seed the generators behind parameter init, dropout and the task data (every device's)."""
    _rng[0] = np.random.default_rng(seed)  # host: the CPU's generator
    _seed[0] = seed
    _device_rngs.clear()


def get_rng(device: Any = None) -> Any:
    """Return the library's current generator for ``device`` (the CPU's NumPy Generator by default)."""
    if device is None or device == "cpu":
        return _rng[0]
    device = backend.device(device)
    if device not in _device_rngs:
        _device_rngs[device] = backend.device_module(device).random.default_rng(_seed[0])
    return _device_rngs[device]


def get_rng_state() -> dict[str, Any]:
    """Return the generator state as a JSON-serialisable dict (saved in checkpoints)."""
    return _rng[0].bit_generator.state


def set_rng_state(state: dict[str, Any]) -> None:
    """Restore a state from ``get_rng_state``."""
    _rng[0].bit_generator.state = state


def dropout_scale(shape: tuple, p: float, dtype: Any, like: Any = None) -> Any:
    """Inverted dropout's multiplier for 0 <= p < 1: 0 with probability p, else 1 / (1 - p) (None when p is 0),
    drawn on the device of the array ``like`` (the CPU if None) from that device's generator.

    Every dropout in the library draws here, so the fused blocks drop exactly what the composed ops would.
    """
    if not p:
        return None
    on_cpu = like is None or type(like) is np.ndarray
    keep = get_rng(None if on_cpu else backend.device_of(like)).random(shape) >= p
    return (keep * (1 / (1 - p))).astype(dtype)
