"""The reversal training loop: resumable, interruptible, bit-for-bit reproducible from the seed.

Reproducible because nothing depends on how the run was split: the batch of step t is a pure
function of (seed, t), the learning rate a function of t, and the library generator (parameter
init, dropout) is saved in every checkpoint. So stopping at any step and resuming with ``resume=True``
ends with exactly the weights of an uninterrupted run.

On a device (``device="cuda"``) the model is built on the CPU, so one seed gives the same initial
weights everywhere, and moved there once. Each step then copies only its batch to the device (the ids
and masks, made on the host from the seed) and reads nothing back: the step losses stay on the device
until a logged step (``log_every``), a checkpoint or ``on_step`` reads them, in one copy.
"""
from __future__ import annotations

import os
import signal
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from typing import Any, Callable, Iterator

import numpy as np

from ... import backend
from ... import distributed as dist
from ... import functional as F
from ...autograd.tensor import stack
from ...optim import Adam, WarmupCosineLR, clip_grad_norm_
from .checkpoint import (PLOT, ReverseConfig, build_model, clear_run, has_train_state, holds_run, load_train_state,
                         read_config, read_metrics, save_train_state, write_config, write_metrics)
from .data import PAD, Batch, batch_for_step
from .evaluate import evaluate, heldout_sequences
from .plots import plot_metrics
from .progress import make_progress

__all__ = ["TrainResult", "train", "make_optimizer"]


@dataclass
class TrainResult:
    """What ``train`` returns: the model, the step reached (``start_step`` where this call began:
    0, or the step a resumed run continued from), the metrics rows, and this call's seconds."""

    model: Any
    config: ReverseConfig
    step: int
    interrupted: bool = False
    signal: int | None = None  # SIGINT or SIGTERM, when one stopped the run
    metrics: list[dict[str, Any]] = field(default_factory=list)
    seconds: float = 0.0
    start_step: int = 0

    def summary(self) -> str:
        """One line: the steps this call ran, in how long, and the last loss and held-out exact match."""
        ran = self.step - self.start_step
        steps = f"steps {self.start_step + 1}-{self.step}" if self.start_step else f"{self.step} steps"
        line = f"trained {steps} in {self.seconds:.1f} s" if ran else f"no steps to run (at step {self.step})"
        if self.metrics:
            line += f"; loss {self.metrics[-1]['loss']:.4f}"
            evals = [r["exact_match"] for r in self.metrics if r["exact_match"] is not None]
            if evals:
                line += f", held-out exact match {100 * evals[-1]:.1f}%"
        return line


def make_optimizer(model: Any, config: ReverseConfig) -> tuple[Adam, WarmupCosineLR]:
    """Adam (betas 0.9, 0.98 as in the Transformer paper) with linear warmup then cosine decay to zero."""
    optimizer = Adam(model.parameters(), lr=config.lr, betas=(0.9, 0.98), eps=1e-9)
    return optimizer, WarmupCosineLR(optimizer, config.warmup, config.steps)


