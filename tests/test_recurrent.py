"""RNN and LSTM cells and layers against torch.nn, the fused recurrences, and deep unrolling."""
import math

import numpy as np
import pytest
import torch

import from_scratch as fs
import from_scratch.functional as F
from from_scratch import nn
from from_scratch.autograd.tensor import Tensor
from from_scratch.autograd.fused_recurrent import LSTMLayer, RNNLayer
from from_scratch.testing import gradcheck

rng = np.random.default_rng(0)


def _randn(*shape):
    return rng.standard_normal(shape)


# ---------------------------------------------------------------- cells

@pytest.mark.parametrize("nonlinearity", ["tanh", "relu"])
@pytest.mark.parametrize("with_state", [False, True])
def test_rnn_cell_matches_torch(torch_parity, nonlinearity, with_state):
    ours, theirs = nn.RNNCell(4, 5, nonlinearity=nonlinearity), torch.nn.RNNCell(4, 5, nonlinearity=nonlinearity)
    arrays = (_randn(3, 4), _randn(3, 5)) if with_state else (_randn(3, 4),)
    torch_parity(ours, theirs, *arrays)


@pytest.mark.parametrize("with_state", [False, True])
def test_lstm_cell_matches_torch(torch_parity, with_state):
    ours, theirs = nn.LSTMCell(4, 5), torch.nn.LSTMCell(4, 5)
    if with_state:
        torch_parity(ours, theirs, _randn(3, 4), _randn(3, 5), _randn(3, 5), call=lambda m, x, h, c: m(x, (h, c)))
    else:
        torch_parity(ours, theirs, _randn(3, 4))


def test_cells_without_bias_and_unbatched_match_torch(torch_parity):
    torch_parity(nn.LSTMCell(4, 5, bias=False), torch.nn.LSTMCell(4, 5, bias=False), _randn(3, 4))
    out = torch_parity(nn.RNNCell(4, 5), torch.nn.RNNCell(4, 5), _randn(4), _randn(5))
    assert out[0].shape == (5,)
    h, c = torch_parity(nn.LSTMCell(4, 5), torch.nn.LSTMCell(4, 5), _randn(4))
    assert h.shape == c.shape == (5,)


def test_blocks_equal_the_cells(float64):
    x, h, c = (Tensor(a) for a in (_randn(3, 4), _randn(3, 6), _randn(3, 6)))
    block, cell = nn.RecurrentBlock(4, 6), nn.RNNCell(4, 6)
    cell.load_state_dict(block.state_dict())
    np.testing.assert_array_equal(block(x, h).data, cell(x, h).data)
    np.testing.assert_array_equal(block(x).data, cell(x).data)
    lblock, lcell = nn.LSTMBlock(4, 6), nn.LSTMCell(4, 6)
    lcell.load_state_dict(lblock.state_dict())
    for got, want in zip(lblock(x, h, c), lcell(x, (h, c))):
        np.testing.assert_array_equal(got.data, want.data)
    for got, want in zip(lblock(x), lcell(x)):
        np.testing.assert_array_equal(got.data, want.data)


def test_cell_shape_errors_name_the_shapes():
    cell = nn.LSTMCell(4, 5)
    with pytest.raises(ValueError, match=r"input of shape \(3, 7\)"):
        cell(fs.zeros(3, 7))
    with pytest.raises(ValueError, match=r"h has shape \(2, 5\), expected \(3, 5\)"):
        cell(fs.zeros(3, 4), (fs.zeros(2, 5), fs.zeros(3, 5)))
    with pytest.raises(ValueError, match="nonlinearity"):
        nn.RNNCell(4, 5, nonlinearity="sigmoid")


# ---------------------------------------------------------------- whole sequences

@pytest.mark.parametrize("batch_first", [False, True])
@pytest.mark.parametrize("with_state", [False, True])
def test_lstm_matches_torch(torch_parity, batch_first, with_state):
    ours = nn.LSTM(3, 5, num_layers=2, batch_first=batch_first)
    theirs = torch.nn.LSTM(3, 5, num_layers=2, batch_first=batch_first)
    x = _randn(4, 6, 3)  # (T, B) or (B, T)
    if with_state:
        b = 4 if batch_first else 6
        torch_parity(ours, theirs, x, _randn(2, b, 5), _randn(2, b, 5), call=lambda m, x, h, c: m(x, (h, c)))
    else:
        torch_parity(ours, theirs, x)


