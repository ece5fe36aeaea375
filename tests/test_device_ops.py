"""Every op, fused op and Tensor method on a device gives the CPU's values and gradients, and stays there.

Each case runs forward and backward twice from the same float64 inputs: on the CPU, and on the ``device``
fixture's device (the strict test device, which refuses host arrays as CuPy does, and ``cuda`` where a GPU
is usable). Outputs and every input's gradient must agree to 1e-10, and every output and gradient must live
on the device the inputs were put on. Integer inputs (indices, ids, targets) go to the device too.
"""
from __future__ import annotations

from typing import Any, Callable

import numpy as np
import pytest

import from_scratch as fs
import from_scratch.functional as F
from from_scratch import Tensor, backend
from from_scratch.random import dropout_scale
from from_scratch.autograd import (fused, fused_attention, fused_blocks, fused_conv, fused_norm, fused_recurrent, ops,
                                   special, window)
from conftest import arrays_in, assert_on_device

TOL = 1e-10
rng = np.random.default_rng(0)


def _randn(*shape: int) -> np.ndarray:
    return rng.standard_normal(shape)


def _positive(*shape: int) -> np.ndarray:
    return rng.uniform(0.5, 2.0, shape)


def _flat(out: Any) -> list:
    if isinstance(out, (list, tuple)):
        return [leaf for o in out for leaf in _flat(o)]
    return [out]


def run_case(fn: Callable, arrays: tuple, device: str, seed: int = 1) -> tuple[list, list]:
    """``fn`` on tensors made from ``arrays`` on ``device`` (floats require grad), then backward of a fixed
    random weighting of every float output. Returns (outputs, inputs) after backward."""
    inputs = [Tensor(a.copy(), requires_grad=a.dtype.kind == "f", dtype=a.dtype, device=device) for a in arrays]
    outs = _flat(fn(*inputs))
    weights = np.random.default_rng(seed)
    loss = None
    for o in outs:
        if isinstance(o, Tensor) and o.requires_grad:
            w = Tensor(weights.standard_normal(o.shape), dtype=o.dtype, device=device)
            term = (o * w).sum()
            loss = term if loss is None else loss + term
    if loss is not None:
        loss.backward()
    return outs, inputs


def host(a: Any) -> np.ndarray:
    return backend.as_numpy(a.data if isinstance(a, Tensor) else a)


def check_device(fn: Callable, *arrays: np.ndarray, device: str) -> list:
    """Run ``fn`` on the CPU and on ``device``; assert equal outputs and gradients, all on ``device``."""
    ref_outs, ref_inputs = run_case(fn, arrays, "cpu")
    outs, inputs = run_case(fn, arrays, device)
    assert len(outs) == len(ref_outs)
    for i, (o, r) in enumerate(zip(outs, ref_outs)):
        assert type(o) is type(r), f"output {i}: {type(o).__name__}, on the CPU {type(r).__name__}"
        assert host(o).dtype == host(r).dtype, f"output {i}: dtype {host(o).dtype}, on the CPU {host(r).dtype}"
        np.testing.assert_allclose(host(o), host(r), rtol=TOL, atol=TOL, err_msg=f"output {i}")
    for i, (x, r) in enumerate(zip(inputs, ref_inputs)):
        assert (x.grad is None) == (r.grad is None), f"input {i}: gradient on one device only"
        if r.grad is not None:
            assert x.grad.dtype == r.grad.dtype
            np.testing.assert_allclose(host(x.grad), host(r.grad), rtol=TOL, atol=TOL, err_msg=f"gradient {i}")
    on_device = [o for o in outs if isinstance(o, Tensor) or backend.is_array(o)]
    assert_on_device(device, *on_device, *inputs)
    return outs


def _ids(n: int, *shape: int) -> np.ndarray:
    return rng.integers(0, n, shape).astype(np.int64)


X, Y = _randn(3, 4), _randn(3, 4)
ROW = _randn(4)
IMG = _randn(2, 3, 6, 5)

