"""Optimizers (in order of increasing complexity), learning-rate schedules and gradient clipping."""
from .adam import Adam, AdamW
from .clip import clip_grad_norm_
from .lr_scheduler import LambdaLR, LRScheduler, NoamLR, WarmupCosineLR
from .optimizer import Optimizer
from .sgd import SGD

__all__ = ["Optimizer", "SGD", "Adam", "AdamW", "clip_grad_norm_", "LRScheduler", "LambdaLR", "WarmupCosineLR",
           "NoamLR"]