@pytest.mark.parametrize("batch_first", [False, True])
@pytest.mark.parametrize("with_state", [False, True])
@pytest.mark.parametrize("nonlinearity", ["tanh", "relu"])
def test_rnn_matches_torch(torch_parity, batch_first, with_state, nonlinearity):
    ours = nn.RNN(3, 5, num_layers=3, nonlinearity=nonlinearity, batch_first=batch_first)
    theirs = torch.nn.RNN(3, 5, num_layers=3, nonlinearity=nonlinearity, batch_first=batch_first)
    x = _randn(4, 6, 3)
    arrays = (x, _randn(3, 4 if batch_first else 6, 5)) if with_state else (x,)
    torch_parity(ours, theirs, *arrays)


def test_layers_without_bias_and_unbatched_match_torch(torch_parity):
    torch_parity(nn.LSTM(3, 5, bias=False), torch.nn.LSTM(3, 5, bias=False), _randn(4, 2, 3))
    out, h, c = torch_parity(nn.LSTM(3, 5, 2), torch.nn.LSTM(3, 5, 2), _randn(4, 3), _randn(2, 5), _randn(2, 5),
                               call=lambda m, x, h, c: m(x, (h, c)))
    assert out.shape == (4, 5) and h.shape == c.shape == (2, 5)
    out, h = torch_parity(nn.RNN(3, 5), torch.nn.RNN(3, 5), _randn(4, 3))
    assert out.shape == (4, 5) and h.shape == (1, 5)


def test_names_shapes_and_init_follow_torch():
    fs.manual_seed(0)
    ours, theirs = nn.LSTM(10, 200, num_layers=2), torch.nn.LSTM(10, 200, num_layers=2)
    assert [(n, p.shape) for n, p in ours.named_parameters()] == \
        [(n, tuple(p.shape)) for n, p in theirs.named_parameters()]
    bound = 1 / math.sqrt(200)
    for p in ours.parameters():
        assert p.dtype == np.float32 and np.abs(p.data).max() <= bound
    w = ours.weight_hh_l1.data
    assert np.abs(w).max() > 0.99 * bound and abs(w.std() - bound / math.sqrt(3)) < 0.02 * bound
    assert repr(ours) == repr(theirs) == "LSTM(10, 200, num_layers=2)"
    assert repr(nn.RNN(3, 4, nonlinearity="relu", batch_first=True)) == \
        "RNN(3, 4, batch_first=True, nonlinearity=relu)"


def test_lstm_layer_equals_unrolled_cell():
    fs.manual_seed(1)
    layer, cell = nn.LSTM(3, 4), nn.LSTMCell(3, 4)
    cell.load_state_dict({k[:-3]: v for k, v in layer.state_dict().items()})  # weight_ih_l0 -> weight_ih
    x = fs.randn(7, 2, 3)
    out, (h_n, c_n) = layer(x)
    assert out.dtype == np.float32  # float32 stays float32
    h = c = None
    for t in range(7):
        h, c = cell(x[t], None if h is None else (h, c))
        np.testing.assert_allclose(out.data[t], h.data, atol=1e-6)
    np.testing.assert_allclose(h_n.data[0], h.data, atol=1e-6)
    np.testing.assert_allclose(c_n.data[0], c.data, atol=1e-6)


def test_dropout_between_layers_only_in_training():
    fs.manual_seed(2)
    lstm = nn.LSTM(3, 4, num_layers=2, dropout=1.0)
    x = fs.randn(5, 2, 3)
    out, (h_n, _) = lstm(x)
    # With p = 1 the second layer sees zeros: its output is a one-layer LSTM of its own weights on zeros.
    second = nn.LSTM(4, 4)
    second.load_state_dict({k.replace("l1", "l0"): v for k, v in lstm.state_dict().items() if k.endswith("l1")})
    np.testing.assert_allclose(out.data, second(fs.zeros(5, 2, 4))[0].data, atol=1e-6)
    eval_out, (eval_h, _) = lstm.eval()(x)
    assert not np.allclose(eval_out.data, out.data)
    np.testing.assert_array_equal(eval_h.data[0], h_n.data[0])  # h_n is taken before the dropout


