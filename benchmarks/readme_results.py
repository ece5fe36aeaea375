"""Regenerate the README's results tables from the current code: one command, no hand-copied numbers.

    python benchmarks/readme_results.py                     # measure everything, then rewrite the README
    python benchmarks/readme_results.py names:lstm reverse  # re-measure some parts, keep the others
    python benchmarks/readme_results.py --render            # only rewrite the README from docs/results.json

Every part runs the current code (an example's ``main()`` at its default settings, the default
``bbml reverse train``, or the reversal ablation) and stores its figures, time, machine and load
average in ``docs/results.json``. The README's tables between ``<!-- results:NAME -->`` and
``<!-- /results:NAME -->`` are then rendered from that file, and nowhere else. Each example is also
run with ``--quick`` and that result stored, so the tests can tell in seconds whether the code
still gives the numbers the README shows (``tests/test_examples.py`` compares every quick run,
``tests/test_readme_results.py`` reruns the examples that take seconds in full and checks that
the README's tables are exactly what this script renders). Figures are compared to 0.2 %: other
CPUs round differently, and training carries rounding differences along.

Measuring everything takes about 15 minutes of CPU; on a busy machine, longer. To add a row for a
new ``names.py --model``, add it to ``NAMES_MODELS`` (and its line to ``SHOWS``) and run
``python benchmarks/readme_results.py names:<model>``.
"""
from __future__ import annotations

import argparse
import datetime
import importlib.util
import json
import os
import platform
import re
import sys
import tempfile
import time
from pathlib import Path
from types import ModuleType
from typing import Any, Callable

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "docs" / "results.json"
README = ROOT / "README.md"
EXAMPLES = ROOT / "examples"

NAMES_MODELS = ("rnn", "lstm", "gru", "transformer")  # one more model: one more entry here and in SHOWS
SHOWS = {  # the examples table's "what it shows" column, by part
    "autograd_basics": "the engine on scalars and tensors; every gradient checked against central finite "
                       "differences; the graph drawn with `from_scratch.viz.to_dot` (`graph.dot`, and "
                       "`graph.png` when Graphviz's `dot` is installed)",
    "mlp_regression": "`Sequential(Linear, ReLU, Linear, ReLU, Linear)` + `SGD` with momentum fits "
                      "sin(2x) + 0.3x from 256 noisy points; plots the fit",
    "breast_cancer_mlp": "standardised features, MLP with a sigmoid output, binary cross-entropy, `Adam` "
                         "with L2 weight decay; confusion matrix",
    "names:rnn": "character-level names: whole-sequence `RNN` over padded batches, loss ignores PAD",
    "names:lstm": "the same with `LSTM`",
    "names:gru": "the same with `GRU`",
    "names:transformer": "decoder-only Transformer: pre-norm `Encoder` stack under a causal mask, learned positions",
    "attention_demo": "scaled dot-product attention on toy keys and values; `MultiHeadAttention` step by step "
                      "with every shape printed (equals the layer exactly); a learned key → value lookup "
                      "with its attention weights drawn",
    "vit_digits": "Vision Transformer from the library's layers: 2x2 patches via reshape + `Linear`, class "
                  "token, learned positions, pre-norm encoder, `AdamW`, linear warmup + cosine; loss and "
                  "accuracy curves",
    "cnn_digits": "the next chapter on the same images and split: two `Conv2d` + `BatchNorm2d` + `ReLU` + "
                  "`MaxPool2d` blocks and a `Linear` head (21,482 parameters), batches from "
                  "`from_scratch.data.DataLoader`, `AdamW`, warmup + cosine, the ViT's one-pixel shifts",
    "reverse_transformer": "the reversal task written out against the library API: `make_batch` (padding, "
                           "masks), the training loop, a plain greedy decoder next to the library's cached "
                           "one, held-out evaluation, cross-attention heatmaps",
}
EXAMPLE_PARTS = ["autograd_basics", "mlp_regression", "breast_cancer_mlp",
                 *(f"names:{m}" for m in NAMES_MODELS), "attention_demo", "vit_digits", "cnn_digits",
                 "reverse_transformer"]
# The scalar figures each example's result is judged by (the test compares them with a fresh run).
FIGURES = {"autograd_basics": ("max_error",), "mlp_regression": ("test_mse", "baseline_mse"),
           "breast_cancer_mlp": ("accuracy", "majority"), "names": ("val_loss", "uniform"),
           "attention_demo": ("accuracy", "chance", "on_target"), "vit_digits": ("accuracy", "majority"),
           "cnn_digits": ("accuracy", "majority"),
           "reverse_transformer": ("exact_match", "token_accuracy")}
