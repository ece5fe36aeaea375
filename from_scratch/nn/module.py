"""Module, Parameter and the containers Sequential and ModuleList."""
from __future__ import annotations

from collections import OrderedDict
from typing import Any, Iterable, Iterator, Mapping, NamedTuple

import numpy as np

from ..autograd.inplace import increment_version
from ..autograd.tensor import Tensor


class Parameter(Tensor):
    """A Tensor that a Module trains: it always requires grad."""

    __slots__ = ()

    def __init__(self, data: Any, requires_grad: bool = True, dtype: Any = None):
        super().__init__(data, requires_grad=requires_grad, dtype=dtype)

    def __repr__(self) -> str:
        return "Parameter containing:\n" + super().__repr__()


class Module:
    """Base class of every layer: registers parameters, buffers and sub-modules by assignment."""

    def __init__(self) -> None:
        object.__setattr__(self, "_parameters", OrderedDict())
        object.__setattr__(self, "_buffers", OrderedDict())
        object.__setattr__(self, "_modules", OrderedDict())
        object.__setattr__(self, "training", True)

    def __setattr__(self, name: str, value: Any) -> None:
        if "_parameters" not in self.__dict__:
            raise AttributeError(f"{type(self).__name__}: call super().__init__() before assigning attributes")
        # A trainable leaf: a Parameter, or a graph-free tensor that requires grad (not a computed activation).
        trainable = isinstance(value, Parameter) or (
            isinstance(value, Tensor) and value.requires_grad and value._ctx is None)
        if value is not None and ((name in self._parameters and not trainable) or
                                  (name in self._modules and not isinstance(value, Module))):
            kind = "parameter" if name in self._parameters else "sub-module"
            raise TypeError(f"{type(self).__name__}: cannot assign a {type(value).__name__} to {kind} {name!r} "
                            f"(a {'Parameter' if kind == 'parameter' else 'Module'} or None expected)")
        for store in (self._parameters, self._buffers, self._modules):
            store.pop(name, None)
        if isinstance(value, Module):
            self._modules[name] = value
        elif trainable:
            self._parameters[name] = value
        elif name in self.__dict__.get("_buffer_names", ()):
            self._buffers[name] = value
        else:
            object.__setattr__(self, name, value)
            return
        # Also an ordinary attribute, so reading it skips __getattr__ (a module call reads dozens).
        self.__dict__[name] = value

    def __getattr__(self, name: str) -> Any:
        for store in ("_parameters", "_buffers", "_modules"):
            d = self.__dict__.get(store)
            if d is not None and name in d:
                return d[name]
        raise AttributeError(f"{type(self).__name__} has no attribute {name!r}")

    def __delattr__(self, name: str) -> None:
        for store in (self._parameters, self._buffers, self._modules):
            store.pop(name, None)
        object.__delattr__(self, name)

    def register_buffer(self, name: str, tensor: Tensor | None) -> None:
        """Keep ``tensor`` in the state dict without training it (e.g. the positional-encoding table)."""
        if tensor is not None and not isinstance(tensor, Tensor):
            raise TypeError(f"register_buffer: {name!r} must be a Tensor or None, got {type(tensor).__name__}")
        self.__dict__.setdefault("_buffer_names", set()).add(name)
        self._buffers[name] = self.__dict__[name] = tensor

    def register_parameter(self, name: str, param: Tensor | None) -> None:
        if param is None:
            self._parameters[name] = self.__dict__[name] = None
        else:
            setattr(self, name, param)

    # ------------------------------------------------------------ calling
    def forward(self, *args: Any, **kwargs: Any) -> Any:
        raise NotImplementedError(f"{type(self).__name__}.forward")

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self.forward(*args, **kwargs)

    # ------------------------------------------------------------ traversal
    def named_modules(self, prefix: str = "", remove_duplicate: bool = True) -> Iterator[tuple[str, "Module"]]:
        """Yield (dotted name, module) for this module and all below it, depth first."""
        seen: set[int] = set()
        stack = [(prefix, self)]
        while stack:
            name, mod = stack.pop()
            if remove_duplicate:
                if id(mod) in seen:
                    continue
                seen.add(id(mod))
            yield name, mod
            children = [(f"{name}.{n}" if name else n, m) for n, m in mod._modules.items() if m is not None]
            stack.extend(reversed(children))

    def modules(self) -> Iterator["Module"]:
        return (m for _, m in self.named_modules())

    def children(self) -> Iterator["Module"]:
        return (m for m in self._modules.values() if m is not None)

    def named_children(self) -> Iterator[tuple[str, "Module"]]:
        return ((n, m) for n, m in self._modules.items() if m is not None)

    def named_parameters(self, prefix: str = "") -> Iterator[tuple[str, Tensor]]:
        """Yield (dotted name, parameter), each shared parameter once."""
        seen: set[int] = set()
        for mod_name, mod in self.named_modules(prefix):
            for name, p in mod._parameters.items():
                if p is not None and id(p) not in seen:
                    seen.add(id(p))
                    yield (f"{mod_name}.{name}" if mod_name else name), p

    def parameters(self) -> list[Tensor]:
        return [p for _, p in self.named_parameters()]

    def named_buffers(self, prefix: str = "") -> Iterator[tuple[str, Tensor]]:
        for mod_name, mod in self.named_modules(prefix):
            for name, b in mod._buffers.items():
                if b is not None:
                    yield (f"{mod_name}.{name}" if mod_name else name), b

    def buffers(self) -> list[Tensor]:
        return [b for _, b in self.named_buffers()]

    def num_parameters(self) -> int:
        return sum(p.size for p in self.parameters())

    # ------------------------------------------------------------ modes and grads
    def train(self, mode: bool = True) -> "Module":
        for m in self.modules():
            object.__setattr__(m, "training", mode)
        return self

    def eval(self) -> "Module":
        return self.train(False)

    def zero_grad(self) -> None:
        for p in self.parameters():
            p.grad = None

    def apply(self, fn: Any) -> "Module":
        for m in self.modules():
            fn(m)
        return self

    # ------------------------------------------------------------ state
    def _named_state(self) -> "OrderedDict[str, Tensor]":
        # Every parameter and buffer under every name it has (shared weights appear once per name, like PyTorch).
        out: OrderedDict[str, Tensor] = OrderedDict()
        for mod_name, mod in self.named_modules(remove_duplicate=False):
            for name, t in list(mod._parameters.items()) + list(mod._buffers.items()):
                if t is not None:
                    out[f"{mod_name}.{name}" if mod_name else name] = t
        return out

    def state_dict(self) -> "OrderedDict[str, np.ndarray]":
        """Return name -> array for every parameter and buffer (the arrays are shared, not copied)."""
        return OrderedDict((k, t.data) for k, t in self._named_state().items())

    def load_state_dict(self, state_dict: Mapping[str, Any], strict: bool = True) -> "IncompatibleKeys":
        """Copy arrays into this module's parameters and buffers; nothing is changed if any key is wrong.

        With ``strict`` a missing or unexpected key is an error; a shape mismatch always is.
        Returns the (missing, unexpected) keys.
        """
        own = self._named_state()
        missing = [k for k in own if k not in state_dict]
        unexpected = [k for k in state_dict if k not in own]
        if strict and (missing or unexpected):
            raise KeyError(f"load_state_dict into {type(self).__name__}: missing keys {missing}, "
                           f"unexpected keys {unexpected}")
        values = {k: np.asarray(getattr(state_dict[k], "data", state_dict[k])) for k in own if k in state_dict}
        wrong = [f"{k}: {v.shape} in the state dict, {own[k].shape} in the model"
                 for k, v in values.items() if v.shape != own[k].shape]
        if wrong:
            raise ValueError(f"load_state_dict into {type(self).__name__}: shape mismatch for " + "; ".join(wrong))
        for key, value in values.items():
            own[key].data = value.astype(own[key].dtype, copy=True)
        increment_version([own[k] for k in values], "load_state_dict")  # as PyTorch's in-place copy_ does
        return IncompatibleKeys(missing, unexpected)

    # ------------------------------------------------------------ printing
    def extra_repr(self) -> str:
        return ""

    def __repr__(self) -> str:
        """Print the module tree as PyTorch does: extra_repr, then one indented line per child."""
        extra = self.extra_repr().split("\n") if self.extra_repr() else []
        children = [f"({name}): " + repr(mod).replace("\n", "\n  ") for name, mod in self._modules.items()]
        if not children and len(extra) <= 1:
            return f"{type(self).__name__}({''.join(extra)})"
        return f"{type(self).__name__}(\n  " + "\n  ".join(extra + children) + "\n)"


