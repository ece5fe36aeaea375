"""Tensor basics: dtype rules, attributes, comparisons, hashing, factories."""
import numpy as np
import pytest

import from_scratch as fs
from from_scratch import Tensor


# ---------------------------------------------------------------- dtypes

@pytest.mark.parametrize("data", [1.5, [1.0, 2.0], [[1, 2], [3, 4.5]], np.ones(3), np.ones(3, np.float16)])
def test_floats_become_float32_by_default(data):
    assert Tensor(data).dtype == np.float32


def test_explicit_dtype_is_kept():
    assert Tensor([1.0, 2.0], dtype=np.float64).dtype == np.float64
    assert Tensor(np.ones(3), dtype=np.float64).dtype == np.float64
    assert Tensor([1, 2], dtype=np.float32).dtype == np.float32
    assert Tensor(np.ones(2), dtype="float64", requires_grad=True).requires_grad


def test_ints_and_bools_are_kept():
    assert Tensor([1, 2, 3]).dtype == np.int64
    assert Tensor(np.arange(3, dtype=np.int32)).dtype == np.int32
    assert Tensor(np.array([1, 2], np.uint8)).dtype == np.uint8
    assert Tensor([True, False]).dtype == np.bool_
    assert Tensor(7).dtype == np.int64 and Tensor(True).dtype == np.bool_


def test_set_default_dtype():
    fs.set_default_dtype(np.float64)
    assert fs.get_default_dtype() == np.float64
    assert Tensor([1.0]).dtype == np.float64 and Tensor(np.ones(2, np.float32)).dtype == np.float64
    assert fs.zeros(2).dtype == fs.randn(2).dtype == np.float64
    assert Tensor([1]).dtype == np.int64  # ints are untouched
    fs.set_default_dtype("float32")
    assert Tensor([1.0]).dtype == np.float32
    with pytest.raises(TypeError, match="set_default_dtype: int64 is not a floating dtype"):
        fs.set_default_dtype(np.int64)


@pytest.mark.parametrize("data", [[1, 2], np.arange(3), [True, False]])
def test_requires_grad_needs_floats(data):
    with pytest.raises(TypeError, match="requires_grad=True needs floating data, got dtype"):
        Tensor(data, requires_grad=True)
    with pytest.raises(TypeError, match="requires_grad=True needs floating data"):
        Tensor(data).requires_grad_()
    with pytest.raises(TypeError, match="requires_grad=True needs floating data"):
        fs.zeros(2, dtype=np.int64, requires_grad=True)


def test_unsupported_data_is_rejected():
    with pytest.raises(TypeError, match="cannot hold data of dtype <U1"):
        Tensor(["a"])
    with pytest.raises(TypeError, match="cannot hold data of dtype complex128"):
        Tensor([1j])


def test_constants_take_the_tensor_dtype():
    x = Tensor([1.0, 2.0])
    for y in [x + 1.5, 2.5 * x, x / np.float64(3), np.ones(2) - x, x ** 2, x.maximum(0.5), x.masked_fill(
            np.array([True, False]), 7.0), fs.where(np.array([True, False]), x, 0.0)]:
        assert y.dtype == np.float32
    z = Tensor([1.0, 2.0], dtype=np.float64)
    assert (z * np.ones(2, np.float32)).dtype == np.float64


# ---------------------------------------------------------------- attributes

def test_attributes():
    x = Tensor(np.arange(6.0).reshape(2, 3), requires_grad=True)
    assert x.shape == (2, 3) and x.ndim == 2 and x.size == 6 and x.dtype == np.float32 and len(x) == 2
    assert x.T.shape == (3, 2) and x.T.requires_grad
    np.testing.assert_array_equal(x.T.data, x.data.T)
    assert isinstance(x.numpy(), np.ndarray) and x.numpy() is x.data
    assert x.tolist() == [[0, 1, 2], [3, 4, 5]]
    assert x.is_leaf and not (x * 2).is_leaf
    assert x.grad is None
    assert np.asarray(x) is x.data and np.asarray(x, dtype=np.float64).dtype == np.float64


