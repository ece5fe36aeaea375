"""from_scratch.functional against torch.nn.functional (float64 forward and gradients) with gradchecks,
plus extreme inputs, dropout statistics, masks, error messages and the erf/erfc special functions."""
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as TF

import from_scratch as fs
import from_scratch.functional as F
from from_scratch import Tensor
from from_scratch.autograd.special import erf, erfc

rng = np.random.default_rng(1)


def randn(*shape):
    return rng.standard_normal(shape)


def away(*shape):
    x = rng.standard_normal(shape)
    return np.where(np.abs(x) < 0.1, 0.3, x)


def ints(high, *shape):
    return rng.integers(0, high, shape)


IDS = np.array([[1, 3, 3], [0, 3, 1]])  # repeated ids: their gradients add up
TARGET = np.array([2, 0, 4, 4])
TARGET_BT = np.array([[1, 4, 0], [3, 3, 2]])
IGNORED = np.array([2, -100, 4, -100])
PAD_MASK = F.create_padding_mask(np.array([[5, 6, 0], [7, 0, 0]])).data.astype(np.float64)
CAUSAL = F.create_causal_mask(3).data.astype(np.float64)
ATTN_MASK = PAD_MASK + CAUSAL  # (2, 1, 3, 3): additive, no row fully hidden
BOOL_MASK = np.array([[True, True, False], [True, False, False], [True, True, True]])


def ce_bt(logits, target, **kw):
    """torch's cross_entropy with classes last: flatten (B, T, C) to (B*T, C)."""
    out = TF.cross_entropy(logits.reshape(-1, logits.shape[-1]), target.reshape(-1), **kw)
    return out.reshape(target.shape) if kw.get("reduction") == "none" else out


