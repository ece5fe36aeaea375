"""Data-parallel training over MPI, through mpi4py, the way ChainerMN did it for Chainer.

Every process holds a replica of the model and trains on its own shard of each global batch; the
gradients are averaged across processes before each optimizer step, so N processes train the model one
process would train on the whole batch. Launch with the MPI launcher::

    mpiexec -n 2 python train.py          # pip install 'bare-bones-ml[distributed]' brings mpiexec

    dist.init_process_group()
    model = dist.DistributedDataParallel(model)
    sampler = dist.DistributedSampler(dataset)   # each rank its shard of every epoch

Names and semantics follow ``torch.distributed`` and ``torch.nn.parallel.DistributedDataParallel``.
mpi4py is imported by ``init_process_group``, never by ``import from_scratch``.

Devices: MPI here reduces host memory only (CUDA-aware MPI and NCCL are not used). DDP's buckets are
NumPy arrays: each gradient on a GPU is copied into its bucket (``backend.as_numpy``), and the average is
copied back onto the gradient's device (``backend.to_device``): two copies per parameter per step,
which a multi-GPU run pays on top of the reduction. The collectives take NumPy arrays and Tensors on
any device; a device Tensor's data goes to the host and back the same way.
"""
from __future__ import annotations

import math
import os
import sys
import time
import traceback
from contextlib import contextmanager
from typing import Any, Iterator, Sequence

import numpy as np

from .autograd import Tensor, is_grad_enabled
from .backend import as_numpy, device_of, is_array, to_device
from .data import Sampler
from .nn.module import Module

__all__ = ["init_process_group", "destroy_process_group", "is_initialized", "get_rank", "get_world_size",
           "barrier", "abort", "launched_world_size", "all_reduce", "broadcast", "all_gather",
           "DistributedDataParallel", "DistributedSampler"]

# "MPI": the mpi4py module, "comm": the communicator, "timeout": seconds or None, "excepthook": the one we replaced
_group: dict[str, Any] = {}
_OPS = ("sum", "mean", "max", "min")


# ------------------------------------------------------------------ process group
def init_process_group(backend: str = "mpi", timeout: float | None = 1800.0, abort_on_exception: bool = True) -> None:
    """Join the job started by ``mpiexec``: rank and world size come from MPI (``MPI.COMM_WORLD``).

    With ``abort_on_exception`` an exception that ends one process prints ``rank r of n failed`` and
    its traceback and aborts the whole job (``MPI_Abort``), so the others do not wait for it forever.
    ``timeout`` (seconds, or a ``timedelta``; PyTorch's default of 30 minutes): a collective of this
    module (and DDP's reduction) that has not completed by then, because another process hangs, aborts
    the job with a message; ``None`` waits forever. MPI itself has no timeout: collectives are started
    non-blocking and polled. Raises ImportError naming the extra to install when mpi4py is missing.
    """
    if backend != "mpi":
        raise ValueError(f"init_process_group: only the 'mpi' backend exists here, got {backend!r}")
    if _group:
        return
    try:
        from mpi4py import MPI
    except ImportError as e:
        raise ImportError("from_scratch.distributed needs mpi4py and an MPI library: "
                          "pip install 'bare-bones-ml[distributed]' (the mpich wheel brings mpiexec)") from e
    timeout = timeout.total_seconds() if hasattr(timeout, "total_seconds") else timeout
    if timeout is not None and not timeout > 0:
        raise ValueError(f"init_process_group: timeout must be positive seconds or None, got {timeout}")
    _group.update(MPI=MPI, comm=MPI.COMM_WORLD, timeout=timeout)
    if abort_on_exception and MPI.COMM_WORLD.Get_size() > 1:
        _group["excepthook"] = sys.excepthook
        sys.excepthook = _abort_job


def _abort_job(kind: type, value: BaseException, tb: Any) -> None:
    text = "".join(traceback.format_exception(kind, value, tb))
    _abort_saying(f" failed, aborting the job:\n{text}")


def _abort_saying(message: str) -> None:
    comm = _group["comm"]
    sys.stderr.write(f"rank {comm.Get_rank()} of {comm.Get_size()}{message}")
    abort(1)


def _wait(requests: list, what: str) -> None:
    """Wait for non-blocking operations; past the group's timeout, say so and abort the job."""
    MPI, timeout = _group["MPI"], _group["timeout"]
    if timeout is None:
        MPI.Request.Waitall(requests)
        return
    deadline = time.monotonic() + timeout
    while not MPI.Request.Testall(requests):
        if time.monotonic() > deadline:
            _abort_saying(f": {what} did not complete within {timeout:g} s (another process hangs or died); "
                          "aborting the job\n")


