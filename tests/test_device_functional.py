"""Every public functional (``F.__all__``) on a device: the CPU's values and gradients, everything on the device.

Built on ``test_device_ops.check_device``: each case runs on the CPU and on the ``device`` fixture's device from
the same float64 inputs (integer inputs, such as targets and ids, go to the device too). Then the device rules
of ``functional/``: constants (targets, ids, masks, weights) on another device than the input are an error
naming both devices, and the error paths never turn a device array into a NumPy one.
"""
from __future__ import annotations

import numpy as np
import pytest
import torch

import from_scratch.functional as F
from from_scratch import Tensor, backend
from conftest import assert_on_device
from test_device_ops import check_device

rng = np.random.default_rng(2)


def _randn(*shape: int) -> np.ndarray:
    return rng.standard_normal(shape)


def _ids(n: int, *shape: int) -> np.ndarray:
    return rng.integers(0, n, shape).astype(np.int64)


X = _randn(3, 5)
IMG = _randn(2, 4, 7, 6)
SEQ = np.array([[3, 4, 0, 0], [5, 1, 2, 0]])
PROBS = rng.uniform(0.05, 0.95, (3, 5))
MHA_PARAMS = [_randn(4, 4) if i % 2 == 0 else _randn(4) for i in range(8)]

# name -> (function of Tensors, input arrays); several cases may share a functional ("name:variant")
CASES = {
    "relu": (lambda x: F.relu(x), X),
    "gelu": (lambda x: (F.gelu(x), F.gelu(x, approximate="tanh")), X * 4),
    "sigmoid": (lambda x: F.sigmoid(x), X),
    "tanh": (lambda x: F.tanh(x), X),
    "softmax": (lambda x: (F.softmax(x), F.softmax(x, dim=0)), X),
    "log_softmax": (lambda x: (F.log_softmax(x), F.log_softmax(x, axis=0)), X),
    "dropout": (lambda x: (F.dropout(x, 0.0), F.dropout(x, 0.5, training=False), F.dropout(x, 1.0)), X),
    "linear": (lambda x, w, b: (F.linear(x, w, b), F.linear(x, w)), _randn(2, 3, 5), _randn(4, 5), _randn(4)),
    "embedding": (lambda w, i: (F.embedding(i, w), F.embedding(i, w, padding_idx=0)), _randn(7, 3), _ids(7, 2, 5)),
    "layer_norm": (lambda x, w, b: (F.layer_norm(x, w, b), F.layer_norm(x)), X, _randn(5), _randn(5)),
    "add_layer_norm": (lambda x, y, w, b: F.add_layer_norm(x, y, w, b), X, _randn(3, 5), _randn(5), _randn(5)),
    "scaled_dot_product_attention": (
        lambda q, k, v, m: (*F.scaled_dot_product_attention(q, k, v, mask=m.data > 0, return_weights=True),
                            F.scaled_dot_product_attention(q, k, v, mask=m), F.scaled_dot_product_attention(
                                q, k, v, num_heads=2), F.scaled_dot_product_attention(q, k, v, mask=m, num_heads=2)),
        _randn(2, 4, 6), _randn(2, 4, 6), _randn(2, 4, 6), np.tril(np.ones((4, 4)))),
    "multi_head_attention": (lambda x, m, *p: (F.multi_head_attention(x, None, None, p, 2)[0],
                                               F.multi_head_attention(x, m, None, p, 2, mask=F.create_causal_mask(
                                                   3, device=x.device).data[..., :2] == 0)[0]),
                             _randn(2, 3, 4), _randn(2, 2, 4), *MHA_PARAMS),
    "feed_forward": (lambda x, w1, b1, w2, b2: F.feed_forward(x, w1, b1, w2, b2), _randn(2, 3, 4), _randn(6, 4),
                     _randn(6), _randn(4, 6), _randn(4)),
    "cross_entropy": (lambda x, t, w: (F.cross_entropy(x, t), F.cross_entropy(x, t, reduction="sum"),
                                       F.cross_entropy(x, t, weight=w.detach()), F.cross_entropy(x, t, ignore_index=1),
                                       F.cross_entropy(x, t, label_smoothing=0.2, weight=w.detach(), ignore_index=2),
                                       F.cross_entropy(x.reshape(3, 5, 1), t.reshape(3, 1), class_axis=1)),
                      X, _ids(5, 3), rng.uniform(0.5, 2, 5)),
    "nll_loss": (lambda x, t, w: (F.nll_loss(x, t), F.nll_loss(x, t, weight=w.detach(), reduction="none"),
                                  F.nll_loss(x, t, ignore_index=0)), X, _ids(5, 3), rng.uniform(0.5, 2, 5)),
    "mse_loss": (lambda x, y: (F.mse_loss(x, y), F.mse_loss(x, y.detach(), reduction="none"), F.mse_loss(x, 0.5 * x)),
                 X, _randn(3, 5)),
    "l1_loss": (lambda x, y: (F.l1_loss(x, y), F.l1_loss(x, y, reduction="sum")), X, _randn(3, 5)),
    "binary_cross_entropy": (lambda p, t, w: (F.binary_cross_entropy(p, t), F.binary_cross_entropy(
        p, t.detach(), weight=w.detach(), reduction="sum")), PROBS, rng.uniform(0, 1, (3, 5)), rng.uniform(0, 1, 5)),
    "binary_cross_entropy_with_logits": (lambda x, t, w: (
        F.binary_cross_entropy_with_logits(x, t), F.binary_cross_entropy_with_logits(x, t.detach(), weight=w.detach()),
        F.binary_cross_entropy_with_logits(x, t.detach(), pos_weight=w.detach(), reduction="none")),
        X * 5, rng.uniform(0, 1, (3, 5)), rng.uniform(0.5, 2, 5)),
    "create_padding_mask": (lambda s: (F.create_padding_mask(s), F.create_padding_mask(s, pad_token_id=3)), SEQ),
    "create_causal_mask": (lambda x: (F.create_causal_mask(4, device=x.device), x + F.create_causal_mask(
        5, device=x.device)[0, 0, :3]), X),
    "where": (lambda x, y: (F.where(x > 0, x, y), F.where(x > y, 1.0, y)), X, _randn(3, 5)),
    "one_hot": (lambda i: (F.one_hot(i), F.one_hot(i, num_classes=9)), _ids(5, 2, 3)),
    "pad": (lambda x: (F.pad(x, (1, 2)), F.pad(x, (1, 1, 2, 0), value=3.0), F.pad(x, (-1, 1)),
                       F.pad(x, (2, 2), mode="reflect"), F.pad(x, (1, 3), mode="replicate"),
                       F.pad(x, (1, 2, 1, 1), mode="circular")), X),
    "batch_norm": (lambda x, w, b, m, v: (F.batch_norm(x, m.detach() * 1, v.detach().abs(), w, b, training=True),
                                          F.batch_norm(x, m.detach(), v.detach().abs(), w, b)),
                   IMG, _randn(4), _randn(4), _randn(4), _randn(4)),
    "conv1d": (lambda x, w, b: (F.conv1d(x, w, b, stride=2, padding=1), F.conv1d(x[0], w, groups=1, dilation=2)),
               _randn(2, 4, 9), _randn(6, 4, 3), _randn(6)),
    "conv2d": (lambda x, w, b, wg: (F.conv2d(x, w, b, padding="same"), F.conv2d(x, w, stride=(2, 1), padding=(1, 0)),
                                    F.conv2d(x, wg, groups=2)), IMG, _randn(3, 4, 3, 2), _randn(3), _randn(4, 2, 2, 2)),
    "conv_transpose2d": (lambda x, w, b: (F.conv_transpose2d(x, w, b, stride=2, padding=1, output_padding=1),
                                          F.conv_transpose2d(x, w, dilation=2)), IMG, _randn(4, 3, 3, 2), _randn(3)),
    "unfold": (lambda x: (F.unfold(x, (3, 2), padding=1, stride=2), F.unfold(x, 2, dilation=2)), IMG),
    "fold": (lambda c: F.fold(c, (4, 5), (2, 2)), _randn(2, 3 * 4, 12)),
    "max_pool2d": (lambda x: (F.max_pool2d(x, 2), F.max_pool2d(x, 3, stride=2, padding=1), F.max_pool2d(x[0], 2)),
                   np.round(IMG * 3)),
    "avg_pool2d": (lambda x: (F.avg_pool2d(x, 2), F.avg_pool2d(x, 3, stride=2, padding=1, count_include_pad=False),
                              F.avg_pool2d(x, 2, divisor_override=3)), IMG),
    "adaptive_avg_pool2d": (lambda x: (F.adaptive_avg_pool2d(x, (3, 4)), F.adaptive_avg_pool2d(x, 1),
                                       F.adaptive_avg_pool2d(x, (None, 5))), IMG),
}
# The plain versions beside the fused ops (``<name>_simple``) and the switch between them.
CASES.update({
    "softmax_simple": (lambda x: (F.softmax_simple(x), F.softmax_simple(x, 0)), X),
    "log_softmax_simple": (lambda x: (F.log_softmax_simple(x), F.log_softmax_simple(x, 0)), X),
    "linear_simple": (lambda x, w, b: (F.linear_simple(x, w, b), F.linear_simple(x, w)), _randn(2, 3, 5), _randn(4, 5),
                      _randn(4)),
    "feed_forward_simple": (lambda x, w1, b1, w2, b2: F.feed_forward_simple(x, w1, b1, w2, b2), _randn(2, 3, 4),
                            _randn(6, 4), _randn(6), _randn(4, 6), _randn(4)),
    "layer_norm_simple": (lambda x, w, b: (F.layer_norm_simple(x, w, b), F.layer_norm_simple(x)), X, _randn(5),
                          _randn(5)),
    "add_layer_norm_simple": (lambda x, y, w, b: F.add_layer_norm_simple(x, y, w, b), X, _randn(3, 5), _randn(5),
                              _randn(5)),
    "batch_norm_simple": (lambda x, w, b: F.batch_norm_simple(x, w, b), IMG, _randn(4), _randn(4)),
    "split_heads": (lambda x: F.split_heads(x, 2), _randn(2, 3, 4)),
    "merge_heads": (lambda x: F.merge_heads(F.split_heads(x, 2) * 2), _randn(2, 3, 4)),
    "scaled_dot_product_attention_simple": (
        lambda q, k, v, m: (F.scaled_dot_product_attention_simple(q, k, v, mask=m.data > 0),
                            F.scaled_dot_product_attention_simple(q, k, v, mask=m * 0),
                            F.scaled_dot_product_attention_simple(q, k, v, mask=(m.data * 0 + 1).astype(bool))),
        _randn(2, 4, 6), _randn(2, 4, 6), _randn(2, 4, 6), np.array([[0.0, 0, 0, 0], [1, 1, 0, 0], [1, 1, 1, 0],
                                                                     [1, 1, 1, 1]])),
    "multi_head_attention_simple": (lambda x, m, *p: (F.multi_head_attention_simple(x, None, None, p, 2),
                                                      F.multi_head_attention_simple(x, m, None, p, 2)),
                                    _randn(2, 3, 4), _randn(2, 2, 4), *MHA_PARAMS),
    "cross_entropy_simple": (lambda x, t, w: (F.cross_entropy_simple(x, t), F.cross_entropy_simple(
        x, t, weight=w.detach(), ignore_index=1, label_smoothing=0.1)), X, _ids(5, 3), rng.uniform(0.5, 2, 5)),
    "use_fused": (lambda x, t, w, b, q, w1, b1, w2, b2, *p: _with_fused_off(lambda: (
        F.softmax(x), F.log_softmax(x), F.cross_entropy(x, t), F.layer_norm(x, w, b), F.add_layer_norm(x, x, w, b),
        F.linear(q, w1, b1), F.feed_forward(q, w1, b1, w2, b2), F.multi_head_attention(q, None, None, p, 2)[0],
        F.scaled_dot_product_attention(q, q, q, mask=F.create_causal_mask(3, device=q.device), num_heads=2),
        F.batch_norm(q.reshape(2, 3, 2, 2), None, None, training=True))),
        X, _ids(5, 3), _randn(5), _randn(5), _randn(2, 3, 4), _randn(6, 4), _randn(6), _randn(4, 6), _randn(4),
        *MHA_PARAMS),
})
NOT_FUNCTIONS = {"MASK_VALUE", "fused_enabled"}