CASES = {
    "relu": (F.relu, TF.relu, [away(3, 4)]),
    "gelu": (F.gelu, TF.gelu, [randn(3, 4) * 3]),
    "gelu_tanh": (lambda x: F.gelu(x, approximate="tanh"), lambda x: TF.gelu(x, approximate="tanh"),
                  [randn(3, 4) * 3]),
    "sigmoid": (F.sigmoid, torch.sigmoid, [randn(3, 4) * 3]),
    "tanh": (F.tanh, torch.tanh, [randn(3, 4)]),
    "softmax": (F.softmax, lambda x: TF.softmax(x, -1), [randn(2, 3, 4)]),
    "softmax_axis0": (lambda x: F.softmax(x, axis=0), lambda x: TF.softmax(x, 0), [randn(3, 4)]),
    "log_softmax": (F.log_softmax, lambda x: TF.log_softmax(x, -1), [randn(2, 3, 4)]),
    "log_softmax_axis1": (lambda x: F.log_softmax(x, 1), lambda x: TF.log_softmax(x, 1), [randn(2, 3, 4)]),
    "linear": (F.linear, TF.linear, [randn(2, 3, 4), randn(5, 4), randn(5)]),
    "linear_no_bias": (F.linear, TF.linear, [randn(3, 4), randn(5, 4)]),
    "embedding": (F.embedding, TF.embedding, [IDS, randn(5, 3)]),
    "layer_norm": (F.layer_norm, lambda x, w, b: TF.layer_norm(x, (4,), w, b),
                   [randn(2, 3, 4) * 2 + 1, randn(4), randn(4)]),
    "layer_norm_no_affine": (F.layer_norm, lambda x: TF.layer_norm(x, (4,)), [randn(3, 4)]),
    "layer_norm_weight_only": (F.layer_norm, lambda x, w: TF.layer_norm(x, (4,), w), [randn(3, 4), randn(4)]),
    "layer_norm_2d": (lambda x, w, b: F.layer_norm(x, w, b, eps=1e-3),
                      lambda x, w, b: TF.layer_norm(x, (3, 4), w, b, eps=1e-3),
                      [randn(2, 3, 4), randn(3, 4), randn(3, 4)]),
    "attention": (F.scaled_dot_product_attention, TF.scaled_dot_product_attention,
                  [randn(2, 2, 3, 4), randn(2, 2, 3, 4), randn(2, 2, 3, 5)]),
    "attention_additive_mask": (
        lambda q, k, v: F.scaled_dot_product_attention(q, k, v, mask=ATTN_MASK),
        lambda q, k, v: TF.scaled_dot_product_attention(q, k, v, attn_mask=torch.from_numpy(ATTN_MASK)),
        [randn(2, 2, 3, 4), randn(2, 2, 3, 4), randn(2, 2, 3, 4)]),
    "attention_bool_mask": (
        lambda q, k, v: F.scaled_dot_product_attention(q, k, v, mask=BOOL_MASK),
        lambda q, k, v: TF.scaled_dot_product_attention(q, k, v, attn_mask=torch.from_numpy(BOOL_MASK)),
        [randn(2, 3, 4), randn(2, 3, 4), randn(2, 3, 4)]),
    "attention_mask_tensor": (
        lambda q, k, v: F.scaled_dot_product_attention(q, k, v, mask=Tensor(CAUSAL[0, 0], dtype=np.float64)),
        lambda q, k, v: TF.scaled_dot_product_attention(q, k, v, is_causal=True),
        [randn(3, 4), randn(3, 4), randn(3, 4)]),
    "cross_entropy": (F.cross_entropy, TF.cross_entropy, [randn(4, 5), TARGET]),
    "cross_entropy_btc": (F.cross_entropy, ce_bt, [randn(2, 3, 5), TARGET_BT]),
    "cross_entropy_sum": (lambda x, t: F.cross_entropy(x, t, reduction="sum"),
                          lambda x, t: TF.cross_entropy(x, t, reduction="sum"), [randn(4, 5), TARGET]),
    "cross_entropy_none_btc": (lambda x, t: F.cross_entropy(x, t, reduction="none"),
                               lambda x, t: ce_bt(x, t, reduction="none"), [randn(2, 3, 5), TARGET_BT]),
    "cross_entropy_ignore": (lambda x, t: F.cross_entropy(x, t, ignore_index=-100), TF.cross_entropy,
                             [randn(4, 5), IGNORED]),
    "cross_entropy_ignore_none": (lambda x, t: F.cross_entropy(x, t, ignore_index=4, reduction="none"),
                                  lambda x, t: TF.cross_entropy(x, t, ignore_index=4, reduction="none"),
                                  [randn(4, 5), TARGET]),
    "cross_entropy_smoothing": (lambda x, t: F.cross_entropy(x, t, label_smoothing=0.1),
                                lambda x, t: ce_bt(x, t, label_smoothing=0.1), [randn(2, 3, 5), TARGET_BT]),
    "cross_entropy_smoothing_ignore_sum": (
        lambda x, t: F.cross_entropy(x, t, ignore_index=-100, label_smoothing=0.2, reduction="sum"),
        lambda x, t: TF.cross_entropy(x, t, label_smoothing=0.2, reduction="sum"), [randn(4, 5), IGNORED]),
    "cross_entropy_smoothing_ignore_mean": (
        lambda x, t: F.cross_entropy(x, t, ignore_index=-100, label_smoothing=0.2),
        lambda x, t: TF.cross_entropy(x, t, label_smoothing=0.2), [randn(4, 5), IGNORED]),
    "nll_loss": (F.nll_loss, TF.nll_loss, [randn(4, 5), TARGET]),
    "nll_loss_btc_ignore_sum": (
        lambda x, t: F.nll_loss(x, t, ignore_index=-100, reduction="sum"),
        lambda x, t: TF.nll_loss(x.reshape(-1, 5), t.reshape(-1), reduction="sum"),
        [randn(2, 2, 5), IGNORED.reshape(2, 2)]),
    "nll_loss_none": (lambda x, t: F.nll_loss(x, t, reduction="none"),
                      lambda x, t: TF.nll_loss(x, t, reduction="none"), [randn(4, 5), TARGET]),
    "mse_loss": (F.mse_loss, TF.mse_loss, [randn(3, 4), randn(3, 4)]),
    "mse_loss_sum": (lambda x, y: F.mse_loss(x, y, reduction="sum"),
                     lambda x, y: TF.mse_loss(x, y, reduction="sum"), [randn(3, 4), randn(3, 4)]),
    "mse_loss_none": (lambda x, y: F.mse_loss(x, y, reduction="none"),
                      lambda x, y: TF.mse_loss(x, y, reduction="none"), [randn(3, 4), randn(3, 4)]),
    "bce": (F.binary_cross_entropy, TF.binary_cross_entropy, [rng.uniform(0.05, 0.95, (3, 4)), rng.random((3, 4))]),
    "bce_sum": (lambda p, t: F.binary_cross_entropy(p, t, reduction="sum"),
                lambda p, t: TF.binary_cross_entropy(p, t, reduction="sum"),
                [rng.uniform(0.05, 0.95, (5,)), rng.random((5,))]),
    "bce_none": (lambda p, t: F.binary_cross_entropy(p, t, reduction="none"),
                 lambda p, t: TF.binary_cross_entropy(p, t, reduction="none"),
                 [rng.uniform(0.05, 0.95, (5,)), rng.random((5,))]),
    "bce_logits": (F.binary_cross_entropy_with_logits, TF.binary_cross_entropy_with_logits,
                   [randn(3, 4) * 3, rng.random((3, 4))]),
    "bce_logits_sum": (lambda x, t: F.binary_cross_entropy_with_logits(x, t, reduction="sum"),
                       lambda x, t: TF.binary_cross_entropy_with_logits(x, t, reduction="sum"),
                       [randn(6), rng.random(6)]),
    "bce_logits_none": (lambda x, t: F.binary_cross_entropy_with_logits(x, t, reduction="none"),
                        lambda x, t: TF.binary_cross_entropy_with_logits(x, t, reduction="none"),
                        [randn(6), rng.random(6)]),
}


