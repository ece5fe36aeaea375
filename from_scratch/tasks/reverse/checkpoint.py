"""The reversal run's settings and its folder on disk: config.json, weights, resumable state, metrics.

A run folder holds:

    config.json               the ReverseConfig, the token layout and the library version
    model.safetensors         the weights, all that ``predict``/``eval``/``attention`` need
    train_state.safetensors   weights, optimizer and schedule state, step and RNG state: ``--resume``
    metrics.csv               step, loss, lr, held-out exact match
    loss.png                  the loss curve with exact match on a second axis

Every file is written to a temporary file and renamed, so a run killed mid-write keeps the previous
version. ``train_state.safetensors`` is written last and alone decides where a resumed run continues.
Nothing is pickled: arrays go to safetensors, everything else to JSON.
"""
from __future__ import annotations

import csv
import io
import json
import os
from dataclasses import asdict, dataclass, fields
from typing import Any

import numpy as np

from ... import __version__
from ...nn.transformer import Transformer
from ...random import get_rng_state, manual_seed, set_rng_state
from ...serialization import atomic_write, load, load_metadata, save
from .data import LENGTH_SAMPLING, TokenLayout

__all__ = ["ReverseConfig", "build_model", "write_config", "read_config", "load_model", "save_train_state",
           "load_train_state", "write_metrics", "read_metrics", "has_train_state", "clear_run"]

TASK = "reverse"
CONFIG, MODEL, STATE, METRICS, PLOT = ("config.json", "model.safetensors", "train_state.safetensors",
                                        "metrics.csv", "loss.png")
METRIC_FIELDS = ("step", "loss", "lr", "exact_match")


@dataclass
class ReverseConfig:
    """Everything that defines a reversal run: model shape, data, optimisation, bookkeeping."""

    # model
    vocab_size: int = 20
    hidden_size: int = 64
    num_layers: int = 2
    num_heads: int = 4
    ff_size: int = 128
    dropout: float = 0.0
    norm_first: bool = True
    max_positions: int = 64  # the positional table: the longest source is max_positions - 1
    # data
    min_len: int = 1
    max_len: int = 16
    # Training lengths drawn in proportion to the length: the long sequences are the hard ones, and they
    # cost no more than short ones (every batch is padded to its longest). Held-out sets stay uniform.
    length_sampling: str = "proportional"
    # optimisation
    steps: int = 600
    batch_size: int = 64
    lr: float = 5e-3
    warmup: int = 100
    label_smoothing: float = 0.1  # measured: removes the last 1-2 errors in 10,000 at no cost
    clip_norm: float = 1.0
    seed: int = 0
    # bookkeeping
    log_every: int = 10
    eval_every: int = 200
    eval_size: int = 500
    checkpoint_every: int = 200

    def __post_init__(self) -> None:
        TokenLayout(self.vocab_size)  # checks vocab_size
        checks = [
            (self.hidden_size > 0 and self.num_heads > 0 and self.hidden_size % self.num_heads == 0,
             f"hidden_size {self.hidden_size} must be a positive multiple of heads {self.num_heads}"),
            (self.num_layers > 0 and self.ff_size > 0, "layers and ff_size must be positive"),
            (0 <= self.dropout < 1, f"dropout must be in [0, 1), got {self.dropout}"),
            (1 <= self.min_len <= self.max_len, f"need 1 <= min_len <= max_len, got {self.min_len} and "
                                                f"{self.max_len}"),
            (self.length_sampling in LENGTH_SAMPLING, f"length_sampling must be one of {LENGTH_SAMPLING}, "
                                                      f"got {self.length_sampling!r}"),
            (self.max_len < self.max_positions, f"max_len {self.max_len} needs max_positions > max_len "
                                                f"(the target is one longer), got {self.max_positions}"),
            (self.steps > self.warmup >= 0, f"need steps > warmup >= 0, got steps {self.steps}, "
                                            f"warmup {self.warmup}"),
            (self.batch_size > 0 and self.lr > 0, f"batch_size and lr must be positive, got "
                                                  f"{self.batch_size} and {self.lr}"),
            (min(self.log_every, self.eval_every, self.eval_size, self.checkpoint_every) > 0,
             "log_every, eval_every, eval_size and checkpoint_every must be positive"),
        ]
        for ok, message in checks:
            if not ok:
                raise ValueError(f"ReverseConfig: {message}")

    @property
    def layout(self) -> TokenLayout:
        return TokenLayout(self.vocab_size)

    def to_json(self) -> dict[str, Any]:
        return {"task": TASK, "library_version": __version__, "config": asdict(self),
                "tokens": self.layout.to_dict()}

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> "ReverseConfig":
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in values.items() if k in known})


def build_model(config: ReverseConfig) -> Transformer:
    """Seed the library's generator with ``config.seed`` and build the Transformer."""
    manual_seed(config.seed)
    return Transformer(config.vocab_size, config.hidden_size, config.num_layers, config.num_heads,
                       config.ff_size, config.max_positions, config.dropout, config.norm_first)


# ---------------------------------------------------------------- config and weights

def write_config(folder: str, config: ReverseConfig) -> None:
    atomic_write(os.path.join(folder, CONFIG), (json.dumps(config.to_json(), indent=2) + "\n").encode())


