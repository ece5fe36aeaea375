"""The fast paths: fused Linear, Embedding and attention, the flat Adam update, and float32 throughout.

Each fused op is gradient-checked in float64 and compared with the composed (or PyTorch) version;
a whole Transformer training step in float32 must never make a float64 array. No timings here:
benchmarks/speed.py measures speed.
"""
import numpy as np
import pytest
import torch

from from_scratch import Tensor, manual_seed, optim
from from_scratch import functional as F
from from_scratch.autograd import ops
from from_scratch.autograd.function import Function
from from_scratch.autograd.fused_attention import softmax_last_axis
from from_scratch.nn import EncoderLayer, Linear, Transformer
from from_scratch.optim import Adam

rng = np.random.default_rng(0)


def randn(*shape):
    return rng.standard_normal(shape)


# ---------------------------------------------------------------- float32 stays float32

def _record_dtypes(monkeypatch) -> list:
    """Patch Function.apply_with_ctx (which ``apply`` calls) so every op's inputs, keyword arrays, output and
    backward gradients are recorded."""
    seen = []
    apply = Function.apply_with_ctx.__func__

    def recording_apply(cls, *tensors, **kwargs):
        out, ctx = apply(cls, *tensors, **kwargs)
        arrays = [t.data for t in tensors] + [v for v in kwargs.values() if isinstance(v, np.ndarray)]
        seen.extend((cls.__name__, "forward", a.dtype) for a in arrays + [out.data] if a.dtype.kind == "f")
        if out._ctx is not None:
            backward = ctx.backward

            def recording_backward(g, ctx=ctx, backward=backward):
                grads = backward(g)
                for a in (g, *(grads if isinstance(grads, tuple) else (grads,))):
                    if a is not None:
                        seen.append((cls.__name__, "backward", np.asarray(a).dtype))
                return grads
            ctx.backward = recording_backward
        return out, ctx

    monkeypatch.setattr(Function, "apply_with_ctx", classmethod(recording_apply))
    return seen


@pytest.mark.parametrize("norm_first,dropout", [(False, 0.0), (True, 0.1)])
def test_transformer_training_step_never_makes_float64(monkeypatch, norm_first, dropout):
    manual_seed(0)
    model = Transformer(13, 16, 2, 4, 32, max_len=12, dropout=dropout, norm_first=norm_first)
    optimizer = Adam(model.parameters(), lr=1e-3, weight_decay=0.01)
    src = np.array([[3, 4, 5, 0], [6, 7, 8, 9]])  # the first row is padded
    tgt = np.array([[1, 5, 4, 3, 0], [1, 9, 8, 7, 6]])
    src_mask, tgt_mask = F.create_padding_mask(src), F.create_padding_mask(tgt) + F.create_causal_mask(5)
    seen = _record_dtypes(monkeypatch)
    for _ in range(2):  # the second step runs with optimizer state in place
        logits = model(src, tgt, src_mask, tgt_mask)
        loss = F.cross_entropy(logits, np.roll(tgt, -1, axis=1), ignore_index=0, label_smoothing=0.1)
        optimizer.zero_grad()
        loss.backward()
        optim.clip_grad_norm_(model.parameters(), 0.5)
        optimizer.step()
    model.eval()
    memory = model.encode(src, src_mask)
    cache = model.init_cache()
    logits = model.decode_step(tgt[:, :1], memory, src_mask, cache)
    logits = model.decode_step(tgt[:, 1:2], memory, src_mask, cache)

    ops_seen = {name for name, _, _ in seen}
    assert {"Linear", "Embedding", "LayerNorm", "AttentionWeights", "AttendValues", "CrossEntropy",
            "MultiHeadAttention", "FeedForward"} <= ops_seen  # decoding takes the cached (unfused) path
    assert {stage for _, stage, _ in seen} == {"forward", "backward"}
    upcast = sorted({(name, stage) for name, stage, dtype in seen if dtype != np.float32})
    assert not upcast, f"float64 arrays from {upcast}"
    assert logits.dtype == np.float32 and all(t.dtype == np.float32 for layer in cache for t in layer.values())
    for name, p in model.named_parameters():
        assert p.dtype == np.float32 and p.grad.dtype == np.float32, name
    state = [a for s in optimizer.state.values() for a in s.values() if isinstance(a, np.ndarray)]
    assert len(state) == 2 * len(model.parameters()) and all(a.dtype == np.float32 for a in state)


# ---------------------------------------------------------------- fused Linear and Embedding

@pytest.mark.parametrize("shape,bias", [((2, 3, 4), True), ((4,), False), ((5, 4), True)])
def test_linear_gradcheck(finite_diff, shape, bias):
    arrays = [randn(*shape), randn(3, 4)] + ([randn(3)] if bias else [])
    finite_diff(F.linear, *arrays)


