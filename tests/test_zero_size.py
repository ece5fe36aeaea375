"""Zero-size inputs (an empty batch, a zero-length axis) through every op, layer and loss, forward and backward:
each works as in PyTorch (same shapes and values, NaN where PyTorch gives NaN, zero gradients) or fails with
a clear error (ValueError/RuntimeError naming the op), never a crash from deep inside."""
from __future__ import annotations

import numpy as np
import pytest
import torch

import from_scratch.functional as F
from from_scratch import Tensor, cat, nn, stack, where

TF = torch.nn.functional

# name -> (ours, PyTorch's, input shapes); every input is float64 and requires grad
OPS = {
    "exp": (lambda x: x.exp(), torch.exp, [(0, 3)]),
    "log": (lambda x: x.log(), torch.log, [(3, 0)]),
    "sqrt": (lambda x: x.sqrt(), torch.sqrt, [(0,)]),
    "abs": (lambda x: x.abs(), torch.abs, [(0, 2)]),
    "tanh": (lambda x: x.tanh(), torch.tanh, [(0, 2)]),
    "sigmoid": (lambda x: x.sigmoid(), torch.sigmoid, [(0, 2)]),
    "relu": (lambda x: x.relu(), torch.relu, [(0, 2)]),
    "neg": (lambda x: -x, torch.neg, [(0, 2)]),
    "clip": (lambda x: x.clip(-1, 1), lambda x: x.clamp(-1, 1), [(0, 2)]),
    "add": (lambda a, b: a + b, torch.add, [(0, 3), (3,)]),
    "sub broadcast": (lambda a, b: a - b, torch.sub, [(0, 1), (1, 4)]),
    "mul": (lambda a, b: a * b, torch.mul, [(2, 0), (2, 0)]),
    "div": (lambda a, b: a / b, torch.div, [(0, 2), (0, 2)]),
    "pow": (lambda a, b: a ** b, torch.pow, [(0,), (0,)]),
    "maximum": (lambda a, b: a.maximum(b), torch.maximum, [(0, 2), (0, 2)]),
    "minimum": (lambda a, b: a.minimum(b), torch.minimum, [(0, 2), (0, 2)]),
    "matmul empty batch": (lambda a, b: a @ b, torch.matmul, [(0, 3), (3, 4)]),
    "matmul empty inner": (lambda a, b: a @ b, torch.matmul, [(2, 0), (0, 4)]),
    "matmul empty out": (lambda a, b: a @ b, torch.matmul, [(2, 3), (3, 0)]),
    "matmul batched": (lambda a, b: a @ b, torch.matmul, [(0, 2, 3), (0, 3, 4)]),
    "sum": (lambda x: x.sum(), torch.sum, [(0, 3)]),
    "sum axis": (lambda x: x.sum(axis=1), lambda x: x.sum(dim=1), [(3, 0)]),
    "mean": (lambda x: x.mean(), torch.mean, [(0,)]),
    "mean axis 0": (lambda x: x.mean(axis=0), lambda x: x.mean(dim=0), [(0, 3)]),
    "mean axis 1": (lambda x: x.mean(axis=1), lambda x: x.mean(dim=1), [(3, 0)]),
    "mean empty result": (lambda x: x.mean(axis=1), lambda x: x.mean(dim=1), [(0, 3)]),
    "var": (lambda x: x.var(), torch.var, [(0,)]),
    "var axis": (lambda x: x.var(axis=1), lambda x: x.var(dim=1), [(3, 0)]),
    "std axis": (lambda x: x.std(axis=0), lambda x: x.std(dim=0), [(0, 2)]),
    "max over empty": (lambda x: x.max(), torch.amax, [(0,)]),
    "max over empty axis": (lambda x: x.max(axis=1), lambda x: x.amax(dim=1), [(3, 0)]),
    "max of empty batch": (lambda x: x.max(axis=1), lambda x: x.amax(dim=1), [(0, 3)]),
    "min of empty batch": (lambda x: x.min(axis=1), lambda x: x.amin(dim=1), [(0, 3)]),
    "reshape": (lambda x: x.reshape(-1, 3), lambda x: x.reshape(-1, 3), [(0, 3)]),
    "permute": (lambda x: x.permute(1, 0, 2), lambda x: x.permute(1, 0, 2), [(0, 2, 3)]),
    "transpose": (lambda x: x.transpose(0, 1), lambda x: x.transpose(0, 1), [(0, 2)]),
    "expand": (lambda x: x.expand(0, 3), lambda x: x.expand(0, 3), [(1, 3)]),
    "squeeze": (lambda x: x.squeeze(1), lambda x: x.squeeze(1), [(0, 1)]),
    "unsqueeze": (lambda x: x.unsqueeze(0), lambda x: x.unsqueeze(0), [(0,)]),
    "flatten": (lambda x: x.flatten(), torch.flatten, [(2, 0, 3)]),
    "getitem": (lambda x: x[1:1], lambda x: x[1:1], [(3, 2)]),
    "getitem empty": (lambda x: x[:, 0], lambda x: x[:, 0], [(0, 2)]),
    "getitem no ids": (lambda x: x[np.zeros(0, np.int64)], lambda x: x[torch.zeros(0, dtype=torch.long)], [(3, 2)]),
    "split": (lambda x: x.split(2), lambda x: x.split(2), [(0, 3)]),
    "chunk": (lambda x: x.chunk(3), lambda x: x.chunk(3), [(0, 3)]),
    "cat": (lambda a, b: cat([a, b]), lambda a, b: torch.cat([a, b]), [(0, 3), (2, 3)]),
    "stack": (lambda a, b: stack([a, b]), lambda a, b: torch.stack([a, b]), [(0, 3), (0, 3)]),
    "where": (lambda a, b: where(np.zeros((0, 2), bool), a, b),
              lambda a, b: torch.where(torch.zeros((0, 2), dtype=torch.bool), a, b), [(0, 2), (0, 2)]),
    "softmax": (F.softmax, lambda x: TF.softmax(x, -1), [(0, 4)]),
    "softmax empty axis": (F.softmax, lambda x: TF.softmax(x, -1), [(3, 0)]),
    "log_softmax": (F.log_softmax, lambda x: TF.log_softmax(x, -1), [(0, 4)]),
    "gelu": (F.gelu, TF.gelu, [(0, 4)]),
    "linear": (F.linear, TF.linear, [(0, 3), (2, 3), (2,)]),
    "linear no features": (F.linear, TF.linear, [(4, 0), (2, 0), (2,)]),
    "layer_norm": (lambda x, w, b: F.layer_norm(x, w, b), lambda x, w, b: TF.layer_norm(x, (4,), w, b),
                   [(0, 4), (4,), (4,)]),
    "add_layer_norm": (lambda x, y: F.add_layer_norm(x, y), lambda x, y: TF.layer_norm(x + y, (4,)),
                       [(0, 2, 4), (0, 2, 4)]),
    "attention no queries": (F.scaled_dot_product_attention, TF.scaled_dot_product_attention,
                             [(2, 0, 4), (2, 3, 4), (2, 3, 5)]),
    "attention empty batch": (F.scaled_dot_product_attention, TF.scaled_dot_product_attention,
                              [(0, 2, 4), (0, 3, 4), (0, 3, 5)]),
    "mse_loss": (F.mse_loss, TF.mse_loss, [(0, 3), (0, 3)]),
    "mse_loss sum": (lambda a, b: F.mse_loss(a, b, reduction="sum"), lambda a, b: TF.mse_loss(a, b, reduction="sum"),
                     [(0, 3), (0, 3)]),
    "bce_with_logits": (F.binary_cross_entropy_with_logits, TF.binary_cross_entropy_with_logits, [(0, 3), (0, 3)]),
    "l1_loss": (F.l1_loss, TF.l1_loss, [(0, 3), (0, 3)]),
    "pad": (lambda x: F.pad(x, (1, 2)), lambda x: TF.pad(x, (1, 2)), [(0, 3)]),
    "clone": (lambda x: x.clone(), lambda x: x.clone(), [(0, 3)]),
    "cumsum": (lambda x: x.cumsum(dim=1), lambda x: x.cumsum(dim=1), [(0, 3)]),
    "cumsum empty axis": (lambda x: x.cumsum(dim=1), lambda x: x.cumsum(dim=1), [(3, 0)]),
    "prod": (lambda x: x.prod(dim=1), lambda x: x.prod(dim=1), [(3, 0)]),
    "norm": (lambda x: x.norm(dim=1), lambda x: x.norm(dim=1), [(3, 0)]),
    "logsumexp": (lambda x: x.logsumexp(dim=1), lambda x: x.logsumexp(dim=1), [(3, 0)]),
    "sort": (lambda x: x.sort(dim=1)[0], lambda x: x.sort(dim=1)[0], [(0, 3)]),
    "gather": (lambda x: x.gather(1, np.zeros((0, 2), np.int64)),
               lambda x: x.gather(1, torch.zeros((0, 2), dtype=torch.long)), [(0, 3)]),
}


