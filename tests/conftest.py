"""Shared test helpers: PyTorch parity and finite-difference gradchecks on float64 inputs.

Tests ask for them as fixtures: ``def test_x(torch_parity, finite_diff): ...``. ``torch_parity``
takes a function and its PyTorch twin, or a Module and its ``torch.nn`` twin (the torch module's
parameters are copied into ours, and parameter gradients are compared too). PyTorch is only ever
a test oracle; the library itself never imports it.
"""
from __future__ import annotations

import os

# Small-matrix work is fastest on one BLAS thread (the library's default); set it before NumPy loads.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

from typing import Any, Callable  # noqa: E402

import numpy as np  # noqa: E402
import pytest
import torch

from from_scratch import Tensor, backend, cat, get_default_dtype, set_default_dtype
from from_scratch.testing import gradcheck
from strict_device import StrictArray, strict, to_host

# The devices the device-parametrised tests run on: the CPU, the strict test device that stands in for a GPU
# (tests/strict_device.py: NumPy underneath, but it refuses host arrays as CuPy does), and CUDA where usable.
backend.register_device("strict", strict, StrictArray, strict.asarray, to_host)
DEVICES = ["cpu", "strict"] + (["cuda"] if backend.is_available() else [])

RTOL = 1e-6   # the bar: forward and every gradient within 1e-6 relative error of PyTorch
ATOL = 1e-10  # for entries that are zero up to rounding


def assert_close(actual: np.ndarray, expected: np.ndarray, what: str, rtol: float = RTOL) -> None:
    actual, expected = (backend.as_numpy(a) if backend.is_array(a) else np.asarray(a) for a in (actual, expected))
    assert actual.shape == expected.shape, f"{what}: shape {actual.shape}, PyTorch {expected.shape}"
    np.testing.assert_allclose(actual, expected, rtol=rtol, atol=ATOL, err_msg=what)


def _as_list(out: Any) -> list:
    """Flatten nested tuples/lists of outputs, e.g. an LSTM's (out, (h, c)) -> [out, h, c]."""
    if isinstance(out, (list, tuple)):
        return [leaf for o in out for leaf in _as_list(o)]
    return [out]


def _ours(a: np.ndarray) -> Tensor:
    # float arrays are differentiable inputs (a copy: gradcheck nudges them in place); others are constants
    if a.dtype.kind == "f":
        return Tensor(a.copy(), requires_grad=True, dtype=a.dtype)
    return Tensor(a)


def _theirs(a: np.ndarray) -> torch.Tensor:
    return torch.tensor(a, requires_grad=a.dtype.kind == "f")


def _copy_module(ours: Any, theirs: torch.nn.Module) -> None:
    """Make ``ours`` a float64 copy of ``theirs``: same parameter and buffer values under the same names."""
    theirs.double()
    for _, t in [*ours.named_parameters(), *ours.named_buffers()]:
        if t.dtype.kind == "f":
            t.data = t.data.astype(np.float64)
    ours.load_state_dict({k: v.detach().numpy() for k, v in theirs.state_dict().items()})


def check_torch(fn: Callable, torch_fn: Callable, *arrays: np.ndarray, call: Callable | None = None,
                rtol: float = RTOL, seed: int = 0) -> list:
    """Run ``fn`` on Tensors and ``torch_fn`` on torch tensors made from ``arrays`` (through
    ``call(f, *inputs)`` if given); compare every output and, after back-propagating the same random
    weighting of the outputs, every float input's gradient (and every parameter's, for modules).
    Returns our outputs, flattened."""
    is_module = isinstance(torch_fn, torch.nn.Module)
    if is_module:
        _copy_module(fn, torch_fn)
    call = call or (lambda f, *xs: f(*xs))
    ours, theirs = [_ours(a) for a in arrays], [_theirs(a) for a in arrays]
    outs, refs = _as_list(call(fn, *ours)), _as_list(call(torch_fn, *theirs))
    assert len(outs) == len(refs), f"{len(outs)} outputs, PyTorch gives {len(refs)}"
    rng = np.random.default_rng(seed)
    loss, ref_loss = 0, 0
    for i, (o, r) in enumerate(zip(outs, refs)):
        assert isinstance(o, Tensor), f"output {i} is a {type(o).__name__}, not a Tensor"
        assert o.dtype == np.float64, f"output {i} is {o.dtype}: float64 inputs must give float64"
        assert_close(o.data, r.detach().numpy(), f"output {i}", rtol)
        w = rng.standard_normal(o.shape)
        loss = loss + (o * w).sum()
        ref_loss = ref_loss + (r * torch.from_numpy(w)).sum()
    if not getattr(loss, "requires_grad", False):
        return outs
    loss.backward()
    ref_loss.backward()
    pairs = [(f"input {i}", x, t) for i, (x, t) in enumerate(zip(ours, theirs)) if x.requires_grad]
    if is_module:
        params = dict(torch_fn.named_parameters())
        pairs += [(f"parameter {name}", p, params[name]) for name, p in fn.named_parameters()]
    for what, x, t in pairs:
        expected = t.grad.numpy() if t.grad is not None else np.zeros(tuple(t.shape))
        assert x.grad is not None or not expected.any(), f"{what} got no gradient"
        got = x.grad if x.grad is not None else np.zeros(x.shape)
        assert got.dtype == np.float64, f"gradient of {what} is {got.dtype}"
        assert_close(got, expected, f"gradient of {what}", rtol)
    return outs


