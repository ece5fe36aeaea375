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

Files: ``group.py`` (the process group, timeout and abort), ``collectives.py``, ``ddp.py``, ``sampler.py``.
"""

from .collectives import all_gather, all_reduce, broadcast
from .ddp import DistributedDataParallel
from .group import (abort, barrier, destroy_process_group, get_rank, get_world_size, init_process_group,
                    is_initialized, launched_world_size)
from .sampler import DistributedSampler

__all__ = ["init_process_group", "destroy_process_group", "is_initialized", "get_rank", "get_world_size",
           "barrier", "abort", "launched_world_size", "all_reduce", "broadcast", "all_gather",
           "DistributedDataParallel", "DistributedSampler"]
