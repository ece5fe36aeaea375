"""Every fused fast path against its plain version (functional ``*_simple``), in float64.

The plain side must be truly composed: its graph holds primitive ops only (``autograd/ops.py``,
``reduce_ops.py``, ``shape_ops.py``), and the fast side must really run its fused node. Outputs and every
gradient must agree to rounding; where dropout is on, one seed draws the same mask on both sides. ``F.use_fused(False)`` must switch every
public function over to its plain version. Adam's flat fast path is checked against its per-parameter
loop (``foreach=False``) over 20 steps.
"""
import numpy as np
import pytest

import from_scratch.functional as F
from from_scratch import Tensor, manual_seed
from from_scratch.autograd import ops, reduce_ops, shape_ops, window
from from_scratch.nn import Linear, Transformer
from from_scratch.optim import Adam, AdamW

rng = np.random.default_rng(0)
PRIMITIVES = {ops.__name__, reduce_ops.__name__, shape_ops.__name__, window.__name__}  # the primitive ops


def leaf(*shape) -> Tensor:
    return Tensor(rng.standard_normal(shape), requires_grad=True)


def graph_ops(out: Tensor) -> set:
    """The Function classes in ``out``'s graph."""
    seen, stack, found = set(), [out], set()
    while stack:
        t = stack.pop()
        if t._ctx is not None and id(t) not in seen:
            seen.add(id(t))
            found.add(type(t._ctx))
            stack.extend(t._ctx.parents)
    return found


def run(fn, inputs: list, seed: int = 0) -> tuple[list, set]:
    """fn's output and the gradients of every input (one random upstream gradient), and its graph's ops."""
    for t in inputs:
        t.grad = None
    manual_seed(seed)
    out = fn(*inputs)
    out = out[0] if isinstance(out, tuple) else out
    ran = graph_ops(out)
    out.backward(np.random.default_rng(1).standard_normal(out.shape))
    return [out.data] + [t.grad for t in inputs], ran


