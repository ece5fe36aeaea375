"""The fused sub-layers (autograd/fused_blocks.py): one-node multi-head attention and feed-forward.

Through the layers, each must equal the plain version (``F.use_fused(False)``: primitive ops only;
output and every gradient, float64, dropout included: the same seed draws the same dropout), pass
finite differences, and skip the gradients nobody needs. test_plain_vs_fused.py checks the functions
one by one; PyTorch parity of the attention is in test_attention.py, of whole Transformers in
test_transformer.py.
"""
import numpy as np
import pytest

import from_scratch.functional as F
from from_scratch import Tensor, manual_seed
from from_scratch.nn import FeedForward, MultiHeadAttention
from from_scratch.testing import gradcheck

rng = np.random.default_rng(0)


def leaf(*shape) -> Tensor:
    return Tensor(rng.standard_normal(shape), requires_grad=True)


def masks(b: int, tq: int, tk: int) -> dict:
    pad = F.create_padding_mask(np.array([[1] * tk] + [[1] * (tk - 2) + [0, 0]] * (b - 1)))
    return {"none": None, "additive": pad + F.create_causal_mask(tq) if tq == tk else pad,
            "boolean": np.asarray(pad.data == 0)}


def run_attention(mha: MultiHeadAttention, x: Tensor, memory: Tensor | None, mask, fused: bool, seed: int):
    """Output and every gradient, through the fused node or the plain version (same dropout seed)."""
    for t in (x, memory, *mha.parameters()):
        if t is not None:
            t.grad = None
    manual_seed(seed)
    with F.use_fused(fused):
        out = mha(x, mask=mask) if memory is None else mha(x, memory, mask=mask)
    assert (type(out._ctx).__name__ == "MultiHeadAttention") == fused
    out.backward(np.random.default_rng(1).standard_normal(out.shape))
    grads = [t.grad for t in (x, memory, *mha.parameters()) if t is not None]
    return out.data, mha.attn_weights, grads


@pytest.mark.parametrize("cross", [False, True])
@pytest.mark.parametrize("mask_kind", ["none", "additive", "boolean"])
@pytest.mark.parametrize("dropout", [0.0, 0.3])
def test_fused_attention_equals_the_plain_version(float64, cross, mask_kind, dropout):
    manual_seed(0)
    mha = MultiHeadAttention(12, 3, dropout=dropout)
    x = leaf(3, 5, 12)
    memory = leaf(3, 6, 12) if cross else None
    mask = masks(3, 5, 6 if cross else 5)[mask_kind]
    fused = run_attention(mha, x, memory, mask, True, seed=7)
    plain = run_attention(mha, x, memory, mask, False, seed=7)
    for a, b in zip(fused[:2], plain[:2]):
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-14)
    assert len(fused[2]) == len(plain[2])
    for i, (a, b) in enumerate(zip(fused[2], plain[2])):
        np.testing.assert_allclose(a, b, rtol=1e-10, atol=1e-13, err_msg=f"gradient {i}")
    if dropout:  # the dropout really dropped weights, in both paths alike
        manual_seed(7)
        assert not np.allclose(mha(x).data, mha.eval()(x).data)


@pytest.mark.parametrize("cross", [False, True])
def test_fused_attention_passes_finite_differences(float64, cross):
    manual_seed(0)
    mha = MultiHeadAttention(8, 2)
    params = [Tensor(p.data.copy(), requires_grad=True) for p in mha.parameters()]
    mask = masks(2, 3, 4 if cross else 3)["additive"]
    inputs = [leaf(2, 3, 8)] + ([leaf(2, 4, 8)] if cross else [])

    def fn(x, *rest):
        return F.multi_head_attention(x, rest[0] if cross else None, None, rest[-8:], 2, mask)[0]

    assert gradcheck(fn, inputs + params)


def test_fused_attention_skips_gradients_nobody_needs(float64):
    manual_seed(0)
    mha = MultiHeadAttention(8, 2)
    x, memory = Tensor(rng.standard_normal((2, 3, 8))), leaf(2, 4, 8)  # x needs no gradient
    mha(x, memory).sum().backward()
    assert x.grad is None and memory.grad is not None
    assert all(p.grad is not None for p in mha.parameters())
    frozen = Tensor(rng.standard_normal((2, 4, 8)))  # nothing needs one: no graph at all
    for p in mha.parameters():
        p.requires_grad = False
    assert mha(frozen)._ctx is None


@pytest.mark.parametrize("dropout", [0.0, 0.4])
def test_fused_feed_forward_equals_the_plain_version(float64, dropout):
    manual_seed(0)
    ff = FeedForward(6, 10, dropout)
    x = leaf(2, 3, 6)
    x.data[0, 0] = 0  # with zero weights a hidden unit sits exactly at 0: ReLU passes no gradient there
    ff.linear1.weight.data[0] = 0
    ff.linear1.bias.data[0] = 0
    results = []
    for fused in (True, False):
        for t in (x, *ff.parameters()):
            t.grad = None
        manual_seed(3)
        with F.use_fused(fused):
            out = ff(x)
        assert (type(out._ctx).__name__ == "FeedForward") == fused
        out.backward(np.random.default_rng(1).standard_normal(out.shape))
        results.append([out.data, x.grad, *(p.grad for p in ff.parameters())])
    for i, (a, b) in enumerate(zip(*results)):
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-14, err_msg=f"output/gradient {i}")
    assert (results[0][2][0] == 0).all()  # the dead unit's weights learn nothing


def test_fused_feed_forward_passes_finite_differences(float64):
    w1, b1, w2, b2 = leaf(7, 5), leaf(7), leaf(4, 7), leaf(4)
    assert gradcheck(lambda x, *p: F.feed_forward(x, *p), [leaf(3, 2, 5), w1, b1, w2, b2])


def test_fused_blocks_refuse_mismatched_shapes():
    ff_w = [Tensor(np.ones(s)) for s in [(7, 5), (7,), (4, 7), (4,)]]
    with pytest.raises(ValueError, match=r"feed_forward: input of shape \(2, 6\), w1 of shape \(7, 5\)"):
        F.feed_forward(Tensor(np.ones((2, 6))), *ff_w)
    mha = MultiHeadAttention(8, 2)
    params = list(mha.parameters())
    with pytest.raises(ValueError, match=r"queries of shape \(2, 3, 8\), keys of shape \(3, 4, 8\)"):
        F.multi_head_attention(Tensor(np.ones((2, 3, 8))), Tensor(np.ones((3, 4, 8))), None, params, 2)


def test_a_trainable_mask_takes_the_plain_path_and_learns(float64):
    mha = MultiHeadAttention(8, 2)
    trainable = Tensor(np.zeros((1, 1, 3, 3)), requires_grad=True)
    out = mha(leaf(2, 3, 8), mask=trainable)
    assert type(out._ctx).__name__ != "MultiHeadAttention"
    out.sum().backward()
    assert trainable.grad is not None and np.abs(trainable.grad).sum() > 0
