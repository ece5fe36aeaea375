"""Basic layers against their torch.nn counterparts: outputs, gradients, init and printing."""
import math

import numpy as np
import pytest
import torch

import from_scratch as fs
from from_scratch import nn
from from_scratch.autograd.tensor import Tensor

rng = np.random.default_rng(0)


@pytest.mark.parametrize("bias", [True, False])
def test_linear_matches_torch(torch_parity, bias):
    torch_parity(nn.Linear(4, 3, bias=bias), torch.nn.Linear(4, 3, bias=bias), rng.standard_normal((2, 5, 4)))


def test_embedding_sums_repeated_ids_and_skips_padding(torch_parity):
    ids = np.array([[1, 3, 3, 0], [3, 1, 0, 4]])
    torch_parity(nn.Embedding(6, 5), torch.nn.Embedding(6, 5), ids)
    ours = nn.Embedding(6, 5, padding_idx=0)
    torch_parity(ours, torch.nn.Embedding(6, 5, padding_idx=0), ids)
    assert np.abs(ours.weight.grad[3]).sum() > 0 and not ours.weight.grad[0].any()


def test_embedding_padding_row_starts_at_zero():
    emb = nn.Embedding(6, 5, padding_idx=-1)
    assert emb.padding_idx == 5 and not emb.weight.data[5].any() and emb.weight.data[:5].all()
    with pytest.raises(IndexError, match="padding_idx 6"):
        nn.Embedding(6, 5, padding_idx=6)


@pytest.mark.parametrize("bad", [6, -1])
def test_embedding_id_outside_table_is_named(bad):
    with pytest.raises(IndexError, match=rf"id {bad} is outside the table of 6 rows"):
        nn.Embedding(6, 5)(np.array([0, bad, 2]))


@pytest.mark.parametrize("shape", [5, (3, 5)])
def test_layer_norm_matches_torch(torch_parity, shape):
    ours, theirs = nn.LayerNorm(shape), torch.nn.LayerNorm(shape)
    with torch.no_grad():  # non-trivial affine parameters
        theirs.weight.normal_()
        theirs.bias.normal_()
    torch_parity(ours, theirs, rng.standard_normal((2, 3, 5)) * 3 + 1)


def test_layer_norm_without_affine_and_bad_shape(torch_parity):
    torch_parity(nn.LayerNorm(5, elementwise_affine=False), torch.nn.LayerNorm(5, elementwise_affine=False),
                 rng.standard_normal((4, 5)))
    torch_parity(nn.LayerNorm(5, bias=False), torch.nn.LayerNorm(5, bias=False), rng.standard_normal((4, 5)))
    with pytest.raises(ValueError, match=r"input of shape \(4, 6\) does not end in \(5,\)"):
        nn.LayerNorm(5)(fs.zeros(4, 6))


@pytest.mark.parametrize("ours, theirs", [
    (nn.ReLU(), torch.nn.ReLU()), (nn.GELU(), torch.nn.GELU()), (nn.GELU("tanh"), torch.nn.GELU("tanh")),
    (nn.Tanh(), torch.nn.Tanh()), (nn.Sigmoid(), torch.nn.Sigmoid()), (nn.Softmax(axis=1), torch.nn.Softmax(dim=1)),
    (nn.Softmax(dim=-1), torch.nn.Softmax(dim=-1)),
], ids=["relu", "gelu", "gelu_tanh", "tanh", "sigmoid", "softmax1", "softmax_last"])
def test_activations_match_torch(torch_parity, ours, theirs):
    torch_parity(ours, theirs, rng.standard_normal((3, 4, 5)) * 3)


def test_dropout_scales_in_training_and_is_identity_in_eval():
    fs.manual_seed(0)
    drop, x = nn.Dropout(0.25), fs.ones(200, 100)
    y = drop(x).data
    assert set(np.unique(y)) == {0.0, np.float32(1 / 0.75)}
    assert abs((y == 0).mean() - 0.25) < 0.01
    drop.eval()
    assert drop(x) is x
    with pytest.raises(ValueError, match="p must be in"):
        nn.Dropout(1.5)


def test_default_init_matches_torch_statistics():
    fs.manual_seed(0)
    torch.manual_seed(0)  # unseeded, torch's 200 biases' std strays past the tolerance in about one run in five
    lin, tlin = nn.Linear(300, 200), torch.nn.Linear(300, 200)
    bound = 1 / math.sqrt(300)  # kaiming_uniform(a=sqrt(5)) for the weight, U(-1/sqrt(fan_in), ..) for the bias
    for ours, theirs in [(lin.weight, tlin.weight), (lin.bias, tlin.bias)]:
        assert ours.dtype == np.float32 and ours.shape == tuple(theirs.shape)
        assert np.abs(ours.data).max() <= bound and np.abs(ours.data).max() > 0.98 * bound
        assert abs(ours.data.std() - theirs.detach().numpy().std()) < 0.05 * bound
    emb = nn.Embedding(1000, 64)
    assert abs(emb.weight.data.mean()) < 0.01 and abs(emb.weight.data.std() - 1) < 0.01
    ln = nn.LayerNorm(8)
    assert (ln.weight.data == 1).all() and (ln.bias.data == 0).all()
    fs.manual_seed(0)
    np.testing.assert_array_equal(nn.Linear(300, 200).weight.data, lin.weight.data)  # seeded: reproducible


def test_init_functions():
    t = Tensor(np.empty((40, 60), np.float32))
    nn.init.xavier_uniform_(t)
    a = math.sqrt(6 / 100)
    assert np.abs(t.data).max() <= a and np.abs(t.data).max() > 0.98 * a and t.dtype == np.float32
    with pytest.raises(ValueError, match=r"at least 2 dimensions, got shape \(5,\)"):
        nn.init.kaiming_uniform_(Tensor(np.empty(5, np.float32)))


def test_layers_keep_float32():
    x = fs.randn(2, 4)
    for layer in [nn.Linear(4, 3), nn.LayerNorm(4), nn.GELU(), nn.Softmax()]:
        assert layer(x).dtype == np.float32
    assert nn.Embedding(5, 3)([1, 2]).dtype == np.float32


def test_layer_reprs_match_torch():
    ours = nn.Sequential(nn.Embedding(10, 4, padding_idx=0), nn.Linear(4, 8), nn.GELU(), nn.LayerNorm(8),
                         nn.Linear(8, 2, bias=False), nn.Tanh(), nn.Sigmoid(), nn.ReLU())
    theirs = torch.nn.Sequential(torch.nn.Embedding(10, 4, padding_idx=0), torch.nn.Linear(4, 8), torch.nn.GELU(),
                                 torch.nn.LayerNorm(8), torch.nn.Linear(8, 2, bias=False), torch.nn.Tanh(),
                                 torch.nn.Sigmoid(), torch.nn.ReLU())
    assert repr(ours) == repr(theirs)
    assert repr(nn.Dropout(0.1)) == "Dropout(p=0.1)" and repr(nn.Softmax()) == repr(torch.nn.Softmax(dim=-1)) == "Softmax(dim=-1)"


def test_constant_inits_fill_in_place_and_keep_the_dtype():
    init = nn.init
    t = nn.Parameter(np.full((2, 3), 5.0, np.float32))
    assert init.ones_(t) is t and (t.data == 1).all() and t.dtype == np.float32
    assert init.zeros_(t) is t and (t.data == 0).all() and t.dtype == np.float32
