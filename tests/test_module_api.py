"""The Module API as PyTorch users type it: ModuleDict, Identity, requires_grad_, apply, named_modules,
and array-like inputs to layers and functionals."""
import numpy as np
import pytest
import torch

import from_scratch as fs
import from_scratch.functional as F
from from_scratch import nn
from from_scratch.autograd.tensor import Tensor


def _tree(lib):
    """The same module tree in both libraries, with one module shared under two names."""
    shared = lib.Linear(3, 3)
    block = lib.Sequential(shared, lib.ReLU())
    return lib.Sequential(lib.Linear(2, 3), block, lib.ModuleList([shared, lib.Tanh()]), lib.Identity())


def _names(pairs):
    return [(name, type(m).__name__) for name, m in pairs]


@pytest.mark.parametrize("prefix", ["", "model"])
@pytest.mark.parametrize("remove_duplicate", [True, False])
def test_named_modules_match_torch(prefix, remove_duplicate):
    ours, theirs = _tree(nn), _tree(torch.nn)
    assert _names(ours.named_modules(prefix=prefix, remove_duplicate=remove_duplicate)) == \
        _names(theirs.named_modules(prefix=prefix, remove_duplicate=remove_duplicate))
    assert [n for n, _ in ours.named_parameters(prefix=prefix, remove_duplicate=remove_duplicate)] == \
        [n for n, _ in theirs.named_parameters(prefix=prefix, remove_duplicate=remove_duplicate)]
    assert [type(m).__name__ for m in ours.modules()] == [type(m).__name__ for m in theirs.modules()]
    assert _names(ours.named_children()) == _names(theirs.named_children())


def test_parameters_recurse_and_children_listed_once():
    lin = nn.Linear(2, 2)
    outer = nn.Module()
    outer.a, outer.b, outer.w = lin, lin, fs.Tensor(np.ones(2), requires_grad=True)
    assert [n for n, _ in outer.named_parameters(recurse=False)] == ["w"]
    assert len(outer.parameters(recurse=False)) == 1 and len(outer.parameters()) == 3
    assert list(outer.children()) == [lin]  # PyTorch lists a child held under two names once


def test_apply_visits_children_first_then_self_like_torch():
    seen, seen_torch = [], []
    ours, theirs = _tree(nn), _tree(torch.nn)
    assert ours.apply(lambda m: seen.append(type(m).__name__)) is ours
    theirs.apply(lambda m: seen_torch.append(type(m).__name__))
    assert seen == seen_torch and seen[-1] == "Sequential" and seen[0] == "Linear"


def test_apply_initialises_weights():
    model = nn.Sequential(nn.Linear(3, 4), nn.ReLU(), nn.Linear(4, 2))

    def init_weights(m):
        if isinstance(m, nn.Linear):
            nn.init.zeros_(m.weight)

    model.apply(init_weights)
    assert all(not p.data.any() for name, p in model.named_parameters() if name.endswith("weight"))


def test_requires_grad_freezes_and_unfreezes():
    model = nn.Sequential(nn.Linear(3, 4), nn.Linear(4, 2))
    assert model[0].requires_grad_(False) is model[0]
    model(fs.randn(5, 3)).sum().backward()
    assert model[0].weight.grad is None and model[0].bias.grad is None
    assert model[1].weight.grad is not None
    assert [n for n, _ in model.named_parameters()] == ["0.weight", "0.bias", "1.weight", "1.bias"]  # still listed
    model.requires_grad_()
    assert all(p.requires_grad for p in model.parameters())


def test_module_dict_follows_torch():
    a, b, c = nn.Linear(2, 3), nn.ReLU(), nn.Linear(3, 1)
    d = nn.ModuleDict({"a": a, "b": b})
    ref = torch.nn.ModuleDict({"a": torch.nn.Linear(2, 3), "b": torch.nn.ReLU()})
    assert repr(d) == repr(ref)
    assert len(d) == 2 and list(d) == ["a", "b"] and "a" in d and "c" not in d and d["a"] is a
    d["c"] = c
    assert list(d.keys()) == ["a", "b", "c"] and list(d.values()) == [a, b, c] and list(d.items())[2] == ("c", c)
    assert [n for n, _ in d.named_parameters()] == ["a.weight", "a.bias", "c.weight", "c.bias"]
    d.update([("b", c), ("e", nn.Tanh())])  # pairs, in order; an existing key is replaced in place
    assert list(d) == ["a", "b", "c", "e"] and d["b"] is c
    assert d.pop("e").__class__ is nn.Tanh and "e" not in d
    del d["a"]
    assert list(d) == ["b", "c"] and not hasattr(d, "a")
    d.update(nn.ModuleDict({"z": nn.Identity()}))
    assert list(d) == ["b", "c", "z"]
    d.clear()
    assert len(d) == 0 and d.parameters() == []
    with pytest.raises(KeyError, match="ModuleDict has no key 'x'"):
        d["x"]
    with pytest.raises(KeyError, match="attribute 'train' already exists"):
        d["train"] = a
    with pytest.raises(KeyError, match="no '.'"):
        d["a.b"] = a
    with pytest.raises(TypeError, match="must be a Module"):
        d["a"] = np.ones(3)
    with pytest.raises(TypeError, match="not a \\(key, module\\) pair"):
        d.update([a])


