"""Loss modules and functionals against torch in float64 (values and gradients), one_hot and pad."""
import numpy as np
import pytest
import torch
import torch.nn.functional as TF

import from_scratch.functional as F
from from_scratch import nn
from from_scratch.autograd.tensor import Tensor

rng = np.random.default_rng(0)
REDUCTIONS = ["mean", "sum", "none"]


def randn(*shape):
    return rng.standard_normal(shape)


def targets(shape, classes, ignore=None):
    t = rng.integers(0, classes, shape)
    if ignore is not None:
        t.flat[::3] = ignore  # every third target is ignored
    return t


# ---------------------------------------------------------------- classification: modules (PyTorch's layout)

# (input shape, target shape): (N, C), (N, C, d1, d2) and unbatched (C,)
LAYOUTS = [((6, 5), (6,)), ((3, 5, 2, 4), (3, 2, 4)), ((5,), ())]


@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("smoothing", [0.0, 0.2])
@pytest.mark.parametrize("weighted", [False, True])
@pytest.mark.parametrize("shapes", LAYOUTS, ids=["NC", "NCd1d2", "C"])
def test_cross_entropy_loss_matches_torch(torch_parity, reduction, smoothing, weighted, shapes):
    x_shape, t_shape = shapes
    weight = rng.uniform(0.5, 2, 5) if weighted else None
    t = targets(t_shape, 5, ignore=-100 if t_shape else None)
    kw = dict(reduction=reduction, label_smoothing=smoothing)
    ours = nn.CrossEntropyLoss(weight, **kw)
    theirs = torch.nn.CrossEntropyLoss(None if weight is None else torch.tensor(weight), **kw)
    torch_parity(ours, theirs, randn(*x_shape), t)


@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("weighted", [False, True])
@pytest.mark.parametrize("shapes", LAYOUTS, ids=["NC", "NCd1d2", "C"])
def test_nll_loss_module_matches_torch(torch_parity, reduction, weighted, shapes):
    x_shape, t_shape = shapes
    weight = rng.uniform(0.5, 2, 5) if weighted else None
    t = targets(t_shape, 5, ignore=1 if t_shape else None)
    ours = nn.NLLLoss(weight, ignore_index=1, reduction=reduction)
    theirs = torch.nn.NLLLoss(None if weight is None else torch.tensor(weight), ignore_index=1, reduction=reduction)
    torch_parity(ours, theirs, randn(*x_shape), t)


def test_classification_modules_repr_and_state_follow_torch():
    w = np.ones(3)
    for ours, theirs in [(nn.CrossEntropyLoss(), torch.nn.CrossEntropyLoss()),
                         (nn.NLLLoss(w), torch.nn.NLLLoss(torch.ones(3))),
                         (nn.BCEWithLogitsLoss(pos_weight=w), torch.nn.BCEWithLogitsLoss(pos_weight=torch.ones(3)))]:
        assert repr(ours) == repr(theirs)
        assert list(ours.state_dict()) == list(theirs.state_dict())
        assert ours.reduction == theirs.reduction


def test_cross_entropy_loss_says_which_layout_it_takes():
    logits, t = Tensor(randn(2, 7, 5)), targets((2, 7), 5)  # a sequence model's (B, T, C): not PyTorch's layout
    with pytest.raises(ValueError, match=r"logits of shape \(2, 7, 5\) \(classes on axis 1\) need targets "
                                         r"of shape \(2, 5\), got \(2, 7\)"):
        nn.CrossEntropyLoss()(logits, t)
    loss = nn.CrossEntropyLoss()(logits.permute(0, 2, 1), t)  # PyTorch's (N, C, T) works
    assert loss.item() == pytest.approx(F.cross_entropy(logits, t).item(), rel=1e-6)
    with pytest.raises(TypeError):
        nn.CrossEntropyLoss(None, -100)  # PyTorch's second positional is the deprecated size_average
    with pytest.raises(ValueError, match="reduction must be"):
        nn.MSELoss(reduction="avg")


# ---------------------------------------------------------------- classification: functionals

