"""The backward walk: visit the graph's nodes parents-last and hand each op's gradients to its inputs."""
from __future__ import annotations

from typing import Any

import numpy as np

from . import hooks
from .function import InplaceClock, _check_finite, _GradMode
from .inplace import check_saved_versions


def run_backward(root: Any, grad: np.ndarray, retain_graph: bool = False) -> None:
    """Back-propagate ``grad`` (dL/d root) through the graph below ``root``, into the leaves' ``.grad``;
    free each op's saved arrays after use unless ``retain_graph``."""
    anomaly = _GradMode.anomaly
    grads = {root: grad}  # pending gradient of each non-leaf (Tensors hash by identity)
    owned = set()  # the tensors whose pending gradient is a sum made here, safe to add into in place
    order = topological_order(root)
    hooked = hooks.last_consumers(order) if hooks.registry else {}  # node -> leaves whose gradient is final after it
    for node in reversed(order):
        g = grads.pop(node, None)
        if g is None:  # every consumer returned None for it
            if node in hooked:
                hooks.run(hooked[node])
            continue
        ctx = node._ctx
        in_grads = ctx.backward(g)
        if type(in_grads) is not tuple:
            in_grads = (in_grads,)
        if anomaly:
            _check_finite(type(ctx).__name__, "backward", *in_grads)
        fresh = ctx.fresh_grads
        for parent, pg in zip(ctx.parents, in_grads):
            if pg is None or not parent.requires_grad:
                continue
            if pg.shape != parent.data.shape:
                raise RuntimeError(f"{type(ctx).__name__}.backward returned a gradient of shape "
                                   f"{pg.shape} for an input of shape {parent.data.shape}")
            if parent._ctx is None:
                parent._accumulate(pg, fresh)
            elif parent not in grads:  # unless fresh, pg may be a view or shared: never written into
                grads[parent] = pg
                if fresh:
                    owned.add(parent)
            elif parent in owned:
                grads[parent] += pg
            else:
                grads[parent] = grads[parent] + pg
                owned.add(parent)
        if not retain_graph:
            ctx.release()
        if node in hooked:
            hooks.run(hooked[node])


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
