"""The README's results tables are what benchmarks/readme_results.py renders from docs/results.json,
and the examples that take seconds still give, in full, the figures stored there."""
from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _generator():
    spec = importlib.util.spec_from_file_location("readme_results", ROOT / "benchmarks" / "readme_results.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


RR = _generator()
RESULTS = json.loads(RR.RESULTS.read_text())
FAST = [p for p in RR.EXAMPLE_PARTS if RESULTS[p]["cpu_seconds"] < 3]  # full runs that take seconds


def test_every_table_is_measured_and_the_readme_shows_exactly_its_rendering():
    assert set(RESULTS) == {*RR.EXAMPLE_PARTS, "reverse", "ablation"}
    text = RR.README.read_text()
    assert RR.render_readme(text, RESULTS) == text, "README tables edited by hand: run benchmarks/readme_results.py"


def test_the_render_shows_the_stored_figures():
    results = json.loads(json.dumps(RESULTS))
    results["names:transformer"]["figures"]["val_loss"] = 1.2345
    results["vit_digits"]["figures"]["accuracy"] = 0.5
    text = RR.render_readme(RR.README.read_text(), results)
    assert "validation loss **1.234** nats/char" in text and "| Transformer | 104,732 | **1.234** |" in text
    assert "**50.00 %** test accuracy" in text


def test_a_new_names_model_is_one_more_row(monkeypatch):
    results = json.loads(json.dumps(RESULTS))
    results["names:mingru"] = results["names:lstm"]
    monkeypatch.setattr(RR, "NAMES_MODELS", (*RR.NAMES_MODELS, "mingru"))
    assert RR.render_names(results).count("| Mingru | 87,452 |") == 1


@pytest.mark.parametrize("part", FAST)
def test_a_full_run_gives_the_stored_figures(part):
    assert FAST, "no example is fast enough to rerun in full"
    assert RR.matches(part, RR.example_figures(part, quick=False), RESULTS[part]["figures"]) == []
