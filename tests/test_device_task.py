"""The reversal task and the bbml command on a device: the strict test device here, CUDA where a GPU is usable.

A run on a device must be the CPU's run (the same seed builds the same model on the CPU, which is then
moved), its checkpoints must load anywhere, and a training step must not copy from the device to the host
except where the docs say so.
"""
from __future__ import annotations

import collections
import pathlib

import numpy as np
import pytest

from conftest import assert_on_device
from from_scratch import Tensor, backend, set_default_dtype
from from_scratch import nn
from from_scratch.cli import main
from from_scratch.tasks.reverse import ReverseConfig, evaluate, heldout_sequences, load_model, predict, train

GPU = pytest.mark.skipif(not backend.is_available(), reason="needs CuPy and an NVIDIA GPU")
DEVICES = ["strict", pytest.param("cuda", marks=[pytest.mark.gpu, GPU])]
SMALL = dict(hidden_size=16, num_layers=1, num_heads=2, ff_size=32, max_len=5, batch_size=16, warmup=3,
             lr=0.01, log_every=2, eval_every=6, eval_size=40, checkpoint_every=100)
TINY_CLI = ["--hidden-size", "16", "--layers", "1", "--heads", "2", "--ff-size", "32", "--max-len", "4",
            "--batch-size", "16", "--warmup", "3", "--eval-every", "100"]


def _host(model) -> dict[str, np.ndarray]:
    """The model's weights on the host, but for the attention key biases: softmax ignores a constant added to
    every score of a query, so their gradient is zero but for rounding, and Adam's normalised steps turn two
    devices' different rounding into different values that change nothing the model computes."""
    return {k: backend.as_numpy(v) for k, v in model.state_dict().items() if not k.endswith("k_linear.bias")}


def _quiet(message: str) -> None:
    pass


@pytest.mark.parametrize("dtype, rtol", [(np.float32, 1e-4), (np.float64, 1e-9)])
@pytest.mark.parametrize("device", DEVICES)
def test_training_on_a_device_is_the_cpu_run(device, dtype, rtol):
    set_default_dtype(dtype)  # conftest puts the default back
    if device == "cuda" and dtype == np.float32:
        rtol = 2e-3  # a GPU sums in another order: float32 rounding, carried through 12 Adam steps
    config = ReverseConfig(steps=12, **SMALL)
    ours = train(config, device=device, log=_quiet)
    ref = train(config, log=_quiet)
    assert_on_device(device, ours.model)
    assert [r["step"] for r in ours.metrics] == [r["step"] for r in ref.metrics]
    np.testing.assert_allclose([r["loss"] for r in ours.metrics], [r["loss"] for r in ref.metrics], rtol=rtol)
    np.testing.assert_allclose([r["exact_match"] or 0 for r in ours.metrics],
                               [r["exact_match"] or 0 for r in ref.metrics], atol=0 if device == "strict" else 0.05)
    got, want = _host(ours.model), _host(ref.model)
    for name in want:
        assert got[name].dtype == dtype, name
        np.testing.assert_allclose(got[name], want[name], rtol=rtol, atol=rtol * 1e-2, err_msg=name)


def test_the_task_copies_nothing_back_in_a_training_step(host_copies):
    """Two runs that differ only in their number of steps: the extra steps (not logged, evaluated or
    checkpointed) make no device-to-host copy in the task's code; the loss waits on the device."""
    def task_copies(steps: int) -> int:
        host_copies.clear()
        config = ReverseConfig(steps=steps, **{**SMALL, "log_every": 100, "eval_every": 100, "eval_size": 1})
        train(config, device="strict", log=_quiet)
        # (the held-out evaluation at the end decodes as many steps as the model's outputs are long)
        return sum(n for file, n in host_copies.items() if file.startswith("tasks") and not file.endswith("decode.py"))

    assert task_copies(14) == task_copies(4) == 1  # the end of the run reads its losses, in one copy


def test_a_training_step_reads_back_only_the_input_checks(host_copies):
    """The library's reads in a training step (the README's "Devices (GPU)" list): one per call that checks
    its ids or targets are in range (CuPy would wrap a bad index silently), nothing else; the loss's mean,
    its gradient and clip_grad_norm_ stay on the device."""
    def run(steps: int) -> collections.Counter:
        host_copies.clear()
        config = ReverseConfig(steps=steps, **{**SMALL, "log_every": 100, "eval_every": 100, "eval_size": 1})
        train(config, device="strict", log=_quiet)
        return collections.Counter({f: n for f, n in host_copies.items() if f.startswith(("autograd", "functional",
                                                                                     "nn", "optim"))})

    short = run(4)
    per_step = {f: n / 10 for f, n in (run(14) - short).items()}
    # the source and the target embeddings, one read each; cross_entropy's targets, one read
    assert per_step == {"functional/linear.py": 2, "functional/loss.py": 1}
    assert set(short) <= set(per_step)