def destroy_process_group() -> None:
    """Leave the process group (MPI itself is finalized when the process exits, by mpi4py)."""
    if "excepthook" in _group:
        sys.excepthook = _group["excepthook"]
    _group.clear()


def is_initialized() -> bool:
    return bool(_group)


def _comm(name: str) -> Any:
    if not _group:
        raise RuntimeError(f"{name}: call from_scratch.distributed.init_process_group() first")
    return _group["comm"]


def get_rank() -> int:
    """This process's index in the job, 0 .. world size - 1."""
    return _comm("get_rank").Get_rank()


def get_world_size() -> int:
    """The number of processes in the job."""
    return _comm("get_world_size").Get_size()


def barrier() -> None:
    """Wait until every process reaches this point."""
    _wait([_comm("barrier").Ibarrier()], "barrier")


def abort(errorcode: int = 1) -> None:
    """End every process of the job now with ``errorcode`` (``MPI_Abort``): what a process must do
    instead of exiting when the others may be waiting for it in a collective."""
    comm = _comm("abort")
    sys.stdout.flush()
    sys.stderr.flush()
    time.sleep(0.5)  # mpiexec drops the output still in its pipes when the abort tears the job down
    comm.Abort(errorcode)


def launched_world_size() -> int:
    """How many processes the MPI launcher started, read from its environment without loading MPI
    (MPICH and Intel MPI set PMI_SIZE, Open MPI OMPI_COMM_WORLD_SIZE); 1 when not under a launcher."""
    for name in ("PMI_SIZE", "OMPI_COMM_WORLD_SIZE"):
        if os.environ.get(name, "").isdigit():
            return int(os.environ[name])
    return 1


# ------------------------------------------------------------------ collectives
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
    comm, arr = _comm("all_reduce"), _array("all_reduce", tensor)
    if op == "mean" and arr.dtype.kind not in "fc":
        raise TypeError(f"all_reduce: op='mean' needs floating data, got dtype {arr.dtype}")
    MPI = _group["MPI"]
    mpi_op = {"sum": MPI.SUM, "mean": MPI.SUM, "max": MPI.MAX, "min": MPI.MIN}[op]
    _wait([comm.Iallreduce(MPI.IN_PLACE, arr, op=mpi_op)], "all_reduce")
    if op == "mean":
        arr /= comm.Get_size()
    return _written_back(tensor, arr)


def broadcast(tensor: Tensor | np.ndarray, src: int = 0) -> Tensor | np.ndarray:
    """Overwrite ``tensor`` on every process with its value on rank ``src``, in place. Returns it."""
    comm, arr = _comm("broadcast"), _array("broadcast", tensor)
    if not 0 <= src < comm.Get_size():
        raise ValueError(f"broadcast: src {src} is not a rank of this {comm.Get_size()}-process job")
    _wait([comm.Ibcast(arr, root=src)], "broadcast")
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
    comm = _comm("all_gather")
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


# ------------------------------------------------------------------ DistributedDataParallel
class _Bucket:
    """Gradients of a few parameters packed into one flat array, reduced with one call."""

    def __init__(self, params: list, dtype: np.dtype) -> None:
        self.params = params
        self.offsets = np.cumsum([0] + [p.data.size for p in params]).tolist()
        self.buffer = np.empty(self.offsets[-1], dtype=dtype)  # host: MPI reduces host memory (see the top)
        self.ready: set[int] = set()  # ids of the params whose gradient is final in this backward
        self.request: Any = None


