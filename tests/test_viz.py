"""viz.to_dot: the DOT text names every op and tensor, marks what needs grad, and runs nothing."""
from __future__ import annotations

import re

import numpy as np
import pytest

from from_scratch import Tensor
from from_scratch.viz import to_dot

NODE = re.compile(r"^  (\w+) \[(.*)\];$")
EDGE = re.compile(r"^  (\w+) -> (\w+);$")


def parse(dot: str) -> tuple[dict[str, str], list[tuple[str, str]]]:
    """Return {node: attributes} and the edges, checking every line is a node, an edge or a header."""
    lines = dot.strip().splitlines()
    assert lines[0] == "digraph {" and lines[-1] == "}"
    nodes, edges = {}, []
    for line in lines[1:-1]:
        if line.strip().startswith(("rankdir=", "node [")):
            continue
        if m := EDGE.match(line):
            edges.append(m.groups())
        elif m := NODE.match(line):
            assert m.group(1) not in nodes, f"node {m.group(1)} defined twice"
            nodes[m.group(1)] = m.group(2)
        else:
            raise AssertionError(f"not a node or an edge: {line!r}")
    for a, b in edges:
        assert a in nodes and b in nodes, f"edge {a} -> {b} names an undefined node"
    return nodes, edges


def label(attrs: str) -> str:
    return re.search(r'label="((?:[^"\\]|\\.)*)"', attrs).group(1)


def ops(nodes: dict[str, str]) -> list[str]:
    return sorted(label(a) for a in nodes.values() if "shape=ellipse" in a)


def test_ops_shapes_and_grad_flags():
    w = Tensor(np.ones((3, 2)), requires_grad=True)
    x = Tensor(np.ones((4, 3)))
    loss = (x @ w).tanh().sum()
    nodes, edges = parse(to_dot(loss, names={"w": w, "x": x}))
    assert ops(nodes) == ["MatMul", "Sum", "Tanh"]
    tensors = [a for a in nodes.values() if "shape=box" in a]
    assert len(tensors) == 5  # x, w, x @ w, tanh, the sum
    (w_attrs,) = [a for a in tensors if label(a).startswith("w\\n")]
    (x_attrs,) = [a for a in tensors if label(a).startswith("x\\n")]
    assert "(3, 2) float32" in label(w_attrs) and "requires_grad" in label(w_attrs)
    assert "#cfe8ff" in w_attrs  # needs grad: blue
    assert "(4, 3) float32" in label(x_attrs) and "requires_grad" not in label(x_attrs)
    assert "white" in x_attrs
    assert sum("(4, 2) float32" in label(a) and "rounded" in a for a in tensors) == 2  # x @ w, tanh
    # Each op has one edge out and one per input: MatMul 2 + 1, Tanh 1 + 1, Sum 1 + 1.
    assert len(edges) == 7


def test_reads_the_graph_without_running_backward():
    a = Tensor(2.0, requires_grad=True)
    out = a * 3 + a
    to_dot(out)
    assert a.grad is None
    out.backward()  # the graph is intact: to_dot freed nothing
    assert a.grad == pytest.approx(4.0)
    with pytest.raises(RuntimeError, match="freed by backward"):
        to_dot(out)


def test_shared_input_is_one_node_with_two_edges():
    a = Tensor([1.0, 2.0], requires_grad=True)
    nodes, edges = parse(to_dot(a * a, names={"a": a}))
    (a_node,) = [n for n, attrs in nodes.items() if label(attrs).startswith("a\\n")]
    assert [e for e in edges if e[0] == a_node] == [(a_node, "t0_op")] * 2


def test_leaf_alone_and_scalar_values():
    nodes, edges = parse(to_dot(Tensor(1.5, requires_grad=True)))
    assert edges == [] and len(nodes) == 1
    assert label(next(iter(nodes.values()))) == "1.5\\nscalar float32\\nrequires_grad"


def test_deep_graph_needs_no_recursion():
    x = Tensor(1.0, requires_grad=True)
    y = x
    for _ in range(3000):
        y = y + 1.0
    nodes, _ = parse(to_dot(y))
    assert ops(nodes).count("Add") == 3000


def test_quotes_in_names_are_escaped_and_type_is_checked():
    a = Tensor([1.0], requires_grad=True)
    nodes, _ = parse(to_dot(a.exp(), names={'say "hi"': a}))
    assert any(label(attrs).startswith('say \\"hi\\"') for attrs in nodes.values())
    with pytest.raises(TypeError, match="expected a Tensor"):
        to_dot(np.ones(3))

