"""DistributedDataParallel: gradients averaged across processes in flat buckets, reduced while backward runs.

The buckets are NumPy arrays: MPI here reduces host memory only (CUDA-aware MPI and NCCL are not used),
so each gradient on a GPU is copied into its bucket and the average copied back onto its device.
"""
from __future__ import annotations

from contextlib import contextmanager
from typing import Any, Iterator

import numpy as np

from ..autograd import Tensor, is_grad_enabled
from ..backend import as_numpy, device_of, to_device
from ..nn.module import Module
from .group import communicator, mpi_module, wait


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
        comm = communicator("DistributedDataParallel")
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
                and communicator("forward").Get_size() > 1):
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
        if not self.require_backward_grad_sync or communicator("DistributedDataParallel").Get_size() == 1:
            return
        self._bucket_of[id(param)].ready.add(id(param))
        MPI = mpi_module("DistributedDataParallel")
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
        MPI = mpi_module("DistributedDataParallel")
        bucket.request = communicator("DistributedDataParallel").Iallreduce(MPI.IN_PLACE, buf, op=MPI.SUM)

    def _finish(self) -> None:
        wait([b.request for b in self._buckets], "DistributedDataParallel's gradient reduction")
        n = communicator("DistributedDataParallel").Get_size()
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
