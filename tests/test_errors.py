"""Bad input, collected in one place: every mistake gets an exception whose one-line message names what is
wrong (the op, the shapes, the axis, the value), never a wrong answer or a deep traceback.

Each case is (thunk, exception type, fragments the message must contain). The CLI cases run ``bbml`` as a
process: one line on stderr, a non-zero exit status, no traceback.
"""
import subprocess
import sys

import numpy as np
import pytest

import from_scratch as fs
import from_scratch.functional as F
from from_scratch import Tensor, nn, optim
from from_scratch.serialization import save
from from_scratch.tasks.reverse import ReverseConfig, build_model
from from_scratch.tasks.reverse.checkpoint import write_config


def x23(requires_grad=False):
    return Tensor(np.ones((2, 3)), requires_grad=requires_grad)


def x4():
    return Tensor(np.ones(4))


def case(id, thunk, exc, *fragments):
    return pytest.param(thunk, exc, fragments, id=id)


# ---------------------------------------------------------------- shapes that do not fit

SHAPES = [
    case("add", lambda: x23() + x4(), ValueError, "add: (2, 3) + (4,)", "cannot broadcast"),
    case("radd-ndarray", lambda: np.ones(4) + x23(), ValueError, "add: (4,) + (2, 3)"),
    case("sub", lambda: x23() - x4(), ValueError, "sub: (2, 3) - (4,)"),
    case("rsub-ndarray", lambda: np.ones(4) - x23(), ValueError, "sub: (4,) - (2, 3)"),
    case("mul", lambda: x23() * x4(), ValueError, "mul: (2, 3) * (4,)"),
    case("div", lambda: x23() / x4(), ValueError, "div: (2, 3) / (4,)"),
    case("rdiv-ndarray", lambda: np.ones(4) / x23(), ValueError, "div: (4,) / (2, 3)"),
    case("pow", lambda: x23() ** x4(), ValueError, "pow: (2, 3) ** (4,)"),
    case("maximum", lambda: x23().maximum(x4()), ValueError, "maximum: (2, 3) and (4,)"),
    case("minimum", lambda: x23().minimum(x4()), ValueError, "minimum: (2, 3) and (4,)"),
    case("eq", lambda: x23() == x4(), ValueError, "(2, 3) == (4,)", "cannot broadcast"),
    case("ne", lambda: x23() != x4(), ValueError, "(2, 3) != (4,)"),
    case("lt", lambda: x23() < x4(), ValueError, "(2, 3) < (4,)"),
    case("le", lambda: x23() <= x4(), ValueError, "(2, 3) <= (4,)"),
    case("gt", lambda: x23() > x4(), ValueError, "(2, 3) > (4,)"),
    case("ge", lambda: x23() >= x4(), ValueError, "(2, 3) >= (4,)"),
    case("where", lambda: fs.where(np.ones((2, 3), bool), x23(), x4()), ValueError,
         "where: condition (2, 3), (2, 3), (4,)"),
    case("masked_fill", lambda: x23().masked_fill(np.ones(4, bool), 0.0), ValueError, "condition (4,)", "(2, 3)"),
    case("matmul-inner", lambda: Tensor(np.ones((16, 10, 64))) @ Tensor(np.ones((32, 64))), ValueError,
         "matmul: (16, 10, 64) @ (32, 64): inner dimensions 64 and 32 differ"),
    case("matmul-vectors", lambda: Tensor(np.ones(3)) @ x4(), ValueError, "matmul: (3,) @ (4,)"),
    case("matmul-batch", lambda: Tensor(np.ones((2, 3, 4))) @ Tensor(np.ones((5, 4, 2))), ValueError,
         "matmul: (2, 3, 4) @ (5, 4, 2): batch dimensions cannot broadcast"),
    case("matmul-scalar", lambda: Tensor(2.0) @ Tensor(np.ones(3)), ValueError, "matmul: () @ (3,)"),
    case("rmatmul-ndarray", lambda: np.ones((2, 5)) @ x23(), ValueError, "matmul: (2, 5) @ (2, 3)"),
    case("cat", lambda: fs.cat([x23(), Tensor(np.ones((2, 4)))]), ValueError, "cat: shapes (2, 3), (2, 4)"),
    case("stack", lambda: fs.stack([x23(), x4()]), ValueError, "stack: shapes (2, 3), (4,) differ"),
    case("reshape", lambda: x23().reshape(4, 2), ValueError, "reshape: cannot reshape (2, 3) (6 elements) to (4, 2)"),
    case("expand", lambda: x23().expand(4, 3), ValueError, "expand: cannot broadcast (2, 3) to (4, 3)"),
    case("permute", lambda: x23().permute(0, 0), ValueError, "permute: (0, 0) is not a permutation", "(2, 3)"),
    case("getitem", lambda: x23()[5], IndexError, "getitem:", "index 5", "(tensor shape (2, 3))"),
    case("linear", lambda: F.linear(x23(), Tensor(np.ones((4, 5)))), ValueError,
         "linear: input of shape (2, 3) has 3 features, weight of shape (4, 5) expects 5"),
    case("nn.Linear", lambda: nn.Linear(5, 4)(x23()), ValueError, "linear:", "(2, 3)", "(4, 5)"),
    case("nn.LayerNorm", lambda: nn.LayerNorm(5)(x23()), ValueError, "LayerNorm: input of shape (2, 3)", "(5,)"),
    case("LSTMCell", lambda: nn.LSTMCell(5, 4)(x23()), ValueError, "LSTMCell: input of shape (2, 3)", "(batch, 5)"),
    case("mse_loss", lambda: F.mse_loss(x23(), np.ones(3)), ValueError,
         "mse_loss: input of shape (2, 3) and target of shape (3,) differ"),
    case("bce", lambda: F.binary_cross_entropy(x23() * 0.5, np.ones((3, 2))), ValueError,
         "binary_cross_entropy: input of shape (2, 3) and target of shape (3, 2) differ"),
    case("bce-logits", lambda: F.binary_cross_entropy_with_logits(x23(), np.ones((2, 1))), ValueError,
         "binary_cross_entropy_with_logits: input of shape (2, 3) and target of shape (2, 1) differ"),
    case("cross_entropy", lambda: F.cross_entropy(x23(), np.array([0, 1, 2])), ValueError,
         "cross_entropy: logits of shape (2, 3) need targets of shape (2,), got (3,)"),
    case("backward-grad-shape", lambda: (x23(True) * 2).backward(np.ones(4)), ValueError,
         "backward: grad of shape (4,) for a tensor of shape (2, 3)"),
]