@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("smoothing", [0.0, 0.1])
@pytest.mark.parametrize("weighted", [False, True])
def test_functional_cross_entropy_class_axis_1_matches_torch(torch_parity, reduction, smoothing, weighted):
    weight = rng.uniform(0.5, 2, 4) if weighted else None
    kw = dict(reduction=reduction, label_smoothing=smoothing)
    torch_parity(lambda x, t: F.cross_entropy(x, t, weight, class_axis=1, **kw),
                 lambda x, t: TF.cross_entropy(x, t, None if weight is None else torch.tensor(weight), **kw),
                 randn(3, 4, 6), targets((3, 6), 4, ignore=-100))


@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_functional_losses_classes_last_match_torch(torch_parity, reduction):
    """Our default (..., C) layout is torch's with the class axis moved to 1."""
    weight = rng.uniform(0.5, 2, 4)
    t = targets((3, 6), 4, ignore=2)
    torch_parity(lambda x, t: F.cross_entropy(x, t, weight, ignore_index=2, reduction=reduction, label_smoothing=0.3),
                 lambda x, t: TF.cross_entropy(x.permute(0, 2, 1), t, torch.tensor(weight), ignore_index=2,
                                               reduction=reduction, label_smoothing=0.3),
                 randn(3, 6, 4), t)
    torch_parity(lambda x, t: F.nll_loss(x, t, weight, ignore_index=2, reduction=reduction),
                 lambda x, t: TF.nll_loss(x.permute(0, 2, 1), t, torch.tensor(weight), ignore_index=2,
                                          reduction=reduction),
                 randn(3, 6, 4), t)


