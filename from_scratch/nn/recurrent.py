"""Recurrent layers: RNN and LSTM cells, whole-sequence RNN and LSTM, and the tutorials' step blocks.

Parameter names, shapes, gate order (i, f, g, o) and init follow ``torch.nn``, so a PyTorch
state dict loads as is. The cells are composed from Tensor ops and are the readable
definition of each step; ``RNN`` and ``LSTM`` run a whole layer as one fused op (see below).
"""
from __future__ import annotations

import math

import numpy as np

from .. import functional as F
from ..autograd.function import Function
from ..autograd.tensor import Tensor, get_default_dtype, stack
from . import init
from .module import Module, Parameter

__all__ = ["RNNCell", "LSTMCell", "RNN", "LSTM", "RecurrentBlock", "LSTMBlock"]

_NONLINEARITIES = ("tanh", "relu")


def _new_weight(*shape: int) -> Parameter:
    return Parameter(np.empty(shape, get_default_dtype()))


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

class _CellBase(Module):
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
        if x.shape[-1:] != (self.input_size,) or x.ndim > 2:
            raise ValueError(f"{type(self).__name__}: input of shape {x.shape} is not (batch, {self.input_size}) "
                             f"or ({self.input_size},)")
        shape = x.shape[:-1] + (self.hidden_size,)
        if state is None:
            return Tensor._make(np.zeros(shape, x.dtype), False)
        _check_state(type(self).__name__, name, state, shape, x)
        return state

    def extra_repr(self) -> str:
        return f"{self.input_size}, {self.hidden_size}" + ("" if self.bias else ", bias=False")


class RNNCell(_CellBase):
    """One Elman RNN step: h' = act(x W_ih^T + b_ih + h W_hh^T + b_hh), act = tanh or relu.

    Shape: x (B, input_size) or (input_size,), h the same with hidden_size -> h'.
    """

    def __init__(self, input_size: int, hidden_size: int, bias: bool = True, nonlinearity: str = "tanh"):
        if nonlinearity not in _NONLINEARITIES:
            raise ValueError(f"RNNCell: nonlinearity must be 'tanh' or 'relu', got {nonlinearity!r}")
        super().__init__(input_size, hidden_size, bias, gates=1)
        self.nonlinearity = nonlinearity

    def forward(self, x: Tensor, h: Tensor | None = None) -> Tensor:
        h = self._state(x, h, "h")
        pre = F.linear(x, self.weight_ih, self.bias_ih) + F.linear(h, self.weight_hh, self.bias_hh)
        return pre.tanh() if self.nonlinearity == "tanh" else pre.relu()

    def extra_repr(self) -> str:
        return super().extra_repr() + ("" if self.nonlinearity == "tanh" else f", nonlinearity={self.nonlinearity}")


class LSTMCell(_CellBase):
    """One LSTM step: (x, (h, c)) -> (h', c'); the state defaults to zeros.

    Shape: x (B, input_size) or (input_size,); h, c (B, hidden_size) or (hidden_size,).
    """

    def __init__(self, input_size: int, hidden_size: int, bias: bool = True):
        super().__init__(input_size, hidden_size, bias, gates=4)

    def forward(self, x: Tensor, hx: tuple[Tensor, Tensor] | None = None) -> tuple[Tensor, Tensor]:
        h, c = hx if hx is not None else (None, None)
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


# ---------------------------------------------------------------- fused whole-layer recurrences
#
# Why fused: composed from Tensor ops, a T-step layer back-propagates in O(T^2), because each
# step's slice xw[t] of the precomputed input projection sends back a gradient as large as the
# whole (T, B, gates) array, and the ~20 graph nodes per step cost Python time. Profiled at
# T=100, B=32, H=128 (float32, 2 cores) the composed LSTM layer took 44 ms forward + 181 ms
# backward; these Functions take 35 + 37 ms, and the gap grows with T. They take the input
# projection xw = x W_ih^T + b_ih + b_hh for all steps (one matmul, done outside) and run only the
# recurrent part in NumPy. The tests gradcheck them and compare them with the composed cells.

