"""BLAS threads per matrix product: one for small products, the machine's cores for large ones.

NumPy hands every product to its BLAS (OpenBLAS, MKL, ...) with one process-wide thread count.
At a learner's sizes threads cost more than they give (on a busy two-core machine a tutorial
training step ran 9-18x slower with OpenBLAS's default threads than with one); at large sizes they
pay. So, like PyTorch's grain size, the count is chosen per product:

- a product whose BLAS call does fewer than ``PARALLEL_MIN_WORK`` multiply-adds (m k n) runs on
  one thread (other BLAS calls, such as the matrix-vector sums, keep the count the last product set);
- a larger one runs on ``set_num_threads(n)``'s count (PyTorch's name), else on the user's
  ``OPENBLAS_NUM_THREADS`` / ``MKL_NUM_THREADS`` / ``OMP_NUM_THREADS`` (the first one set), else on
  the cores of this process that other processes leave idle (Linux; every core elsewhere): a BLAS
  thread that shares its core with another busy process makes each product wait for the scheduler.

The BLAS is found through ``threadpoolctl`` when the library is imported, after NumPy has loaded
it, so the policy holds whatever the import order (an environment variable set at import only
works before NumPy loads). The library's products go through ``matmul``, which calls the BLAS's
own set-threads function only when the wanted count changes: a Python comparison per product, a
~0.15 us C call per change (``threadpoolctl``'s context manager costs ~200 us). With Apple's
Accelerate there is no thread count to set; there the policy changes nothing.
"""
from __future__ import annotations

import itertools
import os
import time
from typing import Callable

import numpy as np
from threadpoolctl import ThreadpoolController

__all__ = ["PARALLEL_MIN_WORK", "matmul", "threads_for", "set_num_threads", "get_num_threads",
           "blas_num_threads"]

# Multiply-adds (m * k * n of one BLAS call) from which a product gets more than one thread.
# Measured by benchmarks/thread_threshold.py on the shared two-core development machine (README, Speed):
# two threads gave 1.2x at 2.0 M (the tutorial's largest product, at an idle moment) and 1.5-2.2x from
# 8 M to 130 M (fastest calls, the machine loaded). A batched product counts one matrix of the batch:
# NumPy calls BLAS once per matrix.
PARALLEL_MIN_WORK = 4_000_000