def check_gradcheck(fn: Callable, *arrays: np.ndarray, **tolerances: float) -> None:
    """Central-difference gradcheck of ``fn`` (several outputs are joined into one) on float64 copies."""
    inputs = [_ours(a) for a in arrays]

    def joined(*xs: Tensor) -> Tensor:
        outs = _as_list(fn(*xs))
        return outs[0] if len(outs) == 1 else cat([o.reshape(-1) for o in outs])

    assert gradcheck(joined, inputs, **tolerances)


@pytest.fixture
def float64():
    """Make float64 the default dtype for the test (modules built inside it get float64 parameters)."""
    set_default_dtype(np.float64)  # _restore_default_dtype puts the old one back


@pytest.fixture
def torch_parity(float64) -> Callable:
    return check_torch


@pytest.fixture(scope="session")
def finite_diff() -> Callable:
    return check_gradcheck


@pytest.fixture(autouse=True)
def _restore_default_dtype():
    """Tests that change the default dtype never leak it into other tests."""
    prev = get_default_dtype()
    yield
    set_default_dtype(prev)


def pytest_collection_modifyitems(items: list) -> None:
    """Tests run on "cuda" by the ``device`` fixture are GPU tests too: ``pytest -m gpu`` selects them."""
    for item in items:
        if getattr(item, "callspec", None) is not None and item.callspec.params.get("device") == "cuda":
            item.add_marker(pytest.mark.gpu)


@pytest.fixture(params=DEVICES)
def device(request) -> str:
    """Run the test on every device in DEVICES ("cpu", "strict", and "cuda" where a GPU is usable)."""
    return request.param


def arrays_in(obj: Any, seen: set | None = None) -> list:
    """Every array reachable from ``obj``: a Tensor's data and grad, a Module's parameters and buffers, an
    optimizer's state, and arrays inside dicts, lists and tuples."""
    seen = set() if seen is None else seen
    if id(obj) in seen:
        return []
    seen.add(id(obj))
    if backend.is_array(obj):
        return [obj]
    if isinstance(obj, Tensor):
        return [obj.data] + ([obj.grad] if obj.grad is not None else [])
    if hasattr(obj, "_named_state"):  # a Module
        return [a for t in obj._named_state().values() for a in arrays_in(t, seen)]
    if hasattr(obj, "param_groups") and hasattr(obj, "state"):  # an Optimizer
        return [a for st in obj.state.values() for a in arrays_in(st, seen)]
    if isinstance(obj, dict):
        return [a for v in obj.values() for a in arrays_in(v, seen)]
    if isinstance(obj, (list, tuple)):
        return [a for v in obj for a in arrays_in(v, seen)]
    return []


def assert_on_device(device: str, *objs: Any) -> None:
    """Every array in ``objs`` (see ``arrays_in``) lives on ``device``; at least one array was found."""
    arrays = [a for o in objs for a in arrays_in(o)]
    assert arrays, "assert_on_device: found no arrays to check"
    wrong = sorted({str(backend.device_of(a)) for a in arrays} - {str(backend.device(device))})
    assert not wrong, f"arrays on {wrong}, expected all on {device}"