# ---------------------------------------------------------------- the primitives of autograd/ops.py
OPS = {
    "add": (lambda a, b: a + b, X, ROW),
    "sub": (lambda a, b: a - b, X, ROW),
    "mul": (lambda a, b: a * b, X, ROW),
    "div": (lambda a, b: a / b, X, _positive(4)),
    "pow": (lambda a, b: a ** b, _positive(3, 4), _randn(3, 1)),
    "pow_zero_exponent": (lambda a, b: a ** (b * 0), _randn(3, 4), _randn(3, 4)),
    "pow_number": (lambda a: a ** 3 + 2 ** a, X),
    "reflected": (lambda a: 1 - a + 2 * a / 3 - 1 / (a * a + 1), X),
    "maximum": (lambda a, b: a.maximum(b) + a.minimum(b * 0 + a), X, Y),
    "matmul_2d": (lambda a, b: a @ b, _randn(3, 4), _randn(4, 5)),
    "matmul_batched": (lambda a, b: a @ b, _randn(2, 3, 4), _randn(4, 5)),
    "matmul_vectors": (lambda a, b, c: (a @ b, b @ b, c @ a), _randn(3, 4), _randn(4), _randn(3)),
    "neg": (lambda a: -a, X),
    "exp": (lambda a: a.exp(), X),
    "log": (lambda a: a.log(), _positive(3, 4)),
    "sqrt": (lambda a: a.sqrt(), _positive(3, 4)),
    "abs": (lambda a: a.abs(), X),
    "tanh": (lambda a: a.tanh(), X),
    "sigmoid": (lambda a: a.sigmoid(), X * 30),
    "relu": (lambda a: a.relu(), X),
    "clip": (lambda a: (a.clip(-0.5, 0.5), a.clamp(min=0.1), a.clamp(max=0.2)), X),
    "sum": (lambda a: (a.sum(), a.sum(0), a.sum(axis=(0, 1), keepdims=True)), X),
    "mean_var_std": (lambda a: (a.mean(1), a.var(0), a.std(), a.std(1, correction=0)), X),
    "std_constant": (lambda a: (a * 0 + 1).std(0), X),
    "max_min": (lambda a: (a.max(), a.max(1), a.min(0, keepdims=True)), np.round(X)),
    "reshape_permute": (lambda a: (a.reshape(4, 3), a.permute(1, 0), a.T, a.flatten(), a.reshape(-1).unsqueeze(0)),
                        X),
    "squeeze_expand": (lambda a: (a.unsqueeze(1).squeeze(), a[:, :1].expand(3, 5), a.broadcast_to((2, 3, 4))), X),
    "getitem_basic": (lambda a: (a[1], a[:, 1:3], a[None, ..., -1], a[::2]), X),
    "getitem_fancy": (lambda a, i: (a[i], a[[0, 0, 2]], a[:, [1, 1]], a[a > 0]), X, np.array([2, 0, 2, 1])),
    "getitem_tensor_index": (lambda a, i: a[i.long()], X, np.array([1, 1, 0])),
    "cat_stack": (lambda a, b: (fs.cat([a, b], 1), fs.stack([a, b]), fs.cat([a, b], axis=0)), X, Y),
    "split_chunk": (lambda a: (*a.split(2, 1), *a.chunk(2, 0), *a.split([1, 3], 1)), X),
    "where": (lambda a, b: (fs.where(a > 0, a, b), fs.where(a > b, a, 0.5), a.masked_fill(a < 0, -1.0)), X, Y),
    "comparisons": (lambda a, b: ((a > b) * a + (a <= b) * b + (a == a) * 0 + (a != b) * 1.0), X, Y),
}

