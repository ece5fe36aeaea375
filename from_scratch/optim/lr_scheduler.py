"""Learning-rate schedules: each sets the optimizer's learning rates from the number of steps taken
(``ReduceLROnPlateau``: from the history of a measured metric)."""
from __future__ import annotations

import math
from bisect import bisect_right
from typing import Any, Callable, Mapping, Sequence

import numpy as np

from .. import backend
from .optimizer import Optimizer, check_hyperparameter

__all__ = ["LRScheduler", "LambdaLR", "StepLR", "MultiStepLR", "ExponentialLR", "WarmupCosineLR", "NoamLR",
           "ReduceLROnPlateau"]


def _number(value: Any) -> Any:
    """A saved number (or list of them) as an array: a schedule's state lives on the host, as Python numbers
    (an int stays int64, a float float64)."""
    return value if backend.is_array(value) else np.asarray(value)  # host: numbers


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
        return {"last_epoch": np.array(self.last_epoch, dtype=np.int64),  # host: a schedule is Python numbers
                "base_lrs": np.array(self.base_lrs, dtype=np.float64)}  # host

    def load_state_dict(self, state_dict: Mapping[str, np.ndarray]) -> None:
        """Restore the position saved by ``state_dict`` and set the optimizer's learning rates to match."""
        base_lrs = _number(state_dict["base_lrs"]).ravel().tolist()
        if len(base_lrs) != len(self.optimizer.param_groups):
            raise ValueError(f"{type(self).__name__}.load_state_dict: saved {len(base_lrs)} base learning "
                             f"rates, the optimizer has {len(self.optimizer.param_groups)} groups")
        self.base_lrs = base_lrs
        self.last_epoch = int(_number(state_dict["last_epoch"]).item())
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


