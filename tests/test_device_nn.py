"""Every layer on a device: the same numbers as on the CPU, and every array where it belongs.

Each case builds a layer twice from one seed, moves one copy to ``device`` with ``.to`` and runs both
on the same inputs in float64: outputs, input gradients and parameter gradients must agree to 1e-10,
and every parameter, buffer, gradient and output of the moved copy must stay on the device
(``assert_on_device``; on the strict test device a stray host array is an error by itself).
"""
import copy

import numpy as np
import pytest

import from_scratch as fs
from from_scratch import Tensor, backend, nn, optim
from from_scratch import functional as F
from conftest import assert_on_device

TOL = dict(rtol=1e-10, atol=1e-12)
rng = np.random.default_rng(0)


def _floats(*shape):
    return rng.standard_normal(shape)


def _ids(high, *shape):
    return rng.integers(1, high, shape)


def _mask(b, t):  # additive padding mask (B, 1, 1, T): the last key of row 0 hidden
    m = np.zeros((b, 1, 1, t))
    m[0, ..., -1] = -1e9
    return m


def _bool_mask(t):  # boolean causal mask, True where a query may attend
    return np.tril(np.ones((t, t), bool))


# name -> (make the layer, host inputs, call(layer, *inputs) or None for layer(*inputs))
CASES = {
    "Linear": (lambda: nn.Linear(4, 3), [_floats(2, 4)], None),
    "Identity": (lambda: nn.Identity(), [_floats(2, 4)], None),
    "Embedding": (lambda: nn.Embedding(7, 3, padding_idx=0), [np.array([[0, 2, 6], [1, 1, 5]])], None),
    "LayerNorm": (lambda: nn.LayerNorm(4), [_floats(2, 3, 4)], None),
    "BatchNorm1d": (lambda: nn.BatchNorm1d(3), [_floats(5, 3, 2)], None),
    "BatchNorm2d": (lambda: nn.BatchNorm2d(3), [_floats(2, 3, 2, 2)], None),
    "BatchNorm2d eval": (lambda: nn.BatchNorm2d(3).eval(), [_floats(2, 3, 2, 2)], None),
    "Dropout": (lambda: nn.Dropout(0.5), [_floats(3, 4)], None),
    "ReLU": (lambda: nn.ReLU(), [_floats(3, 4)], None),
    "GELU": (lambda: nn.GELU(approximate="tanh"), [_floats(3, 4)], None),
    "Tanh": (lambda: nn.Tanh(), [_floats(3, 4)], None),
    "Sigmoid": (lambda: nn.Sigmoid(), [_floats(3, 4)], None),
    "Softmax": (lambda: nn.Softmax(dim=-1), [_floats(3, 4)], None),
    "Flatten": (lambda: nn.Flatten(), [_floats(2, 3, 2)], None),
    "Sequential": (lambda: nn.Sequential(nn.Linear(4, 5), nn.ReLU(), nn.Linear(5, 2)), [_floats(3, 4)], None),
    "ModuleList": (lambda: nn.ModuleList([nn.Linear(4, 4), nn.Tanh()]), [_floats(3, 4)],
                   lambda m, x: m[1](m[0](x))),
    "ModuleDict": (lambda: nn.ModuleDict({"a": nn.Linear(4, 2)}), [_floats(3, 4)], lambda m, x: m["a"](x)),
    "Conv1d": (lambda: nn.Conv1d(2, 3, 3, padding=1), [_floats(2, 2, 5)], None),
    "Conv2d": (lambda: nn.Conv2d(2, 3, 3, stride=2, padding=1), [_floats(2, 2, 5, 5)], None),
    "ConvTranspose2d": (lambda: nn.ConvTranspose2d(2, 3, 2, stride=2), [_floats(2, 2, 3, 3)], None),
    "MaxPool2d": (lambda: nn.MaxPool2d(2), [_floats(2, 2, 4, 4)], None),
    "AvgPool2d": (lambda: nn.AvgPool2d(3, stride=2, padding=1), [_floats(2, 2, 5, 5)], None),
    "AdaptiveAvgPool2d": (lambda: nn.AdaptiveAvgPool2d((2, 3)), [_floats(2, 2, 5, 5)], None),
    "RNNCell": (lambda: nn.RNNCell(3, 4), [_floats(2, 3)], None),
    "LSTMCell": (lambda: nn.LSTMCell(3, 4), [_floats(2, 3)], None),
    "GRUCell": (lambda: nn.GRUCell(3, 4), [_floats(2, 3), _floats(2, 4)], None),
    "RecurrentBlock": (lambda: nn.RecurrentBlock(3, 4), [_floats(2, 3)], None),
    "LSTMBlock": (lambda: nn.LSTMBlock(3, 4), [_floats(2, 3)], None),
    "RNN": (lambda: nn.RNN(3, 4, num_layers=2), [_floats(5, 2, 3)], None),
    "LSTM": (lambda: nn.LSTM(3, 4, num_layers=2, batch_first=True), [_floats(2, 5, 3)], None),
    "LSTM with state": (lambda: nn.LSTM(3, 4), [_floats(5, 2, 3), _floats(1, 2, 4), _floats(1, 2, 4)],
                        lambda m, x, h, c: m(x, (h, c))),
    "GRU": (lambda: nn.GRU(3, 4, num_layers=2), [_floats(5, 3)], None),
    "ScaledDotProductAttention": (lambda: nn.ScaledDotProductAttention(), [_floats(2, 3, 4), _floats(2, 5, 4),
                                                                          _floats(2, 5, 4)], None),
    "MultiHeadAttention": (lambda: nn.MultiHeadAttention(8, 2), [_floats(2, 5, 8), _mask(2, 5)],
                           lambda m, x, mask: m(x, x, x, mask)),
    "MultiHeadAttention cross, weights": (lambda: nn.MultiHeadAttention(8, 2),
                                          [_floats(2, 3, 8), _floats(2, 5, 8), _floats(2, 5, 8), _mask(2, 5)],
                                          lambda m, q, k, v, mask: m(q, k, v, mask, return_weights=True)),
    "PositionalEncoding": (lambda: nn.PositionalEncoding(8, 20), [_floats(2, 5, 8)], lambda m, x: m(x, start=3)),
    "FeedForward": (lambda: nn.FeedForward(8, 16), [_floats(2, 5, 8)], None),
    "EncoderLayer": (lambda: nn.EncoderLayer(8, 2, 16), [_floats(2, 5, 8), _mask(2, 5)], None),
    "EncoderLayer pre-norm": (lambda: nn.EncoderLayer(8, 2, 16, norm_first=True), [_floats(2, 5, 8)], None),
    "DecoderLayer": (lambda: nn.DecoderLayer(8, 2, 16), [_floats(2, 4, 8), _floats(2, 5, 8), _mask(2, 5),
                                                          _bool_mask(4)], None),
    "Encoder": (lambda: nn.Encoder(2, 8, 2, 16), [_floats(2, 5, 8)], None),
    "Decoder": (lambda: nn.Decoder(2, 8, 2, 16), [_floats(2, 4, 8), _floats(2, 5, 8)], None),
    "Transformer": (lambda: nn.Transformer(11, 8, 2, 2, 16, max_len=12), [_ids(11, 2, 5), _ids(11, 2, 4),
                                                                            _mask(2, 5), _bool_mask(4)], None),
    "CrossEntropyLoss": (lambda: nn.CrossEntropyLoss(weight=np.arange(1.0, 5.0), label_smoothing=0.1),
                         [_floats(6, 4), np.array([0, 3, 1, 2, 2, -100])], None),
    "NLLLoss": (lambda: nn.NLLLoss(), [_floats(3, 4, 2), np.array([[0, 3], [1, 2], [2, 2]])], None),
    "MSELoss": (lambda: nn.MSELoss(), [_floats(3, 4), _floats(3, 4)], None),
    "L1Loss": (lambda: nn.L1Loss(reduction="sum"), [_floats(3, 4), _floats(3, 4)], None),
    "BCELoss": (lambda: nn.BCELoss(weight=np.full(4, 0.5)), [rng.uniform(0.1, 0.9, (3, 4)),
                                                              rng.uniform(0, 1, (3, 4))], None),
    "BCEWithLogitsLoss": (lambda: nn.BCEWithLogitsLoss(pos_weight=np.arange(1.0, 5.0)),
                          [_floats(3, 4), rng.uniform(0, 1, (3, 4))], None),
}
NOT_LAYERS = {"init", "Module", "Parameter"}  # checked by the tests further down