# ---------------------------------------------------------------- index_ops, reduce_ops, special, window
OTHERS = {
    "gather": (lambda a, i: a.gather(1, i), X, _ids(4, 3, 6)),
    "scatter_add": (lambda a, s, i: a.scatter_add(1, i, s), X, _randn(3, 6), _ids(4, 3, 6)),
    "index_add": (lambda a, s, i: a.index_add(0, i, s, alpha=2.0), X, _randn(5, 4), _ids(3, 5)),
    "index_select": (lambda a, i: a.index_select(1, i), X, _ids(4, 6)),
    "cast_clone": (lambda a: (a.clone(), a.float().double(), a.to(np.float32)), X),
    "tensor_api_misc": (lambda a: (a.pow(2), a.matmul(a.T), a.long(), a.int(), a.bool(), a.half().float(),
                                   a.to(a.device, np.float32), a.to(dtype=np.float64, copy=True), a.detach() * 1),
                        X),
    "cumsum_prod": (lambda a: (a.cumsum(1), a.prod(1), a.prod()), X),
    "prod_with_zeros": (lambda a: a.prod(0), np.array([[0.0, 2.0], [3.0, 0.0], [0.0, 4.0]])),
    "norm": (lambda a: (a.norm(), a.norm(1, dim=1), a.norm(3.0, dim=0, keepdim=True), a.norm(float("inf")),
                        a.norm(0)), X),
    "norm_of_zero": (lambda a: (a * 0).norm(dim=1), X),
    "logsumexp": (lambda a: (a.logsumexp(1), a.logsumexp()), X * 100),
    "sort_topk": (lambda a: (*a.sort(1), *a.sort(0, descending=True), *a.topk(2, 1), a.argsort(1)), X),
    "max_dim": (lambda a: (*a.max(dim=1), *a.min(dim=0, keepdim=True), a.argmax(1), a.argmin()), X),
    "erf_gelu": (lambda a: (special.Erf.apply(a), special.Erfc.apply(a), F.gelu(a),
                            F.gelu(a, approximate="tanh")), _randn(4, 5) * 3),
    "unfold_fold": (lambda a: (window.Unfold.apply(a, kernel=(3, 2), stride=(2, 1), padding=((1, 1), (0, 1)),
                                                   dilation=(1, 2)),), IMG),
    "fold": (lambda c: window.Fold.apply(c, size=(4, 4), kernel=(2, 2), stride=(1, 1), padding=((0, 0), (0, 0))),
             _randn(3 * 4, 2 * 9)),
    "window_max": (lambda a: (window.WindowMax.apply(a, kernel=(2, 2), stride=(2, 2)),
                              window.WindowMax.apply(a, kernel=(3, 3), stride=(1, 2), padding=((1, 1), (1, 1)))),
                   np.round(IMG * 2)),
}

