"""bare-bones-ml: a deep-learning library written from scratch on NumPy."""
# One BLAS thread for small matrix products, every core for large ones, whatever the import order:
# see threads.py (it finds NumPy's BLAS through threadpoolctl, so NumPy may well be imported first).
from . import backend, threads
from .backend import Device, device
from .threads import get_num_threads, set_num_threads
from .autograd import (Function, Tensor, cat, detect_anomaly, enable_grad, get_default_dtype, is_grad_enabled,
                       no_grad, set_default_dtype, stack, where)
from .creation import (arange, full, full_like, ones, ones_like, rand, rand_like, randn, randn_like, tensor, zeros,
                       zeros_like)
from .random import get_rng_state, manual_seed, set_rng_state
from .serialization import load, save

# The library's namespaces, as `import torch` gives torch.nn and torch.optim (distributed stays opt-in: it is
# the door to MPI, and tasks/cli sit above the library).
from . import data, functional, nn, optim

__version__ = "0.1.0"

__all__ = ["Tensor", "Function", "no_grad", "enable_grad", "is_grad_enabled", "detect_anomaly", "cat", "stack",
           "where", "set_default_dtype", "get_default_dtype", "manual_seed", "get_rng_state", "set_rng_state",
           "save", "load", "set_num_threads", "get_num_threads", "zeros", "ones", "full", "arange", "randn", "rand",
           "tensor", "zeros_like", "ones_like", "full_like", "rand_like", "randn_like", "backend", "Device", "device", "data", "functional", "nn", "optim",
           "__version__"]
