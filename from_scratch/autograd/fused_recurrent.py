"""Whole recurrent layers as single nodes: the RNN, LSTM and GRU recurrences over T time steps.

Why fused: composed from Tensor ops, a T-step layer back-propagates in O(T^2), because each
step's slice xw[t] of the precomputed input projection sends back a gradient as large as the
whole (T, B, gates) array, and the ~20 graph nodes per step cost Python time. Profiled at
T=100, B=32, H=128 (float32, 2 cores) the composed LSTM layer took 44 ms forward + 181 ms
backward; these Functions take 35 + 37 ms, and the gap grows with T. They take the input
projection xw = x W_ih^T + b_ih (+ b_hh where it simply adds) for all steps (one matmul, done
outside by ``nn.RNN``, ``nn.LSTM``, ``nn.GRU``) and run only the recurrent part in NumPy. The
composed cells (``nn.RNNCell``, ``nn.LSTMCell``, ``nn.GRUCell``) are the readable definition of
each step; the tests gradcheck these Functions and compare them with the unrolled cells.
"""
from __future__ import annotations

import numpy as np

from ..threads import matmul
from .function import Function
from .ops import sigmoid

__all__ = ["RNNLayer", "LSTMLayer", "GRULayer"]


class RNNLayer(Function):
    """h_t = act(xw_t + h_{t-1} W_hh^T) for t = 1..T; returns all h_t as (T, B, H)."""

    def forward(self, xw, h0, w_hh, relu=False):
        hs = np.empty_like(xw)
        h, w_hh_t = h0, w_hh.T
        for t in range(len(xw)):
            pre = xw[t] + matmul(h, w_hh_t)
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
            dh_next = matmul(dpre[t], w_hh)
        dw_hh = None
        if self.needs_input_grad[2]:  # dL/dW_hh = sum_t dpre_t^T h_{t-1}
            h_prev = np.concatenate([self.h0[None], hs[:-1]])
            dw_hh = matmul(dpre.reshape(-1, hs.shape[-1]).T, h_prev.reshape(-1, hs.shape[-1]))
        return dpre, dh_next, dw_hh


class LSTMLayer(Function):
    """The LSTM recurrence over T steps; returns [h_t | c_t] for every t as (T, B, 2H)."""

    def forward(self, xw, h0, c0, w_hh):
        n = h0.shape[-1]
        hc = np.empty_like(xw, shape=xw.shape[:-1] + (2 * n,))
        acts = np.empty_like(xw)  # i, f, g, o after their nonlinearities, kept for backward
        h, c, w_hh_t = h0, c0, w_hh.T
        for t in range(len(xw)):
            gates = xw[t] + matmul(h, w_hh_t)
            a = acts[t]
            a[:, :2 * n] = sigmoid(gates[:, :2 * n])          # i, f
            a[:, 2 * n:3 * n] = np.tanh(gates[:, 2 * n:3 * n])  # g
            a[:, 3 * n:] = sigmoid(gates[:, 3 * n:])           # o
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
            dh_next = matmul(d, w_hh)
        dw_hh = None
        if self.needs_input_grad[3]:  # dL/dW_hh = sum_t dgates_t^T h_{t-1}
            h_prev = np.concatenate([self.h0[None], hc[:-1, :, :n]])
            dw_hh = matmul(dgates.reshape(-1, 4 * n).T, h_prev.reshape(-1, n))
        return dgates, dh_next, dc_next, dw_hh


class GRULayer(Function):
    """The GRU recurrence over T steps (PyTorch's gate order r, z, n); returns all h_t as (T, B, H).

    xw = x W_ih^T + b_ih for every step; ``b_hh`` (optional) stays inside, since b_hn is scaled by r.
    """

    def forward(self, xw, h0, w_hh, b_hh=None):
        n = h0.shape[-1]
        hs = np.empty_like(xw, shape=xw.shape[:-1] + (n,))
        acts = np.empty_like(xw)  # r, z, n after their nonlinearities, kept for backward
        hn = np.empty_like(hs)    # h W_hn^T + b_hn, which r scales
        h, w_hh_t = h0, w_hh.T
        for t in range(len(xw)):
            hw = matmul(h, w_hh_t)
            if b_hh is not None:
                hw += b_hh
            a = acts[t]
            a[:, :2 * n] = sigmoid(xw[t, :, :2 * n] + hw[:, :2 * n])  # r, z
            hn[t] = hw[:, 2 * n:]
            a[:, 2 * n:] = np.tanh(xw[t, :, 2 * n:] + a[:, :n] * hn[t])   # n = tanh(x_n + r (h W_hn^T + b_hn))
            h = hs[t] = a[:, 2 * n:] + a[:, n:2 * n] * (h - a[:, 2 * n:])  # h_t = (1 - z) n + z h_{t-1}
        self.acts, self.hn, self.hs, self.h0, self.w_hh = acts, hn, hs, h0, w_hh
        return hs

    def backward(self, grad):
        acts, hs, w_hh = self.acts, self.hs, self.w_hh
        n = self.h0.shape[-1]
        dxw = np.empty_like(acts)  # gradients before the nonlinearities, x side: (r, z, n)
        dhw = np.empty_like(acts)  # and h side: (r, z, r * dn), what h W_hh^T + b_hh receives
        dh_next = np.zeros_like(self.h0)
        for t in range(len(hs) - 1, -1, -1):
            r, z, g = acts[t, :, :n], acts[t, :, n:2 * n], acts[t, :, 2 * n:]
            h_prev = hs[t - 1] if t else self.h0
            dh = grad[t] + dh_next
            d = dxw[t]
            d[:, 2 * n:] = dh * (1 - z) * (1 - g * g)        # d a_n, with tanh' = 1 - n^2
            d[:, :n] = d[:, 2 * n:] * self.hn[t] * r * (1 - r)  # d a_r: a_n depends on r through r * hn
            d[:, n:2 * n] = dh * (h_prev - g) * z * (1 - z)    # d a_z, with sigmoid' = s (1 - s)
            e = dhw[t]
            e[:, :2 * n] = d[:, :2 * n]
            e[:, 2 * n:] = d[:, 2 * n:] * r
            dh_next = dh * z + matmul(e, w_hh)
        grads = [dxw, dh_next, None, None]
        rows = dhw.reshape(-1, 3 * n)
        if self.needs_input_grad[2]:  # dL/dW_hh = sum_t dhw_t^T h_{t-1}
            h_prev = np.concatenate([self.h0[None], hs[:-1]])
            grads[2] = matmul(rows.T, h_prev.reshape(-1, n))
        if len(self.needs_input_grad) > 3 and self.needs_input_grad[3]:  # dL/db_hh = sum_t dhw_t
            grads[3] = rows.sum(axis=0)
        return tuple(grads[:len(self.needs_input_grad)])
