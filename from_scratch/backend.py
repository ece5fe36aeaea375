"""Devices: where a tensor's array lives, the array module of a device, copies between devices.

This is the only file that knows about CuPy, and it imports it lazily, the first time a ``cuda``
device is asked for. A device is named as in PyTorch: ``"cpu"``, ``"cuda"`` (the current GPU),
``"cuda:N"``. Every array belongs to exactly one device, and the array module of that device
(``numpy`` for the CPU, ``cupy`` for a GPU) is the one that creates and transforms it, as DeZero's
``cuda.get_array_module`` and Chainer's ``backend`` do. Unlike DeZero, asking for ``cuda`` where CuPy
or a GPU is missing is an error, never a quiet fall back to NumPy.

Other array types can be registered as devices (``register_device``): the test suite registers a
"strict" device whose arrays refuse, as CuPy's do, to be mixed with NumPy arrays or turned into one
implicitly, so the device paths are tested on machines without a GPU.
"""
from __future__ import annotations

from dataclasses import dataclass
from types import ModuleType
from typing import Any, Callable

import numpy as np

__all__ = ["Device", "device", "device_module", "get_array_module", "device_of", "is_array", "to_device",
           "as_numpy", "is_available", "is_device_spec", "synchronize", "register_device", "on_device_of", "scatter_add",
           "CUDA_INSTALL_HINT"]

CUDA_INSTALL_HINT = ('install CuPy for your CUDA version: pip install -e ".[cuda]" (cupy-cuda13x, CUDA 13) '
                     'or ".[cuda12]" (cupy-cuda12x, CUDA 12), on a machine with an NVIDIA GPU and driver')


class Device:
    """A device, named like ``torch.device``: ``Device("cpu")``, ``Device("cuda")``, ``Device("cuda:1")``.

    ``type`` is ``"cpu"``, ``"cuda"`` or a registered type; ``index`` is the GPU number (None for the
    CPU). Devices compare equal by type and index; a plain ``"cuda"`` is resolved to the current GPU's
    index when made, so ``Device("cuda") == Device("cuda:0")`` on a one-GPU machine.

    Raises:
        ValueError: for a name that is not ``cpu``, ``cuda``, ``cuda:N`` or a registered type.
        RuntimeError: for ``cuda`` where CuPy is not installed or sees no GPU.
    """

    __slots__ = ("type", "index")

    def __init__(self, spec: "str | Device", index: int | None = None):
        if isinstance(spec, Device):
            spec, index = spec.type, spec.index if index is None else index
        if not isinstance(spec, str):
            raise TypeError(f"device: expected a name such as 'cpu' or 'cuda:0', got {type(spec).__name__}")
        kind, _, num = spec.partition(":")
        if num:
            if index is not None or not num.isdigit():
                raise ValueError(f"device: cannot read {spec!r}; expected 'cpu', 'cuda' or 'cuda:N'")
            index = int(num)
        if kind == "cpu":
            if index not in (None, 0):
                raise ValueError(f"device: the CPU has no index, got {spec!r}")
            index = None
        elif kind == "cuda":
            index = _current_gpu() if index is None else index
        elif kind not in _registered:
            raise ValueError(f"device: unknown device {spec!r}; expected 'cpu', 'cuda' or 'cuda:N'")
        self.type, self.index = kind, index

    def __eq__(self, other: Any) -> bool:
        if isinstance(other, str):
            other = Device(other)
        return isinstance(other, Device) and (self.type, self.index) == (other.type, other.index)

    def __hash__(self) -> int:
        return hash((self.type, self.index))

    def __str__(self) -> str:
        return self.type if self.index is None else f"{self.type}:{self.index}"

    def __repr__(self) -> str:
        return f"device(type='{self.type}'" + ("" if self.index is None else f", index={self.index}") + ")"


def is_device_spec(spec: Any) -> bool:
    """Whether ``spec`` names a device (a ``Device``, or a string ``cpu``, ``cuda``, ``cuda:N`` or of a
    registered type) rather than something else, such as a dtype name (``"float64"``)."""
    return isinstance(spec, Device) or (isinstance(spec, str) and spec.partition(":")[0] in ("cpu", "cuda",
                                                                                              *_registered))


def device(spec: "str | Device | None" = None) -> Device:
    """Return the ``Device`` named by ``spec`` (``None`` means the CPU)."""
    return CPU if spec is None or spec == "cpu" else (spec if isinstance(spec, Device) else Device(spec))


# ---------------------------------------------------------------- the CUDA side (CuPy, imported lazily)

_cupy: list[Any] = []  # [cupy] once imported


def _import_cupy() -> ModuleType:
    if not _cupy:
        try:
            import cupy
        except ImportError as exc:
            raise RuntimeError(f"device cuda: CuPy is not installed ({exc}); {CUDA_INSTALL_HINT}") from None
        try:
            count = cupy.cuda.runtime.getDeviceCount()
        except Exception as exc:  # CuPy raises its own CUDARuntimeError when no driver is found
            raise RuntimeError(f"device cuda: CuPy is installed but no GPU is usable ({exc})") from None
        if count == 0:
            raise RuntimeError("device cuda: CuPy is installed but no GPU is visible")
        _cupy.append(cupy)
    return _cupy[0]


def _current_gpu() -> int:
    return _import_cupy().cuda.runtime.getDevice()


