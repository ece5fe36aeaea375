"""The Tensor API as PyTorch users type it: ``x.size(1)``, ``x.gather(1, idx)``, ``x.sort(dim=0)``, ...

``Tensor`` inherits ``TensorAPIMixin``, so every method here is a Tensor method; ``tensor.py`` keeps
the engine (construction, arithmetic, backward) and the NumPy-style core (``axis=``, ``keepdims=``),
``tensor_shape.py`` the shape methods. ``dim_args.py`` lets every method take either spelling of its
dim arguments (``dim``/``axis``, ``keepdim``/``keepdims``).

New primitives live in ``reduce_ops.py`` (cumsum, prod, norm) and ``index_ops.py`` (gather,
scatter_add, index_add, the dtype cast); ``sort``, ``topk`` and ``max(dim=)`` gather their values.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from .. import backend
from . import fused, ops, return_types, special
from .dim_args import arg_reduce, dim_alias
from .index_ops import Cast, Gather, IndexAdd, ScatterAdd, ToDevice, check_index, check_index_shape
from .reduce_ops import Cumsum, Norm, Prod

if TYPE_CHECKING:
    from .tensor import Tensor

__all__ = ["TensorAPIMixin", "SizeAttribute"]


class SizeAttribute(int):
    """``x.size``: the element count, an ``int`` as NumPy's ``size`` is, that called is PyTorch's
    ``x.size()`` (the shape, a tuple) or ``x.size(d)`` (the length of dim ``d``, negative d from the end)."""

    def __new__(cls, n: int, shape: tuple) -> "SizeAttribute":
        self = super().__new__(cls, n)
        self.shape = shape
        return self

    def __call__(self, dim: int | None = None) -> Any:
        if dim is None:
            return self.shape
        if not -len(self.shape) <= dim < len(self.shape):
            raise IndexError(f"size: dim {dim} is out of range for a tensor of shape {self.shape}")
        return self.shape[dim]


def _array(x: Any) -> Any:
    return x.data if isinstance(x, TensorAPIMixin) else x


def _one_axis(name: str, shape: tuple, dim: Any) -> int:
    if isinstance(dim, (tuple, list)):
        raise TypeError(f"{name}: dim must be one int, got {dim}")
    return ops.check_axis(name, shape, dim)[0]


def _sort_order(a: np.ndarray, axis: int, descending: bool) -> np.ndarray:
    """Indices that sort ``a`` along ``axis`` stably (equal values keep their order), NaN counted as
    the largest value, as PyTorch sorts. Descending: sort the reversed array ascending and reverse the
    result, which keeps ties in index order with no negation (which would break unsigned ints)."""
    # CuPy's argsort is always stable and refuses kind= (NumPy's default quicksort is not stable)
    kind = {"kind": "stable"} if type(a) is np.ndarray else {}
    if not descending:
        return np.argsort(a, axis=axis, **kind).astype(np.int64, copy=False)
    reversed_order = np.argsort(np.flip(a, axis), axis=axis, **kind)
    return (a.shape[axis] - 1 - np.flip(reversed_order, axis)).astype(np.int64, copy=False)


class TensorAPIMixin:
    """The PyTorch-named Tensor methods (see the module docstring); ``Tensor`` is the only subclass."""

    __slots__ = ()
    data: np.ndarray  # Tensor's slots, named here for readers
    requires_grad: bool

    # ------------------------------------------------------------ size and Python numbers
    @property
    def size(self) -> SizeAttribute:
        """The element count (``x.size``, NumPy's); ``x.size()`` is the shape, ``x.size(d)`` one dim's length."""
        return SizeAttribute(self.data.size, self.data.shape)

    def numel(self) -> int:
        return self.data.size

    def dim(self) -> int:
        return self.data.ndim

    def _scalar(self, name: str) -> Any:
        if self.data.size != 1:
            raise ValueError(f"{name}: a tensor of shape {self.data.shape} ({self.data.size} elements) cannot be "
                             f"converted to a Python number; only one-element tensors can")
        return self.data.reshape(()).item()

    def __float__(self) -> float:
        return float(self._scalar("float"))

    def __int__(self) -> int:
        return int(self._scalar("int"))

    def __index__(self) -> int:
        if self.data.dtype.kind not in "iub":
            raise TypeError(f"index: only integer tensors of one element can be used as an index, "
                            f"got dtype {self.data.dtype}")
        return int(self._scalar("index"))

    # ------------------------------------------------------------ copies and dtypes
    def clone(self) -> "Tensor":
        """A copy that stays in the graph (the gradient flows back to this tensor)."""
        return Cast.apply(self, dtype=self.data.dtype)

    def to(self, *args: Any, dtype: Any = None, device: Any = None, copy: bool = False) -> "Tensor":
        """``x.to(dtype)``, ``x.to(device)``, ``x.to(device, dtype)``, ``x.to(other)`` (other's device and
        dtype), with keywords ``dtype=``, ``device=``: this tensor there and in that dtype; itself if it is
        already, unless ``copy=True``. Both stay in the graph as in PyTorch (the gradient is copied back to
        this tensor's device and cast back to its dtype), except a cast to an integer or bool dtype.

        Raises TypeError for an argument that is neither a device (``"cpu"``, ``"cuda:0"``, a ``Device``)
        nor a dtype; ValueError or RuntimeError from ``from_scratch.backend`` for an unknown or unusable
        device (``cuda`` without CuPy or a GPU), before anything is copied."""
        for arg in args:
            if isinstance(arg, TensorAPIMixin):
                device, dtype = device or arg.device, dtype or arg.data.dtype
            elif backend.is_device_spec(arg):
                device = arg
            else:
                dtype = arg
        out = self
        if device is not None:
            device = backend.device(device)
            if device != self.device:
                out = ToDevice.apply(self, device=device)
                copy = False
        if dtype is None:
            return out.clone() if copy else out
        try:
            dtype = np.dtype(dtype)
        except TypeError:
            raise TypeError(f"to: {dtype!r} is neither a device nor a dtype") from None
        if dtype.kind not in "fiub":
            raise TypeError(f"to: a Tensor cannot hold dtype {dtype}")
        if dtype == out.data.dtype and not copy:
            return out
        if dtype.kind != "f" and out.requires_grad:  # integers carry no gradient: out of the graph
            return out._make(out.data.astype(dtype), False)
        return Cast.apply(out, dtype=dtype)

    def cpu(self) -> "Tensor":
        """This tensor on the CPU (itself if it is there)."""
        return self.to("cpu")

    def cuda(self, device: int | str | None = None) -> "Tensor":
        """This tensor on a GPU: the current one, or ``device`` (an index or ``"cuda:N"``)."""
        return self.to(backend.device(f"cuda:{device}" if isinstance(device, int) else (device or "cuda")))

    # ------------------------------------------------------------ arithmetic by name
    def pow(self, exponent: Any) -> "Tensor":
        return self ** exponent

    def matmul(self, other: Any) -> "Tensor":
        return self @ other

    # ------------------------------------------------------------ reductions and scans
    @dim_alias
    def argmax(self, dim: int | None = None, keepdim: bool = False) -> "Tensor":
        """Index of the largest value along ``dim`` (of the flattened tensor if None), the first if tied."""
        axis = None if dim is None else _one_axis("argmax", self.shape, dim)
        return self._make(arg_reduce("argmax", np.argmax, self.data, axis, keepdim), False)

    @dim_alias
    def argmin(self, dim: int | None = None, keepdim: bool = False) -> "Tensor":
        """Index of the smallest value along ``dim`` (of the flattened tensor if None), the first if tied."""
        axis = None if dim is None else _one_axis("argmin", self.shape, dim)
        return self._make(arg_reduce("argmin", np.argmin, self.data, axis, keepdim), False)

    def erf(self) -> "Tensor":
        """The error function, elementwise (``special.py``: Cody's approximation, float32 stays float32)."""
        return special.Erf.apply(self)

    def erfc(self) -> "Tensor":
        """1 - erf(x), accurate where it is tiny (the exact GELU's normal CDF uses it)."""
        return special.Erfc.apply(self)

    @dim_alias
    def cumsum(self, dim: int) -> "Tensor":
        return Cumsum.apply(self, axis=_one_axis("cumsum", self.shape, dim))

    @dim_alias
    def prod(self, dim: int | None = None, keepdim: bool = False) -> "Tensor":
        """Product over one dim, or of every element; the gradient is exact where inputs are zero."""
        axis = None if dim is None else _one_axis("prod", self.shape, dim)
        return Prod.apply(self, axis=axis, keepdims=keepdim)

    @dim_alias
    def logsumexp(self, dim: int | tuple | None = None, keepdim: bool = False) -> "Tensor":
        """log(sum(exp(x))) over ``dim`` (every element if None), stable at any scale; the gradient is softmax."""
        axis = ops.check_axis("logsumexp", self.shape, dim)
        # log sum exp(x) = m + log sum exp(x - m) with m the (constant) max: no exp overflows. An infinite
        # max is replaced by 0 so that all -inf gives -inf, not (-inf) - (-inf) = NaN.
        m = ops.max_or_neg_inf(self.data, axis, keepdims=True)
        m = np.where(np.isfinite(m), m, 0).astype(self.data.dtype, copy=False)
        total = (self - self._make(m, False)).exp().sum(axis, keepdims=keepdim)
        with np.errstate(divide="ignore"):  # log 0 = -inf is the answer for all -inf (or no) inputs
            log_total = total.log()
        return log_total + self._make(m if keepdim else (m.reshape(()) if axis is None else np.squeeze(m, axis)), False)

    @dim_alias
    def norm(self, p: float | str = "fro", dim: int | tuple | None = None, keepdim: bool = False) -> "Tensor":
        """The vector p-norm over ``dim`` (every element if None), as ``torch.linalg.vector_norm``: p > 0,
        ``inf`` (max |x|), ``-inf`` (min |x|), 0 (count of nonzeros, no gradient), ``"fro"`` (= 2).
        The gradient at the zero vector is 0 (PyTorch's choice of subgradient)."""
        axes = ops.check_axis("norm", self.shape, dim)
        if self.data.dtype.kind != "f":
            raise TypeError(f"norm: needs a floating tensor, got dtype {self.data.dtype}")
        p = 2.0 if p == "fro" else p
        if isinstance(p, str) or (p < 0 and p != -np.inf):
            raise ValueError(f"norm: p={p!r} is not supported (p > 0, 0, inf, -inf and 'fro' are)")
        if p == np.inf:
            return self.abs().max(axes, keepdims=keepdim)  # amax: ties share the gradient, as PyTorch's do
        if p == -np.inf:
            return self.abs().min(axes, keepdims=keepdim)
        if p == 0:
            count = (self.data != 0).sum(axis=axes, keepdims=True, dtype=self.data.dtype)  # an array, not a scalar
            out = count if keepdim else (count.reshape(()) if axes is None else np.squeeze(count, axes))
            return self._make(out, False)
        return Norm.apply(self, p=float(p), axis=axes, keepdims=keepdim)

    @dim_alias
    def softmax(self, dim: int = -1) -> "Tensor":
        """exp(x) / sum(exp(x)) along ``dim`` (the last by default; see ``fused.Softmax``)."""
        ops.check_axis("softmax", self.shape, dim)
        return fused.Softmax.apply(self, axis=dim)

    @dim_alias
    def log_softmax(self, dim: int = -1) -> "Tensor":
        """x - logsumexp(x) along ``dim`` (the last by default; see ``fused.LogSoftmax``)."""
        ops.check_axis("log_softmax", self.shape, dim)
        return fused.LogSoftmax.apply(self, axis=dim)

    # ------------------------------------------------------------ sorting
    @dim_alias
    def sort(self, dim: int = -1, descending: bool = False, stable: bool = False) -> return_types.sort:
        """``(values, indices)`` sorted along ``dim``; values are differentiable, indices int64. Always
        stable (equal values keep their order, which ``stable=False`` permits); NaN sorts as the largest."""
        axis = _one_axis("sort", self.shape, dim)
        order = _sort_order(self.data, axis, descending)
        return return_types.sort(Gather.apply(self, index=order, axis=axis), self._make(order, False))

    @dim_alias
    def argsort(self, dim: int = -1, descending: bool = False, stable: bool = False) -> "Tensor":
        return self._make(_sort_order(self.data, _one_axis("argsort", self.shape, dim), descending), False)

    @dim_alias
    def topk(self, k: int, dim: int = -1, largest: bool = True, sorted: bool = True) -> return_types.topk:
        """The ``k`` largest (or smallest) values along ``dim`` with their indices, always sorted, ties in
        index order. Raises ValueError unless 0 <= k <= the length of ``dim``."""
        axis = _one_axis("topk", self.shape, dim)
        if not 0 <= k <= self.shape[axis]:
            raise ValueError(f"topk: k={k} is out of range for dim {dim} of length {self.shape[axis]} "
                             f"(tensor shape {self.shape})")
        order = _sort_order(self.data, axis, descending=largest)[(slice(None),) * axis + (slice(0, k),)]
        return return_types.topk(Gather.apply(self, index=order, axis=axis), self._make(order, False))

    # ------------------------------------------------------------ indexing by tensors
    @dim_alias
    def gather(self, dim: int, index: Any) -> "Tensor":
        """out[i][j][k] = self[i][index[i][j][k]][k] for dim=1 (``torch.gather``); ``index`` (int64 Tensor,
        ndarray or list) has self's number of dims and is no larger outside ``dim``. Differentiable in self."""
        axis = _one_axis("gather", self.shape, dim)
        index = check_index("gather", _array(index), self.shape[axis], axis, self.data)
        check_index_shape("gather", index, self.shape, axis)
        return Gather.apply(self, index=index, axis=axis)

    @dim_alias
    def scatter_add(self, dim: int, index: Any, src: Any) -> "Tensor":
        """A copy of self with self[i][index[i][j][k]][k] += src[i][j][k] for dim=1 (``torch.scatter_add``).
        Differentiable in self and src; repeated indices add up."""
        axis = _one_axis("scatter_add", self.shape, dim)
        index = check_index("scatter_add", _array(index), self.shape[axis], axis, self.data)
        src = self._lift(src)
        check_index_shape("scatter_add", index, self.shape, axis)
        check_index_shape("scatter_add", index, src.shape, None, what="src")
        _same_dtype("scatter_add", self, src, "src")
        return ScatterAdd.apply(self, src, index=index, axis=axis)

    @dim_alias
    def index_add(self, dim: int, index: Any, source: Any, alpha: float = 1) -> "Tensor":
        """A copy of self with self[..., index[i], ...] += alpha * source[..., i, ...] along ``dim``
        (``torch.index_add``); ``index`` is 1-D. Differentiable in self and source."""
        axis = _one_axis("index_add", self.shape, dim)
        index = check_index("index_add", _array(index), self.shape[axis], axis, self.data)
        source = self._lift(source)
        expected = self.shape[:axis] + index.shape + self.shape[axis + 1:]
        if index.ndim != 1 or source.shape != expected:
            raise ValueError(f"index_add: index of shape {index.shape} and source of shape {source.shape} do not "
                             f"fit self of shape {self.shape} along dim {dim} (a 1-D index, source {expected})")
        _same_dtype("index_add", self, source, "source")
        return IndexAdd.apply(self, source, index=index, axis=axis, alpha=alpha)

    @dim_alias
    def index_select(self, dim: int, index: Any) -> "Tensor":
        """The slices at ``index`` (1-D) along ``dim``; differentiable, repeated indices add their gradients."""
        axis = _one_axis("index_select", self.shape, dim)
        index = check_index("index_select", _array(index), self.shape[axis], axis, self.data)
        if index.ndim != 1:
            raise ValueError(f"index_select: index must be 1-D, got shape {index.shape}")
        return self[(slice(None),) * axis + (index,)]

    # ------------------------------------------------------------ dtype shorthands (last: they shadow
    # the builtins float/int/bool in the rest of this class body)
    def float(self) -> "Tensor":
        return self.to(np.float32)

    def double(self) -> "Tensor":
        return self.to(np.float64)

    def half(self) -> "Tensor":
        return self.to(np.float16)

    def long(self) -> "Tensor":
        return self.to(np.int64)

    def int(self) -> "Tensor":
        return self.to(np.int32)

    def bool(self) -> "Tensor":
        return self.to(np.bool_)


def _same_dtype(name: str, a: TensorAPIMixin, b: TensorAPIMixin, what: str) -> None:
    if a.data.dtype != b.data.dtype:
        raise TypeError(f"{name}: self is {a.data.dtype} but {what} is {b.data.dtype}; convert one (e.g. .to())")
