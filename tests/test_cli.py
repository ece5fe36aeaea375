"""The `bbml` command: help, train/predict/eval/attention, one-line errors, interruption and resume."""
import io
import json
import os
import re
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from from_scratch.cli import main
from from_scratch.serialization import load, load_metadata

TINY = ["--hidden-size", "32", "--layers", "1", "--heads", "2", "--ff-size", "64", "--max-len", "4",
        "--lr", "0.01", "--warmup", "20", "--batch-size", "32", "--eval-every", "100"]
BBML = os.path.join(os.path.dirname(sys.executable), "bbml")


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    out = str(tmp_path_factory.mktemp("cli") / "run")
    assert main(["reverse", "train", "--steps", "400", "--out", out, *TINY]) == 0
    return out


def _error_line(capsys):
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("bbml: error: ") and "Traceback" not in err
    return err


@pytest.mark.parametrize("argv", [[], ["reverse"], ["reverse", "train"], ["reverse", "predict"],
                                  ["reverse", "eval"], ["reverse", "attention"]])
def test_help_everywhere_shows_defaults(argv, capsys):
    with pytest.raises(SystemExit) as info:
        main([*argv, "--help"])
    assert info.value.code == 0
    out = capsys.readouterr().out
    assert out.startswith("usage: bbml")
    if len(argv) == 2:
        assert "(default: " in out


def test_eval_table_marks_lengths_beyond_training(run, capsys):
    assert sorted(os.listdir(run)) == ["config.json", "loss.png", "metrics.csv", "model.safetensors",
                                       "train_state.safetensors"]
    assert main(["reverse", "eval", "--ckpt", run, "--n", "300", "--max-len", "6"]) == 0
    lines = capsys.readouterr().out.splitlines()
    rows = [line.split() for line in lines if line.strip()[:1].isdigit()]
    assert [r[0] for r in rows] == ["1", "2", "3", "4", "5", "6", "1..4", "5..6"]  # no row mixing the two
    assert all(("longer than trained on" in line) == (line.split()[0] in ("5", "6", "5..6"))
               for line in lines[2:])
    assert float(rows[-2][2].rstrip("%")) > 90 and float(rows[-1][2].rstrip("%")) < 50


def test_train_output(tmp_path, capsys):
    assert main(["reverse", "train", "--steps", "30", "--out", str(tmp_path), *TINY]) == 0
    out, err = capsys.readouterr()
    assert "exact match" in out and "samples:" in out and " ->  " in out and "trained 30 steps in " in out
    assert re.match(r"step 30/30 \(100%\)  loss [\d.]+  lr [\d.e+-]+  exact [\d.]+%", err)  # a pipe: plain lines
    table = [line for line in out.splitlines() if re.match(r"\s+\d+\s+\d+\s+[\d.]+%", line)]
    assert [int(line.split()[0]) for line in table] == [1, 2, 3, 4]


def test_predict_from_arguments(run, capsys):
    assert main(["reverse", "predict", "--ckpt", run, "5", "12", "7"]) == 0
    assert capsys.readouterr().out == "7 12 5\n"
    assert main(["reverse", "predict", "--ckpt", run, "--beam", "3", "9", "1", "2", "17"]) == 0
    assert capsys.readouterr().out == "17 2 1 9\n"


