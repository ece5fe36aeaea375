"""Module and Parameter: registration by assignment, traversal, modes, state dicts, printing."""
from __future__ import annotations

from collections import OrderedDict
from typing import Any, Callable, Iterator, Mapping, NamedTuple

import numpy as np

from .. import backend
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
        if isinstance(value, Module):
            target = self._modules
        elif trainable:
            target = self._parameters
        elif name in self.__dict__.get("_buffer_names", ()):
            target = self._buffers
        else:
            target = None
        for store in (self._parameters, self._buffers, self._modules):
            if store is not target:
                store.pop(name, None)
        if target is None:
            object.__setattr__(self, name, value)
            return
        target[name] = value  # a name assigned again keeps its place in the order, as in PyTorch
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

    def add_module(self, name: str, module: "Module | None") -> None:
        """Register ``module`` as the child ``name`` (what ``setattr`` does, with PyTorch's checks on the name)."""
        if not isinstance(name, str):
            raise TypeError(f"{type(self).__name__}.add_module: the name must be a str, got {type(name).__name__}")
        if not name or "." in name:
            raise KeyError(f"{type(self).__name__}.add_module: the name {name!r} must be non-empty and have no '.'")
        if hasattr(self, name) and name not in self._modules:
            raise KeyError(f"{type(self).__name__}.add_module: attribute {name!r} already exists")
        if module is not None and not isinstance(module, Module):
            raise TypeError(f"{type(self).__name__}.add_module: {name!r} must be a Module or None, "
                            f"got {type(module).__name__}")
        if module is None:
            self._modules[name] = self.__dict__[name] = None
        else:
            setattr(self, name, module)

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
        """Yield (dotted name, module) for this module and all below it, depth first, parents before
        children, names under ``prefix``; a module reached twice is yielded once unless
        ``remove_duplicate=False`` (PyTorch's order and rule)."""
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
        return (m for _, m in self.named_children())

    def named_children(self) -> Iterator[tuple[str, "Module"]]:
        """Yield (name, module) for each direct child, a module held under two names once."""
        seen: set[int] = set()
        for name, m in self._modules.items():
            if m is not None and id(m) not in seen:
                seen.add(id(m))
                yield name, m

    def named_parameters(self, prefix: str = "", recurse: bool = True,
                         remove_duplicate: bool = True) -> Iterator[tuple[str, Tensor]]:
        """Yield (dotted name, parameter), each shared parameter once unless ``remove_duplicate=False``;
        only this module's own with ``recurse=False``."""
        seen: set[int] = set()
        mods = self.named_modules(prefix, remove_duplicate) if recurse else [(prefix, self)]
        for mod_name, mod in mods:
            for name, p in mod._parameters.items():
                if p is not None and not (remove_duplicate and id(p) in seen):
                    seen.add(id(p))
                    yield (f"{mod_name}.{name}" if mod_name else name), p

    def parameters(self, recurse: bool = True) -> list[Tensor]:
        return [p for _, p in self.named_parameters(recurse=recurse)]

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

    def requires_grad_(self, requires_grad: bool = True) -> "Module":
        """Switch gradient recording for every parameter (False freezes them); returns self."""
        for p in self.parameters():
            p.requires_grad_(requires_grad)
        return self

    def apply(self, fn: Callable[["Module"], Any]) -> "Module":
        """Call ``fn`` on every sub-module, children first and then self, as PyTorch does
        (e.g. ``model.apply(init_weights)``); returns self."""
        for m in self.children():
            m.apply(fn)
        fn(self)
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
        values = {k: _state_array(state_dict[k]) for k in own if k in state_dict}
        wrong = [f"{k}: {v.shape} in the state dict, {own[k].shape} in the model"
                 for k, v in values.items() if v.shape != own[k].shape]
        if wrong:
            raise ValueError(f"load_state_dict into {type(self).__name__}: shape mismatch for " + "; ".join(wrong))
        for key, value in values.items():  # onto the device of the tensor it fills, as PyTorch's copy_
            own[key].data = backend.to_device(value, own[key].device).astype(own[key].dtype, copy=True)
        increment_version([own[k] for k in values], "load_state_dict")  # as PyTorch's in-place copy_ does
        return IncompatibleKeys(missing, unexpected)

    # ------------------------------------------------------------ devices
    def to(self, *args: Any, device: Any = None, dtype: Any = None) -> "Module":
        """``to(device)``, ``to(dtype)``, ``to(device, dtype)`` (or keywords), in place, as PyTorch's: move
        every parameter and buffer (and gradient) to ``device``, and cast the floating ones to ``dtype``
        (integer buffers such as ``num_batches_tracked`` keep theirs). Each tensor keeps its identity, so
        an optimizer made before ``to`` keeps working. Returns self.

        Raises the backend's error (``cuda`` without CuPy or a GPU) before anything has moved, TypeError
        for a dtype that is not floating; every copy is made before any tensor changes, so a copy that fails
        (out of memory) leaves the module as it was."""
        for arg in args:
            if backend.is_device_spec(arg):
                device = arg
            else:
                dtype = arg
        if dtype is not None:
            dtype = np.dtype(dtype)
            if dtype.kind != "f":
                raise TypeError(f"{type(self).__name__}.to: only floating dtypes, as in PyTorch; got {dtype}")
        if device is not None:
            device = backend.device(device)
            backend.device_module(device)  # fails here if the device is unusable
        tensors = list({id(t): t for t in self._named_state().values()}.values())  # shared ones once
        moved = [(_moved(t.data, device, dtype), None if t.grad is None else _moved(t.grad, device, dtype))
                 for t in tensors]
        for t, (data, grad) in zip(tensors, moved):
            t.data, t.grad = data, grad
        return self

    def double(self) -> "Module":
        """Cast every floating parameter and buffer to float64 (``to(np.float64)``)."""
        return self.to(dtype=np.float64)

    def float(self) -> "Module":
        """Cast every floating parameter and buffer to float32 (``to(np.float32)``)."""
        return self.to(dtype=np.float32)

    def cpu(self) -> "Module":
        """``to("cpu")``."""
        return self.to("cpu")

    def cuda(self, device: int | str | None = None) -> "Module":
        """``to("cuda")``, or to GPU ``device`` (an index or ``"cuda:N"``)."""
        return self.to(f"cuda:{device}" if isinstance(device, int) else (device or "cuda"))

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


def _moved(array: Any, device: Any, dtype: Any) -> Any:
    """``array`` on ``device`` (None: where it is) and, if floating, in ``dtype`` (None: its own)."""
    if device is not None:
        array = backend.to_device(array, device)
    if dtype is not None and array.dtype.kind == "f" and array.dtype != dtype:
        array = array.astype(dtype)
    return array


def _state_array(value: Any) -> Any:
    """A state-dict entry (array, Tensor, list) as an array, where it lives (host data on the host)."""
    value = value.data if isinstance(value, Tensor) else value
    return value if backend.is_array(value) else np.asarray(value)  # host: a list or number


class IncompatibleKeys(NamedTuple):
    """What ``load_state_dict(strict=False)`` skipped."""

    missing_keys: list[str]
    unexpected_keys: list[str]
