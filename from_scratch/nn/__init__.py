"""Neural-network layers, named and shaped like ``torch.nn``."""
from . import init
from .activation import GELU, ReLU, Sigmoid, Softmax, Tanh
from .container import ModuleList, Sequential
from .dropout import Dropout
from .embedding import Embedding
from .linear import Linear
from .module import Module, Parameter
from .normalization import LayerNorm

__all__ = ["init", "Module", "Parameter", "Sequential", "ModuleList", "Linear", "Embedding", "LayerNorm",
           "Dropout", "ReLU", "GELU", "Tanh", "Sigmoid", "Softmax"]
from .attention import MultiHeadAttention, ScaledDotProductAttention
from .transformer import Decoder, Encoder, Transformer
from .transformer_layers import DecoderLayer, EncoderLayer, FeedForward, PositionalEncoding

__all__ += ["ScaledDotProductAttention", "MultiHeadAttention", "PositionalEncoding", "FeedForward",
            "EncoderLayer", "DecoderLayer", "Encoder", "Decoder", "Transformer"]
from .recurrent import LSTM, RNN, LSTMBlock, LSTMCell, RecurrentBlock, RNNCell

__all__ += ["RNNCell", "LSTMCell", "RNN", "LSTM", "RecurrentBlock", "LSTMBlock"]
from .gru import GRU, GRUCell

__all__ += ["GRUCell", "GRU"]
from .container import ModuleDict
from .linear import Identity

__all__ += ["ModuleDict", "Identity"]
from .loss import BCELoss, BCEWithLogitsLoss, CrossEntropyLoss, L1Loss, MSELoss, NLLLoss

__all__ += ["CrossEntropyLoss", "NLLLoss", "MSELoss", "L1Loss", "BCELoss", "BCEWithLogitsLoss"]
from .conv import Conv1d, Conv2d, ConvTranspose2d
from .flatten import Flatten
from .normalization import BatchNorm1d, BatchNorm2d
from .pooling import AdaptiveAvgPool2d, AvgPool2d, MaxPool2d

__all__ += ["Conv1d", "Conv2d", "ConvTranspose2d", "MaxPool2d", "AvgPool2d", "AdaptiveAvgPool2d", "BatchNorm1d",
            "BatchNorm2d", "Flatten"]
