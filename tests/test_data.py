"""from_scratch.data: epochs, seeding, batching, collate, random_split; against torch.utils.data where it has a twin."""
from collections import namedtuple

import numpy as np
import pytest
import torch
import torch.utils.data as tud
from hypothesis import given, settings
from hypothesis import strategies as st

import from_scratch as fs
from from_scratch import Tensor
from from_scratch.data import (BatchSampler, DataLoader, Dataset, RandomSampler, SequentialSampler, Subset,
                               TensorDataset, default_collate, random_split)


class Indices(Dataset):
    """Sample i is i: a loader's batches show exactly which indices it visited."""

    def __init__(self, n):
        self.n = n

    def __getitem__(self, i):
        return i

    def __len__(self):
        return self.n


def epoch(loader):
    return [b.data.tolist() for b in loader]


# ------------------------------------------------------------------ epochs and lengths
@settings(max_examples=60, deadline=None)
@given(n=st.integers(1, 40), batch_size=st.integers(1, 12), drop_last=st.booleans(), shuffle=st.booleans())
def test_an_epoch_visits_every_sample_once_in_batches_as_torch(n, batch_size, drop_last, shuffle):
    loader = DataLoader(Indices(n), batch_size=batch_size, shuffle=shuffle, drop_last=drop_last)
    batches = epoch(loader)
    theirs = tud.DataLoader(range(n), batch_size=batch_size, shuffle=shuffle, drop_last=drop_last)
    assert len(loader) == len(batches) == len(theirs) == len(list(theirs))
    assert [len(b) for b in batches] == [len(b) for b in theirs]
    seen = [i for b in batches for i in b]
    assert len(seen) == len(set(seen))  # no index twice
    if drop_last:
        assert len(seen) == n - n % batch_size
    else:
        assert sorted(seen) == list(range(n))  # every index once
    if not shuffle:
        assert seen == list(range(len(seen)))


def test_same_seed_same_batches_and_each_epoch_a_new_order():
    loader = DataLoader(Indices(50), batch_size=8, shuffle=True)
    fs.manual_seed(3)
    first = [epoch(loader) for _ in range(3)]
    fs.manual_seed(3)  # seeding after the loader was made still counts
    assert [epoch(loader) for _ in range(3)] == first
    assert first[0] != first[1] != first[2]
    assert all(sorted(i for b in e for i in b) == list(range(50)) for e in first)
    fs.manual_seed(4)
    assert epoch(loader) != first[0]


def test_explicit_generator_is_used_and_leaves_the_library_generator_alone():
    def run(seed):
        return epoch(DataLoader(Indices(30), batch_size=4, shuffle=True, generator=np.random.default_rng(seed)))

    fs.manual_seed(0)
    state = fs.get_rng_state()
    assert run(7) == run(7) != run(8)
    assert fs.get_rng_state() == state


def test_drop_last_drops_only_the_short_batch():
    assert epoch(DataLoader(Indices(10), batch_size=4, drop_last=True)) == [[0, 1, 2, 3], [4, 5, 6, 7]]
    assert epoch(DataLoader(Indices(10), batch_size=4)) == [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9]]
    assert epoch(DataLoader(Indices(8), batch_size=4, drop_last=True)) == [[0, 1, 2, 3], [4, 5, 6, 7]]
    assert len(DataLoader(Indices(3), batch_size=4, drop_last=True)) == 0
    assert epoch(DataLoader(Indices(3), batch_size=4, drop_last=True)) == []


# ------------------------------------------------------------------ samplers
class EpochSampler:
    """What a DistributedSampler offers the loader: indices, __len__ and set_epoch."""

    def __init__(self, n):
        self.n, self.epoch = n, 0

    def set_epoch(self, epoch):
        self.epoch = epoch

    def __iter__(self):
        return iter(np.random.default_rng(self.epoch).permutation(self.n)[::2].tolist())

    def __len__(self):
        return (self.n + 1) // 2


def test_sampler_may_be_any_iterable_of_indices():
    assert epoch(DataLoader(Indices(10), batch_size=2, sampler=[9, 0, 3])) == [[9, 0], [3]]
    sampler = EpochSampler(20)
    loader = DataLoader(Indices(20), batch_size=4, sampler=sampler)
    assert len(loader) == 3
    epochs = []
    for e in range(2):
        sampler.set_epoch(e)
        epochs.append(sum(epoch(loader), []))
    assert epochs[0] != epochs[1] and all(len(set(ep)) == 10 for ep in epochs)
    sampler.set_epoch(0)
    assert sum(epoch(loader), []) == epochs[0]
    with pytest.raises(TypeError, match="DataLoader.*has no __len__"):
        len(DataLoader(Indices(4), sampler=iter([0, 1])))


