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
from typing import Any, Callable

import numpy as np

from ... import __version__, backend
from ...nn.transformer import Transformer
from ...random import get_rng_state, manual_seed, set_rng_state
from ...serialization import atomic_write, load, load_metadata, save
from .data import LENGTH_SAMPLING, TokenLayout

__all__ = ["ReverseConfig", "build_model", "write_config", "read_config", "load_model", "save_train_state",
           "load_train_state", "write_metrics", "read_metrics", "has_train_state", "holds_run", "clear_run",
           "ConfigError", "LIMITS", "expected_shapes", "header_shapes", "check_shapes"]

TASK = "reverse"
CONFIG, MODEL, STATE, METRICS, PLOT = ("config.json", "model.safetensors", "train_state.safetensors",
                                        "metrics.csv", "loss.png")
METRIC_FIELDS = ("step", "loss", "lr", "exact_match")


# (smallest, largest) for every size a config names: generous, but nothing near a memory error.
LIMITS = {"vocab_size": (4, 2 ** 20), "hidden_size": (1, 2 ** 14), "num_layers": (1, 64), "num_heads": (1, 2 ** 10),
          "ff_size": (1, 2 ** 16), "max_positions": (2, 2 ** 16), "min_len": (1, 2 ** 16), "max_len": (1, 2 ** 16),
          "steps": (1, 10 ** 9), "batch_size": (1, 2 ** 16), "warmup": (0, 10 ** 9), "seed": (0, 2 ** 63 - 1),
          "log_every": (1, 10 ** 9), "eval_every": (1, 10 ** 9), "eval_size": (1, 10 ** 6),
          "checkpoint_every": (1, 10 ** 9)}


class ConfigError(ValueError):
    """Settings that cannot run. ``explain(name)`` words the problem with other names for the fields
    (the command line passes one that turns ``warmup`` into ``--warmup``)."""

    def __init__(self, explain: Callable[[Callable[[str], str]], str]):
        self.explain = explain
        super().__init__("ReverseConfig: " + explain(lambda field: field))


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
        problem = self.problem()
        if problem is not None:
            raise ConfigError(problem)

    def problem(self) -> Callable[[Callable[[str], str]], str] | None:
        """The first thing wrong with these settings, as a function of how to name a field, or None.

        Every size is bounded (``LIMITS``): a config.json is untrusted input, and a size it names is
        allocated before any weights are read.
        """
        for f in fields(self):
            kind = {"int": int, "float": (int, float), "bool": bool, "str": str}[f.type]
            value = getattr(self, f.name)
            if not isinstance(value, kind) or (f.type != "bool" and isinstance(value, bool)):
                return lambda n, f=f, value=value: f"{n(f.name)} must be {f.type}, got {value!r}"
        for name, (low, high) in LIMITS.items():
            value = getattr(self, name)
            if not low <= value <= high:
                return lambda n, name=name, value=value, low=low, high=high: (
                    f"{n(name)} must be in {low}..{high:,}, got {value:,}")
        h, heads, steps, warmup = self.hidden_size, self.num_heads, self.steps, self.warmup
        checks = [
            (h % heads == 0, lambda n: f"{n('hidden_size')} {h} must be a multiple of {n('num_heads')} {heads}"),
            (0 <= self.dropout < 1, lambda n: f"{n('dropout')} must be in [0, 1), got {self.dropout}"),
            (0 <= self.label_smoothing < 1,
             lambda n: f"{n('label_smoothing')} must be in [0, 1), got {self.label_smoothing}"),
            (self.lr > 0 and self.clip_norm > 0,
             lambda n: f"{n('lr')} and {n('clip_norm')} must be positive, got {self.lr} and {self.clip_norm}"),
            (self.min_len <= self.max_len, lambda n: f"{n('min_len')} {self.min_len} must not exceed "
                                                     f"{n('max_len')} {self.max_len}"),
            (self.length_sampling in LENGTH_SAMPLING, lambda n: f"{n('length_sampling')} must be one of "
                                                                f"{LENGTH_SAMPLING}, got {self.length_sampling!r}"),
            (self.max_len < self.max_positions,
             lambda n: f"{n('max_len')} {self.max_len} needs {n('max_positions')} above it (the target is one "
                       f"longer), got {self.max_positions}: raise {n('max_positions')} to {self.max_len + 1} or more"),
            (steps > warmup, lambda n: f"{n('steps')} {steps} must be greater than {n('warmup')} {warmup} "
                                       f"(the warmup steps): raise {n('steps')} or lower {n('warmup')}, "
                                       f"e.g. {n('warmup')} {steps // 6}"),
        ]
        return next((message for ok, message in checks if not ok), None)

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