def test_module_dict_state_dict_loads_torch_weights():
    ours = nn.ModuleDict({"enc": nn.Linear(2, 3), "dec": nn.Linear(3, 2)})
    theirs = torch.nn.ModuleDict({"enc": torch.nn.Linear(2, 3), "dec": torch.nn.Linear(3, 2)})
    ours.load_state_dict({k: v.numpy() for k, v in theirs.state_dict().items()})
    np.testing.assert_array_equal(ours["dec"].weight.data, theirs["dec"].weight.detach().numpy())


def test_identity_passes_anything_through():
    x = fs.randn(2, 3, requires_grad=True)
    ident = nn.Identity(54, unused_argument=0.1)
    assert ident(x) is x and repr(ident) == repr(torch.nn.Identity(54)) == "Identity()"
    assert ident.parameters() == []


# ---------------------------------------------------------------- arrays and lists where a Tensor is expected

LAYERS = [
    (lambda: nn.Linear(3, 2), (4, 3)), (lambda: nn.LayerNorm(3), (4, 3)), (lambda: nn.ReLU(), (4, 3)),
    (lambda: nn.GELU(), (4, 3)), (lambda: nn.Tanh(), (4, 3)), (lambda: nn.Sigmoid(), (4, 3)),
    (lambda: nn.Softmax(dim=-1), (4, 3)), (lambda: nn.Dropout(0.5), (4, 3)), (lambda: nn.RNN(3, 2), (5, 2, 3)),
    (lambda: nn.LSTM(3, 2), (5, 2, 3)), (lambda: nn.GRU(3, 2), (5, 2, 3)), (lambda: nn.RNNCell(3, 2), (4, 3)),
    (lambda: nn.LSTMCell(3, 2), (4, 3)), (lambda: nn.GRUCell(3, 2), (4, 3)),
    (lambda: lambda x: nn.MultiHeadAttention(4, 2)(x, x, x), (2, 5, 4)),
    (lambda: nn.PositionalEncoding(4, 10), (2, 5, 4)),
    (lambda: nn.FeedForward(4, 8), (2, 5, 4)), (lambda: nn.EncoderLayer(4, 2, 8), (2, 5, 4)),
]


@pytest.mark.parametrize("make, shape", LAYERS)
@pytest.mark.parametrize("kind", ["ndarray", "list"])
def test_layers_take_arrays_and_lists(make, shape, kind):
    layer = make()
    x = np.random.default_rng(0).standard_normal(shape).astype(np.float32)
    out = layer(x if kind == "ndarray" else x.tolist())
    out = out[0] if isinstance(out, tuple) else out
    assert isinstance(out, Tensor) and out.dtype == np.float32


FUNCTIONALS = [
    lambda x: F.relu(x), lambda x: F.gelu(x), lambda x: F.sigmoid(x), lambda x: F.tanh(x), lambda x: F.softmax(x),
    lambda x: F.log_softmax(x), lambda x: F.dropout(x, 0.5), lambda x: F.linear(x, np.ones((2, 3))),
    lambda x: F.layer_norm(x), lambda x: F.scaled_dot_product_attention(x, x, x), lambda x: F.pad(x, (1, 1)),
    lambda x: F.cross_entropy(x, [0, 1, 2, 0]), lambda x: F.nll_loss(x, [0, 1, 2, 0]), lambda x: F.mse_loss(x, x),
    lambda x: F.l1_loss(x, np.zeros((4, 3))), lambda x: F.binary_cross_entropy(x, np.ones((4, 3))),
    lambda x: F.binary_cross_entropy_with_logits(x, np.ones((4, 3))), lambda x: F.add_layer_norm(x, x),
    lambda x: nn.CrossEntropyLoss()(x, [0, 1, 2, 0]), lambda x: nn.MSELoss()(x, np.zeros((4, 3))),
]


@pytest.mark.parametrize("fn", FUNCTIONALS)
def test_functionals_take_arrays_and_lists(fn):
    x = np.random.default_rng(0).random((4, 3)).astype(np.float32)
    for arg in (x, x.tolist()):
        out = fn(arg)
        assert isinstance(out, Tensor) and out.dtype == np.float32


def test_what_cannot_be_a_tensor_is_a_clear_error():
    with pytest.raises(TypeError, match="relu: input must be a Tensor, a NumPy array or a \\(nested\\) list"):
        F.relu("abc")
    with pytest.raises(TypeError, match="linear: input of type list cannot become a Tensor"):
        nn.Linear(3, 2)([[1.0, 2.0, 3.0], [1.0]])  # ragged
    with pytest.raises(TypeError, match="mse_loss: input must be a Tensor"):
        F.mse_loss(None, np.ones(3))