class DistributedDataParallel(Module):
    """Wrap ``module`` so that ``backward`` leaves every process the gradients averaged over all processes.

    At wrap, every process must hold the same parameter names and shapes (else a ValueError naming the
    first difference and the ranks, on every process); rank 0's parameters and buffers are then
    broadcast. Gradients are packed into flat buckets of at most ``bucket_cap_mb`` MiB, filled in the
    reverse order of ``parameters()`` (roughly the order backward finishes them). A post-accumulate-grad
    hook on each parameter notes when its gradient is final; a full bucket starts a non-blocking
    ``Iallreduce`` right away, overlapping the rest of the backward pass; the last one to fill waits for
    all and writes the averages into ``.grad``. Buckets start in the same order on every process, as
    MPI requires.

    A parameter that gets no gradient in a backward never fills its bucket: with
    ``find_unused_parameters=True`` each ``forward`` walks the output's graph and counts the parameters
    it does not reach as ready with a zero gradient (so after the step their ``.grad`` holds the average
    of the other processes' gradients, zeros if none used them); without it, the next ``forward``
    raises a RuntimeError naming them. ``no_sync()`` skips the averaging (gradients accumulate locally);
    the first backward after it averages the accumulated sums. Buffers are broadcast at wrap only.
    Gradients are averaged before clipping, so ``clip_grad_norm_`` sees the global norm.
    """

    def __init__(self, module: Module, bucket_cap_mb: float = 25, find_unused_parameters: bool = False) -> None:
        super().__init__()
        if not isinstance(module, Module):
            raise TypeError(f"DistributedDataParallel: expected a Module, got {type(module).__name__}")
        if not bucket_cap_mb > 0:
            raise ValueError(f"DistributedDataParallel: bucket_cap_mb must be > 0, got {bucket_cap_mb}")
        comm = _comm("DistributedDataParallel")
        self.module = module
        self.bucket_cap_mb = bucket_cap_mb
        self.find_unused_parameters = find_unused_parameters
        self.require_backward_grad_sync = True
        named = [(n, p) for n, p in module.named_parameters() if p.requires_grad]
        _check_same_model(comm, [(n, t.shape, t.dtype.str) for n, t in [*named, *module.named_buffers()]])
        for t in [*module.parameters(), *module.buffers()]:
            if t.data.size:
                host = np.ascontiguousarray(as_numpy(t.data))  # host: broadcast through host memory
                comm.Bcast(host, root=0)
                t.data = to_device(host, device_of(t.data))
        self._buckets = _make_buckets([p for _, p in reversed(named)], bucket_cap_mb * 2 ** 20)
        self._bucket_of = {id(p): b for b in self._buckets for p in b.params}
        self._names = {id(p): n for n, p in named}
        self._next = 0  # the next bucket to start: buckets start in order on every process
        self._handles = [p.register_post_accumulate_grad_hook(self._grad_ready) for _, p in named]

    def forward(self, *args: Any, **kwargs: Any) -> Any:
        self._check_finished()
        out = self.module(*args, **kwargs)
        if (self.find_unused_parameters and self.require_backward_grad_sync and is_grad_enabled()
                and _comm("forward").Get_size() > 1):
            reached = _reachable_leaves(out)
            for b in self._buckets:
                b.ready.update(id(p) for p in b.params if id(p) not in reached)
        return out

    def extra_repr(self) -> str:
        return f"bucket_cap_mb={self.bucket_cap_mb}, buckets={len(self._buckets)}"

    @contextmanager
    def no_sync(self) -> Iterator[None]:
        """Inside, backward only accumulates local gradients (gradient accumulation without communication)."""
        previous, self.require_backward_grad_sync = self.require_backward_grad_sync, False
        try:
            yield
        finally:
            self.require_backward_grad_sync = previous

    # -------------------------------------------------------------- the reduction
    def _grad_ready(self, param: Tensor) -> None:
        if not self.require_backward_grad_sync or _group["comm"].Get_size() == 1:
            return
        self._bucket_of[id(param)].ready.add(id(param))
        MPI = _group["MPI"]
        while self._next < len(self._buckets) and len(self._buckets[self._next].ready) == len(
                self._buckets[self._next].params):
            self._start(self._buckets[self._next])
            self._next += 1
        if self._next == len(self._buckets):
            self._finish()
        else:  # MPICH progresses non-blocking collectives only inside MPI calls: give the started ones a turn
            MPI.Request.Testall([b.request for b in self._buckets[:self._next]])

    def _start(self, bucket: _Bucket) -> None:
        buf = bucket.buffer
        for p, lo, hi in zip(bucket.params, bucket.offsets, bucket.offsets[1:]):
            if p.grad is None:
                buf[lo:hi] = 0
            else:
                buf[lo:hi] = as_numpy(p.grad).reshape(-1)
        MPI = _group["MPI"]
        bucket.request = _group["comm"].Iallreduce(MPI.IN_PLACE, buf, op=MPI.SUM)

    def _finish(self) -> None:
        _wait([b.request for b in self._buckets], "DistributedDataParallel's gradient reduction")
        n = _group["comm"].Get_size()
        for b in self._buckets:
            for p, lo, hi in zip(b.params, b.offsets, b.offsets[1:]):
                p.grad = to_device((b.buffer[lo:hi] / n).reshape(p.shape), device_of(p.data))
            b.ready.clear()
            b.request = None
        self._next = 0

    def _check_finished(self) -> None:
        started = self._next or any(b.ready for b in self._buckets)
        if not started:
            return
        missing = [name for key, name in self._names.items() if key not in self._bucket_of[key].ready]
        raise RuntimeError(
            f"DistributedDataParallel: the last backward gave no gradient to {missing[:5]}"
            f"{' and more' if len(missing) > 5 else ''}, so the gradients were not averaged across processes "
            "(the processes now hold different models). If some parameters are unused in forward, pass "
            "find_unused_parameters=True")


