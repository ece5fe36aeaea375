"""Collectives over the process group, named like ``torch.distributed``'s: all_reduce, broadcast, all_gather.

They take NumPy arrays and Tensors on any device; MPI works on host memory, so a device Tensor's data goes
to the host and back (``backend.as_numpy`` / ``backend.to_device``).
"""
from __future__ import annotations

from typing import Any

import numpy as np

from ..autograd import Tensor
from ..backend import as_numpy, device_of, is_array, to_device
from .group import communicator, mpi_module, wait

_OPS = ("sum", "mean", "max", "min")


def _array(name: str, tensor: Any) -> np.ndarray:
    """The host array a collective works on in place: a NumPy array itself, a Tensor's data (a device Tensor's
    data is copied to the host here; ``_written_back`` puts the result back on its device)."""
    arr = tensor.data if isinstance(tensor, Tensor) else tensor
    if isinstance(tensor, Tensor) and type(arr) is not np.ndarray:
        return np.ascontiguousarray(as_numpy(arr))  # host: MPI reduces host memory
    if not isinstance(arr, np.ndarray):
        raise TypeError(f"{name}: expected a Tensor or a NumPy array, got {type(tensor).__name__} "
                        "(a device array: wrap it in a Tensor)")
    if not arr.flags.c_contiguous or not arr.flags.writeable:
        raise ValueError(f"{name}: the array must be C-contiguous and writeable to be reduced in place")
    return arr


def all_reduce(tensor: Tensor | np.ndarray, op: str = "sum") -> Tensor | np.ndarray:
    """Reduce ``tensor`` elementwise over all processes, in place, leaving the result on every one.

    ``op``: "sum", "mean" (sum / world size; floating data only), "max" or "min". Every process must
    pass the same shape and dtype. Returns ``tensor``.
    """
    if op not in _OPS:
        raise ValueError(f"all_reduce: op must be one of {_OPS}, got {op!r}")
    comm, arr = communicator("all_reduce"), _array("all_reduce", tensor)
    if op == "mean" and arr.dtype.kind not in "fc":
        raise TypeError(f"all_reduce: op='mean' needs floating data, got dtype {arr.dtype}")
    MPI = mpi_module("all_reduce")
    mpi_op = {"sum": MPI.SUM, "mean": MPI.SUM, "max": MPI.MAX, "min": MPI.MIN}[op]
    wait([comm.Iallreduce(MPI.IN_PLACE, arr, op=mpi_op)], "all_reduce")
    if op == "mean":
        arr /= comm.Get_size()
    return _written_back(tensor, arr)


def broadcast(tensor: Tensor | np.ndarray, src: int = 0) -> Tensor | np.ndarray:
    """Overwrite ``tensor`` on every process with its value on rank ``src``, in place. Returns it."""
    comm, arr = communicator("broadcast"), _array("broadcast", tensor)
    if not 0 <= src < comm.Get_size():
        raise ValueError(f"broadcast: src {src} is not a rank of this {comm.Get_size()}-process job")
    wait([comm.Ibcast(arr, root=src)], "broadcast")
    return _written_back(tensor, arr)


def _written_back(tensor: Any, host: np.ndarray) -> Any:
    """``tensor`` after a collective on ``host``: a device Tensor gets the result copied onto its device."""
    if isinstance(tensor, Tensor) and host is not tensor.data:
        tensor.data = to_device(host, device_of(tensor.data))
    return tensor


def all_gather(tensor_list: list, tensor: Tensor | np.ndarray) -> list:
    """Fill ``tensor_list`` (one entry per process, or empty) with every process's ``tensor``, in rank order.

    Entries are new Tensors (or arrays, for an array input). Every process must pass the same shape and
    dtype; if not, every process raises a ValueError naming the ranks and shapes.
    """
    comm = communicator("all_gather")
    arr = tensor.data if isinstance(tensor, Tensor) else tensor
    arr = np.ascontiguousarray(as_numpy(arr) if is_array(arr) else arr)  # host: MPI sends host memory
    n = comm.Get_size()
    if tensor_list and len(tensor_list) != n:
        raise ValueError(f"all_gather: tensor_list has {len(tensor_list)} entries for {n} processes")
    # A small object gather first, so a mismatch is an error on every rank instead of a corrupt buffer.
    metas = comm.allgather((arr.shape, arr.dtype.str))
    if any(m != metas[0] for m in metas):
        r = next(i for i, m in enumerate(metas) if m != metas[0])
        raise ValueError(f"all_gather: rank 0 has shape {metas[0][0]} dtype {metas[0][1]}, "
                         f"rank {r} has shape {metas[r][0]} dtype {metas[r][1]}")
    out = np.empty((n,) + arr.shape, dtype=arr.dtype)  # host
    comm.Allgather(arr, out)
    device = device_of(tensor.data) if isinstance(tensor, Tensor) else None  # Tensors come back on their device
    parts = [Tensor(o, dtype=o.dtype, device=device) if isinstance(tensor, Tensor) else o for o in out]
    tensor_list[:] = parts
    return tensor_list
