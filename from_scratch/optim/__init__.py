"""Optimizers (in order of increasing complexity), learning-rate schedules and gradient clipping."""
from .adagrad import Adagrad
from .adam import Adam, AdamW
from .clip import clip_grad_norm_
from .lr_scheduler import (ExponentialLR, LambdaLR, LRScheduler, MultiStepLR, NoamLR, ReduceLROnPlateau, StepLR,
                           WarmupCosineLR)
from .optimizer import Optimizer
from .rmsprop import RMSprop
from .sgd import SGD

__all__ = ["Optimizer", "SGD", "Adagrad", "RMSprop", "Adam", "AdamW", "clip_grad_norm_", "LRScheduler", "LambdaLR",
           "StepLR", "MultiStepLR", "ExponentialLR", "WarmupCosineLR", "NoamLR", "ReduceLROnPlateau"]