def test_every_layer_has_a_case():
    covered = {name.split(" ")[0] for name in CASES} | NOT_LAYERS
    assert set(nn.__all__) <= covered, f"layers without a device case: {sorted(set(nn.__all__) - covered)}"


def _tensors(arrays, device):
    # Floating inputs are differentiable; ids and masks are constants. Each on ``device``.
    return [Tensor(a.copy(), requires_grad=a.dtype.kind == "f", dtype=a.dtype, device=device) for a in arrays]


def _leaves(out):
    if isinstance(out, (list, tuple)):
        return [leaf for o in out for leaf in _leaves(o)]
    return [out]


def _run(make, arrays, call, device):
    """Build the layer from seed 0 on the CPU, move it to ``device``, run forward and a weighted backward."""
    fs.manual_seed(0)
    layer = make()
    for _, t in [*layer.named_parameters(), *layer.named_buffers()]:
        if t.dtype.kind == "f":
            t.data = t.data.astype(np.float64)
    layer.to(device)
    inputs = _tensors(arrays, device)
    fs.manual_seed(1)  # the dropout masks: the same stream on the CPU and on the strict device
    outs = _leaves((call or (lambda m, *xs: m(*xs)))(layer, *inputs))
    weights = np.random.default_rng(2)
    loss = sum((o * Tensor(weights.standard_normal(o.shape), dtype=np.float64, device=device)).sum()
               for o in outs if o.dtype.kind == "f")
    loss.backward()
    return layer, inputs, outs