def _sigmoid(a: np.ndarray) -> np.ndarray:
    # sigmoid(x) = (1 + tanh(x / 2)) / 2: one ufunc pass that cannot overflow.
    return 0.5 * np.tanh(0.5 * a) + 0.5


class _RNNLayer(Function):
    """h_t = act(xw_t + h_{t-1} W_hh^T) for t = 1..T; returns all h_t as (T, B, H)."""

    def forward(self, xw, h0, w_hh, relu=False):
        hs = np.empty(xw.shape, xw.dtype)
        h, w_hh_t = h0, w_hh.T
        for t in range(len(xw)):
            pre = xw[t] + h @ w_hh_t
            h = hs[t] = np.maximum(pre, 0) if relu else np.tanh(pre)
        self.hs, self.h0, self.w_hh, self.relu = hs, h0, w_hh, relu
        return hs

    def backward(self, grad):
        hs, w_hh = self.hs, self.w_hh
        # d pre_t = (dL/dh_t + d pre_{t+1} W_hh) * act'(pre_t), with tanh' = 1 - h^2, relu' = [h > 0]
        dpre = np.empty_like(hs)
        dh_next = np.zeros_like(self.h0)
        for t in range(len(hs) - 1, -1, -1):
            dh = grad[t] + dh_next
            dpre[t] = dh * (hs[t] > 0) if self.relu else dh * (1 - hs[t] * hs[t])
            dh_next = dpre[t] @ w_hh
        dw_hh = None
        if self.needs_input_grad[2]:  # dL/dW_hh = sum_t dpre_t^T h_{t-1}
            h_prev = np.concatenate([self.h0[None], hs[:-1]])
            dw_hh = dpre.reshape(-1, hs.shape[-1]).T @ h_prev.reshape(-1, hs.shape[-1])
        return dpre, dh_next, dw_hh


class _LSTMLayer(Function):
    """The LSTM recurrence over T steps; returns [h_t | c_t] for every t as (T, B, 2H)."""

    def forward(self, xw, h0, c0, w_hh):
        n = h0.shape[-1]
        hc = np.empty(xw.shape[:-1] + (2 * n,), xw.dtype)
        acts = np.empty_like(xw)  # i, f, g, o after their nonlinearities, kept for backward
        h, c, w_hh_t = h0, c0, w_hh.T
        for t in range(len(xw)):
            gates = xw[t] + h @ w_hh_t
            a = acts[t]
            a[:, :2 * n] = _sigmoid(gates[:, :2 * n])          # i, f
            a[:, 2 * n:3 * n] = np.tanh(gates[:, 2 * n:3 * n])  # g
            a[:, 3 * n:] = _sigmoid(gates[:, 3 * n:])           # o
            c = hc[t, :, n:] = a[:, n:2 * n] * c + a[:, :n] * a[:, 2 * n:3 * n]  # c_t = f c_{t-1} + i g
            h = hc[t, :, :n] = a[:, 3 * n:] * np.tanh(c)                         # h_t = o tanh(c_t)
        self.acts, self.hc, self.h0, self.c0, self.w_hh = acts, hc, h0, c0, w_hh
        return hc

    def backward(self, grad):
        acts, hc, w_hh = self.acts, self.hc, self.w_hh
        n = self.h0.shape[-1]
        dgates = np.empty_like(acts)
        dh_next, dc_next = np.zeros_like(self.h0), np.zeros_like(self.c0)
        for t in range(len(hc) - 1, -1, -1):
            i, f, g, o = acts[t, :, :n], acts[t, :, n:2 * n], acts[t, :, 2 * n:3 * n], acts[t, :, 3 * n:]
            c_prev = hc[t - 1, :, n:] if t else self.c0
            tanh_c = np.tanh(hc[t, :, n:])
            dh = grad[t, :, :n] + dh_next
            # c_t reaches the loss directly, through h_t = o tanh(c_t), and through c_{t+1} = f c_t + ...
            dc = grad[t, :, n:] + dc_next + dh * o * (1 - tanh_c * tanh_c)
            d = dgates[t]  # gradients before the nonlinearities: sigmoid' = s (1 - s), tanh' = 1 - g^2
            d[:, :n] = dc * g * i * (1 - i)
            d[:, n:2 * n] = dc * c_prev * f * (1 - f)
            d[:, 2 * n:3 * n] = dc * i * (1 - g * g)
            d[:, 3 * n:] = dh * tanh_c * o * (1 - o)
            dc_next = dc * f
            dh_next = d @ w_hh
        dw_hh = None
        if self.needs_input_grad[3]:  # dL/dW_hh = sum_t dgates_t^T h_{t-1}
            h_prev = np.concatenate([self.h0[None], hc[:-1, :, :n]])
            dw_hh = dgates.reshape(-1, 4 * n).T @ h_prev.reshape(-1, n)
        return dgates, dh_next, dc_next, dw_hh


