"""Draw the computation graph behind a tensor as Graphviz DOT text."""
from __future__ import annotations

from typing import Mapping

from .autograd.tensor import Tensor

__all__ = ["to_dot"]


def _quote(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'


def _tensor_label(t: Tensor, name: str | None) -> str:
    lines = [name] if name else []
    if t.size == 1:  # small enough to show the value itself
        lines.append(f"{t.data.item():.4g}")
    lines.append(f"{'scalar' if t.ndim == 0 else t.shape} {t.dtype}")
    if t.requires_grad and t._ctx is None:
        lines.append("requires_grad")
    return "\n".join(lines)


def to_dot(tensor: Tensor, names: Mapping[str, Tensor] | None = None, rankdir: str = "LR") -> str:
    """Return DOT text for the graph that produced ``tensor``: op nodes, tensor shapes, which need grad.

    The graph is read from each tensor's ``_ctx`` (the op that made it) and ``_ctx.parents``;
    nothing is run. ``names`` labels tensors, e.g. ``dict(model.named_parameters())``.
    Tensors that need grad are blue; leaves (inputs, parameters) are square boxes, op outputs
    rounded ones, ops ellipses. Render with ``dot -Tpng graph.dot -o graph.png``.
    """
    if not isinstance(tensor, Tensor):
        raise TypeError(f"to_dot: expected a Tensor, got {type(tensor).__name__}")
    label_of = {id(t): n for n, t in (names or {}).items()}
    ids: dict[int, str] = {}

    def node_id(t: Tensor) -> str:
        return ids.setdefault(id(t), f"t{len(ids)}")

    lines = ["digraph {", f"  rankdir={rankdir};", '  node [fontname="Helvetica", fontsize=10];']
    drawn: set[int] = set()
    stack = [tensor]
    while stack:  # depth-first with an explicit stack: deep graphs need no recursion
        t = stack.pop()
        if id(t) in drawn:
            continue
        drawn.add(id(t))
        node, ctx = node_id(t), t._ctx
        style = "filled,rounded" if ctx is not None else "filled"
        color = "#cfe8ff" if t.requires_grad else "white"  # blue: gradients flow into this tensor
        lines.append(f"  {node} [shape=box, style=\"{style}\", fillcolor=\"{color}\", "
                     f"label={_quote(_tensor_label(t, label_of.get(id(t))))}];")
        if ctx is None:
            continue
        if ctx.released:
            raise RuntimeError("to_dot: the graph was freed by backward(); call to_dot before backward "
                               "or use backward(retain_graph=True)")
        op = f"{node}_op"
        lines.append(f"  {op} [shape=ellipse, label={_quote(type(ctx).__name__)}];")
        lines.append(f"  {op} -> {node};")
        for parent in ctx.parents:
            lines.append(f"  {node_id(parent)} -> {op};")
            stack.append(parent)
    lines.append("}")
    return "\n".join(lines) + "\n"