def _ours(shape: tuple, rng: np.random.Generator) -> Tensor:
    return Tensor(rng.uniform(0.5, 1.5, shape), requires_grad=True, dtype=np.float64)


def _flat(out) -> list:
    return list(out) if isinstance(out, (list, tuple)) else [out]


def _check(name: str, ours_fn, torch_fn, ours_in: list, theirs_in: list) -> None:
    try:
        expected = _flat(torch_fn(*theirs_in))
    except (RuntimeError, IndexError, ValueError):
        with pytest.raises((ValueError, RuntimeError, IndexError)) as err:
            ours_fn(*ours_in)
        words = name.split()[0].split("_")[0]
        assert words in str(err.value).lower() or "empty" in str(err.value), f"{name}: unclear error {err.value}"
        return
    got = _flat(ours_fn(*ours_in))
    assert len(got) == len(expected), name
    for o, e in zip(got, expected):
        assert o.shape == tuple(e.shape), f"{name}: shape {o.shape}, PyTorch {tuple(e.shape)}"
        np.testing.assert_allclose(o.data, e.detach().numpy(), rtol=1e-7, atol=1e-12, err_msg=name)
    loss = sum((o * 1.0).sum() for o in got if o.requires_grad)
    ref = sum(e.sum() for e in expected if e.requires_grad)
    if not isinstance(loss, Tensor):
        return
    loss.backward()
    ref.backward()
    for a, t in zip(ours_in, theirs_in):
        if isinstance(t, torch.Tensor) and t.requires_grad:
            expected_grad = np.zeros(t.shape) if t.grad is None else t.grad.numpy()
            got_grad = np.zeros(a.shape) if a.grad is None else a.grad
            assert got_grad.shape == expected_grad.shape, name
            np.testing.assert_allclose(got_grad, expected_grad, rtol=1e-7, atol=1e-12, err_msg=f"{name} gradient")