def _with_fused_off(run):
    with F.use_fused(False):
        return run()


def test_every_public_functional_has_a_device_case():
    missing = set(F.__all__) - NOT_FUNCTIONS - set(CASES)
    assert not missing, f"functionals without a device case in {__name__}: {sorted(missing)}"


@pytest.mark.parametrize("name", sorted(CASES))
def test_functional_on_device(name, device):
    fn, *arrays = CASES[name]
    check_device(fn, *arrays, device=device)


def test_masks_follow_their_ids_or_device(device):
    seq = Tensor(SEQ, device=device)
    assert_on_device(device, F.create_padding_mask(seq), F.create_causal_mask(3, device=device),
                     F.create_padding_mask(SEQ.tolist(), device=device), F.create_padding_mask(SEQ, device=device))
    assert F.create_causal_mask(3).device == "cpu" and F.create_padding_mask(SEQ).device == "cpu"
    assert F.create_padding_mask(seq).dtype == np.float32


def test_dropout_and_fused_blocks_train_on_device(device):
    x = Tensor(_randn(2, 3, 4), requires_grad=True, device=device)
    params = [Tensor(a, requires_grad=True, device=device) for a in MHA_PARAMS]
    out, weights = F.multi_head_attention(x, None, None, params, 2, dropout_p=0.2)
    out = F.feed_forward(F.dropout(out, 0.3), params[0], params[1], params[2], params[3], dropout_p=0.2)
    out.sum().backward()
    assert_on_device(device, out, weights, x, *params)