@pytest.fixture(scope="module")
def cpu_run(tmp_path_factory):
    folder = str(tmp_path_factory.mktemp("device_task") / "run")
    train(ReverseConfig(steps=150, **{**SMALL, "eval_every": 150}), out=folder, log=_quiet)
    return folder


@pytest.mark.parametrize("device", DEVICES)
def test_predict_and_eval_on_a_device_match_the_cpu(cpu_run, device):
    model, config = load_model(cpu_run, device)
    assert_on_device(device, model)
    cpu_model, _ = load_model(cpu_run)
    seqs = heldout_sequences(5, 60, 1, 6, config.layout)
    for beam in (1, 3):
        ours, ref = predict(model, seqs, config.layout, beam_size=beam), predict(cpu_model, seqs, config.layout,
                                                                                  beam_size=beam)
        assert all(type(o) is np.ndarray for o in ours)  # the outputs come back to the host
        assert [o.tolist() for o in ours] == [o.tolist() for o in ref], f"beam {beam}"
    assert evaluate(model, seqs, config.layout) == evaluate(cpu_model, seqs, config.layout)


@pytest.mark.parametrize("device", DEVICES)
def test_cli_predict_eval_attention_on_a_device_print_what_the_cpu_prints(cpu_run, device, capsys, tmp_path):
    commands = [["predict", "--ckpt", cpu_run, "3", "1", "2"], ["predict", "--ckpt", cpu_run, "--beam", "2", "4", "5"],
                ["eval", "--ckpt", cpu_run, "--n", "50", "--max-len", "6"],
                ["attention", "--ckpt", cpu_run, "1", "2", "3", "--out", str(tmp_path / "a.png")]]
    for command in commands:
        assert main(["reverse", *command]) == 0
        want = capsys.readouterr().out
        assert main(["reverse", *command, "--device", device]) == 0
        assert capsys.readouterr().out == want, command


@pytest.mark.parametrize("device", DEVICES)
def test_checkpoints_saved_on_a_device_load_on_the_cpu_and_resume_onto_a_device(tmp_path, device):
    config = ReverseConfig(steps=10, **{**SMALL, "checkpoint_every": 5})
    folder = str(tmp_path / "run")
    first = train(config, out=folder, device=device, on_step=lambda step, loss: step == 5, log=_quiet)
    assert first.interrupted and first.step == 5
    model, _ = load_model(folder)  # saved from the device, loaded on the CPU
    assert_on_device("cpu", model)
    saved = model.state_dict()
    for name, value in first.model.state_dict().items():  # exactly what was on the device
        np.testing.assert_array_equal(saved[name], backend.as_numpy(value), err_msg=name)
    resumed = train(config, out=folder, resume=True, device=device, log=_quiet)
    whole = train(config, log=_quiet)
    assert_on_device(device, resumed.model)
    for name, value in _host(whole.model).items():
        np.testing.assert_allclose(_host(resumed.model)[name], value, rtol=1e-4, atol=1e-6, err_msg=name)
    assert [r["step"] for r in resumed.metrics] == [r["step"] for r in whole.metrics]


def test_cli_train_on_the_strict_device(tmp_path, capsys):
    out = str(tmp_path / "run")
    assert main(["reverse", "train", "--steps", "8", "--out", out, "--device", "strict", *TINY_CLI]) == 0
    printed = capsys.readouterr().out
    assert "training a Transformer on strict" in printed and "Held-out exact match" in printed
    assert main(["reverse", "train", "--steps", "12", "--out", out, "--resume", "--device", "strict"]) == 0
    assert "resuming" in capsys.readouterr().out


@pytest.mark.skipif(backend.is_available(), reason="CUDA is usable here")
@pytest.mark.parametrize("command", [["train", "--steps", "5"], ["predict", "1", "2"], ["eval"],
                                     ["attention", "1", "2"]])