@pytest.mark.parametrize("name", OPS)
def test_op_with_zero_size_input(name):
    ours_fn, torch_fn, shapes = OPS[name]
    rng = np.random.default_rng(0)
    ours_in = [_ours(s, rng) for s in shapes]
    theirs_in = [torch.tensor(a.data, requires_grad=True) for a in ours_in]
    _check(name, ours_fn, torch_fn, ours_in, theirs_in)


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_losses_on_an_empty_batch(reduction):
    rng = np.random.default_rng(1)
    ids = np.zeros(0, np.int64)
    for name, ours, theirs in [("cross_entropy", F.cross_entropy, TF.cross_entropy),
                               ("nll_loss", F.nll_loss, TF.nll_loss)]:
        x = _ours((0, 5), rng)
        _check(name, lambda a: ours(a, ids, reduction=reduction),
               lambda a: theirs(a, torch.tensor(ids), reduction=reduction), [x], [torch.tensor(x.data, requires_grad=True)])
    p = Tensor(np.full((0, 2), 0.5), requires_grad=True, dtype=np.float64)
    _check("binary_cross_entropy", lambda a: F.binary_cross_entropy(a, np.zeros((0, 2)), reduction=reduction),
           lambda a: TF.binary_cross_entropy(a, torch.zeros((0, 2), dtype=torch.float64), reduction=reduction),
           [p], [torch.tensor(p.data, requires_grad=True)])


def test_embedding_with_no_ids_gives_a_zero_gradient():
    """The issue's case: PyTorch returns a zero gradient; we raised from a reshape."""
    w = Tensor(np.ones((5, 3)), requires_grad=True, dtype=np.float64)
    out = F.embedding(np.zeros(0, np.int64), w)
    assert out.shape == (0, 3)
    out.sum().backward()
    np.testing.assert_array_equal(w.grad, np.zeros((5, 3)))
    big = Tensor(np.ones((100, 2)), requires_grad=True, dtype=np.float64)  # the sorted-ids path of a large table
    F.embedding(np.zeros((0, 4), np.int64), big).sum().backward()
    np.testing.assert_array_equal(big.grad, np.zeros((100, 2)))