# ---------------------------------------------------------------- constants on another device, error paths

def _other_device(device: str) -> str:
    return "strict" if device == "cpu" else "cpu"


@pytest.mark.parametrize("call", [
    lambda x, o: F.cross_entropy(x, Tensor(np.array([0, 1, 2]), device=o)),
    lambda x, o: F.nll_loss(x, Tensor(np.array([0, 1, 2]), device=o)),
    lambda x, o: F.cross_entropy(x, Tensor(np.array([0, 1, 2]), device=x.device), weight=Tensor(np.ones(5), device=o)),
    lambda x, o: F.mse_loss(x, Tensor(X, device=o)),
    lambda x, o: F.binary_cross_entropy_with_logits(x, Tensor(X, device=x.device), pos_weight=Tensor(np.ones(5),
                                                                                                      device=o)),
    lambda x, o: F.embedding(Tensor(np.array([0, 1]), device=o), x),
    lambda x, o: F.scaled_dot_product_attention(x, x, x, mask=Tensor(np.ones((3, 3), bool), device=o)),
    lambda x, o: x.gather(1, Tensor(np.zeros((3, 1), np.int64), device=o)),
], ids=["cross_entropy", "nll_loss", "class_weight", "mse_loss", "pos_weight", "embedding", "mask", "gather"])
def test_a_constant_on_another_device_is_an_error_naming_both(call, device):
    other = _other_device(device)
    x = Tensor(X, requires_grad=True, device=device)
    with pytest.raises(RuntimeError, match=f"on {other}.* on {device}|on {device}.* on {other}|{other} and {device}|"
                                           f"{device} and {other}"):
        call(x, other)