def synchronize(spec: "str | Device" = "cuda") -> None:
    """Wait until every kernel queued on a GPU has finished (GPU work is asynchronous: read a clock after
    this, never before). Nothing to wait for on the CPU or a registered device."""
    dev = device(spec)
    if dev.type == "cuda":
        _import_cupy().cuda.Device(dev.index).synchronize()


def is_available() -> bool:
    """Whether ``cuda`` can be used here: CuPy imports and sees at least one GPU."""
    try:
        _import_cupy()
    except RuntimeError:
        return False
    return True


# ---------------------------------------------------------------- registered devices (the test device)

@dataclass(frozen=True)
class _Registered:
    module: Any                       # the array module: creation functions and NumPy's API
    array_type: type                  # the arrays that live there
    from_host: Callable[[np.ndarray], Any]
    to_host: Callable[[Any], np.ndarray]


_registered: dict[str, _Registered] = {}


def register_device(kind: str, module: Any, array_type: type, from_host: Callable[[np.ndarray], Any],
                    to_host: Callable[[Any], np.ndarray]) -> None:
    """Make ``kind`` a device whose arrays are ``array_type``, created by ``module`` (used by the tests)."""
    if kind in ("cpu", "cuda"):
        raise ValueError(f"register_device: {kind!r} is built in")
    _registered[kind] = _Registered(module, array_type, from_host, to_host)


CPU = Device("cpu")


# ---------------------------------------------------------------- arrays and devices

def device_module(dev: "Device | str") -> Any:
    """The array module of a device: ``numpy`` for the CPU, ``cupy`` for ``cuda``.

    Raises:
        RuntimeError: for ``cuda`` when CuPy is missing or sees no GPU (never falls back to NumPy).
    """
    dev = device(dev)
    if dev.type == "cpu":
        return np
    if dev.type == "cuda":
        return _import_cupy()
    return _registered[dev.type].module


def get_array_module(*arrays: Any) -> Any:
    """The array module of the arrays' device (CuPy's and DeZero's function of the same name): ``numpy``
    unless one of them lives on another device. Scalars and non-arrays count as the CPU."""
    for a in arrays:
        if type(a) is not np.ndarray and is_array(a):
            return device_module(device_of(a))
    return np


def is_array(x: Any) -> bool:
    """Whether ``x`` is an array of some device: a NumPy array, a CuPy array, a registered device's array."""
    if isinstance(x, np.ndarray):
        return True
    if any(isinstance(x, reg.array_type) for reg in _registered.values()):
        return True
    return bool(_cupy) and isinstance(x, _cupy[0].ndarray)


def device_of(array: Any) -> Device:
    """The device an array lives on (NumPy arrays and scalars: the CPU)."""
    if isinstance(array, (np.ndarray, np.generic)):
        return CPU
    for kind, reg in _registered.items():
        if isinstance(array, reg.array_type):
            return Device(kind)
    if _cupy and isinstance(array, _cupy[0].ndarray):
        return Device("cuda", array.device.id)
    raise TypeError(f"device_of: {type(array).__name__} is not an array of any known device")


def as_numpy(array: Any) -> np.ndarray:
    """Copy an array to the host as a NumPy array (no copy when it is one already)."""
    dev = device_of(array)
    if dev.type == "cpu":
        return np.asarray(array)
    if dev.type == "cuda":
        return array.get()
    return _registered[dev.type].to_host(array)


def to_device(array: Any, dev: "Device | str") -> Any:
    """The array on ``dev``: itself when it is there already, else a copy (through the host between
    two non-CPU device types)."""
    dev, src = device(dev), device_of(array)
    if src == dev:
        return array
    host = as_numpy(array)
    if dev.type == "cpu":
        return host
    if dev.type == "cuda":
        cupy = _import_cupy()
        with cupy.cuda.Device(dev.index):
            return cupy.asarray(host)
    return _registered[dev.type].from_host(host)


def scatter_add(a: Any, indices: Any, values: Any) -> None:
    """``a[indices] += values`` in place with repeated indices adding up (``np.add.at``), on ``a``'s device:
    NumPy's ``np.add.at`` on the CPU and on registered devices (which dispatch it), ``cupyx.scatter_add``
    on a GPU (an atomic add per element)."""
    if type(a) is np.ndarray or not (_cupy and isinstance(a, _cupy[0].ndarray)):
        np.add.at(a, indices, values)
    else:
        import cupyx
        cupyx.scatter_add(a, indices, values)


def on_device_of(like: Any, value: Any, name: str, what: str, dtype: Any = None) -> Any:
    """``value`` as an array (in ``dtype`` if given) on the device of the array ``like``, for the constant
    arguments of an op (indices, targets, masks, class weights).

    The rule is PyTorch's: an array of another device is an error naming both devices, never a silent copy
    (a training step would pay a host-device transfer for it unseen); a list or number, which lives on no
    device, is made on ``like``'s.

    Raises:
        RuntimeError: ``value`` is an array on another device than ``like``.
    """
    if is_array(value):
        if type(value) is not type(like) or device_of(value) != device_of(like):
            raise RuntimeError(f"{name}: {what} is on {device_of(value)} but the input is on {device_of(like)}; "
                               "expected all tensors on one device (move it with .to(device))")
        return value if dtype is None else value.astype(dtype, copy=False)
    host = np.asarray(value, dtype=dtype)
    return host if type(like) is np.ndarray else to_device(host, device_of(like))