def read_config(folder: str) -> ReverseConfig:
    """Read a run folder's config.json, or raise a one-line error saying what is wrong with the folder."""
    if not os.path.isdir(folder):
        raise FileNotFoundError(f"no checkpoint folder {folder!r} (train one with: bbml reverse train --out {folder})")
    path = os.path.join(folder, CONFIG)
    if not os.path.isfile(path):
        raise ValueError(f"{folder!r} is not a bbml reverse checkpoint: it has no {CONFIG}")
    try:
        with open(path, encoding="utf-8") as f:
            data = json.load(f)
        if data.get("task") != TASK:
            raise ValueError(f"its task is {data.get('task')!r}, not {TASK!r}")
        return ReverseConfig.from_dict(data["config"])
    except (ValueError, KeyError, TypeError, AttributeError) as e:
        raise ValueError(f"{folder!r} is not a bbml reverse checkpoint: {CONFIG} is unreadable ({e})") from None


def load_model(folder: str) -> tuple[Transformer, ReverseConfig]:
    """Rebuild the model saved in a run folder, in eval mode."""
    config = read_config(folder)
    path = os.path.join(folder, MODEL)
    if not os.path.isfile(path):
        raise ValueError(f"{folder!r} has a {CONFIG} but no {MODEL}: training never reached a checkpoint")
    model = build_model(config)
    try:
        model.load_state_dict(load(path))
    except (KeyError, ValueError) as e:
        raise ValueError(f"{path} does not match its {CONFIG}: {e}") from None
    return model.eval(), config


def has_train_state(folder: str) -> bool:
    return os.path.isfile(os.path.join(folder, STATE))


def clear_run(folder: str) -> None:
    """Remove a previous run's files, so a fresh run in the same folder never mixes with stale ones."""
    for name in (STATE, MODEL, METRICS, PLOT, CONFIG):
        path = os.path.join(folder, name)
        if os.path.isfile(path):
            os.remove(path)


# ---------------------------------------------------------------- resumable state

def _prefixed(prefix: str, arrays: dict[str, Any]) -> dict[str, np.ndarray]:
    return {f"{prefix}.{k}": np.asarray(v) for k, v in arrays.items()}


def _unprefixed(prefix: str, arrays: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    return {k[len(prefix) + 1:]: v for k, v in arrays.items() if k.startswith(prefix + ".")}


def save_train_state(folder: str, model: Any, optimizer: Any, scheduler: Any, step: int,
                     pending_losses: list[float] = ()) -> None:
    """Write the weights alone (for inference), then everything a resumed run needs (the commit point).

    ``pending_losses`` are the losses since the last metrics row, so a resumed run logs the same rows.
    """
    meta = {"task": TASK, "step": str(step), "library_version": __version__}
    save(model.state_dict(), os.path.join(folder, MODEL), metadata=meta)
    arrays = {**_prefixed("model", model.state_dict()), **_prefixed("optimizer", optimizer.state_dict()),
              **_prefixed("scheduler", scheduler.state_dict()),
              "pending_losses": np.array(pending_losses, dtype=np.float64)}
    save(arrays, os.path.join(folder, STATE), metadata={**meta, "rng_state": json.dumps(get_rng_state())})


def load_train_state(folder: str, model: Any, optimizer: Any, scheduler: Any) -> tuple[int, list[float]]:
    """Restore weights, optimizer, schedule and RNG state; return the step to continue from and pending losses."""
    path = os.path.join(folder, STATE)
    try:
        meta, arrays = load_metadata(path), load(path)
        if meta.get("task") != TASK:
            raise ValueError(f"its task is {meta.get('task')!r}")
        model.load_state_dict(_unprefixed("model", arrays))
        optimizer.load_state_dict(_unprefixed("optimizer", arrays))
        scheduler.load_state_dict(_unprefixed("scheduler", arrays))
        set_rng_state(json.loads(meta["rng_state"]))
        return int(meta["step"]), arrays["pending_losses"].tolist()
    except (KeyError, ValueError, TypeError) as e:
        raise ValueError(f"cannot resume from {path}: {e}") from None


# ---------------------------------------------------------------- metrics

def write_metrics(folder: str, rows: list[dict[str, Any]]) -> None:
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=METRIC_FIELDS, lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: ("" if row.get(k) is None else row[k]) for k in METRIC_FIELDS})
    atomic_write(os.path.join(folder, METRICS), buf.getvalue().encode())


def read_metrics(folder: str, up_to_step: int | None = None) -> list[dict[str, Any]]:
    """Read metrics.csv (rows after ``up_to_step`` dropped: they belong to steps a resume will redo)."""
    path = os.path.join(folder, METRICS)
    if not os.path.isfile(path):
        return []
    rows = []
    with open(path, encoding="utf-8") as f:
        try:
            for row in csv.DictReader(f):
                parsed = {"step": int(row["step"]), "loss": float(row["loss"]), "lr": float(row["lr"]),
                          "exact_match": float(row["exact_match"]) if row["exact_match"] else None}
                if up_to_step is None or parsed["step"] <= up_to_step:
                    rows.append(parsed)
        except (KeyError, ValueError, TypeError) as e:  # a missing column is a KeyError, a missing cell None
            raise ValueError(f"{path} is not a bbml metrics file ({type(e).__name__}: {e})") from None
    return rows
