"""The gated recurrent unit: ``GRUCell`` (one step, composed from Tensor ops) and ``GRU`` (whole sequences).

Parameter names, shapes, gate order (r, z, n) and init (every weight and bias
~ U(-1/sqrt(hidden), 1/sqrt(hidden))) follow ``torch.nn.GRU``, so a PyTorch state dict loads as is.
The step, as PyTorch defines it (Cho et al. 2014, with b_hn inside the reset gate's product):

    r  = sigmoid(x W_ir^T + b_ir + h W_hr^T + b_hr)        reset gate: how much old state the candidate sees
    z  = sigmoid(x W_iz^T + b_iz + h W_hz^T + b_hz)        update gate: how much old state to keep
    n  = tanh(x W_in^T + b_in + r * (h W_hn^T + b_hn))     candidate state
    h' = (1 - z) * n + z * h
"""
from __future__ import annotations

from .. import functional as F
from ..autograd import fused_recurrent
from ..autograd.tensor import Tensor, stack
from ..functional.inputs import as_tensor
from .recurrent import RNNBase, RNNCellBase

__all__ = ["GRUCell", "GRU"]


class GRUCell(RNNCellBase):
    """One GRU step: (x, h) -> h'; the state defaults to zeros.

    Shape: x (B, input_size) or (input_size,), h the same with hidden_size -> h'.
    """

    def __init__(self, input_size: int, hidden_size: int, bias: bool = True):
        super().__init__(input_size, hidden_size, bias, gates=3)

    def forward(self, x: Tensor, h: Tensor | None = None) -> Tensor:
        x = as_tensor(x, "GRUCell")
        h = self._state(x, h, "h")
        x_r, x_z, x_n = F.linear(x, self.weight_ih, self.bias_ih).chunk(3, axis=-1)
        h_r, h_z, h_n = F.linear(h, self.weight_hh, self.bias_hh).chunk(3, axis=-1)
        r, z = (x_r + h_r).sigmoid(), (x_z + h_z).sigmoid()
        n = (x_n + r * h_n).tanh()
        return n + z * (h - n)  # (1 - z) n + z h


class GRU(RNNBase):
    """A multi-layer GRU over whole sequences: returns (output, h_n) like ``torch.nn.GRU``.

    Shape: x (T, B, input_size) ((B, T, input_size) if batch_first, or (T, input_size) unbatched),
    h0 (num_layers, B, hidden_size) -> output (T, B, hidden_size), h_n (num_layers, B, hidden_size).
    Each layer runs as one fused op (``autograd/fused_recurrent.GRULayer``) after one input
    projection for all time steps; ``GRUCell`` unrolled gives the same numbers.
    """

    _gates = 3

    def __init__(self, input_size: int, hidden_size: int, num_layers: int = 1, bias: bool = True,
                 batch_first: bool = False, dropout: float = 0.0):
        super().__init__(input_size, hidden_size, num_layers, bias, batch_first, dropout)

    def forward(self, x: Tensor, h0: Tensor | None = None) -> tuple[Tensor, Tensor]:
        x = as_tensor(x, "GRU")
        seq = self._input(x)
        h0s, h_n = self._initial(h0, x, seq, "h0"), []
        for k in range(self.num_layers):
            # Only b_ih joins the input projection: b_hn sits inside r * (h W_hn^T + b_hn), so b_hh goes in whole.
            xw = F.linear(seq, getattr(self, f"weight_ih_l{k}"), getattr(self, f"bias_ih_l{k}", None))
            weights = [getattr(self, f"weight_hh_l{k}")] + ([getattr(self, f"bias_hh_l{k}")] if self.bias else [])
            hs = fused_recurrent.GRULayer.apply(xw, h0s[k], *weights)
            h_n.append(hs[-1])
            seq = self._between_layers(hs, k)
        h_n = stack(h_n)
        return self._output(seq, x), h_n if x.ndim == 3 else h_n.squeeze(1)