# ---------------------------------------------------------------- fused ops
MASK = np.tril(np.ones((5, 5), bool))
FUSED = {
    "softmax": (lambda a: (fused.Softmax.apply(a, axis=1), fused.LogSoftmax.apply(a, axis=0), a.softmax(),
                           a.log_softmax()), X * 50),
    "cross_entropy": (lambda a, t: (fused.CrossEntropy.apply(a, target=t.data),
                                    fused.CrossEntropy.apply(a, target=t.data, ignore_index=2, label_smoothing=0.1,
                                                             reduction="sum"),
                                    fused.CrossEntropy.apply(a, target=t.data, reduction="none")),
                      _randn(6, 4), _ids(4, 6)),
    "cross_entropy_all_ignored": (lambda a, t: fused.CrossEntropy.apply(a, target=t.data * 0 + 7, ignore_index=7),
                                  _randn(6, 4), _ids(4, 6)),
    "layer_norm": (lambda a, w, b: (fused.LayerNorm.apply(a, w, b), fused.LayerNorm.apply(a),
                                    fused.AddLayerNorm.apply(a, a * 2, w, b)), _randn(2, 3, 4), _randn(4), _randn(4)),
    "bce": (lambda p, t: (fused.BinaryCrossEntropy.apply(p, t), fused.BinaryCrossEntropy.apply(p, t, reduction="sum")),
            rng.uniform(0.05, 0.95, (3, 4)), rng.uniform(0, 1, (3, 4))),
    "bce_with_logits": (lambda x, t: (fused.BCEWithLogits.apply(x, t), fused.BCEWithLogits.apply(x, t, reduction="none")),
                        X * 10, rng.uniform(0, 1, (3, 4))),
    "linear": (lambda x, w, b: (fused.Linear.apply(x, w, b), fused.Linear.apply(x, w)), _randn(2, 3, 4),
               _randn(5, 4), _randn(5)),
    "embedding_small": (lambda w, i: fused.Embedding.apply(w, ids=i.data, padding_idx=1), _randn(10, 3), _ids(10, 4, 5)),
    "embedding_large": (lambda w, i: fused.Embedding.apply(w, ids=i.data), _randn(100, 3), _ids(100, 40, 5)),
    "attention_weights": (lambda q, k, m: (fused_attention.AttentionWeights.apply(q, k, mask=m.data > 0, scale=0.5),
                                           fused_attention.AttentionWeights.apply(q, k, m, scale=0.3)),
                          _randn(2, 5, 4), _randn(2, 5, 4), MASK.astype(np.float64)),
    "attention_heads": (lambda q, k, v: fused_attention.AttendValues.apply(
        fused_attention.AttentionWeights.apply(q, k, heads=2, scale=0.7), v, heads=2),
        _randn(2, 5, 4), _randn(2, 3, 4), _randn(2, 3, 4)),
    "attention_fully_masked_row": (lambda q, k, m: (
        fused_attention.AttentionWeights.apply(q, k, mask=m.data > 5),
        fused_attention.AttentionWeights.apply(q, k, mask=np.where(m.data > 5, 0.0, -np.inf)),
        fused_attention.AttentionWeights.apply(q * 1e3, k, mask=np.where(m.data > 5, 0.0, -1e9))),
        _randn(1, 3, 4), _randn(1, 3, 4), np.array([[0.0, 0, 0], [9, 9, 0], [0, 0, 9]])),
    "mha_self": (lambda x, *p: fused_blocks.MultiHeadAttention.apply(x, *p, groups=(3,), heads=2, mask=MASK_DEV[0]),
                 _randn(2, 5, 4), *[_randn(4, 4) if i % 2 == 0 else _randn(4) for i in range(8)]),
    "mha_cross": (lambda x, m, *p: fused_blocks.MultiHeadAttention.apply(x, m, *p, groups=(1, 2), heads=2),
                  _randn(2, 5, 4), _randn(2, 3, 4), *[_randn(4, 4) if i % 2 == 0 else _randn(4) for i in range(8)]),
    "mha_separate": (lambda x, k, v, *p: fused_blocks.MultiHeadAttention.apply(x, k, v, *p, groups=(1, 1, 1), heads=2),
                     _randn(2, 5, 4), _randn(2, 3, 4), _randn(2, 3, 4),
                     *[_randn(4, 4) if i % 2 == 0 else _randn(4) for i in range(8)]),
    "feed_forward": (lambda x, w1, b1, w2, b2: fused_blocks.FeedForward.apply(x, w1, b1, w2, b2),
                     _randn(2, 3, 4), _randn(6, 4), _randn(6), _randn(4, 6), _randn(4)),
    "batch_norm": (lambda x, w, b: (fused_norm.BatchNorm.apply(x, w, b), fused_norm.BatchNorm.apply(
        x, has_weight=False, has_bias=False)), IMG, _randn(3), _randn(3)),
    "conv2d": (lambda x, w, b: (fused_conv.Conv2d.apply(x, w, b, stride=(2, 1), padding=((1, 1), (0, 1))),
                                fused_conv.Conv2d.apply(x, w, dilation=(1, 2))), IMG, _randn(4, 3, 3, 2), _randn(4)),
    "rnn_layer": (lambda xw, h0, w: (fused_recurrent.RNNLayer.apply(xw, h0, w),
                                     fused_recurrent.RNNLayer.apply(xw, h0, w, relu=True)),
                  _randn(4, 2, 3), _randn(2, 3), _randn(3, 3)),
    "lstm_layer": (lambda xw, h0, c0, w: fused_recurrent.LSTMLayer.apply(xw, h0, c0, w),
                   _randn(4, 2, 12), _randn(2, 3), _randn(2, 3), _randn(12, 3)),
    "gru_layer": (lambda xw, h0, w, b: fused_recurrent.GRULayer.apply(xw, h0, w, b),
                  _randn(4, 2, 9), _randn(2, 3), _randn(9, 3), _randn(9)),
}
MASK_DEV: list = [None]  # the mha_self mask, put on the case's device by the test