LAYERS = {
    "Linear": (lambda: nn.Linear(3, 2), lambda: torch.nn.Linear(3, 2), (0, 3)),
    "LayerNorm": (lambda: nn.LayerNorm(4), lambda: torch.nn.LayerNorm(4), (0, 2, 4)),
    "Embedding": (lambda: nn.Embedding(5, 3), lambda: torch.nn.Embedding(5, 3), (0, 2)),
    "MultiHeadAttention": (lambda: nn.MultiHeadAttention(4, 2), None, (0, 3, 4)),
    "EncoderLayer": (lambda: nn.EncoderLayer(4, 2, 8), None, (0, 3, 4)),
    "EncoderLayer no positions": (lambda: nn.EncoderLayer(4, 2, 8), None, (2, 0, 4)),
    "FeedForward": (lambda: nn.FeedForward(4, 8), None, (0, 3, 4)),
    "RNN": (lambda: nn.RNN(3, 4, batch_first=True), lambda: torch.nn.RNN(3, 4, batch_first=True), (0, 2, 3)),
    "LSTM": (lambda: nn.LSTM(3, 4, batch_first=True), lambda: torch.nn.LSTM(3, 4, batch_first=True), (0, 2, 3)),
    "GRU": (lambda: nn.GRU(3, 4, batch_first=True), lambda: torch.nn.GRU(3, 4, batch_first=True), (0, 2, 3)),
    "GRU no steps": (lambda: nn.GRU(3, 4, batch_first=True), lambda: torch.nn.GRU(3, 4, batch_first=True), (2, 0, 3)),
    "GELU": (lambda: nn.GELU(), lambda: torch.nn.GELU(), (0, 3)),
    "Conv1d": (lambda: nn.Conv1d(2, 3, 3), lambda: torch.nn.Conv1d(2, 3, 3), (0, 2, 5)),
    "Conv2d": (lambda: nn.Conv2d(2, 3, 3, padding=1), lambda: torch.nn.Conv2d(2, 3, 3, padding=1), (0, 2, 4, 4)),
    "ConvTranspose2d": (lambda: nn.ConvTranspose2d(2, 3, 2), lambda: torch.nn.ConvTranspose2d(2, 3, 2), (0, 2, 3, 3)),
    "MaxPool2d": (lambda: nn.MaxPool2d(2), lambda: torch.nn.MaxPool2d(2), (0, 2, 4, 4)),
    "AvgPool2d": (lambda: nn.AvgPool2d(2), lambda: torch.nn.AvgPool2d(2), (0, 2, 4, 4)),
    "AdaptiveAvgPool2d": (lambda: nn.AdaptiveAvgPool2d(1), lambda: torch.nn.AdaptiveAvgPool2d(1), (0, 2, 4, 4)),
    "BatchNorm1d eval": (lambda: nn.BatchNorm1d(3).eval(), lambda: torch.nn.BatchNorm1d(3).eval(), (0, 3)),
    "BatchNorm2d eval": (lambda: nn.BatchNorm2d(3).eval(), lambda: torch.nn.BatchNorm2d(3).eval(), (0, 3, 2, 2)),
    "Softmax": (lambda: nn.Softmax(), lambda: torch.nn.Softmax(-1), (0, 3)),
}


@pytest.mark.parametrize("name", LAYERS)
def test_layer_with_an_empty_batch(name):
    """Forward and backward on an empty batch: the output has PyTorch's shape, every gradient is zero."""
    make, make_torch, shape = LAYERS[name]
    layer = make()
    if name == "GRU no steps":
        with pytest.raises(ValueError, match="GRU: input of shape .* has no time steps"):
            layer(Tensor(np.ones(shape)))
        with pytest.raises(RuntimeError):
            make_torch()(torch.ones(shape))
        return
    if name == "Embedding":
        x = np.zeros(shape, np.int64)
    else:
        x = Tensor(np.ones(shape), requires_grad=True)
    if name == "MultiHeadAttention":
        out = layer(x, x, x)
    else:
        out = layer(x)
    outs = [o for o in (out if isinstance(out, tuple) else (out,))]
    outs = [o for item in outs for o in (item if isinstance(item, tuple) else (item,))]
    if make_torch is not None:
        ref = make_torch()
        tx = torch.zeros(shape, dtype=torch.long) if name == "Embedding" else torch.ones(shape)
        ref_out = ref(tx)
        refs = [r for item in (ref_out if isinstance(ref_out, tuple) else (ref_out,))
                for r in (item if isinstance(item, tuple) else (item,))]
        assert [o.shape for o in outs] == [tuple(r.shape) for r in refs], name
    sum(o.sum() for o in outs).backward()
    for pname, p in layer.named_parameters():
        assert p.grad is None or not p.grad.any(), f"{name}.{pname}: nonzero gradient from an empty batch"
        assert p.grad is None or np.isfinite(p.grad).all(), f"{name}.{pname}: NaN gradient from an empty batch"


@pytest.mark.parametrize("make,shape", [(lambda: nn.BatchNorm1d(3), (0, 3)), (lambda: nn.BatchNorm2d(3), (0, 3, 2, 2))])
def test_batch_norm_training_on_an_empty_batch_is_a_clear_error(make, shape):
    """PyTorch refuses too: batch statistics of no values."""
    with pytest.raises(ValueError, match="expected more than 1 value per channel"):
        make()(Tensor(np.ones(shape)))