@pytest.mark.parametrize("name", CASES)
def test_matches_torch(torch_parity, name):
    ours, theirs, arrays = CASES[name]
    torch_parity(ours, theirs, *arrays)


@pytest.mark.parametrize("name", CASES)
def test_gradcheck(finite_diff, name):
    ours, _, arrays = CASES[name]
    finite_diff(ours, *arrays)


def test_float_mask_tensor_is_not_differentiated_but_accepted():
    q = Tensor(randn(2, 2, 3, 4), requires_grad=True)
    out, weights = F.scaled_dot_product_attention(q, q, q, mask=F.create_causal_mask(3), return_weights=True)
    assert (np.triu(weights.data, 1) < 1e-30).all()
    np.testing.assert_allclose(weights.data.sum(-1), 1, rtol=1e-6)
    assert out.shape == (2, 2, 3, 4) and out.dtype == weights.dtype == np.float32
    out.sum().backward()
    assert q.grad.shape == q.shape
    with pytest.raises(ValueError, match=r"mask of shape \(2, 2\) does not broadcast to scores of shape \(2, 2, 3, 3"):
        F.scaled_dot_product_attention(q, q, q, mask=np.zeros((2, 2)))


def test_attention_dropout_off_in_eval_and_at_zero():
    q = Tensor(randn(2, 3, 4))
    ref = F.scaled_dot_product_attention(q, q, q).data
    np.testing.assert_array_equal(F.scaled_dot_product_attention(q, q, q, dropout_p=0.9, training=False).data, ref)
    fs.manual_seed(0)
    assert not np.allclose(F.scaled_dot_product_attention(q, q, q, dropout_p=0.5).data, ref)


# ---------------------------------------------------------------- extreme inputs stay finite and correct

EXTREME = np.array([[1e4, -1e4, 0.0, 3.0], [-1e4, -1e4, -1e4, -1e4], [1e4, 1e4, -3.0, 2.0]])


@pytest.mark.parametrize("fn, theirs", [
    (F.softmax, lambda x: TF.softmax(x, -1)), (F.log_softmax, lambda x: TF.log_softmax(x, -1)),
    (F.sigmoid, torch.sigmoid), (F.tanh, torch.tanh),
    (lambda x: F.cross_entropy(x, np.array([1, 2, 3])), lambda x: TF.cross_entropy(x, torch.tensor([1, 2, 3]))),
    (lambda x: F.binary_cross_entropy_with_logits(x, np.tile([0.0, 1.0, 1.0, 0.5], (3, 1))),
     lambda x: TF.binary_cross_entropy_with_logits(x, torch.tensor(np.tile([0.0, 1.0, 1.0, 0.5], (3, 1))))),
], ids=["softmax", "log_softmax", "sigmoid", "tanh", "cross_entropy", "bce_logits"])
def test_extreme_logits_finite_and_correct(torch_parity, fn, theirs):
    out = torch_parity(fn, theirs, EXTREME)
    assert np.isfinite(out[0].data).all()


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_extreme_logits_in_float32_too(dtype):
    x = Tensor(EXTREME, requires_grad=True, dtype=dtype)
    for loss in [F.log_softmax(x).sum(), F.binary_cross_entropy_with_logits(x, np.ones_like(EXTREME)),
                 F.cross_entropy(x, np.array([1, 2, 3])), F.softmax(x).max()]:
        x.grad = None
        loss.backward()
        assert loss.dtype == dtype and np.isfinite(loss.item()) and np.isfinite(x.grad).all()
    bce = F.binary_cross_entropy_with_logits(Tensor([1e4, -1e4], dtype=dtype), [0.0, 1.0], reduction="none")
    np.testing.assert_allclose(bce.data, [1e4, 1e4], rtol=1e-6)


