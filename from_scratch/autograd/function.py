"""The Function base class, grad mode and anomaly detection.

A ``Function`` is one differentiable operation. Subclasses implement

* ``forward(self, *arrays, **kwargs) -> ndarray`` on plain NumPy arrays, saving on
  ``self`` whatever the backward pass needs, and
* ``backward(self, grad) -> ndarray | tuple`` returning one gradient per tensor input
  (``None`` where an input needs none; ``self.needs_input_grad[i]`` tells which).

``MyOp.apply(*tensors, **kwargs)`` runs ``forward`` and, when gradients are being
recorded, links the result into the graph. See the README for a worked custom op.
"""
from __future__ import annotations

import contextlib
import functools
from typing import Any, Callable

import numpy as np

from .. import backend


class GradMode:
    """Whether ops record a graph (``no_grad``, ``enable_grad``) and check for NaN or inf (``detect_anomaly``)."""
    enabled = True
    anomaly = False


def is_grad_enabled() -> bool:
    """Return whether operations currently record a graph."""
    return GradMode.enabled


class _SetGrad:
    """Context manager and decorator that switches graph recording on or off."""

    def __init__(self, mode: bool):
        self.mode = mode

    def __enter__(self) -> None:
        self.prev = GradMode.enabled
        GradMode.enabled = self.mode

    def __exit__(self, *exc: Any) -> None:
        GradMode.enabled = self.prev

    def __call__(self, fn: Callable) -> Callable:
        @functools.wraps(fn)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            with _SetGrad(self.mode):
                return fn(*args, **kwargs)
        return wrapper


def no_grad(fn: Callable | None = None) -> Any:
    """Disable graph recording: ``with no_grad():``, ``@no_grad()`` or ``@no_grad``."""
    return _SetGrad(False) if fn is None else _SetGrad(False)(fn)


def enable_grad() -> _SetGrad:
    """Re-enable graph recording inside a ``no_grad`` block."""
    return _SetGrad(True)


@contextlib.contextmanager
def detect_anomaly():
    """Raise at the first op whose forward or backward produces NaN or inf."""
    prev, GradMode.anomaly = GradMode.anomaly, True
    try:
        yield
    finally:
        GradMode.anomaly = prev


def check_finite(name: str, stage: str, *arrays: Any) -> None:
    """Under ``detect_anomaly``: raise FloatingPointError naming the op and stage (forward or backward)
    if a floating array holds NaN or inf."""
    for a in arrays:
        if a is not None and a.dtype.kind == "f" and not np.isfinite(a).all():
            raise FloatingPointError(f"detect_anomaly: {name}.{stage} produced NaN or inf")


def _device_mix_error(name: str, arrays: list) -> None:
    """Raise for an op given arrays of two devices (as CuPy and PyTorch refuse; nothing is copied)."""
    devices = list(dict.fromkeys(str(backend.device_of(a)) for a in arrays))
    raise RuntimeError(f"{name}: expected all inputs on one device, got tensors on {' and '.join(devices)} "
                       "(move them with .to(device))")


class InplaceClock:
    """Counts in-place changes to tensors' data, library-wide. Each recorded op keeps the count at its
    forward (``Function.stamp``) and each changed tensor the count at its last change, so backward
    checks an op's inputs only if some tensor has changed since that op ran (one comparison per op)."""

    now = 0


class Function:
    """Base class of a differentiable op: subclass it with ``forward`` and ``backward``."""

    released = False  # set once backward has run and the saved arrays are freed
    # Which input arrays (by position) and whether the output array ``backward`` reads: an in-place change
    # to one of them between forward and backward is an error (see ``inplace.py``). None: every input,
    # the safe default for an op written outside the library.
    saved_inputs: tuple | None = None
    saves_output = True
    returns_view = False  # the output's array is a view of the first input's (reshape, permute, basic indexing)
    # True when backward always returns new arrays that nothing else holds: the engine then keeps them
    # as gradients without a defensive copy (it must copy views, or one array returned for two inputs).
    fresh_grads = False
    # Set by ``apply`` (which skips ``__init__``): the input tensors, and which of them need a gradient.
    parents: tuple
    needs_input_grad: tuple
    stamp: int  # InplaceClock.now when the op was recorded

    def forward(self, *args: Any, **kwargs: Any) -> np.ndarray:
        raise NotImplementedError(f"{type(self).__name__}.forward")

    def backward(self, grad: np.ndarray) -> Any:
        raise NotImplementedError(f"{type(self).__name__}.backward")

    def release(self) -> None:
        """Drop the parents and every saved array so memory is returned."""
        self.__dict__.clear()
        self.released = True

    @classmethod
    def apply(cls, *tensors: "Tensor", **kwargs: Any) -> "Tensor":
        """Run ``forward`` on the tensors' arrays and record the op if any input needs grad."""
        return cls.apply_with_ctx(*tensors, **kwargs)[0]

    @classmethod
    def apply_with_ctx(cls, *tensors: "Tensor", **kwargs: Any) -> tuple["Tensor", "Function"]:
        """``apply``, also returning the op object, for callers that read what its forward kept."""
        # The hot path of every op: a few microseconds of Python, so it avoids every needless call.
        ctx = object.__new__(cls)
        ctx.parents = tensors
        ctx.needs_input_grad = needs = tuple([t.requires_grad for t in tensors])  # a list beats a generator
        arrays = [t.data for t in tensors]
        if len(arrays) > 1:  # one device per op: the arrays' types differ where the devices do
            kind = type(arrays[0])
            for a in arrays:
                if type(a) is not kind:
                    _device_mix_error(cls.__name__, arrays)
        data = ctx.forward(*arrays, **kwargs)
        if isinstance(data, np.generic):  # NumPy returns scalars, not 0-d arrays, from full reductions
            data = np.asarray(data)  # host: a CPU reduction's NumPy scalar (a device gives 0-d arrays)
        if GradMode.anomaly:
            check_finite(cls.__name__, "forward", data)
        out = object.__new__(Tensor)
        out.data, out.grad, out._vc = data, None, None
        if GradMode.enabled and True in needs:
            out.requires_grad, out._ctx = True, ctx
            ctx.stamp = InplaceClock.now
        else:
            out.requires_grad, out._ctx = False, None
        return out, ctx


# ``apply`` makes Tensors, and tensor.py builds on this module, so Tensor is imported last, once
# everything above exists (the package imports this module before tensor.py; an import inside
# ``apply`` would cost a microsecond per op).
from .tensor import Tensor  # noqa: E402