def _check_same_model(comm: Any, entries: list[tuple]) -> None:
    """Raise on every process if some process's (name, shape, dtype) list differs from rank 0's."""
    everyone = comm.allgather(entries)
    for rank, theirs in enumerate(everyone[1:], start=1):
        if theirs == everyone[0]:
            continue
        i = next((i for i, (a, b) in enumerate(zip(everyone[0], theirs)) if a != b), None)
        if i is None:  # one list is a prefix of the other
            longer, r = (everyone[0], 0) if len(everyone[0]) > len(theirs) else (theirs, rank)
            what = f"{longer[min(len(everyone[0]), len(theirs))][0]!r} exists only on rank {r}"
        else:
            (n0, s0, d0), (n1, s1, d1) = everyone[0][i], theirs[i]
            what = (f"entry {i} is {n0!r} {s0} {d0} on rank 0 but {n1!r} {s1} {d1} on rank {rank}"
                    if n0 != n1 else f"{n0!r} has shape {s0} dtype {d0} on rank 0 but {s1} {d1} on rank {rank}")
        raise ValueError(f"DistributedDataParallel: the processes hold different models: {what}")


def _make_buckets(params: list, cap_bytes: float) -> list[_Bucket]:
    """Group parameters, in the given order, into buckets of one dtype and at most ``cap_bytes`` each
    (a parameter bigger than the cap gets a bucket of its own)."""
    buckets, current, size = [], [], 0
    for p in params:
        if current and (size + p.data.nbytes > cap_bytes or p.dtype != current[0].dtype):
            buckets.append(_Bucket(current, current[0].dtype))
            current, size = [], 0
        current.append(p)
        size += p.data.nbytes
    if current:
        buckets.append(_Bucket(current, current[0].dtype))
    return buckets


def _reachable_leaves(out: Any) -> set[int]:
    """ids of the leaves the graph of ``out`` (a Tensor or nested tuples/lists/dicts of them) reaches."""
    if isinstance(out, dict):
        out = list(out.values())
    stack = [t for t in (out if isinstance(out, (list, tuple)) else [out])]
    seen, leaves = set(), set()
    while stack:
        t = stack.pop()
        if isinstance(t, (list, tuple)):
            stack.extend(t)
        elif isinstance(t, Tensor) and id(t) not in seen:
            seen.add(id(t))
            if t._ctx is None:
                leaves.add(id(t))
            else:
                stack.extend(t._ctx.parents)
    return leaves


# ------------------------------------------------------------------ sampling
class DistributedSampler(Sampler):
    """The indices of ``dataset`` for one process: its shard of each epoch, as ``torch.utils.data``'s;
    give it to ``DataLoader(dataset, sampler=...)``.

    Each epoch (``set_epoch``) the indices 0..len-1 are shuffled with ``seed + epoch`` (the same order on
    every process), padded by repeating the first ones to a multiple of ``num_replicas`` (or, with
    ``drop_last``, cut down to one), and process ``rank`` takes every ``num_replicas``-th from ``rank``.
    So each sample is used once per epoch (plus at most ``num_replicas - 1`` repeats). ``num_replicas``
    and ``rank`` default to the process group's.
    """

    def __init__(self, dataset: Sequence, num_replicas: int | None = None, rank: int | None = None,
                 shuffle: bool = True, seed: int = 0, drop_last: bool = False) -> None:
        num_replicas = get_world_size() if num_replicas is None else num_replicas
        rank = get_rank() if rank is None else rank
        if num_replicas < 1 or not 0 <= rank < num_replicas:
            raise ValueError(f"DistributedSampler: rank {rank} is not in [0, {num_replicas})")
        self.dataset, self.num_replicas, self.rank = dataset, num_replicas, rank
        self.shuffle, self.seed, self.drop_last, self.epoch = shuffle, seed, drop_last, 0
        n = len(dataset)
        self.num_samples = n // num_replicas if drop_last else math.ceil(n / num_replicas)
        self.total_size = self.num_samples * num_replicas

    def set_epoch(self, epoch: int) -> None:
        """Use the order of ``epoch``: call before each epoch, or every epoch repeats the same order."""
        self.epoch = epoch

    def __iter__(self) -> Iterator[int]:
        n = len(self.dataset)
        if self.shuffle:  # the same order on every process
            order = np.random.default_rng(self.seed + self.epoch).permutation(n)  # host: indices
        else:
            order = np.arange(n)  # host: indices
        if self.total_size > n:
            order = np.resize(order, self.total_size)  # repeats from the start as often as needed
        order = order[:self.total_size]
        return iter(order[self.rank:self.total_size:self.num_replicas].tolist())

    def __len__(self) -> int:
        return self.num_samples
