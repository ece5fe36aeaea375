"""In-place changes to tensors, and the version counter that keeps backward honest.

Each tensor's data has a version: every in-place change (``x += y``, ``x[i] = v``, ``zero_()``,
``fill_()``, an optimizer's step, ``Module.load_state_dict``) adds one to it. A view (``reshape``,
``permute``, ``expand``, basic indexing, ``detach``) shares its base's counter, as it shares the data.
Backward then refuses, naming the op, to use an array that was changed after the op saved it
(PyTorch's "modified by an inplace operation" rule): the gradient would silently be wrong.

Our rule is "an array that backward reads", per op (``Function.saved_inputs``/``saves_output``);
PyTorch's is "a tensor the op saved", which for most ops is the same.

The rules for the in-place ops themselves, as PyTorch's:

* a leaf that requires grad cannot be changed in place while gradients are recorded (do it inside
  ``no_grad()``, as optimizers do);
* a tensor in the graph changed in place records the change as a new op: the tensor now stands for
  its new value, and ops that used its old value send their gradients to the old value's history;
* changing a view of a tensor in the graph is not supported (a clear error; write ``x[i] = ...``);
* the result keeps the tensor's shape and dtype: ``int_tensor += 0.5`` is an error, as in PyTorch.

Cost: ops record the clock's count (``InplaceClock``) when they run; backward compares it with the
clock once per op and looks at the inputs only when something changed since.
"""
from __future__ import annotations

from typing import Any, Callable, Iterable

import numpy as np

from .function import Function, InplaceClock, is_grad_enabled, no_grad
from .ops import unbroadcast
from .shape_ops import Where

__all__ = ["increment_version", "version", "share_version", "check_saved_versions", "update", "filled", "SetItem"]


def _counter(t: Any) -> list:
    """[version, clock count at the last change, name of the last change], made on first use."""
    counter = getattr(t, "_vc", None)  # (None, or unset in a tensor made without the constructors)
    if counter is None:
        t._vc = counter = [0, 0, None]
    return counter


def version(t: Any) -> int:
    """How many times ``t``'s data (or that of a tensor it is a view of) has been changed in place."""
    return _counter(t)[0]


def share_version(view: Any, base: Any) -> Any:
    """Give ``view`` (whose data is a view of ``base``'s) the same version counter; return it."""
    view._vc = _counter(base)
    return view


def increment_version(tensors: Iterable[Any], by: str = "an in-place operation") -> None:
    """Record that ``tensors``' data was changed in place (by ``by``, named in backward's error)."""
    InplaceClock.now += 1
    now = InplaceClock.now
    for t in tensors:  # (called on every parameter at every optimizer step: kept lean)
        c = getattr(t, "_vc", None)
        if c is None:
            c = t._vc = [0, 0, None]
        c[0] += 1
        c[1], c[2] = now, by


def check_saved_versions(node: Any, ctx: Function) -> None:
    """Before ``ctx.backward`` runs (``node`` is its output): raise if an array it reads was changed in
    place since its forward; route the gradient of an input it does not read, changed in place since,
    to that input's value as the op saw it."""
    stamp, saved, parents = ctx.stamp, ctx.saved_inputs, list(ctx.parents)
    name = type(ctx).__name__
    if ctx.saves_output and _counter(node)[1] > stamp:
        raise RuntimeError(_modified(name, "its output", node))
    for i, p in enumerate(parents):
        if _counter(p)[1] <= stamp:
            continue
        if saved is None or i in saved:
            raise RuntimeError(_modified(name, f"its input {i}", p))
        for when, old in getattr(p, "_history", ()):
            if when > stamp:  # the first change after this op ran: ``old`` holds the value it saw
                parents[i] = old
                break
    ctx.parents = tuple(parents)


def _modified(name: str, what: str, t: Any) -> str:
    v, _, by = _counter(t)
    return (f"backward: {name} needs {what} (shape {t.shape}, {t.dtype}) for its gradient, but that array was "
            f"changed in place by {by} after the forward pass (it is now at version {v}): one of the variables "
            f"needed for gradient computation has been modified by an inplace operation. Run the forward pass "
            f"again after the change, or change a copy instead.")