@pytest.mark.parametrize("name", sorted(OPS))
def test_primitive_ops_on_device(name, device):
    fn, *arrays = OPS[name]
    check_device(fn, *arrays, device=device)


@pytest.mark.parametrize("name", sorted(OTHERS))
def test_index_reduce_window_ops_on_device(name, device):
    fn, *arrays = OTHERS[name]
    check_device(fn, *arrays, device=device)


@pytest.mark.parametrize("name", sorted(FUSED))
def test_fused_ops_on_device(name, device):
    fn, *arrays = FUSED[name]
    if name == "mha_self":
        def fn(x, *p, _fn=fn):  # the mask is a constant array: made on the inputs' device
            MASK_DEV[0] = backend.to_device(MASK, x.device)
            return _fn(x, *p)
    check_device(fn, *arrays, device=device)


def test_every_primitive_is_covered():
    """Each Function class defined in ``from_scratch.autograd`` appears in some case above (by its class name)."""
    import importlib
    import inspect
    import pkgutil
    import from_scratch.autograd as autograd
    covered = {"Add", "Sub", "Mul", "Div", "Pow", "Maximum", "MatMul", "Neg", "Exp", "Log", "Sqrt", "Abs", "Tanh",
               "Sigmoid", "ReLU", "Clip", "Sum", "Max", "Reshape", "Permute", "Expand", "GetItem", "Cat", "Where",
               "Gather", "ScatterAdd", "IndexAdd", "Cast", "ToDevice", "Cumsum", "Prod", "Norm", "Erf", "Erfc",
               "Unfold", "Fold", "WindowMax", "Softmax", "LogSoftmax", "CrossEntropy", "LayerNorm", "AddLayerNorm",
               "BinaryCrossEntropy", "BCEWithLogits", "Linear", "Embedding", "AttentionWeights", "AttendValues",
               "MultiHeadAttention", "FeedForward", "BatchNorm", "Conv2d", "RNNLayer", "LSTMLayer", "GRULayer",
               "SetItem"}
    modules = [importlib.import_module(f"{autograd.__name__}.{info.name}")
               for info in pkgutil.walk_packages(autograd.__path__)]
    functions = {name for m in modules for name, obj in vars(m).items()
                 if inspect.isclass(obj) and issubclass(obj, fs.Function) and obj.__module__ == m.__name__
                 and obj is not fs.Function and not name.startswith("_")}
    assert "Linear" in functions and "SetItem" in functions
    assert functions <= covered, f"Functions without a device case: {sorted(functions - covered)}"


# ---------------------------------------------------------------- in place, promotion, zero size, dropout

def test_in_place_ops_on_device(device):
    def fn(a, b):
        c = a * 1.0
        c += b
        c -= 0.5
        c *= b
        c[0] = b[1]
        c[:, 1] = 3.0
        c /= 2.0
        d = (a * 1.0)
        d[a > 0] = 0.0
        e = b * 1.0
        e.zero_()
        f = b * 1.0
        f.fill_(2.5)
        return c, d, e, f
    check_device(fn, X, Y, device=device)


def test_in_place_without_graph_on_device(device):
    t = fs.zeros(3, 4, device=device, dtype=np.float64)
    with fs.no_grad():
        t += Tensor(X, dtype=np.float64, device=device)
        t[1] = 7.0
        t.fill_(1.5)
        t.zero_()
        t += 1
    assert_on_device(device, t)
    np.testing.assert_array_equal(t.numpy(), np.ones((3, 4)))


