"""The autograd engine: Tensor, Function, the primitive and fused ops, grad modes."""
from .function import Function, detect_anomaly, enable_grad, is_grad_enabled, no_grad
from .tensor import Tensor, cat, get_default_dtype, set_default_dtype, stack, where

__all__ = ["Tensor", "Function", "no_grad", "enable_grad", "is_grad_enabled", "detect_anomaly",
           "cat", "stack", "where", "set_default_dtype", "get_default_dtype"]
