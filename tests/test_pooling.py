"""Pools against torch in float64 (outputs and gradients), over random shapes with hypothesis; max pool's
gradient goes to one element per window; adaptive bins; repr and bad input."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

import from_scratch as fs
import from_scratch.functional as F
from from_scratch import nn

rng = np.random.default_rng(0)
TF = torch.nn.functional
SETTINGS = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


@st.composite
def pool_cases(draw, dilated: bool = True):
    kernel = tuple(draw(st.integers(1, 3)) for _ in range(2))
    stride = tuple(draw(st.integers(1, 3)) for _ in range(2))
    dilation = tuple(draw(st.integers(1, 2)) for _ in range(2)) if dilated else (1, 1)
    padding = tuple(draw(st.integers(0, k // 2)) for k in kernel)  # PyTorch's rule: at most half the kernel
    size = tuple(max(d * (k - 1) + 1 - 2 * p, 1) + draw(st.integers(0, 4))
                 for k, d, p in zip(kernel, dilation, padding))
    shape = (draw(st.integers(1, 2)), draw(st.integers(1, 3))) + size
    kw = dict(kernel_size=kernel, stride=stride, padding=padding)
    return shape, (dict(kw, dilation=dilation) if dilated else kw)


@SETTINGS
@given(case=pool_cases(), seed=st.integers(0, 2 ** 16))
def test_max_pool2d_random_shapes_match_torch(torch_parity, case, seed):
    shape, kw = case
    x = np.random.default_rng(seed).standard_normal(shape)
    # A dilated window can fall wholly on padding: both give -inf, but PyTorch then sends its gradient to
    # an arbitrary cell outside that window (its start index, clipped); we send none. Such cases are left out.
    assume(np.isfinite(TF.max_pool2d(torch.tensor(x), **kw).numpy()).all())
    torch_parity(lambda t: F.max_pool2d(t, **kw), lambda t: TF.max_pool2d(t, **kw), x)


@SETTINGS
@given(case=pool_cases(dilated=False), count_include_pad=st.booleans(), seed=st.integers(0, 2 ** 16))
def test_avg_pool2d_random_shapes_match_torch(torch_parity, case, count_include_pad, seed):
    shape, kw = case
    kw = dict(kw, count_include_pad=count_include_pad)
    torch_parity(lambda t: F.avg_pool2d(t, **kw), lambda t: TF.avg_pool2d(t, **kw),
                 np.random.default_rng(seed).standard_normal(shape))


@SETTINGS
@given(size=st.tuples(st.integers(1, 9), st.integers(1, 9)),
       out=st.tuples(st.one_of(st.none(), st.integers(1, 9)), st.integers(1, 9)), seed=st.integers(0, 2 ** 16))
def test_adaptive_avg_pool2d_random_sizes_match_torch(torch_parity, size, out, seed):
    torch_parity(lambda t: F.adaptive_avg_pool2d(t, out), lambda t: TF.adaptive_avg_pool2d(t, out),
                 np.random.default_rng(seed).standard_normal((2, 3) + size))


@pytest.mark.parametrize("ours, theirs", [
    (nn.MaxPool2d(2), torch.nn.MaxPool2d(2)), (nn.MaxPool2d((3, 2), stride=1, padding=1, dilation=(1, 2)),
                                               torch.nn.MaxPool2d((3, 2), stride=1, padding=1, dilation=(1, 2))),
    (nn.AvgPool2d(3, stride=2, padding=1), torch.nn.AvgPool2d(3, stride=2, padding=1)),
    (nn.AvgPool2d(2, divisor_override=3), torch.nn.AvgPool2d(2, divisor_override=3)),
    (nn.AdaptiveAvgPool2d((3, None)), torch.nn.AdaptiveAvgPool2d((3, None))),
    (nn.AdaptiveAvgPool2d(1), torch.nn.AdaptiveAvgPool2d(1))])
def test_pool_layers_match_torch_and_print_alike(torch_parity, ours, theirs):
    assert repr(ours) == repr(theirs)
    torch_parity(ours, theirs, rng.standard_normal((2, 3, 7, 6)))
    torch_parity(ours, theirs, rng.standard_normal((3, 7, 6)))  # unbatched (C, H, W)


def test_max_pool_gradient_goes_to_the_first_maximum_of_each_window(torch_parity):
    # Ties everywhere: PyTorch gives each window's gradient to its first maximum, not shared among equals.
    x = np.array([[1, 1, 2, 2], [1, 1, 2, 2], [3, 0, 0, 0], [3, 3, 0, 0]], float)[None, None]
    out = torch_parity(lambda t: F.max_pool2d(t, 2), lambda t: TF.max_pool2d(t, 2), x)
    grad = fs.Tensor(x.copy(), requires_grad=True)
    F.max_pool2d(grad, 2).sum().backward()
    np.testing.assert_array_equal(grad.grad[0, 0], [[1, 0, 1, 0], [0, 0, 0, 0], [1, 0, 1, 0], [0, 0, 0, 0]])
    assert out[0].shape == (1, 1, 2, 2)
    # overlapping windows: each window still sends all of its gradient to one element
    torch_parity(lambda t: F.max_pool2d(t, 3, stride=1, padding=1), lambda t: TF.max_pool2d(t, 3, stride=1, padding=1),
                 np.zeros((1, 2, 4, 5)))


def test_max_pool_propagates_nan_as_torch_does():
    x = rng.standard_normal((1, 1, 4, 4))
    x[0, 0, 1, 0], x[0, 0, 3, 3] = np.nan, np.nan
    ours, theirs = fs.Tensor(x, requires_grad=True, dtype=np.float64), torch.tensor(x, requires_grad=True)
    w = rng.standard_normal((1, 1, 2, 2))
    (F.max_pool2d(ours, 2) * fs.Tensor(w, dtype=np.float64)).sum().backward()
    (TF.max_pool2d(theirs, 2) * torch.tensor(w)).sum().backward()
    np.testing.assert_array_equal(F.max_pool2d(ours, 2).numpy(), TF.max_pool2d(theirs, 2).detach().numpy())
    np.testing.assert_array_equal(ours.grad, theirs.grad.numpy())


def test_pools_keep_float32():
    x = fs.Tensor(rng.standard_normal((2, 3, 6, 6)).astype(np.float32), requires_grad=True)
    for pool in (nn.MaxPool2d(2), nn.AvgPool2d(3, 1, 1, count_include_pad=False), nn.AdaptiveAvgPool2d(4)):
        x.grad = None
        out = pool(x)
        out.sum().backward()
        assert out.dtype == x.grad.dtype == np.float32


@pytest.mark.parametrize("call, message", [
    (lambda x: nn.MaxPool2d(5)(x), r"MaxPool2d\(kernel_size=5.*input of shape \(4, 4\) padded to \(4, 4\) is smaller than the kernel"),
    (lambda x: nn.MaxPool2d(2, padding=2)(x), r"MaxPool2d.*padding \(2, 2\) should be at most half of the kernel size \(2, 2\)"),
    (lambda x: nn.AvgPool2d(3)(x[0, 0]), r"AvgPool2d.*expected input \(N, C, H, W\) or \(C, H, W\), got shape \(4, 4\)"),
    (lambda x: nn.AdaptiveAvgPool2d((2, 0))(x), r"AdaptiveAvgPool2d.*output_size must be a positive int, None or two"),
    (lambda x: F.max_pool2d(x, 2, stride=0), r"max_pool2d: stride must be an int >= 1")])
def test_bad_input_is_refused_clearly(call, message):
    with pytest.raises(ValueError, match=message):
        call(fs.Tensor(np.zeros((1, 2, 4, 4), np.float32)))


def test_unimplemented_options_say_so():
    x = fs.Tensor(np.zeros((1, 1, 4, 4)))
    with pytest.raises(NotImplementedError, match="max_pool2d: ceil_mode=True"):
        nn.MaxPool2d(2, ceil_mode=True)(x)
    with pytest.raises(NotImplementedError, match="return_indices"):
        F.max_pool2d(x, 2, return_indices=True)