def test_linear_matches_torch_on_a_strided_input(torch_parity):
    # A transposed (non-contiguous) input: the fused op folds its leading axes through a copy.
    torch_parity(lambda x, w, b: F.linear(x.swapaxes(0, 1), w, b),
                 lambda x, w, b: torch.nn.functional.linear(x.swapaxes(0, 1), w, b), randn(3, 2, 4), randn(5, 4),
                 randn(5))


def test_fresh_gradients_kept_without_a_copy_still_add_up(torch_parity):
    # x is both input and weight of one Linear (two fresh gradients for one leaf, added in place) and
    # the input of another; the sum also fans in through Add, whose gradients are shared, not fresh.
    torch_parity(lambda x, w, b: F.linear(x, x, b) + F.linear(x, w) + x,
                 lambda x, w, b: torch.nn.functional.linear(x, x, b) + torch.nn.functional.linear(x, w) + x,
                 randn(3, 3), randn(3, 3), randn(3))
    x = Tensor(randn(2, 3), requires_grad=True)
    w, b = Tensor(randn(4, 3), requires_grad=True), Tensor(randn(4), requires_grad=True)
    F.linear(x, w, b).sum().backward()
    assert len({id(t.grad) for t in (x, w, b)}) == 3


@pytest.mark.parametrize("rows", [6, 100])  # a one-hot product for small tables, sorted sums for large ones
def test_embedding_gradcheck_and_parity_with_repeats_and_padding(finite_diff, torch_parity, rows):
    ids = np.array([[1, 5, 1], [0, 5, 5]])
    finite_diff(lambda w: F.embedding(ids, w), randn(rows, 2))
    torch_parity(lambda w: F.embedding(ids, w, padding_idx=5),
                 lambda w: torch.nn.functional.embedding(torch.from_numpy(ids), w, padding_idx=5), randn(rows, 3))


# ---------------------------------------------------------------- fused attention

