"""The elementwise primitive ops: arithmetic with broadcasting (+, -, *, /, **, maximum), matmul, and the
elementwise functions (exp, log, sqrt, abs, tanh, sigmoid, relu, clip); with the array helpers every op
file shares (``unbroadcast``, ``check_axis``, the shared ones vectors).

The other primitives sit beside this file: ``reduce_ops.py`` (sum, max, cumsum, prod, norm),
``shape_ops.py`` (reshape, permute, expand, indexing, cat, where), ``index_ops.py`` (gather, scatter,
casts) and ``special.py`` (erf, erfc). The fused ops (``fused*.py``) are fast paths, each standing
beside a plain version composed from the primitives (``functional/*_simple``, ``nn.RNNCell``/
``LSTMCell``/``GRUCell``). Each ``backward`` returns one gradient per tensor input; broadcasting inputs
get their gradient summed back to their own shape with ``unbroadcast``.
"""
from __future__ import annotations

import functools
import math
from typing import Any

import numpy as np

from .. import backend
from ..threads import matmul
from .function import Function


def unbroadcast(grad: np.ndarray, shape: tuple) -> np.ndarray:
    """Sum ``grad`` over the axes that broadcasting added or stretched to reach ``shape``."""
    if grad.shape == shape:
        return grad
    lead = grad.ndim - len(shape)
    if lead:
        grad = grad.sum(axis=tuple(range(lead)))
    stretched = tuple(i for i, n in enumerate(shape) if n == 1 and grad.shape[i] != 1)
    if stretched:
        grad = grad.sum(axis=stretched, keepdims=True)
    return grad.reshape(shape)


@functools.lru_cache(maxsize=512)
def _filled_vector(n: int, value: float, dtype: np.dtype, device: Any) -> Any:
    """``n`` copies of ``value`` on ``device`` (None: the CPU), made once per (n, value, dtype, device)."""
    xp = np if device is None else backend.device_module(device)
    vector = xp.full(n, value, dtype)
    if xp is np:
        vector.flags.writeable = False  # shared between callers (CuPy's arrays have no such flag)
    return vector


def _device_key(like: Any) -> Any:
    return None if type(like) is np.ndarray else backend.device_of(like)


def ones_vector(n: int, like: np.ndarray) -> np.ndarray:
    """A shared read-only vector of ``n`` ones in ``like``'s dtype, on ``like``'s device. Summing a short axis
    as a matrix-vector product (``x @ ones``) is one BLAS call, several times faster than NumPy's reduction
    over short rows."""
    return _filled_vector(n, 1.0, like.dtype, _device_key(like))


def mean_vector(n: int, like: np.ndarray) -> np.ndarray:
    """A shared read-only vector of ``n`` entries 1/n in ``like``'s dtype, on ``like``'s device:
    ``x @ mean_vector(n, x)`` is the mean of each row of x."""
    return _filled_vector(n, 1 / max(n, 1), like.dtype, _device_key(like))


def max_or_neg_inf(a: np.ndarray, axis: Any, keepdims: bool = False) -> np.ndarray:
    """``np.amax`` over ``axis`` (an int, a tuple or None), -inf where the reduction is empty (NumPy's
    ``initial=-inf``, which CuPy's ``amax`` lacks: a device fills the empty result explicitly)."""
    if type(a) is np.ndarray:
        return np.amax(a, axis=axis, keepdims=keepdims, initial=-np.inf)
    if a.size:
        return np.amax(a, axis=axis, keepdims=keepdims)
    axes = range(a.ndim) if axis is None else [d % a.ndim for d in (axis if isinstance(axis, tuple) else (axis,))]
    shape = tuple(1 if d in axes else n for d, n in enumerate(a.shape) if keepdims or d not in axes)
    return np.full_like(a, -np.inf, shape=shape)


def as_rows(x: np.ndarray) -> np.ndarray:
    """``x`` as a (rows, last axis) matrix, a view when it can be; unlike ``reshape(-1, n)`` also with no elements."""
    n = x.shape[-1]
    return x.reshape(-1, n) if n else x.reshape(math.prod(x.shape[:-1]), 0)


def check_axis(name: str, shape: tuple, axis: Any) -> Any:
    """Return ``axis`` as a tuple of non-negative axes, or raise naming the bad axis and the shape."""
    if axis is None:
        return None
    axes = tuple(axis) if isinstance(axis, (tuple, list)) else (axis,)
    for ax in axes:
        if not -len(shape) <= ax < len(shape):
            raise ValueError(f"{name}: axis {ax} is out of range for a tensor of shape {shape}")
    axes = tuple(ax % len(shape) for ax in axes)
    if len(set(axes)) != len(axes):
        raise ValueError(f"{name}: axis {axis} names an axis twice (tensor shape {shape})")
    return axes