def test_host_numpy_constants_beside_a_device_input_are_an_error():
    x = Tensor(X, device="strict")
    with pytest.raises(RuntimeError, match="cross_entropy: target is on cpu but the input is on strict"):
        F.cross_entropy(x, np.array([0, 1, 2]))
    with pytest.raises(RuntimeError, match="attention: mask is on cpu but the input is on strict"):
        F.scaled_dot_product_attention(x, x, x, mask=np.ones((3, 3), bool))


def test_lists_are_made_on_the_inputs_device():
    x = Tensor(X, requires_grad=True, device="strict")
    loss = F.cross_entropy(x, [0, 1, 2]) + F.mse_loss(x, X.tolist()) + F.embedding([[0, 1]], x).sum()
    loss = loss + x.gather(1, [[0], [1], [2]]).sum()
    loss.backward()
    assert_on_device("strict", loss, x)


@pytest.mark.parametrize("call, error, message", [
    (lambda x, d: F.cross_entropy(x, Tensor(np.array([0, 7, 2]), device=d)), IndexError,
     "cross_entropy: target value 7 is outside"),
    (lambda x, d: F.nll_loss(x, Tensor(np.array([0, -1, 2]), device=d)), IndexError, "nll_loss: target value -1"),
    (lambda x, d: F.cross_entropy(x, Tensor(np.array([0.5, 1, 2]), device=d)), TypeError, "targets must be integers"),
    (lambda x, d: F.cross_entropy(x, Tensor(np.array([0, 1]), device=d)), ValueError, "need targets of shape"),
    (lambda x, d: F.embedding(Tensor(np.array([9]), device=d), x), IndexError, "embedding: id 9 is outside"),
    (lambda x, d: F.one_hot(Tensor(np.array([3]), device=d), 2), ValueError, "one_hot: class id 3 is outside"),
    (lambda x, d: F.one_hot(Tensor(np.array([-3]), device=d)), ValueError, "one_hot: class id -3 is negative"),
    (lambda x, d: x.gather(1, Tensor(np.full((3, 1), 9), device=d)), IndexError, "gather: index 9 is out of bounds"),
    (lambda x, d: F.binary_cross_entropy(x, x), ValueError, "probabilities must lie in"),
    (lambda x, d: F.cross_entropy(x, Tensor(np.array([0, 1, 2]), device=d), weight=Tensor(np.ones(2), device=d)),
     ValueError, "weight of shape"),
    (lambda x, d: F.binary_cross_entropy(x.sigmoid(), x.sigmoid(), weight=Tensor(np.ones(2), device=d)), ValueError,
     "weight of shape"),
    (lambda x, d: F.scaled_dot_product_attention(x, x, x, mask=Tensor(np.ones((2, 2)), device=d)), ValueError,
     "mask of shape"),
])
def test_error_paths_on_device_name_the_problem(call, error, message, device):
    x = Tensor(X, requires_grad=True, device=device)
    with pytest.raises(error, match=message):
        call(x, device)