def test_item():
    assert Tensor(3.5).item() == 3.5 and isinstance(Tensor(3.5).item(), float)
    assert Tensor([[2]]).item() == 2 and isinstance(Tensor([2]).item(), int)
    with pytest.raises(ValueError):
        Tensor([1.0, 2.0]).item()


def test_detach_shares_data_and_cuts_the_graph():
    x = Tensor([1.0, 2.0], requires_grad=True)
    y = x * 3
    d = y.detach()
    assert not d.requires_grad and d.is_leaf and d.data is y.data
    (d * x).sum().backward()
    np.testing.assert_array_equal(x.grad, [3, 6])  # no path through d


def test_repr():
    assert repr(Tensor([1.0, 2.5])) == "Tensor([1. , 2.5], dtype=float32)"
    assert repr(Tensor([[1, 2]])) == "Tensor([[1, 2]], dtype=int64)"
    assert repr(Tensor(2.0, requires_grad=True, dtype=np.float64)) == "Tensor(2., dtype=float64, requires_grad=True)"


def test_scalar_results_are_arrays():
    x = Tensor([1.0, 2.0], requires_grad=True)
    for y in [x.sum(), x[0], x.max(), x @ x, x.mean(), x.sum().exp()]:
        assert type(y.data) is np.ndarray and y.shape == ()


def test_copy_astype_and_len_of_scalar():
    x = Tensor([1.5, 2.5], requires_grad=True)
    y = x.astype(np.float64)
    assert y.dtype == np.float64 and not y.requires_grad and y.data is not x.data
    assert Tensor(x).dtype == np.float32 and not Tensor(x).requires_grad
    with pytest.raises(TypeError):
        len(Tensor(1.0))


# ---------------------------------------------------------------- comparisons and hashing

@pytest.mark.parametrize("op", ["__eq__", "__ne__", "__lt__", "__le__", "__gt__", "__ge__"])
def test_comparisons_give_bool_tensors_without_grad(op):
    x = Tensor([1.0, 2.0, 3.0], requires_grad=True)
    for other in [2.0, Tensor([3.0, 2.0, 1.0]), np.array([3.0, 2.0, 1.0])]:
        out = getattr(x, op)(other)
        assert isinstance(out, Tensor) and out.dtype == np.bool_ and not out.requires_grad
        np.testing.assert_array_equal(out.data, getattr(x.data, op)(other.data if isinstance(other, Tensor)
                                                                   else other))


def test_tensors_are_hashable_by_identity():
    a, b = Tensor([1.0]), Tensor([1.0])
    d = {a: "a", b: "b"}
    assert d[a] == "a" and d[b] == "b" and len({a, b, a}) == 2
    assert bool(a == b)  # equal values, yet distinct keys


def test_bool_of_one_element_and_ambiguous():
    assert bool(Tensor([1.0])) and not bool(Tensor(0.0))
    with pytest.raises(ValueError):
        bool(Tensor([1.0, 2.0]))


def test_argmax():
    x = Tensor([[1.0, 5.0, 2.0], [7.0, 0.0, 1.0]])
    assert x.argmax().item() == 3
    np.testing.assert_array_equal(x.argmax(1).data, [1, 0])
    np.testing.assert_array_equal(x.argmax(-2).data, [1, 0, 0])


# ---------------------------------------------------------------- factories

def test_factories():
    assert fs.zeros(2, 3).shape == (2, 3) and fs.zeros((2, 3)).dtype == np.float32 and not fs.zeros(2).data.any()
    assert fs.ones([2]).data.tolist() == [1, 1] and fs.ones(2, dtype=np.float64).dtype == np.float64
    assert fs.full((2, 2), 7.0).data.tolist() == [[7, 7], [7, 7]]
    assert fs.arange(4).dtype == np.int64 and fs.arange(0.0, 1.0, 0.5).dtype == np.float32
    assert fs.zeros(2, requires_grad=True).requires_grad
    fs.manual_seed(5)
    a, u = fs.randn(1000), fs.rand(1000)
    fs.manual_seed(5)
    np.testing.assert_array_equal(fs.randn(1000).data, a.data)
    assert a.dtype == u.dtype == np.float32 and abs(a.data.mean()) < 0.1 and 0 <= u.data.min() < u.data.max() < 1
