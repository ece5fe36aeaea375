"""Learning-rate schedules: each sets the optimizer's learning rates from the number of steps taken."""
from __future__ import annotations

import math
from typing import Callable, Mapping, Sequence

import numpy as np

from .optimizer import Optimizer, _check

__all__ = ["LRScheduler", "LambdaLR", "WarmupCosineLR", "NoamLR"]


class LRScheduler:
    """Base class: ``step()`` counts one update and writes ``get_lr()`` into every parameter group.

    As in PyTorch, the constructor already sets the learning rate for the first update, and
    ``step()`` is called after each ``optimizer.step()``. ``last_epoch`` (PyTorch's name) is the
    number of ``step()`` calls so far; ``base_lrs`` are the groups' learning rates at construction.
    """

    def __init__(self, optimizer: Optimizer):
        self.optimizer = optimizer
        self.base_lrs = [group["lr"] for group in optimizer.param_groups]
        self.last_epoch = 0
        self._apply()

    def get_lr(self) -> list[float]:
        """Return each group's learning rate for step ``last_epoch``."""
        raise NotImplementedError(f"{type(self).__name__} does not implement get_lr()")

    def _apply(self) -> None:
        self._last_lr = [float(lr) for lr in self.get_lr()]
        for group, lr in zip(self.optimizer.param_groups, self._last_lr):
            group["lr"] = lr

    def step(self) -> None:
        """Advance the schedule by one update."""
        self.last_epoch += 1
        self._apply()

    def get_last_lr(self) -> list[float]:
        """Return the learning rates the schedule last set, one per group."""
        return list(self._last_lr)

    def state_dict(self) -> dict[str, np.ndarray]:
        """Return the schedule's position as a flat name -> ndarray dict (safetensors-ready)."""
        return {"last_epoch": np.array(self.last_epoch, dtype=np.int64),
                "base_lrs": np.array(self.base_lrs, dtype=np.float64)}

    def load_state_dict(self, state_dict: Mapping[str, np.ndarray]) -> None:
        """Restore the position saved by ``state_dict`` and set the optimizer's learning rates to match."""
        base_lrs = np.asarray(state_dict["base_lrs"]).ravel().tolist()
        if len(base_lrs) != len(self.optimizer.param_groups):
            raise ValueError(f"{type(self).__name__}.load_state_dict: saved {len(base_lrs)} base learning "
                             f"rates, the optimizer has {len(self.optimizer.param_groups)} groups")
        self.base_lrs = base_lrs
        self.last_epoch = int(np.asarray(state_dict["last_epoch"]).item())
        self._apply()


class LambdaLR(LRScheduler):
    """Set lr = base_lr * lr_lambda(last_epoch), as ``torch.optim.lr_scheduler.LambdaLR``.

    ``lr_lambda`` is one function of the step count, or a list with one per parameter group.
    """

    def __init__(self, optimizer: Optimizer, lr_lambda: Callable[[int], float] | Sequence[Callable[[int], float]]):
        n = len(optimizer.param_groups)
        self.lr_lambdas = list(lr_lambda) if isinstance(lr_lambda, (list, tuple)) else [lr_lambda] * n
        if len(self.lr_lambdas) != n:
            raise ValueError(f"LambdaLR: got {len(self.lr_lambdas)} lr_lambdas for {n} parameter groups")
        super().__init__(optimizer)

    def get_lr(self) -> list[float]:
        return [base * fn(self.last_epoch) for base, fn in zip(self.base_lrs, self.lr_lambdas)]


class WarmupCosineLR(LRScheduler):
    """Rise linearly to the base lr over ``warmup_steps`` updates, then fall to ``min_lr`` along a half cosine.

    For t = last_epoch: lr = base * (t + 1) / warmup_steps while t < warmup_steps (the update numbered
    warmup_steps uses the full base lr), then min_lr + (base - min_lr) * (1 + cos(pi * s)) / 2 with
    s = (t - warmup_steps) / (total_steps - warmup_steps), and min_lr from t = total_steps on.
    """

    def __init__(self, optimizer: Optimizer, warmup_steps: int, total_steps: int, min_lr: float = 0.0):
        _check(warmup_steps >= 0, "WarmupCosineLR", "warmup_steps", warmup_steps, ">= 0")
        _check(total_steps > warmup_steps, "WarmupCosineLR", "total_steps", total_steps,
               f"> warmup_steps ({warmup_steps})")
        _check(min_lr >= 0, "WarmupCosineLR", "min_lr", min_lr, ">= 0")
        self.warmup_steps, self.total_steps, self.min_lr = int(warmup_steps), int(total_steps), float(min_lr)
        super().__init__(optimizer)

    def get_lr(self) -> list[float]:
        t, warmup = self.last_epoch, self.warmup_steps
        if t < warmup:
            return [base * (t + 1) / warmup for base in self.base_lrs]
        progress = min(t - warmup, self.total_steps - warmup) / (self.total_steps - warmup)  # 0 -> 1, then held
        cosine = 0.5 * (1 + math.cos(math.pi * progress))
        return [self.min_lr + (base - self.min_lr) * cosine for base in self.base_lrs]


class NoamLR(LRScheduler):
    """The Transformer paper's schedule: lr = factor * d_model^-0.5 * min(n^-0.5, n * warmup_steps^-1.5).

    n = last_epoch + 1 is the number of the update about to be made (counted from 1, as in the paper):
    the lr rises linearly for ``warmup_steps`` updates, peaks at n = warmup_steps, then decays as
    1/sqrt(n). The lr is absolute: the optimizer's own lr is replaced, not scaled.
    """

    def __init__(self, optimizer: Optimizer, d_model: int, warmup_steps: int, factor: float = 1.0):
        _check(d_model > 0, "NoamLR", "d_model", d_model, "> 0")
        _check(warmup_steps > 0, "NoamLR", "warmup_steps", warmup_steps, "> 0")
        _check(factor > 0, "NoamLR", "factor", factor, "> 0")
        self.d_model, self.warmup_steps, self.factor = int(d_model), int(warmup_steps), float(factor)
        super().__init__(optimizer)

    def get_lr(self) -> list[float]:
        n = self.last_epoch + 1
        lr = self.factor * self.d_model ** -0.5 * min(n ** -0.5, n * self.warmup_steps ** -1.5)
        return [lr] * len(self.base_lrs)