# ---------------------------------------------------------------- axes that do not exist

AXES = [
    case("sum", lambda: x23().sum(axis=2), ValueError, "sum: axis 2 is out of range for a tensor of shape (2, 3)"),
    case("sum-tuple", lambda: x23().sum(axis=(0, -3)), ValueError, "sum: axis -3", "(2, 3)"),
    case("sum-repeated", lambda: x23().sum(axis=(1, -1)), ValueError, "sum:", "(1, -1)", "(2, 3)"),
    case("mean", lambda: x23().mean(axis=5), ValueError, "mean: axis 5", "(2, 3)"),
    case("var", lambda: x23().var(axis=2), ValueError, "var: axis 2", "(2, 3)"),
    case("std", lambda: x23().std(axis=-3), ValueError, "var: axis -3", "(2, 3)"),
    case("max", lambda: x23().max(axis=2), ValueError, "max: axis 2", "(2, 3)"),
    case("min", lambda: x23().min(axis=(0, 2)), ValueError, "min: axis 2", "(2, 3)"),
    case("argmax", lambda: x23().argmax(3), ValueError, "argmax: axis 3", "(2, 3)"),
    case("softmax", lambda: F.softmax(x23(), axis=2), ValueError, "softmax: axis 2", "(2, 3)"),
    case("log_softmax", lambda: F.log_softmax(x23(), axis=-3), ValueError, "log_softmax: axis -3", "(2, 3)"),
    case("cat-axis", lambda: fs.cat([x23(), x23()], axis=2), ValueError, "cat: axis 2", "(2, 3)"),
    case("stack-axis", lambda: fs.stack([x23(), x23()], axis=4), ValueError, "stack: axis 4", "(2, 3)"),
    case("squeeze", lambda: x23().squeeze(2), ValueError, "squeeze: axis 2", "(2, 3)"),
    case("unsqueeze", lambda: x23().unsqueeze(3), ValueError, "unsqueeze: axis 3", "(2, 3)"),
    case("unsqueeze-negative", lambda: x23().unsqueeze(-4), ValueError, "unsqueeze: axis -4", "(2, 3)"),
    case("transpose", lambda: x23().transpose(0, 2), ValueError, "transpose: axis 2", "(2, 3)"),
    case("flatten", lambda: x23().flatten(0, 2), ValueError, "flatten: axis 2", "(2, 3)"),
    case("split", lambda: x23().split(1, axis=2), ValueError, "split: axis 2", "(2, 3)"),
    case("chunk", lambda: x23().chunk(2, axis=-3), ValueError, "chunk: axis -3", "(2, 3)"),
]