def test_batch_sampler_and_the_samplers():
    assert epoch(DataLoader(Indices(6), batch_sampler=[[5, 1], [0]])) == [[5, 1], [0]]
    assert list(BatchSampler(SequentialSampler(range(5)), 2, drop_last=False)) == [[0, 1], [2, 3], [4]]
    assert len(BatchSampler(range(5), 2, drop_last=True)) == 2
    draws = list(RandomSampler(range(4), num_samples=10, generator=np.random.default_rng(0)))
    assert sorted(draws[:8]) == [0, 0, 1, 1, 2, 2, 3, 3] and len(draws) == 10  # two permutations and a part
    with_replacement = RandomSampler(range(3), replacement=True, num_samples=50, generator=np.random.default_rng(1))
    draws = list(with_replacement)
    assert len(with_replacement) == 50 and set(draws) == {0, 1, 2}


# ------------------------------------------------------------------ collate
def to_numpy(x):
    """A collated batch with Tensors (ours or torch's) as NumPy arrays, and tuples as lists."""
    if isinstance(x, Tensor):
        return x.data
    if isinstance(x, torch.Tensor):
        return x.numpy()
    if isinstance(x, dict):
        return {k: to_numpy(v) for k, v in x.items()}
    if isinstance(x, tuple) and hasattr(x, "_fields"):
        return type(x)(*(to_numpy(v) for v in x))
    if isinstance(x, (list, tuple)):
        return [to_numpy(v) for v in x]
    return x


def assert_same_batch(ours, theirs):
    assert type(ours) is type(theirs)
    if isinstance(theirs, dict):
        assert list(ours) == list(theirs)
        for k in theirs:
            assert_same_batch(ours[k], theirs[k])
    elif isinstance(theirs, (list, tuple)) and not isinstance(theirs[0], str):
        assert len(ours) == len(theirs)
        for o, t in zip(ours, theirs):
            assert_same_batch(o, t)
    elif isinstance(theirs, np.ndarray):
        assert ours.shape == theirs.shape and ours.dtype.kind == theirs.dtype.kind
        np.testing.assert_allclose(ours, theirs, rtol=1e-6)  # ours float32 where torch keeps float64
    else:
        assert ours == theirs


Pair = namedtuple("Pair", "x y")


def test_default_collate_of_nested_structures_matches_torch():
    rng = np.random.default_rng(0)
    samples = [{"image": rng.standard_normal((2, 3)), "label": i, "weight": 0.5 * i, "flag": i % 2 == 0,
                "name": f"s{i}", "pair": (np.int64(i), [rng.standard_normal(4), 3 * i]),
                "named": Pair(i, np.float32(i) / 2)} for i in range(5)]
    ours, theirs = default_collate(samples), tud.default_collate(samples)
    assert_same_batch(to_numpy(ours), to_numpy(theirs))
    assert type(ours["named"]) is Pair and isinstance(ours["pair"], list)  # tuples come back as lists, as torch
    assert ours["label"].dtype == np.int64 and ours["flag"].dtype == np.bool_ and ours["name"] == list(
        "s0 s1 s2 s3 s4".split())
    assert ours["image"].dtype == fs.get_default_dtype() == ours["weight"].dtype  # floats: the default dtype
    assert ours["image"].shape == (5, 2, 3)


def test_collate_keeps_tensor_dtypes_and_follows_the_default_dtype():
    ds = TensorDataset(Tensor(np.arange(12.0).reshape(6, 2), dtype=np.float64), np.arange(6, dtype=np.int32))
    x, y = next(iter(DataLoader(ds, batch_size=4)))
    assert x.dtype == np.float64 and y.dtype == np.int32 and x.shape == (4, 2)
    np.testing.assert_array_equal(x.data, np.arange(8.0).reshape(4, 2))
    fs.set_default_dtype(np.float64)
    try:
        assert default_collate([1.5, 2]).dtype == np.float64
    finally:
        fs.set_default_dtype(np.float32)
    assert default_collate([1.5, 2]).dtype == np.float32 and default_collate([1, 2]).dtype == np.int64


def test_collate_of_samples_that_require_grad_is_differentiable():
    a, b = Tensor([1.0, 2.0], requires_grad=True), Tensor([3.0, 4.0], requires_grad=True)
    batch = default_collate([a, b])
    (batch * Tensor([[1.0, 2.0], [3.0, 4.0]])).sum().backward()
    np.testing.assert_array_equal(a.grad, [1.0, 2.0])
    np.testing.assert_array_equal(b.grad, [3.0, 4.0])


def test_custom_collate_fn():
    loader = DataLoader(Indices(5), batch_size=2, collate_fn=lambda batch: sum(batch))
    assert list(loader) == [1, 5, 4]
    pad = lambda batch: [s + [0] * (3 - len(s)) for s in batch]  # noqa: E731
    assert list(DataLoader([[1], [2, 3]], batch_size=2, collate_fn=pad)) == [[[1, 0, 0], [2, 3, 0]]]