def _split(x, heads):
    b, t, h = x.shape
    return x.reshape(b, t, heads, h // heads).permute(0, 2, 1, 3)


def _merge(x):
    b, n, t, d = x.shape
    return x.permute(0, 2, 1, 3).reshape(b, t, n * d)


def test_attention_with_heads_equals_splitting_by_hand(float64):
    q, k, v = (Tensor(randn(2, n, 8), requires_grad=True) for n in (3, 4, 4))
    mask = F.create_padding_mask(np.array([[1, 1, 1, 0], [1, 1, 1, 1]]))
    out, weights = F.scaled_dot_product_attention(q, k, v, mask, return_weights=True, num_heads=2)
    ref_out, ref_weights = F.scaled_dot_product_attention(_split(q, 2), _split(k, 2), _split(v, 2), mask,
                                                          return_weights=True)
    np.testing.assert_allclose(out.data, _merge(ref_out).data, rtol=1e-12)
    np.testing.assert_allclose(weights.data, ref_weights.data, rtol=1e-12)
    w1, w2 = randn(*out.shape), randn(*weights.shape)
    grads = []
    for o, w in ((out, weights), (_merge(ref_out), ref_weights)):
        for t in (q, k, v):
            t.grad = None
        ((o * w1).sum() + (w * w2).sum()).backward()
        grads.append([t.grad for t in (q, k, v)])
    for ours, ref in zip(*grads):
        np.testing.assert_allclose(ours, ref, rtol=1e-10, atol=1e-12)


def test_attention_with_heads_gradcheck(finite_diff):
    # Keys and values already split (as cached), an additive mask that takes a gradient, and the weights.
    def attend(q, k, v, m):
        return F.scaled_dot_product_attention(q, k, v, m, return_weights=True, num_heads=2)

    finite_diff(attend, randn(2, 3, 6), randn(2, 2, 4, 3), randn(2, 2, 4, 3), randn(2, 1, 3, 4) * 0.1)


def test_attention_boolean_mask_with_a_fully_hidden_row_gradcheck(finite_diff, torch_parity):
    allowed = np.array([[True, True, False], [False, False, False], [True, False, True]])  # row 1: nothing allowed

    def ours(q, k, v):
        return F.scaled_dot_product_attention(q, k, v, mask=allowed, return_weights=True)

    finite_diff(ours, randn(2, 3, 4), randn(2, 3, 4), randn(2, 3, 4))
    # PyTorch gives NaN for a fully hidden row; the tutorials' -1e9 gives uniform weights. Compare the others.
    keep = np.array([True, False, True])
    torch_parity(lambda q, k, v: ours(q, k, v)[0][:, keep],
                 lambda q, k, v: torch.nn.functional.scaled_dot_product_attention(
                     q, k, v, attn_mask=torch.from_numpy(allowed))[:, keep], randn(2, 3, 4), randn(2, 3, 4),
                 randn(2, 3, 4))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_softmax_is_exact_for_rows_far_below_the_largest_score(dtype):
    scores = randn(2, 3, 5) * 3
    scores[0, 0] += 1000  # far above every other row: the overall max would underflow the others
    scores[1, 2] = -1e9   # a fully masked row: uniform weights, as with a per-row max
    scores[0, 1, 2] = np.nan  # a NaN spoils its own row only
    scores = scores.astype(dtype)
    expected = np.exp(scores - scores.max(-1, keepdims=True))
    expected /= expected.sum(-1, keepdims=True)
    got = softmax_last_axis(scores.copy())
    np.testing.assert_allclose(got, expected, rtol=1e-5 if dtype == np.float32 else 1e-12)
    assert np.isnan(got[0, 1]).all() and np.isfinite(np.delete(got.reshape(6, 5), 1, axis=0)).all()


def test_attention_mask_errors_name_the_shapes():
    q = Tensor(randn(2, 3, 8))
    with pytest.raises(ValueError, match=r"mask of shape \(2, 3\) does not broadcast to scores of shape \(2, 2, 3, 3"):
        F.scaled_dot_product_attention(q, q, q, mask=np.zeros((2, 3)), num_heads=2)
    with pytest.raises(ValueError, match=r"keys of shape \(2, 3, 7\) cannot be split into 2 heads"):
        F.scaled_dot_product_attention(q, Tensor(randn(2, 3, 7)), q, num_heads=2)
    with pytest.raises(ValueError, match=r"batch axes of queries \(2, 3, 8\) and keys \(4, 3, 8\) cannot broadcast"):
        F.scaled_dot_product_attention(q, Tensor(randn(4, 3, 8)), Tensor(randn(4, 3, 8)))


# ---------------------------------------------------------------- layer norm, helpers, modules

def test_layer_norm_over_two_axes_gradcheck(finite_diff):
    finite_diff(lambda x, w, b: F.layer_norm(x, w, b), randn(2, 3, 4), randn(3, 4), randn(3, 4))


def test_ones_vector_is_shared_and_read_only():
    ones = ops.ones_vector(4, np.zeros(1, np.float32))
    assert ones is ops.ones_vector(4, np.zeros(1, np.float32)) and ones.dtype == np.float32
    with pytest.raises(ValueError):
        ones[0] = 2


def test_module_attributes_follow_the_registries():
    lin = Linear(3, 2)
    new = Tensor(np.zeros(2, np.float32), requires_grad=True)
    lin.bias = new
    assert lin.bias is new and dict(lin.named_parameters())["bias"] is new
    del lin.bias
    assert "bias" not in dict(lin.named_parameters())
    with pytest.raises(AttributeError):
        lin.bias
    lin.register_buffer("scale", Tensor(np.ones(2)))
    assert lin.scale is lin._buffers["scale"] and "scale" in lin.state_dict()


# ---------------------------------------------------------------- the flat Adam update

def test_adam_flat_update_matches_torch_with_skipped_steps_and_mixed_dtypes():
    # Parameter 1 has no gradient on every other step (so its own step count and bias correction lag),
    # and parameter 2 is float32 among float64 ones: the flat buffers are kept per dtype.
    init = [randn(3, 2), randn(4), randn(2, 2).astype(np.float32)]
    ours = [Tensor(a.copy(), requires_grad=True, dtype=a.dtype) for a in init]
    theirs = [torch.tensor(a, requires_grad=True) for a in init]
    opt, topt = Adam(ours, lr=0.1, weight_decay=0.05), torch.optim.Adam(theirs, lr=0.1, weight_decay=0.05)
    for step in range(6):
        grads = [randn(*a.shape).astype(a.dtype) for a in init]
        for i, (p, t, g) in enumerate(zip(ours, theirs, grads)):
            skip = i == 1 and step % 2
            p.grad, t.grad = (None, None) if skip else (g.copy(), torch.from_numpy(g.copy()))
        opt.step()
        topt.step()
    for p, t, a in zip(ours, theirs, init):
        assert p.data.dtype == a.dtype
        np.testing.assert_allclose(p.data, t.detach().numpy(), rtol=1e-5 if p.dtype == np.float32 else 1e-12)
    assert [opt.state[p]["step"] for p in ours] == [6, 3, 6]


def test_adam_rebuilds_its_flat_buffers_after_load_state_dict():
    params = [Tensor(randn(3), requires_grad=True) for _ in range(2)]
    opt = Adam(params, lr=0.1)
    for p in params:
        p.grad = np.ones(3)
    opt.step()
    saved = opt.state_dict()
    opt.step()
    opt.load_state_dict(saved)
    assert opt.state[params[0]]["step"] == 1
    opt.step()  # continues from step 1, not from the stale flat buffers of step 2
    assert opt.state[params[0]]["step"] == 2
    np.testing.assert_array_equal(opt.state[params[0]]["exp_avg"], saved["state.0.exp_avg"] * 0.9 + 0.1)


# ---------------------------------------------------------------- fused residual add + layer norm

# (x shape, weight shape or None, with a bias): one axis, two axes, weight only, no affine
@pytest.mark.parametrize("shape,wshape,with_bias", [((2, 3, 4), (4,), True), ((2, 3, 4), (3, 4), True),
                                                    ((3, 5), (5,), False), ((2, 3, 4), None, False)])
def test_add_layer_norm_equals_composed_and_torch(finite_diff, torch_parity, shape, wshape, with_bias):
    arrays = [randn(*shape), randn(*shape)] + ([randn(*wshape)] if wshape else []) + (
        [randn(*wshape)] if with_bias else [])
    ndim = len(wshape) if wshape else 1

    def fused(x, y, *params):
        return F.add_layer_norm(x, y, *params, normalized_ndim=ndim)

    def composed(x, y, *params):
        return F.layer_norm(x + y, *params, normalized_ndim=ndim)

    finite_diff(fused, *arrays)
    torch_parity(fused, lambda x, y, *params: torch.nn.functional.layer_norm(x + y, shape[-ndim:], *params),
                 *arrays)
    g = randn(*shape)
    results = []
    for fn in (fused, composed):
        inputs = [Tensor(a, requires_grad=True, dtype=np.float64) for a in arrays]
        out = fn(*inputs)
        out.backward(g)
        results.append([out.data] + [t.grad for t in inputs])
    for i, (got, want) in enumerate(zip(*results)):
        np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-12, err_msg=f"array {i}")


