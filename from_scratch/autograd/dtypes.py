"""The default float dtype and the type-promotion rule every op follows.

The rule (PyTorch's, for the real dtypes we hold):

* A Python number (or NumPy scalar) beside a tensor is "weak": a float tensor keeps its dtype
  (``float32 * 2.5`` is float32); an integer tensor keeps its dtype with an integer number and
  becomes the default float dtype with a float one (``int64 * 1.5`` is float32).
* Two tensors: float with float gives the wider float (float32 + float64 is float64); integer or
  bool with float gives the float tensor's dtype (int64 + float32 is float32, where NumPy gives
  float64); integer with integer follows NumPy (int32 + int64 is int64).
* Ops whose result is a float whatever the inputs (``/``, ``sqrt``, ``exp``, ``log``, ``tanh``,
  ``sigmoid``, ``mean``) turn integer and bool inputs into the default float dtype first, so
  ``int / int`` is float32.

Arrays and lists beside a float tensor take the tensor's dtype, as numbers do. The rule is applied
in one place, ``Tensor``'s operand preparation (``promote``); comparisons give bool.
"""
from __future__ import annotations

from typing import Any

import numpy as np

__all__ = ["set_default_dtype", "get_default_dtype", "operand_dtypes"]

_default_dtype = [np.dtype(np.float32)]


def set_default_dtype(dtype: Any) -> None:
    """Set the float dtype that new tensors made from Python floats or float arrays get."""
    dtype = np.dtype(dtype)
    if dtype.kind != "f":
        raise TypeError(f"set_default_dtype: {dtype} is not a floating dtype")
    _default_dtype[0] = dtype


def get_default_dtype() -> np.dtype:
    """Return the default float dtype (float32 unless changed)."""
    return _default_dtype[0]


def constant_dtype(tensor_dtype: np.dtype, value: Any) -> np.dtype | None:
    """The dtype a non-Tensor ``value`` (number, list, array) takes beside a tensor of ``tensor_dtype``,
    or None to let NumPy decide (an integer array beside an integer tensor)."""
    if tensor_dtype.kind == "f":
        return tensor_dtype
    kind = value.dtype.kind if hasattr(value, "dtype") else np.asarray(value).dtype.kind  # host: a number or list
    if kind == "f":
        return _default_dtype[0]
    if isinstance(value, (int, np.integer, np.bool_)):  # a weak number (bool is an int) keeps the tensor's dtype
        return np.dtype(np.int64) if tensor_dtype.kind == "b" and kind != "b" else tensor_dtype
    return None


def operand_dtypes(a: np.dtype, b: np.dtype, floating: bool = False) -> tuple[np.dtype | None, np.dtype | None]:
    """The dtypes two tensor operands must be cast to before an op (None: keep), by the rule above.

    Floats are never cast here (float32 with float64 is left to NumPy, which gives float64 and
    keeps gradients flowing); only integer and bool operands become floats."""
    fa, fb = a.kind == "f", b.kind == "f"
    if fa and fb:
        return None, None
    if fa or fb:
        target = a if fa else b
        return (None, target) if fa else (target, None)
    if floating:
        return _default_dtype[0], _default_dtype[0]
    return None, None
