"""Tensor: an ndarray that remembers how it was made, so gradients can flow back."""
from __future__ import annotations

from typing import Any, Callable, Iterable

import math

import numpy as np

from .. import backend
from . import graph, hooks, inplace, ops, reduce_ops, shape_ops
from .dim_args import dim_alias, indices_by_dim
from .dtypes import constant_dtype, get_default_dtype, operand_dtypes, set_default_dtype
from .function import Function, detect_anomaly, enable_grad, is_grad_enabled, no_grad
from .tensor_api import TensorAPIMixin
from .tensor_shape import TensorShapeMixin, as_index

__all__ = ["Tensor", "Function", "no_grad", "enable_grad", "is_grad_enabled", "detect_anomaly",
           "set_default_dtype", "get_default_dtype", "cat", "stack", "where"]

def _as_array(data: Any, dtype: Any = None, device: Any = None) -> Any:
    """``data`` as an array for a Tensor: on ``device`` if given (else where it already lives: the CPU for
    lists, numbers and NumPy arrays), floats in the default dtype unless ``dtype`` says otherwise."""
    if isinstance(data, Tensor):
        data = data.data
    if type(data) is np.ndarray or not backend.is_array(data):  # host data
        arr = np.asarray(data, dtype=dtype)  # host: moved to ``device`` below if one is given
    else:  # an array of a device stays there; np.asarray would copy it to the host, or refuse as CuPy does
        arr = data if dtype is None else data.astype(dtype, copy=False)
    if dtype is None:
        if arr.dtype.kind == "f":
            arr = arr.astype(get_default_dtype(), copy=False)  # floats become the default dtype
        elif arr.dtype.kind not in "iub":
            raise TypeError(f"Tensor: cannot hold data of dtype {arr.dtype}")
    return arr if device is None else backend.to_device(arr, device)


