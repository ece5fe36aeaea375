"""A strict test device: arrays that behave like CuPy's where it matters for finding device bugs.

CI has no GPU, so the device paths are tested on this device instead. Its arrays (``StrictArray``)
wrap a NumPy array and

* take part in NumPy's dispatch protocols (``__array_ufunc__``, ``__array_function__``), as CuPy's
  arrays do, so ``np.exp(a)``, ``np.where(m, a, b)`` and ``a @ b`` work and stay on the device;
* refuse implicit conversion to NumPy (``np.asarray(a)`` raises, like CuPy's "Implicit conversion to
  a NumPy array is not allowed"), and refuse to be mixed with NumPy arrays in one operation (CuPy:
  "Unsupported type <class 'numpy.ndarray'>"); Python and NumPy scalars mix freely, as in CuPy;
* copy to the host only through ``.get()`` (CuPy's name), ``.item()``, ``.tolist()``, ``float()``;
* refuse the NumPy features CuPy lacks (``_cupy_lacks``): ``where=`` on ufuncs, ``ufunc.reduce`` and
  ``accumulate`` beyond add and multiply, ``initial=`` on max/min, ``kind=`` on sort/argsort,
  ``keepdims=`` on count_nonzero.

``strict`` (the module object below) is the device's array module: ``strict.zeros(3)``,
``strict.asarray(host_array)``, and every other NumPy function, rewrapping what they return.
Creation functions that take no array (``np.zeros`` itself) would make a host array: the library
must call them through the device's module, which is what the tests check.
"""
from __future__ import annotations

import types
from typing import Any

import numpy as np
from numpy.lib.mixins import NDArrayOperatorsMixin


class DeviceMixError(TypeError):
    """A NumPy (host) array met a strict-device array in one operation."""


def _unwrap(x: Any, what: str) -> Any:
    """Strict arrays -> their NumPy data; host arrays -> an error; containers recursively."""
    if isinstance(x, StrictArray):
        return x._a
    if isinstance(x, np.ndarray):
        raise DeviceMixError(f"strict device: {what} got a NumPy array of shape {x.shape} (host memory) "
                             "mixed with device arrays; move it to the device first")
    if isinstance(x, (list, tuple)):
        return type(x)(_unwrap(v, what) for v in x)
    if isinstance(x, dict):
        return {k: _unwrap(v, what) for k, v in x.items()}
    return x


def _wrap(x: Any) -> Any:
    """NumPy arrays (and scalars, as CuPy returns 0-d arrays) -> strict arrays; containers recursively."""
    if isinstance(x, np.ndarray):
        return StrictArray(x)
    if isinstance(x, np.generic) and not isinstance(x, (np.str_, np.bytes_)):
        return StrictArray(np.asarray(x))
    if isinstance(x, (list, tuple)) and any(isinstance(v, (np.ndarray, np.generic)) for v in x):
        return type(x)(_wrap(v) for v in x)
    return x


class CupyLacksError(TypeError):
    """A NumPy feature that CuPy does not have (so the library must not use it on a device)."""


_REDUCING_UFUNCS = {"reduce": ("add", "multiply"), "accumulate": ("add", "multiply"), "reduceat": ("add",)}
_LACKING_KEYWORDS = {"max": "initial", "min": "initial", "amax": "initial", "amin": "initial", "sort": "kind",
                     "argsort": "kind", "count_nonzero": "keepdims"}


def _cupy_lacks(name: str, kwargs: dict) -> None:
    keyword = _LACKING_KEYWORDS.get(name)
    if keyword is not None and kwargs.get(keyword) is not None:
        raise CupyLacksError(f"strict device: CuPy's {name} takes no {keyword}=")


