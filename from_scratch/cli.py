"""The ``bbml`` command: ``bbml reverse train|predict|eval|attention``.

Every command is a thin layer over ``from_scratch.tasks.reverse``. A mistake (an unknown token, an
empty line, a folder that holds no checkpoint) ends with one line on stderr and exit status 1;
an interrupted ``train`` saves a checkpoint first and exits with 128 + the signal number.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
from dataclasses import replace
from typing import Any, Sequence

import numpy as np

from . import distributed as dist
from .tasks.reverse import (ReverseConfig, evaluate, format_table, heldout_sequences, load_model, parse_tokens,
                            predict, train)
from .tasks.reverse.checkpoint import has_train_state, read_config
from .tasks.reverse.data import LENGTH_SAMPLING

__all__ = ["main", "build_parser"]

_DEFAULTS = ReverseConfig()
# train flag -> ReverseConfig field
_TRAIN_FLAGS = {"steps": "steps", "batch_size": "batch_size", "lr": "lr", "warmup": "warmup",
                "min_len": "min_len", "max_len": "max_len", "length_sampling": "length_sampling",
                "vocab_size": "vocab_size",
                "hidden_size": "hidden_size", "layers": "num_layers", "heads": "num_heads", "ff_size": "ff_size",
                "dropout": "dropout", "norm_first": "norm_first", "label_smoothing": "label_smoothing",
                "seed": "seed", "eval_every": "eval_every", "checkpoint_every": "checkpoint_every"}
_STREAM_EVAL_CLI = 2  # held-out stream for `bbml reverse eval` (training uses 0 and 1)


class CLIError(Exception):
    """A user mistake, reported as one line on stderr."""


def _add_ckpt(p: argparse.ArgumentParser) -> None:
    p.add_argument("--ckpt", default="runs/reverse", help="run folder written by `bbml reverse train`")


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
    tr.add_argument("--steps", type=int, default=d.steps, help="training steps (updates)")
    tr.add_argument("--batch-size", type=int, default=d.batch_size, help="sequences per step")
    tr.add_argument("--lr", type=float, default=d.lr, help="peak learning rate (Adam)")
    tr.add_argument("--warmup", type=int, default=d.warmup, help="linear warmup steps, then cosine decay to 0")
    tr.add_argument("--min-len", type=int, default=d.min_len, help="shortest training sequence")
    tr.add_argument("--max-len", type=int, default=d.max_len, help="longest training sequence")
    tr.add_argument("--length-sampling", choices=LENGTH_SAMPLING, default=d.length_sampling,
                    help="how training lengths are drawn: uniform, or in proportion to the length")
    tr.add_argument("--vocab-size", type=int, default=d.vocab_size, help="V: content tokens are 1..V-3")
    tr.add_argument("--hidden-size", type=int, default=d.hidden_size, help="model width")
    tr.add_argument("--layers", type=int, default=d.num_layers, help="encoder layers (and as many decoder layers)")
    tr.add_argument("--heads", type=int, default=d.num_heads, help="attention heads")
    tr.add_argument("--ff-size", type=int, default=d.ff_size, help="feed-forward width")
    tr.add_argument("--dropout", type=float, default=d.dropout, help="dropout probability")
    tr.add_argument("--norm-first", action=argparse.BooleanOptionalAction, default=d.norm_first,
                    help="pre-norm (LayerNorm before each sub-layer) instead of post-norm")
    tr.add_argument("--label-smoothing", type=float, default=d.label_smoothing, help="label smoothing")
    tr.add_argument("--seed", type=int, default=d.seed, help="seed for init, dropout and data")
    tr.add_argument("--eval-every", type=int, default=d.eval_every, help="steps between held-out evaluations")
    tr.add_argument("--checkpoint-every", type=int, default=d.checkpoint_every, help="steps between checkpoints")
    tr.add_argument("--out", default="runs/reverse", help="run folder")
    tr.add_argument("--resume", action="store_true", help="continue the run saved in --out (only --steps may change)")
    tr.add_argument("--force", action="store_true", help="start afresh even if --out holds a run")

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
    at.add_argument("--out", default="attention.png", help="image file to write")
    return parser


# ---------------------------------------------------------------- commands

def _train(args: argparse.Namespace) -> int:
    out = args.out
    if dist.launched_world_size() > 1:  # under `mpiexec -n N`, N > 1: data-parallel, rank 0 alone prints
        dist.init_process_group()
    main_process = not dist.is_initialized() or dist.get_rank() == 0
    if args.resume:
        if not has_train_state(out):
            read_config(out)  # a clear error for a missing or foreign folder
            raise CLIError(f"cannot resume: {out!r} holds no train_state.safetensors")
        saved = read_config(out)
        for flag, name in _TRAIN_FLAGS.items():  # a flag left at its default takes the saved value
            given = getattr(args, flag)
            if name != "steps" and given != getattr(_DEFAULTS, name) and given != getattr(saved, name):
                raise CLIError(f"--{flag.replace('_', '-')} {given} differs from the run in {out!r} "
                               f"({getattr(saved, name)}): a resumed run keeps its settings, only --steps may change")
        config = replace(saved, steps=args.steps if args.steps != _DEFAULTS.steps else saved.steps)
    else:
        if has_train_state(out) and not args.force:
            raise CLIError(f"{out!r} already holds a run: pass --resume to continue it, --force to start afresh, "
                           f"or choose another --out")
        config = ReverseConfig(**{name: getattr(args, flag) for flag, name in _TRAIN_FLAGS.items()})
    if main_process:
        processes = f" over {dist.get_world_size()} processes" if dist.is_initialized() else ""
        print(f"training a Transformer on reversal of lengths {config.min_len}..{config.max_len} for "
              f"{config.steps} steps (batch {config.batch_size}{processes}); run folder: {out}", flush=True)
    result = train(config, out=out, resume=args.resume, progress=True, log=lambda m: print(m, flush=True))
    if result.interrupted:
        return 128 + (result.signal or 2)
    if not main_process:
        return 0
    n_eval = 2000
    seqs = heldout_sequences(config.seed, n_eval, config.min_len, config.max_len, config.layout, stream=1)
    report = evaluate(result.model, seqs, config.layout, trained_max_len=config.max_len)
    print(f"trained {result.step} steps in {result.seconds:.1f} s. Held-out exact match on {n_eval} fresh "
          f"sequences of lengths {config.min_len}..{config.max_len}:")
    print(format_table(report))
    print("samples:")
    outputs = predict(result.model, seqs[:5], config.layout)
    for s, o in zip(seqs[:5], outputs):
        ok = "ok" if np.array_equal(o, np.append(s[::-1], config.layout.eos)) else "WRONG"
        print(f"  {' '.join(map(str, s))}  ->  {_content(o, config.layout.eos)}   {ok}")
    print(f"wrote {out}/: model.safetensors config.json train_state.safetensors metrics.csv loss.png")
    return 0


def _content(output: np.ndarray, eos: int) -> str:
    return " ".join(str(int(t)) for t in output if t != eos)


def _predict(args: argparse.Namespace) -> int:
    model, config = load_model(args.ckpt)
    limit = config.max_positions - 1
    if args.beam < 1:
        raise CLIError(f"--beam must be at least 1, got {args.beam}")
    if args.tokens:
        seqs = [parse_tokens(args.tokens, config.layout, limit)]
    else:
        seqs = []
        for number, line in enumerate(sys.stdin, start=1):
            try:
                seqs.append(parse_tokens(line, config.layout, limit))
            except ValueError as e:
                raise CLIError(f"stdin line {number}: {e}") from None
        if not seqs:
            raise CLIError("empty input: give tokens as arguments or one sequence per line on stdin")
    outputs = predict(model, seqs, config.layout, beam_size=args.beam, batch_size=max(1, args.batch_size))
    eos = config.layout.eos
    sys.stdout.write("".join(_content(o, eos) + "\n" for o in outputs))
    unfinished = sum(len(o) == 0 or o[-1] != eos for o in outputs)
    if unfinished:
        print(f"warning: {unfinished} output(s) reached the length limit without EOS", file=sys.stderr)
    return 0


def _eval(args: argparse.Namespace) -> int:
    model, config = load_model(args.ckpt)
    limit = config.max_positions - 1
    if not 1 <= args.min_len <= args.max_len <= limit:
        raise CLIError(f"need 1 <= --min-len <= --max-len <= {limit} (this model's longest input), "
                       f"got {args.min_len} and {args.max_len}")
    if args.n < 1 or args.beam < 1:
        raise CLIError(f"--n and --beam must be at least 1, got {args.n} and {args.beam}")
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
    model, config = load_model(args.ckpt)
    tokens = parse_tokens(args.tokens, config.layout, config.max_positions - 1)
    from .tasks.reverse.plots import plot_attention  # needs matplotlib
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