class Tensor(TensorShapeMixin, TensorAPIMixin):
    """An n-dimensional array with reverse-mode automatic differentiation."""

    # _vc: the version counter (see inplace.py), made on first use; _history: values before in-place changes
    __slots__ = ("data", "grad", "requires_grad", "_ctx", "_vc", "_history", "__weakref__")
    __array_priority__ = 1000  # ndarray <op> Tensor defers to Tensor's reflected ops

    def __init__(self, data: Any, requires_grad: bool = False, dtype: Any = None, device: Any = None):
        self.data = _as_array(data, dtype, device)
        if requires_grad and self.data.dtype.kind != "f":
            raise TypeError(f"Tensor: requires_grad=True needs floating data, got dtype {self.data.dtype}")
        self.grad: np.ndarray | None = None
        self.requires_grad = requires_grad
        self._ctx: Function | None = None
        self._vc: list | None = None

    @classmethod
    def _make(cls, data: np.ndarray, requires_grad: bool) -> "Tensor":
        # Fast constructor for op outputs: no conversion, no checks.
        t = object.__new__(Tensor)
        t.data, t.grad, t.requires_grad, t._ctx, t._vc = data, None, requires_grad, None, None
        return t

    # ------------------------------------------------------------ attributes
    shape = property(lambda self: self.data.shape)
    ndim = property(lambda self: self.data.ndim)
    dtype = property(lambda self: self.data.dtype)
    T = property(lambda self: self.permute(*range(self.ndim - 1, -1, -1)))
    is_leaf = property(lambda self: self._ctx is None)
    _creator = property(lambda self: self._ctx)  # the Function that made this tensor (None for a leaf): PyTorch's grad_fn
    _version = property(inplace.version)  # how many in-place changes this tensor's data has seen

    @property
    def device(self) -> backend.Device:
        """The device this tensor's array lives on (``cpu``, ``cuda:N``); see ``from_scratch.backend``."""
        return backend.device_of(self.data)

    def item(self) -> float:
        return self.data.item()  # from a GPU: a copy to the host, and a wait for the GPU's queued work

    def numpy(self) -> np.ndarray:
        """The data as a NumPy array: this tensor's own array on the CPU, a copy to the host from a device."""
        return self.data if type(self.data) is np.ndarray else backend.as_numpy(self.data)

    def tolist(self) -> Any:
        return self.data.tolist()

    def detach(self) -> "Tensor":
        """Return a tensor sharing this data (and its version counter), cut from the graph."""
        return inplace.share_version(Tensor._make(self.data, False), self)

    def astype(self, dtype: Any) -> "Tensor":
        """Return a copy converted to ``dtype``, cut from the graph."""
        return Tensor._make(self.data.astype(dtype), False)

    def __len__(self) -> int:
        return len(self.data)

    def __repr__(self) -> str:
        grad = ", requires_grad=True" if self.requires_grad else ""
        device = "" if self.device.type == "cpu" else f", device='{self.device}'"
        body = np.array2string(self.numpy(), separator=", ", prefix="Tensor(")
        return f"Tensor({body}, dtype={self.data.dtype}{device}{grad})"

    __hash__ = object.__hash__

    def __bool__(self) -> bool:
        return bool(self.data)

    def __array__(self, dtype: Any = None, copy: Any = None) -> np.ndarray:
        if type(self.data) is not np.ndarray:  # as PyTorch: no implicit copy off a device
            raise TypeError(f"Tensor: cannot turn a tensor on {self.device} into a NumPy array implicitly; "
                            "use .numpy() or .cpu() to copy it to the host")
        return self.data if dtype is None else self.data.astype(dtype)

    def zero_grad(self) -> None:
        self.grad = None

    def requires_grad_(self, flag: bool = True) -> "Tensor":
        if flag and self.data.dtype.kind != "f":
            raise TypeError(f"Tensor: requires_grad=True needs floating data, got dtype {self.data.dtype}")
        self.requires_grad = flag
        return self

    # ------------------------------------------------------------ autograd
    def backward(self, grad: Any = None, retain_graph: bool = False) -> None:
        """Back-propagate from this tensor, adding into ``.grad`` of every leaf that needs it."""
        if not self.requires_grad:
            raise RuntimeError("backward: this tensor does not require grad and has no graph")
        if grad is None:
            if self.data.size != 1:
                raise RuntimeError(f"backward: grad can be implied only for a one-element tensor, "
                                   f"this one has shape {self.shape}; pass grad=")
            grad = np.ones_like(self.data)  # on this tensor's device
        else:
            grad = _as_array(grad, self.dtype)
            if type(grad) is not type(self.data):
                raise RuntimeError(f"backward: grad on {backend.device_of(grad)} for a tensor on {self.device}")
            if grad.shape != self.shape:
                raise ValueError(f"backward: grad of shape {grad.shape} for a tensor of shape {self.shape}")
        if self._ctx is None:
            graph.accumulate_leaf(self, grad)
            hooks.run([self])
            return
        graph.run_backward(self, grad, retain_graph)

    def register_post_accumulate_grad_hook(self, hook: Callable[["Tensor"], None]) -> hooks.RemovableHandle:
        """Call ``hook(self)`` in every backward once this leaf's gradient is final (PyTorch's name), even
        when no gradient reached it. Returns a handle with ``remove()``. See ``autograd/hooks.py``."""
        return hooks.register(self, hook)

    # ------------------------------------------------------------ arithmetic
    def _lift(self, other: Any) -> "Tensor":
        """Wrap a number, list or ndarray as a constant tensor of the dtype the promotion rule gives it
        beside this tensor (see dtypes.py): this tensor's own dtype when that is a float."""
        if isinstance(other, Tensor):
            return other
        dtype = self.data.dtype
        if dtype.kind != "f":
            dtype = constant_dtype(dtype, other)
            if dtype is None:
                return Tensor(other)
        if type(self.data) is np.ndarray:
            return Tensor._make(np.asarray(other, dtype=dtype), False)  # host: beside a CPU tensor
        return Tensor._make(_device_constant(other, dtype, self.data), False)

    def _operands(self, other: Any, floating: bool = False) -> tuple["Tensor", "Tensor"]:
        """Self and other as an op takes them: cast by the promotion rule (dtypes.py), the one place it is
        applied; ``floating``: the op's result is a float whatever its inputs (true division)."""
        b = other if isinstance(other, Tensor) else self._lift(other)
        if self.data.dtype.kind == "f" and b.data.dtype.kind == "f":
            return self, b
        da, db = operand_dtypes(self.data.dtype, b.data.dtype, floating)
        return (self if da is None else Tensor._make(self.data.astype(da), False),
                b if db is None else Tensor._make(b.data.astype(db), False))

    def _floating(self) -> "Tensor":
        """This tensor, or for integer or bool data a constant copy in the default float dtype (float ops)."""
        return self if self.data.dtype.kind == "f" else Tensor._make(self.data.astype(get_default_dtype()), False)

    def __add__(self, o): return ops.Add.apply(*self._operands(o))
    def __radd__(self, o): return ops.Add.apply(*self._operands(o)[::-1])
    def __sub__(self, o): return ops.Sub.apply(*self._operands(o))
    def __rsub__(self, o): return ops.Sub.apply(*self._operands(o)[::-1])
    def __mul__(self, o): return ops.Mul.apply(*self._operands(o))
    def __rmul__(self, o): return ops.Mul.apply(*self._operands(o)[::-1])
    def __truediv__(self, o): return ops.Div.apply(*self._operands(o, floating=True))
    def __rtruediv__(self, o): return ops.Div.apply(*self._operands(o, floating=True)[::-1])
    def __pow__(self, o): return ops.Pow.apply(*self._operands(o))
    def __rpow__(self, o): return ops.Pow.apply(*self._operands(o)[::-1])
    def __matmul__(self, o): return ops.MatMul.apply(*self._operands(o))
    def __rmatmul__(self, o): return ops.MatMul.apply(*self._operands(o)[::-1])
    def __neg__(self): return ops.Neg.apply(self)

    # Comparisons give bool tensors with no gradient.
    def __eq__(self, o): return _compare(np.equal, "eq", "==", self, o)
    def __ne__(self, o): return _compare(np.not_equal, "ne", "!=", self, o)
    def __lt__(self, o): return _compare(np.less, "lt", "<", self, o)
    def __le__(self, o): return _compare(np.less_equal, "le", "<=", self, o)
    def __gt__(self, o): return _compare(np.greater, "gt", ">", self, o)
    def __ge__(self, o): return _compare(np.greater_equal, "ge", ">=", self, o)

    # ------------------------------------------------------------ elementwise
    def exp(self): return ops.Exp.apply(self._floating())
    def log(self): return ops.Log.apply(self._floating())
    def sqrt(self): return ops.Sqrt.apply(self._floating())
    def abs(self): return ops.Abs.apply(self)
    def tanh(self): return ops.Tanh.apply(self._floating())
    def sigmoid(self): return ops.Sigmoid.apply(self._floating())
    def relu(self): return ops.ReLU.apply(self)

    def clip(self, min: float | None = None, max: float | None = None) -> "Tensor":
        return ops.Clip.apply(self, lo=min, hi=max)

    clamp = clip

    def maximum(self, other: Any) -> "Tensor":
        return ops.Maximum.apply(*self._operands(other))

    def minimum(self, other: Any) -> "Tensor":
        # ops.Maximum serves both: largest=False picks the smaller, with the same tie rule
        return ops.Maximum.apply(*self._operands(other), largest=False)

    def masked_fill(self, mask: Any, value: float) -> "Tensor":
        """Return a copy with ``value`` wherever ``mask`` is true."""
        return where(mask, self._lift(value), self)

    # ------------------------------------------------------------ reductions
    @dim_alias
    def sum(self, axis: int | tuple | None = None, keepdims: bool = False) -> "Tensor":
        return reduce_ops.Sum.apply(self, axis=axis, keepdims=keepdims)

    @dim_alias
    def mean(self, axis: int | tuple | None = None, keepdims: bool = False) -> "Tensor":
        """The mean (in the default float dtype for integer data); NaN over an empty axis, as in PyTorch."""
        out = reduce_ops.Sum.apply(self._floating(), axis=axis, keepdims=keepdims, name="mean")
        n = _reduced_count("mean", self.shape, axis)
        return out * (1 / n if n else np.nan)

    @dim_alias
    def var(self, axis: int | tuple | None = None, keepdims: bool = False, correction: int = 1) -> "Tensor":
        """Variance with Bessel's correction by default, like ``torch.var``: NaN (or inf) when the axis holds
        no more than ``correction`` elements."""
        x = self._floating()
        n = _reduced_count("var", self.shape, axis)
        mean = reduce_ops.Sum.apply(x, axis=axis, keepdims=True, name="var") * (1 / n if n else np.nan)
        centered = x - mean
        with np.errstate(divide="ignore", invalid="ignore"):
            return (centered * centered).sum(axis, keepdims) / max(n - correction, 0)

    @dim_alias
    def std(self, axis: int | tuple | None = None, keepdims: bool = False, correction: int = 1) -> "Tensor":
        """Standard deviation; its gradient at constant data is 0, as PyTorch's (not 0/0)."""
        return ops.Sqrt.apply(self.var(axis, keepdims, correction), zero_at_zero=True)

    @indices_by_dim(np.argmax)
    def max(self, axis: int | tuple | None = None, keepdims: bool = False) -> "Tensor":
        return reduce_ops.Max.apply(self, axis=axis, keepdims=keepdims, largest=True)

    @indices_by_dim(np.argmin)
    def min(self, axis: int | tuple | None = None, keepdims: bool = False) -> "Tensor":
        # reduce_ops.Max serves both: largest=False picks the smallest, with the same tie rule
        return reduce_ops.Max.apply(self, axis=axis, keepdims=keepdims, largest=False)

    # ------------------------------------------------------------ in place (rules and versions: inplace.py)
    def __setitem__(self, index: Any, value: Any) -> None:
        value = self._lift(value)
        inplace.update(self, "setitem", lambda old: inplace.SetItem.apply(old, value, index=as_index(index, self.data)), value)

    def __iadd__(self, o): return inplace.update(self, "+=", lambda old: old + o, o)
    def __isub__(self, o): return inplace.update(self, "-=", lambda old: old - o, o)
    def __imul__(self, o): return inplace.update(self, "*=", lambda old: old * o, o)
    def __itruediv__(self, o): return inplace.update(self, "/=", lambda old: old / o, o)

    def zero_(self) -> "Tensor":
        """Set every element to zero, in place."""
        return inplace.update(self, "zero_", lambda old: inplace.filled(old, 0))

    def fill_(self, value: Any) -> "Tensor":
        """Set every element to ``value`` (a number or a one-element tensor), in place."""
        return inplace.update(self, "fill_", lambda old: inplace.filled(old, value), value)

    @staticmethod
    @dim_alias
    def cat(tensors: Iterable["Tensor"], axis: int = 0) -> "Tensor":
        return cat(tensors, axis)

    @staticmethod
    @dim_alias
    def stack(tensors: Iterable["Tensor"], axis: int = 0) -> "Tensor":
        return stack(tensors, axis)




