"""ScaledDotProductAttention and MultiHeadAttention, against torch.nn.MultiheadAttention in float64.

The ``float64`` fixture comes from conftest.py.
"""
import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import from_scratch.functional as F
from from_scratch import manual_seed, no_grad, set_default_dtype
from from_scratch.autograd.tensor import Tensor
from from_scratch.nn import MultiHeadAttention, ScaledDotProductAttention


def copy_from_torch(ours: MultiHeadAttention, theirs: torch.nn.MultiheadAttention) -> None:
    """Split torch's packed in_proj into q/k/v_linear; out_proj becomes fc."""
    w = theirs.in_proj_weight.detach().numpy()
    b = theirs.in_proj_bias.detach().numpy()
    for i, lin in enumerate((ours.q_linear, ours.k_linear, ours.v_linear)):
        lin.weight.data = w[i * ours.hidden_size:(i + 1) * ours.hidden_size].copy()
        lin.bias.data = b[i * ours.hidden_size:(i + 1) * ours.hidden_size].copy()
    ours.fc.weight.data = theirs.out_proj.weight.detach().numpy().copy()
    ours.fc.bias.data = theirs.out_proj.bias.detach().numpy().copy()


def torch_grads(theirs: torch.nn.MultiheadAttention) -> dict:
    h = theirs.embed_dim
    gw, gb = theirs.in_proj_weight.grad.numpy(), theirs.in_proj_bias.grad.numpy()
    out = {"fc.weight": theirs.out_proj.weight.grad.numpy(), "fc.bias": theirs.out_proj.bias.grad.numpy()}
    for i, name in enumerate(("q_linear", "k_linear", "v_linear")):
        out[f"{name}.weight"], out[f"{name}.bias"] = gw[i * h:(i + 1) * h], gb[i * h:(i + 1) * h]
    return out


def close(ours, theirs) -> None:
    np.testing.assert_allclose(ours, theirs, rtol=1e-6, atol=1e-10)


def check_against_torch(b, tq, tk, hidden, heads, self_attention, causal, pad_lengths, seed=0, fused=False):
    """Compare output, per-head weights and every gradient with torch for one configuration.

    ``fused``: call the layer as the Transformer does (one tensor for keys and values, and for the
    queries too in self-attention, no returned weights), which takes the fused one-node path."""
    rng = np.random.default_rng(seed)
    torch.manual_seed(seed)
    theirs = torch.nn.MultiheadAttention(hidden, heads, batch_first=True, dtype=torch.float64)
    ours = MultiHeadAttention(hidden, heads)
    copy_from_torch(ours, theirs)
    q_np = rng.standard_normal((b, tq, hidden))
    kv_np = q_np if self_attention else rng.standard_normal((b, tk, hidden))
    v_np = q_np if self_attention else kv_np if fused else rng.standard_normal((b, tk, hidden))
    tk = kv_np.shape[1]

    mask, attn_mask, key_padding = None, None, None
    if causal:
        mask = F.create_causal_mask(tq)
        attn_mask = torch.triu(torch.ones(tq, tk, dtype=torch.bool), diagonal=1)
    if pad_lengths is not None:
        ids = np.array([[1] * n + [0] * (tk - n) for n in pad_lengths])
        pad = F.create_padding_mask(ids)
        mask = pad if mask is None else pad + mask
        key_padding = torch.tensor(ids == 0)

    tq_t, tk_t, tv_t = (torch.tensor(a, requires_grad=True) for a in (q_np, kv_np, v_np))
    out_t, w_t = theirs(tq_t, tk_t, tv_t, key_padding_mask=key_padding, attn_mask=attn_mask,
                        need_weights=True, average_attn_weights=False)
    q, k, v = (Tensor(a, requires_grad=True) for a in (q_np, kv_np, v_np))
    if fused:
        k = v = q if self_attention else k
        out = ours(q, k, v, mask)
        assert type(out._ctx).__name__ == "MultiHeadAttention"  # one node: the fused path was taken
    else:
        out, w = ours(q, k, v, mask, return_weights=True)
        assert ours.attn_weights is w.data
        close(w.data, w_t.detach().numpy())
    close(out.data, out_t.detach().numpy())
    close(ours.attn_weights, w_t.detach().numpy())
    assert ours.attn_weights.shape == (b, heads, tq, tk)

    grad_out = rng.standard_normal(out.shape)
    out_t.backward(torch.tensor(grad_out))
    out.backward(grad_out)
    for name, g in torch_grads(theirs).items():
        close(dict(ours.named_parameters())[name].grad, g)
    if fused:  # q, k and v are one or two tensors here: their gradients add up
        expected = [tq_t.grad + tk_t.grad + tv_t.grad] if self_attention else [tq_t.grad, tk_t.grad + tv_t.grad]
        for ours_in, g in zip((q, k), expected):
            close(ours_in.grad, g.numpy())
        return
    for ours_in, theirs_in in ((q, tq_t), (k, tk_t), (v, tv_t)):
        close(ours_in.grad, theirs_in.grad.numpy())