class StrictArray(NDArrayOperatorsMixin):
    """An array on the strict test device (see the module docstring)."""

    __slots__ = ("_a",)
    __array_priority__ = 2000

    def __init__(self, a: np.ndarray):
        object.__setattr__(self, "_a", a)

    # ---------------------------------------------------------------- protocols
    def __array__(self, dtype: Any = None, copy: Any = None) -> np.ndarray:
        raise TypeError("strict device: implicit conversion to a NumPy array is not allowed; "
                        "use .get() to copy to the host explicitly")

    def __array_ufunc__(self, ufunc: np.ufunc, method: str, *inputs: Any, **kwargs: Any) -> Any:
        if kwargs.get("where", True) is not True:
            raise CupyLacksError(f"strict device: CuPy's ufuncs take no where= (np.{ufunc.__name__})")
        if method in _REDUCING_UFUNCS and ufunc.__name__ not in _REDUCING_UFUNCS[method]:
            raise CupyLacksError(f"strict device: CuPy has no np.{ufunc.__name__}.{method}")
        inputs = _unwrap(inputs, f"np.{ufunc.__name__}")
        if "out" in kwargs:
            kwargs["out"] = _unwrap(kwargs["out"], f"np.{ufunc.__name__}(out=)")
        return _wrap(getattr(ufunc, method)(*inputs, **kwargs))

    def __array_function__(self, func: Any, types_: Any, args: tuple, kwargs: dict) -> Any:
        name = f"np.{func.__name__}"
        _cupy_lacks(func.__name__, kwargs)
        if kwargs.pop("like", None) is not None:  # np.zeros(..., like=a) creates on a's device, as CuPy does
            return getattr(strict, func.__name__)(*args, **kwargs)
        return _wrap(func(*_unwrap(args, name), **_unwrap(kwargs, name)))

    # ---------------------------------------------------------------- host copies (explicit only)
    def get(self) -> np.ndarray:
        return self._a.copy()

    def item(self) -> Any:
        return self._a.item()

    def tolist(self) -> Any:
        return self._a.tolist()

    def __float__(self) -> float:
        return float(self._a)

    def __int__(self) -> int:
        return int(self._a)

    def __index__(self) -> int:
        return self._a.__index__()

    def __bool__(self) -> bool:
        return bool(self._a)

    def __repr__(self) -> str:
        return "strict" + repr(self._a)[len("array"):] if repr(self._a).startswith("array") else repr(self._a)

    # ---------------------------------------------------------------- the ndarray API, staying on the device
    def __getitem__(self, index: Any) -> Any:
        return _wrap(self._a[_unwrap(index, "indexing")])

    def __setitem__(self, index: Any, value: Any) -> None:
        self._a[_unwrap(index, "item assignment")] = _unwrap(value, "item assignment")

    def __len__(self) -> int:
        return len(self._a)

    def __iter__(self) -> Any:
        return (StrictArray(np.asarray(v)) for v in self._a)

    def __getattr__(self, name: str) -> Any:
        # Only ndarray's public API; never the buffer or interface dunders NumPy could read host memory through.
        if name.startswith("_") or name in ("ctypes", "tobytes", "data", "base"):
            raise AttributeError(f"StrictArray has no attribute {name!r}")
        value = getattr(self._a, name)
        if callable(value):
            def method(*args: Any, **kwargs: Any) -> Any:
                _cupy_lacks(name, kwargs)
                return _wrap(value(*_unwrap(args, f".{name}()"), **_unwrap(kwargs, f".{name}()")))
            return method
        return _wrap(value) if name in ("T", "real", "imag", "flat") else value

    def __setattr__(self, name: str, value: Any) -> None:
        if name == "shape":
            self._a.shape = value
        else:
            raise AttributeError(f"StrictArray: cannot set {name!r}")

    def __copy__(self) -> "StrictArray":
        return StrictArray(self._a.copy())

    def __deepcopy__(self, memo: Any) -> "StrictArray":
        return StrictArray(self._a.copy())


def _device_function(fn: Any) -> Any:
    """A NumPy function as the strict device's: arguments must be device arrays, results become ones."""
    def call(*args: Any, **kwargs: Any) -> Any:
        return _wrap(fn(*_unwrap(args, f"strict.{fn.__name__}"), **_unwrap(kwargs, f"strict.{fn.__name__}")))
    call.__name__ = getattr(fn, "__name__", "function")
    return call


def _host_to_device(x: Any, dtype: Any = None, copy: Any = None) -> StrictArray:
    """``strict.asarray`` / ``strict.array``: the one door from the host onto the device (like cupy.asarray)."""
    if isinstance(x, StrictArray):
        return x if dtype is None or x.dtype == dtype else StrictArray(x._a.astype(dtype))
    return StrictArray(np.array(x, dtype=dtype))


class _Namespace(types.SimpleNamespace):
    """A module-like namespace that wraps NumPy's submodule ``base`` on first access of each name."""

    def __init__(self, base: Any):
        super().__init__()
        object.__setattr__(self, "_base", base)

    def __getattr__(self, name: str) -> Any:
        value = getattr(self._base, name)
        if isinstance(value, types.ModuleType):
            value = _Namespace(value)
        elif isinstance(value, np.ufunc):
            pass  # ufuncs dispatch through __array_ufunc__ already
        elif callable(value) and not isinstance(value, type):
            value = _device_function(value)
        setattr(self, name, value)
        return value


class _Generator:
    """A NumPy Generator whose draws land on the device (CuPy has its own generator per GPU)."""

    def __init__(self, seed: Any = None):
        self._g = np.random.default_rng(seed)

    def __getattr__(self, name: str) -> Any:
        value = getattr(self._g, name)
        return _device_function(value) if callable(value) else value


strict = _Namespace(np)
strict.random = _Namespace(np.random)
strict.random.default_rng = _Generator
strict.asarray = strict.array = strict.ascontiguousarray = _host_to_device
strict.ndarray = StrictArray
strict.__name__ = "strict"


def to_host(a: StrictArray) -> np.ndarray:
    return a.get()