class StepLR(LRScheduler):
    """Multiply the lr by ``gamma`` every ``step_size`` updates, as ``torch.optim.lr_scheduler.StepLR``.

    lr = base_lr * gamma ** (last_epoch // step_size) (PyTorch's closed form; its step-by-step
    product agrees up to rounding).
    """

    def __init__(self, optimizer: Optimizer, step_size: int, gamma: float = 0.1):
        check_hyperparameter(isinstance(step_size, int) and step_size > 0, "StepLR", "step_size", step_size, "an integer > 0")
        check_hyperparameter(gamma >= 0, "StepLR", "gamma", gamma, ">= 0")
        self.step_size, self.gamma = step_size, float(gamma)
        super().__init__(optimizer)

    def get_lr(self) -> list[float]:
        return [base * self.gamma ** (self.last_epoch // self.step_size) for base in self.base_lrs]


class MultiStepLR(LRScheduler):
    """Multiply the lr by ``gamma`` at each milestone, as ``torch.optim.lr_scheduler.MultiStepLR``.

    lr = base_lr * gamma ** (number of milestones <= last_epoch); a milestone listed twice counts twice.
    """

    def __init__(self, optimizer: Optimizer, milestones: Sequence[int], gamma: float = 0.1):
        for m in milestones:
            check_hyperparameter(isinstance(m, int) and m >= 0, "MultiStepLR", "milestone", m, "an integer >= 0")
        check_hyperparameter(gamma >= 0, "MultiStepLR", "gamma", gamma, ">= 0")
        self.milestones, self.gamma = sorted(milestones), float(gamma)
        super().__init__(optimizer)

    def get_lr(self) -> list[float]:
        return [base * self.gamma ** bisect_right(self.milestones, self.last_epoch) for base in self.base_lrs]


class ExponentialLR(LRScheduler):
    """Multiply the lr by ``gamma`` every update: lr = base_lr * gamma ** last_epoch, as PyTorch's ExponentialLR."""

    def __init__(self, optimizer: Optimizer, gamma: float):
        check_hyperparameter(gamma >= 0, "ExponentialLR", "gamma", gamma, ">= 0")
        self.gamma = float(gamma)
        super().__init__(optimizer)

    def get_lr(self) -> list[float]:
        return [base * self.gamma ** self.last_epoch for base in self.base_lrs]


class WarmupCosineLR(LRScheduler):
    """Rise linearly to the base lr over ``warmup_steps`` updates, then fall to ``min_lr`` along a half cosine.

    For t = last_epoch: lr = base * (t + 1) / warmup_steps while t < warmup_steps (the update numbered
    warmup_steps uses the full base lr), then min_lr + (base - min_lr) * (1 + cos(pi * s)) / 2 with
    s = (t - warmup_steps) / (total_steps - warmup_steps), and min_lr from t = total_steps on.
    """

    def __init__(self, optimizer: Optimizer, warmup_steps: int, total_steps: int, min_lr: float = 0.0):
        check_hyperparameter(warmup_steps >= 0, "WarmupCosineLR", "warmup_steps", warmup_steps, ">= 0")
        check_hyperparameter(total_steps > warmup_steps, "WarmupCosineLR", "total_steps", total_steps,
               f"> warmup_steps ({warmup_steps})")
        check_hyperparameter(min_lr >= 0, "WarmupCosineLR", "min_lr", min_lr, ">= 0")
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
        check_hyperparameter(d_model > 0, "NoamLR", "d_model", d_model, "> 0")
        check_hyperparameter(warmup_steps > 0, "NoamLR", "warmup_steps", warmup_steps, "> 0")
        check_hyperparameter(factor > 0, "NoamLR", "factor", factor, "> 0")
        self.d_model, self.warmup_steps, self.factor = int(d_model), int(warmup_steps), float(factor)
        super().__init__(optimizer)

    def get_lr(self) -> list[float]:
        n = self.last_epoch + 1
        lr = self.factor * self.d_model ** -0.5 * min(n ** -0.5, n * self.warmup_steps ** -1.5)
        return [lr] * len(self.base_lrs)


class ReduceLROnPlateau(LRScheduler):
    """Cut the lr by ``factor`` when a metric stops improving, as ``torch.optim.lr_scheduler.ReduceLROnPlateau``.

    Call ``step(metric)`` once per evaluation. The metric improves on the best so far when it is lower
    (``mode="min"``) or higher (``"max"``) by more than ``threshold``: relative to the best
    (``threshold_mode="rel"``: below best * (1 - threshold) / above best * (1 + threshold)) or absolute
    (``"abs"``: below best - threshold / above best + threshold). After more than ``patience``
    evaluations in a row without improvement, each group's lr becomes max(lr * factor, min_lr)
    (skipped when that changes it by ``eps`` or less), and the next ``cooldown`` evaluations count as
    neither good nor bad. ``min_lr`` is one number or one per group. The lr starts as the optimizer's.
    Raises ValueError for an unknown mode or threshold_mode, factor outside [0, 1), negative counts.
    """

    def __init__(self, optimizer: Optimizer, mode: str = "min", factor: float = 0.1, patience: int = 10,
                 threshold: float = 1e-4, threshold_mode: str = "rel", cooldown: int = 0,
                 min_lr: float | Sequence[float] = 0.0, eps: float = 1e-8):
        name, n = "ReduceLROnPlateau", len(optimizer.param_groups)
        check_hyperparameter(mode in ("min", "max"), name, "mode", mode, "'min' or 'max'")
        check_hyperparameter(threshold_mode in ("rel", "abs"), name, "threshold_mode", threshold_mode, "'rel' or 'abs'")
        check_hyperparameter(0 <= factor < 1, name, "factor", factor, "in [0, 1)")
        for key, value in (("patience", patience), ("cooldown", cooldown)):
            check_hyperparameter(isinstance(value, int) and value >= 0, name, key, value, "an integer >= 0")
        check_hyperparameter(threshold >= 0, name, "threshold", threshold, ">= 0")
        check_hyperparameter(eps >= 0, name, "eps", eps, ">= 0")
        self.min_lrs = [float(v) for v in min_lr] if isinstance(min_lr, (list, tuple)) else [float(min_lr)] * n
        if len(self.min_lrs) != n:
            raise ValueError(f"{name}: got {len(self.min_lrs)} min_lrs for {n} parameter groups")
        self.optimizer, self.mode, self.factor, self.patience = optimizer, mode, float(factor), patience
        self.threshold, self.threshold_mode, self.cooldown, self.eps = float(threshold), threshold_mode, cooldown, eps
        # No super().__init__: the lr is not a function of the step count, and starts as the optimizer's.
        self.last_epoch, self.num_bad_epochs, self.cooldown_counter = 0, 0, 0
        self.best = math.inf if mode == "min" else -math.inf
        self._last_lr = [group["lr"] for group in optimizer.param_groups]

    def is_better(self, a: float, best: float) -> bool:
        """Whether metric ``a`` improves on ``best`` by more than the threshold."""
        if self.mode == "min":
            return a < (best * (1 - self.threshold) if self.threshold_mode == "rel" else best - self.threshold)
        return a > (best * (1 + self.threshold) if self.threshold_mode == "rel" else best + self.threshold)

    def step(self, metrics: Any) -> None:  # type: ignore[override]
        """Record one evaluation of the metric (a number or a one-element Tensor); cut the lr if it has stalled."""
        current = float(metrics.item() if hasattr(metrics, "item") else metrics)
        self.last_epoch += 1
        if self.is_better(current, self.best):
            self.best, self.num_bad_epochs = current, 0
        else:
            self.num_bad_epochs += 1
        if self.cooldown_counter > 0:  # evaluations right after a cut are not held against the new lr
            self.cooldown_counter -= 1
            self.num_bad_epochs = 0
        if self.num_bad_epochs > self.patience:
            for group, min_lr in zip(self.optimizer.param_groups, self.min_lrs):
                new_lr = max(group["lr"] * self.factor, min_lr)
                if group["lr"] - new_lr > self.eps:
                    group["lr"] = new_lr
            self.cooldown_counter, self.num_bad_epochs = self.cooldown, 0
        self._last_lr = [group["lr"] for group in self.optimizer.param_groups]

    def state_dict(self) -> dict[str, np.ndarray]:
        """Return the position (evaluations seen, best metric, counters) as a flat name -> ndarray dict.

        The learning rates themselves are the optimizer's and are saved with its state_dict.
        """
        counters = ("last_epoch", "num_bad_epochs", "cooldown_counter")
        return {"best": np.array(self.best, dtype=np.float64),  # host: a schedule is Python numbers
                **{key: np.array(getattr(self, key), dtype=np.int64) for key in counters}}  # host

    def load_state_dict(self, state_dict: Mapping[str, np.ndarray]) -> None:
        """Restore the position saved by ``state_dict``."""
        missing = {"last_epoch", "best", "num_bad_epochs", "cooldown_counter"} - state_dict.keys()
        if missing:
            raise ValueError(f"ReduceLROnPlateau.load_state_dict: missing {sorted(missing)}")
        self.best = float(_number(state_dict["best"]).item())
        self.last_epoch, self.num_bad_epochs, self.cooldown_counter = (
            int(_number(state_dict[k]).item()) for k in ("last_epoch", "num_bad_epochs", "cooldown_counter"))
        self._last_lr = [group["lr"] for group in self.optimizer.param_groups]
