"""Datasets, samplers and the DataLoader, named and behaving as ``torch.utils.data``'s.

A ``Dataset`` maps an index to a sample; a sampler yields indices; a ``BatchSampler`` groups them;
the ``DataLoader`` fetches each group and ``collate_fn`` stacks it into Tensors. Shuffling draws from
the library's seeded generator (``from_scratch.manual_seed``) unless a NumPy ``Generator`` is given,
so the same seed gives the same batches and every epoch draws a new order.
"""
from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from itertools import accumulate
from typing import Any, Callable, Iterable, Iterator

import numpy as np

from . import backend
from .autograd import Tensor, stack
from .random import get_rng

__all__ = ["Dataset", "TensorDataset", "Subset", "random_split", "Sampler", "SequentialSampler", "RandomSampler",
           "BatchSampler", "DataLoader", "default_collate"]


# ------------------------------------------------------------------ datasets
class Dataset:
    """A map-style dataset: subclasses define ``__getitem__(index)`` and ``__len__()``."""

    def __getitem__(self, index: int) -> Any:
        raise NotImplementedError(f"{type(self).__name__} does not implement __getitem__")

    def __len__(self) -> int:
        raise NotImplementedError(f"{type(self).__name__} does not implement __len__")


class TensorDataset(Dataset):
    """Samples are ``(t[i] for t in tensors)``: rows of Tensors (or arrays) sharing their first dimension.

    NumPy arrays and lists are wrapped as Tensors (floating data becomes the default dtype, as
    ``Tensor(x)`` does). Raises ValueError when the first dimensions differ.
    """

    def __init__(self, *tensors: Any):
        if not tensors:
            raise ValueError("TensorDataset: needs at least one tensor")
        self.tensors = tuple(t if isinstance(t, Tensor) else Tensor(t) for t in tensors)
        sizes = [t.shape[0] if t.ndim else None for t in self.tensors]
        if None in sizes or len(set(sizes)) != 1:
            raise ValueError(f"TensorDataset: tensors must share their first dimension, got shapes "
                             f"{', '.join(str(t.shape) for t in self.tensors)}")

    def __getitem__(self, index: int) -> tuple[Tensor, ...]:
        return tuple(t[index] for t in self.tensors)

    def __len__(self) -> int:
        return self.tensors[0].shape[0]


class Subset(Dataset):
    """The samples of ``dataset`` at ``indices``, in that order."""

    def __init__(self, dataset: Any, indices: Sequence[int]):
        self.dataset, self.indices = dataset, indices

    def __getitem__(self, index: int) -> Any:
        return self.dataset[self.indices[index]]

    def __len__(self) -> int:
        return len(self.indices)


def random_split(dataset: Any, lengths: Sequence[int | float],
                 generator: np.random.Generator | None = None) -> list[Subset]:
    """Split ``dataset`` into disjoint random Subsets of the given lengths, as ``torch.utils.data.random_split``.

    ``lengths`` are sample counts summing to ``len(dataset)``, or fractions summing to 1: each gets
    ``floor(n * fraction)`` samples and the remainder is dealt one at a time to the splits in order
    (PyTorch's rule). The permutation is drawn from ``generator`` or the library's generator.
    Raises ValueError for a fraction outside [0, 1] or lengths that do not add up.
    """
    n, lengths = len(dataset), list(lengths)
    if math.isclose(sum(lengths), 1) and sum(lengths) <= 1:
        for i, frac in enumerate(lengths):
            if not 0 <= frac <= 1:
                raise ValueError(f"random_split: fraction at index {i} is {frac}, not between 0 and 1")
        counts = [math.floor(n * frac) for frac in lengths]
        for i in range(n - sum(counts)):
            counts[i % len(counts)] += 1
        lengths = counts
    if any(not isinstance(k, (int, np.integer)) or k < 0 for k in lengths):
        raise ValueError(f"random_split: lengths must be non-negative integers or fractions summing to 1, "
                         f"got {lengths}")
    if sum(lengths) != n:
        raise ValueError(f"random_split: lengths {lengths} sum to {sum(lengths)}, the dataset has {n} samples")
    order = _generator(generator, "random_split").permutation(n).tolist()
    return [Subset(dataset, order[end - k:end]) for end, k in zip(accumulate(lengths), lengths)]


# ------------------------------------------------------------------ samplers
def _generator(generator: np.random.Generator | None, owner: str) -> np.random.Generator:
    """``generator``, or the library's generator as it is now (so ``manual_seed`` after construction counts)."""
    if generator is None:
        return get_rng()
    if not isinstance(generator, np.random.Generator):
        raise TypeError(f"{owner}: generator must be a numpy.random.Generator or None, got {type(generator).__name__}")
    return generator