def test_dtype_promotion_on_device(device):
    ints = Tensor(np.arange(12).reshape(3, 4), device=device)
    floats = Tensor(X.astype(np.float32), device=device)
    cases = {
        "int * float number": (ints * 1.5, np.float32),
        "int / int": (ints / ints.clip(1), np.float32),
        "int + int number": (ints + 2, np.int64),
        "float32 + float64": (floats + Tensor(X, dtype=np.float64, device=device), np.float64),
        "int + float32": (ints + floats, np.float32),
        "float32 * number": (floats * 2.5, np.float32),
        "float32 + list": (floats + [1.0, 2.0, 3.0, 4.0], np.float32),
        "bool + int": (Tensor(np.ones(3, bool), device=device) + 1, np.int64),
        "int.mean": (ints.mean(), np.float32),
        "int.exp": (ints.exp(), np.float32),
    }
    for what, (t, dtype) in cases.items():
        assert t.dtype == dtype, what
        assert_on_device(device, t)


def test_zero_size_inputs_on_device(device):
    def fn(a, w, b, i):
        return (a.sum(0), a.mean(1), a @ w, fused.Linear.apply(a, w.T, b), fused.LayerNorm.apply(a),
                a.softmax(), F.relu(a), fs.cat([a, a]), a.reshape(0, 2, 2), a.exp() * 2,
                fused.Embedding.apply(w.T, ids=i.data), a.cumsum(0), a[i.data])
    check_device(fn, np.zeros((0, 4)), _randn(4, 3), _randn(3), np.zeros(0, np.int64), device=device)


def test_dropout_draws_on_the_device(device):
    fs.manual_seed(0)
    x = Tensor(np.ones((50, 40)), requires_grad=True, device=device, dtype=np.float64)
    y = F.dropout(x, 0.5)
    y.sum().backward()
    assert_on_device(device, y, x)
    kept = y.numpy() != 0
    assert 0.3 < kept.mean() < 0.7
    np.testing.assert_array_equal(x.grad.get() if hasattr(x.grad, "get") else x.grad, kept * 2.0)
    fs.manual_seed(0)
    again = F.dropout(Tensor(np.ones((50, 40)), device=device, dtype=np.float64), 0.5)
    np.testing.assert_array_equal(again.numpy(), y.numpy())  # one seed, one device: the same draws


def test_fused_blocks_with_dropout_on_device(device):
    fs.manual_seed(1)
    x = Tensor(_randn(2, 5, 4), requires_grad=True, device=device)
    params = [Tensor(_randn(4, 4) if i % 2 == 0 else _randn(4), requires_grad=True, device=device) for i in range(8)]
    # the masks are drawn by the caller (functional), on the input's device
    keep_attn, keep_ff = (dropout_scale(shape, 0.3, x.dtype, x.data) for shape in ((2, 2, 5, 5), (2, 5, 4)))
    out = fused_blocks.MultiHeadAttention.apply(x, *params, groups=(3,), heads=2, keep=keep_attn)
    ff = fused_blocks.FeedForward.apply(out, params[0], params[1], params[2], params[3], keep=keep_ff)
    ff.sum().backward()
    assert_on_device(device, out, ff, x, *params, keep_attn, keep_ff)


def test_backward_seeds_and_explicit_grads_on_device(device):
    x = Tensor(X, requires_grad=True, device=device, dtype=np.float64)
    (x * 2).sum().backward()
    (x * 3).backward(Tensor(np.ones((3, 4)), device=device, dtype=np.float64))
    assert_on_device(device, x)
    np.testing.assert_array_equal(x.numpy() * 0 + 5, backend.as_numpy(x.grad))
    leaf = Tensor(X, requires_grad=True, device=device, dtype=np.float64)
    leaf.backward(Tensor(np.ones((3, 4)), device=device, dtype=np.float64))
    assert_on_device(device, leaf)
    if device != "cpu":
        with pytest.raises(RuntimeError, match="backward: grad on cpu for a tensor on"):
            (x * 2).backward(np.ones((3, 4)))