def test_predict_from_stdin_in_batches(run, capsys, monkeypatch):
    rng = np.random.default_rng(0)
    seqs = [rng.integers(1, 18, size=rng.integers(1, 5)) for _ in range(1000)]
    monkeypatch.setattr(sys, "stdin", io.StringIO("".join(" ".join(map(str, s)) + "\n" for s in seqs)))
    assert main(["reverse", "predict", "--ckpt", run, "--batch-size", "128"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 1000
    correct = [line == " ".join(map(str, s[::-1])) for line, s in zip(lines, seqs)]
    assert np.mean(correct) > 0.9


def test_eval_json(run, capsys):
    assert main(["reverse", "eval", "--ckpt", run, "--n", "200", "--max-len", "5", "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["n"] == 200 and result["trained_lengths"] == [1, 4]
    assert [r["beyond_training"] for r in result["by_length"]] == [False] * 4 + [True]
    assert 0 <= result["exact_match"] <= 1


def test_attention_writes_a_png(run, tmp_path, capsys):
    path = str(tmp_path / "att.png")
    assert main(["reverse", "attention", "--ckpt", run, "3", "1", "4", "--out", path]) == 0
    assert "1 layers x 2 heads" in capsys.readouterr().out
    with open(path, "rb") as f:
        assert f.read(8) == b"\x89PNG\r\n\x1a\n"


@pytest.mark.parametrize("argv, stdin, message", [
    (["5", "x"], None, "unknown token 'x'"),
    (["5", "18"], None, "unknown token 18"),
    (["0"], None, "unknown token 0"),
    (["1"] * 64, None, "longer than this model's maximum of 63"),
    ([], "", "empty input"),
    ([], "1 2\n\n", "stdin line 2: empty input"),
    ([], "1 2\n3 zz 4\n", "stdin line 2: unknown token 'zz'"),
])
def test_predict_errors_are_one_line(run, capsys, monkeypatch, argv, stdin, message):
    if stdin is not None:
        monkeypatch.setattr(sys, "stdin", io.StringIO(stdin))
    assert main(["reverse", "predict", "--ckpt", run, *argv]) == 1
    assert message in _error_line(capsys)
    assert capsys.readouterr().out == ""


def test_missing_and_foreign_checkpoints_are_one_line_errors(tmp_path, capsys):
    for command in (["predict", "1"], ["eval"], ["attention", "1"]):
        assert main(["reverse", *command, "--ckpt", str(tmp_path / "nope")]) == 1
        assert "no checkpoint folder" in _error_line(capsys)
        assert main(["reverse", *command, "--ckpt", str(tmp_path)]) == 1
        assert "not a bbml reverse checkpoint" in _error_line(capsys)
    (tmp_path / "config.json").write_text('{"task": "translate", "config": {}}')
    assert main(["reverse", "predict", "--ckpt", str(tmp_path), "1"]) == 1
    assert "task is 'translate'" in _error_line(capsys)


def test_eval_and_train_reject_bad_settings(run, tmp_path, capsys):
    assert main(["reverse", "eval", "--ckpt", run, "--max-len", "80"]) == 1
    assert "--max-len" in _error_line(capsys)
    assert main(["reverse", "train", "--hidden-size", "30", "--heads", "4", "--out", str(tmp_path)]) == 1
    assert "--hidden-size 30 must be a multiple of --heads 4" in _error_line(capsys)


@pytest.mark.parametrize("argv, message", [
    (["--steps", "30"], "--steps 30 must be greater than --warmup 100 (the warmup steps): raise --steps or lower "
                        "--warmup, e.g. --warmup 5"),
    (["--batch-size", "0"], "--batch-size must be in 1..65,536, got 0"),
    (["--hidden-size", "-8"], "--hidden-size must be in 1..16,384, got -8"),
    (["--max-len", "80"], "--max-len 80 needs --max-positions above it"),
    (["--min-len", "5", "--max-len", "3"], "--min-len 5 must not exceed --max-len 3"),
    (["--dropout", "1.5"], "--dropout must be in [0, 1), got 1.5"),
])
def test_train_errors_name_the_flags(argv, message, tmp_path, capsys):
    assert main(["reverse", "train", "--out", str(tmp_path / "run"), *argv]) == 1
    line = _error_line(capsys)
    assert message in line and "ReverseConfig" not in line and "max_positions" not in line
    assert not (tmp_path / "run").exists()


def test_other_commands_reject_nonsense_sizes(run, capsys):
    for argv, message in ((["predict", "--batch-size", "0", "1"], "--batch-size must be at least 1"),
                          (["predict", "--beam", "0", "1"], "--beam"), (["eval", "--n", "0"], "--n and --beam")):
        assert main(["reverse", *argv[:1], "--ckpt", run, *argv[1:]]) == 1
        assert message in _error_line(capsys)


def test_train_refuses_to_overwrite_and_resume_keeps_settings(run, tmp_path, capsys):
    assert main(["reverse", "train", "--out", run, *TINY]) == 1
    assert "already holds a run" in _error_line(capsys)
    assert main(["reverse", "train", "--out", run, "--resume", "--lr", "0.5"]) == 1
    assert "--lr 0.5 differs" in _error_line(capsys)
    assert main(["reverse", "train", "--out", str(tmp_path), "--resume"]) == 1
    assert "not a bbml reverse checkpoint" in _error_line(capsys)
    (tmp_path / "config.json").write_text(open(os.path.join(run, "config.json")).read())
    assert main(["reverse", "train", "--out", str(tmp_path), "--resume"]) == 1
    assert "no train_state.safetensors" in _error_line(capsys)


def test_resume_compares_every_flag_given_even_at_its_default(tmp_path, capsys):
    out = str(tmp_path / "run")
    assert main(["reverse", "train", "--steps", "30", "--out", out, *TINY]) == 0  # hidden 32, ff 64
    capsys.readouterr()
    for flag, value, saved in (("--hidden-size", "64", "32"), ("--ff-size", "128", "64"), ("--steps", "30", None),
                               ("--norm-first", None, None), ("--no-norm-first", None, "True")):
        given = [flag] + ([value] if value else [])
        code = main(["reverse", "train", "--out", out, "--resume", *given])
        if saved is None:  # --steps may change; --norm-first equals the run's setting
            assert code == 0
            capsys.readouterr()
        else:
            assert code == 1
            assert f"differs from the run in {out!r} ({saved})" in _error_line(capsys)


def test_a_file_given_as_a_run_folder_says_so(run, tmp_path, capsys):
    weights = os.path.join(run, "model.safetensors")
    for argv in (["predict", "--ckpt", weights, "1"], ["eval", "--ckpt", weights]):
        assert main(["reverse", *argv]) == 1
        assert f"--ckpt {weights!r} is a file; --ckpt takes the run folder that holds it: --ckpt {run}" \
            in _error_line(capsys)
    assert main(["reverse", "train", "--out", weights]) == 1
    assert "is a file; --out takes a run folder" in _error_line(capsys)


def test_predict_warns_about_inputs_longer_than_trained(run, capsys):
    assert main(["reverse", "predict", "--ckpt", run, *["3"] * 6]) == 0
    out, err = capsys.readouterr()
    assert out.count("\n") == 1
    assert err == ("warning: 1 input(s) longer than the 4 tokens this model was trained on (longest 6): "
                   "expect wrong answers beyond length 4\n")
    assert main(["reverse", "predict", "--ckpt", run, "3", "1"]) == 0
    assert capsys.readouterr().err == ""


def test_predict_says_it_reads_stdin_at_a_terminal(run, capsys, monkeypatch):
    class Terminal(io.StringIO):
        def isatty(self):
            return True

    monkeypatch.setattr(sys, "stdin", Terminal("1 2\n"))
    assert main(["reverse", "predict", "--ckpt", run]) == 0
    out, err = capsys.readouterr()
    assert out == "2 1\n" and err.startswith("reading sequences from stdin, one per line; end with Ctrl-D")


def test_attention_refuses_a_name_that_is_not_an_image_type(run, tmp_path, capsys):
    assert main(["reverse", "attention", "--ckpt", run, "3", "1", "--out", str(tmp_path / "a.txt")]) == 1
    assert ".txt is not an image type; end the name in one of" in _error_line(capsys)
    assert not (tmp_path / "a.txt").exists()
    assert main(["reverse", "attention", "--ckpt", run, "3", "1", "--out", str(tmp_path / "a.svg")]) == 0
    assert (tmp_path / "a.svg").read_text().lstrip().startswith("<?xml")


def test_a_tampered_run_folder_is_one_line(run, tmp_path, capsys):
    folder = tmp_path / "copy"
    os.makedirs(folder)
    for name in ("model.safetensors", "config.json"):
        (folder / name).write_bytes(open(os.path.join(run, name), "rb").read())
    data = json.loads((folder / "config.json").read_text())
    for change, message in (({"max_positions": 2_000_000_000}, "max_positions must be in 2..65,536"),
                            ({"hidden_size": 64}, "does not match its config.json: token_embedding.weight")):
        (folder / "config.json").write_text(json.dumps({**data, "config": {**data["config"], **change}}))
        assert main(["reverse", "predict", "--ckpt", str(folder), "1"]) == 1
        line = _error_line(capsys)
        assert message in line and len(line) < 400


def test_resume_through_the_cli_extends_a_run(tmp_path, capsys):
    out = str(tmp_path / "run")
    assert main(["reverse", "train", "--steps", "30", "--out", out, *TINY]) == 0
    assert main(["reverse", "train", "--steps", "40", "--out", out, "--resume", *TINY]) == 0
    printed = capsys.readouterr().out
    assert "resuming" in printed and "trained steps 31-40 in " in printed  # not "trained 40 steps"
    assert load_metadata(os.path.join(out, "train_state.safetensors"))["step"] == "40"
    with open(os.path.join(out, "config.json")) as f:
        assert json.load(f)["config"]["steps"] == 40
    assert main(["reverse", "train", "--steps", "25", "--out", out, "--force", *TINY]) == 0  # starts afresh
    with open(os.path.join(out, "metrics.csv")) as f:
        assert [line.split(",")[0] for line in f.read().splitlines()] == ["step", "10", "20", "25"]


def test_installed_entry_point_predicts(run):
    done = subprocess.run([BBML, "reverse", "predict", "--ckpt", run, "3", "1", "4"], capture_output=True,
                          text=True, timeout=60)
    assert done.returncode == 0 and done.stdout == "4 1 3\n"
    done = subprocess.run([BBML, "reverse", "predict", "--ckpt", run, "99"], capture_output=True, text=True,
                          timeout=60)
    assert done.returncode == 1 and done.stderr.startswith("bbml: error: unknown token 99")
    assert done.stderr.count("\n") == 1


def test_sigterm_saves_a_resumable_checkpoint(tmp_path):
    out = str(tmp_path / "run")
    state = os.path.join(out, "train_state.safetensors")
    proc = subprocess.Popen([BBML, "reverse", "train", "--steps", "100000", "--checkpoint-every", "5", "--out", out,
                             *TINY], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 60
        while not os.path.exists(state) and time.monotonic() < deadline and proc.poll() is None:
            time.sleep(0.05)
        proc.send_signal(signal.SIGTERM)
        stdout, stderr = proc.communicate(timeout=60)
    finally:
        proc.kill()
    assert proc.returncode == 128 + signal.SIGTERM
    assert "Traceback" not in stderr and "continue with --resume" in stdout
    step = int(load_metadata(state)["step"])
    assert 5 <= step < 100000
    weights = load(os.path.join(out, "model.safetensors"))
    assert main(["reverse", "train", "--out", out, "--resume", "--steps", str(step + 25)]) == 0
    assert load_metadata(state)["step"] == str(step + 25)
    assert any(not np.array_equal(weights[k], v) for k, v in load(os.path.join(out, "model.safetensors")).items())
