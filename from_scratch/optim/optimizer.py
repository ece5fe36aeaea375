"""Optimizer: parameter groups, per-parameter state, and a flat state_dict that safetensors can hold."""
from __future__ import annotations

import functools
import operator
from typing import Any, Callable, Iterable, Iterator, Mapping

import numpy as np

from .. import backend
from ..autograd.inplace import increment_version

__all__ = ["Optimizer"]

_DATA = operator.attrgetter("data")


def check_hyperparameter(ok: bool, owner: str, what: str, value: Any, rule: str) -> None:
    """Raise ValueError naming the hyperparameter and its value when ``ok`` is false."""
    if not ok:
        raise ValueError(f"{owner}: invalid {what} {value!r} (must be {rule})")


def _bumps_versions(step: Callable) -> Callable:
    """Wrap an optimizer's ``step`` so the parameters it updates get a new version."""
    @functools.wraps(step)
    def counted_step(self: "Optimizer", *args: Any, **kwargs: Any) -> Any:
        updated = [p for group in self.param_groups for p in group["params"] if p.grad is not None]
        self._follow_parameters()
        out = step(self, *args, **kwargs)
        increment_version(updated, f"{type(self).__name__}.step")
        return out
    return counted_step


class Optimizer:
    """Hold parameters in groups that share hyperparameters; subclasses implement ``step``.

    ``params`` is an iterable of Tensors/Parameters (anything with a ``.data`` ndarray and a ``.grad``
    ndarray or None), or a list of dicts ``{"params": [...], "lr": ...}`` as in PyTorch, where keys a
    group leaves out take the optimizer's defaults. ``self.state[p]`` holds each parameter's buffers.

    Every subclass's ``step`` counts as an in-place change of the parameters it updates (those with a
    gradient): their version goes up, so a backward through a graph made before the step raises
    instead of using the changed weights (see ``autograd/inplace.py``).
    """

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if "step" in cls.__dict__:
            cls.step = _bumps_versions(cls.__dict__["step"])

    def __init__(self, params: Iterable[Any], defaults: dict[str, Any]):
        self.defaults = defaults
        self.param_groups: list[dict[str, Any]] = []
        self.state: dict[Any, dict[str, Any]] = {}
        params = list(params)
        if not params:
            raise ValueError("optimizer got an empty parameter list")
        for group in params if isinstance(params[0], dict) else [{"params": params}]:
            self.add_param_group(group)

    def add_param_group(self, group: dict[str, Any]) -> None:
        """Add a group of parameters; hyperparameters it does not set come from the defaults."""
        name = type(self).__name__
        params = group["params"]
        params = [params] if hasattr(params, "data") else list(params)
        if not params:
            raise ValueError("optimizer got an empty parameter list")
        for p in params:
            if not backend.is_array(getattr(p, "data", None)):
                raise TypeError(f"{name}: parameters must be Tensors with a .data array, got {type(p).__name__}")
        seen = {id(p) for g in self.param_groups for p in g["params"]}
        if len(seen) + len(params) != len(seen | {id(p) for p in params}):
            raise ValueError(f"{name}: a parameter appears more than once in the parameter groups")
        unknown = group.keys() - self.defaults.keys() - {"params"}
        if unknown:
            raise ValueError(f"{name}: unknown hyperparameters {sorted(unknown)}; known: {sorted(self.defaults)}")
        group = {**self.defaults, **group, "params": params}
        # Plain Python numbers only: an np.float64 lr would upcast float32 updates to float64.
        for key, value in group.items():
            if key != "params":
                group[key] = tuple(float(v) for v in value) if isinstance(value, (tuple, list)) else \
                    bool(value) if isinstance(value, (bool, np.bool_)) else float(value)
        self._check_group(group)
        self.param_groups.append(group)

    def _follow_parameters(self) -> None:
        """Move each parameter's state onto its device if ``Module.to`` moved the parameter after state was
        made: the state follows the parameter, as ``load_state_dict`` puts it there. (A list of the
        parameters' array types, compared with the last step's, is all a step costs when nothing moved.)"""
        kinds = [list(map(type, map(_DATA, group["params"]))) for group in self.param_groups]
        if kinds == getattr(self, "_kinds", None):
            return
        self._kinds = kinds
        for p, state in self.state.items():
            for key, value in state.items():
                if backend.is_array(value) and type(value) is not type(p.data):
                    state[key] = backend.to_device(value, p.device)

    def _check_group(self, group: dict[str, Any]) -> None:
        """Raise ValueError if a hyperparameter is out of range (learning rate here; subclasses add more)."""
        check_hyperparameter(group["lr"] >= 0, type(self).__name__, "learning rate", group["lr"], ">= 0")

    @property
    def lr(self) -> float:
        """The learning rate (of the first group, when there are several)."""
        return self.param_groups[0]["lr"]

    @lr.setter
    def lr(self, value: float) -> None:
        value = float(value)
        check_hyperparameter(value >= 0, type(self).__name__, "learning rate", value, ">= 0")
        for group in self.param_groups:
            group["lr"] = value

    def zero_grad(self) -> None:
        """Set every parameter's gradient to None (the next backward writes a fresh one)."""
        for group in self.param_groups:
            for p in group["params"]:
                p.grad = None

    def step(self) -> None:
        """Update every parameter that has a gradient."""
        raise NotImplementedError(f"{type(self).__name__} does not implement step()")

    def _counted_grads(self, group: dict[str, Any], new_state: Callable[[Any], dict[str, Any]]) -> Iterator[tuple]:
        """Yield ``(p, state, g)`` for each parameter of ``group`` that has a gradient.

        ``state`` is ``self.state[p]`` (``{"step": 0, **new_state(p)}`` on first use) with its ``step``
        counted, and g = grad + weight_decay * p: L2 decay folded into the gradient, as in PyTorch's
        RMSprop and Adagrad.
        """
        weight_decay = group["weight_decay"]
        for p in group["params"]:
            if p.grad is None:
                continue
            state = self.state.get(p)
            if state is None:
                state = self.state[p] = {"step": 0, **new_state(p)}
            state["step"] += 1
            g = p.grad
            if weight_decay:
                g = p.data * weight_decay
                g += p.grad
            yield p, state, g

    def state_dict(self) -> dict[str, Any]:
        """Return a copy of the hyperparameters and state as a flat name -> array dict (safetensors-ready).

        Buffers stay on their parameters' device (``save`` copies them to the host); hyperparameters and
        counters are host arrays. Keys: ``param_groups.{g}.{name}`` for each hyperparameter (0-d arrays;
        tuples such as betas are 1-d), ``param_groups.{g}.params`` (int64 indices of the group's parameters), and
        ``state.{i}.{name}`` for parameter ``i`` (counting through the groups in order): buffers with
        the parameter's shape and dtype, and integer 0-d counters such as Adam's ``step``.
        """
        out: dict[str, np.ndarray] = {}
        index = 0
        for g, group in enumerate(self.param_groups):
            for key, value in group.items():
                if key != "params":
                    out[f"param_groups.{g}.{key}"] = np.array(value)  # host: a Python number or tuple
            out[f"param_groups.{g}.params"] = np.arange(index, index + len(group["params"]), dtype=np.int64)  # host
            for p in group["params"]:
                for key, value in self.state.get(p, {}).items():  # copies: later steps leave them alone
                    out[f"state.{index}.{key}"] = value.copy() if backend.is_array(value) else \
                        np.array(value)  # host: a counter such as step
                index += 1
        return out

    def load_state_dict(self, state_dict: Mapping[str, Any]) -> None:
        """Restore hyperparameters and state from ``state_dict()``'s output; nothing changes if it does not fit.

        Buffers are copied onto the device of the parameter they belong to, from the host (``load``'s
        arrays) or from any device."""
        name = f"{type(self).__name__}.load_state_dict"
        groups: dict[int, dict[str, np.ndarray]] = {}
        states: dict[int, dict[str, np.ndarray]] = {}
        for key, value in state_dict.items():
            kind, _, rest = key.partition(".")
            index, _, field = rest.partition(".")
            if kind not in ("param_groups", "state") or not index.isdigit() or not field:
                raise ValueError(f"{name}: unexpected key {key!r}")
            value = value if backend.is_array(value) else np.asarray(value)  # host: a number or a list
            (groups if kind == "param_groups" else states).setdefault(int(index), {})[field] = value
        if sorted(groups) != list(range(len(self.param_groups))):
            raise ValueError(f"{name}: saved state has {len(groups)} parameter groups, "
                             f"this optimizer has {len(self.param_groups)}")
        params = []
        for g, group in enumerate(self.param_groups):
            saved = groups[g]
            if saved.keys() != group.keys():
                raise ValueError(f"{name}: group {g} was saved with hyperparameters {sorted(saved)}, this "
                                 f"optimizer has {sorted(group)} (state from another optimizer?)")
            if saved["params"].size != len(group["params"]):
                raise ValueError(f"{name}: group {g} was saved with {saved['params'].size} parameters, "
                                 f"this optimizer has {len(group['params'])}")
            params += group["params"]
        new_state = {}
        for i, entries in states.items():
            if i >= len(params):
                raise ValueError(f"{name}: state for parameter {i}, but the optimizer has {len(params)}")
            p, restored = params[i], {}
            for key, arr in entries.items():
                if arr.dtype.kind in "iu":  # a counter such as step
                    restored[key] = int(arr.item())
                elif arr.shape != p.data.shape:
                    raise ValueError(f"{name}: state.{i}.{key} has shape {arr.shape}, "
                                     f"parameter {i} has shape {p.data.shape}")
                else:
                    restored[key] = backend.to_device(arr, p.device).astype(p.data.dtype, copy=True)  # fresh
            new_state[p] = restored
        for g, group in enumerate(self.param_groups):
            for key, arr in groups[g].items():
                if key != "params":
                    group[key] = tuple(arr.tolist()) if isinstance(group[key], tuple) else type(group[key])(arr.item())
        self.state = new_state

    def __repr__(self) -> str:
        hyper = ", ".join(f"{k}={v}" for k, v in self.param_groups[0].items() if k != "params")
        return f"{type(self).__name__}({hyper}, groups={len(self.param_groups)})"
