"""Fuzzing: random small graphs of the public ops on random broadcastable shapes, checked against finite
differences; random token lines through the CLI's input parser and through ``bbml reverse predict``."""
import io
import sys

import numpy as np
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import mutually_broadcastable_shapes

import from_scratch as fs
import from_scratch.functional as F
from from_scratch import Tensor
from from_scratch.cli import main
from from_scratch.serialization import save
from from_scratch.tasks.reverse import ReverseConfig, TokenLayout, build_model, parse_tokens
from from_scratch.tasks.reverse.checkpoint import write_config
from from_scratch.testing import gradcheck

# ---------------------------------------------------------------- random graphs

# Each op maps (operands, axis) to a tensor. Inputs of log, sqrt, division and pow are kept away from
# their singular points, so finite differences are valid everywhere.
UNARY = {
    "neg": lambda x, ax: -x,
    "exp": lambda x, ax: x.exp(),
    "log": lambda x, ax: (x * x + 0.5).log(),
    "sqrt": lambda x, ax: (x * x + 0.5).sqrt(),
    "abs": lambda x, ax: x.abs(),
    "tanh": lambda x, ax: x.tanh(),
    "sigmoid": lambda x, ax: F.sigmoid(x),
    "relu": lambda x, ax: F.relu(x),
    "gelu": lambda x, ax: F.gelu(x),
    "gelu_tanh": lambda x, ax: F.gelu(x, approximate="tanh"),
    "square": lambda x, ax: x ** 2,
    "clip": lambda x, ax: x.clip(-0.8, 0.8),
    "softmax": lambda x, ax: F.softmax(x, axis=ax if ax is not None else -1) if x.ndim else x,
    "log_softmax": lambda x, ax: F.log_softmax(x, axis=ax if ax is not None else -1) if x.ndim else x,
    "layer_norm": lambda x, ax: F.layer_norm(x) if x.ndim and x.shape[-1] > 1 else x,
    "sum": lambda x, ax: x.sum(axis=ax, keepdims=True),
    "mean": lambda x, ax: x.mean(axis=ax, keepdims=True),
    "max": lambda x, ax: x.max(axis=ax, keepdims=True),
    "min": lambda x, ax: x.min(axis=ax, keepdims=True),
    "var": lambda x, ax: x.var(axis=ax, keepdims=True, correction=0),
}
BINARY = {
    "add": lambda a, b: a + b,
    "sub": lambda a, b: a - b,
    "mul": lambda a, b: a * b,
    "div": lambda a, b: a / (b * b + 0.5),
    "pow": lambda a, b: (F.sigmoid(a) + 0.5) ** b,
    "maximum": lambda a, b: a.maximum(b),
    "minimum": lambda a, b: a.minimum(b),
    "where": lambda a, b: fs.where(a.data > b.data, a, b),
    "masked_fill": lambda a, b: (a + b).masked_fill(a.data > 1.0, -0.25),
}
# The last step may change the shape: every leaf still keeps a gradient path.
FINAL = {
    "identity": lambda x, w: x,
    "flatten": lambda x, w: x.reshape(-1),
    "transpose": lambda x, w: x.T,
    "expand": lambda x, w: x.unsqueeze(0).expand(2, *x.shape) * Tensor(np.array([1.0, -2.0]).reshape(
        (2,) + (1,) * x.ndim), dtype=np.float64),
    "index": lambda x, w: x.reshape(-1)[np.array([0, -1, 0])],  # a repeated index adds up
    "slice": lambda x, w: x.reshape(-1)[::2],
    "cat": lambda x, w: fs.cat([x.reshape(-1), (x * 3).reshape(-1)]),
    "stack": lambda x, w: fs.stack([x, x.exp()], axis=-1 if x.ndim else 0),
    "split": lambda x, w: sum(p.sum() * (i + 1) for i, p in enumerate(x.reshape(-1).split(2))),
    "matmul": lambda x, w: x.reshape(1, -1) @ w[:x.size],
    "linear": lambda x, w: F.linear(x.reshape(1, -1), w[:x.size].T),
}


@st.composite
def graphs(draw):
    shapes = draw(mutually_broadcastable_shapes(num_shapes=3, min_dims=0, max_dims=3, max_side=3))
    steps = []
    for _ in range(draw(st.integers(1, 5))):
        if draw(st.booleans()):
            steps.append(("unary", draw(st.sampled_from(sorted(UNARY))), draw(st.integers(0, 7)),
                          draw(st.integers(-3, 2) | st.none())))
        else:
            steps.append(("binary", draw(st.sampled_from(sorted(BINARY))), draw(st.integers(0, 7)),
                          draw(st.integers(0, 7))))
    return shapes.input_shapes, steps, draw(st.sampled_from(sorted(FINAL))), draw(st.integers(0, 2 ** 16))


