"""Every example runs with --quick and beats a trivial baseline; each is one independent test (pytest -n 2)."""
from __future__ import annotations

import importlib.util
import json
import math
import string
import sys
from pathlib import Path
from types import ModuleType

import numpy as np
import pytest

from from_scratch import backend

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
SCRIPTS = sorted(p.stem for p in EXAMPLES.glob("*.py") if not p.stem.startswith("_"))
if str(EXAMPLES) not in sys.path:
    sys.path.append(str(EXAMPLES))  # for `from _common import ...`; appended, so it shadows no package


def load(name: str) -> ModuleType:
    """Import examples/<name>.py under a private module name (examples/names.py must not shadow `names`)."""
    spec = importlib.util.spec_from_file_location(f"example_{name}", EXAMPLES / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _stored_results() -> tuple[ModuleType, dict]:
    path = EXAMPLES.parent / "benchmarks" / "readme_results.py"
    spec = importlib.util.spec_from_file_location("readme_results", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module, json.loads(module.RESULTS.read_text())


README_RESULTS, STORED = _stored_results()


def run(name: str, tmp_path: Path, *args: str) -> dict:
    """Run an example with --quick; its figures must be those stored beside the README's (same code, same numbers)."""
    result = load(name).main(["--quick", "--out", str(tmp_path), *args])
    part = name + (f":{args[args.index('--model') + 1]}" if "--model" in args else "")
    if part in STORED and "--seed" not in args:
        assert README_RESULTS.matches(part, result, STORED[part]["quick"]) == [], \
            f"{part} gives other numbers than README's: rerun python benchmarks/readme_results.py {part}"
    return result


def assert_figure(path: Path) -> None:
    """``path`` is a PNG of a real figure: at least 300 x 200 pixels, not blank, and with data drawn in
    colour (a curve, points or a heat map; axes and text alone are grey)."""
    from matplotlib.image import imread

    pixels = imread(path)[..., :3]
    assert pixels.ndim == 3 and pixels.shape[0] >= 200 and pixels.shape[1] >= 300, f"{path.name}: {pixels.shape}"
    assert len(np.unique(pixels.reshape(-1, 3), axis=0)) > 16, f"{path.name} is blank"
    saturation = pixels.max(axis=2) - pixels.min(axis=2)
    assert (saturation > 0.25).sum() > 100, f"{path.name} shows no data in colour"


def test_every_example_is_tested():
    assert SCRIPTS == ["attention_demo", "autograd_basics", "breast_cancer_mlp", "cnn_digits", "mlp_regression",
                       "names", "reverse_transformer", "vit_digits"]


@pytest.mark.parametrize("name", SCRIPTS)
def test_help_and_default_output_folder(name, capsys):
    module = load(name)
    with pytest.raises(SystemExit) as exit_info:
        module.main(["--help"])
    assert exit_info.value.code == 0
    text = capsys.readouterr().out
    assert f"examples/{name}.py" in text and "--quick" in text and "--out" in text and "--device" in text
    assert f"runs/{name}" in text  # figures go to runs/<example>/ unless --out says otherwise


def test_autograd_basics(tmp_path):
    result = run("autograd_basics", tmp_path)
    assert result["max_error"] < 1e-6  # autograd equals central differences in float64
    dot = (tmp_path / "graph.dot").read_text()
    assert dot == result["dot"]
    for op in ("MatMul", "Add", "Tanh", "Sub", "Pow", "Sum"):
        assert f'label="{op}"' in dot
    assert "W\\n(3, 2) float64\\nrequires_grad" in dot


def test_mlp_regression(tmp_path):
    result = run("mlp_regression", tmp_path)
    assert result["test_mse"] < 0.2 * result["baseline_mse"]  # far better than predicting the mean
    assert_figure(tmp_path / "fit.png")


def test_mlp_regression_is_reproducible(tmp_path):
    first = run("mlp_regression", tmp_path)["test_mse"]
    assert run("mlp_regression", tmp_path)["test_mse"] == first
    assert run("mlp_regression", tmp_path, "--seed", "1")["test_mse"] != first


def test_breast_cancer_mlp(tmp_path):
    result = run("breast_cancer_mlp", tmp_path)
    assert result["accuracy"] > result["majority"] + 0.2  # majority class: 63.2%
    assert result["confusion"].sum() == 114 and result["confusion"].shape == (2, 2)
    assert_figure(tmp_path / "breast_cancer.png")


@pytest.mark.parametrize("model", ["rnn", "lstm", "gru", "transformer"])
def test_names(model, tmp_path):
    result = run("names", tmp_path, "--model", model)
    assert result["uniform"] == pytest.approx(math.log(27))
    assert result["val_loss"] < result["uniform"] - 0.4  # well below a uniform guess over 27 symbols
    assert len(result["samples"]) == 12
    assert all(set(s) <= set(string.ascii_lowercase) and len(s) < 16 for s in result["samples"])
    assert_figure(tmp_path / f"loss_{model}.png")


def test_names_data_and_encoding():
    names = load("names")
    data = names.load_names()
    assert len(data) > 5000 and "mary" in data and "james" in data and data == sorted(set(data))
    inputs, targets = names.encode(["ann", "bo"])
    dot, pad = names.DOT, names.PAD
    a, n, b, o = (1 + names.CHARS.index(c) for c in "anbo")
    np.testing.assert_array_equal(inputs, [[dot, a, n, n], [dot, b, o, pad]])
    np.testing.assert_array_equal(targets, [[a, n, n, dot], [b, o, dot, pad]])


def test_attention_demo(tmp_path):
    result = run("attention_demo", tmp_path)
    assert result["walkthrough_gap"] < 1e-5  # the by-hand steps equal MultiHeadAttention
    assert result["accuracy"] > 0.8 > 10 * result["chance"]
    assert result["on_target"] > 0.5  # the learned weights point at the matching key (uniform: 1/8)
    assert_figure(tmp_path / "attention.png")


def test_vit_digits(tmp_path):
    result = run("vit_digits", tmp_path)
    assert result["accuracy"] > result["majority"] + 0.4  # majority class: 10.3%
    assert_figure(tmp_path / "curves.png")


def test_vit_patches_are_the_image_tiles():
    vit = load("vit_digits").ViT()
    from from_scratch import Tensor
    image = np.arange(64, dtype=np.float32).reshape(1, 8, 8)
    patches = vit.patchify(Tensor(image)).numpy()
    assert patches.shape == (1, 16, 4)
    np.testing.assert_array_equal(patches[0, 0], [0, 1, 8, 9])     # top-left 2x2 tile
    np.testing.assert_array_equal(patches[0, 5], [18, 19, 26, 27])  # second tile row, second column


def test_cnn_digits(tmp_path):
    result = run("cnn_digits", tmp_path)
    assert result["accuracy"] > result["majority"] + 0.6  # majority class: 10.3%
    assert (tmp_path / "curves.png").stat().st_size > 0


def test_cnn_uses_the_vit_split_and_shapes():
    cnn = load("cnn_digits")
    from from_scratch import Tensor
    np.testing.assert_array_equal(cnn.load_data()[3], load("vit_digits").load_data()[3])  # same test labels
    model = cnn.CNN()
    assert model(Tensor(np.zeros((3, 8, 8), np.float32))).shape == (3, 10)
    assert "Conv2d(1, 32, kernel_size=(3, 3), stride=(1, 1), padding=(1, 1), bias=False)" in repr(model)


def test_reverse_transformer(tmp_path):
    result = run("reverse_transformer", tmp_path)
    assert result["plain_equals_cached"]
    assert result["token_accuracy"] > 5 * result["chance_token_accuracy"]
    assert result["exact_match"] > 0.3  # lengths 1..6: guessing gets almost none exactly right
    assert_figure(tmp_path / "attention.png")


@pytest.mark.parametrize("name", ["mlp_regression", "attention_demo", "cnn_digits"])
def test_examples_on_the_strict_device_give_the_cpu_numbers(name, tmp_path):
    # Models are built on the CPU and moved, data is made on the host: without dropout the run on a device
    # is the CPU's run, so run() finds the numbers stored beside the README (measured on the CPU).
    assert run(name, tmp_path, "--device", "strict")


def test_reverse_transformer_on_the_strict_device(tmp_path):
    # Not the CPU's numbers to the last digit: the attention key biases get gradients that are zero but for
    # rounding, which differs between the devices' code paths, and Adam turns that into real steps.
    result = load("reverse_transformer").main(["--quick", "--out", str(tmp_path), "--device", "strict"])
    assert result["plain_equals_cached"]
    assert result["token_accuracy"] > 5 * result["chance_token_accuracy"] and result["exact_match"] > 0.3
    assert_figure(tmp_path / "attention.png")


@pytest.mark.skipif(backend.is_available(), reason="CUDA is usable here")
def test_examples_refuse_cuda_without_a_gpu_in_one_line(tmp_path):
    with pytest.raises(SystemExit) as info:
        load("mlp_regression").main(["--quick", "--out", str(tmp_path), "--device", "cuda"])
    message = str(info.value.code)
    assert message.startswith("error: device cuda: ") and "\n" not in message and 'pip install -e ".[cuda]"' in message