class IncompatibleKeys(NamedTuple):
    """What ``load_state_dict(strict=False)`` skipped."""

    missing_keys: list[str]
    unexpected_keys: list[str]


class Sequential(Module):
    """Apply modules one after another."""

    def __init__(self, *modules: Module):
        super().__init__()
        named = modules[0].items() if len(modules) == 1 and isinstance(modules[0], Mapping) else \
            ((str(i), m) for i, m in enumerate(modules))
        for name, m in named:
            setattr(self, name, m)

    def forward(self, x: Any) -> Any:
        for m in self._modules.values():
            x = m(x)
        return x

    def __getitem__(self, i: int | slice) -> Module:
        if isinstance(i, slice):
            return Sequential(OrderedDict(list(self._modules.items())[i]))
        return list(self._modules.values())[i]

    def __len__(self) -> int:
        return len(self._modules)

    def __iter__(self) -> Iterator[Module]:
        return iter(self._modules.values())


class ModuleList(Module):
    """A list of modules whose parameters are registered."""

    def __init__(self, modules: Iterable[Module] = ()):
        super().__init__()
        self.extend(modules)

    def append(self, module: Module) -> "ModuleList":
        setattr(self, str(len(self._modules)), module)
        return self

    def extend(self, modules: Iterable[Module]) -> "ModuleList":
        for m in modules:
            self.append(m)
        return self

    def __getitem__(self, i: int | slice) -> Module:
        if isinstance(i, slice):
            return ModuleList(list(self._modules.values())[i])
        return list(self._modules.values())[i]

    def __len__(self) -> int:
        return len(self._modules)

    def __iter__(self) -> Iterator[Module]:
        return iter(self._modules.values())
