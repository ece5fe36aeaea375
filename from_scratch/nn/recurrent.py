"""Recurrent layers: RNN and LSTM cells, whole-sequence RNN and LSTM, and the tutorials' step blocks.

Parameter names, shapes, gate order (i, f, g, o) and init follow ``torch.nn``, so a PyTorch
state dict loads as is. The cells are composed from Tensor ops and are the readable
definition of each step; ``RNN`` and ``LSTM`` run a whole layer as one fused op
(``autograd/fused_recurrent.py`` says why). ``RNNCellBase`` and ``RNNBase`` (PyTorch's names)
hold what every cell and every layer shares; the GRU builds on them in ``gru.py``.
"""
from __future__ import annotations

import math

from .. import functional as F
from ..autograd import fused_recurrent
from ..autograd.tensor import Tensor, stack
from ..backend import get_array_module
from ..functional.inputs import as_tensor
from . import init
from .module import Module, Parameter

__all__ = ["RNNCellBase", "RNNBase", "RNNCell", "LSTMCell", "RNN", "LSTM", "RecurrentBlock", "LSTMBlock"]

_NONLINEARITIES = ("tanh", "relu")


def _new_weight(*shape: int) -> Parameter:
    return Parameter(init.empty(*shape))


def _reset_uniform(module: Module, hidden_size: int) -> None:
    # PyTorch's recurrent init: every weight and bias ~ U(-1/sqrt(hidden), 1/sqrt(hidden)).
    bound = 1 / math.sqrt(hidden_size) if hidden_size else 0.0
    for p in module.parameters():
        init.uniform_(p, -bound, bound)


def _check_state(layer: str, name: str, state: Tensor, shape: tuple, x: Tensor) -> None:
    if state.shape != shape:
        raise ValueError(f"{layer}: {name} has shape {state.shape}, expected {shape} for input of shape {x.shape}")
    if state.dtype != x.dtype:
        raise TypeError(f"{layer}: {name} is {state.dtype} but the input is {x.dtype}")


# ---------------------------------------------------------------- cells: one time step

class RNNCellBase(Module):
    """What the cells share: weight_ih, weight_hh (gates * hidden_size rows), optional biases, init."""

    def __init__(self, input_size: int, hidden_size: int, bias: bool, gates: int):
        super().__init__()
        self.input_size, self.hidden_size, self.bias = input_size, hidden_size, bias
        self.weight_ih = _new_weight(gates * hidden_size, input_size)
        self.weight_hh = _new_weight(gates * hidden_size, hidden_size)
        self.bias_ih = _new_weight(gates * hidden_size) if bias else None
        self.bias_hh = _new_weight(gates * hidden_size) if bias else None
        self.reset_parameters()

    def reset_parameters(self) -> None:
        _reset_uniform(self, self.hidden_size)

    def _state(self, x: Tensor, state: Tensor | None, name: str) -> Tensor:
        """The state for input x (zeros when None), checked against x's batch shape."""
        if x.shape[-1:] != (self.input_size,) or x.ndim > 2:
            raise ValueError(f"{type(self).__name__}: input of shape {x.shape} is not (batch, {self.input_size}) "
                             f"or ({self.input_size},)")
        shape = x.shape[:-1] + (self.hidden_size,)
        if state is None:
            return Tensor._make(get_array_module(x.data).zeros(shape, x.dtype), False)  # on x's device
        state = as_tensor(state, type(self).__name__, name)
        _check_state(type(self).__name__, name, state, shape, x)
        return state

    def extra_repr(self) -> str:
        return f"{self.input_size}, {self.hidden_size}" + ("" if self.bias else ", bias=False")


class RNNCell(RNNCellBase):
    """One Elman RNN step: h' = act(x W_ih^T + b_ih + h W_hh^T + b_hh), act = tanh or relu.

    Shape: x (B, input_size) or (input_size,), h the same with hidden_size -> h'.
    """

    def __init__(self, input_size: int, hidden_size: int, bias: bool = True, nonlinearity: str = "tanh"):
        if nonlinearity not in _NONLINEARITIES:
            raise ValueError(f"RNNCell: nonlinearity must be 'tanh' or 'relu', got {nonlinearity!r}")
        super().__init__(input_size, hidden_size, bias, gates=1)
        self.nonlinearity = nonlinearity

    def forward(self, x: Tensor, h: Tensor | None = None) -> Tensor:
        x = as_tensor(x, "RNNCell")
        h = self._state(x, h, "h")
        pre = F.linear(x, self.weight_ih, self.bias_ih) + F.linear(h, self.weight_hh, self.bias_hh)
        return pre.tanh() if self.nonlinearity == "tanh" else pre.relu()

    def extra_repr(self) -> str:
        return super().extra_repr() + ("" if self.nonlinearity == "tanh" else f", nonlinearity={self.nonlinearity}")