class Sampler:
    """Base class: an iterable of dataset indices; ``__len__`` says how many one pass yields."""

    def __iter__(self) -> Iterator[int]:
        raise NotImplementedError(f"{type(self).__name__} does not implement __iter__")


class SequentialSampler(Sampler):
    """Indices 0, 1, ..., len(data_source) - 1."""

    def __init__(self, data_source: Any):
        self.data_source = data_source

    def __iter__(self) -> Iterator[int]:
        return iter(range(len(self.data_source)))

    def __len__(self) -> int:
        return len(self.data_source)


class RandomSampler(Sampler):
    """A fresh random order of the indices on every pass, as ``torch.utils.data.RandomSampler``.

    Without replacement, each pass is a permutation (several, then part of one, when ``num_samples``
    exceeds the dataset); with replacement, ``num_samples`` independent draws. Draws come from
    ``generator`` or the library's generator at the time of each pass.
    """

    def __init__(self, data_source: Any, replacement: bool = False, num_samples: int | None = None,
                 generator: np.random.Generator | None = None):
        self.data_source, self.replacement, self._num_samples = data_source, replacement, num_samples
        self.generator = generator
        _generator(generator, "RandomSampler")
        if not isinstance(self.num_samples, int) or isinstance(self.num_samples, bool) or self.num_samples <= 0:
            raise ValueError(f"RandomSampler: num_samples must be a positive integer, got {self.num_samples!r}")

    @property
    def num_samples(self) -> int:
        return len(self.data_source) if self._num_samples is None else self._num_samples

    def __iter__(self) -> Iterator[int]:
        rng, n, k = _generator(self.generator, "RandomSampler"), len(self.data_source), self.num_samples
        if self.replacement:
            yield from rng.integers(0, n, size=k).tolist()
            return
        for _ in range(k // n):
            yield from rng.permutation(n).tolist()
        yield from rng.permutation(n)[:k % n].tolist()

    def __len__(self) -> int:
        return self.num_samples


class BatchSampler(Sampler):
    """Group the indices of ``sampler`` into lists of ``batch_size``; the last may be short unless ``drop_last``."""

    def __init__(self, sampler: Iterable[int], batch_size: int, drop_last: bool):
        if not isinstance(batch_size, (int, np.integer)) or isinstance(batch_size, bool) or batch_size <= 0:
            raise ValueError(f"BatchSampler: batch_size must be a positive integer, got {batch_size!r}")
        self.sampler, self.batch_size, self.drop_last = sampler, int(batch_size), bool(drop_last)

    def __iter__(self) -> Iterator[list[int]]:
        batch = []
        for index in self.sampler:
            batch.append(index)
            if len(batch) == self.batch_size:
                yield batch
                batch = []
        if batch and not self.drop_last:
            yield batch

    def __len__(self) -> int:
        n = _length(self.sampler, "BatchSampler")
        return n // self.batch_size if self.drop_last else -(-n // self.batch_size)


def _length(sampler: Any, owner: str) -> int:
    if not hasattr(sampler, "__len__"):
        raise TypeError(f"{owner}: the sampler ({type(sampler).__name__}) has no __len__, so the number of "
                        f"batches is unknown")
    return len(sampler)


# ------------------------------------------------------------------ collate and the loader
def default_collate(batch: Sequence[Any]) -> Any:
    """Stack a list of samples into a batch, as ``torch.utils.data.default_collate``.

    Tensors are stacked along a new first axis keeping their dtype; arrays and numbers become a Tensor the way
    ``Tensor(x)`` makes one (floats in the default dtype, integers int64 or their own dtype, bools bool);
    strings stay a list. Tensors and arrays on a device are stacked there (the batch stays on their device; as
    in PyTorch, the loader itself moves nothing: call ``.to(device)`` on a batch). Mappings, named tuples and
    sequences are collated per key or position (tuples, as in PyTorch, come back as lists). Raises ValueError
    for samples that cannot be stacked (different shapes or lengths) and TypeError for types it cannot collate.
    """
    elem = batch[0]
    if isinstance(elem, Tensor):
        _same_shapes(batch)
        if any(t.requires_grad for t in batch):  # keep the graph: stack is differentiable
            return stack(batch)
        arr = np.stack([t.data for t in batch])
        return Tensor(arr, dtype=arr.dtype)
    if isinstance(elem, np.generic) or backend.is_array(elem):  # stacked on the arrays' device
        _same_shapes(batch)
        return Tensor(np.stack(batch))
    if isinstance(elem, (bool, int, float)):
        arr = np.asarray(batch)  # host: Python numbers
        return Tensor(arr.astype(np.int64) if arr.dtype.kind == "i" else arr)
    if isinstance(elem, (str, bytes)):
        return list(batch)
    if isinstance(elem, Mapping):
        return {key: default_collate([sample[key] for sample in batch]) for key in elem}
    if isinstance(elem, tuple) and hasattr(elem, "_fields"):  # a named tuple keeps its type
        return type(elem)(*(default_collate(list(field)) for field in zip(*batch)))
    if isinstance(elem, Sequence):
        if any(len(sample) != len(elem) for sample in batch):
            raise ValueError(f"default_collate: samples are sequences of different lengths "
                             f"{sorted({len(s) for s in batch})}; pass a collate_fn that handles them")
        return [default_collate(list(field)) for field in zip(*batch)]
    raise TypeError(f"default_collate: cannot collate samples of type {type(elem).__name__}; batches must "
                    f"contain Tensors, NumPy arrays, numbers, strings, dicts or sequences (or pass a collate_fn)")


def _same_shapes(batch: Sequence[Any]) -> None:
    shapes = {np.shape(x.data if isinstance(x, Tensor) else x) for x in batch}
    if len(shapes) > 1:
        raise ValueError(f"default_collate: cannot stack samples of shapes {sorted(shapes)}; pass a collate_fn "
                         f"that pads them")


class DataLoader:
    """Iterate over ``dataset`` in batches, as ``torch.utils.data.DataLoader`` (in this process only).

    Each pass takes the indices of ``sampler`` (default: in order, or a fresh random order per pass
    when ``shuffle``, drawn from ``generator`` or the library's generator), groups them into lists of
    ``batch_size`` (the last one shorter unless ``drop_last``), and yields ``collate_fn`` of the
    samples (default: ``default_collate``). ``sampler`` may be any iterable of indices; give it
    ``__len__`` for ``len(loader)``. A ``DistributedSampler`` plugs in there: call its
    ``set_epoch(epoch)`` before each pass, as in PyTorch. ``batch_sampler`` yields whole lists of
    indices and replaces batch_size, shuffle, sampler and drop_last.

    Raises ValueError for a batch_size that is not a positive integer, for ``shuffle`` together with
    ``sampler`` or ``batch_sampler``, and for ``batch_sampler`` together with the options it replaces.
    """

    def __init__(self, dataset: Any, batch_size: int = 1, shuffle: bool = False, sampler: Iterable[int] | None = None,
                 batch_sampler: Iterable[list[int]] | None = None, drop_last: bool = False,
                 collate_fn: Callable[[list[Any]], Any] | None = None, generator: np.random.Generator | None = None):
        _generator(generator, "DataLoader")  # a bad generator is an error now, not at the first shuffle
        if sampler is not None and shuffle:
            raise ValueError("DataLoader: sampler option is mutually exclusive with shuffle (the sampler "
                             "decides the order; a DistributedSampler shuffles itself)")
        if batch_sampler is not None:
            if batch_size != 1 or shuffle or sampler is not None or drop_last:
                raise ValueError("DataLoader: batch_sampler option is mutually exclusive with batch_size, "
                                 "shuffle, sampler and drop_last")
        else:
            if sampler is None:
                sampler = RandomSampler(dataset, generator=generator) if shuffle else SequentialSampler(dataset)
            if not isinstance(batch_size, (int, np.integer)) or isinstance(batch_size, bool) or batch_size <= 0:
                raise ValueError(f"DataLoader: batch_size must be a positive integer, got {batch_size!r}")
            batch_sampler = BatchSampler(sampler, batch_size, drop_last)
            batch_size = int(batch_size)
        if collate_fn is not None and not callable(collate_fn):
            raise TypeError(f"DataLoader: collate_fn must be callable, got {type(collate_fn).__name__}")
        self.dataset, self.sampler, self.batch_sampler, self.generator = dataset, sampler, batch_sampler, generator
        self.batch_size = None if sampler is None else batch_size
        self.drop_last = bool(drop_last)
        self.collate_fn = default_collate if collate_fn is None else collate_fn

    def __iter__(self) -> Iterator[Any]:
        for indices in self.batch_sampler:
            yield self.collate_fn([self.dataset[i] for i in indices])

    def __len__(self) -> int:
        if isinstance(self.batch_sampler, BatchSampler):
            _length(self.batch_sampler.sampler, "DataLoader")  # the error names the loader, not its parts
        return _length(self.batch_sampler, "DataLoader")
