"""Property tests: binary ops over random broadcastable shapes and reductions over random axes, against
PyTorch; gradients always come back in their input's shape."""
import numpy as np
import torch
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import array_shapes, mutually_broadcastable_shapes

from from_scratch import Tensor, where

# torch_parity only switches the default dtype to float64, so reusing it across examples is safe
SETTINGS = settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])

BINARY = {
    "add": (lambda a, b: a + b, lambda a, b: a + b),
    "sub": (lambda a, b: a - b, lambda a, b: a - b),
    "mul": (lambda a, b: a * b, lambda a, b: a * b),
    "div": (lambda a, b: a / b, lambda a, b: a / b),
    "pow": (lambda a, b: a ** b, lambda a, b: a ** b),
    "maximum": (lambda a, b: a.maximum(b), torch.maximum),
    "minimum": (lambda a, b: a.minimum(b), torch.minimum),
    "where": (lambda a, b: where(a > 0, a, b), lambda a, b: torch.where(a > 0, a, b)),
}


def _operands(name, shapes, seed):
    rng = np.random.default_rng(seed)
    a, b = rng.standard_normal(shapes[0]), rng.standard_normal(shapes[1])
    if name in ("div", "pow"):  # keep the denominator and the base away from 0
        b = np.where(b < 0, b - 0.5, b + 0.5) if name == "div" else b
        a = np.abs(a) + 0.5 if name == "pow" else a
    return a, b


@SETTINGS
@given(name=st.sampled_from(sorted(BINARY)),
       shapes=mutually_broadcastable_shapes(num_shapes=2, min_dims=0, max_dims=4, max_side=3),
       seed=st.integers(0, 2 ** 16))
def test_binary_ops_broadcast_like_torch(torch_parity, name, shapes, seed):
    a, b = _operands(name, shapes.input_shapes, seed)
    ours, theirs = BINARY[name]
    out = torch_parity(ours, theirs, a, b)
    assert out[0].shape == shapes.result_shape


@SETTINGS
@given(shapes=mutually_broadcastable_shapes(num_shapes=2, min_dims=1, max_dims=3, max_side=3),
       seed=st.integers(0, 2 ** 16))
def test_gradients_reduce_to_input_shapes(shapes, seed):
    a, b = _operands("mul", shapes.input_shapes, seed)
    x, y = Tensor(a, requires_grad=True), Tensor(b, requires_grad=True)
    ((x * y + x - y / 3) ** 2).sum().backward()
    assert x.grad.shape == a.shape and y.grad.shape == b.shape
    assert x.grad.dtype == y.grad.dtype == np.float32


@st.composite
def batched_matmul_shapes(draw):
    batch = draw(mutually_broadcastable_shapes(num_shapes=2, min_dims=0, max_dims=2, max_side=3))
    n, k, m = draw(st.integers(1, 3)), draw(st.integers(1, 3)), draw(st.integers(1, 3))
    left = batch.input_shapes[0] + (n, k) if draw(st.booleans()) else (k,)
    right = batch.input_shapes[1] + (k, m) if draw(st.booleans()) else (k,)
    return left, right


@SETTINGS
@given(shapes=batched_matmul_shapes(), seed=st.integers(0, 2 ** 16))
def test_matmul_broadcasts_like_torch(torch_parity, shapes, seed):
    rng = np.random.default_rng(seed)
    torch_parity(lambda a, b: a @ b, torch.matmul, rng.standard_normal(shapes[0]), rng.standard_normal(shapes[1]))


REDUCTIONS = {
    "sum": (lambda x, ax, k: x.sum(ax, keepdims=k), lambda x, ax, k: x.sum(ax, keepdim=k)),
    "mean": (lambda x, ax, k: x.mean(ax, keepdims=k), lambda x, ax, k: x.mean(ax, keepdim=k)),
    "max": (lambda x, ax, k: x.max(ax, keepdims=k), lambda x, ax, k: torch.amax(x, ax, keepdim=k)),
    "min": (lambda x, ax, k: x.min(ax, keepdims=k), lambda x, ax, k: torch.amin(x, ax, keepdim=k)),
    "var": (lambda x, ax, k: x.var(ax, keepdims=k), lambda x, ax, k: x.var(ax, keepdim=k)),
}


@st.composite
def shape_and_axes(draw):
    shape = draw(array_shapes(min_dims=1, max_dims=4, min_side=1, max_side=4))
    axes = draw(st.lists(st.integers(0, len(shape) - 1), unique=True, min_size=1, max_size=len(shape)))
    axes = tuple(a - len(shape) if draw(st.booleans()) else a for a in axes)  # some negative
    axis = draw(st.sampled_from([None, axes, axes[0]]))
    return shape, axis


@SETTINGS
@given(name=st.sampled_from(sorted(REDUCTIONS)), shape_axis=shape_and_axes(), keepdims=st.booleans(),
       seed=st.integers(0, 2 ** 16))
def test_reductions_over_random_axes_match_torch(torch_parity, name, shape_axis, keepdims, seed):
    shape, axis = shape_axis
    axes = range(len(shape)) if axis is None else (axis if isinstance(axis, tuple) else (axis,))
    if name == "var":
        assume(np.prod([shape[a] for a in axes]) >= 2)  # Bessel's correction needs two values
    x = np.random.default_rng(seed).standard_normal(shape)
    ours, theirs = REDUCTIONS[name]
    if axis is None:  # torch spells "all axes" without the argument
        theirs_all = {"sum": torch.sum, "mean": torch.mean, "max": torch.amax, "min": torch.amin, "var": torch.var}
        t_fn = (lambda t: theirs_all[name](t).reshape((1,) * len(shape))) if keepdims else theirs_all[name]
        torch_parity(lambda t: ours(t, None, keepdims), t_fn, x)
    else:
        torch_parity(lambda t: ours(t, axis, keepdims), lambda t: theirs(t, axis, keepdims), x)
