"""Sequence reversal, the headline demo: a Transformer that reverses numbers and knows when to stop.

Everything the ``bbml reverse`` command does is importable here::

    from from_scratch.tasks.reverse import ReverseConfig, train, load_model, predict, evaluate
    result = train(ReverseConfig(steps=300), out="runs/reverse")
"""
from .checkpoint import ReverseConfig, build_model, load_model
from .data import PAD, Batch, TokenLayout, batch_for_step, make_batch, parse_tokens, random_sequences
from .decode import beam_search, greedy_decode, predict
from .evaluate import evaluate, format_table, heldout_sequences
from .train import TrainResult, train

__all__ = ["ReverseConfig", "build_model", "load_model", "PAD", "Batch", "TokenLayout", "batch_for_step",
           "make_batch", "parse_tokens", "random_sequences", "greedy_decode", "beam_search", "predict",
           "evaluate", "format_table", "heldout_sequences", "TrainResult", "train"]
