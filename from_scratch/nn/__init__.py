"""Neural-network layers, named and shaped like ``torch.nn``."""
from . import init
from .activation import GELU, ReLU, Sigmoid, Softmax, Tanh
from .dropout import Dropout
from .embedding import Embedding
from .linear import Linear
from .module import Module, ModuleList, Parameter, Sequential
from .normalization import LayerNorm

__all__ = ["init", "Module", "Parameter", "Sequential", "ModuleList", "Linear", "Embedding", "LayerNorm",
           "Dropout", "ReLU", "GELU", "Tanh", "Sigmoid", "Softmax"]
