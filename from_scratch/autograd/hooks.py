"""Post-accumulate-grad hooks: code to run in a backward once a leaf's gradient is final.

``Tensor.register_post_accumulate_grad_hook`` (PyTorch's name) adds one; the backward walk asks
``last_consumers`` which leaves are complete after each node and calls ``run`` on them.
``DistributedDataParallel`` uses this to start reducing a bucket of gradients while the rest of the
backward pass goes on.
"""
from __future__ import annotations

import weakref
from typing import Any, Callable

__all__ = ["registry", "RemovableHandle", "register", "last_consumers", "run"]

# id(leaf) -> (weak reference to the leaf, its hooks). Weak, so a hook never keeps a parameter alive; keyed
# by id because a Tensor's == is elementwise (a WeakKeyDictionary would call it); the entry goes with the leaf.
registry: dict[int, tuple[weakref.ref, list[Callable]]] = {}


class RemovableHandle:
    """What ``register_post_accumulate_grad_hook`` returns: ``remove()`` unregisters the hook."""

    def __init__(self, hooks: list, hook: Callable) -> None:
        self._hooks, self._hook = hooks, hook

    def remove(self) -> None:
        if self._hook in self._hooks:
            self._hooks.remove(self._hook)


def register(leaf: Any, hook: Callable) -> RemovableHandle:
    if leaf._ctx is not None:
        raise RuntimeError("register_post_accumulate_grad_hook: only a leaf tensor (a parameter) accumulates "
                           f"a gradient; this one was computed by {type(leaf._ctx).__name__}")
    if not callable(hook):
        raise TypeError(f"register_post_accumulate_grad_hook: the hook must be callable, got {type(hook).__name__}")
    key = id(leaf)
    if key not in registry:
        registry[key] = (weakref.ref(leaf, lambda _, key=key: registry.pop(key, None)), [])
    hooks = registry[key][1]
    hooks.append(hook)
    return RemovableHandle(hooks, hook)


def last_consumers(order: list) -> dict:
    """Map a node to the hooked leaves it is the last consumer of in the backward walk (which runs
    ``order`` backwards): once that node's backward has run, those leaves' gradients are final."""
    last: dict = {}
    for node in reversed(order):
        for p in node._ctx.parents:
            if p._ctx is None and p.requires_grad and id(p) in registry:
                last[p] = node
    out: dict = {}
    for leaf, node in last.items():
        out.setdefault(node, []).append(leaf)
    return out


def run(leaves: list) -> None:
    """Call every hook of each leaf with the leaf."""
    for leaf in leaves:
        for hook in list(registry[id(leaf)][1]) if id(leaf) in registry else ():
            hook(leaf)