def expected_shapes(config: ReverseConfig) -> dict[str, tuple[int, ...]]:
    """The shape of every array in ``build_model(config).state_dict()``, computed without building it.

    (Tested against the built model: it lets a weights file be checked before anything is allocated.)
    """
    v, h, f = config.vocab_size, config.hidden_size, config.ff_size
    shapes: dict[str, tuple[int, ...]] = {"token_embedding.weight": (v, h),
                                          "pos_encoding.pe": (config.max_positions, h)}
    for stack, attns, norms in (("encoder", ("self_attn",), 2), ("decoder", ("self_attn", "cross_attn"), 3)):
        for layer in range(config.num_layers):
            prefix = f"{stack}.layers.{layer}"
            for attn in attns:
                for lin in ("q_linear", "k_linear", "v_linear", "fc"):
                    shapes.update({f"{prefix}.{attn}.{lin}.weight": (h, h), f"{prefix}.{attn}.{lin}.bias": (h,)})
            ff = f"{prefix}.feed_forward"
            shapes.update({f"{ff}.linear1.weight": (f, h), f"{ff}.linear1.bias": (f,),
                           f"{ff}.linear2.weight": (h, f), f"{ff}.linear2.bias": (h,)})
            for k in range(1, norms + 1):
                shapes.update({f"{prefix}.norm{k}.weight": (h,), f"{prefix}.norm{k}.bias": (h,)})
        shapes.update({f"{stack}.norm.weight": (h,), f"{stack}.norm.bias": (h,)})
    shapes.update({"final_linear.weight": (v, h), "final_linear.bias": (v,)})
    return shapes


def header_shapes(path: str) -> dict[str, tuple[int, ...]]:
    """Name -> shape of every array in a safetensors file, read from its header alone (no data is loaded)."""
    from safetensors import safe_open
    try:
        with safe_open(path, framework="numpy") as f:
            return {name: tuple(f.get_slice(name).get_shape()) for name in f.keys()}
    except Exception as e:  # the Rust parser raises its own error types
        raise ValueError(f"{path} is not a valid safetensors file ({e})") from None


def check_shapes(subject: str, found: dict[str, tuple[int, ...]], config: ReverseConfig) -> None:
    """Raise a one-line ValueError naming the first array whose shape config.json does not predict.

    ``subject`` starts the message: ``"<subject> does not match its config.json: ..."``.
    """
    want = expected_shapes(config)
    wrong = [f"{k} is {found[k]} there but {want[k]} by {CONFIG}" for k in want if k in found and found[k] != want[k]]
    wrong += [f"{k} is missing" for k in want if k not in found]
    wrong += [f"{k} is not part of this model" for k in found if k not in want]
    if wrong:
        more = f" (and {len(wrong) - 1} more)" if len(wrong) > 1 else ""
        raise ValueError(f"{subject} does not match its {CONFIG}: {wrong[0]}{more}")


# ---------------------------------------------------------------- config and weights

def write_config(folder: str, config: ReverseConfig) -> None:
    atomic_write(os.path.join(folder, CONFIG), (json.dumps(config.to_json(), indent=2) + "\n").encode())