def test_ops_refuse_tensors_of_two_devices(device):
    if device == "cpu":
        pytest.skip("needs a second device")
    a, b = Tensor(X), Tensor(Y, device=device)
    for op in (lambda: a + b, lambda: a @ b.T, lambda: fs.cat([a, b]), lambda: fused.Linear.apply(a, b)):
        with pytest.raises(RuntimeError, match=f"expected all inputs on one device, got tensors on cpu and {device}"):
            op()


def test_creation_functions_on_device(device):
    fs.manual_seed(0)
    made = [fs.zeros(2, 3, device=device), fs.ones((2, 3), device=device), fs.full((2,), 3.0, device=device),
            fs.arange(5, device=device), fs.randn(2, 2, device=device), fs.rand(3, device=device),
            fs.tensor([1.0, 2.0], device=device), fs.zeros_like(Tensor(X, device=device)),
            fs.ones_like(Tensor(X), device=device), fs.full_like(Tensor(X, device=device), 2),
            fs.rand_like(Tensor(X, device=device)), fs.randn_like(Tensor(X), device=device)]
    assert_on_device(device, *made)
    assert all(t.dtype == np.float32 for t in made if t.dtype.kind == "f")
    assert made[3].dtype == np.int64


def test_gradcheck_on_device(device):
    from from_scratch.testing import gradcheck
    x = Tensor(_randn(3, 4), requires_grad=True, device=device, dtype=np.float64)
    assert gradcheck(lambda t: (t * t).tanh().sum(1), [x])
    assert_on_device(device, x)


def test_cached_constant_vectors_are_per_device(device):
    one_cpu = ops.ones_vector(4, np.zeros(1))
    like = backend.to_device(np.zeros(1), device)
    one_dev = ops.ones_vector(4, like)
    assert backend.device_of(one_cpu) == "cpu" and backend.device_of(one_dev) == backend.device(device)
    assert ops.ones_vector(4, like) is one_dev  # cached per device
    assert one_dev.dtype == np.float64 and ops.ones_vector(4, like.astype(np.float32)).dtype == np.float32
    np.testing.assert_array_equal(backend.as_numpy(ops.mean_vector(4, like)), np.full(4, 0.25))


def test_arrays_in_finds_gradients():
    t = Tensor(X, requires_grad=True)
    (t * 1).sum().backward()
    assert len(arrays_in(t)) == 2


def test_strict_device_refuses_what_cupy_lacks():
    from strict_device import CupyLacksError
    a = backend.to_device(X, "strict")
    for bad in (lambda: np.divide(a, a, out=a * 0, where=a > 0), lambda: np.fmax.reduce(a, axis=None),
                lambda: a.max(initial=-np.inf), lambda: np.amax(a, initial=0.0), lambda: np.argsort(a, kind="stable"),
                lambda: np.count_nonzero(a, axis=0, keepdims=True), lambda: np.maximum.accumulate(a)):
        with pytest.raises(CupyLacksError):
            bad()
    np.add.reduce(a, axis=0), np.multiply.accumulate(a), np.argsort(a), a.max(), np.count_nonzero(a, axis=0)


def test_engine_features_on_device(device):
    """Hooks, retain_graph, anomaly detection and Python numbers from a device tensor."""
    x = Tensor(X, requires_grad=True, device=device, dtype=np.float64)
    seen = []
    x.register_post_accumulate_grad_hook(lambda t: seen.append(backend.device_of(t.grad)))
    y = (x * x).sum()
    y.backward(retain_graph=True)
    y.backward()
    assert seen == [backend.device(device)] * 2
    np.testing.assert_allclose(backend.as_numpy(x.grad), 4 * X)
    with fs.detect_anomaly(), np.errstate(divide="ignore"), pytest.raises(FloatingPointError, match="Log.forward produced NaN or inf"):
        (x * 0).log()
    assert isinstance(y.item(), float) and float(y) == y.item() and int(Tensor(np.array([3]), device=device)) == 3
    assert x.size() == (3, 4) and x.numel() == 12 and x.dim() == 2 and len(x) == 3
