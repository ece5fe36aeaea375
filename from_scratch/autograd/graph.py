"""The backward walk: visit the graph's nodes parents-last and hand each op's gradients to its inputs."""
from __future__ import annotations

from typing import Any

import numpy as np

from . import hooks
from .function import GradMode, InplaceClock, check_finite
from .inplace import check_saved_versions


def run_backward(root: Any, grad: np.ndarray, retain_graph: bool = False) -> None:
    """Back-propagate ``grad`` (dL/d root) through the graph below ``root``, into the leaves' ``.grad``;
    free each op's saved arrays after use unless ``retain_graph``."""
    order = topological_order(root)  # parents before the nodes made from them
    pending = GradientSums(root, grad)
    hooked = hooks.last_consumers(order) if hooks.registry else {}  # node -> leaves whose gradient is final after it
    for node in reversed(order):  # from the root down: a node's gradient is complete when its turn comes
        g = pending.pop(node)
        if g is not None:  # (None: every consumer returned None for it)
            ctx = node._ctx
            in_grads = ctx.backward(g)  # the chain rule, one op at a time
            in_grads = in_grads if type(in_grads) is tuple else (in_grads,)
            if GradMode.anomaly:
                check_finite(type(ctx).__name__, "backward", *in_grads)
            for parent, pg in zip(ctx.parents, in_grads):
                if pg is not None and parent.requires_grad:
                    pending.add(parent, pg, ctx)
            if not retain_graph:
                ctx.release()
        if node in hooked:
            hooks.run(hooked[node])


class GradientSums:
    """The gradient each tensor has received so far in one backward walk: a non-leaf's is pending
    until its turn, a leaf's is added into ``.grad`` at once.

    The engine's one memory optimisation lives here, and only here: the gradients an op returns are
    kept without a copy, and added into in place once they are a sum made here. A gradient may be a
    view of another array or returned for two inputs, so it is never written into unless it is
    ``owned`` (a sum made here) or its op says ``fresh_grads`` (every array new and unshared). A
    custom op needs neither: ``fresh_grads`` is False by default, which is always safe.
    """

    def __init__(self, root: Any, grad: np.ndarray):
        self.pending = {root: grad}  # Tensors hash by identity
        self.owned: set = set()

    def pop(self, node: Any) -> np.ndarray | None:
        return self.pending.pop(node, None)

    def add(self, tensor: Any, g: np.ndarray, ctx: Any) -> None:
        if g.shape != tensor.data.shape:
            raise RuntimeError(f"{type(ctx).__name__}.backward returned a gradient of shape "
                               f"{g.shape} for an input of shape {tensor.data.shape}")
        if tensor._ctx is None:
            accumulate_leaf(tensor, g, ctx.fresh_grads)
        elif tensor not in self.pending:
            self.pending[tensor] = g
            if ctx.fresh_grads:
                self.owned.add(tensor)
        elif tensor in self.owned:
            self.pending[tensor] += g
        else:
            self.pending[tensor] = self.pending[tensor] + g
            self.owned.add(tensor)


def accumulate_leaf(leaf: Any, g: np.ndarray, fresh: bool = False) -> None:
    """Add ``g`` into a leaf's ``.grad``: its own copy the first time, unless ``g`` is fresh (see above)."""
    if leaf.grad is None:
        leaf.grad = g if fresh and g.dtype == leaf.data.dtype else g.astype(leaf.data.dtype, copy=True)
    else:
        leaf.grad += g


def topological_order(root: Any) -> list:
    """Return the graph's non-leaf nodes parents-first: a depth-first walk with an explicit stack
    of (node, iterator over its parents), so deep graphs need no recursion."""
    order: list = []
    visited, stack = {root}, [(root, iter(parents_of(root)))]
    while stack:
        node, parents = stack[-1]
        for p in parents:
            if p._ctx is not None and p.requires_grad and p not in visited:
                visited.add(p)
                stack.append((p, iter(parents_of(p))))
                break
        else:  # all parents are placed: the node follows them
            stack.pop()
            order.append(node)
    return order


def parents_of(node: Any) -> tuple:
    ctx = node._ctx
    if ctx.released:
        raise RuntimeError("backward: trying to back-propagate through a graph a second time; "
                           "its saved arrays were freed (use backward(retain_graph=True) the first time)")
    if ctx.stamp < InplaceClock.now:  # something changed in place since this op ran
        check_saved_versions(node, ctx)
    return ctx.parents