@pytest.mark.parametrize("name", CASES)
def test_layer_on_device_matches_the_cpu(name, device, float64):
    make, arrays, call = CASES[name]
    ref_layer, ref_inputs, ref_outs = _run(make, arrays, call, "cpu")
    layer, inputs, outs = _run(make, arrays, call, device)
    assert_on_device(device, layer, *inputs, *outs)
    if name == "Dropout" and backend.device(device).type == "cuda":
        return  # a GPU draws from CuPy's generator: other masks than the CPU's (random.py)
    for i, (o, r) in enumerate(zip(outs, ref_outs)):
        assert o.dtype == r.dtype, f"{name} output {i}: {o.dtype}, CPU {r.dtype}"
        np.testing.assert_allclose(o.numpy(), r.numpy(), **TOL, err_msg=f"{name} output {i}")
    for what, ours, ref in ([(f"input {i}", x, r) for i, (x, r) in enumerate(zip(inputs, ref_inputs))]
                            + [(f"parameter {n}", p, dict(ref_layer.named_parameters())[n])
                               for n, p in layer.named_parameters()]
                            + [(f"buffer {n}", b, dict(ref_layer.named_buffers())[n])
                               for n, b in layer.named_buffers()]):
        assert (ours.grad is None) == (ref.grad is None), f"{name} {what}: gradient on one device only"
        np.testing.assert_allclose(ours.numpy(), ref.numpy(), **TOL, err_msg=f"{name} {what}")
        if ref.grad is not None:
            np.testing.assert_allclose(backend.as_numpy(ours.grad), ref.grad, **TOL, err_msg=f"{name} grad of {what}")


# ---------------------------------------------------------------- Module.to, init, state dicts

@pytest.mark.parametrize("make_opt", [lambda ps: optim.Adam(ps, lr=0.1), lambda ps: optim.SGD(ps, lr=0.1, momentum=0.9),
                                      lambda ps: optim.RMSprop(ps, centered=True)], ids=["Adam", "SGD", "RMSprop"])
def test_to_keeps_parameter_identity_and_an_earlier_optimizer_keeps_working(make_opt, device, float64):
    """Built and stepped on the CPU, then moved: the optimizer's state follows its parameters."""
    fs.manual_seed(0)
    model = nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4), nn.Tanh(), nn.Linear(4, 2))
    ref = copy.deepcopy(model)
    params = model.parameters()
    opt, ref_opt = make_opt(model.parameters()), make_opt(ref.parameters())
    x = _floats(6, 3)
    for m, o, dev in ((ref, ref_opt, "cpu"), (model, opt, "cpu")):  # one step on the CPU, then move
        m(Tensor(x)).sum().backward()
        o.step()
    assert model.to(device) is model and model.parameters() == params and all(
        a is b for a, b in zip(model.parameters(), params))
    for m, o, dev in ((ref, ref_opt, "cpu"), (model, opt, device)):
        o.zero_grad()
        m(Tensor(x, device=dev)).sum().backward()
        o.step()
    assert_on_device(device, model, opt)
    for (n, p), q in zip(model.named_parameters(), ref.parameters()):
        np.testing.assert_allclose(p.numpy(), q.numpy(), **TOL, err_msg=n)
    assert model.cpu() is model and all(type(p.data) is np.ndarray for p in model.parameters())