def _reduced_count(name: str, shape: tuple, axis: Any) -> int:
    """How many elements a reduction over ``axis`` of a tensor of ``shape`` combines into each result."""
    axes = ops.check_axis(name, shape, axis)
    return math.prod(shape) if axes is None else math.prod(shape[a] for a in axes)


def _raw(x: Any) -> Any:
    return x.data if isinstance(x, Tensor) else x


def _device_constant(value: Any, dtype: Any, like: Any) -> Any:
    """A number, list or host array as a constant on ``like``'s device: numbers are filled in there (a
    kernel, not a copy from the host); lists and host arrays are copied, as the user's code asked."""
    if isinstance(value, (int, float, bool, np.generic)):
        return np.full_like(like, value, dtype=dtype, shape=())
    return backend.to_device(_as_array(value, dtype), backend.device_of(like))


def _compare(op: np.ufunc, name: str, sym: str, a: Tensor, b: Any) -> Tensor:
    """Compare elementwise into a bool tensor with no gradient."""
    b = _raw(b)
    try:
        return Tensor._make(op(a.data, b), False)
    except ValueError:
        raise ValueError(f"{name}: {a.shape} {sym} {np.shape(b)}: shapes cannot broadcast") from None


def _tensor(x: Any) -> Tensor:
    return x if isinstance(x, Tensor) else Tensor(x)