def test_backend_on_device_of():
    like = backend.to_device(np.zeros(2), "strict")
    assert backend.device_of(backend.on_device_of(like, [1, 2], "f", "x")) == "strict"
    assert backend.on_device_of(like, like, "f", "x") is like
    assert backend.on_device_of(np.zeros(2), [1.0], "f", "x", np.float32).dtype == np.float32
    with pytest.raises(RuntimeError, match="f: x is on cpu but the input is on strict"):
        backend.on_device_of(like, np.zeros(2), "f", "x")


CE_TARGETS = {"some ignored": [0, -100, 2, 4], "none ignored": [0, 1, 2, 4], "all ignored": [-100] * 4}


@pytest.mark.parametrize("smoothing", [0.0, 0.1])
@pytest.mark.parametrize("targets", CE_TARGETS)
def test_cross_entropy_mean_is_counted_on_the_device(host_copies, targets, smoothing):
    """The fused cross-entropy divides by its count of targets not ignored without reading it back (the one
    read per call is the targets' range check); its value and gradient are the CPU's and PyTorch's in float64,
    NaN with a zero gradient when nothing counts (README "Conventions")."""
    logits, t = _randn(4, 5), np.array(CE_TARGETS[targets])
    tx = torch.tensor(logits, requires_grad=True)
    ref = torch.nn.functional.cross_entropy(tx, torch.tensor(t), label_smoothing=smoothing)
    ref.backward()
    for device in ("cpu", "strict"):
        x = Tensor(logits, requires_grad=True, dtype=np.float64, device=device)
        target = Tensor(t, device=device)
        host_copies.clear()
        loss = F.cross_entropy(x, target, label_smoothing=smoothing)
        loss.backward()
        assert host_copies == ({"functional/loss.py": 1} if device == "strict" else {})
        assert loss.dtype == np.float64 and loss.shape == ()
        np.testing.assert_allclose(loss.numpy(), ref.item(), rtol=1e-12, err_msg=device)
        np.testing.assert_allclose(backend.as_numpy(x.grad), tx.grad.numpy(), rtol=1e-12, atol=1e-15, err_msg=device)