@pytest.mark.parametrize("batch,error,match", [
    ([np.zeros(2), np.zeros(3)], ValueError, r"default_collate: cannot stack samples of shapes \[\(2,\), \(3,\)\]"),
    ([Tensor(np.zeros(2)), Tensor(np.zeros((2, 1)))], ValueError, "cannot stack samples of shapes"),
    ([[1, 2], [1]], ValueError, "sequences of different lengths"),
    ([None, None], TypeError, "cannot collate samples of type NoneType"),
])
def test_collate_errors(batch, error, match):
    with pytest.raises(error, match=match):
        default_collate(batch)


# ------------------------------------------------------------------ datasets and random_split
def test_tensor_dataset_and_subset():
    x, y = np.arange(10.0).reshape(5, 2), np.arange(5)
    ds = TensorDataset(x, y)
    assert len(ds) == 5 and ds.tensors[0].dtype == np.float32  # arrays wrapped as Tensor(x) wraps them
    xi, yi = ds[3]
    assert xi.data.tolist() == [6.0, 7.0] and yi.item() == 3
    sub = Subset(ds, [4, 0])
    assert len(sub) == 2 and sub[0][1].item() == 4
    with pytest.raises(ValueError, match=r"TensorDataset: tensors must share their first dimension, got shapes "
                                         r"\(5, 2\), \(4,\)"):
        TensorDataset(x, np.arange(4))
    with pytest.raises(ValueError, match="TensorDataset: needs at least one tensor"):
        TensorDataset()


@pytest.mark.filterwarnings("ignore:Length of split")  # torch warns of its empty splits
@pytest.mark.parametrize("n", [1, 7, 10, 11, 101])
@pytest.mark.parametrize("fractions", [[0.7, 0.3], [0.5, 0.25, 0.25], [1 / 3] * 3, [0.1] * 10, [1.0]])
def test_random_split_fractions_give_torchs_lengths(n, fractions):
    ours = random_split(Indices(n), fractions, generator=np.random.default_rng(0))
    theirs = tud.random_split(range(n), fractions, generator=torch.Generator().manual_seed(0))
    assert [len(s) for s in ours] == [len(s) for s in theirs]
    assert sorted(i for s in ours for i in s.indices) == list(range(n))


def test_random_split_integer_lengths_disjoint_and_seeded():
    parts = random_split(Indices(20), [5, 0, 15])
    assert [len(p) for p in parts] == [5, 0, 15]
    assert sorted(i for p in parts for i in p.indices) == list(range(20))
    assert [parts[0][i] for i in range(5)] == parts[0].indices
    fs.manual_seed(1)
    a = random_split(Indices(20), [10, 10])
    fs.manual_seed(1)
    assert random_split(Indices(20), [10, 10])[0].indices == a[0].indices
    assert random_split(Indices(20), [10, 10], generator=np.random.default_rng(5))[0].indices != a[0].indices


@pytest.mark.parametrize("lengths,match", [
    ([5, 4], r"random_split: lengths \[5, 4\] sum to 9, the dataset has 10 samples"),
    ([6, 6], "sum to 12"),
    ([1.2, -0.2], "fraction at index 0 is 1.2, not between 0 and 1"),
    ([0.5, 0.4], "lengths must be non-negative integers or fractions summing to 1"),
    ([12, -2], "lengths must be non-negative integers"),
])
def test_random_split_errors(lengths, match):
    with pytest.raises(ValueError, match=match):
        random_split(Indices(10), lengths)


# ------------------------------------------------------------------ bad arguments
@pytest.mark.parametrize("kwargs,error,match", [
    (dict(batch_size=0), ValueError, "DataLoader: batch_size must be a positive integer, got 0"),
    (dict(batch_size=-2), ValueError, "got -2"),
    (dict(batch_size=2.5), ValueError, "got 2.5"),
    (dict(batch_size=True), ValueError, "got True"),
    (dict(shuffle=True, sampler=[0, 1]), ValueError, "sampler option is mutually exclusive with shuffle"),
    (dict(batch_sampler=[[0]], batch_size=2), ValueError, "batch_sampler option is mutually exclusive"),
    (dict(batch_sampler=[[0]], shuffle=True), ValueError, "batch_sampler option is mutually exclusive"),
    (dict(shuffle=True, generator=7), TypeError, "DataLoader: generator must be a numpy.random.Generator"),
    (dict(collate_fn="stack"), TypeError, "DataLoader: collate_fn must be callable, got str"),
])
def test_loader_errors(kwargs, error, match):
    with pytest.raises(error, match=match):
        DataLoader(Indices(4), **kwargs)


def test_sampler_errors():
    with pytest.raises(ValueError, match="RandomSampler: num_samples must be a positive integer, got 0"):
        RandomSampler(range(0))
    with pytest.raises(ValueError, match="BatchSampler: batch_size must be a positive integer, got 0"):
        BatchSampler(range(3), 0, False)
    with pytest.raises(TypeError, match="random_split: generator must be a numpy.random.Generator"):
        random_split(Indices(4), [2, 2], generator=torch.Generator())