# ---------------------------------------------------------------- autograd and dtypes

AUTOGRAD = [
    case("backward-non-scalar", lambda: (x23(True) * 2).backward(), RuntimeError,
         "backward: grad can be implied only for a one-element tensor", "(2, 3)", "grad="),
    case("backward-no-graph", lambda: x23().sum().backward(), RuntimeError, "does not require grad"),
    case("requires_grad-int", lambda: Tensor([1, 2], requires_grad=True), TypeError,
         "requires_grad=True needs floating data, got dtype int64"),
    case("requires_grad-bool", lambda: Tensor([True]).requires_grad_(), TypeError, "floating data", "bool"),
    case("requires_grad-int-zeros", lambda: fs.zeros(3, dtype=np.int32, requires_grad=True), TypeError,
         "floating data", "int32"),
    case("Parameter-int", lambda: nn.Parameter(np.arange(3)), TypeError, "floating data", "int64"),
    case("string-data", lambda: Tensor("abc"), TypeError, "cannot hold data of dtype <U3"),
]


# ---------------------------------------------------------------- values out of range

def _ids_model():
    fs.manual_seed(0)
    return nn.Transformer(vocab_size=10, hidden_size=8, num_layers=1, num_heads=2, ff_size=16, max_len=6)


VALUES = [
    case("cross_entropy-target-high", lambda: F.cross_entropy(x23(), np.array([0, 3])), IndexError,
         "cross_entropy: target value 3 is outside [0, 3)"),
    case("cross_entropy-target-negative", lambda: F.cross_entropy(x23(), np.array([-1, 0]), ignore_index=-100),
         IndexError, "cross_entropy: target value -1 is outside [0, 3)"),
    case("cross_entropy-float-target", lambda: F.cross_entropy(x23(), np.array([0.0, 1.0])), TypeError,
         "cross_entropy: targets must be integers, got dtype float64"),
    case("nll_loss-target", lambda: F.nll_loss(x23(), np.array([0, 7])), IndexError,
         "nll_loss: target value 7 is outside [0, 3)"),
    case("bce-probabilities", lambda: F.binary_cross_entropy(x23() * 1.5, np.ones((2, 3))), ValueError,
         "binary_cross_entropy: input probabilities must lie in [0, 1]"),
    case("embedding-id-high", lambda: F.embedding(np.array([1, 4]), Tensor(np.ones((4, 3)))), IndexError,
         "embedding: id 4 is outside the table of 4 rows [0, 4)"),
    case("nn.Embedding-id-negative", lambda: nn.Embedding(5, 3)(np.array([[2, -1]])), IndexError,
         "embedding: id -1 is outside the table of 5 rows"),
    case("embedding-float-ids", lambda: nn.Embedding(5, 3)(np.array([1.0])), TypeError,
         "embedding: ids must be integers, got dtype float64"),
    case("positional-table", lambda: nn.PositionalEncoding(8, max_len=5)(Tensor(np.ones((1, 6, 8)))), ValueError,
         "PositionalEncoding: a sequence of length 6 is longer than max_len 5"),
    case("transformer-long-source", lambda: _ids_model()(np.ones((1, 7), np.int64), np.ones((1, 2), np.int64)),
         ValueError, "length 7 is longer than max_len 6"),
    case("transformer-token-id", lambda: _ids_model()(np.full((1, 3), 10), np.ones((1, 2), np.int64)),
         IndexError, "embedding: id 10 is outside the table of 10 rows"),
]


# ---------------------------------------------------------------- layers and attention

def _mha_with_mask(mask_shape):
    fs.manual_seed(0)
    x = Tensor(np.ones((2, 5, 8)))
    return nn.MultiHeadAttention(8, 2)(x, x, x, mask=Tensor(np.zeros(mask_shape)))


