"""A run folder is untrusted input; one overwrite rule; progress where the user looks; eval's groups."""
import io
import json
import os
import re
import shutil

import numpy as np
import pytest

from from_scratch.serialization import load, save
from from_scratch.tasks.reverse import ReverseConfig, build_model, evaluate, load_model, train
from from_scratch.tasks.reverse.checkpoint import expected_shapes
from from_scratch.tasks.reverse.progress import PlainProgress, progress_style

SMALL = dict(hidden_size=16, num_layers=1, num_heads=2, ff_size=32, max_len=4, steps=12, warmup=2, batch_size=8,
             eval_size=10, eval_every=6, checkpoint_every=6)


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    out = str(tmp_path_factory.mktemp("run") / "run")
    train(ReverseConfig(**SMALL), out=out, log=lambda m: None)
    return out


def _copy(run, tmp_path, **config_changes):
    folder = str(tmp_path / "copy")
    shutil.copytree(run, folder)
    path = os.path.join(folder, "config.json")
    with open(path) as f:
        data = json.load(f)
    data["config"].update(config_changes)
    with open(path, "w") as f:
        json.dump(data, f)
    return folder


@pytest.mark.parametrize("changes", [dict(num_layers=2, norm_first=False), dict(vocab_size=7, ff_size=8),
                                     dict(hidden_size=12, num_heads=3, max_positions=9)])
def test_expected_shapes_are_the_built_models(changes):
    config = ReverseConfig(**{**SMALL, **changes})
    assert expected_shapes(config) == {k: v.shape for k, v in build_model(config).state_dict().items()}


def test_a_huge_size_in_config_json_fails_fast_in_one_line(run, tmp_path):
    folder = _copy(run, tmp_path, max_positions=2_000_000_000)
    with pytest.raises(ValueError, match=r"max_positions must be in 2\.\.65,536, got 2,000,000,000") as info:
        load_model(folder)  # before: a 14.9 GiB positional table and a MemoryError
    assert "\n" not in str(info.value)


def test_a_size_within_bounds_is_checked_against_the_weights_header(run, tmp_path, monkeypatch):
    folder = _copy(run, tmp_path, max_positions=4000)
    built = []
    monkeypatch.setattr("from_scratch.tasks.reverse.checkpoint.build_model", lambda c: built.append(c))
    with pytest.raises(ValueError, match=r"pos_encoding\.pe is \(64, 16\) there but \(4000, 16\) by config\.json$"):
        load_model(folder)
    assert built == []  # nothing was allocated for the wrong size


def test_a_shape_mismatch_is_one_short_line(run, tmp_path):
    folder = _copy(run, tmp_path, hidden_size=32)
    with pytest.raises(ValueError) as info:
        load_model(folder)
    message = str(info.value)
    assert re.search(r"token_embedding\.weight is \(20, 16\) there but \(20, 32\) by config\.json \(and \d+ more\)$",
                     message)
    assert len(message) < 300 and "\n" not in message
    folder = _copy(run, tmp_path / "b")
    weights = load(os.path.join(folder, "model.safetensors"))
    weights["extra.weight"] = np.zeros(3, np.float32)
    save(weights, os.path.join(folder, "model.safetensors"))
    with pytest.raises(ValueError, match="extra.weight is not part of this model$"):
        load_model(folder)


def test_resume_checks_the_train_state_header(run, tmp_path):
    folder = _copy(run, tmp_path, ff_size=48)
    os.remove(os.path.join(folder, "model.safetensors"))
    with pytest.raises(ValueError, match=r"cannot resume from \S+train_state\.safetensors: its model state does not "
                                         r"match its config\.json: \S+linear1\.weight is \(32, 16\) there but "
                                         r"\(48, 16\)"):
        train(out=folder, resume=True, log=lambda m: None)


def test_train_refuses_to_overwrite_a_run_unless_forced(run, tmp_path):
    folder = _copy(run, tmp_path)
    with pytest.raises(FileExistsError, match="already holds a run: pass resume=True .* force=True"):
        train(ReverseConfig(**SMALL), out=folder, log=lambda m: None)
    result = train(ReverseConfig(**{**SMALL, "steps": 6}), out=folder, force=True, log=lambda m: None)
    assert result.step == 6 and load_model(folder)[1].steps == 6


def test_a_resumed_run_reports_only_the_steps_it_ran(run, tmp_path):
    folder = _copy(run, tmp_path)
    logged = []
    result = train(ReverseConfig(**{**SMALL, "steps": 18}), out=folder, resume=True, progress=True,
                   log=logged.append)
    assert (result.start_step, result.step) == (12, 18)
    assert logged[-1].startswith("trained steps 13-18 in ") and "held-out exact match" in logged[-1]


class _Shell:
    def __init__(self, config):
        self.config = config


class _Terminal(io.StringIO):
    def isatty(self):
        return True


def test_progress_style_picks_the_notebook_bar_in_a_kernel_only():
    kernel = _Shell({"IPKernelApp": {"connection_file": "kernel-1.json"}})
    assert progress_style(io.StringIO(), shell=kernel) == "notebook"  # a kernel's stderr is no terminal
    assert progress_style(_Terminal(), shell=_Shell({"TerminalInteractiveShell": {}})) == "terminal"
    assert progress_style(_Terminal(), shell=None) == "terminal"
    assert progress_style(io.StringIO(), shell=None) == "plain"
    assert progress_style(io.StringIO()) == "plain"  # no IPython running under pytest


def test_plain_progress_prints_a_line_every_interval_and_at_the_end():
    now, stream = [0.0], io.StringIO()
    bar = PlainProgress(total=10, initial=2, stream=stream, interval=5.0, clock=lambda: now[0])
    for _ in range(6):
        now[0] += 2.0
        bar.set_postfix({"loss": "0.5000"})
        bar.update(1)
    bar.close()
    lines = stream.getvalue().splitlines()
    assert lines == ["step 5/10 (50%)  loss 0.5000  0.5 steps/s", "step 8/10 (80%)  loss 0.5000  0.5 steps/s"]
    now[0] += 1.0
    bar.update(1)
    bar.close()
    assert stream.getvalue().splitlines()[-1].startswith("step 9/10 (90%)")


def test_evaluate_groups_trained_and_longer_lengths(run):
    model, config = load_model(run)
    seqs = [np.array([1, 2]), np.array([3, 4, 5, 6, 7]), np.array([3]), np.array([1, 2, 3, 4, 5, 6])]
    result = evaluate(model, seqs, config.layout, trained_max_len=4)
    assert [(g["lengths"], g["n"], g["beyond_training"]) for g in result["groups"]] == \
        [([1, 2], 2, False), ([5, 6], 2, True)]
    assert [g["lengths"] for g in evaluate(model, seqs, config.layout)["groups"]] == [[1, 6]]