@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("smoothing", [0.0, 0.25])
def test_fused_cross_entropy_equals_the_composed_version(float64, reduction, smoothing):
    """Unit class weights take the composed path (log_softmax + nll_loss); no weight takes the fused node."""
    x, t = randn(5, 7), targets((5,), 7, ignore=-100)
    outs, grads = [], []
    for weight in (None, np.ones(7)):
        xt = Tensor(x, requires_grad=True)
        out = F.cross_entropy(xt, t, weight, reduction=reduction, label_smoothing=smoothing)
        out.backward(np.ones(out.shape))
        outs.append(out.data)
        grads.append(xt.grad)
    np.testing.assert_allclose(outs[0], outs[1], rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(grads[0], grads[1], rtol=1e-12, atol=1e-15)


def test_classification_errors_are_clear():
    x = Tensor(randn(2, 3))
    with pytest.raises(ValueError, match=r"cross_entropy: weight of shape \(4,\) must have one entry per class, "
                                         r"\(3,\)"):
        F.cross_entropy(x, [0, 1], weight=np.ones(4))
    with pytest.raises(ValueError, match="label_smoothing must be in"):
        F.cross_entropy(x, [0, 1], label_smoothing=1.5)
    with pytest.raises(ValueError, match="axis 3 is out of range"):
        F.nll_loss(x, [0, 1], class_axis=3)


# ---------------------------------------------------------------- regression and binary losses

@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_regression_losses_match_torch(torch_parity, reduction):
    a, b = randn(3, 4), randn(3, 4)
    b[0, :2] = a[0, :2]  # ties: the gradient of |a - b| is 0 there, in both libraries
    for ours, theirs in [(nn.MSELoss(reduction=reduction), torch.nn.MSELoss(reduction=reduction)),
                         (nn.L1Loss(reduction=reduction), torch.nn.L1Loss(reduction=reduction))]:
        torch_parity(ours, theirs, a, b)  # the target is differentiable too
    torch_parity(lambda x, y: F.l1_loss(x, y, reduction), lambda x, y: TF.l1_loss(x, y, reduction=reduction), a, b)


@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("weighted", [False, True])
def test_binary_losses_match_torch(torch_parity, reduction, weighted):
    p, t, x = rng.uniform(0.05, 0.95, (3, 4)), rng.random((3, 4)), 4 * randn(3, 4)
    weight = rng.uniform(0.5, 2, 4) if weighted else None
    tw = None if weight is None else torch.tensor(weight)
    torch_parity(nn.BCELoss(weight, reduction=reduction), torch.nn.BCELoss(tw, reduction=reduction), p, t)
    for pos_weight in (None, rng.uniform(0.5, 3, 4)):
        tpw = None if pos_weight is None else torch.tensor(pos_weight)
        torch_parity(nn.BCEWithLogitsLoss(weight, reduction=reduction, pos_weight=pos_weight),
                     torch.nn.BCEWithLogitsLoss(tw, reduction=reduction, pos_weight=tpw), x, t)


def test_pos_weight_is_stable_at_large_logits(float64):
    x = Tensor(np.array([-800.0, -30.0, 0.0, 30.0, 800.0]), requires_grad=True)
    loss = F.binary_cross_entropy_with_logits(x, np.array([1.0, 0, 1, 0, 1]), pos_weight=np.array(2.0))
    loss.backward()
    ref = TF.binary_cross_entropy_with_logits(torch.tensor(x.data, requires_grad=True),
                                              torch.tensor([1.0, 0, 1, 0, 1], dtype=torch.float64),
                                              pos_weight=torch.tensor(2.0, dtype=torch.float64))
    assert np.isfinite(loss.item()) and loss.item() == pytest.approx(ref.item(), rel=1e-12)
    assert np.isfinite(x.grad).all()


def test_losses_keep_float32():
    x = Tensor(randn(4, 3).astype(np.float32), requires_grad=True)
    w = np.ones(3)  # a float64 weight must not turn the float32 loss into float64
    for loss in [F.cross_entropy(x, [0, 1, 2, 0], w, label_smoothing=0.1), F.nll_loss(x, [0, 1, 2, 0], w),
                 F.l1_loss(x, np.zeros((4, 3))),
                 F.binary_cross_entropy_with_logits(x, np.ones((4, 3)), w, pos_weight=w),
                 nn.BCELoss(w)(x.sigmoid(), np.ones((4, 3)))]:
        assert loss.dtype == np.float32
        loss.backward()
        assert x.grad.dtype == np.float32


# ---------------------------------------------------------------- one_hot and pad

def test_one_hot_matches_torch():
    ids = rng.integers(0, 5, (3, 4))
    for n in (-1, 7):
        got = F.one_hot(ids, n)
        want = TF.one_hot(torch.tensor(ids), n).numpy()
        assert got.dtype == np.int64 and not got.requires_grad
        np.testing.assert_array_equal(got.data, want)
    assert F.one_hot(Tensor(np.array([2])), 3).tolist() == [[0, 0, 1]]
    with pytest.raises(ValueError, match=r"one_hot: class id 5 is outside \[0, 3\)"):
        F.one_hot(np.array([5, 0]), 3)
    with pytest.raises(ValueError, match="negative"):
        F.one_hot([-1, 0])
    with pytest.raises(TypeError, match="integers"):
        F.one_hot(np.array([0.0, 1.0]))


PADS = [("constant", (1, 2)), ("constant", (2, 0, 1, 3)), ("constant", (-1, 2, 0, -2)),
        ("constant", (1, 1, 1, 1, 1, 1)),
        ("reflect", (2, 3)), ("reflect", (1, 3, 2, 0)), ("replicate", (4, 1, 0, 2)), ("circular", (2, 5, 1, 3))]


@pytest.mark.parametrize("mode, pad", PADS)
def test_pad_matches_torch(torch_parity, mode, pad):
    # torch pads the last len(pad) // 2 axes of a batched input in the non-constant modes: (N, C, ...) ahead
    shape = (2, 3, 4, 5) if mode == "constant" else (2, 3, 4, 5)[:2 + len(pad) // 2]
    out = torch_parity(lambda x: F.pad(x, pad, mode), lambda x: TF.pad(x, pad, mode), randn(*shape))
    assert out[0].dtype == np.float64


def test_pad_constant_value_and_errors(torch_parity):
    torch_parity(lambda x: F.pad(x, (1, 2, 3, 0), value=1.5), lambda x: TF.pad(x, (1, 2, 3, 0), value=1.5),
                 randn(3, 4))
    assert F.pad([[1, 2]], (1, 0)).tolist() == [[0, 1, 2]]  # lists and integer data work too
    with pytest.raises(ValueError, match=r"pad: pad \(1, 2, 3\) must hold a \(before, after\) pair"):
        F.pad(Tensor(randn(3, 4)), (1, 2, 3))
    with pytest.raises(ValueError, match="reflect padding of \\(4, 0\\) does not fit an axis of length 4"):
        F.pad(Tensor(randn(3, 4)), (4, 0), mode="reflect")
    with pytest.raises(ValueError, match="mode must be one of"):
        F.pad(Tensor(randn(3, 4)), (1, 1), mode="mirror")
