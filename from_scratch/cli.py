"""The ``bbml`` command: ``bbml reverse train|predict|eval|attention``.

Every command is a thin layer over ``from_scratch.tasks.reverse``. A mistake (an unknown token, an
empty line, a folder that holds no checkpoint, a size out of range) ends with one line on stderr,
naming the flag, and exit status 1; an interrupted ``train`` saves a checkpoint first and exits with
128 + the signal number. Inputs longer than the model was trained on are decoded with a warning on
stderr (the answers past the trained length are mostly wrong); inputs longer than the positional
table are an error.

Every command takes ``--device`` (``cpu``, ``cuda``, ``cuda:N``): the model is built on the CPU and moved
there. ``cuda`` without CuPy or a GPU is a one-line error that says what to install.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
from dataclasses import replace
from typing import Any, Sequence

import numpy as np

from . import backend
from . import distributed as dist
from .tasks.reverse import (ReverseConfig, evaluate, format_table, heldout_sequences, load_model, parse_tokens,
                            predict, train)
from .tasks.reverse.checkpoint import ConfigError, has_train_state, holds_run, read_config
from .tasks.reverse.data import LENGTH_SAMPLING

__all__ = ["main", "build_parser"]

_DEFAULTS = ReverseConfig()
# train flag -> ReverseConfig field
_TRAIN_FLAGS = {"steps": "steps", "batch_size": "batch_size", "lr": "lr", "warmup": "warmup",
                "min_len": "min_len", "max_len": "max_len", "length_sampling": "length_sampling",
                "vocab_size": "vocab_size", "max_positions": "max_positions",
                "hidden_size": "hidden_size", "layers": "num_layers", "heads": "num_heads", "ff_size": "ff_size",
                "dropout": "dropout", "norm_first": "norm_first", "label_smoothing": "label_smoothing",
                "seed": "seed", "eval_every": "eval_every", "checkpoint_every": "checkpoint_every"}
_FLAG_OF = {name: "--" + flag.replace("_", "-") for flag, name in _TRAIN_FLAGS.items()}
_STREAM_EVAL_CLI = 2  # held-out stream for `bbml reverse eval` (training uses 0 and 1)


class CLIError(Exception):
    """A user mistake, reported as one line on stderr."""


def _add_ckpt(p: argparse.ArgumentParser) -> None:
    p.add_argument("--ckpt", default="runs/reverse", help="run folder written by `bbml reverse train`")
    _add_device(p)


def _add_device(p: argparse.ArgumentParser) -> None:
    p.add_argument("--device", default="cpu", help="where the model runs: cpu, cuda or cuda:N "
                                                   "(cuda needs CuPy: pip install -e '.[cuda]')")


def _device(args: argparse.Namespace) -> backend.Device:
    """The device --device names, checked usable before any work (never a quiet fall back to the CPU)."""
    try:
        device = backend.device(args.device)
        backend.device_module(device)
    except (ValueError, RuntimeError) as e:  # the backend's message starts "device ...": name the flag
        raise CLIError(str(e).replace("device", "--device", 1)) from None
    return device


def build_parser() -> argparse.ArgumentParser:
    fmt = argparse.ArgumentDefaultsHelpFormatter
    parser = argparse.ArgumentParser(prog="bbml", formatter_class=fmt,
                                     description="bare-bones-ml: deep learning from scratch on NumPy.")
    tasks = parser.add_subparsers(dest="task", required=True, metavar="TASK")
    rev = tasks.add_parser("reverse", formatter_class=fmt, help="a Transformer that reverses sequences of numbers",
                           description="Sequence reversal: content tokens are 1..V-3 (1..17 by default), "
                                       "0 is PAD, V-2 SOS, V-1 EOS.")
    cmds = rev.add_subparsers(dest="command", required=True, metavar="COMMAND")

    d = _DEFAULTS
    tr = cmds.add_parser("train", formatter_class=fmt, help="train a reversal model",
                         description="Train a Transformer to reverse random sequences, writing a resumable run "
                                     "folder: model.safetensors, config.json, train_state.safetensors, "
                                     "metrics.csv, loss.png. Ctrl-C saves a checkpoint and stops.")
    def flag(name: str, help: str, **kwargs: Any) -> None:
        # No default in the namespace: a flag is there only when given, so --resume can tell
        # "--hidden-size 64" from nothing even when 64 is the default. The help shows the default.
        field = _TRAIN_FLAGS[name.lstrip("-").replace("-", "_")]
        tr.add_argument(name, default=argparse.SUPPRESS, help=f"{help} (default: {getattr(d, field)})", **kwargs)

    flag("--steps", "training steps (updates)", type=int)
    flag("--batch-size", "sequences per step", type=int)
    flag("--lr", "peak learning rate (Adam)", type=float)
    flag("--warmup", "linear warmup steps, then cosine decay to 0", type=int)
    flag("--min-len", "shortest training sequence", type=int)
    flag("--max-len", "longest training sequence", type=int)
    flag("--length-sampling", "how training lengths are drawn: uniform, or in proportion to the length",
         choices=LENGTH_SAMPLING)
    flag("--vocab-size", "V: content tokens are 1..V-3", type=int)
    flag("--max-positions", "positional table: the longest input a model can take is one less", type=int)
    flag("--hidden-size", "model width", type=int)
    flag("--layers", "encoder layers (and as many decoder layers)", type=int)
    flag("--heads", "attention heads", type=int)
    flag("--ff-size", "feed-forward width", type=int)
    flag("--dropout", "dropout probability", type=float)
    flag("--norm-first", "pre-norm (LayerNorm before each sub-layer) instead of post-norm",
         action=argparse.BooleanOptionalAction)
    flag("--label-smoothing", "label smoothing", type=float)
    flag("--seed", "seed for init, dropout and data", type=int)
    flag("--eval-every", "steps between held-out evaluations", type=int)
    flag("--checkpoint-every", "steps between checkpoints", type=int)
    tr.add_argument("--out", default="runs/reverse", help="run folder")
    tr.add_argument("--resume", action="store_true", help="continue the run saved in --out (only --steps may change)")
    tr.add_argument("--force", action="store_true", help="start afresh even if --out holds a run")
    _add_device(tr)

    pr = cmds.add_parser("predict", formatter_class=fmt, help="reverse sequences with a trained model",
                         description="Reverse the given tokens, or, with none, every line of stdin "
                                     "(one sequence per line, decoded in batches).")
    _add_ckpt(pr)
    pr.add_argument("--beam", type=int, default=1, help="beam width (1: greedy)")
    pr.add_argument("--batch-size", type=int, default=500, help="sequences decoded together")
    pr.add_argument("tokens", nargs="*", help="content tokens, e.g. 5 12 7 3 9 11")

    ev = cmds.add_parser("eval", formatter_class=fmt, help="exact match per length on fresh random sequences",
                         description="Exact match and token accuracy per length on fresh random sequences, "
                                     "including lengths longer than the model was trained on.")
    _add_ckpt(ev)
    ev.add_argument("--n", type=int, default=10000, help="number of sequences")
    ev.add_argument("--min-len", type=int, default=1, help="shortest sequence")
    ev.add_argument("--max-len", type=int, default=24, help="longest sequence")
    ev.add_argument("--beam", type=int, default=1, help="beam width (1: greedy)")
    ev.add_argument("--seed", type=int, default=0, help="seed of the evaluation sequences")
    ev.add_argument("--json", action="store_true", help="print the results as JSON")

    at = cmds.add_parser("attention", formatter_class=fmt, help="plot the decoder's cross-attention",
                         description="Decode the tokens and draw every decoder layer's and head's "
                                     "cross-attention as heatmaps (for reversal: the anti-diagonal).")
    _add_ckpt(at)
    at.add_argument("tokens", nargs="+", help="content tokens, e.g. 5 12 7 3 9 11")
    at.add_argument("--out", default="attention.png", help="image file to write; its extension picks the type "
                                                             "(.png, .pdf, .svg, ...)")
    return parser


# ---------------------------------------------------------------- commands

def _train(args: argparse.Namespace) -> int:
    device = _device(args)
    out = args.out
    if os.path.isfile(out):
        raise CLIError(f"--out {out!r} is a file; --out takes a run folder (e.g. runs/reverse)")
    if dist.launched_world_size() > 1:  # under `mpiexec -n N`, N > 1: data-parallel, rank 0 alone prints
        dist.init_process_group()
    main_process = not dist.is_initialized() or dist.get_rank() == 0
    given = {name: getattr(args, flag) for flag, name in _TRAIN_FLAGS.items() if hasattr(args, flag)}
    try:
        if args.resume:
            if not has_train_state(out):
                read_config(out)  # a clear error for a missing or foreign folder
                raise CLIError(f"cannot resume: {out!r} holds no train_state.safetensors")
            saved = read_config(out)
            for name, value in given.items():  # a flag given is compared, even when it equals the default
                if name != "steps" and value != getattr(saved, name):
                    raise CLIError(f"{_FLAG_OF[name]} {value} differs from the run in {out!r} "
                                   f"({getattr(saved, name)}): a resumed run keeps its settings, only --steps "
                                   f"may change")
            config = replace(saved, steps=given.get("steps", saved.steps))
        else:
            if holds_run(out) and not args.force and not dist.is_initialized():  # say so before training starts
                raise _holds_a_run(out)
            config = ReverseConfig(**given)
    except ConfigError as e:
        raise CLIError(e.explain(lambda field: _FLAG_OF.get(field, field))) from None
    if main_process:
        processes = f" over {dist.get_world_size()} processes" if dist.is_initialized() else ""
        on = "" if device.type == "cpu" else f" on {device}"
        print(f"training a Transformer{on} on reversal of lengths {config.min_len}..{config.max_len} for "
              f"{config.steps} steps (batch {config.batch_size}{processes}); run folder: {out}", flush=True)
    try:  # train() applies the one overwrite rule (and, over MPI, decides it once for every process)
        result = train(config, out=out, resume=args.resume, force=args.force, progress=True,
                       log=lambda m: print(m, flush=True), device=device)
    except FileExistsError:
        raise _holds_a_run(out) from None
    if result.interrupted:
        return 128 + (result.signal or 2)
    if not main_process:
        return 0
    n_eval = 2000
    seqs = heldout_sequences(config.seed, n_eval, config.min_len, config.max_len, config.layout, stream=1)
    report = evaluate(result.model, seqs, config.layout, trained_max_len=config.max_len)
    print(f"Held-out exact match on {n_eval} fresh sequences of lengths {config.min_len}..{config.max_len}:")
    print(format_table(report))
    print("samples:")
    outputs = predict(result.model, seqs[:5], config.layout)
    for s, o in zip(seqs[:5], outputs):
        ok = "ok" if np.array_equal(o, np.append(s[::-1], config.layout.eos)) else "WRONG"
        print(f"  {' '.join(map(str, s))}  ->  {_content(o, config.layout.eos)}   {ok}")
    print(f"wrote {out}/: model.safetensors config.json train_state.safetensors metrics.csv loss.png")
    return 0


def _holds_a_run(out: str) -> CLIError:
    return CLIError(f"{out!r} already holds a run: pass --resume to continue it, --force to start afresh, "
                    f"or choose another --out")


def _content(output: np.ndarray, eos: int) -> str:
    return " ".join(str(int(t)) for t in output if t != eos)


def _load(args: argparse.Namespace) -> tuple[Any, ReverseConfig]:
    device = _device(args)
    if os.path.isfile(args.ckpt):
        raise CLIError(f"--ckpt {args.ckpt!r} is a file; --ckpt takes the run folder that holds it: "
                       f"--ckpt {os.path.dirname(args.ckpt) or '.'}")
    return load_model(args.ckpt, device)


def _warn_if_longer_than_trained(seqs: Sequence[np.ndarray], config: ReverseConfig) -> None:
    """Inputs longer than the training lengths get an answer, but mostly a wrong one (see `bbml reverse eval`)."""
    longer = [len(s) for s in seqs if len(s) > config.max_len]
    if longer:
        print(f"warning: {len(longer)} input(s) longer than the {config.max_len} tokens this model was trained on "
              f"(longest {max(longer)}): expect wrong answers beyond length {config.max_len}", file=sys.stderr)


def _predict(args: argparse.Namespace) -> int:
    if args.beam < 1 or args.batch_size < 1:
        raise CLIError(f"--beam and --batch-size must be at least 1, got {args.beam} and {args.batch_size}")
    model, config = _load(args)
    limit = config.max_positions - 1
    if args.tokens:
        seqs = [parse_tokens(args.tokens, config.layout, limit)]
    else:
        if sys.stdin.isatty():
            print("reading sequences from stdin, one per line; end with Ctrl-D (or give tokens as arguments)",
                  file=sys.stderr, flush=True)
        seqs = []
        for number, line in enumerate(sys.stdin, start=1):
            try:
                seqs.append(parse_tokens(line, config.layout, limit))
            except ValueError as e:
                raise CLIError(f"stdin line {number}: {e}") from None
        if not seqs:
            raise CLIError("empty input: give tokens as arguments or one sequence per line on stdin")
    _warn_if_longer_than_trained(seqs, config)
    outputs = predict(model, seqs, config.layout, beam_size=args.beam, batch_size=args.batch_size)
    eos = config.layout.eos
    sys.stdout.write("".join(_content(o, eos) + "\n" for o in outputs))
    unfinished = sum(len(o) == 0 or o[-1] != eos for o in outputs)
    if unfinished:
        print(f"warning: {unfinished} output(s) reached the length limit without EOS", file=sys.stderr)
    return 0


def _eval(args: argparse.Namespace) -> int:
    if args.n < 1 or args.beam < 1:
        raise CLIError(f"--n and --beam must be at least 1, got {args.n} and {args.beam}")
    model, config = _load(args)
    limit = config.max_positions - 1
    if not 1 <= args.min_len <= args.max_len <= limit:
        raise CLIError(f"need 1 <= --min-len <= --max-len <= {limit} (this model's longest input), "
                       f"got {args.min_len} and {args.max_len}")
    seqs = heldout_sequences(args.seed, args.n, args.min_len, args.max_len, config.layout, stream=_STREAM_EVAL_CLI)
    result = evaluate(model, seqs, config.layout, beam_size=args.beam, trained_max_len=config.max_len)
    if args.json:
        print(json.dumps({"checkpoint": args.ckpt, "trained_lengths": [config.min_len, config.max_len],
                          "beam": args.beam, **result}, indent=2))
    else:
        print(f"{args.ckpt}: trained on lengths {config.min_len}..{config.max_len}; {args.n} fresh sequences, "
              f"beam {args.beam}")
        print(format_table(result))
    return 0


def _attention(args: argparse.Namespace) -> int:
    from .tasks.reverse.plots import image_format, plot_attention  # needs matplotlib
    try:
        image_format(args.out)
    except ValueError as e:
        raise CLIError(f"--out: {e}") from None
    model, config = _load(args)
    tokens = parse_tokens(args.tokens, config.layout, config.max_positions - 1)
    _warn_if_longer_than_trained([tokens], config)
    output = plot_attention(model, tokens, config.layout, args.out)
    layers, heads = len(model.decoder.layers), model.decoder.layers[0].cross_attn.num_heads
    print(f"{_content(output, config.layout.eos)}\nwrote {args.out} (decoder cross-attention, "
          f"{layers} layers x {heads} heads)")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``bbml``; return the exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    commands: dict[str, Any] = {"train": _train, "predict": _predict, "eval": _eval, "attention": _attention}
    try:
        return commands[args.command](args)
    except (CLIError, ValueError, OSError, ImportError) as e:
        if isinstance(e, BrokenPipeError):  # e.g. `bbml reverse predict < big.txt | head`: not an error
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # no second error at exit
            return 0
        message = " ".join(str(e).split()) or type(e).__name__
        print(f"bbml: error: {message}", file=sys.stderr, flush=True)
        return _exit_status(1)
    except KeyboardInterrupt:
        print("bbml: interrupted", file=sys.stderr, flush=True)
        return _exit_status(130)


def _exit_status(code: int) -> int:
    """In a job of several processes, failing alone would leave the others waiting for this one: abort them all."""
    if dist.is_initialized() and dist.get_world_size() > 1:
        dist.abort(code)
    return code


if __name__ == "__main__":
    sys.exit(main())
