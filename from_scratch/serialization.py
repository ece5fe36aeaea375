"""save/load in the safetensors format: plain arrays and a JSON header, never pickle."""
from __future__ import annotations

import os
import tempfile
from typing import Any, Mapping

import numpy as np

from . import backend

__all__ = ["save", "load", "load_metadata", "atomic_write"]


def atomic_write(path: str | os.PathLike, data: bytes) -> None:
    """Write ``data`` to a temporary file beside ``path``, then rename it over ``path``.

    A process killed mid-write leaves the old file untouched: the rename is atomic.
    """
    path = os.fspath(path)
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=os.path.basename(path) + ".", suffix=".tmp")
    try:
        # mkstemp makes the file private (0600); give it the mode a plain open() would have.
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise


def save(state_dict: Mapping[str, Any], path: str | os.PathLike, metadata: Mapping[str, str] | None = None) -> None:
    """Write name -> array (or Tensor, on any device: copied to the host) to ``path`` as safetensors, atomically."""
    from safetensors.numpy import save as st_save

    from .autograd.tensor import Tensor
    if not isinstance(state_dict, Mapping):
        raise TypeError(f"save: takes a mapping of names to arrays, such as model.state_dict() or "
                        f"optimizer.state_dict(), got {type(state_dict).__name__} (a whole object is never "
                        f"pickled: save its state_dict)")
    arrays = {}
    for name, value in state_dict.items():
        value = value.data if isinstance(value, Tensor) else value  # (an ndarray's .data is a buffer)
        arr = backend.as_numpy(value) if backend.is_array(value) else np.asarray(value)  # host: the file's copy
        arrays[name] = np.ascontiguousarray(arr).reshape(arr.shape)  # host (ascontiguousarray makes 0-d 1-d)
    atomic_write(path, st_save(arrays, metadata=dict(metadata) if metadata else None))


def _read(path: str | os.PathLike) -> bytes:
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"load: no file at {path}")
    with open(path, "rb") as f:
        return f.read()


def load(path: str | os.PathLike) -> dict[str, np.ndarray]:
    """Read a safetensors file into name -> ndarray, on the host (``load_state_dict`` copies each array onto
    its parameter's device). Nothing in the file is ever executed."""
    from safetensors.numpy import load as st_load
    try:
        return dict(st_load(_read(path)))
    except (FileNotFoundError, IsADirectoryError):
        raise
    except Exception as e:  # the Rust parser raises its own error types
        raise ValueError(f"load: {os.fspath(path)} is not a valid safetensors file ({e})") from None


def load_metadata(path: str | os.PathLike) -> dict[str, str]:
    """Read only the string metadata of a safetensors file's header."""
    import json
    import struct
    raw = _read(path)
    try:
        (n,) = struct.unpack("<Q", raw[:8])
        if n > len(raw) - 8:
            raise ValueError("header longer than the file")
        header = json.loads(raw[8:8 + n])
        return dict(header.get("__metadata__", {}))
    except Exception as e:
        raise ValueError(f"load: {os.fspath(path)} is not a valid safetensors file ({e})") from None