# Reversal ablation: (what changed, ReverseConfig overrides, seeds). Default row last.
ABLATION = [
    ("uniform lengths, no label smoothing, 600 steps", dict(length_sampling="uniform", label_smoothing=0.0), (0,)),
    ("uniform lengths, no label smoothing, 1,000 steps",
     dict(length_sampling="uniform", label_smoothing=0.0, steps=1000), (0,)),
    ("proportional lengths, no label smoothing, 600 steps", dict(label_smoothing=0.0), (0,)),
    ("**proportional lengths, label smoothing 0.1, 600 steps (default)**", {}, (0, 1, 2)),
]
EVAL_N, EVAL_SEED = 10000, 2024  # as benchmarks/reverse_results.py
TOLERANCE = dict(rel=2e-3, abs=1e-8)  # how close a fresh run's figures must be to the stored ones


def matches(part: str, fresh: dict[str, Any], stored: dict[str, Any]) -> list[str]:
    """The figures of ``part`` where a fresh run differs from the stored one (empty: all agree)."""
    keys = FIGURES[part.partition(":")[0]]
    return [f"{k}: fresh {fresh[k]!r}, stored {stored[k]!r}" for k in keys
            if not np.isclose(fresh[k], stored[k], rtol=TOLERANCE["rel"], atol=TOLERANCE["abs"])]


# ---------------------------------------------------------------- measuring

def load_example(name: str) -> ModuleType:
    """Import examples/<name>.py under a private module name (examples/names.py must not shadow `names`)."""
    if str(EXAMPLES) not in sys.path:
        sys.path.append(str(EXAMPLES))  # for `from _common import ...`
    spec = importlib.util.spec_from_file_location(f"example_{name}", EXAMPLES / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def example_argv(part: str, quick: bool, out: str) -> tuple[str, list[str]]:
    """The script and the arguments of one example part, e.g. ``names:lstm`` -> names.py --model lstm."""
    script, _, model = part.partition(":")
    return script, [*(["--model", model] if model else []), *(["--quick"] if quick else []), "--out", out]


def example_figures(part: str, quick: bool) -> dict[str, Any]:
    """Run one example (silently) and return its scalar figures (and the names table's extras)."""
    script, argv = example_argv(part, quick, tempfile.mkdtemp(prefix="bbml-readme-"))
    module = load_example(script)
    with open(os.devnull, "w") as devnull:
        stdout, stderr = sys.stdout, sys.stderr
        sys.stdout = sys.stderr = devnull
        try:
            result = module.main(argv)
        finally:
            sys.stdout, sys.stderr = stdout, stderr
    figures = {k: float(result[k]) for k in FIGURES[script]}
    if script == "names":
        figures.update(parameters=result["parameters"], samples=result["samples"], novel=result["novel"])
    return figures


def _context() -> dict[str, Any]:
    return {"date": datetime.date.today().isoformat(),
            "machine": f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}, "
                       f"NumPy {np.__version__}",
            "load_before": round(os.getloadavg()[0], 1)}


def measure_example(part: str) -> dict[str, Any]:
    entry = _context()
    start = time.process_time()  # CPU seconds: one BLAS thread, so the wall time of an idle machine
    entry["figures"] = example_figures(part, quick=False)
    entry["cpu_seconds"] = round(time.process_time() - start, 1)
    entry["quick"] = example_figures(part, quick=True)
    entry["load_after"] = round(os.getloadavg()[0], 1)
    return entry


def measure_reverse() -> dict[str, Any]:
    sys.path.insert(0, str(ROOT / "benchmarks"))
    from reverse_results import measure
    entry = _context()
    entry["figures"] = measure(n=EVAL_N, seed=EVAL_SEED, verbose=False)
    entry["load_after"] = round(os.getloadavg()[0], 1)
    return entry


def measure_ablation() -> dict[str, Any]:
    from from_scratch.tasks.reverse import ReverseConfig, evaluate, heldout_sequences, train
    entry, rows = _context(), []
    for label, overrides, seeds in ABLATION:
        errors = []
        for seed in seeds:
            config = ReverseConfig(**overrides, seed=seed)
            model = train(config, log=lambda m: None).model
            seqs = heldout_sequences(EVAL_SEED, EVAL_N, config.min_len, config.max_len, config.layout, stream=3)
            errors.append(round(EVAL_N * (1 - evaluate(model, seqs, config.layout)["exact_match"])))
        rows.append({"setting": label, "seeds": list(seeds), "errors": errors})
    entry["figures"] = {"rows": rows}
    entry["load_after"] = round(os.getloadavg()[0], 1)
    return entry


