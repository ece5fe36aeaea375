"""DistributedSampler: each process's shard of every epoch of a dataset, as ``torch.utils.data``'s."""
from __future__ import annotations

import math
from typing import Iterator, Sequence

import numpy as np

from ..data import Sampler
from .group import get_rank, get_world_size


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
