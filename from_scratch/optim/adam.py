"""Adam and AdamW: per-coordinate step sizes from running averages of the gradient and its square."""
from __future__ import annotations

import math
from typing import Any, Iterable

import numpy as np

from .optimizer import Optimizer, _check

__all__ = ["Adam", "AdamW"]


class Adam(Optimizer):
    """Adam (Kingma & Ba, 2015) with L2 weight decay folded into the gradient, as ``torch.optim.Adam``."""

    decoupled = False  # AdamW sets this: decay the weights directly instead of through the gradient

    def __init__(self, params: Iterable[Any], lr: float = 1e-3, betas: tuple[float, float] = (0.9, 0.999),
                 eps: float = 1e-8, weight_decay: float = 0.0):
        self._flat: dict[tuple, _FlatBuffers] = {}  # see _flat_buffers
        super().__init__(params, dict(lr=lr, betas=betas, eps=eps, weight_decay=weight_decay))

    def _check_group(self, group: dict[str, Any]) -> None:
        super()._check_group(group)
        name, betas = type(self).__name__, group["betas"]
        _check(len(betas) == 2, name, "betas", betas, "a pair (beta1, beta2)")
        for i, beta in enumerate(betas):
            _check(0 <= beta < 1, name, f"beta at index {i}", beta, "in [0, 1)")
        _check(group["eps"] >= 0, name, "eps", group["eps"], ">= 0")
        _check(group["weight_decay"] >= 0, name, "weight_decay", group["weight_decay"], ">= 0")

    def step(self) -> None:
        """Update every parameter that has a gradient."""
        for group in self.param_groups:
            params = [p for p in group["params"] if p.grad is not None]
            by_dtype: dict[np.dtype, list] = {}
            for p in params:
                by_dtype.setdefault(p.data.dtype, []).append(p)
            for dtype, same_dtype in by_dtype.items():
                self._update(group, same_dtype, (id(group), dtype))

    def _update(self, group: dict[str, Any], params: list, slot: tuple) -> None:
        # One pass of NumPy calls over all parameters at once: their gradients are copied into one flat
        # vector, and the moment buffers are one flat vector each (``self.state[p]`` holds views of them).
        # A model of 90 small tensors would otherwise pay ~15 calls per tensor. The flat scratch vectors
        # are kept between steps: a fresh large array costs page faults on every step.
        lr, (beta1, beta2), eps, weight_decay = group["lr"], group["betas"], group["eps"], group["weight_decay"]
        flat = self._flat_buffers(params, slot)
        m, v, g, tmp = flat.m, flat.v, flat.g, flat.tmp
        steps = set()
        for p in params:
            state = self.state[p]
            state["step"] += 1
            steps.add(state["step"])
        np.concatenate([p.grad.ravel() for p in params], out=g)
        if weight_decay and self.decoupled:
            for p in params:
                p.data *= 1 - lr * weight_decay  # AdamW: p = p - lr * wd * p
        elif weight_decay:
            np.concatenate([p.data.ravel() for p in params], out=tmp)
            tmp *= weight_decay
            g += tmp  # Adam: g = grad + wd * p
        # m = beta1 * m + (1 - beta1) * g, computed as m + (1 - beta1) * (g - m) like torch's lerp
        np.subtract(g, m, out=tmp)
        tmp *= 1 - beta1
        m += tmp
        # v = beta2 * v + (1 - beta2) * g^2
        np.multiply(g, g, out=tmp)
        tmp *= 1 - beta2
        v *= beta2
        v += tmp
        # p = p - lr / (1 - beta1^t) * m / (sqrt(v) / sqrt(1 - beta2^t) + eps)   (bias-corrected)
        np.sqrt(v, out=tmp)
        if len(steps) == 1:
            t = steps.pop()
            tmp /= math.sqrt(1 - beta2 ** t)
            tmp += eps
            np.divide(m, tmp, out=tmp)
            tmp *= lr / (1 - beta1 ** t)
        else:  # parameters that missed steps (no gradient then) have their own bias corrections
            t = np.repeat(np.array([self.state[p]["step"] for p in params], np.float64), [p.size for p in params])
            tmp /= np.sqrt(1 - beta2 ** t).astype(tmp.dtype)
            tmp += eps
            np.divide(m, tmp, out=tmp)
            tmp *= (lr / (1 - beta1 ** t)).astype(tmp.dtype)
        for p, update in zip(params, flat.tmp_views):
            p.data -= update

    def _flat_buffers(self, params: list, slot: tuple) -> "_FlatBuffers":
        """Return the flat buffers of ``params``, joining (or creating) the moments anew when the
        parameters with a gradient changed or ``load_state_dict`` replaced the state."""
        flat = self._flat.get(slot)
        if flat is not None and len(flat.params) == len(params) and all(
                p is q and (state := self.state.get(p)) is not None and state["exp_avg"] is m and
                state["exp_avg_sq"] is v for p, q, m, v in zip(params, flat.params, flat.m_views, flat.v_views)):
            return flat
        for p in params:
            if p not in self.state:
                self.state[p] = {"step": 0, "exp_avg": np.zeros_like(p.data), "exp_avg_sq": np.zeros_like(p.data)}
        flat = self._flat[slot] = _FlatBuffers(params, [self.state[p]["exp_avg"] for p in params],
                                               [self.state[p]["exp_avg_sq"] for p in params])
        for p, m, v in zip(params, flat.m_views, flat.v_views):  # the state keeps views into the flat vectors
            self.state[p]["exp_avg"], self.state[p]["exp_avg_sq"] = m, v
        return flat


class _FlatBuffers:
    """Adam's flat vectors for a list of same-dtype parameters: moments m and v (from their current
    per-parameter arrays), the joined gradient g and a scratch vector, with per-parameter views."""

    def __init__(self, params: list, exp_avg: list, exp_avg_sq: list):
        self.params = params
        self.m, self.v = np.concatenate([a.ravel() for a in exp_avg]), np.concatenate([a.ravel() for a in exp_avg_sq])
        self.g, self.tmp = np.empty_like(self.m), np.empty_like(self.m)
        self.m_views, self.v_views, self.tmp_views = (self._views(a, params) for a in (self.m, self.v, self.tmp))

    @staticmethod
    def _views(flat: np.ndarray, params: list) -> list:
        out, start = [], 0
        for p in params:
            out.append(flat[start:start + p.size].reshape(p.shape))
            start += p.size
        return out


class AdamW(Adam):
    """Adam with decoupled weight decay (Loshchilov & Hutter, 2019), as ``torch.optim.AdamW``."""

    decoupled = True

    def __init__(self, params: Iterable[Any], lr: float = 1e-3, betas: tuple[float, float] = (0.9, 0.999),
                 eps: float = 1e-8, weight_decay: float = 1e-2):
        super().__init__(params, lr=lr, betas=betas, eps=eps, weight_decay=weight_decay)