def test_bce_clamps_log_at_minus_100_like_torch(torch_parity):
    t = np.array([1.0, 0.0, 1.0, 0.0])  # a constant: PyTorch's target gradient is inf at p = 0 or 1
    out = torch_parity(lambda p: F.binary_cross_entropy(p, t, reduction="none"),
                       lambda p: TF.binary_cross_entropy(p, torch.from_numpy(t), reduction="none"),
                       np.array([0.0, 1.0, 0.5, 0.0]))
    np.testing.assert_array_equal(out[0].data, [100, 100, math.log(2), 0])


# ---------------------------------------------------------------- dropout

def test_dropout_statistics_and_scaling():
    fs.manual_seed(0)
    x = Tensor(np.ones((400, 250)), requires_grad=True)
    y = F.dropout(x, 0.3)
    zero = y.data == 0
    assert abs(zero.mean() - 0.3) < 0.01
    np.testing.assert_allclose(y.data[~zero], 1 / 0.7, rtol=1e-6)
    assert abs(y.data.mean() - 1) < 0.02 and y.dtype == np.float32
    y.sum().backward()
    np.testing.assert_array_equal(x.grad, y.data)  # the gradient is the same scaled mask


def test_dropout_identity_cases_and_seeding():
    x = Tensor(randn(5, 4), requires_grad=True)
    assert F.dropout(x, 0.5, training=False) is x
    assert F.dropout(x, 0.0) is x
    assert not F.dropout(x, 1.0).data.any()
    fs.manual_seed(3)
    a = F.dropout(x, 0.5).data
    fs.manual_seed(3)
    np.testing.assert_array_equal(F.dropout(x, 0.5).data, a)
    with pytest.raises(ValueError, match=r"dropout: p must be in \[0, 1\], got 1.5"):
        F.dropout(x, 1.5)


# ---------------------------------------------------------------- embedding, losses: errors and sums

def test_embedding_sums_repeated_ids():
    w = Tensor(randn(4, 3), requires_grad=True)
    F.embedding([[1, 1], [1, 2]], w).sum().backward()
    np.testing.assert_allclose(w.grad, [[0, 0, 0], [3, 3, 3], [1, 1, 1], [0, 0, 0]])


@pytest.mark.parametrize("bad", [4, -1])
def test_embedding_out_of_range_id_is_named(bad):
    with pytest.raises(IndexError, match=rf"embedding: id {bad} is outside the table of 4 rows \[0, 4\)"):
        F.embedding(np.array([0, bad]), Tensor(randn(4, 3)))
    with pytest.raises(TypeError, match="ids must be integers, got dtype float64"):
        F.embedding(np.array([0.0]), Tensor(randn(4, 3)))


@pytest.mark.parametrize("loss", [F.cross_entropy, F.nll_loss])
def test_out_of_range_target_names_the_value(loss):
    x = Tensor(randn(3, 5))
    with pytest.raises(IndexError, match=r"target value 7 is outside \[0, 5\)"):
        loss(x, np.array([1, 7, 2]))
    with pytest.raises(IndexError, match=r"target value -1 is outside \[0, 5\)"):
        loss(x, np.array([1, -1, 2]))
    with pytest.raises(ValueError, match=r"targets of shape \(3,\), got \(2,\)"):
        loss(x, np.array([1, 2]))
    with pytest.raises(TypeError, match="targets must be integers"):
        loss(x, np.array([1.0, 2.0, 0.0]))
    with pytest.raises(ValueError, match="reduction must be 'mean', 'sum' or 'none', got 'avg'"):
        loss(x, np.array([1, 2, 0]), reduction="avg")


def test_losses_check_shapes_and_ranges():
    x = Tensor(rng.random((2, 3)))
    for loss in [F.mse_loss, F.binary_cross_entropy, F.binary_cross_entropy_with_logits]:
        with pytest.raises(ValueError, match=r"input of shape \(2, 3\) and target of shape \(3,\) differ"):
            loss(x, np.ones(3))
        with pytest.raises(ValueError, match="reduction must be"):
            loss(x, np.ones((2, 3)), reduction="mena")
    with pytest.raises(ValueError, match=r"probabilities must lie in \[0, 1\]"):
        F.binary_cross_entropy(x * 2 - 1, np.ones((2, 3)))
    with pytest.raises(ValueError, match=r"linear: input of shape \(2, 3\) has 3 features"):
        F.linear(x, Tensor(randn(4, 5)))
    with pytest.raises(ValueError, match="approximate must be 'none' or 'tanh'"):
        F.gelu(x, approximate="fast")