ENV_VARS = ("OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "OMP_NUM_THREADS")


def _env_threads() -> int | None:
    """The thread count the user set in the environment (first of ENV_VARS that is set), or None."""
    for name in ENV_VARS:
        value = os.environ.get(name, "").split(",")[0].strip()  # OMP_NUM_THREADS may be a list "4,2"
        if value.isdigit() and int(value) > 0:
            return int(value)
    return None


def _cores() -> int:
    """The cores this process may run on (its CPU affinity where the OS tells, else all)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # macOS, Windows
        return os.cpu_count() or 1


def _openblas_setter(lib) -> Callable[[int], None] | None:
    """OpenBLAS's own ``openblas_set_num_threads`` (under any of its symbol prefixes/suffixes), called
    directly: threadpoolctl's wrapper adds a lock check per call (0.5 us against 0.15 us)."""
    for prefix, suffix in itertools.product(("", "scipy_"), ("", "64_", "_64")):
        fn = getattr(lib.dynlib, f"{prefix}openblas_set_num_threads{suffix}", None)
        if fn is not None:
            return fn
    return None


def _blas_setters() -> list[Callable[[int], None]]:
    """The set-threads function of each BLAS library loaded now (NumPy's, after ``import numpy``)."""
    setters = []
    for lib in ThreadpoolController().select(user_api="blas").lib_controllers:
        fn = None
        if lib.internal_api == "openblas" and getattr(lib, "threading_layer", None) == "pthreads":
            fn = _openblas_setter(lib)  # with OpenMP threading, threadpoolctl's per-thread omp call is right
        setters.append(fn or lib.set_num_threads)
    return setters


def _machine_busy_seconds() -> float | None:
    """CPU seconds every process on the machine has used since boot (Linux's /proc/stat), or None."""
    try:
        with open("/proc/stat", "rb") as f:
            user, nice, system, _idle, _iowait, irq, softirq, steal = map(int, f.readline().split()[1:9])
    except (OSError, ValueError):
        return None
    return (user + nice + system + irq + softirq + steal) / _TICKS_PER_SECOND


_TICKS_PER_SECOND = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
_SETTERS = _blas_setters()
_CORES = _cores()
_requested = _env_threads()  # set_num_threads(n) or the environment; None: every free core
_current = 0  # the count the BLAS was last set to here (0: not yet)
_sample = (time.monotonic(), _machine_busy_seconds(), time.process_time())  # for _free_cores
_free = _CORES


def _free_cores() -> int:
    """The cores that other processes left idle over the last half second or more (all of ours where
    the OS does not tell). A BLAS thread that must share its core with another process makes every
    product wait for the scheduler: on the two-core machine, with other processes busy, two threads
    ran most of the library's products 10-1000x slower than one (benchmarks/thread_threshold.py)."""
    global _sample, _free
    now = time.monotonic()
    if now - _sample[0] >= 0.5:
        busy, ours = _machine_busy_seconds(), time.process_time()
        if busy is not None and _sample[1] is not None:
            others = (busy - _sample[1] - (ours - _sample[2])) / (now - _sample[0])  # cores busy elsewhere
            _free = max(1, min(_CORES, int((os.cpu_count() or 1) - others + 0.25)))
        _sample = (now, busy, ours)
    return _free


def _use(n: int) -> None:
    global _current
    for set_threads in _SETTERS:
        set_threads(n)
    _current = n


def threads_for(a: np.ndarray, b: np.ndarray) -> int:
    """The BLAS threads the policy gives ``a @ b``: one below ``PARALLEL_MIN_WORK`` multiply-adds per
    BLAS call (matrix-vector products included); from there on ``set_num_threads``' count or the
    environment's where the user set one, else the cores other processes leave free."""
    if a.ndim < 2 or b.ndim < 2 or a.shape[-2] * a.shape[-1] * b.shape[-1] < PARALLEL_MIN_WORK:
        return 1
    return _requested or _free_cores()


def matmul(a: np.ndarray, b: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
    """``a @ b`` (``np.matmul``, into ``out`` if given) on the BLAS threads ``threads_for`` gives it.

    The library's products go through here; per-head attention products, far below the threshold
    at any sequence length we train on, skip it (the check would cost more than it saves). Arrays of
    another device (CuPy's) go straight to their own ``@``: the host's BLAS threads are not theirs.
    """
    if type(a) is not np.ndarray:
        return a @ b if out is None else np.matmul(a, b, out=out)  # dispatched to the device's matmul
    # threads_for inlined: this runs for every product of a training step
    if a.ndim > 1 and b.ndim > 1 and a.shape[-2] * a.shape[-1] * b.shape[-1] >= PARALLEL_MIN_WORK:
        n = _requested or _free_cores()
    else:
        n = 1
    if n != _current:
        _use(n)
    return a @ b if out is None else np.matmul(a, b, out=out)


def set_num_threads(n: int | None) -> None:
    """Use ``n`` BLAS threads for products large enough to gain (``torch.set_num_threads``); small
    products keep one. ``None`` goes back to the default (the environment's count, else the free cores).
    Raises ValueError unless n is a positive integer or None."""
    global _requested
    if n is not None and (isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 1):
        raise ValueError(f"set_num_threads: need a positive integer (or None for the default), got {n!r}")
    _requested = _env_threads() if n is None else int(n)
    _use(1)


def get_num_threads() -> int:
    """The BLAS threads large products may use (``torch.get_num_threads``): ``set_num_threads``' count,
    else the environment's, else this process's cores (of which large products use those that other
    processes leave free). Small products use one."""
    return _requested or _CORES


def blas_num_threads() -> list[int]:
    """The thread count each loaded BLAS library reports now, read back through threadpoolctl."""
    return [lib.num_threads for lib in ThreadpoolController().select(user_api="blas").lib_controllers]


_use(1)  # whatever NumPy's BLAS started with (its default is every core): one thread between products