def measure_part(part: str) -> dict[str, Any]:
    if part == "reverse":
        return measure_reverse()
    if part == "ablation":
        return measure_ablation()
    return measure_example(part)


# ---------------------------------------------------------------- rendering

def _caption(entries: list[dict[str, Any]]) -> str:
    loads = [e[k] for e in entries for k in ("load_before", "load_after")]
    dates = sorted({e["date"] for e in entries})
    return (f"*Generated by `python benchmarks/readme_results.py` from `docs/results.json` "
            f"({', '.join(dates)}; {entries[0]['machine']}; load average {min(loads)}–{max(loads)}).*")


def _pct(x: float) -> str:
    return f"{100 * x:.2f} %"


RESULT_TEXT: dict[str, Callable[[dict[str, Any]], str]] = {
    "autograd_basics": lambda f: f"max \\|autograd − finite difference\\| = {f['max_error']:.1e} (float64)",
    "mlp_regression": lambda f: f"test MSE {f['test_mse']:.4f} (predicting the mean: {f['baseline_mse']:.2f})",
    "breast_cancer_mlp": lambda f: f"**{_pct(f['accuracy'])}** test accuracy on a fixed stratified 80/20 split "
                                   f"(majority class: {100 * f['majority']:.1f} %)",
    "names": lambda f: f"validation loss **{f['val_loss']:.3f}** nats/char (uniform: log 27 = {f['uniform']:.3f})",
    "attention_demo": lambda f: f"lookup accuracy {100 * f['accuracy']:.0f} % (chance {100 * f['chance']:.1f} %); "
                                f"{100 * f['on_target']:.1f} % of the attention weight on the matching key",
    "vit_digits": lambda f: f"**{_pct(f['accuracy'])}** test accuracy on a fixed stratified split (360 test "
                            f"images; majority class: {100 * f['majority']:.1f} %)",
    "cnn_digits": lambda f: f"**{_pct(f['accuracy'])}** test accuracy on the ViT's split (360 test images; "
                            f"majority class: {100 * f['majority']:.1f} %)",
    "reverse_transformer": lambda f: f"**{_pct(f['exact_match'])}** exact match on 2,000 held-out sequences of "
                                     f"lengths 1..16",
}


def render_examples(results: dict[str, Any]) -> str:
    lines = ["| example | what it shows | measured result | CPU time |", "|---|---|---|---|"]
    entries = [results[p] for p in EXAMPLE_PARTS if p in results]
    for part in EXAMPLE_PARTS:
        if part not in results:
            continue
        script, argv = example_argv(part, False, "")
        shown = f"`{script}.py{''.join(' ' + a for a in argv[:-2])}`"
        text = RESULT_TEXT[script](results[part]["figures"])
        seconds = results[part]["cpu_seconds"]
        lines.append(f"| {shown} | {SHOWS[part]} | {text} | {seconds:.{1 if seconds < 10 else 0}f} s |")
    return "\n".join(lines) + "\n\n" + _caption(entries)


def render_names(results: dict[str, Any]) -> str:
    parts = [f"names:{m}" for m in NAMES_MODELS if f"names:{m}" in results]
    lines = ["| model | parameters | validation loss (nats/char) | samples at temperature 0.8 "
             "(\\* = not in the census lists) |", "|---|---|---|---|"]
    lines.append(f"| uniform guess | – | {results[parts[0]]['figures']['uniform']:.3f} | |")
    best = min(results[p]["figures"]["val_loss"] for p in parts)
    for part in parts:
        f = results[part]["figures"]
        loss = f"{f['val_loss']:.3f}"
        samples = ", ".join(s + ("\\*" if novel else "") for s, novel in zip(f["samples"], f["novel"]))
        name = {"rnn": "RNN", "lstm": "LSTM", "gru": "GRU"}.get(part[6:], part[6:].capitalize())
        lines.append(f"| {name} | {f['parameters']:,} | {f'**{loss}**' if f['val_loss'] == best else loss} "
                     f"| {samples} |")
    return "\n".join(lines) + "\n\n" + _caption([results[p] for p in parts])