class SetItem(Function):
    """``a`` with ``a[index] = value``: the op behind ``x[index] = value`` on a tensor in the graph."""

    saved_inputs, saves_output = (), False

    def forward(self, a, value, index=None):
        self.index, self.v_shape = index, value.shape
        out = a.copy()
        try:
            out[index] = value
        except (IndexError, ValueError) as e:
            raise type(e)(f"setitem: {e} (tensor shape {a.shape}, value shape {value.shape})") from None
        return out

    def backward(self, g):
        ga = gv = None
        if self.needs_input_grad[0]:  # the overwritten entries no longer depend on a
            ga = g.copy()
            ga[self.index] = 0
        if self.needs_input_grad[1]:  # value was broadcast into a[index]
            gv = g[self.index]
            gv = unbroadcast(gv.reshape((1,) * (len(self.v_shape) - gv.ndim) + gv.shape), self.v_shape)
        return ga, gv


def filled(old: Any, value: Any) -> Any:
    """A tensor of ``old``'s shape and dtype full of ``value`` (a number or a one-element tensor), as an op
    whose gradient to ``old`` is zero and to a tensor ``value`` the sum."""
    value = value if hasattr(value, "data") else old._lift(value)
    return Where.apply(value, old, cond=np.ones_like(old.data, dtype=bool))


def _read_only(a: Any) -> bool:
    """Whether ``a`` may not be written: NumPy's flag; CuPy's arrays have none, so there a broadcast view
    (stride 0 along a stretched axis, where one element stands for many) counts as read-only."""
    if type(a) is np.ndarray:
        return not a.flags.writeable
    return any(s == 0 and n > 1 for s, n in zip(a.strides, a.shape))


def update(t: Any, name: str, fn: Callable[[Any], Any], other: Any = None) -> Any:
    """Change ``t`` in place to ``fn(t)`` (computed out of place, from ``t`` and ``other``); return ``t``."""
    graph = is_grad_enabled() and (t.requires_grad or getattr(other, "requires_grad", False))
    if graph and t.requires_grad and t._ctx is None:
        raise RuntimeError(f"{name}: a leaf tensor that requires grad (shape {t.shape}) cannot be changed in place "
                           f"while gradients are recorded (PyTorch's rule); change it inside `with no_grad():`, "
                           f"as optimizers do, or compute a new tensor")
    if graph and getattr(t._ctx, "returns_view", False):
        raise RuntimeError(f"{name}: this tensor is a view (made by {type(t._ctx).__name__}) of a tensor in the "
                           f"graph; changing a view in place is not supported: assign into the base tensor "
                           f"(x[idx] = x[idx] + y) or compute a new tensor")
    if _read_only(t.data):
        raise ValueError(f"{name}: this tensor's data is read-only (an expand() view or a read-only array, where "
                         f"one element may stand for many); change a copy instead")
    if graph:  # the old value joins the graph as a tensor of its own, with t's history
        old = t._make(t.data.copy(), t.requires_grad)
        old._ctx = t._ctx
        new = fn(old)
    else:
        with no_grad():
            new = fn(t)
    if new.shape != t.shape:
        raise ValueError(f"{name}: the result has shape {new.shape}, the tensor {t.shape}: an in-place op keeps "
                         f"the tensor's shape (the other operand must broadcast to it)")
    if not np.can_cast(new.dtype, t.dtype, "same_kind"):
        raise TypeError(f"{name}: the result is {new.dtype}, which cannot be stored in place in a {t.dtype} "
                        f"tensor (PyTorch's rule); compute a new tensor instead (x = x + y)")
    np.copyto(t.data, new.data, casting="same_kind")
    increment_version([t], name)
    if graph:
        old._vc = list(t._vc)  # its own counter: its array (t's) was overwritten now, and never again
        if getattr(t, "_history", None) is None:
            t._history = []
        t._history.append((InplaceClock.now, old))
        t._ctx, t.requires_grad = new._ctx, new.requires_grad
        if new._ctx is not None:
            new._ctx.stamp = InplaceClock.now  # it ran on the copy, after the change
    return t