@dim_alias
def cat(tensors: Iterable[Tensor], axis: int = 0) -> Tensor:
    """Concatenate tensors along an existing axis (integer ones beside a float one become that float)."""
    tensors = [_tensor(t) for t in tensors]
    floats = [t.dtype for t in tensors if t.dtype.kind == "f"]
    if floats and len(floats) < len(tensors):
        dtype = np.result_type(*floats)
        tensors = [t if t.dtype.kind == "f" else Tensor._make(t.data.astype(dtype), False) for t in tensors]
    return shape_ops.Cat.apply(*tensors, axis=axis)


@dim_alias
def stack(tensors: Iterable[Tensor], axis: int = 0) -> Tensor:
    """Stack same-shaped tensors along a new axis."""
    tensors = [_tensor(t) for t in tensors]
    if not tensors:
        raise ValueError("stack: got no tensors")
    if any(t.shape != tensors[0].shape for t in tensors):
        raise ValueError(f"stack: shapes {', '.join(str(t.shape) for t in tensors)} differ (stack needs equal shapes)")
    axis = ops.check_new_axis("stack", tensors[0].shape, axis)
    return cat([t.unsqueeze(axis) for t in tensors], axis)


def where(cond: Any, a: Any, b: Any) -> Tensor:
    """Pick from ``a`` where ``cond`` is true, else from ``b`` (both differentiable)."""
    if isinstance(a, Tensor) or not isinstance(b, Tensor):
        a, b = _tensor(a)._operands(b)
    else:
        b, a = b._operands(a)
    cond = _raw(cond)
    if type(a.data) is np.ndarray or backend.is_array(cond):
        cond = cond.astype(bool, copy=False) if backend.is_array(cond) else np.asarray(cond, dtype=bool)  # host
    else:  # a list or host mask beside tensors on a device
        cond = _device_constant(cond, bool, a.data)
    return shape_ops.Where.apply(a, b, cond=cond)