# ---------------------------------------------------------------- whole sequences

class _RNNBase(Module):
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
        if x.ndim == 2:
            return x.unsqueeze(1)
        return x.swapaxes(0, 1) if self.batch_first else x

    def _initial(self, state: Tensor | None, x: Tensor, seq: Tensor, name: str) -> list[Tensor]:
        """Split an initial state (num_layers, B, H) (or (num_layers, H) unbatched) into one per layer."""
        shape = (self.num_layers, seq.shape[1], self.hidden_size)
        if state is None:
            return [Tensor._make(np.zeros(shape[1:], seq.dtype), False)] * self.num_layers
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


class RNN(_RNNBase):
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
        seq = self._input(x)
        h0s, h_n = self._initial(h0, x, seq, "h0"), []
        for k in range(self.num_layers):
            hs = _RNNLayer.apply(self._projection(seq, k), h0s[k], getattr(self, f"weight_hh_l{k}"),
                                 relu=self.nonlinearity == "relu")
            h_n.append(hs[-1])
            seq = self._between_layers(hs, k)
        h_n = stack(h_n)
        return self._output(seq, x), h_n if x.ndim == 3 else h_n.squeeze(1)

    def extra_repr(self) -> str:
        return super().extra_repr() + ("" if self.nonlinearity == "tanh" else f", nonlinearity={self.nonlinearity}")


class LSTM(_RNNBase):
    """A multi-layer LSTM over whole sequences: returns (output, (h_n, c_n)) like ``torch.nn.LSTM``.

    Shape: x (T, B, input_size) ((B, T, input_size) if batch_first, or (T, input_size) unbatched),
    h0, c0 (num_layers, B, hidden_size) -> output (T, B, hidden_size), h_n, c_n (num_layers, B, hidden_size).
    """

    _gates = 4

    def __init__(self, input_size: int, hidden_size: int, num_layers: int = 1, bias: bool = True,
                 batch_first: bool = False, dropout: float = 0.0):
        super().__init__(input_size, hidden_size, num_layers, bias, batch_first, dropout)

    def forward(self, x: Tensor, hx: tuple[Tensor, Tensor] | None = None) -> tuple[Tensor, tuple[Tensor, Tensor]]:
        seq = self._input(x)
        h0, c0 = hx if hx is not None else (None, None)
        h0s, c0s = self._initial(h0, x, seq, "h0"), self._initial(c0, x, seq, "c0")
        n, h_n, c_n = self.hidden_size, [], []
        for k in range(self.num_layers):
            hc = _LSTMLayer.apply(self._projection(seq, k), h0s[k], c0s[k], getattr(self, f"weight_hh_l{k}"))
            hs = hc[:, :, :n]
            h_n.append(hs[-1])
            c_n.append(hc[-1, :, n:])
            seq = self._between_layers(hs, k)
        h_n, c_n = stack(h_n), stack(c_n)
        if x.ndim == 2:
            h_n, c_n = h_n.squeeze(1), c_n.squeeze(1)
        return self._output(seq, x), (h_n, c_n)