class LSTMCell(RNNCellBase):
    """One LSTM step: (x, (h, c)) -> (h', c'); the state defaults to zeros.

    Shape: x (B, input_size) or (input_size,); h, c (B, hidden_size) or (hidden_size,).
    """

    def __init__(self, input_size: int, hidden_size: int, bias: bool = True):
        super().__init__(input_size, hidden_size, bias, gates=4)

    def forward(self, x: Tensor, hx: tuple[Tensor, Tensor] | None = None) -> tuple[Tensor, Tensor]:
        h, c = hx if hx is not None else (None, None)
        x = as_tensor(x, "LSTMCell")
        h, c = self._state(x, h, "h"), self._state(x, c, "c")
        # The four gates come from one product, in PyTorch's row order (i, f, g, o):
        #   i = sigmoid(x W_ii^T + b_ii + h W_hi^T + b_hi)   input gate: how much new content to write
        #   f = sigmoid(x W_if^T + b_if + h W_hf^T + b_hf)   forget gate: how much old cell to keep
        #   g = tanh(x W_ig^T + b_ig + h W_hg^T + b_hg)      candidate cell content
        #   o = sigmoid(x W_io^T + b_io + h W_ho^T + b_ho)   output gate: how much cell to show
        gates = F.linear(x, self.weight_ih, self.bias_ih) + F.linear(h, self.weight_hh, self.bias_hh)
        i, f, g, o = gates.chunk(4, axis=-1)
        i, f, g, o = i.sigmoid(), f.sigmoid(), g.tanh(), o.sigmoid()
        c = f * c + i * g          # c' = f * c + i * g
        return o * c.tanh(), c     # h' = o * tanh(c')


class RecurrentBlock(RNNCell):
    """The tutorials' RNN step: block(x, h_prev) -> h_next (an ``RNNCell`` with tanh).

    Shape: x (B, input_size), h_prev (B, hidden_size) -> h_next (B, hidden_size).
    """

    def __init__(self, input_size: int, hidden_size: int):
        super().__init__(input_size, hidden_size)

    def forward(self, x: Tensor, h_prev: Tensor | None = None) -> Tensor:
        return super().forward(x, h_prev)


class LSTMBlock(LSTMCell):
    """The tutorials' LSTM step: block(x, h_prev, c_prev) -> (h_next, c_next) (an ``LSTMCell``).

    Shape: x (B, input_size), h_prev and c_prev (B, hidden_size) -> two (B, hidden_size).
    """

    def __init__(self, input_size: int, hidden_size: int):
        super().__init__(input_size, hidden_size)

    def forward(self, x: Tensor, h_prev: Tensor | None = None,
                c_prev: Tensor | None = None) -> tuple[Tensor, Tensor]:
        return super().forward(x, None if h_prev is None and c_prev is None else (h_prev, c_prev))


# ---------------------------------------------------------------- whole sequences

class RNNBase(Module):
    """What the whole-sequence layers share: per-layer parameters ``weight_ih_l{k}`` etc., input and
    state shapes, dropout between layers. Subclasses set ``_gates`` and write ``forward``."""

    _gates = 1

    def __init__(self, input_size: int, hidden_size: int, num_layers: int, bias: bool, batch_first: bool,
                 dropout: float):
        super().__init__()
        if num_layers < 1:
            raise ValueError(f"{type(self).__name__}: num_layers must be at least 1, got {num_layers}")
        if not 0 <= dropout <= 1:
            raise ValueError(f"{type(self).__name__}: dropout must be in [0, 1], got {dropout}")
        self.input_size, self.hidden_size, self.num_layers = input_size, hidden_size, num_layers
        self.bias, self.batch_first, self.dropout = bias, batch_first, dropout
        size = self._gates * hidden_size
        for k in range(num_layers):
            setattr(self, f"weight_ih_l{k}", _new_weight(size, input_size if k == 0 else hidden_size))
            setattr(self, f"weight_hh_l{k}", _new_weight(size, hidden_size))
            if bias:
                setattr(self, f"bias_ih_l{k}", _new_weight(size))
                setattr(self, f"bias_hh_l{k}", _new_weight(size))
        self.reset_parameters()

    def reset_parameters(self) -> None:
        _reset_uniform(self, self.hidden_size)

    def _input(self, x: Tensor) -> Tensor:
        """Return the input as (T, B, input_size)."""
        if x.ndim not in (2, 3) or x.shape[-1] != self.input_size:
            raise ValueError(f"{type(self).__name__}: input of shape {x.shape} is not "
                             f"({'B, T' if self.batch_first else 'T, B'}, {self.input_size}) "
                             f"or (T, {self.input_size})")
        seq = x.unsqueeze(1) if x.ndim == 2 else (x.swapaxes(0, 1) if self.batch_first else x)
        if seq.shape[0] == 0:  # (an empty batch is fine: its outputs are empty too)
            raise ValueError(f"{type(self).__name__}: input of shape {x.shape} has no time steps; a sequence "
                             f"needs at least one, as in PyTorch")
        return seq

    def _initial(self, state: Tensor | None, x: Tensor, seq: Tensor, name: str) -> list[Tensor]:
        """Split an initial state (num_layers, B, H) (or (num_layers, H) unbatched) into one per layer."""
        shape = (self.num_layers, seq.shape[1], self.hidden_size)
        if state is None:
            return [Tensor._make(get_array_module(seq.data).zeros(shape[1:], seq.dtype), False)] * self.num_layers
        state = as_tensor(state, type(self).__name__, name)
        _check_state(type(self).__name__, name, state, shape if x.ndim == 3 else shape[::2], x)
        state = state if x.ndim == 3 else state.unsqueeze(1)
        return [state[k] for k in range(self.num_layers)]

    def _projection(self, seq: Tensor, k: int) -> Tensor:
        """x W_ih^T + (b_ih + b_hh) for every time step at once: one matmul per layer."""
        bias = getattr(self, f"bias_ih_l{k}") + getattr(self, f"bias_hh_l{k}") if self.bias else None
        return F.linear(seq, getattr(self, f"weight_ih_l{k}"), bias)

    def _between_layers(self, out: Tensor, k: int) -> Tensor:
        # Dropout on each layer's output except the last, in training only (PyTorch's rule).
        return F.dropout(out, self.dropout, self.training) if k < self.num_layers - 1 else out

    def _output(self, out: Tensor, x: Tensor) -> Tensor:
        if x.ndim == 2:
            return out.squeeze(1)
        return out.swapaxes(0, 1) if self.batch_first else out

    def extra_repr(self) -> str:
        s = f"{self.input_size}, {self.hidden_size}"
        s += f", num_layers={self.num_layers}" if self.num_layers != 1 else ""
        s += ", bias=False" if not self.bias else ""
        s += ", batch_first=True" if self.batch_first else ""
        return s + (f", dropout={self.dropout}" if self.dropout else "")