def render_reverse(results: dict[str, Any]) -> str:
    entry = results["reverse"]
    f = entry["figures"]
    inside, beyond = f["trained_lengths"], f["longer_lengths"]
    lo, hi = inside["by_length"][0]["length"], inside["by_length"][-1]["length"]
    blo, bhi = beyond["by_length"][0]["length"], beyond["by_length"][-1]["length"]
    lines = ["| | |", "|---|---|",
             f"| `bbml reverse train` (default), wall clock, whole command | **{f['train_seconds']:.0f} s** |",
             f"| exact match, {inside['n']:,} held-out sequences of lengths {lo}..{hi} | "
             f"**{_pct(inside['exact_match'])}** (token accuracy {_pct(inside['token_accuracy'])}) |",
             f"| greedy decoding of those {inside['n']:,} | {inside['seconds']:.1f} s |",
             f"| exact match on lengths {blo}..{bhi} ({beyond['n']:,} sequences) | {_pct(beyond['exact_match'])} "
             f"(token accuracy {100 * beyond['token_accuracy']:.1f} %) |", "",
             "| length | " + " | ".join(str(r["length"]) for r in beyond["by_length"]) + " |",
             "|---|" + "---|" * len(beyond["by_length"]),
             "| exact match | " + " | ".join(_pct(r["exact_match"]) for r in beyond["by_length"]) + " |",
             "| token accuracy | " + " | ".join(f"{100 * r['token_accuracy']:.1f} %" for r in beyond["by_length"])
             + " |"]
    return "\n".join(lines) + "\n\n" + _caption([entry])


def _errors(row: dict[str, Any]) -> str:
    errors, seeds = row["errors"], row["seeds"]
    span = str(errors[0]) if min(errors) == max(errors) else f"{min(errors)}-{max(errors)}"
    return f"{span} (seed{'s' if len(seeds) > 1 else ''} {', '.join(map(str, seeds))})"


def render_ablation(results: dict[str, Any]) -> str:
    entry = results["ablation"]
    lines = [f"| setting (everything else as the default) | errors in {EVAL_N:,} |", "|---|---|"]
    lines += [f"| {row['setting']} | {_errors(row)} |" for row in entry["figures"]["rows"]]
    return "\n".join(lines) + "\n\n" + _caption([entry])


# table -> (its renderer, the parts it needs measured)
TABLES: dict[str, tuple[Callable[[dict[str, Any]], str], list[str]]] = {
    "examples": (render_examples, EXAMPLE_PARTS), "names": (render_names, [f"names:{m}" for m in NAMES_MODELS]),
    "reverse": (render_reverse, ["reverse"]), "ablation": (render_ablation, ["ablation"])}


def render_readme(text: str, results: dict[str, Any]) -> str:
    """Replace each ``<!-- results:NAME -->`` ... ``<!-- /results:NAME -->`` region with its table.

    A table some of whose parts were never measured is left as it is.
    """
    for name, (render, needs) in TABLES.items():
        if not all(part in results for part in needs):
            continue
        pattern = re.compile(rf"(<!-- results:{name} -->\n).*?(\n<!-- /results:{name} -->)", re.S)
        if not pattern.search(text):
            raise ValueError(f"README.md has no <!-- results:{name} --> ... <!-- /results:{name} --> region")
        text = pattern.sub(lambda m: m.group(1) + render(results) + m.group(2), text)
    return text


def main(argv: list[str] | None = None) -> None:
    parts = [*EXAMPLE_PARTS, "reverse", "ablation"]
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("parts", nargs="*", metavar="PART",
                        help=f"what to re-measure (default: everything): {', '.join(parts)}")
    parser.add_argument("--render", action="store_true", help="measure nothing; rewrite the README only")
    args = parser.parse_args(argv)
    unknown = sorted(set(args.parts) - set(parts))
    if unknown:
        parser.error(f"unknown part(s) {', '.join(unknown)}: choose from {', '.join(parts)}")
    results = json.loads(RESULTS.read_text()) if RESULTS.exists() else {}
    for part in [] if args.render else (args.parts or parts):
        print(f"measuring {part} ...", flush=True)
        results[part] = measure_part(part)
        RESULTS.write_text(json.dumps(results, indent=1, sort_keys=True) + "\n")  # after each part: resumable
    README.write_text(render_readme(README.read_text(), results))
    print(f"wrote {RESULTS.relative_to(ROOT)} and the tables in README.md")


if __name__ == "__main__":
    main()