def _run(steps, final, leaves, w):
    pool = list(leaves)
    for kind, name, i, arg in steps:
        if kind == "unary":
            x = pool[i % len(pool)]
            axis = None if arg is None or x.ndim == 0 else arg % x.ndim
            pool.append(UNARY[name](x, axis))
        else:
            pool.append(BINARY[name](pool[i % len(pool)], pool[arg % len(pool)]))
    out = pool[-1]
    for t in pool[:len(leaves)]:  # every leaf reaches the output, whatever the steps picked
        out = out + t.sum() * 0.1
    return FINAL[final](out, w)


@settings(max_examples=150, deadline=None)
@given(graph=graphs())
def test_random_graphs_match_finite_differences(graph):
    shapes, steps, final, seed = graph
    rng = np.random.default_rng(seed)
    leaves = [Tensor(rng.standard_normal(s), requires_grad=True, dtype=np.float64) for s in shapes]
    w = Tensor(rng.standard_normal((27, 2)), requires_grad=True, dtype=np.float64)
    with fs.no_grad():
        out = _run(steps, final, leaves, w)
    assume(np.isfinite(out.data).all() and np.abs(out.data).max() < 1e3)
    inputs = [*leaves, w]
    assert gradcheck(lambda *xs: _run(steps, final, xs[:-1], xs[-1]), inputs, eps=1e-6, atol=1e-5, rtol=1e-4)
    for x in leaves:
        assert x.grad is not None and x.grad.shape == x.shape and x.grad.dtype == np.float64


# ---------------------------------------------------------------- the CLI's input parser

LAYOUT = TokenLayout(20)
MAX_LEN = 7
ERRORS = ("unknown token ", "empty input", "sequence of ")
TOKENS = st.one_of(
    st.integers(-3, 22).map(str),  # the edges: PAD, content, SOS, EOS and beyond
    st.integers().map(str),
    st.sampled_from(["+5", "05", "1_0", "٣", "2.5", "1e3", "0x3", "-0", "", "\x00", "nan", "inf", "७", "½", "5;"]),
    st.text(max_size=5),
)
LINES = st.one_of(st.lists(TOKENS, max_size=9).map(" ".join), st.text(max_size=30))


@settings(max_examples=400, deadline=None)
@given(line=LINES)
def test_parser_either_parses_or_raises_one_clear_line(line):
    try:
        ids = parse_tokens(line, LAYOUT, MAX_LEN)
    except ValueError as e:
        message = str(e)
        assert message.startswith(ERRORS) and "\n" not in message and "\r" not in message, message
        return
    parts = line.split()
    assert ids.dtype == np.int64 and 1 <= len(ids) <= MAX_LEN
    assert all(p.isascii() and p.lstrip("+-").isdigit() for p in parts)  # plain whole numbers only
    assert ids.tolist() == [int(p) for p in parts]
    assert ids.min() >= 1 and ids.max() <= LAYOUT.max_content


@settings(max_examples=100, deadline=None)
@given(tokens=st.lists(st.integers() | st.floats() | st.booleans() | st.text(max_size=3), max_size=5))
def test_parser_takes_only_whole_numbers_from_a_list(tokens):
    try:
        ids = parse_tokens(tokens, LAYOUT, MAX_LEN)
    except ValueError as e:
        assert str(e).startswith(ERRORS)
        return
    assert ids.tolist() == [int(t) for t in tokens]
    assert all(not isinstance(t, (bool, float)) for t in tokens)  # never 2.5 -> 2 or True -> 1


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory):
    config = ReverseConfig(hidden_size=8, num_layers=1, num_heads=2, ff_size=16, max_len=4, max_positions=8)
    folder = tmp_path_factory.mktemp("ckpt")
    write_config(str(folder), config)
    save(build_model(config).state_dict(), folder / "model.safetensors")
    return str(folder)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(lines=st.lists(LINES.filter(lambda s: "\n" not in s and "\r" not in s), min_size=1, max_size=4))
def test_predict_on_random_stdin_answers_or_fails_in_one_line(ckpt, capsys, monkeypatch, lines):
    monkeypatch.setattr(sys, "stdin", io.StringIO("".join(line + "\n" for line in lines)))
    status = main(["reverse", "predict", "--ckpt", ckpt])
    out, err = capsys.readouterr()
    if status == 0:
        assert len(out.splitlines()) == len(lines)
        assert all(len(o.split()) <= 8 for o in out.splitlines())  # bounded by the model's positions
    else:
        assert status == 1 and out == ""
        assert err.startswith("bbml: error: stdin line ") and err.count("\n") == 1, err
