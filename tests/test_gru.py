"""GRUCell and GRU against torch.nn in float64, the fused GRU recurrence, and the unrolled cell."""
import numpy as np
import pytest
import torch

import from_scratch as fs
from from_scratch import nn
from from_scratch.autograd.fused_recurrent import GRULayer
from from_scratch.autograd.tensor import Tensor

rng = np.random.default_rng(0)


def _randn(*shape):
    return rng.standard_normal(shape)


@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize("with_state", [False, True])
def test_gru_cell_matches_torch(torch_parity, bias, with_state):
    ours, theirs = nn.GRUCell(4, 5, bias=bias), torch.nn.GRUCell(4, 5, bias=bias)
    torch_parity(ours, theirs, *((_randn(3, 4), _randn(3, 5)) if with_state else (_randn(3, 4),)))


def test_gru_cell_unbatched_matches_torch(torch_parity):
    out = torch_parity(nn.GRUCell(4, 5), torch.nn.GRUCell(4, 5), _randn(4), _randn(5))
    assert out[0].shape == (5,)


@pytest.mark.parametrize("num_layers", [1, 3])
@pytest.mark.parametrize("batch_first", [False, True])
@pytest.mark.parametrize("with_state", [False, True])
def test_gru_matches_torch(torch_parity, num_layers, batch_first, with_state):
    ours = nn.GRU(3, 5, num_layers=num_layers, batch_first=batch_first)
    theirs = torch.nn.GRU(3, 5, num_layers=num_layers, batch_first=batch_first)
    x = _randn(4, 6, 3)  # (T, B) or (B, T)
    arrays = (x, _randn(num_layers, 6 if not batch_first else 4, 5)) if with_state else (x,)
    out, h_n = torch_parity(ours, theirs, *arrays)
    assert out.shape == (4, 6, 5) and h_n.shape == (num_layers, 6 if not batch_first else 4, 5)


def test_gru_without_bias_and_unbatched_match_torch(torch_parity):
    torch_parity(nn.GRU(3, 5, num_layers=2, bias=False), torch.nn.GRU(3, 5, num_layers=2, bias=False),
                 _randn(7, 2, 3), _randn(2, 2, 5))
    out, h_n = torch_parity(nn.GRU(3, 5, num_layers=2), torch.nn.GRU(3, 5, num_layers=2), _randn(7, 3), _randn(2, 5))
    assert out.shape == (7, 5) and h_n.shape == (2, 5)


def test_gru_names_shapes_repr_and_init_follow_torch():
    ours, theirs = nn.GRU(3, 64, num_layers=2, batch_first=True), torch.nn.GRU(3, 64, num_layers=2, batch_first=True)
    assert {k: v.shape for k, v in ours.state_dict().items()} == \
        {k: tuple(v.shape) for k, v in theirs.state_dict().items()}
    assert repr(ours) == repr(theirs)
    assert repr(nn.GRUCell(3, 4, bias=False)) == repr(torch.nn.GRUCell(3, 4, bias=False))
    bound = 1 / 8  # U(-1/sqrt(hidden), 1/sqrt(hidden)) for every weight and bias
    for name, p in ours.named_parameters():
        assert p.dtype == np.float32, name
        assert np.abs(p.data).max() <= bound and np.abs(p.data).max() > 0.9 * bound, name


def test_gru_layer_equals_unrolled_cell(float64):
    layer, cell = nn.GRU(4, 6), nn.GRUCell(4, 6)
    cell.load_state_dict({k[:-3]: v for k, v in layer.state_dict().items()})
    x, h0 = _randn(5, 3, 4), _randn(1, 3, 6)
    out, h_n = layer(Tensor(x), Tensor(h0))
    h = Tensor(h0[0])
    for t in range(5):
        h = cell(Tensor(x[t]), h)
        np.testing.assert_allclose(out.data[t], h.data, rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(h_n.data[0], h.data, rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("bias", [True, False])
def test_fused_gru_layer_gradcheck(finite_diff, bias):
    arrays = [_randn(4, 2, 9), _randn(2, 3), _randn(9, 3)] + ([_randn(9)] if bias else [])
    finite_diff(lambda *t: GRULayer.apply(*t), *arrays)


def test_gru_dropout_between_layers_only_in_training():
    fs.manual_seed(0)
    gru = nn.GRU(3, 8, num_layers=2, dropout=0.5)
    x = fs.randn(5, 2, 3)
    a, b = gru(x)[0].data, gru(x)[0].data
    assert not np.array_equal(a, b)  # training: a fresh dropout mask each call
    gru.eval()
    np.testing.assert_array_equal(gru(x)[0].data, gru(x)[0].data)


def test_gru_takes_arrays_and_lists():
    gru, cell = nn.GRU(3, 4), nn.GRUCell(3, 4)
    x = np.zeros((5, 2, 3), np.float32)
    assert gru(x)[0].shape == (5, 2, 4)
    assert cell(x[0].tolist()).shape == (2, 4)
    with pytest.raises(TypeError, match="GRU: input must be a Tensor"):
        gru({"x": 1})


def test_gru_shape_errors_name_the_shapes():
    with pytest.raises(ValueError, match=r"GRU: input of shape \(5, 2, 7\)"):
        nn.GRU(3, 4)(fs.zeros(5, 2, 7))
    with pytest.raises(ValueError, match=r"h0 has shape \(2, 2, 4\), expected \(1, 2, 4\)"):
        nn.GRU(3, 4)(fs.zeros(5, 2, 3), fs.zeros(2, 2, 4))
    with pytest.raises(ValueError, match=r"GRUCell: input of shape \(2, 7\)"):
        nn.GRUCell(3, 4)(fs.zeros(2, 7))