def test_layer_shape_errors_name_the_shapes():
    lstm = nn.LSTM(3, 4, num_layers=2)
    with pytest.raises(ValueError, match=r"input of shape \(5, 2, 7\)"):
        lstm(fs.zeros(5, 2, 7))
    with pytest.raises(ValueError, match=r"h0 has shape \(1, 2, 4\), expected \(2, 2, 4\)"):
        lstm(fs.zeros(5, 2, 3), (fs.zeros(1, 2, 4), fs.zeros(2, 2, 4)))
    with pytest.raises(TypeError, match="c0 is float64 but the input is float32"):
        lstm(fs.zeros(5, 2, 3), (fs.zeros(2, 2, 4), fs.zeros(2, 2, 4, dtype=np.float64)))


# ---------------------------------------------------------------- the fused recurrences

@pytest.mark.parametrize("relu", [False, True])
def test_fused_rnn_layer_gradcheck(relu):
    xw, h0, w = (Tensor(_randn(*s), requires_grad=True, dtype=np.float64) for s in [(4, 2, 3), (2, 3), (3, 3)])
    assert gradcheck(lambda a, b, c: RNNLayer.apply(a, b, c, relu=relu), [xw, h0, w])


def test_fused_lstm_layer_gradcheck():
    shapes = [(4, 2, 12), (2, 3), (2, 3), (12, 3)]
    inputs = [Tensor(_randn(*s), requires_grad=True, dtype=np.float64) for s in shapes]
    assert gradcheck(lambda *t: LSTMLayer.apply(*t), inputs)


# ---------------------------------------------------------------- deep recurrence

def _torch_twin(ours, theirs: torch.nn.Module) -> torch.nn.Module:
    """``theirs`` in float64 with ``ours``'s weights (copied by PyTorch's parameter names)."""
    theirs = theirs.double()
    with torch.no_grad():
        for name, p in ours.named_parameters():
            getattr(theirs, name).copy_(torch.from_numpy(np.asarray(p.data, np.float64)))
    return theirs


def test_lstm_cell_unrolled_5000_steps_matches_torch_and_trains(float64):
    fs.manual_seed(3)
    cell, head = nn.LSTMCell(2, 8), nn.Linear(8, 1)
    t_cell, t_head = _torch_twin(cell, torch.nn.LSTMCell(2, 8)), _torch_twin(head, torch.nn.Linear(8, 1))
    xs = fs.randn(5000, 4, 2)
    target = np.ones((4, 1))

    def loss_fn():
        h = c = fs.zeros(4, 8)
        for t in range(len(xs)):
            h, c = cell(xs[t], (h, c))
        return F.mse_loss(head(h), target)

    params = cell.parameters() + head.parameters()
    loss = loss_fn()
    loss.backward()  # 5000 steps deep: the backward walk needs no recursion
    h = c = torch.zeros(4, 8, dtype=torch.float64)
    for x in torch.from_numpy(xs.data):
        h, c = t_cell(x, (h, c))
    t_loss = torch.nn.functional.mse_loss(t_head(h), torch.from_numpy(target))
    t_loss.backward()
    np.testing.assert_allclose(loss.item(), t_loss.item(), rtol=1e-10)
    t_params = list(t_cell.parameters()) + list(t_head.parameters())
    for p, tp in zip(params, t_params):
        np.testing.assert_allclose(p.grad, tp.grad.numpy(), rtol=1e-7, atol=1e-12)
        p.data -= 0.1 * p.grad
    with fs.no_grad():
        assert loss_fn().item() < loss.item()


def test_lstm_layer_over_5000_steps_matches_torch(float64):
    fs.manual_seed(4)
    lstm = nn.LSTM(2, 8)
    theirs = _torch_twin(lstm, torch.nn.LSTM(2, 8))
    x = fs.randn(5000, 4, 2)
    out, (h_n, c_n) = lstm(x)
    (out.sum() + c_n.sum()).backward()
    t_out, (t_h, t_c) = theirs(torch.from_numpy(x.data))
    (t_out.sum() + t_c.sum()).backward()
    np.testing.assert_allclose(out.data, t_out.detach().numpy(), rtol=1e-10, atol=1e-12)
    for name, p in lstm.named_parameters():
        np.testing.assert_allclose(p.grad, getattr(theirs, name).grad.numpy(), rtol=1e-8, atol=1e-10, err_msg=name)
