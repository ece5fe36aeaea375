"""Convolutions: the window primitives (gradcheck), conv1d/conv2d/conv_transpose2d and their layers against
torch in float64 (outputs and every gradient), random shapes with hypothesis, init, repr and bad input."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import from_scratch as fs
import from_scratch.functional as F
from from_scratch import nn
from from_scratch.autograd import window

rng = np.random.default_rng(0)
TF = torch.nn.functional
SETTINGS = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


# ---------------------------------------------------------------- the primitives

def test_unfold_and_fold_gradcheck(finite_diff):
    args = dict(kernel=(2, 3), stride=(2, 1), padding=((1, 0), (1, 2)), dilation=(1, 2))
    finite_diff(lambda x: window.Unfold.apply(x, **args), rng.standard_normal((2, 2, 5, 4)))
    finite_diff(lambda c: window.Fold.apply(c, size=(5, 4), **args), rng.standard_normal((12, 2 * 3 * 3)))


def test_window_max_gradcheck(finite_diff):
    args = dict(kernel=(2, 3), stride=(1, 2), padding=((1, 1), (0, 1)), dilation=(2, 1))
    finite_diff(lambda x: window.WindowMax.apply(x, **args), rng.standard_normal((2, 3, 5, 6)))


def test_fold_is_the_adjoint_of_unfold():
    # <unfold(x), c> == <x, fold(c)> for every x, c: fold is unfold's transpose, which its backward relies on
    args = dict(kernel=(3, 2), stride=(2, 1), padding=((1, 1), (0, 1)), dilation=(1, 2))
    x = rng.standard_normal((2, 3, 7, 5))
    cols = window.unfold(x, **args)
    c = rng.standard_normal(cols.shape)
    assert np.vdot(cols, c) == pytest.approx(np.vdot(x, window.fold(c, (7, 5), **args)))


def test_unfold_and_fold_match_torch(torch_parity):
    x = rng.standard_normal((2, 3, 6, 7))
    torch_parity(lambda t: F.unfold(t, (2, 3), dilation=(2, 1), padding=1, stride=(1, 2)),
                 lambda t: TF.unfold(t, (2, 3), dilation=(2, 1), padding=1, stride=(1, 2)), x)
    cols = rng.standard_normal((2, 3 * 6, 6 * 4))
    torch_parity(lambda t: F.fold(t, (6, 7), (2, 3), dilation=(2, 1), padding=1, stride=(1, 2)),
                 lambda t: TF.fold(t, (6, 7), (2, 3), dilation=(2, 1), padding=1, stride=(1, 2)), cols)


# ---------------------------------------------------------------- parity with torch

@pytest.mark.parametrize("kwargs", [
    {}, dict(stride=2, padding=1), dict(padding=(2, 0), dilation=(1, 2)), dict(padding="same", dilation=2),
    dict(padding="same", kernel_size=(2, 4)), dict(padding="valid", bias=False), dict(groups=2, stride=(1, 3)),
    dict(groups=4, padding=1)])
def test_conv2d_layer_matches_torch(torch_parity, kwargs):
    kwargs = {"kernel_size": 3, **kwargs}
    torch_parity(nn.Conv2d(4, 8, **kwargs), torch.nn.Conv2d(4, 8, **kwargs), rng.standard_normal((2, 4, 7, 9)))


@pytest.mark.parametrize("kwargs", [dict(kernel_size=3), dict(kernel_size=4, stride=2, padding=3, dilation=2),
                                    dict(kernel_size=2, padding="same", groups=3), dict(kernel_size=5, bias=False)])
def test_conv1d_layer_matches_torch(torch_parity, kwargs):
    torch_parity(nn.Conv1d(3, 6, **kwargs), torch.nn.Conv1d(3, 6, **kwargs), rng.standard_normal((2, 3, 11)))


@pytest.mark.parametrize("kwargs", [dict(kernel_size=3), dict(kernel_size=3, stride=2, padding=1, output_padding=1),
                                    dict(kernel_size=(2, 3), stride=(2, 3), groups=2, dilation=(2, 1)),
                                    dict(kernel_size=4, stride=2, padding=1, bias=False)])
def test_conv_transpose2d_layer_matches_torch(torch_parity, kwargs):
    torch_parity(nn.ConvTranspose2d(4, 6, **kwargs), torch.nn.ConvTranspose2d(4, 6, **kwargs),
                 rng.standard_normal((2, 4, 5, 4)))


def test_functional_convs_match_torch_on_unbatched_input(torch_parity):
    x, w, b = rng.standard_normal((3, 6, 5)), rng.standard_normal((4, 3, 2, 2)), rng.standard_normal(4)
    torch_parity(lambda *t: F.conv2d(*t, stride=(2, 1), padding=(1, 0)),
                 lambda *t: TF.conv2d(*t, stride=(2, 1), padding=(1, 0)), x, w, b)
    torch_parity(lambda *t: F.conv1d(*t, padding="same"), lambda *t: TF.conv1d(*t, padding="same"),
                 rng.standard_normal((3, 8)), rng.standard_normal((5, 3, 4)))
    torch_parity(lambda *t: F.conv_transpose2d(*t, stride=2), lambda *t: TF.conv_transpose2d(*t, stride=2),
                 rng.standard_normal((3, 4, 4)), rng.standard_normal((3, 2, 3, 3)), rng.standard_normal(2))


@st.composite
def conv_cases(draw, spatial: int):
    groups = draw(st.integers(1, 3))
    cin, cout = groups * draw(st.integers(1, 2)), groups * draw(st.integers(1, 2))
    kernel = tuple(draw(st.integers(1, 3)) for _ in range(spatial))
    dilation = tuple(draw(st.integers(1, 2)) for _ in range(spatial))
    stride = tuple(draw(st.integers(1, 3)) for _ in range(spatial))
    if draw(st.booleans()) and stride == (1,) * spatial:
        padding = draw(st.sampled_from(["same", "valid"]))
        pads = [d * (k - 1) for k, d in zip(kernel, dilation)] if padding == "same" else [0] * spatial
    else:
        padding = tuple(draw(st.integers(0, 2)) for _ in range(spatial))
        pads = [2 * p for p in padding]
    size = tuple(max(d * (k - 1) + 1 - p, 1) + draw(st.integers(0, 4))
                 for k, d, p in zip(kernel, dilation, pads))
    shape = (draw(st.integers(1, 2)), cin) + size
    return shape, (cout, cin // groups) + kernel, dict(stride=stride, padding=padding, dilation=dilation, groups=groups)


@SETTINGS
@given(case=conv_cases(2), bias=st.booleans(), seed=st.integers(0, 2 ** 16))
def test_conv2d_random_shapes_match_torch(torch_parity, case, bias, seed):
    shape, wshape, kw = case
    r = np.random.default_rng(seed)
    arrays = [r.standard_normal(shape), r.standard_normal(wshape)] + ([r.standard_normal(wshape[0])] if bias else [])
    torch_parity(lambda *t: F.conv2d(*t, **kw), lambda *t: TF.conv2d(*t, **kw), *arrays)


@SETTINGS
@given(case=conv_cases(1), seed=st.integers(0, 2 ** 16))
def test_conv1d_random_shapes_match_torch(torch_parity, case, seed):
    shape, wshape, kw = case
    r = np.random.default_rng(seed)
    torch_parity(lambda *t: F.conv1d(*t, **kw), lambda *t: TF.conv1d(*t, **kw),
                 r.standard_normal(shape), r.standard_normal(wshape), r.standard_normal(wshape[0]))


@SETTINGS
@given(case=conv_cases(2), seed=st.integers(0, 2 ** 16))
def test_conv_transpose2d_random_shapes_match_torch(torch_parity, case, seed):
    shape, (cout, cin_g, *kernel), kw = case
    kw["padding"] = (0, 0) if isinstance(kw["padding"], str) else kw["padding"]
    groups = kw["groups"]
    extra = tuple(s - 1 for s in kw["stride"])
    wshape = (shape[1], cout // groups) + tuple(kernel)
    r = np.random.default_rng(seed)
    try:
        expected = TF.conv_transpose2d(torch.zeros(shape), torch.zeros(wshape), output_padding=extra, **kw).shape
    except RuntimeError:  # torch refuses too
        return
    if 0 in expected:  # torch returns an empty tensor; we refuse clearly
        with pytest.raises(ValueError, match="conv_transpose2d: input of shape .* gives an empty output"):
            F.conv_transpose2d(fs.Tensor(np.zeros(shape)), fs.Tensor(np.zeros(wshape)), output_padding=extra, **kw)
        return
    out = F.conv_transpose2d(fs.Tensor(np.zeros(shape)), fs.Tensor(np.zeros(wshape)), output_padding=extra, **kw)
    assert out.shape == tuple(expected)
    torch_parity(lambda *t: F.conv_transpose2d(*t, output_padding=extra, **kw),
                 lambda *t: TF.conv_transpose2d(*t, output_padding=extra, **kw),
                 r.standard_normal(shape), r.standard_normal(wshape))


# ---------------------------------------------------------------- init, repr, dtype

@pytest.mark.parametrize("make", [lambda m: m.Conv2d(3, 8, (2, 4), stride=2, padding=1, bias=False),
                                  lambda m: m.Conv2d(4, 8, 3, padding="same", dilation=2, groups=2),
                                  lambda m: m.Conv1d(2, 5, 3, padding="valid"),
                                  lambda m: m.ConvTranspose2d(4, 6, 3, stride=2, output_padding=1, groups=2)])
def test_conv_reprs_and_parameter_shapes_match_torch(make):
    ours, theirs = make(nn), make(torch.nn)
    assert repr(ours) == repr(theirs)
    assert [(k, v.shape) for k, v in ours.state_dict().items()] == \
           [(k, tuple(v.shape)) for k, v in theirs.state_dict().items()]


def test_conv_default_init_is_torch_kaiming_uniform():
    fs.manual_seed(0)
    layer = nn.Conv2d(16, 32, 3)
    bound = 1 / math.sqrt(16 * 9)  # kaiming_uniform(a=sqrt(5)): sqrt(6 / ((1 + 5) fan_in)) = 1 / sqrt(fan_in)
    for p in (layer.weight.data, layer.bias.data):
        assert p.dtype == np.float32 and np.abs(p).max() <= bound
        assert np.abs(p).max() > 0.9 * bound and abs(p.std() - bound / math.sqrt(3)) < 0.1 * bound
    t = nn.ConvTranspose2d(16, 4, 3, groups=2)  # fan_in = weight.shape[1] * kernel area, as PyTorch
    assert np.abs(t.weight.data).max() <= 1 / math.sqrt(2 * 9) and t.weight.shape == (16, 2, 3, 3)


def test_conv_keeps_float32():
    layer = nn.Conv2d(2, 3, 3, padding=1)
    x = fs.Tensor(rng.standard_normal((2, 2, 5, 5)).astype(np.float32), requires_grad=True)
    out = layer(x)
    out.sum().backward()
    assert out.dtype == x.grad.dtype == layer.weight.grad.dtype == np.float32


# ---------------------------------------------------------------- bad input

@pytest.mark.parametrize("build, shape, message", [
    (lambda: nn.Conv2d(3, 4, 5), (2, 3, 4, 4), r"Conv2d\(3, 4, kernel_size=\(5, 5\).*\(4, 4\).*kernel \(5, 5\)"),
    (lambda: nn.Conv2d(3, 4, 3, dilation=2, padding=1), (1, 3, 2, 2), r"padded to \(4, 4\).*dilated extent \(5, 5\)"),
    (lambda: nn.Conv2d(3, 4, 3), (2, 5, 8, 8), r"Conv2d.*\(2, 5, 8, 8\) has 5 channels.*expects 3"),
    (lambda: nn.Conv2d(3, 4, 3), (2, 8, 8), r"Conv2d.*has 2 channels"),
    (lambda: nn.Conv2d(3, 4, 3), (1, 2, 3, 8, 8), r"Conv2d.*expected input \(N, C, H, W\) or \(C, H, W\), got shape"),
    (lambda: nn.Conv1d(2, 4, 3), (2, 2, 8, 8), r"Conv1d.*expected input \(N, C, L\)"),
    (lambda: nn.ConvTranspose2d(2, 4, 3), (1, 3, 4, 4), r"ConvTranspose2d.*\(1, 3, 4, 4\) has 3 channels")])
def test_bad_input_names_the_layer_and_shapes(build, shape, message):
    with pytest.raises(ValueError, match=message):
        build()(fs.Tensor(np.zeros(shape, np.float32)))


def test_bad_arguments_are_refused_clearly():
    with pytest.raises(ValueError, match=r"Conv2d: in_channels \(3\) and out_channels \(4\) must be divisible by groups \(2\)"):
        nn.Conv2d(3, 4, 3, groups=2)
    with pytest.raises(ValueError, match="Conv2d: padding='same' is not supported for strided"):
        nn.Conv2d(3, 4, 3, stride=2, padding="same")
    with pytest.raises(ValueError, match="conv2d: padding='same' is not supported for strided"):
        F.conv2d(fs.Tensor(np.zeros((1, 1, 5, 5))), fs.Tensor(np.zeros((1, 1, 3, 3))), stride=2, padding="same")
    with pytest.raises(ValueError, match="Conv2d: padding must be 'same', 'valid'"):
        nn.Conv2d(3, 4, 3, padding="full")
    with pytest.raises(ValueError, match="Conv1d: stride must be an int >= 1"):
        nn.Conv1d(3, 4, 3, stride=0)
    with pytest.raises(ValueError, match="padding_mode 'reflect' is not implemented"):
        nn.Conv2d(3, 4, 3, padding_mode="reflect")
    with pytest.raises(ValueError, match=r"conv2d: groups=2 must divide both the input's 3 channels"):
        F.conv2d(fs.Tensor(np.zeros((1, 3, 5, 5))), fs.Tensor(np.zeros((4, 1, 3, 3))), groups=2)
    with pytest.raises(ValueError, match=r"conv2d: bias of shape \(3,\) for 4 output channels"):
        F.conv2d(fs.Tensor(np.zeros((1, 1, 5, 5))), fs.Tensor(np.zeros((4, 1, 3, 3))), fs.Tensor(np.zeros(3)))
    with pytest.raises(ValueError, match=r"output_padding \(2, 2\) must be smaller than the stride \(2, 2\)"):
        nn.ConvTranspose2d(1, 1, 3, stride=2, output_padding=2)(fs.Tensor(np.zeros((1, 1, 3, 3))))
    with pytest.raises(ValueError, match=r"fold: input of shape \(1, 8, 5\) is not \(N, C \* 4, 4\)"):
        F.fold(fs.Tensor(np.zeros((1, 8, 5))), (3, 3), 2)
