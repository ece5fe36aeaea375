"""Measure the headline result: the default `bbml reverse train`, then exact match on fresh sequences.

Runs the installed `bbml reverse train` (defaults unless extra flags are given after ``--``) as a
subprocess and times the whole command, then decodes 10,000 fresh random sequences of lengths
1..16 (exact match: every token up to and including EOS) and 10,000 of lengths 17..24, longer
than anything trained on. ``benchmarks/readme_results.py reverse`` calls ``measure`` for the README.

    python benchmarks/reverse_results.py                     # train with the defaults, then evaluate
    python benchmarks/reverse_results.py --ckpt runs/reverse # only evaluate an existing run
    python benchmarks/reverse_results.py -- --steps 400      # pass flags to `bbml reverse train`
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from typing import Any, Sequence

from from_scratch.tasks.reverse import evaluate, format_table, heldout_sequences, load_model

STREAM = 3  # a held-out generator stream that neither training nor `bbml reverse eval` uses


def _bbml() -> list[str]:
    exe = os.path.join(os.path.dirname(sys.executable), "bbml")
    return [exe] if os.path.exists(exe) else [shutil.which("bbml") or "bbml"]


def measure(ckpt: str | None = None, train_args: Sequence[str] = (), n: int = 10000, seed: int = 2024,
            verbose: bool = True) -> dict[str, Any]:
    """Train with `bbml reverse train` (unless ``ckpt`` names a run), then evaluate; return the results."""
    say = print if verbose else (lambda *a, **k: None)
    results: dict[str, Any] = {"machine": f"{platform.machine()}, {os.cpu_count()} cores, "
                                          f"Python {platform.python_version()}"}
    folder = ckpt
    if folder is None:
        given = list(train_args)
        folder = given[given.index("--out") + 1] if "--out" in given else tempfile.mkdtemp(prefix="bbml-reverse-")
        command = _bbml() + ["reverse", "train", "--out", folder, *given]
        say("$", " ".join(command[-len(given) - 4:]), flush=True)
        start = time.perf_counter()
        subprocess.run(command, check=True, stdout=None if verbose else subprocess.DEVNULL)
        results["train_seconds"] = round(time.perf_counter() - start, 1)
        results["train_args"] = given
        say(f"\n`bbml reverse train` took {results['train_seconds']} s (wall clock, whole command)\n")
    model, config = load_model(folder)
    layout = config.layout
    for name, lo, hi in (("trained_lengths", config.min_len, config.max_len),
                         ("longer_lengths", config.max_len + 1, config.max_len + 8)):
        seqs = heldout_sequences(seed, n, lo, hi, layout, stream=STREAM)
        start = time.perf_counter()
        result = evaluate(model, seqs, layout, trained_max_len=config.max_len)
        result["seconds"] = round(time.perf_counter() - start, 2)
        results[name] = result
        say(f"{n} fresh sequences of lengths {lo}..{hi}: exact match {100 * result['exact_match']:.2f}%, "
            f"decoded in {result['seconds']} s")
        say(format_table(result) + "\n")
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--ckpt", help="evaluate this run folder instead of training a new one")
    parser.add_argument("--n", type=int, default=10000, help="sequences per evaluation")
    parser.add_argument("--seed", type=int, default=2024, help="seed of the evaluation sequences")
    parser.add_argument("--json", help="also write the results to this JSON file")
    parser.add_argument("train_args", nargs="*", help="flags for `bbml reverse train` (after --)")
    args = parser.parse_args()
    results = measure(args.ckpt, args.train_args, args.n, args.seed)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=2)


if __name__ == "__main__":
    main()