@contextmanager
def _stop_on_signals(stop: dict[str, Any]) -> Iterator[None]:
    """While training, SIGINT/SIGTERM ask the loop to save and stop; a second one stops at once."""
    if threading.current_thread() is not threading.main_thread():
        yield  # signal handlers can only be set from the main thread
        return

    def handler(signum: int, frame: Any) -> None:
        if stop["signal"] is not None:
            raise KeyboardInterrupt
        stop["signal"] = signum

    previous = {s: signal.signal(s, handler) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for s, h in previous.items():
            signal.signal(s, h)


def _save(out: str | None, model: Any, optimizer: Any, scheduler: Any, step: int, rows: list,
          losses: list) -> None:
    if out is not None:
        write_metrics(out, rows)  # before the state: metrics are never older than the state they go with
        save_train_state(out, model, optimizer, scheduler, step, losses)


def _plot(out: str | None, rows: list, log: Callable[[str], None]) -> None:
    if out is None or not rows:
        return
    try:
        plot_metrics(rows, os.path.join(out, PLOT))
    except ImportError:
        log("matplotlib is not installed: skipped loss.png (pip install 'bare-bones-ml[cli]')")


def _shard(batch: Batch, rank: int, world: int) -> tuple[Batch, float]:
    """This process's rows of the global batch, and the factor that makes the average over processes
    of its (per-token mean) loss the global batch's mean: local tokens x world / global tokens."""
    n = len(batch.src)
    rows = slice(rank * n // world, (rank + 1) * n // world)
    share = float((batch.tgt_out[rows] != PAD).sum() * world / (batch.tgt_out != PAD).sum())
    return Batch(batch.src[rows], batch.tgt_in[rows], batch.tgt_out[rows], batch.src_mask[rows],
                 batch.tgt_mask[rows], batch.lengths[rows]), share


def train(config: ReverseConfig | None = None, out: str | None = None, resume: bool = False,
          force: bool = False, progress: bool = False, on_step: Callable[[int, float], bool] | None = None,
          log: Callable[[str], None] = print, device: Any = "cpu") -> TrainResult:
    """Train a reversal Transformer; with ``out``, keep a resumable run folder there.

    ``resume=True`` continues the run saved in ``out`` (its config.json wins over ``config``,
    except ``steps``). A folder that already holds a run is never overwritten unless ``force=True``
    (FileExistsError; ``bbml reverse train`` follows the same rule with ``--force``).
    ``on_step(step, loss)`` is called after every update; returning True stops
    the run like Ctrl-C does: a checkpoint is saved and ``interrupted`` is set in the result.
    ``progress=True`` shows progress (loss, lr, held-out exact match) where it can be seen: a widget
    bar in Jupyter, a tqdm bar in a terminal, a plain line every few seconds on a pipe
    (``progress.progress_style``), and logs ``TrainResult.summary()`` at the end.

    Under ``mpiexec -n N`` with the process group initialized, each process trains on its share of each
    global batch of ``batch_size`` (``DistributedDataParallel``); rank 0 alone logs, evaluates and writes
    ``out``. With one process the run is the single-process one, bit for bit.

    ``device`` (``"cpu"``, ``"cuda"``, ``"cuda:N"``) is where the model trains; it is not part of the run's
    settings, so a run can be resumed on another device. ``on_step`` reads every step's loss from the device.
    Raises RuntimeError for ``cuda`` without CuPy or a GPU, before anything is built.
    """
    started = time.perf_counter()
    backend.device_module(device)  # an unusable device fails here, before any folder is touched
    world, rank = (dist.get_world_size(), dist.get_rank()) if dist.is_initialized() else (1, 0)
    if rank != 0:  # rank 0 alone prints
        progress, log = False, lambda message: None
    if resume:
        if out is None or not has_train_state(out):
            raise FileNotFoundError(f"cannot resume: {out!r} holds no train_state.safetensors")
        saved = read_config(out)
        config = saved if config is None else replace(saved, steps=config.steps)
    elif out is not None and not force:
        exists = holds_run(out) and rank == 0  # rank 0 decides for all: it alone writes the folder
        if world > 1:
            exists = bool(dist.all_reduce(np.array([exists], dtype=np.int64), "max")[0])  # host: a flag
        if exists:
            raise FileExistsError(f"train: {out!r} already holds a run: pass resume=True to continue it, "
                                  f"force=True to start afresh, or choose another out")
    config = config or ReverseConfig()
    model = build_model(config).to(device)  # built (and seeded) on the CPU, then moved
    optimizer, scheduler = make_optimizer(model, config)
    step, rows, losses = 0, [], []
    if resume:
        step, losses = load_train_state(out, config, model, optimizer, scheduler)
        rows = read_metrics(out, up_to_step=step)
        log(f"resuming {out} at step {step} of {config.steps}")
    if world > config.batch_size:
        raise ValueError(f"train: batch size {config.batch_size} cannot be shared by {world} processes")
    ddp = dist.DistributedDataParallel(model) if world > 1 else model  # every process starts from rank 0's weights
    if rank != 0:  # rank 0 alone writes the run folder
        out = None
    if out is not None:
        os.makedirs(out, exist_ok=True)
        if not resume:
            clear_run(out)
        write_config(out, config)
    layout = config.layout
    eval_set = heldout_sequences(config.seed, config.eval_size, config.min_len, config.max_len, layout)
    params = model.parameters()
    start_step = step
    bar = make_progress(config.steps, initial=step) if progress else None
    stop: dict[str, Any] = {"signal": None}
    interrupted = False
    pending: list = []  # this window's step losses, still on the device (0-d Tensors)

    def read_losses() -> None:  # one device-to-host copy for the whole window (and an all-reduce over MPI)
        if pending:
            values = stack(pending).numpy().astype(np.float64)
            losses.extend((values if world == 1 else dist.all_reduce(values, "mean")).tolist())
            pending.clear()

    with _stop_on_signals(stop):
        model.train()
        while step < config.steps:
            batch = batch_for_step(config.seed, step, config.batch_size, config.min_len, config.max_len, layout,
                                   config.length_sampling)
            if world > 1:
                batch, share = _shard(batch, rank, world)
            batch = batch.to(device)  # the step's only copies: its ids and masks, host to device
            logits = ddp(batch.src, batch.tgt_in, batch.src_mask, batch.tgt_mask)
            loss = F.cross_entropy(logits, batch.tgt_out, ignore_index=PAD, label_smoothing=config.label_smoothing)
            if world > 1:
                loss = loss * share  # DDP's average of these is the global batch's mean loss
            optimizer.zero_grad()
            loss.backward()
            clip_grad_norm_(params, config.clip_norm)
            lr = optimizer.lr
            optimizer.step()
            scheduler.step()
            step += 1
            pending.append(loss.detach())
            value = None
            if on_step is not None:  # the caller asked for every step's loss: one copy per step
                read_losses()
                value = losses[-1]
            last = step == config.steps
            if step % config.log_every == 0 or step % config.eval_every == 0 or last:
                read_losses()
                row = {"step": step, "loss": float(np.mean(losses)), "lr": lr, "exact_match": None}
                losses = []
                if (step % config.eval_every == 0 or last) and rank == 0:
                    row["exact_match"] = evaluate(model, eval_set, layout)["exact_match"]
                    model.train()
                rows.append(row)
                if bar is not None:
                    shown = {"loss": f"{row['loss']:.4f}", "lr": f"{lr:.2e}"}
                    evals = [r["exact_match"] for r in rows if r["exact_match"] is not None]
                    if evals:
                        shown["exact"] = f"{100 * evals[-1]:.1f}%"
                    bar.set_postfix(shown, refresh=False)
            if bar is not None:
                bar.update(1)
            stopping = stop["signal"] is not None or (on_step is not None and bool(on_step(step, value)))
            if world > 1:  # every process stops at the same step, or one would wait for the others forever
                stopping = bool(dist.all_reduce(np.array([stopping], dtype=np.int64), "max")[0])  # host: a flag
            if step % config.checkpoint_every == 0 or last or stopping:
                read_losses()  # the checkpoint keeps the losses since the last logged row
                _save(out, model, optimizer, scheduler, step, rows, losses)
            if stopping:
                interrupted = True
                break
    if bar is not None:
        bar.close()
    model.eval()
    _plot(out, rows, log)
    result = TrainResult(model, config, step, interrupted, stop["signal"], rows, time.perf_counter() - started,
                         start_step)
    if progress:
        log(result.summary())
    if interrupted and out is not None:
        log(f"stopped at step {step}: checkpoint saved in {out}; continue with --resume")
    return result
