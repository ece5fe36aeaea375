"""The module system: registration, traversal, modes, state dicts, printing, containers."""
from collections import OrderedDict

import numpy as np
import pytest
import torch

import from_scratch as fs
from from_scratch import nn
from from_scratch.autograd.tensor import Tensor


class Block(nn.Module):
    def __init__(self):
        super().__init__()
        self.scale = nn.Parameter(np.ones(2))
        self.fc = nn.Linear(3, 4)
        self.layers = nn.ModuleList([nn.Linear(4, 4), nn.Sequential(nn.Linear(4, 2), nn.Dropout(0.5))])
        self.register_buffer("running", fs.zeros(2))
        self.note = "a plain attribute"
        self.constant = Tensor(np.zeros(3))  # no grad: a plain attribute, not state

    def forward(self, x):
        x = self.fc(x).relu()
        for layer in self.layers:
            x = layer(x)
        return x * self.scale + self.running


class TorchBlock(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.scale = torch.nn.Parameter(torch.ones(2))
        self.fc = torch.nn.Linear(3, 4)
        self.layers = torch.nn.ModuleList([torch.nn.Linear(4, 4),
                                           torch.nn.Sequential(torch.nn.Linear(4, 2), torch.nn.Dropout(0.5))])
        self.register_buffer("running", torch.zeros(2))


def test_names_match_torch():
    ours, theirs = Block(), TorchBlock()
    assert [n for n, _ in ours.named_parameters()] == [n for n, _ in theirs.named_parameters()]
    assert list(ours.state_dict()) == list(theirs.state_dict())
    assert [n for n, _ in ours.named_modules()] == [n for n, _ in theirs.named_modules()]
    assert len(list(ours.children())) == len(list(theirs.children())) == 2
    assert ours.num_parameters() == sum(p.numel() for p in theirs.parameters()) == 2 + 16 + 20 + 10
    assert repr(ours).replace("Block", "TorchBlock") == repr(theirs).replace(", inplace=False", "")


def test_what_gets_registered():
    block = Block()
    params = block.parameters()
    assert isinstance(params, list) and all(p.requires_grad for p in params)
    assert block.scale.dtype == np.float32 and block.scale is params[0]
    assert [n for n, _ in block.named_buffers()] == ["running"] and block.buffers()[0] is block.running
    assert all(b is not p for b in block.buffers() for p in params)
    assert "running" in block.state_dict() and "constant" not in block.state_dict()
    block.w = Tensor(np.ones(3), requires_grad=True)  # a leaf that needs grad is a parameter
    block.frozen = nn.Parameter(np.ones(3), requires_grad=False)  # a Parameter always is
    block.activation = block.w * 2  # a computed tensor is not
    names = [n for n, _ in block.named_parameters()]
    assert names[:3] == ["scale", "w", "frozen"] and "activation" not in names
    del block.w
    assert "w" not in [n for n, _ in block.named_parameters()]


def test_registration_errors():
    block = Block()
    with pytest.raises(TypeError, match="cannot assign a Tensor to parameter 'scale'"):
        block.scale = Tensor(np.zeros(2))
    with pytest.raises(TypeError, match="cannot assign a str to sub-module 'fc'"):
        block.fc = "linear"
    with pytest.raises(TypeError, match="'buf' must be a Tensor or None, got ndarray"):
        block.register_buffer("buf", np.zeros(2))

    class Forgetful(nn.Module):
        def __init__(self):
            self.fc = nn.Linear(2, 2)

    with pytest.raises(AttributeError, match="super"):
        Forgetful()
    with pytest.raises(NotImplementedError, match="Module.forward"):
        nn.Module()(1)


def test_shared_weights_are_listed_once():
    class Tied(nn.Module):
        def __init__(self):
            super().__init__()
            self.embed = nn.Embedding(10, 4)
            self.out = nn.Linear(4, 10, bias=False)
            self.out.weight = self.embed.weight

    tied = Tied()
    assert tied.parameters() == [tied.embed.weight] and tied.num_parameters() == 40
    assert list(tied.state_dict()) == ["embed.weight", "out.weight"]  # every name, like PyTorch
    lin = nn.Linear(2, 2)
    twice, ttwice = nn.Sequential(lin, lin), torch.nn.Sequential(*[torch.nn.Linear(2, 2)] * 2)
    assert len(twice.parameters()) == 2 and list(twice.state_dict()) == list(ttwice.state_dict())
    w, x = tied.embed.weight, fs.randn(3, 2)
    tied.out(x @ w[:2]).sum().backward()  # both uses add into one gradient
    tw = torch.tensor(w.data, requires_grad=True)
    ((torch.tensor(x.data) @ tw[:2]) @ tw.T).sum().backward()
    np.testing.assert_allclose(w.grad, tw.grad.numpy(), rtol=1e-5, atol=1e-5)


def test_train_eval_propagate_and_zero_grad():
    fs.manual_seed(0)
    block, x = Block(), fs.randn(5, 3)
    assert block.eval() is block
    assert not any(m.training for m in block.modules())
    np.testing.assert_array_equal(block(x).data, block(x).data)  # dropout is the identity
    block.train()
    assert all(m.training for m in block.modules()) and len(list(block.modules())) == 7
    assert not np.array_equal(block(x).data, block(x).data)
    block(x).sum().backward()
    assert all(p.grad is not None for p in block.parameters())
    block.zero_grad()
    assert all(p.grad is None for p in block.parameters())


def test_load_state_dict_errors_name_keys_and_shapes():
    block = Block()
    good = {k: v.copy() for k, v in block.state_dict().items()}
    with pytest.raises(KeyError, match=r"missing keys \['fc.bias'\]"):
        block.load_state_dict({k: v for k, v in good.items() if k != "fc.bias"})
    with pytest.raises(KeyError, match=r"unexpected keys \['extra'\]"):
        block.load_state_dict({**good, "extra": np.zeros(1)})
    bad = {**good, "fc.weight": np.zeros((3, 4), np.float32), "fc.bias": np.full(4, 7.0, np.float32)}
    with pytest.raises(ValueError, match=r"fc.weight: \(3, 4\) in the state dict, \(4, 3\) in the model"):
        block.load_state_dict(bad)
    assert not (block.fc.bias.data == 7).any()  # a failed load changes nothing
    result = block.load_state_dict({"fc.bias": np.full(4, 7.0)}, strict=False)
    assert "fc.weight" in result.missing_keys and result.unexpected_keys == []
    assert (block.fc.bias.data == 7).all() and block.fc.bias.dtype == np.float32


def test_state_dict_round_trip_is_bit_identical(tmp_path):
    fs.manual_seed(0)
    model = Block().eval()
    model.running.data[:] = [0.5, -2.0]  # buffers travel too
    path = tmp_path / "model.safetensors"
    fs.save(model.state_dict(), path)
    fs.manual_seed(1)
    restored = Block().eval()
    x = fs.randn(4, 3)
    assert not np.array_equal(restored(x).data, model(x).data)
    restored.load_state_dict(fs.load(path))
    np.testing.assert_array_equal(restored(x).data, model(x).data)
    np.testing.assert_array_equal(restored.running.data, [0.5, -2.0])


def test_containers():
    a, b, c = nn.Linear(2, 3), nn.ReLU(), nn.Linear(3, 1)
    seq = nn.Sequential(a, b, c)
    assert len(seq) == 3 and seq[0] is a and seq[-1] is c and list(seq) == [a, b, c]
    assert isinstance(seq[1:], nn.Sequential) and list(seq[1:]) == [b, c]
    x = fs.randn(4, 2)
    np.testing.assert_array_equal(seq(x).data, c(b(a(x))).data)
    named = nn.Sequential(OrderedDict([("hidden", a), ("act", b)]))
    assert [n for n, _ in named.named_parameters()] == ["hidden.weight", "hidden.bias"]
    mlist = nn.ModuleList([a]).extend([b]).append(c)
    assert len(mlist) == 3 and mlist[2] is c and list(mlist[:2]) == [a, b]
    assert [n for n, _ in mlist.named_parameters()] == ["0.weight", "0.bias", "2.weight", "2.bias"]
