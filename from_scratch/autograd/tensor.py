"""Tensor: an ndarray that remembers how it was made, so gradients can flow back."""
from __future__ import annotations

from typing import Any, Iterable, Sequence

import numpy as np

from . import function, ops
from .function import Function, _check_finite, _GradMode, detect_anomaly, enable_grad, is_grad_enabled, no_grad
from .tensor_api import TensorAPIMixin, dim_alias, indices_by_dim

__all__ = ["Tensor", "Function", "no_grad", "enable_grad", "is_grad_enabled", "detect_anomaly",
           "set_default_dtype", "get_default_dtype", "cat", "stack", "where"]

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


def _as_array(data: Any, dtype: Any = None) -> np.ndarray:
    if isinstance(data, Tensor):
        data = data.data
    if dtype is not None:
        return np.asarray(data, dtype=dtype)
    arr = np.asarray(data)
    if arr.dtype.kind == "f":
        return arr.astype(_default_dtype[0], copy=False)  # floats become the default dtype
    if arr.dtype.kind not in "iub":
        raise TypeError(f"Tensor: cannot hold data of dtype {arr.dtype}")
    return arr


class Tensor(TensorAPIMixin):
    """An n-dimensional array with reverse-mode automatic differentiation."""

    __slots__ = ("data", "grad", "requires_grad", "_ctx", "__weakref__")
    __array_priority__ = 1000  # ndarray <op> Tensor defers to Tensor's reflected ops

    def __init__(self, data: Any, requires_grad: bool = False, dtype: Any = None):
        self.data = _as_array(data, dtype)
        if requires_grad and self.data.dtype.kind != "f":
            raise TypeError(f"Tensor: requires_grad=True needs floating data, got dtype {self.data.dtype}")
        self.grad: np.ndarray | None = None
        self.requires_grad = requires_grad
        self._ctx: Function | None = None

    @classmethod
    def _make(cls, data: np.ndarray, requires_grad: bool) -> "Tensor":
        # Fast constructor for op outputs: no conversion, no checks.
        t = object.__new__(Tensor)
        t.data, t.grad, t.requires_grad, t._ctx = data, None, requires_grad, None
        return t

    # ------------------------------------------------------------ attributes
    shape = property(lambda self: self.data.shape)
    ndim = property(lambda self: self.data.ndim)
    dtype = property(lambda self: self.data.dtype)
    T = property(lambda self: self.permute(*range(self.ndim - 1, -1, -1)))
    is_leaf = property(lambda self: self._ctx is None)

    def item(self) -> float:
        return self.data.item()

    def numpy(self) -> np.ndarray:
        return self.data

    def tolist(self) -> Any:
        return self.data.tolist()

    def detach(self) -> "Tensor":
        """Return a tensor sharing this data, cut from the graph."""
        return Tensor._make(self.data, False)

    def astype(self, dtype: Any) -> "Tensor":
        """Return a copy converted to ``dtype``, cut from the graph."""
        return Tensor._make(self.data.astype(dtype), False)

    def __len__(self) -> int:
        return len(self.data)

    def __repr__(self) -> str:
        grad = ", requires_grad=True" if self.requires_grad else ""
        body = np.array2string(self.data, separator=", ", prefix="Tensor(")
        return f"Tensor({body}, dtype={self.data.dtype}{grad})"

    __hash__ = object.__hash__

    def __bool__(self) -> bool:
        return bool(self.data)

    def __array__(self, dtype: Any = None, copy: Any = None) -> np.ndarray:
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
            grad = np.ones(self.shape, dtype=self.dtype)
        else:
            grad = np.asarray(grad.data if isinstance(grad, Tensor) else grad, dtype=self.dtype)
            if grad.shape != self.shape:
                raise ValueError(f"backward: grad of shape {grad.shape} for a tensor of shape {self.shape}")
        if self._ctx is None:
            self._accumulate(grad)
            return
        anomaly = _GradMode.anomaly
        grads = {self: grad}  # pending gradient of each non-leaf (Tensors hash by identity)
        owned = set()  # the tensors whose pending gradient is a sum made here, safe to add into in place
        for node in reversed(_topological_order(self)):
            g = grads.pop(node, None)
            if g is None:  # every consumer returned None for it
                continue
            ctx = node._ctx
            in_grads = ctx.backward(g)
            if type(in_grads) is not tuple:
                in_grads = (in_grads,)
            if anomaly:
                _check_finite(type(ctx).__name__, "backward", *in_grads)
            fresh = ctx.fresh_grads
            for parent, pg in zip(ctx.parents, in_grads):
                if pg is None or not parent.requires_grad:
                    continue
                if pg.shape != parent.data.shape:
                    raise RuntimeError(f"{type(ctx).__name__}.backward returned a gradient of shape "
                                       f"{pg.shape} for an input of shape {parent.data.shape}")
                if parent._ctx is None:
                    parent._accumulate(pg, fresh)
                elif parent not in grads:  # unless fresh, pg may be a view or shared: never written into
                    grads[parent] = pg
                    if fresh:
                        owned.add(parent)
                elif parent in owned:
                    grads[parent] += pg
                else:
                    grads[parent] = grads[parent] + pg
                    owned.add(parent)
            if not retain_graph:
                ctx.release()

    def _accumulate(self, g: np.ndarray, fresh: bool = False) -> None:
        if self.grad is None:
            # An own copy, unless g is a new array no one else holds (see Function.fresh_grads).
            self.grad = g if fresh and g.dtype == self.data.dtype else np.array(g, dtype=self.data.dtype)
        else:
            self.grad += g

    # ------------------------------------------------------------ arithmetic
    def _lift(self, other: Any) -> "Tensor":
        """Wrap a number or ndarray as a constant tensor of this tensor's float dtype."""
        if isinstance(other, Tensor):
            return other
        if self.data.dtype.kind == "f":
            return Tensor._make(np.asarray(other, dtype=self.data.dtype), False)
        return Tensor(other)

    def __add__(self, o): return ops.Add.apply(self, self._lift(o))
    def __radd__(self, o): return ops.Add.apply(self._lift(o), self)
    def __sub__(self, o): return ops.Sub.apply(self, self._lift(o))
    def __rsub__(self, o): return ops.Sub.apply(self._lift(o), self)
    def __mul__(self, o): return ops.Mul.apply(self, self._lift(o))
    def __rmul__(self, o): return ops.Mul.apply(self._lift(o), self)
    def __truediv__(self, o): return ops.Div.apply(self, self._lift(o))
    def __rtruediv__(self, o): return ops.Div.apply(self._lift(o), self)
    def __pow__(self, o): return ops.Pow.apply(self, self._lift(o))
    def __rpow__(self, o): return ops.Pow.apply(self._lift(o), self)
    def __matmul__(self, o): return ops.MatMul.apply(self, self._lift(o))
    def __rmatmul__(self, o): return ops.MatMul.apply(self._lift(o), self)
    def __neg__(self): return ops.Neg.apply(self)

    # Comparisons give bool tensors with no gradient.
    def __eq__(self, o): return _compare(np.equal, "eq", "==", self, o)
    def __ne__(self, o): return _compare(np.not_equal, "ne", "!=", self, o)
    def __lt__(self, o): return _compare(np.less, "lt", "<", self, o)
    def __le__(self, o): return _compare(np.less_equal, "le", "<=", self, o)
    def __gt__(self, o): return _compare(np.greater, "gt", ">", self, o)
    def __ge__(self, o): return _compare(np.greater_equal, "ge", ">=", self, o)

    # ------------------------------------------------------------ elementwise
    def exp(self): return ops.Exp.apply(self)
    def log(self): return ops.Log.apply(self)
    def sqrt(self): return ops.Sqrt.apply(self)
    def abs(self): return ops.Abs.apply(self)
    def tanh(self): return ops.Tanh.apply(self)
    def sigmoid(self): return ops.Sigmoid.apply(self)
    def relu(self): return ops.ReLU.apply(self)

    def clip(self, min: float | None = None, max: float | None = None) -> "Tensor":
        return ops.Clip.apply(self, lo=min, hi=max)

    clamp = clip

    def maximum(self, other: Any) -> "Tensor":
        return ops.Maximum.apply(self, self._lift(other))

    def minimum(self, other: Any) -> "Tensor":
        # ops.Maximum serves both: largest=False picks the smaller, with the same tie rule
        return ops.Maximum.apply(self, self._lift(other), largest=False)

    def masked_fill(self, mask: Any, value: float) -> "Tensor":
        """Return a copy with ``value`` wherever ``mask`` is true."""
        return where(mask, self._lift(value), self)

    # ------------------------------------------------------------ reductions
    @dim_alias
    def sum(self, axis: int | tuple | None = None, keepdims: bool = False) -> "Tensor":
        return ops.Sum.apply(self, axis=axis, keepdims=keepdims)

    @dim_alias
    def mean(self, axis: int | tuple | None = None, keepdims: bool = False) -> "Tensor":
        out = ops.Sum.apply(self, axis=axis, keepdims=keepdims, name="mean")
        return out * (out.size / max(self.size, 1)) if self.size else out

    @dim_alias
    def var(self, axis: int | tuple | None = None, keepdims: bool = False, correction: int = 1) -> "Tensor":
        """Variance with Bessel's correction by default, like ``torch.var``."""
        total = ops.Sum.apply(self, axis=axis, keepdims=True, name="var")
        mean = total * (total.size / max(self.size, 1))
        centered = self - mean
        n = self.size // max(mean.size, 1)
        return (centered * centered).sum(axis, keepdims) / max(n - correction, 0)

    @dim_alias
    def std(self, axis: int | tuple | None = None, keepdims: bool = False, correction: int = 1) -> "Tensor":
        return self.var(axis, keepdims, correction).sqrt()

    @indices_by_dim(np.argmax)
    def max(self, axis: int | tuple | None = None, keepdims: bool = False) -> "Tensor":
        return ops.Max.apply(self, axis=axis, keepdims=keepdims, largest=True)

    @indices_by_dim(np.argmin)
    def min(self, axis: int | tuple | None = None, keepdims: bool = False) -> "Tensor":
        # ops.Max serves both: largest=False picks the smallest, with the same tie rule
        return ops.Max.apply(self, axis=axis, keepdims=keepdims, largest=False)

    # ------------------------------------------------------------ shape
    def reshape(self, *shape: Any) -> "Tensor":
        shape = tuple(shape[0]) if len(shape) == 1 and isinstance(shape[0], (tuple, list)) else shape
        return ops.Reshape.apply(self, shape=shape)

    view = reshape

    def flatten(self, start_dim: int = 0, end_dim: int = -1) -> "Tensor":
        s = self.shape
        if not s:
            return self.reshape(1)
        (start,), (end,) = ops.check_axis("flatten", s, start_dim), ops.check_axis("flatten", s, end_dim)
        if start > end:
            raise ValueError(f"flatten: start_dim {start_dim} comes after end_dim {end_dim} (tensor shape {s})")
        return self.reshape(s[:start] + (-1,) + s[end + 1:])

    def permute(self, *dims: Any) -> "Tensor":
        dims = tuple(dims[0]) if len(dims) == 1 and isinstance(dims[0], (tuple, list)) else dims
        return ops.Permute.apply(self, dims=dims)

    def transpose(self, dim0: int = -2, dim1: int = -1) -> "Tensor":
        (dim0,), (dim1,) = (ops.check_axis("transpose", self.shape, d) for d in (dim0, dim1))
        dims = list(range(self.ndim))
        dims[dim0], dims[dim1] = dims[dim1], dims[dim0]
        return self.permute(*dims)

    swapaxes = transpose

    @dim_alias
    def squeeze(self, axis: int | None = None) -> "Tensor":
        if axis is None:
            return self.reshape(tuple(n for n in self.shape if n != 1))
        (axis,) = ops.check_axis("squeeze", self.shape, axis)
        if self.shape[axis] != 1:
            return self
        return self.reshape(self.shape[:axis] + self.shape[axis + 1:])

    @dim_alias
    def unsqueeze(self, axis: int) -> "Tensor":
        axis = ops.check_new_axis("unsqueeze", self.shape, axis)
        return self.reshape(self.shape[:axis] + (1,) + self.shape[axis:])

    def expand(self, *shape: Any) -> "Tensor":
        shape = tuple(shape[0]) if len(shape) == 1 and isinstance(shape[0], (tuple, list)) else shape
        lead = len(shape) - self.ndim  # PyTorch's -1 keeps a size
        shape = tuple(self.shape[i - lead] if n == -1 else n for i, n in enumerate(shape))
        return ops.Expand.apply(self, shape=shape)

    def broadcast_to(self, shape: Sequence[int]) -> "Tensor":
        return ops.Expand.apply(self, shape=tuple(shape))

    def __getitem__(self, index: Any) -> "Tensor":
        return ops.GetItem.apply(self, index=_raw_index(index))

    @dim_alias
    def split(self, size_or_sections: int | Sequence[int], axis: int = 0) -> list["Tensor"]:
        """Split into pieces of ``size`` along ``axis`` (or of the given sizes), like ``torch.split``."""
        (axis,) = ops.check_axis("split", self.shape, axis)
        n = self.shape[axis]
        sizes = ([size_or_sections] * -(-n // size_or_sections) if isinstance(size_or_sections, int)
                 else list(size_or_sections))
        idx = [slice(None)] * self.ndim
        out, start = [], 0
        for s in sizes:
            idx[axis] = slice(start, min(start + s, n))
            out.append(self[tuple(idx)])
            start += s
        return out

    @dim_alias
    def chunk(self, chunks: int, axis: int = 0) -> list["Tensor"]:
        (axis,) = ops.check_axis("chunk", self.shape, axis)
        return self.split(-(-self.shape[axis] // chunks), axis)

    @staticmethod
    @dim_alias
    def cat(tensors: Iterable["Tensor"], axis: int = 0) -> "Tensor":
        return cat(tensors, axis)

    @staticmethod
    @dim_alias
    def stack(tensors: Iterable["Tensor"], axis: int = 0) -> "Tensor":
        return stack(tensors, axis)


function._tensor_class = Tensor


def _raw(x: Any) -> Any:
    return x.data if isinstance(x, Tensor) else x


def _compare(op: np.ufunc, name: str, sym: str, a: Tensor, b: Any) -> Tensor:
    """Compare elementwise into a bool tensor with no gradient."""
    b = _raw(b)
    try:
        return Tensor._make(op(a.data, b), False)
    except ValueError:
        raise ValueError(f"{name}: {a.shape} {sym} {np.shape(b)}: shapes cannot broadcast") from None


def _raw_index(index: Any) -> Any:
    if isinstance(index, tuple):
        return tuple(_raw(i) for i in index)
    if isinstance(index, list):
        return np.asarray(index)
    return _raw(index)


def _tensor(x: Any) -> Tensor:
    return x if isinstance(x, Tensor) else Tensor(x)


@dim_alias
def cat(tensors: Iterable[Tensor], axis: int = 0) -> Tensor:
    """Concatenate tensors along an existing axis."""
    return ops.Cat.apply(*[_tensor(t) for t in tensors], axis=axis)


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
    a = a if isinstance(a, Tensor) else (b._lift(a) if isinstance(b, Tensor) else Tensor(a))
    b = b if isinstance(b, Tensor) else a._lift(b)
    return ops.Where.apply(a, b, cond=np.asarray(_raw(cond), dtype=bool))


def _topological_order(root: Tensor) -> list[Tensor]:
    """Return the graph's non-leaf nodes parents-first: a depth-first walk with an explicit stack
    of (node, iterator over its parents), so deep graphs need no recursion."""
    order: list[Tensor] = []
    visited, stack = {root}, [(root, iter(_parents_of(root)))]
    while stack:
        node, parents = stack[-1]
        for p in parents:
            if p._ctx is not None and p.requires_grad and p not in visited:
                visited.add(p)
                stack.append((p, iter(_parents_of(p))))
                break
        else:  # all parents are placed: the node follows them
            stack.pop()
            order.append(node)
    return order


def _parents_of(node: Tensor) -> tuple:
    ctx = node._ctx
    if ctx.released:
        raise RuntimeError("backward: trying to back-propagate through a graph a second time; "
                           "its saved arrays were freed (use backward(retain_graph=True) the first time)")
    return ctx.parents