LAYERS = [
    case("heads-divide-hidden", lambda: nn.MultiHeadAttention(10, 4), ValueError,
         "hidden_size 10 is not divisible by num_heads 4"),
    case("transformer-heads", lambda: nn.Transformer(20, 10, 1, 4, 16, 8), ValueError,
         "hidden_size 10 is not divisible by num_heads 4"),
    case("mask-batch", lambda: _mha_with_mask((3, 1, 1, 5)), ValueError,
         "mask of shape (3, 1, 1, 5) does not broadcast to scores of shape (2, 2, 5, 5)"),
    case("mask-keys", lambda: _mha_with_mask((1, 1, 5, 4)), ValueError, "mask of shape (1, 1, 5, 4)",
         "(2, 2, 5, 5)"),
    case("sdpa-mask", lambda: F.scaled_dot_product_attention(x23(), x23(), x23(), mask=np.zeros((3, 3))), ValueError,
         "mask of shape (3, 3) does not broadcast to scores of shape (2, 2)"),
    case("attention-shapes", lambda: F.scaled_dot_product_attention(x23(), Tensor(np.ones((2, 4))), x23()),
         ValueError, "queries (2, 3), keys (2, 4) and values (2, 3)"),
    case("dropout-p", lambda: nn.Dropout(1.5)(x23()), ValueError, "p must be in [0, 1], got 1.5"),
]


# ---------------------------------------------------------------- state dicts and optimizers

def _mlp():
    fs.manual_seed(0)
    return nn.Sequential(nn.Linear(3, 4), nn.ReLU(), nn.Linear(4, 2))


def _state(drop=(), **extra):
    return {**{k: v for k, v in _mlp().state_dict().items() if k not in drop}, **extra}


STATE = [
    case("missing-key", lambda: _mlp().load_state_dict(_state(drop=["2.bias"])), KeyError,
         "missing keys ['2.bias']"),
    case("unexpected-key", lambda: _mlp().load_state_dict(_state(extra=np.ones(2))), KeyError,
         "unexpected keys ['extra']"),
    case("mis-shaped", lambda: _mlp().load_state_dict(_state(**{"0.weight": np.ones((3, 4))})), ValueError,
         "shape mismatch for 0.weight: (3, 4) in the state dict, (4, 3) in the model"),
    case("mis-shaped-non-strict", lambda: _mlp().load_state_dict({"2.bias": np.ones(3)}, strict=False), ValueError,
         "2.bias: (3,) in the state dict, (2,) in the model"),
    case("SGD-no-params", lambda: optim.SGD([], lr=0.1), ValueError, "empty parameter list"),
    case("Adam-no-params", lambda: optim.Adam(nn.ReLU().parameters()), ValueError, "empty parameter list"),
    case("AdamW-no-params", lambda: optim.AdamW(p for p in []), ValueError, "empty parameter list"),
    case("SGD-negative-lr", lambda: optim.SGD(_mlp().parameters(), lr=-0.1), ValueError,
         "SGD: invalid learning rate -0.1"),
    case("Adam-negative-lr", lambda: optim.Adam(_mlp().parameters(), lr=-1e-3), ValueError,
         "Adam: invalid learning rate -0.001"),
    case("AdamW-negative-lr", lambda: optim.AdamW(_mlp().parameters(), lr=-1.0), ValueError,
         "AdamW: invalid learning rate -1.0"),
    case("lr-set-negative", lambda: setattr(optim.Adam(_mlp().parameters()), "lr", -3.0), ValueError,
         "invalid learning rate -3.0"),
    case("group-negative-lr", lambda: optim.SGD([{"params": _mlp().parameters(), "lr": -1.0}], lr=0.1), ValueError,
         "SGD: invalid learning rate -1.0"),
    case("clip-negative-max-norm", lambda: optim.clip_grad_norm_(_mlp().parameters(), -1.0), ValueError,
         "clip_grad_norm_: max_norm", "-1.0"),
]


@pytest.mark.parametrize("thunk, exc, fragments", SHAPES + AXES + AUTOGRAD + VALUES + LAYERS + STATE)
def test_bad_input_is_a_clear_error(thunk, exc, fragments):
    with pytest.raises(exc) as info:
        thunk()
    message = str(info.value)
    for fragment in fragments:
        assert fragment in message, f"{fragment!r} not in {message!r}"
    assert "\n" not in message