@pytest.mark.parametrize("fused", [False, True])
@pytest.mark.parametrize("causal,pad_lengths", [(False, None), (True, None), (False, [6, 3]), (True, [6, 4])])
def test_self_attention_matches_torch(float64, causal, pad_lengths, fused):
    check_against_torch(2, 6, 6, 16, 4, True, causal, pad_lengths, fused=fused)


@pytest.mark.parametrize("fused", [False, True])
def test_cross_attention_with_padding_matches_torch(float64, fused):
    check_against_torch(3, 4, 7, 12, 3, False, False, [7, 2, 5], seed=1, fused=fused)


@settings(max_examples=8, deadline=None)
@given(b=st.integers(1, 3), tq=st.integers(1, 5), tk=st.integers(1, 5), heads=st.sampled_from([1, 2, 4]),
       seed=st.integers(0, 2 ** 16))
def test_random_shapes_match_torch(b, tq, tk, heads, seed):
    set_default_dtype(np.float64)  # conftest's autouse fixture restores it
    check_against_torch(b, tq, tk, 8, heads, False, False, None, seed=seed, fused=seed % 2 == 0)


def test_hidden_not_divisible_by_heads_is_an_error():
    with pytest.raises(ValueError, match="hidden_size 10 is not divisible by num_heads 4"):
        MultiHeadAttention(10, 4)


def test_mask_that_does_not_broadcast_is_an_error():
    mha = MultiHeadAttention(8, 2)
    x = Tensor(np.zeros((2, 5, 8)))
    bad = Tensor(np.zeros((3, 1, 1, 5)))
    with pytest.raises(ValueError, match=r"mask of shape \(3, 1, 1, 5\) does not broadcast.*\(2, 2, 5, 5\)"):
        mha(x, x, x, bad)
    # A mask that broadcasts only by growing the scores is refused too.
    with pytest.raises(ValueError, match="does not broadcast"):
        mha(x, x, x, Tensor(np.zeros((4, 1, 1, 1, 5))))


def test_batch_and_feature_mismatches_are_errors():
    mha = MultiHeadAttention(8, 2)
    with pytest.raises(ValueError, match="keys of shape .* and values of shape"):
        mha(Tensor(np.zeros((2, 3, 8))), Tensor(np.zeros((2, 4, 8))), Tensor(np.zeros((2, 5, 8))))
    with pytest.raises(ValueError, match="queries of shape \\(3, 3, 8\\)"):
        mha(Tensor(np.zeros((3, 3, 8))), Tensor(np.zeros((2, 4, 8))), Tensor(np.zeros((2, 4, 8))))
    with pytest.raises(ValueError, match="queries of shape \\(2, 3, 6\\).* need \\(B, T, 8\\)"):
        mha(Tensor(np.zeros((2, 3, 6))), Tensor(np.zeros((2, 4, 6))), Tensor(np.zeros((2, 4, 6))))


def test_float32_stays_float32_with_a_float64_mask():
    mha = MultiHeadAttention(8, 2)
    x = Tensor(np.random.default_rng(0).standard_normal((2, 4, 8)))
    mask = Tensor(np.zeros((1, 1, 4, 4)), dtype=np.float64)
    out = mha(x, x, x, mask)
    assert out.dtype == np.float32 and mha.attn_weights.dtype == np.float32


def test_weights_are_a_distribution_and_masked_keys_get_none():
    manual_seed(0)
    mha = MultiHeadAttention(8, 2)
    x = Tensor(np.random.default_rng(0).standard_normal((2, 5, 8)))
    mask = F.create_padding_mask(np.array([[1, 1, 1, 0, 0], [1, 1, 1, 1, 1]])) + F.create_causal_mask(5)
    with no_grad():
        mha(x, x, x, mask)
    w = mha.attn_weights
    np.testing.assert_allclose(w.sum(-1), 1, rtol=1e-6)
    assert (w[0, :, :, 3:] == 0).all()
    assert (np.triu(np.ones((5, 5)), 1)[None, None] * w == 0).all()


def test_scaled_dot_product_attention_module(float64):
    rng = np.random.default_rng(0)
    q, k, v = (Tensor(rng.standard_normal((2, 3, 4, 5))) for _ in range(3))
    mask = F.create_causal_mask(4)
    module = ScaledDotProductAttention()
    out, w = module(q, k, v, mask, return_weights=True)
    scores = q.data @ k.data.swapaxes(-1, -2) / np.sqrt(5) + mask.data
    expected_w = np.exp(scores - scores.max(-1, keepdims=True))
    expected_w /= expected_w.sum(-1, keepdims=True)
    close(w.data, expected_w)
    close(out.data, expected_w @ v.data)
    # Dropout on the weights acts only in training mode.
    dropping = ScaledDotProductAttention(dropout=0.5)
    assert not np.allclose(dropping(q, k, v).data, module(q, k, v).data)
    np.testing.assert_array_equal(dropping.eval()(q, k, v).data, module(q, k, v).data)