def test_masks_shapes_and_values():
    pad = F.create_padding_mask(np.array([[4, 5, 0, 0], [1, 2, 3, 0]]))
    assert pad.shape == (2, 1, 1, 4) and pad.dtype == np.float32
    np.testing.assert_array_equal(pad.data[:, 0, 0], [[0, 0, -1e9, -1e9], [0, 0, 0, -1e9]])
    assert F.create_padding_mask(Tensor([[7, 9]]), pad_token_id=9).data[0, 0, 0].tolist() == [0, np.float32(-1e9)]
    causal = F.create_causal_mask(3)
    assert causal.shape == (1, 1, 3, 3)
    np.testing.assert_array_equal(causal.data[0, 0], [[0, -1e9, -1e9], [0, 0, -1e9], [0, 0, 0]])


# ---------------------------------------------------------------- erf, erfc and GELU in the tails

POINTS = np.concatenate([np.linspace(-30, 30, 6001), np.geomspace(1e-300, 30, 300), -np.geomspace(1e-300, 30, 300),
                         [0.0, 0.46875, -0.46875, 4.0, -4.0, np.nextafter(0.46875, 1), np.nextafter(4.0, 5), 26.5]])


def _rel_err(got, want):
    return np.abs(got - want) / np.maximum(np.abs(want), np.finfo(np.float64).tiny)


def test_erf_and_erfc_match_math_to_double_precision():
    want_erf = np.array([math.erf(v) for v in POINTS])
    want_erfc = np.array([math.erfc(v) for v in POINTS])
    assert _rel_err(erf(POINTS), want_erf).max() < 2e-15
    normal = want_erfc > 1e-300  # below that erfc is subnormal, where relative error means nothing
    assert _rel_err(erfc(POINTS), want_erfc)[normal].max() < 2e-15
    assert np.abs(erfc(POINTS) - want_erfc).max() < 1e-300 + 4e-16 * 2
    np.testing.assert_array_equal(erf(np.array([np.inf, -np.inf, 0.0])), [1, -1, 0])
    np.testing.assert_array_equal(erfc(np.array([np.inf, -np.inf, 40.0])), [0, 2, 0])
    assert np.isnan(erf(np.array([np.nan]))).all() and np.isnan(erfc(np.array([np.nan]))).all()
    assert erf(np.array(0.5)).shape == () and abs(erf(np.array(0.5)) - math.erf(0.5)) < 1e-16


def test_erf_keeps_float32():
    x = POINTS[np.abs(POINTS) > 1e-30].astype(np.float32)
    for fn, ref in [(erf, math.erf), (erfc, math.erfc)]:
        got = fn(x)
        assert got.dtype == np.float32
        want = np.array([ref(float(v)) for v in x])
        ok = want > 1e-37
        assert _rel_err(got.astype(np.float64), want)[ok].max() < 1e-6
    assert Tensor(x).erf().dtype == Tensor(x).erfc().dtype == np.float32
    assert F.gelu(Tensor(x)).dtype == np.float32


@pytest.mark.parametrize("op, ref", [(Tensor.erf, torch.erf), (Tensor.erfc, torch.erfc)], ids=["erf", "erfc"])
def test_erf_functions_match_torch_and_gradcheck(torch_parity, finite_diff, op, ref):
    x = np.concatenate([randn(10) * 2, [-5.0, 0.3, 4.5, 6.0]])
    torch_parity(op, ref, x)
    finite_diff(op, x)


def test_gelu_is_accurate_in_the_far_negative_tail():
    x = -np.geomspace(5, 38, 50)
    phi = np.array([0.5 * math.erfc(-v / math.sqrt(2)) for v in x])  # normal CDF, exact in the tail
    pdf = np.exp(-x * x / 2) / math.sqrt(2 * math.pi)
    t = Tensor(x, requires_grad=True, dtype=np.float64)
    y = F.gelu(t)
    y.sum().backward()
    ok = phi > 1e-300
    assert (y.data[ok] < 0).all()  # not rounded to 0 as 1 + erf(x / sqrt 2) would be
    assert _rel_err(y.data, x * phi)[ok].max() < 1e-12  # erfc(y) has condition number ~2 y^2 here
    assert _rel_err(t.grad, phi + x * pdf)[ok].max() < 1e-9  # d/dx x Phi(x) = Phi(x) + x phi(x)
