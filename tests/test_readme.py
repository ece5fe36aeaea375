"""The README's API-tour snippets run as written, and give the results their comments document."""
import pathlib
import re

import numpy as np
import pytest
import torch

README = pathlib.Path(__file__).resolve().parents[1] / "README.md"
TOUR = README.read_text().split("## API tour", 1)[1].split("\n## ", 1)[0]
SNIPPETS = re.findall(r"```python\n(.*?)```", TOUR, re.S)


def check_first_steps(ns: dict) -> None:
    x, z, logits, loss = ns["x"], ns["z"], ns["logits"], ns["loss"]
    tx = torch.tensor(x.data, requires_grad=True)
    (tx @ tx.T).tanh().sum().backward()
    assert x.dtype == np.float32  # "float32 by default"
    np.testing.assert_allclose(x.grad, tx.grad.numpy(), rtol=1e-4, atol=1e-6)  # "dy/dx, same as PyTorch"
    assert not z.requires_grad and z._ctx is None  # "no graph is recorded"
    tl = torch.tensor(logits.data.astype(np.float64), requires_grad=True)
    want = torch.nn.functional.cross_entropy(tl, torch.tensor([1, 0, 9, 3]), label_smoothing=0.1)
    want.backward()
    np.testing.assert_allclose(loss.item(), want.item(), rtol=1e-5)
    np.testing.assert_allclose(logits.grad, tl.grad.numpy(), rtol=1e-4, atol=1e-7)


def check_tensor_api(ns: dict) -> None:
    fs, x, v, i = ns["fs"], ns["x"], ns["v"], ns["i"]
    assert (x.size(), x.size(1), x.numel(), x.dim(), x.size) == ((2, 3), 3, 6, 2, 6)
    assert v.tolist() == [3.0, 4.0] and i.tolist() == [0, 1]  # the first of the tied 4s
    assert x.max(1).tolist() == [3.0, 4.0]
    assert (float(x[0, 0]), int(x.sum()), [10, 20, 30][fs.tensor(1)]) == (3.0, 14, 20)
    assert x.gather(1, [[0, 0], [2, 1]]).tolist() == [[3.0, 3.0], [4.0, 4.0]]
    assert x.double().dtype == np.float64 and x.double().requires_grad  # float casts stay in the graph


def check_training(ns: dict) -> None:
    fs, model = ns["fs"], ns["model"]
    assert ns["loss"].item() < 0.9  # 100 AdamW steps on 64 random points learn something (chance: log 3 = 1.1)
    saved = fs.load("mlp.safetensors")
    state = model.state_dict()
    assert saved.keys() == state.keys()
    for name in saved:
        np.testing.assert_array_equal(np.asarray(saved[name]), np.asarray(state[name]), err_msg=name)


def check_data(ns: dict) -> None:
    train, val, loader, xb, yb = ns["train"], ns["val"], ns["loader"], ns["xb"], ns["yb"]
    assert (len(train), len(val), len(loader)) == (400, 100, 12)  # drop_last: 400 // 32 batches
    assert xb.dtype == np.float32 and xb.shape == (32, 4)  # "xb: float32 (32, 4), yb: int64 (32,)"
    assert yb.dtype == np.int64 and yb.shape == (32,)
    assert np.isfinite(ns["val_loss"]) and ns["opt"].lr <= 1e-3


def check_custom_op(ns: dict) -> None:
    x = ns["x"]
    np.testing.assert_allclose(ns["Cube"].apply(x).data, x.data ** 3)  # the snippet asserts its gradcheck


def check_in_place(ns: dict) -> None:
    w, y, h = ns["w"], ns["y"], ns["h"]
    assert w._version == 1  # "changes w in place: w._version == 1"
    with pytest.raises(RuntimeError, match=r"MatMul needs its input 1 .* changed in place by SGD.step"):
        y.backward()
    np.testing.assert_array_equal(w.grad, [[1, 1], [3, 3]])
    assert y._creator is not None and h._creator is not None and w._creator is None


CHECKS = {"w._version": check_in_place, "(x @ x.T).tanh()": check_first_steps, "fs.tensor([[3.0": check_tensor_api, "class Cube": check_custom_op,
          "mlp.safetensors": check_training, "random_split": check_data}


def test_readme_tour_has_snippets_and_each_has_its_check():
    assert len(SNIPPETS) >= 5
    for snippet in SNIPPETS:
        assert sum(marker in snippet for marker in CHECKS) == 1, snippet[:200]


@pytest.mark.parametrize("i", range(len(SNIPPETS)))
def test_readme_snippet_gives_its_documented_results(i, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    np.random.seed(0)
    ns: dict = {}
    exec(compile(SNIPPETS[i], f"README API-tour snippet {i}", "exec"), ns)
    (check,) = [fn for marker, fn in CHECKS.items() if marker in SNIPPETS[i]]
    check(ns)