def test_a_wrong_value_never_slips_through_on_a_failed_load():
    model = _mlp()
    before = {k: v.copy() for k, v in model.state_dict().items()}
    with pytest.raises(ValueError):
        model.load_state_dict({**_state(), "0.bias": np.full(4, 9.0), "2.weight": np.ones((4, 2))})
    for key, value in model.state_dict().items():  # nothing changed, not even the entry that fitted
        np.testing.assert_array_equal(value, before[key], err_msg=key)


# ---------------------------------------------------------------- the bbml command

TINY = ReverseConfig(hidden_size=8, num_layers=1, num_heads=2, ff_size=16, max_len=4, max_positions=8)


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory):
    """An untrained but complete checkpoint folder: config.json and model.safetensors."""
    folder = tmp_path_factory.mktemp("ckpt")
    write_config(str(folder), TINY)
    save(build_model(TINY).state_dict(), folder / "model.safetensors")
    return str(folder)


def _bbml(*args, stdin=""):
    return subprocess.run([sys.executable, "-m", "from_scratch.cli", *args], input=stdin, capture_output=True,
                          text=True, timeout=120)


def _foreign(tmp_path, kind):
    folder = tmp_path / kind
    folder.mkdir()
    if kind == "other-task":
        (folder / "config.json").write_text('{"task": "translate", "config": {}}')
    elif kind == "bad-json":
        (folder / "config.json").write_text("{not json")
    elif kind == "no-weights":
        write_config(str(folder), TINY)
    elif kind == "wrong-weights":
        write_config(str(folder), TINY)
        save({"w": np.ones(3)}, folder / "model.safetensors")
    elif kind == "a-file":
        folder = tmp_path / "model.pt"
        folder.write_bytes(b"PK\x03\x04")
    return str(folder)


def _one_line_error(done, message):
    assert done.returncode == 1 and done.stdout == "", done.stdout
    assert done.stderr.startswith("bbml: error: ") and done.stderr.count("\n") == 1, done.stderr
    assert message in done.stderr


@pytest.mark.parametrize("args, stdin, message", [
    (["5", "x"], "", "unknown token 'x'"),
    (["5", "18"], "", "unknown token 18"),
    (["0"], "", "unknown token 0:"),
    (["1"] * 8, "", "longer than this model's maximum of 7"),
    ([], "", "empty input"),
    ([], "1 2\n\n", "stdin line 2: empty input"),
    ([], "1 2\n3 four\n", "stdin line 2: unknown token 'four'"),
    ([], "1 -2\n", "stdin line 1: unknown token -2"),
])
def test_cli_bad_tokens_are_one_line_errors(ckpt, args, stdin, message):
    _one_line_error(_bbml("reverse", "predict", "--ckpt", ckpt, *args, stdin=stdin), message)


@pytest.mark.parametrize("kind, message", [
    ("missing", "no checkpoint folder"), ("empty", "is not a bbml reverse checkpoint: it has no config.json"),
    ("other-task", "its task is 'translate'"), ("bad-json", "config.json is unreadable"),
    ("no-weights", "no model.safetensors"), ("wrong-weights", "does not match its config.json"),
    ("a-file", "is a file; --ckpt takes the run folder"),
])
def test_cli_missing_or_foreign_checkpoint_is_a_one_line_error(tmp_path, kind, message):
    folder = {"missing": str(tmp_path / "missing"), "empty": str(tmp_path)}.get(kind) or _foreign(tmp_path, kind)
    _one_line_error(_bbml("reverse", "predict", "--ckpt", folder, "1", "2"), message)


def test_every_command_reports_a_bad_checkpoint_in_one_line(tmp_path, ckpt):
    foreign = _foreign(tmp_path, "other-task")
    for command in (["eval", "--n", "5"], ["attention", "3"]):
        _one_line_error(_bbml("reverse", command[0], "--ckpt", str(tmp_path / "missing"), *command[1:]),
                        "no checkpoint folder")
        _one_line_error(_bbml("reverse", command[0], "--ckpt", foreign, *command[1:]), "its task is 'translate'")
    for folder, message in [(str(tmp_path / "missing"), "no checkpoint folder"), (foreign, "its task is 'translate'"),
                            (ckpt, "holds no train_state.safetensors")]:
        _one_line_error(_bbml("reverse", "train", "--resume", "--out", folder), message)