def check(fast, plain, inputs: list, fused_op: str, seed: int = 0) -> None:
    with F.use_fused(True):
        got, fast_ops = run(fast, inputs, seed)
    want, plain_ops = run(plain, inputs, seed)
    assert fused_op in {c.__name__ for c in fast_ops}, f"the fast side never ran {fused_op}: {fast_ops}"
    assert all(c.__module__ in PRIMITIVES for c in plain_ops), f"the plain side ran {plain_ops}"
    assert len(got) == len(want)
    for i, (a, b) in enumerate(zip(got, want)):
        assert (a is None) == (b is None), f"gradient {i}"
        if a is not None:
            np.testing.assert_allclose(a, b, rtol=1e-10, atol=1e-12, err_msg="output" if i == 0 else f"gradient {i}")
    with F.use_fused(False):  # the switch sends the public function to the plain version
        off, off_ops = run(fast, inputs, seed)
    assert all(c.__module__ in PRIMITIVES for c in off_ops), f"use_fused(False) still ran {off_ops}"
    np.testing.assert_allclose(off[0], want[0], rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("axis", [-1, 1])
def test_softmax_and_log_softmax(float64, axis):
    x = leaf(3, 4, 5)
    x.data[0, 0] += 50  # far from 0: the shift by the max must keep both stable
    check(lambda x: F.softmax(x, axis), lambda x: F.softmax_simple(x, axis), [x], "Softmax")
    check(lambda x: F.log_softmax(x, axis), lambda x: F.log_softmax_simple(x, axis), [x], "LogSoftmax")


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
@pytest.mark.parametrize("smoothing", [0.0, 0.2])
def test_cross_entropy(float64, reduction, smoothing):
    x = leaf(2, 3, 5)
    target = np.array([[1, 0, 4], [2, -100, 3]])  # one ignored target
    check(lambda x: F.cross_entropy(x, target, reduction=reduction, label_smoothing=smoothing),
          lambda x: F.cross_entropy_simple(x, target, reduction=reduction, label_smoothing=smoothing),
          [x], "CrossEntropy")


@pytest.mark.parametrize("affine", ["none", "weight", "both"])
@pytest.mark.parametrize("ndim", [1, 2])
def test_layer_norm_and_add_layer_norm(float64, affine, ndim):
    x, y = leaf(2, 3, 4, 5), leaf(2, 3, 4, 5)
    shape = (4, 5)[2 - ndim:]
    params = [leaf(*shape), leaf(*shape)][:{"none": 0, "weight": 1, "both": 2}[affine]]
    check(lambda x, *p: F.layer_norm(x, *p, normalized_ndim=ndim),
          lambda x, *p: F.layer_norm_simple(x, *p, normalized_ndim=ndim), [x, *params], "LayerNorm")
    check(lambda x, y, *p: F.add_layer_norm(x, y, *p, normalized_ndim=ndim),
          lambda x, y, *p: F.add_layer_norm_simple(x, y, *p, normalized_ndim=ndim), [x, y, *params], "AddLayerNorm")


@pytest.mark.parametrize("affine", [False, True])
def test_batch_norm(float64, affine):
    inputs = [leaf(4, 3, 5)] + ([leaf(3), leaf(3)] if affine else [])
    check(lambda x, *p: F.batch_norm(x, None, None, *p, training=True), F.batch_norm_simple, inputs, "BatchNorm")


@pytest.mark.parametrize("bias", [True, False])
def test_linear(float64, bias):
    inputs = [leaf(2, 3, 4), leaf(6, 4)] + ([leaf(6)] if bias else [])
    check(F.linear, F.linear_simple, inputs, "Linear")


@pytest.mark.parametrize("dropout", [0.0, 0.4])
def test_feed_forward(float64, dropout):
    inputs = [leaf(2, 3, 6), leaf(10, 6), leaf(10), leaf(6, 10), leaf(6)]
    check(lambda *a: F.feed_forward(*a, dropout_p=dropout), lambda *a: F.feed_forward_simple(*a, dropout_p=dropout),
          inputs, "FeedForward", seed=3)


def masks(b: int, tq: int, tk: int) -> dict:
    pad = F.create_padding_mask(np.array([[1] * tk] + [[1] * (tk - 2) + [0, 0]] * (b - 1)))
    blind = np.ones((b, 1, tq, tk), bool)
    blind[1, 0, 2], blind[0, 0, 1, 1:] = False, False  # one query sees no key at all, another just one
    return {"none": None, "additive": pad + F.create_causal_mask(tq) if tq == tk else pad,
            "boolean": np.asarray(pad.data == 0), "blind": blind, "-inf": np.where(blind, 0.0, -np.inf)}


@pytest.mark.parametrize("mask_kind", ["none", "additive", "boolean", "blind", "-inf"])
@pytest.mark.parametrize("heads", [None, 3])
@pytest.mark.parametrize("dropout", [0.0, 0.3])
def test_scaled_dot_product_attention(float64, mask_kind, heads, dropout):
    q, k, v = (leaf(3, 3, 5, 4), leaf(3, 3, 6, 4), leaf(3, 3, 6, 4)) if heads is None else \
        (leaf(3, 5, 12), leaf(3, 6, 12), leaf(3, 6, 12))
    mask = masks(3, 5, 6)[mask_kind]

    def plain(q, k, v):
        if heads is not None:
            q, k, v = (F.split_heads(t, heads) for t in (q, k, v))
        out, _ = F.scaled_dot_product_attention_simple(q, k, v, mask, dropout)
        return out if heads is None else F.merge_heads(out)

    check(lambda q, k, v: F.scaled_dot_product_attention(q, k, v, mask, dropout, num_heads=heads), plain,
          [q, k, v], "AttentionWeights", seed=7)


@pytest.mark.parametrize("sources", ["self", "memory", "three"])
@pytest.mark.parametrize("mask_kind", ["none", "additive", "boolean", "blind", "-inf"])
@pytest.mark.parametrize("dropout", [0.0, 0.3])
def test_multi_head_attention(float64, sources, mask_kind, dropout):
    x, memory, value = leaf(3, 5, 12), leaf(3, 6, 12), leaf(3, 6, 12)
    params = [leaf(12, 12) if i % 2 == 0 else leaf(12) for i in range(8)]
    key, value, inputs, tk = {"self": (None, None, [x], 5), "memory": (memory, None, [x, memory], 6),
                              "three": (memory, value, [x, memory, value], 6)}[sources]
    mask = masks(3, 5, tk)[mask_kind]
    n = len(inputs)

    def call(fn):
        def attend(*a):
            k = a[1] if n > 1 else None
            v = a[2] if n > 2 else None
            out, weights = fn(a[0], k, v, a[n:], 3, mask, dropout)
            return out
        return attend

    check(call(F.multi_head_attention), call(F.multi_head_attention_simple), inputs + params, "MultiHeadAttention",
          seed=7)


def test_multi_head_attention_weights(float64):
    x, params = leaf(2, 4, 8), [leaf(8, 8) if i % 2 == 0 else leaf(8) for i in range(8)]
    fast = F.multi_head_attention(x, None, None, params, 2)[1]
    plain = F.multi_head_attention_simple(x, None, None, params, 2)[1]
    assert not fast.requires_grad and fast.shape == (2, 2, 4, 4)
    np.testing.assert_allclose(fast.data, plain.data, rtol=1e-12)
    # need_weights=True: the weights are a differentiable output (the composed path)
    assert F.multi_head_attention(x, None, None, params, 2, need_weights=True)[1].requires_grad


def test_use_fused_restores_the_switch_and_runs_a_whole_transformer_plainly(float64):
    manual_seed(0)
    model = Transformer(vocab_size=9, hidden_size=8, num_layers=1, num_heads=2, ff_size=16, max_len=10)
    src, tgt = np.array([[1, 2, 3], [4, 5, 0]]), np.array([[1, 3, 2, 1], [5, 4, 0, 0]])
    src_mask = F.create_padding_mask(src)
    tgt_mask = F.create_padding_mask(tgt) + F.create_causal_mask(4)
    losses = []
    for fused in (True, False):
        with F.use_fused(fused):
            loss = F.cross_entropy(model(src, tgt, src_mask, tgt_mask), tgt, ignore_index=0)
            ran = graph_ops(loss)
        assert F.fused_enabled()  # the block put the default back
        model.zero_grad()
        loss.backward()
        losses.append([loss.data] + [p.grad for p in model.parameters()])
        fused_ran = {c for c in ran if c.__module__ not in PRIMITIVES and c.__name__ != "Embedding"}
        assert bool(fused_ran) == fused, fused_ran
    for a, b in zip(*losses):
        np.testing.assert_allclose(a, b, rtol=1e-9, atol=1e-12)
    F.use_fused(False)  # also a plain call, like torch.set_grad_enabled
    try:
        assert not F.fused_enabled()
    finally:
        F.use_fused(True)


@pytest.mark.parametrize("cls, decay", [(Adam, 0.0), (Adam, 0.1), (AdamW, 0.1)])
def test_adam_flat_fast_path_equals_the_per_parameter_loop(float64, cls, decay):
    manual_seed(0)
    models = [Linear(5, 3), Linear(5, 3)]
    models[1].load_state_dict(models[0].state_dict())
    opts = [cls(m.parameters(), lr=0.01, weight_decay=decay, foreach=foreach) for m, foreach in zip(models, (True, False))]
    data = np.random.default_rng(2)
    for step in range(20):
        x = data.standard_normal((4, 5))
        for m, opt in zip(models, opts):
            opt.zero_grad()
            (m(x) ** 2).mean().backward()
            if step == 5:  # the bias misses a step: its bias correction falls one step behind the weight's
                m.bias.grad = None
            opt.step()
    for (name, a), (_, b) in zip(models[0].named_parameters(), models[1].named_parameters()):
        np.testing.assert_allclose(a.data, b.data, rtol=1e-12, atol=1e-14, err_msg=name)
    for p, q in zip(models[0].parameters(), models[1].parameters()):
        assert opts[0].state[p]["step"] == opts[1].state[q]["step"]
        np.testing.assert_allclose(opts[0].state[p]["exp_avg_sq"], opts[1].state[q]["exp_avg_sq"], rtol=1e-12)


@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize("shape, kwargs", [
    ((2, 3, 7, 6), {"padding": 1}),
    ((2, 1, 6, 5), {"padding": "same"}),  # one input channel, uneven "same" padding
    ((2, 3, 9, 8), {"stride": (2, 1), "padding": (2, 0), "dilation": 2}),
    ((3, 7, 5), {"stride": 2}),  # unbatched
])
def test_conv2d(float64, bias, shape, kwargs):
    inputs = [leaf(*shape), leaf(4, shape[-3], 3, 2)] + ([leaf(4)] if bias else [])

    def plain(*a):
        with F.use_fused(False):
            return F.conv2d(*a, **kwargs)

    check(lambda *a: F.conv2d(*a, **kwargs), plain, inputs, "Conv2d")


def test_conv1d(float64):
    inputs = [leaf(2, 3, 9), leaf(4, 3, 3), leaf(4)]

    def plain(*a):
        with F.use_fused(False):
            return F.conv1d(*a, stride=2, padding=1, dilation=2)

    check(lambda *a: F.conv1d(*a, stride=2, padding=1, dilation=2), plain, inputs, "Conv2d")


def test_conv2d_input_without_gradient_and_float32_stays_float32():
    x = Tensor(rng.standard_normal((2, 1, 5, 5)).astype(np.float32))  # a first layer's input: no gradient
    w, b = (Tensor(rng.standard_normal(s).astype(np.float32), requires_grad=True) for s in ((3, 1, 3, 3), (3,)))
    out = F.conv2d(x, w, b, padding=1)
    out.backward(np.ones(out.shape, np.float32))
    assert out.dtype == w.grad.dtype == b.grad.dtype == np.float32 and x.grad is None
    with F.use_fused(False):
        want = F.conv2d(x, w, b, padding=1)
    np.testing.assert_allclose(out.data, want.data, rtol=1e-5, atol=1e-5)