def test_init_functions_keep_a_tensor_on_its_device(device):
    t = Tensor(np.zeros((3, 4), np.float32), device=device)
    for fn in (nn.init.uniform_, nn.init.normal_, nn.init.zeros_, nn.init.ones_, nn.init.xavier_uniform_,
               nn.init.kaiming_uniform_):
        assert fn(t) is t and t.dtype == np.float32, fn.__name__
        assert_on_device(device, t)
    fs.manual_seed(3)
    host = nn.init.normal_(Tensor(np.zeros(5)))
    fs.manual_seed(3)
    np.testing.assert_array_equal(nn.init.normal_(Tensor(np.zeros(5), device=device)).numpy(), host.numpy())


def test_positional_encoding_table_is_a_buffer_that_moves():
    pe = nn.PositionalEncoding(8, 10)
    assert [n for n, _ in pe.named_buffers()] == ["pe"]
    pe.to("strict")
    assert_on_device("strict", pe)
    assert backend.device_of(pe(Tensor(np.zeros((1, 3, 8)), device="strict")).data) == "strict"


def test_state_dict_round_trip_keeps_each_model_on_its_device(device, tmp_path):
    fs.manual_seed(0)
    model = nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4)).to(device)
    model(Tensor(_floats(5, 3), device=device))  # running statistics move away from their defaults
    state = model.state_dict()
    assert_on_device(device, state)
    fs.save(state, tmp_path / "m.safetensors")
    host_state = fs.load(tmp_path / "m.safetensors")
    assert all(type(a) is np.ndarray for a in host_state.values())
    fs.manual_seed(1)
    other = nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4)).to(device)
    params = other.parameters()
    other.load_state_dict(host_state)  # host arrays into a device model: copied onto the device
    assert_on_device(device, other)
    assert all(a is b for a, b in zip(other.parameters(), params))
    for k, v in other.state_dict().items():
        np.testing.assert_array_equal(backend.as_numpy(v), host_state[k], err_msg=k)
    cpu_model = nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4))
    cpu_model.load_state_dict(other.state_dict())  # device arrays into a CPU model: copied to the host
    assert_on_device("cpu", cpu_model)
    assert_on_device(device, other)  # the source never moved


def test_loading_a_state_of_the_wrong_shape_on_a_device_changes_nothing(device):
    model = nn.Linear(3, 4).to(device)
    before = {k: backend.as_numpy(v).copy() for k, v in model.state_dict().items()}
    state = {"weight": np.zeros((4, 2), np.float32), "bias": np.zeros(4, np.float32)}
    with pytest.raises(ValueError, match=r"load_state_dict into Linear: shape mismatch for weight: \(4, 2\)"):
        model.load_state_dict(state)
    assert_on_device(device, model)
    for k, v in model.state_dict().items():
        np.testing.assert_array_equal(backend.as_numpy(v), before[k])


# ---------------------------------------------------------------- errors

def test_mixing_devices_in_one_layer_is_one_clear_error():
    layer = nn.Linear(3, 2).to("strict")
    with pytest.raises(RuntimeError, match="(?s)^[^\n]*cpu[^\n]*strict|^[^\n]*strict[^\n]*cpu") as info:
        layer(Tensor(np.ones((1, 3), np.float32)))
    message = str(info.value)
    assert "\n" not in message and "cpu" in message and "strict" in message


@pytest.mark.skipif(backend.is_available(), reason="a GPU is usable here")
def test_to_cuda_without_cupy_is_a_clear_error_and_nothing_moves():
    fs.manual_seed(0)
    model = nn.Transformer(11, 8, 1, 2, 16, max_len=12)
    before = {k: v.copy() for k, v in model.state_dict().items()}
    for move in (lambda: model.to("cuda"), lambda: model.cuda(), lambda: model.cuda(1)):
        with pytest.raises(RuntimeError, match=r"device cuda: .*(CuPy|GPU)") as info:
            move()
        assert "\n" not in str(info.value)
    for name, t in model._named_state().items():
        assert type(t.data) is np.ndarray, f"{name} moved"
        np.testing.assert_array_equal(t.data, before[name])


def test_a_copy_failing_half_way_through_to_moves_nothing(monkeypatch):
    model = nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4))
    before = {name: t.data for name, t in model._named_state().items()}
    calls, copy_to = [], backend.to_device

    def out_of_memory_on_the_third(array, dev):
        calls.append(dev)
        if len(calls) == 3:
            raise MemoryError("device out of memory")
        return copy_to(array, dev)

    monkeypatch.setattr(backend, "to_device", out_of_memory_on_the_third)
    with pytest.raises(MemoryError):
        model.to("strict")
    assert all(t.data is before[name] for name, t in model._named_state().items())