def read_config(folder: str) -> ReverseConfig:
    """Read a run folder's config.json, or raise a one-line error saying what is wrong with the folder."""
    if os.path.isfile(folder):
        raise NotADirectoryError(f"{folder!r} is a file; a checkpoint is the run folder that holds it "
                                 f"({os.path.dirname(folder) or '.'!r})")
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
    except ConfigError as e:
        raise ValueError(f"{path} asks for impossible settings: {e.explain(lambda field: field)}") from None
    except (ValueError, KeyError, TypeError, AttributeError) as e:
        raise ValueError(f"{folder!r} is not a bbml reverse checkpoint: {CONFIG} is unreadable ({e})") from None


def load_model(folder: str, device: Any = "cpu") -> tuple[Transformer, ReverseConfig]:
    """Rebuild the model saved in a run folder, in eval mode, on ``device`` (built on the CPU, then moved).

    The folder is untrusted: config.json's sizes are bounded (``LIMITS``) and checked against the
    weights file's header before the model is built, so a wrong size is one line, never a MemoryError.
    Raises RuntimeError for ``cuda`` without CuPy or a GPU, before the folder is read.
    """
    backend.device_module(device)
    config = read_config(folder)
    path = os.path.join(folder, MODEL)
    if not os.path.isfile(path):
        raise ValueError(f"{folder!r} has a {CONFIG} but no {MODEL}: training never reached a checkpoint")
    check_shapes(path, header_shapes(path), config)
    model = build_model(config)
    model.load_state_dict(load(path))
    return model.to(device).eval(), config


def has_train_state(folder: str) -> bool:
    return os.path.isfile(os.path.join(folder, STATE))


def holds_run(folder: str) -> bool:
    """Whether ``folder`` holds (part of) a run that a fresh run would overwrite."""
    return any(os.path.isfile(os.path.join(folder, name)) for name in (STATE, MODEL, CONFIG))


def clear_run(folder: str) -> None:
    """Remove a previous run's files, so a fresh run in the same folder never mixes with stale ones."""
    for name in (STATE, MODEL, METRICS, PLOT, CONFIG):
        path = os.path.join(folder, name)
        if os.path.isfile(path):
            os.remove(path)


# ---------------------------------------------------------------- resumable state

def _prefixed(prefix: str, arrays: dict[str, Any]) -> dict[str, np.ndarray]:
    # Checkpoints go through the host: device arrays are copied there, numbers become 0-d arrays.
    return {f"{prefix}.{k}": backend.as_numpy(v) if backend.is_array(v) else np.asarray(v)  # host: a checkpoint
            for k, v in arrays.items()}


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
              "pending_losses": np.array(pending_losses, dtype=np.float64)}  # host: read from the device already
    save(arrays, os.path.join(folder, STATE), metadata={**meta, "rng_state": json.dumps(get_rng_state())})


def load_train_state(folder: str, config: ReverseConfig, model: Any, optimizer: Any,
                     scheduler: Any) -> tuple[int, list[float]]:
    """Restore weights, optimizer, schedule and RNG state; return the step to continue from and pending losses."""
    path = os.path.join(folder, STATE)
    try:
        meta, shapes = load_metadata(path), header_shapes(path)
        if meta.get("task") != TASK:
            raise ValueError(f"its task is {meta.get('task')!r}")
        check_shapes("its model state", _unprefixed("model", shapes), config)  # before anything is allocated
        step, pending = int(meta["step"]), shapes.get("pending_losses", ())
        if not 0 <= step <= LIMITS["steps"][1] or len(pending) != 1 or pending[0] > config.log_every:
            raise ValueError(f"step {step} or {pending[0] if pending else 'no'} pending losses out of range")
        arrays = load(path)
        model.load_state_dict(_unprefixed("model", arrays))
        optimizer.load_state_dict(_unprefixed("optimizer", arrays))
        scheduler.load_state_dict(_unprefixed("scheduler", arrays))
        set_rng_state(json.loads(meta["rng_state"]))
        return step, arrays["pending_losses"].tolist()
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