def test_device_cuda_without_a_gpu_is_one_line_naming_what_to_install(tmp_path, capsys, command):
    folder = tmp_path / "run"
    flag = ["--out", str(folder)] if command[0] == "train" else ["--ckpt", str(folder)]
    assert main(["reverse", *command, *flag, "--device", "cuda"]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("bbml: error: --device cuda: ")
    assert 'pip install -e ".[cuda]"' in err and "cupy-cuda13x" in err
    assert not folder.exists()  # nothing was started


def test_unknown_device_is_one_line(capsys):
    assert main(["reverse", "eval", "--device", "tpu"]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "--device: unknown device 'tpu'" in err


def test_synchronize_waits_only_on_a_gpu():
    backend.synchronize("cpu")
    backend.synchronize("strict")  # nothing queued anywhere but on a GPU
    if backend.is_available():
        backend.synchronize("cuda")
    else:
        with pytest.raises(RuntimeError, match="device cuda: .*cupy-cuda13x"):
            backend.synchronize("cuda")


def test_the_cuda_extra_names_the_wheel_the_error_message_names():
    import tomllib
    pyproject = tomllib.loads((pathlib.Path(__file__).parents[1] / "pyproject.toml").read_text())
    extras = pyproject["project"]["optional-dependencies"]
    assert extras["cuda"] == ["cupy-cuda13x>=14"] and extras["cuda12"] == ["cupy-cuda12x>=13"]
    assert all(name in backend.CUDA_INSTALL_HINT for name in ("cupy-cuda13x", '".[cuda]"', "cupy-cuda12x", '".[cuda12]"'))
    assert not any(dep.startswith("cupy") for dep in extras["test"])  # CI has no GPU
    assert "gpu" in " ".join(pyproject["tool"]["pytest"]["ini_options"]["markers"])


# ---------------------------------------------------------------- CUDA only (skipped without a GPU)

def _layers() -> list[tuple[str, nn.Module, tuple[tuple[int, ...], ...]]]:
    """A few layers and their input shapes, built on the CPU in float64."""
    return [("Linear", nn.Linear(6, 5), ((4, 6),)),
            ("LayerNorm", nn.LayerNorm(6), ((3, 4, 6),)),
            ("MultiHeadAttention", nn.MultiHeadAttention(8, 2), ((2, 5, 8), (2, 5, 8), (2, 5, 8))),
            ("LSTM", nn.LSTM(4, 6, batch_first=True), ((2, 5, 4),)),
            ("Transformer", nn.Transformer(11, 8, 1, 2, 16, 12, norm_first=True), None)]


@pytest.mark.gpu
@GPU
@pytest.mark.parametrize("index", range(5))
def test_cuda_forward_and_gradients_equal_the_cpu_in_float64(index):
    set_default_dtype(np.float64)
    name, layer, shapes = _layers()[index]
    rng = np.random.default_rng(index)
    if shapes is None:  # the Transformer takes token ids
        arrays = [rng.integers(1, 11, (2, 5)), rng.integers(1, 11, (2, 4))]
    else:
        arrays = [rng.standard_normal(s) for s in shapes]
    results = {}
    for device in ("cpu", "cuda"):
        layer.zero_grad()
        layer.to(device)
        inputs = [Tensor(a, requires_grad=a.dtype.kind == "f", device=device) for a in arrays]
        out = layer(*inputs)
        out = out[0] if isinstance(out, tuple) else out
        weight = Tensor(np.random.default_rng(99).standard_normal(out.shape), device=device)
        (out * weight).sum().backward()
        assert_on_device(device, layer, out)
        results[device] = [out.numpy()] + [x.grad for x in inputs if x.requires_grad] + \
                          [p.grad for p in layer.parameters()]
    for i, (got, want) in enumerate(zip(results["cuda"], results["cpu"])):
        np.testing.assert_allclose(backend.as_numpy(got), backend.as_numpy(want), rtol=1e-10, atol=1e-10,
                                   err_msg=f"{name}: output/gradient {i}")


@pytest.mark.gpu
@GPU
def test_cuda_end_to_end_training_learns_to_reverse():
    config = ReverseConfig(hidden_size=32, num_layers=1, num_heads=2, ff_size=64, max_len=4, steps=400, lr=0.01,
                           warmup=20, batch_size=32, eval_every=400)
    result = train(config, device="cuda", log=_quiet)
    assert result.metrics[-1]["exact_match"] > 0.9
    assert_on_device("cuda", result.model)