def check_new_axis(name: str, shape: tuple, axis: int) -> int:
    """Return where a new axis goes (``unsqueeze``, ``stack``) as a non-negative position, or raise."""
    if not -len(shape) - 1 <= axis <= len(shape):
        raise ValueError(f"{name}: axis {axis} is out of range for a tensor of shape {shape} "
                         f"(a new axis goes at {-len(shape) - 1}..{len(shape)})")
    return axis % (len(shape) + 1)


def _broadcast_error(name: str, sym: str, a: np.ndarray, b: np.ndarray) -> ValueError:
    return ValueError(f"{name}: {a.shape} {sym} {b.shape}: shapes cannot broadcast")


# ---------------------------------------------------------------- binary arithmetic

class _Binary(Function):
    sym = "?"

    def forward(self, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        self.a_shape, self.b_shape = a.shape, b.shape
        try:
            return self._op(a, b)
        except ValueError:
            raise _broadcast_error(type(self).__name__.lower(), self.sym, a, b) from None


class Add(_Binary):
    saved_inputs, saves_output = (), False
    sym = "+"
    _op = staticmethod(np.add)

    def backward(self, g):
        return (unbroadcast(g, self.a_shape) if self.needs_input_grad[0] else None,
                unbroadcast(g, self.b_shape) if self.needs_input_grad[1] else None)


class Sub(_Binary):
    saved_inputs, saves_output = (), False
    sym = "-"
    _op = staticmethod(np.subtract)

    def backward(self, g):
        return (unbroadcast(g, self.a_shape) if self.needs_input_grad[0] else None,
                unbroadcast(-g, self.b_shape) if self.needs_input_grad[1] else None)


class Mul(_Binary):
    saved_inputs, saves_output = (0, 1), False
    sym = "*"

    def _op(self, a, b):
        self.a, self.b = a, b
        return a * b

    def backward(self, g):
        return (unbroadcast(g * self.b, self.a_shape) if self.needs_input_grad[0] else None,
                unbroadcast(g * self.a, self.b_shape) if self.needs_input_grad[1] else None)


class Div(_Binary):
    saved_inputs, saves_output = (1,), True
    sym = "/"

    def _op(self, a, b):
        self.b = b
        self.out = a / b
        return self.out

    def backward(self, g):
        # d(a/b)/da = 1/b ; d(a/b)/db = -a/b^2 = -out/b
        ga = g / self.b
        return (unbroadcast(ga, self.a_shape) if self.needs_input_grad[0] else None,
                unbroadcast(-ga * self.out, self.b_shape) if self.needs_input_grad[1] else None)


class Pow(_Binary):
    saved_inputs, saves_output = (0, 1), True
    sym = "**"

    def _op(self, a, b):
        self.a, self.b = a, b
        self.out = a ** b
        return self.out

    def backward(self, g):
        ga = gb = None
        if self.needs_input_grad[0]:  # d(a^b)/da = b * a^(b-1)
            ga = g * self.b * self.a ** (self.b - 1)
            if not self.b.all():  # a^0 is constant: 0, also at a = 0 where the formula gives 0 * inf
                ga = np.where(self.b == 0, 0, ga)
            ga = unbroadcast(ga, self.a_shape)
        if self.needs_input_grad[1]:  # d(a^b)/db = a^b * log(a), taken as 0 at a = 0, b >= 0 (PyTorch's rule)
            with np.errstate(divide="ignore", invalid="ignore"):
                gb = np.where((self.a == 0) & (self.b >= 0), 0, g * self.out * np.log(self.a))
            gb = unbroadcast(gb, self.b_shape)
        return ga, gb


class Maximum(Function):
    """Elementwise maximum, or minimum with ``largest=False``."""
    saved_inputs, saves_output = (0, 1), False

    def forward(self, a, b, largest=True):
        self.a, self.b, self.largest = a, b, largest
        try:
            return np.maximum(a, b) if largest else np.minimum(a, b)
        except ValueError:
            raise _broadcast_error("maximum" if largest else "minimum", "and", a, b) from None

    def backward(self, g):
        # The gradient goes to the winner; ties share it equally, as PyTorch does.
        a_wins = self.a > self.b if self.largest else self.a < self.b
        ga = np.where(self.a == self.b, g * 0.5, g * a_wins)
        return (unbroadcast(ga, self.a.shape) if self.needs_input_grad[0] else None,
                unbroadcast(g - ga, self.b.shape) if self.needs_input_grad[1] else None)


class MatMul(Function):
    saved_inputs, saves_output = (0, 1), False

    def forward(self, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        if a.ndim == 0 or b.ndim == 0:
            raise ValueError(f"matmul: {a.shape} @ {b.shape}: both operands need at least one dimension")
        ka, kb = a.shape[-1], b.shape[0] if b.ndim == 1 else b.shape[-2]
        if ka != kb:
            raise ValueError(f"matmul: {a.shape} @ {b.shape}: inner dimensions {ka} and {kb} differ")
        self.a, self.b = a, b
        try:
            return matmul(a, b)
        except ValueError:
            raise ValueError(f"matmul: {a.shape} @ {b.shape}: batch dimensions cannot broadcast") from None

    def backward(self, g):
        a, b = self.a, self.b
        # Treat 1-D operands as a row (left) or column (right) matrix, then undo it.
        a2 = a[None, :] if a.ndim == 1 else a
        b2 = b[:, None] if b.ndim == 1 else b
        if b.ndim == 1:  # first: a 1-D @ 1-D gradient is 0-d, so (1,) then (1, 1)
            g = np.expand_dims(g, -1)
        if a.ndim == 1:
            g = np.expand_dims(g, -2)
        ga = gb = None
        if self.needs_input_grad[0]:  # dL/da = g @ b^T
            ga = unbroadcast(matmul(g, b2.swapaxes(-1, -2)), a2.shape).reshape(a.shape)
        if self.needs_input_grad[1]:  # dL/db = a^T @ g
            if b2.ndim == 2 and a2.ndim > 2:
                # Fold the batch into one big product instead of summing per-batch products.
                gb = matmul(a2.reshape(-1, a2.shape[-1]).T, g.reshape(-1, g.shape[-1]))
            else:
                gb = unbroadcast(matmul(a2.swapaxes(-1, -2), g), b2.shape)
            gb = gb.reshape(b.shape)
        return ga, gb


# ---------------------------------------------------------------- unary

class Neg(Function):
    saved_inputs, saves_output = (), False

    def forward(self, a):
        return -a

    def backward(self, g):
        return -g


class Exp(Function):
    saved_inputs, saves_output = (), True

    def forward(self, a):
        self.out = np.exp(a)
        return self.out

    def backward(self, g):
        return g * self.out


class Log(Function):
    saved_inputs, saves_output = (0,), False

    def forward(self, a):
        self.a = a
        with np.errstate(divide="ignore", invalid="ignore"):  # log(0) = -inf, log(-1) = nan, silently as PyTorch
            return np.log(a)

    def backward(self, g):
        return g / self.a


class Sqrt(Function):
    saved_inputs, saves_output = (), True

    def forward(self, a, zero_at_zero=False):
        self.out, self.zero_at_zero = np.sqrt(a), zero_at_zero
        return self.out

    def backward(self, g):
        # d sqrt(a) = 1 / (2 sqrt(a)), infinite at a = 0; ``zero_at_zero`` takes it as 0 there, which is
        # PyTorch's gradient of std and norm at constant data (a subgradient: the minimum of a cone).
        if self.zero_at_zero:
            with np.errstate(divide="ignore", invalid="ignore"):  # (CuPy's ufuncs take no where=)
                return np.where(self.out != 0, g / (2 * self.out), g.dtype.type(0))
        return g / (2 * self.out)


class Abs(Function):
    saved_inputs, saves_output = (), False

    def forward(self, a):
        self.sign = np.sign(a)
        return np.abs(a)

    def backward(self, g):
        return g * self.sign


class Tanh(Function):
    saved_inputs, saves_output = (), True

    def forward(self, a):
        self.out = np.tanh(a)
        return self.out

    def backward(self, g):
        return g * (1 - self.out * self.out)


def sigmoid(a: np.ndarray) -> np.ndarray:
    """1 / (1 + exp(-a)) on an array, computed as (1 + tanh(a / 2)) / 2: one ufunc pass that cannot overflow."""
    return 0.5 * np.tanh(0.5 * a) + 0.5


class Sigmoid(Function):
    saved_inputs, saves_output = (), True

    def forward(self, a):
        self.out = sigmoid(a)
        return self.out

    def backward(self, g):
        return g * self.out * (1 - self.out)


class ReLU(Function):
    saved_inputs, saves_output = (), False

    def forward(self, a):
        # A 0/1 mask in a's dtype: a float-by-bool product is a slow mixed-type loop in NumPy.
        self.mask = (a > 0).astype(a.dtype)
        return a * self.mask

    def backward(self, g):
        return g * self.mask


class Clip(Function):
    saved_inputs, saves_output = (), False

    def forward(self, a, lo=None, hi=None):
        # PyTorch's clamp passes the gradient where lo <= a <= hi.
        self.mask = np.ones_like(a, dtype=bool)
        if lo is not None:
            self.mask &= a >= lo
        if hi is not None:
            self.mask &= a <= hi
        return np.clip(a, lo, hi)

    def backward(self, g):
        return g * self.mask
