"""The process group over MPI: joining the job, rank and world size, barrier and abort, the timeout that
polls non-blocking collectives, and the hook that aborts the job when one process dies of an exception.

Other files of the package reach MPI through ``communicator``, ``mpi_module`` and ``wait``. mpi4py is
imported by ``init_process_group`` only.
"""
from __future__ import annotations

import os
import sys
import time
import traceback
from typing import Any

# "MPI": the mpi4py module, "comm": the communicator, "timeout": seconds or None, "excepthook": the one we replaced
_group: dict[str, Any] = {}


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


def wait(requests: list, what: str) -> None:
    """Wait for non-blocking MPI operations (``requests``); past the group's timeout, print that ``what``
    did not complete and abort the job."""
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


def communicator(name: str) -> Any:
    """The group's MPI communicator (``MPI.COMM_WORLD``); ``name``, the caller, names it in the
    RuntimeError raised when ``init_process_group`` has not run."""
    if not _group:
        raise RuntimeError(f"{name}: call from_scratch.distributed.init_process_group() first")
    return _group["comm"]


def mpi_module(name: str) -> Any:
    """The ``mpi4py.MPI`` module the group was started with (its ops, ``IN_PLACE``, ``Request``); raises
    like ``communicator`` when ``init_process_group`` has not run."""
    communicator(name)
    return _group["MPI"]


def get_rank() -> int:
    """This process's index in the job, 0 .. world size - 1."""
    return communicator("get_rank").Get_rank()


def get_world_size() -> int:
    """The number of processes in the job."""
    return communicator("get_world_size").Get_size()


def barrier() -> None:
    """Wait until every process reaches this point."""
    wait([communicator("barrier").Ibarrier()], "barrier")


def abort(errorcode: int = 1) -> None:
    """End every process of the job now with ``errorcode`` (``MPI_Abort``): what a process must do
    instead of exiting when the others may be waiting for it in a collective."""
    comm = communicator("abort")
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