def _torch_add_layer_norm(x, y, w, b):
    return torch.nn.functional.layer_norm(x + y, w.shape, w, b)


@pytest.mark.parametrize("leaves", [True, False])
@pytest.mark.parametrize("reused", ["x", "y"])
@pytest.mark.parametrize("norm_last", [True, False])
def test_add_layer_norm_gradients_of_x_and_y_stay_separate(torch_parity, leaves, reused, norm_last):
    # x and y get the same gradient. Were it one array, adding the gradient from the other use of x (or y)
    # into it would change y's (x's) too; whether that add comes after the norm's backward depends on the order.
    def graph(add_ln, x, y, w, b):
        if not leaves:
            x, y = x * 1, y * 1
        other_use = (x if reused == "x" else y) * 3
        return other_use + add_ln(x, y, w, b) if norm_last else add_ln(x, y, w, b) + other_use

    torch_parity(lambda *a: graph(F.add_layer_norm, *a), lambda *a: graph(_torch_add_layer_norm, *a),
                 randn(3, 4), randn(3, 4), randn(4), randn(4))


def test_add_layer_norm_gradients_accumulate_over_two_backward_passes(float64):
    arrays = [randn(3, 4), randn(3, 4), randn(4), randn(4)]
    g = randn(3, 4)
    ours = [Tensor(a, requires_grad=True) for a in arrays]
    for _ in range(2):  # the second pass adds into the .grad arrays the first one left
        F.add_layer_norm(*ours).backward(g)
    theirs = [torch.tensor(a, requires_grad=True) for a in arrays]
    _torch_add_layer_norm(*theirs).backward(torch.from_numpy(g))
    for i, (o, t) in enumerate(zip(ours, theirs)):
        np.testing.assert_allclose(o.grad, 2 * t.grad.numpy(), rtol=1e-10, err_msg=f"input {i}")


def test_post_norm_layers_fuse_the_residual_add_into_the_norm():
    x = Tensor(randn(2, 3, 8), requires_grad=True)
    assert type(EncoderLayer(8, 2, 16)(x)._ctx).__name__ == "AddLayerNorm"
    assert type(EncoderLayer(8, 2, 16, norm_first=True)(x)._ctx).__name__ == "Add"


def test_add_layer_norm_errors_name_the_problem():
    x = Tensor(randn(2, 4))
    with pytest.raises(ValueError, match=r"add_layer_norm: x of shape \(2, 4\) and y of shape \(1, 4\)"):
        F.add_layer_norm(x, Tensor(randn(1, 4)))
    with pytest.raises(ValueError, match="add_layer_norm: a bias needs a weight"):
        F.add_layer_norm(x, x, bias=Tensor(randn(4)))