class RNN(RNNBase):
    """A multi-layer Elman RNN over whole sequences: returns (output, h_n) like ``torch.nn.RNN``.

    Shape: x (T, B, input_size) ((B, T, input_size) if batch_first, or (T, input_size) unbatched),
    h0 (num_layers, B, hidden_size) -> output (T, B, hidden_size), h_n (num_layers, B, hidden_size).
    """

    def __init__(self, input_size: int, hidden_size: int, num_layers: int = 1, nonlinearity: str = "tanh",
                 bias: bool = True, batch_first: bool = False, dropout: float = 0.0):
        if nonlinearity not in _NONLINEARITIES:
            raise ValueError(f"RNN: nonlinearity must be 'tanh' or 'relu', got {nonlinearity!r}")
        super().__init__(input_size, hidden_size, num_layers, bias, batch_first, dropout)
        self.nonlinearity = nonlinearity

    def forward(self, x: Tensor, h0: Tensor | None = None) -> tuple[Tensor, Tensor]:
        x = as_tensor(x, "RNN")
        seq = self._input(x)
        h0s, h_n = self._initial(h0, x, seq, "h0"), []
        for k in range(self.num_layers):
            hs = fused_recurrent.RNNLayer.apply(self._projection(seq, k), h0s[k], getattr(self, f"weight_hh_l{k}"),
                                                relu=self.nonlinearity == "relu")
            h_n.append(hs[-1])
            seq = self._between_layers(hs, k)
        h_n = stack(h_n)
        return self._output(seq, x), h_n if x.ndim == 3 else h_n.squeeze(1)

    def extra_repr(self) -> str:
        return super().extra_repr() + ("" if self.nonlinearity == "tanh" else f", nonlinearity={self.nonlinearity}")


class LSTM(RNNBase):
    """A multi-layer LSTM over whole sequences: returns (output, (h_n, c_n)) like ``torch.nn.LSTM``.

    Shape: x (T, B, input_size) ((B, T, input_size) if batch_first, or (T, input_size) unbatched),
    h0, c0 (num_layers, B, hidden_size) -> output (T, B, hidden_size), h_n, c_n (num_layers, B, hidden_size).
    """

    _gates = 4

    def __init__(self, input_size: int, hidden_size: int, num_layers: int = 1, bias: bool = True,
                 batch_first: bool = False, dropout: float = 0.0):
        super().__init__(input_size, hidden_size, num_layers, bias, batch_first, dropout)

    def forward(self, x: Tensor, hx: tuple[Tensor, Tensor] | None = None) -> tuple[Tensor, tuple[Tensor, Tensor]]:
        x = as_tensor(x, "LSTM")
        seq = self._input(x)
        h0, c0 = hx if hx is not None else (None, None)
        h0s, c0s = self._initial(h0, x, seq, "h0"), self._initial(c0, x, seq, "c0")
        n, h_n, c_n = self.hidden_size, [], []
        for k in range(self.num_layers):
            hc = fused_recurrent.LSTMLayer.apply(self._projection(seq, k), h0s[k], c0s[k],
                                                 getattr(self, f"weight_hh_l{k}"))
            hs = hc[:, :, :n]
            h_n.append(hs[-1])
            c_n.append(hc[-1, :, n:])
            seq = self._between_layers(hs, k)
        h_n, c_n = stack(h_n), stack(c_n)
        if x.ndim == 2:
            h_n, c_n = h_n.squeeze(1), c_n.squeeze(1)
        return self._output(seq, x), (h_n, c_n)
